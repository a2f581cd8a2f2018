//! `check-references`: the documents table of a MySQL backup against the
//! objects of a bucket backup (both in one snapshot), and the same live.
//! Planted: rows whose object is missing, a row whose object differs,
//! objects no row points at, rows still on local storage.

use lifeboat_testkit::bucket::{self, S3Client};
use lifeboat_testkit::mariadb::TestDb;
use lifeboat_testkit::{Lifeboat, S3Server};

#[test]
fn check_references_finds_exactly_the_planted_rows_and_objects() {
    let server = S3Server::start();
    let s3 = S3Client::new(&server.endpoint);
    let bucket = format!("lb-xref-{}", std::process::id());
    server.create_bucket(&bucket);
    let objects = bucket::generate(40, 3, 256 << 10);
    // Objects 0..36 have rows; 36..40 are orphans.
    s3.put_all(&bucket, &objects);

    let db = TestDb::new("xref");
    db.sql(
        "CREATE TABLE medical_documents (id INT PRIMARY KEY, patient_id INT NOT NULL, \
         storage_provider ENUM('r2','local') NOT NULL, storage_bucket VARCHAR(100), \
         storage_key VARCHAR(500) NOT NULL, sha256 CHAR(64) NOT NULL, size_bytes BIGINT NOT NULL)",
    );
    let mut values = Vec::new();
    for (i, o) in objects.iter().take(36).enumerate() {
        let mut sha = o.sha256();
        if i == 7 {
            sha = "0".repeat(64); // planted: the stored file is not the one recorded
        }
        values.push(format!(
            "({i},1,'r2','{bucket}','{}','{sha}',{})",
            o.key.replace('\'', "''"),
            o.size
        ));
    }
    // Planted: three rows whose files were never uploaded, two local rows.
    for (i, key) in ["lost/a.pdf", "lost/b ü.pdf", "lost/c.pdf"]
        .iter()
        .enumerate()
    {
        values.push(format!(
            "({},1,'r2','{bucket}','{key}','{}',10)",
            100 + i,
            "a".repeat(64)
        ));
    }
    for i in 0..2 {
        values.push(format!(
            "({},1,'local',NULL,'uploads/old {i}.pdf','{}',10)",
            200 + i,
            "b".repeat(64)
        ));
    }
    db.sql(&format!(
        "INSERT INTO medical_documents VALUES {}",
        values.join(",")
    ));

    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_R2_SECRET", "testing-secret");
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mysql]\nurl = \"{}\"\n\n[objects]\nendpoint = \"{}\"\nbucket = \"{bucket}\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"${{TEST_R2_SECRET}}\"\n",
            db.url(),
            server.endpoint
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    // One snapshot with both sources.
    lb.run(&[
        "--config",
        &cfg,
        "--backup-key-file",
        &bk,
        "backup",
        "--source",
        "mysql",
        "--source",
        "objects",
    ])
    .ok();

    let check = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            &cfg,
            "--restore-key-file",
            &rk,
            "--json",
            "check-references",
        ];
        args.extend_from_slice(extra);
        let out = lb.run(&args).code(4);
        out.json()
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["key"].as_str().unwrap().to_string())
            .collect()
    };
    let mut orphans: Vec<String> = objects[36..].iter().map(|o| o.key.clone()).collect();
    orphans.sort();
    for mode in [&[][..], &["--live-db", "--live-objects"][..]] {
        let r = check(mode);
        assert_eq!(r["rows"], 41, "{mode:?}");
        assert_eq!(r["objects"], 40, "{mode:?}");
        assert_eq!(
            keys(&r["missing"]),
            ["lost/a.pdf", "lost/b ü.pdf", "lost/c.pdf"],
            "{mode:?}"
        );
        assert_eq!(
            keys(&r["local"]),
            ["uploads/old 0.pdf", "uploads/old 1.pdf"],
            "{mode:?}"
        );
        assert_eq!(r["orphans"].as_array().unwrap().len(), 4, "{mode:?}");
        let got: Vec<String> = r["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, orphans, "{mode:?}");
        if mode.is_empty() {
            // Only the snapshot knows each object's SHA-256.
            assert_eq!(keys(&r["differs"]), [objects[7].key.clone()]);
        }
    }

    // Put the files back (and fix the recorded hash): the live check passes.
    db.sql("DELETE FROM medical_documents WHERE id IN (100,101,102)");
    let out = lb
        .run(&[
            "--config",
            &cfg,
            "check-references",
            "--live-db",
            "--live-objects",
        ])
        .ok();
    assert!(out.stdout.contains("0 missing"), "{}", out.stdout);

    // Another application names its columns otherwise: [check] says which.
    db.sql(
        "ALTER TABLE medical_documents CHANGE storage_provider provider ENUM('r2','local') NOT NULL, \
         CHANGE storage_bucket bucket VARCHAR(100), CHANGE storage_key object_key VARCHAR(500) NOT NULL",
    );
    let live = [
        "--config",
        &cfg,
        "check-references",
        "--live-db",
        "--live-objects",
    ];
    let out = lb.run(&live);
    assert_ne!(out.code, 0, "the default columns are gone: {}", out.stdout);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "\n[check]\nprovider_column = \"provider\"\nbucket_column = \"bucket\"\nkey_column = \"object_key\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = lb.run(&live).ok();
    // Local rows are told by the provider column, so it was read.
    assert!(
        out.stdout.contains("0 missing") && out.stdout.contains("2 local rows"),
        "{}",
        out.stdout
    );
}
