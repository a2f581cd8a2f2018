//! Backup sessions: items are pushed in, chunked, deduplicated, sealed,
//! packed and uploaded by a small pipeline of threads; `commit` writes the
//! manifest, the last index and, last of all, the snapshot file.
//!
//! ```text
//! caller thread           workers (1 per core)           uploaders (backend.connections())
//! chunk + SHA-256 item -> blob id, dedup, zstd, age,  -> write pack, then index every few packs
//!                         fill a pack
//! ```
//! Every channel is bounded, so memory is bounded whatever the input.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;
use crossbeam_channel::{Receiver, Sender};
use sha2::{Digest, Sha256};

use crate::backend::FileKind;
use crate::chunker::Chunker;
use crate::crypto::{self, DedupKey};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::{hostname, LockGuard};
use crate::pack::{BlobKind, PackBuilder, PackEntry};
use crate::progress::{NoProgress, Progress};
use crate::repository::{Access, Inner, Repository};
use crate::snapshot::{
    BackupStats, InfoRef, ItemInfo, ManifestItem, ManifestRef, Snapshot, SourceSummary,
};

/// Write an index file after this many packs, so a killed backup leaves
/// most of what it uploaded findable by the next one.
const INDEX_EVERY_PACKS: usize = 4;
/// ... or once the packs waiting hold this many blobs: packs of small
/// objects hold tens of thousands, and an index file is built whole in
/// memory (about 130 bytes of JSON a blob, then tagged, compressed and
/// sealed copies).
const INDEX_EVERY_BLOBS: usize = 16_384;

/// Options of a backup.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Tags to put on the snapshot.
    pub tags: Vec<String>,
    /// Hostname to record (default: this host's).
    pub hostname: Option<String>,
    /// A note to keep with the snapshot (e.g. which migration it precedes).
    pub note: Option<String>,
}

struct Job {
    data: Vec<u8>,
    kind: BlobKind,
    seq: usize,
    reply: Sender<(usize, BlobId)>,
    /// Already computed by the caller.
    id: Option<BlobId>,
    /// Store as this patch against this base, if the base is stored.
    delta: Option<(BlobId, Vec<u8>)>,
}

type Pack = (PackId, Vec<u8>, Vec<PackEntry>);

struct Shared<A: Access> {
    repo: Repository<A>,
    known: Index,
    seen: Mutex<crate::index::BlobSet>,
    dedup: DedupKey,
    uploaded: Mutex<Vec<IndexPack>>,
    error: Mutex<Option<Error>>,
    /// Set with the first error: a caller waiting for blob ids stops
    /// waiting (a thread that died holding a job will never answer).
    broken: AtomicBool,
    new_blobs: AtomicU64,
    new_plain_bytes: AtomicU64,
    added_bytes: AtomicU64,
    /// Pack buffers: a fixed number circulate between workers and
    /// uploaders, which bounds memory and avoids allocator churn.
    pool: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
    /// Test hook: a worker panics right after claiming this blob id, the
    /// moment a bug would leave `seen` naming a blob no pack holds.
    #[cfg(test)]
    panic_after_claim: Mutex<Option<BlobId>>,
}

impl<A: Access> Shared<A> {
    fn fail(&self, e: Error) {
        self.broken.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.error.lock() {
            if slot.is_none() {
                *slot = Some(e);
            }
        }
    }

    fn failed(&self) -> bool {
        self.broken.load(Ordering::SeqCst) || self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }

    /// Run a pipeline thread's body; a panic in it fails the session. The
    /// blobs that thread claimed (in `seen`, answered to the caller) may
    /// never reach a pack, so no snapshot may be committed after it.
    fn guard(&self, what: &str, body: impl FnOnce()) {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            self.fail(thread_panicked(what, panic.as_ref()));
        }
    }

    /// The session's first error, kept for `close`: the session is over
    /// once a thread failed, whoever sees the error first. (A source that
    /// gets a store error and carries on as a failed source must not
    /// lead to a committed snapshot whose other items name blobs in the
    /// pack that never got stored.)
    fn error_copy(&self) -> Option<Error> {
        if !self.broken.load(Ordering::SeqCst) {
            return None;
        }
        let kept = self.error.lock().ok();
        Some(match kept.as_ref().and_then(|e| e.as_ref()) {
            Some(e) => duplicate(e),
            None => Error::Internal("the backup pipeline failed".into()),
        })
    }

    fn take_error(&self) -> Option<Error> {
        if !self.broken.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.error
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .unwrap_or_else(|| Error::Internal("the backup pipeline failed".into())),
        )
    }

    /// Write an index file naming every pack uploaded since the last one.
    fn flush_index(&self, min_packs: usize) -> Result<()> {
        let packs = {
            let mut up = self
                .uploaded
                .lock()
                .map_err(|_| Error::Invalid("index writer poisoned".into()))?;
            let blobs: usize = up.iter().map(|p| p.blobs.len()).sum();
            if up.is_empty() || (up.len() < min_packs && blobs < INDEX_EVERY_BLOBS) {
                return Ok(());
            }
            std::mem::take(&mut *up)
        };
        let file = IndexFile { version: 1, packs };
        let json = serde_json::to_vec(&file).expect("index serializes");
        let (_, len) = self.repo.write_meta_file(FileKind::Index, &json)?;
        self.added_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }
}

/// The same error again, for a second caller (errors hold no handles
/// worth sharing; variants that matter for the exit status keep theirs).
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Backend(b) => Error::Backend(crate::error::BackendError {
            kind: b.kind,
            op: b.op,
            path: b.path.clone(),
            message: b.message.clone(),
            local: b.local,
        }),
        Error::Damaged { what, detail } => Error::Damaged {
            what: what.clone(),
            detail: detail.clone(),
        },
        Error::Source(m) => Error::Source(m.clone()),
        Error::Invalid(m) => Error::Invalid(m.clone()),
        Error::Locked(m) => Error::Locked(m.clone()),
        Error::Io { context, error } => Error::Io {
            context: context.clone(),
            error: io::Error::new(error.kind(), error.to_string()),
        },
        other => Error::Internal(other.to_string()),
    }
}

/// The error a panicked pipeline thread becomes.
fn thread_panicked(what: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    Error::Internal(format!(
        "a backup {what} thread panicked ({message}): this backup is abandoned and no \
         snapshot is stored; what it uploaded is reused by the next run. Please report \
         this bug"
    ))
}

fn inner_of<A: Access>(s: &Shared<A>) -> &Inner {
    &s.repo.inner
}

fn worker<A: Access>(shared: Arc<Shared<A>>, jobs: Receiver<Job>, packs: Sender<Pack>) {
    let inner = inner_of(&shared);
    let cfg = &inner.config;
    let meta = inner.meta_recipient.clone();
    let capacity = cfg.pack_size as usize + 4 * 1024 * 1024;
    let mut builder: Option<PackBuilder> = None;
    for job in jobs {
        let id = job.id.unwrap_or_else(|| shared.dedup.blob_id(&job.data));
        if shared.known.contains(&id) {
            let _ = job.reply.send((job.seq, id));
            continue;
        }
        // Claimed before the id is answered: once a caller has an id,
        // `knows_blobs` says so.
        let fresh = shared
            .seen
            .lock()
            .map(|mut s| s.insert(id))
            .unwrap_or(false);
        let _ = job.reply.send((job.seq, id));
        if !fresh || shared.failed() {
            continue;
        }
        #[cfg(test)]
        if shared
            .panic_after_claim
            .lock()
            .map(|p| *p == Some(id))
            .unwrap_or(false)
        {
            panic!("test hook: panic after claiming blob {}", id.to_hex());
        }
        // A delta only if its base is stored (or being stored by this run).
        let (payload, base) = match job.delta {
            Some((b, patch))
                if shared.known.contains(&b)
                    || shared.seen.lock().map(|s| s.contains(&b)).unwrap_or(false) =>
            {
                (patch, Some(b))
            }
            _ => (job.data, None),
        };
        // Data and manifest (tree) blobs alike go to the data recipient: the
        // backup key may learn that a blob exists, never what it holds.
        let sealed = crypto::seal(&inner.data_recipient, cfg.compression_level, &payload);
        let b = match builder.as_mut() {
            Some(b) => b,
            None => {
                // Blocks while every buffer is in use: that is the memory bound.
                let Ok(buf) = shared.pool.1.recv() else {
                    return;
                };
                builder.insert(PackBuilder::with_buffer(buf, capacity))
            }
        };
        b.add(id, job.kind, &sealed, payload.len(), base);
        shared.new_blobs.fetch_add(1, Ordering::Relaxed);
        shared
            .new_plain_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if b.len() >= cfg.pack_size as usize {
            if let Some(full) = builder.take() {
                if packs.send(full.finish(&meta, shared.repo.auth())).is_err() {
                    return;
                }
            }
        }
    }
    if let Some(b) = builder.filter(|b| !b.is_empty()) {
        let _ = packs.send(b.finish(&meta, shared.repo.auth()));
    }
}

fn uploader<A: Access>(shared: Arc<Shared<A>>, packs: Receiver<Pack>) {
    for (id, bytes, entries) in packs {
        let len = bytes.len() as u64;
        let bytes = Arc::new(bytes);
        if !shared.failed() {
            let name = id.to_hex();
            match inner_of(&shared)
                .backend
                .write_shared(FileKind::Pack, &name, bytes.clone())
            {
                Ok(()) => {
                    shared.added_bytes.fetch_add(len, Ordering::Relaxed);
                    if let Ok(mut up) = shared.uploaded.lock() {
                        up.push(IndexPack { id, blobs: entries });
                    }
                    if let Err(e) = shared.flush_index(INDEX_EVERY_PACKS) {
                        shared.fail(e);
                    }
                }
                Err(e) => shared.fail(e.into()),
            }
        }
        // Give the buffer back (a new empty one if the backend kept a reference).
        let _ = shared
            .pool
            .0
            .send(Arc::try_unwrap(bytes).unwrap_or_default());
    }
}

/// What [`BackupSession`] keeps of an item's name to find a second item
/// of the same name: 128 bits of the SHA-256 of source and name.
fn name_hash(source: &str, name: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    let d = h.finalize();
    u128::from_le_bytes(d[..16].try_into().expect("16 bytes"))
}

/// The tag a snapshot gets when a source failed.
pub const PARTIAL_TAG: &str = "partial";

/// An open backup. Add items, then [`commit`](Self::commit). Dropping it
/// (or [`abort`](Self::abort)) stores no snapshot; uploaded data stays
/// indexed for the next run to reuse.
pub struct BackupSession<A: Access> {
    shared: Arc<Shared<A>>,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    uploaders: Vec<JoinHandle<()>>,
    manifest: ItemState,
    manifest_blobs: Vec<BlobId>,
    /// (source, name) of every item so far, as 128 bits of their SHA-256
    /// in a sorted array (16 bytes an item, not the names: a million
    /// objects' keys are 100 MB): names are unique per source.
    names: crate::index::BlobMap<(), u128>,
    sources: BTreeMap<String, SourceSummary>,
    stats: BackupStats,
    opts: BackupOptions,
    started: Instant,
    time: chrono::DateTime<Utc>,
    /// Info blobs this session sent to be stored (perhaps not yet claimed
    /// by a sealing thread): items may name them at once.
    info_sent: HashSet<BlobId>,
    /// Packs that held blobs before this backup and that its items use:
    /// checked to be there before the snapshot is written.
    reused: HashSet<crate::id::PackId>,
    _lock: LockGuard,
}

/// Per-stream state: chunker, hash, and the ids coming back from workers.
struct ItemState {
    chunker: Chunker,
    hasher: Sha256,
    size: u64,
    sent: usize,
    ids: Vec<Option<BlobId>>,
    received: usize,
    reply_tx: Sender<(usize, BlobId)>,
    reply_rx: Receiver<(usize, BlobId)>,
    kind: BlobKind,
}

/// The chunker's callback: each chunk becomes a numbered job for the workers.
fn job_sender<'a>(
    kind: BlobKind,
    sent: &'a mut usize,
    reply: &'a Sender<(usize, BlobId)>,
    jobs: &'a Sender<Job>,
) -> impl FnMut(&[u8]) -> Result<()> + 'a {
    move |chunk: &[u8]| send_job(kind, sent, reply, jobs, chunk.to_vec(), None, None)
}

/// Number a blob of an item and queue it for the workers.
fn send_job(
    kind: BlobKind,
    sent: &mut usize,
    reply: &Sender<(usize, BlobId)>,
    jobs: &Sender<Job>,
    data: Vec<u8>,
    id: Option<BlobId>,
    delta: Option<(BlobId, Vec<u8>)>,
) -> Result<()> {
    let job = Job {
        data,
        kind,
        seq: *sent,
        reply: reply.clone(),
        id,
        delta,
    };
    *sent += 1;
    jobs.send(job)
        .map_err(|_| Error::Invalid("backup workers stopped".into()))
}

impl ItemState {
    fn new<A: Access>(repo: &Repository<A>, kind: BlobKind) -> Self {
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        Self {
            chunker: Chunker::new(repo.config().chunker, repo.key().dedup.gear_seed()),
            hasher: Sha256::new(),
            size: 0,
            sent: 0,
            ids: Vec::new(),
            received: 0,
            reply_tx,
            reply_rx,
            kind,
        }
    }

    fn collect(&mut self, block: Option<&AtomicBool>) -> Result<()> {
        loop {
            let next = if let Some(broken) = block.filter(|_| self.received < self.sent) {
                match self
                    .reply_rx
                    .recv_timeout(std::time::Duration::from_millis(200))
                {
                    Ok(reply) => Some(reply),
                    // A thread that died holding a job never answers: the
                    // session's error says why.
                    Err(_) if broken.load(Ordering::SeqCst) => {
                        return Err(Error::Invalid("backup workers stopped".into()))
                    }
                    Err(_) => continue,
                }
            } else {
                self.reply_rx.try_recv().ok()
            };
            let Some((seq, id)) = next else { return Ok(()) };
            if self.ids.len() <= seq {
                self.ids.resize(seq + 1, None);
            }
            self.ids[seq] = Some(id);
            self.received += 1;
        }
    }

    fn push(&mut self, data: &[u8], jobs: &Sender<Job>) -> Result<()> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.chunker.push(
            data,
            &mut job_sender(self.kind, &mut self.sent, &self.reply_tx, jobs),
        )?;
        self.collect(None)
    }

    /// Cut what the chunker holds into blobs.
    fn flush_chunker(&mut self, jobs: &Sender<Job>) -> Result<()> {
        self.chunker.finish(&mut job_sender(
            self.kind,
            &mut self.sent,
            &self.reply_tx,
            jobs,
        ))
    }

    /// A whole blob comes next: after whatever the chunker holds, and
    /// counted in the item's size and checksum.
    fn begin_whole(&mut self, data: &[u8], jobs: &Sender<Job>) -> Result<()> {
        self.flush_chunker(jobs)?;
        self.hasher.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// One whole blob, bypassing the chunker (after whatever it holds).
    fn push_whole(
        &mut self,
        data: Vec<u8>,
        id: BlobId,
        delta: Option<(BlobId, Vec<u8>)>,
        jobs: &Sender<Job>,
    ) -> Result<()> {
        self.begin_whole(&data, jobs)?;
        send_job(
            self.kind,
            &mut self.sent,
            &self.reply_tx,
            jobs,
            data,
            Some(id),
            delta,
        )?;
        self.collect(None)
    }

    /// One whole blob that is already stored as `id`: counted in the
    /// item's size and checksum, nothing queued.
    fn push_stored(&mut self, data: &[u8], id: BlobId, jobs: &Sender<Job>) -> Result<()> {
        self.begin_whole(data, jobs)?;
        let seq = self.sent;
        self.sent += 1;
        if self.ids.len() <= seq {
            self.ids.resize(seq + 1, None);
        }
        self.ids[seq] = Some(id);
        self.received += 1;
        self.collect(None)
    }

    fn finish(
        &mut self,
        jobs: &Sender<Job>,
        broken: &AtomicBool,
    ) -> Result<(u64, String, Vec<BlobId>)> {
        self.flush_chunker(jobs)?;
        self.collect(Some(broken))?;
        let ids = std::mem::take(&mut self.ids)
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Invalid("a chunk id went missing".into()))?;
        let sha = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let size = std::mem::take(&mut self.size);
        self.sent = 0;
        self.received = 0;
        Ok((size, sha, ids))
    }
}

impl<A: Access> Repository<A> {
    /// Start a backup. Takes a shared lock and loads the index.
    pub fn begin_backup(&self, opts: BackupOptions) -> Result<BackupSession<A>> {
        let lock = self.lock(false)?;
        match self.backend().remove_partial_writes() {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} partial file(s) left by interrupted backups"),
            Err(e) => tracing::warn!("could not clean up partial files: {e}"),
        }
        // Dedup only against blobs whose pack is there: an index file put
        // back after a prune (or naming packs lost since) must not make
        // this backup skip data it believes stored.
        let listing = self.backend().list(FileKind::Pack)?;
        let (mut known, unreadable) = self.load_index_over(&listing, false)?;
        for u in &unreadable {
            tracing::warn!("skipping unreadable index file {}: {}", u.file, u.detail);
        }
        let dropped = known.drop_broken_deltas();
        if dropped > 0 {
            tracing::warn!(
                "{dropped} indexed delta blob(s) lack their base: they will be stored again"
            );
        }
        self.index_orphan_packs(&mut known, &listing)?;
        let shared = Arc::new(Shared {
            repo: self.clone(),
            known,
            seen: Mutex::new(Default::default()),
            dedup: self.key().dedup.clone(),
            uploaded: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            broken: AtomicBool::new(false),
            new_blobs: AtomicU64::new(0),
            new_plain_bytes: AtomicU64::new(0),
            added_bytes: AtomicU64::new(0),
            pool: crossbeam_channel::unbounded(),
            #[cfg(test)]
            panic_after_claim: Mutex::new(None),
        });
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let uploads = self.backend().connections();
        // One buffer per worker and per uploader: a worker hands its full
        // buffer to a free uploader (rendezvous) and takes one back from
        // the pool, where an uploader puts each buffer it has stored, so a
        // worker never waits for a buffer but while every uploader is busy.
        for _ in 0..cores + uploads {
            let _ = shared.pool.0.send(Vec::new());
        }
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(cores * 2);
        // Rendezvous: a finished pack waits in its worker until an uploader
        // takes it. Peak memory is about (workers + uploaders) x pack size.
        let (pack_tx, pack_rx) = crossbeam_channel::bounded::<Pack>(0);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::io("starting backup threads", e))
        };
        let mut workers = Vec::new();
        for _ in 0..cores {
            let (s, j, p) = (shared.clone(), job_rx.clone(), pack_tx.clone());
            workers.push(spawn(
                "lifeboat-seal",
                Box::new(move || s.clone().guard("sealing", || worker(s, j, p))),
            )?);
        }
        let mut uploaders = Vec::new();
        for _ in 0..uploads {
            let (s, p) = (shared.clone(), pack_rx.clone());
            uploaders.push(spawn(
                "lifeboat-upload",
                Box::new(move || s.clone().guard("upload", || uploader(s, p))),
            )?);
        }
        Ok(BackupSession {
            manifest: ItemState::new(self, BlobKind::Tree),
            shared,
            jobs: Some(job_tx),
            workers,
            uploaders,
            manifest_blobs: Vec::new(),
            names: Default::default(),
            info_sent: HashSet::new(),
            sources: BTreeMap::new(),
            stats: BackupStats::default(),
            opts,
            started: Instant::now(),
            time: Utc::now(),
            reused: HashSet::new(),
            _lock: lock,
        })
    }
}

impl<A: Access> Repository<A> {
    /// Index packs that no index file names: an interrupted backup uploads
    /// packs before their index, so this is how the next run finds and reuses
    /// them. Reading a pack header needs only the metadata identity, which the
    /// backup key holds. A pack whose header cannot be read is left alone
    /// (verify reports it).
    fn index_orphan_packs(
        &self,
        known: &mut Index,
        listing: &[crate::backend::FileInfo],
    ) -> Result<()> {
        let mut found = Vec::new();
        for f in listing {
            let Ok(id) = f.name.parse::<PackId>() else {
                continue;
            };
            if known.packs().contains(&id) || f.size < crate::pack::TRAILER_LEN as u64 {
                continue;
            }
            match self.read_pack_header(&f.name, f.size) {
                Ok(blobs) => found.push(IndexPack { id, blobs }),
                Err(e) => tracing::warn!("ignoring pack {}: {e}", f.name),
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        tracing::info!(
            "indexing {} packs left by an interrupted backup",
            found.len()
        );
        self.write_index_files(&found)?;
        for p in &found {
            known.add_pack(p);
        }
        Ok(())
    }

    /// Read the header of one pack with two range reads. In format 2 a
    /// header without a tag (a pack written before the upgrade) is refused
    /// here: only its authenticated index entries vouch for it.
    ///
    /// The whole pack is read: in format 2 the header's tag covers the
    /// pack's blob bytes, so a header moved onto other bytes is refused.
    /// (Only packs no index names, and `repair index`, come here.)
    pub(crate) fn read_pack_header(&self, name: &str, _size: u64) -> Result<Vec<PackEntry>> {
        let what = FileKind::Pack.path(name);
        crate::repository::reread_if_damaged(&what, || {
            let data = self.backend().read(FileKind::Pack, name)?;
            if crate::id::sha256_hex(&data) != name {
                return Err(Error::damaged(
                    &what,
                    "content does not match its name (SHA-256)",
                ));
            }
            let header =
                crate::pack::parse_pack(&data, &self.key().metadata_identity, self.auth(), &what)?;
            if header.legacy {
                return Err(Error::damaged(
                    &what,
                    "its header has no tag (a pack from before format 2): not trusted without \
                     an index entry",
                ));
            }
            Ok(header.entries)
        })
    }
}

/// Writes one item into a backup session; implements [`io::Write`].
pub struct ItemWriter<'s, A: Access> {
    session: &'s mut BackupSession<A>,
    state: ItemState,
    name: String,
    source: String,
    kind: String,
    progress: &'s dyn Progress,
}

impl<A: Access> BackupSession<A> {
    fn jobs(&self) -> Result<&Sender<Job>> {
        self.jobs
            .as_ref()
            .ok_or_else(|| Error::Invalid("backup session already closed".into()))
    }

    /// Start an item. `name` must be unique among `source`'s items in the snapshot.
    pub fn item<'s>(
        &'s mut self,
        source: &str,
        name: &str,
        kind: &str,
        progress: &'s dyn Progress,
    ) -> Result<ItemWriter<'s, A>> {
        self.claim_name(source, name)?;
        let state = ItemState::new(&self.shared.repo, BlobKind::Data);
        Ok(ItemWriter {
            session: self,
            state,
            name: name.to_string(),
            source: source.to_string(),
            kind: kind.to_string(),
            progress,
        })
    }

    /// Check an item name and reserve it among `source`'s items.
    fn claim_name(&mut self, source: &str, name: &str) -> Result<()> {
        if name.is_empty() || name.contains('\n') {
            return Err(Error::Invalid(format!(
                "item name {name:?} must be non-empty and one line"
            )));
        }
        if !self.names.insert(name_hash(source, name)) {
            return Err(Error::Invalid(format!(
                "item {name:?} of {source} appears twice in one snapshot"
            )));
        }
        Ok(())
    }

    /// A 32-byte key for a source's own keyed hashes (e.g. row hashes kept
    /// in a local cache), derived from the dedup secret and `purpose`.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        self.shared.dedup.derive(purpose)
    }

    /// The repository id (to key local caches).
    pub fn repository_id(&self) -> &str {
        &self.shared.repo.config().id
    }

    /// Date the snapshot at `time` instead of the session's start: a
    /// snapshot made of earlier snapshots' items (compacted binlog runs)
    /// keeps the time of the newest of them, so retention treats it as it
    /// treated them.
    pub fn set_time(&mut self, time: chrono::DateTime<Utc>) {
        self.time = time;
    }

    /// Record what a source contributed (item counts and bytes are added
    /// automatically; this sets its facts).
    pub fn set_source_facts(&mut self, source: &str, facts: serde_json::Value) {
        self.sources.entry(source.to_string()).or_default().facts = facts;
    }

    /// Record that `source` failed (the message must hold no secret). The
    /// snapshot, if committed, is partial: restores refuse this source's
    /// items, which may be an incomplete set. Its state is dropped, so the
    /// next backup does not build on it.
    pub fn set_source_failed(&mut self, source: &str, message: &str) {
        let s = self.sources.entry(source.to_string()).or_default();
        s.error = Some(message.to_string());
        s.state = None;
        s.state_parts.clear();
        s.info_blobs.clear();
        if !self.opts.tags.iter().any(|t| t == PARTIAL_TAG) {
            self.opts.tags.push(PARTIAL_TAG.to_string());
        }
    }

    /// Whether any source failed.
    pub fn is_partial(&self) -> bool {
        self.sources.values().any(|s| s.error.is_some())
    }

    /// Store `state` (sealed to the metadata recipient, so the next backup
    /// can read it with the backup key) and name it in this snapshot's
    /// summary of `source`. A source keeps here what lets its next run skip
    /// work, e.g. keyed hashes of object keys with their blob ids. It must
    /// not hold anything the backup key should not read.
    pub fn set_source_state(&mut self, source: &str, state: &[u8]) -> Result<()> {
        let (name, len) = self.shared.repo.write_meta_file(FileKind::State, state)?;
        self.shared.added_bytes.fetch_add(len, Ordering::Relaxed);
        self.sources.entry(source.to_string()).or_default().state = Some(name);
        Ok(())
    }

    /// Store one part of a source's state (sealed and tagged like
    /// [`set_source_state`](Self::set_source_state)'s file) and return its
    /// name. Parts are kept only while a snapshot names them: see
    /// [`set_source_state_parts`](Self::set_source_state_parts).
    pub fn write_state_part(&self, part: &[u8]) -> Result<String> {
        let (name, len) = self.shared.repo.write_meta_file(FileKind::State, part)?;
        self.shared.added_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(name)
    }

    /// Name the state parts `source`'s state is made of in this snapshot:
    /// those this session wrote ([`write_state_part`](Self::write_state_part))
    /// and those of an earlier snapshot it builds on (read from that
    /// snapshot's summary, so they exist: prune cannot run while this
    /// session holds its lock).
    pub fn set_source_state_parts(&mut self, source: &str, parts: Vec<String>) {
        self.sources
            .entry(source.to_string())
            .or_default()
            .state_parts = parts;
    }

    /// The plaintext size of `blobs` together, per the index loaded when
    /// the session began; `None` if one is not indexed or is a delta blob.
    /// A source checks an entry of its state against it before carrying an
    /// item over: a forged entry naming other blobs fails here.
    pub fn indexed_size(&self, blobs: &[BlobId]) -> Option<u64> {
        blobs.iter().try_fold(0u64, |sum, b| {
            let l = self.shared.known.get(b)?;
            l.base.is_none().then(|| sum + u64::from(l.plain_length))
        })
    }

    /// Whether every one of `blobs` is already stored (per the index loaded
    /// when the session began, or stored by this session).
    pub fn knows_blobs(&self, blobs: &[BlobId]) -> bool {
        let seen = self.shared.seen.lock();
        blobs.iter().all(|b| {
            self.shared.known.contains(b)
                || self.info_sent.contains(b)
                || seen.as_ref().map(|s| s.contains(b)).unwrap_or(false)
        })
    }

    /// Record an item whose content is already stored (carried over from an
    /// earlier snapshot without reading it again). Its blobs must be known
    /// ([`knows_blobs`](Self::knows_blobs)); otherwise this is an error and
    /// the caller should store the content anew.
    pub fn carry_item(&mut self, item: ManifestItem) -> Result<ManifestItem> {
        let needed: Vec<BlobId> = item.needed_blobs().copied().collect();
        if !self.knows_blobs(&needed) {
            return Err(Error::Invalid(format!(
                "item {:?} names blobs this repository does not hold",
                item.name
            )));
        }
        self.claim_name(&item.source, &item.name)?;
        self.add_manifest_item(&item)?;
        Ok(item)
    }

    /// Whether this repository's format keeps items' details in info blobs
    /// (format 3; see [`ManifestItem::info`]). A source that would write
    /// such items into an older repository must not: older readers would
    /// take them for damage.
    pub fn seals_item_info(&self) -> bool {
        self.shared.repo.config().version >= 3
    }

    /// Store `infos` as one info blob of `source` (a salt line, then one
    /// JSON line each), sealed to the data recipient like every blob, and
    /// return where each landed. Items of later snapshots refer to them
    /// with those [`InfoRef`]s; this snapshot names the blob in the
    /// source's summary (`info_blobs`), which keeps it from `prune` while
    /// the snapshot, and so its state, exists. The salt makes the blob's id
    /// unpredictable: whoever holds the backup key could otherwise confirm
    /// a guessed SHA-256 or header by hashing candidates.
    pub fn put_info_blob(&mut self, source: &str, infos: &[ItemInfo]) -> Result<Vec<InfoRef>> {
        if !self.seals_item_info() {
            return Err(Error::Internal(
                "info blobs need repository format 3 (lifeboat upgrade)".into(),
            ));
        }
        if let Some(e) = self.shared.error_copy() {
            return Err(e);
        }
        let salt = hex::encode(rand::random::<[u8; 16]>());
        let mut lines = format!("{{\"salt\":\"{salt}\"}}\n").into_bytes();
        for info in infos {
            serde_json::to_writer(&mut lines, info).expect("item info serializes");
            lines.push(b'\n');
        }
        if lines.len() as u64 > u64::from(crate::pack::MAX_BLOB_LEN) {
            return Err(Error::Internal(format!(
                "an info blob of {} bytes is over the blob limit",
                lines.len()
            )));
        }
        let blob = self.shared.dedup.blob_id(&lines);
        let jobs = self.jobs()?.clone();
        // Nobody waits for the reply: the id is known, and commit waits for
        // every job before the snapshot is written.
        let (reply, _) = crossbeam_channel::bounded(1);
        send_job(
            BlobKind::Tree,
            &mut 0,
            &reply,
            &jobs,
            lines,
            Some(blob),
            None,
        )?;
        self.stats.blobs += 1;
        self.info_sent.insert(blob);
        self.sources
            .entry(source.to_string())
            .or_default()
            .info_blobs
            .push(blob);
        Ok((1..=infos.len())
            .map(|line| InfoRef {
                blob,
                line: line as u32,
            })
            .collect())
    }

    fn add_manifest_item(&mut self, item: &ManifestItem) -> Result<()> {
        let mut line = serde_json::to_vec(item).expect("manifest item serializes");
        line.push(b'\n');
        let jobs = self
            .jobs
            .clone()
            .ok_or_else(|| Error::Invalid("session closed".into()))?;
        self.manifest.push(&line, &jobs)?;
        for b in item.needed_blobs() {
            if let Some(l) = self.shared.known.get(b) {
                self.reused.insert(l.pack);
                if let Some(base) = l.base.and_then(|b| self.shared.known.get(&b)) {
                    self.reused.insert(base.pack);
                }
            }
        }
        let s = self.sources.entry(item.source.clone()).or_default();
        s.items += 1;
        s.bytes += item.size;
        self.stats.items += 1;
        self.stats.bytes += item.size;
        self.stats.blobs += item.blobs.len() as u64;
        Ok(())
    }

    /// Test hook: a sealing thread panics right after claiming `id`.
    #[cfg(test)]
    fn panic_after_claiming(&self, id: BlobId) {
        if let Ok(mut p) = self.shared.panic_after_claim.lock() {
            *p = Some(id);
        }
    }

    /// Stop the pipeline, wait for every pack to be stored, write the last index.
    fn close(&mut self) -> Result<()> {
        drop(self.jobs.take());
        // Every thread's end is checked: one that died may have claimed
        // blobs it never stored (`guard` turns a panic into the session's
        // error; a join error is a panic that escaped even that).
        for (what, t) in self
            .workers
            .drain(..)
            .map(|t| ("sealing", t))
            .chain(self.uploaders.drain(..).map(|t| ("upload", t)))
        {
            if let Err(panic) = t.join() {
                self.shared.fail(thread_panicked(what, panic.as_ref()));
            }
        }
        let flushed = self.shared.flush_index(1);
        if let Some(e) = self.shared.take_error() {
            return Err(e);
        }
        flushed
    }

    /// Finish: store the manifest, the index and then the snapshot.
    pub fn commit(mut self) -> Result<(SnapshotId, Snapshot)> {
        let jobs = self.jobs()?.clone();
        let (size, sha256, blobs) = self
            .manifest
            .finish(&jobs, &self.shared.broken)
            .map_err(|e| self.shared.error_copy().unwrap_or(e))?;
        drop(jobs);
        self.manifest_blobs = blobs;
        self.close()?;
        let s = &self.shared;
        self.stats.new_blobs = s.new_blobs.load(Ordering::Relaxed);
        self.stats.new_plain_bytes = s.new_plain_bytes.load(Ordering::Relaxed);
        self.stats.duration_ms = self.started.elapsed().as_millis() as u64;
        let mut snapshot = Snapshot {
            version: 1,
            time: self.time,
            hostname: self.opts.hostname.clone().unwrap_or_else(hostname),
            tags: self.opts.tags.clone(),
            note: self.opts.note.clone(),
            sources: std::mem::take(&mut self.sources),
            manifest: ManifestRef {
                blobs: std::mem::take(&mut self.manifest_blobs),
                size,
                sha256,
            },
            stats: self.stats.clone(),
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        };
        // The data this snapshot reuses is still there: a prune that ran
        // meanwhile (its exclusive lock broken, or a clock gone wrong) must
        // not leave a snapshot naming packs it deleted.
        if !self.reused.is_empty() {
            let present: HashSet<String> = self
                .shared
                .repo
                .backend()
                .list(FileKind::Pack)?
                .into_iter()
                .map(|f| f.name)
                .collect();
            if let Some(p) = self.reused.iter().find(|p| !present.contains(&p.to_hex())) {
                return Err(Error::Locked(format!(
                    "pack {} that this backup reuses was deleted while it ran (a prune \
                     despite the lock?): no snapshot was stored; run the backup again",
                    &p.to_hex()[..12]
                )));
            }
        }
        // The snapshot file itself counts towards what this run added.
        let json_len = serde_json::to_vec(&snapshot).map(|v| v.len()).unwrap_or(0) as u64;
        snapshot.stats.added_bytes = s.added_bytes.load(Ordering::Relaxed) + json_len;
        let json = serde_json::to_vec(&snapshot).expect("snapshot serializes");
        let (name, _) = self
            .shared
            .repo
            .write_meta_file(FileKind::Snapshot, &json)?;
        Ok((name.parse()?, snapshot))
    }

    /// Give up: no snapshot. What was uploaded is indexed for reuse.
    pub fn abort(mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("while aborting the backup: {e}");
        }
    }
}

impl<A: Access> Drop for BackupSession<A> {
    fn drop(&mut self) {
        if self.jobs.is_some() {
            let _ = self.close();
        }
    }
}

impl<A: Access> ItemWriter<'_, A> {
    /// Add bytes.
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        if let Some(e) = self.session.shared.error_copy() {
            return Err(e);
        }
        let jobs = self.session.jobs()?.clone();
        self.state.push(data, &jobs)?;
        self.progress.inc(data.len() as u64);
        Ok(())
    }

    /// Add `data` as one blob of its own (no chunking), optionally stored
    /// as a patch against `delta.0` (see [`crate::delta`]); returns its id.
    /// The item's content is still `data`, whatever the storage.
    pub fn push_blob(&mut self, data: Vec<u8>, delta: Option<(BlobId, Vec<u8>)>) -> Result<BlobId> {
        if let Some(e) = self.session.shared.error_copy() {
            return Err(e);
        }
        let id = self.session.shared.dedup.blob_id(&data);
        let jobs = self.session.jobs()?.clone();
        let len = data.len() as u64;
        self.state.push_whole(data, id, delta, &jobs)?;
        self.progress.inc(len);
        Ok(id)
    }

    /// Add `data` as one blob of its own when the caller knows, from its
    /// own keyed hashes of the content, that it is exactly the plaintext
    /// of blob `same` (an unchanged MySQL segment). If the repository holds
    /// `same`, its id is used without hashing `data` again or queuing it
    /// (the item's SHA-256 still covers `data`); otherwise this is
    /// [`push_blob`](Self::push_blob). Returns the blob's id.
    pub fn push_unchanged_blob(&mut self, data: &[u8], same: BlobId) -> Result<BlobId> {
        if !self.session.knows_blobs(&[same]) {
            return self.push_blob(data.to_vec(), None);
        }
        if let Some(e) = self.session.shared.error_copy() {
            return Err(e);
        }
        let jobs = self.session.jobs()?.clone();
        self.state.push_stored(data, same, &jobs)?;
        self.progress.inc(data.len() as u64);
        Ok(same)
    }

    /// End of the item: waits for its blob ids and records it in the manifest.
    pub fn finish(mut self, meta: serde_json::Value) -> Result<ManifestItem> {
        let item = self.complete(meta)?;
        self.session.add_manifest_item(&item)?;
        Ok(item)
    }

    /// Wait for the item's blob ids and return the item without adding it
    /// to the manifest: the source adds it later with
    /// [`BackupSession::carry_item`] (its details perhaps moved to an info
    /// blob, its line in an order of the source's). Its name is free until then.
    pub fn finish_unlisted(mut self, meta: serde_json::Value) -> Result<ManifestItem> {
        let item = self.complete(meta)?;
        self.session
            .names
            .remove_one(&name_hash(&item.source, &item.name));
        Ok(item)
    }

    /// Wait for the item's blob ids; its name stays taken.
    fn complete(&mut self, meta: serde_json::Value) -> Result<ManifestItem> {
        let jobs = self.session.jobs()?.clone();
        let (size, sha256, blobs) = self
            .state
            .finish(&jobs, &self.session.shared.broken)
            .map_err(|e| self.session.shared.error_copy().unwrap_or(e))?;
        if let Some(e) = self.session.shared.error_copy() {
            return Err(e);
        }
        let item = ManifestItem {
            name: std::mem::take(&mut self.name),
            source: std::mem::take(&mut self.source),
            kind: std::mem::take(&mut self.kind),
            size,
            sha256,
            blobs,
            meta,
            info: None,
        };
        Ok(item)
    }
}

impl<A: Access> Drop for ItemWriter<'_, A> {
    /// An item dropped before [`finish`](ItemWriter::finish) is not in the
    /// snapshot, so its name is free again (a source may retry it).
    fn drop(&mut self) {
        if !self.name.is_empty() {
            self.session
                .names
                .remove_one(&name_hash(&self.source, &self.name));
        }
    }
}

impl<A: Access> io::Write for ItemWriter<'_, A> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Back up everything `reader` yields as one item and commit a snapshot.
/// A read error aborts the backup: no snapshot is stored.
pub fn backup_reader<A: Access>(
    repo: &Repository<A>,
    opts: BackupOptions,
    source: &str,
    name: &str,
    reader: &mut dyn io::Read,
    progress: Option<&dyn Progress>,
) -> Result<(SnapshotId, Snapshot)> {
    let progress = progress.unwrap_or(&NoProgress);
    let mut session = repo.begin_backup(opts)?;
    let mut item = session.item(source, name, "stream", progress)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                drop(item);
                session.abort();
                return Err(Error::Source(format!("reading {name}: {e}")));
            }
        };
        item.push(&buf[..n])?;
    }
    item.finish(serde_json::Value::Null)?;
    session.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, LocalBackend};
    use crate::{InitOptions, NoProgress, PruneOptions, RestoreKey};

    #[test]
    fn a_carried_item_takes_its_details_from_an_info_line_that_prune_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let key = RestoreKey::generate();
        let (repo, _) = Repository::init(backend.clone(), &key, &InitOptions::default()).unwrap();
        let body = b"scan of a tooth".to_vec();
        let meta = serde_json::json!({"etag": "e1", "metadata": {"patient": "Jane Doe"}});

        // Night 1: the object is read; its details go into an info blob
        // that only the snapshot's summary names.
        let mut s = repo.begin_backup(BackupOptions::default()).unwrap();
        assert!(s.seals_item_info());
        let mut w = s.item("objects", "a.pdf", "object", &NoProgress).unwrap();
        w.push(&body).unwrap();
        let fetched = w.finish(meta.clone()).unwrap();
        let refs = s
            .put_info_blob(
                "objects",
                &[ItemInfo {
                    sha256: fetched.sha256.clone(),
                    meta: meta.clone(),
                }],
            )
            .unwrap();
        let info = refs[0].blob;
        assert_eq!(refs[0].line, 1, "after the salt line");
        let (first, _) = s.commit().unwrap();

        // Night 2: carried unread, by reference to line 1.
        let mut s = repo.begin_backup(BackupOptions::default()).unwrap();
        let carried = ManifestItem {
            sha256: String::new(),
            meta: serde_json::Value::Null,
            info: Some(InfoRef {
                blob: info,
                line: 1,
            }),
            ..fetched.clone()
        };
        s.carry_item(carried.clone()).unwrap();
        let mut bad = carried.clone();
        bad.name = "b.pdf".into();
        bad.info = Some(InfoRef {
            blob: info,
            line: 0,
        });
        s.carry_item(bad).unwrap();
        let (_, snap) = s.commit().unwrap();

        // Night 1 is forgotten and pruned: the info blob stays, since
        // night 2's items need it.
        let full = Repository::open_for_restore(backend, &key).unwrap();
        full.forget(&[first]).unwrap();
        full.prune(&PruneOptions::default()).unwrap();
        let (index, _) = full.load_index().unwrap();
        assert!(index.contains(&info));
        let mut lines = full.manifest_lines(&index, &snap).unwrap();
        assert_eq!(
            lines[0], carried,
            "stored as carried: no details in the line"
        );
        let err = full.resolve_info(&index, &mut lines).unwrap_err();
        assert!(
            matches!(&err, Error::Damaged { what, .. } if what == "item b.pdf"),
            "{err}"
        );
        assert_eq!(lines[0].sha256, fetched.sha256);
        assert_eq!(lines[0].meta, meta);
        let mut out = Vec::new();
        full.restore_item(&index, &lines[0], &mut out, &NoProgress)
            .unwrap();
        assert_eq!(out, body);
        assert!(
            full.manifest(&index, &snap).is_err(),
            "b.pdf's line is not an item's"
        );
    }

    #[test]
    fn a_panicking_pipeline_thread_never_commits_and_the_next_backup_stores_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let key = RestoreKey::generate();
        let (repo, _) = Repository::init(backend.clone(), &key, &InitOptions::default()).unwrap();
        let a = b"first source's row\n".repeat(3000);
        let b = b"second source's row\n".repeat(3000);
        let id_a = repo.key().dedup.blob_id(&a);

        // The sealing thread claims `a` (its id is answered and recorded
        // in `seen`), then panics before `a` reaches a pack. The source
        // that sees the error carries on as a failed source, as sources do
        // with their own errors; the other source's item names `a`.
        let mut s = repo.begin_backup(BackupOptions::default()).unwrap();
        s.panic_after_claiming(id_a);
        let mut w = s.item("one", "a", "table", &NoProgress).unwrap();
        assert_eq!(w.push_blob(a.clone(), None).unwrap(), id_a);
        w.finish(serde_json::Value::Null).unwrap();
        let mut w = s.item("two", "b", "table", &NoProgress).unwrap();
        let pushed = w.push_blob(b.clone(), None);
        let finished = pushed.and_then(|_| w.finish(serde_json::Value::Null));
        if let Err(e) = finished {
            s.set_source_failed("two", &e.to_string());
        }
        let err = s.commit().unwrap_err();
        assert!(
            matches!(&err, Error::Internal(m) if m.contains("panicked") && m.contains("no snapshot is stored")),
            "{err}"
        );
        assert!(repo.snapshots().unwrap().0.is_empty(), "nothing committed");

        // The next backup does not believe `a` stored: it stores it.
        let mut s = repo.begin_backup(BackupOptions::default()).unwrap();
        let mut w = s.item("one", "a", "table", &NoProgress).unwrap();
        w.push_blob(a.clone(), None).unwrap();
        let item = w.finish(serde_json::Value::Null).unwrap();
        let (_, snap) = s.commit().unwrap();
        assert!(
            snap.stats.new_blobs >= 2,
            "a and the manifest: {:?}",
            snap.stats
        );
        let full = Repository::open_for_restore(backend, &key).unwrap();
        let (index, _) = full.load_index().unwrap();
        assert!(index.contains(&id_a));
        let mut out = Vec::new();
        full.restore_item(&index, &item, &mut out, &NoProgress)
            .unwrap();
        assert_eq!(out, a);
        let report = full.verify(&Default::default(), &NoProgress).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn an_unchanged_blob_is_counted_not_stored_and_an_unknown_claim_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("repo")));
        let (repo, _) =
            Repository::init(backend, &RestoreKey::generate(), &InitOptions::default()).unwrap();
        let a = b"(1,'a')\n".repeat(5000);
        let mut s = repo.begin_backup(BackupOptions::default()).unwrap();
        let mut item = s.item("mysql", "t", "table", &NoProgress).unwrap();
        let id = item.push_blob(a.clone(), None).unwrap();
        item.finish(serde_json::Value::Null).unwrap();
        s.commit().unwrap();

        let b = b"(2,'b')\n".repeat(10);
        let mut s = repo.begin_backup(BackupOptions::default()).unwrap();
        let mut item = s.item("mysql", "t", "table", &NoProgress).unwrap();
        assert_eq!(item.push_unchanged_blob(&a, id).unwrap(), id);
        // A claim about a blob the repository does not hold is not taken:
        // the bytes are hashed and stored under their own id.
        let bogus = BlobId([7; 32]);
        let idb = item.push_unchanged_blob(&b, bogus).unwrap();
        assert_ne!(idb, bogus);
        let m = item.finish(serde_json::Value::Null).unwrap();
        let whole = [a.clone(), b.clone()].concat();
        assert_eq!(m.blobs, vec![id, idb]);
        assert_eq!(m.size, whole.len() as u64);
        assert_eq!(m.sha256, crate::sha256_hex(&whole));
        let (_, snap) = s.commit().unwrap();
        // Only `b` and the manifest are new.
        assert_eq!(snap.stats.new_blobs, 2, "{:?}", snap.stats);

        let (index, _) = repo.load_index().unwrap();
        let mut out = Vec::new();
        repo.restore_item(&index, &m, &mut out, &NoProgress)
            .unwrap();
        assert_eq!(out, whole);
    }
}
