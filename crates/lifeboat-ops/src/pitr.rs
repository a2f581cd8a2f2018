//! Point-in-time recovery: the MySQL binary log captured into the store
//! between snapshots ([`capture_binlog`]), and a restore that replays a
//! snapshot and then the stored binlog up to a moment ([`restore_until`]).
//!
//! Each capture run is a snapshot tagged `binlog` (a log snapshot: never
//! `latest`, outside the keep-* rules) whose only source, `mysql-binlog`,
//! has a [`Run`] as facts: positions, the server's clock when the run
//! caught up, and the stored pieces. The backup key reads those facts to
//! resume; the pieces are sealed like every item.
//!
//! A window starts at a full snapshot's binlog coordinates (recorded by the
//! dump, provably those of its consistent snapshot) and runs through the
//! chain of runs that continue one another on the same server, to the last
//! run's catch-up time.

use std::cmp::Ordering;

use chrono::{DateTime, TimeZone, Utc};
use lifeboat_mysql::binlog::{GtidSet, Position};
use lifeboat_mysql::{
    ApplyOptions, ApplyReport, Capture, CaptureOptions, Piece, ReplayOptions, ReplayReport, Run,
    SnapshotCoordinates, BINLOG_SOURCE, BINLOG_TAG,
};
use lifeboat_store::{
    Access, FullAccess, Index, ProgressBars, Repository, SnapshotEntry, SnapshotId,
};

use crate::error::{Error, Result};

/// Options of [`capture_binlog`].
pub struct BinlogOptions {
    /// The server and the replica id to read as.
    pub capture: CaptureOptions,
    /// The snapshot's host name (default: this host's).
    pub hostname: Option<String>,
}

/// What [`capture_binlog`] stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BinlogReport {
    /// The run's snapshot.
    pub id: SnapshotId,
    /// What it read.
    pub run: Run,
    /// Where it started: `stored binlog` (where the last run ended) or
    /// `snapshot SHORT_ID` (a full snapshot's coordinates: a new window).
    pub started_from: String,
    /// Set when the run could not continue the stored binlog (the server
    /// purged what was not stored): the window before it ends there.
    pub gap: Option<String>,
}

/// A full MySQL snapshot a window can start from.
struct Base<'a> {
    entry: &'a SnapshotEntry,
    start: Position,
    server: String,
}

/// The snapshot's binlog coordinates, when it has usable ones.
fn base(entry: &SnapshotEntry) -> Option<Base<'_>> {
    let s = entry.snapshot.sources.get("mysql")?;
    if s.error.is_some() || entry.snapshot.is_log() {
        return None;
    }
    match serde_json::from_value(s.facts.get("binlog")?.clone()).ok()? {
        SnapshotCoordinates::At {
            file, pos, server, ..
        } => {
            let start = Position { file, pos };
            start.check().ok()?;
            Some(Base {
                entry,
                start,
                server,
            })
        }
        SnapshotCoordinates::Unavailable { .. } => None,
    }
}

/// The stored runs (of any server), oldest first; unreadable facts are
/// skipped (a forged run is then simply not part of any window).
fn runs(all: &[SnapshotEntry]) -> Vec<(&SnapshotEntry, Run)> {
    all.iter()
        .filter(|e| e.snapshot.is_log())
        .filter_map(|e| {
            let s = e.snapshot.sources.get(BINLOG_SOURCE)?;
            let run: Run = serde_json::from_value(s.facts.clone()).ok()?;
            // The server's clock when the run caught up: after 1970 and no
            // further ahead than a snapshot may be (a forged far-future
            // value would keep binlog_lag met for good, an extreme one
            // overflowed the window's arithmetic).
            let latest = (Utc::now()
                + chrono::TimeDelta::from_std(lifeboat_store::MAX_CLOCK_SKEW).unwrap_or_default())
            .timestamp();
            let sane = run.caught_up_at > 0 && run.caught_up_at <= latest;
            (sane && run.start.check().is_ok() && run.end.check().is_ok() && contiguous(&run))
                .then_some((e, run))
        })
        .collect()
}

/// A run's pieces cover it without a hole: each segment begins where the
/// run or the segment before it ended (or at the start of a later file,
/// after a rotation), and the run ends where its last segment does (or at
/// the start of a later file). A run whose facts leave a hole would make
/// a window skip the transactions in it.
fn contiguous(run: &Run) -> bool {
    let follows =
        |cur: &Position, next: &Position| cur == next || (next.pos == 4 && before(cur, next));
    let mut cur = run.start.clone();
    for seg in &run.segments {
        let start = Position {
            file: seg.file.clone(),
            pos: seg.start,
        };
        if !follows(&cur, &start) || seg.end < seg.start {
            return false;
        }
        cur = Position {
            file: seg.file.clone(),
            pos: seg.end,
        };
    }
    follows(&cur, &run.end)
}

fn before(a: &Position, b: &Position) -> bool {
    a.cmp_in_log(b) == Some(Ordering::Less)
}

fn at_or_before(a: &Position, b: &Position) -> bool {
    matches!(a.cmp_in_log(b), Some(Ordering::Less | Ordering::Equal))
}

/// Where a capture of `capture`'s server starts: where the stored binlog
/// ends, or (the first time, or after a purged gap) the newest full
/// snapshot's coordinates. Returns the position, what it is, and the gap
/// when one was crossed.
fn plan_start<A: Access>(
    repo: &Repository<A>,
    capture: &Capture,
) -> Result<(Position, String, Option<String>)> {
    let server = capture.log.server.clone();
    let (all, _) = repo.snapshots()?;
    let last = runs(&all)
        .into_iter()
        .filter(|(_, r)| r.server == server)
        .max_by(|a, b| a.1.end.cmp_in_log(&b.1.end).unwrap_or(Ordering::Equal))
        .map(|(_, r)| r);
    let newest_base = all
        .iter()
        .rev()
        .filter_map(base)
        .find(|b| b.server == server && !b.entry.snapshot.is_from_the_future());
    Ok(match (&last, &newest_base) {
        (Some(run), _) if capture.log.has(&run.end) => {
            (run.end.clone(), "stored binlog".to_string(), None)
        }
        (Some(run), Some(b)) if before(&run.end, &b.start) && capture.log.has(&b.start) => {
            let gap = format!(
                "the server no longer has binary log {} where the stored binlog ends ({}): the \
                 point-in-time window before it ends at {}; a new window starts at snapshot {} \
                 ({})",
                run.end.file,
                run.end,
                time(run.caught_up_at - 1),
                b.entry.id.short(),
                b.entry.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
            );
            (
                b.start.clone(),
                format!("snapshot {}", b.entry.id.short()),
                Some(gap),
            )
        }
        (Some(run), _) => {
            return Err(Error::Gap(format!(
                "the server no longer has binary log {} where the stored binlog ends ({}; it \
                 keeps {}): the events after {} are lost to point-in-time recovery. Take a \
                 full backup (`lifeboat backup`) to start a new window, then run this again",
                run.end.file,
                run.end,
                capture
                    .log
                    .files
                    .first()
                    .map_or("no file".into(), |(f, _)| format!("{f} and later")),
                time(run.caught_up_at - 1),
            )))
        }
        (None, Some(b)) => (
            b.start.clone(),
            format!("snapshot {}", b.entry.id.short()),
            None,
        ),
        (None, None) => {
            return Err(Error::Invalid(format!(
                "no full MySQL snapshot of this server ({server}) records its binlog \
                 coordinates yet: point-in-time capture starts from one. Run `lifeboat backup` \
                 first"
            )))
        }
    })
}

fn begin_run<A: Access>(
    repo: &Repository<A>,
    opts: &BinlogOptions,
) -> Result<lifeboat_store::BackupSession<A>> {
    Ok(repo.begin_backup(lifeboat_store::BackupOptions {
        tags: vec![BINLOG_TAG.to_string()],
        hostname: opts.hostname.clone(),
        note: None,
    })?)
}

fn commit_run<A: Access>(
    mut session: lifeboat_store::BackupSession<A>,
    run: &Run,
) -> Result<SnapshotId> {
    let facts = serde_json::to_value(run)
        .map_err(|e| Error::Invalid(format!("recording the binlog run: {e}")))?;
    session.set_source_facts(BINLOG_SOURCE, facts);
    Ok(session.commit()?.0)
}

/// Capture the binary log from where the store's binlog ends (or, the
/// first time, from the newest full snapshot's coordinates) until the
/// server has sent everything, as one log snapshot.
pub fn capture_binlog<A: Access>(
    repo: &Repository<A>,
    opts: &BinlogOptions,
    bars: &dyn ProgressBars,
) -> Result<BinlogReport> {
    capture_with(repo, Capture::connect(&opts.capture)?, opts, bars)
}

/// [`capture_binlog`] on a connection already made.
fn capture_with<A: Access>(
    repo: &Repository<A>,
    capture: Capture,
    opts: &BinlogOptions,
    bars: &dyn ProgressBars,
) -> Result<BinlogReport> {
    let (start, started_from, gap) = plan_start(repo, &capture)?;
    let mut session = begin_run(repo, opts)?;
    let bar = bars.bytes("binlog");
    let run = match capture.run(&mut session, &start, bar.as_ref()) {
        Ok(run) => run,
        Err(e) => {
            session.abort();
            return Err(e.into());
        }
    };
    bar.finish();
    let id = commit_run(session, &run)?;
    Ok(BinlogReport {
        id,
        run,
        started_from,
        gap,
    })
}

/// Follow the binary log: one log snapshot every `every` (each holding
/// everything the server had written when it began to close, so the
/// window trails the server by about `every`), until `each` returns
/// false. A dropped connection or a restarted server is reconnected
/// (waiting up to 30 s between tries) and resumes at the last stored
/// position: what was read but not committed is read again, never stored
/// twice. A purged gap, bad settings or a failing store end it.
pub fn follow_binlog<A: Access>(
    repo: &Repository<A>,
    opts: &BinlogOptions,
    every: std::time::Duration,
    bars: &dyn ProgressBars,
    each: &mut dyn FnMut(&BinlogReport) -> bool,
) -> Result<()> {
    let mut wait = std::time::Duration::from_secs(1);
    // Wait, and wait longer next time (up to 30 s) while it keeps failing.
    let pause = |wait: &mut std::time::Duration| {
        std::thread::sleep(*wait);
        *wait = (*wait * 2).min(std::time::Duration::from_secs(30));
    };
    loop {
        let connected = Capture::connect(&opts.capture);
        let mut capture = match connected {
            Ok(c) => c,
            Err(e @ lifeboat_mysql::Error::Wire { .. })
            | Err(e @ lifeboat_mysql::Error::Sql { .. }) => {
                tracing::warn!("binlog capture: {e}; trying again in {}s", wait.as_secs());
                pause(&mut wait);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (start, mut started_from, mut gap) = plan_start(repo, &capture)?;
        if let Err(e) = capture.follow(&start) {
            tracing::warn!("binlog capture: {e}; trying again in {}s", wait.as_secs());
            pause(&mut wait);
            continue;
        }
        loop {
            let mut session = begin_run(repo, opts)?;
            let bar = bars.bytes("binlog");
            let run = match capture.next_run(&mut session, every, bar.as_ref()) {
                Ok(run) => run,
                Err(e) => {
                    session.abort();
                    match e {
                        lifeboat_mysql::Error::Wire { .. } | lifeboat_mysql::Error::Sql { .. } => {
                            tracing::warn!(
                                "binlog capture: {e}; reconnecting in {}s from the last stored position",
                                wait.as_secs()
                            );
                            break;
                        }
                        e => return Err(e.into()),
                    }
                }
            };
            bar.finish();
            let id = commit_run(session, &run)?;
            wait = std::time::Duration::from_secs(1);
            let report = BinlogReport {
                id,
                run,
                started_from: std::mem::replace(&mut started_from, "stored binlog".into()),
                gap: gap.take(),
            };
            if !each(&report) {
                return Ok(());
            }
        }
        pause(&mut wait);
    }
}

fn time(t: i64) -> String {
    Utc.timestamp_opt(t, 0).single().map_or(t.to_string(), |d| {
        d.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

/// A point-in-time window: from a full snapshot through the runs that
/// continue its coordinates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Window {
    /// The snapshot it starts from.
    pub snapshot: SnapshotId,
    /// That snapshot's time.
    pub from: DateTime<Utc>,
    /// Every transaction committed at or before this is stored.
    pub until: DateTime<Utc>,
    /// The server.
    pub server: String,
}

/// The chain from `b`'s coordinates.
struct Chain<'a> {
    /// The pieces to apply: the run, the segment, where in it to begin.
    pieces: Vec<(&'a SnapshotEntry, lifeboat_mysql::Segment, u64)>,
    /// The time up to which every commit is in them (`None`: no run
    /// continues it).
    covered: Option<i64>,
    /// The runs it follows.
    runs: Vec<SnapshotId>,
    /// Where its last run ends (the base's coordinates: no run).
    end: Position,
}

fn chain<'a>(
    b: &Base<'_>,
    runs: &[(&'a SnapshotEntry, Run)],
    stop_after: Option<i64>,
) -> Chain<'a> {
    let mut cur = b.start.clone();
    let mut covered: Option<i64> = None;
    let mut pieces = Vec::new();
    let mut used = Vec::new();
    loop {
        let next = runs
            .iter()
            .filter(|(_, r)| r.server == b.server)
            .filter(|(_, r)| at_or_before(&r.start, &cur) && at_or_before(&cur, &r.end))
            .max_by(|x, y| {
                x.1.end
                    .cmp_in_log(&y.1.end)
                    .unwrap_or(Ordering::Equal)
                    .then(x.1.caught_up_at.cmp(&y.1.caught_up_at))
            });
        let Some((entry, run)) = next else { break };
        let reach = run.caught_up_at - 1;
        let moves = before(&cur, &run.end) || covered.is_none_or(|c| reach > c);
        if !moves {
            break;
        }
        used.push(entry.id);
        for seg in &run.segments {
            let end = Position {
                file: seg.file.clone(),
                pos: seg.end,
            };
            if !before(&cur, &end) {
                continue;
            }
            let from = if seg.file == cur.file {
                cur.pos.max(seg.start)
            } else {
                seg.start
            };
            pieces.push((*entry, seg.clone(), from));
        }
        cur = run.end.clone();
        covered = Some(covered.map_or(reach, |c| c.max(reach)));
        if stop_after.is_some_and(|u| covered.is_some_and(|c| c >= u)) {
            break;
        }
    }
    Chain {
        pieces,
        covered,
        runs: used,
        end: cur,
    }
}

/// Every point-in-time window the store holds, oldest first.
pub fn windows(all: &[SnapshotEntry]) -> Vec<Window> {
    let runs = runs(all);
    all.iter()
        .filter_map(base)
        .filter_map(|b| {
            let until = Utc
                .timestamp_opt(chain(&b, &runs, None).covered?, 0)
                .single()?;
            Some(Window {
                snapshot: b.entry.id,
                from: b.entry.snapshot.time,
                until,
                server: b.server.clone(),
            })
        })
        .collect()
}

/// Options of [`restore_until`].
pub struct RestoreUntilOptions {
    /// `latest` or a snapshot id: start from this snapshot or an older one.
    pub snapshot: String,
    /// Apply what committed at or before this moment.
    pub until: DateTime<Utc>,
    /// Instead of a moment: up to and including the last transaction of
    /// this GTID set (`until` then only bounds the snapshot's time).
    pub until_gtid: Option<GtidSet>,
    /// With several databases in the snapshot: which.
    pub database: Option<String>,
    /// How the snapshot is replayed (the target among them).
    pub replay: ReplayOptions,
}

/// What [`restore_until`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreUntilReport {
    /// The snapshot replayed.
    pub snapshot: SnapshotId,
    /// Its time.
    pub snapshot_time: DateTime<Utc>,
    /// The moment restored to.
    pub until: DateTime<Utc>,
    /// The window it was in.
    pub window_until: DateTime<Utc>,
    /// The replay of the snapshot, checked against its manifest.
    pub replay: ReplayReport,
    /// The binlog applied after it.
    pub applied: ApplyReport,
}

/// What a restore to a moment replays and applies: the base snapshot and
/// the stored binlog after it ([`plan_until`]).
#[derive(Debug, Clone)]
pub struct UntilPlan {
    /// The full snapshot replayed first.
    pub snapshot: SnapshotEntry,
    /// The runs' pieces to apply after it, in log order: the run, the
    /// segment, where in it to begin, where in it to stop (see
    /// [`Piece::to`]).
    pieces: Vec<(SnapshotEntry, lifeboat_mysql::Segment, u64, Option<u64>)>,
    /// The moment restored to (with a GTID set: the bound on the
    /// snapshot's time).
    pub until: DateTime<Utc>,
    /// Up to the last transaction of this set instead of a moment.
    pub until_gtid: Option<GtidSet>,
    /// The end of the window the moment is in.
    pub window_until: DateTime<Utc>,
    /// Instead of a moment: exactly up to this position of the server's
    /// log (a later snapshot's coordinates, a derived backup's end).
    pub to: Option<Position>,
    /// The log snapshots (binlog runs) the pieces come from.
    pub runs: Vec<SnapshotId>,
}

/// Choose what restores the database to `until` (or `until_gtid`): the
/// newest full snapshot taken at or before it (and not after the one
/// `snapshot` names; `latest`: any), and the stored runs that continue it
/// past that moment. A moment outside every window is refused with the
/// windows that exist.
pub fn plan_until(
    repo: &Repository<FullAccess>,
    snapshot: &str,
    until_time: DateTime<Utc>,
    until_gtid: Option<&GtidSet>,
) -> Result<UntilPlan> {
    let (all, _) = repo.snapshots()?;
    // Binlog times are whole seconds: a snapshot taken within the second
    // of `until` holds only commits stamped at or before it.
    let second = |t: DateTime<Utc>| t.timestamp();
    let limit = if snapshot == "latest" {
        second(until_time)
    } else {
        let named = repo.find_snapshot(snapshot)?;
        if second(named.snapshot.time) > second(until_time) {
            return Err(Error::Invalid(format!(
                "snapshot {} was taken at {}, after --until {}: name an older snapshot, or \
                 `latest` (the newest one at or before that moment is used)",
                named.id.short(),
                named.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
                until_time.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        second(named.snapshot.time)
    };
    let until = until_time.timestamp();
    let runs = runs(&all);
    let shown = || {
        let w = windows(&all);
        if w.is_empty() {
            "the store holds no point-in-time window (`lifeboat binlog` has not stored any binlog \
             after a full snapshot)"
                .to_string()
        } else {
            let list: Vec<String> = w
                .iter()
                .map(|w| {
                    format!(
                        "{} to {} (from snapshot {})",
                        w.from.format("%Y-%m-%d %H:%M:%S"),
                        w.until.format("%Y-%m-%d %H:%M:%S UTC"),
                        w.snapshot.short()
                    )
                })
                .collect();
            format!("the windows stored are: {}", list.join("; "))
        }
    };
    // With a GTID set: not a snapshot the stored runs show was taken after
    // the set's last transaction.
    let set_ends = until_gtid.map(GtidSet::ends);
    let after_set = |b: &Base<'_>| {
        let Some(ends) = &set_ends else {
            return false;
        };
        runs.iter()
            .filter(|(_, r)| r.server == b.server && at_or_before(&r.end, &b.start))
            .flat_map(|(_, r)| r.gtids.iter())
            .filter_map(|g| g.parse::<GtidSet>().ok())
            .flat_map(|g| g.ends())
            .any(|g| ends.iter().any(|end| GtidSet::reaches(end, &g)))
    };
    let Some(b) = all
        .iter()
        .rev()
        .filter(|e| second(e.snapshot.time) <= limit)
        .filter_map(base)
        .find(|b| !after_set(b))
    else {
        return Err(Error::Invalid(format!(
            "no full MySQL snapshot with binlog coordinates was taken at or before {}: {}",
            until_time.format("%Y-%m-%d %H:%M:%S UTC"),
            shown()
        )));
    };
    let gtid_mode = until_gtid.is_some();
    let Chain {
        pieces,
        covered,
        runs: used,
        ..
    } = chain(&b, &runs, (!gtid_mode).then_some(until));
    if !gtid_mode && covered.is_none_or(|c| c < until) {
        return Err(Error::Invalid(format!(
            "{} is not covered by the stored binlog after snapshot {} ({}): {}. Run `lifeboat \
             binlog` if the server still has it, or choose a moment inside a window",
            until_time.format("%Y-%m-%d %H:%M:%S UTC"),
            b.entry.id.short(),
            b.entry.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
            shown()
        )));
    }
    Ok(UntilPlan {
        snapshot: b.entry.clone(),
        pieces: pieces
            .into_iter()
            .map(|(e, seg, from)| (e.clone(), seg, from, None))
            .collect(),
        until: until_time,
        until_gtid: until_gtid.cloned(),
        window_until: covered
            .and_then(|c| Utc.timestamp_opt(c, 0).single())
            .unwrap_or(until_time),
        to: None,
        runs: used,
    })
}

/// Apply `plan`'s stored binlog to `target`, where its snapshot was
/// replayed (`items`: that snapshot's manifest, one database selected).
pub fn apply_until(
    repo: &Repository<FullAccess>,
    index: &Index,
    plan: &UntilPlan,
    items: &[lifeboat_store::ManifestItem],
    target: &lifeboat_mysql::MysqlOptions,
) -> Result<ApplyReport> {
    let (source_database, tables) = lifeboat_mysql::snapshot_tables(repo, index, items)?;
    let mut manifests = Manifests::default();
    let mut resolved = Vec::with_capacity(plan.pieces.len());
    for (entry, seg, from, to) in &plan.pieces {
        resolved.push(Piece {
            item: manifests.item(repo, index, entry, seg)?,
            from: *from,
            start: seg.start,
            to: *to,
        });
    }
    let gtid_mode = plan.until_gtid.is_some() || plan.to.is_some();
    Ok(lifeboat_mysql::apply(
        repo,
        index,
        &resolved,
        &ApplyOptions {
            target: target.clone(),
            source_database,
            tables,
            until: (!gtid_mode).then_some(plan.until.timestamp()),
            until_gtid: plan.until_gtid.clone(),
            // Up to a position: a derived night or a proof.
            strict: plan.to.is_some(),
        },
    )?)
}

/// What [`compact_runs`] did (or would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactReport {
    /// Binlog runs merged into larger ones (and forgotten).
    pub runs_merged: usize,
    /// The runs that replaced them.
    pub runs_written: usize,
}

/// Runs newer than this are left as they are: follow mode's recent
/// minutes stay fine-grained, and no run a capture may still be extending
/// from is touched.
const COMPACT_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// [`COMPACT_AFTER`], which a debug build's tests may shorten
/// (`LIFEBOAT_TEST_COMPACT_AFTER_SECS`).
fn compact_after() -> chrono::TimeDelta {
    #[cfg(debug_assertions)]
    if let Some(s) = std::env::var("LIFEBOAT_TEST_COMPACT_AFTER_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return chrono::TimeDelta::seconds(s);
    }
    COMPACT_AFTER
}

/// At most this many segments in a merged run (its facts stay small).
const MAX_MERGED_SEGMENTS: usize = 2000;

/// Merge the binlog runs of each UTC day (a run a minute in follow mode:
/// 1,440 snapshot files a day, each read by every `snapshots`) into one
/// run per day and server: contiguous runs (each starting where the one
/// before ended) older than an hour become one log snapshot that carries
/// their items as they are stored (no data is read or rewritten), dated
/// at the newest of them, with their segments in order. The merged run is
/// committed before the old ones are forgotten: interrupted, the store
/// holds both, and windows and restores read the merged one. Prune then
/// compacts their small packs ([`PruneOptions::compact_small`]).
///
/// [`PruneOptions::compact_small`]: lifeboat_store::PruneOptions::compact_small
pub fn compact_runs(repo: &Repository<FullAccess>, dry_run: bool) -> Result<CompactReport> {
    let (all, _) = repo.snapshots()?;
    let runs = runs(&all);
    let cutoff = Utc::now() - compact_after();
    // Runs a bucket lock rule still protects cannot be forgotten once
    // merged: they wait until it frees them.
    let protected = repo.protected_files(lifeboat_store::backend::FileKind::Snapshot)?;
    let mut groups: Vec<Vec<&(&SnapshotEntry, Run)>> = Vec::new();
    for r in runs
        .iter()
        .filter(|(e, _)| e.snapshot.time < cutoff && !protected.contains_key(&e.id.to_hex()))
    {
        let joins = groups.last().and_then(|g| g.last()).is_some_and(|(pe, p)| {
            p.server == r.1.server
                && p.end == r.1.start
                && pe.snapshot.time.date_naive() == r.0.snapshot.time.date_naive()
        });
        let fits = groups.last().is_some_and(|g| {
            g.iter().map(|(_, x)| x.segments.len()).sum::<usize>() + r.1.segments.len()
                <= MAX_MERGED_SEGMENTS
        });
        match groups.last_mut() {
            Some(g) if joins && fits => g.push(r),
            _ => groups.push(vec![r]),
        }
    }
    let mut report = CompactReport::default();
    let merges: Vec<_> = groups.into_iter().filter(|g| g.len() >= 2).collect();
    if merges.is_empty() {
        return Ok(report);
    }
    let index = if dry_run {
        None
    } else {
        Some(repo.load_index()?.0)
    };
    for group in merges {
        report.runs_merged += group.len();
        report.runs_written += 1;
        let Some(index) = &index else { continue };
        let (last_entry, last) = group[group.len() - 1];
        let mut session = repo.begin_backup(lifeboat_store::BackupOptions {
            tags: vec![BINLOG_TAG.to_string()],
            hostname: Some(last_entry.snapshot.hostname.clone()),
            note: None,
        })?;
        session.set_time(last_entry.snapshot.time);
        let mut merged = Run {
            server: last.server.clone(),
            flavor: last.flavor.clone(),
            start: group[0].1.start.clone(),
            end: last.end.clone(),
            caught_up_at: group.iter().map(|(_, r)| r.caught_up_at).max().unwrap_or(0),
            segments: Vec::new(),
            gtids: Vec::new(),
            // Counted only when every merged run counted them.
            statements: group.iter().map(|(_, r)| r.statements).sum::<Option<u64>>(),
            last_statement: group
                .iter()
                .filter_map(|(_, r)| r.last_statement.clone())
                .max_by(|a, b| a.cmp_in_log(b).unwrap_or(Ordering::Equal)),
        };
        // The last GTID of each stream (MySQL `uuid:n`, MariaDB `d-s-n`).
        let mut gtids: std::collections::BTreeMap<String, String> = Default::default();
        for (entry, run) in &group {
            for item in repo.manifest(index, &entry.snapshot)? {
                session.carry_item(item)?;
            }
            merged.segments.extend(run.segments.iter().cloned());
            for g in &run.gtids {
                let stream = match g.split_once(':') {
                    Some((uuid, _)) => uuid,
                    None => g.split('-').next().unwrap_or(g),
                };
                gtids.insert(stream.to_string(), g.clone());
            }
        }
        merged.gtids = gtids.into_values().collect();
        commit_run(session, &merged)?;
        let old: Vec<SnapshotId> = group.iter().map(|(e, _)| e.id).collect();
        repo.forget(&old)?;
    }
    Ok(report)
}

/// The runs' manifests, each read once.
#[derive(Default)]
struct Manifests(std::collections::HashMap<SnapshotId, Vec<lifeboat_store::ManifestItem>>);

impl Manifests {
    /// The item of a run's segment.
    fn item(
        &mut self,
        repo: &Repository<FullAccess>,
        index: &Index,
        run: &SnapshotEntry,
        seg: &lifeboat_mysql::Segment,
    ) -> Result<lifeboat_store::ManifestItem> {
        let items = match self.0.entry(run.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(repo.manifest(index, &run.snapshot)?)
            }
        };
        items
            .iter()
            .find(|i| i.source == BINLOG_SOURCE && i.name == seg.item)
            .cloned()
            .ok_or_else(|| {
                Error::Mysql(lifeboat_mysql::Error::Damaged(format!(
                    "binlog run {} names item {} that its manifest lacks",
                    run.id.short(),
                    seg.item
                )))
            })
    }
}

/// A point-in-time window as `verify` found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowCheck {
    /// The window.
    #[serde(flatten)]
    pub window: Window,
    /// Runs it is made of.
    pub runs: usize,
    /// Stored segments it is made of.
    pub segments: usize,
    /// With the data read: the transactions its segments hold.
    pub transactions: Option<u64>,
}

/// The stored binlog as `verify` found it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BinlogCheck {
    /// Every window, oldest snapshot first.
    pub windows: Vec<WindowCheck>,
    /// Runs that no window reaches and that are older than every run a
    /// window of their server follows (binlog retention dropped what they
    /// continued): kept, not damage.
    pub runs_before_windows: usize,
    /// Segments read whole (with the data).
    pub segments_read: usize,
    /// Holes in a window, runs no window reaches.
    pub problems: Vec<lifeboat_store::Problem>,
}

/// The windows and their runs from the snapshots' facts (the backup key
/// reads them): a run that no window reaches, newer than a run a window of
/// its server follows, means binlog before it is missing from the store.
pub fn check_binlog(all: &[SnapshotEntry]) -> BinlogCheck {
    let runs = runs(all);
    let mut check = BinlogCheck::default();
    let mut used = std::collections::HashSet::new();
    for b in all.iter().filter_map(base) {
        let c = chain(&b, &runs, None);
        let Some(until) = c.covered.and_then(|t| Utc.timestamp_opt(t, 0).single()) else {
            continue;
        };
        used.extend(c.runs.iter().copied());
        check.windows.push(WindowCheck {
            window: Window {
                snapshot: b.entry.id,
                from: b.entry.snapshot.time,
                until,
                server: b.server.clone(),
            },
            runs: c.runs.len(),
            segments: c.pieces.len(),
            transactions: None,
        });
    }
    // A run inside one a window follows holds nothing that is missing (the
    // runs a compaction merged, when it stopped before forgetting them).
    let inside_used = |run: &Run| {
        runs.iter().any(|(e, r)| {
            used.contains(&e.id)
                && r.server == run.server
                && at_or_before(&r.start, &run.start)
                && at_or_before(&run.end, &r.end)
        })
    };
    // The oldest run of each server a window follows: a run no window
    // reaches after it is binlog missing in between; one before it is
    // where binlog retention cut (what it continued was dropped).
    let mut first_used: std::collections::HashMap<&str, DateTime<Utc>> =
        std::collections::HashMap::new();
    for (e, r) in runs.iter().filter(|(e, _)| used.contains(&e.id)) {
        let t = first_used
            .entry(r.server.as_str())
            .or_insert(e.snapshot.time);
        *t = (*t).min(e.snapshot.time);
    }
    // Each derived MySQL backup needs its full snapshot and the stored
    // binlog up to its end.
    for (e, err) in broken_derived_in(all, &runs) {
        check.problems.push(lifeboat_store::Problem {
            what: format!("snapshot {} (mysql, derived)", e.id.short()),
            detail: err.to_string(),
            needed_by: vec![format!("snapshot {}", e.id.short())],
        });
    }
    for (entry, run) in &runs {
        if used.contains(&entry.id) || inside_used(run) {
            continue;
        }
        if first_used
            .get(run.server.as_str())
            .is_none_or(|t| entry.snapshot.time < *t)
        {
            check.runs_before_windows += 1;
            continue;
        }
        check.problems.push(lifeboat_store::Problem {
            what: format!("binlog run {}", entry.id.short()),
            detail: format!(
                "it stores {} {} to {} {} of server {}, but no point-in-time window reaches it: \
                 the binlog before it is not in the store (a run lost or forgotten); the next \
                 full backup starts a new window",
                run.start.file, run.start.pos, run.end.file, run.end.pos, run.server
            ),
            needed_by: Vec::new(),
        });
    }
    check
}

/// Read every window's segments whole (each once): checksums, positions
/// that end where the runs say, and GTIDs with no transaction missing,
/// inside each segment and from one segment of a window to the next.
pub fn read_binlog(
    repo: &Repository<FullAccess>,
    index: &Index,
    all: &[SnapshotEntry],
    check: &mut BinlogCheck,
) -> Result<()> {
    let runs = runs(all);
    let mut manifests = Manifests::default();
    let mut read: std::collections::HashMap<(SnapshotId, String), lifeboat_mysql::SegmentCheck> =
        std::collections::HashMap::new();
    for b in all.iter().filter_map(base) {
        let c = chain(&b, &runs, None);
        let Some(wc) = check
            .windows
            .iter_mut()
            .find(|x| x.window.snapshot == b.entry.id)
        else {
            continue;
        };
        let mut links = lifeboat_mysql::GtidLinks::default();
        let mut holes = Vec::new();
        let mut transactions = 0;
        for (i, (entry, seg, from)) in c.pieces.iter().enumerate() {
            let key = (entry.id, seg.item.clone());
            if !read.contains_key(&key) {
                let span = lifeboat_mysql::SegmentSpan {
                    item: manifests.item(repo, index, entry, seg)?,
                    start: seg.start,
                    end: seg.end,
                };
                let found = lifeboat_mysql::check_segment(repo, index, &span)?;
                for h in &found.holes {
                    check.problems.push(lifeboat_store::Problem {
                        what: format!("binlog run {} item {}", entry.id.short(), seg.item),
                        detail: h.clone(),
                        needed_by: vec![format!("snapshot {} item {}", entry.id.short(), seg.item)],
                    });
                }
                check.segments_read += 1;
                read.insert(key.clone(), found);
            }
            let found = &read[&key];
            transactions += found.transactions;
            links.follow(found, i > 0 && *from > seg.start, &mut holes);
        }
        wc.transactions = Some(transactions);
        for h in holes {
            check.problems.push(lifeboat_store::Problem {
                what: format!("point-in-time window from snapshot {}", b.entry.id.short()),
                detail: h,
                needed_by: Vec::new(),
            });
        }
    }
    Ok(())
}

/// Replay the newest full snapshot taken at or before `until` (and not
/// after the one named), check it against its manifest, then apply the
/// stored binlog up to `until` ([`plan_until`], [`apply_until`]).
pub fn restore_until(
    repo: &Repository<FullAccess>,
    index: &Index,
    opts: &RestoreUntilOptions,
    bars: &dyn ProgressBars,
) -> Result<RestoreUntilReport> {
    let plan = plan_until(repo, &opts.snapshot, opts.until, opts.until_gtid.as_ref())?;
    let snap = &plan.snapshot.snapshot;
    let items = repo.manifest(index, snap)?;
    let items = lifeboat_mysql::select_database(&items, opts.database.as_deref())?;
    let replay = lifeboat_mysql::replay(repo, index, &items, &opts.replay, bars)?;
    let applied = apply_until(repo, index, &plan, &items, &opts.replay.target)?;
    Ok(RestoreUntilReport {
        snapshot: plan.snapshot.id,
        snapshot_time: snap.time,
        until: opts.until,
        window_until: plan.window_until,
        replay,
        applied,
    })
}

/// Options of [`prove_binlog`] and [`restore_derived`]: a snapshot whose
/// MySQL content is a full snapshot and the stored binlog after it.
pub struct BinlogRestoreOptions {
    /// `latest` or a snapshot id: the full snapshot to prove, or the
    /// derived backup to restore.
    pub snapshot: String,
    /// With several databases in the snapshots: which.
    pub database: Option<String>,
    /// How the full snapshot is replayed (the target among them).
    pub replay: ReplayOptions,
}

/// What [`prove_binlog`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProveReport {
    /// The full snapshot proved.
    pub snapshot: SnapshotId,
    /// Its time.
    pub snapshot_time: DateTime<Utc>,
    /// The earlier full snapshot replayed.
    pub base: SnapshotId,
    /// Its time.
    pub base_time: DateTime<Utc>,
    /// The runs whose binlog was applied.
    pub runs: Vec<SnapshotId>,
    /// The replay of the earlier snapshot, checked against its manifest.
    pub replay: ReplayReport,
    /// The binlog applied after it, up to the proved snapshot's
    /// coordinates.
    pub applied: ApplyReport,
    /// The target read back and compared with the proved snapshot's
    /// manifest: every table's rows and checksum, every object counted.
    pub check: ReplayReport,
}

/// The pieces of `c` before `to`, the last one cut at it.
fn pieces_to<'a>(
    c: &Chain<'a>,
    to: &Position,
) -> Vec<(&'a SnapshotEntry, lifeboat_mysql::Segment, u64, Option<u64>)> {
    c.pieces
        .iter()
        .filter(|(_, seg, from)| {
            before(
                &Position {
                    file: seg.file.clone(),
                    pos: *from,
                },
                to,
            )
        })
        .map(|(e, seg, from)| {
            let cut = (seg.file == to.file && to.pos < seg.end).then_some(to.pos);
            (*e, seg.clone(), *from, cut)
        })
        .collect()
}

/// Prove that the stored binlog reproduces a full snapshot: replay the
/// newest earlier full snapshot of the same server whose stored binlog
/// reaches `snapshot`'s coordinates, apply that binlog up to exactly those
/// coordinates, and read every table back against `snapshot`'s manifest.
/// This is what the periodic full read proves about the nights between
/// (their binlog, captured or derived, gives what a real dump gives); a
/// table that differs is an error naming it.
pub fn prove_binlog(
    repo: &Repository<FullAccess>,
    index: &Index,
    opts: &BinlogRestoreOptions,
    bars: &dyn ProgressBars,
) -> Result<ProveReport> {
    let (all, _) = repo.snapshots()?;
    let named = repo.find_snapshot(&opts.snapshot)?;
    let Some(proved) = base(&named) else {
        return Err(Error::Invalid(format!(
            "snapshot {} holds no MySQL backup with binlog coordinates (a binlog run, a \
             partial snapshot, or a server with binary logging off): name a full snapshot \
             taken while capture was on",
            named.id.short()
        )));
    };
    let runs = runs(&all);
    let found = all
        .iter()
        .rev()
        .filter_map(base)
        .filter(|b| {
            b.server == proved.server
                && b.entry.id != proved.entry.id
                && b.entry.snapshot.time < proved.entry.snapshot.time
                && before(&b.start, &proved.start)
        })
        .map(|b| {
            let c = chain(&b, &runs, None);
            (b, c)
        })
        .find(|(_, c)| at_or_before(&proved.start, &c.end));
    let Some((b, c)) = found else {
        return Err(Error::Invalid(format!(
            "no earlier full snapshot of server {} (at coordinates before {}) has stored \
             binlog reaching snapshot {}'s: nothing to prove it against. Keep `lifeboat binlog` \
             running between full backups (see `lifeboat verify` for the windows stored)",
            proved.server,
            proved.start,
            named.id.short()
        )));
    };
    let plan = plan_to(&b, c, &proved.start, named.snapshot.time);
    let proved_items = repo.manifest(index, &named.snapshot)?;
    let proved_items = lifeboat_mysql::select_database(&proved_items, opts.database.as_deref())?;
    let (replay, applied) = restore_plan(
        repo,
        index,
        &plan,
        opts.database.as_deref(),
        &opts.replay,
        bars,
    )?;
    let expected =
        lifeboat_mysql::expected_tables(repo, index, &proved_items, &opts.replay.target)?;
    let check = lifeboat_mysql::verify_database(
        repo,
        index,
        &proved_items,
        &opts.replay.target,
        opts.replay.connections,
        &expected,
    )
    .map_err(|e| match e {
        lifeboat_mysql::Error::Mismatch(m) => Error::Damaged(format!(
            "snapshot {} replayed with the stored binlog up to snapshot {}'s coordinates ({}) \
             does not give snapshot {}: {m}. The binlog between them misses changes (a write \
             with sql_log_bin=0, a binlog filter, a stored run that is not the server's log) \
             or the snapshot is not what the server held: restore from full snapshots, not \
             from this binlog window, and find the cause",
            b.entry.id.short(),
            named.id.short(),
            proved.start,
            named.id.short()
        )),
        e => e.into(),
    })?;
    Ok(ProveReport {
        snapshot: named.id,
        snapshot_time: named.snapshot.time,
        base: b.entry.id,
        base_time: b.entry.snapshot.time,
        runs: plan.runs.clone(),
        replay,
        applied,
        check,
    })
}

/// The plan that replays `b` and applies its chain `c` up to exactly `to`
/// (which the chain reaches). `time` is what the plan restores to, for
/// reports.
fn plan_to(b: &Base<'_>, c: Chain<'_>, to: &Position, time: DateTime<Utc>) -> UntilPlan {
    let pieces: Vec<_> = pieces_to(&c, to)
        .into_iter()
        .map(|(e, seg, from, cut)| (e.clone(), seg, from, cut))
        .collect();
    let mut runs: Vec<SnapshotId> = Vec::new();
    for (e, ..) in &pieces {
        if !runs.contains(&e.id) {
            runs.push(e.id);
        }
    }
    UntilPlan {
        snapshot: b.entry.clone(),
        pieces,
        until: time,
        until_gtid: None,
        window_until: c
            .covered
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .unwrap_or(time),
        to: Some(to.clone()),
        runs,
    }
}

/// The snapshots the derived backups among `all` for which `kept` holds
/// need, each with the derived backup that needs it: its full snapshot
/// and the binlog runs its stored binlog comes from. A derived backup that
/// cannot be planned (what it needs is already gone) needs nothing.
pub fn needed_by_derived(
    all: &[SnapshotEntry],
    kept: &dyn Fn(&SnapshotId) -> bool,
) -> Vec<(SnapshotId, SnapshotId)> {
    let runs = runs(all);
    let mut out = Vec::new();
    for e in all.iter().filter(|e| kept(&e.id) && derived(e).is_some()) {
        if let Ok(plan) = plan_derived_in(all, &runs, e) {
            out.push((plan.snapshot.id, e.id));
            out.extend(plan.runs.iter().map(|r| (*r, e.id)));
        }
    }
    out
}

/// The derived backups among `all` that cannot be restored (what they
/// are made of is gone, or their facts are forged), each with why.
pub fn broken_derived(all: &[SnapshotEntry]) -> Vec<(&SnapshotEntry, Error)> {
    broken_derived_in(all, &runs(all))
}

fn broken_derived_in<'a>(
    all: &'a [SnapshotEntry],
    runs: &[(&SnapshotEntry, Run)],
) -> Vec<(&'a SnapshotEntry, Error)> {
    all.iter()
        .filter(|e| derived(e).is_some())
        .filter_map(|e| plan_derived_in(all, runs, e).err().map(|err| (e, err)))
        .collect()
}

/// Replay `plan`'s full snapshot (checked against its manifest) into
/// `replay.target`, then apply its stored binlog.
fn restore_plan(
    repo: &Repository<FullAccess>,
    index: &Index,
    plan: &UntilPlan,
    database: Option<&str>,
    replay: &ReplayOptions,
    bars: &dyn ProgressBars,
) -> Result<(ReplayReport, ApplyReport)> {
    let items = repo.manifest(index, &plan.snapshot.snapshot)?;
    let items = lifeboat_mysql::select_database(&items, database)?;
    let replayed = lifeboat_mysql::replay(repo, index, &items, replay, bars)?;
    let applied = apply_until(repo, index, plan, &items, &replay.target)?;
    Ok((replayed, applied))
}

/// The facts key of a derived MySQL backup.
pub const DERIVED: &str = "derived";

/// A MySQL backup that stores no rows: the last full snapshot and the
/// stored binlog after it, up to the backup's moment, are its content.
/// Kept as the `derived` fact of the snapshot's `mysql` source (the backup
/// key writes and reads it, like a binlog run's facts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Derived {
    /// The full snapshot it starts from.
    pub base: SnapshotId,
    /// The server (as the base records it).
    pub server: String,
    /// Every transaction before this position of the server's log is in
    /// it, none after.
    pub end: Position,
    /// The server's clock when the capture caught up.
    pub caught_up_at: i64,
    /// The binlog run the backup stored.
    pub run: SnapshotId,
}

/// The derived MySQL backup of `entry`, if its MySQL part is one.
pub fn derived(entry: &SnapshotEntry) -> Option<Derived> {
    let s = entry.snapshot.sources.get(lifeboat_mysql::SOURCE)?;
    if s.error.is_some() {
        return None;
    }
    serde_json::from_value(s.facts.get(DERIVED)?.clone()).ok()
}

/// Options of a backup whose MySQL part may be derived from the stored
/// binlog ([`derive_mysql`]).
#[derive(Clone)]
pub struct DeriveOptions {
    /// The server and the replica id to capture as.
    pub capture: CaptureOptions,
    /// A full read (a real dump) when the last one is this old.
    pub full_every: chrono::TimeDelta,
    /// The capture's snapshot host name.
    pub hostname: Option<String>,
    /// A full read now, whatever the last one's age (`backup --full`).
    pub full_now: bool,
}

/// Capture the binary log up to now and, when the newest full snapshot of
/// the server is younger than `full_every` and the stored binlog continues
/// it without a gap up to what was just captured, return what the backup
/// records instead of a dump. `Ok(Err(why))`: a full read is needed, and
/// why.
pub fn derive_mysql<A: Access>(
    repo: &Repository<A>,
    opts: &DeriveOptions,
    bars: &dyn ProgressBars,
) -> Result<std::result::Result<Derived, String>> {
    if opts.full_now {
        return Ok(Err("asked for (--full)".into()));
    }
    let (all, _) = repo.snapshots()?;
    let capture = match Capture::connect(&opts.capture) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("the binary log cannot be read ({e})"))),
    };
    let server = capture.log.server.clone();
    let Some(b) = all
        .iter()
        .rev()
        .filter_map(base)
        .find(|b| b.server == server && !b.entry.snapshot.is_from_the_future())
    else {
        return Ok(Err(format!(
            "no full snapshot of server {server} with binlog coordinates yet"
        )));
    };
    let age = Utc::now() - b.entry.snapshot.time;
    if age >= opts.full_every {
        return Ok(Err(format!(
            "the last full read (snapshot {}, {}) is {:.1} day(s) old; one is due every {:.1} \
             day(s)",
            b.entry.id.short(),
            b.entry.snapshot.time.format("%Y-%m-%d %H:%M UTC"),
            age.num_seconds() as f64 / 86_400.0,
            opts.full_every.num_seconds() as f64 / 86_400.0
        )));
    }
    let base_id = b.entry.id;
    let captured = capture_with(
        repo,
        capture,
        &BinlogOptions {
            capture: opts.capture.clone(),
            hostname: opts.hostname.clone(),
        },
        bars,
    );
    let report = match captured {
        Ok(r) => r,
        // The server or the log failed us, not the store: a full read.
        Err(Error::Mysql(e)) => return Ok(Err(format!("capturing the binary log failed ({e})"))),
        Err(Error::Gap(gap)) => return Ok(Err(gap)),
        Err(e) => return Err(e),
    };
    if let Some(gap) = report.gap {
        return Ok(Err(gap));
    }
    // The chain from the base, with the run just stored, must reach the
    // run's end: otherwise the binlog between them is not all stored.
    let (all, _) = repo.snapshots()?;
    let runs = runs(&all);
    let Some(b) = all.iter().filter(|e| e.id == base_id).find_map(base) else {
        return Ok(Err(format!(
            "full snapshot {} is gone from the store",
            base_id.short()
        )));
    };
    let c = chain(&b, &runs, None);
    if !at_or_before(&report.run.end, &c.end) {
        return Ok(Err(format!(
            "the stored binlog after snapshot {} ends at {}, before what was just captured ({}): \
             binlog is missing in between",
            base_id.short(),
            c.end,
            report.run.end
        )));
    }
    let plan = plan_to(&b, c, &report.run.end, Utc::now());
    let used: Vec<&Run> = plan
        .runs
        .iter()
        .filter_map(|id| runs.iter().find(|(e, _)| e.id == *id).map(|(_, r)| r))
        .collect();
    if let Some(why) = not_derivable(&used, &b.start) {
        return Ok(Err(format!(
            "the stored binlog since snapshot {} {why}",
            base_id.short()
        )));
    }
    Ok(Ok(Derived {
        base: base_id,
        server,
        end: report.run.end.clone(),
        caught_up_at: report.run.caught_up_at,
        run: report.id,
    }))
}

/// Why the binlog of `runs` (in log order) cannot stand for a night, if
/// it cannot: a statement in it (a schema change, a write logged as a
/// statement, which the apply refuses or skips: the night would not
/// restore, or not whole), runs stored before statements were counted, or
/// GTIDs going back (the server's log was reset, or another server took
/// its address: positions would chain two histories).
fn not_derivable(runs: &[&Run], from: &Position) -> Option<String> {
    if runs.iter().any(|r| r.statements.is_none()) {
        return Some("was stored before lifeboat counted its statements".into());
    }
    // Statements before `from` (in a run that began before the full
    // read) are in the full snapshot already.
    if let Some(at) = runs
        .iter()
        .filter_map(|r| r.last_statement.as_ref())
        .find(|p| before(from, p))
    {
        return Some(format!(
            "holds a statement besides row changes (a schema change, a write logged as a \
             statement, FLUSH, ANALYZE...), the last ending at {at}"
        ));
    }
    let mut last: Vec<(lifeboat_mysql::binlog::Gtid, &str)> = Vec::new();
    for r in runs {
        for (text, g) in r.gtids.iter().filter_map(|t| {
            let g = t.parse::<GtidSet>().ok()?.ends().into_iter().next()?;
            Some((t.as_str(), g))
        }) {
            if let Some((_, p)) = last.iter().find(|(p, _)| GtidSet::reaches(&g, p)) {
                return Some(format!(
                    "does not move forward from GTID {p} to {text}: was the server's binary \
                     log reset (RESET MASTER), or another server put at its address?"
                ));
            }
            last.retain(|(p, _)| !lifeboat_mysql::binlog::Gtid::same_stream(p, &g));
            last.push((g, text));
        }
    }
    None
}

/// What restores a derived backup: its full snapshot and the stored
/// binlog after it, up to exactly its end. An error names what is missing.
pub fn plan_derived(all: &[SnapshotEntry], entry: &SnapshotEntry) -> Result<UntilPlan> {
    plan_derived_in(all, &runs(all), entry)
}

/// [`plan_derived`] with `all`'s runs read once for many entries.
fn plan_derived_in(
    all: &[SnapshotEntry],
    runs: &[(&SnapshotEntry, Run)],
    entry: &SnapshotEntry,
) -> Result<UntilPlan> {
    let d = derived(entry).ok_or_else(|| {
        Error::Invalid(format!(
            "snapshot {} holds no MySQL backup derived from the stored binlog",
            entry.id.short()
        ))
    })?;
    d.end.check().map_err(|e| {
        Error::Damaged(format!(
            "snapshot {}'s derived MySQL backup names a bad position: {e}",
            entry.id.short()
        ))
    })?;
    let b = all
        .iter()
        .filter(|e| e.id == d.base)
        .find_map(base)
        .ok_or_else(|| {
            Error::Damaged(format!(
                "snapshot {}'s MySQL backup is derived from full snapshot {}, which the store \
                 no longer holds (or which has no binlog coordinates): restore MySQL from \
                 another snapshot (`lifeboat snapshots`)",
                entry.id.short(),
                d.base.short()
            ))
        })?;
    if b.server != d.server || !at_or_before(&b.start, &d.end) {
        return Err(Error::Damaged(format!(
            "snapshot {}'s derived MySQL backup (server {}, up to {}) does not continue full \
             snapshot {} (server {}, from {}): forged or damaged",
            entry.id.short(),
            d.server,
            d.end,
            d.base.short(),
            b.server,
            b.start
        )));
    }
    let c = chain(&b, runs, None);
    if !at_or_before(&d.end, &c.end) {
        return Err(Error::Damaged(format!(
            "snapshot {}'s MySQL backup needs the stored binlog from snapshot {} ({}) up to \
             {}, but it reaches {} only (a binlog run forgotten or lost): restore MySQL from \
             full snapshot {} and `--until` a moment the window covers",
            entry.id.short(),
            d.base.short(),
            b.start,
            d.end,
            c.end,
            d.base.short()
        )));
    }
    Ok(plan_to(&b, c, &d.end, entry.snapshot.time))
}

/// Restore a derived MySQL backup: replay its full snapshot, checked
/// against that snapshot's manifest, then apply the stored binlog up to
/// exactly the backup's end.
pub fn restore_derived(
    repo: &Repository<FullAccess>,
    index: &Index,
    opts: &BinlogRestoreOptions,
    bars: &dyn ProgressBars,
) -> Result<RestoreUntilReport> {
    let (all, _) = repo.snapshots()?;
    let entry = repo.find_snapshot(&opts.snapshot)?;
    let plan = plan_derived(&all, &entry)?;
    let (replay, applied) = restore_plan(
        repo,
        index,
        &plan,
        opts.database.as_deref(),
        &opts.replay,
        bars,
    )?;
    Ok(RestoreUntilReport {
        snapshot: plan.snapshot.id,
        snapshot_time: plan.snapshot.snapshot.time,
        until: entry.snapshot.time,
        window_until: plan.window_until,
        replay,
        applied,
    })
}

/// True when derived backups were made from the full snapshot before
/// `entry` on its server: a drill of `entry` then proves their binlog
/// ([`prove_binlog`]).
pub fn proof_due(all: &[SnapshotEntry], entry: &SnapshotEntry) -> bool {
    let Some(me) = base(entry) else {
        return false;
    };
    let previous = all.iter().rev().filter_map(base).find(|b| {
        b.server == me.server
            && b.entry.id != entry.id
            && b.entry.snapshot.time < entry.snapshot.time
    });
    let Some(previous) = previous else {
        return false;
    };
    all.iter()
        .filter_map(derived)
        .any(|d| d.base == previous.entry.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(file: &str, pos: u64) -> Position {
        Position {
            file: file.into(),
            pos,
        }
    }

    fn seg(file: &str, start: u64, end: u64) -> lifeboat_mysql::Segment {
        lifeboat_mysql::Segment {
            item: format!("binlog/{file}@{start}"),
            file: file.into(),
            start,
            end,
            first_commit: None,
            last_commit: None,
            transactions: 1,
            bytes: end - start,
        }
    }

    fn run(start: Position, end: Position, segments: Vec<lifeboat_mysql::Segment>) -> Run {
        Run {
            server: "s".into(),
            flavor: "mariadb".into(),
            start,
            end,
            caught_up_at: 1,
            segments,
            gtids: Vec::new(),
            statements: Some(0),
            last_statement: None,
        }
    }

    #[test]
    fn a_run_with_a_hole_in_its_pieces_is_not_contiguous() {
        let ok = run(
            pos("bin.000001", 647),
            pos("bin.000002", 900),
            vec![seg("bin.000001", 647, 903), seg("bin.000002", 4, 900)],
        );
        assert!(contiguous(&ok));
        // Rotated at the very end: the run ends at the next file's start.
        let rotated = run(
            pos("bin.000001", 647),
            pos("bin.000002", 4),
            vec![seg("bin.000001", 647, 903)],
        );
        assert!(contiguous(&rotated));
        let empty = run(pos("bin.000001", 647), pos("bin.000001", 647), vec![]);
        assert!(contiguous(&empty));
        // The first segment starts after the run: 647..903 would be skipped.
        let late = run(
            pos("bin.000001", 647),
            pos("bin.000001", 1200),
            vec![seg("bin.000001", 903, 1200)],
        );
        assert!(!contiguous(&late));
        // No segment at all for a span of one file.
        let hollow = run(pos("bin.000001", 647), pos("bin.000001", 903), vec![]);
        assert!(!contiguous(&hollow));
        // A gap between two segments of one file, and a segment back in
        // an earlier file.
        let gap = run(
            pos("bin.000001", 4),
            pos("bin.000001", 900),
            vec![seg("bin.000001", 4, 300), seg("bin.000001", 400, 900)],
        );
        assert!(!contiguous(&gap));
        let back = run(
            pos("bin.000002", 4),
            pos("bin.000001", 900),
            vec![seg("bin.000002", 4, 300), seg("bin.000001", 4, 900)],
        );
        assert!(!contiguous(&back));
    }

    #[test]
    fn a_night_is_derived_only_over_row_changes_of_one_history() {
        let mut a = run(pos("bin.000001", 4), pos("bin.000001", 900), vec![]);
        a.gtids = vec!["0-1-36".into(), "7-1-3".into()];
        let from = pos("bin.000001", 500);
        let mut b = a.clone();
        b.gtids = vec!["0-1-40".into()];
        assert_eq!(not_derivable(&[&a, &b], &from), None);
        // After RESET MASTER the sequence starts again.
        let mut reset = a.clone();
        reset.gtids = vec!["0-1-5".into()];
        let why = not_derivable(&[&a, &reset], &from).unwrap();
        assert!(why.contains("0-0-36") || why.contains("0-1-36"), "{why}");
        assert!(why.contains("reset"), "{why}");
        // Another domain's sequence is its own.
        let mut other = a.clone();
        other.gtids = vec!["9-1-1".into()];
        assert_eq!(not_derivable(&[&a, &other], &from), None);
        // A statement anywhere, or a run that did not count them.
        let mut ddl = b.clone();
        ddl.statements = Some(1);
        ddl.last_statement = Some(pos("bin.000001", 700));
        let why = not_derivable(&[&a, &ddl], &from).unwrap();
        assert!(why.contains("bin.000001:700"), "{why}");
        // A statement before the full read's coordinates is in it.
        ddl.last_statement = Some(pos("bin.000001", 450));
        assert_eq!(not_derivable(&[&a, &ddl], &from), None);
        let mut old = b.clone();
        old.statements = None;
        assert!(not_derivable(&[&a, &old], &from)
            .unwrap()
            .contains("before lifeboat counted"));
    }
}
