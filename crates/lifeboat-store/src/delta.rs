//! Delta blobs: a blob may be stored as a line patch against another blob
//! (its *base*) instead of in full. Its id is still the HMAC of the full
//! plaintext, so everything above the store (items, dedup, verify) sees an
//! ordinary blob; only reading resolves the chain.
//!
//! A source that knows which lines of a blob changed since the last backup
//! (the MySQL source knows it row by row from hashes, without being able to
//! read the stored data) stores just those lines. Format in docs/FORMAT.md,
//! "Delta blobs".

/// First line of every patch.
pub const PATCH_MAGIC: &[u8] = b"LBD1\n";

/// Builds a patch: copies of runs of base lines, and literal lines.
#[derive(Debug, Default)]
pub struct PatchBuilder {
    out: Vec<u8>,
    run: Option<(usize, usize)>,
    literal_bytes: usize,
}

impl PatchBuilder {
    /// An empty patch.
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(PATCH_MAGIC);
        Self {
            out,
            run: None,
            literal_bytes: 0,
        }
    }

    /// Copy base line `index` (0-based); consecutive copies merge into one op.
    pub fn copy(&mut self, index: usize) {
        match &mut self.run {
            Some((start, count)) if *start + *count == index => *count += 1,
            _ => {
                self.flush_run();
                self.run = Some((index, 1));
            }
        }
    }

    /// A new line (including its `\n`).
    pub fn literal(&mut self, line: &[u8]) {
        self.flush_run();
        self.out
            .extend_from_slice(format!("l {}\n", line.len()).as_bytes());
        self.out.extend_from_slice(line);
        self.literal_bytes += line.len();
    }

    fn flush_run(&mut self) {
        if let Some((start, count)) = self.run.take() {
            self.out
                .extend_from_slice(format!("c {start} {count}\n").as_bytes());
        }
    }

    /// Bytes of literal lines so far (to decide whether a patch is worth it).
    pub fn literal_bytes(&self) -> usize {
        self.literal_bytes
    }

    /// The patch.
    pub fn finish(mut self) -> Vec<u8> {
        self.flush_run();
        self.out
    }
}

/// Split into lines, each keeping its `\n` (the last may lack one).
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push(&data[start..=i]);
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

/// Apply `patch` to `base`; the result may not exceed `limit` bytes (copies
/// may repeat, so a small patch could otherwise ask for a huge result). An
/// error says what is malformed.
pub fn apply(base: &[u8], patch: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let base_lines = lines(base);
    let mut rest = patch
        .strip_prefix(PATCH_MAGIC)
        .ok_or("not a patch (magic missing)")?;
    let mut out = Vec::with_capacity((base.len() + patch.len()).min(limit));
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("truncated op")?;
        let op = std::str::from_utf8(&rest[..nl]).map_err(|_| "op is not text")?;
        rest = &rest[nl + 1..];
        let mut parts = op.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("c"), Some(start), Some(count)) => {
                let start: usize = start.parse().map_err(|_| "bad copy start")?;
                let count: usize = count.parse().map_err(|_| "bad copy count")?;
                let end = start.checked_add(count).ok_or("copy overflows")?;
                let run = base_lines.get(start..end).ok_or("copy beyond the base")?;
                for l in run {
                    out.extend_from_slice(l);
                }
            }
            (Some("l"), Some(len), None) => {
                let len: usize = len.parse().map_err(|_| "bad literal length")?;
                let lit = rest.get(..len).ok_or("truncated literal")?;
                out.extend_from_slice(lit);
                rest = &rest[len..];
            }
            _ => return Err(format!("unknown op {op:?}")),
        }
        if out.len() > limit {
            return Err(format!("the result exceeds {limit} bytes"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_round_trip() {
        let base = b"(1,'a')\n(2,'b')\n(3,'c')\n(4,'d')\n";
        let mut p = PatchBuilder::new();
        p.copy(0);
        p.literal(b"(2,'B')\n"); // changed
        p.copy(2);
        // line 3 deleted
        p.literal(b"(5,'e')\n"); // inserted
        let patch = p.finish();
        assert_eq!(
            apply(base, &patch, usize::MAX).unwrap(),
            b"(1,'a')\n(2,'B')\n(3,'c')\n(5,'e')\n"
        );
        assert!(apply(base, b"LBD1\nc 3 5\n", usize::MAX).is_err());
        assert!(apply(base, b"LBD1\nl 99\nabc", usize::MAX).is_err());
        assert!(apply(base, b"nope", usize::MAX).is_err());
        // Repeated copies cannot blow up past the limit.
        let many = format!("LBD1\n{}", "c 0 4\n".repeat(100));
        assert_eq!(
            apply(base, many.as_bytes(), usize::MAX).unwrap().len(),
            3200
        );
        assert!(apply(base, many.as_bytes(), 1000).is_err());
        assert_eq!(lines(b"a\nb"), vec![&b"a\n"[..], &b"b"[..]]);
    }
}
