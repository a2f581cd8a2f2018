//! `lifeboat init`: a new repository, a restore key and a backup key.

use anyhow::Result;
use lifeboat_store::{write_secret_file, InitOptions, Repository, RestoreKey};

use super::{passphrase, Ctx};
use crate::cli::InitArgs;
use crate::exit::{self, Code};

pub fn run(ctx: &Ctx, args: InitArgs) -> Result<Code> {
    if let Some(source) = &args.replica_of {
        return super::copy::init_replica(ctx, &args, source);
    }
    let restore_path = ctx.restore_key_path().map_err(|_| {
        exit::usage("init needs --restore-key-file (where to write the new restore key)")
    })?;
    let backup_path = ctx.global.backup_key_file.as_deref().ok_or_else(|| {
        exit::usage("init needs --backup-key-file (where to write the new backup key)")
    })?;
    for p in [restore_path, backup_path] {
        if p.exists() {
            return Err(exit::usage(format!(
                "{} already exists; lifeboat never overwrites a key file",
                p.display()
            )));
        }
    }
    let backend = ctx.backend()?;
    let pass = if args.passphrase {
        Some(passphrase(
            "LIFEBOAT_RESTORE_KEY_PASSPHRASE",
            "New restore key passphrase: ",
            true,
        )?)
    } else {
        None
    };
    let key = RestoreKey::generate();
    // The restore key is on disk before the repository exists: a repository
    // nobody can read must never be created.
    write_secret_file(restore_path, &key.to_file_bytes(pass.as_ref()))?;
    let (repo, backup_key) = match Repository::init(
        backend,
        &key,
        &InitOptions {
            compression_level: args.compression_level,
            object_lock: args
                .object_lock_days
                .map(|days| lifeboat_store::ObjectLock {
                    days,
                    mode: args.object_lock_mode,
                }),
            ..InitOptions::default()
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(restore_path);
            return Err(e.into());
        }
    };
    write_secret_file(backup_path, backup_key.to_file_text().as_bytes())?;
    if ctx.global.json {
        ctx.print_json(&serde_json::json!({
            "repository": repo.config().id,
            "location": repo.backend().location(),
            "restore_key_file": restore_path,
            "backup_key_file": backup_path,
            "recipients": key.recipients(),
        }))?;
    } else {
        outln!(
            "created repository {} at {}",
            repo.config().id,
            repo.backend().location()
        )?;
        outln!(
            "restore key: {} (reads everything: keep a copy offline, away from this machine)",
            restore_path.display()
        )?;
        outln!(
            "backup key:  {} (for backup hosts: adds snapshots, cannot read them)",
            backup_path.display()
        )?;
    }
    Ok(Code::Ok)
}
