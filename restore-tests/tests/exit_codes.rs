//! Exit codes through the binary, one case per defect the error
//! classification fixed (issue 22), each checked for its code and for a
//! message that names the problem and what to do. The mapping of every
//! class of every crate is a unit test beside it (lifeboat-cli, exit.rs).

use lifeboat_testkit::{mariadb::TestDb, Lifeboat, S3Server};

const USAGE: i32 = 2;
const SOURCE: i32 = 3;
const KEY: i32 = 5;
const STORAGE: i32 = 7;

fn repo() -> Lifeboat {
    let lb = Lifeboat::local();
    lb.init();
    lb
}

fn config(lb: &Lifeboat, text: &str) -> String {
    let path = lb.path("lifeboat.toml");
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

#[test]
fn the_help_says_what_the_tool_does() {
    let out = Lifeboat::local().run(&["--help"]).ok();
    let first = out.stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("Back up a MySQL database"), "{first}");
}

#[test]
fn config_problems_are_usage_errors_that_show_no_value() {
    let lb = repo();
    let out = lb
        .run(&["--config", "/nonexistent/lifeboat.toml", "snapshots"])
        .code(USAGE);
    assert!(
        out.stderr.contains("cannot read the config file"),
        "{}",
        out.stderr
    );

    // A syntax error: where it is, never the line (a password may be on it).
    let cfg = config(
        &lb,
        "[mysql]\nurl = \"mysql://x@h/db\"\npassword = \"hunter2-s3cret\n",
    );
    let out = lb.run(&["--config", &cfg, "snapshots"]).code(USAGE);
    assert!(out.stderr.contains("line 3, column"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);

    // An unset variable fails only the commands that use its section.
    let cfg = config(
        &lb,
        "[[git]]\nurl = \"https://example.invalid/r.git\"\ntoken = \"${LB_TEST_UNSET_TOKEN}\"\n",
    );
    let rk = lb.restore_key.display().to_string();
    lb.run(&["--config", &cfg, "snapshots", "--restore-key-file", &rk])
        .ok();
    let bk = lb.backup_key.display().to_string();
    let out = lb
        .run(&[
            "--config",
            &cfg,
            "backup",
            "--backup-key-file",
            &bk,
            "--source",
            "git",
        ])
        .code(USAGE);
    assert!(
        out.stderr.contains("LB_TEST_UNSET_TOKEN") && out.stderr.contains("git"),
        "{}",
        out.stderr
    );
}

#[test]
fn flags_that_do_not_apply_and_directories_as_files_are_usage_errors() {
    let lb = repo();
    lb.backup_command("echo hello", "a.txt", &[]).ok();
    let rk = lb.restore_key.display().to_string();
    let out = lb
        .run(&[
            "restore",
            "latest",
            "--source",
            "mysql",
            "--to-env-dir",
            "x",
            "--restore-key-file",
            &rk,
        ])
        .code(USAGE);
    assert!(
        out.stderr
            .contains("--to-env-dir does not apply to --source mysql"),
        "{}",
        out.stderr
    );
    let out = lb
        .run(&[
            "restore",
            "latest",
            "--source",
            "ftp",
            "--restore-key-file",
            &rk,
        ])
        .code(USAGE);
    assert!(
        out.stderr.contains("mysql, objects, render and git"),
        "{}",
        out.stderr
    );
    // A directory where a file goes: named, and --force does not help.
    let dir = lb.path("out");
    std::fs::create_dir(&dir).expect("mkdir");
    let to = dir.display().to_string();
    for force in [false, true] {
        let mut args = vec![
            "restore",
            "latest",
            "--item",
            "a.txt",
            "--to",
            &to,
            "--restore-key-file",
            &rk,
        ];
        if force {
            args.push("--force");
        }
        let out = lb.run(&args).code(USAGE);
        assert!(out.stderr.contains("is a directory"), "{}", out.stderr);
        assert!(!out.stderr.contains("pass --force"), "{}", out.stderr);
    }
}

#[test]
fn a_passphrase_with_no_terminal_to_ask_it_on_is_a_key_error() {
    let mut lb = Lifeboat::local();
    lb.set_env("LIFEBOAT_RESTORE_KEY_PASSPHRASE", "correct horse");
    lb.run(&[
        "init",
        "--passphrase",
        "--restore-key-file",
        &lb.restore_key.display().to_string(),
        "--backup-key-file",
        &lb.backup_key.display().to_string(),
    ])
    .ok();
    let mut bare = Lifeboat::local();
    bare.repo = lb.repo.clone();
    let out = bare
        .run(&[
            "snapshots",
            "--restore-key-file",
            &lb.restore_key.display().to_string(),
        ])
        .code(KEY);
    assert!(
        out.stderr.contains("LIFEBOAT_RESTORE_KEY_PASSPHRASE"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_repository_that_is_a_file_is_a_storage_error_said_once_with_a_disk_hint() {
    let lb = Lifeboat::local();
    std::fs::write(lb.repo_path(), b"not a directory").expect("file");
    let out = lb
        .run(&[
            "init",
            "--restore-key-file",
            "r.key",
            "--backup-key-file",
            "b.key",
        ])
        .code(STORAGE);
    assert_eq!(
        out.stderr.matches("Not a directory").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("free space"), "{}", out.stderr);
    assert!(!out.stderr.contains("credentials"), "{}", out.stderr);
}

#[test]
fn a_partial_backup_says_what_it_stored_and_how_to_go_on() {
    let lb = repo();
    let docs = lb.path("docs");
    std::fs::create_dir(&docs).expect("mkdir");
    std::fs::write(docs.join("a.txt"), b"a").expect("write");
    // MySQL on a port nobody listens on: that source fails, objects go on.
    let cfg = config(
        &lb,
        &format!(
            "[mysql]\nurl = \"mysql://root@127.0.0.1:9/db\"\n[objects]\npath = \"{}\"\n",
            docs.display()
        ),
    );
    let bk = lb.backup_key.display().to_string();
    let out = lb
        .run(&["--config", &cfg, "backup", "--backup-key-file", &bk])
        .code(SOURCE);
    assert!(
        out.stderr.contains("PARTIAL") && out.stderr.contains("mysql"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("no snapshot was stored"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("restore the other sources"),
        "{}",
        out.stderr
    );
    let snaps = lb.snapshots();
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0]["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "partial")));
}

#[test]
fn a_view_the_target_cannot_create_is_a_server_failure_not_a_usage_error() {
    let src = TestDb::new("exitview");
    src.sql("CREATE TABLE t1 (id INT PRIMARY KEY); CREATE TABLE t2 (id INT PRIMARY KEY); INSERT INTO t1 VALUES (1); CREATE VIEW v AS SELECT id FROM t2");
    let lb = repo();
    // t2 is left out of the backup; the view over it is not.
    let cfg = config(
        &lb,
        &format!(
            "[mysql]\nurl = \"{}\"\nexclude_tables = [\"t2\"]\n",
            src.url()
        ),
    );
    let bk = lb.backup_key.display().to_string();
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
    let target = TestDb::unborn("exitview_to");
    let rk = lb.restore_key.display().to_string();
    let out = lb
        .run(&[
            "restore",
            "latest",
            "--source",
            "mysql",
            "--target",
            &target.url(),
            "--restore-key-file",
            &rk,
        ])
        .code(SOURCE);
    assert!(
        out.stderr.contains("creating") && out.stderr.contains('v'),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("target server refused"),
        "{}",
        out.stderr
    );
}

#[test]
fn s3_errors_are_one_line_with_the_service_code() {
    let server = S3Server::start();
    let lb = Lifeboat::s3(&server, "exitcodes");
    lb.init();
    let mut gone = Lifeboat::s3(&server, "exitcodes2");
    gone.repo = "s3://no-such-bucket-here/x".into();
    let rk = lb.restore_key.display().to_string();
    let out = gone.run(&["snapshots", "--restore-key-file", &rk]);
    assert_eq!(out.code, STORAGE, "{}", out.stderr);
    assert!(out.stderr.contains("NoSuchBucket"), "{}", out.stderr);
    for debug in [
        "ServiceError {",
        "DispatchFailure",
        "raw: Response",
        "source: ",
    ] {
        assert!(!out.stderr.contains(debug), "{debug}: {}", out.stderr);
    }
}
