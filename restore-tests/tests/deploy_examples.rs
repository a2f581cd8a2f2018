//! The deployment examples in deploy/ work as written: their YAML parses,
//! and the lifeboat command each one runs, run here against a scratch
//! repository and config, stores a snapshot tagged nightly.

use std::path::Path;
use std::process::Command;

use lifeboat_testkit::Lifeboat;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The command line after `marker` on the line that holds it.
fn command_after(text: &str, marker: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(marker))
        .unwrap_or_else(|| panic!("no line starting with {marker:?}"))
        .trim()
        .to_string()
}

#[test]
fn every_example_runs_its_backup_as_written() {
    for yaml in ["deploy/render.yaml", "deploy/github/lifeboat-backup.yml"] {
        let out = Command::new("python3")
            .args(["-c", "import sys, yaml; yaml.safe_load(open(sys.argv[1]))"])
            .arg(root().join(yaml))
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{yaml}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let commands = [
        (
            "deploy/systemd/lifeboat-backup.service",
            command_after(
                &read("deploy/systemd/lifeboat-backup.service"),
                "ExecStart=",
            ),
        ),
        (
            "deploy/render.yaml",
            command_after(&read("deploy/render.yaml"), "dockerCommand:"),
        ),
        (
            "deploy/github/lifeboat-backup.yml",
            command_after(
                &read("deploy/github/lifeboat-backup.yml"),
                "run: target/release/",
            ),
        ),
    ];
    assert!(read("deploy/Dockerfile").contains("ENTRYPOINT [\"lifeboat\"]"));
    let lb = Lifeboat::local();
    lb.init();
    let uploads = lb.path("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("a.pdf"), b"%PDF").unwrap();
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\nbackup_key_file = \"{}\"\n\n[objects]\npath = \"{}\"\n",
            lb.repo,
            lb.backup_key.display(),
            uploads.display()
        ),
    )
    .unwrap();
    for (i, (file, line)) in commands.iter().enumerate() {
        let line = line.replace("/etc/secrets/lifeboat.toml", cfg.to_str().unwrap());
        let mut words = line.split_whitespace();
        let program = words.next().unwrap();
        assert!(program.ends_with("lifeboat"), "{file}: {line}");
        let args: Vec<&str> = words.collect();
        let out = Command::new(lifeboat_testkit::lifeboat_bin())
            .args(&args)
            .env("LIFEBOAT_CONFIG", &cfg)
            .env("LIFEBOAT_CACHE_DIR", lb.path("cache"))
            .env_remove("LIFEBOAT_REPO")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: `{line}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let snaps = lb.snapshots();
        assert_eq!(snaps.len(), i + 1, "{file}");
        assert_eq!(snaps[i]["tags"], serde_json::json!(["nightly"]), "{file}");
    }
}
