//! `runs/` files: one small record per run of a command (backup, capture,
//! drill, verify, forget, prune), so that a run that committed nothing
//! still leaves a trace. The store does not know what a record says: it
//! seals, tags, names and lists them like every metadata file, and seals
//! the part of a record the backup key must not read to the data
//! recipient (see docs/FORMAT.md, "runs/ files").

use crate::backend::FileKind;
use crate::crypto;
use crate::error::{Error, Result};
use crate::repository::{Access, FullAccess, Repository, Unreadable};

/// Largest plaintext of a run record (a drill's sealed table of a
/// thousand tables fits many times over).
pub const MAX_RUN_LEN: usize = 256 << 10;

/// One stored run record.
#[derive(Debug, Clone)]
pub struct RunFile {
    /// Its name in `runs/`.
    pub name: String,
    /// Its record (tag line and signature line checked and removed).
    pub body: Vec<u8>,
    /// Written with a restore key: signed with the repository's config
    /// signing key, which only keyrings hold (a backup host cannot forge
    /// a signed record, e.g. a drill that never ran).
    pub signed: bool,
}

/// The first byte of a signature line: `"S" ‖ 128 hex digits ‖ "\n"`, the
/// Ed25519 signature of `"lifeboat run record v1\n" ‖ body`.
const SIGNED: u8 = b'S';
const SIG_LINE_LEN: usize = 1 + 128 + 1;

fn signing_input(body: &[u8]) -> Vec<u8> {
    let mut m = b"lifeboat run record v1\n".to_vec();
    m.extend_from_slice(body);
    m
}

impl<A: Access> Repository<A> {
    /// Store a run record; returns its name. Any key that can write
    /// snapshots can write one.
    pub fn write_run(&self, body: &[u8]) -> Result<String> {
        if body.len() + SIG_LINE_LEN > MAX_RUN_LEN {
            return Err(Error::Invalid(format!(
                "a run record of {} bytes is larger than the {MAX_RUN_LEN} allowed",
                body.len()
            )));
        }
        if body.first() == Some(&SIGNED) {
            return Err(Error::Invalid("a run record must not start with S".into()));
        }
        let signed;
        let plain = match self.access.sign_hex(&signing_input(body)) {
            Some(sig) => {
                let mut p = vec![SIGNED];
                p.extend_from_slice(sig.as_bytes());
                p.push(b'\n');
                p.extend_from_slice(body);
                signed = p;
                &signed[..]
            }
            None => body,
        };
        Ok(self.write_meta_file(FileKind::Run, plain)?.0)
    }

    /// Every run record that reads and authenticates, passed to `f` one at
    /// a time (the store holds thousands after a while: a caller keeps only
    /// what it needs of each); returns those that do not (a forged or
    /// damaged record is skipped, never believed).
    pub fn each_run(&self, mut f: impl FnMut(RunFile)) -> Result<Vec<Unreadable>> {
        let mut bad = Vec::new();
        // Sealing adds a header and zstd at most a little: a larger file is
        // not a record, and is not read.
        let max_file = (MAX_RUN_LEN + MAX_RUN_LEN / 64 + 4096) as u64;
        for file in self.inner.backend.list(FileKind::Run)? {
            if file.size > max_file {
                bad.push(Unreadable {
                    file: FileKind::Run.path(&file.name),
                    detail: format!("{} bytes: larger than any run record", file.size),
                });
                continue;
            }
            let f_name = file.name;
            match self
                .read_meta_file(FileKind::Run, &f_name, MAX_RUN_LEN)
                .and_then(|plain| self.check_run_signature(plain, &f_name))
            {
                Ok((body, signed)) => f(RunFile {
                    name: f_name,
                    body,
                    signed,
                }),
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(e) => bad.push(Unreadable {
                    file: FileKind::Run.path(&f_name),
                    detail: e.to_string(),
                }),
            }
        }
        Ok(bad)
    }

    /// A record's body, and whether it carries a good signature; a bad
    /// signature is damage (or forgery), not an unsigned record.
    fn check_run_signature(&self, plain: Vec<u8>, name: &str) -> Result<(Vec<u8>, bool)> {
        if plain.first() != Some(&SIGNED) {
            return Ok((plain, false));
        }
        let good = plain.len() >= SIG_LINE_LEN
            && plain[SIG_LINE_LEN - 1] == b'\n'
            && match (
                self.config().verify_key.as_deref(),
                std::str::from_utf8(&plain[1..SIG_LINE_LEN - 1]),
            ) {
                (Some(key), Ok(sig)) => {
                    crypto::verify_signature(key, &signing_input(&plain[SIG_LINE_LEN..]), sig)
                }
                _ => false,
            };
        if !good {
            return Err(Error::damaged(
                FileKind::Run.path(name),
                "its signature does not verify with the config's key (forged or damaged)",
            ));
        }
        Ok((plain[SIG_LINE_LEN..].to_vec(), true))
    }

    /// `plain` sealed (zstd, then age) to the data recipient: only a restore
    /// key opens it, with [`Repository::open_sealed`].
    pub fn seal_for_restore_key(&self, plain: &[u8]) -> Vec<u8> {
        crypto::seal(&self.inner.data_recipient, 3, plain)
    }
}

impl Repository<FullAccess> {
    /// Open what [`Repository::seal_for_restore_key`] sealed; `what` names
    /// it in errors.
    pub fn open_sealed(&self, sealed: &[u8], limit: usize, what: &str) -> Result<Vec<u8>> {
        let ids: Vec<&dyn age::Identity> = self
            .access
            .data_identities()
            .iter()
            .map(|i| i as &dyn age::Identity)
            .collect();
        crypto::open(&ids, sealed, limit).map_err(|e| e.into_error(what))
    }

    /// Delete run records (prune keeps the newest of each kind).
    pub fn remove_runs(&self, names: &[String]) -> Result<()> {
        for name in names {
            self.inner.backend.remove(FileKind::Run, name)?;
        }
        Ok(())
    }
}
