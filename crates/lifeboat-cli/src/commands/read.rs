//! Read-only commands: `snapshots`, `show`, and `unlock`.

use anyhow::Result;
use lifeboat_store::{Access, Repository, SnapshotEntry};

use super::backup::human;
use super::status::clean;
use super::{AnyRepo, Ctx};
use crate::cli::ShowArgs;
use crate::exit::Code;

pub fn snapshots(ctx: &Ctx) -> Result<Code> {
    let repo = ctx.open_any()?;
    let (list, bad) = match &repo {
        AnyRepo::Backup(r) => r.snapshots()?,
        AnyRepo::Full(r) => r.snapshots()?,
    };
    for u in &bad {
        tracing::warn!("unreadable snapshot file {}: {}", u.file, u.detail);
    }
    let copies: Vec<_> = super::copy::configured(ctx, &repo)
        .iter()
        .map(|r| lifeboat_ops::copy_holding(r, &list))
        .collect();
    for c in copies
        .iter()
        .filter_map(|c| Some((&c.to, c.error.as_ref()?)))
    {
        tracing::warn!("the copy at {} could not be listed: {}", c.0, c.1);
    }
    if ctx.global.json {
        let out: Vec<_> = list
            .iter()
            .map(|s| {
                let mut v = snapshot_json(s);
                let id = s.id.to_hex();
                v["copies"] = copies
                    .iter()
                    .filter(|c| c.ids.contains(&id))
                    .map(|c| c.to.clone())
                    .collect();
                v
            })
            .collect();
        ctx.print_json(&out)?;
    } else {
        outln!(
            "{:<10} {:<20} {:<16} {:<24} {:>6} {:>11} {:>11}",
            "id",
            "time (UTC)",
            "host",
            "tags",
            "items",
            "size",
            "added"
        )?;
        for s in &list {
            let snap = &s.snapshot;
            outln!(
                "{:<10} {:<20} {:<16} {:<24} {:>6} {:>11} {:>11}",
                s.id.short(),
                snap.time.format("%Y-%m-%d %H:%M:%S"),
                clean(&snap.hostname),
                clean(&snap.tags.join(",")),
                snap.stats.items,
                human(snap.stats.bytes),
                human(snap.stats.added_bytes)
            )?;
        }
        outln!("{} snapshot(s)", list.len())?;
        for c in copies.iter().filter(|c| c.error.is_none()) {
            outln!("copy {}: holds {} of them", c.to, c.holds)?;
        }
        for w in lifeboat_ops::windows(&list) {
            outln!(
                "point-in-time window: {} to {} UTC (from snapshot {})",
                w.from.format("%Y-%m-%d %H:%M:%S"),
                w.until.format("%Y-%m-%d %H:%M:%S"),
                w.snapshot.short()
            )?;
        }
        for s in &list {
            if let Some(d) = lifeboat_ops::derived(s) {
                outln!(
                    "snapshot {}: mysql is full snapshot {} and the stored binlog up to {}",
                    s.id.short(),
                    d.base.short(),
                    d.end
                )?;
            }
        }
    }
    Ok(if bad.is_empty() {
        Code::Ok
    } else {
        Code::Damaged
    })
}

fn snapshot_json(s: &SnapshotEntry) -> serde_json::Value {
    let snap = &s.snapshot;
    serde_json::json!({
        "id": s.id.to_hex(),
        "short_id": s.id.short(),
        "time": snap.time,
        "hostname": snap.hostname,
        "tags": snap.tags,
        "note": snap.note,
        "sources": snap.sources,
        "items": snap.stats.items,
        "size": snap.stats.bytes,
        "added_bytes": snap.stats.added_bytes,
        "manifest_size": snap.manifest.size,
        "stats": snap.stats,
        "program": snap.program,
    })
}

pub fn show(ctx: &Ctx, args: ShowArgs) -> Result<Code> {
    let repo = ctx.open_full()?;
    let snap = repo.find_snapshot(&args.snapshot)?;
    let (index, _) = repo.load_index()?;
    let items = repo.manifest(&index, &snap.snapshot)?;
    if ctx.global.json {
        let items: Vec<_> = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name, "source": i.source, "kind": i.kind,
                    "size": i.size, "sha256": i.sha256, "blobs": i.blobs.len(), "meta": i.meta,
                })
            })
            .collect();
        let mut out = snapshot_json(&snap);
        out["manifest"] = serde_json::Value::Array(items);
        ctx.print_json(&out)?;
    } else {
        outln!(
            "snapshot {} taken {} on {}",
            snap.id,
            snap.snapshot.time,
            clean(&snap.snapshot.hostname)
        )?;
        outln!(
            "{:<10} {:<8} {:>11}  {:<16} name",
            "source",
            "kind",
            "size",
            "sha256"
        )?;
        for i in &items {
            outln!(
                "{:<10} {:<8} {:>11}  {:<16} {}",
                i.source,
                i.kind,
                human(i.size),
                &i.sha256[..16.min(i.sha256.len())],
                i.name
            )?;
        }
    }
    Ok(Code::Ok)
}

pub fn unlock(ctx: &Ctx) -> Result<Code> {
    let n = match ctx.open_any()? {
        AnyRepo::Backup(r) => remove_stale(&r)?,
        AnyRepo::Full(r) => remove_stale(&r)?,
    };
    outln!("removed {n} stale lock(s)")?;
    Ok(Code::Ok)
}

fn remove_stale<A: Access>(repo: &Repository<A>) -> Result<usize> {
    let locks = repo.locks()?;
    let states = lifeboat_store::lock_states(&locks);
    for ((name, info), state) in locks.iter().zip(states) {
        if let Some(i) = info
            .as_ref()
            .filter(|_| state == lifeboat_store::LockState::Live)
        {
            outln!(
                "kept live lock {} of pid {} on {} ({})",
                &name[..8],
                i.pid,
                i.hostname,
                i.time
            )?;
        }
    }
    Ok(repo.remove_stale_locks()?)
}
