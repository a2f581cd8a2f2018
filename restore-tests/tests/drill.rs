//! `lifeboat drill`: a snapshot of all four sources restored into staging
//! (database, directory, scratch dir), every item verified, document rows
//! cross-checked against objects, RTO and RPO reported in JSON and
//! Markdown. A row deleted from staging before verification fails the
//! drill and names the table; a sample restores only part of the objects.

use lifeboat_testkit::git::git;
use lifeboat_testkit::mariadb::TestDb;
use lifeboat_testkit::render::{FakeRender, World};
use lifeboat_testkit::Lifeboat;
use sha2::{Digest, Sha256};

const KEY: &str = "rnd_DrillKey";

#[test]
fn a_drill_restores_verifies_and_reports_and_a_planted_difference_fails_it() {
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_RENDER_KEY", KEY);
    // Uploads: 40 documents in a directory; rows point at them.
    let uploads = lb.path("uploads");
    let db = TestDb::new("drillsrc");
    db.sql(
        "CREATE TABLE medical_documents (id INT PRIMARY KEY, patient_id INT NOT NULL, \
         storage_provider ENUM('r2','local') NOT NULL, storage_bucket VARCHAR(100), \
         storage_key VARCHAR(500) NOT NULL, sha256 CHAR(64) NOT NULL, size_bytes BIGINT NOT NULL)",
    );
    db.sql("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)");
    db.sql("INSERT INTO notes VALUES (1,'a'),(2,'b'),(3,'c')");
    let mut rows = Vec::new();
    for i in 0..40 {
        let key = format!("patients/{}/doc {i}.pdf", i % 7);
        let body = format!("%PDF document {i} ").repeat(50 + i);
        let path = uploads.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &body).unwrap();
        rows.push(format!(
            "({i},{},'r2','uploads','{key}','{}',{})",
            i % 7,
            hex::encode(Sha256::digest(body.as_bytes())),
            body.len()
        ));
    }
    db.sql(&format!(
        "INSERT INTO medical_documents VALUES {}",
        rows.join(",")
    ));
    let fake = FakeRender::start(World::clinic(9), KEY);
    let code = lb.path("code");
    std::fs::create_dir_all(&code).unwrap();
    git(&code, &["init", "--quiet", "-b", "main"]);
    std::fs::write(code.join("app.js"), "console.log(1)\n").unwrap();
    git(&code, &["add", "."]);
    git(&code, &["commit", "--quiet", "-m", "app"]);

    let staging_db = TestDb::unborn("drillstg");
    let staging_dir = lb.path("staging");
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mysql]\nurl = \"{}\"\n\n[objects]\npath = \"{}\"\n\n[render]\napi_key = \"${{TEST_RENDER_KEY}}\"\napi_url = \"{}\"\n\n\
             [[git]]\nurl = \"{}\"\nname = \"clinic\"\n\n[staging]\nmysql_url = \"{}\"\ndir = \"{}\"\n",
            db.url(),
            uploads.display(),
            fake.url,
            code.display(),
            staging_db.url(),
            staging_dir.display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    lb.run(&["--config", &cfg, "backup", "--backup-key-file", &bk])
        .ok();

    // A full drill passes, with a report in JSON and Markdown.
    let report = lb.path("drill.json");
    let out = lb
        .run(&[
            "--config",
            &cfg,
            "drill",
            "--report",
            report.to_str().unwrap(),
            "--restore-key-file",
            &rk,
        ])
        .ok();
    assert!(
        out.stdout.contains("Restore drill PASSED"),
        "{}",
        out.stdout
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["problems"], serde_json::json!([]), "{r}");
    let by_source = |name: &str| {
        r["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {r}"))
    };
    let mysql = by_source("mysql");
    assert_eq!(mysql["items"], 2); // tables read back and compared
    assert_eq!(mysql["items_expected"], 2);
    let objects = by_source("objects");
    assert_eq!(objects["items"], 40);
    assert_eq!(objects["items_expected"], 40);
    assert_eq!(by_source("render")["items"], 3); // 2 services + 1 env group
    assert_eq!(by_source("git")["items"], 1);
    assert_eq!(r["cross_check"]["rows"], 40);
    assert_eq!(r["cross_check"]["missing"], 0);
    assert!(r["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["rpo_seconds"].as_i64().unwrap() >= 0);
    let md = std::fs::read_to_string(lb.path("drill.md")).unwrap();
    assert!(md.contains("RTO") && md.contains("| mysql |"), "{md}");
    // Staging really holds the data.
    assert_eq!(staging_db.fingerprint(), db.fingerprint());
    assert_eq!(
        std::fs::read(staging_dir.join("drill/objects/patients/3/doc 10.pdf")).unwrap(),
        std::fs::read(uploads.join("patients/3/doc 10.pdf")).unwrap()
    );

    // A row deleted from staging between restore and verification fails
    // the drill (exit 4) and names the table.
    let hook = format!(
        "mariadb -h 127.0.0.1 -P 3306 -u root {} -e 'DELETE FROM notes WHERE id = 2'",
        staging_db.name
    );
    let out = lb
        .run(&[
            "--config",
            &cfg,
            "drill",
            "--exec-before-verify",
            &hook,
            "--json",
            "--restore-key-file",
            &rk,
        ])
        .code(4);
    let r = out.json();
    let problems = r["problems"].to_string();
    assert!(problems.contains("notes"), "{problems}");
    assert!(!problems.contains("medical_documents ("), "{problems}");
    assert!(out.stderr.contains("FAILED"), "{}", out.stderr);

    // A 25% sample restores a part of the objects, all verified.
    let out = lb
        .run(&[
            "--config",
            &cfg,
            "drill",
            "--sample",
            "25",
            "--json",
            "--restore-key-file",
            &rk,
        ])
        .ok();
    let r = out.json();
    let objects = r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "objects")
        .unwrap()
        .clone();
    let n = objects["items"].as_u64().unwrap();
    assert!(n > 0 && n < 40, "{objects}");
    assert_eq!(objects["items"], objects["items_expected"]);
}
