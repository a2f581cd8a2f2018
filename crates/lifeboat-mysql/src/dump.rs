//! The dump: one connection, one consistent snapshot, every table streamed
//! row by row in primary-key order into the backup session.

use futures_util::TryStreamExt;
use lifeboat_store::{Access, BackupSession, ProgressBars};
use sqlx::Row;

use crate::connect::MysqlOptions;
use crate::encode::push_value;
use crate::error::{Context, Error, Result};
use crate::schema::{self, schema_item, text_value, SOURCE};

/// Which tables to dump: `include` (empty = all) minus `exclude`. Names
/// may end in `*` to match a prefix.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// Only these tables (and views).
    pub include: Vec<String>,
    /// Not these.
    pub exclude: Vec<String>,
}

impl TableFilter {
    fn matches(pattern: &str, name: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        }
    }

    /// True when `name` is dumped.
    pub fn keep(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| Self::matches(p, name)))
            && !self.exclude.iter().any(|p| Self::matches(p, name))
    }
}

/// Options of [`dump`].
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// The source database.
    pub mysql: MysqlOptions,
    /// Table selection.
    pub filter: TableFilter,
}

/// What a dump stored.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DumpReport {
    /// The database.
    pub database: String,
    /// Server version.
    pub server_version: String,
    /// `(table, rows, bytes)`.
    pub tables: Vec<(String, u64, u64)>,
    /// Tables without a primary key (they replay only where the session may
    /// turn `sql_require_primary_key` off).
    pub tables_without_primary_key: Vec<String>,
    /// Views, triggers, routines and events.
    pub objects: usize,
}

/// Flush rows to the store in pieces of about this size.
const PUSH_BYTES: usize = 1 << 20;

/// Dump the database into `session`: a `<db>/<table>` item per table and
/// the `<db>/_schema` item. An error (connection lost, query killed) leaves
/// the session to be aborted by the caller: no snapshot.
pub fn dump<A: Access>(
    session: &mut BackupSession<A>,
    opts: &DumpOptions,
    bars: &dyn ProgressBars,
) -> Result<DumpReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("starting the MySQL client: {e}")))?;
    rt.block_on(dump_async(session, opts, bars))
}

async fn dump_async<A: Access>(
    session: &mut BackupSession<A>,
    opts: &DumpOptions,
    bars: &dyn ProgressBars,
) -> Result<DumpReport> {
    let target = opts.mysql.target()?;
    let db = target.database.clone();
    let mut conn = opts.mysql.connect(Some(&db)).await?;
    // One connection, one snapshot: every table is read inside this
    // REPEATABLE READ transaction, so the dump is one point in time.
    for stmt in [
        "SET SESSION net_write_timeout = 3600, net_read_timeout = 3600, wait_timeout = 86400",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ] {
        sqlx::raw_sql(stmt)
            .execute(&mut conn)
            .await
            .context(|| stmt.to_string())?;
    }
    let identity = server_identity(&mut conn).await?;
    let schema = schema::read(&mut conn, &db, format!("{identity}/{db}"), &|t| {
        opts.filter.keep(t)
    })
    .await?;
    let mut report = DumpReport {
        database: db.clone(),
        server_version: schema.server.version.clone(),
        objects: schema.views.len()
            + schema.triggers.len()
            + schema.routines.len()
            + schema.events.len(),
        ..Default::default()
    };
    for table in &schema.tables {
        if table.primary_key.is_empty() {
            tracing::warn!(
                "table {} has no primary key: it is dumped in full-row order and replays only where \
                 sql_require_primary_key can be turned off",
                table.name
            );
            report.tables_without_primary_key.push(table.name.clone());
        }
        let bar = bars.bytes(&table.name);
        let mut item = session.item(SOURCE, &table.item_name(&db), "table", &*bar)?;
        let select = table.select(&db);
        let mut rows = sqlx::raw_sql(&select).fetch(&mut conn);
        let mut buf = Vec::with_capacity(PUSH_BYTES + 64 * 1024);
        let mut count = 0u64;
        let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
        while let Some(row) = rows
            .try_next()
            .await
            .context(|| format!("reading table {}", table.name))?
        {
            buf.push(b'(');
            for (i, kind) in kinds.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                let v = row
                    .try_get_unchecked::<Option<&[u8]>, _>(i)
                    .context(|| format!("reading a value of table {}", table.name))?;
                push_value(&mut buf, *kind, v);
            }
            buf.extend_from_slice(b")\n");
            count += 1;
            if buf.len() >= PUSH_BYTES {
                item.push(&buf)?;
                buf.clear();
            }
        }
        drop(rows);
        item.push(&buf)?;
        let stored = item.finish(serde_json::json!({ "rows": count, "columns": kinds.len() }))?;
        bar.finish();
        report.tables.push((table.name.clone(), count, stored.size));
    }
    // The schema goes last: written after every table, it can only exist
    // in a snapshot whose tables all exist too (the commit is atomic anyway).
    let json = serde_json::to_vec_pretty(&schema).map_err(|e| Error::Invalid(e.to_string()))?;
    let bar = bars.bytes("schema");
    let mut item = session.item(SOURCE, &schema_item(&db), "schema", &*bar)?;
    item.push(&json)?;
    item.finish(serde_json::json!({ "tables": schema.tables.len(), "objects": report.objects }))?;
    sqlx::raw_sql("COMMIT")
        .execute(&mut conn)
        .await
        .context(|| "COMMIT".into())?;
    session.set_source_facts(
        SOURCE,
        serde_json::json!({
            "database": db,
            "server_version": schema.server.version,
            "flavor": schema.server.flavor,
            "sql_mode": schema.server.sql_mode,
            "gtid": schema.server.gtid,
            "tables": report.tables.len(),
            "rows": report.tables.iter().map(|t| t.1).sum::<u64>(),
            "tables_without_primary_key": report.tables_without_primary_key,
        }),
    );
    Ok(report)
}

/// Who the server is, to recognise it again at replay time (a replay onto
/// the source is refused): `@@server_uuid` on MySQL, host and port on MariaDB.
pub(crate) async fn server_identity(conn: &mut sqlx::MySqlConnection) -> Result<String> {
    let uuid = text_value(conn, "SELECT @@server_uuid")
        .await
        .unwrap_or_default();
    if !uuid.is_empty() {
        return Ok(uuid);
    }
    let rows = schema::text_rows(conn, "SELECT @@hostname, @@port").await?;
    let r = rows.into_iter().next().unwrap_or_default();
    Ok(format!(
        "{}:{}",
        r.first().cloned().flatten().unwrap_or_default(),
        r.get(1).cloned().flatten().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f = TableFilter {
            include: vec![],
            exclude: vec!["tmp_*".into(), "sessions".into()],
        };
        assert!(f.keep("patients"));
        assert!(!f.keep("tmp_import"));
        assert!(!f.keep("sessions"));
        let f = TableFilter {
            include: vec!["app*".into()],
            exclude: vec![],
        };
        assert!(f.keep("appointments") && !f.keep("patients"));
    }
}
