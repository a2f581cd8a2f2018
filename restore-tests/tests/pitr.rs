//! Point-in-time recovery against a real MariaDB that writes a binary log
//! (a private `mariadbd --log-bin --binlog-format=ROW`): a full backup,
//! writes on both sides of a moment T1, `lifeboat binlog`, then restores
//! `--until` T1 and `--until` the end, each compared table by table (row
//! counts and CHECKSUM TABLE) with the database as it was at that moment.
//! The same stored binlog replays through the stock `mariadb-binlog`
//! (the escape hatch). A server that purged binlog before it was stored
//! gives a clear error, and a restore into the gap is refused with the
//! windows that exist.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_testkit::mariadb::BinlogServer;
use lifeboat_testkit::Lifeboat;

type Fingerprint = Vec<(String, u64, String)>;

/// The server's clock now, as `YYYY-MM-DD HH:MM:SS` (UTC).
fn server_now(s: &BinlogServer) -> String {
    s.sql("SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')")
        .unwrap()
        .trim()
        .to_string()
}

/// Past the current second, so the next write is stamped later than any
/// moment read before.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

struct Setup {
    server: BinlogServer,
    lb: Lifeboat,
    cfg: String,
}

impl Setup {
    fn new(scale_mb: u64) -> Setup {
        Setup::with_config(scale_mb, "")
    }

    fn with_config(scale_mb: u64, extra: &str) -> Setup {
        let server = BinlogServer::start();
        server
            .sql("CREATE DATABASE clinic CHARACTER SET utf8mb4; CREATE DATABASE other; CREATE TABLE other.x (id INT PRIMARY KEY, v TEXT)")
            .unwrap();
        let mut script = Vec::new();
        lifeboat_testkit::clinic::write_clinic_sql(&mut script, scale_mb, 7).unwrap();
        server.load("clinic", &script);
        let mut lb = Lifeboat::local();
        lb.init();
        // One statement's rows go to the server in several BINLOG
        // statements past 20,000 bytes (16 MiB in release builds).
        lb.set_env("LIFEBOAT_TEST_BINLOG_GROUP", "20000");
        let cfg = lb.path("lifeboat.toml");
        std::fs::write(
            &cfg,
            format!(
                "[mysql]\nurl = \"{}\"\nbinlog = true\n{extra}",
                server.url("clinic")
            ),
        )
        .unwrap();
        let cfg = cfg.display().to_string();
        Setup { server, lb, cfg }
    }

    fn run(&self, args: &[&str]) -> lifeboat_testkit::Output {
        let mut all = vec!["--config", &self.cfg];
        all.extend_from_slice(args);
        self.lb.run(&all)
    }

    fn with_backup_key(&self, args: &[&str]) -> lifeboat_testkit::Output {
        let bk = self.lb.backup_key.display().to_string();
        let mut all = vec!["--backup-key-file", &bk];
        all.extend_from_slice(args);
        self.run(&all)
    }

    fn restore_until(&self, until: &str, target: &str) -> lifeboat_testkit::Output {
        let rk = self.lb.restore_key.display().to_string();
        let url = self.server.url(target);
        self.run(&[
            "--restore-key-file",
            &rk,
            "--json",
            "restore",
            "latest",
            "--source",
            "mysql",
            "--until",
            until,
            "--target",
            &url,
        ])
    }

    /// `restore SNAPSHOT --source mysql --target URL(target) EXTRA...`
    /// with the restore key, as JSON.
    fn restore_mysql(
        &self,
        snapshot: &str,
        target: &str,
        extra: &[&str],
    ) -> lifeboat_testkit::Output {
        let rk = self.lb.restore_key.display().to_string();
        let url = self.server.url(target);
        let mut args = vec![
            "--restore-key-file",
            &rk,
            "--json",
            "restore",
            snapshot,
            "--source",
            "mysql",
            "--target",
            &url,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `lifeboat binlog --follow` with the backup key, its stderr as given.
    fn follower(&self, stderr: Stdio) -> std::process::Child {
        let bk = self.lb.backup_key.display().to_string();
        self.lb
            .command(&[
                "--config",
                &self.cfg,
                "--backup-key-file",
                &bk,
                "binlog",
                "--follow",
            ])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    /// The config with `[staging] mysql_url` on database `staging` of the
    /// same server, for drills.
    fn drill_config(&self, staging: &str) -> std::path::PathBuf {
        let path = self.lb.path("drill.toml");
        std::fs::write(
            &path,
            format!(
                "{}\n[staging]\nmysql_url = \"{}\"\n",
                std::fs::read_to_string(&self.cfg).unwrap(),
                self.server.url(staging)
            ),
        )
        .unwrap();
        path
    }

    fn sql(&self, q: &str) {
        self.server.sql(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }

    fn fingerprint(&self, db: &str) -> Fingerprint {
        self.server.fingerprint(db)
    }
}

#[test]
fn restores_until_a_moment_and_until_the_end_equal_the_database_then() {
    let s = Setup::new(3);
    let backup = s.with_backup_key(&["--json", "backup"]).ok();
    let id = backup.json()["id"].as_str().unwrap().to_string();
    // The dump recorded where its consistent snapshot stands in the log.
    let snaps = s.lb.snapshots();
    let facts = &snaps[0]["sources"]["mysql"]["facts"]["binlog"];
    assert_eq!(facts["how"], "snapshot-status", "{facts}");
    assert!(
        facts["file"].as_str().unwrap().starts_with("bin."),
        "{facts}"
    );

    // Phase 1: a trigger firing (appointments → audit_log), a row with
    // bytes and newlines, deletes, a multi-statement transaction over a
    // table without a primary key, another database's row.
    s.sql(
        "UPDATE clinic.appointments SET status = 'cancelled' WHERE id % 7 = 1 AND status <> 'cancelled';\
         INSERT INTO clinic.patients (id, medical_record_no, name, photo, notes) VALUES (900001, 'MRN-PITR-1', 'Zoë Ångström', x'00ff1027', 'line\\nbreak \\'quoted\\'');\
         DELETE FROM clinic.treatments WHERE id % 11 = 0;\
         START TRANSACTION; INSERT INTO clinic.reminder_log VALUES (900001, '2026-12-01 10:00:00', 'sms'); UPDATE clinic.patients SET phone = '+1 555 0100' WHERE id < 20; COMMIT;\
         INSERT INTO other.x VALUES (1, 'not ours');\
         INSERT INTO clinic.audit_log (user_id, action, entity, entity_id, details, at) \
           SELECT id, 'bulk', 'patient', id, JSON_OBJECT('notes', notes), NOW(6) FROM clinic.patients",
    );
    let t1 = server_now(&s.server);
    let at_t1 = s.fingerprint("clinic");
    let gtid_t1 = s
        .server
        .sql("SELECT @@gtid_binlog_pos")
        .unwrap()
        .trim()
        .to_string();
    next_second();
    // Phase 2, then a second binlog run for part of it.
    s.sql(
        "UPDATE clinic.medical_documents SET size_bytes = size_bytes + 1 WHERE id % 5 = 0;\
         UPDATE clinic.appointments SET status = 'done' WHERE id % 7 = 2 AND status <> 'done';\
         START TRANSACTION; DELETE FROM clinic.reminder_log; ROLLBACK",
    );
    let first = s.with_backup_key(&["--json", "binlog"]).ok().json();
    assert_eq!(
        first["started_from"],
        format!("snapshot {}", &id[..8]),
        "{first}"
    );
    s.sql(
        "INSERT INTO clinic.audit_log (user_id, action, entity, entity_id, details, at) VALUES (1, 'pitr', 'test', 1, JSON_OBJECT('k', 'v'), NOW(6));\
         DELETE FROM clinic.reminder_log WHERE channel = 'sms' LIMIT 3;\
         INSERT INTO other.x VALUES (2, 'still not ours')",
    );
    next_second();
    let t_end = server_now(&s.server);
    let at_end = s.fingerprint("clinic");
    next_second();
    let second = s.with_backup_key(&["--json", "binlog"]).ok().json();
    assert_eq!(second["started_from"], "stored binlog", "{second}");
    assert_eq!(second["run"]["start"], first["run"]["end"], "{second}");
    let text = s.with_backup_key(&["snapshots"]).ok().stdout;
    assert!(text.contains("point-in-time window:"), "{text}");

    let r1 = s.restore_until(&t1, "r_t1").ok().json();
    assert_eq!(s.fingerprint("r_t1"), at_t1, "restore --until T1 differs");
    assert!(r1["applied"]["transactions"].as_u64().unwrap() >= 4, "{r1}");
    let skipped = r1["applied"]["skipped"].to_string();
    assert!(skipped.contains("other.x"), "{skipped}");
    assert_ne!(at_t1, at_end, "the phases changed nothing");

    // The same moment named by its last transaction's GTID.
    let rk = s.lb.restore_key.display().to_string();
    let by_gtid = s.server.url("r_gtid");
    s.run(&[
        "--restore-key-file",
        &rk,
        "restore",
        "latest",
        "--source",
        "mysql",
        "--until-gtid",
        &gtid_t1,
        "--target",
        &by_gtid,
    ])
    .ok();
    assert_eq!(
        s.fingerprint("r_gtid"),
        at_t1,
        "restore --until-gtid differs"
    );
    // A GTID the stored binlog does not reach is an error naming it.
    let far = s.run(&[
        "--restore-key-file",
        &rk,
        "restore",
        "latest",
        "--source",
        "mysql",
        "--until-gtid",
        "0-1-999999",
        "--target",
        &s.server.url("r_far"),
    ]);
    assert_eq!(far.code, 2, "{}", far.stderr);
    assert!(
        far.stderr.contains("0-0-999999") || far.stderr.contains("999999"),
        "{}",
        far.stderr
    );

    s.restore_until(&t_end, "r_end").ok();
    assert_eq!(
        s.fingerprint("r_end"),
        at_end,
        "restore --until the end differs"
    );
    // drill --until T1: the snapshot replayed into staging and compared
    // with its manifest, then the binlog applied up to T1.
    let drill_cfg = s.drill_config("staging_t1");
    let rk = s.lb.restore_key.display().to_string();
    let drill =
        s.lb.run(&[
            "--config",
            drill_cfg.to_str().unwrap(),
            "--restore-key-file",
            &rk,
            "--json",
            "drill",
            "--until",
            &t1,
        ])
        .ok()
        .json();
    assert_eq!(
        s.fingerprint("staging_t1"),
        at_t1,
        "drill --until T1 differs"
    );
    assert_eq!(drill["snapshot"], id.as_str(), "{drill}");
    assert!(drill["until"].as_str().is_some(), "{drill}");
    let notes = drill["sources"][0]["notes"].to_string();
    assert!(notes.contains("compared with snapshot"), "{notes}");
    assert!(notes.contains("applied the stored binlog"), "{notes}");

    // A moment the stored binlog does not reach is refused with the window.
    let later = s.restore_until("2099-01-01 00:00:00", "r_late").code(2);
    assert!(later.stderr.contains("not covered"), "{}", later.stderr);
    assert!(
        later.stderr.contains("windows stored are"),
        "{}",
        later.stderr
    );

    // The escape hatch: the stored binlog files, restored as items, replay
    // with the stock mariadb-binlog after the snapshot's SQL export. Its
    // --stop-datetime reads local time and excludes that second: TZ=UTC,
    // T1 + 1 s; --database keeps the snapshot's database only (named as in
    // the log), --rewrite-db moves it.
    let rk = s.lb.restore_key.display().to_string();
    let export = s.lb.path("snapshot.sql");
    s.run(&[
        "--restore-key-file",
        &rk,
        "export",
        &id,
        "--source",
        "mysql",
        "--to",
        export.to_str().unwrap(),
    ])
    .ok();
    s.sql("CREATE DATABASE esc CHARACTER SET utf8mb4");
    s.server.load("esc", &std::fs::read(&export).unwrap());
    let mut files = Vec::new();
    for run in [&first, &second] {
        for seg in run["run"]["segments"].as_array().unwrap() {
            let item = seg["item"].as_str().unwrap();
            let to = s.lb.path(&format!("piece-{}", files.len()));
            s.run(&[
                "--restore-key-file",
                &rk,
                "restore",
                run["id"].as_str().unwrap(),
                "--item",
                item,
                "--to",
                to.to_str().unwrap(),
            ])
            .ok();
            files.push(to);
        }
    }
    assert!(!files.is_empty());
    let stop = chrono::NaiveDateTime::parse_from_str(&t1, "%Y-%m-%d %H:%M:%S").unwrap()
        + chrono::TimeDelta::seconds(1);
    let decoded = std::process::Command::new("mariadb-binlog")
        .env("TZ", "UTC")
        .arg(format!(
            "--stop-datetime={}",
            stop.format("%Y-%m-%d %H:%M:%S")
        ))
        .arg("--database=clinic")
        .arg("--rewrite-db=clinic->esc")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let mut load = s
        .server
        .client(None)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    load.stdin
        .take()
        .unwrap()
        .write_all(&decoded.stdout)
        .unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.fingerprint("esc"),
        at_t1,
        "mariadb-binlog's replay differs"
    );
}

#[test]
fn a_purged_binlog_is_a_named_gap_and_a_new_backup_starts_a_new_window() {
    let s = Setup::new(1);
    s.with_backup_key(&["backup"]).ok();
    s.sql("UPDATE clinic.patients SET phone = 'one' WHERE id < 10");
    next_second();
    let covered = s.with_backup_key(&["--json", "binlog"]).ok().json();
    let window_end = covered["run"]["caught_up_at"].as_i64().unwrap() - 1;
    // The capture host is down while the server moves on and purges.
    s.sql("UPDATE clinic.patients SET phone = 'two' WHERE id < 10");
    next_second();
    let in_gap = server_now(&s.server);
    s.sql("FLUSH BINARY LOGS");
    s.sql("UPDATE clinic.patients SET phone = 'three' WHERE id < 10");
    s.sql("FLUSH BINARY LOGS");
    let files = s.server.sql("SHOW BINARY LOGS").unwrap();
    let newest = files
        .lines()
        .last()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    s.sql(&format!("PURGE BINARY LOGS TO '{newest}'"));

    let gap = s.with_backup_key(&["binlog"]).code(3);
    assert!(
        gap.stderr.contains("no longer has binary log"),
        "{}",
        gap.stderr
    );
    assert!(gap.stderr.contains("lifeboat backup"), "{}", gap.stderr);
    let refused = s.restore_until(&in_gap, "r_gap").code(2);
    assert!(refused.stderr.contains("not covered"), "{}", refused.stderr);
    let end = chrono::DateTime::from_timestamp(window_end, 0).unwrap();
    assert!(
        refused
            .stderr
            .contains(&end.format("%Y-%m-%d %H:%M:%S").to_string()),
        "the refusal names the window that exists: {}",
        refused.stderr
    );

    // A new full snapshot starts a new window; the run says so (exit 8).
    s.with_backup_key(&["backup"]).ok();
    s.sql("UPDATE clinic.patients SET phone = 'four' WHERE id < 10");
    next_second();
    let t = server_now(&s.server);
    let at_t = s.fingerprint("clinic");
    next_second();
    let resumed = s.with_backup_key(&["binlog"]).code(8);
    assert!(resumed.stderr.contains("new window"), "{}", resumed.stderr);
    s.restore_until(&t, "r_new").ok();
    assert_eq!(s.fingerprint("r_new"), at_t);
}

#[test]
fn a_server_that_cannot_be_captured_gets_what_to_set_or_grant() {
    let server = BinlogServer::start_with(&["--binlog-format=MIXED"]);
    server
        .sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)")
        .unwrap();
    server
        .sql("CREATE USER 'plain'@'localhost' IDENTIFIED BY 'pw-not-shown'; GRANT ALL ON shop.* TO 'plain'@'localhost'")
        .unwrap();
    let lb = Lifeboat::local();
    lb.init();
    let cfg = lb.path("lifeboat.toml");
    let write = |url: &str, extra: &str| {
        std::fs::write(
            &cfg,
            format!("[mysql]\nurl = \"{url}\"\nbinlog = true\n{extra}"),
        )
        .unwrap();
    };
    let c = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    write(&server.url("shop"), "");
    let mixed = lb.run(&["--config", &c, "--backup-key-file", &bk, "binlog"]);
    assert_ne!(mixed.code, 0);
    assert!(
        mixed.stderr.contains("binlog_format is MIXED"),
        "{}",
        mixed.stderr
    );
    assert!(
        mixed.stderr.contains("SET GLOBAL binlog_format = 'ROW'"),
        "{}",
        mixed.stderr
    );
    server.sql("SET GLOBAL binlog_format = 'ROW'").unwrap();
    write(
        &format!("mysql://plain@127.0.0.1:{}/shop", server.port),
        "password = \"pw-not-shown\"\n",
    );
    let denied = lb.run(&["--config", &c, "--backup-key-file", &bk, "binlog"]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("REPLICATION SLAVE"),
        "{}",
        denied.stderr
    );
    assert!(
        !denied.stderr.contains("pw-not-shown"),
        "the password leaked: {}",
        denied.stderr
    );
    // Nothing was stored by either.
    assert!(lb.snapshots().is_empty());
    let off = lb.run(&["--config", "/dev/null", "--backup-key-file", &bk, "binlog"]);
    assert_eq!(off.code, 2, "{}", off.stderr);
}

/// A small deterministic generator (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// The newest stored moment of the windows (a binlog run's catch-up - 1).
fn covered_until(s: &Setup) -> Option<i64> {
    s.with_backup_key(&["--json", "snapshots"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|snap| snap["sources"]["mysql-binlog"]["facts"]["caught_up_at"].as_i64())
        .max()
        .map(|t| t - 1)
}

fn server_secs(s: &BinlogServer) -> i64 {
    s.sql("SELECT UNIX_TIMESTAMP()")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn follow_mode_survives_kills_and_a_server_restart_losing_and_duplicating_nothing() {
    let mut s = Setup::with_config(1, "binlog_flush_secs = 1\n");
    s.with_backup_key(&["backup"]).ok();
    // Writes all along: rows into a table without a primary key (a
    // duplicated event would be a duplicated row) and updates.
    let stop = Arc::new(AtomicBool::new(false));
    let port = s.server.port.to_string();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = n % 50 + 1;
                let _ = std::process::Command::new("mariadb")
                    .args(["-h", "127.0.0.1", "-P", &port, "-u", "root", "clinic", "-e"])
                    .arg(format!(
                        "INSERT INTO reminder_log VALUES ({id}, NOW(), 'w{n}'); \
                         UPDATE patients SET notes = CONCAT('n', {n}) WHERE id = {id}"
                    ))
                    .stderr(Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    let follow = |s: &Setup| s.follower(Stdio::null());
    let mut child = follow(&s);

    // RPO: a row committed at t is stored within the flush interval and
    // a few seconds (printed: a measurement, not an assertion).
    std::thread::sleep(Duration::from_secs(2));
    let t = server_secs(&s.server);
    let asked = Instant::now();
    while covered_until(&s).is_none_or(|c| c < t) {
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "the follower stored nothing for 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "RPO with binlog_flush_secs = 1: a commit at second {t} was covered {:.1} s later",
        asked.elapsed().as_secs_f64()
    );

    let seed = u64::from(std::process::id());
    println!("kill campaign seed {seed}");
    let mut rng = Lcg(seed);
    for trial in 0..20 {
        std::thread::sleep(Duration::from_millis(300 + rng.next(2200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if trial == 10 {
            // The server restarts once (a clean stop: its file ends with a
            // stop event and a new file begins).
            s.server.stop();
            std::thread::sleep(Duration::from_millis(500));
            s.server.resume();
        }
        child = follow(&s);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    next_second();
    let t_end = server_now(&s.server);
    let at_end = s.fingerprint("clinic");
    next_second();
    let reach = server_secs(&s.server) - 1;
    let asked = Instant::now();
    while covered_until(&s).is_none_or(|c| c < reach) {
        assert!(
            asked.elapsed() < Duration::from_secs(90),
            "the follower stopped storing"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    println!("{writes} write transactions under 20 kills and a server restart");
    // The restart began a new binlog file, which the stored runs continue.
    let snaps = s.with_backup_key(&["--json", "snapshots"]).ok().json();
    let mut files: Vec<String> = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|snap| snap["sources"]["mysql-binlog"]["facts"]["segments"].as_array())
        .flatten()
        .map(|seg| seg["file"].as_str().unwrap().to_string())
        .collect();
    files.sort();
    files.dedup();
    assert!(files.len() >= 2, "no run crossed the restart: {files:?}");
    s.restore_until(&t_end, "r_follow").ok();
    assert_eq!(
        s.fingerprint("r_follow"),
        at_end,
        "the restore after the campaign differs"
    );
}

#[test]
fn the_daemon_keeps_binlog_capture_running_beside_its_schedules() {
    use std::os::unix::process::CommandExt;
    // A prune every minute: the capture holds the repository's shared lock
    // from one flush to the next, so the daemon stops it for the prune.
    let s = Setup::with_config(
        1,
        "binlog_flush_secs = 1\n\n[[schedule]]\njob = \"prune\"\ncron = \"* * * * *\"\n",
    );
    s.with_backup_key(&["backup"]).ok();
    let bk = s.lb.backup_key.display().to_string();
    let rk = s.lb.restore_key.display().to_string();
    let log = s.lb.path("daemon.log");
    let mut daemon =
        s.lb.command(&[
            "--config",
            &s.cfg,
            "--backup-key-file",
            &bk,
            "--restore-key-file",
            &rk,
            "daemon",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let covered_within = |s: &Setup, secs: u64| {
        let t = server_secs(&s.server);
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(secs) {
            if covered_until(s).is_some_and(|c| c >= t) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    };
    s.sql("UPDATE clinic.patients SET phone = 'daemon' WHERE id < 5");
    let first = covered_within(&s, 60);
    // The minute's prune runs (the capture paused), then capture goes on.
    let asked = Instant::now();
    let mut pruned = false;
    while asked.elapsed() < Duration::from_secs(90) {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("job prune succeeded") {
            pruned = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    next_second();
    s.sql("UPDATE clinic.patients SET phone = 'after prune' WHERE id < 5");
    let after = covered_within(&s, 60);
    // The daemon and its capture child, as systemd stops a service.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", daemon.id())])
        .status();
    let _ = daemon.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        first,
        "the daemon's binlog capture stored nothing within 60 s: {text}"
    );
    assert!(
        pruned,
        "the scheduled prune did not succeed beside the capture: {text}"
    );
    assert!(text.contains("binlog capture paused for the job"), "{text}");
    assert!(after, "capture did not go on after the prune: {text}");
}

/// What a fresh-eyes attack found on genuine binlogs: a rolled-back XA
/// transaction, a savepoint rolled back around a non-transactional write,
/// a schema change in a database whose name starts with the snapshot's,
/// and a session that logged a change as a statement.
#[test]
fn savepoints_xa_and_statement_logged_changes_restore_exactly_or_are_refused() {
    let s = Setup::new(1);
    s.sql("CREATE TABLE clinic.counter (a INT) ENGINE=MyISAM");
    s.with_backup_key(&["backup"]).ok();
    next_second();
    s.sql(
        "XA START 'x1'; INSERT INTO clinic.reminder_log VALUES (1, NOW(), 'xa'); XA END 'x1'; \
         XA PREPARE 'x1'; XA ROLLBACK 'x1';\
         BEGIN; INSERT INTO clinic.reminder_log VALUES (60, NOW(), 'before'); SAVEPOINT s1; \
         INSERT INTO clinic.counter VALUES (3); INSERT INTO clinic.reminder_log VALUES (61, NOW(), 'undone'); \
         ROLLBACK TO SAVEPOINT s1; INSERT INTO clinic.reminder_log VALUES (62, NOW(), 'after'); COMMIT;\
         CREATE DATABASE clinic2; CREATE TABLE clinic2.x (a INT); INSERT INTO clinic2.x VALUES (1)",
    );
    let t1 = server_now(&s.server);
    let at_t1 = s.fingerprint("clinic");
    next_second();
    s.sql(
        "SET SESSION binlog_format = 'STATEMENT'; \
         INSERT INTO clinic.reminder_log VALUES (63, '2026-01-01 00:00:00', 'statement')",
    );
    next_second();
    let t2 = server_now(&s.server);
    next_second();
    s.with_backup_key(&["binlog"]).ok();

    let r = s.restore_until(&t1, "r_sp").ok().json();
    assert_eq!(
        s.fingerprint("r_sp"),
        at_t1,
        "savepoints or XA restored wrong"
    );
    let skipped = r["applied"]["skipped"].to_string();
    assert!(skipped.contains("clinic2"), "{skipped}");

    let refused = s.restore_until(&t2, "r_stmt").code(2);
    assert!(
        refused.stderr.contains("binlog_format = ROW"),
        "{}",
        refused.stderr
    );
}

#[test]
fn verify_reads_the_stored_binlog_and_names_a_hole() {
    let s = Setup::new(1);
    s.with_backup_key(&["backup"]).ok();
    let mut runs = Vec::new();
    for i in 0..3 {
        s.sql(&format!(
            "UPDATE clinic.patients SET phone = 'run {i}' WHERE id < 20; \
             INSERT INTO clinic.reminder_log VALUES ({}, NOW(), 'sms')",
            910000 + i
        ));
        next_second();
        runs.push(s.with_backup_key(&["--json", "binlog"]).ok().json());
    }
    let stored: u64 = runs
        .iter()
        .flat_map(|r| r["run"]["segments"].as_array().unwrap().clone())
        .map(|seg| seg["transactions"].as_u64().unwrap())
        .sum();
    // With the backup key: the window, from the runs' facts.
    let facts = s.with_backup_key(&["--json", "verify"]).ok().json();
    let w = &facts["binlog"]["windows"];
    assert_eq!(w.as_array().unwrap().len(), 1, "{facts}");
    assert_eq!(w[0]["runs"], 3, "{facts}");
    // With the data: every segment read and its GTIDs linked.
    let rk = s.lb.restore_key.display().to_string();
    let read = s
        .run(&["--restore-key-file", &rk, "--json", "verify", "--read-data"])
        .ok()
        .json();
    assert_eq!(read["binlog"]["segments_read"], 3, "{read}");
    assert_eq!(
        read["binlog"]["windows"][0]["transactions"], stored,
        "{read}"
    );
    assert!(stored >= 6, "{read}");

    // The middle run forgotten: the last one continues no window.
    let middle = runs[1]["id"].as_str().unwrap();
    s.run(&["--restore-key-file", &rk, "forget", middle]).ok();
    let hole = s.with_backup_key(&["verify"]).code(4);
    assert!(
        hole.stdout.contains("no point-in-time window reaches it"),
        "{}",
        hole.stdout
    );
    assert!(
        hole.stdout.contains(&runs[2]["id"].as_str().unwrap()[..8]),
        "{}",
        hole.stdout
    );
}

#[test]
fn prune_merges_small_runs_and_their_packs_and_the_window_restores_the_same() {
    let mut s = Setup::new(1);
    // Runs older than 0 s are merged (an hour in a release build).
    s.lb.set_env("LIFEBOAT_TEST_COMPACT_AFTER_SECS", "0");
    s.with_backup_key(&["backup"]).ok();
    for i in 0..4 {
        s.sql(&format!(
            "UPDATE clinic.patients SET phone = 'compact {i}' WHERE id < 30; \
             INSERT INTO clinic.reminder_log VALUES ({}, NOW(), 'sms')",
            920000 + i
        ));
        next_second();
        s.with_backup_key(&["binlog"]).ok();
    }
    let t_end = server_now(&s.server);
    let at_end = s.fingerprint("clinic");
    next_second();
    s.with_backup_key(&["binlog"]).ok();
    assert_eq!(s.lb.snapshots().len(), 6);
    let rk = s.lb.restore_key.display().to_string();
    let before = s
        .run(&["--restore-key-file", &rk, "--json", "verify"])
        .ok()
        .json();
    let pruned = s
        .run(&["--restore-key-file", &rk, "--json", "prune"])
        .ok()
        .json();
    assert_eq!(pruned["binlog"]["runs_merged"], 5, "{pruned}");
    assert_eq!(pruned["binlog"]["runs_written"], 1, "{pruned}");
    // Eight small packs (the backup's, each run's) become one.
    let n = |k: &str| pruned[k].as_u64().unwrap();
    assert!(n("packs_compacted") + n("packs_repacked") >= 5, "{pruned}");
    assert_eq!(n("packs_written"), 1, "{pruned}");
    assert_eq!(s.lb.snapshots().len(), 2, "one full snapshot and one run");
    // The same window, read whole, and the same restore.
    let after = s
        .run(&["--restore-key-file", &rk, "--json", "verify", "--read-data"])
        .ok()
        .json();
    assert_eq!(
        after["binlog"]["windows"][0]["until"], before["binlog"]["windows"][0]["until"],
        "{after}"
    );
    assert_eq!(after["binlog"]["windows"][0]["runs"], 1, "{after}");
    assert_eq!(
        after["binlog"]["segments_read"], before["binlog"]["windows"][0]["segments"],
        "{after}"
    );
    s.restore_until(&t_end, "r_compact").ok();
    assert_eq!(
        s.fingerprint("r_compact"),
        at_end,
        "restore after compaction differs"
    );
    // A second prune has nothing to do; capture goes on from the merged run.
    let again = s
        .run(&["--restore-key-file", &rk, "--json", "prune"])
        .ok()
        .json();
    assert_eq!(again["binlog"]["runs_merged"], 0, "{again}");
    assert_eq!(again["packs_compacted"], 0, "{again}");
    s.sql("UPDATE clinic.patients SET phone = 'after' WHERE id < 3");
    next_second();
    let next = s.with_backup_key(&["--json", "binlog"]).ok().json();
    assert_eq!(next["started_from"], "stored binlog", "{next}");
}

/// Columns (with types and defaults), indexes and triggers of `db`: the
/// schema a restore must bring back along with the rows.
fn schema_of(s: &Setup, db: &str) -> String {
    s.server
        .sql(&format!(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '-') \
               FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' ORDER BY 1, ORDINAL_POSITION; \
             SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
               WHERE TABLE_SCHEMA = '{db}' ORDER BY 1, 2, SEQ_IN_INDEX; \
             SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
               WHERE TRIGGER_SCHEMA = '{db}' ORDER BY 1; \
             SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"
        ))
        .unwrap()
}

#[test]
fn schema_changes_in_the_window_are_applied_to_the_target_only() {
    let s = Setup::new(1);
    s.sql("CREATE TABLE clinic.scratch (a INT PRIMARY KEY); CREATE USER 'pitr_reader'@'%'");
    s.with_backup_key(&["backup"]).ok();
    next_second();
    // Schema changes through both spellings (qualified, and under USE),
    // rows into the new and renamed tables, and statements the restore
    // must skip: an account's grant, maintenance, another database's DDL.
    s.sql(
        "ALTER DATABASE clinic COLLATE utf8mb4_unicode_ci;\
         ALTER USER 'pitr_reader'@'%' IDENTIFIED BY 'Secret-PW-1';\
         ALTER TABLE clinic.patients ADD COLUMN pitr_note VARCHAR(40) NULL DEFAULT 'n/a';\
         UPDATE clinic.patients SET pitr_note = 'Zoë' WHERE id < 10;\
         CREATE TABLE clinic.refunds (id INT PRIMARY KEY, patient_id INT, amount DECIMAL(8,2), \
           FOREIGN KEY (patient_id) REFERENCES clinic.patients (id));\
         INSERT INTO clinic.refunds VALUES (1, 1, 9.50), (2, 2, 3.25);\
         CREATE INDEX refunds_amount ON clinic.refunds (amount);\
         USE clinic;\
         RENAME TABLE reminder_log TO reminders;\
         INSERT INTO reminders VALUES (900002, '2026-12-02 09:00:00', 'email');\
         ALTER TABLE treatments ADD COLUMN pitr_flag INT NOT NULL DEFAULT 7;\
         CREATE VIEW big_refunds AS SELECT id, amount FROM refunds WHERE amount > 5;\
         CREATE TRIGGER refunds_audit AFTER INSERT ON refunds FOR EACH ROW SET @pitr = NEW.id;\
         INSERT INTO refunds VALUES (3, 3, 12.00);\
         DROP TABLE scratch;\
         TRUNCATE TABLE reminders;\
         INSERT INTO reminders VALUES (900003, '2026-12-03 09:00:00', 'sms');\
         GRANT SELECT ON clinic.* TO 'pitr_reader'@'%';\
         OPTIMIZE TABLE clinic.treatments;\
         CREATE TABLE other.y (a INT); INSERT INTO other.y VALUES (1)",
    );
    let t1 = server_now(&s.server);
    let at_t1 = s.fingerprint("clinic");
    let schema_t1 = schema_of(&s, "clinic");
    next_second();
    // A schema change that reaches another database stops the restore.
    s.sql(
        "ALTER TABLE clinic.refunds ADD COLUMN x INT, \
         ADD CONSTRAINT to_other FOREIGN KEY (x) REFERENCES other.x (id)",
    );
    next_second();
    let t2 = server_now(&s.server);
    next_second();
    s.with_backup_key(&["binlog"]).ok();

    let r = s.restore_until(&t1, "r_ddl").ok().json();
    assert_eq!(
        s.fingerprint("r_ddl"),
        at_t1,
        "rows after the schema changes differ"
    );
    assert_eq!(schema_of(&s, "r_ddl"), schema_t1, "the schema differs");
    let changes = r["applied"]["schema_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 10, "{changes:?}");
    assert!(
        !r.to_string().contains("Secret-PW-1"),
        "a password in the report: {r}"
    );
    let skipped = r["applied"]["skipped"].to_string();
    for what in ["account statement", "table maintenance", "other.y"] {
        assert!(skipped.contains(what), "{what}: {skipped}");
    }
    // The source database is untouched by the restore's schema changes.
    assert_eq!(
        s.server
            .sql("SELECT COUNT(*) FROM clinic.refunds")
            .unwrap()
            .trim(),
        "3"
    );

    let refused = s.restore_until(&t2, "r_ddl2").code(2);
    assert!(
        refused.stderr.contains("schema change"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("`other`"), "{}", refused.stderr);
}

#[test]
fn the_stored_binlog_has_its_own_retention() {
    let s = Setup::with_config(1, "\n[retention]\nkeep_last = 5\nbinlog = \"2s\"\n");
    s.with_backup_key(&["backup"]).ok();
    s.sql("UPDATE clinic.patients SET phone = 'kept?' WHERE id < 5");
    next_second();
    s.with_backup_key(&["binlog"]).ok();
    let rk = s.lb.restore_key.display().to_string();
    // Within two seconds the run is kept, as a point-in-time log.
    let kept = s
        .run(&["--restore-key-file", &rk, "--json", "forget", "--dry-run"])
        .ok()
        .json();
    assert_eq!(kept["remove"].as_array().unwrap().len(), 0, "{kept}");
    std::thread::sleep(Duration::from_millis(2500));
    let forgot = s
        .run(&["--restore-key-file", &rk, "--json", "forget"])
        .ok()
        .json();
    assert_eq!(forgot["remove"].as_array().unwrap().len(), 1, "{forgot}");
    let left = s.lb.snapshots();
    assert_eq!(left.len(), 1, "the full snapshot stays");
    assert!(left[0]["tags"].as_array().unwrap().is_empty());
    let text = s.with_backup_key(&["snapshots"]).ok().stdout;
    assert!(!text.contains("point-in-time window"), "{text}");
}

/// Random updates, inserts, deletes and key moves over a table of every
/// kind of value the binlog must carry exactly (NULLs, BLOBs, DECIMAL,
/// JSON, DATETIME(6), DOUBLE, utf8mb4), `n` of each.
fn churn(s: &Setup, rng: &mut Lcg, n: usize) {
    let mut sql = String::new();
    for _ in 0..n {
        let id = 1 + rng.next(3000);
        let v = rng.next(1_000_000);
        sql.push_str(&match rng.next(6) {
            0 => format!(
                "UPDATE clinic.kinds SET d = {v}.125, j = JSON_OBJECT('v', {v}, 'a', JSON_ARRAY(1, 'ü')), t = '2026-12-06 01:02:03.{v:06}', b = UNHEX(SHA2('{v}', 256)) WHERE id = {id};"
            ),
            1 => format!("UPDATE clinic.kinds SET s = NULL, j = NULL, b = NULL, f = {v}e-3 WHERE id = {id};"),
            2 => format!("DELETE FROM clinic.kinds WHERE id = {id};"),
            // The key moves: the row leaves its place in key order.
            3 => format!(
                "UPDATE IGNORE clinic.kinds SET id = {} WHERE id = {id};",
                100_000 + v
            ),
            4 => format!(
                "INSERT IGNORE INTO clinic.kinds VALUES ({}, {v}, -{v}.000001, JSON_OBJECT('new', TRUE), NOW(6), REPEAT(x'00ff', {}), {v}.5, 'Ω {v}');",
                200_000 + v,
                v % 500
            ),
            _ => format!(
                "UPDATE clinic.patients SET notes = CONCAT(IFNULL(notes, ''), ' {v}') WHERE id = {};",
                1 + v % 200
            ),
        });
    }
    s.sql(&sql);
}

/// `clinic.kinds`: 3,000 rows of the kinds of value [`churn`] changes.
fn kinds_table(s: &Setup) {
    s.sql(
        "CREATE TABLE clinic.kinds (id INT PRIMARY KEY, grp INT, d DECIMAL(20,6), j JSON, \
           t DATETIME(6), b LONGBLOB, f DOUBLE, s VARCHAR(50) CHARACTER SET utf8mb4 NULL, KEY (grp));\
         INSERT INTO clinic.kinds SELECT seq, seq % 10, seq / 7, JSON_OBJECT('n', seq), \
           '2026-01-01 00:00:00.000001' + INTERVAL seq SECOND, REPEAT(UNHEX(HEX(seq)), seq % 40), \
           seq / 3, IF(seq % 9 = 0, NULL, CONCAT('é', seq)) FROM clinic.seq_1_to_3000",
    );
}

fn seeded() -> Lcg {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    Lcg(seed)
}

#[test]
fn a_full_backup_proves_the_stored_binlog_before_it_and_a_missed_change_is_named() {
    let s = Setup::new(1);
    kinds_table(&s);
    let from_binlog =
        |snapshot: &str, target: &str| s.restore_mysql(snapshot, target, &["--from-binlog"]);
    let base = s.with_backup_key(&["--json", "backup"]).ok().json();
    // Nothing to prove the first full backup against.
    let none = from_binlog(base["id"].as_str().unwrap(), "p0").code(2);
    assert!(
        none.stderr.contains("no earlier full snapshot"),
        "{}",
        none.stderr
    );

    let mut rng = seeded();
    churn(&s, &mut rng, 150);
    s.with_backup_key(&["binlog"]).ok();
    churn(&s, &mut rng, 150);
    // The periodic full read, at a moment inside the stored binlog: more
    // changes follow it in the same run, so the apply must stop exactly
    // at its coordinates.
    let at_full = s.fingerprint("clinic");
    let full = s.with_backup_key(&["--json", "backup"]).ok().json();
    let full_id = full["id"].as_str().unwrap();
    churn(&s, &mut rng, 150);
    s.with_backup_key(&["binlog"]).ok();

    let proof = from_binlog(full_id, "proof").ok().json();
    assert_eq!(proof["base"], base["id"], "{proof}");
    assert_eq!(
        s.fingerprint("proof"),
        at_full,
        "the proof's target differs"
    );
    let checked = proof["check"]["tables"].as_array().unwrap();
    assert!(checked.len() >= 5, "{proof}");
    assert!(
        checked
            .iter()
            .all(|t| t["checksum_matches"] == true && t["rows_found"] == t["rows_expected"]),
        "{proof}"
    );
    // Table definitions compared too, text for text (the same server).
    assert_eq!(proof["check"]["schema"]["tables_exact"], true, "{proof}");
    assert_eq!(
        proof["check"]["schema"]["differences"],
        serde_json::json!([]),
        "{proof}"
    );
    assert!(
        proof["applied"]["transactions"].as_u64().unwrap() >= 100,
        "{proof}"
    );

    // A change the binary log never saw (sql_log_bin = 0): the binlog
    // between the two full backups no longer gives the later one, and
    // the proof names the table.
    churn(&s, &mut rng, 50);
    s.sql("SET SESSION sql_log_bin = 0; UPDATE clinic.kinds SET d = d + 1 ORDER BY id LIMIT 1");
    s.with_backup_key(&["binlog"]).ok();
    let second = s.with_backup_key(&["--json", "backup"]).ok().json();
    let failed = from_binlog(second["id"].as_str().unwrap(), "proof2").code(4);
    assert!(failed.stderr.contains("kinds"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("does not give snapshot"),
        "{}",
        failed.stderr
    );
    assert!(!failed.stderr.contains("patients"), "{}", failed.stderr);
}

#[test]
fn binlog_nightlies_store_no_rows_restore_exactly_and_keep_what_they_need() {
    let s = Setup::with_config(1, "binlog_nightly = true\n\n[retention]\nbinlog = \"1s\"\n");
    kinds_table(&s);
    let rk = s.lb.restore_key.display().to_string();
    let restore = |snapshot: &str, target: &str| s.restore_mysql(snapshot, target, &[]);
    let backup = || s.with_backup_key(&["--json", "backup"]).ok().json();
    // No full snapshot yet: a full read.
    let full = backup();
    let full_id = full["id"].as_str().unwrap().to_string();
    assert!(full["mysql_derived"].is_null(), "{full}");
    assert!(
        full["mysql_full_read"]
            .as_str()
            .unwrap()
            .contains("no full snapshot"),
        "{full}"
    );

    let mut rng = seeded();
    churn(&s, &mut rng, 200);
    let at_n1 = s.fingerprint("clinic");
    let n1 = backup();
    let n1_id = n1["id"].as_str().unwrap().to_string();
    assert_eq!(n1["mysql_derived"]["base"], full_id.as_str(), "{n1}");
    // The night stores its binlog run and a snapshot with no MySQL item.
    let snaps = s.lb.snapshots();
    let snap = |id: &str| {
        snaps
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone()
    };
    assert_eq!(
        snap(&n1_id)["sources"]["mysql"]["items"],
        0,
        "{}",
        snap(&n1_id)
    );
    let run = snap(n1["mysql_derived"]["run"].as_str().unwrap());
    assert!(run["tags"].to_string().contains("binlog"), "{run}");
    let night = n1["stats"]["added_bytes"].as_u64().unwrap()
        + run["stats"]["added_bytes"].as_u64().unwrap();
    let first = full["stats"]["added_bytes"].as_u64().unwrap();
    eprintln!("derived night: {night} bytes added, first backup {first}");
    assert!(night * 4 < first, "{night} of {first}");

    churn(&s, &mut rng, 200);
    let at_n2 = s.fingerprint("clinic");
    let n2 = backup();
    let n2_id = n2["id"].as_str().unwrap().to_string();
    assert_eq!(n2["mysql_derived"]["base"], full_id.as_str(), "{n2}");
    let listed = s.with_backup_key(&["snapshots"]).ok().stdout;
    assert!(
        listed.contains(&format!(
            "snapshot {}: mysql is full snapshot {}",
            &n2_id[..8],
            &full_id[..8]
        )),
        "{listed}"
    );
    churn(&s, &mut rng, 50);
    s.with_backup_key(&["binlog"]).ok();

    // Each night restores to exactly its moment, the binlog after it in
    // the same run or later ones notwithstanding.
    let r1 = restore(&n1_id, "r1").ok().json();
    assert_eq!(r1["snapshot"], full_id.as_str(), "{r1}");
    assert_eq!(s.fingerprint("r1"), at_n1, "night 1 restores differently");
    restore(&n2_id, "r2").ok();
    assert_eq!(s.fingerprint("r2"), at_n2, "night 2 restores differently");

    // A drill of the latest night: its full snapshot checked after its
    // replay, then the binlog to the night's end.
    let drill_cfg = s.drill_config("staging_nightly");
    let drill =
        s.lb.run(&[
            "--config",
            drill_cfg.to_str().unwrap(),
            "--restore-key-file",
            &rk,
            "--json",
            "drill",
        ])
        .ok()
        .json();
    assert_eq!(drill["snapshot"], n2_id.as_str(), "{drill}");
    assert_eq!(
        s.fingerprint("staging_nightly"),
        at_n2,
        "the drill's staging differs"
    );
    let notes = drill["sources"][0]["notes"].to_string();
    assert!(notes.contains("derived backup"), "{notes}");

    // Retention keeps what the kept night is made of; the full snapshot
    // cannot be forgotten by name while a night needs it.
    std::thread::sleep(Duration::from_millis(1500));
    let named = s
        .run(&["--restore-key-file", &rk, "forget", &full_id])
        .code(2);
    assert!(named.stderr.contains(&n2_id[..8]), "{}", named.stderr);
    let forget = s
        .run(&[
            "--restore-key-file",
            &rk,
            "--json",
            "forget",
            "--keep-last",
            "1",
        ])
        .ok()
        .json();
    let kept = forget["keep"].to_string();
    assert!(kept.contains(&full_id), "{forget}");
    assert!(kept.contains("needed by derived backup"), "{forget}");
    let removed = forget["remove"].as_array().unwrap().len();
    assert!(removed >= 2, "{forget}");
    s.run(&["--restore-key-file", &rk, "prune"]).ok();
    s.run(&["--restore-key-file", &rk, "verify"]).ok();
    restore(&n2_id, "r2_after").ok();
    assert_eq!(
        s.fingerprint("r2_after"),
        at_n2,
        "night 2 after forget differs"
    );

    // A derived night has no SQL of its own to export.
    let export = s.run(&[
        "--restore-key-file",
        &rk,
        "export",
        &n2_id,
        "--source",
        "mysql",
        "--to",
        s.lb.path("n2.sql").to_str().unwrap(),
    ]);
    assert_eq!(export.code, 2, "{}", export.stderr);
    assert!(export.stderr.contains("derived"), "{}", export.stderr);

    // `backup --full` reads it all.
    let forced = s
        .with_backup_key(&["--json", "backup", "--full"])
        .ok()
        .json();
    assert_eq!(forced["mysql_full_read"], "asked for (--full)", "{forced}");
    churn(&s, &mut rng, 100);
    let n3 = backup();
    assert_eq!(n3["mysql_derived"]["base"], forced["id"], "{n3}");
    churn(&s, &mut rng, 100);
    // A full read due by age (full_read_days), which then stores the
    // binlog up to its coordinates: the proof of the nights before it
    // runs at once.
    let due_cfg = s.lb.path("due.toml");
    std::fs::write(
        &due_cfg,
        std::fs::read_to_string(&s.cfg).unwrap().replace(
            "binlog_nightly = true\n",
            "binlog_nightly = true\nfull_read_days = 0.00001\n",
        ),
    )
    .unwrap();
    let at_full2 = s.fingerprint("clinic");
    let bk = s.lb.backup_key.display().to_string();
    let full2 =
        s.lb.run(&[
            "--config",
            due_cfg.to_str().unwrap(),
            "--backup-key-file",
            &bk,
            "--json",
            "backup",
        ])
        .ok()
        .json();
    assert!(full2["mysql_derived"].is_null(), "{full2}");
    let why = full2["mysql_full_read"].as_str().unwrap();
    assert!(why.contains("one is due every"), "{full2}");
    let proof = s
        .restore_mysql(full2["id"].as_str().unwrap(), "proof", &["--from-binlog"])
        .ok()
        .json();
    assert_eq!(proof["base"], forced["id"], "{proof}");
    assert_eq!(s.fingerprint("proof"), at_full2);

    // The weekly drill of that full read proves the nights before it too.
    let drill = |expect: i32| {
        s.lb.run(&[
            "--config",
            drill_cfg.to_str().unwrap(),
            "--restore-key-file",
            &rk,
            "--json",
            "drill",
        ])
        .code(expect)
    };
    let proved = drill(0).json();
    assert_eq!(proved["snapshot"], full2["id"], "{proved}");
    let notes = proved["sources"][0]["notes"].to_string();
    assert!(notes.contains("binlog proof"), "{notes}");
    assert_eq!(s.fingerprint("staging_nightly"), at_full2);

    // A change the binary log never saw, a derived night, the next full
    // read: its drill fails, naming the table.
    s.sql("SET SESSION sql_log_bin = 0; UPDATE clinic.kinds SET d = d + 1 ORDER BY id LIMIT 1");
    churn(&s, &mut rng, 20);
    let n4 = backup();
    assert_eq!(n4["mysql_derived"]["base"], full2["id"], "{n4}");
    s.with_backup_key(&["backup", "--full"]).ok();
    let failed = drill(4);
    assert!(
        failed.stdout.contains("binlog proof failed"),
        "{}",
        failed.stdout
    );
    assert!(failed.stdout.contains("kinds"), "{}", failed.stdout);

    // The full snapshot a night needs is lost (its file deleted behind
    // lifeboat's back): verify names the night, its restore says what is
    // missing, nothing is restored from something else.
    let n4_id = n4["id"].as_str().unwrap();
    let full2_id = full2["id"].as_str().unwrap();
    std::fs::remove_file(s.lb.repo_path().join("snapshots").join(full2_id)).unwrap();
    let verify = s.run(&["--restore-key-file", &rk, "verify"]);
    assert_ne!(verify.code, 0, "{}", verify.stdout);
    assert!(verify.stdout.contains(&n4_id[..8]), "{}", verify.stdout);
    let status = s.with_backup_key(&["--json", "status"]).json();
    let mysql = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == "mysql")
        .unwrap()
        .clone();
    assert_eq!(mysql["last_failure"]["snapshot"], n4_id, "{mysql}");
    let gone = s.restore_mysql(n4_id, "r_gone", &[]).code(4);
    assert!(gone.stderr.contains(&full2_id[..8]), "{}", gone.stderr);
    assert!(gone.stderr.contains("no longer holds"), "{}", gone.stderr);
}

#[test]
fn binlog_nightlies_beside_a_running_follower_restore_exactly() {
    let s = Setup::with_config(1, "binlog_nightly = true\nbinlog_flush_secs = 1\n");
    kinds_table(&s);
    let full = s.with_backup_key(&["--json", "backup"]).ok().json();
    let mut follower = s.follower(Stdio::piped());
    let mut rng = seeded();
    let mut nights = Vec::new();
    for _ in 0..3 {
        churn(&s, &mut rng, 100);
        let at = s.fingerprint("clinic");
        let night = s.with_backup_key(&["--json", "backup"]).ok().json();
        assert_eq!(night["mysql_derived"]["base"], full["id"], "{night}");
        nights.push((night["id"].as_str().unwrap().to_string(), at));
        std::thread::sleep(Duration::from_millis(700));
    }
    // The follower was never dropped by the nightly's capture: still
    // running, and the nights restore exactly, each to its own moment.
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower stopped"
    );
    follower.kill().unwrap();
    let out = follower.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("reconnecting"), "{log}");
    for (i, (id, at)) in nights.iter().enumerate() {
        let target = format!("night{i}");
        s.restore_mysql(id, &target, &[]).ok();
        assert_eq!(
            &s.fingerprint(&target),
            at,
            "night {i} restores differently"
        );
    }
}

#[test]
fn a_statement_or_a_reset_log_since_the_full_read_makes_the_night_a_full_read() {
    let s = Setup::with_config(1, "binlog_nightly = true\n");
    kinds_table(&s);
    s.with_backup_key(&["backup"]).ok();
    let mut rng = seeded();
    churn(&s, &mut rng, 50);
    // A schema change (a statement in the binlog): the apply could refuse
    // it or skip part of it, so the night reads everything instead.
    s.sql("ALTER TABLE clinic.patients ADD COLUMN z INT NULL");
    churn(&s, &mut rng, 50);
    let at1 = s.fingerprint("clinic");
    let n1 = s.with_backup_key(&["--json", "backup"]).ok().json();
    let why = n1["mysql_full_read"].as_str().unwrap_or_default();
    assert!(why.contains("a statement besides row changes"), "{n1}");
    s.restore_mysql(n1["id"].as_str().unwrap(), "r1", &[]).ok();
    assert_eq!(s.fingerprint("r1"), at1);
    // Row changes only since that full read: derived again.
    churn(&s, &mut rng, 50);
    let at2 = s.fingerprint("clinic");
    let n2 = s.with_backup_key(&["--json", "backup"]).ok().json();
    assert_eq!(n2["mysql_derived"]["base"], n1["id"], "{n2}");
    s.restore_mysql(n2["id"].as_str().unwrap(), "r2", &[]).ok();
    assert_eq!(s.fingerprint("r2"), at2);
    // A write logged as a statement in another database, through its view
    // of ours (the apply would skip it): the night reads everything.
    s.sql("CREATE VIEW other.vt AS SELECT id, s FROM clinic.kinds");
    s.with_backup_key(&["backup"]).ok();
    s.sql("SET SESSION binlog_format = 'STATEMENT'; USE other; UPDATE vt SET s = 'via the view'");
    let at_view = s.fingerprint("clinic");
    let via = s.with_backup_key(&["--json", "backup"]).ok().json();
    assert!(via["mysql_derived"].is_null(), "{via}");
    assert!(
        via["mysql_full_read"]
            .as_str()
            .unwrap_or_default()
            .contains("statement"),
        "{via}"
    );
    s.restore_mysql(via["id"].as_str().unwrap(), "r_view", &[])
        .ok();
    assert_eq!(s.fingerprint("r_view"), at_view);
    // An XA transaction on ours (the apply refuses a prepared one's
    // commit): the night reads everything.
    s.sql(
        "XA START 'x1'; INSERT INTO clinic.kinds (id, grp) VALUES (990001, 1); XA END 'x1'; \
         XA PREPARE 'x1'; XA COMMIT 'x1'",
    );
    let at_xa = s.fingerprint("clinic");
    let xa = s.with_backup_key(&["--json", "backup"]).ok().json();
    assert!(xa["mysql_derived"].is_null(), "{xa}");
    s.restore_mysql(xa["id"].as_str().unwrap(), "r_xa", &[])
        .ok();
    assert_eq!(s.fingerprint("r_xa"), at_xa);
    // The server's log is reset: whatever the next nights are, none
    // chains the old log into the new one, and each restores exactly.
    s.sql("RESET MASTER");
    for i in 3..5 {
        churn(&s, &mut rng, 50);
        let at = s.fingerprint("clinic");
        let n = s.with_backup_key(&["--json", "backup"]);
        assert!(n.code == 0 || n.code == 8, "{}", n.stderr);
        let n = n.json();
        assert!(
            n["mysql_derived"].is_null(),
            "night {i} was derived across the reset: {n}"
        );
        let target = format!("r{i}");
        s.restore_mysql(n["id"].as_str().unwrap(), &target, &[])
            .ok();
        assert_eq!(s.fingerprint(&target), at, "night {i}");
    }
}
