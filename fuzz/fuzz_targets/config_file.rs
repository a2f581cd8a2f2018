//! The configuration file parser of the `lifeboat` binary (TOML, `${VAR}`
//! expansion, section by section, errors that never show a value).
#![no_main]

/// What config.rs needs of the binary's `exit` module.
mod exit {
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::anyhow!(message.into())
    }
}

#[allow(dead_code)]
#[path = "../../crates/lifeboat-cli/src/config.rs"]
mod config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(dir) = std::env::temp_dir().canonicalize() else {
        return;
    };
    let path = dir.join(format!("lifeboat-fuzz-config-{}.toml", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Err(e) = config::Config::load(&path) {
        // A secret typed into the file never shows in the error.
        let text = String::from_utf8_lossy(data);
        if let Some(v) = text.split("password = \"").nth(1).and_then(|r| r.split('"').next()) {
            if v.len() >= 8 {
                assert!(!format!("{e:#}").contains(v), "the error shows a value");
            }
        }
    }
});
