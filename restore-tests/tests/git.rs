//! The git source with the real `git`: a repository of 3 branches, 5 tags
//! and 200 commits -> backup -> restore by clone gives the same refs and
//! commit ids; an unchanged second backup stores nothing; one new commit is
//! stored as an incremental bundle and restores; push to a new remote;
//! an unreachable remote fails the backup with no snapshot.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use std::path::Path;
use std::process::{Command, Stdio};

use lifeboat_testkit::git::git;
use lifeboat_testkit::Lifeboat;

fn refs(dir: &Path) -> BTreeMap<String, String> {
    git(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .lines()
    .map(|l| {
        let (a, b) = l.split_once(' ').unwrap();
        (a.to_string(), b.to_string())
    })
    .collect()
}

/// A bare repository with `main` (120 commits), `dev` (+50 from main~20)
/// and `feature/x` (+30 from dev~10): 200 commits, and 5 tags (3
/// annotated), made with fast-import so the ids are deterministic.
fn make_origin(dir: &Path) {
    git(dir, &["init", "--bare", "--quiet", "-b", "main"]);
    let mut s = String::new();
    let mut mark = 0;
    let mut commit = |s: &mut String, branch: &str, from: Option<String>, i: usize| -> String {
        mark += 1;
        let content = format!("line {i} of {branch}\n").repeat(1 + i % 7);
        let msg = format!("{branch} {i}");
        s.push_str(&format!(
            "commit refs/heads/{branch}\nmark :{mark}\ncommitter Dr Ana <ana@clinic.example> {} +0000\ndata {}\n{msg}\n",
            1_700_000_000 + i * 60,
            msg.len(),
        ));
        if let Some(f) = from {
            s.push_str(&format!("from {f}\n"));
        }
        s.push_str(&format!(
            "M 644 inline src/{branch}/{}.txt\ndata {}\n{content}\n",
            i % 13,
            content.len()
        ));
        format!(":{mark}")
    };
    let mut main = Vec::new();
    for i in 0..120 {
        main.push(commit(&mut s, "main", None, i));
    }
    let mut dev = Vec::new();
    let mut from = Some(main[99].clone());
    for i in 0..50 {
        dev.push(commit(&mut s, "dev", from.take(), 1000 + i));
    }
    let mut from = Some(dev[39].clone());
    for i in 0..30 {
        commit(&mut s, "feature/x", from.take(), 2000 + i);
    }
    for (n, (tag, target)) in [
        ("v1.0", &main[10]),
        ("v1.1", &main[50]),
        ("v2.0", &main[119]),
    ]
    .into_iter()
    .enumerate()
    {
        s.push_str(&format!(
            "tag {tag}\nfrom {target}\ntagger Dr Ana <ana@clinic.example> {} +0000\ndata 7\nrelease\n",
            1_800_000_000 + n
        ));
    }
    s.push_str(&format!("reset refs/tags/nightly-1\nfrom {}\n\n", dev[10]));
    s.push_str(&format!(
        "reset refs/tags/before-migration\nfrom {}\n\n",
        main[80]
    ));
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn config(lb: &Lifeboat, url: &str) -> String {
    let cfg = lb.path(&format!("git-{}.toml", url.len()));
    std::fs::write(
        &cfg,
        format!("[[git]]\nurl = \"{url}\"\nname = \"clinic\"\n"),
    )
    .unwrap();
    cfg.display().to_string()
}

#[test]
fn git_bundles_restore_every_ref_and_skip_unchanged_runs() {
    let lb = Lifeboat::local();
    lb.init();
    let origin = lb.path("origin.git");
    std::fs::create_dir_all(&origin).unwrap();
    make_origin(&origin);
    let want = refs(&origin);
    assert_eq!(
        want.keys().filter(|k| k.starts_with("refs/heads/")).count(),
        3
    );
    assert_eq!(
        want.keys().filter(|k| k.starts_with("refs/tags/")).count(),
        5
    );
    assert_eq!(
        git(&origin, &["rev-list", "--all", "--count"]).trim(),
        "200"
    );
    let cfg = config(&lb, origin.to_str().unwrap());
    let run = |args: &[&str]| {
        let mut a = vec!["--config", cfg.as_str()];
        a.extend_from_slice(args);
        lb.run(&a)
    };
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let restore_to = |snapshot: &str, dir: &Path| {
        run(&[
            "restore",
            snapshot,
            "--source",
            "git",
            "--to",
            dir.to_str().unwrap(),
            "--restore-key-file",
            &rk,
        ])
    };
    let backup = || {
        run(&["backup", "--source", "git", "--backup-key-file", &bk]).ok();
        lb.snapshots().last().cloned().unwrap()
    };

    let first = backup();
    let facts = &first["sources"]["git"]["facts"]["repos"]["clinic"];
    assert_eq!(facts["head"], "refs/heads/main");
    assert_eq!(facts["refs"].as_object().unwrap().len(), 8);
    assert_eq!(facts["chain"].as_array().unwrap().len(), 1);

    // Restore by clone: same refs, same ids, HEAD checked out, 200 commits.
    let restored = lb.path("restored");
    restore_to("latest", &restored).ok();
    assert_eq!(refs(&restored), want);
    assert_eq!(
        git(&restored, &["rev-list", "--all", "--count"]).trim(),
        "200"
    );
    assert_eq!(
        git(&restored, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
    assert_eq!(git(&restored, &["status", "--porcelain"]).trim(), "");
    assert_eq!(
        git(&restored, &["rev-parse", "HEAD^{tree}"]),
        git(&origin, &["rev-parse", "main^{tree}"])
    );
    assert_eq!(
        git(&restored, &["cat-file", "-t", "v1.0"]).trim(),
        "tag",
        "annotated tags stay annotated"
    );

    // Unchanged: nothing new stored.
    let second = backup();
    assert_eq!(
        second["sources"]["git"]["facts"]["repos"]["clinic"]["unchanged"],
        true
    );
    assert_eq!(second["stats"]["new_plain_bytes"], 0, "{}", second["stats"]);
    assert!(
        second["stats"]["added_bytes"].as_u64().unwrap() < 4096,
        "{}",
        second["stats"]
    );

    // One new commit on main: an incremental bundle, and it restores.
    let work = lb.path("work");
    git(
        lb.dir.path(),
        &[
            "clone",
            "--quiet",
            origin.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    std::fs::write(work.join("NEW.md"), "the new commit\n").unwrap();
    git(&work, &["add", "NEW.md"]);
    git(&work, &["commit", "--quiet", "-m", "one more"]);
    git(&work, &["push", "--quiet", "origin", "main"]);
    let want2 = refs(&origin);
    let third = backup();
    let f3 = &third["sources"]["git"]["facts"]["repos"]["clinic"];
    assert_eq!(f3["chain"].as_array().unwrap().len(), 2);
    assert!(
        third["stats"]["new_plain_bytes"].as_u64().unwrap() < 4096,
        "an incremental bundle of one commit: {}",
        third["stats"]
    );
    let restored2 = lb.path("restored2");
    restore_to("latest", &restored2).ok();
    assert_eq!(refs(&restored2), want2);
    assert_eq!(
        std::fs::read_to_string(restored2.join("NEW.md")).unwrap(),
        "the new commit\n"
    );
    // The first snapshot still restores as it was.
    let first_id = first["id"].as_str().unwrap();
    let restored1 = lb.path("restored1");
    restore_to(first_id, &restored1).ok();
    assert_eq!(refs(&restored1), want);

    // Push everything to a new, empty remote.
    let remote = lb.path("new-remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--bare", "--quiet"]);
    run(&[
        "restore",
        "latest",
        "--source",
        "git",
        "--push-to",
        remote.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    assert_eq!(refs(&remote), want2);

    // A non-empty target directory is refused.
    let out = run(&[
        "restore",
        "latest",
        "--source",
        "git",
        "--to",
        restored2.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .code(2);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);

    // An unreachable remote: exit 3, no snapshot, earlier ones intact.
    let before = lb.snapshots().len();
    let bad = config(&lb, "/nonexistent/clinic-gone.git");
    let out = lb
        .run(&[
            "--config",
            &bad,
            "backup",
            "--source",
            "git",
            "--backup-key-file",
            &bk,
        ])
        .code(3);
    assert!(out.stderr.contains("git"), "{}", out.stderr);
    assert_eq!(lb.snapshots().len(), before);
    lb.verify_read_data().ok();
}

/// The token reaches the remote only as an `Authorization` header (GitHub's
/// `x-access-token` basic form), never in the URL, and a refusal is a
/// clear error that does not echo it.
#[test]
fn an_https_token_travels_as_a_header_and_never_appears_in_errors() {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        let mut auth = Vec::new();
        // Answer every request 403 and keep its Authorization header.
        listener.set_nonblocking(false).unwrap();
        for _ in 0..2 {
            let Ok((stream, _)) = listener.accept() else {
                break;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    auth.push(line.trim().to_string());
                }
            }
            let mut s = stream;
            let _ = s.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden",
            );
            auth.push(format!("request: {}", request_line.trim()));
            if request_line.contains("info/refs") {
                break;
            }
        }
        auth
    });
    let mut lb = Lifeboat::local();
    lb.init();
    let token = "ghp_TestToken0123456789abcdefABCDEF";
    lb.set_env("TEST_GITHUB_TOKEN", token);
    let cfg = lb.path("https.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[git]]\nurl = \"http://127.0.0.1:{port}/org/clinic.git\"\ntoken = \"${{TEST_GITHUB_TOKEN}}\"\n"
        ),
    )
    .unwrap();
    let bk = lb.backup_key.display().to_string();
    let out = lb
        .run(&[
            "--config",
            cfg.to_str().unwrap(),
            "-vv",
            "backup",
            "--source",
            "git",
            "--backup-key-file",
            &bk,
        ])
        .code(3);
    assert!(out.stderr.contains("403"), "{}", out.stderr);
    assert!(!out.stderr.contains(token) && !out.stdout.contains(token));
    let seen = seen.join().unwrap();
    let want = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
    );
    assert!(seen.iter().any(|l| l == &want), "{seen:?}");
    assert!(seen
        .iter()
        .all(|l| !l.starts_with("request:") || !l.contains(token)));
    assert!(lb.snapshots().is_empty());
    // The mirror's config on disk does not hold the token either.
    let mut files = Vec::new();
    let mut stack = vec![lb.cache_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    assert!(!files.is_empty());
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{} holds the token",
            f.display()
        );
    }
}
