//! Connection settings: a `mysql://USER@HOST:PORT/DB` URL, the password
//! kept apart (from the config's `${ENV}` reference, never in the URL shown
//! in messages), TLS with a CA file and a verification mode.

use std::path::PathBuf;

use lifeboat_store::secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::{ConnectOptions, Connection, MySqlConnection};

use crate::error::{Context, Error, Result};

/// How much the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP (local test servers only).
    Disabled,
    /// TLS if the server offers it.
    #[default]
    Preferred,
    /// TLS, any certificate.
    Required,
    /// TLS, certificate signed by the CA file.
    VerifyCa,
    /// TLS, CA-signed and naming the host (what Aiven's docs recommend).
    VerifyIdentity,
}

impl std::str::FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "disabled" | "disable" => SslMode::Disabled,
            "preferred" | "prefer" => SslMode::Preferred,
            "required" | "require" => SslMode::Required,
            "verify-ca" => SslMode::VerifyCa,
            "verify-identity" | "verify-full" => SslMode::VerifyIdentity,
            other => {
                return Err(Error::Invalid(format!(
                    "ssl mode {other:?}: use disabled, preferred, required, verify-ca or verify-identity"
                )))
            }
        })
    }
}

/// Where a database is and how to reach it.
#[derive(Clone)]
pub struct MysqlOptions {
    /// `mysql://USER@HOST:PORT/DATABASE` (a password in the URL is refused:
    /// URLs end up in logs and process lists).
    pub url: String,
    /// The password.
    pub password: Option<SecretString>,
    /// CA certificate (PEM) for TLS verification.
    pub ca_file: Option<PathBuf>,
    /// TLS mode; `verify-ca` is implied by a CA file.
    pub ssl_mode: Option<SslMode>,
}

impl std::fmt::Debug for MysqlOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlOptions")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

/// The parts of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl Target {
    /// `host:port/database`, for messages and for "is this the source?".
    pub fn display(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "MySQL URL {url:?}: {why}; expected mysql://USER@HOST[:PORT]/DATABASE"
        ))
    };
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| bad("must start with mysql://"))?;
    let (auth, rest) = rest.split_once('@').ok_or_else(|| bad("no user"))?;
    if auth.contains(':') {
        return Err(Error::Invalid(
            "the MySQL URL contains a password: put it in the config as password = \"${ENV_VAR}\" (or LIFEBOAT_MYSQL_PASSWORD) instead".into(),
        ));
    }
    let (hostport, db) = rest.split_once('/').ok_or_else(|| bad("no database"))?;
    let db = db.split('?').next().unwrap_or("");
    if db.is_empty() || auth.is_empty() || hostport.is_empty() {
        return Err(bad("user, host and database are required"));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
        None => (hostport, 3306),
    };
    Ok(Target {
        user: auth.to_string(),
        host: host.to_string(),
        port,
        database: db.to_string(),
    })
}

impl MysqlOptions {
    pub(crate) fn target(&self) -> Result<Target> {
        parse_url(&self.url)
    }

    /// The database named by the URL.
    pub fn database(&self) -> Result<String> {
        Ok(self.target()?.database)
    }

    /// Connect to `database` (or the URL's database).
    pub(crate) async fn connect(&self, database: Option<&str>) -> Result<MySqlConnection> {
        // Two TLS stacks are linked (the S3 client's and sqlx's), so rustls
        // cannot pick a crypto provider by itself: name one, once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let t = self.target()?;
        let mut o = MySqlConnectOptions::new()
            .host(&t.host)
            .port(t.port)
            .username(&t.user)
            .charset("utf8mb4")
            .timezone(Some("+00:00".to_string()))
            // sqlx would add PIPES_AS_CONCAT to sql_mode, which changes how
            // `||` in views and routines parses; we set sql_mode ourselves.
            .pipes_as_concat(false)
            .no_engine_substitution(false)
            .statement_cache_capacity(0)
            // Statements carry row data: never log them, not even slow ones.
            .log_statements(tracing::log::LevelFilter::Off)
            .log_slow_statements(
                tracing::log::LevelFilter::Off,
                std::time::Duration::from_secs(3600),
            );
        if let Some(db) = database {
            o = o.database(db);
        }
        if let Some(p) = &self.password {
            o = o.password(p.expose_secret());
        }
        let mode = self.ssl_mode.unwrap_or(if self.ca_file.is_some() {
            SslMode::VerifyCa
        } else {
            SslMode::Preferred
        });
        o = o.ssl_mode(match mode {
            SslMode::Disabled => MySqlSslMode::Disabled,
            SslMode::Preferred => MySqlSslMode::Preferred,
            SslMode::Required => MySqlSslMode::Required,
            SslMode::VerifyCa => MySqlSslMode::VerifyCa,
            SslMode::VerifyIdentity => MySqlSslMode::VerifyIdentity,
        });
        if let Some(ca) = &self.ca_file {
            o = o.ssl_ca(ca);
        }
        MySqlConnection::connect_with(&o)
            .await
            .context(|| format!("connecting to {}", t.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_passwords_in_urls_are_refused() {
        let t = parse_url("mysql://avnadmin@db.aivencloud.com:12345/defaultdb?ssl-mode=REQUIRED")
            .unwrap();
        assert_eq!(
            t,
            Target {
                user: "avnadmin".into(),
                host: "db.aivencloud.com".into(),
                port: 12345,
                database: "defaultdb".into()
            }
        );
        assert_eq!(parse_url("mysql://root@127.0.0.1/x").unwrap().port, 3306);
        let e = parse_url("mysql://root:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
        assert!(parse_url("postgres://u@h/db").is_err());
        assert!(parse_url("mysql://u@h/").is_err());
        assert_eq!(
            "VERIFY_IDENTITY".parse::<SslMode>().unwrap(),
            SslMode::VerifyIdentity
        );
    }
}
