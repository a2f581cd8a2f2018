//! Rows as SQL literals. Values are read with the text protocol, so every
//! type arrives as the server's own exact text (DECIMAL digits, DATETIME
//! with fractions, JSON); only the quoting depends on the column kind.

use serde::{Deserialize, Serialize};

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Integers, DECIMAL, FLOAT, DOUBLE, YEAR: the text as is.
    Number,
    /// BINARY, VARBINARY, BLOBs, BIT, geometry: `X'hex'`.
    Binary,
    /// Everything else (strings, dates, ENUM, SET, JSON): `'escaped'`.
    Text,
}

impl Kind {
    /// From `information_schema.COLUMNS.DATA_TYPE` (MySQL and MariaDB agree
    /// on these names).
    pub fn of(data_type: &str) -> Kind {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
            | "numeric" | "float" | "double" | "real" | "year" => Kind::Number,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection" => {
                Kind::Binary
            }
            _ => Kind::Text,
        }
    }
}

/// Bytes a quoted string literal escapes: NUL, LF, CR, ^Z, quote, backslash.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    t[0] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[0x1a] = true;
    t[b'\'' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Bytes a number is written with: digits, sign, point, exponent.
const NUMERIC: [bool; 256] = {
    let mut t = [false; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = true;
        d += 1;
    }
    t[b'+' as usize] = true;
    t[b'-' as usize] = true;
    t[b'.' as usize] = true;
    t[b'e' as usize] = true;
    t[b'E' as usize] = true;
    t
};

/// Eight copies of a byte, for the word-at-a-time scan.
const fn splat(b: u8) -> u64 {
    (b as u64) * 0x0101_0101_0101_0101
}

/// True when one of the eight bytes of `w` is one [`NEEDS_ESCAPE`] marks
/// (exact: `(x - 0x01..) & !x & 0x80..` is non-zero iff `x` has a zero byte).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = splat(0x01);
    const HI: u64 = splat(0x80);
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    (zero(w)
        | zero(w ^ splat(b'\n'))
        | zero(w ^ splat(b'\r'))
        | zero(w ^ splat(0x1a))
        | zero(w ^ splat(b'\''))
        | zero(w ^ splat(b'\\')))
        != 0
}

/// Where the first byte to escape is, if any: eight bytes at a time, then
/// byte by byte (most values have none at all).
#[inline]
pub(crate) fn first_escape(v: &[u8]) -> Option<usize> {
    let mut words = v.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        if word_needs_escape(u64::from_le_bytes(b)) {
            break;
        }
        at += 8;
    }
    v[at..]
        .iter()
        .position(|b| NEEDS_ESCAPE[*b as usize])
        .map(|p| at + p)
}

/// Append one value as a SQL literal.
#[inline]
pub fn push_value(out: &mut Vec<u8>, kind: Kind, value: Option<&[u8]>) {
    let Some(v) = value else {
        out.extend_from_slice(b"NULL");
        return;
    };
    match kind {
        // Numbers come from the server as plain ASCII digits; an odd value
        // (NaN is impossible in MySQL) would still be quoted safely below.
        Kind::Number if !v.is_empty() && v.iter().all(|b| NUMERIC[*b as usize]) => {
            out.extend_from_slice(v)
        }
        Kind::Binary => {
            out.extend_from_slice(b"X'");
            let start = out.len();
            out.resize(start + v.len() * 2, 0);
            // hex::encode_to_slice cannot fail: the slice is exactly 2x long.
            let _ = hex::encode_to_slice(v, &mut out[start..]);
            out.push(b'\'');
        }
        _ => {
            out.reserve(v.len() + 2);
            out.push(b'\'');
            // Copy runs of plain bytes whole; most values have no byte to
            // escape at all.
            let mut rest = v;
            while let Some(i) = first_escape(rest) {
                out.extend_from_slice(&rest[..i]);
                out.extend_from_slice(match rest[i] {
                    0 => b"\\0",
                    b'\n' => b"\\n",
                    b'\r' => b"\\r",
                    0x1a => b"\\Z",
                    b'\'' => b"\\'",
                    _ => b"\\\\",
                });
                rest = &rest[i + 1..];
            }
            out.extend_from_slice(rest);
            out.push(b'\'');
        }
    }
}

/// Append one row as a line, `(v1,v2,...)\n`: the form of table items and
/// of the content checksum, so the dump and the replay check share it.
/// `value(i)` gives column `i`'s text (`None` for NULL). With `key`, the
/// values of the columns marked `true` are also appended to the given
/// buffer, each followed by a 0 byte.
pub fn push_row<'r, E>(
    line: &mut Vec<u8>,
    kinds: &[Kind],
    mut key: Option<(&[bool], &mut Vec<u8>)>,
    mut value: impl FnMut(usize) -> Result<Option<&'r [u8]>, E>,
) -> Result<(), E> {
    line.push(b'(');
    for (i, kind) in kinds.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        let start = line.len();
        push_value(line, *kind, value(i)?);
        if let Some((mask, keys)) = key.as_mut() {
            if mask[i] {
                keys.extend_from_slice(&line[start..]);
                keys.push(0);
            }
        }
    }
    line.extend_from_slice(b")\n");
    Ok(())
}

/// Cuts what is written into lines (without their `\n`) for `on_line`,
/// whatever the size of the writes; [`Lines::finish`] passes a last line
/// that lacks its `\n`.
pub struct Lines<F: FnMut(&[u8]) -> std::io::Result<()>> {
    partial: Vec<u8>,
    on_line: F,
}

impl<F: FnMut(&[u8]) -> std::io::Result<()>> Lines<F> {
    /// Lines go to `on_line`.
    pub fn new(on_line: F) -> Self {
        Lines {
            partial: Vec::new(),
            on_line,
        }
    }

    /// End of input.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.partial);
        (self.on_line)(&line)
    }
}

impl<F: FnMut(&[u8]) -> std::io::Result<()>> std::io::Write for Lines<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                (self.on_line)(&rest[..nl])?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..nl]);
                (self.on_line)(&line)?;
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Quote an identifier with backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(kind: Kind, v: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        push_value(&mut out, kind, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn literals() {
        assert_eq!(lit(Kind::Number, Some(b"-12.50")), "-12.50");
        assert_eq!(lit(Kind::Number, None), "NULL");
        assert_eq!(
            lit(Kind::Text, Some("it's a \\ 😀\n\0".as_bytes())),
            "'it\\'s a \\\\ 😀\\n\\0'"
        );
        assert_eq!(lit(Kind::Binary, Some(&[0, 255, 10])), "X'00ff0a'");
        assert_eq!(lit(Kind::Binary, Some(&[])), "X''");
        assert_eq!(lit(Kind::Text, Some(b"")), "''");
        // A number that is not digits is quoted rather than trusted.
        assert_eq!(lit(Kind::Number, Some(b"1;DROP")), "'1;DROP'");
        assert_eq!(ident("we`ird"), "`we``ird`");
    }

    #[test]
    fn the_word_scan_finds_every_byte_to_escape_anywhere() {
        // Each special byte at each place of values 0..=24 bytes long,
        // among bytes next to the specials (0x01, 0x19, 0x1b, '&', '(', '[', ']').
        for special in [0u8, b'\n', b'\r', 0x1a, b'\'', b'\\'] {
            for len in 1..=24 {
                for at in 0..len {
                    let mut v: Vec<u8> = (0..len)
                        .map(|i| [0x01, 0x19, 0x1b, b'&', b'(', b'[', b']', b'a'][i % 8])
                        .collect();
                    v[at] = special;
                    assert_eq!(first_escape(&v), Some(at), "{special:#x} at {at} of {len}");
                }
            }
        }
        for b in 0..=255u8 {
            let v = [b; 11];
            assert_eq!(
                first_escape(&v).is_some(),
                NEEDS_ESCAPE[b as usize],
                "{b:#x}"
            );
        }
        assert_eq!(first_escape(b""), None);
    }

    #[test]
    fn lines_are_cut_whatever_the_writes() {
        use std::io::Write;
        let mut got = Vec::new();
        let mut w = Lines::new(|l: &[u8]| {
            got.push(l.to_vec());
            Ok(())
        });
        for piece in [&b"(1,'a"[..], b"')\n(2", b",NULL)\n", b"(3,4)"] {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(
            got,
            vec![b"(1,'a')".to_vec(), b"(2,NULL)".to_vec(), b"(3,4)".to_vec()]
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("DECIMAL"), Kind::Number);
        assert_eq!(Kind::of("longblob"), Kind::Binary);
        assert_eq!(Kind::of("json"), Kind::Text);
        assert_eq!(Kind::of("datetime"), Kind::Text);
        assert_eq!(Kind::of("bit"), Kind::Binary);
    }
}
