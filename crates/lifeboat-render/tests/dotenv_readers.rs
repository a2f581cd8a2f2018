//! `.env` files through their real readers: every awkward value a Render
//! service holds, written for each dialect, read back by python-dotenv
//! (PyPI), Node's dotenv (npm) and bash (`set -a; . FILE`) exactly; a value
//! a reader cannot represent is refused by name. scripts/test.sh installs
//! the readers (python-dotenv with pip, dotenv with npm into
//! target/js-readers).
//!
//! Docker Compose is the one dialect without its reader here: Compose v2 is
//! a Go binary that none of this machine's registries carries (Debian 12
//! has only the Python Compose v1, whose env_file rules differ). Its
//! dialect is checked in `dotenv.rs`'s unit tests against compose-go's
//! documented parser rules (single quotes literal, a quote after `\` does
//! not close).

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_render::dotenv::{format_for, read_for, Dialect};
use lifeboat_render::EnvVar;

/// Every kind of value the Render tests hold, and some worse.
fn values() -> Vec<&'static str> {
    vec![
        "",
        "plain-value_1.2:3@x",
        "with space",
        "has # hash",
        "#starts with hash",
        "dollar $HOME and ${PATH} and $$",
        "single ' quote",
        "double \" quote",
        "back\\slash \\n not a newline",
        "ends with backslash\\",
        "line one\nline two\n",
        "carriage\r\nreturn",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n+/x'\"$`\\\n-----END PRIVATE KEY-----\n",
        "p@ss w0rd #with 'quotes' and \"dq\" $HOME",
        "unicode é ✓ 🚑",
        "=leading equals",
        "  padded  ",
        "`backticks`",
        "\ttab",
    ]
}

fn vars() -> Vec<EnvVar> {
    values()
        .into_iter()
        .enumerate()
        .map(|(i, v)| EnvVar {
            key: format!("K_{i}"),
            value: v.to_string(),
        })
        .collect()
}

fn node_dotenv() -> PathBuf {
    let p = std::env::var_os("LIFEBOAT_TEST_NODE_DOTENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/js-readers/node_modules/dotenv")
        });
    assert!(
        p.join("package.json").exists(),
        "Node's dotenv is not at {} (scripts/test.sh installs it)",
        p.display()
    );
    p
}

/// What a real reader makes of `file`: a JSON object of the keys.
fn read_with(
    dialect: Dialect,
    file: &Path,
    keys: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let out = match dialect {
        Dialect::Python => Command::new("python3")
            .args([
                "-c",
                "import json, sys\n\
                 from dotenv import dotenv_values\n\
                 print(json.dumps(dotenv_values(sys.argv[1])))",
            ])
            .arg(file)
            .output(),
        Dialect::Node => Command::new("node")
            .args([
                "-e",
                "const d = require(process.argv[1]); \
                 const fs = require('fs'); \
                 console.log(JSON.stringify(d.parse(fs.readFileSync(process.argv[2]))))",
            ])
            .arg(node_dotenv())
            .arg(file)
            .output(),
        Dialect::Shell => Command::new("bash")
            .args([
                "-c",
                "set -a; . \"$0\"; set +a; exec python3 -c 'import json, os, sys; \
                 print(json.dumps({k: os.environ[k] for k in sys.argv[1:] if k in os.environ}))' \"$@\"",
            ])
            .arg(file)
            .args(keys)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output(),
        other => panic!("no real reader for {other} here"),
    }
    .expect("run the reader");
    assert!(
        out.status.success(),
        "{dialect} reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("the reader prints JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn every_value_reads_back_exactly_through_each_real_reader_or_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for dialect in [Dialect::Python, Dialect::Node, Dialect::Shell] {
        // Each value alone: written and read back exactly, or refused with
        // its key named and the JSON form offered.
        let mut written = Vec::new();
        let mut refused = Vec::new();
        for var in vars() {
            match format_for(std::slice::from_ref(&var), dialect) {
                Ok(_) => written.push(var),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&var.key) && msg.contains("--to-env-json"),
                        "{msg}"
                    );
                    assert!(
                        !msg.contains(&var.value) || var.value.is_empty(),
                        "the value was printed: {msg}"
                    );
                    refused.push(var.key.clone());
                }
            }
        }
        let file = dir.path().join(format!("{dialect}.env"));
        std::fs::write(&file, format_for(&written, dialect).unwrap()).unwrap();
        let keys: Vec<String> = written.iter().map(|v| v.key.clone()).collect();
        let got = read_with(dialect, &file, &keys);
        for var in &written {
            assert_eq!(
                got.get(&var.key).and_then(|v| v.as_str()),
                Some(var.value.as_str()),
                "{dialect}: {} = {:?} came back otherwise; file:\n{}",
                var.key,
                var.value,
                std::fs::read_to_string(&file).unwrap()
            );
        }
        assert_eq!(got.len(), written.len(), "{dialect}: {got:?}");
        // lifeboat's own read-back agrees with the real reader.
        let ours = read_for(&file, dialect).unwrap();
        assert_eq!(ours.len(), written.len());
        for (k, v) in ours {
            assert_eq!(
                got.get(&k).and_then(|x| x.as_str()),
                Some(v.as_str()),
                "{dialect} {k}"
            );
        }
        // What each reader cannot hold, as measured: the shell holds every
        // value here; python-dotenv expands `${PATH}` whatever the quotes;
        // Node's dotenv cannot hold a line break next to all three quotes.
        let want: &[&str] = match dialect {
            Dialect::Shell => &[],
            Dialect::Python => &["K_5"],
            _ => &["K_12"],
        };
        assert_eq!(refused, want, "{dialect}");
    }
}
