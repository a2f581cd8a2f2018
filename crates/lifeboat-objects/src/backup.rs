//! Backing up a bucket or a directory into a backup session.
//!
//! ```text
//! list (pages in key order, merged with the previous state, a window
//!      of objects at a time) -> plan per object: carry | refresh | fetch
//! fetch: ranged GETs pinned to the listed ETag, `connections` in flight,
//!        results in key order -> one item per object (this thread)
//! carry: the previous snapshot's blobs, by reference, nothing downloaded
//! ```
//! Memory: a window of the listing and of the state (a few MiB), 16 bytes
//! per object of the previous state, and `connections` ranges of
//! `range_size` bytes in flight.

use std::io::Read;
use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;
use futures_util::{stream, StreamExt};
use lifeboat_store::{
    Access, BackupSession, ItemInfo, ManifestItem, Progress, ProgressBars, Repository,
};
use serde::Serialize;

use crate::bucket::{Bucket, Fetched, Remote};
use crate::error::{Error, Result};
use crate::meta::{Headers, Listed, ObjectMeta};
use crate::state::{self, Details, Entry, KeyHasher};
use crate::{dir, SOURCE};

/// What to back up.
pub enum Source {
    /// A bucket (R2, S3, MinIO, ...).
    Bucket(Bucket),
    /// A local upload directory.
    Dir(PathBuf),
}

impl Source {
    /// Where: the previous snapshot of the same location is the basis of
    /// the incremental run.
    pub fn location(&self) -> String {
        match self {
            Source::Bucket(b) => b.location(),
            Source::Dir(p) => format!(
                "dir:{}",
                std::fs::canonicalize(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
            ),
        }
    }
}

impl Source {
    /// The objects as a listing shows them now, sorted by key.
    pub fn list(&self) -> Result<Vec<Listed>> {
        match self {
            Source::Bucket(b) => b.list(),
            Source::Dir(p) => Ok(dir::list(p)?.0),
        }
    }
}

/// How to back up.
#[derive(Debug, Clone)]
pub struct ObjectsBackupOptions {
    /// Raise the alarm when more than this share of the previous
    /// snapshot's objects is gone (default 0.10).
    pub max_deleted_share: f64,
    /// Bytes per ranged GET (default 8 MiB).
    pub range_size: u64,
    /// Read every object again, carrying none from the previous snapshot's
    /// list: after a backup host was compromised (its lists could swap the
    /// entries of two objects of one size, which every later backup would
    /// carry), or to prove the store against the bucket. The list still
    /// counts deletions.
    pub reread: bool,
}

impl Default for ObjectsBackupOptions {
    fn default() -> Self {
        ObjectsBackupOptions {
            max_deleted_share: 0.10,
            range_size: 8 << 20,
            reread: false,
        }
    }
}

/// What a backup did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectsReport {
    /// The bucket or directory.
    pub location: String,
    /// Objects in the snapshot.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects carried over from the previous snapshot without reading them.
    pub carried: u64,
    /// Objects read.
    pub fetched: u64,
    /// Bytes read.
    pub fetched_bytes: u64,
    /// Objects listed but deleted before they could be read.
    pub vanished: Vec<String>,
    /// Files skipped (directory source: links, special files).
    pub skipped: Vec<String>,
    /// Objects in the previous snapshot of this location.
    pub previous_objects: Option<u64>,
    /// Of those, how many are gone.
    pub deleted: u64,
    /// Requests: list pages, GETs, HEADs (bucket source).
    pub requests: Requests,
    /// Set when too many objects disappeared since the previous snapshot.
    pub alarm: Option<String>,
}

/// Request counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Requests {
    /// ListObjectsV2 pages.
    pub lists: u64,
    /// GetObject requests.
    pub gets: u64,
    /// HeadObject requests.
    pub heads: u64,
}

enum Plan {
    Carry(Entry),
    /// Same content, new Last-Modified: read the headers again (HEAD).
    Refresh(Entry),
    Fetch,
}

enum Task {
    Range { idx: usize, start: u64, len: u64 },
    Head { idx: usize },
}

enum Piece {
    Data {
        idx: usize,
        start: u64,
        data: bytes::Bytes,
        headers: Option<Headers>,
    },
    Head {
        idx: usize,
        found: Option<(Listed, Headers)>,
    },
    Gone {
        idx: usize,
    },
    Changed {
        idx: usize,
    },
}

impl Piece {
    fn idx(&self) -> usize {
        match self {
            Piece::Data { idx, .. }
            | Piece::Head { idx, .. }
            | Piece::Gone { idx }
            | Piece::Changed { idx } => *idx,
        }
    }
}

/// How often an object that changes while it is read is tried again.
const CHANGE_ROUNDS: usize = 3;

/// Objects planned at a time: their listing entries, plans and new state
/// entries are what memory holds of the bucket (a few MiB), whatever its size.
const WINDOW: usize = 16_384;

/// The objects of a source in key order, as they are listed.
enum Listing {
    Bucket(crate::bucket::Pages),
    Dir(dir::Walk),
}

impl Iterator for Listing {
    type Item = Result<Listed>;

    fn next(&mut self) -> Option<Result<Listed>> {
        match self {
            Listing::Bucket(p) => p.next(),
            Listing::Dir(w) => w.next(),
        }
    }
}

/// What to do with a listed object, given the previous state's entry for it.
fn plan<A: Access>(
    session: &BackupSession<A>,
    source: &Source,
    o: &Listed,
    previous: Option<Entry>,
) -> Plan {
    match previous {
        // The entry comes from the store: it is carried only if its blobs
        // are indexed and hold its size, and its info line is not the
        // blob's salt line (a forged entry is read again, never carried
        // into a snapshot that cannot restore it).
        Some(e)
            if e.size == o.size
                && e.etag() == o.etag
                && !o.etag.is_empty()
                && e.details().is_some()
                && e.info.is_none_or(|i| i.line > 0)
                && session.indexed_size(&e.blobs) == Some(e.size)
                && session.knows_blobs(&e.needed_blobs()) =>
        {
            let same_time = e.last_modified() == o.last_modified.as_deref();
            match e.details() {
                _ if same_time || matches!(source, Source::Dir(_)) => Plan::Carry(e),
                // New headers are merged into the meta in clear; sealed
                // meta cannot be, so the object is read again.
                Some(Details::Clear) => Plan::Refresh(e),
                _ => Plan::Fetch,
            }
        }
        _ => Plan::Fetch,
    }
}

/// Back up `source` into `session` as one `objects` item per object, with
/// the object list stored as the source's state for the next run. A failed
/// listing or read returns an error and the caller aborts the session: no
/// snapshot. Too many deletions set [`ObjectsReport::alarm`] but store the
/// snapshot anyway (the caller reports it).
///
/// The listing, the previous state and the new state are streams in key
/// order, worked through [`WINDOW`] objects at a time: memory does not
/// grow with the number of objects, but for 16 bytes per object of the
/// previous state (see [`state::Previous`]).
pub fn backup<A: Access>(
    session: &mut BackupSession<A>,
    repo: &Repository<A>,
    source: &Source,
    opts: &ObjectsBackupOptions,
    bars: &dyn ProgressBars,
) -> Result<ObjectsReport> {
    let location = source.location();
    let mut previous = state::Previous::open(repo, &location)?;
    let mut listing = match source {
        Source::Bucket(b) => Listing::Bucket(b.listing()),
        Source::Dir(p) => Listing::Dir(dir::Walk::new(p)?),
    };
    let sealed = session.seals_item_info();
    let hasher = KeyHasher::new(session.derived_key("objects key"));
    let mut report = ObjectsReport {
        location: location.clone(),
        previous_objects: previous.as_ref().map(|p| p.count),
        ..Default::default()
    };
    let mut writer = state::Writer::new(
        &location,
        if sealed { state::SEALED } else { state::CLEAR },
        previous
            .as_ref()
            .map(|p| p.reusable().clone())
            .unwrap_or_default(),
    );
    let bar = bars.bytes("objects");
    let mut to_fetch = 0u64;
    loop {
        let (mut listed, mut keys, mut plans) = (Vec::new(), Vec::new(), Vec::new());
        let mut fetches = 0;
        while listed.len() < WINDOW && fetches < INFO_LINES {
            let Some(o) = listing.next() else { break };
            let o = o?;
            let k = hasher.hash(&o.key);
            let p = plan(
                session,
                source,
                &o,
                // Taken even when rereading: it marks the object found.
                previous
                    .as_mut()
                    .and_then(|p| p.take(&k))
                    .filter(|_| !opts.reread),
            );
            if matches!(p, Plan::Fetch) {
                to_fetch += o.size;
                fetches += 1;
            }
            listed.push(o);
            keys.push(k);
            plans.push(p);
        }
        if listed.is_empty() {
            break;
        }
        bar.set_length(to_fetch);
        let mut run = Run {
            session,
            slots: (0..listed.len()).map(|_| None).collect(),
            info: sealed.then(InfoBatch::default),
            report: &mut report,
            listed: &listed,
            keys: &keys,
            bar: &*bar,
        };
        match source {
            Source::Bucket(b) => {
                let retry = run.read_bucket(b, plans, opts)?;
                run.retry_changed(b, retry, opts)?;
            }
            Source::Dir(root) => run.read_dir(root, plans)?,
        }
        run.finish(&mut writer)?;
    }
    bar.finish();
    if let Listing::Dir(walk) = listing {
        report.skipped = walk.skipped;
    }
    for s in &report.skipped {
        tracing::warn!("skipped {s}");
    }
    if let Source::Bucket(b) = source {
        let c = b.counters();
        report.requests = Requests {
            lists: c.lists.load(std::sync::atomic::Ordering::Relaxed),
            gets: c.gets.load(std::sync::atomic::Ordering::Relaxed),
            heads: c.heads.load(std::sync::atomic::Ordering::Relaxed),
        };
    }
    if let Some(p) = &previous {
        report.deleted = p.count.saturating_sub(p.matched);
    }
    if let Some(prev_n) = report.previous_objects.filter(|n| *n > 0) {
        let share = report.deleted as f64 / prev_n as f64;
        if share > opts.max_deleted_share {
            report.alarm = Some(format!(
                "{} of the {prev_n} objects in the previous snapshot of {location} are gone \
                 ({:.0}%, more than the {:.0}% allowed): if this is a mass deletion or the wrong \
                 bucket, keep the older snapshots (do not prune) and restore from them",
                report.deleted,
                share * 100.0,
                opts.max_deleted_share * 100.0
            ));
        }
    }
    drop(previous);
    tracing::debug!(
        "object list: {} parts written, {} unchanged",
        writer.written,
        writer.reused
    );
    writer.finish(session)?;
    let mut facts = serde_json::to_value(&report).expect("report serializes");
    if let Some(f) = facts.as_object_mut() {
        // Keys of vanished or skipped files are for the operator's log, not
        // for the snapshot file the backup key can read.
        f.remove("vanished");
        f.remove("skipped");
    }
    session.set_source_facts(SOURCE, facts);
    Ok(report)
}

/// Info lines not yet stored (format 3): the details of objects whose
/// state entries will name them.
#[derive(Default)]
struct InfoBatch {
    infos: Vec<ItemInfo>,
    /// The objects (indexes into the window) of the lines, in order.
    entries: Vec<usize>,
}

/// Lines per info blob: about 250 bytes each, so a restore of one carried
/// object reads a blob of some 100 KiB sealed.
const INFO_LINES: usize = 1024;

/// One window of objects being backed up.
struct Run<'a, 's, A: Access> {
    session: &'s mut BackupSession<A>,
    /// The new state entry of each object of the window, once recorded.
    slots: Vec<Option<Entry>>,
    /// Format 3: details go into info blobs; `None` writes them in clear
    /// (a format-2 repository).
    info: Option<InfoBatch>,
    report: &'a mut ObjectsReport,
    listed: &'a [Listed],
    keys: &'a [String],
    bar: &'a dyn Progress,
}

impl<A: Access> Run<'_, '_, A> {
    /// Keep an object read by this run: its state entry, with its details
    /// (SHA-256, meta) in clear (format 2) or as a line of the next info
    /// blob. Its manifest line is written with the window's.
    fn record(&mut self, idx: usize, item: ManifestItem, meta: ObjectMeta) -> Result<()> {
        self.report.fetched += 1;
        self.report.fetched_bytes += item.size;
        let k = self.keys[idx].clone();
        let Some(batch) = self.info.as_mut() else {
            self.slots[idx] = Some(Entry {
                k,
                size: item.size,
                sha256: Some(item.sha256),
                blobs: item.blobs,
                meta: Some(meta),
                ..Entry::default()
            });
            return Ok(());
        };
        batch.infos.push(ItemInfo {
            sha256: item.sha256,
            meta: serde_json::to_value(&meta).expect("meta serializes"),
        });
        batch.entries.push(idx);
        self.slots[idx] = Some(Entry {
            k,
            size: item.size,
            blobs: item.blobs,
            etag: meta.etag,
            last_modified: meta.last_modified,
            ..Entry::default()
        });
        if batch.entries.len() >= INFO_LINES {
            self.flush_info()?;
        }
        Ok(())
    }

    /// Store the pending info lines as one blob and point their entries at it.
    fn flush_info(&mut self) -> Result<()> {
        let Some(batch) = self.info.as_mut().filter(|b| !b.entries.is_empty()) else {
            return Ok(());
        };
        let infos = std::mem::take(&mut batch.infos);
        let entries = std::mem::take(&mut batch.entries);
        let refs = self.session.put_info_blob(SOURCE, &infos)?;
        for (r, idx) in refs.into_iter().zip(entries) {
            if let Some(e) = self.slots[idx].as_mut() {
                e.info = Some(r);
            }
        }
        Ok(())
    }

    /// End of the window: the manifest lines of its objects, in key order
    /// and in one form whether an object was read tonight or carried over
    /// (so that the manifest of an unchanged night is the same bytes and
    /// deduplicates), and their state entries, handed to `writer`.
    fn finish(mut self, writer: &mut state::Writer) -> Result<()> {
        self.flush_info()?;
        for (idx, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            let Some(e) = slot else { continue };
            let (sha256, meta) = match (&e.sha256, &e.meta) {
                (Some(sha), Some(meta)) => (
                    sha.clone(),
                    serde_json::to_value(meta).expect("meta serializes"),
                ),
                _ => (String::new(), serde_json::Value::Null),
            };
            let item = self.session.carry_item(ManifestItem {
                name: self.listed[idx].key.clone(),
                source: SOURCE.into(),
                kind: "object".into(),
                size: e.size,
                sha256,
                blobs: e.blobs.clone(),
                meta,
                info: e.info,
            })?;
            self.report.objects += 1;
            self.report.bytes += item.size;
            writer.push(self.session, e)?;
        }
        Ok(())
    }

    /// Keep `entry` (the previous list's, whose `k` is this object's) for
    /// an object carried over unread.
    fn carry(
        &mut self,
        idx: usize,
        mut entry: Entry,
        fresh: Option<(&Listed, Headers)>,
    ) -> Result<()> {
        if entry.details().is_none() {
            return Err(Error::Internal(format!(
                "object {} planned to be carried without its details",
                self.listed[idx].key
            )));
        }
        self.report.carried += 1;
        // Details in clear take tonight's Last-Modified and headers.
        if let Some(meta) = entry.meta.as_mut() {
            if let Some((l, h)) = fresh {
                meta.last_modified = l.last_modified.clone();
                meta.headers = h;
            } else {
                meta.last_modified = self.listed[idx].last_modified.clone();
            }
        }
        self.slots[idx] = Some(entry);
        Ok(())
    }

    /// Carry every planned carry before `until`.
    fn carry_before(
        &mut self,
        plans: &mut [Option<Plan>],
        next: &mut usize,
        until: usize,
    ) -> Result<()> {
        while *next < until {
            if let Some(Plan::Carry(_)) = plans[*next] {
                if let Some(Plan::Carry(e)) = plans[*next].take() {
                    self.carry(*next, e, None)?;
                }
            }
            *next += 1;
        }
        Ok(())
    }

    fn read_dir(&mut self, root: &Path, plans: Vec<Plan>) -> Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        for (idx, plan) in plans.into_iter().enumerate() {
            let entry = match plan {
                Plan::Carry(e) | Plan::Refresh(e) => {
                    self.carry(idx, e, None)?;
                    continue;
                }
                Plan::Fetch => {
                    let listed = self.listed;
                    &listed[idx]
                }
            };
            let path = root.join(&entry.key);
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.report.vanished.push(entry.key.clone());
                    continue;
                }
                Err(e) => return Err(Error::read(&path, e)),
            };
            let fmeta = file.metadata().map_err(|e| Error::read(&path, e))?;
            let mut item = self.session.item(SOURCE, &entry.key, "object", self.bar)?;
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::read(&path, e)),
                };
                item.push(&buf[..n])?;
            }
            let meta = ObjectMeta {
                etag: entry.etag.clone(),
                last_modified: dir::modified(&fmeta),
                headers: Headers::default(),
                mode: dir::mode(&fmeta),
            };
            let item =
                item.finish_unlisted(serde_json::to_value(&meta).expect("meta serializes"))?;
            self.record(idx, item, meta)?;
        }
        Ok(())
    }

    /// Download what the plans say, in key order; returns the objects that
    /// changed while being read.
    fn read_bucket(
        &mut self,
        b: &Bucket,
        plans: Vec<Plan>,
        opts: &ObjectsBackupOptions,
    ) -> Result<Vec<usize>> {
        let range = opts.range_size.max(1 << 20);
        let mut tasks = Vec::new();
        for (idx, plan) in plans.iter().enumerate() {
            match plan {
                Plan::Carry(_) => {}
                Plan::Refresh(_) => tasks.push(Task::Head { idx }),
                Plan::Fetch => {
                    let size = self.listed[idx].size;
                    let mut start = 0;
                    loop {
                        let len = range.min(size - start);
                        tasks.push(Task::Range { idx, start, len });
                        start += len;
                        if start >= size {
                            break;
                        }
                    }
                }
            }
        }
        let mut plans: Vec<Option<Plan>> = plans.into_iter().map(Some).collect();
        let (tx, rx) = crossbeam_channel::bounded::<Result<Piece>>(4);
        let listed = self.listed;
        std::thread::scope(|s| {
            s.spawn(move || {
                let remote = b.remote.clone();
                let rt = b.rt.handle().clone();
                b.rt.block_on(async move {
                    let mut results = stream::iter(tasks.into_iter().map(|t| {
                        let remote = remote.clone();
                        let o = &listed[match t {
                            Task::Range { idx, .. } | Task::Head { idx } => idx,
                        }];
                        let (key, etag) = (o.key.clone(), o.etag.clone());
                        rt.spawn(fetch(remote, t, key, etag))
                    }))
                    .buffered(b.connections);
                    while let Some(r) = results.next().await {
                        let r = r.unwrap_or_else(|e| {
                            Err(Error::Internal(format!("a download task failed: {e}")))
                        });
                        let stop = r.is_err();
                        // Blocks this (non-worker) thread only; the spawned
                        // downloads go on. Fails once the consumer has stopped.
                        if tx.send(r).is_err() || stop {
                            break;
                        }
                    }
                });
            });
            self.consume(rx, &mut plans)
        })
    }

    fn consume(
        &mut self,
        rx: Receiver<Result<Piece>>,
        plans: &mut [Option<Plan>],
    ) -> Result<Vec<usize>> {
        let mut pieces = rx.into_iter().peekable();
        let mut next = 0;
        let mut retry = Vec::new();
        while let Some(piece) = pieces.next() {
            let piece = piece?;
            let idx = piece.idx();
            self.carry_before(plans, &mut next, idx)?;
            next = idx + 1;
            let listed = self.listed;
            let o = &listed[idx];
            match piece {
                Piece::Gone { .. } => self.report.vanished.push(o.key.clone()),
                Piece::Changed { .. } => retry.push(idx),
                Piece::Head { found: None, .. } => self.report.vanished.push(o.key.clone()),
                Piece::Head {
                    found: Some((l, h)),
                    ..
                } => match plans[idx].take() {
                    Some(Plan::Refresh(e)) if e.size == l.size && e.etag() == l.etag => {
                        self.carry(idx, e, Some((&l, h)))?
                    }
                    _ => retry.push(idx),
                },
                Piece::Data {
                    start,
                    data,
                    headers,
                    ..
                } => {
                    if start != 0 {
                        return Err(Error::Internal(format!(
                            "download of {} out of order (at {start})",
                            o.key
                        )));
                    }
                    if !self.fetched(idx, data, headers, &mut pieces)? {
                        // Changed while read: skip its other ranges, read
                        // it again later.
                        while pieces
                            .peek()
                            .is_some_and(|p| p.as_ref().is_ok_and(|p| p.idx() == idx))
                        {
                            pieces.next();
                        }
                        retry.push(idx);
                    }
                }
            }
        }
        let n = plans.len();
        self.carry_before(plans, &mut next, n)?;
        Ok(retry)
    }

    /// Object `idx` from its first range `data` and the ranges that follow
    /// in `pieces`, as one item. False when it changed (or vanished) while
    /// it was read: nothing is recorded, and it is read again.
    fn fetched(
        &mut self,
        idx: usize,
        data: bytes::Bytes,
        headers: Option<Headers>,
        pieces: &mut impl Iterator<Item = Result<Piece>>,
    ) -> Result<bool> {
        let listed = self.listed;
        let o = &listed[idx];
        let mut item = self.session.item(SOURCE, &o.key, "object", self.bar)?;
        item.push(&data)?;
        let mut got = data.len() as u64;
        while got < o.size {
            match pieces.next() {
                Some(Ok(Piece::Data { idx: i, data, .. })) if i == idx => {
                    item.push(&data)?;
                    got += data.len() as u64;
                }
                Some(Ok(Piece::Gone { idx: i } | Piece::Changed { idx: i })) if i == idx => {
                    return Ok(false)
                }
                Some(Err(e)) => return Err(e),
                _ => {
                    return Err(Error::Internal(format!(
                        "download of {} ended early",
                        o.key
                    )))
                }
            }
        }
        let meta = ObjectMeta {
            etag: o.etag.clone(),
            last_modified: o.last_modified.clone(),
            headers: headers.unwrap_or_default(),
            mode: None,
        };
        let item = item.finish_unlisted(serde_json::to_value(&meta).expect("meta serializes"))?;
        self.record(idx, item, meta)?;
        Ok(true)
    }

    /// Objects that changed while being read: read them again, a few times.
    fn retry_changed(
        &mut self,
        b: &Bucket,
        mut retry: Vec<usize>,
        opts: &ObjectsBackupOptions,
    ) -> Result<()> {
        let range = opts.range_size.max(1 << 20);
        for _round in 0..CHANGE_ROUNDS {
            if retry.is_empty() {
                return Ok(());
            }
            let mut again = Vec::new();
            for idx in std::mem::take(&mut retry) {
                let key = self.listed[idx].key.clone();
                let Some((now, headers)) = b.rt.block_on(b.remote.head(&key))? else {
                    self.report.vanished.push(key);
                    continue;
                };
                let mut item = self.session.item(SOURCE, &key, "object", self.bar)?;
                let mut start = 0;
                let mut changed = false;
                while start < now.size || (start == 0 && now.size == 0) {
                    let len = range.min(now.size - start);
                    match b
                        .rt
                        .block_on(b.remote.get_range(&key, &now.etag, start, len))?
                    {
                        Fetched::Data(data, _) => item.push(&data)?,
                        Fetched::Gone | Fetched::Changed => {
                            changed = true;
                            break;
                        }
                    }
                    start += len;
                    if now.size == 0 {
                        break;
                    }
                }
                if changed {
                    drop(item);
                    again.push(idx);
                    continue;
                }
                let meta = ObjectMeta {
                    etag: now.etag.clone(),
                    last_modified: now.last_modified.clone(),
                    headers,
                    mode: None,
                };
                let item =
                    item.finish_unlisted(serde_json::to_value(&meta).expect("meta serializes"))?;
                self.record(idx, item, meta)?;
            }
            retry = again;
        }
        match retry.first() {
            None => Ok(()),
            Some(&idx) => Err(Error::S3 {
                what: format!("reading {}", self.listed[idx].key),
                detail: format!(
                    "the object changed while it was read, {CHANGE_ROUNDS} times: run the backup \
                     again when uploads to it have settled"
                ),
            }),
        }
    }
}

async fn fetch(remote: Remote, task: Task, key: String, etag: String) -> Result<Piece> {
    Ok(match task {
        Task::Head { idx } => Piece::Head {
            idx,
            found: remote.head(&key).await?,
        },
        Task::Range { idx, start, len } => match remote.get_range(&key, &etag, start, len).await? {
            Fetched::Data(data, headers) => Piece::Data {
                idx,
                start,
                data,
                headers,
            },
            Fetched::Gone => Piece::Gone { idx },
            Fetched::Changed => Piece::Changed { idx },
        },
    })
}
