//! The objects source, wired in: the bucket or directory from the config's
//! `[objects]` section; backup, and restore into a directory or a bucket.

use anyhow::Result;
use lifeboat_objects::{Bucket, BucketOptions, ObjectsRestoreOptions, Source, Target};
use lifeboat_store::backend::S3Options;
use lifeboat_store::{FullAccess, Index, ManifestItem, Repository};

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::config::ObjectsConfig;
use crate::exit::{self, Code};

fn config(ctx: &Ctx) -> Result<&ObjectsConfig> {
    ctx.config.objects()?.as_ref().ok_or_else(|| {
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
    Ok(Bucket::open(&bucket_options(c, bucket, prefix))?)
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

/// `restore --source objects --to DIR | --target s3://BUCKET/PREFIX`.
pub fn restore(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    index: &Index,
    items: Vec<ManifestItem>,
    args: &RestoreArgs,
) -> Result<Code> {
    let staging = ctx.config.staging()?.as_ref();
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
    if let (Target::Bucket(t), Some(c)) = (&target, ctx.config.objects()?.as_ref()) {
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
    let report = lifeboat_objects::restore(repo, index, &selected, &target, &opts, &ctx.bars)?;
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
        for f in &report.refused {
            outln!("REFUSED {f}")?;
        }
        outln!(
            "restored {} of {} objects ({} bytes) into {where_}, each checked by SHA-256",
            report.objects,
            selected.len(),
            report.bytes
        )?;
    }
    if let Some(first) = report.failed.first() {
        return Err(exit::damaged(format!(
            "{} object(s) could not be restored; the first: {first}",
            report.failed.len(),
        )));
    }
    if let Some(first) = report.refused.first() {
        return Err(anyhow::Error::new(exit::Exit {
            code: Code::Damaged,
            message: format!(
                "{} object(s) of the snapshot were refused (nothing was written for them; the \
                 others are restored); the first: {first}",
                report.refused.len()
            ),
            hint: Some(
                "a key that is no safe path cannot be written into a directory: restore into a \
                 bucket (--target s3://BUCKET); if the snapshot may be forged see \
                 docs/DISASTER-RECOVERY.md, \"compromised\"",
            ),
        }));
    }
    Ok(Code::Ok)
}
