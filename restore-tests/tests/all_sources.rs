//! `lifeboat backup` with no --source: every configured source (MySQL, an
//! upload directory, Render, git) into one snapshot, each restored and
//! compared. When one source fails, the others are still stored in a
//! snapshot tagged `partial` (exit 3, naming the failed source), and a
//! restore of the failed source from it is refused.

use lifeboat_testkit::git::git;
use lifeboat_testkit::mariadb::TestDb;
use lifeboat_testkit::render::{FakeRender, World};
use lifeboat_testkit::Lifeboat;

const KEY: &str = "rnd_AllSourcesKey";

#[test]
fn one_backup_holds_all_four_sources_and_a_failing_one_makes_it_partial() {
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_RENDER_KEY", KEY);
    let db = TestDb::new("allsrc");
    db.sql("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)");
    db.sql("INSERT INTO notes VALUES (1,'first'),(2,'zweite ü'),(3,NULL)");
    let uploads = lb.path("uploads");
    std::fs::create_dir_all(uploads.join("scans")).unwrap();
    std::fs::write(uploads.join("scans/a.pdf"), b"%PDF a").unwrap();
    std::fs::write(uploads.join("b.txt"), b"bee").unwrap();
    let fake = FakeRender::start(World::clinic(5), KEY);
    let repo = lb.path("code");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "-b", "main"]);
    std::fs::write(repo.join("README"), "clinic\n").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "--quiet", "-m", "one"]);
    git(&repo, &["tag", "v1"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);

    let write_cfg = |name: &str, git_url: &str| {
        let p = lb.path(name);
        std::fs::write(
            &p,
            format!(
                "[mysql]\nurl = \"{}\"\n\n[objects]\npath = \"{}\"\n\n[render]\napi_key = \"${{TEST_RENDER_KEY}}\"\napi_url = \"{}\"\n\n[[git]]\nurl = \"{git_url}\"\nname = \"code\"\n",
                db.url(),
                uploads.display(),
                fake.url
            ),
        )
        .unwrap();
        p.display().to_string()
    };
    let cfg = write_cfg("all.toml", repo.to_str().unwrap());
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();

    lb.run(&["--config", &cfg, "backup", "--backup-key-file", &bk])
        .ok();
    let snaps = lb.snapshots();
    assert_eq!(snaps.len(), 1);
    let sources = snaps[0]["sources"].as_object().unwrap();
    let mut names: Vec<&str> = sources.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["git", "mysql", "objects", "render"]);
    assert!(sources.values().all(|s| s.get("error").is_none()));

    // Each source restores from the one snapshot and matches.
    let drill_db = TestDb::unborn("allsrc_drill");
    lb.run(&[
        "--config",
        &cfg,
        "restore",
        "latest",
        "--source",
        "mysql",
        "--target",
        &drill_db.url(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    assert_eq!(drill_db.fingerprint(), db.fingerprint());
    let files_to = lb.path("files");
    lb.run(&[
        "--config",
        &cfg,
        "restore",
        "latest",
        "--source",
        "objects",
        "--to",
        files_to.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    assert_eq!(
        std::fs::read(files_to.join("scans/a.pdf")).unwrap(),
        b"%PDF a"
    );
    assert_eq!(std::fs::read(files_to.join("b.txt")).unwrap(), b"bee");
    let env = lb.path("env");
    lb.run(&[
        "--config",
        &cfg,
        "restore",
        "latest",
        "--source",
        "render",
        "--to-env-dir",
        env.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    let api: Vec<(String, String)> = lifeboat_testkit::shell_env(&env.join("clinic-api.env"));
    let mut want = fake.with(|w| w.service_mut("clinic-api").env_vars.clone());
    want.sort();
    let mut got = api;
    got.sort();
    assert_eq!(got, want);
    let code = lb.path("code-restored");
    lb.run(&[
        "--config",
        &cfg,
        "restore",
        "latest",
        "--source",
        "git",
        "--to",
        code.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    assert_eq!(git(&code, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&code, &["rev-parse", "v1"]), head);

    // git's remote is gone: the others are stored, the snapshot is partial.
    let broken = write_cfg("broken.toml", "/nonexistent/code.git");
    let out = lb
        .run(&["--config", &broken, "backup", "--backup-key-file", &bk])
        .code(3);
    assert!(
        out.stderr.contains("PARTIAL") && out.stderr.contains("git:"),
        "{}",
        out.stderr
    );
    let snaps = lb.snapshots();
    assert_eq!(snaps.len(), 2);
    let partial = &snaps[1];
    assert!(partial["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "partial"));
    assert!(partial["sources"]["git"]["error"]
        .as_str()
        .unwrap()
        .contains("git"));
    for s in ["mysql", "objects", "render"] {
        assert!(partial["sources"][s].get("error").is_none(), "{s}");
        assert!(partial["sources"][s]["items"].as_u64().unwrap() > 0, "{s}");
    }
    let id = partial["id"].as_str().unwrap();
    let refused = lb
        .run(&[
            "--config",
            &cfg,
            "restore",
            id,
            "--source",
            "git",
            "--to",
            lb.path("x").to_str().unwrap(),
            "--restore-key-file",
            &rk,
        ])
        .code(2);
    assert!(
        refused.stderr.contains("failed during the backup"),
        "{}",
        refused.stderr
    );
    let env2 = lb.path("env2");
    lb.run(&[
        "--config",
        &cfg,
        "restore",
        id,
        "--source",
        "render",
        "--to-env-dir",
        env2.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    // The next good backup is whole again and builds on the last good git state.
    lb.run(&["--config", &cfg, "backup", "--backup-key-file", &bk])
        .ok();
    let last = lb.snapshots().pop().unwrap();
    assert!(last["tags"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t != "partial"));
    assert_eq!(
        last["sources"]["git"]["facts"]["repos"]["code"]["unchanged"],
        true
    );
    lb.verify_read_data().ok();
}
