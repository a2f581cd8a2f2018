//! The operator's view: every run leaves a record in the store (failed
//! and killed runs included), `status` answers from snapshots and records
//! with the backup key alone and checks `[objectives]` (exit 8 naming what
//! was missed), its Prometheus text parses with the real parser and says
//! what its JSON says, and the daemon's webhook names a missed objective.

use std::process::Command;
use std::time::{Duration, Instant};

use lifeboat_testkit::hook::receiver;
use lifeboat_testkit::Lifeboat;

/// A repository with an upload directory as the objects source, a staging
/// directory for drills, and `objectives` as the `[objectives]` section.
fn setup(objectives: &str) -> (Lifeboat, String) {
    let lb = Lifeboat::local();
    lb.init();
    let uploads = lb.path("uploads");
    std::fs::create_dir_all(uploads.join("scans")).unwrap();
    std::fs::write(uploads.join("scans/patient-4711-xray.png"), b"x-ray").unwrap();
    std::fs::write(uploads.join("consent-form.pdf"), vec![7u8; 10_000]).unwrap();
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[objects]\npath = \"{}\"\n\n[staging]\ndir = \"{}\"\n\n[objectives]\n{objectives}\n",
            uploads.display(),
            lb.path("staging").display(),
        ),
    )
    .unwrap();
    (lb, cfg.display().to_string())
}

/// `backup --source objects` with the backup key, checked.
fn backup_objects(lb: &Lifeboat, cfg: &str) {
    let bk = lb.backup_key.display().to_string();
    lb.run(&[
        "--config",
        cfg,
        "backup",
        "--source",
        "objects",
        "--backup-key-file",
        &bk,
    ])
    .ok();
}

fn status_json(lb: &Lifeboat, cfg: &str, code: i32) -> serde_json::Value {
    let bk = lb.backup_key.display().to_string();
    let out = lb
        .run(&[
            "--config",
            cfg,
            "status",
            "--json",
            "--backup-key-file",
            &bk,
        ])
        .code(code);
    out.json()
}

fn source<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {st:#}"))
}

#[test]
fn status_reports_each_run_and_names_missed_objectives() {
    let (lb, cfg) = setup("drill_every = \"7d\"\nverify_every = \"7d\"\nrto = \"10m\"\n");
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let c = |args: &[&str]| {
        let mut v = vec!["--config", cfg.as_str()];
        v.extend_from_slice(args);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let v = c(args);
        lb.run(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Nothing yet: the objectives are missed, each named.
    let out = run(&["status", "--backup-key-file", &bk]).code(8);
    for name in ["drill_every", "verify_every", "rto"] {
        assert!(out.stderr.contains(name), "{}", out.stderr);
    }

    // A good backup, a failed one (the command exits 3), a drill, a verify.
    let before = chrono::Utc::now();
    run(&["backup", "--source", "objects", "--backup-key-file", &bk]).ok();
    let failed = run(&[
        "backup",
        "--stdin-from-command",
        "echo partial; exit 3",
        "--item",
        "db.sql",
        "--backup-key-file",
        &bk,
    ])
    .code(3);
    run(&["drill", "--restore-key-file", &rk]).ok();
    run(&["verify", "--read-data", "--restore-key-file", &rk]).ok();
    let after = chrono::Utc::now();

    let st = status_json(&lb, &cfg, 0);
    assert_eq!(st["ok"], true, "{st:#}");
    let when = |v: &serde_json::Value| {
        let t: chrono::DateTime<chrono::Utc> = v.as_str().unwrap().parse().unwrap();
        assert!(
            t >= before - chrono::TimeDelta::seconds(1) && t <= after,
            "{t}"
        );
        t
    };
    // The good backup.
    let objects = source(&st, "objects");
    when(&objects["last_success"]["time"]);
    assert_eq!(objects["last_success"]["bytes"], 10_005, "{objects:#}");
    assert!(objects["last_failure"].is_null(), "{objects:#}");
    // The failed one: its own source, its exit code and the message shown.
    let command = source(&st, "command");
    assert!(command["last_success"].is_null(), "{command:#}");
    when(&command["last_failure"]["time"]);
    assert_eq!(command["last_failure"]["exit_code"], 3);
    let shown = failed
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap();
    let message = command["last_failure"]["message"].as_str().unwrap();
    assert!(shown.contains(message), "{message:?} vs {shown:?}");
    // The drill and the verify.
    assert_eq!(st["last_drill"]["ok"], true, "{st:#}");
    when(&st["last_drill"]["time"]);
    assert!(st["last_drill"]["rto_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(st["last_verify"]["ok"], true);
    assert_eq!(st["last_verify"]["read_data_percent"], 100.0);
    when(&st["last_verify"]["time"]);
    let runs: Vec<&str> = st["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["verify", "drill", "backup", "backup"], "{st:#}");
    for o in st["objectives"].as_array().unwrap() {
        assert_eq!(o["met"], true, "{o}");
    }

    // The backup key reads no name of the data: not the objects' keys the
    // drill restored, nor the item names.
    let text = serde_json::to_string(&st).unwrap();
    for secret in ["patient-4711", "consent-form", "scans/"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // max_age of 1 s, 2 s later: missed for each source, named, exit 8.
    let (lb2, cfg2) = setup("max_age = \"1s\"\n");
    let bk2 = lb2.backup_key.display().to_string();
    backup_objects(&lb2, &cfg2);
    lb2.backup_command("echo dump", "db.sql", &[]).ok();
    std::thread::sleep(Duration::from_secs(2));
    let out = lb2
        .run(&["--config", &cfg2, "status", "--backup-key-file", &bk2])
        .code(8);
    for who in ["max_age (objects)", "max_age (command)"] {
        assert!(
            out.stderr.lines().any(|l| l.contains(who)),
            "{who}: {}",
            out.stderr
        );
    }
    let st2 = status_json(&lb2, &cfg2, 8);
    for name in ["objects", "command"] {
        let o = &source(&st2, name)["objectives"][0];
        assert_eq!(o["name"], "max_age");
        assert_eq!(o["met"], false);
        assert!(o["value"].as_f64().unwrap() >= 2.0, "{o}");
        assert_eq!(o["limit"], 1.0);
    }
}

#[test]
fn a_killed_run_and_a_run_without_the_store_are_recorded_by_the_next() {
    let (lb, cfg) = setup("");
    let bk = lb.backup_key.display().to_string();
    // Killed mid-backup.
    let mut child = lb
        .command(&[
            "--config",
            &cfg,
            "backup",
            "--stdin-from-command",
            "sleep 60",
            "--item",
            "slow",
            "--backup-key-file",
            &bk,
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    child.kill().unwrap();
    child.wait().unwrap();
    // Without its store (moved away), then with it again.
    let repo = lb.repo_path().to_path_buf();
    let away = lb.path("repo-away");
    std::fs::rename(&repo, &away).unwrap();
    let out = lb.run(&[
        "--config",
        &cfg,
        "backup",
        "--source",
        "objects",
        "--backup-key-file",
        &bk,
    ]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("kept in the local journal"),
        "{}",
        out.stderr
    );
    std::fs::rename(&away, &repo).unwrap();
    backup_objects(&lb, &cfg);
    let st = status_json(&lb, &cfg, 0);
    let runs = st["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{st:#}");
    let killed = runs
        .iter()
        .find(|r| r["exit_code"].is_null())
        .unwrap_or_else(|| panic!("no killed run in {st:#}"));
    assert_eq!(killed["kind"], "backup");
    assert!(killed["end"].is_null());
    let unreachable = runs
        .iter()
        .find(|r| r["exit_code"].as_i64().is_some_and(|c| c != 0))
        .unwrap_or_else(|| panic!("no failed run in {st:#}"));
    assert!(
        unreachable["error"]
            .as_str()
            .unwrap()
            .contains("repository"),
        "{unreachable}"
    );
    assert_eq!(
        source(&st, "command")["last_failure"]["exit_code"],
        serde_json::Value::Null
    );
    // The journal is empty again.
    let journal = lb.path("state/journal");
    let left: Vec<_> = walk(&journal);
    assert!(left.is_empty(), "{left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn prometheus_text_parses_with_the_real_parser_and_equals_the_json() {
    let (lb, cfg) = setup("max_age = \"26h\"\ndrill_every = \"7d\"\n");
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    backup_objects(&lb, &cfg);
    lb.run(&["--config", &cfg, "drill", "--restore-key-file", &rk])
        .ok();
    let metrics = lb.path("textfile/lifeboat.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let json = lb
        .run(&[
            "--config",
            &cfg,
            "status",
            "--json",
            "--metrics-file",
            metrics.to_str().unwrap(),
            "--backup-key-file",
            &bk,
        ])
        .ok()
        .json();
    let text = std::fs::read_to_string(&metrics).unwrap();
    let printed = lb
        .run(&[
            "--config",
            &cfg,
            "status",
            "--prometheus",
            "--backup-key-file",
            &bk,
        ])
        .ok()
        .stdout;
    // Same families, one run later (only the times move).
    assert_eq!(names(&text), names(&printed));

    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    assert fam.type == "gauge", fam
    for s in fam.samples:
        key = s.name + json.dumps(s.labels, sort_keys=True)
        out[key] = s.value
print(json.dumps(out))
"#;
    let mut py = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs prometheus_client)");
    use std::io::Write as _;
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get = |name: &str, labels: &str| {
        parsed[format!("{name}{labels}")]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}{labels} not in {parsed:#}"))
    };
    let ts = |v: &serde_json::Value| {
        let t: chrono::DateTime<chrono::Utc> = v.as_str().unwrap().parse().unwrap();
        t.timestamp_millis() as f64 / 1000.0
    };
    let objects = source(&json, "objects");
    let src = r#"{"source": "objects"}"#;
    assert_eq!(
        get("lifeboat_last_success_timestamp_seconds", src),
        ts(&objects["last_success"]["time"])
    );
    assert_eq!(
        get("lifeboat_snapshot_bytes", src),
        objects["last_success"]["bytes"].as_f64().unwrap()
    );
    assert_eq!(
        get("lifeboat_snapshot_age_seconds", src),
        objects["last_success"]["age_seconds"].as_f64().unwrap()
    );
    assert_eq!(get("lifeboat_snapshots", src), 1.0);
    assert_eq!(
        get("lifeboat_drill_rto_seconds", "{}"),
        json["last_drill"]["rto_seconds"].as_f64().unwrap()
    );
    assert_eq!(get("lifeboat_last_drill_success", "{}"), 1.0);
    let max_age = &objects["objectives"][0];
    let l = r#"{"objective": "max_age", "source": "objects"}"#;
    assert_eq!(get("lifeboat_objective_met", l), 1.0);
    assert_eq!(
        get("lifeboat_objective_value_seconds", l),
        max_age["value"].as_f64().unwrap()
    );
    assert_eq!(get("lifeboat_objective_limit_seconds", l), 26.0 * 3600.0);
    let l = r#"{"objective": "drill_every"}"#;
    assert_eq!(get("lifeboat_objective_met", l), 1.0);
    assert_eq!(
        get("lifeboat_objective_value_seconds", l),
        json["objectives"][0]["value"].as_f64().unwrap()
    );
    assert_eq!(
        get("lifeboat_status_timestamp_seconds", "{}"),
        ts(&json["time"])
    );
}

fn names(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("# TYPE")).collect()
}

#[test]
fn the_daemon_webhook_names_the_missed_objective() {
    let (lb, cfg) = setup("max_age = \"1s\"\n");
    let (url, seen) = receiver();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[notify]\nwebhook_url = \"{url}/hook\"\n\n[repository]\nbackup_key_file = \"{}\"\n",
        lb.backup_key.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    // The newest snapshot is old by the time the job's verify ends.
    lb.run(&["--config", &cfg, "backup", "--source", "objects"])
        .ok();
    std::thread::sleep(Duration::from_secs(2));
    let out = lb.run(&["--config", &cfg, "daemon", "--once", "verify"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("objective missed: max_age (objects)"),
        "{}",
        out.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        if let Some((_, body)) = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(l, _)| l.contains("/hook"))
            .cloned()
        {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "no webhook call");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(event["job"], "verify");
    assert_eq!(event["exit_code"], 0);
    let missed = event["objectives_missed"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{event}");
    assert!(
        missed[0].as_str().unwrap().starts_with("max_age (objects)"),
        "{event}"
    );
    assert!(event["message"]
        .as_str()
        .unwrap()
        .contains("objectives missed"));
}

/// Whoever holds the backup key (and the store's credentials) can write
/// run records, but not a drill that counts: drills need the restore key,
/// and its records are signed with the config's key. What the backup key
/// reads of the records names no object.
#[test]
fn a_backup_host_cannot_forge_a_passing_drill() {
    use lifeboat_testkit::forge;
    let (lb, cfg) = setup("drill_every = \"1h\"\n");
    let rk = lb.restore_key.display().to_string();
    backup_objects(&lb, &cfg);
    lb.run(&["--config", &cfg, "drill", "--restore-key-file", &rk])
        .ok();
    let store = forge::Store::new(lb.repo_path());
    let records = store.open_all("runs", &lb.backup_key);
    assert_eq!(records.len(), 2);
    let mut drill = None;
    for (_, body) in &records {
        let text = String::from_utf8_lossy(body);
        for name in ["patient-4711", "consent-form", "scans"] {
            assert!(
                !text.contains(name),
                "{name} readable with the backup key: {text}"
            );
        }
        if text.contains("\"kind\":\"drill\"") {
            // Signed: "S" + 128 hex + "\n", then the record.
            assert_eq!(body[0], b'S', "{text}");
            drill = Some(body[130..].to_vec());
        }
    }
    let drill = drill.expect("a drill record");
    let st = status_json(&lb, &cfg, 0);
    assert_eq!(st["last_drill"]["signed"], true);

    // Forged by the backup host, tagged and sealed as FORMAT.md says: an
    // unsigned drill of now, one dated a week ahead, one with a made-up
    // signature.
    let (dedup, _) = forge::backup_key_secrets(&lb.backup_key);
    let key = forge::file_key(&dedup);
    let metadata = store.config()["metadata_recipient"]
        .as_str()
        .unwrap()
        .to_string();
    let real: serde_json::Value = serde_json::from_slice(&drill).unwrap();
    let plant = |start: chrono::DateTime<chrono::Utc>, signature: Option<&str>| {
        let mut v = real.clone();
        v["start"] = serde_json::json!(start);
        v["rto_seconds"] = serde_json::json!(0.5);
        let mut body = match signature {
            Some(sig) => format!("S{sig}\n").into_bytes(),
            None => Vec::new(),
        };
        body.extend_from_slice(&serde_json::to_vec(&v).unwrap());
        store.put(
            "runs",
            &forge::seal(&metadata, &forge::tagged(&key, "runs", &body)),
        )
    };
    let now = chrono::Utc::now();
    let unsigned = plant(now, None);
    let future = plant(now + chrono::TimeDelta::days(7), None);
    let bad_sig = plant(now, Some(&"ab".repeat(64)));

    // The newest drill shown is still the real one; the forged ones count
    // for nothing (the future one and the bad signature are unreadable).
    let st = status_json(&lb, &cfg, 0);
    assert_eq!(st["last_drill"]["signed"], true, "{st:#}");
    assert_ne!(st["last_drill"]["rto_seconds"], 0.5, "{st:#}");
    assert_eq!(st["unreadable"], 2, "{st:#}");
    let o = &st["objectives"][0];
    assert_eq!(o["name"], "drill_every");
    assert!(o["value"].as_f64().unwrap() < 60.0, "{o}");

    // The owner's prune removes the unsigned drill and the one from the
    // future; verify names the one that does not authenticate.
    lb.run(&["prune", "--restore-key-file", &rk]).ok();
    let left = store.files("runs");
    assert!(
        !left.contains(&unsigned) && !left.contains(&future),
        "{left:?}"
    );
    assert!(left.contains(&bad_sig));
    let out = lb.run(&["verify", "--restore-key-file", &rk]).code(4);
    assert!(out.stdout.contains(&bad_sig[..16]), "{}", out.stdout);
}

/// `report --html`: one self-contained page from the backup key alone,
/// nothing fetched, everything the store said escaped; the drill's report
/// gets its HTML form beside the JSON.
#[test]
fn the_dashboard_is_one_self_contained_page_that_escapes_what_it_shows() {
    let (mut lb, cfg) = setup("max_age = \"26h\"\nrto = \"1s\"\n");
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    backup_objects(&lb, &cfg);
    let drill_json = lb.path("drill.json");
    lb.run(&[
        "--config",
        &cfg,
        "drill",
        "--report",
        drill_json.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    // A host name a compromised backup host chose.
    lb.set_env("LIFEBOAT_HOSTNAME", "<script>alert(1)</script>");
    lb.backup_command("exit 3", "db.sql", &[]).code(3);

    let page = lb.path("dash.html");
    lb.run(&[
        "--config",
        &cfg,
        "report",
        "--html",
        page.to_str().unwrap(),
        "--backup-key-file",
        &bk,
    ])
    .ok();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for part in [
        "Recovery objectives",
        "max_age (objects)",
        "Snapshots",
        "<svg",
        "Drill RTO",
        "Latest drill",
        "Point-in-time recovery",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "default-src 'none'",
    ] {
        assert!(html.contains(part), "{part} missing");
    }
    // rto of 1 s is missed by any real drill; the page says so.
    assert!(html.contains("MISSED"));
    // Nothing is fetched, nothing runs.
    for banned in [
        "<script", "src=", "<link", "url(", "@import", "http://", "https://",
    ] {
        assert!(!html.contains(banned), "{banned} in the page");
    }
    // No name of the data.
    for name in ["patient-4711", "consent-form"] {
        assert!(!html.contains(name), "{name} in the page");
    }
    // Not replaced without --force.
    let again = lb.run(&[
        "--config",
        &cfg,
        "report",
        "--html",
        page.to_str().unwrap(),
        "--backup-key-file",
        &bk,
    ]);
    assert_eq!(again.code, 2, "{}", again.stderr);

    // The drill's HTML report: the table with the bytes restored.
    let drill_html = std::fs::read_to_string(lb.path("drill.html")).unwrap();
    assert!(drill_html.contains("Restore drill"));
    assert!(drill_html.contains("PASSED"));
    assert!(
        drill_html.contains("9.8 KiB"),
        "objects bytes: {drill_html}"
    );
    assert!(!drill_html.contains("<script"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&drill_json).unwrap()).unwrap();
    assert_eq!(report["sources"][0]["bytes"], 10_005, "{report:#}");
}

/// A backup host stores a command's output last: `drill` (latest) still
/// drills the newest snapshot holding what the config backs up, and a
/// drill of the stream-only snapshot fails naming the missing source (its
/// RTO would say nothing about recovering the uploads).
#[test]
fn a_drill_covers_every_configured_source() {
    let (lb, cfg) = setup("");
    let rk = lb.restore_key.display().to_string();
    backup_objects(&lb, &cfg);
    lb.backup_command("echo hi", "x.sql", &[]).ok();
    let snaps = lb.snapshots();
    let objects_id = snaps[0]["id"].as_str().unwrap().to_string();
    let stream_id = snaps[1]["id"].as_str().unwrap().to_string();
    let out = lb
        .run(&[
            "--config",
            &cfg,
            "--json",
            "drill",
            "--restore-key-file",
            &rk,
        ])
        .ok();
    assert_eq!(out.json()["snapshot"], objects_id.as_str());
    let out = lb.run(&[
        "--config",
        &cfg,
        "--json",
        "drill",
        &stream_id,
        "--restore-key-file",
        &rk,
    ]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stdout.contains("holds no whole objects"),
        "{}",
        out.stdout
    );
}
