//! Fuzzing every parser of stored data with proptest (cargo-fuzz needs a
//! nightly toolchain these machines do not have).
//!
//! Each target feeds a parser arbitrary bytes and mutations (bit flips,
//! cut ends, spliced bytes, numbers swapped for huge ones) of real seeds:
//! the plaintext formats from `fuzz/corpus/` at the root of the repository
//! and, for sealed formats, files of a repository built when the tests
//! start. A parser must return, never panic, and never allocate by a length
//! field: what it returns stays within the limits it was given.
//!
//! `LIFEBOAT_FUZZ_CASES` sets the cases per target (256 in the test suite;
//! `scripts/fuzz.sh` runs many more). Failures proptest finds are kept in
//! `proptest-regressions/` and replayed first on every run.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use crate::backend::{Backend, FileKind, LocalBackend};
use crate::backup::BackupOptions;
use crate::crypto::{self, RestoreKey};
use crate::index::{Index, IndexFile, MAX_INDEX_LEN};
use crate::pack::{self, MAX_BLOB_LEN, MAX_HEADER_LEN, TRAILER_LEN};
use crate::repository::{parse_config, InitOptions, Repository};
use crate::snapshot::{ManifestItem, Snapshot};

#[path = "../../../fuzz/mutate.rs"]
mod mutate;
use mutate::{config, corpus, inputs};

/// A repository with one snapshot, and the raw files it stored.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repository<crate::repository::FullAccess>,
    sealed: Vec<Vec<u8>>,
    packs: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        let (repo, _) = Repository::init(
            backend.clone(),
            &RestoreKey::generate(),
            &InitOptions::default(),
        )
        .expect("init");
        let mut data: Vec<u8> = (0..600_000u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        data.extend(b"(1,'a')\n".repeat(20_000));
        crate::backup::backup_reader(
            &repo,
            BackupOptions::default(),
            "command",
            "db.sql",
            &mut data.as_slice(),
            None,
        )
        .expect("backup");
        let read_all = |kind| {
            backend
                .list(kind)
                .expect("list")
                .iter()
                .map(|f| backend.read(kind, &f.name).expect("read"))
                .collect::<Vec<_>>()
        };
        let mut sealed = read_all(FileKind::Index);
        sealed.extend(read_all(FileKind::Snapshot));
        let packs = read_all(FileKind::Pack);
        Fixture {
            _dir: dir,
            repo,
            sealed,
            packs,
        }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_config(raw in inputs(corpus("config"))) {
        if let Ok(c) = parse_config(&raw) {
            prop_assert!(c.chunker.validate().is_ok());
            prop_assert!((1 << 20..=1 << 30).contains(&c.pack_size));
        }
    }

    #[test]
    fn fuzz_index(raw in inputs(corpus("index"))) {
        if let Ok(file) = serde_json::from_slice::<IndexFile>(&raw) {
            let mut index = Index::default();
            for p in &file.packs {
                index.add_pack(p);
            }
            for p in &file.packs {
                for b in &p.blobs {
                    prop_assert!(index.get(&b.id).is_some());
                }
            }
        }
    }

    #[test]
    fn fuzz_snapshot(raw in inputs(corpus("snapshot"))) {
        let _ = serde_json::from_slice::<Snapshot>(&raw);
    }

    #[test]
    fn fuzz_manifest(raw in inputs(corpus("manifest"))) {
        for line in raw.split(|b| *b == b'\n') {
            let _ = serde_json::from_slice::<ManifestItem>(line);
        }
    }

    #[test]
    fn fuzz_lock(raw in inputs(corpus("lock"))) {
        let _ = serde_json::from_slice::<crate::lock::LockInfo>(&raw);
    }

    #[test]
    fn fuzz_key_files(raw in inputs(key_seeds())) {
        let text = String::from_utf8_lossy(&raw);
        let _ = crypto::BackupKey::parse(&text, "fuzz");
        let _ = crypto::RestoreKey::parse(&text, "fuzz");
    }

    #[test]
    fn fuzz_delta(base in inputs(corpus("delta")), patch in inputs(corpus("delta"))) {
        if let Ok(out) = crate::delta::apply(&base, &patch, 1 << 16) {
            prop_assert!(out.len() <= 1 << 16);
        }
    }

    #[test]
    fn fuzz_sealed_metadata(raw in inputs(fixture().sealed.clone())) {
        let f = fixture();
        let limit = 4096;
        if let Ok(out) = crypto::open(&[&f.repo.key().metadata_identity], &raw, limit) {
            prop_assert!(out.len() <= limit);
        }
        let _ = crypto::open(&[&f.repo.key().metadata_identity], &raw, MAX_INDEX_LEN);
    }

    #[test]
    fn fuzz_pack(raw in inputs(fixture().packs.clone())) {
        let f = fixture();
        let meta = &f.repo.key().metadata_identity;
        if let Ok(header) = pack::parse_pack(&raw, meta, f.repo.auth(), "fuzz") {
            for e in header.entries {
                prop_assert!(e.length <= MAX_BLOB_LEN && e.plain_length <= MAX_BLOB_LEN);
                prop_assert!(e.offset as usize + e.length as usize <= raw.len());
            }
        }
    }

    #[test]
    fn fuzz_pack_trailer(trailer in proptest::collection::vec(any::<u8>(), 0..12), pack_len in any::<u64>()) {
        let mut t = trailer;
        if t.len() >= 8 && t.len() % 2 == 0 {
            t.truncate(8);
            t[4..].copy_from_slice(pack::PACK_MAGIC);
        }
        if let Ok(len) = pack::parse_trailer(&t, pack_len, "fuzz") {
            prop_assert!(len <= MAX_HEADER_LEN);
            prop_assert!(len as u64 + TRAILER_LEN as u64 <= pack_len);
        }
    }
}

/// Key files, made fresh (no key is kept in the repository, even a
/// throwaway one).
fn key_seeds() -> Vec<Vec<u8>> {
    let rk = RestoreKey::generate();
    let backup = fixture().repo.key().to_file_text();
    vec![rk.to_file_bytes(None).to_vec(), backup.as_bytes().to_vec()]
}

/// Writes the plaintext seeds of `fuzz/corpus/` from a fresh repository:
/// `LIFEBOAT_WRITE_CORPUS=1 cargo test -p lifeboat-store --lib write_corpus`.
#[test]
fn write_corpus() {
    if std::env::var_os("LIFEBOAT_WRITE_CORPUS").is_none() {
        return;
    }
    let f = fixture();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), data).expect("write seed");
    };
    let backend = f.repo.backend();
    put(
        "config",
        "config.json",
        &backend.read(FileKind::Config, "config").expect("config"),
    );
    let (index, _) = f.repo.load_index().expect("index");
    for (i, file) in backend
        .list(FileKind::Index)
        .expect("list")
        .iter()
        .enumerate()
    {
        let plain = f
            .repo
            .read_meta_file(FileKind::Index, &file.name, MAX_INDEX_LEN)
            .expect("index");
        put("index", &format!("index-{i}.json"), &plain);
    }
    let (snaps, _) = f.repo.snapshots().expect("snapshots");
    for s in &snaps {
        put(
            "snapshot",
            "snapshot.json",
            &serde_json::to_vec(&s.snapshot).expect("json"),
        );
        let items = f.repo.manifest(&index, &s.snapshot).expect("manifest");
        let mut lines = Vec::new();
        for i in items {
            lines.extend(serde_json::to_vec(&i).expect("json"));
            lines.push(b'\n');
        }
        put("manifest", "manifest.jsonl", &lines);
    }
    let lock = crate::lock::LockInfo {
        hostname: "backup-host".into(),
        pid: 1234,
        time: chrono::Utc::now(),
        exclusive: false,
        nonce: 1_234_567_890,
        process: Some("5f3e9b1c-0000-4000-8000-000000000000:123456".into()),
    };
    put(
        "lock",
        "lock.json",
        &serde_json::to_vec(&lock).expect("json"),
    );
    let base = b"(1,'a')\n(2,'b')\n(3,'c')\n(4,'d')\n";
    let mut p = crate::delta::PatchBuilder::new();
    p.copy(0);
    p.literal(b"(2,'B')\n");
    p.copy(2);
    put("delta", "base.txt", base);
    put("delta", "patch.txt", &p.finish());
}

/// The seeds are valid: mutations start from inputs that parse, so they
/// reach past the first check of each parser.
#[test]
fn corpus_seeds_parse() {
    for raw in corpus("config") {
        parse_config(&raw).expect("config seed");
    }
    for raw in corpus("index") {
        serde_json::from_slice::<IndexFile>(&raw).expect("index seed");
    }
    for raw in corpus("snapshot") {
        serde_json::from_slice::<Snapshot>(&raw).expect("snapshot seed");
    }
    for raw in corpus("manifest") {
        for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<ManifestItem>(line).expect("manifest seed");
        }
    }
    for raw in corpus("lock") {
        serde_json::from_slice::<crate::lock::LockInfo>(&raw).expect("lock seed");
    }
    let delta = corpus("delta");
    crate::delta::apply(&delta[0], &delta[1], 1 << 16).expect("delta seed");
    let f = fixture();
    for p in &f.packs {
        let h = pack::parse_pack(p, &f.repo.key().metadata_identity, f.repo.auth(), "seed")
            .expect("pack seed");
        assert!(!h.legacy, "a new repository's packs are authenticated");
    }
    for k in key_seeds() {
        let text = String::from_utf8(k).expect("utf-8");
        assert!(
            crypto::RestoreKey::parse(&text, "seed").is_ok()
                || crypto::BackupKey::parse(&text, "seed").is_ok()
        );
    }
}
