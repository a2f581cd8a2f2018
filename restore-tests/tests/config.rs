//! The config file: `${ENV}` references, flags override it, bad files are
//! clear errors naming the key.

use lifeboat_testkit::Lifeboat;

#[test]
fn a_config_file_with_env_references_drives_the_commands() {
    let lb = Lifeboat::local();
    lb.init();
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        "[repository]\nurl = \"${TEST_REPO}\"\nbackup_key_file = \"${TEST_BACKUP_KEY}\"\n",
    )
    .expect("write config");
    let c = cfg.display().to_string();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(lifeboat_testkit::lifeboat_bin());
        cmd.arg("--config").arg(&c).args(args);
        for var in [
            "LIFEBOAT_REPO",
            "LIFEBOAT_BACKUP_KEY_FILE",
            "LIFEBOAT_RESTORE_KEY_FILE",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run")
    };
    let b = lb.backup_key.display().to_string();
    let env = [
        ("TEST_REPO", lb.repo.as_str()),
        ("TEST_BACKUP_KEY", b.as_str()),
    ];
    let out = run(
        &[
            "backup",
            "--stdin-from-command",
            "echo hello",
            "--item",
            "h",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lb.snapshots().len(), 1);

    // A missing variable names the key and the variable.
    let out = run(&["snapshots"], &[("TEST_REPO", lb.repo.as_str())]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("repository.backup_key_file") && err.contains("TEST_BACKUP_KEY"),
        "{err}"
    );

    // An unknown key is an error naming it.
    std::fs::write(&cfg, "[repository]\nurl = \"/x\"\nbuckit = \"y\"\n").expect("write");
    let out = run(&["snapshots"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("buckit"));
}
