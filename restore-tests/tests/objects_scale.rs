//! The objects source at scale, against the synthetic S3 server of the test
//! support (a bucket computed from object numbers, listed with real
//! paging): the object list is stored in parts in key order; an unchanged
//! night reads no object, writes no part and adds under 1% of the
//! manifest's size; a night after 1% changed reads only those; deleted
//! objects are counted; and the last snapshot restores byte-identical.
//! (Peak memory at a million objects is measured by `scripts/bench.sh
//! objects-scale`, not here.)

use lifeboat_testkit::synth_s3::SynthS3;
use lifeboat_testkit::Lifeboat;
use serde_json::Value;

const COUNT: u64 = 20_000;

fn backup(lb: &Lifeboat, cfg: &str) -> Value {
    backup_with(lb, cfg, &[])
}

/// `backup --json --source objects EXTRA...` with the backup key.
fn backup_with(lb: &Lifeboat, cfg: &str, extra: &[&str]) -> Value {
    let bk = lb.backup_key.display().to_string();
    let mut args = vec![
        "--config",
        cfg,
        "--backup-key-file",
        &bk,
        "--json",
        "backup",
        "--source",
        "objects",
    ];
    args.extend_from_slice(extra);
    lb.run(&args).ok().json()
}

/// `restore latest --source objects --to DIR` with the restore key.
fn restore_to(lb: &Lifeboat, cfg: &str, dir: &std::path::Path) {
    let rk = lb.restore_key.display().to_string();
    lb.run(&[
        "--config",
        cfg,
        "--restore-key-file",
        &rk,
        "restore",
        "latest",
        "--source",
        "objects",
        "--to",
        &dir.display().to_string(),
    ])
    .ok();
}

/// The newest snapshot's objects summary and its manifest's size.
fn newest(lb: &Lifeboat) -> (Value, u64) {
    let snaps = lb.snapshots();
    let s = snaps.last().expect("a snapshot");
    (
        s["sources"]["objects"].clone(),
        s["manifest_size"].as_u64().expect("manifest size"),
    )
}

#[test]
fn a_large_bucket_is_backed_up_in_parts_and_an_unchanged_night_adds_almost_nothing() {
    let synth = SynthS3::start("synthetic", COUNT, 10);
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("SYNTH_SECRET", "testing-secret");
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[objects]\nendpoint = \"{}\"\nregion = \"auto\"\nbucket = \"synthetic\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"${{SYNTH_SECRET}}\"\n",
            synth.endpoint
        ),
    )
    .expect("config");
    let cfg = cfg.display().to_string();

    // Night 1: everything is read; the list is cut into parts.
    backup(&lb, &cfg);
    let (first, _) = newest(&lb);
    assert_eq!(first["facts"]["objects"], COUNT);
    assert_eq!(first["facts"]["fetched"], COUNT);
    let parts = first["state_parts"].as_array().expect("parts").clone();
    assert!(
        (4..=40).contains(&parts.len()),
        "about one part per 2048 objects: {}",
        parts.len()
    );
    let (lists, gets, _) = synth.counts();
    assert_eq!(lists, COUNT.div_ceil(1000), "pages of 1000 keys");
    assert_eq!(gets, COUNT);

    // Night 2, nothing changed: no GET, every part reused, almost nothing added.
    let second = backup(&lb, &cfg);
    let (summary, manifest) = newest(&lb);
    assert_eq!(summary["facts"]["carried"], COUNT);
    assert_eq!(summary["facts"]["fetched"], 0);
    assert_eq!(summary["state_parts"], Value::Array(parts.clone()));
    assert_eq!(synth.counts().1, COUNT, "no GET");
    let added = second["stats"]["added_bytes"].as_u64().expect("added");
    assert!(
        added * 100 < manifest,
        "an unchanged night added {added} bytes, the manifest is {manifest}"
    );

    // Night 3, 1% changed: only those are read.
    synth.next_generation();
    let shape = synth.shape();
    let changed = (0..COUNT).filter(|i| shape.version(*i) == 1).count() as u64;
    assert!((100..=300).contains(&changed), "{changed}");
    backup(&lb, &cfg);
    let (summary, _) = newest(&lb);
    assert_eq!(summary["facts"]["fetched"], changed);
    assert_eq!(summary["facts"]["carried"], COUNT - changed);
    assert_eq!(synth.counts().1, COUNT + changed);

    // Night 4, 500 objects deleted (2.5%: under the alarm's 10%).
    synth.set_count(COUNT - 500);
    backup(&lb, &cfg);
    let (summary, _) = newest(&lb);
    assert_eq!(summary["facts"]["previous_objects"], COUNT);
    assert_eq!(summary["facts"]["deleted"], 500);
    assert_eq!(summary["facts"]["objects"], COUNT - 500);
    assert!(summary["facts"]["alarm"].is_null());

    // The newest snapshot restores byte-identical: every object, no other file.
    let dir = lb.path("restored");
    restore_to(&lb, &cfg, &dir);
    let shape = synth.shape();
    for i in 0..shape.count {
        let key = lifeboat_testkit::synth_s3::key(i);
        let got = std::fs::read(dir.join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(got == shape.body(i), "{key} differs");
    }
    let files = walk(&dir);
    assert_eq!(files, shape.count, "no other file");
    let rk = lb.restore_key.display().to_string();
    lb.run(&["verify", "--restore-key-file", &rk]).ok();
}

/// Files under `dir`, but for the metadata file a directory restore writes.
fn walk(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            n += walk(&e.path());
        } else if e.file_name() != ".lifeboat-objects.jsonl" {
            n += 1;
        }
    }
    n
}

/// As a compromised backup host (the backup key): rewrite the newest
/// snapshot's objects list with `edit(head, parts)`, store it as FORMAT.md
/// says (tagged, sealed to the metadata recipient) and put a snapshot
/// naming it in place of the newest one.
fn forge_list(lb: &Lifeboat, edit: impl FnOnce(&mut Value, &mut Vec<Value>)) {
    use lifeboat_testkit::forge::{self, Store};
    let store = Store::new(lb.repo_path());
    let (dedup, _) = forge::backup_key_secrets(&lb.backup_key);
    let key = forge::file_key(&dedup);
    let config = store.config();
    let meta = config["metadata_recipient"].as_str().expect("recipient");
    let snaps = store.open_all("snapshots", &lb.backup_key);
    let (snap_name, body) = snaps
        .iter()
        .max_by_key(|(_, b)| {
            serde_json::from_slice::<Value>(b).expect("snapshot")["time"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .expect("a snapshot");
    let mut snap: Value = serde_json::from_slice(body).expect("snapshot");
    let states: std::collections::HashMap<String, Value> = store
        .open_all("state", &lb.backup_key)
        .into_iter()
        .map(|(n, b)| (n, serde_json::from_slice(&b).expect("state")))
        .collect();
    let summary = &mut snap["sources"]["objects"];
    let mut head = states[summary["state"].as_str().expect("head")].clone();
    let mut parts: Vec<Value> = summary["state_parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|n| states[n.as_str().expect("name")].clone())
        .collect();
    edit(&mut head, &mut parts);
    let put = |label: &str, v: &Value| {
        let plain = forge::tagged(&key, label, &serde_json::to_vec(v).expect("json"));
        store.put(label, &forge::seal(meta, &plain))
    };
    let names: Vec<Value> = parts.iter().map(|p| Value::from(put("state", p))).collect();
    summary["state"] = Value::from(put("state", &head));
    summary["state_parts"] = Value::Array(names);
    put("snapshots", &snap);
    std::fs::remove_file(lb.repo_path().join("snapshots").join(snap_name)).expect("remove");
}

/// A repository and a directory `uploads/a` of `files` numbered files
/// (`file N`), configured as the objects source and backed up once.
fn numbered_files(files: u64) -> (Lifeboat, std::path::PathBuf, String) {
    let lb = Lifeboat::local();
    lb.init();
    let dir = lb.path("uploads");
    std::fs::create_dir_all(dir.join("a")).expect("mkdir");
    for i in 0..files {
        std::fs::write(dir.join(format!("a/f{i:05}.txt")), format!("file {i}\n")).expect("write");
    }
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(&cfg, format!("[objects]\npath = \"{}\"\n", dir.display())).expect("config");
    let cfg = cfg.display().to_string();
    backup(&lb, &cfg);
    (lb, dir, cfg)
}

/// A backup of `dir` into `lb`, then a restore of it compared file by file.
fn backup_and_compare(lb: &Lifeboat, cfg: &str, dir: &std::path::Path, files: u64) -> Value {
    backup(lb, cfg);
    restore_and_compare(lb, cfg, dir, files);
    newest(lb).0["facts"].clone()
}

/// The newest snapshot restored and compared with `dir` file by file.
fn restore_and_compare(lb: &Lifeboat, cfg: &str, dir: &std::path::Path, files: u64) {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let to = lb.path(&format!("restored-{run}"));
    restore_to(lb, cfg, &to);
    for i in 0..files {
        let name = format!("a/f{i:05}.txt");
        let want = std::fs::read(dir.join(&name)).expect("source");
        let got = std::fs::read(to.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(want == got, "{name} restored with other bytes");
    }
}

#[test]
fn a_forged_object_list_is_read_again_never_carried_into_a_wrong_or_broken_snapshot() {
    const FILES: u64 = 3000;
    let (lb, dir, cfg) = numbered_files(FILES);

    // An entry pointing at its info blob's salt line, and one with no blobs
    // for its bytes: both would make every later restore fail. They are
    // read again; everything else is carried.
    forge_list(&lb, |_, parts| {
        let objects = parts[0]["objects"].as_array_mut().expect("entries");
        objects[3]["info"]["line"] = Value::from(0);
        objects[4]["blobs"] = Value::Array(Vec::new());
    });
    let facts = backup_and_compare(&lb, &cfg, &dir, FILES);
    assert_eq!(facts["fetched"], 2, "{facts}");
    assert_eq!(facts["carried"], FILES - 2);

    // A part named many times (memory for each naming), or a head that
    // lies about the count: the list is not used, everything is read.
    forge_list(&lb, |_, parts| {
        let first = parts[0].clone();
        parts.extend(std::iter::repeat_n(first, 50));
    });
    let facts = backup_and_compare(&lb, &cfg, &dir, FILES);
    assert_eq!(facts["fetched"], FILES, "{facts}");
    forge_list(&lb, |head, _| head["count"] = Value::from(u64::MAX));
    let facts = backup_and_compare(&lb, &cfg, &dir, FILES);
    assert_eq!(facts["fetched"], FILES, "{facts}");

    // Entries out of order: objects are read again where the stream
    // passed them, but none is counted as deleted (no false alarm).
    forge_list(&lb, |_, parts| {
        parts.reverse();
        for p in parts.iter_mut() {
            p["objects"].as_array_mut().expect("entries").reverse();
        }
    });
    let facts = backup_and_compare(&lb, &cfg, &dir, FILES);
    assert_eq!(facts["deleted"], 0, "{facts}");
    assert!(facts["alarm"].is_null(), "{facts}");
    assert_eq!(facts["objects"], FILES);
}

#[test]
fn after_a_compromise_reread_objects_reads_every_object_and_undoes_a_swapped_list() {
    const FILES: u64 = 300;
    let (lb, dir, cfg) = numbered_files(FILES);

    // A compromised host swaps what two entries of one size point at
    // (files 10 and 11: eight bytes each; entries are in key order).
    forge_list(&lb, |_, parts| {
        let objects = parts[0]["objects"].as_array_mut().expect("entries");
        assert!(
            objects.len() > 11,
            "a first part of {} entries",
            objects.len()
        );
        assert_eq!(objects[10]["size"], objects[11]["size"]);
        for field in ["blobs", "info"] {
            let a = objects[10][field].take();
            let b = std::mem::replace(&mut objects[11][field], a);
            objects[10][field] = b;
        }
    });
    // The known limit: an honest night carries the swap (each entry still
    // names whole blobs of its size), and the restore has file 11's bytes
    // under file 10's name.
    backup(&lb, &cfg);
    let facts = &newest(&lb).0["facts"];
    assert_eq!(facts["fetched"], 0, "{facts}");
    let to = lb.path("swapped");
    restore_to(&lb, &cfg, &to);
    assert_eq!(
        std::fs::read(to.join("a/f00010.txt")).expect("restored"),
        b"file 11\n"
    );
    // The remedy: a night that reads every object again, carrying nothing;
    // the list is still used to count deletions (none).
    backup_with(&lb, &cfg, &["--reread-objects"]);
    let facts = &newest(&lb).0["facts"];
    assert_eq!(facts["fetched"], FILES, "{facts}");
    assert_eq!(facts["carried"], 0, "{facts}");
    restore_and_compare(&lb, &cfg, &dir, FILES);
    // And the nights after carry the right entries again.
    let facts = backup_and_compare(&lb, &cfg, &dir, FILES);
    assert_eq!(facts["carried"], FILES, "{facts}");
}
