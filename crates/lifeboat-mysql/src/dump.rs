//! The dump: one connection, one consistent snapshot, every table streamed
//! row by row in primary-key order into the backup session.

use futures_util::TryStreamExt;
use lifeboat_store::delta::PatchBuilder;
use lifeboat_store::{Access, BackupSession, BlobId, ItemWriter, ProgressBars};

use crate::cache::{self, Segment};
use crate::connect::MysqlOptions;
use crate::encode::push_row;
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
    /// Where the row-hash cache lives (see [`commit_cache`]); `None` stores
    /// every changed segment whole.
    pub cache_dir: Option<std::path::PathBuf>,
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

/// Segments: a run of rows ends after a row whose primary-key hash is 0
/// modulo this (about this many rows a segment), so boundaries depend on
/// keys only and stay put when rows change.
const AVG_ROWS: u64 = 2048;
/// Bounds, so a segment is neither tiny nor huge whatever the keys.
const MIN_ROWS: usize = 64;
const MAX_ROWS: usize = 32768;
const MAX_BYTES: usize = 4 << 20;
/// A changed segment is stored as a patch on its previous version at most
/// this many times in a row; then whole again, so restores stay fast.
const MAX_DEPTH: u8 = 8;

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
    let target = opts.mysql.target()?;
    let db = target.database.clone();
    // One connection, one snapshot: every table is read inside this
    // REPEATABLE READ transaction, so the dump is one point in time.
    let (mut conn, identity) =
        rt.block_on(async {
            let mut conn = opts.mysql.connect(Some(&db)).await?;
            for stmt in [
            "SET SESSION net_write_timeout = 3600, net_read_timeout = 3600, wait_timeout = 86400",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ] {
            sqlx::raw_sql(stmt).execute(&mut conn).await.context(|| stmt.to_string())?;
        }
            let identity = server_identity(&mut conn).await?;
            Ok::<_, Error>((conn, identity))
        })?;
    let repo_id = session.repository_id().to_string();
    let row_key = session.derived_key("mysql row hash");
    let schema = rt.block_on(schema::read(
        &mut conn,
        &db,
        format!("{identity}/{db}"),
        &|t| opts.filter.keep(t),
    ))?;
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
        let cache_dir = opts
            .cache_dir
            .as_ref()
            .map(|root| cache::folder(root, &repo_id, &db));
        let mut item = session.item(SOURCE, &table.item_name(&db), "table", &*bar)?;
        // Two threads per table: this one reads and encodes rows; the other
        // hashes them, cuts segments and hands them to the store.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
        let count = std::thread::scope(|s| -> Result<u64> {
            let item = &mut item;
            let consumer = s.spawn(move || -> Result<()> {
                let mut segmenter = Segmenter::new(row_key, cache_dir.as_deref(), &table.name);
                for batch in rx {
                    for (line, pk) in batch.rows() {
                        segmenter.push_row(line, pk, item)?;
                    }
                }
                segmenter.finish(item)
            });
            let read = rt.block_on(read_table(&mut conn, table, &db, tx));
            consumer
                .join()
                .map_err(|_| Error::Invalid("the segmenting thread panicked".into()))??;
            read
        })?;
        let stored =
            item.finish(serde_json::json!({ "rows": count, "columns": table.columns.len() }))?;
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
    rt.block_on(sqlx::raw_sql("COMMIT").execute(&mut conn))
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

/// Encoded rows on their way from the reading thread to the segmenter.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    line_ends: Vec<usize>,
    keys: Vec<u8>,
    key_ends: Vec<usize>,
}

/// Send rows to the segmenter in batches of about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

impl Batch {
    fn rows(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut l = 0;
        let mut k = 0;
        self.line_ends
            .iter()
            .zip(&self.key_ends)
            .map(move |(&le, &ke)| {
                let r = (&self.lines[l..le], &self.keys[k..ke]);
                l = le;
                k = ke;
                r
            })
    }
}

/// Read one table in key order, encode each row, and send batches.
async fn read_table(
    conn: &mut sqlx::MySqlConnection,
    table: &crate::schema::Table,
    db: &str,
    tx: std::sync::mpsc::SyncSender<Batch>,
) -> Result<u64> {
    let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
    // Which columns form the segment key: the primary key, or all.
    let is_key: Vec<bool> = if table.primary_key.is_empty() {
        vec![true; kinds.len()]
    } else {
        table
            .columns
            .iter()
            .map(|c| table.primary_key.contains(&c.name))
            .collect()
    };
    let select = table.select(db);
    let mut rows = sqlx::raw_sql(&select).fetch(&mut *conn);
    let mut batch = Batch::default();
    let mut count = 0u64;
    let stopped = || Error::Invalid(format!("storing table {} stopped", table.name));
    while let Some(row) = rows
        .try_next()
        .await
        .context(|| format!("reading table {}", table.name))?
    {
        push_row(
            &mut batch.lines,
            &row,
            &kinds,
            Some((&is_key, &mut batch.keys)),
        )
        .context(|| format!("reading a value of table {}", table.name))?;
        batch.line_ends.push(batch.lines.len());
        batch.key_ends.push(batch.keys.len());
        count += 1;
        if batch.lines.len() >= BATCH_BYTES {
            tx.send(std::mem::take(&mut batch)).map_err(|_| stopped())?;
        }
    }
    if !batch.line_ends.is_empty() {
        tx.send(batch).map_err(|_| stopped())?;
    }
    Ok(count)
}

/// Cuts a table's rows into segments and stores each whole, unchanged
/// (deduplicated), or as a patch on its previous version.
struct Segmenter {
    /// Keyed row and key hashes: SipHash-1-3 (a keyed PRF, 64-bit), fast
    /// on short rows; the key is derived from the repository's dedup secret.
    sip: (u64, u64),
    buf: Vec<u8>,
    hashes: Vec<u64>,
    key: Option<u64>,
    previous: Option<cache::Reader>,
    next: Option<cache::Writer>,
}

impl Segmenter {
    fn new(row_key: [u8; 32], cache_dir: Option<&std::path::Path>, table: &str) -> Self {
        Segmenter {
            sip: (
                u64::from_le_bytes([
                    row_key[0], row_key[1], row_key[2], row_key[3], row_key[4], row_key[5],
                    row_key[6], row_key[7],
                ]),
                u64::from_le_bytes([
                    row_key[8],
                    row_key[9],
                    row_key[10],
                    row_key[11],
                    row_key[12],
                    row_key[13],
                    row_key[14],
                    row_key[15],
                ]),
            ),
            buf: Vec::with_capacity(1 << 20),
            hashes: Vec::with_capacity(AVG_ROWS as usize * 2),
            key: None,
            previous: cache_dir.map(|d| cache::Reader::open(d, table)),
            next: cache_dir.map(|d| cache::Writer::create(d, table)),
        }
    }

    fn hash(&self, data: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.sip.0, self.sip.1);
        h.write(data);
        h.finish()
    }

    fn push_row<A: Access>(
        &mut self,
        line: &[u8],
        pk: &[u8],
        item: &mut ItemWriter<'_, A>,
    ) -> Result<()> {
        let pk_hash = self.hash(pk);
        if self.key.is_none() {
            self.key = Some(pk_hash);
        }
        self.hashes.push(self.hash(line));
        self.buf.extend_from_slice(line);
        let n = self.hashes.len();
        if (n >= MIN_ROWS && pk_hash.is_multiple_of(AVG_ROWS))
            || n >= MAX_ROWS
            || self.buf.len() >= MAX_BYTES
        {
            self.store(item)?;
        }
        Ok(())
    }

    fn finish<A: Access>(mut self, item: &mut ItemWriter<'_, A>) -> Result<()> {
        if !self.hashes.is_empty() {
            self.store(item)?;
        }
        if let Some(w) = self.next.take() {
            w.finish();
        }
        Ok(())
    }

    fn store<A: Access>(&mut self, item: &mut ItemWriter<'_, A>) -> Result<()> {
        let key = self.key.take().unwrap_or(0);
        let (depth, delta) = match self.previous.as_mut().and_then(|p| p.find(key)) {
            // Unchanged: the same content has the same blob id, so it dedups.
            Some(old) if old.hashes == self.hashes => (old.depth, None),
            Some(old) if old.depth < MAX_DEPTH => {
                match make_patch(&old.hashes, &self.hashes, &self.buf) {
                    Some(patch) => (old.depth + 1, Some((old.blob, patch))),
                    None => (0, None),
                }
            }
            _ => (0, None),
        };
        let blob: BlobId = item.push_blob(&self.buf, delta)?;
        if let Some(w) = self.next.as_mut() {
            w.add(&Segment {
                key,
                blob,
                depth,
                hashes: std::mem::take(&mut self.hashes),
            });
        }
        self.hashes.clear();
        self.buf.clear();
        Ok(())
    }
}

/// A patch turning the old segment (known only by its row hashes) into the
/// new one, or `None` when changed rows are over half of it (store whole).
fn make_patch(old: &[u64], new: &[u64], data: &[u8]) -> Option<Vec<u8>> {
    let mut at: std::collections::HashMap<u64, usize> =
        std::collections::HashMap::with_capacity(old.len());
    for (i, h) in old.iter().enumerate().rev() {
        at.insert(*h, i);
    }
    let mut patch = PatchBuilder::new();
    let mut start = 0;
    for h in new {
        let end = start
            + data[start..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| p + 1)?;
        match at.get(h) {
            Some(&i) => patch.copy(i),
            None => patch.literal(&data[start..end]),
        }
        start = end;
    }
    if patch.literal_bytes() * 2 > data.len() {
        return None;
    }
    Some(patch.finish())
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
