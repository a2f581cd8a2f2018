//! Stored objects as they were: who each view, trigger, routine and event
//! belongs to after a replay ([`Definers`]), the session each is created
//! in (its own `sql_mode`, `character_set_client`, `collation_connection`,
//! `time_zone` and database collation, as mysqldump restores them), and
//! the check afterwards that the target's schema is the snapshot's
//! ([`check_schema`]): every table's definition and every object's text
//! and metadata, normalised only for the database name, the definers
//! replay was told or forced to rewrite, and events a drill disables.
//!
//! The rules:
//! - an object whose definer is the replaying account keeps it always;
//! - others keep theirs when the account may set definers (SUPER, or SET
//!   USER / SET_USER_ID / SET_ANY_DEFINER, or all privileges on `*.*`);
//! - otherwise ([`Definers::Auto`]) the replaying account becomes their
//!   definer and each is reported, triggers and events with a warning: they
//!   now run with that account's rights. [`Definers::Keep`] refuses instead,
//!   before anything changes; a restricted account chosen to replay through
//!   is the other way to keep them from gaining rights;
//! - [`Definers::Invoker`] also makes views and routines `SQL SECURITY
//!   INVOKER`, as MySQL Shell's `strip_definers` does;
//! - a drill creates events `DISABLE`d; a restore keeps each one's status.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::encode::ident;
use crate::error::{Error, Result};
use crate::guard::{self, Rewrite};
use crate::lexer::Dialect;
use crate::replay::refused;
use crate::schema::{quote, short, Object, Schema};
use crate::wire::Conn;

/// Who replayed views, triggers, routines and events belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Definers {
    /// Keep each definer when the replaying account may set it, else the
    /// account becomes the definer and each rewrite is reported.
    #[default]
    Auto,
    /// Keep every definer; refuse, before any change, when the account may
    /// not set one of them.
    Keep,
    /// The replaying account becomes every object's definer (`SQL
    /// SECURITY` unchanged); each rewrite is reported.
    CurrentUser,
    /// As `CurrentUser`, and views and routines run with the rights of
    /// whoever uses them (`SQL SECURITY INVOKER`).
    Invoker,
}

impl std::str::FromStr for Definers {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Definers::Auto),
            "keep" => Ok(Definers::Keep),
            "current-user" => Ok(Definers::CurrentUser),
            "invoker" => Ok(Definers::Invoker),
            other => Err(format!(
                "unknown definer rule {other:?}: use keep, current-user, invoker or auto"
            )),
        }
    }
}

/// The account replay runs as, and whether it may name other definers.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// `CURRENT_USER()`: `user@host`.
    pub name: String,
    pub may_set_definers: bool,
}

impl Account {
    pub(crate) fn of(conn: &mut Conn) -> Result<Account> {
        let name = conn.text_value("SELECT CURRENT_USER()")?;
        let grants: Vec<String> = conn
            .text_rows("SHOW GRANTS")?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        Ok(Account {
            may_set_definers: grants.iter().any(|g| may_set_definers(g)),
            name,
        })
    }
}

/// Whether one `SHOW GRANTS` line lets its holder create objects for
/// another definer (MariaDB: SUPER or SET USER; MySQL 8: SUPER,
/// SET_USER_ID or SET_ANY_DEFINER; all privileges on `*.*` include them).
pub(crate) fn may_set_definers(grant: &str) -> bool {
    let g = grant.to_ascii_uppercase();
    let Some(rest) = g.strip_prefix("GRANT ") else {
        return false;
    };
    let Some((privs, on)) = rest.split_once(" ON ") else {
        return false;
    };
    if !on.starts_with("*.* ") {
        return false;
    }
    privs.split(',').map(str::trim).any(|p| {
        matches!(
            p,
            "ALL PRIVILEGES" | "ALL" | "SUPER" | "SET USER" | "SET_USER_ID" | "SET_ANY_DEFINER"
        )
    })
}

/// `DEFINER=`user`@`host`` for a definer as information_schema prints it
/// (`user@host`, split at the last `@`; a MariaDB role has no host).
pub(crate) fn definer_clause(definer: &str) -> Result<String> {
    let bad = |why: &str| {
        refused(
            "the MySQL schema",
            format!("it names the definer {:?}: {why}", short(definer)),
        )
    };
    if definer.contains('\0') || definer.len() > 400 {
        return Err(bad("it is not an account name"));
    }
    Ok(match definer.rsplit_once('@') {
        Some((user, host)) if !user.is_empty() => {
            format!("DEFINER={}@{}", ident(user), ident(host))
        }
        Some(_) => return Err(bad("it has no user name")),
        None if !definer.is_empty() => format!("DEFINER={}", ident(definer)),
        None => return Err(bad("it is empty")),
    })
}

/// Two definers are one account: the user exactly, the host without case.
pub(crate) fn same_account(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((ua, ha)), Some((ub, hb))) => ua == ub && ha.eq_ignore_ascii_case(hb),
        _ => a == b,
    }
}

/// What replay makes of one object's head and session.
#[derive(Debug)]
pub(crate) struct ObjectPlan {
    pub rewrite: Rewrite,
    /// The definer the target will show (none when not known: a version 1
    /// snapshot, whose objects carry no definer).
    pub definer: Option<String>,
    /// What was changed, for the report.
    pub rewritten: Vec<String>,
}

/// Decide `o`'s definer, SQL SECURITY and event status.
pub(crate) fn plan_object(
    o: &Object,
    account: &Account,
    rule: Definers,
    disable_events: bool,
) -> Result<ObjectPlan> {
    let label = format!("{} {}", o.kind.to_lowercase(), o.name);
    let event = o.kind.eq_ignore_ascii_case("EVENT");
    let runs_as_definer = event || o.kind.eq_ignore_ascii_case("TRIGGER");
    let mut plan = ObjectPlan {
        rewrite: Rewrite::default(),
        definer: Some(account.name.clone()),
        rewritten: Vec::new(),
    };
    if event && disable_events {
        plan.rewrite.event_status = Some("DISABLE");
        plan.rewritten.push(format!(
            "{label}: created DISABLED (a drill never starts the snapshot's schedules)"
        ));
    }
    let Some(definer) = &o.definer else {
        // Version 1: stored without its definer, replayed as the account's.
        plan.definer = None;
        plan.rewrite.invoker = rule == Definers::Invoker;
        return Ok(plan);
    };
    let own = same_account(definer, &account.name);
    if rule == Definers::Invoker && !runs_as_definer {
        // Whoever defines it, it runs with its caller's rights.
        plan.rewrite.invoker = true;
    }
    let keep = match rule {
        Definers::CurrentUser | Definers::Invoker => own,
        Definers::Auto => own || account.may_set_definers,
        Definers::Keep if own || account.may_set_definers => true,
        Definers::Keep => {
            return Err(Error::Target(format!(
                "{label} is defined by {definer}, and the replaying account {} may not set \
                 definers (it needs SUPER or SET USER; MySQL 8: SET_USER_ID or SET_ANY_DEFINER): \
                 replay as an account that may, or choose --definers current-user (objects \
                 become the replaying account's, each reported) or --definers invoker",
                account.name
            )))
        }
    };
    if keep {
        plan.rewrite.definer = Some(definer_clause(definer)?);
        plan.definer = Some(definer.clone());
        return Ok(plan);
    }
    let mut how = format!(
        "definer {definer} replaced by the replaying account {}",
        account.name
    );
    if rule == Definers::Invoker && !runs_as_definer {
        plan.rewrite.invoker = true;
        how.push_str(", SQL SECURITY INVOKER");
    } else if runs_as_definer {
        how.push_str(&format!(
            " (it now runs with {}'s rights, not {definer}'s)",
            account.name
        ));
    }
    plan.rewritten.push(format!("{label}: {how}"));
    Ok(plan)
}

/// Client character sets the checks read safely: ASCII in bytes 0x00-0x7F
/// and every other character made of bytes 0x80 and above only, so a
/// quote, backquote or backslash byte is always that ASCII character.
/// Objects created under any other (sjis, big5, gbk, cp932 and gb18030,
/// where a character can end in 0x5C; swe7, where `Ö` is 0x5C and `é`
/// 0x60; ucs2/utf16/utf32) are re-created with utf8mb4, and the report
/// says so. Two fresh-eyes attacks hid statements this way (sjis, swe7).
const SAFE_CLIENT_CHARSETS: [&str; 31] = [
    "utf8mb4", "utf8mb3", "utf8", "ascii", "latin1", "latin2", "latin5", "latin7", "cp1250",
    "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866", "koi8r", "koi8u", "greek", "hebrew",
    "armscii8", "keybcs2", "macce", "macroman", "geostd8", "dec8", "hp8", "tis620", "euckr",
    "ujis", "eucjpms", "gb2312",
];

/// Whether `charset` is one of [`SAFE_CLIENT_CHARSETS`].
pub(crate) fn safe_client_charset(charset: &str) -> bool {
    SAFE_CLIENT_CHARSETS.contains(&charset.to_ascii_lowercase().as_str())
}

/// The session an object is created in, as it will be set.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// `SET SESSION sql_mode = ..., character_set_client = ..., ...`.
    pub sql: String,
    /// The character_set_client and collation_connection set (what the
    /// target will show for the object).
    pub charset: String,
    pub collation: Option<String>,
}

/// The session statement an object is created in: its own sql_mode,
/// character_set_client, collation_connection and (events) time_zone.
/// Names are checked against the target's lists; a character set the
/// target lacks, or one in which the checks could be fooled, falls back to
/// utf8mb4, which is reported in `notes`.
pub(crate) fn session_for(o: &Object, known: &Known, notes: &mut Vec<String>) -> Result<Session> {
    let label = format!("{} {}", o.kind.to_lowercase(), o.name);
    let mut set = vec![format!(
        "sql_mode = {}",
        crate::schema::object_sql_mode_literal(&o.sql_mode)
    )];
    let unsafe_cs = |c: &str| !safe_client_charset(c);
    let cs = o
        .character_set_client
        .as_deref()
        .filter(|c| known.has_charset(c) && !unsafe_cs(c));
    let coll = o
        .collation_connection
        .as_deref()
        .map(|c| crate::schema::adapt_for_target(c, &known.flavor))
        .filter(|c| known.charset_of(c).is_some_and(|cs| !unsafe_cs(cs)));
    let charset = match (&o.character_set_client, cs) {
        (Some(want), None) => {
            let why = if unsafe_cs(want) {
                "in it, a character can be a quote or backslash byte, which the checks cannot read safely"
            } else {
                "the target has no such character set"
            };
            notes.push(format!(
                "{label}: created with character_set_client utf8mb4, not {:?}: {why}",
                short(want)
            ));
            "utf8mb4".to_string()
        }
        (_, Some(cs)) => cs.to_string(),
        _ => "utf8mb4".to_string(),
    };
    set.push(format!("character_set_client = {}", ident(&charset)));
    let collation = match (&o.collation_connection, coll) {
        (Some(want), None) => {
            notes.push(format!(
                "{label}: created with the connection's collation, not {:?}",
                short(want)
            ));
            set.push("collation_connection = utf8mb4_general_ci".into());
            Some("utf8mb4_general_ci".to_string())
        }
        (_, Some(c)) => {
            set.push(format!("collation_connection = {}", ident(&c)));
            Some(c)
        }
        _ => {
            set.push("collation_connection = utf8mb4_general_ci".into());
            None
        }
    };
    if let Some(tz) = &o.time_zone {
        if !valid_time_zone(tz) {
            return Err(refused(
                "the MySQL schema",
                format!(
                    "it gives {label} the time zone {:?}, which is not a time zone",
                    short(tz)
                ),
            ));
        }
        set.push(format!("time_zone = {}", quote(tz)));
    }
    Ok(Session {
        sql: format!("SET SESSION {}", set.join(", ")),
        charset,
        collation,
    })
}

/// `SYSTEM`, `+HH:MM` / `-HH:MM`, or a zone name (`Europe/Paris`).
pub(crate) fn valid_time_zone(tz: &str) -> bool {
    !tz.is_empty()
        && tz.len() <= 64
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-:".contains(&b))
}

/// The character sets and collations of the target server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    pub flavor: String,
    pub charsets: Vec<String>,
    /// Collation → its character set.
    pub collations: BTreeMap<String, String>,
}

impl Known {
    pub(crate) fn of(conn: &mut Conn, flavor: &str) -> Result<Known> {
        let charsets = conn
            .text_rows("SHOW CHARACTER SET")?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .map(|c| c.to_lowercase())
            .collect();
        let collations = conn
            .text_rows("SHOW COLLATION")?
            .into_iter()
            .filter_map(|r| match (r.first(), r.get(1)) {
                (Some(Some(c)), Some(Some(cs))) => Some((c.to_lowercase(), cs.to_lowercase())),
                _ => None,
            })
            .collect();
        Ok(Known {
            flavor: flavor.to_string(),
            charsets,
            collations,
        })
    }

    /// A character set or collation name: letters, digits and `_`, at
    /// most 64 bytes (anything else is no name, whatever the server has).
    pub(crate) fn name_ok(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    pub(crate) fn has_charset(&self, cs: &str) -> bool {
        Self::name_ok(cs) && self.charsets.contains(&cs.to_lowercase())
    }

    pub(crate) fn has_collation(&self, c: &str) -> bool {
        self.charset_of(c).is_some()
    }

    /// The character set of collation `c` on the target, if it has it.
    pub(crate) fn charset_of(&self, c: &str) -> Option<&str> {
        Self::name_ok(c)
            .then(|| self.collations.get(&c.to_lowercase()))
            .flatten()
            .map(String::as_str)
    }
}

/// The statement's bytes in the object's `character_set_client`: as they
/// are for UTF-8 and ASCII text; otherwise converted by the server
/// (`CONVERT(... USING cs)`), as the original client sent them.
pub(crate) fn encode_for(conn: &mut Conn, sql: &str, charset: Option<&str>) -> Result<Vec<u8>> {
    let utf8 = ["utf8", "utf8mb3", "utf8mb4", "binary"];
    match charset {
        Some(cs) if !sql.is_ascii() && !utf8.iter().any(|u| u.eq_ignore_ascii_case(cs)) => {
            // A hex literal reads the same under every sql_mode (the
            // previous object's session may hold NO_BACKSLASH_ESCAPES).
            let hex = conn.text_value(&format!(
                "SELECT HEX(CONVERT(CONVERT(X'{}' USING utf8mb4) USING {}))",
                hex::encode(sql.as_bytes()),
                ident(cs)
            ))?;
            hex::decode(hex.trim()).map_err(|e| {
                Error::Internal(format!("the server's HEX() answer did not decode: {e}"))
            })
        }
        _ => Ok(sql.as_bytes().to_vec()),
    }
}

/// What the target's schema must be after a replay.
#[derive(Debug, Clone, Default)]
pub struct ExpectedSchema {
    /// Table name → its CREATE text without `AUTO_INCREMENT=n`.
    tables: BTreeMap<String, String>,
    /// Table definitions are compared exactly only between servers of the
    /// same flavor and version (another server prints them otherwise).
    exact: bool,
    /// (kind, name) → what the target must show.
    objects: BTreeMap<(String, String), ExpectedObject>,
    /// Only the tables are compared (objects are counted elsewhere).
    tables_only: bool,
}

#[derive(Debug, Clone)]
struct ExpectedObject {
    /// The text as sent, without the head's DEFINER clause.
    create: String,
    definer: Option<String>,
    sql_mode: Option<String>,
    character_set_client: Option<String>,
    collation_connection: Option<String>,
    time_zone: Option<String>,
}

impl ExpectedSchema {
    pub(crate) fn new(exact: bool) -> ExpectedSchema {
        ExpectedSchema {
            exact,
            ..Default::default()
        }
    }

    pub(crate) fn table(&mut self, name: &str, create: &str) {
        self.tables
            .insert(name.to_string(), without_counter(create));
    }

    /// `sent` is the text replay sends (checked and rewritten), `session`
    /// what it set before it (None: a setting the target lacked).
    pub(crate) fn object(
        &mut self,
        o: &Object,
        sent: &str,
        definer: Option<String>,
        session: &Session,
        d: Dialect,
    ) {
        let create = guard::split_definer(sent, d)
            .map(|(t, _)| t)
            .unwrap_or_else(|_| sent.to_string());
        let view = o.kind.eq_ignore_ascii_case("VIEW");
        self.objects.insert(
            (o.kind.to_uppercase(), o.name.clone()),
            ExpectedObject {
                create,
                definer,
                sql_mode: (!view && self.exact).then(|| o.sql_mode.clone()),
                character_set_client: o
                    .character_set_client
                    .as_ref()
                    .map(|_| session.charset.clone()),
                collation_connection: o
                    .collation_connection
                    .as_ref()
                    .and(session.collation.clone()),
                time_zone: o.time_zone.clone(),
            },
        );
    }

    /// The tables of `schema` as a target of `target_flavor` and version
    /// `target_version` prints them; objects are not compared.
    pub(crate) fn tables_of(
        schema: &crate::schema::Schema,
        target_version: &str,
    ) -> ExpectedSchema {
        let flavor = crate::schema::flavor(target_version);
        let mut e = ExpectedSchema::new(target_version == schema.server.version);
        e.tables_only = true;
        for t in &schema.tables {
            e.table(&t.name, &crate::schema::adapt_for_target(&t.create, flavor));
        }
        e
    }

    /// Nothing recorded (a caller that did not replay).
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.objects.is_empty()
    }
}

/// `AUTO_INCREMENT=n ` out of a table's CREATE text: the counter is data,
/// compared through the rows.
fn without_counter(create: &str) -> String {
    let mut out = String::with_capacity(create.len());
    let mut rest = create;
    while let Some(p) = rest.find(" AUTO_INCREMENT=") {
        out.push_str(&rest[..p]);
        let after = &rest[p + " AUTO_INCREMENT=".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            out.push_str(" AUTO_INCREMENT=");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The schema check's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchemaCheck {
    /// Tables compared.
    pub tables: usize,
    /// Whether table definitions were compared text for text (same server
    /// flavor and version), or by name only.
    pub tables_exact: bool,
    /// Views, triggers, routines and events compared.
    pub objects: usize,
    /// Each difference, naming the object and what differs.
    pub differences: Vec<String>,
}

/// The report's schema line: what was compared, and how.
pub fn schema_line(s: &SchemaCheck) -> String {
    format!(
        "schema: {} tables ({}) and {} views/triggers/routines/events compared with the snapshot: {}",
        s.tables,
        if s.tables_exact {
            "definitions text for text"
        } else {
            "by name: the target is another server version"
        },
        s.objects,
        if s.differences.is_empty() {
            "identical".to_string()
        } else {
            s.differences.join("; ")
        }
    )
}

/// Read `db`'s schema on `conn` and compare it with `expected`.
pub(crate) fn check_schema(
    conn: &mut Conn,
    db: &str,
    expected: &ExpectedSchema,
) -> Result<SchemaCheck> {
    conn.execute(&format!("USE {}", ident(db)))?;
    let found = crate::schema::read(conn, db, String::new(), &|_| true)?;
    Ok(compare(&found, expected, db))
}

fn compare(found: &Schema, expected: &ExpectedSchema, db: &str) -> SchemaCheck {
    let mut diff = Vec::new();
    let tables: BTreeMap<&str, &str> = found
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.create.as_str()))
        .collect();
    for (name, want) in &expected.tables {
        match tables.get(name.as_str()) {
            None => diff.push(format!("table {name} is missing")),
            Some(got) if expected.exact && without_counter(got) != *want => diff.push(format!(
                "table {name}: its definition differs ({})",
                first_difference(want, &without_counter(got))
            )),
            _ => {}
        }
    }
    for name in tables.keys() {
        if !expected.tables.contains_key(*name) {
            diff.push(format!("table {name} is not in the snapshot"));
        }
    }
    let objects: BTreeMap<(String, String), &Object> = found
        .views
        .iter()
        .chain(&found.triggers)
        .chain(&found.routines)
        .chain(&found.events)
        .map(|o| ((o.kind.to_uppercase(), o.name.clone()), o))
        .collect();
    if expected.tables_only {
        return SchemaCheck {
            tables: found.tables.len(),
            tables_exact: expected.exact,
            objects: 0,
            differences: diff,
        };
    }
    for ((kind, name), want) in &expected.objects {
        let label = format!("{} {name}", kind.to_lowercase());
        let Some(got) = objects.get(&(kind.clone(), name.clone())) else {
            diff.push(format!("{label} is missing"));
            continue;
        };
        let text =
            guard::split_definer(&got.create, Dialect::of_unexpanded_sql_mode(&got.sql_mode))
                .map(|(t, _)| t)
                .unwrap_or_else(|_| got.create.clone());
        // MariaDB prints a view's columns qualified by its database when
        // the definer has no rights there yet (a database restored under
        // another name, before its accounts): the database's name is the
        // one normalisation the check allows.
        let own = format!("{}.", ident(db));
        let text = match kind.as_str() {
            "VIEW" => text.replace(&own, ""),
            _ => text,
        };
        if text != want.create.replace(&own, "") {
            diff.push(format!(
                "{label}: its definition differs ({})",
                first_difference(&want.create, &text)
            ));
        }
        let mut field = |what: &str, want: &Option<String>, got: &Option<String>| {
            if let (Some(w), g) = (want, got) {
                if !g.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(w)) {
                    diff.push(format!(
                        "{label}: {what} is {}, the snapshot's is {w}",
                        g.as_deref().unwrap_or("(none)")
                    ));
                }
            }
        };
        field("its definer", &want.definer, &got.definer);
        field("sql_mode", &want.sql_mode, &Some(got.sql_mode.clone()));
        field(
            "character_set_client",
            &want.character_set_client,
            &got.character_set_client,
        );
        field(
            "collation_connection",
            &want.collation_connection,
            &got.collation_connection,
        );
        field("time_zone", &want.time_zone, &got.time_zone);
    }
    for (kind, name) in objects.keys() {
        if !expected.objects.contains_key(&(kind.clone(), name.clone())) {
            diff.push(format!(
                "{} {name} is not in the snapshot",
                kind.to_lowercase()
            ));
        }
    }
    SchemaCheck {
        tables: expected.tables.len(),
        tables_exact: expected.exact,
        objects: expected.objects.len(),
        differences: diff,
    }
}

/// Where two texts first differ, for a message: a few words of each.
fn first_difference(want: &str, got: &str) -> String {
    let at = want
        .char_indices()
        .zip(got.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| want.len().min(got.len()));
    let snippet = |s: &str| {
        let mut from = at.saturating_sub(20).min(s.len());
        while !s.is_char_boundary(from) {
            from -= 1;
        }
        let s: String = s[from..].chars().take(50).collect();
        format!("{s:?}")
    };
    format!(
        "at byte {at}: the snapshot has {}, the target {}",
        snippet(want),
        snippet(got)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_that_let_an_account_set_definers() {
        for g in [
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            "GRANT SELECT, SUPER ON *.* TO `ops`@`%`",
            "GRANT SET USER ON *.* TO `x`@`%`",
            "GRANT SET_USER_ID,SYSTEM_USER ON *.* TO `admin`@`%`",
        ] {
            assert!(may_set_definers(g), "{g}");
        }
        for g in [
            "GRANT ALL PRIVILEGES ON `clinic`.* TO `app`@`%`",
            "GRANT SELECT, INSERT, CREATE USER, RELOAD ON *.* TO `avnadmin`@`%` WITH GRANT OPTION",
            "GRANT USAGE ON *.* TO `x`@`%` IDENTIFIED BY PASSWORD '*SUPER'",
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
        ] {
            assert!(!may_set_definers(g), "{g}");
        }
    }

    #[test]
    fn definer_clauses_are_quoted_whatever_the_name() {
        assert_eq!(
            definer_clause("root@localhost").unwrap(),
            "DEFINER=`root`@`localhost`"
        );
        assert_eq!(
            definer_clause("we`ird@us@10.0.%").unwrap(),
            "DEFINER=`we``ird@us`@`10.0.%`"
        );
        assert_eq!(definer_clause("app_role").unwrap(), "DEFINER=`app_role`");
        assert!(definer_clause("@host").is_err());
        assert!(definer_clause("").is_err());
        assert!(same_account("root@LOCALHOST", "root@localhost"));
        assert!(!same_account("Root@localhost", "root@localhost"));
    }

    #[test]
    fn counters_are_not_definitions() {
        assert_eq!(
            without_counter("CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4"),
            "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
    }

    fn account(may: bool) -> Account {
        Account {
            name: "avnadmin@%".into(),
            may_set_definers: may,
        }
    }

    fn trigger(definer: &str) -> Object {
        Object {
            name: "audit".into(),
            kind: "TRIGGER".into(),
            create: "CREATE DEFINER=`app`@`%` TRIGGER audit BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1".into(),
            definer: Some(definer.into()),
            ..Default::default()
        }
    }

    #[test]
    fn definers_are_kept_rewritten_with_a_report_or_refused() {
        let kept = plan_object(&trigger("app@%"), &account(true), Definers::Auto, false).unwrap();
        assert_eq!(kept.rewrite.definer.as_deref(), Some("DEFINER=`app`@`%`"));
        assert!(kept.rewritten.is_empty());
        let own = plan_object(
            &trigger("avnadmin@%"),
            &account(false),
            Definers::Keep,
            false,
        )
        .unwrap();
        assert_eq!(own.definer.as_deref(), Some("avnadmin@%"));
        let moved = plan_object(&trigger("app@%"), &account(false), Definers::Auto, true).unwrap();
        assert_eq!(moved.rewrite.definer, None);
        assert_eq!(moved.definer.as_deref(), Some("avnadmin@%"));
        assert!(moved
            .rewritten
            .iter()
            .any(|r| r.contains("now runs with avnadmin@%'s rights")));
        let e = plan_object(&trigger("app@%"), &account(false), Definers::Keep, false).unwrap_err();
        assert!(e.to_string().contains("may not set definers"), "{e}");
        let inv = Object {
            kind: "VIEW".into(),
            ..trigger("app@%")
        };
        let p = plan_object(&inv, &account(true), Definers::Invoker, false).unwrap();
        assert!(p.rewrite.invoker && p.rewrite.definer.is_none());
    }

    #[test]
    fn a_client_charset_that_can_hide_a_quote_is_not_used() {
        // A fresh-eyes attack: in sjis, a character can end in 0x5C, so
        // the server ends a string where the checks read `\'`.
        let known = Known {
            flavor: "mariadb".into(),
            charsets: vec![
                "sjis".into(),
                "swe7".into(),
                "utf8mb4".into(),
                "latin1".into(),
            ],
            collations: [
                ("sjis_japanese_ci".to_string(), "sjis".to_string()),
                ("swe7_swedish_ci".to_string(), "swe7".to_string()),
                ("utf8mb4_general_ci".to_string(), "utf8mb4".to_string()),
                ("latin1_swedish_ci".to_string(), "latin1".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let o = |cs: &str, coll: &str| Object {
            name: "p".into(),
            kind: "PROCEDURE".into(),
            character_set_client: Some(cs.into()),
            collation_connection: Some(coll.into()),
            ..Default::default()
        };
        let mut notes = Vec::new();
        let s = session_for(&o("sjis", "sjis_japanese_ci"), &known, &mut notes).unwrap();
        assert_eq!(s.charset, "utf8mb4");
        assert!(!s.sql.contains("sjis"), "{}", s.sql);
        assert!(notes.iter().any(|n| n.contains("backslash")), "{notes:?}");
        // Round 6: in swe7, `Ö` is the byte 0x5C and `é` 0x60.
        let s = session_for(&o("swe7", "swe7_swedish_ci"), &known, &mut notes).unwrap();
        assert_eq!(s.charset, "utf8mb4");
        assert!(!s.sql.contains("swe7"), "{}", s.sql);
        let s = session_for(&o("latin1", "latin1_swedish_ci"), &known, &mut notes).unwrap();
        assert_eq!(s.charset, "latin1");
        assert!(
            s.sql.contains("collation_connection = `latin1_swedish_ci`"),
            "{}",
            s.sql
        );
    }

    #[test]
    fn invoker_applies_to_the_accounts_own_views_too() {
        let view = Object {
            kind: "VIEW".into(),
            ..trigger("avnadmin@%")
        };
        let p = plan_object(&view, &account(false), Definers::Invoker, false).unwrap();
        assert!(p.rewrite.invoker);
    }

    #[test]
    fn time_zones_are_names_or_offsets() {
        for tz in [
            "SYSTEM",
            "+00:00",
            "-05:30",
            "Europe/Paris",
            "America/Port-au-Prince",
        ] {
            assert!(valid_time_zone(tz), "{tz}");
        }
        for tz in ["", "'; DROP", "a b", "x\0"] {
            assert!(!valid_time_zone(tz), "{tz}");
        }
    }
}
