//! The Render source against a fake of Render's API (lifeboat-testkit's
//! `render`): 2 services, 60 env vars, 2 secret files, an env group, custom
//! domains, pages of 20. Snapshot -> .env files equal to the API's values;
//! diff names exactly what changed and shows no value; 429 and 500 are
//! retried; a bad key is a clear error; no secret value appears in any
//! output of the run or in the store's files.

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_testkit::render::{FakeRender, FakeService, Fault, World};
use lifeboat_testkit::{Lifeboat, Output};
use serde_json::json;

const KEY: &str = "rnd_TestKey0123456789abcdefXYZ";

fn config(lb: &Lifeboat, fake: &FakeRender) -> String {
    let cfg = lb.path("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[render]\napi_key = \"${{TEST_RENDER_KEY}}\"\napi_url = \"{}\"\npage_size = 20\nretries = 2\n",
            fake.url
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

fn with_config(lb: &Lifeboat, cfg: &str, args: &[&str]) -> Output {
    let mut a = vec!["--config", cfg];
    a.extend_from_slice(args);
    lb.run(&a)
}

fn read_env(path: &Path) -> Vec<(String, String)> {
    lifeboat_testkit::shell_env(path)
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn render_snapshot_restores_every_value_and_diff_names_only_what_changed() {
    let fake = FakeRender::start(World::clinic(7), KEY);
    let total_vars: usize = fake.with(|w| w.services.iter().map(|s| s.env_vars.len()).sum());
    assert_eq!(total_vars, 60);
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_RENDER_KEY", KEY);
    let cfg = config(&lb, &fake);
    let run = |args: &[&str]| with_config(&lb, &cfg, args);
    let bk = lb.backup_key.display().to_string();
    let rk = lb.restore_key.display().to_string();
    let mut outputs: Vec<Output> = Vec::new();

    // First backup, through a 429 (Retry-After: 1) and a 500.
    fake.fail_next([Fault::RateLimit { retry_after: 1 }, Fault::Status(500)]);
    let out = run(&[
        "-vv",
        "backup",
        "--source",
        "render",
        "--backup-key-file",
        &bk,
    ])
    .ok();
    outputs.push(out);
    let log = fake.requests();
    assert!(log.iter().any(|r| r.status == 429) && log.iter().any(|r| r.status == 500));
    // 42 vars of clinic-api in pages of 20: three requests, two with a cursor.
    let api_pages: Vec<_> = log
        .iter()
        .filter(|r| r.path == "/v1/services/srv-clinicapi000000000000/env-vars" && r.status == 200)
        .collect();
    assert_eq!(api_pages.len(), 3, "{api_pages:?}");
    assert_eq!(
        api_pages
            .iter()
            .filter(|r| r.query.contains("cursor="))
            .count(),
        2
    );
    assert!(api_pages.iter().all(|r| r.query.contains("limit=20")));
    let snaps = lb.snapshots();
    let first = snaps[0]["id"].as_str().unwrap().to_string();
    let facts = &snaps[0]["sources"]["render"]["facts"];
    assert_eq!(facts["services"], 2);
    assert_eq!(facts["env_vars"], 63); // 60 on services + 3 in the group
    assert_eq!(facts["secret_files"], 2);
    assert_eq!(facts["env_groups"], 1);
    assert_eq!(facts["custom_domains"], 2);

    // Restore into an env dir: every variable and file equal to the API's.
    let dir = lb.path("env");
    let out = run(&[
        "restore",
        "latest",
        "--source",
        "render",
        "--to-env-dir",
        dir.to_str().unwrap(),
        "--restore-key-file",
        &rk,
    ])
    .ok();
    outputs.push(out);
    let world = fake.with(|w| w.clone());
    for s in &world.services {
        let env = dir.join(format!("{}.env", s.name()));
        assert_eq!(
            sorted(read_env(&env)),
            sorted(s.env_vars.clone()),
            "{}",
            s.name()
        );
        #[cfg(unix)]
        assert_eq!(mode(&env), 0o600);
        for (name, content) in &s.secret_files {
            let p = dir.join(format!("{}.secret-files", s.name())).join(name);
            assert_eq!(std::fs::read_to_string(&p).unwrap(), *content);
            #[cfg(unix)]
            assert_eq!(mode(&p), 0o600);
        }
    }
    let group = &world.env_groups[0];
    assert_eq!(
        sorted(read_env(&dir.join("env-group.clinic-shared.env"))),
        sorted(group.env_vars.clone())
    );
    #[cfg(unix)]
    assert_eq!(mode(&dir), 0o700);
    // As JSON: every variable and secret file in one file a set, any value.
    let json_dir = lb.path("env-json");
    outputs.push(
        run(&[
            "restore",
            "latest",
            "--source",
            "render",
            "--to-env-json",
            json_dir.to_str().unwrap(),
            "--restore-key-file",
            &rk,
        ])
        .ok(),
    );
    for s in &world.services {
        let p = json_dir.join(format!("{}.json", s.name()));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["id"], s.id());
        let mut got: Vec<(String, String)> = v["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        got.sort();
        assert_eq!(got, sorted(s.env_vars.clone()), "{}", s.name());
        for (name, content) in &s.secret_files {
            assert_eq!(v["secret_files"][name], *content);
        }
        #[cfg(unix)]
        assert_eq!(mode(&p), 0o600);
    }

    // Change one value, add one variable; a second snapshot.
    let new_jwt = "s3cr3t-rotated-jwt-value-0042".to_string();
    fake.with(|w| {
        let api = w.service_mut("clinic-api");
        api.env_vars
            .iter_mut()
            .find(|(k, _)| k == "JWT_SECRET")
            .unwrap()
            .1 = new_jwt.clone();
        api.env_vars
            .push(("NEW_FEATURE_FLAG".into(), "s3cr3t-new-flag-value".into()));
    });
    outputs.push(run(&["backup", "--source", "render", "--backup-key-file", &bk]).ok());
    // diff with the backup key alone: names added and removed, never
    // which value changed (that would tell a backup host the history of
    // secrets: when JWT_SECRET was rotated).
    let diff_with = |key_flag: &str, key: &str| {
        run(&[
            "diff", &first, "latest", "--source", "render", "--json", key_flag, key,
        ])
        .ok()
    };
    let out = diff_with("--backup-key-file", &bk);
    let d = out.json();
    let changes = d["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{d}");
    let c = &changes[0];
    assert_eq!(c["item"], "service/clinic-api");
    assert_eq!(
        c["env_vars"]["changed"],
        json!([]),
        "no change visible: {c}"
    );
    assert_eq!(c["env_vars"]["added"], json!(["NEW_FEATURE_FLAG"]));
    assert_eq!(c["env_vars"]["removed"], json!([]));
    for cat in ["settings", "secret_files", "domains", "links"] {
        assert_eq!(
            c[cat],
            json!({"added": [], "removed": [], "changed": []}),
            "{cat}"
        );
    }
    outputs.push(out);
    // The state file the backup key reads holds no fingerprint at all.
    for name in std::fs::read_dir(lb.repo_path().join("state")).unwrap() {
        let raw = std::fs::read(name.unwrap().path()).unwrap();
        let (_, meta_id) = lifeboat_testkit::forge::backup_key_secrets(&lb.backup_key);
        let plain = String::from_utf8(lifeboat_testkit::forge::open(&meta_id, &raw)).unwrap();
        if plain.contains("\"env\"") {
            assert!(plain.contains("JWT_SECRET"));
            assert!(
                !regex_like_fingerprint(&plain),
                "a fingerprint in the state: {plain}"
            );
        }
    }
    // With the restore key, the change is named (still no value).
    let out = diff_with("--restore-key-file", &rk);
    let c = &out.json()["changes"][0];
    assert_eq!(c["env_vars"]["changed"], json!(["JWT_SECRET"]), "{c}");
    assert_eq!(c["env_vars"]["added"], json!(["NEW_FEATURE_FLAG"]));
    outputs.push(out);
    let text = run(&[
        "diff",
        &first,
        "--source",
        "render",
        "--backup-key-file",
        &bk,
    ])
    .ok();
    assert!(
        text.stdout.contains("env vars added: NEW_FEATURE_FLAG")
            && !text.stdout.contains("changed: JWT_SECRET"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("names added and removed only"));
    outputs.push(text);
    let text = run(&[
        "diff",
        &first,
        "--source",
        "render",
        "--restore-key-file",
        &rk,
    ])
    .ok();
    assert!(
        text.stdout.contains("env vars changed: JWT_SECRET"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("values redacted"));
    outputs.push(text);
    // --show-values needs the restore key and shows both values.
    run(&[
        "diff",
        &first,
        "--source",
        "render",
        "--show-values",
        "--backup-key-file",
        &bk,
    ])
    .code(5);
    let shown = run(&[
        "diff",
        &first,
        "--source",
        "render",
        "--show-values",
        "--restore-key-file",
        &rk,
    ])
    .ok();
    assert!(shown.stdout.contains(&new_jwt), "{}", shown.stdout);

    // A Blueprint: every service and variable name, no value.
    let yaml_path = lb.path("render.yaml");
    outputs.push(
        run(&[
            "restore",
            "latest",
            "--source",
            "render",
            "--render-yaml",
            yaml_path.to_str().unwrap(),
            "--restore-key-file",
            &rk,
        ])
        .ok(),
    );
    let yaml = std::fs::read_to_string(&yaml_path).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
    let services = doc["services"].as_sequence().unwrap();
    let by_name = |n: &str| {
        services
            .iter()
            .find(|s| s["name"].as_str() == Some(n))
            .unwrap_or_else(|| panic!("{n} missing from\n{yaml}"))
    };
    let api = by_name("clinic-api");
    let front = by_name("clinic-frontend");
    assert_eq!(
        api["dockerfilePath"].as_str(),
        Some("./Dockerfile"),
        "{yaml}"
    );
    assert_eq!(front["staticPublishPath"].as_str(), Some("dist"), "{yaml}");
    let env_entries = |s: &serde_norway::Value, k: &str| -> Vec<String> {
        s["envVars"]
            .as_sequence()
            .map(|l| {
                l.iter()
                    .filter_map(|e| e[k].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(env_entries(api, "fromGroup").contains(&"clinic-shared".to_string()));
    assert!(
        services
            .iter()
            .any(|s| env_entries(s, "key").contains(&"NEW_FEATURE_FLAG".to_string())),
        "{yaml}"
    );
    assert!(services.iter().any(|s| s["domains"]
        .as_sequence()
        .is_some_and(|d| d.iter().any(|d| d.as_str() == Some("api.clinic.example")))));
    assert_eq!(yaml.matches("sync: false\n").count(), 61 + 3);
    for v in fake.with(|w| w.secret_values()) {
        assert!(!yaml.contains(&v), "a secret value is in render.yaml");
    }

    // Into a staging service: shown first, applied with --yes, read back.
    fake.with(|w| {
        let mut staging: FakeService = w.services[0].clone();
        staging.service["id"] = json!("srv-clinicstaging00000000");
        staging.service["name"] = json!("clinic-api-staging");
        staging.env_vars = vec![("OLD_ONLY".into(), "x".into())];
        staging.secret_files = Vec::new();
        w.services.push(staging);
    });
    let to_staging = |extra: &[&str]| {
        let mut a = vec![
            "--config",
            cfg.as_str(),
            "restore",
            "latest",
            "--source",
            "render",
            "--to-service",
            "clinic-api-staging",
            "--service",
            "clinic-api",
            "--restore-key-file",
            rk.as_str(),
        ];
        a.extend_from_slice(extra);
        lb.run(&a)
    };
    let plan = to_staging(&[]).ok();
    assert!(
        plan.stdout.contains("env vars removed: OLD_ONLY"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("--yes"));
    let staging_vars = |w: &World| {
        w.services
            .iter()
            .find(|s| s.name() == "clinic-api-staging")
            .map(|s| (s.env_vars.clone(), s.secret_files.clone()))
            .unwrap()
    };
    assert_eq!(
        fake.with(|w| staging_vars(w)).0.len(),
        1,
        "changed without --yes"
    );
    outputs.push(plan);
    outputs.push(to_staging(&["--yes"]).ok());
    let (vars, files) = fake.with(|w| staging_vars(w));
    let api = fake.with(|w| w.service_mut("clinic-api").clone());
    assert_eq!(sorted(vars), sorted(api.env_vars.clone()));
    assert_eq!(sorted(files), sorted(api.secret_files.clone()));
    // The production service itself is refused.
    let refused = run(&[
        "restore",
        "latest",
        "--source",
        "render",
        "--to-service",
        "clinic-api",
        "--restore-key-file",
        &rk,
    ])
    .code(2);
    assert!(refused.stderr.contains("production"), "{}", refused.stderr);

    // A bad key: exit 3, says what to do, does not echo the key.
    let bad = lb.path("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[render]\napi_key = \"rnd_wrong_key_123\"\napi_url = \"{}\"\n",
            fake.url
        ),
    )
    .unwrap();
    let out = lb
        .run(&[
            "--config",
            bad.to_str().unwrap(),
            "backup",
            "--source",
            "render",
            "--backup-key-file",
            &bk,
        ])
        .code(3);
    assert!(
        out.stderr.contains("401") && out.stderr.contains("api_key"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("rnd_wrong_key_123"));
    assert_eq!(lb.snapshots().len(), 2, "a failed backup stored a snapshot");
    outputs.push(out);

    // No secret value (nor the API key) in any output, nor in the store's
    // or the cache's files.
    let mut secrets = fake.with(|w| w.secret_values());
    secrets.push(KEY.to_string());
    for o in &outputs {
        for s in &secrets {
            assert!(
                !o.stdout.contains(s.as_str()) && !o.stderr.contains(s.as_str()),
                "a secret value appeared in the output:\n{}\n{}",
                o.stdout,
                o.stderr
            );
        }
    }
    let mut stored = Vec::new();
    walk(lb.repo_path(), &mut stored);
    if lb.cache_dir().exists() {
        walk(&lb.cache_dir(), &mut stored);
    }
    assert!(!stored.is_empty());
    for f in stored {
        let bytes = std::fs::read(&f).unwrap();
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{} holds a secret in plaintext",
                f.display()
            );
        }
    }
}

#[test]
fn a_render_outage_fails_the_backup_after_the_retries_and_stores_nothing() {
    let fake = FakeRender::start(World::clinic(3), KEY);
    let mut lb = Lifeboat::local();
    lb.init();
    lb.set_env("TEST_RENDER_KEY", KEY);
    let cfg = config(&lb, &fake);
    let run = |args: &[&str]| with_config(&lb, &cfg, args);
    let bk = lb.backup_key.display().to_string();
    // A 500 storm: three answers in a row, one more than the retries allow.
    fake.fail_next([Fault::Status(500), Fault::Status(502), Fault::Status(500)]);
    let out = run(&["backup", "--source", "render", "--backup-key-file", &bk]).code(3);
    assert!(
        out.stderr.contains("still failing after 3 attempts"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("500"), "{}", out.stderr);
    let statuses: BTreeMap<u16, usize> =
        fake.requests().iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.status).or_default() += 1;
            m
        });
    assert_eq!(statuses.get(&500), Some(&2), "{statuses:?}");
    assert_eq!(statuses.get(&502), Some(&1), "{statuses:?}");
    assert!(
        lb.snapshots().is_empty(),
        "a snapshot was stored despite the outage"
    );
}

/// A fingerprint as the manifest meta holds them: `"KEY":"<16 hex>"`.
fn regex_like_fingerprint(text: &str) -> bool {
    text.split('"')
        .any(|part| part.len() == 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}
