//! Attacks on the store itself, through the real binary, with files forged
//! from docs/FORMAT.md by lifeboat_testkit::forge holding only the secrets
//! each attacker has (ARCHITECTURE.md, "Threat model"):
//! - a storage-only attacker: the store's credentials, no key;
//! - a compromised backup host: the backup key and write access.
//!
//! Each attack must be refused with a clear error and exit 4 (damaged or
//! forged data) or 5 (key), no forged byte may come out, and what was
//! stored before stays readable.

use lifeboat_testkit::forge::{self, Store};
use lifeboat_testkit::Lifeboat;

const EXIT_DAMAGED: i32 = 4;

const SECRET: &str = "patient 42: allergic to penicillin\n";
const FORGED: &str = "DROP DATABASE clinic;\n";

/// A repository with two honest snapshots of one stream item.
fn honest() -> Lifeboat {
    let lb = Lifeboat::local();
    lb.init();
    let src = lb.path("notes.txt");
    std::fs::write(&src, SECRET.repeat(100)).expect("write");
    for tag in ["one", "two"] {
        lb.backup_command(
            &format!("cat '{}'", src.display()),
            "clinic.sql",
            &["--tag", tag],
        )
        .ok();
    }
    lb
}

fn rk(lb: &Lifeboat) -> String {
    lb.restore_key.display().to_string()
}

/// What an honest restore of the newest snapshot gives.
fn assert_still_restores(lb: &Lifeboat) {
    let out = lb.path("check.sql");
    let _ = std::fs::remove_file(&out);
    lb.restore_item("latest", "clinic.sql", &out).ok();
    assert_eq!(
        std::fs::read_to_string(&out).expect("restored"),
        SECRET.repeat(100)
    );
}

fn restore_to_stdout(lb: &Lifeboat) -> lifeboat_testkit::Output {
    lb.run(&[
        "restore",
        "--restore-key-file",
        &rk(lb),
        "latest",
        "--item",
        "clinic.sql",
        "--to",
        "-",
    ])
}

/// A snapshot as FORMAT.md describes it, naming no data (empty manifest).
fn empty_snapshot(time: &str) -> Vec<u8> {
    let empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    serde_json::to_vec(&serde_json::json!({
        "version": 1, "time": time, "hostname": "attacker", "tags": ["nightly"],
        "sources": {}, "manifest": {"blobs": [], "size": 0, "sha256": empty_sha},
        "stats": {"items": 0, "bytes": 0, "blobs": 0, "new_blobs": 0, "new_plain_bytes": 0,
                  "added_bytes": 0, "duration_ms": 1},
        "program": "lifeboat 0.1.0"
    }))
    .expect("json")
}

#[test]
fn storage_only_a_planted_keyring_and_re_signed_config_are_refused() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let honest_config = store.config();
    let recipient = honest_config["keys"][0]["recipient"]
        .as_str()
        .expect("recipient")
        .to_string();
    // The attacker's own repository secrets, a keyring sealed to the
    // owner's (public) restore key, a config signed by the attacker's key.
    let (meta_id, meta_r) = forge::keygen();
    let (data_id, data_r) = forge::keygen();
    let seed = [7u8; 32];
    let keyring = serde_json::to_vec(&serde_json::json!({
        "version": 2, "repository": honest_config["id"],
        "dedup_secret": hex::encode([9u8; 32]), "metadata_identity": meta_id,
        "data_identities": [data_id], "config_signing_key": hex::encode(seed),
    }))
    .expect("json");
    // It cannot compute the keyring tag (that needs the restore key): any
    // key it picks is wrong.
    let plain = forge::tagged(&[1u8; 32], "keys", &keyring);
    let name = store.put("keys", &forge::seal(&recipient, &plain));
    let mut config = honest_config.clone();
    config["keys"][0]["file"] = name.clone().into();
    config["data_recipient"] = data_r.into();
    config["metadata_recipient"] = meta_r.into();
    let (_, signed) = forge::sign_config(seed, config);
    store.write_config(&signed);

    let out = restore_to_stdout(&lb).code(EXIT_DAMAGED);
    assert!(
        out.stderr.contains("not authenticated by your restore key"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains(FORGED) && out.stdout.is_empty());
    let out = lb
        .run(&["verify", "--read-data", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    assert!(
        out.stderr.contains(&format!("keys/{name}")),
        "{}",
        out.stderr
    );

    // The honest backup host refuses the substituted config too: it would
    // otherwise seal tonight's data to the attacker.
    let out = lb
        .backup_command("echo tonight", "clinic.sql", &[])
        .code(EXIT_DAMAGED);
    assert!(out.stderr.contains("config"), "{}", out.stderr);
    assert_eq!(store.files("snapshots").len(), 2, "no snapshot was added");

    // Put back, everything is as it was.
    store.write_config(&honest_config);
    assert_still_restores(&lb);
}

#[test]
fn storage_only_forged_and_foreign_snapshots_are_not_listed_and_forget_ignores_them() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let config = store.config();
    let meta_r = config["metadata_recipient"].as_str().expect("recipient");
    // Untagged (format 1 style), and tagged with a key of its own choosing.
    let newer = "2099-01-01T00:00:00Z";
    store.put("snapshots", &forge::seal(meta_r, &empty_snapshot(newer)));
    let plain = forge::tagged(&[3u8; 32], "snapshots", &empty_snapshot(newer));
    store.put("snapshots", &forge::seal(meta_r, &plain));
    // An authentic snapshot file of another repository, copied over.
    let other = honest();
    let foreign = Store::new(other.repo_path());
    let name = foreign.files("snapshots")[0].clone();
    store.put("snapshots", &foreign.read("snapshots", &name));

    // Listed: the honest ones; the three others named as not authentic.
    let out = lb
        .run(&[
            "snapshots",
            "--json",
            "--backup-key-file",
            &lb.backup_key.display().to_string(),
        ])
        .code(EXIT_DAMAGED);
    let snaps = out.json().as_array().cloned().expect("list");
    assert_eq!(snaps.len(), 2, "only the honest snapshots: {snaps:?}");
    assert!(snaps.iter().all(|s| s["hostname"] != "attacker"));
    assert_eq!(
        out.stderr.matches("unreadable snapshot file").count(),
        3,
        "{}",
        out.stderr
    );
    let out = lb
        .run(&["verify", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    assert!(
        out.stdout.contains("not authenticated") || out.stderr.contains("not authenticated"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // forget keeps the two newest *authentic* snapshots: both honest ones.
    lb.run(&["forget", "--keep-last", "2", "--restore-key-file", &rk(&lb)]);
    let left: Vec<String> = store.files("snapshots");
    for s in &snaps {
        assert!(left.contains(&s["id"].as_str().expect("id").to_string()));
    }
    assert_still_restores(&lb);
}

#[test]
fn backup_host_cannot_redirect_later_backups_nor_downgrade_the_config() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let honest_config = store.config();
    let (dedup, _meta) = forge::backup_key_secrets(&lb.backup_key);

    // 1. Its own data recipient in the config (it cannot sign; it keeps
    // the old signature).
    let (_, attacker_r) = forge::keygen();
    let mut c = honest_config.clone();
    c["data_recipient"] = attacker_r.clone().into();
    store.write_config(&c);
    let out = lb
        .backup_command("echo tonight", "x", &[])
        .code(EXIT_DAMAGED);
    assert!(out.stderr.contains("signature"), "{}", out.stderr);

    // 2. A format-1 config with a MAC it can compute (format 1's MAC key
    // comes from the dedup secret): a downgrade, refused by both keys.
    let v1 = forge::format1_config(
        &honest_config,
        &attacker_r,
        honest_config["metadata_recipient"]
            .as_str()
            .expect("recipient"),
        honest_config["keys"].clone(),
        &hex::decode(&dedup).expect("hex"),
    );
    store.write_config(&v1);
    let out = lb
        .backup_command("echo tonight", "x", &[])
        .code(EXIT_DAMAGED);
    assert!(out.stderr.contains("downgrade"), "{}", out.stderr);
    // The restore key refuses format 1 unless told to trust the store.
    let out = restore_to_stdout(&lb).code(EXIT_DAMAGED);
    assert!(out.stderr.contains("not authenticated"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(store.files("snapshots").len(), 2, "nothing was sealed");

    store.write_config(&honest_config);
    lb.backup_command("echo tonight", "tonight.txt", &[]).ok();
    assert_still_restores_item(&lb, "tonight.txt", "tonight\n");
}

fn assert_still_restores_item(lb: &Lifeboat, item: &str, want: &str) {
    let out = lb.path("item.out");
    lb.restore_item("latest", item, &out).ok();
    assert_eq!(std::fs::read_to_string(&out).expect("restored"), want);
}

#[test]
fn a_lock_dated_in_the_future_does_not_block_prune() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let (dedup, _) = forge::backup_key_secrets(&lb.backup_key);
    let meta_r = store.config()["metadata_recipient"]
        .as_str()
        .expect("recipient")
        .to_string();
    // A backup host can write a valid lock; dated a century ahead it
    // would block every prune for good.
    let lock = serde_json::to_vec(&serde_json::json!({
        "hostname": "elsewhere", "pid": 1, "time": "2126-01-01T00:00:00Z",
        "exclusive": true, "nonce": 1
    }))
    .expect("json");
    let plain = forge::tagged(&forge::file_key(&dedup), "locks", &lock);
    store.put("locks", &forge::seal(&meta_r, &plain));
    lb.run(&["prune", "--restore-key-file", &rk(&lb)]).ok();
    assert_still_restores(&lb);
}

#[test]
fn storage_only_a_forged_format_1_store_is_refused_without_explicit_trust() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let honest_config = store.config();
    let recipient = honest_config["keys"][0]["recipient"]
        .as_str()
        .expect("recipient")
        .to_string();
    // A whole format-1 repository of the attacker's, keyed to the owner's
    // public restore key: format 1 authenticates nothing, so its MAC and
    // keyring are the attacker's own.
    let dedup = [5u8; 32];
    let (meta_id, meta_r) = forge::keygen();
    let (data_id, data_r) = forge::keygen();
    let keyring = serde_json::to_vec(&serde_json::json!({
        "version": 1, "repository": honest_config["id"], "dedup_secret": hex::encode(dedup),
        "metadata_identity": meta_id, "data_identities": [data_id],
    }))
    .expect("json");
    let name = store.put("keys", &forge::seal(&recipient, &keyring));
    let mut keys = honest_config["keys"].clone();
    keys[0]["file"] = name.into();
    let v1 = forge::format1_config(&honest_config, &data_r, &meta_r, keys, &dedup);
    store.write_config(&v1);
    // It is a valid format-1 repository: told to trust it, the restore
    // key opens it (so the refusal below is the format, not a bad MAC).
    let out = lb
        .run(&[
            "key",
            "list",
            "--trust-unauthenticated",
            "--restore-key-file",
            &rk(&lb),
        ])
        .ok();
    assert!(out.stdout.contains("format 1"), "{}", out.stdout);

    // Refused by the restore key: it would read the attacker's snapshots.
    let out = restore_to_stdout(&lb).code(EXIT_DAMAGED);
    assert!(out.stderr.contains("not authenticated"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    lb.run(&["verify", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    // ... and `upgrade` (which would sign the attacker's keys) too.
    let out = lb
        .run(&["upgrade", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    assert!(
        out.stderr.contains("--trust-unauthenticated"),
        "{}",
        out.stderr
    );
    // The honest backup host refuses it as a downgrade: nothing sealed to it.
    let out = lb
        .backup_command("echo tonight", "x", &[])
        .code(EXIT_DAMAGED);
    assert!(out.stderr.contains("downgrade"), "{}", out.stderr);
    assert_eq!(store.files("snapshots").len(), 2);
    store.write_config(&honest_config);
    assert_still_restores(&lb);
}

/// Forget every snapshot and prune: the store keeps no data.
fn forget_all_and_prune(lb: &Lifeboat, store: &Store) {
    let ids = store.files("snapshots");
    let mut args = vec!["forget", "--restore-key-file"];
    let key = rk(lb);
    args.push(&key);
    args.extend(ids.iter().map(String::as_str));
    lb.run(&args).ok();
    lb.run(&["prune", "--restore-key-file", &rk(lb)]).ok();
    assert!(pack_names(store).is_empty(), "prune removed every pack");
}

fn pack_names(store: &Store) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for d in store.files("data") {
        for n in store.files(&format!("data/{d}")) {
            v.push((d.clone(), n));
        }
    }
    v
}

/// Back up the honest item again and check it restores: the backup must
/// have stored its data, not trusted a forged claim that it is stored.
fn backup_again_restores(lb: &Lifeboat) {
    lb.backup_command(
        &format!("cat '{}'", lb.path("notes.txt").display()),
        "clinic.sql",
        &["--tag", "tonight"],
    )
    .ok();
    assert_still_restores(lb);
}

#[test]
fn storage_only_replayed_index_files_make_no_backup_skip_its_data() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let old: Vec<(String, Vec<u8>)> = store
        .files("index")
        .into_iter()
        .map(|n| {
            let b = store.read("index", &n);
            (n, b)
        })
        .collect();
    forget_all_and_prune(&lb, &store);
    // Put back the index files of before the prune: authentic, but they
    // name packs that are gone.
    for (name, bytes) in &old {
        std::fs::write(lb.repo_path().join("index").join(name), bytes).expect("replay");
    }
    backup_again_restores(&lb);
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk(&lb)])
        .ok();
}

#[test]
fn storage_only_a_pack_header_moved_onto_other_bytes_is_not_indexed() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let (dir, name) = pack_names(&store).remove(0);
    let pack = store.read(&format!("data/{dir}"), &name);
    forget_all_and_prune(&lb, &store);
    // The authentic header (with its length and magic) after random bytes
    // of the same length as the blobs it describes, under a valid name.
    let n = pack.len();
    let hlen = u32::from_le_bytes(pack[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let mut forged: Vec<u8> = (0..n - 8 - hlen).map(|i| (i * 7 + 3) as u8).collect();
    forged.extend_from_slice(&pack[n - 8 - hlen..]);
    let forged_name = store.put("data", &forged);
    backup_again_restores(&lb);
    // verify names the forged pack; the real data verifies.
    let out = lb
        .run(&["verify", "--read-data", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    assert!(
        out.stdout.contains(&forged_name) && out.stdout.contains("moved onto another pack"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 problem(s)"), "{}", out.stdout);
}

#[test]
fn backup_host_a_snapshot_dated_in_the_future_is_not_latest_nor_counted_by_forget() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    let (dedup, meta_id) = forge::backup_key_secrets(&lb.backup_key);
    let meta_r = store.config()["metadata_recipient"]
        .as_str()
        .expect("recipient")
        .to_string();
    // A copy of a real snapshot (the backup host can read and write them),
    // dated 2099, with another item's worth of nothing: a valid tag.
    let name = store.files("snapshots")[0].clone();
    let plain = forge::open(&meta_id, &store.read("snapshots", &name));
    let mut snap: serde_json::Value = serde_json::from_slice(&plain[65..]).expect("snapshot json");
    snap["time"] = "2099-01-01T00:00:00Z".into();
    snap["hostname"] = "attacker".into();
    let body = serde_json::to_vec(&snap).expect("json");
    let forged = store.put(
        "snapshots",
        &forge::seal(
            &meta_r,
            &forge::tagged(&forge::file_key(&dedup), "snapshots", &body),
        ),
    );
    // `latest` is still the honest newest, with a warning naming the other.
    let out = restore_to_stdout(&lb).ok();
    assert_eq!(out.stdout, SECRET.repeat(100));
    assert!(out.stderr.contains("in the future"), "{}", out.stderr);
    // forget keeps the real newest (keep-last counts only the present) and
    // the future-dated one, for someone to look at.
    let honest_ids = store.files("snapshots");
    lb.run(&["forget", "--keep-last", "1", "--restore-key-file", &rk(&lb)])
        .ok();
    let left = store.files("snapshots");
    assert_eq!(left.len(), 2, "{left:?} of {honest_ids:?}");
    assert!(left.contains(&forged));
    assert_still_restores(&lb);
}

#[test]
fn backup_host_a_manifest_line_lying_about_its_item_fails_verify_and_the_drill() {
    use lifeboat_store::{BackupOptions, ManifestItem, NoProgress};
    let lb = honest();
    // The backup host writes a real item, then a snapshot whose manifest
    // line for it names the same blobs with another size and SHA-256.
    let repo = backup_host_repo(&lb);
    let mut s = repo
        .begin_backup(BackupOptions::default())
        .expect("session");
    let mut w = s
        .item("command", "other.sql", "stream", &NoProgress)
        .expect("item");
    std::io::Write::write_all(&mut w, FORGED.as_bytes()).expect("write");
    let real: ManifestItem = w.finish(serde_json::Value::Null).expect("finish");
    s.commit().expect("commit");
    let mut s = repo
        .begin_backup(BackupOptions::default())
        .expect("session");
    s.carry_item(ManifestItem {
        name: "clinic.sql".into(),
        size: 4 * FORGED.len() as u64,
        sha256: "0".repeat(64),
        ..real
    })
    .expect("carry");
    let (forged, _) = s.commit().expect("commit");

    let out = lb
        .run(&["verify", "--read-data", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    assert!(out.stdout.contains("item clinic.sql"), "{}", out.stdout);
    // A drill of that snapshot fails and names the item (it holds only a
    // command's output, which the drill reads whole and checks).
    let out = drill(&lb, &lb.path("staging"), Some(&forged.to_hex())).code(EXIT_DAMAGED);
    assert!(
        out.stdout.contains("FAILED") && out.stdout.contains("clinic.sql"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains(FORGED));
}

/// `drill [SNAPSHOT]` with the restore key and a config holding only a
/// staging directory.
fn drill(
    lb: &Lifeboat,
    staging: &std::path::Path,
    snapshot: Option<&str>,
) -> lifeboat_testkit::Output {
    let cfg = lb.path("drill-only.toml");
    std::fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n[staging]\ndir = \"{}\"\n",
            lb.repo,
            staging.display()
        ),
    )
    .expect("config");
    let key = rk(lb);
    let mut args = vec!["--config", cfg.to_str().expect("utf-8"), "drill"];
    args.extend(snapshot);
    args.extend(["--restore-key-file", key.as_str()]);
    lb.run(&args)
}

/// The repository as a backup host opens it (the backup key alone).
fn backup_host_repo(lb: &Lifeboat) -> lifeboat_store::Repository<lifeboat_store::BackupAccess> {
    let backend = std::sync::Arc::new(lifeboat_store::backend::LocalBackend::new(lb.repo_path()));
    let key = lifeboat_store::BackupKey::load(&lb.backup_key).expect("backup key");
    lifeboat_store::Repository::open_for_backup(backend, key).expect("open")
}

#[test]
fn backup_host_facts_that_disagree_with_the_manifest_fail_the_drill() {
    use lifeboat_store::{BackupOptions, NoProgress};
    let lb = honest();
    let repo = backup_host_repo(&lb);
    // A snapshot claiming a 50-table MySQL source it does not hold.
    let mut s = repo
        .begin_backup(BackupOptions::default())
        .expect("session");
    let mut w = s
        .item("command", "clinic.sql", "stream", &NoProgress)
        .expect("item");
    std::io::Write::write_all(&mut w, SECRET.as_bytes()).expect("write");
    w.finish(serde_json::Value::Null).expect("finish");
    s.set_source_facts("mysql", serde_json::json!({"tables": 50, "rows": 400000}));
    let (forged, _) = s.commit().expect("commit");
    let out = drill(&lb, &lb.path("staging"), Some(&forged.to_hex())).code(EXIT_DAMAGED);
    assert!(
        out.stdout.contains("FAILED") && out.stdout.contains("50 tables"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn a_drill_refuses_a_link_planted_in_its_staging_directory() {
    let lb = honest();
    let staging = lb.path("staging");
    let victim = lb.path("victim");
    std::fs::create_dir_all(victim.join("render")).expect("mkdir");
    std::fs::write(victim.join("render/keep.txt"), "mine").expect("write");
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::os::unix::fs::symlink(&victim, staging.join("drill")).expect("link");
    let out = drill(&lb, &staging, None).code(EXIT_DAMAGED);
    assert!(
        out.stdout.contains("symbolic link"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("render/keep.txt")).expect("still there"),
        "mine"
    );
}

/// A backup host names a copy of its own under the id of a blob the
/// snapshots need (an index entry proves nothing about the bytes), in an
/// index file that readers meet first. Readers fall back to the good copy,
/// verify names the planted one without calling anything lost, and the
/// owner's prune keeps the good copy and drops the planted one (it used to
/// delete the only good pack).
#[test]
fn backup_host_a_copy_planted_under_an_existing_id_loses_nothing() {
    let lb = honest();
    let store = Store::new(lb.repo_path());
    // The item's blob ids, as the backup key reads them from the index.
    let target = store
        .open_all("index", &lb.backup_key)
        .iter()
        .flat_map(|(_, body)| {
            let index: serde_json::Value = serde_json::from_slice(body).expect("index json");
            index["packs"]
                .as_array()
                .expect("packs")
                .iter()
                .flat_map(|p| p["blobs"].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .find(|b| b["type"] == "data")
        .expect("a data blob")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let planted = store.plant_copy(&lb.backup_key, &target, FORGED.as_bytes());

    assert_still_restores(&lb);
    let out = lb
        .run(&["verify", "--read-data", "--restore-key-file", &rk(&lb)])
        .code(EXIT_DAMAGED);
    assert!(
        out.stdout.contains(&planted) && out.stdout.contains("another copy reads back"),
        "{}",
        out.stdout
    );
    lb.run(&["prune", "--restore-key-file", &rk(&lb)]).ok();
    assert!(
        !pack_names(&store).iter().any(|(_, n)| *n == planted),
        "the planted pack is dropped"
    );
    assert_still_restores(&lb);
    lb.run(&["verify", "--read-data", "--restore-key-file", &rk(&lb)])
        .ok();
}
