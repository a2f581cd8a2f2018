//! An append-only backup host: its store answers 403 AccessDenied to every
//! DELETE and to every PUT over a key that exists, as S3 credentials
//! without s3:DeleteObject (or a bucket with object lock) would. Ten
//! nights of backups of all four sources and binlog captures, some killed
//! at a random moment and run again, all commit, print nothing about the
//! refusals and leave no lock that holds anyone off. An admin host with
//! full credentials then prunes (clearing the lock files the backup host
//! could not delete), and every source restores equal to its origin.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_testkit::bucket::S3Client;
use lifeboat_testkit::data::Rng;
use lifeboat_testkit::git::git;
use lifeboat_testkit::mariadb::BinlogServer;
use lifeboat_testkit::proxy::Proxy;
use lifeboat_testkit::render::{FakeRender, World};
use lifeboat_testkit::{Lifeboat, Output, S3Server};

const KEY: &str = "rnd_AppendOnlyKey";

/// Run through `endpoint` (the proxy, or the store itself for the admin).
fn run_at(lb: &Lifeboat, endpoint: &str, args: &[&str]) -> Output {
    Output::of(lb.command(args).env("LIFEBOAT_S3_ENDPOINT", endpoint))
}

/// Nothing about the refused requests reaches the operator.
fn quiet_about_refusals(what: &str, out: &Output) {
    for word in [
        "WARN",
        "AccessDenied",
        "403",
        "could not remove",
        "SdkError",
        "ServiceError",
        "lock",
    ] {
        assert!(
            !out.stderr.contains(word),
            "{what} printed {word:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn nightly_backups_on_a_host_that_may_not_delete_or_overwrite_commit_and_an_admin_prunes() {
    let server = S3Server::start();
    let proxy = Proxy::start(&server.endpoint);
    let bucket = format!("lb-append-{}", std::process::id());
    let mut lb = Lifeboat::s3(&server, &bucket);
    lb.set_env("TEST_RENDER_KEY", KEY);
    lb.init();

    // What exists already (init's files), then every PUT through the proxy.
    let existing: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(
        S3Client::new(&server.endpoint)
            .list(&bucket)
            .into_iter()
            .map(|(k, _)| format!("/{bucket}/{k}"))
            .collect(),
    ));
    assert!(existing.lock().unwrap().len() >= 2, "config and a key");
    let refused = Arc::new(AtomicUsize::new(0));
    let overwrites = Arc::new(AtomicUsize::new(0));
    {
        let (existing, refused, overwrites) =
            (existing.clone(), refused.clone(), overwrites.clone());
        proxy.set_fault(move |r| {
            if r.method == "DELETE" || (r.method == "POST" && r.query.contains("delete")) {
                refused.fetch_add(1, Ordering::SeqCst);
                return Some(403);
            }
            if r.writes_object() {
                let fresh = existing.lock().unwrap().insert(r.path.clone());
                if !fresh {
                    overwrites.fetch_add(1, Ordering::SeqCst);
                    return Some(403);
                }
            }
            None
        });
    }

    // The four sources.
    let db = BinlogServer::start();
    db.sql(
        "CREATE DATABASE clinic; CREATE TABLE clinic.notes (id INT PRIMARY KEY, body TEXT, \
         at DATETIME(6)); INSERT INTO clinic.notes VALUES (1,'first',NOW(6)),(2,'zweite ü',NULL)",
    )
    .unwrap();
    let uploads = lb.path("uploads");
    std::fs::create_dir_all(uploads.join("scans")).unwrap();
    std::fs::write(uploads.join("scans/a.pdf"), b"%PDF a").unwrap();
    let fake = FakeRender::start(World::clinic(3), KEY);
    let code = lb.path("code");
    std::fs::create_dir_all(&code).unwrap();
    git(&code, &["init", "--quiet", "-b", "main"]);
    std::fs::write(code.join("README"), "clinic\n").unwrap();
    git(&code, &["add", "README"]);
    git(&code, &["commit", "--quiet", "-m", "one"]);
    let cfg = lb.path("all.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mysql]\nurl = \"{}\"\nbinlog = true\n\n[objects]\npath = \"{}\"\n\n[render]\n\
             api_key = \"${{TEST_RENDER_KEY}}\"\napi_url = \"{}\"\n\n[[git]]\nurl = \"{}\"\n\
             name = \"code\"\n",
            db.url("clinic"),
            uploads.display(),
            fake.url,
            code.display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let host = |extra: &[&str]| {
        let mut args = vec!["--config", &cfg, "--backup-key-file", &bk];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };

    let mut rng = Rng::new(21);
    let mut backup_ms = 0u64;
    let (mut killed, mut committed) = (0, 0);
    for night in 0..10u64 {
        // A day's changes in every source.
        db.sql(&format!(
            "INSERT INTO clinic.notes VALUES ({}, 'night {night}', NOW(6)); \
             UPDATE clinic.notes SET body = CONCAT(body, '+') WHERE id % 3 = {}",
            100 + night,
            night % 3
        ))
        .unwrap();
        std::fs::write(
            uploads.join(format!("scans/n{night}.pdf")),
            format!("%PDF {night}"),
        )
        .unwrap();
        std::fs::write(code.join("README"), format!("clinic {night}\n")).unwrap();
        git(
            &code,
            &["commit", "--quiet", "-am", &format!("night {night}")],
        );
        // Half the nights the host says it is append-only (no DELETE is
        // even sent); the others it finds out from the store's refusal.
        let flag: &[&str] = if night % 2 == 0 {
            &["--append-only"]
        } else {
            &[]
        };
        let args = host(&[flag, &["backup"]].concat());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let before = lb.snapshots().len();
        if night > 0 && rng.below(2) == 0 {
            let mut child = lb
                .command(&args)
                .env("LIFEBOAT_S3_ENDPOINT", &proxy.endpoint)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(backup_ms)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed += 1;
            }
            let _ = child.wait();
        }
        let t = Instant::now();
        let out = run_at(&lb, &proxy.endpoint, &args);
        assert_eq!(out.code, 0, "night {night}: {}\n{}", out.stdout, out.stderr);
        quiet_about_refusals(&format!("night {night}'s backup"), &out);
        backup_ms = backup_ms.max(t.elapsed().as_millis() as u64);
        assert!(
            lb.snapshots().len() > before,
            "night {night} committed nothing"
        );
        committed += 1;
        // The binlog since, and a status query, on the same host.
        let args = host(&[flag, &["binlog"]].concat());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_at(&lb, &proxy.endpoint, &args);
        assert_eq!(out.code, 0, "night {night}'s capture: {}", out.stderr);
        quiet_about_refusals(&format!("night {night}'s capture"), &out);
        let args = host(&[flag, &["status"]].concat());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_at(&lb, &proxy.endpoint, &args);
        quiet_about_refusals(&format!("night {night}'s status"), &out);
    }
    let want_db = db.fingerprint("clinic");
    let want_head = git(&code, &["rev-parse", "HEAD"]);
    assert!(
        refused.load(Ordering::SeqCst) >= 5,
        "the nights without --append-only tried a DELETE and were refused"
    );
    assert_eq!(
        overwrites.load(Ordering::SeqCst),
        0,
        "a backup host overwrote a file"
    );

    // Admin commands are refused on the append-only host, before they start.
    let args = host(&["--append-only", "--restore-key-file", &rk, "prune"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_at(&lb, &proxy.endpoint, &args);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("prune") && out.stderr.contains("admin host"),
        "{}",
        out.stderr
    );
    // The lock files the host left count for nothing: an admin's prune
    // (which waits for no lock) goes ahead at once and clears them.
    let locks_left = S3Client::new(&server.endpoint)
        .list(&bucket)
        .iter()
        .filter(|(k, _)| k.starts_with("lifeboat/locks/"))
        .count();
    assert!(locks_left >= 20, "{locks_left} lock files left");
    let pruned = run_at(
        &lb,
        &server.endpoint,
        &["--config", &cfg, "prune", "--restore-key-file", &rk],
    );
    assert_eq!(pruned.code, 0, "{}\n{}", pruned.stdout, pruned.stderr);
    assert!(
        pruned.stdout.contains("lock file(s) that no longer count"),
        "{}",
        pruned.stdout
    );
    let locks_after = S3Client::new(&server.endpoint)
        .list(&bucket)
        .iter()
        .filter(|(k, _)| k.starts_with("lifeboat/locks/"))
        .count();
    assert_eq!(locks_after, 0);
    let v = run_at(
        &lb,
        &server.endpoint,
        &["verify", "--read-data", "--json", "--restore-key-file", &rk],
    );
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert_eq!(v.json()["problems"], serde_json::json!([]), "{}", v.stdout);

    // Every source of the last night restores equal to its origin.
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            &cfg,
            "--restore-key-file",
            &rk,
            "restore",
            "latest",
        ];
        args.extend_from_slice(extra);
        let out = run_at(&lb, &server.endpoint, &args);
        assert_eq!(out.code, 0, "{extra:?}: {}", out.stderr);
    };
    db.sql("CREATE DATABASE drill").unwrap();
    restore(&["--source", "mysql", "--target", &db.url("drill")]);
    assert_eq!(db.fingerprint("drill"), want_db);
    let files = lb.path("files");
    restore(&["--source", "objects", "--to", files.to_str().unwrap()]);
    for night in 0..10 {
        assert_eq!(
            std::fs::read(files.join(format!("scans/n{night}.pdf"))).unwrap(),
            format!("%PDF {night}").as_bytes()
        );
    }
    let env = lb.path("env");
    restore(&["--source", "render", "--to-env-dir", env.to_str().unwrap()]);
    let mut got = lifeboat_testkit::shell_env(&env.join("clinic-api.env"));
    let mut want = fake.with(|w| w.service_mut("clinic-api").env_vars.clone());
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let restored = lb.path("code-restored");
    restore(&["--source", "git", "--to", restored.to_str().unwrap()]);
    assert_eq!(git(&restored, &["rev-parse", "HEAD"]), want_head);
    eprintln!(
        "append-only host: {committed} nights committed, {killed} killed first, {} DELETEs \
         refused, {locks_left} lock files cleared by the admin's prune",
        refused.load(Ordering::SeqCst)
    );
}
