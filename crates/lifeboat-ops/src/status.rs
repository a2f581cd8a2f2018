//! `status`: could the team recover right now, how much would they lose,
//! and how long would it take? Worked out from snapshot files and run
//! records alone, so the backup key suffices, and checked against the
//! recovery objectives of the config.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_store::{Access, Repository, SnapshotEntry};
use serde::Serialize;

use crate::error::Result;
use crate::runs::{self, RunKind, RunRecord};

/// Recovery objectives (`[objectives]`); `None` is not checked.
#[derive(Debug, Clone, Default)]
pub struct Objectives {
    /// Newest good snapshot of each source at most this old.
    pub max_age: Option<Duration>,
    /// The last full (not sampled) passing drill's RTO at most this.
    pub rto: Option<Duration>,
    /// A passing drill at most this long ago.
    pub drill_every: Option<Duration>,
    /// A passing verify at most this long ago.
    pub verify_every: Option<Duration>,
    /// The stored binlog reaches at most this far back from now.
    pub binlog_lag: Option<Duration>,
}

/// Options of [`status`].
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// What to check.
    pub objectives: Objectives,
    /// How many of the newest run records to list.
    pub recent_runs: usize,
    /// The sources the config backs up: each is shown (and checked) even
    /// when no snapshot holds it.
    pub sources: Vec<String>,
    /// "Now" (tests pass one).
    pub now: DateTime<Utc>,
    /// Replicas to show (what each holds of this repository's snapshots).
    pub copies: Vec<crate::copy::Replica>,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            objectives: Objectives::default(),
            recent_runs: 20,
            sources: Vec::new(),
            now: Utc::now(),
            copies: Vec::new(),
        }
    }
}

/// One objective, checked.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveCheck {
    /// `max_age`, `rto`, `drill_every`, `verify_every` or `binlog_lag`.
    pub name: &'static str,
    /// The source it is about, or `None` for the whole repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Met.
    pub met: bool,
    /// The measured value in seconds; `None` when there is nothing to
    /// measure (no snapshot, no drill yet): then it is missed.
    pub value: Option<f64>,
    /// The limit in seconds.
    pub limit: f64,
}

/// A snapshot, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSeen {
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Its id.
    pub snapshot: String,
    /// Seconds since.
    pub age_seconds: f64,
    /// The source's plaintext bytes in it.
    pub bytes: u64,
    /// Bytes its backup added to the repository (all its sources).
    pub added_bytes: u64,
    /// How long its backup took.
    pub duration_seconds: f64,
}

/// A failure, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FailureSeen {
    /// When.
    pub time: DateTime<Utc>,
    /// The command's exit status (`None`: killed, never finished).
    pub exit_code: Option<i32>,
    /// The message shown then (`None` when it is sealed to the restore key,
    /// or was never printed).
    pub message: Option<String>,
    /// The snapshot stored without this source (partial), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// One source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// `mysql`, `objects`, `render`, `git`, `command`, `stdin` or `file`.
    pub source: String,
    /// Newest snapshot holding it whole.
    pub last_success: Option<SnapshotSeen>,
    /// Newest failure (a failed run or a partial snapshot).
    pub last_failure: Option<FailureSeen>,
    /// Good snapshots holding it.
    pub snapshots: usize,
    /// Its bytes in the newest good snapshot less those in the one before.
    pub growth_bytes: Option<i64>,
    /// This source's objectives.
    pub objectives: Vec<ObjectiveCheck>,
}

/// The newest drill or verify.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSeen {
    /// When it started.
    pub time: DateTime<Utc>,
    /// It passed.
    pub ok: bool,
    /// Exit status (`None`: never finished).
    pub exit_code: Option<i32>,
    /// Drill: its RTO in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    /// Drill: it restored a sample of the objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    /// Verify: the share of the data read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_data_percent: Option<f64>,
    /// The snapshot drilled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Problems found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<u64>,
    /// Written with a restore key (signed): always, since only signed
    /// records are shown here.
    pub signed: bool,
}

/// The stored binlog: how far point-in-time recovery reaches.
#[derive(Debug, Clone, Serialize)]
pub struct BinlogSeen {
    /// Windows (a snapshot continued by binlog runs).
    pub windows: usize,
    /// The oldest moment a restore --until can reach.
    pub from: DateTime<Utc>,
    /// The newest.
    pub until: DateTime<Utc>,
    /// Seconds from `until` to now: what a loss now would cost.
    pub lag_seconds: f64,
}

/// What [`status`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The repository's id.
    pub repository: String,
    /// When status was worked out.
    pub time: DateTime<Utc>,
    /// Every objective met.
    pub ok: bool,
    /// Per source.
    pub sources: Vec<SourceStatus>,
    /// Newest drill, and newest passing one.
    pub last_drill: Option<CheckSeen>,
    /// Newest verify.
    pub last_verify: Option<CheckSeen>,
    /// The point-in-time window, when binlog is stored.
    pub binlog: Option<BinlogSeen>,
    /// The repository-wide objectives (rto, drill_every, verify_every).
    pub objectives: Vec<ObjectiveCheck>,
    /// Snapshots in the repository (log snapshots apart).
    pub snapshots: usize,
    /// The newest run records, newest first.
    pub runs: Vec<RunRecord>,
    /// Run records or snapshot files that could not be read.
    pub unreadable: usize,
    /// The replicas (`[copy]`) and what they hold; filled by the caller
    /// with [`copy_holding`](crate::copy_holding).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<crate::CopyHolding>,
}

impl Status {
    /// Every objective checked, sources' first.
    pub fn all_objectives(&self) -> Vec<&ObjectiveCheck> {
        self.sources
            .iter()
            .flat_map(|s| &s.objectives)
            .chain(&self.objectives)
            .collect()
    }

    /// Every objective missed, sources' first.
    pub fn missed(&self) -> Vec<&ObjectiveCheck> {
        self.all_objectives()
            .into_iter()
            .filter(|o| !o.met)
            .collect()
    }
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn check(
    name: &'static str,
    source: Option<&str>,
    limit: Duration,
    value: Option<f64>,
) -> ObjectiveCheck {
    let limit = limit.as_secs_f64();
    ObjectiveCheck {
        name,
        source: source.map(str::to_string),
        met: value.is_some_and(|v| v <= limit),
        value,
        limit,
    }
}

/// Work out the status of `repo` (any key).
pub fn status<A: Access>(repo: &Repository<A>, opts: &StatusOptions) -> Result<Status> {
    let (all, records, unreadable) = read(repo)?;
    let mut st = compute(repo.config().id.clone(), &all, &records, unreadable, opts);
    st.copies = opts
        .copies
        .iter()
        .map(|r| crate::copy_holding(r, &all))
        .collect();
    Ok(st)
}

/// What status is worked out from: every snapshot, every run record (no
/// sealed parts), and how many files of either did not read.
pub(crate) fn read<A: Access>(
    repo: &Repository<A>,
) -> Result<(Vec<SnapshotEntry>, Vec<RunRecord>, usize)> {
    let (all, bad) = repo.snapshots()?;
    let (records, bad_runs) = runs::list(repo, false)?;
    let records = records.into_iter().map(|(_, r)| r).collect();
    Ok((all, records, bad.len() + bad_runs))
}

/// [`status`] over what was read (tests call it with their own).
pub(crate) fn compute(
    repository: String,
    all: &[SnapshotEntry],
    records: &[RunRecord],
    unreadable: usize,
    opts: &StatusOptions,
) -> Status {
    let now = opts.now;
    let obj = &opts.objectives;
    let full: Vec<&SnapshotEntry> = all
        .iter()
        .filter(|e| !e.snapshot.is_log() && !e.snapshot.is_from_the_future())
        .collect();

    // Per source: good snapshots in time order, failures.
    let mut good: BTreeMap<String, Vec<&SnapshotEntry>> = BTreeMap::new();
    let mut failures: BTreeMap<String, FailureSeen> = BTreeMap::new();
    let mut note_failure = |source: &str, f: FailureSeen| {
        let newer = failures.get(source).is_none_or(|old| f.time >= old.time);
        if newer {
            failures.insert(source.to_string(), f);
        }
    };
    // A derived MySQL night is good only while what it is made of (its
    // full snapshot, the binlog after it) is in the store.
    let broken_nights: BTreeMap<lifeboat_store::SnapshotId, String> =
        crate::pitr::broken_derived(all)
            .into_iter()
            .map(|(e, err)| (e.id, err.to_string()))
            .collect();
    for e in &full {
        let broken = broken_nights.get(&e.id);
        for (name, s) in &e.snapshot.sources {
            let error = match (&s.error, broken) {
                (Some(m), _) => Some(m.clone()),
                (None, Some(b)) if name == lifeboat_mysql::SOURCE => Some(b.clone()),
                (None, _) => None,
            };
            match &error {
                None => good.entry(name.clone()).or_default().push(e),
                Some(msg) => note_failure(
                    name,
                    FailureSeen {
                        time: e.snapshot.time,
                        exit_code: Some(3),
                        message: Some(msg.clone()),
                        snapshot: Some(e.id.to_hex()),
                    },
                ),
            }
        }
    }
    for r in records
        .iter()
        .filter(|r| r.kind == RunKind::Backup && !r.succeeded())
    {
        let failed: Vec<&str> = r
            .sources
            .iter()
            .filter(|s| !s.ok)
            .map(|s| s.source.as_str())
            .collect();
        for source in failed {
            note_failure(
                source,
                FailureSeen {
                    time: r.end.unwrap_or(r.start),
                    exit_code: r.exit_code,
                    message: r.error.clone().or_else(|| {
                        r.exit_code
                            .is_none()
                            .then(|| "never finished (killed, or the host stopped)".to_string())
                    }),
                    snapshot: r.snapshot.clone(),
                },
            );
        }
    }

    // Configured sources too: one that was never backed up, or whose last
    // snapshot retention removed, must show (and miss max_age).
    let mut names: Vec<String> = good
        .keys()
        .chain(failures.keys())
        .chain(&opts.sources)
        .cloned()
        .collect();
    names.sort();
    names.dedup();

    let windows = crate::pitr::windows(all);
    let binlog = match (
        windows.iter().map(|w| w.from).min(),
        windows.iter().map(|w| w.until).max(),
    ) {
        (Some(from), Some(until)) => Some(BinlogSeen {
            windows: windows.len(),
            from,
            until,
            lag_seconds: secs(now - until).max(0.0),
        }),
        _ => None,
    };

    let sources = names
        .into_iter()
        .map(|name| {
            let snaps = good.get(&name).cloned().unwrap_or_default();
            let seen = |e: &SnapshotEntry| SnapshotSeen {
                time: e.snapshot.time,
                snapshot: e.id.to_hex(),
                age_seconds: secs(now - e.snapshot.time).max(0.0),
                bytes: e.snapshot.sources.get(&name).map_or(0, |s| s.bytes),
                added_bytes: e.snapshot.stats.added_bytes,
                duration_seconds: e.snapshot.stats.duration_ms as f64 / 1000.0,
            };
            let last = snaps.last().map(|e| seen(e));
            let growth_bytes = match snaps.as_slice() {
                [.., a, b] => {
                    // Sizes are whatever a snapshot file says: no overflow.
                    let size = |e: &SnapshotEntry| {
                        i128::from(e.snapshot.sources.get(&name).map_or(0, |s| s.bytes))
                    };
                    Some((size(b) - size(a)).clamp(i64::MIN.into(), i64::MAX.into()) as i64)
                }
                _ => None,
            };
            let mut objectives = Vec::new();
            if let Some(limit) = obj.max_age {
                objectives.push(check(
                    "max_age",
                    Some(&name),
                    limit,
                    last.as_ref().map(|l| l.age_seconds),
                ));
            }
            if let (Some(limit), "mysql") = (obj.binlog_lag, name.as_str()) {
                objectives.push(check(
                    "binlog_lag",
                    Some(&name),
                    limit,
                    binlog.as_ref().map(|b| b.lag_seconds),
                ));
            }
            SourceStatus {
                last_success: last,
                last_failure: failures.get(&name).cloned(),
                snapshots: snaps.len(),
                growth_bytes,
                objectives,
                source: name,
            }
        })
        .collect();

    let check_seen = |r: &RunRecord| CheckSeen {
        time: r.start,
        ok: r.exit_code == Some(0),
        exit_code: r.exit_code,
        rto_seconds: r.rto_seconds,
        sampled: r.sampled,
        read_data_percent: r.read_data_percent,
        snapshot: r.snapshot.clone(),
        problems: r.problems,
        signed: r.signed,
    };
    // Drills and verifies count only when signed, that is written with a
    // restore key: whoever holds the backup key can write any record, so
    // an unsigned "passed" proves nothing, and must not hide a signed
    // failure either. (A verify with the backup key alone is listed in
    // `runs`, and counts for nothing.)
    let of = |kind: RunKind| records.iter().filter(move |r| r.kind == kind && r.signed);
    let last_drill = of(RunKind::Drill).next_back().map(check_seen);
    let last_verify = of(RunKind::Verify).next_back().map(check_seen);
    let passing = |kind: RunKind| of(kind).filter(|r| r.exit_code == Some(0));
    let age_of_passing = |kind: RunKind| {
        passing(kind)
            .next_back()
            .map(|r| secs(now - r.start).max(0.0))
    };
    let mut objectives = Vec::new();
    if let Some(limit) = obj.rto {
        let rto = passing(RunKind::Drill)
            .rfind(|r| r.sampled != Some(true))
            .and_then(|r| r.rto_seconds);
        objectives.push(check("rto", None, limit, rto));
    }
    // A newer failure misses the objective, whatever passed before it:
    // a drill that fails today says more than one that passed last week.
    let newest_failed =
        |kind: RunKind| of(kind).next_back().is_some_and(|r| r.exit_code != Some(0));
    for (name, limit, kind) in [
        ("drill_every", obj.drill_every, RunKind::Drill),
        ("verify_every", obj.verify_every, RunKind::Verify),
    ] {
        if let Some(limit) = limit {
            let mut c = check(name, None, limit, age_of_passing(kind));
            c.met &= !newest_failed(kind);
            objectives.push(c);
        }
    }
    let runs: Vec<RunRecord> = records
        .iter()
        .rev()
        .take(opts.recent_runs)
        .cloned()
        .collect();
    let mut st = Status {
        repository,
        time: now,
        ok: true,
        sources,
        last_drill,
        last_verify,
        binlog,
        objectives,
        snapshots: full.len(),
        runs,
        unreadable,
        copies: Vec::new(),
    };
    st.ok = st.missed().is_empty();
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(ago_secs: i64, exit: i32, signed: bool, now: DateTime<Utc>) -> RunRecord {
        let mut r = RunRecord::begin(RunKind::Drill, "drill");
        r.start = now - chrono::TimeDelta::seconds(ago_secs);
        r.end = Some(r.start);
        r.exit_code = Some(exit);
        r.rto_seconds = Some(10.0);
        r.signed = signed;
        r
    }

    #[test]
    fn a_newer_failed_drill_misses_and_an_unsigned_pass_does_not_count() {
        let now = Utc::now();
        let opts = StatusOptions {
            objectives: Objectives {
                drill_every: Some(Duration::from_secs(3600)),
                rto: Some(Duration::from_secs(60)),
                ..Default::default()
            },
            now,
            ..Default::default()
        };
        let passed = drill(600, 0, true, now);
        let st = compute("r".into(), &[], std::slice::from_ref(&passed), 0, &opts);
        assert!(st.ok, "{:?}", st.objectives);
        // A forged unsigned pass changes nothing; a signed failure after
        // the pass misses drill_every (the RTO of the pass still stands).
        let forged = drill(10, 0, false, now);
        let failed = drill(300, 4, true, now);
        let st = compute("r".into(), &[], &[passed, failed, forged], 0, &opts);
        assert!(!st.ok);
        let missed: Vec<&str> = st.missed().iter().map(|o| o.name).collect();
        assert_eq!(missed, ["drill_every"]);
        assert_eq!(st.last_drill.as_ref().map(|d| d.ok), Some(false));
    }
}
