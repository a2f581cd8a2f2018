//! The accounts that use a database: every account and role holding a
//! privilege on it, with `SHOW CREATE USER` (password hash, plugin, limits)
//! and `SHOW GRANTS`, stored as the `DB/_accounts` item (sealed like data:
//! it holds password hashes, and is never printed).
//!
//! `restore --with-users` re-creates them, treating the item as hostile
//! like every other: each statement is parsed and rebuilt from checked
//! parts (names quoted, privileges from a fixed list, the database mapped
//! to the target), never sent as stored. Accounts that exist are left
//! alone. Grants on other databases are listed and skipped; server-wide
//! ones (`ON *.*`: SUPER, FILE, PROCESS...) too, unless
//! `--with-global-grants`, because a snapshot must not hand out
//! server-wide rights. A grant the target account may not give is
//! reported. MySQL 8's syntax (caching_sha2_password hashes as hex, roles
//! as accounts) is tested as statement text only: no MySQL 8 server runs
//! here.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::connect::MysqlOptions;
use crate::encode::ident;
use crate::error::Result;
use crate::lexer::{ident_value, tokens, Dialect, Kind, Token};
use crate::schema::{quote, short};
use crate::wire::Conn;

/// The `DB/_accounts` item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Accounts {
    /// Format version (1).
    pub version: u32,
    pub accounts: Vec<Account>,
    /// Accounts holding privileges on the database that the dumping
    /// account could not read (`user@host: why`).
    #[serde(default)]
    pub unreadable: Vec<String>,
}

/// One account or role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Account {
    pub user: String,
    /// Empty for a MariaDB role.
    pub host: String,
    #[serde(default)]
    pub role: bool,
    /// `SHOW CREATE USER` (empty for a role).
    pub create: String,
    /// `SHOW GRANTS FOR` lines.
    pub grants: Vec<String>,
}

/// Item name of the accounts of `database`.
pub fn accounts_item(database: &str) -> String {
    format!("{database}/_accounts")
}

/// `` `user`@`host` ``, or `` `role` ``.
fn account_name(user: &str, host: &str) -> String {
    if host.is_empty() {
        ident(user)
    } else {
        format!("{}@{}", ident(user), ident(host))
    }
}

/// A database name as a database-level grant's pattern: `_` and `%` are
/// wildcards there, so they are escaped (the grant never reaches further
/// than the one database).
pub(crate) fn grant_pattern(db: &str) -> String {
    ident(
        &db.replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%"),
    )
}

/// `'user'@'host'` as information_schema prints a grantee.
fn parse_grantee(g: &str) -> Option<(String, String)> {
    let (u, h) = g.rsplit_once("'@'")?;
    let u = u.strip_prefix('\'')?.replace("''", "'");
    let h = h.strip_suffix('\'')?.replace("''", "'");
    Some((u, h))
}

/// Read the accounts holding privileges on `db` (inside the dump's
/// transaction). An account the dumping user may not read is listed in
/// `unreadable`, not an error: the rows still get backed up.
pub(crate) fn read(conn: &mut Conn, db: &str) -> Result<Accounts> {
    let q = quote(db);
    let mut grantees = BTreeSet::new();
    for view in ["SCHEMA_PRIVILEGES", "TABLE_PRIVILEGES", "COLUMN_PRIVILEGES"] {
        let rows = conn.text_rows(&format!(
            "SELECT DISTINCT GRANTEE FROM information_schema.{view} WHERE TABLE_SCHEMA = {q}"
        ))?;
        grantees.extend(
            rows.into_iter()
                .filter_map(|r| r.into_iter().next().flatten()),
        );
    }
    let mut out = Accounts {
        version: 1,
        ..Default::default()
    };
    for g in grantees {
        let Some((user, host)) = parse_grantee(&g) else {
            continue;
        };
        let name = account_name(&user, &host);
        let first = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
            rows.into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .collect()
        };
        let grants = match conn.text_rows(&format!("SHOW GRANTS FOR {name}")) {
            Ok(rows) => first(rows),
            Err(e) => {
                out.unreadable.push(format!("{user}@{host}: {e}"));
                continue;
            }
        };
        let role = host.is_empty();
        let create = if role {
            String::new()
        } else {
            match conn.text_rows(&format!("SHOW CREATE USER {name}")) {
                Ok(rows) => first(rows).into_iter().next().unwrap_or_default(),
                Err(e) => {
                    out.unreadable.push(format!("{user}@{host}: {e}"));
                    continue;
                }
            }
        };
        out.accounts.push(Account {
            user,
            host,
            role,
            create,
            grants,
        });
    }
    Ok(out)
}

/// What replay will do for one account, checked before anything runs.
#[derive(Debug, Clone)]
pub(crate) struct PlannedAccount {
    /// `user@host` for messages.
    pub label: String,
    pub user: String,
    pub host: String,
    pub role: bool,
    /// `CREATE USER ...` / `CREATE ROLE ...`, rebuilt.
    pub create: String,
    /// GRANT and SET DEFAULT ROLE statements, rebuilt, each with the role
    /// it gives (given only if this restore created that role).
    pub grants: Vec<(String, Option<String>)>,
}

/// The plan for every account, and what will not be restored (each named,
/// with why; never a password hash).
pub(crate) fn plan(
    accounts: &Accounts,
    source_db: &str,
    target_db: &str,
    with_global: bool,
) -> std::result::Result<(Vec<PlannedAccount>, Vec<String>), String> {
    let roles: BTreeSet<&str> = accounts
        .accounts
        .iter()
        .filter(|a| a.role)
        .map(|a| a.user.as_str())
        .collect();
    let mut planned = Vec::new();
    let mut skipped: Vec<String> = accounts
        .unreadable
        .iter()
        .map(|u| format!("{u} (the dump could not read this account)"))
        .collect();
    // Roles first, so that grants of them find them.
    let mut order: Vec<&Account> = accounts.accounts.iter().collect();
    order.sort_by_key(|a| !a.role);
    for a in order {
        if a.user.is_empty() {
            skipped.push(format!(
                "an anonymous account (''@{}): it would change who logs in from that host",
                a.host
            ));
            continue;
        }
        for (what, v, max) in [("user", &a.user, 80), ("host", &a.host, 255)] {
            if v.contains('\0') || v.chars().count() > max {
                return Err(format!(
                    "an account's {what} name {:?} is not one",
                    short(v)
                ));
            }
        }
        if a.role != a.host.is_empty() {
            return Err(format!(
                "the account {} is a role only if it has no host",
                short(&a.user)
            ));
        }
        let name = account_name(&a.user, &a.host);
        let label = if a.role {
            format!("role {}", a.user)
        } else {
            format!("{}@{}", a.user, a.host)
        };
        let create = if a.role {
            format!("CREATE ROLE {name}")
        } else {
            check_create_user(&a.create, &a.user, &a.host)
                .map_err(|e| format!("the CREATE USER of {label}: {e}"))?
        };
        let mut grants = Vec::new();
        for g in &a.grants {
            match rebuild_grant(g, a, source_db, target_db, &roles) {
                Ok(Grant::Send(s)) => grants.push((s, None)),
                Ok(Grant::Role(s, role)) => grants.push((s, Some(role))),
                Ok(Grant::Global(s)) if with_global => grants.push((s, None)),
                Ok(Grant::Global(s)) => skipped.push(format!(
                    "{label}: {s} (server-wide: --with-global-grants restores it)"
                )),
                Ok(Grant::Other(s)) => skipped.push(format!("{label}: {s} (another database)")),
                Ok(Grant::Implicit) => {}
                Ok(Grant::Unknown(head)) => skipped.push(format!(
                    "{label}: {head} ... (not a grant lifeboat restores)"
                )),
                Err(e) => return Err(format!("a grant of {label}: {e}")),
            }
        }
        planned.push(PlannedAccount {
            label,
            user: a.user.clone(),
            host: a.host.clone(),
            role: a.role,
            create,
            grants,
        });
    }
    Ok((planned, skipped))
}

/// Words a CREATE USER may hold after the account (MariaDB 10.x and
/// MySQL 8 `SHOW CREATE USER` output); plugin names follow VIA/WITH/OR.
const USER_WORDS: &[&str] = &[
    "IDENTIFIED",
    "BY",
    "PASSWORD",
    "VIA",
    "WITH",
    "USING",
    "AS",
    "OR",
    "REQUIRE",
    "NONE",
    "SSL",
    "X509",
    "CIPHER",
    "ISSUER",
    "SUBJECT",
    "AND",
    "MAX_QUERIES_PER_HOUR",
    "MAX_UPDATES_PER_HOUR",
    "MAX_CONNECTIONS_PER_HOUR",
    "MAX_USER_CONNECTIONS",
    "MAX_STATEMENT_TIME",
    "EXPIRE",
    "DEFAULT",
    "NEVER",
    "INTERVAL",
    "DAY",
    "ACCOUNT",
    "LOCK",
    "UNLOCK",
    "HISTORY",
    "REUSE",
    "CURRENT",
    "OPTIONAL",
    "FAILED_LOGIN_ATTEMPTS",
    "PASSWORD_LOCK_TIME",
    "UNBOUNDED",
    "ATTRIBUTE",
    "COMMENT",
    "ROLE",
];

struct Toks<'a> {
    sql: &'a str,
    t: Vec<Token>,
}

impl Toks<'_> {
    fn word(&self, k: usize) -> Option<String> {
        self.t
            .get(k)
            .filter(|t| t.kind == Kind::Word)
            .map(|t| self.sql[t.start..t.end].to_ascii_uppercase())
    }
    fn is(&self, k: usize, w: &str) -> bool {
        self.word(k).as_deref() == Some(w)
    }
    fn punct(&self, k: usize, c: u8) -> bool {
        self.t.get(k).is_some_and(|t| t.kind == Kind::Punct(c))
    }
    fn name(&self, k: usize) -> Option<String> {
        let t = self.t.get(k)?;
        match t.kind {
            Kind::Word | Kind::Quoted => ident_value(self.sql, t),
            // 'app'@'%': a string as a name (no backslash escapes taken).
            Kind::Str => {
                let text = &self.sql[t.start..t.end];
                let q = text.chars().next()?;
                let inner = text.get(1..text.len().checked_sub(1)?)?;
                (!inner.contains('\\')).then(|| inner.replace(&format!("{q}{q}"), &q.to_string()))
            }
            _ => None,
        }
    }

    /// After a grant's account: only what `SHOW GRANTS` prints there
    /// (IDENTIFIED ..., REQUIRE ..., WITH GRANT/ADMIN OPTION, WITH MAX_...).
    fn tail_ok(&self, from: usize) -> std::result::Result<(), String> {
        for k in from..self.t.len() {
            match self.t[k].kind {
                Kind::Str | Kind::Number => {}
                Kind::Word => {
                    let w = self.word(k).unwrap_or_default();
                    let plugin = k > 0
                        && matches!(self.word(k - 1).as_deref(), Some("VIA" | "WITH" | "OR"))
                        && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !(USER_WORDS.contains(&w.as_str())
                        || matches!(w.as_str(), "GRANT" | "OPTION" | "ADMIN")
                        || plugin)
                    {
                        return Err(format!("{w:?} after the account"));
                    }
                }
                _ => return Err(format!("{:?} after the account", self.text(k))),
            }
        }
        Ok(())
    }
    fn text(&self, k: usize) -> &str {
        self.t.get(k).map_or("", |t| &self.sql[t.start..t.end])
    }
    /// An account at `k` (`u@h`, or a bare role): (user, host, next).
    fn account(&self, k: usize) -> Option<(String, String, usize)> {
        let user = self.name(k)?;
        if self.punct(k + 1, b'@') {
            Some((user, self.name(k + 2)?, k + 3))
        } else {
            Some((user, String::new(), k + 1))
        }
    }
}

fn lex(sql: &str) -> std::result::Result<Toks<'_>, String> {
    Ok(Toks {
        sql,
        t: tokens(sql, Dialect::default())?,
    })
}

/// `CREATE USER` for exactly this account, the rest of it made of the
/// words above, string literals and numbers: rebuilt with the account
/// quoted by lifeboat.
pub(crate) fn check_create_user(
    sql: &str,
    user: &str,
    host: &str,
) -> std::result::Result<String, String> {
    let s = lex(sql)?;
    if !(s.is(0, "CREATE") && s.is(1, "USER")) {
        return Err("it is not a CREATE USER".into());
    }
    let Some((u, h, mut k)) = s.account(2) else {
        return Err("it names no account".into());
    };
    if u != user || h != host {
        return Err("it creates another account than the entry's".into());
    }
    let rest_from = s.t.get(k).map_or(sql.len(), |t| t.start);
    let mut plugin_next = false;
    while k < s.t.len() {
        let t = &s.t[k];
        match t.kind {
            Kind::Str | Kind::Number => {}
            Kind::Punct(b',') | Kind::Punct(b'(') | Kind::Punct(b')') => {}
            Kind::Word if plugin_next => {
                let w = s.text(k);
                if !w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!("{w:?} is no authentication plugin"));
                }
            }
            Kind::Word => {
                let w = s.word(k).unwrap_or_default();
                if !USER_WORDS.contains(&w.as_str()) {
                    return Err(format!("it uses {w:?}, which a CREATE USER needs not"));
                }
            }
            _ => return Err(format!("unexpected {:?}", s.text(k))),
        }
        plugin_next = matches!(s.word(k).as_deref(), Some("VIA" | "WITH" | "OR"))
            && !s.is(k + 1, "MAX_QUERIES_PER_HOUR")
            && !s.word(k + 1).is_some_and(|w| w.starts_with("MAX_"));
        k += 1;
    }
    Ok(format!(
        "CREATE USER {} {}",
        account_name(user, host),
        sql[rest_from..].trim()
    )
    .trim_end()
    .to_string())
}

/// A grant line, rebuilt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// On the restored database (mapped): send it.
    Send(String),
    /// A role given (GRANT role TO, SET DEFAULT ROLE): send it only if the
    /// restore created that role.
    Role(String, String),
    /// Server-wide.
    Global(String),
    /// On another database.
    Other(String),
    /// `GRANT USAGE ON *.*`: every account has it.
    Implicit,
    /// Something else (GRANT PROXY ...): its first words.
    Unknown(String),
}

/// Privileges a grant may name (MariaDB and MySQL 8 static privileges);
/// MySQL 8's dynamic privileges are single words in capitals and
/// underscores, and server-wide.
const PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "RELOAD",
    "SHUTDOWN",
    "PROCESS",
    "FILE",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "SHOW DATABASES",
    "SUPER",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "REPLICATION SLAVE",
    "REPLICATION CLIENT",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "CREATE USER",
    "EVENT",
    "TRIGGER",
    "CREATE TABLESPACE",
    "DELETE HISTORY",
    "SET USER",
    "FEDERATED ADMIN",
    "CONNECTION ADMIN",
    "READ_ONLY ADMIN",
    "REPLICATION SLAVE ADMIN",
    "REPLICATION MASTER ADMIN",
    "BINLOG ADMIN",
    "BINLOG REPLAY",
    "SLAVE MONITOR",
    "BINLOG MONITOR",
    "ALL PRIVILEGES",
    "ALL",
    "USAGE",
    "GRANT OPTION",
    "CREATE ROLE",
    "DROP ROLE",
    "SHOW CREATE ROUTINE",
];

/// Rebuild one `SHOW GRANTS` line of `a`.
pub(crate) fn rebuild_grant(
    sql: &str,
    a: &Account,
    source_db: &str,
    target_db: &str,
    roles: &BTreeSet<&str>,
) -> std::result::Result<Grant, String> {
    let s = lex(sql)?;
    let me = account_name(&a.user, &a.host);
    let head = || {
        s.t.iter()
            .take(2)
            .map(|t| &sql[t.start..t.end])
            .collect::<Vec<_>>()
            .join(" ")
    };
    // SET DEFAULT ROLE r FOR acct
    if s.is(0, "SET") && s.is(1, "DEFAULT") && s.is(2, "ROLE") {
        let Some(role) = s.name(3) else {
            return Ok(Grant::Unknown(head()));
        };
        return Ok(if roles.contains(role.as_str()) {
            Grant::Role(format!("SET DEFAULT ROLE {} FOR {me}", ident(&role)), role)
        } else {
            Grant::Other(format!(
                "SET DEFAULT ROLE {role} (a role without privileges here)"
            ))
        });
    }
    if !s.is(0, "GRANT") || s.is(1, "PROXY") {
        return Ok(Grant::Unknown(head()));
    }
    // GRANT role TO acct
    if let Some(to) = (1..s.t.len()).find(|&k| s.is(k, "TO")) {
        if !(1..to).any(|k| s.is(k, "ON")) {
            let Some(role) = s.name(1) else {
                return Ok(Grant::Unknown(head()));
            };
            if to != 2 {
                return Ok(Grant::Unknown(head()));
            }
            let Some((_, _, after)) = s.account(to + 1) else {
                return Err("the grant names no account".into());
            };
            s.tail_ok(after)?;
            let admin = (after..s.t.len()).any(|j| s.is(j, "ADMIN"));
            return Ok(if roles.contains(role.as_str()) {
                Grant::Role(
                    format!(
                        "GRANT {} TO {me}{}",
                        ident(&role),
                        if admin { " WITH ADMIN OPTION" } else { "" }
                    ),
                    role,
                )
            } else {
                Grant::Other(format!("GRANT {role} (a role without privileges here)"))
            });
        }
    }
    // GRANT privs ON target TO acct [...] [WITH GRANT OPTION]
    let Some(on) = (1..s.t.len()).find(|&k| s.is(k, "ON")) else {
        return Ok(Grant::Unknown(head()));
    };
    let mut privs = Vec::new();
    let mut k = 1;
    let mut only_usage = true;
    let mut dynamic = false;
    while k < on {
        let mut words = Vec::new();
        while k < on && s.word(k).is_some() {
            words.push(s.word(k).unwrap_or_default());
            k += 1;
        }
        let p = words.join(" ");
        if PRIVILEGES.contains(&p.as_str()) {
        } else if words.len() == 1 && p.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            dynamic = true;
        } else {
            return Err(format!("{:?} is no privilege", short(&p)));
        }
        only_usage &= p == "USAGE";
        let mut item = p;
        if s.punct(k, b'(') {
            let mut cols = Vec::new();
            k += 1;
            loop {
                let c = s.name(k).ok_or("a column list holds something else")?;
                cols.push(ident(&c));
                k += 1;
                if s.punct(k, b',') {
                    k += 1;
                } else if s.punct(k, b')') {
                    k += 1;
                    break;
                } else {
                    return Err("a column list does not end".into());
                }
            }
            item = format!("{item} ({})", cols.join(", "));
        }
        privs.push(item);
        if s.punct(k, b',') {
            k += 1;
        } else if k != on {
            return Err(format!("unexpected {:?} among the privileges", s.text(k)));
        }
    }
    // The target.
    k = on + 1;
    let mut kind = String::new();
    for w in ["PROCEDURE", "FUNCTION", "PACKAGE"] {
        if s.is(k, w) {
            kind = format!("{w} ");
            k += 1;
            if w == "PACKAGE" && s.is(k, "BODY") {
                kind = "PACKAGE BODY ".into();
                k += 1;
            }
        }
    }
    let (db, object) = if s.punct(k, b'*') && s.punct(k + 1, b'.') && s.punct(k + 2, b'*') {
        k += 3;
        (None, None)
    } else {
        let mut db = s.name(k).ok_or("no database in the grant")?;
        if s.punct(k + 2, b'*') {
            // A database-level grant names a pattern: `my\_app` is my_app.
            db = db.replace("\\_", "_").replace("\\%", "%");
        }
        if !s.punct(k + 1, b'.') {
            return Err("the grant's target is not db.object".into());
        }
        let object = if s.punct(k + 2, b'*') {
            None
        } else {
            Some(s.name(k + 2).ok_or("no object in the grant")?)
        };
        k += 3;
        (Some(db), object)
    };
    if !s.is(k, "TO") {
        return Err(format!("expected TO, found {:?}", s.text(k)));
    }
    let Some((u, h, after)) = s.account(k + 1) else {
        return Err("the grant names no account".into());
    };
    if u != a.user || h != a.host {
        return Err("the grant is for another account".into());
    }
    s.tail_ok(after)?;
    let grant_option = (after..s.t.len()).any(|j| s.is(j, "GRANT") && s.is(j + 1, "OPTION"));
    let tail = if grant_option {
        " WITH GRANT OPTION"
    } else {
        ""
    };
    let privs = privs.join(", ");
    Ok(match (db, object) {
        (None, _) if only_usage => Grant::Implicit,
        (None, _) => Grant::Global(format!("GRANT {privs} ON *.* TO {me}{tail}")),
        (Some(d), _) if dynamic => Err(format!("{d}: a dynamic privilege on a database"))?,
        (Some(d), o) if d == source_db || d == target_db => {
            let what = match o {
                Some(o) => format!("{}.{}", ident(target_db), ident(&o)),
                None => format!("{}.*", grant_pattern(target_db)),
            };
            Grant::Send(format!("GRANT {privs} ON {kind}{what} TO {me}{tail}"))
        }
        (Some(d), o) => Grant::Other(format!(
            "GRANT {privs} ON {kind}{}.{}",
            ident(&d),
            o.map_or("*".into(), |o| ident(&o))
        )),
    })
}

/// The account a drill replays through, when the staging account may
/// create one.
#[derive(Debug, Clone)]
pub enum DrillAccount {
    /// `lifeboat_drill_<12 hex of the database name>`@(this client's host
    /// as the server sees it), with every privilege on the staging database
    /// and nothing else (reset for each drill), its password new for each
    /// drill: no restored view, trigger, routine or event can act beyond
    /// the staging database.
    Restricted {
        options: MysqlOptions,
        /// `user@host`.
        name: String,
    },
    /// The staging account is used as it is, and why.
    Unavailable(String),
}

/// The drill's replay account on `staging` (see [`DrillAccount`]).
pub fn drill_account(staging: &MysqlOptions) -> Result<DrillAccount> {
    let t = staging.target()?;
    let mut conn = Conn::connect(staging)?;
    let me = conn.text_value("SELECT USER()")?;
    let host = me
        .rsplit_once('@')
        .map(|(_, h)| h.to_string())
        .unwrap_or_default();
    if host.is_empty() {
        return Ok(DrillAccount::Unavailable(format!(
            "the server names this client {me:?}"
        )));
    }
    // A server that writes a binary log lets only SUPER create triggers
    // and routines unless it trusts their creators: the restricted
    // account could not replay them.
    let logs = conn.text_value("SELECT @@log_bin")? == "1";
    if logs && conn.text_value("SELECT @@log_bin_trust_function_creators")? != "1" {
        return Ok(DrillAccount::Unavailable(
            "the staging server writes a binary log and log_bin_trust_function_creators is off, \
             so only an account with SUPER may create triggers and routines (set \
             log_bin_trust_function_creators = ON on staging to drill through a restricted \
             account)"
                .into(),
        ));
    }
    // One account per staging database (MySQL 8 allows 32 characters):
    // its grants are reset for each drill without touching another's.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(t.database.as_bytes());
    let user = format!("lifeboat_drill_{}", &hex::encode(digest)[..12]);
    let name = account_name(&user, &host);
    let password = hex::encode(rand::random::<[u8; 16]>());
    let db = grant_pattern(&t.database);
    let steps = [
        format!("CREATE USER IF NOT EXISTS {name}"),
        format!("ALTER USER {name} IDENTIFIED BY '{password}'"),
        format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM {name}"),
        format!("GRANT ALL PRIVILEGES ON {db}.* TO {name}"),
    ];
    for (i, sql) in steps.iter().enumerate() {
        // Never the statement in a message: one holds the password.
        let what = [
            "CREATE USER for the drill",
            "ALTER USER for the drill",
            "REVOKE from the drill account",
            "GRANT to the drill account",
        ][i];
        if let Err(e) = conn.execute_bytes(sql.as_bytes(), what) {
            return Ok(DrillAccount::Unavailable(format!(
                "it may not create a restricted account ({e})"
            )));
        }
    }
    let grants: Vec<String> = conn
        .text_rows(&format!("SHOW GRANTS FOR {name}"))?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let own = format!("ON {db}.* TO {name}");
    let other = grants.iter().find(|g| {
        !(g.starts_with("GRANT USAGE ON *.* TO ")
            || (g.starts_with("GRANT ALL PRIVILEGES ") && g.ends_with(&own)))
    });
    if let Some(g) = other {
        let head: String = g
            .split(" TO ")
            .next()
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect();
        return Ok(DrillAccount::Unavailable(format!(
            "{user}@{host} holds another grant ({head}): not used"
        )));
    }
    let query = staging
        .url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    let options = MysqlOptions {
        url: format!("mysql://{user}@{}:{}/{}{query}", t.host, t.port, t.database),
        password: Some(password.into()),
        ca_file: staging.ca_file.clone(),
        ssl_mode: staging.ssl_mode,
    };
    Ok(DrillAccount::Restricted {
        options,
        name: format!("{user}@{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Account {
        Account {
            user: "app".into(),
            host: "%".into(),
            ..Default::default()
        }
    }

    fn g(sql: &str) -> Grant {
        let roles: BTreeSet<&str> = ["reader"].into_iter().collect();
        rebuild_grant(sql, &app(), "clinic", "clinic_copy", &roles).unwrap()
    }

    #[test]
    fn grants_are_rebuilt_mapped_and_sorted_by_reach() {
        assert_eq!(
            g("GRANT SELECT, INSERT ON `clinic`.* TO `app`@`%`"),
            Grant::Send("GRANT SELECT, INSERT ON `clinic\\_copy`.* TO `app`@`%`".into())
        );
        assert_eq!(
            g("GRANT SELECT, UPDATE (`s`, `t`) ON `clinic`.`notes` TO `app`@`%` WITH GRANT OPTION"),
            Grant::Send("GRANT SELECT, UPDATE (`s`, `t`) ON `clinic_copy`.`notes` TO `app`@`%` WITH GRANT OPTION".into())
        );
        assert_eq!(
            g("GRANT EXECUTE ON PROCEDURE `clinic`.`p` TO 'app'@'%'"),
            Grant::Send("GRANT EXECUTE ON PROCEDURE `clinic_copy`.`p` TO `app`@`%`".into())
        );
        assert_eq!(
            g("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*D8F8AF5933E89E1E65767C3ACC1420FB31649B3B'"),
            Grant::Implicit
        );
        let global = g("GRANT PROCESS, FILE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*D8F8AF5933E89E1E65767C3ACC1420FB31649B3B'");
        assert_eq!(
            global,
            Grant::Global("GRANT PROCESS, FILE ON *.* TO `app`@`%`".into())
        );
        assert_eq!(
            g("GRANT SELECT ON `billing`.* TO `app`@`%`"),
            Grant::Other("GRANT SELECT ON `billing`.*".into())
        );
        assert_eq!(
            g("GRANT `reader` TO `app`@`%`"),
            Grant::Role("GRANT `reader` TO `app`@`%`".into(), "reader".into())
        );
        assert_eq!(
            g("SET DEFAULT ROLE `reader` FOR `app`@`%`"),
            Grant::Role(
                "SET DEFAULT ROLE `reader` FOR `app`@`%`".into(),
                "reader".into()
            )
        );
        // MySQL 8: dynamic privileges are server-wide.
        assert!(matches!(
            g("GRANT BACKUP_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `app`@`%`"),
            Grant::Global(_)
        ));
        assert!(matches!(
            g("GRANT PROXY ON ''@'%' TO 'app'@'%' WITH GRANT OPTION"),
            Grant::Unknown(_) | Grant::Other(_)
        ));
    }

    #[test]
    fn database_grants_reach_one_database() {
        let roles = BTreeSet::new();
        let r = rebuild_grant(
            "GRANT SELECT ON `my\\_app`.* TO `app`@`%`",
            &app(),
            "my_app",
            "my_app_copy",
            &roles,
        );
        assert_eq!(
            r.unwrap(),
            Grant::Send("GRANT SELECT ON `my\\_app\\_copy`.* TO `app`@`%`".into())
        );
        let r = rebuild_grant(
            "GRANT SELECT ON `my_app`.`t` TO `app`@`%`",
            &app(),
            "my_app",
            "x_y",
            &roles,
        );
        assert_eq!(
            r.unwrap(),
            Grant::Send("GRANT SELECT ON `x_y`.`t` TO `app`@`%`".into())
        );
    }

    #[test]
    fn forged_grants_are_refused() {
        let roles = BTreeSet::new();
        for sql in [
            "GRANT SELECT ON `clinic`.* TO `root`@`%`",
            "GRANT SELECT; DROP DATABASE x ON `clinic`.* TO `app`@`%`",
            "GRANT SELECT ON `clinic`.* TO `app`@`%`; DROP DATABASE x",
            "GRANT SELECT (a; DROP) ON `clinic`.`t` TO `app`@`%`",
            "GRANT SUPER_POWERS NOW ON `clinic`.* TO `app`@`%`",
        ] {
            let r = rebuild_grant(sql, &app(), "clinic", "copy", &roles);
            assert!(
                r.is_err() || matches!(r, Ok(Grant::Unknown(_))),
                "{sql} -> {r:?}"
            );
        }
    }

    #[test]
    fn create_user_is_checked_and_rebuilt() {
        let maria = "CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '*D8F8AF5933E89E1E65767C3ACC1420FB31649B3B'";
        assert_eq!(check_create_user(maria, "app", "%").unwrap(), maria);
        let via = "CREATE USER `app`@`localhost` IDENTIFIED VIA mysql_native_password USING '*D8F8AF5933E89E1E65767C3ACC1420FB31649B3B' OR unix_socket REQUIRE SSL WITH MAX_USER_CONNECTIONS 10 PASSWORD EXPIRE NEVER";
        assert!(check_create_user(via, "app", "localhost").is_ok());
        // MySQL 8, as SHOW CREATE USER prints it with print_identified_with_as_hex.
        let my8 = "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x244124303035241F REQUIRE NONE PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD HISTORY DEFAULT PASSWORD REUSE INTERVAL DEFAULT PASSWORD REQUIRE CURRENT DEFAULT";
        assert!(
            check_create_user(my8, "app", "%").is_ok(),
            "{:?}",
            check_create_user(my8, "app", "%")
        );
        for bad in [
            "CREATE USER `root`@`%` IDENTIFIED BY PASSWORD 'x'",
            "CREATE USER `app`@`%` IDENTIFIED BY PASSWORD 'x'; DROP DATABASE y",
            "CREATE USER `app`@`%`, `evil`@`%`",
            "GRANT ALL ON *.* TO `app`@`%`",
            "CREATE USER `app`@`%` IDENTIFIED BY PASSWORD 'x' GRANT ALL",
        ] {
            assert!(check_create_user(bad, "app", "%").is_err(), "{bad}");
        }
        assert_eq!(
            parse_grantee("'lbt_probe'@'%'"),
            Some(("lbt_probe".into(), "%".into()))
        );
        assert_eq!(
            parse_grantee("'role'@''"),
            Some(("role".into(), String::new()))
        );
        assert_eq!(
            parse_grantee("'o''brien'@'h'"),
            Some(("o'brien".into(), "h".into()))
        );
    }
}
