//! Restore drills: restore a snapshot into the staging environment, verify
//! every source against the manifest, cross-check document rows against
//! objects, optionally call a health URL, and report what was restored,
//! how long it took (the measured RTO) and how old the snapshot was (RPO).
//!
//! Two phases: restore everything (each source's own checks run as it
//! writes: SHA-256 before a file or object is published, refs and `fsck`
//! for git, env files read back), then, after an optional hook command,
//! verify what is in staging now (every table read back and compared, the
//! staging objects listed against the manifest). A failure of one source
//! is recorded and the drill goes on with the others.
//!
//! A drill to a moment (`--until`) starts from the newest full snapshot
//! taken at or before it; the database is compared with that snapshot
//! right after its replay (phase 2's comparison, which the binlog would
//! make meaningless), then the stored binlog is applied up to the moment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_mysql::{MysqlOptions, ReplayOptions};
use lifeboat_objects::{Bucket, BucketOptions, ObjectsRestoreOptions, Source, Target};
use lifeboat_store::{FullAccess, Index, ManifestItem, ProgressBars, Repository, SnapshotEntry};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{check_references, CrossCheckOptions, Documents, Objects, SourceKind};

/// Where staged objects go.
#[derive(Debug, Clone)]
pub enum ObjectsStaging {
    /// A directory (wiped first: it belongs to the drill).
    Dir(PathBuf),
    /// A staging bucket (and prefix); written with `force`.
    Bucket(BucketOptions),
}

/// What a drill restores where. A source left `None` is skipped.
#[derive(Debug, Clone, Default)]
pub struct DrillPlan {
    /// The staging database (its `force` drops and recreates it).
    pub mysql: Option<MysqlOptions>,
    /// Parallel connections for the replay and the checks.
    pub connections: usize,
    /// The staging bucket or directory.
    pub objects: Option<ObjectsStaging>,
    /// Restore only this share of the objects (0 < p <= 100), chosen by a
    /// keyed hash of the key and `seed` (a different sample each night).
    pub sample_percent: Option<f64>,
    /// Seed of the sample.
    pub seed: u64,
    /// Scratch directory for Render env files and git clones (wiped first).
    pub scratch: Option<PathBuf>,
    /// The document rows vs objects check on the restored database.
    pub cross_check: Option<CrossCheckOptions>,
    /// A shell command run between restore and verification (with
    /// `LIFEBOAT_DRILL_MYSQL_URL` and `LIFEBOAT_DRILL_DIR` set), e.g. the
    /// application's smoke tests; a non-zero exit is a failure.
    pub before_verify: Option<String>,
    /// GET this URL after verification; anything but 2xx is a failure.
    pub health_url: Option<String>,
    /// Restore the database to a moment: the snapshot (the plan's), then
    /// the stored binlog after it.
    pub binlog: Option<crate::UntilPlan>,
}

/// One source's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceResult {
    /// `mysql`, `objects`, `render` or `git`.
    pub source: String,
    /// Where it was restored.
    pub target: String,
    /// Items (tables, objects, services, repositories) restored and checked.
    pub items: u64,
    /// Of how many in the snapshot (or in the sample).
    pub items_expected: u64,
    /// Bytes restored (objects).
    pub bytes: u64,
    /// Time to restore (with the checks done while writing).
    pub restore_seconds: f64,
    /// Time to verify staging afterwards.
    pub verify_seconds: f64,
    /// What did not match, each naming the table, object or ref.
    pub mismatches: Vec<String>,
    /// Source-specific numbers (per-table rows, refs, ...).
    pub details: serde_json::Value,
    /// What the restore changed on purpose or wants known (a definer it
    /// rewrote, an event it disabled, the schema check's line).
    pub notes: Vec<String>,
}

impl SourceResult {
    /// Nothing mismatched.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The drill report (written as JSON and Markdown).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillReport {
    /// The snapshot id.
    pub snapshot: String,
    /// When it was taken.
    pub snapshot_time: Option<DateTime<Utc>>,
    /// Its tags.
    pub tags: Vec<String>,
    /// When the drill started.
    pub started: Option<DateTime<Utc>>,
    /// The moment the database was restored to (`drill --until`).
    pub until: Option<DateTime<Utc>>,
    /// Snapshot age (with `until`: that moment's age) when the drill
    /// started: what a loss now would cost.
    pub rpo_seconds: i64,
    /// Restore plus verification, all sources: the measured recovery time.
    pub rto_seconds: f64,
    /// The objects sample, if one was drawn.
    pub sample_percent: Option<f64>,
    /// Per source.
    pub sources: Vec<SourceResult>,
    /// The cross-check's counts, when it ran.
    pub cross_check: Option<serde_json::Value>,
    /// The health URL's answer.
    pub health: Option<String>,
    /// Everything that failed; empty means the drill passed.
    pub problems: Vec<String>,
}

impl DrillReport {
    /// The drill passed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn wipe(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => lifeboat_store::create_private_dir(dir),
    }
}

/// The drill deletes and writes below `[staging] dir/drill`: refuse a
/// link there or in the staging directory itself (it would send the wipe
/// and the restore elsewhere), and on Linux a directory another user owns
/// (they could put a link in at any moment).
fn check_scratch(scratch: &Path) -> Result<(), String> {
    // And no other user may change a folder on the way there (they could
    // swap the staging directory for one of theirs mid-drill).
    lifeboat_paths::check_trusted_path(scratch).map_err(|e| {
        format!(
            "{e}: refusing to wipe and restore below {} (set [staging] dir to a directory of \
             yours, in folders only you and root may change)",
            scratch.display()
        )
    })?;
    let me = owner_uid(Path::new("/proc/self"));
    for p in [scratch.parent(), Some(scratch)].into_iter().flatten() {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            continue; // not there yet: the drill creates it, private
        };
        if m.file_type().is_symlink() {
            return Err(format!(
                "{} is a symbolic link: refusing to wipe and restore through it \
                 (set [staging] dir to a directory of yours)",
                p.display()
            ));
        }
        if let (Some(me), Some(owner)) = (me, owner_uid(p)) {
            if me != owner {
                return Err(format!(
                    "{} belongs to another user (uid {owner}): refusing to wipe and restore \
                     in it (set [staging] dir to a directory of yours)",
                    p.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn owner_uid(p: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).ok().map(|m| m.uid())
}

#[cfg(not(target_os = "linux"))]
fn owner_uid(_: &Path) -> Option<u32> {
    None
}

/// Where a snapshot's own summary disagrees with its manifest: item counts
/// and bytes per source, and the MySQL, objects and Render facts. A forged
/// snapshot could otherwise claim sources, tables or objects it does not
/// hold, and a drill of what it does hold would pass.
fn summary_disagreements(snap: &SnapshotEntry, items: &[ManifestItem]) -> Vec<String> {
    let mut out = Vec::new();
    let count = |f: &dyn Fn(&ManifestItem) -> bool| -> (u64, u64) {
        items
            .iter()
            .filter(|i| f(i))
            .fold((0, 0), |(n, b), i| (n + 1, b + i.size))
    };
    for (source, summary) in &snap.snapshot.sources {
        let (n, bytes) = count(&|i| &i.source == source);
        if (n, bytes) != (summary.items, summary.bytes) {
            out.push(format!(
                "{source}: the snapshot says {} item(s) of {} bytes, its manifest holds {n} of \
                 {bytes} (forged or damaged)",
                summary.items, summary.bytes
            ));
        }
        let fact = |k: &str| summary.facts.get(k).and_then(serde_json::Value::as_u64);
        let mut expect = |what: &str, claimed: Option<u64>, found: u64| {
            if let Some(c) = claimed.filter(|c| *c != found) {
                out.push(format!(
                    "{source}: its facts say {c} {what}, its manifest holds {found} (forged or damaged)"
                ));
            }
        };
        match source.as_str() {
            lifeboat_mysql::SOURCE => {
                let tables: Vec<&ManifestItem> = items
                    .iter()
                    .filter(|i| &i.source == source && i.kind == "table")
                    .collect();
                let rows: u64 = tables
                    .iter()
                    .filter_map(|i| i.meta.get("rows").and_then(serde_json::Value::as_u64))
                    .sum();
                expect("tables", fact("tables"), tables.len() as u64);
                expect("rows", fact("rows"), rows);
            }
            lifeboat_objects::SOURCE => {
                let (n, b) = count(&|i| &i.source == source && i.kind == "object");
                expect("objects", fact("objects"), n);
                expect("bytes of objects", fact("bytes"), b);
            }
            lifeboat_render::SOURCE => {
                let (s, _) =
                    count(&|i| &i.source == source && i.kind == lifeboat_render::SERVICE_KIND);
                let (g, _) =
                    count(&|i| &i.source == source && i.kind == lifeboat_render::ENV_GROUP_KIND);
                expect("services", fact("services"), s);
                expect("env groups", fact("env_groups"), g);
            }
            _ => {}
        }
    }
    out
}

fn in_sample(key: &str, seed: u64, percent: f64) -> bool {
    let h = Sha256::digest(format!("{seed}\0{key}").as_bytes());
    let x = u64::from_le_bytes(h[..8].try_into().unwrap_or([0; 8]));
    (x as f64 / u64::MAX as f64) * 100.0 < percent
}

/// Run a drill of `snap` (its manifest is `items`).
pub fn run(
    repo: &Repository<FullAccess>,
    index: &Index,
    snap: &SnapshotEntry,
    items: &[ManifestItem],
    plan: &DrillPlan,
    bars: &dyn ProgressBars,
) -> DrillReport {
    let started = Utc::now();
    let clock = Instant::now();
    let until = plan.binlog.as_ref().map(|b| b.until);
    let mut report = DrillReport {
        snapshot: snap.id.to_hex(),
        snapshot_time: Some(snap.snapshot.time),
        tags: snap.snapshot.tags.clone(),
        started: Some(started),
        until,
        rpo_seconds: (started - until.unwrap_or(snap.snapshot.time)).num_seconds(),
        sample_percent: plan.sample_percent,
        ..Default::default()
    };
    for (source, error) in snap.snapshot.failed_sources() {
        report.problems.push(format!(
            "{source} failed during this backup ({error}): not in the snapshot"
        ));
    }
    report.problems.extend(summary_disagreements(snap, items));
    if let Some(s) = &plan.scratch {
        if let Err(e) = check_scratch(s) {
            report.problems.push(e);
            report.rto_seconds = clock.elapsed().as_secs_f64();
            return report;
        }
    }
    // A MySQL part derived from the stored binlog is its full snapshot's
    // tables, then the binlog up to the backup's end.
    let mut derived_plan = None;
    let mut base_items = Vec::new();
    if crate::pitr::derived(snap).is_some() && plan.mysql.is_some() {
        let planned = repo
            .snapshots()
            .map_err(crate::Error::from)
            .and_then(|(all, _)| crate::pitr::plan_derived(&all, snap))
            .and_then(|p| Ok((repo.manifest(index, &p.snapshot.snapshot)?, p)));
        match planned {
            Ok((base, p)) => {
                base_items = base;
                derived_plan = Some(p);
            }
            Err(e) => report.problems.push(format!("mysql: {e}")),
        }
    }
    let d = Drill {
        repo,
        index,
        snap,
        items,
        mysql_items: match derived_plan {
            Some(_) => &base_items,
            None => items,
        },
        binlog: derived_plan.as_ref().or(plan.binlog.as_ref()),
        derived: derived_plan.is_some(),
        plan,
        bars,
    };
    // Phase 1: restore (each source's own checks run as it writes); the
    // items of sources not restored anywhere are read and checked.
    let mut results: BTreeMap<SourceKind, SourceResult> = BTreeMap::new();
    let mut expected = lifeboat_mysql::ExpectedSchema::default();
    // A full read after derived nights: first the proof that their binlog
    // gives it (in staging, which the drill then replaces).
    let proof = d.prove_binlog();
    if let Some((mut r, e)) = d.restore_mysql() {
        match proof {
            Some(Ok(note)) => r.notes.push(note),
            Some(Err(e)) => r.mismatches.push(e),
            None => {}
        }
        results.insert(SourceKind::Mysql, r);
        expected = e;
    }
    let staged = d.restore_objects().map(|(r, staged)| {
        results.insert(SourceKind::Objects, r);
        staged
    });
    if let Some(r) = d.restore_render() {
        results.insert(SourceKind::Render, r);
    }
    if let Some(r) = d.restore_git() {
        results.insert(SourceKind::Git, r);
    }
    // Sources restored whole (not a sample): the bytes restored are their
    // items' (tables and schema, service files, bundles).
    for r in results.values_mut().filter(|r| r.bytes == 0 && r.ok()) {
        r.bytes = items
            .iter()
            .chain(d.mysql_items.iter().filter(|_| d.derived))
            .filter(|i| i.source == r.source)
            .map(|i| i.size)
            .sum();
    }
    let others = d.check_others(&results);
    if items.is_empty() && !d.derived {
        report
            .problems
            .push("the snapshot holds no item: nothing to verify".into());
    }
    // The hook, then phase 2: verify what is in staging now.
    report.problems.extend(d.run_hook());
    if let Some(r) = results.get_mut(&SourceKind::Mysql) {
        d.verify_mysql(r, &expected);
    }
    if let (Some(Some(staged)), Some(r)) = (&staged, results.get_mut(&SourceKind::Objects)) {
        d.verify_objects(staged, r);
    }
    if results.get(&SourceKind::Mysql).is_some_and(|r| r.ok()) {
        d.cross_check(&mut report);
    }
    report.rto_seconds = clock.elapsed().as_secs_f64();
    if let Some(url) = &plan.health_url {
        health_check(url, &mut report);
    }
    for r in results.values().chain(others.values()) {
        for m in &r.mismatches {
            report.problems.push(format!("{}: {m}", r.source));
        }
    }
    report.sources = results.into_values().chain(others.into_values()).collect();
    report
}

/// The objects a drill restored and where, to list them afterwards.
struct Staged {
    target: Source,
    selected: Vec<ManifestItem>,
}

/// One drill's inputs, shared by its phases.
struct Drill<'a> {
    repo: &'a Repository<FullAccess>,
    index: &'a Index,
    snap: &'a SnapshotEntry,
    items: &'a [ManifestItem],
    /// The MySQL items replayed: the snapshot's, or for a derived backup
    /// its full snapshot's.
    mysql_items: &'a [ManifestItem],
    /// The stored binlog applied after the replay (`drill --until`, or a
    /// derived backup's).
    binlog: Option<&'a crate::UntilPlan>,
    derived: bool,
    plan: &'a DrillPlan,
    bars: &'a dyn ProgressBars,
}

impl Drill<'_> {
    fn has(&self, source: &str) -> bool {
        self.snap.snapshot.sources.contains_key(source)
    }

    /// Replay into the staging database (checked in phase 2, against the
    /// schema it returns). Events are created DISABLEd.
    fn restore_mysql(&self) -> Option<(SourceResult, lifeboat_mysql::ExpectedSchema)> {
        let target = self.plan.mysql.as_ref()?;
        if !self.has(lifeboat_mysql::SOURCE) {
            return None;
        }
        let derived = crate::pitr::derived(self.snap);
        if derived.is_some() && !self.derived {
            // It could not be planned: the report says why.
            return None;
        }
        let t = Instant::now();
        // Through an account with rights on the staging database only, when
        // the staging account may make one: no restored object can then act
        // beyond staging.
        let mut notes = Vec::new();
        let replay_target = match lifeboat_mysql::drill_account(target) {
            Ok(lifeboat_mysql::DrillAccount::Restricted { options, name }) => {
                notes.push(format!(
                    "replayed through {name}, which has rights on the staging database only"
                ));
                options
            }
            Ok(lifeboat_mysql::DrillAccount::Unavailable(why)) => {
                notes.push(format!("replayed as the staging account: {why}"));
                target.clone()
            }
            Err(e) => {
                notes.push(format!("replayed as the staging account: {e}"));
                target.clone()
            }
        };
        let opts = ReplayOptions {
            target: replay_target,
            force: true,
            allow_source: false,
            trust_object_bodies: false,
            connections: self.plan.connections.max(1),
            // To a moment: compared with the snapshot now, before the
            // binlog moves the database on.
            verify: self.binlog.is_some(),
            definers: lifeboat_mysql::Definers::Auto,
            disable_events: true,
            with_users: false,
            with_global_grants: false,
        };
        let mut r = SourceResult {
            source: SourceKind::Mysql.name().into(),
            target: lifeboat_git::redact_url(&target.url),
            ..Default::default()
        };
        r.notes = notes;
        let mut expected = lifeboat_mysql::ExpectedSchema::default();
        match lifeboat_mysql::replay(self.repo, self.index, self.mysql_items, &opts, self.bars) {
            Ok(report) => {
                r.notes
                    .extend(report.rewritten.iter().map(|w| format!("rewritten: {w}")));
                r.notes.extend(report.notes);
                expected = report.expected;
                if let Some(plan) = self.binlog {
                    r.items = report.tables.len() as u64;
                    r.items_expected = r.items;
                    r.verify_seconds = report.check_seconds;
                    r.notes.push(format!(
                        "{} tables compared with snapshot {} right after its replay, before \
                         the binlog was applied",
                        report.tables.len(),
                        plan.snapshot.id.short()
                    ));
                    if let Some(d) = &derived {
                        r.notes.push(format!(
                            "derived backup: full snapshot {} and the stored binlog up to {}; \
                             the next full read proves that binlog (`restore FULL --source \
                             mysql --from-binlog`)",
                            d.base.short(),
                            d.end
                        ));
                    }
                    // Applied as the staging account (binlog events need
                    // BINLOG REPLAY, which the restricted account lacks);
                    // the apply itself keeps to the staging database.
                    self.apply_binlog(plan, target, &mut r);
                }
            }
            Err(e) => r.mismatches.push(format!("replay failed: {e}")),
        }
        r.restore_seconds = t.elapsed().as_secs_f64() - r.verify_seconds;
        Some((r, expected))
    }

    /// When derived nights were made from the full snapshot before this
    /// one ([`crate::pitr::proof_due`]): the previous full snapshot and the
    /// stored binlog up to this one's coordinates, replayed into staging and
    /// compared with this snapshot. `Ok`: the note; `Err`: the mismatch.
    fn prove_binlog(&self) -> Option<Result<String, String>> {
        let target = self.plan.mysql.as_ref()?;
        if self.derived || self.plan.binlog.is_some() {
            return None;
        }
        let all = self.repo.snapshots().ok()?.0;
        if !crate::pitr::proof_due(&all, self.snap) {
            return None;
        }
        let opts = crate::pitr::BinlogRestoreOptions {
            snapshot: self.snap.id.to_hex(),
            database: lifeboat_mysql::databases(self.items).into_iter().next(),
            replay: ReplayOptions {
                target: target.clone(),
                force: true,
                allow_source: false,
                trust_object_bodies: false,
                connections: self.plan.connections.max(1),
                verify: true,
                definers: lifeboat_mysql::Definers::Auto,
                disable_events: true,
                with_users: false,
                with_global_grants: false,
            },
        };
        Some(
            match crate::pitr::prove_binlog(self.repo, self.index, &opts, self.bars) {
                Ok(p) => Ok(format!(
                    "binlog proof: full snapshot {} and the stored binlog up to this \
                     snapshot's coordinates ({} transaction(s)) give this snapshot: {} tables \
                     equal, so the derived nights between them restore what the server held",
                    p.base.short(),
                    p.applied.transactions,
                    p.check.tables.len()
                )),
                Err(e) => Err(format!("binlog proof failed: {e}")),
            },
        )
    }

    /// `drill --until`: the stored binlog after the snapshot, up to the
    /// plan's moment.
    fn apply_binlog(&self, plan: &crate::UntilPlan, target: &MysqlOptions, r: &mut SourceResult) {
        match crate::apply_until(self.repo, self.index, plan, self.mysql_items, target) {
            Ok(a) => {
                let last = a
                    .last_commit
                    .and_then(|t| DateTime::from_timestamp(t, 0))
                    .map_or("none".into(), |t| t.to_rfc3339());
                r.notes.push(format!(
                    "applied the stored binlog up to {}: {} transaction(s), {} row event(s) in \
                     {:.1} s (last commit {last}; the window is stored until {})",
                    plan.until.to_rfc3339(),
                    a.transactions,
                    a.row_events,
                    a.seconds,
                    plan.window_until.to_rfc3339()
                ));
                for (what, n) in &a.skipped {
                    r.notes.push(format!("binlog skipped: {what} ({n}x)"));
                }
                r.details = serde_json::json!({ "binlog": a });
            }
            Err(e) => r
                .mismatches
                .push(format!("applying the binlog failed: {e}")),
        }
    }

    /// The objects (or a sample) into the staging bucket or directory;
    /// with where they went, unless the target could not be prepared.
    fn restore_objects(&self) -> Option<(SourceResult, Option<Staged>)> {
        let staging = self.plan.objects.as_ref()?;
        if !self.has(lifeboat_objects::SOURCE) {
            return None;
        }
        let t = Instant::now();
        let all = lifeboat_objects::select(self.items.to_vec(), &ObjectsRestoreOptions::default());
        let total = all.len() as u64;
        let selected: Vec<ManifestItem> = match self.plan.sample_percent {
            Some(p) => all
                .into_iter()
                .filter(|i| in_sample(&i.name, self.plan.seed, p))
                .collect(),
            None => all,
        };
        let mut r = SourceResult {
            source: SourceKind::Objects.name().into(),
            items_expected: selected.len() as u64,
            details: serde_json::json!({ "objects_in_snapshot": total }),
            ..Default::default()
        };
        let target = match staging {
            ObjectsStaging::Dir(d) => wipe(d)
                .map(|_| Target::Dir(d.clone()))
                .map_err(|e| format!("preparing {}: {e}", d.display())),
            ObjectsStaging::Bucket(b) => Bucket::open(b)
                .map(Target::Bucket)
                .map_err(|e| e.to_string()),
        };
        let staged = match target {
            Ok(target) => {
                r.target = match &target {
                    Target::Dir(d) => d.display().to_string(),
                    Target::Bucket(b) => b.location(),
                };
                let opts = ObjectsRestoreOptions {
                    force: true,
                    ..Default::default()
                };
                match lifeboat_objects::restore(
                    self.repo, self.index, &selected, &target, &opts, self.bars,
                ) {
                    Ok(o) => {
                        r.items = o.objects;
                        r.bytes = o.bytes;
                        r.mismatches.extend(o.failed);
                        r.mismatches.extend(o.refused);
                    }
                    Err(e) => r.mismatches.push(format!("restore failed: {e}")),
                }
                let target = match target {
                    Target::Dir(d) => Source::Dir(d),
                    Target::Bucket(b) => Source::Bucket(b),
                };
                Some(Staged { target, selected })
            }
            Err(e) => {
                r.mismatches.push(e);
                None
            }
        };
        r.restore_seconds = t.elapsed().as_secs_f64();
        Some((r, staged))
    }

    /// For a source restored into `scratch/NAME`: that directory and its
    /// result to fill, when the plan has a scratch directory and the
    /// snapshot the source.
    fn scratch_for(&self, kind: SourceKind) -> Option<(PathBuf, SourceResult)> {
        let scratch = self.plan.scratch.as_ref()?;
        if !self.has(kind.name()) {
            return None;
        }
        let dir = scratch.join(kind.name());
        let r = SourceResult {
            source: kind.name().into(),
            target: dir.display().to_string(),
            ..Default::default()
        };
        Some((dir, r))
    }

    /// Env files (read back as they are written) into `scratch/render`.
    fn restore_render(&self) -> Option<SourceResult> {
        let (dir, mut r) = self.scratch_for(SourceKind::Render)?;
        let t = Instant::now();
        let done = wipe(&dir)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                lifeboat_render::load(self.repo, self.index, self.items).map_err(|e| e.to_string())
            })
            .and_then(|s| {
                r.items_expected = (s.services.len() + s.env_groups.len()) as u64;
                lifeboat_render::write_env_dir(
                    &s,
                    &dir,
                    true,
                    lifeboat_render::EnvForm::Env(lifeboat_render::Dialect::Rust),
                )
                .map_err(|e| e.to_string())
            });
        match done {
            Ok(w) => {
                r.items = r.items_expected;
                r.details = serde_json::json!({
                    "env_vars": w.env_vars,
                    "secret_files": w.secret_files,
                });
            }
            Err(e) => r.mismatches.push(e),
        }
        r.restore_seconds = t.elapsed().as_secs_f64();
        Some(r)
    }

    /// Every repository cloned (refs and `fsck` checked) into `scratch/git`.
    fn restore_git(&self) -> Option<SourceResult> {
        let (dir, mut r) = self.scratch_for(SourceKind::Git)?;
        let t = Instant::now();
        match wipe(&dir).map_err(|e| e.to_string()).and_then(|_| {
            lifeboat_git::repositories(&self.snap.snapshot).map_err(|e| e.to_string())
        }) {
            Ok(repos) => {
                r.items_expected = repos.len() as u64;
                let mut refs = serde_json::Map::new();
                for g in &repos {
                    let to = dir.join(&g.name);
                    match lifeboat_git::restore_to_dir(
                        self.repo, self.index, self.items, g, &to, false,
                    ) {
                        Ok(done) => {
                            r.items += 1;
                            refs.insert(g.name.clone(), done.refs.into());
                        }
                        Err(e) => r.mismatches.push(format!("{}: {e}", g.name)),
                    }
                }
                r.details = serde_json::json!({ "refs": refs });
            }
            Err(e) => r.mismatches.push(e),
        }
        r.restore_seconds = t.elapsed().as_secs_f64();
        Some(r)
    }

    /// Items of sources the drill does not restore anywhere (a command's
    /// output, a source without staging): each is read whole and checked
    /// against its size and SHA-256, so no item of the snapshot goes
    /// unverified.
    fn check_others(
        &self,
        restored: &BTreeMap<SourceKind, SourceResult>,
    ) -> BTreeMap<String, SourceResult> {
        let restored: Vec<&str> = restored.keys().map(|k| k.name()).collect();
        let mut others: BTreeMap<String, SourceResult> = BTreeMap::new();
        for item in self
            .items
            .iter()
            .filter(|i| !restored.contains(&i.source.as_str()))
        {
            let t = Instant::now();
            let r = others
                .entry(item.source.clone())
                .or_insert_with(|| SourceResult {
                    source: item.source.clone(),
                    target: "(read and checked, not written)".into(),
                    ..Default::default()
                });
            r.items_expected += 1;
            match self.repo.restore_item(
                self.index,
                item,
                &mut std::io::sink(),
                &lifeboat_store::NoProgress,
            ) {
                Ok(()) => {
                    r.items += 1;
                    r.bytes += item.size;
                }
                Err(e) => r.mismatches.push(format!("{}: {e}", item.name)),
            }
            r.restore_seconds += t.elapsed().as_secs_f64();
        }
        others
    }

    /// The command between the phases; its failure is a problem.
    fn run_hook(&self) -> Option<String> {
        let cmd = self.plan.before_verify.as_ref()?;
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(cmd);
        if let Some(m) = &self.plan.mysql {
            c.env("LIFEBOAT_DRILL_MYSQL_URL", &m.url);
        }
        if let Some(s) = &self.plan.scratch {
            c.env("LIFEBOAT_DRILL_DIR", s);
        }
        match c.status() {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("the before-verify command failed ({s})")),
            Err(e) => Some(format!("the before-verify command could not run: {e}")),
        }
    }

    /// Every table of staging read back and compared with the snapshot.
    fn verify_mysql(&self, r: &mut SourceResult, expected: &lifeboat_mysql::ExpectedSchema) {
        let Some(target) = &self.plan.mysql else {
            return;
        };
        if !r.ok() || self.binlog.is_some() {
            // To a moment: compared right after the replay.
            return;
        }
        let t = Instant::now();
        match lifeboat_mysql::verify_database(
            self.repo,
            self.index,
            self.items,
            target,
            self.plan.connections,
            expected,
        ) {
            Ok(v) => {
                r.items = v.tables.len() as u64;
                r.items_expected = v.tables.len() as u64;
                r.details = serde_json::to_value(&v.tables).unwrap_or_default();
                if let Some(s) = &v.schema {
                    r.notes.push(lifeboat_mysql::schema_line(s));
                }
            }
            Err(e) => r.mismatches.push(e.to_string()),
        }
        r.verify_seconds = t.elapsed().as_secs_f64();
    }

    /// The staged objects listed and compared with the snapshot.
    fn verify_objects(&self, staged: &Staged, r: &mut SourceResult) {
        if !r.ok() {
            return;
        }
        let t = Instant::now();
        match staged.target.list() {
            Ok(list) => {
                let found: BTreeMap<String, u64> =
                    list.into_iter().map(|l| (l.key, l.size)).collect();
                for i in &staged.selected {
                    match found.get(&i.name) {
                        None => r
                            .mismatches
                            .push(format!("object {} is not in staging", i.name)),
                        Some(s) if *s != i.size => r.mismatches.push(format!(
                            "object {} has {s} bytes in staging, {} in the snapshot",
                            i.name, i.size
                        )),
                        _ => {}
                    }
                }
            }
            Err(e) => r.mismatches.push(format!("listing staging: {e}")),
        }
        r.verify_seconds = t.elapsed().as_secs_f64();
    }

    /// The restored database's document rows against the snapshot's
    /// objects (when the plan has the check and the snapshot both).
    fn cross_check(&self, report: &mut DrillReport) {
        let (Some(opts), Some(target)) = (&self.plan.cross_check, &self.plan.mysql) else {
            return;
        };
        if self.plan.binlog.is_some() {
            // The database is at the moment, the objects at the snapshot's
            // time: rows written between would show as missing objects.
            return;
        }
        if !self.has(lifeboat_objects::SOURCE) {
            return;
        }
        match check_references(Documents::Live(target), Objects::Snapshot(self.items), opts) {
            Ok(x) => {
                if !x.ok() {
                    let names: Vec<String> = x
                        .missing
                        .iter()
                        .chain(&x.differs)
                        .take(10)
                        .map(|d| format!("row {} -> {}", d.id, d.key))
                        .collect();
                    report.problems.push(format!(
                        "cross-check: {} document row(s) point at missing and {} at different objects: {}",
                        x.missing.len(),
                        x.differs.len(),
                        names.join(", ")
                    ));
                }
                report.cross_check = serde_json::to_value(&x).ok().map(|mut v| {
                    // Counts in the report; the lists can be long.
                    for k in ["missing", "differs", "orphans", "local", "elsewhere"] {
                        let n = v[k].as_array().map(Vec::len).unwrap_or(0);
                        v[k] = n.into();
                    }
                    v
                });
            }
            Err(e) => report
                .problems
                .push(format!("cross-check could not run: {e}")),
        }
    }
}

/// GET the application's health URL: anything but 2xx is a problem.
fn health_check(url: &str, report: &mut DrillReport) {
    match reqwest::blocking::get(url) {
        Ok(resp) => {
            report.health = Some(format!("{} {}", resp.status().as_u16(), url));
            if !resp.status().is_success() {
                report
                    .problems
                    .push(format!("health check {url} answered {}", resp.status()));
            }
        }
        Err(e) => report.problems.push(format!("health check {url}: {e}")),
    }
}

/// Where a drill may restore: the config's `[staging]`.
#[derive(Debug, Clone, Default)]
pub struct Staging {
    /// The staging database.
    pub mysql: Option<MysqlOptions>,
    /// The staging bucket (and prefix), with credentials.
    pub objects_bucket: Option<BucketOptions>,
    /// A directory the drill owns: `DIR/drill` is wiped and restored into
    /// (objects without a staging bucket, Render env files, git clones).
    pub dir: Option<PathBuf>,
    /// The application's health URL, called after verification.
    pub health_url: Option<String>,
}

/// Options of [`drill`].
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The snapshot: an id, a unique prefix, or `latest`.
    pub snapshot: String,
    /// With several databases in the snapshot, the one to drill.
    pub database: Option<String>,
    /// Where to restore.
    pub staging: Staging,
    /// Parallel connections for the replay and its checks (at least 1).
    pub connections: usize,
    /// Restore only this share of the objects (0 < p <= 100).
    pub sample_percent: Option<f64>,
    /// A shell command run between restore and verification.
    pub before_verify: Option<String>,
    /// Overrides `staging.health_url`.
    pub health_url: Option<String>,
    /// The document rows vs objects check, run when the snapshot has both.
    pub cross_check: CrossCheckOptions,
    /// Also write the report here (JSON) and beside it (`.md`).
    pub report_file: Option<PathBuf>,
    /// Restore the database to this moment: the newest full snapshot at or
    /// before it (not after `snapshot`), then the stored binlog.
    pub until: Option<DateTime<Utc>>,
    /// The sources the config backs up. `latest` is then the newest
    /// snapshot that holds each of them whole (not a command's output a
    /// backup host stored last), and a drilled snapshot without one of
    /// them fails the drill.
    pub expected_sources: Vec<String>,
}

/// `e` holds `source`, and the source did not fail in it.
fn whole_source(e: &lifeboat_store::SnapshotEntry, source: &str) -> bool {
    e.snapshot
        .sources
        .get(source)
        .is_some_and(|x| x.error.is_none())
}

/// A drill of `opts.snapshot` into `opts.staging`: the snapshot, its
/// manifest, the plan (sources with no staging are named as problems),
/// [`run`], and the report files. An `Err` means the drill could not start;
/// a drill that ran and failed is an `Ok` report that is not
/// [`ok`](DrillReport::ok).
pub fn drill(
    repo: &Repository<FullAccess>,
    opts: &DrillOptions,
    bars: &dyn ProgressBars,
) -> crate::Result<DrillReport> {
    let staging = &opts.staging;
    if staging.mysql.is_none() && staging.objects_bucket.is_none() && staging.dir.is_none() {
        return Err(crate::Error::Invalid(
            "a drill needs a [staging] section (mysql_url, objects_bucket or dir) in the config"
                .into(),
        ));
    }
    if let Some(p) = opts.sample_percent {
        if !(p > 0.0 && p <= 100.0) {
            return Err(crate::Error::Invalid(
                "--sample is a percentage above 0, at most 100".into(),
            ));
        }
    }
    let binlog = match opts.until {
        Some(until) => {
            if staging.mysql.is_none() {
                return Err(crate::Error::Invalid(
                    "drill --until restores the database to a moment: it needs [staging] \
                     mysql_url in the config"
                        .into(),
                ));
            }
            Some(crate::plan_until(repo, &opts.snapshot, until, None)?)
        }
        None => None,
    };
    let whole = |e: &lifeboat_store::SnapshotEntry| {
        opts.expected_sources.iter().all(|s| whole_source(e, s))
    };
    let snap = match &binlog {
        Some(plan) => plan.snapshot.clone(),
        None if opts.snapshot == "latest" && !opts.expected_sources.is_empty() => {
            let (all, _) = repo.snapshots()?;
            match all
                .iter()
                .rev()
                .find(|e| !e.snapshot.is_log() && !e.snapshot.is_from_the_future() && whole(e))
            {
                Some(e) => e.clone(),
                None => repo.find_snapshot("latest")?,
            }
        }
        None => repo.find_snapshot(&opts.snapshot)?,
    };
    let missing: Vec<&String> = match binlog {
        Some(_) => Vec::new(), // a moment of the database: the database only
        None => opts
            .expected_sources
            .iter()
            .filter(|s| !whole_source(&snap, s))
            .collect(),
    };
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    let items = lifeboat_mysql::select_database(&items, opts.database.as_deref())?;
    let scratch = staging.dir.as_ref().map(|d| d.join("drill"));
    let has = |s: &str| snap.snapshot.sources.contains_key(s);
    let mut unstaged = Vec::new();
    let mysql = match (&staging.mysql, has(lifeboat_mysql::SOURCE)) {
        (Some(m), true) => Some(m.clone()),
        (None, true) => {
            unstaged.push("mysql (set [staging] mysql_url)");
            None
        }
        _ => None,
    };
    let objects = match (
        &staging.objects_bucket,
        &scratch,
        has(lifeboat_objects::SOURCE),
    ) {
        (_, _, false) => None,
        (Some(b), _, true) => Some(ObjectsStaging::Bucket(b.clone())),
        (None, Some(d), true) => Some(ObjectsStaging::Dir(d.join("objects"))),
        (None, None, true) => {
            unstaged.push("objects (set [staging] objects_bucket with [objects], or dir)");
            None
        }
    };
    if (has(lifeboat_render::SOURCE) || has(lifeboat_git::SOURCE)) && scratch.is_none() {
        unstaged.push("render and git (set [staging] dir)");
    }
    let plan = DrillPlan {
        cross_check: (has(lifeboat_mysql::SOURCE) && has(lifeboat_objects::SOURCE))
            .then(|| opts.cross_check.clone()),
        mysql,
        objects,
        connections: opts.connections.max(1),
        sample_percent: opts.sample_percent,
        seed: Utc::now().timestamp() as u64,
        scratch,
        before_verify: opts.before_verify.clone(),
        health_url: opts
            .health_url
            .clone()
            .or_else(|| staging.health_url.clone()),
        binlog,
    };
    let mut report = run(repo, &index, &snap, &items, &plan, bars);
    for u in unstaged {
        report
            .problems
            .push(format!("not drilled, no staging for {u}"));
    }
    for s in missing {
        report.problems.push(format!(
            "snapshot {} holds no whole {s}, which the config backs up: a recovery from it \
             would lack {s} (drill a snapshot that holds every source; `lifeboat status` \
             shows each source's last good one)",
            snap.id.short()
        ));
    }
    if let Some(path) = &opts.report_file {
        write_report_files(&report, path)?;
    }
    Ok(report)
}

/// The report as JSON at `path`, as Markdown (`.md`) and HTML (`.html`)
/// beside it, each
/// through a temporary file renamed into place (a planted link is
/// replaced, not written through).
fn write_report_files(report: &DrillReport, path: &Path) -> crate::Result<()> {
    let io = |p: &Path, error: std::io::Error| crate::Error::Local {
        what: format!("writing {}", p.display()),
        error,
    };
    let json = serde_json::to_vec_pretty(report).expect("the report serializes");
    lifeboat_paths::write_file(path, &json, true, Some(0o644)).map_err(|e| io(path, e))?;
    let md_path: PathBuf = if path.extension().is_some_and(|e| e == "json") {
        path.with_extension("md")
    } else {
        PathBuf::from(format!("{}.md", path.display()))
    };
    lifeboat_paths::write_file(&md_path, markdown(report).as_bytes(), true, Some(0o644))
        .map_err(|e| io(&md_path, e))?;
    let html_path = md_path.with_extension("html");
    let html = crate::report::drill_html(report);
    lifeboat_paths::write_file(&html_path, html.as_bytes(), true, Some(0o644))
        .map_err(|e| io(&html_path, e))
}

/// The report as Markdown.
pub fn markdown(r: &DrillReport) -> String {
    let mut s = String::new();
    let verdict = if r.ok() { "PASSED" } else { "FAILED" };
    s.push_str(&format!("# Restore drill {verdict}\n\n"));
    s.push_str(&format!(
        "- snapshot `{}` of {} [{}]\n",
        &r.snapshot[..r.snapshot.len().min(8)],
        r.snapshot_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
        md(&r.tags.join(", "))
    ));
    s.push_str(&format!(
        "- RTO (measured restore + verification): **{:.1} s**\n- RPO ({} at drill start): **{}**\n",
        r.rto_seconds,
        if r.until.is_some() {
            "age of the moment restored to"
        } else {
            "snapshot age"
        },
        human_age(r.rpo_seconds)
    ));
    if let Some(u) = r.until {
        s.push_str(&format!(
            "- database restored to **{}** (the snapshot, then the stored binlog)\n",
            u.to_rfc3339()
        ));
    }
    if let Some(p) = r.sample_percent {
        s.push_str(&format!("- objects: a {p}% sample\n"));
    }
    s.push_str("\n| source | target | items | bytes | restore s | verify s | result |\n|---|---|---|---|---|---|---|\n");
    for x in &r.sources {
        s.push_str(&format!(
            "| {} | {} | {}/{} | {} | {:.1} | {:.1} | {} |\n",
            md(&x.source),
            md(&x.target),
            x.items,
            x.items_expected,
            x.bytes,
            x.restore_seconds,
            x.verify_seconds,
            if x.ok() { "match" } else { "MISMATCH" }
        ));
    }
    for x in r.sources.iter().filter(|x| !x.notes.is_empty()) {
        s.push_str(&format!("\n{}:\n", md(&x.source)));
        for n in &x.notes {
            s.push_str(&format!("- {}\n", md(n)));
        }
    }
    if let Some(x) = &r.cross_check {
        s.push_str(&format!(
            "\nCross-check of document rows: {} rows, {} objects; {} missing, {} differ, {} orphan objects, {} rows on local storage.\n",
            x["rows"], x["objects"], x["missing"], x["differs"], x["orphans"], x["local"]
        ));
    }
    if let Some(h) = &r.health {
        s.push_str(&format!("\nHealth: {}\n", md(h)));
    }
    if !r.problems.is_empty() {
        s.push_str("\n## Problems\n\n");
        for p in &r.problems {
            s.push_str(&format!("- {}\n", md(p)));
        }
    }
    s
}

/// Text from the store made inert in Markdown: what a renderer would turn
/// into a link, an image or HTML (a tag a backup host chose can be
/// `![x](http://...)`), or a table cell, is escaped; control characters
/// (terminal escapes: the report is printed too) become spaces.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '[' | ']' | '<' | '>' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{:.1} h", s as f64 / 3600.0),
        _ => format!("{:.1} days", s as f64 / 86400.0),
    }
}
