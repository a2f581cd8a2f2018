//! The escape hatch: a snapshot's MySQL backup as one plain SQL file that
//! the stock client loads (`mariadb DB < dump.sql`, `mysql DB < dump.sql`).

use std::io::Write;

use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, Repository};

use crate::encode::ident;
use crate::encode::Lines;
use crate::error::{Error, Result};
use crate::fidelity::Known;
use crate::replay::{load_schema, views_in_order};
use crate::schema::{quote, sql_mode_literal, strip_definer};

/// Rows per INSERT statement are capped at about this many bytes, well
/// under the smallest common `max_allowed_packet` (4 MiB on older servers).
const STATEMENT_BYTES: usize = 1 << 20;

/// Write the MySQL backup in `items` to `out` as SQL.
pub fn export(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    out: &mut dyn Write,
) -> Result<()> {
    let (schema, table_items) = load_schema(repo, index, items)?;
    let io = |e: std::io::Error| Error::Local(format!("writing the SQL file: {e}"));

    write!(
        out,
        "-- lifeboat export of database {} ({} server {})\n\
         -- Load into an empty database: mariadb TARGET_DB < this-file (or mysql).\n\
         SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS = 0;\nSET UNIQUE_CHECKS = 0;\nSET time_zone = '+00:00';\n\
         SET SESSION sql_mode = {};\n",
        schema.database,
        schema.server.flavor,
        schema.server.version,
        sql_mode_literal(&schema.server.sql_mode)
    )
    .map_err(io)?;
    if schema.tables.iter().any(|t| t.primary_key.is_empty()) {
        writeln!(out, "/*!80013 SET SESSION sql_require_primary_key = 0 */;").map_err(io)?;
    }
    for t in &schema.tables {
        writeln!(
            out,
            "\nDROP TABLE IF EXISTS {};\n{};",
            ident(&t.name),
            t.create
        )
        .map_err(io)?;
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
        };
        let mut lines = Lines::new(|line: &[u8]| rows.line(line));
        repo.restore_item(index, item, &mut lines, &NoProgress)?;
        lines.finish().map_err(io)?;
        rows.end().map_err(io)?;
    }
    // Objects without their definers (whoever loads the file owns them, as
    // with MySQL Shell's strip_definers), each in the session it was
    // created in; bodies contain ';', so the client needs another delimiter.
    writeln!(out, "\nDELIMITER ;;").map_err(io)?;
    for o in views_in_order(&schema.views)
        .into_iter()
        .chain(&schema.triggers)
        .chain(&schema.routines)
        .chain(&schema.events)
    {
        let mut set = vec![format!("sql_mode = {}", sql_mode_literal(&o.sql_mode))];
        for (var, v) in [
            ("character_set_client", &o.character_set_client),
            ("collation_connection", &o.collation_connection),
        ] {
            // The file is UTF-8: another client character set only where
            // the text reads the same in it.
            let fits = |v: &str| o.create.is_ascii() || v.to_ascii_lowercase().starts_with("utf8");
            if let Some(v) = v.as_deref().filter(|v| Known::name_ok(v) && fits(v)) {
                set.push(format!("{var} = {v}"));
            }
        }
        if let Some(tz) = &o.time_zone {
            set.push(format!("time_zone = {}", quote(tz)));
        }
        writeln!(
            out,
            "SET SESSION {} ;;\n{} ;;",
            set.join(", "),
            strip_definer(&o.create)
        )
        .map_err(io)?;
    }
    writeln!(
        out,
        "DELIMITER ;\nSET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS = 1;\nSET UNIQUE_CHECKS = 1;"
    )
    .map_err(io)?;
    Ok(())
}

/// Row lines → `INSERT ... VALUES (...),(...);` statements.
struct SqlRows<'a> {
    out: &'a mut dyn Write,
    prefix: String,
    in_stmt: usize,
}

impl SqlRows<'_> {
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
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
