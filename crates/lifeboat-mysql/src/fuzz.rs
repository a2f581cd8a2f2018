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
        crate::fuzzing::row_line(&line);
    }

    #[test]
    fn fuzz_wire_replies(replies in inputs(vec![crate::fuzzing::reply_seed()])) {
        crate::fuzzing::wire_replies(&replies);
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
        crate::fuzzing::schema(&raw);
    }

    #[test]
    fn fuzz_cache_files(raw in inputs(vec![cache_seed()])) {
        crate::fuzzing::cache_file(&raw);
    }

    #[test]
    fn fuzz_row_hash_deltas(raw in inputs(vec![crate::records::seed_delta()])) {
        crate::fuzzing::row_hash_delta(&raw);
    }

    #[test]
    fn fuzz_binlog_files(raw in inputs(corpus("binlog"))) {
        crate::fuzzing::binlog_file(&raw);
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

/// Writes this crate's seeds of `fuzz/corpus/` (cache file, server
/// replies, statement texts):
/// `LIFEBOAT_WRITE_CORPUS=1 cargo test -p lifeboat-mysql --lib write_corpus`.
#[test]
fn write_corpus() {
    if std::env::var_os("LIFEBOAT_WRITE_CORPUS").is_none() {
        return;
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), data).expect("write seed");
    };
    put("cache", "four-segments.lbc", &cache_seed());
    put(
        "rowdelta",
        "keep-edit-add.lbd",
        &crate::records::seed_delta(),
    );
    put("wire", "select-two-rows.bin", &crate::fuzzing::reply_seed());
    put(
        "binlog",
        "mysql8-layouts.bin",
        &crate::binlog::tests::seed_file(),
    );
    let texts = [
        "CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `v` AS select `t`.`a` AS `a` from `t`",
        "CREATE PROCEDURE `v`() BEGIN IF 1 THEN SELECT 'x;y'; END IF; END",
        "CREATE TRIGGER `v` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
        "CREATE EVENT `v` ON SCHEDULE EVERY 1 DAY DO DELETE FROM `t`",
        "CREATE TABLE `t` (`a` int NOT NULL, `b` varchar(10) DEFAULT 'x;y', PRIMARY KEY (`a`)) /*!50100 PARTITION BY HASH (`a`) */",
    ];
    for (i, t) in texts.iter().enumerate() {
        put("sql", &format!("create-{i}.sql"), t.as_bytes());
    }
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

/// The row check against the encoder: what the dump writes always passes,
/// and a line with anything appended (a second statement) never does.
mod row_check {
    use proptest::prelude::*;

    use super::config;
    use crate::encode::{push_value, Kind};
    use crate::guard::check_row;

    /// A value as a server sends it: numbers as servers print them, text
    /// and binary values any bytes.
    fn value() -> impl Strategy<Value = (Kind, Option<Vec<u8>>)> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..40);
        let number =
            "-?[0-9]{1,12}(\\.[0-9]{1,6})?(e[+-]?[0-9]{1,3})?".prop_map(String::into_bytes);
        prop_oneof![
            (
                Just(Kind::Text),
                proptest::option::weighted(0.9, bytes.clone())
            ),
            (Just(Kind::Binary), proptest::option::weighted(0.9, bytes)),
            (Just(Kind::Number), proptest::option::weighted(0.9, number)),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_encoded_rows_pass_and_tails_fail(
            row in proptest::collection::vec(value(), 1..12),
            tail in "[;,)(' a-zA-Z0-9-]{1,12}",
        ) {
            let mut line = vec![b'('];
            for (i, (kind, v)) in row.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                push_value(&mut line, *kind, v.as_deref());
            }
            line.push(b')');
            prop_assert!(check_row(&line, row.len()).is_ok(), "{}", String::from_utf8_lossy(&line));
            prop_assert!(check_row(&line, row.len() + 1).is_err());
            let mut longer = line.clone();
            longer.extend_from_slice(tail.as_bytes());
            prop_assert!(check_row(&longer, row.len()).is_err(), "{}", String::from_utf8_lossy(&longer));
        }


    }
}

/// The tokenizer and the CREATE checks on mutated texts: never a panic,
/// and a statement with another one appended is never accepted.
mod create_check {
    use proptest::prelude::*;

    use super::config;
    use crate::guard::{check_object, check_table, Rewrite};
    use crate::lexer::{tokens, Dialect};
    use crate::schema::Object;

    use crate::fuzzing::scope;

    const HONEST: [(&str, &str); 4] = [
        ("VIEW", "CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `v` AS select `t`.`a` AS `a` from `t`"),
        ("PROCEDURE", "CREATE PROCEDURE `v`() BEGIN IF 1 THEN SELECT 'x;y'; END IF; END"),
        ("TRIGGER", "CREATE TRIGGER `v` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1"),
        ("EVENT", "CREATE EVENT `v` ON SCHEDULE EVERY 1 DAY DO DELETE FROM `t`"),
    ];

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("'".to_string()),
                Just("\"".to_string()),
                Just("`".to_string()),
                Just("/*".to_string()),
                Just("*/".to_string()),
                Just("/*!".to_string()),
                Just("-- ".to_string()),
                Just("#".to_string()),
                Just("\n".to_string()),
                Just(";".to_string()),
                Just("\\".to_string()),
                Just(" BEGIN ".to_string()),
                Just(" END ".to_string()),
                Just("victim.x".to_string()),
                "[a-z ]{0,6}",
            ],
            0..16,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_tokenizer(sql in text()) {
            crate::fuzzing::sql_text(sql.as_bytes());
        }

        #[test]
        fn fuzz_appended_statements_are_refused(which in 0..4usize, junk in text(), cut in any::<usize>()) {
            let (kind, create) = HONEST[which];
            let mut o = Object { name: "v".into(), kind: kind.into(), sql_mode: String::new(), create: create.into(), ..Default::default() };
            prop_assert!(check_object(&o, Dialect::default(), &scope(), false, &Rewrite::default()).is_ok());
            // Appended after a ';' at top level: refused, whatever follows.
            o.create = format!("{create}; DROP DATABASE victim {junk}");
            prop_assert!(check_object(&o, Dialect::default(), &scope(), false, &Rewrite::default()).is_err(), "{}", o.create);
            // Junk anywhere: no panic; accepted only if it still names no
            // other database.
            let at = cut % (create.len() + 1);
            if create.is_char_boundary(at) {
                o.create = format!("{}{junk}{}", &create[..at], &create[at..]);
                if let Ok(sql) = check_object(&o, Dialect::default(), &scope(), false, &Rewrite::default()) {
                    let toks = tokens(&sql, Dialect::default()).expect("accepted texts tokenize");
                    prop_assert!(!toks.windows(3).any(|w| &sql[w[0].start..w[0].end] == "victim" && &sql[w[1].start..w[1].end] == "."), "{sql}");
                }
            }
            let _ = check_table(&format!("CREATE TABLE `t` ({junk})"), "t", Dialect::default(), &scope());
        }
    }
}
