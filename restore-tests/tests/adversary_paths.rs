//! A forged snapshot and hostile names, through the real binary.
//!
//! A compromised backup host holds the backup key and can write any
//! snapshot. Here the forger is modelled with the restore key and the
//! store's library (`forge` below: take the latest real snapshot, change
//! its items, facts or item bytes, commit it as a new snapshot). Each
//! attack must be refused with a message naming the problem and exit 4
//! (refused data), and leave everything outside the target as it was: the
//! parent directory and a planted file are listed before and after, a
//! planted link's target keeps its bytes, nothing restored has a setuid,
//! setgid or sticky bit. Honest restores of each source still pass and
//! compare equal.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lifeboat_store::backend::{open_backend, S3Options};
use lifeboat_store::{BackupOptions, ManifestItem, NoProgress, Repository, RestoreKey};
use lifeboat_testkit::git::git;
use lifeboat_testkit::render::{FakeRender, World};
use lifeboat_testkit::{Lifeboat, Output};
use serde_json::{json, Value};

/// What a forger changes in a copy of the latest snapshot.
#[derive(Default)]
struct Forgery {
    /// The manifest's items (carried over as they are unless changed).
    items: Vec<ManifestItem>,
    /// Each source's facts.
    facts: BTreeMap<String, Value>,
    /// New items: (source, name, kind, bytes, meta).
    new: Vec<(String, String, String, Vec<u8>, Value)>,
}

/// Forge a snapshot: the latest one with `edit` applied, committed as a new
/// snapshot through the store's library. `edit` also gets each item's bytes
/// (read back with the restore key) to build altered copies. Kept to the
/// library's API (`open_for_restore`, `begin_backup`, `carry_item`,
/// `item`, `set_source_facts`, `commit`), which another engineer's format
/// change keeps.
fn forge(lb: &Lifeboat, edit: impl FnOnce(&mut Forgery, &dyn Fn(&ManifestItem) -> Vec<u8>)) {
    let backend = open_backend(&lb.repo, &S3Options::default()).unwrap();
    let key = RestoreKey::load(&lb.restore_key, None).unwrap();
    let repo = Repository::open_for_restore(backend, &key).unwrap();
    let snap = repo.find_snapshot("latest").unwrap();
    let (index, _) = repo.load_index().unwrap();
    let items = repo.manifest(&index, &snap.snapshot).unwrap();
    let read = |i: &ManifestItem| {
        let mut buf = Vec::new();
        repo.restore_item(&index, i, &mut buf, &NoProgress).unwrap();
        buf
    };
    let mut f = Forgery {
        items,
        facts: snap
            .snapshot
            .sources
            .iter()
            .map(|(k, v)| (k.clone(), v.facts.clone()))
            .collect(),
        new: Vec::new(),
    };
    edit(&mut f, &read);
    let mut s = repo
        .begin_backup(BackupOptions {
            tags: vec!["forged".into()],
            ..Default::default()
        })
        .unwrap();
    for i in f.items {
        s.carry_item(i).unwrap();
    }
    for (source, name, kind, bytes, meta) in f.new {
        let mut w = s.item(&source, &name, &kind, &NoProgress).unwrap();
        w.push(&bytes).unwrap();
        w.finish(meta).unwrap();
    }
    for (source, facts) in f.facts {
        s.set_source_facts(&source, facts);
    }
    s.commit().unwrap();
}

/// Everything under `dir` (not following links): path -> kind, mode, bytes
/// or link target.
fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else {
                let bytes = std::fs::read(&p).unwrap();
                format!("file {mode:o} {}", lifeboat_store::sha256_hex(&bytes))
            };
            out.insert(p, what);
        }
    }
    out
}

/// No setuid, setgid or sticky bit anywhere under `dir`.
#[track_caller]
fn no_special_bits(dir: &Path) {
    for (p, what) in listing(dir) {
        let m = std::fs::symlink_metadata(&p).unwrap().permissions().mode();
        assert_eq!(m & 0o7000, 0, "{} has mode {m:o} ({what})", p.display());
    }
}

#[track_caller]
fn refused(out: Output, needles: &[&str]) -> Output {
    let out = out.code(4);
    // A refusal is not damage: no hint to go to an older snapshot.
    assert!(
        !out.stderr.contains("older snapshot"),
        "a refusal with the hint for damage: {}",
        out.stderr
    );
    for n in needles {
        assert!(
            out.stderr.contains(n) || out.stdout.contains(n),
            "{n:?} not in the error:\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
    }
    out
}

/// A scratch world: the repository plus an "outside" directory holding a
/// file an attacker wants to overwrite (e.g. `authorized_keys`).
struct Scene {
    lb: Lifeboat,
    outside: PathBuf,
    victim: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let lb = Lifeboat::local();
        lb.init().ok();
        let outside = lb.path("outside");
        std::fs::create_dir_all(outside.join(".ssh")).unwrap();
        let victim = outside.join(".ssh/authorized_keys");
        std::fs::write(&victim, "ssh-ed25519 AAAA the-owner\n").unwrap();
        Scene {
            lb,
            outside,
            victim,
        }
    }

    /// The whole scratch directory but the repository and the cache.
    fn world(&self) -> BTreeMap<PathBuf, String> {
        let mut l = listing(self.lb.dir.path());
        l.retain(|p, _| !p.starts_with(self.lb.repo_path()) && !p.starts_with(self.lb.cache_dir()));
        l
    }

    fn run(&self, cfg: &Path, args: &[&str]) -> Output {
        let cfg = cfg.display().to_string();
        let rk = self.lb.restore_key.display().to_string();
        let bk = self.lb.backup_key.display().to_string();
        let mut a = vec!["--config", cfg.as_str()];
        a.extend_from_slice(args);
        if args[0] == "backup" {
            a.extend_from_slice(&["--backup-key-file", &bk]);
        } else {
            a.extend_from_slice(&["--restore-key-file", &rk]);
        }
        self.lb.run(&a)
    }

    /// Everything outside `target` is as it was in `before`, and the victim
    /// kept its bytes.
    #[track_caller]
    fn unchanged_outside(&self, before: &BTreeMap<PathBuf, String>, target: &Path) {
        let mut now = self.world();
        now.retain(|p, _| !p.starts_with(target));
        let mut was = before.clone();
        was.retain(|p, _| !p.starts_with(target));
        assert_eq!(now, was, "something changed outside {}", target.display());
        assert_eq!(
            std::fs::read_to_string(&self.victim).unwrap(),
            "ssh-ed25519 AAAA the-owner\n"
        );
    }
}

fn make_origin(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "--quiet", "-b", "main"]);
    std::fs::write(dir.join("authorized_keys"), "ssh-ed25519 AAAA attacker\n").unwrap();
    std::fs::write(dir.join("README"), "the app\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "first"]);
    git(dir, &["tag", "v1"]);
}

#[test]
fn forged_git_names_and_refs_are_refused_and_honest_restores_still_match() {
    let sc = Scene::new();
    let origin = sc.lb.path("origin");
    make_origin(&origin);
    let cfg = sc.lb.path("git.toml");
    let staging = sc.lb.path("staging");
    std::fs::write(
        &cfg,
        format!(
            "[[git]]\nurl = \"{}\"\nname = \"app\"\n\n[staging]\ndir = \"{}\"\n",
            origin.display(),
            staging.display()
        ),
    )
    .unwrap();
    sc.run(&cfg, &["backup", "--source", "git"]).ok();

    // Honest: same refs, and the drill matches.
    let honest = sc.lb.path("honest");
    sc.run(
        &cfg,
        &[
            "restore",
            "latest",
            "--source",
            "git",
            "--to",
            honest.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(
        lifeboat_testkit::git::refs(&honest),
        lifeboat_testkit::git::refs(&origin)
    );
    sc.run(&cfg, &["drill", "latest"]).ok();

    // A backup refuses a name that is not one directory name.
    let bad_cfg = sc.lb.path("bad-git.toml");
    std::fs::write(
        &bad_cfg,
        format!("[[git]]\nurl = \"{}\"\nname = \"..\"\n", origin.display()),
    )
    .unwrap();
    let out = sc.run(&bad_cfg, &["backup", "--source", "git"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("name"), "{}", out.stderr);

    // Forged names: a second repository record named `../../x` or an
    // absolute path, with the real bundle chain (holding authorized_keys).
    let target = sc.lb.path("restore-here/git");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let abs = sc.outside.join(".ssh-abs");
    for evil in [
        "../../outside/.ssh".to_string(),
        abs.display().to_string(),
        "..".to_string(),
        "a\nb".to_string(),
    ] {
        forge(&sc.lb, |f, _| {
            let repos = f.facts.get_mut("git").unwrap()["repos"]
                .as_object_mut()
                .unwrap();
            let app = repos["app"].clone();
            repos.insert(evil.clone(), app);
        });
        let before = sc.world();
        for args in [
            vec![
                "restore",
                "latest",
                "--source",
                "git",
                "--to",
                target.to_str().unwrap(),
            ],
            vec![
                "restore",
                "latest",
                "--source",
                "git",
                "--to",
                target.to_str().unwrap(),
                "--repository",
                "app",
            ],
        ] {
            let out = refused(sc.run(&cfg, &args), &["repository name", "forged"]);
            assert!(
                !out.stdout.contains("refs and objects checked"),
                "{}",
                out.stdout
            );
        }
        sc.unchanged_outside(&before, &target);
        assert!(!target.exists(), "{evil:?}: the target was written");
        assert!(!abs.exists());
        // The drill reports the mismatch, never "match".
        let out = refused(sc.run(&cfg, &["drill", "latest"]), &["repository name"]);
        assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
        assert!(!out.stdout.contains("| git | ") || out.stdout.contains("MISMATCH"));
        sc.unchanged_outside(&before, &staging);
    }

    // Forged refs: a line break that would add update-ref commands, a ref
    // outside refs/, an id that is not one.
    for (name, oid) in [
        ("refs/heads/x\nupdate refs/heads/y 0000", None),
        ("HEAD", None),
        ("refs/tags/v1", Some("not-an-id")),
    ] {
        forge(&sc.lb, |f, _| {
            let g = f.facts.get_mut("git").unwrap();
            g["repos"] = json!({"app": g["repos"]["app"].clone()});
            let refs = g["repos"]["app"]["refs"].as_object_mut().unwrap();
            let real = refs["refs/heads/main"].clone();
            refs.insert(name.into(), oid.map(Value::from).unwrap_or(real));
        });
        let to = sc.lb.path(&format!("refs-{}", name.len()));
        refused(
            sc.run(
                &cfg,
                &[
                    "restore",
                    "latest",
                    "--source",
                    "git",
                    "--to",
                    to.to_str().unwrap(),
                ],
            ),
            &["git facts are not a valid repository record"],
        );
    }
}

fn objects_config(sc: &Scene, uploads: &Path) -> PathBuf {
    let cfg = sc.lb.path("objects.toml");
    std::fs::write(
        &cfg,
        format!("[objects]\npath = \"{}\"\n", uploads.display()),
    )
    .unwrap();
    cfg
}

#[test]
fn forged_object_keys_modes_and_planted_links_cannot_reach_outside() {
    let sc = Scene::new();
    let uploads = sc.lb.path("uploads");
    std::fs::create_dir_all(uploads.join("scans/2024")).unwrap();
    std::fs::write(uploads.join("scans/2024/a.pdf"), b"%PDF a").unwrap();
    std::fs::write(uploads.join("b.txt"), b"bee").unwrap();
    std::fs::write(uploads.join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        uploads.join("tool"),
        std::fs::Permissions::from_mode(0o6755),
    )
    .unwrap();
    let cfg = objects_config(&sc, &uploads);
    sc.run(&cfg, &["backup", "--source", "objects"]).ok();

    // Honest: equal content, permission bits kept, special bits gone.
    let honest = sc.lb.path("honest");
    sc.run(
        &cfg,
        &[
            "restore",
            "latest",
            "--source",
            "objects",
            "--to",
            honest.to_str().unwrap(),
        ],
    )
    .ok();
    for f in ["scans/2024/a.pdf", "b.txt", "tool"] {
        assert_eq!(
            std::fs::read(honest.join(f)).unwrap(),
            std::fs::read(uploads.join(f)).unwrap()
        );
    }
    let m = std::fs::metadata(honest.join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o7777, 0o755, "{m:o}");
    no_special_bits(&honest);

    // Forged modes: setuid, setgid and sticky on every file.
    forge(&sc.lb, |f, _| {
        for i in f.items.iter_mut().filter(|i| i.source == "objects") {
            i.meta["mode"] = json!(0o7755);
        }
    });
    let to = sc.lb.path("modes");
    sc.run(
        &cfg,
        &[
            "restore",
            "latest",
            "--source",
            "objects",
            "--to",
            to.to_str().unwrap(),
        ],
    )
    .ok();
    no_special_bits(&to);
    assert_eq!(
        std::fs::metadata(to.join("b.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );

    // Forged keys: each object is refused, the rest still restore.
    for (n, (evil, why)) in [
        ("../../outside/.ssh/authorized_keys", "`..`"),
        ("/tmp/lifeboat-adversary-abs", "absolute"),
        ("scans//x", "empty path segment"),
        ("scans/./x", "`.`"),
        ("a\\..\\..\\x", "separator"),
        ("x\u{1b}[2Jy", "control character"),
    ]
    .into_iter()
    .enumerate()
    {
        forge(&sc.lb, |f, _| {
            let b = f.items.iter().find(|i| i.name == "b.txt").unwrap().clone();
            f.items.push(ManifestItem {
                name: evil.into(),
                ..b
            });
        });
        let target = sc.lb.path("restore-here/objects");
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let before = sc.world();
        let out = refused(
            sc.run(
                &cfg,
                &[
                    "restore",
                    "latest",
                    "--source",
                    "objects",
                    "--to",
                    target.to_str().unwrap(),
                ],
            ),
            &["cannot be written to a directory", why],
        );
        // The forged keys add up, one per round; the 3 real ones restore.
        let want = format!("restored 3 of {} objects", 4 + n);
        assert!(out.stdout.contains(&want), "{}", out.stdout);
        sc.unchanged_outside(&before, &target);
        assert!(!Path::new("/tmp/lifeboat-adversary-abs").exists());
        no_special_bits(&target);
    }

    // Planted links in a target written with --force: a directory link is
    // refused, a link at a file's name is replaced, never written through.
    let target = sc.lb.path("planted");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(sc.outside.join(".ssh"), target.join("scans")).unwrap();
    std::os::unix::fs::symlink(&sc.victim, target.join("b.txt")).unwrap();
    std::os::unix::fs::symlink(
        sc.outside.join("meta-victim"),
        target.join(".lifeboat-objects.jsonl"),
    )
    .unwrap();
    let before = sc.world();
    let out = refused(
        sc.run(
            &cfg,
            &[
                "restore",
                "latest",
                "--source",
                "objects",
                "--to",
                target.to_str().unwrap(),
                "--force",
            ],
        ),
        &["scans/2024/a.pdf", "symbolic link"],
    );
    assert!(out.stdout.contains("REFUSED"), "{}", out.stdout);
    sc.unchanged_outside(&before, &target);
    assert!(!sc.outside.join("meta-victim").exists());
    assert_eq!(std::fs::read(target.join("b.txt")).unwrap(), b"bee");
    assert!(std::fs::symlink_metadata(target.join("b.txt"))
        .unwrap()
        .is_file());
    assert!(std::fs::symlink_metadata(target.join("scans"))
        .unwrap()
        .file_type()
        .is_symlink());
}

fn render_config(sc: &Scene, fake: &FakeRender) -> PathBuf {
    let cfg = sc.lb.path("render.toml");
    std::fs::write(
        &cfg,
        format!(
            "[render]\napi_key = \"rnd_adversary\"\napi_url = \"{}\"\n",
            fake.url
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn render_names_collide_into_distinct_files_and_forged_names_are_refused() {
    let sc = Scene::new();
    let mut world = World::clinic(3);
    // Two services of one name (Render allows it across projects).
    let mut twin = world.services[0].clone();
    twin.service["id"] = json!("srv-twin0000000000000000");
    twin.env_vars = vec![("ONLY_IN_TWIN".into(), "twin value".into())];
    twin.secret_files = Vec::new();
    let twin_name = twin.name().to_string();
    world.services.push(twin);
    let fake = FakeRender::start(world, "rnd_adversary");
    let cfg = render_config(&sc, &fake);
    sc.run(&cfg, &["backup", "--source", "render"]).ok();

    // Honest, with the twins: each in its own file, named in the output,
    // and every file holds what its service holds.
    let env = sc.lb.path("env");
    let out = sc
        .run(
            &cfg,
            &[
                "restore",
                "latest",
                "--source",
                "render",
                "--to-env-dir",
                env.to_str().unwrap(),
            ],
        )
        .ok();
    let services = fake.with(|w| w.services.clone());
    for s in &services {
        let file = if s.name() == twin_name {
            env.join(format!("{} ({}).env", s.name(), s.id()))
        } else {
            env.join(format!("{}.env", s.name()))
        };
        assert!(
            out.stdout
                .contains(&format!("({}) -> {}", s.id(), file.display())),
            "{}",
            out.stdout
        );
        let got: Vec<(String, String)> = lifeboat_testkit::shell_env(&file);
        let mut want = s.env_vars.clone();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "{}", file.display());
    }
    no_special_bits(&env);

    // A planted link at an env file's name (with --force): replaced.
    let planted = sc.lb.path("env-planted");
    std::fs::create_dir_all(&planted).unwrap();
    let api = services.iter().find(|s| s.name() != twin_name).unwrap();
    std::os::unix::fs::symlink(&sc.victim, planted.join(format!("{}.env", api.name()))).unwrap();
    let before = sc.world();
    sc.run(
        &cfg,
        &[
            "restore",
            "latest",
            "--source",
            "render",
            "--to-env-dir",
            planted.to_str().unwrap(),
            "--force",
        ],
    )
    .ok();
    sc.unchanged_outside(&before, &planted);
    assert!(
        std::fs::symlink_metadata(planted.join(format!("{}.env", api.name())))
            .unwrap()
            .is_file()
    );

    // Forged names and an unknown service type carrying YAML.
    let evil_type = "web\n  name: injected\n- type: worker\n  name: planted";
    for evil_name in ["../../outside/.ssh/authorized_keys", "/tmp/x", "..", "a\nb"] {
        forge(&sc.lb, |f, read| {
            let pos = f
                .items
                .iter()
                .position(|i| i.source == "render" && i.kind == "render-service")
                .unwrap();
            let item = f.items.remove(pos);
            let mut v: Value = serde_json::from_slice(&read(&item)).unwrap();
            v["name"] = json!(evil_name);
            v["type"] = json!(evil_type);
            f.new.push((
                item.source.clone(),
                item.name.clone(),
                item.kind.clone(),
                serde_json::to_vec(&v).unwrap(),
                item.meta.clone(),
            ));
        });
        let target = sc.lb.path("restore-here/env");
        let before = sc.world();
        refused(
            sc.run(
                &cfg,
                &[
                    "restore",
                    "latest",
                    "--source",
                    "render",
                    "--to-env-dir",
                    target.to_str().unwrap(),
                ],
            ),
            &["service name", "forged"],
        );
        sc.unchanged_outside(&before, &target);
        assert!(!target.exists());

        // The Blueprint takes the same snapshot: names and the type stay
        // strings, no service is added.
        let yaml_path = sc.lb.path("render.yaml");
        let _ = std::fs::remove_file(&yaml_path);
        sc.run(
            &cfg,
            &[
                "restore",
                "latest",
                "--source",
                "render",
                "--render-yaml",
                yaml_path.to_str().unwrap(),
            ],
        )
        .ok();
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&yaml_path).unwrap()).unwrap();
        let list = doc["services"].as_sequence().unwrap();
        assert_eq!(list.len(), services.len());
        assert!(list.iter().any(
            |s| s["type"].as_str() == Some(evil_type) && s["name"].as_str() == Some(evil_name)
        ));
        assert!(!list.iter().any(|s| s["name"].as_str() == Some("planted")));
    }
}

#[test]
fn restore_to_stdout_writes_nothing_unless_the_whole_item_matched() {
    let sc = Scene::new();
    let cfg = sc.lb.path("none.toml");
    std::fs::write(&cfg, "").unwrap();
    // Several blobs: a few MiB that do not compress or dedup.
    let mut data = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < 6 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let input = sc.lb.path("dump.sql");
    std::fs::write(&input, &data).unwrap();
    sc.lb
        .backup_command(&format!("cat {}", input.display()), "dump.sql", &[])
        .ok();
    let spool = sc.lb.path("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let rk = sc.lb.restore_key.display().to_string();
    let to_stdout = |extra: &[&str]| {
        let mut a = vec!["restore", "latest", "--to", "-", "--restore-key-file", &rk];
        a.extend_from_slice(extra);
        let out = sc.lb.command(&a).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let spool_arg = spool.display().to_string();

    // Honest: the exact bytes, and the spool dir left empty.
    let (code, out, err) = to_stdout(&["--spool-dir", &spool_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out == data, "stdout differs from the input");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);

    // Forged: the last blob dropped (size and SHA-256 kept), then one blob
    // swapped for another.
    for cut in [true, false] {
        forge(&sc.lb, |f, _| {
            let i = &mut f.items[0];
            assert!(i.blobs.len() >= 3, "{} blobs", i.blobs.len());
            if cut {
                i.blobs.pop();
            } else {
                i.blobs.swap(0, 1);
            }
        });
        let (code, out, err) = to_stdout(&["--spool-dir", &spool_arg]);
        assert_eq!(code, 4, "{err}");
        assert!(out.is_empty(), "{} bytes reached stdout", out.len());
        assert!(
            err.contains("dump.sql")
                || err.to_lowercase().contains("sha-256")
                || err.contains("size"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
        // The explicit opt-out streams what it reads, then fails.
        let (code, out, _) = to_stdout(&["--unverified-stream"]);
        assert_eq!(code, 4);
        assert!(!out.is_empty());
    }
    let out = sc.lb.run(&[
        "restore",
        "latest",
        "--to",
        "x",
        "--unverified-stream",
        "--restore-key-file",
        &rk,
    ]);
    out.code(2);
    let _ = cfg;
}

#[test]
fn output_files_replace_planted_links_and_never_clobber_without_force() {
    let sc = Scene::new();
    sc.lb.backup_command("echo hello", "hello.txt", &[]).ok();
    let rk = sc.lb.restore_key.display().to_string();
    let dir = sc.lb.path("out");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("hello.txt");
    std::os::unix::fs::symlink(&sc.victim, &link).unwrap();
    let before = sc.world();
    let out = sc
        .lb
        .run(&[
            "restore",
            "latest",
            "--to",
            link.to_str().unwrap(),
            "--restore-key-file",
            &rk,
        ])
        .code(2);
    assert!(out.stderr.contains("exists"), "{}", out.stderr);
    assert_eq!(sc.world(), before);
    sc.lb
        .run(&[
            "restore",
            "latest",
            "--to",
            link.to_str().unwrap(),
            "--force",
            "--restore-key-file",
            &rk,
        ])
        .ok();
    sc.unchanged_outside(&before, &dir);
    assert_eq!(std::fs::read_to_string(&link).unwrap(), "hello\n");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn config_type_errors_name_the_key_not_the_secret() {
    let lb = Lifeboat::local();
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        "[mysql]\nurl = \"mysql://root@127.0.0.1/x\"\nconnections = \"${MYSQL_PASSWORD}\"\n",
    )
    .unwrap();
    let out = lb
        .command(&["--config", cfg.to_str().unwrap(), "snapshots"])
        .env("MYSQL_PASSWORD", "Tr0ub4dor&3-secret")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        !err.contains("Tr0ub4dor"),
        "the password is in the error: {err}"
    );
    assert!(
        err.contains("mysql.connections") && err.contains("usize"),
        "{err}"
    );
}
