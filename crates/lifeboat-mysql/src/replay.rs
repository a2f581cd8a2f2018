//! Replay: a snapshot's tables and objects into a named target database,
//! tables in parallel over several connections with multi-row inserts,
//! then every table read back and checked against the manifest.
//!
//! A snapshot may be forged (see `guard`): everything is checked before the
//! target is touched, row lines as they stream, and every statement goes
//! through lifeboat's own client (`wire`), which never enables multiple
//! statements per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, ProgressBars, Repository};
use sha2::{Digest, Sha256};

use crate::connect::MysqlOptions;
use crate::encode::{ident, push_row, Lines};
use crate::error::{Error, Result};
use crate::fidelity::{self, Account, Definers, ExpectedSchema, Known, SchemaCheck};
use crate::guard::{self, Scope};
use crate::lexer::Dialect;
use crate::schema::{
    adapt_for_target, defer_keys, flavor, quote, sql_mode_literal, DeferredKeys, Object, Schema,
    Table, SOURCE,
};
use crate::wire::Conn;

/// Options of [`replay`].
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The target: `mysql://USER@HOST:PORT/DATABASE` (created if absent).
    pub target: MysqlOptions,
    /// Replace a target database that already has tables or objects.
    pub force: bool,
    /// Allow the target to be the very database the snapshot came from.
    pub allow_source: bool,
    /// Also replay views, triggers, routines and events whose bodies name
    /// another database on the target server, or use statements replay
    /// refuses (GRANT, SET GLOBAL, dynamic SQL, files...): bodies run later
    /// with the target account's privileges, so only for a snapshot known
    /// to be genuine. Heads, tables, rows and the one-statement rule are
    /// checked regardless; events, which run by themselves, are never
    /// trusted.
    pub trust_object_bodies: bool,
    /// Parallel connections for loading and checking (default 2).
    pub connections: usize,
    /// Read every table back and compare with the manifest afterwards (as
    /// [`verify_database`] does). Off only for callers that verify later.
    pub verify: bool,
    /// Who the replayed views, triggers, routines and events belong to.
    pub definers: Definers,
    /// Create events DISABLEd (drills: production's schedules never run
    /// in staging). A restore keeps each event's status.
    pub disable_events: bool,
    /// Re-create the accounts that held privileges on the database (the
    /// `DB/_accounts` item), with their grants on it; existing accounts
    /// are left alone.
    pub with_users: bool,
    /// With `with_users`: also their server-wide grants (`ON *.*`).
    pub with_global_grants: bool,
}

/// What `with_users` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AccountsReport {
    /// Accounts and roles created, with their grants.
    pub created: Vec<String>,
    /// Accounts that exist on the target: left alone.
    pub existing: Vec<String>,
    /// Grants given.
    pub granted: usize,
    /// Grants not restored, and why (another database, server-wide).
    pub skipped: Vec<String>,
    /// Statements the target refused (a privilege the replaying account
    /// may not give), with the server's answer.
    pub failed: Vec<String>,
}

/// One table's check after a replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// Rows in the manifest.
    pub rows_expected: u64,
    /// Rows read back from the target.
    pub rows_found: u64,
    /// The content checksum (SHA-256 of the rows as lifeboat encodes them)
    /// matches the manifest.
    pub checksum_matches: bool,
}

/// What a replay did and found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    /// The source database name.
    pub source_database: String,
    /// `user@host:port/db` of the target.
    pub target: String,
    /// Per table, in name order.
    pub tables: Vec<TableCheck>,
    /// Views, triggers, routines, events created (and found afterwards).
    pub objects_created: usize,
    /// Objects expected from the snapshot.
    pub objects_expected: usize,
    /// Seconds spent loading data and creating objects.
    pub load_seconds: f64,
    /// Seconds spent reading the target back to check it.
    pub check_seconds: f64,
    /// Each object replay changed, and how (a definer it could not or was
    /// told not to keep, SQL SECURITY, an event a drill disabled).
    pub rewritten: Vec<String>,
    /// What else to know: a definer with no account on the target, a
    /// session setting the target lacks.
    pub notes: Vec<String>,
    /// The target's schema compared with the snapshot's (with the check).
    pub schema: Option<SchemaCheck>,
    /// The accounts (with `with_users`).
    pub accounts: Option<AccountsReport>,
    /// What the schema check compares with (for a later
    /// [`verify_database`]).
    #[serde(skip)]
    pub expected: ExpectedSchema,
}

impl ReplayReport {
    /// True when every table and object matches.
    pub fn ok(&self) -> bool {
        self.objects_created == self.objects_expected
            && self
                .schema
                .as_ref()
                .is_none_or(|s| s.differences.is_empty())
            && self
                .tables
                .iter()
                .all(|t| t.checksum_matches && t.rows_found == t.rows_expected)
    }
}

/// Find the MySQL schema in a manifest and read it.
/// The MySQL databases a snapshot holds, from its manifest, in order.
pub fn databases(items: &[ManifestItem]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.source == SOURCE && i.kind == "schema")
        .filter_map(|i| i.name.split_once('/').map(|(db, _)| db.to_string()))
        .collect()
}

/// The manifest with only `database`'s MySQL items (other sources' items
/// stay). Without `database`, the snapshot's only database; several is an
/// error naming them. (Database names cannot hold `/`, so the item name's
/// first part is the database.)
pub fn select_database(
    items: &[ManifestItem],
    database: Option<&str>,
) -> Result<Vec<ManifestItem>> {
    let all = databases(items);
    let db = match (database, all.as_slice()) {
        (Some(d), _) if all.iter().any(|a| a == d) => d.to_string(),
        (Some(d), _) => {
            return Err(Error::Invalid(format!(
                "this snapshot holds no MySQL database {d:?} (it holds: {})",
                all.join(", ")
            )))
        }
        (None, [one]) => one.clone(),
        (None, []) => return Ok(items.to_vec()),
        (None, many) => {
            return Err(Error::Invalid(format!(
                "this snapshot holds the MySQL databases {}: choose one with --database",
                many.join(", ")
            )))
        }
    };
    let prefix = format!("{db}/");
    Ok(items
        .iter()
        .filter(|i| i.source != SOURCE || i.name.starts_with(&prefix))
        .cloned()
        .collect())
}

/// A JSON item of this source (the schema, the accounts), read whole.
fn read_json<T: serde::de::DeserializeOwned>(
    repo: &Repository<FullAccess>,
    index: &Index,
    item: &ManifestItem,
    what: &str,
) -> Result<T> {
    let mut json = Vec::new();
    repo.restore_item(index, item, &mut json, &NoProgress)?;
    serde_json::from_slice(&json)
        .map_err(|e| Error::Damaged(format!("the {what} item {} is unreadable: {e}", item.name)))
}

/// The database a snapshot's MySQL items hold and its tables (checked as
/// replay checks them): what binlog applied after it may touch.
pub fn snapshot_tables(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
) -> Result<(String, std::collections::BTreeSet<String>)> {
    let (schema, _) = load_schema(repo, index, items)?;
    let tables = schema.tables.iter().map(|t| t.name.clone()).collect();
    Ok((schema.database, tables))
}

pub(crate) fn load_schema(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
) -> Result<(Schema, HashMap<String, ManifestItem>)> {
    let schemas: Vec<&ManifestItem> = items
        .iter()
        .filter(|i| i.source == SOURCE && i.kind == "schema")
        .collect();
    let item = match schemas.as_slice() {
        [one] => *one,
        [] => return Err(Error::Invalid("this snapshot holds no MySQL backup (no mysql schema item)".into())),
        many => {
            return Err(Error::Invalid(format!(
                "this snapshot holds {} MySQL databases; replaying several at once is not supported yet",
                many.len()
            )))
        }
    };
    let schema: Schema = read_json(repo, index, item, "MySQL schema")?;
    if item.name.split_once('/').map(|(db, _)| db) != Some(schema.database.as_str()) {
        return Err(refused(
            format!("the MySQL schema item {}", item.name),
            format!("it describes the database {:?}", schema.database),
        ));
    }
    check_names(&schema)?;
    let tables: HashMap<String, ManifestItem> = items
        .iter()
        .filter(|i| i.source == SOURCE && i.kind == "table")
        .map(|i| (i.name.clone(), i.clone()))
        .collect();
    // Every row item must belong to a table the schema describes: rows
    // that replay would leave out are a damaged or forged snapshot, not
    // something to skip without a word.
    let described: std::collections::HashSet<String> = schema
        .tables
        .iter()
        .map(|t| t.item_name(&schema.database))
        .collect();
    let mut strays: Vec<&str> = tables
        .keys()
        .filter(|name| !described.contains(*name))
        .map(String::as_str)
        .collect();
    strays.sort_unstable();
    if let Some(first) = strays.first() {
        let first: String = first.chars().take(100).collect();
        return Err(refused(
            format!("the MySQL table item {first:?}"),
            format!(
                "the snapshot's schema of {:?} describes no such table ({} row item(s) \
                 without a table)",
                schema.database,
                strays.len()
            ),
        ));
    }
    Ok((schema, tables))
}

/// How the target reads text under `mode` (checked, then set and read
/// back expanded). For tables and rows (`object` false) the session never
/// keeps NO_BACKSLASH_ESCAPES: their literals use backslash escapes.
fn session_dialect(conn: &mut Conn, mode: &str, object: bool) -> Result<Dialect> {
    guard::check_sql_mode(mode).map_err(|e| refused("the MySQL schema", e))?;
    let literal = match object {
        true => crate::schema::object_sql_mode_literal(mode),
        false => sql_mode_literal(mode),
    };
    run(conn, &format!("SET SESSION sql_mode = {literal}")).map_err(|e| {
        Error::Target(format!(
            "the target server refuses the snapshot's sql_mode: {e}"
        ))
    })?;
    let expanded = conn.text_value("SELECT @@SESSION.sql_mode")?;
    if !object && expanded.split(',').any(|m| m == "NO_BACKSLASH_ESCAPES") {
        return Err(Error::Target(
            "the target session keeps NO_BACKSLASH_ESCAPES, which replay cannot run under".into(),
        ));
    }
    Ok(Dialect::of_sql_mode(&expanded))
}

/// Tables whose rows take at least this much get their secondary indexes
/// and foreign keys after the load.
const DEFER_KEYS_FROM: u64 = 32 << 20;

/// Rows recorded for a table item.
fn rows_of(item: &ManifestItem) -> u64 {
    item.meta.get("rows").and_then(|r| r.as_u64()).unwrap_or(0)
}

/// A refusal: the snapshot holds something replay will not send.
pub(crate) fn refused(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
    Error::Refused(format!(
        "{what}: {why}; refusing to replay this snapshot (its MySQL schema or rows are damaged, \
         or were forged by whoever could write to the repository)"
    ))
}

/// A connection for replay and its checks: lifeboat's own client, which
/// never announces CLIENT_MULTI_STATEMENTS (nor CLIENT_LOCAL_FILES), so the
/// server runs one statement per call and refuses a second one.
fn connect(target: &MysqlOptions) -> Result<Conn> {
    Conn::connect(target)
}

/// Send one statement that returns no rows. Every statement replay builds
/// or takes from a snapshot goes to the target through here (or, for the
/// queries it writes itself, through `Conn::text_rows`).
fn run(conn: &mut Conn, sql: &str) -> Result<()> {
    conn.execute_bytes(sql.as_bytes(), &crate::schema::short(sql))
}

/// One table as it will be created: the checked CREATE text, and the
/// checked ALTER TABLE statements that add its deferred keys afterwards.
struct PlannedTable {
    create: String,
    after_rows: Vec<String>,
}

/// A view, trigger, routine or event as it will be created.
struct PlannedObject {
    label: String,
    /// `SET SESSION sql_mode = ..., character_set_client = ...` for it.
    session: String,
    create: String,
    /// Its character_set_client (the text is sent in it).
    charset: Option<String>,
    /// `ALTER DATABASE` to its database collation and back, when that
    /// differs from the database's default.
    collation: Option<(String, String)>,
}

/// Everything a replay will send but the rows, checked before the first
/// change to the target (see `guard`).
struct Plan {
    /// `CREATE DATABASE IF NOT EXISTS ...` (names checked and quoted).
    create_database: String,
    /// The session's sql_mode literal (checked).
    session_mode: String,
    tables: Vec<PlannedTable>,
    objects: Vec<PlannedObject>,
    rewritten: Vec<String>,
    notes: Vec<String>,
    expected: ExpectedSchema,
}

/// Check the schema against the target server and build the [`Plan`].
/// A forged or damaged schema is an [`Error::Refused`]; nothing has been
/// changed on the target when this returns.
fn prepare(
    conn: &mut Conn,
    schema: &Schema,
    table_items: &HashMap<String, ManifestItem>,
    target_db: &str,
    target_flavor: &str,
    opts: &ReplayOptions,
) -> Result<Plan> {
    let trust_bodies = opts.trust_object_bodies;
    let named = |what: &str, name: &str, db: bool| {
        guard::check_name(what, name, db).map_err(|e| refused("the MySQL schema", e))
    };
    named("the database", &schema.database, true)?;
    for t in &schema.tables {
        named("a table", &t.name, false)?;
        if t.columns.is_empty() {
            return Err(refused(format!("table {}", t.name), "it has no columns"));
        }
        for c in &t.columns {
            named(&format!("a column of table {}", t.name), &c.name, false)?;
        }
        for c in &t.primary_key {
            named(
                &format!("a primary key column of table {}", t.name),
                c,
                false,
            )?;
        }
    }
    let objects = objects_in_order(schema);
    for o in &objects {
        named(&format!("a {}", o.kind.to_lowercase()), &o.name, false)?;
    }

    // sql_modes: names only; then what the server makes of each (composite
    // modes expanded), which decides how `"`, `[` and `\` are read. The
    // server's own mode (tables, rows) never keeps NO_BACKSLASH_ESCAPES;
    // an object's keeps it, since its text was written under it.
    let table_dialect = session_dialect(conn, &schema.server.sql_mode, false)?;
    let mut dialects: HashMap<&str, Dialect> = HashMap::new();
    for o in &objects {
        if !dialects.contains_key(o.sql_mode.as_str()) {
            let d = session_dialect(conn, &o.sql_mode, true)?;
            dialects.insert(o.sql_mode.as_str(), d);
        }
    }
    // Back to the tables' mode: the queries below quote with backslashes.
    session_dialect(conn, &schema.server.sql_mode, false)?;
    let dialect = |mode: &str| dialects.get(mode).copied().unwrap_or_default();

    // Character set and collation: the database's own (the server's in
    // version 1 snapshots); names only, and ones the target has.
    let (cs, collation) = match &schema.defaults {
        Some(d) => (d.character_set.clone(), d.collation.clone()),
        None => (
            schema.server.character_set.clone(),
            schema.server.collation.clone(),
        ),
    };
    let cs = if cs.is_empty() {
        "utf8mb4".to_string()
    } else {
        cs
    };
    let collation = adapt_for_target(&collation, target_flavor);
    for (what, name) in [
        ("character set", cs.as_str()),
        ("collation", collation.as_str()),
    ] {
        if !(name.is_empty() || Known::name_ok(name)) {
            return Err(refused(
                "the MySQL schema",
                format!(
                    "its server {what} {:?} is not a {what} name",
                    crate::schema::short(name)
                ),
            ));
        }
    }
    let known = Known::of(conn, target_flavor)?;
    if !known.has_charset(&cs) {
        return Err(Error::Target(format!(
            "the target server has no character set {cs:?} (the snapshot's database default)"
        )));
    }
    let mut create_database = format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {}",
        ident(target_db),
        ident(&cs)
    );
    if !collation.is_empty() {
        if known.charset_of(&collation) != Some(cs.to_lowercase().as_str()) {
            return Err(Error::Target(format!(
                "the target server has no collation {collation:?} for the character set {cs:?} (the snapshot's database default)"
            )));
        }
        create_database.push_str(&format!(" COLLATE {}", ident(&collation)));
    }

    let scope = Scope {
        source_db: schema.database.clone(),
        target_db: target_db.to_string(),
        other_dbs: other_databases(conn, target_db)?,
        tables: schema.tables.iter().map(|t| t.name.clone()).collect(),
        anywhere: false,
    };

    let d = table_dialect;
    let mut tables = Vec::new();
    for t in &schema.tables {
        let create = adapt_for_target(&t.create, target_flavor);
        let create = guard::check_table(&create, &t.name, d, &scope)
            .map_err(|e| refused(format!("the CREATE text of table {}", t.name), e))?;
        let big = table_items
            .get(&t.item_name(&schema.database))
            .is_some_and(|i| i.size >= DEFER_KEYS_FROM);
        // Big tables get their secondary indexes and foreign keys after the
        // rows: one sorted build each instead of an index insert per row.
        // Every part is checked again; if one fails, the table is created
        // whole (the text as checked above).
        let deferred = big
            .then(|| defer_keys(&create))
            .flatten()
            .and_then(|dk| defer_checked(dk, &t.name, d, &scope));
        tables.push(match deferred {
            Some((create, after_rows)) => PlannedTable { create, after_rows },
            None => PlannedTable {
                create,
                after_rows: Vec::new(),
            },
        });
    }
    let target_version = conn.text_value("SELECT VERSION()")?;
    let exact = target_version == schema.server.version;
    let mut expected = ExpectedSchema::new(exact);
    for t in &schema.tables {
        expected.table(&t.name, &adapt_for_target(&t.create, target_flavor));
    }
    let account = Account::of(conn)?;
    let (mut rewritten, mut notes) = (Vec::new(), Vec::new());
    if schema.version < 2 && !objects.is_empty() {
        notes.push(format!(
            "this snapshot's schema (version {}) predates definers being kept: its views, \
             triggers, routines and events become {}'s, with SQL SECURITY INVOKER",
            schema.version, account.name
        ));
    }
    let mut planned = Vec::new();
    for o in objects {
        let label = format!("{} {}", o.kind.to_lowercase(), o.name);
        let create = adapt_for_target(&o.create, target_flavor);
        let obj = Object {
            create,
            ..o.clone()
        };
        let how = fidelity::plan_object(o, &account, opts.definers, opts.disable_events)?;
        // The text's own DEFINER (replaced by replay) must be the entry's:
        // a report must never hide who an object really belonged to.
        if let (Ok((_, Some(clause))), Some(field)) = (
            guard::split_definer(&o.create, dialect(&o.sql_mode)),
            &o.definer,
        ) {
            let named = guard::definer_account(&clause, dialect(&o.sql_mode));
            if !named.is_some_and(|n| fidelity::same_account(&n, field)) {
                return Err(refused(
                    format!("the CREATE text of {label}"),
                    format!(
                        "its {} is not the entry's definer {field}",
                        crate::schema::short(&clause)
                    ),
                ));
            }
        }
        let trust = trust_bodies && !o.kind.eq_ignore_ascii_case("EVENT");
        let d = dialect(&o.sql_mode);
        let create = guard::check_object(&obj, d, &scope, trust, &how.rewrite).map_err(|e| {
            let hint = if o.kind.eq_ignore_ascii_case("EVENT") || trust_bodies {
                ""
            } else {
                " (if this snapshot is certainly yours, --trust-object-bodies replays such bodies)"
            };
            refused(format!("the CREATE text of {label}"), format!("{e}{hint}"))
        })?;
        let session = fidelity::session_for(o, &known, &mut notes)?;
        if let Some(c) = o
            .database_collation
            .as_deref()
            .filter(|c| !known.has_collation(&adapt_for_target(c, target_flavor)))
        {
            notes.push(format!(
                "{label}: created under the database's collation, not {:?}: the target has no such collation",
                crate::schema::short(c)
            ));
        }
        let switch = o
            .database_collation
            .as_deref()
            .map(|c| adapt_for_target(c, target_flavor))
            .filter(|c| !c.eq_ignore_ascii_case(&collation) && known.has_collation(c))
            .filter(|_| !collation.is_empty())
            .map(|c| {
                let db = ident(target_db);
                (
                    format!("ALTER DATABASE {db} COLLATE {}", ident(&c)),
                    format!("ALTER DATABASE {db} COLLATE {}", ident(&collation)),
                )
            });
        expected.object(o, &create, how.definer, &session, d);
        rewritten.extend(how.rewritten);
        planned.push(PlannedObject {
            label,
            charset: Some(session.charset.clone()),
            session: session.sql,
            create,
            collation: switch,
        });
    }
    Ok(Plan {
        create_database,
        session_mode: sql_mode_literal(&schema.server.sql_mode),
        tables,
        objects: planned,
        rewritten,
        notes,
        expected,
    })
}

/// The deferred form of a table, if each of its parts passes the checks.
fn defer_checked(
    dk: DeferredKeys,
    table: &str,
    d: Dialect,
    scope: &Scope,
) -> Option<(String, Vec<String>)> {
    let create = guard::check_table(&dk.create, table, d, scope).ok()?;
    let mut after = Vec::new();
    for clauses in [&dk.indexes, &dk.foreign_keys] {
        if clauses.is_empty() {
            continue;
        }
        for c in clauses.iter() {
            guard::check_alter_clause(c, d, scope).ok()?;
        }
        after.push(format!(
            "ALTER TABLE {} {}",
            ident(table),
            clauses.join(", ")
        ));
    }
    Some((create, after))
}

/// Replay the MySQL backup in `items` into `opts.target`, then check it.
/// Returns the report; a mismatch is an [`Error::Mismatch`] naming the
/// tables, a snapshot replay will not send an [`Error::Refused`].
pub fn replay(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    opts: &ReplayOptions,
    bars: &dyn ProgressBars,
) -> Result<ReplayReport> {
    let (schema, table_items) = load_schema(repo, index, items)?;
    let target = opts.target.target()?;
    let started = Instant::now();

    // Check everything on one connection, then prepare the database.
    let mut conn = connect(&opts.target)?;
    refuse_the_source(&mut conn, &schema, &target, opts.allow_source)?;
    let fl = flavor(&conn.text_value("SELECT VERSION()")?);
    let mut plan = prepare(&mut conn, &schema, &table_items, &target.database, fl, opts)?;
    let accounts = match opts.with_users {
        true => Some(plan_accounts(
            repo,
            index,
            items,
            &schema,
            &target.database,
            opts.with_global_grants,
        )?),
        false => None,
    };
    let db = ident(&target.database);
    make_room(&mut conn, &target, opts.force)?;
    run(&mut conn, &plan.create_database)?;
    run(&mut conn, &format!("USE {db}"))?;
    session_setup(&mut conn, &schema, &plan)?;
    for (t, p) in schema.tables.iter().zip(&plan.tables) {
        run(&mut conn, &p.create)
            .map_err(|e| Error::Replay(format!("creating table {}: {e}", t.name)))?;
    }
    let workers = opts.connections.max(1);
    let load = Load {
        repo,
        index,
        opts,
        schema: &schema,
        plan: &plan,
        db: &db,
        bars,
    };
    load.tables(&table_items, workers)?;

    // Objects after the data, so triggers do not fire during the load.
    let objects_expected =
        schema.views.len() + schema.triggers.len() + schema.routines.len() + schema.events.len();
    let mut notes = std::mem::take(&mut plan.notes);
    // Accounts after the tables (table grants need them), before the
    // objects (so their definers exist).
    let accounts = accounts.map(|(planned, skipped)| create_accounts(&mut conn, &planned, skipped));
    for o in &plan.objects {
        create_object(&mut conn, o, &mut notes)?;
    }
    if !plan.objects.is_empty() {
        // An object's session may hold NO_BACKSLASH_ESCAPES.
        run(
            &mut conn,
            &format!("SET SESSION sql_mode = {}", plan.session_mode),
        )?;
    }
    let objects_created = count_objects(&mut conn, &target.database)?;
    drop(conn);
    let mut report = ReplayReport {
        source_database: schema.database.clone(),
        target: target.display(),
        tables: Vec::new(),
        objects_created,
        objects_expected,
        load_seconds: started.elapsed().as_secs_f64(),
        check_seconds: 0.0,
        rewritten: std::mem::take(&mut plan.rewritten),
        notes,
        schema: None,
        accounts,
        expected: std::mem::take(&mut plan.expected),
    };
    if opts.verify {
        let checked = Instant::now();
        report.tables = check_tables(
            &opts.target,
            &schema,
            &table_items,
            &target.database,
            workers,
        )?;
        report.schema = Some(fidelity::check_schema(
            &mut connect(&opts.target)?,
            &target.database,
            &report.expected,
        )?);
        report.check_seconds = checked.elapsed().as_secs_f64();
        judge(&report)?;
    }
    Ok(report)
}

/// Every database the target server shows this account but `target_db`,
/// lowercased: what no checked text may name.
pub(crate) fn other_databases(
    conn: &mut Conn,
    target_db: &str,
) -> Result<std::collections::HashSet<String>> {
    let target = target_db.to_lowercase();
    Ok(conn
        .text_rows("SHOW DATABASES")?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .map(|d| d.to_lowercase())
        .filter(|d| *d != target)
        .collect())
}

/// The accounts item of the snapshot, checked and planned (nothing sent).
pub(crate) fn plan_accounts(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    schema: &Schema,
    target_db: &str,
    with_global_grants: bool,
) -> Result<(Vec<crate::accounts::PlannedAccount>, Vec<String>)> {
    let name = crate::accounts::accounts_item(&schema.database);
    let item = items
        .iter()
        .find(|i| i.source == SOURCE && i.kind == "accounts" && i.name == name)
        .ok_or_else(|| {
            Error::Invalid(
                "this snapshot holds no accounts (it was taken before lifeboat stored them): \
                 restore without --with-users (export without --users-to)"
                    .into(),
            )
        })?;
    let accounts: crate::accounts::Accounts = read_json(repo, index, item, "accounts")?;
    crate::accounts::plan(&accounts, &schema.database, target_db, with_global_grants)
        .map_err(|e| refused("the MySQL accounts", e))
}

/// Create each planned account that does not exist, with its grants; what
/// the target refuses is reported, not fatal. An account whose user name
/// exists on the target with another host is not created (it would change
/// who logs in as that user), and a role is given only if this restore
/// created it (an existing role of that name may hold anything).
fn create_accounts(
    conn: &mut Conn,
    planned: &[crate::accounts::PlannedAccount],
    skipped: Vec<String>,
) -> AccountsReport {
    let mut r = AccountsReport {
        skipped,
        ..Default::default()
    };
    let present: Vec<(String, String)> = match conn.text_rows("SELECT User, Host FROM mysql.user") {
        Ok(rows) => rows
            .into_iter()
            .map(|row| {
                let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
                (get(0), get(1))
            })
            .collect(),
        Err(e) => {
            r.failed.push(format!(
                "listing the target's accounts (mysql.user) was refused, so none was created: {e}"
            ));
            return r;
        }
    };
    let mut created_roles = std::collections::BTreeSet::new();
    for a in planned {
        if present
            .iter()
            .any(|(u, h)| *u == a.user && h.eq_ignore_ascii_case(&a.host))
        {
            r.existing.push(a.label.clone());
            continue;
        }
        if let Some((u, h)) = present.iter().find(|(u, _)| *u == a.user) {
            r.existing.push(format!(
                "{} (not created: {u}@{h} exists, and another host would change who logs in as {u})",
                a.label
            ));
            continue;
        }
        // Never the statement nor the server's words about it in a
        // message: they hold the password hash. Only the error code.
        if let Err(e) = conn.execute_bytes(a.create.as_bytes(), "CREATE USER") {
            let msg = e.to_string();
            let code = msg
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 4)
                .unwrap_or("unknown");
            r.failed.push(format!(
                "creating {}: the server refused its CREATE statement (error {code})",
                a.label
            ));
            continue;
        }
        r.created.push(a.label.clone());
        if a.role {
            created_roles.insert(a.user.clone());
        }
        for (g, role) in &a.grants {
            if let Some(role) = role.as_ref().filter(|x| !created_roles.contains(*x)) {
                r.skipped.push(format!(
                    "{}: {g} (the role {role} was on the target before this restore: not given)",
                    a.label
                ));
                continue;
            }
            match run(conn, g) {
                Ok(()) => r.granted += 1,
                Err(e) => r.failed.push(format!("{}: {g}: {e}", a.label)),
            }
        }
    }
    r
}

/// One view, trigger, routine or event: in its own session (and database
/// collation), its text in its own character set; a definer the target
/// has no account for is noted.
fn create_object(conn: &mut Conn, o: &PlannedObject, notes: &mut Vec<String>) -> Result<()> {
    let failed = |e: Error| Error::Replay(format!("creating {}: {e}", o.label));
    let sql = fidelity::encode_for(conn, &o.create, o.charset.as_deref())?;
    run(conn, &o.session).map_err(failed)?;
    if let Some((to, _)) = &o.collation {
        run(conn, to).map_err(failed)?;
    }
    conn.execute_bytes(&sql, &crate::schema::short(&o.create))
        .map_err(failed)?;
    for w in conn.text_rows("SHOW WARNINGS")? {
        // 1449: "The user specified as a definer ('x'@'y') does not exist".
        if w.get(1).cloned().flatten().as_deref() == Some("1449") {
            notes.push(format!(
                "{}: {} (re-create the account first, e.g. restore --with-users; until then it fails when used)",
                o.label,
                w.get(2).cloned().flatten().unwrap_or_default()
            ));
        }
    }
    if let Some((_, back)) = &o.collation {
        run(conn, back).map_err(failed)?;
    }
    Ok(())
}

/// Refuse to replay into the database the snapshot was taken from (same
/// server, same name), unless told to.
fn refuse_the_source(
    conn: &mut Conn,
    schema: &Schema,
    target: &crate::connect::Target,
    allow_source: bool,
) -> Result<()> {
    let identity = crate::dump::server_identity(conn)?;
    if format!("{identity}/{}", target.database) == schema.server.source && !allow_source {
        return Err(Error::Target(format!(
            "{} is the database this snapshot was taken from: refusing to overwrite it \
             (restore into another database, or pass --allow-source if that is really meant)",
            target.display()
        )));
    }
    Ok(())
}

/// An empty target, or, with `force`, one dropped to make room.
fn make_room(conn: &mut Conn, target: &crate::connect::Target, force: bool) -> Result<()> {
    let existing = conn.text_value(&format!(
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {q}) + \
         (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q}) + \
         (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q})",
        q = quote(&target.database)
    ))?;
    if existing == "0" || existing.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(Error::Target(format!(
            "the target database {} is not empty ({existing} tables/routines/events): \
             choose an empty one, or pass --force to drop and recreate it",
            target.display()
        )));
    }
    run(conn, &format!("DROP DATABASE {}", ident(&target.database)))
}

/// Loading the rows: what every loading connection shares.
struct Load<'a> {
    repo: &'a Repository<FullAccess>,
    index: &'a Index,
    opts: &'a ReplayOptions,
    schema: &'a Schema,
    plan: &'a Plan,
    db: &'a str,
    bars: &'a dyn ProgressBars,
}

impl Load<'_> {
    /// Every table's rows, `workers` connections in parallel, largest
    /// table first; a big table's secondary indexes and foreign keys after
    /// its rows.
    fn tables(&self, table_items: &HashMap<String, ManifestItem>, workers: usize) -> Result<()> {
        let mut queue: Vec<(&Table, &PlannedTable, &ManifestItem)> = self
            .schema
            .tables
            .iter()
            .zip(&self.plan.tables)
            .map(|(t, p)| {
                let item = table_items
                    .get(&t.item_name(&self.schema.database))
                    .ok_or_else(|| {
                        Error::Damaged(format!(
                            "the snapshot has the schema of table {} but not its rows",
                            t.name
                        ))
                    })?;
                Ok((t, p, item))
            })
            .collect::<Result<_>>()?;
        queue.sort_by_key(|(_, _, i)| std::cmp::Reverse(i.size));
        let queue = Mutex::new(queue.into_iter());
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = (0..workers)
                .map(|_| s.spawn(|| self.worker(&queue)))
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| Error::Internal("a replay thread panicked".into()))??;
            }
            Ok(())
        })
    }

    /// One loading connection: tables from the queue until it is empty.
    fn worker<'q>(
        &self,
        queue: &Mutex<impl Iterator<Item = (&'q Table, &'q PlannedTable, &'q ManifestItem)>>,
    ) -> Result<()> {
        let mut conn = connect(&self.opts.target)?;
        run(&mut conn, &format!("USE {}", self.db))?;
        session_setup(&mut conn, self.schema, self.plan)?;
        let max_packet: usize = conn
            .text_value("SELECT @@max_allowed_packet")?
            .parse()
            .unwrap_or(4 << 20);
        let batch = (max_packet / 2).clamp(64 << 10, 4 << 20);
        loop {
            let next = queue
                .lock()
                .map_err(|_| Error::Internal("replay queue poisoned".into()))?
                .next();
            let Some((table, planned, item)) = next else {
                return Ok(());
            };
            load_table(
                &mut conn, self.repo, self.index, table, item, batch, self.bars,
            )?;
            for alter in &planned.after_rows {
                run(&mut conn, alter).map_err(|e| {
                    Error::Replay(format!(
                        "adding the indexes and foreign keys of table {} after its rows: {e}",
                        table.name
                    ))
                })?;
            }
        }
    }
}

/// Stream one table's rows into it as multi-row INSERTs, each row line
/// checked first.
fn load_table(
    conn: &mut Conn,
    repo: &Repository<FullAccess>,
    index: &Index,
    table: &Table,
    item: &ManifestItem,
    batch: usize,
    bars: &dyn ProgressBars,
) -> Result<()> {
    let bar = bars.bytes(&table.name);
    let prefix = table.insert_prefix();
    let mut w = BatchWriter {
        conn,
        table: &table.name,
        columns: table.columns.len(),
        prefix_len: prefix.len(),
        stmt: Vec::with_capacity(batch + 64 * 1024),
        rows_in_stmt: 0,
        batch,
        line: 0,
        error: None,
    };
    w.stmt.extend_from_slice(prefix.as_bytes());
    let mut lines = Lines::new(|line: &[u8]| w.add_line(line));
    let r = repo
        .restore_item(index, item, &mut lines, &*bar)
        .map_err(Error::from)
        .and_then(|()| lines.finish().map_err(|e| Error::Damaged(e.to_string())));
    drop(lines);
    // A refused line or failed INSERT surfaces as a write error of the item.
    let r = match (r, w.error.take()) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(e),
        (Ok(()), None) => w.flush(),
    };
    r.map_err(|e| match e {
        Error::Refused(m) => Error::Refused(m),
        e @ (Error::Internal(_) | Error::Damaged(_) | Error::Store(_)) => e,
        e => Error::Replay(format!("loading table {}: {e}", table.name)),
    })?;
    bar.finish();
    Ok(())
}

/// Read every table of the MySQL backup in `items` back from `target` (a
/// database it was replayed into, perhaps earlier) and compare rows and
/// content checksums with the manifest, and count its views, triggers,
/// routines and events. Returns the report when everything matches; a
/// difference is an [`Error::Mismatch`] naming the tables.
pub fn verify_database(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    target: &MysqlOptions,
    connections: usize,
    expected: &ExpectedSchema,
) -> Result<ReplayReport> {
    let (schema, table_items) = load_schema(repo, index, items)?;
    let t = target.target()?;
    let objects_expected =
        schema.views.len() + schema.triggers.len() + schema.routines.len() + schema.events.len();
    let objects_created = count_objects(&mut connect(target)?, &t.database)?;
    let checked = Instant::now();
    let tables = check_tables(
        target,
        &schema,
        &table_items,
        &t.database,
        connections.max(1),
    )?;
    let schema_check = match expected.is_empty() {
        true => None,
        false => Some(fidelity::check_schema(
            &mut connect(target)?,
            &t.database,
            expected,
        )?),
    };
    let report = ReplayReport {
        source_database: schema.database.clone(),
        target: t.display(),
        tables,
        objects_created,
        objects_expected,
        load_seconds: 0.0,
        check_seconds: checked.elapsed().as_secs_f64(),
        rewritten: Vec::new(),
        notes: Vec::new(),
        schema: schema_check,
        accounts: None,
        expected: expected.clone(),
    };
    judge(&report)?;
    Ok(report)
}

/// What [`verify_database`] compares the target's tables' definitions
/// with: those of the MySQL backup in `items`, as `target`'s server prints
/// them (its views, triggers, routines and events are only counted).
pub fn expected_tables(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    target: &MysqlOptions,
) -> Result<ExpectedSchema> {
    let (schema, _) = load_schema(repo, index, items)?;
    let version = connect(target)?.text_value("SELECT VERSION()")?;
    Ok(ExpectedSchema::tables_of(&schema, &version))
}

/// The names the read-back check quotes into its SELECTs.
fn check_names(schema: &Schema) -> Result<()> {
    for t in &schema.tables {
        guard::check_name("a table", &t.name, false).map_err(|e| refused("the MySQL schema", e))?;
        for c in t.columns.iter().map(|c| &c.name).chain(&t.primary_key) {
            guard::check_name(&format!("a column of table {}", t.name), c, false)
                .map_err(|e| refused("the MySQL schema", e))?;
        }
    }
    Ok(())
}

/// Every table read back with the dump's own query and encoder.
fn check_tables(
    target: &MysqlOptions,
    schema: &Schema,
    table_items: &HashMap<String, ManifestItem>,
    database: &str,
    workers: usize,
) -> Result<Vec<TableCheck>> {
    let checks = Mutex::new(Vec::new());
    let tables = Mutex::new(schema.tables.iter());
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut conn = connect(target)?;
                    loop {
                        let next = tables
                            .lock()
                            .map_err(|_| Error::Internal("a lock was poisoned".into()))?
                            .next();
                        let Some(t) = next else { return Ok(()) };
                        let (rows, sha) = table_checksum(&mut conn, t, database)?;
                        let item = table_items.get(&t.item_name(&schema.database));
                        let check = TableCheck {
                            table: t.name.clone(),
                            rows_expected: item.map(rows_of).unwrap_or(0),
                            rows_found: rows,
                            checksum_matches: item.is_some_and(|i| sha == i.sha256),
                        };
                        checks
                            .lock()
                            .map_err(|_| Error::Internal("a lock was poisoned".into()))?
                            .push(check);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| Error::Internal("a check thread panicked".into()))??;
        }
        Ok(())
    })?;
    let mut tables = checks
        .into_inner()
        .map_err(|_| Error::Internal("a lock was poisoned".into()))?;
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(tables)
}

/// A mismatch error naming every table (and the object count) that differs.
fn judge(report: &ReplayReport) -> Result<()> {
    let bad: Vec<String> = report
        .tables
        .iter()
        .filter(|t| !t.checksum_matches || t.rows_found != t.rows_expected)
        .map(|t| {
            format!(
                "{} ({} rows, expected {}; checksum {})",
                t.table,
                t.rows_found,
                t.rows_expected,
                if t.checksum_matches { "ok" } else { "differs" }
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(Error::Mismatch(format!(
            "tables differ from the snapshot: {}",
            bad.join(", ")
        )));
    }
    if let Some(s) = report.schema.as_ref().filter(|s| !s.differences.is_empty()) {
        return Err(Error::Mismatch(format!(
            "the schema differs from the snapshot's: {}",
            s.differences.join("; ")
        )));
    }
    if report.objects_created != report.objects_expected {
        return Err(Error::Mismatch(format!(
            "{} of {} views/triggers/routines/events exist after the replay",
            report.objects_created, report.objects_expected
        )));
    }
    Ok(())
}

/// The session settings of a replay connection: the source's sql_mode
/// (checked; our literals use backslash escapes, so never
/// NO_BACKSLASH_ESCAPES, and the server must agree), no foreign-key or
/// unique checks during the load, UTC.
fn session_setup(conn: &mut Conn, schema: &Schema, plan: &Plan) -> Result<()> {
    run(
        conn,
        &format!(
            "SET SESSION sql_mode = {}, FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0, time_zone = '+00:00'",
            plan.session_mode
        ),
    )?;
    let mode = conn.text_value("SELECT @@SESSION.sql_mode")?;
    if mode.split(',').any(|m| m == "NO_BACKSLASH_ESCAPES") {
        return Err(Error::Target(
            "the target session keeps NO_BACKSLASH_ESCAPES, which replay cannot run under".into(),
        ));
    }
    if schema.tables.iter().any(|t| t.primary_key.is_empty()) {
        // MySQL 8.0.13+ (Aiven turns it on). MariaDB has no such variable.
        if let Err(e) = run(conn, "SET SESSION sql_require_primary_key = 0") {
            let msg = e.to_string();
            if !msg.contains("Unknown system variable") {
                let names: Vec<&str> = schema
                    .tables
                    .iter()
                    .filter(|t| t.primary_key.is_empty())
                    .map(|t| t.name.as_str())
                    .collect();
                return Err(Error::Target(format!(
                    "tables without a primary key ({}) cannot be created: the target requires primary keys \
                     and this user may not turn sql_require_primary_key off ({msg})",
                    names.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Every view, trigger, routine and event, in the order they are created:
/// views so that each comes after those it reads, then the rest.
pub(crate) fn objects_in_order(schema: &Schema) -> Vec<&Object> {
    views_in_order(&schema.views)
        .into_iter()
        .chain(&schema.triggers)
        .chain(&schema.routines)
        .chain(&schema.events)
        .collect()
}

/// Views in an order where each comes after the views it names.
pub(crate) fn views_in_order(views: &[Object]) -> Vec<&Object> {
    let mut left: Vec<&Object> = views.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let pos = left
            .iter()
            .position(|v| {
                !left.iter().any(|o| {
                    o.name != v.name
                        && v.create
                            .contains(&format!("`{}`", o.name.replace('`', "``")))
                })
            })
            .unwrap_or(0); // a cycle cannot exist among views; keep going regardless
        out.push(left.remove(pos));
    }
    out
}

fn count_objects(conn: &mut Conn, db: &str) -> Result<usize> {
    let q = quote(db);
    let n = conn.text_value(&format!(
        "SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {q}) + \
         (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {q}) + \
         (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q}) + \
         (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q})"
    ))?;
    Ok(n.parse().unwrap_or(0))
}

/// Rows and content checksum of a table, computed exactly as the dump
/// computes them (same SELECT, same encoder, same client).
fn table_checksum(conn: &mut Conn, t: &Table, db: &str) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let kinds: Vec<_> = t.columns.iter().map(|c| c.kind).collect();
    let mut buf = Vec::with_capacity(1 << 20);
    let n = conn
        .stream(&t.select(db), &mut |row| {
            push_row(&mut buf, &kinds, None, |i| Ok::<_, Error>(row.get(i)))?;
            if buf.len() >= 1 << 20 {
                hasher.update(&buf);
                buf.clear();
            }
            Ok(())
        })
        .map_err(|e| Error::Replay(format!("reading back table {}: {e}", t.name)))?;
    hasher.update(&buf);
    Ok((n, hex::encode(hasher.finalize())))
}

/// Turns the row lines of a table item into multi-row INSERTs of about
/// `batch` bytes and runs them; every line is checked against the row
/// grammar first (`guard::check_row`).
struct BatchWriter<'a> {
    conn: &'a mut Conn,
    table: &'a str,
    columns: usize,
    /// `stmt` starts with the INSERT prefix, this long.
    prefix_len: usize,
    stmt: Vec<u8>,
    rows_in_stmt: usize,
    batch: usize,
    /// Lines seen so far.
    line: u64,
    /// Why writing stopped (a refused line, a failed INSERT).
    error: Option<Error>,
}

impl BatchWriter<'_> {
    fn add_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.line += 1;
        if let Err(e) = guard::check_row(line, self.columns) {
            let err = refused(
                format!("line {} of table {}", self.line, self.table),
                format!("{e}, not a row as lifeboat writes them"),
            );
            let msg = err.to_string();
            self.error = Some(err);
            return Err(std::io::Error::other(msg));
        }
        if self.rows_in_stmt > 0 {
            self.stmt.push(b',');
        }
        self.stmt.extend_from_slice(line);
        self.rows_in_stmt += 1;
        if self.stmt.len() >= self.batch {
            if let Err(e) = self.flush() {
                let msg = e.to_string();
                self.error = Some(e);
                return Err(std::io::Error::other(msg));
            }
        }
        Ok(())
    }

    /// Run the statement so far, if it has rows.
    fn flush(&mut self) -> Result<()> {
        if self.rows_in_stmt == 0 {
            return Ok(());
        }
        self.rows_in_stmt = 0;
        // Row data never goes into messages: the statement is named by its table.
        let what = format!("INSERT INTO {}", ident(self.table));
        let r = self.conn.execute_bytes(&self.stmt, &what);
        self.stmt.truncate(self.prefix_len);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_testkit::mariadb::{self, TestDb};

    fn options(db: &str) -> MysqlOptions {
        MysqlOptions {
            url: mariadb::url(db),
            password: None,
            ca_file: None,
            ssl_mode: Some(crate::connect::SslMode::Disabled),
        }
    }

    /// The guarantee under every check: a replay connection runs one
    /// statement per call, and the server itself refuses a second one.
    #[test]
    fn the_server_refuses_a_second_statement_on_a_replay_connection() {
        let target = TestDb::new("onestmt");
        let evil = format!("{}_evil", target.name);
        let mut conn = connect(&options(&target.name)).expect("connect");
        assert_eq!(
            conn.announced() & crate::wire::NEVER,
            0,
            "CLIENT_MULTI_STATEMENTS or CLIENT_LOCAL_FILES announced"
        );
        run(&mut conn, &format!("USE {}", ident(&target.name))).expect("use");
        for sql in [
            format!("SELECT 1; CREATE DATABASE {}", ident(&evil)),
            format!("CREATE TABLE t (a int); CREATE DATABASE {}", ident(&evil)),
            format!("DO 1;CREATE DATABASE {}", ident(&evil)),
        ] {
            let e = run(&mut conn, &sql).expect_err(&sql).to_string();
            assert!(e.contains("error 1064") && e.contains("syntax"), "{e}");
        }
        // A trailing ';' alone is one statement.
        run(&mut conn, "DO 1;").expect("one statement");
        let dbs = conn.text_rows("SHOW DATABASES").expect("list");
        assert!(
            !dbs.iter()
                .any(|r| r.first().cloned().flatten().as_deref() == Some(evil.as_str())),
            "{evil} exists"
        );
        assert_eq!(
            mariadb::sql(None, &format!("SHOW DATABASES LIKE '{evil}'")).trim(),
            ""
        );
        // LOAD DATA LOCAL cannot reach a client file.
        let e = run(
            &mut conn,
            "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
        )
        .expect_err("local infile")
        .to_string();
        assert!(!e.is_empty());
    }

    #[test]
    fn views_come_after_the_views_they_use() {
        let v = |name: &str, create: &str| Object {
            name: name.into(),
            kind: "VIEW".into(),
            sql_mode: String::new(),
            create: create.into(),
            ..Default::default()
        };
        let views = vec![
            v("a_top", "CREATE VIEW `a_top` AS select * from `m_mid`"),
            v("m_mid", "CREATE VIEW `m_mid` AS select * from `z_base`"),
            v("z_base", "CREATE VIEW `z_base` AS select 1"),
        ];
        let order: Vec<&str> = views_in_order(&views)
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(order, ["z_base", "m_mid", "a_top"]);
    }
}
