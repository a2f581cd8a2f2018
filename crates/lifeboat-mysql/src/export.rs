//! The escape hatch: a snapshot's MySQL backup as one plain SQL file that
//! the stock client loads (`mariadb DB < dump.sql`, `mysql DB < dump.sql`).

use std::io::Write;

use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, Repository};

use crate::encode::ident;
use crate::encode::Lines;
use crate::error::{Error, Result};
use crate::fidelity::{self, Known};
use crate::guard::{self, Rewrite, Scope};
use crate::lexer::Dialect;
use crate::replay::{load_schema, objects_in_order, plan_accounts};
use crate::schema::{quote, sql_mode_literal};

/// Rows per INSERT statement are capped at about this many bytes, well
/// under the smallest common `max_allowed_packet` (4 MiB on older servers).
const STATEMENT_BYTES: usize = 1 << 20;

/// How `export` writes a snapshot.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Write object bodies that name other databases or use statements
    /// replay refuses (`--trust-object-bodies`, as for `restore`). Heads,
    /// tables, rows and the one-statement rule are checked whatever this
    /// says.
    pub trust_object_bodies: bool,
}

/// A snapshot's text, checked before it reaches a file that someone will
/// feed to the stock client as an administrator: the same guard as
/// replay's (see `guard`), for a file that may be loaded into any database
/// of any server ([`Scope::anywhere`]), and nothing the client itself
/// would take for one of its commands.
fn refused(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
    Error::Refused(format!(
        "{what}: {why}; refusing to export this snapshot (its MySQL schema or rows are damaged, \
         or were forged by whoever could write to the repository)"
    ))
}

/// A delimiter for the client that `text` does not contain, so that no
/// part of the text can end its statement early.
fn delimiter_for(text: &str) -> String {
    if let Some(d) = [";;", "$$", "//", "@@"]
        .into_iter()
        .find(|d| !text.contains(d))
    {
        return d.to_string();
    }
    let mut d = String::from("@@");
    while text.contains(d.as_str()) {
        d.push('$');
    }
    d
}

/// Write the MySQL backup in `items` to `out` as SQL, every text checked.
pub fn export(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let (schema, table_items) = load_schema(repo, index, items)?;
    let io = |e: std::io::Error| Error::Local(format!("writing the SQL file: {e}"));
    let ordered = objects_in_order(&schema);
    for mode in std::iter::once(&schema.server.sql_mode).chain(ordered.iter().map(|o| &o.sql_mode))
    {
        guard::check_sql_mode(mode).map_err(|e| refused("the MySQL schema", e))?;
    }
    let scope = Scope::anywhere(
        &schema.database,
        schema.tables.iter().map(|t| t.name.clone()).collect(),
    );
    let d = Dialect::of_unexpanded_sql_mode(&schema.server.sql_mode);
    let mut creates = Vec::with_capacity(schema.tables.len());
    for t in &schema.tables {
        let what = || format!("the CREATE text of table {}", t.name);
        let create =
            guard::check_table(&t.create, &t.name, d, &scope).map_err(|e| refused(what(), e))?;
        guard::check_client_text(&create, d).map_err(|e| refused(what(), e))?;
        creates.push(create);
    }
    let rw = Rewrite::default();
    let mut objects = Vec::new();
    for o in ordered {
        let what = || format!("the CREATE text of {} {}", o.kind.to_lowercase(), o.name);
        guard::check_name(&format!("a {}", o.kind.to_lowercase()), &o.name, false)
            .map_err(|e| refused("the MySQL schema", e))?;
        let od = Dialect::of_unexpanded_sql_mode(&o.sql_mode);
        let trust = opts.trust_object_bodies && !o.kind.eq_ignore_ascii_case("EVENT");
        let create = guard::check_object(o, od, &scope, trust, &rw).map_err(|e| {
            let hint = match trust || o.kind.eq_ignore_ascii_case("EVENT") {
                true => "",
                false => " (if this snapshot is certainly yours, --trust-object-bodies exports such bodies)",
            };
            refused(what(), format!("{e}{hint}"))
        })?;
        guard::check_client_text(&create, od).map_err(|e| refused(what(), e))?;
        objects.push((o, create));
    }

    // MariaDB's client (10.11.8 and later) refuses its own commands from
    // here on; other clients read a comment.
    write!(
        out,
        "/*M!999999\\- enable the sandbox mode */\n\
         -- lifeboat export of database {} ({} server {})\n\
         -- Load into an empty database: mariadb TARGET_DB < this-file (or mysql).\n\
         SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS = 0;\nSET UNIQUE_CHECKS = 0;\nSET time_zone = '+00:00';\n\
         SET SESSION sql_mode = {};\n",
        schema.database.escape_debug(),
        schema.server.flavor.escape_debug(),
        schema.server.version.escape_debug(),
        sql_mode_literal(&schema.server.sql_mode)
    )
    .map_err(io)?;
    if schema.tables.iter().any(|t| t.primary_key.is_empty()) {
        writeln!(out, "/*!80013 SET SESSION sql_require_primary_key = 0 */;").map_err(io)?;
    }
    for (t, create) in schema.tables.iter().zip(&creates) {
        writeln!(out, "\nDROP TABLE IF EXISTS {};\n{create};", ident(&t.name)).map_err(io)?;
    }
    for t in &schema.tables {
        let item = table_items
            .get(&t.item_name(&schema.database))
            .ok_or_else(|| {
                Error::Damaged(format!("the snapshot lacks the rows of table {}", t.name))
            })?;
        let mut rows = SqlRows {
            out: &mut *out,
            prefix: t.insert_prefix(),
            in_stmt: 0,
            columns: t.columns.len(),
            line: 0,
            refused: None,
        };
        let mut lines = Lines::new(|line: &[u8]| rows.line(line));
        let fed = repo
            .restore_item(index, item, &mut lines, &NoProgress)
            .map_err(Error::from)
            .and_then(|_| lines.finish().map_err(io));
        drop(lines);
        if let Some(why) = rows.refused.take() {
            return Err(refused(
                format!("line {} of table {}", rows.line, t.name),
                why,
            ));
        }
        fed?;
        rows.end().map_err(io)?;
    }
    // Objects without their definers (whoever loads the file owns them, as
    // with MySQL Shell's strip_definers), each in the session it was
    // created in; bodies contain ';', so the client gets a delimiter that
    // the text does not hold.
    let mut delimiter = String::from(";");
    for (o, create) in &objects {
        let mut set = vec![format!(
            "sql_mode = {}",
            crate::schema::object_sql_mode_literal(&o.sql_mode)
        )];
        for (var, v) in [
            ("character_set_client", &o.character_set_client),
            ("collation_connection", &o.collation_connection),
        ] {
            // The file is UTF-8: another client character set only where
            // the text reads the same in it.
            // (A collation's name starts with its character set's.)
            let fits = |v: &str| {
                let cs = v.split('_').next().unwrap_or_default();
                fidelity::safe_client_charset(cs)
                    && (o.create.is_ascii() || v.to_ascii_lowercase().starts_with("utf8"))
            };
            if let Some(v) = v.as_deref().filter(|v| Known::name_ok(v) && fits(v)) {
                set.push(format!("{var} = {v}"));
            }
        }
        if let Some(tz) = &o.time_zone {
            if !fidelity::valid_time_zone(tz) {
                return Err(refused(
                    "the MySQL schema",
                    format!(
                        "it gives the {} {} the time zone {:?}, which is not a time zone",
                        o.kind.to_lowercase(),
                        o.name,
                        crate::schema::short(tz)
                    ),
                ));
            }
            set.push(format!("time_zone = {}", quote(tz)));
        }
        let want = delimiter_for(create);
        if want != delimiter {
            writeln!(out, "\nDELIMITER {want}").map_err(io)?;
            delimiter = want;
        }
        // The delimiter on its own line: a body may end in a `--` comment.
        writeln!(
            out,
            "SET SESSION {} {delimiter}\n{create}\n{delimiter}",
            set.join(", ")
        )
        .map_err(io)?;
    }
    if delimiter != ";" {
        writeln!(out, "DELIMITER ;").map_err(io)?;
    }
    writeln!(
        out,
        "SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS = 1;\nSET UNIQUE_CHECKS = 1;"
    )
    .map_err(io)?;
    Ok(())
}

/// How `export --users-to` writes the snapshot's accounts.
#[derive(Debug, Clone, Default)]
pub struct AccountsExportOptions {
    /// The database the grants name (the one the SQL file will be loaded
    /// into); the snapshot's own by default.
    pub grants_on: Option<String>,
    /// Also server-wide privileges and grants on other databases, as
    /// `restore --with-global-grants`.
    pub with_global_grants: bool,
}

/// The accounts of the snapshot's `_accounts` item as SQL for the stock
/// client, planned and checked as `restore --with-users` does (roles, then
/// users with their password hashes, then grants on one database). The
/// file holds password hashes: the caller writes it with mode 0600 and
/// never to a terminal. Returns what was left out, each named with why
/// (never a hash).
///
/// A file cannot ask the server what exists, so each account is a plain
/// `CREATE USER` / `CREATE ROLE`: if one exists, the client stops there,
/// before any grant could reach an account this snapshot did not create.
pub fn export_accounts(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    opts: &AccountsExportOptions,
    out: &mut dyn Write,
) -> Result<Vec<String>> {
    let (schema, _) = load_schema(repo, index, items)?;
    let grants_on = opts.grants_on.as_deref().unwrap_or(&schema.database);
    guard::check_name("the --grants-on database", grants_on, true).map_err(Error::Invalid)?;
    let (planned, skipped) = plan_accounts(
        repo,
        index,
        items,
        &schema,
        grants_on,
        opts.with_global_grants,
    )?;
    let io = |e: std::io::Error| Error::Local(format!("writing the accounts file: {e}"));
    let d = Dialect::default();
    let mut roles = Vec::new();
    let mut users = Vec::new();
    let mut grants = Vec::new();
    for a in &planned {
        let what = || format!("the account {}", a.label.escape_debug());
        guard::check_client_text(&a.create, d).map_err(|e| refused(what(), e))?;
        match a.role {
            true => roles.push(&a.create),
            false => users.push(&a.create),
        }
        for (g, _) in &a.grants {
            guard::check_client_text(g, d).map_err(|e| refused(what(), e))?;
            grants.push(g);
        }
    }
    write!(
        out,
        "/*M!999999\\- enable the sandbox mode */\n\
         -- lifeboat export of the accounts of database {} (grants on {}).\n\
         -- This file holds password hashes: keep it like a password.\n\
         -- Load as an administrator: mariadb < this-file (or mysql). Each account is created\n\
         -- with a plain CREATE: if one exists, the client stops there, before any grant.\n\
         -- Never load it with --force (the grants would reach the existing account).\n\
         SET SESSION sql_mode = '';\n",
        schema.database.escape_debug(),
        grants_on.escape_debug(),
    )
    .map_err(io)?;
    for stmt in roles.into_iter().chain(users).chain(grants) {
        writeln!(out, "{stmt};").map_err(io)?;
    }
    Ok(skipped)
}

/// Row lines → `INSERT ... VALUES (...),(...);` statements, each line
/// checked to be what the dump's encoder writes.
struct SqlRows<'a> {
    out: &'a mut dyn Write,
    prefix: String,
    in_stmt: usize,
    columns: usize,
    /// Lines seen so far.
    line: u64,
    /// Why the last line was refused (nothing of it was written).
    refused: Option<String>,
}

impl SqlRows<'_> {
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.line += 1;
        if let Err(e) = guard::check_row(line, self.columns) {
            self.refused = Some(e);
            return Err(std::io::Error::other("a row line was refused"));
        }
        if self.in_stmt == 0 {
            self.out.write_all(self.prefix.as_bytes())?;
        } else {
            self.out.write_all(b",\n")?;
        }
        self.out.write_all(line)?;
        self.in_stmt += line.len() + 2;
        if self.in_stmt >= STATEMENT_BYTES {
            self.out.write_all(b";\n")?;
            self.in_stmt = 0;
        }
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        if self.in_stmt > 0 {
            self.out.write_all(b";\n")?;
            self.in_stmt = 0;
        }
        Ok(())
    }
}
