//! The MySQL source against the real MariaDB server: dump a generated
//! clinic database, replay it, and compare with the source table by table
//! (rows and CHECKSUM TABLE, which is comparable within one server), plus
//! consistency under concurrent writers, a killed connection, a restricted
//! user, target safety and the plain-SQL export.

use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::mariadb::{self, TestDb};
use lifeboat_testkit::Lifeboat;

fn backup_mysql(lb: &Lifeboat, db: &TestDb) -> lifeboat_testkit::Output {
    let b = lb.backup_key.display().to_string();
    let url = db.url();
    lb.run(&[
        "backup",
        "--json",
        "--backup-key-file",
        &b,
        "--source",
        "mysql",
        "--mysql-url",
        &url,
    ])
}

/// `lifeboat backup --source mysql` of `url`, to run as the test needs.
fn backup_command(lb: &Lifeboat, url: &str) -> std::process::Command {
    let b = lb.backup_key.display().to_string();
    lb.command(&[
        "backup",
        "--backup-key-file",
        &b,
        "--source",
        "mysql",
        "--mysql-url",
        url,
    ])
}

/// `(table item, content checksum)` of a snapshot, sorted.
fn table_checksums(lb: &Lifeboat, snap: &serde_json::Value) -> Vec<(String, String)> {
    let k = lb.restore_key.display().to_string();
    let show = lb
        .run(&[
            "--json",
            "show",
            snap["id"].as_str().expect("id"),
            "--restore-key-file",
            &k,
        ])
        .ok();
    let mut v: Vec<(String, String)> = show.json()["manifest"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "table")
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                i["sha256"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Start `CALL churn(1000000)` in `db` (the tests' writer) and give it a
/// moment to get going.
fn start_churn(db: &TestDb) -> std::process::Child {
    let writer = mariadb::client(Some(&db.name))
        .arg("-e")
        .arg("CALL churn(1000000)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("writer");
    std::thread::sleep(Duration::from_millis(300));
    writer
}

/// Stop a `CALL churn(...)` writer, on the server too (killing the client
/// does not stop the procedure).
fn stop_churn(mut writer: std::process::Child) {
    for id in mariadb::sql(
        None,
        "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE 'CALL churn%'",
    )
    .lines()
    {
        let _ = mariadb::client(None).arg("-e").arg(format!("KILL {id}")).output();
    }
    let _ = writer.kill();
    let _ = writer.wait();
}

fn replay(lb: &Lifeboat, target: &str, extra: &[&str]) -> lifeboat_testkit::Output {
    let k = lb.restore_key.display().to_string();
    let mut args = vec![
        "restore",
        "--json",
        "--restore-key-file",
        &k,
        "latest",
        "--source",
        "mysql",
        "--target",
        target,
    ];
    args.extend_from_slice(extra);
    lb.run(&args)
}

#[test]
fn a_clinic_database_replays_identical_with_working_objects_and_exports_to_plain_sql() {
    let src = TestDb::new("clinic");
    src.load_clinic(12, 42);
    // A value of every awkward kind, to be sure the round trip is exact.
    src.sql(
        "INSERT INTO patients (id, medical_record_no, name, birth_date, phone, photo, notes, created_by) VALUES \
         (999999, 'MR-EDGE', 'Zoë 😀 O''Neil \\\\ \"q\"', '2000-02-29', NULL, X'00FF0A0D1A27', 'line1\\nline2\\r\\0end', 1)",
    );
    let lb = Lifeboat::local();
    lb.init();
    let out = backup_mysql(&lb, &src).ok();
    assert_eq!(
        out.json()["stats"]["items"],
        9,
        "7 tables + schema + accounts: {}",
        out.stdout
    );

    let copy = TestDb::unborn("copy");
    let r = replay(&lb, &copy.url(), &[]).ok();
    let report = r.json();
    assert_eq!(report["tables"].as_array().map(Vec::len), Some(7));
    assert!(report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["checksum_matches"] == true));
    // Independently of lifeboat's own check: the server's view.
    assert_eq!(copy.fingerprint(), src.fingerprint());
    assert_eq!(copy.objects(), (2, 1, 1, 1));
    assert_eq!(copy.objects(), src.objects());
    // The objects work: the view computes, the procedure runs, the trigger fires.
    assert_eq!(
        copy.sql("SELECT COUNT(*) FROM patient_balance"),
        src.sql("SELECT COUNT(*) FROM patient_balance")
    );
    assert_eq!(
        copy.sql("CALL patient_summary(5)"),
        src.sql("CALL patient_summary(5)")
    );
    let before: u64 = copy
        .sql("SELECT COUNT(*) FROM audit_log")
        .trim()
        .parse()
        .unwrap();
    copy.sql(
        "UPDATE appointments SET status = IF(status = 'done', 'cancelled', 'done') WHERE id = 1",
    );
    let after: u64 = copy
        .sql("SELECT COUNT(*) FROM audit_log")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        after,
        before + 1,
        "the trigger did not fire in the replayed database"
    );
    assert_eq!(
        copy.sql("SELECT HEX(photo), notes FROM patients WHERE id = 999999"),
        src.sql("SELECT HEX(photo), notes FROM patients WHERE id = 999999")
    );

    // Export, load with the stock client, compare.
    let k = lb.restore_key.display().to_string();
    let file = lb.path("dump.sql");
    let f = file.display().to_string();
    lb.run(&[
        "export",
        "--restore-key-file",
        &k,
        "latest",
        "--source",
        "mysql",
        "--to",
        &f,
    ])
    .ok();
    let loaded = TestDb::new("export");
    let (ok, err) = mariadb::run_script(&loaded.name, &std::fs::read(&file).expect("read dump"));
    assert!(ok, "the stock client could not load the export: {err}");
    assert_eq!(loaded.fingerprint(), src.fingerprint());
    assert_eq!(loaded.objects(), src.objects());
}

#[test]
fn the_dump_is_one_point_in_time_while_writers_run() {
    // Money moves between two tables in transactions; a dump that read the
    // tables at different moments would see the total change.
    let db = TestDb::new("bank");
    let (ok, err) = mariadb::run_script(
        &db.name,
        b"CREATE TABLE checking (id INT PRIMARY KEY, balance BIGINT NOT NULL, pad CHAR(200) NOT NULL DEFAULT '');
          CREATE TABLE savings (id INT PRIMARY KEY, balance BIGINT NOT NULL, pad CHAR(200) NOT NULL DEFAULT '');
          INSERT INTO checking (id, balance) SELECT seq, 1000 FROM seq_1_to_100000;
          INSERT INTO savings (id, balance) SELECT seq, 1000 FROM seq_1_to_100000;
          DELIMITER //
          CREATE PROCEDURE churn(n INT)
          BEGIN
            DECLARE i INT DEFAULT 0;
            WHILE i < n DO
              START TRANSACTION;
              UPDATE checking SET balance = balance - 7 WHERE id = 1 + (i * 7919) % 100000;
              UPDATE savings SET balance = balance + 7 WHERE id = 1 + (i * 104729) % 100000;
              COMMIT;
              SET i = i + 1;
            END WHILE;
          END //
          DELIMITER ;",
    );
    assert!(ok, "{err}");
    let total = "SELECT (SELECT SUM(balance) FROM checking) + (SELECT SUM(balance) FROM savings)";
    assert_eq!(db.sql(total).trim(), "200000000");
    let lb = Lifeboat::local();
    lb.init();
    let writer = start_churn(&db);
    let before = db.sql("SELECT SUM(balance) FROM checking");
    let mut snapshots = 0;
    for _ in 0..3 {
        backup_mysql(&lb, &db).ok();
        snapshots += 1;
    }
    let after = db.sql("SELECT SUM(balance) FROM checking");
    stop_churn(writer);
    assert_ne!(before, after, "the writer did not run during the dumps");
    assert_eq!(lb.snapshots().len(), snapshots);
    // Two connections read the two tables, each in its own transaction
    // started on the same snapshot (under LOCK TABLES ... READ).
    for s in lb.snapshots() {
        assert_eq!(s["sources"]["mysql"]["facts"]["connections"], 2, "{s}");
    }
    let copy = TestDb::unborn("bankcopy");
    replay(&lb, &copy.url(), &[]).ok();
    assert_eq!(
        copy.sql(total).trim(),
        "200000000",
        "the dump mixed two points in time"
    );
}

#[test]
fn killing_the_dump_connection_commits_nothing_with_a_clear_error() {
    let db = TestDb::new("killed");
    db.sql(
        "CREATE TABLE big (id INT PRIMARY KEY, v CHAR(255) NOT NULL);
         INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 255) FROM seq_1_to_1500000;",
    );
    let lb = Lifeboat::local();
    lb.init();
    let child = backup_command(&lb, &db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backup");
    // Find the dump's connection while it streams the table, and kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut killed = false;
    while Instant::now() < deadline && !killed {
        let id = mariadb::sql(
            None,
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND INFO LIKE 'SELECT %FROM `{}`.`big`%'",
                db.name
            ),
        );
        if let Some(id) = id.lines().next().filter(|l| !l.is_empty()) {
            mariadb::sql(None, &format!("KILL {id}"));
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(killed, "never saw the dump's SELECT");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("MySQL dump failed") && err.contains("big"),
        "{err}"
    );
    assert!(err.contains("no snapshot was stored"), "{err}");
    assert!(lb.snapshots().is_empty());
    lb.verify_read_data().ok();
}

#[test]
fn a_user_without_super_replays_objects_defined_by_root() {
    let src = TestDb::new("definer");
    src.load_clinic(2, 3);
    let definers = src.sql("SELECT DEFINER FROM information_schema.TRIGGERS UNION SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()");
    assert!(
        definers.contains("root@"),
        "the source objects should be defined by root: {definers}"
    );
    // The grants of Aiven's avnadmin: broad, but no SUPER (nor SET USER).
    let user = format!("lbt_avn_{}", std::process::id());
    mariadb::sql(
        None,
        &format!(
            "DROP USER IF EXISTS '{user}'@'%'; CREATE USER '{user}'@'%' IDENTIFIED BY 'Avn-pass-1';
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER,
               SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE,
               REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT,
               TRIGGER ON *.* TO '{user}'@'%' WITH GRANT OPTION;"
        ),
    );
    // Control: the stock dump (DEFINER=root) fails for this user.
    let plain = std::process::Command::new("mariadb-dump")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--routines",
            "--triggers",
            "--events",
            &src.name,
        ])
        .output()
        .expect("mariadb-dump");
    let control = TestDb::new("control");
    let loaded = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            &user,
            "-pAvn-pass-1",
            &control.name,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            // The client stops at the first DEFINER error: ignore the broken pipe.
            let _ = c.stdin.take().expect("stdin").write_all(&plain.stdout);
            c.wait_with_output()
        })
        .expect("load");
    assert!(
        !loaded.status.success(),
        "the control load with DEFINER=root unexpectedly worked"
    );

    let lb = Lifeboat::local();
    lb.init();
    backup_mysql(&lb, &src).ok();
    let copy = TestDb::unborn("avncopy");
    let target = format!("mysql://{user}@127.0.0.1:3306/{}", copy.name);
    let k = lb.restore_key.display().to_string();
    let out = lb
        .command(&[
            "restore",
            "--restore-key-file",
            &k,
            "latest",
            "--source",
            "mysql",
            "--target",
            &target,
        ])
        .env("LIFEBOAT_TARGET_PASSWORD", "Avn-pass-1")
        .output()
        .expect("restore");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("Avn-pass-1") && !stderr.contains("Avn-pass-1"),
        "the password was printed"
    );
    assert_eq!(copy.fingerprint(), src.fingerprint());
    assert_eq!(copy.objects(), src.objects());
    let definer = mariadb::sql(
        None,
        &format!(
            "SELECT DISTINCT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}'",
            copy.name
        ),
    );
    assert!(definer.starts_with(&format!("{user}@")), "{definer}");

    // The same user takes the dump (a password login through lifeboat's
    // own reader, with only these grants); a wrong password is refused by
    // name, and no password is ever printed.
    let url = format!("mysql://{user}@127.0.0.1:3306/{}", src.name);
    let dump_as = |password: &str| {
        backup_command(&lb, &url)
            .env("LIFEBOAT_MYSQL_PASSWORD", password)
            .output()
            .expect("backup")
    };
    let before = lb.snapshots().len();
    let bad = dump_as("Wrong-pass-9");
    let bad_err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(3), "{bad_err}");
    assert!(
        bad_err.contains("Access denied") && bad_err.contains(&user),
        "{bad_err}"
    );
    assert!(!bad_err.contains("Wrong-pass-9"), "{bad_err}");
    assert_eq!(lb.snapshots().len(), before);
    let good = dump_as("Avn-pass-1");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(lb.snapshots().len(), before + 1);
    // What it stored is what root's dump stored, table by table.
    let snaps = lb.snapshots();
    assert_eq!(
        table_checksums(&lb, &snaps[snaps.len() - 1]),
        table_checksums(&lb, &snaps[0])
    );
    mariadb::sql(None, &format!("DROP USER '{user}'@'%'"));
}

#[test]
fn replay_refuses_the_source_and_non_empty_targets_without_force() {
    let src = TestDb::new("safety");
    src.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a'), (2, NULL)");
    let lb = Lifeboat::local();
    lb.init();
    backup_mysql(&lb, &src).ok();
    // The source itself.
    let out = replay(&lb, &src.url(), &[]).code(2);
    assert!(
        out.stderr
            .contains("is the database this snapshot was taken from"),
        "{}",
        out.stderr
    );
    assert_eq!(src.sql("SELECT COUNT(*) FROM t").trim(), "2");
    // A non-empty target.
    let other = TestDb::new("busy");
    other.sql("CREATE TABLE keep_me (id INT PRIMARY KEY)");
    let out = replay(&lb, &other.url(), &[]).code(2);
    assert!(
        out.stderr.contains("not empty") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    assert_eq!(other.tables(), ["keep_me"]);
    // With --force it is replaced.
    replay(&lb, &other.url(), &["--force"]).ok();
    assert_eq!(other.tables(), ["t"]);
    assert_eq!(other.fingerprint(), src.fingerprint());
}

#[test]
fn nightly_backups_after_scattered_one_percent_changes_add_under_five_percent() {
    let db = TestDb::new("nightly");
    db.load_clinic(30, 9);
    let lb = Lifeboat::local();
    lb.init();
    let added = |out: &lifeboat_testkit::Output| {
        out.json()["stats"]["added_bytes"]
            .as_u64()
            .expect("added_bytes")
    };
    let first = added(&backup_mysql(&lb, &db).ok());
    for night in 1..=3u64 {
        // 1% of appointments updated at random places (the audit trigger
        // adds rows for status changes), and 1% new audit rows.
        db.sql(&format!(
            "UPDATE appointments SET status = IF(status = 'done', 'no_show', 'done'), \
             notes = CONCAT(COALESCE(notes, ''), ' n{night}') WHERE (id * 7 + {night}) % 100 = 0;
             INSERT INTO audit_log (user_id, action, entity, entity_id, details, at)
               SELECT user_id, 'view', entity, entity_id, details, at FROM audit_log WHERE id % 100 = {night};"
        ));
        let out = backup_mysql(&lb, &db).ok();
        let a = added(&out);
        eprintln!(
            "night {night}: added {a} bytes = {:.2}% of the first backup ({first})",
            100.0 * a as f64 / first as f64
        );
        assert!(
            (a as f64) < 0.05 * first as f64,
            "night {night} added {a} of {first} bytes"
        );
    }
    // The chain of patches restores exactly, with lifeboat and by hand.
    let item = format!("{}/appointments", db.name);
    let by_lifeboat = lb.path("appointments.rows");
    lb.restore_item("latest", &item, &by_lifeboat).ok();
    let by_hand = lb.path("appointments.by-hand");
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/recover-by-hand.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(lb.repo_path())
        .arg(&lb.restore_key)
        .arg(&item)
        .arg(&by_hand)
        .output()
        .expect("python3");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        lifeboat_testkit::sha256_file(&by_hand),
        lifeboat_testkit::sha256_file(&by_lifeboat)
    );
    let copy = TestDb::unborn("nightlycopy");
    replay(&lb, &copy.url(), &[]).ok();
    assert_eq!(copy.fingerprint(), db.fingerprint());
    lb.verify_read_data().ok();

    // A new backup host (no cache) still backs up correctly, just bigger.
    std::fs::remove_dir_all(lb.cache_dir()).expect("rm cache");
    db.sql("UPDATE patients SET phone = '+62-000' WHERE id % 100 = 5");
    backup_mysql(&lb, &db).ok();
    let copy2 = TestDb::unborn("nightlycopy2");
    replay(&lb, &copy2.url(), &[]).ok();
    assert_eq!(copy2.fingerprint(), db.fingerprint());
}

#[test]
fn tls_with_a_ca_file_is_verified_and_a_wrong_ca_is_refused() {
    let server = mariadb::TlsServer::start();
    server
        .sql("CREATE DATABASE clinic; CREATE TABLE clinic.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO clinic.t VALUES (1, 'over TLS'), (2, NULL)")
        .expect("seed");
    let lb = Lifeboat::local();
    lb.init();
    let config = |ca: &std::path::Path, mode: &str| {
        let path = lb.path(&format!("{mode}.toml"));
        std::fs::write(
            &path,
            format!(
                "[repository]\nurl = \"{}\"\nbackup_key_file = \"{}\"\n[mysql]\nurl = \"mysql://root@127.0.0.1:{}/clinic\"\nca_file = \"{}\"\nssl_mode = \"{mode}\"\n",
                lb.repo,
                lb.backup_key.display(),
                server.port,
                ca.display()
            ),
        )
        .expect("config");
        path.display().to_string()
    };
    for mode in ["verify-identity", "verify-ca"] {
        let c = config(&server.ca, mode);
        lb.run(&["--config", &c, "backup", "--source", "mysql"])
            .ok();
    }
    // A certificate from another CA: refused, nothing stored.
    let c = config(&server.other_ca, "verify-ca");
    let out = lb
        .run(&["--config", &c, "backup", "--source", "mysql"])
        .code(3);
    assert!(out.stderr.contains("certificate"), "{}", out.stderr);
    // Without TLS the server refuses us.
    let c = config(&server.ca, "disabled");
    lb.run(&["--config", &c, "backup", "--source", "mysql"])
        .code(3);
    assert_eq!(lb.snapshots().len(), 2);
    // What came over TLS replays identical (checked by lifeboat).
    let copy = TestDb::unborn("tlscopy");
    replay(&lb, &copy.url(), &[]).ok();
    assert_eq!(copy.sql("SELECT v FROM t ORDER BY id"), "over TLS\nNULL\n");
}

#[test]
fn two_connections_over_key_ranges_store_exactly_what_one_connection_stores() {
    // Tables big enough (by the server's estimate) to be read in key
    // ranges: the items must not depend on how the rows were fetched.
    let db = TestDb::new("ranges");
    let (ok, err) = mariadb::run_script(
        &db.name,
        b"CREATE TABLE kinds (id INT PRIMARY KEY, name VARCHAR(10));
          INSERT INTO kinds SELECT seq, CONCAT('k', seq) FROM seq_1_to_10;
          CREATE TABLE wide (id BIGINT PRIMARY KEY, v VARCHAR(40), kind INT NOT NULL, pad CHAR(250) NOT NULL DEFAULT 'x',
            UNIQUE KEY v (v), KEY kind_pad (kind, pad(20)),
            CONSTRAINT wide_kind FOREIGN KEY (kind) REFERENCES kinds (id));
          INSERT INTO wide (id, v, kind) SELECT CAST(seq AS SIGNED) * 3 - 50000, CONCAT('row ', seq), 1 + seq % 10 FROM seq_1_to_150000;
          CREATE TABLE pairs (a INT, b INT, note TEXT, PRIMARY KEY (a, b));
          INSERT INTO pairs SELECT seq % 100, seq, REPEAT('n', seq % 50) FROM seq_1_to_20000;
          ANALYZE TABLE wide;",
    );
    assert!(ok, "{err}");
    let lb = Lifeboat::local();
    lb.init();
    let b = lb.backup_key.display().to_string();
    let items = |connections: usize| {
        let cfg = lb.path(&format!("c{connections}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[mysql]\nurl = \"{}\"\nconnections = {connections}\n",
                db.url()
            ),
        )
        .expect("config");
        let out = lb
            .run(&[
                "--config",
                cfg.to_str().expect("utf-8"),
                "backup",
                "--backup-key-file",
                &b,
                "--source",
                "mysql",
            ])
            .ok();
        let snap = lb.snapshots().pop().expect("a snapshot");
        assert_eq!(
            snap["sources"]["mysql"]["facts"]["connections"], connections,
            "{}",
            out.stderr
        );
        table_checksums(&lb, &snap)
    };
    let one = items(1);
    let two = items(2);
    assert_eq!(one.len(), 3);
    assert_eq!(one, two);
    let wide_mb: u64 = db
        .sql(&format!("SELECT DATA_LENGTH DIV 1048576 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'wide'", db.name))
        .trim()
        .parse()
        .expect("size");
    assert!(
        wide_mb >= 32,
        "wide is {wide_mb} MiB: too small to be read in ranges"
    );
    // The replay adds wide's secondary indexes and foreign key after its
    // rows (it is big enough); the table comes out defined as it was.
    let copy = TestDb::unborn("rangescopy");
    replay(&lb, &copy.url(), &[]).ok();
    assert_eq!(copy.fingerprint(), db.fingerprint());
    for t in ["wide", "kinds", "pairs"] {
        let show = |d: &TestDb| d.sql(&format!("SHOW CREATE TABLE {t}"));
        assert_eq!(show(&copy), show(&db), "{t} is defined differently");
    }
    assert!(show_contains(
        &copy,
        "wide",
        "FOREIGN KEY (`kind`) REFERENCES `kinds`"
    ));
}

fn show_contains(db: &TestDb, table: &str, what: &str) -> bool {
    db.sql(&format!("SHOW CREATE TABLE {table}")).contains(what)
}

#[test]
fn several_databases_share_one_snapshot_and_restore_one_by_one() {
    // Money moves between a table in one database and a table in another
    // while both are dumped: one snapshot must hold one point in time
    // across databases.
    let a = TestDb::new("multi_a");
    let b = TestDb::new("multi_b");
    let (ok, err) = mariadb::run_script(
        &b.name,
        b"CREATE TABLE savings (id INT PRIMARY KEY, balance BIGINT NOT NULL);
          INSERT INTO savings SELECT seq, 1000 FROM seq_1_to_20000;",
    );
    assert!(ok, "{err}");
    let script = format!(
        "CREATE TABLE checking (id INT PRIMARY KEY, balance BIGINT NOT NULL);
         INSERT INTO checking SELECT seq, 1000 FROM seq_1_to_20000;
         DELIMITER //
         CREATE PROCEDURE churn(n INT)
         BEGIN
           DECLARE i INT DEFAULT 0;
           WHILE i < n DO
             START TRANSACTION;
             UPDATE checking SET balance = balance - 3 WHERE id = 1 + (i * 7919) % 20000;
             UPDATE `{b}`.savings SET balance = balance + 3 WHERE id = 1 + (i * 104729) % 20000;
             COMMIT;
             SET i = i + 1;
           END WHILE;
         END //
         DELIMITER ;",
        b = b.name
    );
    let (ok, err) = mariadb::run_script(&a.name, script.as_bytes());
    assert!(ok, "{err}");
    let lb = Lifeboat::local();
    lb.init();
    let cfg = lb.path("multi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mysql]\nurl = \"{}\"\ndatabases = [\"{}\", \"{}\"]\n",
            a.url(),
            a.name,
            b.name
        ),
    )
    .expect("config");
    let cfg = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let writer = start_churn(&a);
    let before = a.sql("SELECT SUM(balance) FROM checking");
    lb.run(&[
        "--config",
        &cfg,
        "backup",
        "--backup-key-file",
        &bk,
        "--source",
        "mysql",
    ])
    .ok();
    let after = a.sql("SELECT SUM(balance) FROM checking");
    stop_churn(writer);
    assert_ne!(before, after, "the writer did not run during the dump");
    let snap = lb.snapshots().pop().expect("snapshot");
    let dbs = &snap["sources"]["mysql"]["facts"]["databases"];
    assert_eq!(dbs.as_array().map(Vec::len), Some(2), "{snap}");

    // Without --database the restore names both; with it, each comes back.
    let copy_a = TestDb::unborn("multi_a_copy");
    let copy_b = TestDb::unborn("multi_b_copy");
    let restore = |db: Option<&str>, target: &str| {
        let mut args = vec![
            "--config",
            &cfg,
            "restore",
            "latest",
            "--source",
            "mysql",
            "--target",
            target,
            "--restore-key-file",
            &rk,
        ];
        if let Some(d) = db {
            args.extend(["--database", d]);
        }
        lb.run(&args)
    };
    let refused = restore(None, &copy_a.url()).code(2);
    assert!(
        refused.stderr.contains(&a.name) && refused.stderr.contains(&b.name),
        "{}",
        refused.stderr
    );
    // churn() updates the other database by name: replayed into copy_a it
    // would update the live b when called, so replay refuses it unless
    // told the snapshot is trusted (exit 4, nothing created).
    let untrusted = restore(Some(&a.name), &copy_a.url()).code(4);
    assert!(
        untrusted.stderr.contains("procedure churn")
            && untrusted.stderr.contains(&b.name)
            && untrusted.stderr.contains("--trust-object-bodies"),
        "{}",
        untrusted.stderr
    );
    assert!(copy_a.tables().is_empty());
    let mut args = vec![
        "--config", &cfg, "restore", "latest", "--source", "mysql", "--target",
    ];
    let url_a = copy_a.url();
    args.extend([
        url_a.as_str(),
        "--restore-key-file",
        &rk,
        "--database",
        &a.name,
    ]);
    args.push("--trust-object-bodies");
    lb.run(&args).ok();
    restore(Some(&b.name), &copy_b.url()).ok();
    let sum = |db: &TestDb, t: &str| -> i64 {
        db.sql(&format!("SELECT SUM(balance) FROM {t}"))
            .trim()
            .parse()
            .expect("sum")
    };
    assert_eq!(
        sum(&copy_a, "checking") + sum(&copy_b, "savings"),
        40_000_000,
        "the two databases were read at different moments"
    );
    assert_eq!(copy_a.tables(), vec!["checking".to_string()]);
    assert_eq!(copy_b.tables(), vec!["savings".to_string()]);
    // Export picks one too.
    let sql = lb.path("b.sql");
    lb.run(&[
        "--config",
        &cfg,
        "export",
        "latest",
        "--source",
        "mysql",
        "--database",
        &b.name,
        "--to",
        sql.to_str().expect("utf-8"),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    let text = std::fs::read_to_string(&sql).expect("export");
    assert!(text.contains("savings") && !text.contains("checking"));
}
