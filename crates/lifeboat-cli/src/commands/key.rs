//! `lifeboat key`: list, add and remove restore keys; re-export the backup key.

use anyhow::Result;
use lifeboat_store::{write_secret_file, RestoreKey};

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
        }
        KeyCommand::ExportBackupKey { to } => {
            let repo = ctx.open_full()?;
            write_secret_file(&to, repo.backup_key().to_file_text().as_bytes())?;
            outln!("wrote the backup key to {}", to.display())?;
        }
    }
    Ok(Code::Ok)
}
