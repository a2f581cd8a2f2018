//! `snapshot-before-migration`: a verified, tagged snapshot with its note,
//! kept by retention, and a printed rollback command that, run as printed,
//! brings the database back to the state before the "migration".

use lifeboat_testkit::mariadb::TestDb;
use lifeboat_testkit::Lifeboat;

#[test]
fn the_printed_rollback_command_restores_the_database_from_before_the_migration() {
    let lb = Lifeboat::local();
    lb.init();
    let db = TestDb::new("premig");
    db.sql("CREATE TABLE patients (id INT PRIMARY KEY, name VARCHAR(50), born DATE)");
    db.sql(
        "INSERT INTO patients VALUES (1,'Ana','1980-01-02'),(2,'Bo',NULL),(3,'Çelik','2001-12-31')",
    );
    let before = db.fingerprint();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let url = db.url();
    let out = lb
        .run(&[
            "snapshot-before-migration",
            "--note",
            "add patients.email",
            "--mysql-url",
            &url,
            "--backup-key-file",
            &bk,
            "--restore-key-file",
            &rk,
        ])
        .ok();
    assert!(
        out.stdout.contains("read back and their SHA-256 checked"),
        "{}",
        out.stdout
    );
    let snaps = lb.snapshots();
    assert_eq!(snaps[0]["tags"], serde_json::json!(["pre-migration"]));
    assert_eq!(snaps[0]["note"], "add patients.email");
    let rollback = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("lifeboat "))
        .unwrap_or_else(|| panic!("no rollback command in {}", out.stdout))
        .replace("RESTORE_KEY", &rk);

    // The migration, and it goes wrong.
    db.sql("ALTER TABLE patients ADD COLUMN email VARCHAR(100)");
    db.sql("UPDATE patients SET name = 'oops'");
    db.sql("DELETE FROM patients WHERE id = 3");
    assert_ne!(db.fingerprint(), before);

    // Nightlies come and go; retention keeps the pre-migration snapshot.
    for _ in 0..2 {
        lb.run(&[
            "backup",
            "--source",
            "mysql",
            "--mysql-url",
            &url,
            "--backup-key-file",
            &bk,
        ])
        .ok();
    }
    lb.run(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--restore-key-file",
        &rk,
    ])
    .ok();
    let left = lb.snapshots();
    assert_eq!(left.len(), 2);
    assert!(left
        .iter()
        .any(|s| s["tags"] == serde_json::json!(["pre-migration"])));

    // Run the rollback exactly as printed.
    let args: Vec<&str> = rollback.split_whitespace().skip(1).collect();
    lb.run(&args).ok();
    assert_eq!(db.fingerprint(), before);
}
