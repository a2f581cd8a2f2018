//! `lifeboat key`: list, add and remove restore keys; re-export the backup key.

use anyhow::Result;
use lifeboat_store::{write_secret_file, Repository, RestoreKey};

use super::{passphrase, AnyRepo, Ctx};
use crate::cli::KeyCommand;
use crate::exit::Code;

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<Code> {
    match cmd {
        KeyCommand::List => {
            let config = match ctx.open_any()? {
                AnyRepo::Backup(r) => r.config().clone(),
                AnyRepo::Full(r) => r.config().clone(),
            };
            if ctx.global.json {
                ctx.print_json(&config.keys)?;
            } else {
                match &config.verify_key {
                    Some(k) => outln!(
                        "repository {} (format {}), config signed by {k}",
                        config.id,
                        config.version
                    )?,
                    None => outln!(
                        "repository {} (format {}, not authenticated: run `lifeboat upgrade`)",
                        config.id,
                        config.version
                    )?,
                }
                for k in &config.keys {
                    outln!(
                        "{}  added {}",
                        k.recipient,
                        k.created.format("%Y-%m-%d %H:%M UTC")
                    )?;
                }
            }
        }
        KeyCommand::Add {
            new_key_file,
            passphrase: protect,
        } => {
            let mut repo = ctx.open_full()?;
            let pass = if protect {
                Some(passphrase(
                    "LIFEBOAT_NEW_KEY_PASSPHRASE",
                    "New key passphrase: ",
                    true,
                )?)
            } else {
                None
            };
            let key = RestoreKey::generate();
            write_secret_file(&new_key_file, &key.to_file_bytes(pass.as_ref()))?;
            if let Err(e) = repo.add_key(&key) {
                let _ = std::fs::remove_file(&new_key_file);
                return Err(e.into());
            }
            outln!(
                "added restore key {} ({})",
                key.recipients().join(", "),
                new_key_file.display()
            )?;
        }
        KeyCommand::Remove { recipient } => {
            let mut repo = ctx.open_full()?;
            repo.remove_key(&recipient)?;
            outln!("removed restore key {recipient}")?;
            outln!(
                "note: this does not revoke it. Its holder has read the repository's secrets \
                 and, with a copy of the store, can still read every backup, old and new. If \
                 the key is lost or its holder untrusted, move to a new repository \
                 (docs/DISASTER-RECOVERY.md, \"compromised\")."
            )?;
        }
        KeyCommand::ExportBackupKey { to } => {
            let repo = ctx.open_full()?;
            write_secret_file(&to, repo.backup_key().to_file_text().as_bytes())?;
            outln!("wrote the backup key to {}", to.display())?;
        }
    }
    Ok(Code::Ok)
}

/// `lifeboat upgrade`: format 1 → 2, or this key's keyring authenticated.
pub fn upgrade(ctx: &Ctx, args: &crate::cli::UpgradeArgs) -> Result<Code> {
    let mut key = ctx.load_restore_key()?;
    for path in &args.also_key {
        key.merge(super::load_restore_key_file(
            path,
            "LIFEBOAT_ALSO_KEY_PASSPHRASE",
            &format!("Passphrase of {}: ", path.display()),
        )?);
    }
    let mut repo = Repository::open_for_restore_with(ctx.backend()?, &key, &ctx.open_options())?;
    let report = lifeboat_ops::upgrade(&mut repo, &key)?;
    if ctx.global.json {
        ctx.print_json(&report)?;
        return Ok(Code::Ok);
    }
    if report.from_version < report.to_version {
        outln!(
            "upgraded repository {} from format {} to {}",
            repo.config().id,
            report.from_version,
            report.to_version,
        )?;
    } else {
        outln!(
            "repository {} is in format {}",
            repo.config().id,
            report.to_version
        )?;
    }
    if report.from_version < 2 {
        outln!(
            "{} snapshot(s), {} index and {} state file(s) now authenticated",
            report.snapshots.len(),
            report.index_files,
            report.state_files
        )?;
    }
    if report.states_rewritten > 0 {
        outln!(
            "{} objects state file(s) written again without the SHA-256s, headers and user \
             metadata the backup key must not read: the next backup of each bucket or \
             directory reads its objects once more (nothing new is stored for them)",
            report.states_rewritten
        )?;
    }
    if !report.snapshots.is_empty() {
        outln!("snapshot ids changed (they are hashes of the files):")?;
        for (old, new) in &report.snapshots {
            outln!(
                "  {}  ->  {}",
                &old[..8.min(old.len())],
                &new[..8.min(new.len())]
            )?;
        }
    }
    if report.leftovers_removed > 0 {
        outln!(
            "removed {} file(s) left by an interrupted upgrade",
            report.leftovers_removed
        )?;
    }
    for k in &report.keys_authenticated {
        outln!("restore key {k}: keyring authenticated")?;
    }
    for k in &report.keys_pending {
        outln!("restore key {k}: not given, so its keyring is not authenticated: until `lifeboat upgrade --also-key ITS_FILE` (run by you, with your key) it cannot open the repository; or add a new key for its holder with `lifeboat key add`")?;
    }
    for f in &report.unreadable {
        outln!("left as it was (unreadable; run `lifeboat verify`): {f}")?;
    }
    if let Some(v) = &repo.config().verify_key {
        outln!(
            "config signing key: {v} (compare with `lifeboat key list` on the owner's machine)"
        )?;
    }
    if report.orphan_states_removed > 0 {
        outln!(
            "removed {} state file(s) that no snapshot named (as prune would)",
            report.orphan_states_removed
        )?;
    }
    if report.from_version < 2 {
        outln!("backup hosts need a new backup key: `lifeboat key export-backup-key --to FILE`, then install it (the old one is refused)")?;
    } else if report.from_version < report.to_version {
        outln!(
            "re-issue the backup hosts' key (`lifeboat key export-backup-key --to FILE`): the \
             new one refuses a config put back to an older format, which would make backups \
             show the host object details again; the old one keeps working meanwhile"
        )?;
    }
    Ok(Code::Ok)
}
