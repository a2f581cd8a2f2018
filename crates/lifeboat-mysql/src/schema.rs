//! The schema of a database and the server facts that matter for replay,
//! read at dump time. Views, triggers, routines and events are stored as
//! the server printed them, definer included, with the session settings
//! they were created under (schema version 2); replay decides what to do
//! with the definer (see `replay::Definers`). Version 1 snapshots stored
//! them without DEFINER and with `SQL SECURITY INVOKER`; they still replay.
//! GTID and `SQL_LOG_BIN` statements are never written at all.

use serde::{Deserialize, Serialize};

use crate::encode::{ident, Kind};
use crate::error::Result;

/// The `source` name of this crate's items.
pub const SOURCE: &str = "mysql";

/// The schema version dumps write: 2 keeps definers and the session
/// settings of each stored object.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything but the rows, stored as the `<db>/_schema` item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schema {
    /// Format version ([`SCHEMA_VERSION`]; 1 is still read).
    pub version: u32,
    /// The database dumped.
    pub database: String,
    /// The database's own default character set and collation
    /// (information_schema.SCHEMATA); absent in version 1, where replay
    /// used the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Facts about the source server.
    pub server: ServerFacts,
    /// Base tables, by name.
    pub tables: Vec<Table>,
    /// Views (created after the tables, in dependency order at replay).
    pub views: Vec<Object>,
    /// Triggers (created after the data is loaded).
    pub triggers: Vec<Object>,
    /// Stored procedures and functions.
    pub routines: Vec<Object>,
    /// Events.
    pub events: Vec<Object>,
}

/// A database's default character set and collation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    pub character_set: String,
    pub collation: String,
}

/// What a replay needs to know about the source server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerFacts {
    /// `SELECT VERSION()`.
    pub version: String,
    /// `mariadb` or `mysql`.
    pub flavor: String,
    /// Session `sql_mode` of the dump (used for replay).
    pub sql_mode: String,
    /// Server character set and collation.
    pub character_set: String,
    pub collation: String,
    /// `lower_case_table_names`.
    pub lower_case_table_names: String,
    /// GTID position at the snapshot (`gtid_executed` or `gtid_current_pos`).
    #[serde(default)]
    pub gtid: Option<String>,
    /// Host, port and database of the source (to refuse replaying onto it).
    pub source: String,
}

/// A base table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// `SHOW CREATE TABLE`.
    pub create: String,
    /// Stored (non-generated) columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns; empty when the table has none.
    pub primary_key: Vec<String>,
}

/// A column as dumped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// How values are written.
    pub kind: Kind,
}

/// A view, trigger, routine or event: its CREATE statement and the
/// session it was created in (what mysqldump restores around each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// Its name.
    pub name: String,
    /// `VIEW`, `TRIGGER`, `PROCEDURE`, `FUNCTION` or `EVENT`.
    pub kind: String,
    /// The `sql_mode` it was created under.
    pub sql_mode: String,
    /// The statement as `SHOW CREATE` printed it: with its DEFINER clause
    /// (version 2); without, and `SQL SECURITY INVOKER`, in version 1.
    pub create: String,
    /// Its definer as information_schema prints it, `user@host`; none in
    /// version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definer: Option<String>,
    /// `character_set_client` when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character_set_client: Option<String>,
    /// `collation_connection` when it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation_connection: Option<String>,
    /// The database's collation when it was created (not for views).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_collation: Option<String>,
    /// An event's `time_zone` (its schedule is read in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Table {
    /// The SELECT that reads the table in a deterministic order: by primary
    /// key, or by every column when there is none.
    pub fn select(&self, database: &str) -> String {
        self.select_range(database, None, None)
    }

    /// [`select`](Self::select) limited to `lo <= pk < hi` (either bound
    /// may be open) of a one-column integer primary key.
    pub fn select_range(&self, database: &str, lo: Option<i64>, hi: Option<i64>) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        let order: Vec<String> = if self.primary_key.is_empty() {
            cols.clone()
        } else {
            self.primary_key.iter().map(|c| ident(c)).collect()
        };
        let mut conds = Vec::new();
        if let [pk] = self.primary_key.as_slice() {
            if let Some(lo) = lo {
                conds.push(format!("{} >= {lo}", ident(pk)));
            }
            if let Some(hi) = hi {
                conds.push(format!("{} < {hi}", ident(pk)));
            }
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        format!(
            "SELECT {} FROM {}.{}{filter} ORDER BY {}",
            cols.join(","),
            ident(database),
            ident(&self.name),
            order.join(",")
        )
    }

    /// `INSERT INTO t (cols) VALUES ` prefix.
    pub fn insert_prefix(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ",
            ident(&self.name),
            cols.join(",")
        )
    }

    /// The item name of the table's rows.
    pub fn item_name(&self, database: &str) -> String {
        format!("{database}/{}", self.name)
    }
}

/// Item name of the schema.
pub fn schema_item(database: &str) -> String {
    format!("{database}/_schema")
}

/// Remove `DEFINER=...` (with its trailing space), in every form servers
/// print it: `` `u`@`h` ``, `'u'@'h'`, `u@h`, `CURRENT_USER`, `CURRENT_USER()`,
/// and inside version comments (`/*!50013 DEFINER=... */`).
pub fn strip_definer(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(pos) = find_ci(rest, "DEFINER=") {
        out.push_str(&rest[..pos]);
        let mut after = &rest[pos + "DEFINER=".len()..];
        // Skip the user spec: quoted or bare parts joined by '@'.
        loop {
            after = skip_part(after);
            if let Some(a) = after.strip_prefix('@') {
                after = a;
            } else {
                break;
            }
        }
        if let Some(a) = after.strip_prefix("()") {
            after = a;
        }
        rest = after.trim_start_matches(' ');
    }
    out.push_str(rest);
    replace_ci(&out, "SQL SECURITY DEFINER", "SQL SECURITY INVOKER")
}

fn skip_part(s: &str) -> &str {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(&q @ (b'`' | b'\'' | b'"')) => {
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == q {
                    if bytes.get(i + 1) == Some(&q) {
                        i += 2; // doubled quote inside
                        continue;
                    }
                    return &s[i + 1..];
                }
                i += 1;
            }
            ""
        }
        _ => {
            let end = s.find(['@', ' ', '*', '(', '\n']).unwrap_or(s.len());
            &s[end..]
        }
    }
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_uppercase().find(needle)
}

fn replace_ci(hay: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = hay;
    while let Some(p) = find_ci(rest, from) {
        out.push_str(&rest[..p]);
        out.push_str(to);
        rest = &rest[p + from.len()..];
    }
    out.push_str(rest);
    out
}

/// A CREATE TABLE split for a faster load: the statement without its
/// secondary indexes and foreign keys, and the ALTER TABLE clauses that add
/// them back once the rows are in (a sorted index build instead of one
/// random B-tree insert per row and index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeferredKeys {
    pub create: String,
    /// `ADD KEY ...` clauses, in their original order.
    pub indexes: Vec<String>,
    /// `ADD CONSTRAINT ... FOREIGN KEY ...` clauses.
    pub foreign_keys: Vec<String>,
}

/// Split `create` (the server's `SHOW CREATE TABLE` text, one definition a
/// line) as [`DeferredKeys`]; `None` when there is nothing to defer, no
/// explicit PRIMARY KEY (InnoDB would otherwise cluster on a deferred
/// UNIQUE key differently), or the text is not laid out as expected.
pub(crate) fn defer_keys(create: &str) -> Option<DeferredKeys> {
    let lines: Vec<&str> = create.lines().collect();
    let (first, last) = (lines.first()?, lines.last()?);
    if !first.trim_end().ends_with('(') || !last.starts_with(')') {
        return None;
    }
    let defs = &lines[1..lines.len() - 1];
    if !defs.iter().all(|l| l.starts_with("  ")) {
        return None;
    }
    if !defs
        .iter()
        .any(|l| l.trim_start().starts_with("PRIMARY KEY "))
    {
        return None;
    }
    let mut kept = Vec::new();
    let (mut indexes, mut foreign_keys) = (Vec::new(), Vec::new());
    for line in defs {
        let def = line.trim().trim_end_matches(',');
        let secondary = ["KEY ", "UNIQUE KEY ", "FULLTEXT KEY ", "SPATIAL KEY "]
            .iter()
            .any(|p| def.starts_with(p));
        if secondary {
            indexes.push(format!("ADD {def}"));
        } else if def.starts_with("CONSTRAINT ") && def.contains(" FOREIGN KEY ") {
            foreign_keys.push(format!("ADD {def}"));
        } else {
            kept.push(format!("  {def}"));
        }
    }
    if indexes.is_empty() && foreign_keys.is_empty() {
        return None;
    }
    Some(DeferredKeys {
        create: format!("{first}\n{}\n{last}", kept.join(",\n")),
        indexes,
        foreign_keys,
    })
}

/// Adapt a CREATE statement written by one server for another: MySQL 8's
/// default collation `utf8mb4_0900_ai_ci` does not exist on MariaDB before
/// 11.4, so it maps to `utf8mb4_unicode_ci` there.
pub fn adapt_for_target(create: &str, target_flavor: &str) -> String {
    if target_flavor == "mariadb" && create.contains("_0900_") {
        create
            .replace("utf8mb4_0900_ai_ci", "utf8mb4_unicode_ci")
            .replace("utf8mb4_0900_as_cs", "utf8mb4_bin")
    } else {
        create.to_string()
    }
}

/// The first 80 characters of a statement, for messages.
pub(crate) fn short(sql: &str) -> String {
    let s: String = sql.chars().take(80).collect();
    if s.len() < sql.len() {
        format!("{s}...")
    } else {
        s
    }
}

/// A string literal for information_schema queries.
pub(crate) fn quote(s: &str) -> String {
    let mut out = Vec::new();
    crate::encode::push_value(&mut out, Kind::Text, Some(s.as_bytes()));
    String::from_utf8_lossy(&out).into_owned()
}

/// The SQL literal of `sql_mode` as replays set it: our literals use
/// backslash escapes, so never with NO_BACKSLASH_ESCAPES.
pub(crate) fn sql_mode_literal(sql_mode: &str) -> String {
    let mode: Vec<&str> = sql_mode
        .split(',')
        .filter(|m| !m.is_empty() && *m != "NO_BACKSLASH_ESCAPES")
        .collect();
    quote(&mode.join(","))
}

/// An object's sql_mode as a literal, NO_BACKSLASH_ESCAPES kept: its text
/// was written (and is checked) under it.
pub(crate) fn object_sql_mode_literal(sql_mode: &str) -> String {
    let mode: Vec<&str> = sql_mode.split(',').filter(|m| !m.is_empty()).collect();
    quote(&mode.join(","))
}

/// `mariadb` or `mysql`, from `VERSION()`.
pub(crate) fn flavor(version: &str) -> &'static str {
    if version.to_ascii_lowercase().contains("mariadb") {
        "mariadb"
    } else {
        "mysql"
    }
}

/// Read the schema of `db` on `conn` (inside the dump's transaction).
pub(crate) fn read(
    conn: &mut crate::wire::Conn,
    db: &str,
    source: String,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Schema> {
    let version = conn.text_value("SELECT VERSION()")?;
    let flavor = flavor(&version).to_string();
    let gtid_sql = if flavor == "mariadb" {
        "SELECT @@GLOBAL.gtid_current_pos"
    } else {
        "SELECT @@GLOBAL.gtid_executed"
    };
    let gtid = conn.text_value(gtid_sql).ok().filter(|g| !g.is_empty());
    let v = conn.text_rows("SELECT @@SESSION.sql_mode, @@character_set_server, @@collation_server, @@lower_case_table_names")?;
    let v = v.into_iter().next().unwrap_or_default();
    let get = |i: usize| v.get(i).cloned().flatten().unwrap_or_default();
    let server = ServerFacts {
        version,
        flavor,
        sql_mode: get(0),
        character_set: get(1),
        collation: get(2),
        lower_case_table_names: get(3),
        gtid,
        source,
    };
    let q = quote(db);
    let mut tables = Vec::new();
    let mut views = Vec::new();
    let list = conn.text_rows(&format!("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = {q} ORDER BY TABLE_NAME"))?;
    for row in list {
        let (Some(name), Some(ty)) = (row[0].clone(), row[1].clone()) else {
            continue;
        };
        if !keep(&name) {
            continue;
        }
        let full = format!("{}.{}", ident(db), ident(&name));
        if ty == "VIEW" {
            let rows = conn.text_rows(&format!("SHOW CREATE VIEW {full}"))?;
            let definer = conn.text_value(&format!(
                "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {q} AND TABLE_NAME = {}",
                quote(&name)
            ))?;
            let columns = Columns {
                sql_mode: None,
                time_zone: None,
                create: 1,
                database_collation: false,
            };
            let mut v = object(name, "VIEW", &rows, columns, definer);
            v.sql_mode = server.sql_mode.clone();
            views.push(v);
            continue;
        }
        let create = nth(conn.text_rows(&format!("SHOW CREATE TABLE {full}"))?, 1);
        let tq = quote(&name);
        let columns = conn.text_rows(&format!(
                "SELECT COLUMN_NAME, DATA_TYPE, COALESCE(GENERATION_EXPRESSION, '') FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {q} AND TABLE_NAME = {tq} ORDER BY ORDINAL_POSITION"
            ))?
        .into_iter()
        .filter(|r| r[2].as_deref().unwrap_or("").is_empty())
        .map(|r| Column {
            name: r[0].clone().unwrap_or_default(),
            kind: Kind::of(r[1].as_deref().unwrap_or("")),
        })
        .collect();
        let primary_key = conn.text_rows(&format!(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = {q} \
                 AND TABLE_NAME = {tq} AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION"
            ))?
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
        tables.push(Table {
            name,
            create,
            columns,
            primary_key,
        });
    }
    // Triggers, routines and events: SHOW CREATE gives the name, then
    // sql_mode, (an event's time_zone,) the statement, character_set_client,
    // collation_connection and Database Collation.
    let body = |time_zone| Columns {
        sql_mode: Some(1),
        time_zone,
        create: if time_zone.is_some() { 3 } else { 2 },
        database_collation: true,
    };
    let mut triggers = Vec::new();
    for row in conn.text_rows(&format!("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {q} ORDER BY TRIGGER_NAME"))?
    {
        let (Some(name), Some(table)) = (row[0].clone(), row[1].clone()) else { continue };
        if !keep(&table) {
            continue;
        }
        let r = conn.text_rows(&format!("SHOW CREATE TRIGGER {}.{}", ident(db), ident(&name)))?;
        triggers.push(object(name, "TRIGGER", &r, body(None), row[2].clone().unwrap_or_default()));
    }
    let mut routines = Vec::new();
    for row in conn.text_rows(&format!("SELECT ROUTINE_NAME, ROUTINE_TYPE, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q} ORDER BY ROUTINE_TYPE, ROUTINE_NAME"))?
    {
        let (Some(name), Some(ty)) = (row[0].clone(), row[1].clone()) else { continue };
        let r = conn.text_rows(&format!("SHOW CREATE {ty} {}.{}", ident(db), ident(&name)))?;
        routines.push(object(name, &ty, &r, body(None), row[2].clone().unwrap_or_default()));
    }
    let mut events = Vec::new();
    for row in conn.text_rows(&format!("SELECT EVENT_NAME, DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q} ORDER BY EVENT_NAME"))?
    {
        let Some(name) = row[0].clone() else { continue };
        let r = conn.text_rows(&format!("SHOW CREATE EVENT {}.{}", ident(db), ident(&name)))?;
        events.push(object(name, "EVENT", &r, body(Some(2)), row[1].clone().unwrap_or_default()));
    }
    let d = conn.text_rows(&format!(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {q}"
    ))?;
    let defaults = d
        .into_iter()
        .next()
        .and_then(|r| match (r.first(), r.get(1)) {
            (Some(Some(cs)), Some(Some(co))) => Some(Defaults {
                character_set: cs.clone(),
                collation: co.clone(),
            }),
            _ => None,
        });
    Ok(Schema {
        version: SCHEMA_VERSION,
        database: db.to_string(),
        defaults,
        server,
        tables,
        views,
        triggers,
        routines,
        events,
    })
}

fn nth(rows: Vec<Vec<Option<String>>>, col: usize) -> String {
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().nth(col).flatten())
        .unwrap_or_default()
}

/// Where the columns of a `SHOW CREATE` row are.
#[derive(Clone, Copy)]
struct Columns {
    sql_mode: Option<usize>,
    time_zone: Option<usize>,
    /// The statement; character_set_client and collation_connection follow.
    create: usize,
    /// Database Collation follows those.
    database_collation: bool,
}

fn object(
    name: String,
    kind: &str,
    rows: &[Vec<Option<String>>],
    at: Columns,
    definer: String,
) -> Object {
    let row = rows.first().cloned().unwrap_or_default();
    let col = |i: usize| row.get(i).cloned().flatten();
    Object {
        name,
        kind: kind.to_string(),
        sql_mode: at.sql_mode.and_then(col).unwrap_or_default(),
        create: col(at.create).unwrap_or_default(),
        definer: Some(definer).filter(|d| !d.is_empty()),
        character_set_client: col(at.create + 1),
        collation_connection: col(at.create + 2),
        database_collation: at.database_collation.then(|| col(at.create + 3)).flatten(),
        time_zone: at.time_zone.and_then(col),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_are_stripped_in_every_form_servers_print() {
        // MariaDB 10.11 SHOW CREATE VIEW
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `v` AS select 1"
        );
        // MySQL 8 on Aiven: avnadmin@%
        assert_eq!(
            strip_definer("CREATE DEFINER=`avnadmin`@`%` PROCEDURE `p`() BEGIN SELECT 1; END"),
            "CREATE PROCEDURE `p`() BEGIN SELECT 1; END"
        );
        // mysqldump's versioned comment and quoted forms
        assert_eq!(
            strip_definer("/*!50013 DEFINER='app'@'10.0.%' SQL SECURITY DEFINER */"),
            "/*!50013 SQL SECURITY INVOKER */"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=CURRENT_USER() TRIGGER t"),
            "CREATE TRIGGER t"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=root@localhost EVENT e"),
            "CREATE EVENT e"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=`we``ird`@`h` FUNCTION f"),
            "CREATE FUNCTION f"
        );
        // Nothing to strip: unchanged.
        assert_eq!(
            strip_definer("CREATE TABLE t (definer_name int)"),
            "CREATE TABLE t (definer_name int)"
        );
    }

    #[test]
    fn secondary_keys_and_foreign_keys_are_deferred() {
        let create = "CREATE TABLE `a` (\n  `id` int(11) NOT NULL,\n  `p` int(11) NOT NULL,\n  `s` varchar(9) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `s` (`s`),\n  KEY `p` (`p`),\n  CONSTRAINT `a_ibfk_1` FOREIGN KEY (`p`) REFERENCES `b` (`id`),\n  CONSTRAINT `pos` CHECK (`p` > 0)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let d = defer_keys(create).expect("deferred");
        assert_eq!(
            d.create,
            "CREATE TABLE `a` (\n  `id` int(11) NOT NULL,\n  `p` int(11) NOT NULL,\n  `s` varchar(9) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  CONSTRAINT `pos` CHECK (`p` > 0)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert_eq!(d.indexes, ["ADD UNIQUE KEY `s` (`s`)", "ADD KEY `p` (`p`)"]);
        assert_eq!(
            d.foreign_keys,
            ["ADD CONSTRAINT `a_ibfk_1` FOREIGN KEY (`p`) REFERENCES `b` (`id`)"]
        );
        // Nothing to defer, no primary key, or an unexpected layout: as is.
        assert_eq!(
            defer_keys("CREATE TABLE `t` (\n  `id` int,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"),
            None
        );
        assert_eq!(
            defer_keys(
                "CREATE TABLE `t` (\n  `id` int,\n  UNIQUE KEY `id` (`id`)\n) ENGINE=InnoDB"
            ),
            None
        );
        assert_eq!(
            defer_keys("CREATE TABLE t (id int primary key, key k (id))"),
            None
        );
    }

    #[test]
    fn mysql8_collations_map_to_mariadb() {
        let c = "CREATE TABLE t (a varchar(5)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";
        assert!(adapt_for_target(c, "mariadb").ends_with("COLLATE=utf8mb4_unicode_ci"));
        assert_eq!(adapt_for_target(c, "mysql"), c);
        assert_eq!(flavor("10.11.19-MariaDB-0+deb12u1"), "mariadb");
        assert_eq!(flavor("8.0.35"), "mysql");
    }

    #[test]
    fn select_orders_by_primary_key_or_every_column() {
        let mut t = Table {
            name: "t".into(),
            create: String::new(),
            columns: vec![
                Column {
                    name: "a".into(),
                    kind: Kind::Number,
                },
                Column {
                    name: "b".into(),
                    kind: Kind::Text,
                },
            ],
            primary_key: vec!["a".into()],
        };
        assert_eq!(t.select("db"), "SELECT `a`,`b` FROM `db`.`t` ORDER BY `a`");
        t.primary_key.clear();
        assert_eq!(
            t.select("db"),
            "SELECT `a`,`b` FROM `db`.`t` ORDER BY `a`,`b`"
        );
        assert_eq!(t.insert_prefix(), "INSERT INTO `t` (`a`,`b`) VALUES ");
    }
}
