//! The configuration file (`--config FILE` or `LIFEBOAT_CONFIG`): TOML, any
//! value may be `${ENV_VAR}`, unknown keys are errors. Command-line flags
//! and their environment variables win over the file.
//!
//! Sections: `[repository]`, `[mysql]`, `[objects]`, `[render]`,
//! `[[git]]`, `[staging]` (documented in config/lifeboat.example.toml).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::exit;

/// The file, section by section. A section whose `${VAR}` references are
/// not all set is left out and remembered: a command fails on it only if
/// it uses that section (a MySQL restore needs no `GITHUB_TOKEN`). Read
/// the sections through the methods, which say so.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub repository: RepositoryConfig,
    mysql: Option<MysqlConfig>,
    objects: Option<ObjectsConfig>,
    render: Option<RenderConfig>,
    #[serde(default)]
    git: Vec<GitConfig>,
    staging: Option<StagingConfig>,
    check: Option<CheckConfig>,
    retention: Option<RetentionConfig>,
    notify: Option<NotifyConfig>,
    objectives: Option<ObjectivesConfig>,
    copy: Option<CopyConfig>,
    #[serde(default)]
    schedule: Vec<ScheduleConfig>,
    /// Section → why it could not be read (an unset variable).
    #[serde(skip)]
    unresolved: std::collections::BTreeMap<String, String>,
}

macro_rules! sections {
    ($($name:ident: $t:ty),+ $(,)?) => {
        impl Config {
            $(
                #[doc = concat!("`[", stringify!($name), "]`, or why it cannot be read.")]
                pub fn $name(&self) -> Result<&$t> {
                    match self.unresolved.get(stringify!($name)) {
                        Some(why) => Err(exit::usage(why.clone())),
                        None => Ok(&self.$name),
                    }
                }
            )+

            /// Whether the file has the section (resolved or not).
            pub fn has(&self, section: &str) -> bool {
                if self.unresolved.contains_key(section) {
                    return true;
                }
                match section {
                    "mysql" => self.mysql.is_some(),
                    "objects" => self.objects.is_some(),
                    "render" => self.render.is_some(),
                    "git" => !self.git.is_empty(),
                    "staging" => self.staging.is_some(),
                    _ => false,
                }
            }
        }
    };
}

sections!(
    mysql: Option<MysqlConfig>,
    objects: Option<ObjectsConfig>,
    render: Option<RenderConfig>,
    git: Vec<GitConfig>,
    staging: Option<StagingConfig>,
    check: Option<CheckConfig>,
    retention: Option<RetentionConfig>,
    notify: Option<NotifyConfig>,
    objectives: Option<ObjectivesConfig>,
    copy: Option<CopyConfig>,
    schedule: Vec<ScheduleConfig>,
);

/// `[copy]`: the replica `lifeboat copy` fills (and `init --replica-of`
/// makes). S3 settings left unset are the repository's.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    /// A directory or s3://BUCKET/PREFIX.
    pub to: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub connections: Option<usize>,
}

impl std::fmt::Debug for CopyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyConfig")
            .field("to", &self.to)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `[objectives]`: what `status` checks (durations like "26h", "7d").
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesConfig {
    /// The newest good snapshot of each source at most this old.
    pub max_age: Option<String>,
    /// The last full (not sampled) drill's RTO at most this.
    pub rto: Option<String>,
    /// A passing drill at least this often.
    pub drill_every: Option<String>,
    /// A passing verify at least this often.
    pub verify_every: Option<String>,
    /// The stored binlog at most this far behind now.
    pub binlog_lag: Option<String>,
}

impl ObjectivesConfig {
    /// The objectives, each duration checked.
    pub fn parse(&self) -> Result<lifeboat_ops::Objectives> {
        let d = |name: &str, v: &Option<String>| -> Result<Option<std::time::Duration>> {
            v.as_deref()
                .map(|s| {
                    parse_duration(s).map_err(|e| exit::usage(format!("[objectives] {name}: {e}")))
                })
                .transpose()
        };
        Ok(lifeboat_ops::Objectives {
            max_age: d("max_age", &self.max_age)?,
            rto: d("rto", &self.rto)?,
            drill_every: d("drill_every", &self.drill_every)?,
            verify_every: d("verify_every", &self.verify_every)?,
            binlog_lag: d("binlog_lag", &self.binlog_lag)?,
        })
    }
}

/// `[notify]`: where job results go.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// JSON POST of every failure (and success with `on_success`).
    pub webhook_url: Option<String>,
    /// GET after every successful job: a dead-man's switch (e.g.
    /// healthchecks.io) notices when it stops coming.
    pub ping_url: Option<String>,
    /// GET after a failed job (healthchecks.io: PING_URL/fail).
    pub ping_fail_url: Option<String>,
    /// Also send successes (webhook and e-mail).
    #[serde(default)]
    pub on_success: bool,
    /// E-mail failures through this server: `smtps://USER:${SMTP_PASSWORD}@HOST:465`
    /// or `smtp://USER:PASSWORD@HOST:587?tls=required` (SMTP2GO, Brevo, ...).
    pub smtp_url: Option<String>,
    /// Sender address.
    pub email_from: Option<String>,
    /// Recipients.
    #[serde(default)]
    pub email_to: Vec<String>,
}

/// `[[schedule]]`: one job of `lifeboat daemon`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `backup`, `drill`, `forget`, `prune` or `verify`.
    pub job: String,
    /// Cron pattern (5 fields, or 6 with seconds first).
    pub cron: String,
    /// IANA time zone of the pattern (default UTC), e.g. Europe/Berlin.
    pub time_zone: Option<String>,
    /// Extra arguments for the job's command, e.g. ["--tag", "nightly"].
    #[serde(default)]
    pub args: Vec<String>,
}

/// `[check]`: the columns of the documents table that the cross-check
/// (`check-references`, drills) reads; the table is `--table`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Where a file is (`storage_provider`; `local` means the app's disk).
    pub provider_column: Option<String>,
    /// The bucket (`storage_bucket`).
    pub bucket_column: Option<String>,
    /// The object's key (`storage_key`).
    pub key_column: Option<String>,
}

/// `[retention]`: what `forget` keeps when no --keep-* flag is given.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default)]
    pub keep_last: usize,
    #[serde(default)]
    pub keep_hourly: usize,
    #[serde(default)]
    pub keep_daily: usize,
    #[serde(default)]
    pub keep_weekly: usize,
    #[serde(default)]
    pub keep_monthly: usize,
    #[serde(default)]
    pub keep_yearly: usize,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// How long the stored binlog (point-in-time windows) is kept, e.g.
    /// "14d" (the default), "36h"; whatever the snapshots kept.
    pub binlog: Option<String>,
}

/// A duration written like "90s", "45m", "26h" or "7d".
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let bad =
        || format!("{s:?} is not a duration: write e.g. \"90s\", \"45m\", \"26h\" or \"14d\"");
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// `[render]`: the Render account.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    pub api_key: String,
    pub api_url: Option<String>,
    pub owner_id: Option<String>,
    /// Only these services (by name); all when empty.
    #[serde(default)]
    pub services: Vec<String>,
    pub page_size: Option<u32>,
    /// Attempts after the first for a request answered 429 or 5xx (default 6).
    pub retries: Option<u32>,
}

/// `[[git]]`: one repository.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    pub url: String,
    pub name: Option<String>,
    pub token: Option<String>,
    pub ssh_command: Option<String>,
    /// Where the mirror lives (default: under the cache directory).
    pub mirror_dir: Option<PathBuf>,
    /// Incremental bundles before a full one (default 30).
    pub max_chain: Option<usize>,
}

/// `[objects]`: the uploads bucket (R2) or a local upload directory.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectsConfig {
    pub bucket: Option<String>,
    #[serde(default)]
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub connections: Option<usize>,
    pub path: Option<PathBuf>,
    /// Alarm when more than this percentage of objects vanished since the
    /// previous snapshot (default 10).
    pub max_deleted_percent: Option<f64>,
}

/// `[mysql]`: the production database.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    pub url: String,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub ssl_mode: Option<String>,
    #[serde(default)]
    pub include_tables: Vec<String>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Connections reading the dump at once (default 2).
    pub connections: Option<usize>,
    /// Databases dumped on one snapshot (empty: the URL's).
    #[serde(default)]
    pub databases: Vec<String>,
    /// Capture the binary log for point-in-time recovery (`lifeboat binlog`).
    #[serde(default)]
    pub binlog: bool,
    /// The replica id binlog capture connects as (default: derived from
    /// the repository id, in 0x4C000000..0x4CFFFFFF).
    pub binlog_server_id: Option<u32>,
    /// `lifeboat binlog --follow`: seconds between log snapshots (default 60).
    pub binlog_flush_secs: Option<u64>,
    /// Backups between full reads store no rows: they capture the binary
    /// log and name the last full snapshot and the stored binlog up to
    /// their moment (needs `binlog`). `backup --full` reads it all anyway.
    #[serde(default)]
    pub binlog_nightly: bool,
    /// With `binlog_nightly`: a full read when the last one is this many
    /// days old (default 7).
    pub full_read_days: Option<f64>,
}

/// `[staging]`: where restore drills go.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingConfig {
    pub mysql_url: Option<String>,
    pub mysql_password: Option<String>,
    pub mysql_ca_file: Option<PathBuf>,
    /// Drill bucket (same endpoint and credentials as `[objects]`).
    pub objects_bucket: Option<String>,
    #[serde(default)]
    pub objects_prefix: String,
    /// Scratch directory for drills (objects, env files, git clones).
    pub dir: Option<PathBuf>,
    /// `drill` GETs this after verification (e.g. the staging app's health).
    pub health_url: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub url: Option<String>,
    pub backup_key_file: Option<PathBuf>,
    pub restore_key_file: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub connections: Option<usize>,
    /// This host never deletes from the store (see `--append-only`).
    #[serde(default)]
    pub append_only: bool,
    /// The bucket's lock rule, in days (see `--immutable-days`).
    pub immutable_days: Option<f64>,
}

impl std::fmt::Debug for RepositoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| exit::usage(format!("cannot read the config file {shown}: {e}")))?;
        let value: toml::Value = toml::from_str(&text).map_err(|e| {
            // Where, and what the parser expected; never the line itself,
            // which may hold a password typed in by hand.
            let at = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            exit::usage(format!("config file {shown}: {at}{}", e.message()))
        })?;
        let toml::Value::Table(table) = value else {
            return Err(exit::usage(format!(
                "config file {shown}: not a TOML table"
            )));
        };
        // Each section on its own: one with an unset variable is left out
        // and remembered, so only a command that uses it fails.
        let mut unresolved = std::collections::BTreeMap::new();
        let mut resolved = toml::Table::new();
        for (section, v) in table {
            match expand(v, &mut vec![section.clone()]) {
                Ok(v) => {
                    resolved.insert(section, v);
                }
                Err(e) => {
                    unresolved.insert(section, format!("config file {shown}: {e}"));
                }
            }
        }
        if let Some(why) = unresolved.get("repository") {
            return Err(exit::usage(why.clone()));
        }
        const SECTIONS: [&str; 12] = [
            "repository",
            "mysql",
            "objects",
            "render",
            "git",
            "staging",
            "check",
            "retention",
            "notify",
            "objectives",
            "copy",
            "schedule",
        ];
        if let Some(unknown) = unresolved.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(exit::usage(format!(
                "config file {shown}: unknown section `{unknown}`"
            )));
        }
        let mut config = Config::from_value(toml::Value::Table(resolved))
            .map_err(|e| exit::usage(format!("config file {shown}: {e}")))?;
        config.unresolved = unresolved;
        Ok(config)
    }

    /// Deserialize an expanded config. Errors name the key and what was
    /// expected, never the value: after `${VAR}` expansion a value may be a
    /// password (`connections = "${MYSQL_PASSWORD}"`).
    pub fn from_value(value: toml::Value) -> std::result::Result<Config, ValueError> {
        Config::deserialize(Redacting {
            value,
            path: String::new(),
        })
    }
}

/// A config error that holds a key and an expectation, never a value.
#[derive(Debug)]
pub struct ValueError {
    path: Option<String>,
    message: String,
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path.as_deref() {
            Some("") | None => f.write_str(&self.message),
            Some(p) => write!(f, "{p}: {}", self.message),
        }
    }
}

impl std::error::Error for ValueError {}

impl ValueError {
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }
}

/// What kind of value was found, without the value.
fn kind_of(u: &serde::de::Unexpected<'_>) -> &'static str {
    use serde::de::Unexpected as U;
    match u {
        U::Bool(_) => "a boolean",
        U::Unsigned(_) | U::Signed(_) => "an integer",
        U::Float(_) => "a float",
        U::Char(_) | U::Str(_) => "a string",
        U::Bytes(_) => "bytes",
        U::Unit | U::Option => "nothing",
        U::Seq => "an array",
        U::Map => "a table",
        _ => "a value of another kind",
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        // Only serde's own messages and ours come here (no value: the
        // value-bearing ones are the three below).
        ValueError {
            path: None,
            message: msg.to_string(),
        }
    }
    fn invalid_type(u: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        ValueError {
            path: None,
            message: format!("expected {exp}, found {} (value not shown)", kind_of(&u)),
        }
    }
    fn invalid_value(u: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        ValueError {
            path: None,
            message: format!("expected {exp}, found another {} (value not shown)", {
                kind_of(&u)
                    .trim_start_matches("an ")
                    .trim_start_matches("a ")
            }),
        }
    }
    fn invalid_length(len: usize, exp: &dyn serde::de::Expected) -> Self {
        ValueError {
            path: None,
            message: format!("expected {exp}, found {len} elements"),
        }
    }
    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        ValueError {
            path: None,
            message: format!("expected one of {}", expected.join(", ")),
        }
    }
}

/// A `toml::Value` as a serde deserializer whose errors carry the key path
/// and never a value.
struct Redacting {
    value: toml::Value,
    path: String,
}

impl Redacting {
    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> serde::de::IntoDeserializer<'de, ValueError> for Redacting {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for Redacting {
    type Error = ValueError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ValueError> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        let path = self.path.clone();
        let r = match self.value {
            toml::Value::String(s) => visitor.visit_string(s),
            toml::Value::Integer(i) => visitor.visit_i64(i),
            toml::Value::Float(f) => visitor.visit_f64(f),
            toml::Value::Boolean(b) => visitor.visit_bool(b),
            toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
            toml::Value::Array(a) => {
                let items = a.into_iter().enumerate().map(|(i, value)| Redacting {
                    value,
                    path: format!("{path}[{i}]"),
                });
                let mut seq = SeqDeserializer::new(items);
                visitor
                    .visit_seq(&mut seq)
                    .and_then(|v| seq.end().map(|_| v))
            }
            toml::Value::Table(t) => {
                let parent = Redacting {
                    value: toml::Value::Boolean(false),
                    path: path.clone(),
                };
                let entries = t.into_iter().map(|(k, value)| {
                    let path = parent.child(&k);
                    (k, Redacting { value, path })
                });
                let mut map = MapDeserializer::new(entries);
                visitor
                    .visit_map(&mut map)
                    .and_then(|v| map.end().map(|_| v))
            }
        };
        r.map_err(|e| e.at(&path))
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ValueError> {
        // TOML has no null: a key that is there is Some.
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Replace `${NAME}` in every string with the environment variable NAME.
/// A missing variable is an error naming the key, never an empty value.
fn expand(value: toml::Value, path: &mut Vec<String>) -> std::result::Result<toml::Value, String> {
    Ok(match value {
        toml::Value::String(s) => toml::Value::String(expand_str(&s).map_err(|var| {
            format!(
                "{} refers to ${{{var}}}, which is not set in the environment",
                path.join(".")
            )
        })?),
        toml::Value::Table(t) => {
            let mut out = toml::Table::new();
            for (k, v) in t {
                path.push(k.clone());
                let v = expand(v, path)?;
                path.pop();
                out.insert(k, v);
            }
            toml::Value::Table(out)
        }
        toml::Value::Array(a) => {
            let mut out = Vec::new();
            for (i, v) in a.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(expand(v, path)?);
                path.pop();
            }
            toml::Value::Array(out)
        }
        other => other,
    })
}

fn expand_str(s: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => out.push_str(&v),
            _ => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand_and_missing_ones_name_the_key() {
        std::env::set_var("LIFEBOAT_TEST_CFG_BUCKET", "backups");
        let v: toml::Value =
            toml::from_str("[repository]\nurl = \"s3://${LIFEBOAT_TEST_CFG_BUCKET}/x\"\n").unwrap();
        let v = expand(v, &mut Vec::new()).unwrap();
        let c = Config::from_value(v).unwrap();
        assert_eq!(c.repository.url.as_deref(), Some("s3://backups/x"));
        let v: toml::Value =
            toml::from_str("[repository]\nsecret_access_key = \"${LIFEBOAT_TEST_CFG_UNSET}\"\n")
                .unwrap();
        let e = expand(v, &mut Vec::new()).unwrap_err();
        assert!(
            e.contains("repository.secret_access_key") && e.contains("LIFEBOAT_TEST_CFG_UNSET"),
            "{e}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        std::env::set_var("MYSQL_PASSWORD", "x");
        std::env::set_var("STAGING_MYSQL_PASSWORD", "y");
        std::env::set_var("R2_ACCESS_KEY_ID", "k");
        std::env::set_var("R2_SECRET_ACCESS_KEY", "s");
        std::env::set_var("RENDER_API_KEY", "rnd_x");
        std::env::set_var("GITHUB_TOKEN", "ghp_x");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/lifeboat.example.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(c.mysql.is_some() && c.staging.is_some() && c.objects.is_some());
        assert!(c.render.is_some() && !c.git.is_empty());
        assert_eq!(c.repository.url.as_deref(), Some("/var/backups/lifeboat"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let v: toml::Value =
            toml::from_str("[repository]\nurl = \"/x\"\nbucket = \"y\"\n").unwrap();
        let Err(e) = Config::from_value(v) else {
            panic!("an unknown key was accepted")
        };
        assert!(e.to_string().contains("bucket"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key_never_the_value() {
        std::env::set_var("LIFEBOAT_TEST_CFG_PW", "hunter2-s3cret");
        for (text, key, expected) in [
            (
                "[mysql]\nurl = \"mysql://x\"\nconnections = \"${LIFEBOAT_TEST_CFG_PW}\"\n",
                "mysql.connections",
                "usize",
            ),
            (
                "[render]\napi_key = \"k\"\npage_size = \"${LIFEBOAT_TEST_CFG_PW}\"\n",
                "render.page_size",
                "u32",
            ),
            (
                "[objects]\nmax_deleted_percent = \"${LIFEBOAT_TEST_CFG_PW}\"\n",
                "objects.max_deleted_percent",
                "f64",
            ),
            (
                "[[git]]\nurl = \"u\"\nmax_chain = \"${LIFEBOAT_TEST_CFG_PW}\"\n",
                "git[0].max_chain",
                "usize",
            ),
            (
                "[retention]\nkeep_tags = \"${LIFEBOAT_TEST_CFG_PW}\"\n",
                "retention.keep_tags",
                "a sequence",
            ),
            (
                "[mysql]\nurl = \"mysql://x\"\nconnections = -1\n",
                "mysql.connections",
                "usize",
            ),
        ] {
            let v: toml::Value = toml::from_str(text).unwrap();
            let v = expand(v, &mut Vec::new()).unwrap();
            let Err(e) = Config::from_value(v) else {
                panic!("{text} was accepted")
            };
            let e = e.to_string();
            assert!(!e.contains("hunter2") && !e.contains("-1"), "{e}");
            assert!(e.contains(key) && e.contains(expected), "{e}");
        }
        let v: toml::Value = toml::from_str("[render]\npage_size = 3\n").unwrap();
        let e = Config::from_value(v).err().unwrap().to_string();
        assert!(e.contains("render") && e.contains("api_key"), "{e}");
    }
}
