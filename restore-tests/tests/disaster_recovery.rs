//! docs/DISASTER-RECOVERY.md, followed step by step: production (database,
//! bucket, Render, git) is backed up; then it is gone, and the runbook's
//! commands, exactly as written there (placeholders filled in), rebuild it
//! into new places from the restore key and the store alone. Each command
//! is checked to appear verbatim in the runbook, so the two stay in step.

use std::collections::BTreeMap;

use lifeboat_testkit::bucket::{self, S3Client};
use lifeboat_testkit::git::{git, refs};
use lifeboat_testkit::mariadb::TestDb;
use lifeboat_testkit::render::{FakeRender, World};
use lifeboat_testkit::{Lifeboat, S3Server};

const RUNBOOK: &str = include_str!("../../docs/DISASTER-RECOVERY.md");

#[test]
fn the_runbook_rebuilds_production_from_the_restore_key_and_the_store() {
    // --- Production, and its nightly backup.
    let server = S3Server::start();
    let s3 = S3Client::new(&server.endpoint);
    let prod_bucket = format!("dr-prod-{}", std::process::id());
    server.create_bucket(&prod_bucket);
    let objects = bucket::generate(30, 11, 200 << 10);
    s3.put_all(&prod_bucket, &objects);
    let db = TestDb::new("drprod");
    db.sql(
        "CREATE TABLE medical_documents (id INT PRIMARY KEY, patient_id INT NOT NULL, \
         storage_provider ENUM('r2','local') NOT NULL, storage_bucket VARCHAR(100), \
         storage_key VARCHAR(500) NOT NULL, sha256 CHAR(64) NOT NULL, size_bytes BIGINT NOT NULL)",
    );
    let rows: Vec<String> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            format!(
                "({i},1,'r2','{prod_bucket}','{}','{}',{})",
                o.key.replace('\'', "''"),
                o.sha256(),
                o.size
            )
        })
        .collect();
    db.sql(&format!(
        "INSERT INTO medical_documents VALUES {}",
        rows.join(",")
    ));
    let db_before = db.fingerprint();
    let render_key = "rnd_DisasterKey";
    let prod_render = FakeRender::start(World::clinic(4), render_key);
    let world_before = prod_render.with(|w| w.clone());
    let mut lb = Lifeboat::local();
    lb.init();
    let code = lb.path("code.git");
    std::fs::create_dir_all(&code).unwrap();
    git(&code, &["init", "--quiet", "--bare", "-b", "main"]);
    let work = lb.path("work");
    git(
        lb.dir.path(),
        &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
    );
    for i in 0..5 {
        std::fs::write(work.join("app.txt"), format!("v{i}\n")).unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", &format!("v{i}")]);
    }
    git(&work, &["tag", "v1"]);
    git(&work, &["branch", "develop"]);
    git(&work, &["push", "--quiet", code.to_str().unwrap(), "--all"]);
    git(
        &work,
        &["push", "--quiet", code.to_str().unwrap(), "--tags"],
    );
    let refs_before = refs(&code);
    lb.set_env("PROD_RENDER_KEY", render_key);
    lb.set_env("PROD_R2_SECRET", "testing-secret");
    let prod_cfg = lb.path("production.toml");
    std::fs::write(
        &prod_cfg,
        format!(
            "[mysql]\nurl = \"{}\"\n\n[objects]\nendpoint = \"{}\"\nbucket = \"{prod_bucket}\"\n\
             access_key_id = \"testing\"\nsecret_access_key = \"${{PROD_R2_SECRET}}\"\n\n\
             [render]\napi_key = \"${{PROD_RENDER_KEY}}\"\napi_url = \"{}\"\n\n[[git]]\nurl = \"{}\"\nname = \"clinic\"\n",
            db.url(),
            server.endpoint,
            prod_render.url,
            code.display()
        ),
    )
    .unwrap();
    let bk = lb.backup_key.display().to_string();
    lb.run(&[
        "--config",
        prod_cfg.to_str().unwrap(),
        "backup",
        "--backup-key-file",
        &bk,
    ])
    .ok();

    // --- Production is gone.
    db.sql("DROP TABLE medical_documents");
    let keys: Vec<String> = s3.list(&prod_bucket).into_iter().map(|(k, _)| k).collect();
    s3.delete(&prod_bucket, &keys);
    assert!(s3.list(&prod_bucket).is_empty());
    drop(prod_render);
    std::fs::remove_dir_all(&code).unwrap();

    // --- The new places, all empty: a database, a bucket, a git remote, a
    // Render account with the services created from the Blueprint.
    let new_db = TestDb::unborn("drnew");
    let new_bucket = format!("dr-new-{}", std::process::id());
    server.create_bucket(&new_bucket);
    let new_remote = lb.path("new-remote.git");
    std::fs::create_dir_all(&new_remote).unwrap();
    git(&new_remote, &["init", "--quiet", "--bare"]);
    let mut new_world = World::clinic(4);
    for s in &mut new_world.services {
        s.env_vars.clear();
        s.secret_files.clear();
    }
    let new_render = FakeRender::start(new_world, "rnd_NewAccountKey");

    // --- Step 1: recovery.toml, as in the runbook, with this test's places.
    lb.set_env("NEW_R2_SECRET", "testing-secret");
    lb.set_env("NEW_RENDER_API_KEY", "rnd_NewAccountKey");
    let cfg = lb.path("recovery.toml");
    std::fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\nrestore_key_file = \"{}\"\n\n\
             [objects]\nendpoint = \"{}\"\naccess_key_id = \"testing\"\nsecret_access_key = \"${{NEW_R2_SECRET}}\"\n\n\
             [render]\napi_key = \"${{NEW_RENDER_API_KEY}}\"\napi_url = \"{}\"\n\n\
             [staging]\nmysql_url = \"{}\"\n",
            lb.repo,
            lb.restore_key.display(),
            server.endpoint,
            new_render.url,
            new_db.url()
        ),
    )
    .unwrap();
    for needle in [
        "[repository]",
        "restore_key_file",
        "[objects]",
        "[render]",
        "[staging]",
        "mysql_url",
    ] {
        assert!(RUNBOOK.contains(needle), "the runbook lost {needle}");
    }
    lb.set_env("LIFEBOAT_CONFIG", cfg.to_str().unwrap());

    // Steps 2-7, each command verbatim from the runbook.
    let snaps = lb.snapshots();
    let snap = snaps.last().unwrap()["id"].as_str().unwrap().to_string();
    let env_dir = lb.path("env");
    let yaml = lb.path("render.yaml");
    let fill: BTreeMap<&str, String> = [
        ("SNAP", snap.clone()),
        ("s3://clinic-uploads-new", format!("s3://{new_bucket}")),
        (
            "git@github.com:ORG/clinic.git",
            new_remote.display().to_string(),
        ),
        ("./env", env_dir.display().to_string()),
        ("render.yaml", yaml.display().to_string()),
    ]
    .into_iter()
    .collect();
    let run = |doc: &str| {
        assert!(RUNBOOK.contains(doc), "the runbook no longer says: {doc}");
        let args: Vec<String> = doc
            .split_whitespace()
            .skip(1)
            .map(|w| fill.get(w).cloned().unwrap_or_else(|| w.to_string()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lb.run(&args).ok()
    };
    run("lifeboat snapshots");
    let v = run("lifeboat verify");
    assert!(!v.stdout.contains("DAMAGED"), "{}", v.stdout);
    run("lifeboat restore SNAP --source mysql");
    assert_eq!(new_db.fingerprint(), db_before);
    run("lifeboat restore SNAP --source objects --target s3://clinic-uploads-new");
    for o in &objects {
        let got = s3.get(&new_bucket, &o.key);
        assert_eq!(got.data, o.bytes(), "{}", o.key);
        assert_eq!(got.content_type.as_deref(), Some(o.content_type.as_str()));
    }
    run("lifeboat restore SNAP --source git --push-to git@github.com:ORG/clinic.git");
    assert_eq!(refs(&new_remote), refs_before);
    run("lifeboat restore SNAP --source render --render-yaml render.yaml");
    let blueprint: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    assert!(blueprint["services"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|s| s["name"].as_str() == Some("clinic-api")));
    run("lifeboat restore SNAP --source render --to-env-dir ./env");
    let api_before = world_before
        .services
        .iter()
        .find(|s| s.name() == "clinic-api")
        .unwrap();
    let mut from_file: Vec<(String, String)> =
        lifeboat_testkit::shell_env(&env_dir.join("clinic-api.env"));
    from_file.sort();
    let mut want = api_before.env_vars.clone();
    want.sort();
    assert_eq!(from_file, want);
    run("lifeboat restore SNAP --source render --service clinic-api --to-service clinic-api --allow-source --yes");
    let (vars, files) = new_render.with(|w| {
        let s = w.service_mut("clinic-api");
        (s.env_vars.clone(), s.secret_files.clone())
    });
    let mut vars = vars;
    vars.sort();
    assert_eq!(vars, want);
    let mut files = files;
    files.sort();
    let mut want_files = api_before.secret_files.clone();
    want_files.sort();
    assert_eq!(files, want_files);
    run("lifeboat check-references SNAP");
}
