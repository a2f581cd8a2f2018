//! `lifeboat upgrade`: a format-1 repository into format 2 (authenticated),
//! format 2 into 3 (items' details in info blobs; source states rewritten
//! by the caller's [`StateRewriter`]), and a restore key's own keyring
//! authenticated in an upgraded one.
//!
//! What changes (docs/FORMAT.md, "Format history"): index, snapshot and
//! state files are written again with their tag line (so snapshot ids
//! change; the report maps old to new), each keyring whose restore key is
//! given is written again with its tag and the config signing key, and the
//! config is signed. Packs are not rewritten: their headers stay untagged
//! ("legacy") and are trusted only through the authenticated index.
//!
//! Order, so that a run killed at any point loses nothing: the new files
//! first, then the config (the switch from format 1 to 2), then the old
//! files are removed. Killed before the config, the repository is still
//! format 1 and the new files are leftovers that the next run removes (they
//! carry a valid tag, which no format-1 file has). Killed after it, the
//! repository is format 2 and the next run removes the format-1 files that
//! remain (untagged files that open as format 1).

use std::collections::BTreeMap;
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use age::x25519;

use crate::backend::FileKind;
use crate::crypto::{self, ConfigSigner, KeyPin};
use crate::error::{Error, Result};
use crate::index::{IndexFile, MAX_INDEX_LEN};
use crate::repository::{
    identity_for, open_keyring, seal_keyring, FullAccess, KeyringSecrets, OpenedKeyring,
    Repository, FORMAT_VERSION,
};
use crate::snapshot::Snapshot;
use crate::RestoreKey;

/// Largest snapshot or state plaintext rewritten (as the readers bound them).
const MAX_META_LEN: usize = 1 << 30;

/// How an upgrade rewrites a source's state file: given the source and the
/// state's body, the new body, or `None` to keep it (format 3: the objects
/// source drops what the backup key must no longer read).
pub type StateRewriter<'a> = &'a dyn Fn(&str, &[u8]) -> Option<Vec<u8>>;

/// Options of [`Repository::upgrade`].
#[derive(Default, Clone, Copy)]
pub struct UpgradeOptions<'a> {
    /// Rewrite source state files (every snapshot whose state changes is
    /// written again, under a new id).
    pub rewrite_state: Option<StateRewriter<'a>>,
}

/// What an upgrade did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpgradeReport {
    /// The format before (1, 2 or 3).
    pub from_version: u32,
    /// The format after (3).
    pub to_version: u32,
    /// Old snapshot id → new snapshot id (ids are hashes of the files).
    pub snapshots: BTreeMap<String, String>,
    /// Index files written again with their tag.
    pub index_files: usize,
    /// State files written again with their tag.
    pub state_files: usize,
    /// State files written again without what the backup key must not
    /// read (their snapshots got new ids, in `snapshots`).
    pub states_rewritten: usize,
    /// State files no snapshot named, removed (as `prune` would) so that
    /// none keeps what the rewrite removes.
    pub orphan_states_removed: usize,
    /// Restore keys (public) whose keyring is now authenticated.
    pub keys_authenticated: Vec<String>,
    /// Restore keys (public) of the config that were not given: they
    /// cannot open the repository until an upgrade is given them too
    /// (`--also-key`) by someone with an authenticated key.
    pub keys_pending: Vec<String>,
    /// Files left by an interrupted upgrade, removed.
    pub leftovers_removed: usize,
    /// Files of kind index/snapshots/state that could not be read and were
    /// left as they are (verify reports them).
    pub unreadable: Vec<String>,
}

impl Repository<FullAccess> {
    /// Upgrade to the current format, or, in a current one, authenticate
    /// the keyrings of `restore`'s identities, rewrite the state files
    /// `opts` says to, and remove what an interrupted upgrade left. Takes
    /// the exclusive lock. Open the repository with
    /// [`open_for_restore_with`](Repository::open_for_restore_with): a
    /// format-1 one only when told to trust it (nothing in it can prove it
    /// is the owner's); a format-2 one needs an authenticated keyring for
    /// one of `restore`'s identities. There is no trust on first use of an
    /// unauthenticated keyring: a storage-only attacker could plant exactly
    /// that.
    pub fn upgrade(
        &mut self,
        restore: &RestoreKey,
        opts: &UpgradeOptions<'_>,
    ) -> Result<UpgradeReport> {
        let _lock = self.lock(true)?;
        let mut report = UpgradeReport {
            from_version: self.config().version,
            to_version: FORMAT_VERSION,
            ..Default::default()
        };
        let signer = match &self.access.signer {
            Some(s) => s.clone(),
            None => signer_for(&self.access.data),
        };
        let was_format_1 = self.config().is_format_1();
        let old_files = if was_format_1 {
            self.remove_files_where(&mut report, |r, kind, plain| {
                // A tagged file in a format-1 repository: a leftover of an
                // interrupted upgrade (format 1 never writes tags).
                crypto::split_tag_line(plain)
                    .is_some_and(|(tag, body)| r.key().dedup.check_file_tag(kind.dir(), body, &tag))
            })?;
            self.rewrite_metadata(&mut report)?
        } else {
            self.remove_files_where(&mut report, |_, _, plain| {
                // An untagged file that opens as format 1: left by an
                // upgrade killed after it wrote the config.
                crypto::split_tag_line(plain).is_none() && plain.first() == Some(&b'{')
            })?;
            Vec::new()
        };
        // Keyrings: every identity given that the config names.
        let keyring = {
            let mut k = self.keyring();
            k.version = 2;
            k.config_signing_key = Some(signer.secret_hex().to_string());
            k
        };
        let mut config = self.config().clone();
        let mut replaced = Vec::new();
        for entry in config.keys.iter_mut() {
            let Some(identity) = identity_for(restore, entry) else {
                // Another holder's keyring: only they can authenticate it.
                // (In format 2 we cannot tell whether they already did.)
                if was_format_1 {
                    report.keys_pending.push(entry.recipient.clone());
                }
                continue;
            };
            if !was_format_1 {
                if let Ok(OpenedKeyring::Authenticated(_)) =
                    open_keyring(&**self.backend(), entry, identity)
                {
                    report.keys_authenticated.push(entry.recipient.clone());
                    continue;
                }
            }
            let (name, sealed) = seal_keyring(&keyring, identity);
            self.backend().write(FileKind::Keys, &name, &sealed)?;
            replaced.push(std::mem::replace(&mut entry.file, name));
            report.keys_authenticated.push(entry.recipient.clone());
        }
        let new_format = config.version < FORMAT_VERSION;
        if new_format || !replaced.is_empty() {
            config.version = FORMAT_VERSION;
            config.generation = Some(config.generation.unwrap_or(0) + 1);
            config.sign(&signer);
            self.backend()
                .write(FileKind::Config, "config", &config.to_bytes())?;
        }
        // From here on the repository is in the current format.
        let secrets = KeyringSecrets {
            dedup: self.access.key.dedup.clone(),
            metadata: self.access.key.metadata_identity.clone(),
            data: self.access.data.clone(),
            signer: None,
        };
        *self = Repository::from_parts(self.backend().clone(), config, secrets, signer)?;
        let mut old_files = old_files;
        if let Some(rewrite) = opts.rewrite_state {
            old_files.extend(self.rewrite_states(&mut report, rewrite)?);
        }
        for (kind, name) in old_files {
            self.backend().remove(kind, &name)?;
        }
        for name in replaced {
            self.backend().remove(FileKind::Keys, &name)?;
        }
        Ok(report)
    }

    /// Remove files of the metadata kinds that open and satisfy `leftover`.
    fn remove_files_where(
        &self,
        report: &mut UpgradeReport,
        leftover: impl Fn(&Self, FileKind, &[u8]) -> bool,
    ) -> Result<()> {
        for kind in [FileKind::Index, FileKind::Snapshot, FileKind::State] {
            for f in self.backend().list(kind)? {
                let Ok(plain) = self.open_meta_file(kind, &f.name, MAX_META_LEN) else {
                    continue;
                };
                if leftover(self, kind, &plain) {
                    self.backend().remove(kind, &f.name)?;
                    report.leftovers_removed += 1;
                }
            }
        }
        Ok(())
    }

    /// Format 1 → 2: write every index, state and snapshot file again with
    /// its tag (the old ones are remembered for removal after the config).
    fn rewrite_metadata(&self, report: &mut UpgradeReport) -> Result<Vec<(FileKind, String)>> {
        let mut old = Vec::new();
        // Tagged although the repository is still format 1.
        let write = |kind: FileKind, body: &[u8]| -> Result<String> {
            Ok(self
                .write_meta_file_tagged(kind, body, Some(&self.key().dedup))?
                .0)
        };
        for f in self.backend().list(FileKind::Index)? {
            match self.read_meta_file(FileKind::Index, &f.name, MAX_INDEX_LEN) {
                Ok(json) if serde_json::from_slice::<IndexFile>(&json).is_ok() => {
                    write(FileKind::Index, &json)?;
                    old.push((FileKind::Index, f.name));
                    report.index_files += 1;
                }
                Ok(_) => report.unreadable.push(FileKind::Index.path(&f.name)),
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(e.into()),
                Err(_) => report.unreadable.push(FileKind::Index.path(&f.name)),
            }
        }
        let mut states: BTreeMap<String, String> = BTreeMap::new();
        for f in self.backend().list(FileKind::State)? {
            match self.read_meta_file(FileKind::State, &f.name, MAX_META_LEN) {
                Ok(body) => {
                    states.insert(f.name.clone(), write(FileKind::State, &body)?);
                    old.push((FileKind::State, f.name));
                    report.state_files += 1;
                }
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(e.into()),
                Err(_) => report.unreadable.push(FileKind::State.path(&f.name)),
            }
        }
        for f in self.backend().list(FileKind::Snapshot)? {
            let parsed = self
                .read_meta_file(FileKind::Snapshot, &f.name, MAX_META_LEN)
                .and_then(|json| {
                    serde_json::from_slice::<Snapshot>(&json).map_err(|e| {
                        Error::damaged(FileKind::Snapshot.path(&f.name), e.to_string())
                    })
                });
            match parsed {
                Ok(mut snap) => {
                    for s in snap.sources.values_mut() {
                        if let Some(new) = s.state.as_ref().and_then(|n| states.get(n)) {
                            s.state = Some(new.clone());
                        }
                        for part in &mut s.state_parts {
                            if let Some(new) = states.get(part) {
                                *part = new.clone();
                            }
                        }
                    }
                    let json = serde_json::to_vec(&snap).expect("snapshot serializes");
                    let new = write(FileKind::Snapshot, &json)?;
                    report.snapshots.insert(f.name.clone(), new);
                    old.push((FileKind::Snapshot, f.name));
                }
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(e.into()),
                Err(_) => report.unreadable.push(FileKind::Snapshot.path(&f.name)),
            }
        }
        // Run records of format 1 are not authenticated and only ever fed
        // `status`: dropped, not vouched for with a tag.
        for f in self.backend().list(FileKind::Run)? {
            old.push((FileKind::Run, f.name));
        }
        Ok(old)
    }

    /// Write again every state file that `rewrite` changes, and every
    /// snapshot naming one (new ids, recorded in the report); returns the
    /// old files, for removal once the new ones are stored. A snapshot
    /// whose rewrite is already there, field for field (written by an
    /// interrupted run), is only removed.
    fn rewrite_states(
        &self,
        report: &mut UpgradeReport,
        rewrite: StateRewriter<'_>,
    ) -> Result<Vec<(FileKind, String)>> {
        let (snapshots, unreadable) = self.snapshots()?;
        // State name → its new body, or None when it stays as it is.
        let mut bodies: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for s in &snapshots {
            for (source, summary) in &s.snapshot.sources {
                let Some(name) = &summary.state else { continue };
                if bodies.contains_key(name) {
                    continue;
                }
                let new = match self.read_meta_file(FileKind::State, name, MAX_META_LEN) {
                    Ok(body) => rewrite(source, &body),
                    Err(Error::Backend(e)) if !e.is_not_found() => return Err(e.into()),
                    Err(_) => {
                        report.unreadable.push(FileKind::State.path(name));
                        None
                    }
                };
                bodies.insert(name.clone(), new);
            }
        }
        let needs_rewrite = |s: &Snapshot| {
            s.sources.values().any(|v| {
                v.state
                    .as_ref()
                    .is_some_and(|n| matches!(bodies.get(n), Some(Some(_))))
            })
        };
        // `t` is what rewriting `s` would give (every field equal, and each
        // rewritten state's body equal to the new one): an interrupted run
        // wrote it. Anything less (another tag, another fact) is not.
        let is_twin = |s: &Snapshot, t: &Snapshot| -> Result<bool> {
            if t.time != s.time || needs_rewrite(t) {
                return Ok(false);
            }
            let mut same = s.clone();
            for (source, v) in same.sources.iter_mut() {
                let Some(Some(body)) = v.state.as_ref().and_then(|n| bodies.get(n)) else {
                    continue;
                };
                let Some(theirs) = t.sources.get(source).and_then(|x| x.state.as_ref()) else {
                    return Ok(false);
                };
                match self.read_meta_file(FileKind::State, theirs, MAX_META_LEN) {
                    Ok(b) if b == *body => v.state = Some(theirs.clone()),
                    Ok(_) => return Ok(false),
                    Err(Error::Backend(e)) if !e.is_not_found() => return Err(e.into()),
                    Err(_) => return Ok(false),
                }
            }
            Ok(same == *t)
        };
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        let mut old = Vec::new();
        for s in snapshots.iter().filter(|s| needs_rewrite(&s.snapshot)) {
            let old_id = s.id.to_hex();
            let mut twin = false;
            for t in &snapshots {
                if is_twin(&s.snapshot, &t.snapshot)? {
                    twin = true;
                    break;
                }
            }
            if !twin {
                let mut snap = s.snapshot.clone();
                for v in snap.sources.values_mut() {
                    let Some(name) = v.state.clone() else {
                        continue;
                    };
                    let Some(Some(body)) = bodies.get(&name) else {
                        continue;
                    };
                    let new = match written.get(&name) {
                        Some(n) => n.clone(),
                        None => {
                            let (n, _) = self.write_meta_file(FileKind::State, body)?;
                            written.insert(name.clone(), n.clone());
                            n
                        }
                    };
                    v.state = Some(new);
                }
                let json = serde_json::to_vec(&snap).expect("snapshot serializes");
                let (new_id, _) = self.write_meta_file(FileKind::Snapshot, &json)?;
                // An id this upgrade gave already (format 1 → 2) maps on.
                match report.snapshots.values_mut().find(|v| **v == old_id) {
                    Some(v) => *v = new_id,
                    None => {
                        report.snapshots.insert(old_id.clone(), new_id);
                    }
                }
            }
            old.push((FileKind::Snapshot, old_id));
        }
        // Only snapshots removed above name these.
        for (name, body) in &bodies {
            if body.is_some() {
                old.push((FileKind::State, name.clone()));
                report.states_rewritten += 1;
            }
        }
        // State files no snapshot names (of forgotten snapshots not yet
        // pruned, or left by an interrupted upgrade) would keep what the
        // rewrite removes: they go, as prune would remove them, unless a
        // snapshot is unreadable (it might name one).
        if unreadable.is_empty() {
            // Parts are not rewritten (a source's rewrite is of its state
            // file); they stay while a snapshot names them.
            let parts: Vec<&String> = snapshots
                .iter()
                .flat_map(|s| s.snapshot.sources.values())
                .flat_map(|v| &v.state_parts)
                .collect();
            let named: std::collections::HashSet<&String> =
                bodies.keys().chain(written.values()).chain(parts).collect();
            for f in self.backend().list(FileKind::State)? {
                if !named.contains(&f.name) {
                    report.orphan_states_removed += 1;
                    old.push((FileKind::State, f.name));
                }
            }
        }
        Ok(old)
    }

    /// A handle from checked parts (the caller has tied them to `config`).
    pub(crate) fn from_parts(
        backend: Arc<dyn crate::backend::Backend>,
        config: crate::RepoConfig,
        secrets: KeyringSecrets,
        signer: ConfigSigner,
    ) -> Result<Self> {
        let key = crate::BackupKey {
            repository: config.id.clone(),
            dedup: secrets.dedup,
            metadata_identity: secrets.metadata,
            pin: Some(KeyPin {
                data_recipient: config.data_recipient.clone(),
                verify_key: signer.verify_key_hex(),
                min_format: config.version,
            }),
        };
        Ok(Self {
            inner: Arc::new(crate::repository::build_inner(backend, config)?),
            access: Arc::new(FullAccess {
                key,
                data: secrets.data,
                signer: Some(signer),
            }),
        })
    }
}

/// The config signing key an upgrade derives from the oldest data identity.
fn signer_for(data: &[x25519::Identity]) -> ConfigSigner {
    let oldest = data.last().map(|i| i.to_string());
    ConfigSigner::derived_from(
        oldest
            .as_ref()
            .map(|s| s.expose_secret().as_bytes())
            .unwrap_or_default(),
    )
}
