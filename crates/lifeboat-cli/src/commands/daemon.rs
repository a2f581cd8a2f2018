//! `lifeboat daemon`: runs the `[[schedule]]` jobs of the config at their
//! cron times (time-zone aware), one at a time, each as a child process of
//! this binary so that a failing or crashing job never takes the daemon
//! down; after each job, `[notify]` hears of it (webhook, dead-man's-switch
//! ping). `--once JOB` runs one job now with the same notifications (for
//! cron, systemd timers and Render Cron Jobs), `--check` prints the next
//! runs and exits.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use croner::Cron;

use super::Ctx;
use crate::cli::DaemonArgs;
use crate::config::{NotifyConfig, ScheduleConfig};
use crate::exit::{self, Code};

const JOBS: [&str; 5] = ["backup", "drill", "forget", "prune", "verify"];

struct Schedule<'a> {
    cfg: &'a ScheduleConfig,
    cron: Cron,
    tz: chrono_tz::Tz,
}

impl Schedule<'_> {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

fn parse(cfg: &[ScheduleConfig]) -> Result<Vec<Schedule<'_>>> {
    cfg.iter()
        .enumerate()
        .map(|(i, s)| {
            let what = format!(
                "[[schedule]] #{} (job {:?}, cron {:?})",
                i + 1,
                s.job,
                s.cron
            );
            if !JOBS.contains(&s.job.as_str()) {
                return Err(exit::usage(format!(
                    "{what}: job must be one of {}",
                    JOBS.join(", ")
                )));
            }
            let cron = Cron::from_str(&s.cron)
                .map_err(|e| exit::usage(format!("{what}: not a cron pattern: {e}")))?;
            let tz = match s.time_zone.as_deref() {
                None | Some("UTC") => chrono_tz::UTC,
                Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                    exit::usage(format!(
                        "{what}: time_zone {name:?} is not an IANA zone like Europe/Berlin"
                    ))
                })?,
            };
            Ok(Schedule { cfg: s, cron, tz })
        })
        .collect()
}

pub fn run(ctx: &Ctx, args: &DaemonArgs) -> Result<Code> {
    let config = ctx.global.config.clone().ok_or_else(|| {
        exit::usage("the daemon reads its schedules from --config FILE (or LIFEBOAT_CONFIG)")
    })?;
    if let Some(job) = &args.once {
        if !JOBS.contains(&job.as_str()) {
            return Err(exit::usage(format!(
                "--once {job:?}: jobs are {}",
                JOBS.join(", ")
            )));
        }
        let extra: Vec<String> = args.job_args.clone();
        let ok = run_job(ctx, &config, job, &extra)?;
        return Ok(if ok { Code::Ok } else { Code::Source });
    }
    let schedules = parse(ctx.config.schedule()?)?;
    if schedules.is_empty() {
        return Err(exit::usage(
            "no [[schedule]] in the config: add e.g. job = \"backup\", cron = \"0 2 * * *\"",
        ));
    }
    let now = Utc::now();
    let mut next: Vec<Option<DateTime<Utc>>> =
        schedules.iter().map(|s| s.next_after(now)).collect();
    for (s, n) in schedules.iter().zip(&next) {
        let when = n
            .map(|t| t.with_timezone(&s.tz).to_rfc3339())
            .unwrap_or("never".into());
        eprintln!(
            "schedule {} {:?} ({}): next at {when}",
            s.cfg.job, s.cfg.cron, s.tz
        );
    }
    let follow = ctx.config.mysql()?.as_ref().is_some_and(|c| c.binlog);
    if follow {
        eprintln!("binlog capture: `lifeboat binlog --follow` runs beside the schedules");
    }
    if args.check {
        return Ok(Code::Ok);
    }
    let follower = Follower::default();
    if follow {
        let (exe, argv) = job_argv(ctx, &config, "binlog", &["--follow".to_string()])?;
        let f = follower.clone();
        std::thread::Builder::new()
            .name("lifeboat-binlog".into())
            .spawn(move || follow_binlog(&exe, &argv, &f))
            .context("starting the binlog capture")?;
    }
    loop {
        let Some((i, at)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
        else {
            return Err(exit::usage("no schedule will ever run again"));
        };
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !wait.is_zero() {
            // Short sleeps: a suspended machine or a clock change is noticed.
            std::thread::sleep(wait.min(Duration::from_secs(30)));
            continue;
        }
        let s = &schedules[i];
        // Prune takes the repository's exclusive lock, which a capture run
        // holds shared from one flush to the next: the capture stops for
        // it (what it read and had not stored is read again after).
        let exclusive = s.cfg.job == "prune"
            || (s.cfg.job == "forget" && s.cfg.args.iter().any(|a| a == "--prune"));
        let paused = exclusive && follow && follower.pause();
        if let Err(e) = run_job(ctx, &config, &s.cfg.job, &s.cfg.args) {
            tracing::error!("job {} could not be run: {e:#}", s.cfg.job);
        }
        if paused {
            follower.resume();
        }
        // One job at a time. Its own runs missed while it ran are skipped,
        // not stacked; another schedule that came due meanwhile runs next.
        next[i] = s.next_after(Utc::now());
    }
}

/// The binary and arguments of a job: the config, and what the daemon was
/// given on its command line (repository, keys), then the job.
fn job_argv(
    ctx: &Ctx,
    config: &std::path::Path,
    job: &str,
    extra: &[String],
) -> Result<(std::path::PathBuf, Vec<std::ffi::OsString>)> {
    let exe = std::env::current_exe().context("finding the lifeboat binary")?;
    let mut argv: Vec<std::ffi::OsString> = vec!["--config".into(), config.into()];
    if let Some(r) = &ctx.global.repo {
        argv.extend(["--repo".into(), r.into()]);
    }
    if let Some(k) = &ctx.global.backup_key_file {
        argv.extend(["--backup-key-file".into(), k.into()]);
    }
    if let Some(k) = &ctx.global.restore_key_file {
        argv.extend(["--restore-key-file".into(), k.into()]);
    }
    argv.push(job.into());
    argv.extend(extra.iter().map(Into::into));
    Ok((exe, argv))
}

/// The capture child, shared with the schedule loop so that a job that
/// needs the exclusive lock can stop it and start it again after.
#[derive(Clone, Default)]
struct Follower(Arc<Mutex<FollowerState>>);

#[derive(Default)]
struct FollowerState {
    child: Option<Child>,
    paused: bool,
}

impl Follower {
    /// Stop the capture (killed: its run is not committed, the next one
    /// resumes from the last stored position) and keep it stopped until
    /// [`resume`](Self::resume). Returns whether it is paused.
    fn pause(&self) -> bool {
        let Ok(mut st) = self.0.lock() else {
            return false;
        };
        st.paused = true;
        if let Some(child) = st.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        eprintln!("binlog capture paused for the job");
        true
    }

    fn resume(&self) {
        if let Ok(mut st) = self.0.lock() {
            st.paused = false;
        }
    }

    fn paused(&self) -> bool {
        self.0.lock().map(|st| st.paused).unwrap_or(false)
    }
}

/// Keep `lifeboat binlog --follow` running beside the schedules (not one
/// of the one-at-a-time jobs: it never ends). Its warnings are printed;
/// when it exits (bad settings, a purged gap), it is started again after
/// a pause that grows from 5 s to 5 min while it keeps failing; while a
/// job holds it paused, it is not started.
fn follow_binlog(exe: &std::path::Path, argv: &[std::ffi::OsString], follower: &Follower) {
    let mut pause = Duration::from_secs(5);
    loop {
        if follower.paused() {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        let started = Instant::now();
        let spawned = Command::new(exe)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(mut child) => {
                let err = child.stderr.take();
                if let Ok(mut st) = follower.0.lock() {
                    if st.paused {
                        // Paused while it started: it must not hold the lock.
                        let _ = child.kill();
                    }
                    st.child = Some(child);
                }
                if let Some(err) = err {
                    for line in BufReader::new(err).lines().map_while(Result::ok) {
                        eprintln!("[binlog] {line}");
                    }
                }
                // Ended (or killed by a pause): reap it.
                let code = follower
                    .0
                    .lock()
                    .ok()
                    .and_then(|mut st| st.child.take())
                    .and_then(|mut c| c.wait().ok())
                    .and_then(|s| s.code());
                if follower.paused() {
                    continue;
                }
                eprintln!(
                    "binlog capture stopped (exit {}); starting it again in {}s",
                    code.unwrap_or(-1),
                    pause.as_secs()
                );
            }
            Err(e) => eprintln!("binlog capture could not start: {e}"),
        }
        if started.elapsed() > Duration::from_secs(600) {
            pause = Duration::from_secs(5);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(300));
    }
}

/// Run one job as a child process, stream its output, notify. Returns
/// whether it succeeded.
fn run_job(ctx: &Ctx, config: &std::path::Path, job: &str, extra: &[String]) -> Result<bool> {
    let (exe, argv) = job_argv(ctx, config, job, extra)?;
    let started = Utc::now();
    let clock = Instant::now();
    eprintln!("job {job} started at {}", started.to_rfc3339());
    let mut child = Command::new(exe)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the job")?;
    let out = child.stdout.take().context("job stdout")?;
    let err = child.stderr.take().context("job stderr")?;
    let prefix = job.to_string();
    let printer = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("[{prefix}] {line}");
        }
    });
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        eprintln!("[{job}] {line}");
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    let _ = printer.join();
    let status = child.wait().context("waiting for the job")?;
    let ok = status.success();
    let code = status.code().unwrap_or(-1);
    let seconds = clock.elapsed().as_secs_f64();
    eprintln!(
        "job {job} {} after {seconds:.1}s (exit {code})",
        if ok { "succeeded" } else { "FAILED" }
    );
    let missed = missed_objectives(ctx);
    for m in &missed {
        eprintln!("objective missed: {m}");
    }
    if let Some(n) = ctx.config.notify()? {
        let mut message = tail.join("\n");
        if !missed.is_empty() {
            message = format!("objectives missed:\n  {}\n\n{message}", missed.join("\n  "));
        }
        notify(
            n,
            &serde_json::json!({
                "job": job,
                // The notification's verdict: the job, and the objectives.
                "ok": ok && missed.is_empty(),
                "job_ok": ok,
                "exit_code": code,
                "started": started,
                "seconds": seconds,
                "host": gethostname::gethostname().to_string_lossy(),
                "message": message,
                "objectives_missed": missed,
            }),
            ok && missed.is_empty(),
        );
    }
    Ok(ok)
}

/// After a job: the `[objectives]` missed now, one line each (what `status`
/// prints). None set, or a status that cannot be worked out (logged), is
/// nothing missed: the job's own notification covers a store that is down.
fn missed_objectives(ctx: &Ctx) -> Vec<String> {
    let objectives = match ctx.config.objectives() {
        Ok(Some(o)) => match o.parse() {
            Ok(o) => o,
            Err(e) => return vec![format!("{e:#}")],
        },
        _ => return Vec::new(),
    };
    let opts = lifeboat_ops::StatusOptions {
        objectives,
        sources: super::status::configured_sources(ctx),
        ..Default::default()
    };
    // Whatever the store holds, the job's notification goes out: a panic
    // here (a bug meeting a forged file) is caught and said.
    let st = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ctx.open_any()
            .and_then(|repo| Ok(with_repo!(repo, r => lifeboat_ops::status(r, &opts))?))
    }));
    match st {
        Ok(Ok(st)) => st
            .missed()
            .into_iter()
            .map(super::status::describe)
            .collect(),
        Ok(Err(e)) => {
            tracing::error!("checking the objectives: {e:#}");
            Vec::new()
        }
        Err(_) => vec![
            "the objectives could not be checked (lifeboat failed reading the \
                        store: run `lifeboat status` and `lifeboat verify`)"
                .to_string(),
        ],
    }
}

/// One plain-text e-mail about a job. The SMTP URL holds a password: it is
/// never part of an error.
fn email(
    url: &str,
    from: &str,
    to: &[String],
    event: &serde_json::Value,
    ok: bool,
) -> std::result::Result<(), String> {
    use lettre::{Message, SmtpTransport, Transport};
    let job = event["job"].as_str().unwrap_or("job");
    let host = event["host"].as_str().unwrap_or("");
    let mut m = Message::builder()
        .from(
            from.parse()
                .map_err(|e| format!("email_from {from:?}: {e}"))?,
        )
        .subject(format!(
            "lifeboat: {job} {} on {host}",
            if ok { "succeeded" } else { "FAILED" }
        ));
    for t in to {
        m = m.to(t.parse().map_err(|e| format!("email_to {t:?}: {e}"))?);
    }
    let body = format!(
        "lifeboat {job} on {host}: {} (exit {}) after {:.1} s, started {}.\n\n{}\n",
        if ok { "succeeded" } else { "FAILED" },
        event["exit_code"],
        event["seconds"].as_f64().unwrap_or(0.0),
        event["started"].as_str().unwrap_or(""),
        event["message"].as_str().unwrap_or("")
    );
    let msg = m
        .body(body)
        .map_err(|e| format!("building the message: {e}"))?;
    let mailer = SmtpTransport::from_url(url)
        .map_err(|_| {
            "[notify] smtp_url is not an SMTP URL (smtps://USER:PASSWORD@HOST:465)".to_string()
        })?
        .timeout(Some(Duration::from_secs(30)))
        .build();
    mailer.send(&msg).map(|_| ()).map_err(|e| e.to_string())
}

/// Tell `[notify]` about a job. Never fails the job: a notification that
/// cannot be sent is logged (the dead-man's switch covers total silence).
fn notify(n: &NotifyConfig, event: &serde_json::Value, ok: bool) {
    let http = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("notify: {e}");
            return;
        }
    };
    if let Some(url) = &n.webhook_url {
        if !ok || n.on_success {
            match http.post(url).json(event).send() {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::error!("notify: the webhook answered {}", r.status()),
                Err(e) => tracing::error!("notify: the webhook: {e}"),
            }
        }
    }
    if let (Some(url), Some(from), false, true) = (
        &n.smtp_url,
        &n.email_from,
        n.email_to.is_empty(),
        !ok || n.on_success,
    ) {
        if let Err(e) = email(url, from, &n.email_to, event, ok) {
            tracing::error!("notify: e-mail: {e}");
        }
    }
    let ping = if ok { &n.ping_url } else { &n.ping_fail_url };
    if let Some(url) = ping {
        if let Err(e) = http.get(url).send() {
            tracing::error!("notify: the ping: {e}");
        }
    }
}
