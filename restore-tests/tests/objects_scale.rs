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
    let bk = lb.backup_key.display().to_string();
    lb.run(&[
        "--config",
        cfg,
        "--backup-key-file",
        &bk,
        "--json",
        "backup",
        "--source",
        "objects",
    ])
    .ok()
    .json()
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
    let rk = lb.restore_key.display().to_string();
    let dir = lb.path("restored");
    lb.run(&[
        "--config",
        &cfg,
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
    let shape = synth.shape();
    for i in 0..shape.count {
        let key = lifeboat_testkit::synth_s3::key(i);
        let got = std::fs::read(dir.join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(got == shape.body(i), "{key} differs");
    }
    let files = walk(&dir);
    assert_eq!(files, shape.count, "no other file");
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
