//! `lifeboat daemon`: schedules from the config run at their cron times,
//! one at a time; a failing job does not stop the daemon; every result
//! reaches the webhook, and the dead-man's-switch ping is called on
//! success (its fail URL on failure). Bad schedules are clear errors.

use std::time::{Duration, Instant};

use lifeboat_testkit::hook::receiver;
use lifeboat_testkit::smtp::SmtpSink;
use lifeboat_testkit::Lifeboat;

#[test]
fn the_daemon_runs_schedules_survives_a_failing_job_and_notifies() {
    let lb = Lifeboat::local();
    lb.init();
    let (url, seen) = receiver();
    let smtp = SmtpSink::start();
    let uploads = lb.path("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("a.txt"), b"a").unwrap();
    let cfg = lb.path("daemon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[repository]\nbackup_key_file = \"{}\"\n\n[objects]\npath = \"{}\"\n\n\
             [render]\napi_key = \"rnd_x\"\napi_url = \"http://127.0.0.1:9/v1\"\nretries = 0\n\n\
             [notify]\nwebhook_url = \"{url}/hook\"\nping_url = \"{url}/ping\"\nping_fail_url = \"{url}/ping/fail\"\non_success = true\n\
             smtp_url = \"{smtp}\"\nemail_from = \"lifeboat@clinic.example\"\nemail_to = [\"ops@clinic.example\"]\n\n\
             [[schedule]]\njob = \"backup\"\ncron = \"* * * * * *\"\nargs = [\"--source\", \"objects\", \"--tag\", \"nightly\"]\n\n\
             [[schedule]]\njob = \"backup\"\ncron = \"*/2 * * * * *\"\ntime_zone = \"Europe/Berlin\"\nargs = [\"--source\", \"render\"]\n",
            lb.backup_key.display(),
            uploads.display(),
            smtp = smtp.url
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    // --check validates and prints the next runs.
    let out = lb.run(&["--config", &cfg, "daemon", "--check"]).ok();
    assert!(out.stderr.contains("Europe/Berlin"), "{}", out.stderr);

    let mut daemon = lb.command(&["--config", &cfg, "daemon"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = seen.lock().unwrap().clone();
        let good = s
            .iter()
            .filter(|(l, b)| l.contains("/hook") && b.contains("\"ok\":true"))
            .count();
        let bad = s
            .iter()
            .filter(|(l, b)| l.contains("/hook") && b.contains("\"ok\":false"))
            .count();
        let failed_mail = smtp.mails().iter().any(|m| m.data.contains("FAILED"));
        if good >= 2 && bad >= 1 && failed_mail {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "too few job results in 30 s: {s:?}"
        );
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still alive after the failed job.
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "a failing job stopped the daemon"
    );
    daemon.kill().unwrap();
    let _ = daemon.wait();
    let s = seen.lock().unwrap().clone();
    let failure = s
        .iter()
        .find(|(l, b)| l.contains("/hook") && b.contains("\"ok\":false"))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&failure.1).unwrap();
    assert_eq!(event["job"], "backup");
    assert_eq!(event["exit_code"], 3);
    assert!(
        event["message"].as_str().unwrap().contains("Render"),
        "{event}"
    );
    assert!(s.iter().any(|(l, _)| l.starts_with("GET /ping ")));
    let mail = smtp
        .mails()
        .into_iter()
        .find(|m| m.data.contains("FAILED"))
        .unwrap();
    assert_eq!(mail.to, vec!["<ops@clinic.example>".to_string()]);
    assert!(
        mail.data.contains("Subject: lifeboat: backup FAILED"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("Render"), "{}", mail.data);
    assert!(s.iter().any(|(l, _)| l.starts_with("GET /ping/fail ")));
    let snaps = lb.snapshots();
    assert!(snaps.len() >= 2, "{}", snaps.len());
    assert!(snaps
        .iter()
        .all(|s| s["tags"] == serde_json::json!(["nightly"])));

    // --once runs one job now and exits with its status.
    lb.run(&[
        "--config", &cfg, "daemon", "--once", "backup", "--", "--source", "objects",
    ])
    .ok();
    lb.run(&[
        "--config", &cfg, "daemon", "--once", "backup", "--", "--source", "render",
    ])
    .code(3);
}

#[test]
fn bad_schedules_are_errors_naming_them() {
    let lb = Lifeboat::local();
    lb.init();
    for (body, needle) in [
        (
            "job = \"backup\"\ncron = \"61 * * * *\"",
            "not a cron pattern",
        ),
        (
            "job = \"restore\"\ncron = \"0 2 * * *\"",
            "job must be one of",
        ),
        (
            "job = \"backup\"\ncron = \"0 2 * * *\"\ntime_zone = \"Mars/Olympus\"",
            "IANA",
        ),
    ] {
        let cfg = lb.path("bad.toml");
        std::fs::write(&cfg, format!("[[schedule]]\n{body}\n")).unwrap();
        let out = lb
            .run(&["--config", cfg.to_str().unwrap(), "daemon", "--check"])
            .code(2);
        assert!(
            out.stderr.contains(needle) && out.stderr.contains("[[schedule]] #1"),
            "{}",
            out.stderr
        );
    }
}
