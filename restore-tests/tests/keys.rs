//! The two credentials: the backup key adds and lists snapshots but can
//! read nothing; restore keys read everything, can be passphrase-protected,
//! added and removed. Key files are private and secrets are never printed.

use lifeboat_testkit::{sha256_file, Lifeboat};

const EXIT_KEY: i32 = 5;

fn backed_up(lb: &Lifeboat) -> std::path::PathBuf {
    let src = lb.path("secret-data.txt");
    std::fs::write(&src, "patient 42: allergic to penicillin\n".repeat(1000)).expect("write");
    lb.backup_command(
        &format!("cat '{}'", src.display()),
        "notes.txt",
        &["--tag", "nightly"],
    )
    .ok();
    src
}

#[test]
fn the_backup_key_alone_lists_snapshots_but_cannot_restore_or_show() {
    let lb = Lifeboat::local();
    lb.init();
    backed_up(&lb);
    let snaps = lb.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["tags"][0], "nightly");
    assert_eq!(snaps[0]["items"], 1);

    let b = lb.backup_key.display().to_string();
    let to = lb.path("out.txt").display().to_string();
    for args in [
        vec![
            "restore",
            "--backup-key-file",
            &b,
            "latest",
            "--item",
            "notes.txt",
            "--to",
            &to,
        ],
        vec!["show", "--backup-key-file", &b, "latest"],
        vec!["verify", "--backup-key-file", &b, "--read-data"],
    ] {
        let out = lb.run(&args).code(EXIT_KEY);
        assert!(
            out.stderr.contains("restore key"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("penicillin") && !out.stderr.contains("penicillin"));
    }
    assert!(!lb.path("out.txt").exists());
    // Structure verify works with the backup key.
    lb.run(&["verify", "--backup-key-file", &b]).ok();
}

#[test]
fn a_key_of_another_repository_is_refused_clearly() {
    let (one, two) = (Lifeboat::local(), Lifeboat::local());
    one.init();
    two.init();
    backed_up(&one);
    let k2 = two.restore_key.display().to_string();
    let out = one
        .run(&["show", "--restore-key-file", &k2, "latest"])
        .code(EXIT_KEY);
    assert!(
        out.stderr.contains("not one of this repository's keys"),
        "{}",
        out.stderr
    );
    let b2 = two.backup_key.display().to_string();
    let out = one
        .run(&["snapshots", "--backup-key-file", &b2])
        .code(EXIT_KEY);
    assert!(
        out.stderr.contains("belongs to repository"),
        "{}",
        out.stderr
    );
    // A file that is not a key at all.
    let bogus = one.path("bogus.key");
    std::fs::write(&bogus, "hello").expect("write");
    let out = one
        .run(&[
            "show",
            "--restore-key-file",
            &bogus.display().to_string(),
            "latest",
        ])
        .code(EXIT_KEY);
    assert!(out.stderr.contains("bogus.key"), "{}", out.stderr);
}

#[test]
fn a_passphrase_protected_restore_key_needs_its_passphrase() {
    let lb = Lifeboat::local();
    let r = lb.restore_key.display().to_string();
    let b = lb.backup_key.display().to_string();
    let mut init = lb.command(&[
        "init",
        "--passphrase",
        "--restore-key-file",
        &r,
        "--backup-key-file",
        &b,
    ]);
    init.env(
        "LIFEBOAT_RESTORE_KEY_PASSPHRASE",
        "correct horse battery staple",
    );
    assert!(init.output().expect("init").status.success());
    let key_text = std::fs::read(&lb.restore_key).expect("read key");
    assert!(
        !String::from_utf8_lossy(&key_text).contains("AGE-SECRET-KEY"),
        "the key is stored in plaintext"
    );
    let src = backed_up(&lb);
    let to = lb.path("out.txt");
    let args = [
        "restore",
        "--restore-key-file",
        &r,
        "latest",
        "--to",
        &to.display().to_string(),
    ];
    let wrong = lb
        .command(&args)
        .env("LIFEBOAT_RESTORE_KEY_PASSPHRASE", "wrong")
        .output()
        .expect("run");
    assert_eq!(
        wrong.status.code(),
        Some(EXIT_KEY),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let right = lb
        .command(&args)
        .env(
            "LIFEBOAT_RESTORE_KEY_PASSPHRASE",
            "correct horse battery staple",
        )
        .output()
        .expect("run");
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    assert_eq!(sha256_file(&to), sha256_file(&src));
}

#[test]
fn restore_keys_rotate_and_secrets_are_never_printed() {
    let lb = Lifeboat::local();
    let init = lb.init();
    let src = backed_up(&lb);
    let r = lb.restore_key.display().to_string();
    let new_key = lb.path("second.key");
    let n = new_key.display().to_string();
    let add = lb
        .run(&["key", "add", "--restore-key-file", &r, "--new-key-file", &n])
        .ok();
    let list = lb
        .run(&["key", "list", "--json", "--restore-key-file", &n])
        .ok();
    let recipients: Vec<String> = list
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|k| k["recipient"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(recipients.len(), 2);
    // The new key reads the old snapshot.
    let to = lb.path("out.txt");
    let t = to.display().to_string();
    lb.run(&["restore", "--restore-key-file", &n, "latest", "--to", &t])
        .ok();
    assert_eq!(sha256_file(&to), sha256_file(&src));
    // Remove the first key: it no longer opens the repository.
    let first = std::fs::read_to_string(&lb.restore_key).expect("key");
    let first_recipient = recipients
        .iter()
        .find(|r| !add.stdout.contains(r.as_str()))
        .expect("first")
        .clone();
    let rm = lb
        .run(&["key", "remove", "--restore-key-file", &n, &first_recipient])
        .ok();
    lb.run(&[
        "restore",
        "--restore-key-file",
        &r,
        "latest",
        "--to",
        &t,
        "--force",
    ])
    .code(EXIT_KEY);
    // The last key cannot be removed.
    let second_recipient = recipients
        .iter()
        .find(|r| **r != first_recipient)
        .expect("second")
        .clone();
    lb.run(&["key", "remove", "--restore-key-file", &n, &second_recipient])
        .code(2);

    // Key files are private; no secret shows up in any output.
    use std::os::unix::fs::PermissionsExt;
    for f in [&lb.restore_key, &lb.backup_key, &new_key] {
        let mode = std::fs::metadata(f).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", f.display());
    }
    let backup_key = std::fs::read_to_string(&lb.backup_key).expect("key");
    let secrets: Vec<&str> = first
        .lines()
        .chain(backup_key.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(": ").map(|(_, v)| v.trim()).or(Some(l.trim())))
        .filter(|s| s.len() > 40)
        .collect();
    assert!(!secrets.is_empty());
    for out in [&init, &add, &list, &rm] {
        for s in &secrets {
            assert!(
                !out.stdout.contains(s) && !out.stderr.contains(s),
                "a secret was printed"
            );
        }
    }
}
