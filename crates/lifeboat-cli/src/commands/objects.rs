//! The objects source, wired in: the bucket or directory from the config's
//! `[objects]` section; backup, and restore into a directory or a bucket.

use anyhow::Result;
use lifeboat_objects::{
    Bucket, BucketOptions, ObjectsBackupOptions, ObjectsRestoreOptions, Source, Target,
};
use lifeboat_store::backend::S3Options;
use lifeboat_store::{Access, BackupSession, FullAccess, Index, ManifestItem, Repository};

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::config::ObjectsConfig;
use crate::exit::{self, Code};

fn config(ctx: &Ctx) -> Result<&ObjectsConfig> {
    ctx.config.objects.as_ref().ok_or_else(|| {
        exit::usage(
            "no objects source configured: add an [objects] section (bucket or path) to the config",
        )
    })
}

fn s3_options(c: &ObjectsConfig) -> S3Options {
    S3Options {
        endpoint: c.endpoint.clone(),
        region: c.region.clone(),
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.clone(),
        connections: c.connections,
        ..Default::default()
    }
}

/// A bucket at the [objects] endpoint, with its credentials.
pub fn bucket_options(c: &ObjectsConfig, bucket: &str, prefix: &str) -> BucketOptions {
    BucketOptions {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        s3: s3_options(c),
    }
}

fn open_bucket(c: &ObjectsConfig, bucket: &str, prefix: &str) -> Result<Bucket> {
    Bucket::open(&bucket_options(c, bucket, prefix)).map_err(map_error)
}

/// The configured source.
pub fn source(ctx: &Ctx) -> Result<Source> {
    let c = config(ctx)?;
    match (&c.bucket, &c.path) {
        (Some(_), Some(_)) => Err(exit::usage(
            "[objects] has both bucket and path: configure one of them",
        )),
        (Some(b), None) => Ok(Source::Bucket(open_bucket(c, b, &c.prefix)?)),
        (None, Some(p)) => Ok(Source::Dir(p.clone())),
        (None, None) => Err(exit::usage(
            "[objects] needs bucket = \"NAME\" (with endpoint and keys) or path = \"/DIR\"",
        )),
    }
}

fn map_error(e: lifeboat_objects::Error) -> anyhow::Error {
    match e {
        lifeboat_objects::Error::Store(e) => e.into(),
        lifeboat_objects::Error::Mismatch(m) => exit::damaged(m),
        lifeboat_objects::Error::Target(m) | lifeboat_objects::Error::Invalid(m) => exit::usage(m),
        other => anyhow::Error::new(other),
    }
}

/// Back up into an open session; returns a warning to report once the
/// snapshot is committed (too many objects gone).
pub fn backup<A: Access>(
    ctx: &Ctx,
    repo: &Repository<A>,
    session: &mut BackupSession<A>,
) -> Result<Option<String>> {
    let c = config(ctx)?;
    let opts = ObjectsBackupOptions {
        max_deleted_share: c.max_deleted_percent.unwrap_or(10.0) / 100.0,
        ..Default::default()
    };
    let source = source(ctx)?;
    let report = lifeboat_objects::backup(session, repo, &source, &opts, &ctx.bars).map_err(
        |e| match e {
            lifeboat_objects::Error::Store(e) => e.into(),
            e => exit::source(format!("objects backup failed: {e}")),
        },
    )?;
    tracing::info!(
        "objects: {} objects ({} bytes) from {}: {} carried over, {} read ({} bytes), {} GETs",
        report.objects,
        report.bytes,
        report.location,
        report.carried,
        report.fetched,
        report.fetched_bytes,
        report.requests.gets
    );
    for key in &report.vanished {
        tracing::warn!("objects: {key} was deleted while the backup ran; not in the snapshot");
    }
    Ok(report.alarm)
}

/// `restore --source objects --to DIR | --target s3://BUCKET/PREFIX`.
pub fn restore(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    index: &Index,
    items: Vec<ManifestItem>,
    args: &RestoreArgs,
) -> Result<Code> {
    let staging = ctx.config.staging.as_ref();
    let target = match (&args.to, &args.target) {
        (Some(_), Some(_)) => {
            return Err(exit::usage(
                "give --to DIR or --target s3://BUCKET/PREFIX, not both",
            ))
        }
        (Some(dir), None) => Target::Dir(dir.into()),
        (None, Some(url)) => {
            let rest = url.strip_prefix("s3://").ok_or_else(|| {
                exit::usage(format!(
                    "--target {url:?}: objects restore into s3://BUCKET/PREFIX or --to DIR"
                ))
            })?;
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            Target::Bucket(open_bucket(config(ctx)?, bucket, prefix)?)
        }
        (None, None) => match staging {
            Some(s) if s.objects_bucket.is_some() => Target::Bucket(open_bucket(
                config(ctx)?,
                s.objects_bucket.as_deref().unwrap_or_default(),
                &s.objects_prefix,
            )?),
            Some(s) if s.dir.is_some() => {
                Target::Dir(s.dir.clone().unwrap_or_default().join("objects"))
            }
            _ => {
                return Err(exit::usage(
                    "--source objects needs --to DIR or --target s3://BUCKET/PREFIX \
                     (or [staging] objects_bucket / dir in the config)",
                ))
            }
        },
    };
    if let (Target::Bucket(t), Some(c)) = (&target, ctx.config.objects.as_ref()) {
        if let (Some(b), false) = (&c.bucket, args.allow_source) {
            let src = open_bucket(c, b, &c.prefix)?;
            if src.overlaps(t) {
                return Err(exit::usage(format!(
                    "{} is the bucket the backups come from: restore into another bucket, \
                     or pass --allow-source if you really mean to write into production",
                    t.location()
                )));
            }
        }
    }
    let opts = ObjectsRestoreOptions {
        prefix: args.prefix.clone(),
        key: args.key.clone(),
        force: args.force,
        ..Default::default()
    };
    let selected = lifeboat_objects::select(items, &opts);
    if selected.is_empty() {
        return Err(exit::usage(
            "the snapshot has no objects matching the selection (see `lifeboat show`)",
        ));
    }
    let report = lifeboat_objects::restore(repo, index, &selected, &target, &opts, &ctx.bars)
        .map_err(map_error)?;
    let where_ = match &target {
        Target::Dir(d) => d.display().to_string(),
        Target::Bucket(b) => b.location(),
    };
    if ctx.global.json {
        ctx.print_json(&report)?;
    } else {
        for f in &report.failed {
            outln!("FAILED {f}")?;
        }
        outln!(
            "restored {} of {} objects ({} bytes) into {where_}, each checked by SHA-256",
            report.objects,
            selected.len(),
            report.bytes
        )?;
    }
    if !report.ok() {
        return Err(exit::damaged(format!(
            "{} object(s) could not be restored; the first: {}",
            report.failed.len(),
            report.failed[0]
        )));
    }
    Ok(Code::Ok)
}
