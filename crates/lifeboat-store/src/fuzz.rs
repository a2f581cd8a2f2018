//! The quick, in-suite version of the fuzz targets: proptest feeds each
//! entry point of [`crate::fuzzing`] arbitrary bytes and mutations (bit
//! flips, cut ends, spliced bytes, numbers swapped for huge ones) of the
//! seeds in `fuzz/corpus/` at the root of the repository. The same entry
//! points run coverage-guided under libFuzzer (`fuzz/`, `scripts/fuzz.sh`).
//! A parser must return, never panic, and never allocate by a length
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
use crate::fuzzing;
use crate::index::{IndexFile, MAX_INDEX_LEN};
use crate::pack;
use crate::repository::{parse_config, InitOptions, Repository};
use crate::snapshot::{ManifestItem, Snapshot};

#[path = "../../../fuzz/mutate.rs"]
mod mutate;
use mutate::{config, corpus, inputs};

/// A repository with one snapshot, and the packs it stored.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repository<crate::repository::FullAccess>,
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
        let packs = read_all(FileKind::Pack);
        Fixture {
            _dir: dir,
            repo,
            packs,
        }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_config(raw in inputs(corpus("config"))) {
        fuzzing::config(&raw);
    }

    #[test]
    fn fuzz_index(raw in inputs(corpus("index"))) {
        fuzzing::index_file(&raw);
    }

    #[test]
    fn fuzz_snapshot(raw in inputs(corpus("snapshot"))) {
        fuzzing::snapshot(&raw);
    }

    #[test]
    fn fuzz_manifest(raw in inputs(corpus("manifest"))) {
        fuzzing::manifest(&raw);
    }

    #[test]
    fn fuzz_lock(raw in inputs(corpus("lock"))) {
        fuzzing::lock(&raw);
    }

    #[test]
    fn fuzz_key_files(raw in inputs(key_seeds())) {
        fuzzing::key_file(&raw);
    }

    #[test]
    fn fuzz_delta(raw in inputs(corpus("delta"))) {
        fuzzing::delta(&raw);
    }

    #[test]
    fn fuzz_sealed_metadata(raw in inputs(corpus("sealed"))) {
        fuzzing::sealed(&raw);
    }

    #[test]
    fn fuzz_pack(raw in inputs(corpus("pack"))) {
        fuzzing::pack(&raw);
    }

    #[test]
    fn fuzz_pack_trailer(raw in proptest::collection::vec(any::<u8>(), 0..20)) {
        fuzzing::pack_trailer(&raw);
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
        for i in &items {
            lines.extend(serde_json::to_vec(i).expect("json"));
            lines.push(b'\n');
            // A carried item: its details in an info line (format 3).
            let carried = ManifestItem {
                name: format!("{}.carried", i.name),
                sha256: String::new(),
                meta: serde_json::Value::Null,
                info: Some(crate::InfoRef {
                    blob: i.blobs[0],
                    line: 1,
                }),
                ..i.clone()
            };
            lines.extend(serde_json::to_vec(&carried).expect("json"));
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
        holder: Some("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
        released: false,
        secret: None,
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
    let patch = p.finish();
    put("delta", "base.txt", base);
    put("delta", "patch.txt", &patch);
    put(
        "delta",
        "base-ff-patch.bin",
        &[&base[..], &[0xff], &patch].concat(),
    );
    // Sealed seeds, to the fixed fuzzing keys (crate::fuzzing).
    let snapshot = serde_json::to_vec(&snaps[0].snapshot).expect("json");
    put(
        "sealed",
        "snapshot.age",
        &fuzzing::seal_seed("snapshots", &snapshot),
    );
    put(
        "sealed",
        "lock.age",
        &fuzzing::seal_seed("locks", &serde_json::to_vec(&lock).expect("json")),
    );
    put(
        "pack",
        "pack.bin",
        &fuzzing::seal_seed("pack", b"(1,'a')\n(2,'b')\n"),
    );
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
    let combined = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/delta/base-ff-patch.bin"),
    )
    .expect("delta seed");
    let i = combined.iter().position(|b| *b == 0xff).expect("a 0xff");
    crate::delta::apply(&combined[..i], &combined[i + 1..], 1 << 16).expect("delta seed");
    for raw in corpus("sealed") {
        fuzzing::open_seed(&raw).expect("sealed seed");
    }
    for raw in corpus("pack") {
        let h = fuzzing::parse_pack_seed(&raw).expect("pack seed");
        assert!(!h, "a seed pack is authenticated");
    }
    let f = fixture();
    for p in &f.packs {
        let h = pack::parse_pack(p, &f.repo.key().metadata_identity, f.repo.auth(), "seed")
            .expect("pack of a repository");
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
