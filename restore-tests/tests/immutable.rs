//! Cloudflare R2's bucket lock rules: the store refuses to delete or
//! overwrite a file for a number of days after it is written, by prefix.
//! The proxy plays R2 (no local server has such rules): every folder of the
//! layout but `locks/` is under a rule of RULE seconds, and a DELETE or an
//! overwriting PUT of a younger file gets 403 AccessDenied. Told of the rule
//! (`--immutable-days`), forget and prune leave protected files for a later
//! run and never send a request the rule refuses; once the files are free,
//! the same commands delete them, and the store verifies and restores.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_testkit::bucket::S3Client;
use lifeboat_testkit::data::Rng;
use lifeboat_testkit::proxy::Proxy;
use lifeboat_testkit::{sha256_file, Lifeboat, Output, S3Server};

/// Run with the restore key (an admin host).
fn admin(lb: &Lifeboat, args: &[&str]) -> Output {
    let rk = lb.restore_key.display().to_string();
    let mut all = vec!["--restore-key-file", &rk];
    all.extend_from_slice(args);
    lb.run(&all)
}

/// The store's rule.
const RULE: Duration = Duration::from_secs(20);

#[test]
fn under_r2_bucket_lock_rules_forget_and_prune_wait_for_files_to_be_free_and_nothing_is_refused() {
    let server = S3Server::start();
    let proxy = Proxy::start(&server.endpoint);
    let bucket = format!("lb-immutable-{}", std::process::id());
    let mut lb = Lifeboat::s3(&server, &bucket);
    lb.init();
    // lifeboat is told a rule a little longer than the store's (R2 counts
    // in seconds; the store's LastModified may be a second early).
    let days = (RULE.as_secs_f64() + 1.0) / 86_400.0;
    let written: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(
        S3Client::new(&server.endpoint)
            .list(&bucket)
            .into_iter()
            .map(|(k, _)| (format!("/{bucket}/{k}"), Instant::now()))
            .collect(),
    ));
    let refused = Arc::new(AtomicUsize::new(0));
    {
        let (written, refused) = (written.clone(), refused.clone());
        proxy.set_fault(move |r| {
            if r.path.contains("/locks/") {
                return None;
            }
            let young = |path: &str| {
                written
                    .lock()
                    .unwrap()
                    .get(path)
                    .is_some_and(|t| t.elapsed() < RULE)
            };
            let refuse = match r.method.as_str() {
                "DELETE" => young(&r.path),
                // A batch delete names its keys in the body: refuse it
                // whole while any file is young (lifeboat sends none).
                "POST" if r.query.contains("delete") => {
                    written.lock().unwrap().values().any(|t| t.elapsed() < RULE)
                }
                _ if r.writes_object() => {
                    let young = young(&r.path);
                    if !young {
                        written
                            .lock()
                            .unwrap()
                            .insert(r.path.clone(), Instant::now());
                    }
                    young
                }
                _ => false,
            };
            if refuse {
                refused.fetch_add(1, Ordering::SeqCst);
            }
            refuse.then_some(403)
        });
    }
    lb.set_env("LIFEBOAT_S3_ENDPOINT", &proxy.endpoint);

    // Three nights, each its own data (a pack of its own).
    let mut rng = Rng::new(2112);
    let mut files = Vec::new();
    for night in 0..3 {
        let f = lb.path(&format!("night{night}.bin"));
        let mut data = vec![0u8; 400_000];
        rng.fill(&mut data);
        std::fs::write(&f, data).unwrap();
        let out = lb.backup_command(&format!("cat {}", f.display()), "night", &[]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        files.push(f);
    }
    let ids: Vec<String> = lb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let last_write = Instant::now();

    // Control: not told of the rule, prune runs into it (the proxy does
    // refuse) and stops with the store's refusal; nothing is lost.
    let out = admin(&lb, &["prune"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("AccessDenied") || out.stderr.contains("denied"),
        "{}",
        out.stderr
    );
    assert!(refused.swap(0, Ordering::SeqCst) > 0);

    // Told of it, while everything is young: the policy keeps what the
    // rule protects and says so; prune deletes nothing and says until
    // when; a snapshot named by id is refused whole.
    lb.set_env("LIFEBOAT_IMMUTABLE_DAYS", &days.to_string());
    let out = admin(&lb, &["forget", "--keep-last", "1", "--prune"]).ok();
    assert!(
        out.stdout.contains("bucket lock rule until"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("left for a later prune"),
        "{}",
        out.stdout
    );
    assert_eq!(lb.snapshots().len(), 3);
    let out = admin(&lb, &["forget", &ids[0], "--dry-run"]);
    assert_eq!(
        out.code, 2,
        "a dry run says what the real run would: {}",
        out.stdout
    );
    let out = admin(&lb, &["forget", &ids[0]]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bucket's lock rule"), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing was forgotten"),
        "{}",
        out.stderr
    );
    assert_eq!(lb.snapshots().len(), 3);
    // A key change rewrites config, which the rule protects: refused
    // before any request.
    let new_key = lb.path("second.key");
    let out = admin(
        &lb,
        &[
            "key",
            "add",
            "--new-key-file",
            &new_key.display().to_string(),
        ],
    );
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("protected by the bucket's lock rule"),
        "{}",
        out.stderr
    );
    assert!(
        !new_key.exists(),
        "the new key file is removed with the refusal"
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "a request the rule refuses was sent"
    );

    // Once free (the rule's length after the last write), the same
    // commands delete what the policy drops.
    std::thread::sleep((RULE + Duration::from_secs(2)).saturating_sub(last_write.elapsed()));
    let out = admin(&lb, &["forget", "--keep-last", "1", "--prune", "--json"]).ok();
    // Forget's report, then prune's.
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out.stdout)
        .into_iter()
        .map(|d| d.expect("JSON"))
        .collect();
    let (report, prune) = (&docs[0], &docs[docs.len() - 1]);
    assert_eq!(report["remove"].as_array().unwrap().len(), 2, "{report}");
    assert!(prune["packs_removed"].as_u64().unwrap() >= 2, "{prune}");
    assert_eq!(lb.snapshots().len(), 1);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "a request the rule refuses was sent"
    );

    // The store is whole, and the kept night restores byte for byte.
    let v = admin(&lb, &["verify", "--read-data", "--json"]).ok();
    assert_eq!(
        v.json()["problems"].as_array().map(Vec::len),
        Some(0),
        "{}",
        v.stdout
    );
    let to = lb.path("restored");
    let out: Output = lb.restore_item("latest", "night", &to);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sha256_file(&to), sha256_file(&files[2]));
}
