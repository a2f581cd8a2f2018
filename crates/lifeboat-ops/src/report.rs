//! HTML pages: the dashboard (`report --html`, from snapshots and run
//! records, so the backup key suffices) and a drill report's HTML form.
//!
//! Each page is one self-contained file: styles inline, charts as inline
//! SVG drawn here, no script, and a Content-Security-Policy that forbids
//! fetching anything, so it works from a file:// URL, offline, on a
//! phone and on paper. Every text that came from the store (host names,
//! tags, messages) is escaped: a backup host may have written it.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_store::{Access, Repository, SnapshotEntry};

use crate::error::Result;
use crate::runs::{RunKind, RunRecord};
use crate::status::{self, ObjectiveCheck, Status};
use crate::{human_bytes, Objectives};

/// Options of [`dashboard`].
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// The objectives shown at the top.
    pub objectives: Objectives,
    /// Days of history in the charts.
    pub days: u32,
    /// The sources the config backs up (shown even without a snapshot).
    pub sources: Vec<String>,
    /// "Now".
    pub now: DateTime<Utc>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            objectives: Objectives::default(),
            days: 60,
            sources: Vec::new(),
            now: Utc::now(),
        }
    }
}

/// Text made safe for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font:15px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:60em;padding:1em;color:#1d2329}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccd;padding-bottom:.2em}\
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #e3e6ea}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#11692e}.bad{color:#b3261e;font-weight:600}.pill{display:inline-block;padding:.15em .6em;border-radius:1em;color:#fff;font-weight:600}\
.pill.ok{background:#1e7d3b}.pill.bad{background:#b3261e}.muted{color:#667}\
svg{width:100%;min-width:28em;height:auto;display:block;margin:.4em 0}svg text{font:11px sans-serif;fill:#445}\
.wrap{overflow-x:auto}\
@media print{body{max-width:none;font-size:11pt}h2{break-after:avoid}svg,table{break-inside:avoid}}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// [`human_bytes`] for a chart's values.
fn human(n: f64) -> String {
    human_bytes(n as u64)
}

fn dur(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86400.0),
    }
}

/// A chart's frame: width, height, left margin, and the time axis.
struct Frame {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    w: f64,
    left: f64,
}

impl Frame {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.to - self.from).num_seconds().max(1) as f64;
        let f = ((t - self.from).num_seconds() as f64 / span).clamp(0.0, 1.0);
        self.left + f * (self.w - self.left - 10.0)
    }

    /// Ticks along the bottom at `y`: every 10 minutes, hour or 6 hours
    /// for a span of two days or less, else days (every 1, 7 or 14).
    fn axis(&self, out: &mut String, y: f64) {
        let span = self.to - self.from;
        let (step, label): (TimeDelta, &str) = match span.num_hours() {
            0..=1 => (TimeDelta::minutes(10), "%H:%M"),
            2..=6 => (TimeDelta::hours(1), "%H:00"),
            7..=48 => (TimeDelta::hours(6), "%m-%d %H:00"),
            _ => match span.num_days() {
                0..=10 => (TimeDelta::days(1), "%m-%d"),
                11..=40 => (TimeDelta::days(7), "%m-%d"),
                _ => (TimeDelta::days(14), "%m-%d"),
            },
        };
        // From the last tick at or before `to`, on whole steps from midnight.
        let Some(midnight) = self
            .to
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|n| n.and_utc())
        else {
            return;
        };
        let steps = (self.to - midnight).num_seconds() / step.num_seconds().max(1);
        let mut t = midnight + step * steps as i32;
        for _ in 0..40 {
            if t < self.from {
                break;
            }
            let x = self.x(t);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{y}\" stroke=\"#eef0f3\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                y + 13.0,
                t.format(label)
            );
            t -= step;
        }
    }
}

/// Bars over time: (time, value, ok) with values formatted by `fmt`.
fn bars(frame: &Frame, points: &[(DateTime<Utc>, f64, bool)], fmt: fn(f64) -> String) -> String {
    if points.is_empty() {
        return "<p class=\"muted\">nothing recorded in this period</p>".into();
    }
    let h = 140.0;
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9);
    let mut s = format!(
        "<div class=\"wrap\"><svg viewBox=\"0 0 {} {}\" role=\"img\">",
        frame.w,
        h + 20.0
    );
    frame.axis(&mut s, h);
    let _ = write!(
        s,
        "<text x=\"2\" y=\"12\">{}</text><text x=\"2\" y=\"{h}\">0</text>",
        esc(&fmt(max))
    );
    let bw = ((frame.w - frame.left) / points.len().max(1) as f64 * 0.6).clamp(2.0, 14.0);
    for (t, v, ok) in points {
        let x = frame.x(*t) - bw / 2.0;
        let bh = (v / max * (h - 20.0)).max(1.0);
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}</title></rect>",
            h - bh,
            if *ok { "#3b7dd8" } else { "#b3261e" },
            t.format("%Y-%m-%d %H:%M"),
            esc(&fmt(*v))
        );
    }
    s.push_str("</svg></div>");
    s
}

fn objective_rows(all: &[&ObjectiveCheck]) -> String {
    let mut s = String::new();
    for o in all {
        let _ = write!(
            s,
            "<tr><td><span class=\"pill {}\">{}</span></td><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if o.met { "ok" } else { "bad" },
            if o.met { "met" } else { "MISSED" },
            esc(o.name),
            o.source
                .as_deref()
                .map(|s| format!(" ({})", esc(s)))
                .unwrap_or_default(),
            o.value.map(dur).unwrap_or_else(|| "none yet".into()),
            dur(o.limit)
        );
    }
    s
}

/// The dashboard of `repo` (any key): objectives, a timeline of snapshots
/// per source, stored and added bytes, backup durations, drill RTO over
/// time, the latest drill's table and the point-in-time coverage.
pub fn dashboard<A: Access>(repo: &Repository<A>, opts: &DashboardOptions) -> Result<String> {
    let (all, records, unreadable) = status::read(repo)?;
    let st = status::compute(
        repo.config().id.clone(),
        &all,
        &records,
        unreadable,
        &crate::StatusOptions {
            objectives: opts.objectives.clone(),
            recent_runs: 15,
            sources: opts.sources.clone(),
            now: opts.now,
            copies: Vec::new(),
        },
    );
    Ok(render(&st, &all, &records, opts))
}

fn render(
    st: &Status,
    all: &[SnapshotEntry],
    records: &[RunRecord],
    opts: &DashboardOptions,
) -> String {
    let now = opts.now;
    // The charts span the days asked for, or less when the history is
    // shorter (a new repository's first hours fill the width).
    let oldest_asked = now - TimeDelta::days(i64::from(opts.days.clamp(1, 36_500)));
    let earliest = all
        .iter()
        .map(|e| e.snapshot.time)
        .chain(records.iter().map(|r| r.start))
        .filter(|t| *t >= oldest_asked && *t <= now)
        .min();
    let from = match earliest {
        Some(t) => {
            let pad = ((now - t) / 20).max(TimeDelta::minutes(10));
            (t - pad).max(oldest_asked)
        }
        None => oldest_asked,
    };
    let frame = Frame {
        from,
        to: now,
        w: 720.0,
        left: 70.0,
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>lifeboat: repository {}</h1><p class=\"muted\">as of {} · {} snapshot(s) · the last {} days</p>",
        esc(&st.repository[..st.repository.len().min(8)]),
        now.format("%Y-%m-%d %H:%M UTC"),
        st.snapshots,
        opts.days
    );

    // Objectives.
    let objectives = st.all_objectives();
    b.push_str("<h2>Recovery objectives</h2>");
    if objectives.is_empty() {
        b.push_str("<p class=\"muted\">none set: add <code>[objectives]</code> to the config</p>");
    } else {
        let _ = write!(
            b,
            "<p><span class=\"pill {}\">{}</span></p><div class=\"wrap\"><table><tr><th></th><th>objective</th><th class=\"n\">now</th><th class=\"n\">limit</th></tr>{}</table></div>",
            if st.ok { "ok" } else { "bad" },
            if st.ok { "all met" } else { "objective missed" },
            objective_rows(&objectives)
        );
    }

    // Sources.
    b.push_str("<h2>Sources</h2><div class=\"wrap\"><table><tr><th>source</th><th>last good</th><th class=\"n\">size</th><th class=\"n\">growth</th><th>last failure</th></tr>");
    for s in &st.sources {
        let good = s
            .last_success
            .as_ref()
            .map(|l| {
                format!(
                    "{} ({} ago)",
                    l.time.format("%Y-%m-%d %H:%M"),
                    dur(l.age_seconds)
                )
            })
            .unwrap_or_else(|| "<span class=\"bad\">none</span>".into());
        let failure = s
            .last_failure
            .as_ref()
            .map(|f| {
                format!(
                    "<span class=\"bad\">{}</span> {}",
                    f.time.format("%Y-%m-%d %H:%M"),
                    esc(f
                        .message
                        .as_deref()
                        .unwrap_or("(sealed to the restore key)"))
                )
            })
            .unwrap_or_else(|| "<span class=\"muted\">none</span>".into());
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{good}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{failure}</td></tr>",
            esc(&s.source),
            s.last_success
                .as_ref()
                .map(|l| human_bytes(l.bytes))
                .unwrap_or_default(),
            s.growth_bytes
                .map(|g| format!("{}{}", if g < 0 { "−" } else { "+" }, human_bytes(g.unsigned_abs())))
                .unwrap_or_default(),
        );
    }
    b.push_str("</table></div>");

    // Timeline: a row per source, a mark per snapshot (red: the source
    // failed, stored partial) and per failed run; the binlog's reach.
    let in_range = |t: DateTime<Utc>| t >= frame.from && t <= now;
    let full: Vec<&SnapshotEntry> = all
        .iter()
        .filter(|e| !e.snapshot.is_log() && in_range(e.snapshot.time))
        .collect();
    let windows = crate::pitr::windows(all);
    let mut rows: Vec<String> = st.sources.iter().map(|s| s.source.clone()).collect();
    if !windows.is_empty() {
        rows.push("point-in-time".into());
    }
    b.push_str("<h2>Snapshots</h2>");
    if rows.is_empty() {
        b.push_str("<p class=\"muted\">no snapshot yet</p>");
    } else {
        let rh = 24.0;
        let h = rh * rows.len() as f64 + 6.0;
        let mut s = format!(
            "<div class=\"wrap\"><svg viewBox=\"0 0 {} {}\" role=\"img\">",
            frame.w,
            h + 20.0
        );
        frame.axis(&mut s, h);
        for (i, name) in rows.iter().enumerate() {
            let y = rh * i as f64 + rh / 2.0 + 3.0;
            let _ = write!(
                s,
                "<text x=\"2\" y=\"{:.1}\">{}</text><line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#dde\"/>",
                y + 4.0,
                esc(name),
                frame.left,
                frame.w - 10.0
            );
            if name == "point-in-time" {
                for w in &windows {
                    let (x0, x1) = (frame.x(w.from.max(frame.from)), frame.x(w.until.min(now)));
                    if w.until < frame.from {
                        continue;
                    }
                    let _ = write!(
                        s,
                        "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"#8fb8ef\"><title>{} to {}</title></rect>",
                        y - 5.0,
                        (x1 - x0).max(2.0),
                        w.from.format("%Y-%m-%d %H:%M"),
                        w.until.format("%Y-%m-%d %H:%M:%S")
                    );
                }
                continue;
            }
            for e in &full {
                let Some(src) = e.snapshot.sources.get(name) else {
                    continue;
                };
                let x = frame.x(e.snapshot.time);
                let title = format!(
                    "{} {}{}",
                    e.snapshot.time.format("%Y-%m-%d %H:%M"),
                    e.id.short(),
                    if src.error.is_some() {
                        " PARTIAL: this source failed"
                    } else {
                        ""
                    }
                );
                let _ = match src.error {
                    None => write!(
                        s,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#1e7d3b\"><title>{}</title></circle>",
                        esc(&title)
                    ),
                    Some(_) => write!(
                        s,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#fff\" stroke=\"#b3261e\" stroke-width=\"2\"><title>{}</title></circle>",
                        esc(&title)
                    ),
                };
            }
            for r in records.iter().filter(|r| {
                r.kind == RunKind::Backup
                    && !r.succeeded()
                    && in_range(r.start)
                    && r.snapshot.is_none()
                    && r.sources.iter().any(|s| &s.source == name && !s.ok)
            }) {
                let x = frame.x(r.start);
                let _ = write!(
                    s,
                    "<path d=\"M{:.1} {:.1}l8 0l-4 -8z\" fill=\"#b3261e\"><title>{} failed (exit {})</title></path>",
                    x - 4.0,
                    y + 4.0,
                    r.start.format("%Y-%m-%d %H:%M"),
                    r.exit_code.map_or("none: killed".into(), |c| c.to_string())
                );
            }
        }
        s.push_str("</svg></div><p class=\"muted\">● snapshot · ○ stored partial without this source · ▲ failed run that stored nothing</p>");
        b.push_str(&s);
    }

    // Bytes and durations per backup.
    let stored: Vec<(DateTime<Utc>, f64, bool)> = full
        .iter()
        .map(|e| {
            (
                e.snapshot.time,
                e.snapshot
                    .sources
                    .values()
                    .fold(0u64, |a, s| a.saturating_add(s.bytes)) as f64,
                e.snapshot.failed_sources().is_empty(),
            )
        })
        .collect();
    let added: Vec<(DateTime<Utc>, f64, bool)> = full
        .iter()
        .map(|e| {
            (
                e.snapshot.time,
                e.snapshot.stats.added_bytes as f64,
                e.snapshot.failed_sources().is_empty(),
            )
        })
        .collect();
    let took: Vec<(DateTime<Utc>, f64, bool)> = full
        .iter()
        .map(|e| {
            (
                e.snapshot.time,
                e.snapshot.stats.duration_ms as f64 / 1000.0,
                e.snapshot.failed_sources().is_empty(),
            )
        })
        .collect();
    let _ = write!(
        b,
        "<h2>Data per snapshot</h2>{}<h2>Added to the store per backup</h2>{}<h2>Backup duration</h2>{}",
        bars(&frame, &stored, human),
        bars(&frame, &added, human),
        bars(&frame, &took, dur)
    );

    // Drills.
    // Drills need the restore key, which signs their records: an unsigned
    // one is forged and not shown.
    let drills: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.kind == RunKind::Drill && r.signed && in_range(r.start))
        .collect();
    let rto: Vec<(DateTime<Utc>, f64, bool)> = drills
        .iter()
        .filter_map(|r| Some((r.start, r.rto_seconds?, r.exit_code == Some(0))))
        .collect();
    let _ = write!(b, "<h2>Drill RTO</h2>{}", bars(&frame, &rto, dur));
    b.push_str("<h2>Latest drill</h2>");
    match records
        .iter()
        .rev()
        .find(|r| r.kind == RunKind::Drill && r.signed)
    {
        None => b.push_str("<p class=\"muted\">no drill recorded</p>"),
        Some(d) => {
            let _ = write!(
                b,
                "<p><span class=\"pill {}\">{}</span> {} · RTO {}{}</p>",
                if d.exit_code == Some(0) { "ok" } else { "bad" },
                if d.exit_code == Some(0) {
                    "passed"
                } else {
                    "FAILED"
                },
                d.start.format("%Y-%m-%d %H:%M UTC"),
                d.rto_seconds.map(dur).unwrap_or_else(|| "n/a".into()),
                if d.sampled == Some(true) {
                    " (objects sampled)"
                } else {
                    ""
                },
            );
            b.push_str("<div class=\"wrap\"><table><tr><th>source</th><th class=\"n\">items</th><th class=\"n\">bytes</th><th class=\"n\">restore</th><th class=\"n\">verify</th><th>result</th></tr>");
            for s in &d.sources {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>",
                    esc(&s.source),
                    s.items,
                    s.expected.unwrap_or(s.items),
                    human_bytes(s.bytes),
                    s.restore_seconds.map(dur).unwrap_or_default(),
                    s.verify_seconds.map(dur).unwrap_or_default(),
                    if s.ok { "ok" } else { "bad" },
                    match s.mismatches {
                        Some(n) if n > 0 => format!("{n} mismatch(es)"),
                        _ if s.ok => "match".into(),
                        _ => "FAILED".into(),
                    }
                );
            }
            b.push_str("</table></div><p class=\"muted\">names of what differed are readable with the restore key (the drill's own report)</p>");
        }
    }

    // Point-in-time coverage and recent runs.
    b.push_str("<h2>Point-in-time recovery</h2>");
    match &st.binlog {
        Some(w) => {
            let _ = write!(
                b,
                "<p>restorable to any moment from {} to {} ({} behind now, {} window(s))</p>",
                w.from.format("%Y-%m-%d %H:%M UTC"),
                w.until.format("%Y-%m-%d %H:%M:%S UTC"),
                dur(w.lag_seconds),
                w.windows
            );
        }
        None => {
            b.push_str("<p class=\"muted\">no binlog stored: restores go to snapshots only</p>")
        }
    }
    b.push_str("<h2>Recent runs</h2><div class=\"wrap\"><table><tr><th>started</th><th>command</th><th>host</th><th class=\"n\">took</th><th>result</th></tr>");
    for r in &st.runs {
        let took = r
            .end
            .map(|e| dur((e - r.start).num_milliseconds() as f64 / 1000.0))
            .unwrap_or_default();
        let needs_signature = matches!(r.kind, RunKind::Drill | RunKind::Verify);
        let result = match r.exit_code {
            _ if needs_signature && !r.signed => {
                "<span class=\"bad\">not signed by a restore key: not counted</span>".to_string()
            }
            Some(0) => "<span class=\"ok\">ok</span>".to_string(),
            Some(c) => format!(
                "<span class=\"bad\">exit {c}</span> {}",
                esc(r.error.as_deref().unwrap_or(""))
            ),
            None => "<span class=\"bad\">never finished (killed)</span>".into(),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{took}</td><td>{result}</td></tr>",
            r.start.format("%Y-%m-%d %H:%M"),
            esc(&r.command),
            esc(&r.host)
        );
    }
    b.push_str("</table></div>");
    if st.unreadable > 0 {
        let _ = write!(
            b,
            "<p class=\"bad\">{} snapshot or run file(s) could not be read: run <code>lifeboat verify</code></p>",
            st.unreadable
        );
    }
    page("lifeboat status", &b)
}

/// A drill report as one HTML page (what the Markdown form says, and the
/// notes and problems in full).
pub fn drill_html(r: &crate::drill::DrillReport) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Restore drill <span class=\"pill {}\">{}</span></h1><ul><li>snapshot <code>{}</code> of {} [{}]</li>\
         <li>RTO (measured restore + verification): <b>{:.1} s</b></li><li>RPO ({}): <b>{}</b></li>",
        if r.ok() { "ok" } else { "bad" },
        if r.ok() { "PASSED" } else { "FAILED" },
        esc(&r.snapshot[..r.snapshot.len().min(8)]),
        r.snapshot_time.map(|t| t.to_rfc3339()).unwrap_or_default(),
        esc(&r.tags.join(", ")),
        r.rto_seconds,
        if r.until.is_some() { "age of the moment restored to" } else { "snapshot age at drill start" },
        dur(r.rpo_seconds.max(0) as f64)
    );
    if let Some(u) = r.until {
        let _ = write!(b, "<li>database restored to <b>{}</b></li>", u.to_rfc3339());
    }
    if let Some(p) = r.sample_percent {
        let _ = write!(b, "<li>objects: a {p}% sample</li>");
    }
    b.push_str("</ul><div class=\"wrap\"><table><tr><th>source</th><th>target</th><th class=\"n\">items</th><th class=\"n\">bytes</th><th class=\"n\">restore s</th><th class=\"n\">verify s</th><th>result</th></tr>");
    for x in &r.sources {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"{}\">{}</td></tr>",
            esc(&x.source),
            esc(&x.target),
            x.items,
            x.items_expected,
            human_bytes(x.bytes),
            x.restore_seconds,
            x.verify_seconds,
            if x.ok() { "ok" } else { "bad" },
            if x.ok() { "match" } else { "MISMATCH" }
        );
    }
    b.push_str("</table></div>");
    for x in &r.sources {
        if x.notes.is_empty() && x.mismatches.is_empty() {
            continue;
        }
        let _ = write!(b, "<h2>{}</h2><ul>", esc(&x.source));
        for m in &x.mismatches {
            let _ = write!(b, "<li class=\"bad\">{}</li>", esc(m));
        }
        for n in &x.notes {
            let _ = write!(b, "<li>{}</li>", esc(n));
        }
        b.push_str("</ul>");
    }
    if let Some(x) = &r.cross_check {
        let _ = write!(
            b,
            "<h2>Cross-check</h2><p>{} rows, {} objects; {} missing, {} differ, {} orphan objects, {} rows on local storage</p>",
            x["rows"], x["objects"], x["missing"], x["differs"], x["orphans"], x["local"]
        );
    }
    if let Some(h) = &r.health {
        let _ = write!(b, "<p>Health: {}</p>", esc(h));
    }
    if !r.problems.is_empty() {
        b.push_str("<h2>Problems</h2><ul>");
        for p in &r.problems {
            let _ = write!(b, "<li class=\"bad\">{}</li>", esc(p));
        }
        b.push_str("</ul>");
    }
    page("lifeboat restore drill", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_backup_host_may_have_written() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"\u{7}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\u{fffd}"
        );
    }

    #[test]
    fn an_empty_repository_renders_a_whole_page() {
        let st = status::compute(
            "0123456789abcdef".into(),
            &[],
            &[],
            0,
            &crate::StatusOptions::default(),
        );
        let html = render(&st, &[], &[], &DashboardOptions::default());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</html>\n"));
        assert!(html.contains("no snapshot yet"));
        assert!(!html.contains("<script"));
    }
}
