//! `lifeboat status`: the operator's one glance (text, `--json`,
//! `--prometheus`, `--metrics-file`), worked out by lifeboat-ops from
//! snapshots and run records.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use lifeboat_ops::status::{ObjectiveCheck, Status};
use lifeboat_ops::StatusOptions;

use super::backup::human;
use super::Ctx;
use crate::cli::{ReportArgs, StatusArgs};
use crate::exit::Code;

/// The sources the config backs up.
pub fn configured_sources(ctx: &Ctx) -> Vec<String> {
    lifeboat_ops::SourceKind::ALL
        .iter()
        .map(|k| k.name())
        .filter(|n| ctx.config.has(n))
        .map(String::from)
        .collect()
}

fn objectives(ctx: &Ctx) -> Result<lifeboat_ops::Objectives> {
    Ok(match ctx.config.objectives()? {
        Some(o) => o.parse()?,
        None => Default::default(),
    })
}

/// `report --html FILE`: the dashboard, written whole or not at all.
pub fn report(ctx: &Ctx, args: &ReportArgs) -> Result<Code> {
    let opts = lifeboat_ops::report::DashboardOptions {
        objectives: objectives(ctx)?,
        days: args.days,
        sources: configured_sources(ctx),
        now: Utc::now(),
    };
    let repo = ctx.open_any()?;
    let html = with_repo!(repo, r => lifeboat_ops::report::dashboard(r, &opts))?;
    super::write_output(&args.html, args.force, &mut |w| {
        w.write_all(html.as_bytes()).context("writing the page")
    })?;
    if !ctx.global.quiet {
        eprintln!("dashboard written to {}", args.html);
    }
    Ok(Code::Ok)
}

pub fn run(ctx: &Ctx, args: &StatusArgs) -> Result<Code> {
    let objectives = objectives(ctx)?;
    let repo = ctx.open_any()?;
    let opts = StatusOptions {
        objectives,
        recent_runs: args.runs,
        sources: configured_sources(ctx),
        now: Utc::now(),
        copies: super::copy::configured(ctx, &repo),
    };
    let st = with_repo!(repo, r => lifeboat_ops::status(r, &opts))?;
    if args.prometheus {
        print!("{}", prometheus(&st));
    } else if ctx.global.json {
        ctx.print_json(&st)?;
    } else {
        print_text(&st)?;
    }
    let missed = st.missed();
    for m in &missed {
        eprintln!("objective missed: {}", describe(m));
    }
    // After the status is out: a metrics file that cannot be written
    // hides nothing else.
    if let Some(path) = &args.metrics_file {
        write_metrics(path, &prometheus(&st))?;
    }
    Ok(match missed.is_empty() {
        true => Code::Ok,
        false => Code::Warning,
    })
}

/// "90s", "26h", "7d": the largest unit that keeps it whole, else seconds.
pub fn duration(secs: f64) -> String {
    let s = secs.round() as i64;
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s != 0 && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    if s >= 3600 {
        return format!("{:.1}h", secs / 3600.0);
    }
    format!("{s}s")
}

/// Text from the store, printed on a terminal or sent in a notification:
/// control characters (terminal escapes, line breaks a forged record put
/// in a name) become `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// One line naming a missed objective.
pub fn describe(o: &ObjectiveCheck) -> String {
    let who = o
        .source
        .as_deref()
        .map(|s| format!(" ({})", clean(s)))
        .unwrap_or_default();
    let what = match o.name {
        "max_age" => "newest good snapshot",
        "rto" => "last full drill's recovery time",
        "drill_every" => "last passing drill",
        "verify_every" => "last passing verify",
        "binlog_lag" => "stored binlog behind now",
        _ => "value",
    };
    match o.value {
        Some(v) => format!(
            "{}{who}: {what} {} (limit {})",
            o.name,
            duration(v),
            duration(o.limit)
        ),
        None => format!(
            "{}{who}: {what}: none yet (limit {})",
            o.name,
            duration(o.limit)
        ),
    }
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0) as f64;
    format!("{} ({} ago)", t.format("%Y-%m-%d %H:%M UTC"), duration(s))
}

fn print_text(st: &Status) -> Result<()> {
    let now = st.time;
    outln!(
        "repository {}: {} snapshot(s){}",
        &st.repository,
        st.snapshots,
        if st.unreadable > 0 {
            format!(", {} file(s) unreadable (run verify)", st.unreadable)
        } else {
            String::new()
        }
    )?;
    for s in &st.sources {
        let good = match &s.last_success {
            Some(l) => format!(
                "last good {} {}, {}{}",
                &l.snapshot[..8],
                ago(l.time, now),
                human(l.bytes),
                s.growth_bytes
                    .map(|g| format!(
                        " ({}{})",
                        if g < 0 { "-" } else { "+" },
                        human(g.unsigned_abs())
                    ))
                    .unwrap_or_default()
            ),
            None => "no good snapshot".into(),
        };
        outln!("{:<8} {good}", clean(&s.source))?;
        if let Some(f) = &s.last_failure {
            outln!(
                "         last failure {}: {}",
                ago(f.time, now),
                clean(
                    f.message
                        .as_deref()
                        .unwrap_or("(message readable with the restore key)")
                )
            )?;
        }
    }
    if let Some(b) = &st.binlog {
        outln!(
            "point-in-time: {} to {} ({} behind now, {} window(s))",
            b.from.format("%Y-%m-%d %H:%M UTC"),
            b.until.format("%Y-%m-%d %H:%M:%S UTC"),
            duration(b.lag_seconds),
            b.windows
        )?;
    }
    match &st.last_drill {
        Some(d) => outln!(
            "drill    {} {}{}",
            if d.ok { "passed" } else { "FAILED" },
            ago(d.time, now),
            d.rto_seconds
                .map(|r| format!(
                    ", RTO {r:.1}s{}",
                    if d.sampled == Some(true) {
                        " (sampled)"
                    } else {
                        ""
                    }
                ))
                .unwrap_or_default()
        )?,
        None => outln!("drill    none recorded")?,
    }
    match &st.last_verify {
        Some(v) => outln!(
            "verify   {} {}, read {}% of the data",
            if v.ok { "passed" } else { "FAILED" },
            ago(v.time, now),
            v.read_data_percent.unwrap_or(0.0)
        )?,
        None => outln!("verify   none recorded")?,
    }
    for c in &st.copies {
        match &c.error {
            Some(e) => outln!("copy     {}: could not be listed: {}", c.to, clean(e))?,
            None => outln!(
                "copy     {}: holds {} of {} snapshot(s){}",
                c.to,
                c.holds,
                c.of,
                c.missing_since
                    .map(|t| format!(", behind since {}", ago(t, now)))
                    .unwrap_or_default()
            )?,
        }
    }
    let all = st.all_objectives();
    if all.is_empty() {
        outln!("objectives: none set (add [objectives] to the config)")?;
    }
    for o in all {
        outln!(
            "{} {}",
            if o.met { "met   " } else { "MISSED" },
            describe(o)
        )?;
    }
    Ok(())
}

/// A label value as the exposition format quotes it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The status in Prometheus' text exposition format (version 0.0.4).
pub fn prometheus(st: &Status) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let src = |s: &str| format!("{{source=\"{}\"}}", label(s));
    let ts = |t: DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
    family(
        "lifeboat_last_success_timestamp_seconds",
        "Time of the newest snapshot holding the source whole.",
        st.sources
            .iter()
            .filter_map(|s| Some((src(&s.source), ts(s.last_success.as_ref()?.time))))
            .collect(),
    );
    family(
        "lifeboat_last_failure_timestamp_seconds",
        "Time of the source's newest failure.",
        st.sources
            .iter()
            .filter_map(|s| Some((src(&s.source), ts(s.last_failure.as_ref()?.time))))
            .collect(),
    );
    family(
        "lifeboat_snapshot_age_seconds",
        "Age of the newest snapshot holding the source whole.",
        st.sources
            .iter()
            .filter_map(|s| Some((src(&s.source), s.last_success.as_ref()?.age_seconds)))
            .collect(),
    );
    family(
        "lifeboat_snapshot_bytes",
        "Plaintext bytes of the source in its newest good snapshot.",
        st.sources
            .iter()
            .filter_map(|s| Some((src(&s.source), s.last_success.as_ref()?.bytes as f64)))
            .collect(),
    );
    family(
        "lifeboat_snapshot_added_bytes",
        "Bytes the newest good snapshot's backup added to the repository.",
        st.sources
            .iter()
            .filter_map(|s| Some((src(&s.source), s.last_success.as_ref()?.added_bytes as f64)))
            .collect(),
    );
    family(
        "lifeboat_snapshots",
        "Good snapshots holding the source.",
        st.sources
            .iter()
            .map(|s| (src(&s.source), s.snapshots as f64))
            .collect(),
    );
    if let Some(d) = &st.last_drill {
        family(
            "lifeboat_last_drill_timestamp_seconds",
            "Start of the newest drill.",
            vec![(String::new(), ts(d.time))],
        );
        family(
            "lifeboat_last_drill_success",
            "1 when the newest drill passed.",
            vec![(String::new(), if d.ok { 1.0 } else { 0.0 })],
        );
        if let Some(rto) = d.rto_seconds {
            family(
                "lifeboat_drill_rto_seconds",
                "Measured recovery time of the newest drill.",
                vec![(String::new(), rto)],
            );
        }
    }
    if let Some(v) = &st.last_verify {
        family(
            "lifeboat_last_verify_timestamp_seconds",
            "Start of the newest verify.",
            vec![(String::new(), ts(v.time))],
        );
        family(
            "lifeboat_last_verify_success",
            "1 when the newest verify passed.",
            vec![(String::new(), if v.ok { 1.0 } else { 0.0 })],
        );
        family(
            "lifeboat_last_verify_read_data_ratio",
            "Share of the data the newest verify read (0 to 1).",
            vec![(String::new(), v.read_data_percent.unwrap_or(0.0) / 100.0)],
        );
    }
    if let Some(b) = &st.binlog {
        family(
            "lifeboat_binlog_until_timestamp_seconds",
            "Newest moment a point-in-time restore reaches.",
            vec![(String::new(), ts(b.until))],
        );
        family(
            "lifeboat_binlog_lag_seconds",
            "Seconds from the newest moment a point-in-time restore reaches to now.",
            vec![(String::new(), b.lag_seconds)],
        );
    }
    let objectives = st.all_objectives();
    let ol = |o: &ObjectiveCheck| match &o.source {
        Some(s) => format!("{{objective=\"{}\",source=\"{}\"}}", o.name, label(s)),
        None => format!("{{objective=\"{}\"}}", o.name),
    };
    family(
        "lifeboat_objective_met",
        "1 when the recovery objective is met.",
        objectives
            .iter()
            .map(|o| (ol(o), if o.met { 1.0 } else { 0.0 }))
            .collect(),
    );
    family(
        "lifeboat_objective_value_seconds",
        "The measured value of the objective.",
        objectives
            .iter()
            .filter_map(|o| Some((ol(o), o.value?)))
            .collect(),
    );
    family(
        "lifeboat_objective_limit_seconds",
        "The objective's limit.",
        objectives.iter().map(|o| (ol(o), o.limit)).collect(),
    );
    family(
        "lifeboat_copy_missing_snapshots",
        "Snapshots of this repository the replica does not hold.",
        st.copies
            .iter()
            .filter(|c| c.error.is_none())
            .map(|c| {
                (
                    format!("{{copy=\"{}\"}}", label(&c.to)),
                    (c.of - c.holds) as f64,
                )
            })
            .collect(),
    );
    family(
        "lifeboat_status_timestamp_seconds",
        "When this status was worked out.",
        vec![(String::new(), ts(st.time))],
    );
    out
}

/// Write the metrics file whole or not at all (node_exporter must never
/// read half a file): a temporary file in the same folder, then rename.
/// Mode 0644: the collector runs as its own user, and nothing here is
/// secret.
fn write_metrics(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = lifeboat_paths::temp_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    lifeboat_paths::publish(tmp, path, true, Some(0o644))
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
