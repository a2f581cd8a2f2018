//! The config's source sections as plans lifeboat-ops runs.

use anyhow::Result;
use lifeboat_objects::ObjectsBackupOptions;
use lifeboat_ops::{SourceKind, SourcePlan};

use super::Ctx;

/// The sources the config file describes, in backup order.
pub fn configured(ctx: &Ctx) -> Vec<SourceKind> {
    SourceKind::ALL
        .into_iter()
        .filter(|k| ctx.config.has(k.name()))
        .collect()
}

/// The sources to back up: those given, else every configured one.
pub fn chosen(ctx: &Ctx, given: &[SourceKind]) -> Result<Vec<SourceKind>> {
    let kinds = match given {
        [] => configured(ctx),
        some => some.to_vec(),
    };
    if kinds.is_empty() {
        return Err(crate::exit::usage(
            "nothing to back up: configure sources ([mysql], [objects], [render], [[git]]) \
             in --config FILE, or give --source, --stdin-from-command, --stdin or --file",
        ));
    }
    Ok(kinds)
}

/// What backing up `kind` needs, from the config (and `--mysql-url`).
pub fn plan(
    ctx: &Ctx,
    kind: SourceKind,
    repository_id: &str,
    mysql_url: Option<&str>,
) -> Result<SourcePlan> {
    Ok(match kind {
        SourceKind::Mysql => SourcePlan::Mysql(super::mysql::source_options(ctx, mysql_url)?),
        SourceKind::Objects => SourcePlan::Objects {
            source: super::objects::source(ctx)?,
            options: ObjectsBackupOptions {
                max_deleted_share: ctx
                    .config
                    .objects()?
                    .as_ref()
                    .and_then(|c| c.max_deleted_percent)
                    .unwrap_or(10.0)
                    / 100.0,
                ..Default::default()
            },
        },
        SourceKind::Render => SourcePlan::Render(super::render::client(ctx)?),
        SourceKind::Git => SourcePlan::Git(super::git::options(ctx, repository_id)?),
    })
}

/// Plans for `kinds`, in order.
pub fn plans(
    ctx: &Ctx,
    kinds: &[SourceKind],
    repository_id: &str,
    mysql_url: Option<&str>,
) -> Result<Vec<SourcePlan>> {
    kinds
        .iter()
        .map(|k| plan(ctx, *k, repository_id, mysql_url))
        .collect()
}
