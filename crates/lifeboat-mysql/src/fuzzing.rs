//! Entry points for fuzzing what the MySQL source reads from a snapshot or
//! a server: the libFuzzer targets in `fuzz/` and the proptest versions in
//! the test suite call the same functions; a panic is a finding. Not an
//! API: hidden from the docs.

use std::io::Write;

use sha2::Digest;

use crate::encode::Lines;
use crate::guard::{check_object, check_row, check_table, Rewrite, Scope};
use crate::lexer::{tokens, Dialect};
use crate::rows::parse_row;
use crate::schema::{Object, Schema};

/// A row line as replay checks it and the cross-check reads it: nothing
/// comes out that was not in the line, and what the strict check accepts
/// the lenient reader reads to as many values.
pub fn row_line(line: &[u8]) {
    let parsed = parse_row(line);
    if let Ok(values) = &parsed {
        let total: usize = values.iter().flatten().map(Vec::len).sum();
        assert!(total <= line.len());
    }
    let n = parsed.as_ref().map(Vec::len).unwrap_or(1);
    if check_row(line, n).is_ok() {
        assert_eq!(parse_row(line).map(|v| v.len()).ok(), Some(n));
    }
}

/// Item bytes cut into lines, written in pieces of `data[0] + 1` bytes:
/// the lines are those of the whole, however it is cut.
pub fn lines(data: &[u8]) {
    let Some((&k, data)) = data.split_first() else {
        return;
    };
    let mut got: Vec<Vec<u8>> = Vec::new();
    {
        let mut lines = Lines::new(|l: &[u8]| {
            got.push(l.to_vec());
            Ok(())
        });
        for piece in data.chunks(usize::from(k) + 1) {
            lines.write_all(piece).expect("lines take any bytes");
        }
        lines.finish().expect("lines end");
    }
    let mut want: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    if want.last().is_some_and(|l| l.is_empty()) {
        want.pop();
    }
    assert!(got.iter().map(Vec::as_slice).eq(want.into_iter()));
}

/// The scope the guard checks against: a target, and another database
/// (`victim`) nothing may name.
pub(crate) fn scope() -> Scope {
    Scope {
        source_db: "shop".into(),
        target_db: "staging".into(),
        other_dbs: ["victim".to_string()].into_iter().collect(),
        tables: vec!["t".into()],
        anywhere: false,
    }
}

/// Whether an accepted text refers to the other database (`victim.`).
fn names_victim(sql: &str) -> bool {
    let toks = tokens(sql, Dialect::default()).expect("accepted texts tokenize");
    toks.windows(2)
        .any(|w| &sql[w[0].start..w[0].end] == "victim" && &sql[w[1].start..w[1].end] == ".")
}

/// A schema item: parsed, then every CREATE in it put through the checks
/// replay makes before it touches the target.
pub fn schema(data: &[u8]) {
    let Ok(schema) = serde_json::from_slice::<Schema>(data) else {
        return;
    };
    let d = Dialect::default();
    for t in &schema.tables {
        let _ = check_table(&t.create, &t.name, d, &scope());
    }
    for o in schema
        .views
        .iter()
        .chain(&schema.triggers)
        .chain(&schema.routines)
        .chain(&schema.events)
    {
        if let Ok(sql) = check_object(o, d, &scope(), false, &Rewrite::default()) {
            assert!(!names_victim(&sql), "{sql}");
        }
    }
}

/// Statement text: tokenized in every dialect, and checked as each kind of
/// object and as a table; an accepted text never names another database.
pub fn sql_text(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for (ansi_quotes, brackets, no_backslash_escapes) in [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (false, false, true),
    ] {
        let _ = tokens(
            sql,
            Dialect {
                ansi_quotes,
                brackets,
                no_backslash_escapes,
            },
        );
    }
    for kind in ["VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"] {
        let o = Object {
            name: "v".into(),
            kind: kind.into(),
            sql_mode: String::new(),
            create: sql.into(),
            ..Default::default()
        };
        if let Ok(checked) =
            check_object(&o, Dialect::default(), &scope(), false, &Rewrite::default())
        {
            assert!(!names_victim(&checked), "{checked}");
        }
    }
    let _ = check_table(sql, "t", Dialect::default(), &scope());
    // As a schema change from the binlog's window: an applied text names
    // no other database.
    for default_db in ["shop", "victim"] {
        if let Ok(crate::guard::WindowDdl::Apply { sql: checked, .. }) =
            crate::guard::check_window_ddl(sql, Dialect::default(), &scope(), default_db)
        {
            assert!(!names_victim(&checked), "{checked}");
        }
    }
}

/// The local row-hash cache file of a table: whatever it holds, a lookup
/// returns the segment asked for, bounded by the file.
pub fn cache_file(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(crate::cache::table_file(dir.path(), "t"), data).is_err() {
        return;
    }
    let mut r = crate::cache::Reader::open(dir.path(), "t");
    for k in 0..8u64 {
        if let Some(s) = r.find(k) {
            assert_eq!(s.key, k);
            assert!(s.hashes.len() * 8 <= data.len());
        }
    }
}

/// A stored row-hash delta (hostile: whoever holds the backup key writes
/// them) applied to a cache file of four segments: an error, or a cache
/// file whose every record reads back, with the SHA-256 it claims.
pub fn row_hash_delta(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let base = dir.path().join("base.lbc");
    let mut w = crate::cache::Writer::create_at(base.clone());
    for seg in crate::records::seed_segments() {
        w.add(&seg);
    }
    if w.finish().is_none() {
        return;
    }
    let out = dir.path().join("out.lbc");
    if let Ok((sha, segments)) = crate::records::apply(&base, data, &out) {
        let bytes = std::fs::read(&out).expect("the applied file");
        assert_eq!(sha, <[u8; 32]>::from(sha2::Sha256::digest(&bytes)));
        assert_eq!(crate::cache::Reader::open_path(&out).count(), segments);
    }
}

/// A stored binlog file (hostile: the backup key writes it), through the
/// reader and every parser apply uses: an error, or events whose rewritten
/// forms check out (a table map moved to another database names that
/// database and the same table, with a valid CRC; a row event marked as a
/// statement's end keeps its table id).
pub fn binlog_file(data: &[u8]) {
    use crate::binlog::{self, Gtid, Header, Query, Reader, TableMap, Transactions};
    let mut reader = Reader::new();
    let mut txns = Transactions::default();
    let _ = reader.push(data, &mut |f, e| {
        let h = Header::parse(e).expect("the reader hands whole events");
        txns.feed(f, e);
        let _ = Query::parse(f, e);
        let _ = Gtid::parse(f, e).map(|g| g.to_string());
        let _ = binlog::rotate_target(f, e);
        if let Some(m) = TableMap::parse(f, e) {
            let Ok(moved) = m.with_database(f, e, "staging_db") else {
                return Ok(());
            };
            f.check(&moved).expect("a rewritten table map checks");
            let m2 = TableMap::parse(f, &moved).expect("a rewritten table map parses");
            assert_eq!(m2.database, b"staging_db");
            assert_eq!((m2.table_id, m2.table), (m.table_id, m.table));
        }
        if h.is_rows() {
            if let Some((id, _)) = binlog::rows_table(f, e) {
                let marked = binlog::with_statement_end(f, e);
                f.check(&marked).expect("a marked row event checks");
                let (id2, flags) = binlog::rows_table(f, &marked).expect("still a row event");
                assert_eq!(id, id2);
                assert_ne!(flags & binlog::STMT_END, 0);
            }
        }
        Ok(())
    });
    let _ = reader.finish();
}

/// A server's replies, as the protocol reader takes them.
pub fn wire_replies(data: &[u8]) {
    crate::wire::fuzzing::replies(data);
}

/// A server's answer to `SELECT id, name FROM t` with two rows (one NULL),
/// as packets: a seed for [`wire_replies`].
pub fn reply_seed() -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = 1u8;
    let mut packet = |payload: &[u8]| {
        let len = payload.len() as u32;
        out.extend_from_slice(&len.to_le_bytes()[..3]);
        out.push(seq);
        seq = seq.wrapping_add(1);
        out.extend_from_slice(payload);
    };
    let eof = [0xfe, 0, 0, 2, 0];
    packet(&[2]);
    for name in ["id", "name"] {
        let mut def = Vec::new();
        for part in ["def", "shop", "t", "t", name, name] {
            def.push(part.len() as u8);
            def.extend_from_slice(part.as_bytes());
        }
        def.extend_from_slice(&[0x0c, 0x21, 0, 0xff, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
        packet(&def);
    }
    packet(&eof);
    packet(b"\x011\x03Ada");
    packet(b"\x012\xfb");
    packet(&eof);
    out
}
