//! Shared by the proptest fuzz targets of every crate (included with
//! `#[path]`, so no crate depends on another for it): the proptest
//! settings, the seed corpus of `fuzz/corpus/`, and the mutations.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::Config;

pub fn config() -> Config {
    let cases = std::env::var("LIFEBOAT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..Config::default()
    }
}

/// `fuzz/corpus/<target>/*` of the workspace.
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A small xorshift generator: mutations are reproducible from one u64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// `seed` changed by `ops` random edits.
pub fn mutate(seed: &[u8], rng_seed: u64, ops: usize) -> Vec<u8> {
    const NUMBERS: [&[u8]; 6] = [
        b"0",
        b"-1",
        b"4294967295",
        b"4294967296",
        b"18446744073709551615",
        b"99999999999999999999999",
    ];
    let mut r = Rng(rng_seed | 1);
    let mut d = seed.to_vec();
    for _ in 0..ops {
        let at = r.below(d.len() + 1);
        match r.below(7) {
            0 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] ^= 1 << r.below(8);
            }
            1 => d.truncate(at),
            2 => {
                let b = [0u8, 0xff, b'"', b'{', b'}', b'\n', b',', b'9'][r.below(8)];
                d.insert(at, b);
            }
            3 if !d.is_empty() => {
                let from = r.below(d.len());
                let len = r.below(64).min(d.len() - from);
                let piece = d[from..from + len].to_vec();
                d.splice(at..at, piece);
            }
            4 => {
                // Replace the digits around `at` with a huge or odd number.
                let start = (0..at.min(d.len()))
                    .rev()
                    .take_while(|i| d[*i].is_ascii_digit())
                    .last()
                    .unwrap_or(at.min(d.len()));
                let end = (start..d.len())
                    .take_while(|i| d[*i].is_ascii_digit())
                    .last()
                    .map_or(start, |i| i + 1);
                d.splice(start..end, NUMBERS[r.below(NUMBERS.len())].iter().copied());
            }
            5 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] = r.next() as u8;
            }
            _ => {
                let i = at.min(d.len());
                d.drain(i..(i + r.below(16)).min(d.len()));
            }
        }
    }
    d
}

/// Arbitrary bytes, or a mutation of one of `seeds`.
pub fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        4 => (0..n, any::<u64>(), 1..8usize)
            .prop_map(move |(i, r, ops)| mutate(&seeds[i], r, ops)),
    ]
}
