//! Deterministic test data: the same seed gives the same bytes on every
//! machine, so a failure can be reproduced.

use std::io::Write;
use std::path::Path;

/// A small, fast, seedable generator (xorshift64*). Not for secrets.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Write `len` bytes: the first half incompressible (random), the second
/// half compressible (SQL-like text lines), like a dump with blobs.
pub fn write_mixed_stream(path: &Path, len: u64, seed: u64) {
    let f = std::fs::File::create(path).expect("create stream file");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut rng = Rng::new(seed);
    let half = len / 2;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < half {
        let n = (half - written).min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).expect("write");
        written += n as u64;
    }
    let mut line = Vec::with_capacity(256);
    let mut id = 0u64;
    while written < len {
        line.clear();
        id += 1;
        let _ = writeln!(
            line,
            "INSERT INTO appointments VALUES ({id},{},'2026-{:02}-{:02} {:02}:{:02}:00','scheduled','checkup note {}');",
            rng.below(50_000),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(1_000_000)
        );
        let n = ((len - written) as usize).min(line.len());
        w.write_all(&line[..n]).expect("write");
        written += n as u64;
    }
    w.flush().expect("flush");
}

/// Overwrite `regions` spread-out runs of bytes, `fraction` of the file in
/// total, with new random bytes (an in-place change; the size stays).
pub fn change_in_place(path: &Path, fraction: f64, regions: u64, seed: u64) -> u64 {
    use std::io::{Seek, SeekFrom};
    let len = std::fs::metadata(path).expect("stat").len();
    let total = (len as f64 * fraction) as u64;
    let each = total / regions.max(1);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; each as usize];
    let stride = len / regions.max(1);
    for r in 0..regions {
        let start = r * stride + rng.below(stride.saturating_sub(each).max(1));
        rng.fill(&mut buf);
        f.seek(SeekFrom::Start(start)).expect("seek");
        f.write_all(&buf).expect("write");
    }
    f.sync_all().expect("sync");
    each * regions
}
