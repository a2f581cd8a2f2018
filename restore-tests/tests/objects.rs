//! The objects source against a real S3 server process (moto), through a
//! proxy that counts requests and injects faults: a bucket mirrors,
//! carries unchanged objects over without GETs, restores byte-identical
//! with metadata into a second bucket and a directory; mass deletions raise
//! the alarm; a listing that fails part-way commits nothing.

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_testkit::bucket::{self, ObjectSpec, S3Client};
use lifeboat_testkit::proxy::Proxy;
use lifeboat_testkit::{sha256_file, Lifeboat, S3Server};

fn bucket_name(tag: &str) -> String {
    format!("lb-{tag}-{}", std::process::id())
}

/// A local repository whose config's [objects] section points at `bucket`
/// through `proxy`; the secret comes by ${ENV} reference.
fn repo_for(proxy: &Proxy, bucket: &str) -> (Lifeboat, String) {
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_R2_SECRET", "testing-secret");
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[objects]\nendpoint = \"{}\"\nregion = \"auto\"\nbucket = \"{bucket}\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"${{TEST_R2_SECRET}}\"\n",
            proxy.endpoint
        ),
    )
    .expect("write config");
    (lb, cfg.display().to_string())
}

fn backup(lb: &Lifeboat, cfg: &str) -> lifeboat_testkit::Output {
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
}

fn restore(lb: &Lifeboat, cfg: &str, extra: &[&str]) -> lifeboat_testkit::Output {
    let rk = lb.restore_key.display().to_string();
    let mut args = vec![
        "--config",
        cfg,
        "--restore-key-file",
        &rk,
        "restore",
        "latest",
        "--source",
        "objects",
    ];
    args.extend_from_slice(extra);
    lb.run(&args)
}

fn objects_facts(lb: &Lifeboat) -> serde_json::Value {
    let snaps = lb.snapshots();
    snaps.last().expect("a snapshot")["sources"]["objects"]["facts"].clone()
}

/// GETs a backup needs for these objects (one per 8 MiB range, at least one).
fn gets_for(objects: &[&ObjectSpec]) -> usize {
    objects
        .iter()
        .map(|o| (o.size.div_ceil(8 << 20)).max(1) as usize)
        .sum()
}

#[test]
fn a_bucket_mirrors_incrementally_and_restores_byte_identical_with_metadata() {
    let server = S3Server::start();
    let s3 = S3Client::new(&server.endpoint);
    let proxy = Proxy::start(&server.endpoint);
    let src = bucket_name("objsrc");
    server.create_bucket(&src);
    let mut objects = bucket::generate(5000, 7, 50 << 20);
    s3.put_all(&src, &objects);
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let (lb, cfg) = repo_for(&proxy, &src);

    // First run: every object is read.
    let first = backup(&lb, &cfg).ok().json();
    assert_eq!(
        proxy.object_gets(),
        gets_for(&objects.iter().collect::<Vec<_>>())
    );
    let facts = objects_facts(&lb);
    assert_eq!(facts["objects"], 5000);
    assert_eq!(facts["bytes"], total);
    assert_eq!(facts["fetched"], 5000);

    // Change 1% of the objects (new content, same keys), then back up again:
    // only those are downloaded, and only their bytes are added.
    let mut changed = Vec::new();
    for (i, o) in objects.iter_mut().enumerate() {
        if i % 100 == 42 {
            o.seed ^= 0xDEAD_BEEF;
            o.size = o.size / 2 + 1000;
            changed.push(o.clone());
        }
    }
    s3.put_all(&src, &changed);
    proxy.reset();
    let second = backup(&lb, &cfg).ok().json();
    let changed_refs: Vec<&ObjectSpec> = changed.iter().collect();
    assert_eq!(
        proxy.object_gets(),
        gets_for(&changed_refs),
        "the second run must GET only the changed objects"
    );
    let facts = objects_facts(&lb);
    assert_eq!(facts["fetched"], changed.len());
    assert_eq!(facts["carried"], 5000 - changed.len());
    let changed_bytes: u64 = changed.iter().map(|o| o.size).sum();
    let first_added = first["stats"]["added_bytes"].as_u64().unwrap();
    let second_added = second["stats"]["added_bytes"].as_u64().unwrap();
    let second_new = second["stats"]["new_plain_bytes"].as_u64().unwrap();
    // New plaintext: the changed objects plus the re-chunked parts of the
    // manifest (about 300 bytes an object); nothing else.
    assert!(
        second_new <= changed_bytes + 2 * 1024 * 1024,
        "second run stored {second_new} new bytes for {changed_bytes} changed"
    );
    assert!(
        second_added * 20 < first_added,
        "second run added {second_added} bytes, first {first_added}"
    );

    // The state the backup key reads (for carrying objects over) holds no
    // object's SHA-256, headers or user metadata: those are sealed to the
    // data recipient in info blobs (format 3), and carried items refer to
    // them unread.
    let store = lifeboat_testkit::forge::Store::new(lb.repo_path());
    let states = store.open_all("state", &lb.backup_key);
    // A head per snapshot (location and count) and the entries in parts,
    // 5000 entries being about three parts of 2048 on average.
    let heads = states
        .iter()
        .filter(|(_, b)| {
            serde_json::from_slice::<serde_json::Value>(b).expect("json")["count"] == 5000
        })
        .count();
    assert_eq!(heads, 2, "a head per snapshot");
    for (name, body) in states
        .iter()
        .filter(|(_, b)| !b.starts_with(b"{\"version\":3"))
    {
        let text = String::from_utf8_lossy(body);
        for secret in [
            "dr-ana",
            "patient-id",
            "sha256",
            "application/pdf",
            &objects[0].sha256(),
        ] {
            assert!(!text.contains(secret), "state {name} holds {secret:?}");
        }
        assert!(text.contains("\"info\":{\"blob\""), "{name}: {text:.300}");
    }

    // Restore into a second bucket: every object byte-identical, with its
    // content type and user metadata.
    let dst = bucket_name("objdst");
    server.create_bucket(&dst);
    restore(&lb, &cfg, &["--target", &format!("s3://{dst}")]).ok();
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    assert_eq!(s3.list(&dst).len(), objects.len());
    let got = s3.describe_all(&dst, &keys);
    for (o, (sha, ct, meta)) in objects.iter().zip(got) {
        assert_eq!(sha, o.sha256(), "{}", o.key);
        assert_eq!(ct.as_deref(), Some(o.content_type.as_str()), "{}", o.key);
        assert_eq!(meta, o.metadata, "{}", o.key);
    }
    // The source bucket is refused without --allow-source; a non-empty
    // target without --force.
    let out = restore(&lb, &cfg, &["--target", &format!("s3://{src}")]).code(2);
    assert!(out.stderr.contains("--allow-source"), "{}", out.stderr);
    let out = restore(&lb, &cfg, &["--target", &format!("s3://{dst}")]).code(2);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);

    // Restore into a directory, and a single key.
    let dir = lb.path("restored");
    restore(&lb, &cfg, &["--to", &dir.display().to_string()]).ok();
    for o in &objects {
        assert_eq!(sha256_file(&dir.join(&o.key)), o.sha256(), "{}", o.key);
    }
    let meta_lines = std::fs::read_to_string(dir.join(".lifeboat-objects.jsonl")).unwrap();
    let by_key: BTreeMap<String, serde_json::Value> = meta_lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| (v["key"].as_str().unwrap().to_string(), v))
        .collect();
    let o = &objects[3];
    assert_eq!(by_key[&o.key]["meta"]["content_type"], o.content_type);
    assert_eq!(
        by_key[&o.key]["meta"]["metadata"]["patient-id"],
        o.metadata["patient-id"]
    );

    let one = lb.path("one");
    let key = &objects[6].key; // a key with unicode and spaces
    restore(
        &lb,
        &cfg,
        &["--to", &one.display().to_string(), "--key", key],
    )
    .ok();
    assert_eq!(sha256_file(&one.join(key)), objects[6].sha256());
    assert_eq!(
        lifeboat_testkit::files_under(&one).len(),
        2,
        "the object and the metadata file"
    );

    // A third run carries everything from the second one's state (whose
    // info lines are in both earlier runs' info blobs). Then the first
    // snapshot is forgotten and pruned: the info blobs its carried items
    // still need stay, and every object restores with its metadata.
    proxy.reset();
    backup(&lb, &cfg).ok();
    assert_eq!(objects_facts(&lb)["carried"], 5000);
    assert_eq!(proxy.object_gets(), 0);
    let rk = lb.restore_key.display().to_string();
    let first_id = first["id"].as_str().expect("snapshot id").to_string();
    lb.run(&["forget", "--restore-key-file", &rk, &first_id])
        .ok();
    lb.run(&["prune", "--restore-key-file", &rk]).ok();
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk])
        .ok();
    let dst2 = bucket_name("objdst2");
    server.create_bucket(&dst2);
    restore(&lb, &cfg, &["--target", &format!("s3://{dst2}")]).ok();
    let got = s3.describe_all(&dst2, &keys);
    for (o, (sha, ct, meta)) in objects.iter().zip(got) {
        assert_eq!(sha, o.sha256(), "{}", o.key);
        assert_eq!(ct.as_deref(), Some(o.content_type.as_str()), "{}", o.key);
        assert_eq!(meta, o.metadata, "{}", o.key);
    }
}

#[test]
fn mass_deletion_raises_the_alarm_and_a_failed_listing_commits_nothing() {
    let server = S3Server::start();
    let s3 = S3Client::new(&server.endpoint);
    let proxy = Proxy::start(&server.endpoint);
    let src = bucket_name("objalarm");
    server.create_bucket(&src);
    // More than one listing page (1000 keys a page).
    let objects = bucket::generate(1200, 11, 64 << 10);
    s3.put_all(&src, &objects);
    let (lb, cfg) = repo_for(&proxy, &src);
    backup(&lb, &cfg).ok();

    // A listing whose second page fails (every retry): exit 3, no snapshot.
    proxy.set_fault(|r| r.query.contains("continuation-token").then_some(500));
    let out = backup(&lb, &cfg).code(3);
    assert!(out.stderr.contains("listing"), "{}", out.stderr);
    assert_eq!(lb.snapshots().len(), 1, "a failed listing must not commit");
    proxy.clear_fault();

    // 30% deleted: the snapshot is stored, the exit status says look.
    let gone: Vec<String> = objects.iter().step_by(3).map(|o| o.key.clone()).collect();
    s3.delete(&src, &gone);
    let out = backup(&lb, &cfg).code(8);
    assert!(
        out.stderr.contains("WARNING") && out.stderr.contains("400 of the 1200"),
        "{}",
        out.stderr
    );
    assert_eq!(lb.snapshots().len(), 2);
    let facts = objects_facts(&lb);
    assert_eq!(facts["objects"], 800);
    assert_eq!(facts["deleted"], 400);
    assert!(facts["alarm"].is_string());
    // The same bucket again: nothing more gone, no alarm, nothing read.
    proxy.reset();
    backup(&lb, &cfg).ok();
    assert_eq!(proxy.object_gets(), 0);
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

#[test]
fn an_upload_directory_backs_up_incrementally_and_restores_with_times_and_modes() {
    let lb = Lifeboat::local();
    lb.init();
    let up = lb.path("uploads");
    let specs = bucket::generate(200, 5, 3 << 20);
    for o in &specs {
        write(&up.join(&o.key), &o.bytes());
    }
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(&cfg, format!("[objects]\npath = \"{}\"\n", up.display())).unwrap();
    let cfg = cfg.display().to_string();
    backup(&lb, &cfg).ok();
    assert_eq!(objects_facts(&lb)["fetched"], 200);

    // One file changes, one is added: only those two are read.
    write(&up.join(&specs[10].key), b"changed");
    write(&up.join("new/late upload.pdf"), b"late");
    backup(&lb, &cfg).ok();
    let facts = objects_facts(&lb);
    assert_eq!(facts["fetched"], 2);
    assert_eq!(facts["carried"], 199);

    let dir = lb.path("restored");
    restore(&lb, &cfg, &["--to", &dir.display().to_string()]).ok();
    for o in specs.iter().skip(11) {
        let (a, b) = (up.join(&o.key), dir.join(&o.key));
        assert_eq!(sha256_file(&a), sha256_file(&b), "{}", o.key);
        let (ma, mb) = (
            std::fs::metadata(&a).unwrap(),
            std::fs::metadata(&b).unwrap(),
        );
        assert_eq!(ma.modified().unwrap(), mb.modified().unwrap(), "{}", o.key);
        assert_eq!(ma.permissions(), mb.permissions(), "{}", o.key);
    }
    assert_eq!(std::fs::read(dir.join(&specs[10].key)).unwrap(), b"changed");
    assert_eq!(
        std::fs::read(dir.join("new/late upload.pdf")).unwrap(),
        b"late"
    );
}
