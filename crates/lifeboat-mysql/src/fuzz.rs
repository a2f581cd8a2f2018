//! Fuzzing the readers of the stored MySQL dump with proptest (see
//! `lifeboat-store`'s fuzz module): row lines as replay and the
//! cross-check parse them, the cutting of item bytes into lines, the
//! schema item, and the local row-hash cache files.

use std::io::Write;

use proptest::prelude::*;

use crate::cache::{Reader, Segment, Writer};
use crate::encode::{push_value, Kind, Lines};
use crate::rows::parse_row;
use crate::schema::Schema;
use lifeboat_store::BlobId;

#[path = "../../../fuzz/mutate.rs"]
mod mutate;
use mutate::{config, corpus, inputs};

fn row_seeds() -> Vec<Vec<u8>> {
    corpus("row")
        .iter()
        .flat_map(|f| {
            f.split(|b| *b == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

fn value() -> impl Strategy<Value = (Kind, Option<Vec<u8>>)> {
    let kind = prop_oneof![Just(Kind::Text), Just(Kind::Binary), Just(Kind::Number)];
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[0-9]{1,12}(\\.[0-9]{1,6})?".prop_map(String::into_bytes),
    ];
    (kind, proptest::option::weighted(0.9, bytes))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_row_lines(line in inputs(row_seeds())) {
        if let Ok(values) = parse_row(&line) {
            // Nothing comes out that was not in the line (no length field
            // can make it allocate more).
            let total: usize = values.iter().flatten().map(Vec::len).sum();
            prop_assert!(total <= line.len());
        }
    }

    #[test]
    fn fuzz_rows_round_trip(row in proptest::collection::vec(value(), 1..12)) {
        let mut line = vec![b'('];
        for (i, (kind, v)) in row.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            push_value(&mut line, *kind, v.as_deref());
        }
        line.push(b')');
        let parsed = parse_row(&line).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&line))))?;
        let want: Vec<Option<Vec<u8>>> = row.into_iter().map(|(_, v)| v).collect();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn fuzz_lines_cut_anywhere(data in inputs(corpus("row")), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut got: Vec<Vec<u8>> = Vec::new();
        {
            let mut lines = Lines::new(|l: &[u8]| {
                got.push(l.to_vec());
                Ok(())
            });
            let mut at = 0;
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.sort_unstable();
            for p in points.into_iter().chain([data.len()]) {
                lines.write_all(&data[at..p]).expect("write");
                at = p;
            }
            lines.finish().expect("finish");
        }
        let mut want: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        if want.last().is_some_and(Vec::is_empty) {
            want.pop();
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn fuzz_schema(raw in inputs(corpus("schema"))) {
        let _ = serde_json::from_slice::<Schema>(&raw);
    }

    #[test]
    fn fuzz_cache_files(raw in inputs(vec![cache_seed()]), keys in proptest::collection::vec(any::<u64>(), 1..6)) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(crate::cache::table_file(dir.path(), "t"), &raw).expect("write");
        let mut r = Reader::open(dir.path(), "t");
        for k in keys.into_iter().chain(0..4) {
            if let Some(s) = r.find(k) {
                prop_assert_eq!(s.key, k);
                prop_assert!(s.hashes.len() * 8 <= raw.len());
            }
        }
    }
}

/// A cache file of four segments, as a backup writes it.
fn cache_seed() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = Writer::create(dir.path(), "t");
    for key in 0..4u64 {
        w.add(&Segment {
            key,
            blob: BlobId([key as u8; 32]),
            depth: 0,
            hashes: (0..5).map(|i| key * 100 + i).collect(),
        });
    }
    w.finish();
    let new = crate::cache::table_file(dir.path(), "t").with_extension("lbc.new");
    std::fs::read(new).expect("cache file")
}

#[test]
fn corpus_seeds_parse() {
    for line in row_seeds() {
        parse_row(&line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)));
    }
    for raw in corpus("schema") {
        serde_json::from_slice::<Schema>(&raw).expect("schema seed");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(crate::cache::table_file(dir.path(), "t"), cache_seed()).expect("write");
    let mut r = Reader::open(dir.path(), "t");
    for k in 0..4 {
        assert_eq!(r.find(k).map(|s| s.hashes.len()), Some(5), "segment {k}");
    }
}
