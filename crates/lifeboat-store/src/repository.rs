//! The repository handle: config, keys, opening, the index, reading blobs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind};
use crate::chunker::ChunkerParams;
use crate::crypto::{
    self, BackupKey, ConfigSigner, DedupKey, KeyPin, Keyring, OpenError, RestoreKey,
};
use crate::error::{Error, Result};
use crate::id::{sha256_hex, BlobId, SnapshotId};
use crate::index::{Index, IndexFile, MAX_INDEX_LEN};
use crate::pack::BlobKind;
use crate::snapshot::{ItemInfo, ManifestItem, Snapshot, SnapshotEntry};

/// Largest snapshot file plaintext accepted.
const MAX_SNAPSHOT_LEN: usize = 64 * 1024 * 1024;
/// A source state file (e.g. a bucket's object list) may be large.
const MAX_STATE_LEN: usize = 1 << 30;
/// A part of a source's state (see [`Repository::source_state_part`]).
pub const MAX_STATE_PART_LEN: usize = 64 << 20;
/// Longest chain of delta blobs followed when reading (writers keep
/// chains far shorter; this only stops a damaged index from looping).
/// A manifest's items from its bytes as they arrive, holding at most one
/// line of them (bounded).
/// An item appearing twice is damage, as a backup session never writes
/// one (a forged manifest repeating one blob repeats its items).
#[derive(Default)]
struct ManifestReader {
    items: Vec<ManifestItem>,
    line: Vec<u8>,
    read: u64,
    /// Hash of (source, name) → indexes of the items with that hash.
    seen: HashMap<u64, Vec<usize>>,
    state: std::collections::hash_map::RandomState,
}

impl ManifestReader {
    fn parse(&mut self, l: &[u8]) -> Result<()> {
        if l.is_empty() {
            return Ok(());
        }
        let item: ManifestItem =
            serde_json::from_slice(l).map_err(|e| Error::damaged("manifest", e.to_string()))?;
        let key = {
            use std::hash::BuildHasher;
            self.state.hash_one((&item.source, &item.name))
        };
        let same = self.seen.entry(key).or_default();
        if same
            .iter()
            .any(|&i| self.items[i].source == item.source && self.items[i].name == item.name)
        {
            return Err(Error::damaged(
                "manifest",
                format!(
                    "the item {:?} of {} appears twice",
                    item.name.chars().take(100).collect::<String>(),
                    item.source.chars().take(40).collect::<String>()
                ),
            ));
        }
        same.push(self.items.len());
        self.items.push(item);
        Ok(())
    }

    /// The next bytes of a manifest that says it is `size` bytes long.
    fn feed(&mut self, d: &[u8], size: u64) -> Result<()> {
        self.read += d.len() as u64;
        if self.read > size {
            return Err(Error::damaged(
                "manifest",
                "content does not match the snapshot's checksum",
            ));
        }
        let mut rest = d;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            if self.line.is_empty() {
                self.parse(&rest[..nl])?;
            } else {
                self.line.extend_from_slice(&rest[..nl]);
                let line = std::mem::take(&mut self.line);
                self.parse(&line)?;
                self.line = line;
                self.line.clear();
            }
            rest = &rest[nl + 1..];
        }
        if self.line.len() + rest.len() > MAX_MANIFEST_LINE {
            return Err(Error::damaged(
                "manifest",
                format!("a line longer than {MAX_MANIFEST_LINE} bytes"),
            ));
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ManifestItem>> {
        let line = std::mem::take(&mut self.line);
        self.parse(&line)?;
        Ok(self.items)
    }
}

/// The largest manifest read (about ten million items).
const MAX_MANIFEST: u64 = 4 << 30;
/// The longest manifest line: one item, with the ids of up to about a
/// million blobs.
const MAX_MANIFEST_LINE: usize = 96 << 20;

const MAX_DELTA_DEPTH: usize = 64;
/// Largest keys/ or lock file plaintext accepted.
const MAX_SMALL_LEN: usize = 1024 * 1024;
/// The format this lifeboat writes.
pub const FORMAT_VERSION: u32 = 3;
/// What a format-1 repository is told on every open.
pub(crate) const FORMAT_1_WARNING: &str = "this repository is in format 1, which is not \
authenticated: anyone with write access to the store could have replaced its keys, config or \
snapshots. Run `lifeboat upgrade` with the restore key (docs/FORMAT.md, \"Authentication\")";

/// Say once per process that the repository is not authenticated.
fn warn_format_1() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tracing::warn!("{FORMAT_1_WARNING}"));
}

/// A restore key's entry in the config (public data only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Name of its `keys/` file.
    pub file: String,
    /// Its age public key, or `passphrase` for a passphrase-protected entry.
    pub recipient: String,
    /// When it was added.
    pub created: DateTime<Utc>,
}

/// The repository's only plaintext file. In format 2 it is signed with a
/// key only restore keys hold, and backup keys pin its recipients, so
/// neither the store's credentials nor a backup host can slip in a
/// recipient of their own. (Format 1 had a MAC keyed by the dedup secret,
/// which backup hosts hold.)
#[derive(Debug, Clone, Serialize, Deserialize)]
// The signature covers the fields lifeboat knows; anything else in the
// file would be unsigned, so it is refused rather than ignored.
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Format version (1, 2 or 3; docs/FORMAT.md, "Format history").
    pub version: u32,
    /// Random repository id.
    pub id: String,
    /// When `init` ran.
    pub created: DateTime<Utc>,
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for blobs.
    pub compression_level: i32,
    /// Data blobs are encrypted to this age recipient.
    pub data_recipient: String,
    /// Metadata is encrypted to this age recipient.
    pub metadata_recipient: String,
    /// Restore keys that can open the repository.
    pub keys: Vec<KeyEntry>,
    /// Format 2: the Ed25519 public key (64 hex digits) whose signature this
    /// file must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_key: Option<String>,
    /// Format 2: 1 at `init`, one more at each rewrite (a key added or
    /// removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// S3 Object Lock: every file is written locked, and `prune` keeps the
    /// files in use locked (docs/FORMAT.md, "Object lock"). Signed with the
    /// rest, so a store that drops it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// Format 1: HMAC-SHA256 (config MAC key) of this JSON with `mac` empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Format 2: Ed25519 signature of this JSON with `signature` empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl RepoConfig {
    fn mac_input(&self) -> Vec<u8> {
        let mut c = self.clone();
        c.mac = Some(String::new());
        serde_json::to_vec(&c).expect("config serializes")
    }

    fn check_mac(&self, dedup: &DedupKey) -> Result<()> {
        if self.mac.as_deref() == Some(&hex::encode(dedup.mac(&self.mac_input()))) {
            Ok(())
        } else {
            Err(Error::damaged(
                "config",
                "its MAC does not match: the file was altered (or the key belongs to another repository)",
            ))
        }
    }

    fn signing_input(&self) -> Vec<u8> {
        let mut c = self.clone();
        c.signature = Some(String::new());
        serde_json::to_vec(&c).expect("config serializes")
    }

    /// Sign (format 2 and later; the version is the caller's to set).
    pub(crate) fn sign(&mut self, signer: &ConfigSigner) {
        self.version = self.version.max(2);
        self.mac = None;
        self.verify_key = Some(signer.verify_key_hex());
        self.signature = Some(signer.sign_hex(&self.signing_input()));
    }

    /// Format 2: check that the config is signed by `verify_key` (which the
    /// caller trusts: pinned in its backup key, or derived from its keyring).
    pub(crate) fn check_signature(&self, verify_key: &str) -> Result<()> {
        if self.verify_key.as_deref() != Some(verify_key) {
            return Err(Error::damaged(
                "config",
                "it names a signing key other than this repository's: the config was replaced \
                 (see docs/DISASTER-RECOVERY.md, \"compromised\")",
            ));
        }
        match &self.signature {
            Some(sig) if crypto::verify_signature(verify_key, &self.signing_input(), sig) => Ok(()),
            _ => Err(Error::damaged(
                "config",
                "its signature does not verify: the file was altered \
                 (see docs/DISASTER-RECOVERY.md, \"compromised\")",
            )),
        }
    }

    /// True for a format-1 repository (not authenticated; `lifeboat upgrade`).
    pub fn is_format_1(&self) -> bool {
        self.version < 2
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("config serializes");
        v.push(b'\n');
        v
    }
}

/// A repository's Object Lock promise: each file in use stays locked for
/// at least half of `days` from any moment `prune` ran (it extends them),
/// and each new file for `days` from its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    /// Retention of a new file, in days.
    pub days: u32,
    /// Governance or compliance.
    pub mode: crate::backend::LockMode,
}

impl ObjectLock {
    /// The retention in seconds (in debug builds,
    /// `LIFEBOAT_TEST_OBJECT_LOCK_SECS` replaces it: tests cannot wait a
    /// day; a release build ignores it).
    pub fn secs(&self) -> u64 {
        // Debug builds only: a release binary's promise is the config's.
        let test = cfg!(debug_assertions)
            .then(|| std::env::var("LIFEBOAT_TEST_OBJECT_LOCK_SECS").ok())
            .flatten()
            .and_then(|v| v.parse().ok());
        test.unwrap_or(u64::from(self.days) * 86_400)
    }
}

/// Options of [`Repository::open_for_restore_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Accept what cannot be authenticated: a format-1 repository, or (for
    /// `upgrade`) this key's own keyring written before format 2. Only for
    /// a store the caller trusts as it is now.
    pub trust_unauthenticated: bool,
}

/// Options of [`Repository::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// Target pack size (default 16 MiB).
    pub pack_size: u32,
    /// zstd level (default 1).
    pub compression_level: i32,
    /// Keep every file under S3 Object Lock (the bucket must have it on).
    pub object_lock: Option<ObjectLock>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::default(),
            pack_size: 16 * 1024 * 1024,
            compression_level: 1,
            object_lock: None,
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// What a handle may do; see [`BackupAccess`] and [`FullAccess`].
pub trait Access: sealed::Sealed + Send + Sync + 'static {
    #[doc(hidden)]
    fn key(&self) -> &BackupKey;
    #[doc(hidden)]
    fn data_identities(&self) -> &[x25519::Identity];
    /// The config signing key's signature of `message`, in hex, when this
    /// access holds the key (a restore key of format 2 or later).
    #[doc(hidden)]
    fn sign_hex(&self, _message: &[u8]) -> Option<String> {
        None
    }
}

/// Opened with the backup key: add snapshots, list them, read metadata.
pub struct BackupAccess(BackupKey);
/// Opened with a restore key: everything.
pub struct FullAccess {
    pub(crate) key: BackupKey,
    pub(crate) data: Vec<x25519::Identity>,
    /// Signs the config (format 2; `None` in a format-1 repository).
    pub(crate) signer: Option<ConfigSigner>,
}

impl sealed::Sealed for BackupAccess {}
impl sealed::Sealed for FullAccess {}
impl Access for BackupAccess {
    fn key(&self) -> &BackupKey {
        &self.0
    }
    fn data_identities(&self) -> &[x25519::Identity] {
        &[]
    }
}
impl Access for FullAccess {
    fn key(&self) -> &BackupKey {
        &self.key
    }
    fn data_identities(&self) -> &[x25519::Identity] {
        &self.data
    }
    fn sign_hex(&self, message: &[u8]) -> Option<String> {
        self.signer.as_ref().map(|s| s.sign_hex(message))
    }
}

pub(crate) struct Inner {
    pub backend: Arc<dyn Backend>,
    pub config: RepoConfig,
    pub data_recipient: x25519::Recipient,
    pub meta_recipient: x25519::Recipient,
}

/// An open repository. `A` says which key opened it: restore operations
/// exist only on `Repository<FullAccess>`.
pub struct Repository<A: Access> {
    pub(crate) inner: Arc<Inner>,
    pub(crate) access: Arc<A>,
}

impl<A: Access> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            access: self.access.clone(),
        }
    }
}

pub(crate) fn read_config(backend: &dyn Backend) -> Result<RepoConfig> {
    read_config_checked(backend, |_| Ok(()))
}

/// Read the config and run `check` on it (its MAC), reading again if either
/// finds damage (see [`reread_if_damaged`]).
fn read_config_checked(
    backend: &dyn Backend,
    check: impl Fn(&RepoConfig) -> Result<()>,
) -> Result<RepoConfig> {
    reread_if_damaged("config", || {
        let config = read_config_once(backend)?;
        check(&config)?;
        Ok(config)
    })
}

fn read_config_once(backend: &dyn Backend) -> Result<RepoConfig> {
    let raw = match backend.read(FileKind::Config, "config") {
        Ok(raw) => raw,
        Err(e) if e.is_not_found() => {
            return Err(Error::NotARepository {
                location: backend.location(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    parse_config(&raw)
}

/// Parse and sanity-check the bytes of a `config` file (its MAC is checked
/// by whoever holds the key).
pub(crate) fn parse_config(raw: &[u8]) -> Result<RepoConfig> {
    let config: RepoConfig = serde_json::from_slice(raw)
        .map_err(|e| Error::damaged("config", format!("not a lifeboat config: {e}")))?;
    if config.version > FORMAT_VERSION || config.version == 0 {
        return Err(Error::Invalid(format!(
            "repository format version {} is newer than this lifeboat understands: upgrade lifeboat",
            config.version
        )));
    }
    let complete = if config.version == 1 {
        config.mac.is_some() && config.signature.is_none()
    } else {
        config.mac.is_none()
            && config.signature.is_some()
            && config.verify_key.is_some()
            && config.generation.is_some()
    };
    if !complete {
        return Err(Error::damaged(
            "config",
            format!(
                "fields missing or mixed for format {} (mac, signature, verify_key, generation)",
                config.version
            ),
        ));
    }
    config
        .chunker
        .validate()
        .map_err(|e| Error::damaged("config", e))?;
    if !(1 << 20..=1 << 30).contains(&config.pack_size) {
        return Err(Error::damaged(
            "config",
            format!("pack_size {} is outside 1 MiB..1 GiB", config.pack_size),
        ));
    }
    if !(-7..=22).contains(&config.compression_level) {
        return Err(Error::damaged(
            "config",
            format!(
                "compression_level {} is not a zstd level",
                config.compression_level
            ),
        ));
    }
    Ok(config)
}

pub(crate) fn build_inner(backend: Arc<dyn Backend>, config: RepoConfig) -> Result<Inner> {
    // Every file this handle writes is locked as the config says. (A local
    // directory cannot lock: a local replica of such a repository is not.)
    if let (Some(lock), Some(locking)) = (&config.object_lock, backend.locking()) {
        locking.retain_writes(lock.mode, lock.secs());
    }
    let data_recipient = crypto::parse_recipient(&config.data_recipient)
        .map_err(|e| Error::damaged("config", e.to_string()))?;
    let meta_recipient = crypto::parse_recipient(&config.metadata_recipient)
        .map_err(|e| Error::damaged("config", e.to_string()))?;
    Ok(Inner {
        backend,
        config,
        data_recipient,
        meta_recipient,
    })
}

/// A format-2 keys/ file for `identity`: the keyring, authenticated with a
/// key only `identity` gives, sealed to its public key.
pub(crate) fn seal_keyring(keyring: &Keyring, identity: &x25519::Identity) -> (String, Vec<u8>) {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(keyring).expect("keyring serializes"));
    let tag = crypto::keyring_tag(identity, &json);
    let plain = zeroize::Zeroizing::new(crypto::with_tag_line(&tag, &json));
    let sealed = crypto::seal(&identity.to_public(), 3, &plain);
    (sha256_hex(&sealed), sealed)
}

/// A keys/ file opened with the identity its config entry names.
pub(crate) enum OpenedKeyring {
    /// Authenticated by the identity (format 2).
    Authenticated(Keyring),
    /// Written before format 2: nothing vouches for it.
    Unauthenticated(Keyring),
}

/// Read `keys/<entry.file>` with `identity` (the one whose public key the
/// entry names); check its name, decrypt, check its tag when it has one.
pub(crate) fn open_keyring(
    backend: &dyn Backend,
    entry: &KeyEntry,
    identity: &x25519::Identity,
) -> Result<OpenedKeyring> {
    let what = FileKind::Keys.path(&entry.file);
    reread_if_damaged(&what, || {
        let raw = backend.read(FileKind::Keys, &entry.file).map_err(|e| {
            if e.is_not_found() {
                Error::damaged(&what, "missing: the config lists it but the store lacks it")
            } else {
                e.into()
            }
        })?;
        if sha256_hex(&raw) != entry.file {
            return Err(Error::damaged(
                &what,
                "content does not match its name (SHA-256)",
            ));
        }
        let plain = zeroize::Zeroizing::new(
            crypto::open(&[identity], &raw, MAX_SMALL_LEN).map_err(|e| match e {
                OpenError::NoMatchingKey => Error::damaged(
                    &what,
                    "not sealed to the restore key its config entry names",
                ),
                OpenError::Corrupt(d) => Error::damaged(&what, d),
            })?,
        );
        let parse = |json: &[u8]| {
            serde_json::from_slice::<Keyring>(json)
                .map_err(|e| Error::damaged(&what, format!("keyring: {e}")))
        };
        match crypto::split_tag_line(&plain) {
            Some((tag, body)) => {
                if !crypto::check_keyring_tag(identity, body, &tag) {
                    return Err(Error::damaged(
                        &what,
                        "not authenticated by your restore key: it was not written by a holder \
                         of this key (planted? see docs/DISASTER-RECOVERY.md, \"compromised\")",
                    ));
                }
                Ok(OpenedKeyring::Authenticated(parse(body)?))
            }
            None => Ok(OpenedKeyring::Unauthenticated(parse(&plain)?)),
        }
    })
}

/// The secrets of a keyring, checked.
pub(crate) struct KeyringSecrets {
    pub dedup: DedupKey,
    pub metadata: x25519::Identity,
    pub data: Vec<x25519::Identity>,
    pub signer: Option<ConfigSigner>,
}

impl KeyringSecrets {
    pub(crate) fn of(keyring: &Keyring, config_id: &str) -> Result<Self> {
        let what = "keys";
        if keyring.repository != config_id {
            return Err(Error::damaged(
                what,
                "a keys/ file belongs to another repository",
            ));
        }
        let dedup = DedupKey::from_hex(&keyring.dedup_secret)
            .ok_or_else(|| Error::damaged(what, "malformed dedup secret"))?;
        let metadata =
            crypto::parse_identity(&SecretString::from(keyring.metadata_identity.clone()), what)?;
        let data = keyring
            .data_identities
            .iter()
            .map(|s| crypto::parse_identity(&SecretString::from(s.clone()), what))
            .collect::<Result<Vec<_>>>()?;
        if data.is_empty() {
            return Err(Error::damaged(what, "the keyring holds no data identity"));
        }
        let signer = match &keyring.config_signing_key {
            Some(hex) => Some(
                ConfigSigner::from_hex(hex)
                    .ok_or_else(|| Error::damaged(what, "malformed config signing key"))?,
            ),
            None => None,
        };
        Ok(Self {
            dedup,
            metadata,
            data,
            signer,
        })
    }
}

/// The identity of `restore` that `entry` names, if any.
pub(crate) fn identity_for<'a>(
    restore: &'a RestoreKey,
    entry: &KeyEntry,
) -> Option<&'a x25519::Identity> {
    restore
        .identities
        .iter()
        .find(|i| i.to_public().to_string() == entry.recipient)
}

impl Repository<FullAccess> {
    /// Create a repository readable by `restore`; returns it and the backup
    /// key to install on backup hosts.
    pub fn init(
        backend: Arc<dyn Backend>,
        restore: &RestoreKey,
        opts: &InitOptions,
    ) -> Result<(Self, BackupKey)> {
        opts.chunker.validate().map_err(Error::Invalid)?;
        if !(1 << 20..=1 << 30).contains(&opts.pack_size)
            || !(-7..=22).contains(&opts.compression_level)
        {
            return Err(Error::Invalid(format!(
                "pack size {} (1 MiB..1 GiB) or zstd level {} (-7..22) out of range",
                opts.pack_size, opts.compression_level
            )));
        }
        match read_config(&*backend) {
            Err(Error::NotARepository { .. }) => {}
            Ok(_) | Err(Error::Damaged { .. }) => {
                return Err(Error::AlreadyExists {
                    location: backend.location(),
                })
            }
            Err(e) => return Err(e),
        }
        if let Some(lock) = &opts.object_lock {
            let locking = backend.locking().ok_or_else(|| {
                Error::Invalid(format!(
                    "object lock needs an S3 store: {} has none",
                    backend.location()
                ))
            })?;
            if lock.days == 0 {
                return Err(Error::Invalid(
                    "--object-lock-days must be at least 1".into(),
                ));
            }
            if !locking.lock_enabled()? {
                return Err(Error::Invalid(format!(
                    "the bucket of {} does not have S3 Object Lock enabled: create a bucket \
                     with it (aws s3api create-bucket --object-lock-enabled-for-bucket, or the \
                     provider's console) and init there",
                    backend.location()
                )));
            }
            locking.retain_writes(lock.mode, lock.secs());
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let dedup = DedupKey::generate();
        let meta = x25519::Identity::generate();
        let data = x25519::Identity::generate();
        let signer = ConfigSigner::generate();
        let keyring = Keyring {
            version: 2,
            repository: id.clone(),
            dedup_secret: dedup.secret_hex().to_string(),
            metadata_identity: meta.to_string().expose_secret().to_string(),
            data_identities: vec![data.to_string().expose_secret().to_string()],
            config_signing_key: Some(signer.secret_hex().to_string()),
        };
        let now = Utc::now();
        let mut keys = Vec::new();
        for ident in &restore.identities {
            let (name, sealed) = seal_keyring(&keyring, ident);
            backend.write(FileKind::Keys, &name, &sealed)?;
            keys.push(KeyEntry {
                file: name,
                recipient: ident.to_public().to_string(),
                created: now,
            });
        }
        let mut config = RepoConfig {
            version: FORMAT_VERSION,
            id: id.clone(),
            created: now,
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression_level: opts.compression_level,
            data_recipient: data.to_public().to_string(),
            metadata_recipient: meta.to_public().to_string(),
            keys,
            verify_key: None,
            generation: Some(1),
            object_lock: opts.object_lock,
            mac: None,
            signature: None,
        };
        config.sign(&signer);
        // The config is written last: its presence is what makes a repository.
        backend.write(FileKind::Config, "config", &config.to_bytes())?;
        let key = BackupKey {
            repository: id,
            dedup,
            metadata_identity: meta,
            pin: Some(KeyPin {
                data_recipient: config.data_recipient.clone(),
                verify_key: signer.verify_key_hex(),
                min_format: config.version,
            }),
        };
        let inner = Arc::new(build_inner(backend, config)?);
        Ok((
            Self {
                inner,
                access: Arc::new(FullAccess {
                    key: key.clone(),
                    data: vec![data],
                    signer: Some(signer),
                }),
            },
            key,
        ))
    }

    /// Open with a restore key: full access.
    ///
    /// Format 2: only the keys/ file that the config lists for this restore
    /// key counts, and only if its tag proves it was written by a holder of
    /// this key; the config must carry the signature of the keyring's
    /// signing key. Format 1 is refused: nothing in it is authenticated, so
    /// anyone with write access to the store could have replaced it whole
    /// (see [`open_for_restore_with`](Self::open_for_restore_with)).
    pub fn open_for_restore(backend: Arc<dyn Backend>, restore: &RestoreKey) -> Result<Self> {
        Self::open_for_restore_with(backend, restore, &OpenOptions::default())
    }

    /// [`open_for_restore`](Self::open_for_restore) with options: with
    /// `trust_unauthenticated`, a format-1 repository is read (with a
    /// warning), for the owner who has not upgraded it yet.
    pub fn open_for_restore_with(
        backend: Arc<dyn Backend>,
        restore: &RestoreKey,
        opts: &OpenOptions,
    ) -> Result<Self> {
        // The config is plaintext and names the keys/ file to read: a byte
        // flipped on the way (not in the store) would name another file or
        // break the signature, so damage anywhere reads it all again.
        reread_if_damaged("config and keys", || {
            Self::open_for_restore_once(backend.clone(), restore, opts)
        })
    }

    fn open_for_restore_once(
        backend: Arc<dyn Backend>,
        restore: &RestoreKey,
        opts: &OpenOptions,
    ) -> Result<Self> {
        let config = read_config(&*backend)?;
        if config.is_format_1() && !opts.trust_unauthenticated {
            return Err(Error::Unauthenticated {
                detail: "this repository is in format 1: nothing in it is authenticated, so \
                         anyone with write access to the store could have replaced it whole \
                         (keys, config, snapshots)"
                    .into(),
            });
        }
        let mine: Vec<(&KeyEntry, &x25519::Identity)> = config
            .keys
            .iter()
            .filter_map(|k| identity_for(restore, k).map(|i| (k, i)))
            .collect();
        if mine.is_empty() {
            return Err(Error::WrongKey {
                detail: format!(
                    "the restore key ({}) is not one of this repository's keys",
                    restore.recipients().join(", ")
                ),
            });
        }
        let mut failures = Vec::new();
        let mut opened = None;
        for (entry, identity) in &mine {
            match open_keyring(&*backend, entry, identity) {
                Ok(OpenedKeyring::Authenticated(k)) if !config.is_format_1() => {
                    opened = Some(k);
                    break;
                }
                Ok(OpenedKeyring::Unauthenticated(k)) if config.is_format_1() => {
                    opened = Some(k);
                    break;
                }
                Ok(OpenedKeyring::Unauthenticated(_)) => failures.push(format!(
                    "keys/{}: not authenticated for this key (a keyring from before format 2 \
                     that the upgrade was not given, or one planted). The owner, with an \
                     authenticated key, can authenticate it with `lifeboat upgrade --also-key \
                     THIS_KEY_FILE`, or add a new key for you with `lifeboat key add`",
                    entry.file
                )),
                Ok(OpenedKeyring::Authenticated(_)) => failures.push(format!(
                    "keys/{}: a format-2 keyring in a format-1 config: the config was replaced \
                     by an older one (a downgrade)",
                    entry.file
                )),
                Err(Error::Damaged { what, detail }) => failures.push(format!("{what}: {detail}")),
                Err(e) => return Err(e),
            }
        }
        let Some(keyring) = opened else {
            return Err(Error::damaged("keys", failures.join("; ")));
        };
        let secrets = KeyringSecrets::of(&keyring, &config.id)?;
        // A mismatch is damage: the caller reads config and keys again.
        if config.is_format_1() {
            warn_format_1();
            config.check_mac(&secrets.dedup)?;
        } else {
            let signer = secrets.signer.as_ref().ok_or_else(|| {
                Error::damaged("keys", "a format-2 keyring without a config signing key")
            })?;
            config.check_signature(&signer.verify_key_hex())?;
        }
        if secrets.metadata.to_public().to_string() != config.metadata_recipient
            || !secrets
                .data
                .iter()
                .any(|d| d.to_public().to_string() == config.data_recipient)
        {
            return Err(Error::damaged(
                "config",
                "its recipients are not the keyring's: the config was altered",
            ));
        }
        let pin = secrets.signer.as_ref().map(|s| KeyPin {
            data_recipient: config.data_recipient.clone(),
            verify_key: s.verify_key_hex(),
            min_format: config.version,
        });
        let key = BackupKey {
            repository: config.id.clone(),
            dedup: secrets.dedup,
            metadata_identity: secrets.metadata,
            pin,
        };
        Ok(Self {
            inner: Arc::new(build_inner(backend, config)?),
            access: Arc::new(FullAccess {
                key,
                data: secrets.data,
                signer: secrets.signer,
            }),
        })
    }

    /// The backup key of this repository (to install on a new backup host).
    pub fn backup_key(&self) -> BackupKey {
        self.access.key.clone()
    }

    /// Add a restore key: it can read every snapshot, past and future.
    pub fn add_key(&mut self, new: &RestoreKey) -> Result<()> {
        if self.inner.config.is_format_1() {
            return Err(Error::Invalid(
                "this repository is in format 1: run `lifeboat upgrade` before adding keys".into(),
            ));
        }
        self.check_free(FileKind::Config, "config")?;
        let keyring = self.keyring();
        let mut config = self.inner.config.clone();
        for ident in &new.identities {
            let recipient = ident.to_public();
            if config
                .keys
                .iter()
                .any(|k| k.recipient == recipient.to_string())
            {
                return Err(Error::Invalid(format!(
                    "{recipient} is already a key of this repository"
                )));
            }
            let (name, sealed) = seal_keyring(&keyring, ident);
            self.inner.backend.write(FileKind::Keys, &name, &sealed)?;
            config.keys.push(KeyEntry {
                file: name,
                recipient: recipient.to_string(),
                created: Utc::now(),
            });
        }
        self.write_config(config)
    }

    /// Remove a restore key (by its `age1...` public key). The last key
    /// cannot be removed.
    pub fn remove_key(&mut self, recipient: &str) -> Result<()> {
        let mut config = self.inner.config.clone();
        let Some(pos) = config.keys.iter().position(|k| k.recipient == recipient) else {
            return Err(Error::NotFound(format!(
                "{recipient} is not a key of this repository"
            )));
        };
        if config.keys.len() == 1 {
            return Err(Error::Invalid(
                "refusing to remove the last restore key: the repository would be unreadable"
                    .into(),
            ));
        }
        let entry = config.keys.remove(pos);
        self.check_free(FileKind::Config, "config")?;
        self.check_free(FileKind::Keys, &entry.file)?;
        self.write_config(config)?;
        self.inner.backend.remove(FileKind::Keys, &entry.file)?;
        Ok(())
    }

    /// Refuse, before changing anything, when a bucket lock rule still
    /// protects a file this change must rewrite or delete.
    fn check_free(&self, kind: FileKind, name: &str) -> Result<()> {
        match self.protected_files(kind)?.get(name) {
            None => Ok(()),
            Some(until) => Err(Error::Invalid(format!(
                "{} is protected by the bucket's lock rule until {} ([repository] \
                 immutable_days) and this change rewrites it: nothing was changed; run it again \
                 after then",
                kind.path(name),
                until.format("%Y-%m-%d %H:%M UTC")
            ))),
        }
    }

    pub(crate) fn keyring(&self) -> Keyring {
        Keyring {
            version: 2,
            repository: self.inner.config.id.clone(),
            dedup_secret: self.access.key.dedup.secret_hex().to_string(),
            metadata_identity: self
                .access
                .key
                .metadata_identity
                .to_string()
                .expose_secret()
                .to_string(),
            data_identities: self
                .access
                .data
                .iter()
                .map(|i| i.to_string().expose_secret().to_string())
                .collect(),
            config_signing_key: self
                .access
                .signer
                .as_ref()
                .map(|s| s.secret_hex().to_string()),
        }
    }

    /// Sign and write a new config (format 2 only: a format-1 repository
    /// is changed by `upgrade` alone).
    pub(crate) fn write_config(&mut self, mut config: RepoConfig) -> Result<()> {
        let Some(signer) = self.access.signer.as_ref() else {
            return Err(Error::Invalid(
                "this repository is in format 1: run `lifeboat upgrade` first".into(),
            ));
        };
        config.generation = Some(config.generation.unwrap_or(0) + 1);
        config.sign(signer);
        self.inner
            .backend
            .write(FileKind::Config, "config", &config.to_bytes())?;
        self.inner = Arc::new(build_inner(self.inner.backend.clone(), config)?);
        Ok(())
    }
}

impl<A: Access> Repository<A> {
    /// Read an item whole into `out`, checking its size and SHA-256 (what
    /// restores, verify and drills share; blobs need a key that reads data).
    pub(crate) fn read_item(
        &self,
        index: &Index,
        item: &ManifestItem,
        out: &mut dyn std::io::Write,
        progress: &dyn crate::Progress,
    ) -> Result<()> {
        use sha2::Digest;
        if item.details_sealed() {
            return Err(Error::Internal(format!(
                "item {} was read before its info line was resolved",
                item.name
            )));
        }
        progress.set_length(item.size);
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        self.read_blobs(index, &item.blobs, &mut |data| {
            hasher.update(data);
            size += data.len() as u64;
            progress.inc(data.len() as u64);
            out.write_all(data)
                .map_err(|e| Error::io(format!("writing item {}", item.name), e))
        })?;
        let got = hex::encode(hasher.finalize());
        if size != item.size || got != item.sha256 {
            return Err(Error::damaged(
                format!("item {}", item.name),
                format!(
                    "restored {size} bytes with SHA-256 {got}, manifest says {} bytes with {}",
                    item.size, item.sha256
                ),
            ));
        }
        progress.finish();
        Ok(())
    }
}

impl Repository<FullAccess> {
    /// Restore one item's content into `out`, checking its size and SHA-256.
    pub fn restore_item(
        &self,
        index: &Index,
        item: &ManifestItem,
        out: &mut dyn std::io::Write,
        progress: &dyn crate::Progress,
    ) -> Result<()> {
        self.read_item(index, item, out, progress)
    }
}

impl Repository<BackupAccess> {
    /// Open with the backup key: can add and list snapshots, not read data.
    ///
    /// Format 2: the config must be signed by the key the backup key pins,
    /// and name the data recipient it pins; anything else is refused, so a
    /// replaced config can never make this host seal to another key.
    pub fn open_for_backup(backend: Arc<dyn Backend>, key: BackupKey) -> Result<Self> {
        let config = read_config_checked(&*backend, |config| {
            if key.repository != config.id {
                return Err(Error::WrongKey {
                    detail: format!(
                        "the backup key belongs to repository {}, this is repository {}",
                        key.repository, config.id
                    ),
                });
            }
            match (&key.pin, config.is_format_1()) {
                (Some(pin), false) => {
                    config.check_signature(&pin.verify_key)?;
                    if config.version < pin.min_format {
                        return Err(Error::damaged(
                            "config",
                            format!(
                                "format {}, but this backup key was issued for format {}: an \
                                 older config was put back (a rollback), which would make \
                                 backups show this host what the newer format hides; do not \
                                 back up into this store until its owner has looked (see \
                                 docs/DISASTER-RECOVERY.md, \"compromised\")",
                                config.version, pin.min_format
                            ),
                        ));
                    }
                    if config.data_recipient != pin.data_recipient {
                        return Err(Error::damaged(
                            "config",
                            "its data recipient is not the one this backup key was issued for: \
                             refusing to seal backups to it (if the restore keys were rotated, \
                             re-issue the backup key with `lifeboat key export-backup-key`)",
                        ));
                    }
                    Ok(())
                }
                (None, false) => Err(Error::WrongKey {
                    detail: "this backup key was issued before format 2 and pins nothing; \
                             re-issue it with `lifeboat key export-backup-key` (restore key)"
                        .into(),
                }),
                (Some(_), true) => Err(Error::damaged(
                    "config",
                    "format 1, but this backup key was issued for format 2: the config was \
                     replaced by an older one (a downgrade); do not back up into this store",
                )),
                (None, true) => config.check_mac(&key.dedup),
            }
        })?;
        if config.is_format_1() {
            warn_format_1();
        }
        if key.metadata_identity.to_public().to_string() != config.metadata_recipient {
            return Err(Error::WrongKey {
                detail: "the backup key's metadata identity does not match the repository".into(),
            });
        }
        Ok(Self {
            inner: Arc::new(build_inner(backend, config)?),
            access: Arc::new(BackupAccess(key)),
        })
    }
}

/// A file that could not be read while loading the index or snapshots.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The file, e.g. `index/ab12...`.
    pub file: String,
    /// Why.
    pub detail: String,
}

impl<A: Access> Repository<A> {
    /// The repository config.
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    pub(crate) fn key(&self) -> &BackupKey {
        self.access.key()
    }

    fn identities(&self) -> Vec<&dyn age::Identity> {
        let mut ids: Vec<&dyn age::Identity> = vec![&self.key().metadata_identity];
        ids.extend(
            self.access
                .data_identities()
                .iter()
                .map(|i| i as &dyn age::Identity),
        );
        ids
    }

    /// Read, check the name of, and decrypt a content-addressed metadata file.
    pub(crate) fn read_meta_file(
        &self,
        kind: FileKind,
        name: &str,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let what = kind.path(name);
        reread_if_damaged(&what, || {
            let plain = self.open_meta_file(kind, name, limit)?;
            self.check_tag(kind.dir(), plain, &what)
        })
    }

    /// Read, check the name of, and decrypt a metadata file; its tag line,
    /// if any, is left on (`upgrade` tells format-1 files from its own).
    pub(crate) fn open_meta_file(
        &self,
        kind: FileKind,
        name: &str,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let what = kind.path(name);
        let raw = self.inner.backend.read(kind, name)?;
        if sha256_hex(&raw) != name {
            return Err(Error::damaged(
                &what,
                "content does not match its name (SHA-256)",
            ));
        }
        crypto::open(&[&self.key().metadata_identity], &raw, limit).map_err(|e| e.into_error(&what))
    }

    /// The dedup key when files must carry tags (format 2), else `None`.
    pub(crate) fn auth(&self) -> Option<&DedupKey> {
        (!self.inner.config.is_format_1()).then_some(&self.key().dedup)
    }

    /// Format 2: strip and check the tag line of a metadata plaintext that
    /// claims to be of kind `label`. Format 1: the plaintext as it is.
    pub(crate) fn check_tag(&self, label: &str, plain: Vec<u8>, what: &str) -> Result<Vec<u8>> {
        let Some(dedup) = self.auth() else {
            return Ok(plain);
        };
        match crypto::split_tag_line(&plain) {
            Some((tag, body)) if dedup.check_file_tag(label, body, &tag) => {
                Ok(plain[crypto::TAG_LINE_LEN..].to_vec())
            }
            Some(_) => Err(Error::damaged(
                what,
                format!(
                    "authentication failed: not written as a {label} file with this repository's \
                     keys (forged, planted from elsewhere, or damaged)"
                ),
            )),
            None => Err(Error::damaged(
                what,
                "not authenticated: a file without a tag (format 1, or planted) in a format-2 \
                 repository",
            )),
        }
    }

    /// Seal and store a metadata file under its content hash; returns the name.
    pub(crate) fn write_meta_file(
        &self,
        kind: FileKind,
        plaintext: &[u8],
    ) -> Result<(String, u64)> {
        self.write_meta_file_tagged(kind, plaintext, self.auth())
    }

    /// [`write_meta_file`](Self::write_meta_file) with the tag key given:
    /// `upgrade` tags files while the repository is still format 1.
    pub(crate) fn write_meta_file_tagged(
        &self,
        kind: FileKind,
        plaintext: &[u8],
        tag_key: Option<&DedupKey>,
    ) -> Result<(String, u64)> {
        let body = match tag_key {
            Some(k) => std::borrow::Cow::Owned(crypto::with_tag_line(
                &k.file_tag(kind.dir(), plaintext),
                plaintext,
            )),
            None => std::borrow::Cow::Borrowed(plaintext),
        };
        let sealed = crypto::seal(&self.inner.meta_recipient, 3, &body);
        let name = sha256_hex(&sealed);
        self.inner.backend.write(kind, &name, &sealed)?;
        Ok((name, sealed.len() as u64))
    }

    /// Write index files naming `packs`, 256 packs a file; returns their
    /// names (an existing file with the same content has the same name).
    pub(crate) fn write_index_files(
        &self,
        packs: &[crate::index::IndexPack],
    ) -> Result<BTreeSet<String>> {
        let mut written = BTreeSet::new();
        for chunk in packs.chunks(256) {
            let file = IndexFile {
                version: 1,
                packs: chunk.to_vec(),
            };
            let json = serde_json::to_vec(&file).expect("index serializes");
            written.insert(self.write_meta_file(FileKind::Index, &json)?.0);
        }
        Ok(written)
    }

    /// Load every index file. Unreadable ones are skipped and returned, so a
    /// damaged index slows a backup down (blobs are stored again) instead
    /// of stopping it.
    ///
    /// Copies in packs that exist win over entries naming packs that are
    /// gone (an index file put back after a prune, or a pack lost): those
    /// are added after, for blobs with no other copy, so `verify` still
    /// names them.
    pub fn load_index(&self) -> Result<(Index, Vec<Unreadable>)> {
        let listing = self.inner.backend.list(FileKind::Pack)?;
        self.load_index_over(&listing, true)
    }

    /// The index, entries in the packs of `listing` first; with
    /// `with_missing`, then the entries naming packs not listed (for blobs
    /// with no other copy, so verify names them); without, none of those
    /// (what a backup dedups against).
    pub(crate) fn load_index_over(
        &self,
        listing: &[crate::backend::FileInfo],
        with_missing: bool,
    ) -> Result<(Index, Vec<Unreadable>)> {
        let (mut index, missing, bad) = self.load_index_split(listing)?;
        if !missing.is_empty() && with_missing {
            let present: std::collections::HashSet<crate::PackId> =
                listing.iter().filter_map(|f| f.name.parse().ok()).collect();
            self.each_index_file(|file| {
                for p in file.packs.iter().filter(|p| !present.contains(&p.id)) {
                    index.add_pack(p);
                }
            })?;
        }
        Ok((index, bad))
    }

    /// The index of the packs in `listing`, and the packs index files name
    /// that `listing` lacks (one read of every index file).
    pub(crate) fn load_index_split(
        &self,
        listing: &[crate::backend::FileInfo],
    ) -> Result<(Index, BTreeSet<crate::PackId>, Vec<Unreadable>)> {
        let present: std::collections::HashSet<crate::PackId> =
            listing.iter().filter_map(|f| f.name.parse().ok()).collect();
        let mut index = Index::default();
        let mut missing = BTreeSet::new();
        let (_, bad) = self.each_index_file(|file| {
            for p in &file.packs {
                if present.contains(&p.id) {
                    index.add_pack(p);
                } else {
                    missing.insert(p.id);
                }
            }
        })?;
        Ok((index, missing, bad))
    }

    /// One index file, read and parsed.
    pub(crate) fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let json = self.read_meta_file(FileKind::Index, name, MAX_INDEX_LEN)?;
        serde_json::from_slice::<IndexFile>(&json)
            .map_err(|e| Error::damaged(FileKind::Index.path(name), e.to_string()))
    }

    /// Read every index file and pass each readable one to `f`; returns the
    /// names of all of them and the ones that could not be read (a storage
    /// failure other than a file gone since the listing is an error).
    pub(crate) fn each_index_file(
        &self,
        mut f: impl FnMut(IndexFile),
    ) -> Result<(Vec<String>, Vec<Unreadable>)> {
        let mut names = Vec::new();
        let mut bad = Vec::new();
        for file in self.inner.backend.list(FileKind::Index)? {
            if file.size > MAX_INDEX_LEN as u64 {
                bad.push(Unreadable {
                    file: FileKind::Index.path(&file.name),
                    detail: format!("{} bytes: larger than any index file", file.size),
                });
                names.push(file.name);
                continue;
            }
            match self.read_index_file(&file.name) {
                Ok(parsed) => f(parsed),
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(e) => bad.push(Unreadable {
                    file: FileKind::Index.path(&file.name),
                    detail: e.to_string(),
                }),
            }
            names.push(file.name);
        }
        Ok((names, bad))
    }

    /// All snapshots, oldest first, and the snapshot files that could not be read.
    pub fn snapshots(&self) -> Result<(Vec<SnapshotEntry>, Vec<Unreadable>)> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for f in self.inner.backend.list(FileKind::Snapshot)? {
            // Only names a snapshot can have, and sizes one can have (a
            // planted 8 GB file is not read into memory).
            if f.name.parse::<SnapshotId>().is_err() || f.size > MAX_SNAPSHOT_LEN as u64 {
                bad.push(Unreadable {
                    file: format!("{}/{:?}", FileKind::Snapshot.dir(), f.name),
                    detail: format!("not a snapshot file ({} bytes)", f.size),
                });
                continue;
            }
            let r = self
                .read_meta_file(FileKind::Snapshot, &f.name, MAX_SNAPSHOT_LEN)
                .and_then(|json| {
                    serde_json::from_slice::<Snapshot>(&json).map_err(|e| {
                        Error::damaged(FileKind::Snapshot.path(&f.name), e.to_string())
                    })
                })
                .and_then(|s| Ok((f.name.parse::<SnapshotId>()?, s)));
            match r {
                Ok((id, snapshot)) => out.push(SnapshotEntry { id, snapshot }),
                Err(Error::Backend(e)) if !e.is_not_found() => return Err(Error::Backend(e)),
                Err(e) => bad.push(Unreadable {
                    file: FileKind::Snapshot.path(&f.name),
                    detail: e.to_string(),
                }),
            }
        }
        out.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok((out, bad))
    }

    /// The state `source` left in `snapshot` for its next backup, if any
    /// (see [`BackupSession::set_source_state`](crate::BackupSession::set_source_state)).
    pub fn source_state(&self, snapshot: &Snapshot, source: &str) -> Result<Option<Vec<u8>>> {
        match snapshot.sources.get(source).and_then(|s| s.state.as_ref()) {
            Some(name) => Ok(Some(self.read_meta_file(
                FileKind::State,
                name,
                MAX_STATE_LEN,
            )?)),
            None => Ok(None),
        }
    }

    /// One of the parts `snapshot` names for `source`'s state (see
    /// [`BackupSession::write_state_part`](crate::BackupSession::write_state_part));
    /// a name the snapshot does not list is refused.
    pub fn source_state_part(
        &self,
        snapshot: &Snapshot,
        source: &str,
        name: &str,
    ) -> Result<Vec<u8>> {
        let listed = snapshot
            .sources
            .get(source)
            .is_some_and(|s| s.state_parts.iter().any(|p| p == name));
        if !listed {
            return Err(Error::Invalid(format!(
                "the snapshot names no state part {name} of {source}"
            )));
        }
        self.read_meta_file(FileKind::State, name, MAX_STATE_PART_LEN)
    }

    /// Find a snapshot by `latest`, a full id or a unique id prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotEntry> {
        let (all, _) = self.snapshots()?;
        pick_snapshot(all, spec)
    }

    /// Read the manifest of a snapshot, checking its SHA-256, with every
    /// item's `sha256` and `meta` in place (items whose details are sealed
    /// in an info blob take them from there: see
    /// [`ManifestItem::info`]).
    pub fn manifest(&self, index: &Index, snap: &Snapshot) -> Result<Vec<ManifestItem>> {
        let mut items = self.manifest_lines(index, snap)?;
        self.resolve_info(index, &mut items)?;
        Ok(items)
    }

    /// Fill in the `sha256` and `meta` of items whose details are sealed in
    /// info blobs (each blob read once). A missing line, or a line that is
    /// not an item's info, is damage.
    pub(crate) fn resolve_info(&self, index: &Index, items: &mut [ManifestItem]) -> Result<()> {
        let mut blobs: HashMap<BlobId, Vec<Option<ItemInfo>>> = HashMap::new();
        for item in items.iter_mut().filter(|i| i.details_sealed()) {
            let Some(r) = item.info else { continue };
            let lines = match blobs.entry(r.blob) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let raw = self.read_blob(index, &r.blob)?;
                    e.insert(
                        raw.split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .map(|l| serde_json::from_slice::<ItemInfo>(l).ok())
                            .collect(),
                    )
                }
            };
            let info = lines
                .get(r.line as usize)
                .and_then(Option::as_ref)
                .filter(|i| i.sha256.len() == 64 && i.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    Error::damaged(
                        format!("item {}", item.name),
                        format!(
                            "line {} of its info blob {} is missing or not an item's info",
                            r.line, r.blob
                        ),
                    )
                })?;
            item.sha256 = info.sha256.clone();
            item.meta = info.meta.clone();
        }
        Ok(())
    }

    /// The manifest's lines as stored: items whose details are sealed in an
    /// info blob have an empty `sha256` (enough for what needs only blob
    /// ids: prune, verify's attribution, repair).
    pub(crate) fn manifest_lines(
        &self,
        index: &Index,
        snap: &Snapshot,
    ) -> Result<Vec<ManifestItem>> {
        use sha2::Digest;
        if snap.manifest.size > MAX_MANIFEST {
            return Err(Error::damaged(
                "manifest",
                format!(
                    "the snapshot says it is {} bytes, more than lifeboat reads ({MAX_MANIFEST})",
                    snap.manifest.size
                ),
            ));
        }
        // Parsed line by line as the blobs arrive: what is held is the
        // items and at most one line, never the manifest's bytes (a forged
        // manifest listing one large blob many times stays small on disk).
        let mut reader = ManifestReader::default();
        let mut hasher = sha2::Sha256::new();
        let size = snap.manifest.size;
        self.read_blobs(index, &snap.manifest.blobs, &mut |d| {
            hasher.update(d);
            reader.feed(d, size)
        })?;
        if hex::encode(hasher.finalize()) != snap.manifest.sha256 || reader.read != size {
            return Err(Error::damaged(
                "manifest",
                "content does not match the snapshot's checksum",
            ));
        }
        reader.finish()
    }

    /// Read one blob: fetch its bytes, decrypt, decompress, resolve a delta
    /// against its base, check its id.
    pub(crate) fn read_blob(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        self.read_blob_at_depth(index, id, 0)
    }

    fn read_blob_at_depth(&self, index: &Index, id: &BlobId, depth: usize) -> Result<Vec<u8>> {
        if depth > MAX_DELTA_DEPTH {
            return Err(Error::damaged(
                format!("blob {id}"),
                "delta chain too long (a loop?)",
            ));
        }
        let copies = index.copies(id);
        if copies.is_empty() {
            return Err(Error::damaged(
                format!("blob {id}"),
                "not in any index (its pack or index file is lost)",
            ));
        }
        // A copy that does not match its id (damaged, or planted by a
        // backup host under an existing id) leaves the next one to try.
        let mut first_damage = None;
        for loc in &copies {
            match self.read_copy(index, id, loc, depth) {
                Ok(plain) => return Ok(plain),
                Err(e @ Error::Damaged { .. }) => {
                    if copies.len() > 1 {
                        tracing::warn!("{e}; trying another copy");
                    }
                    first_damage.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_damage.unwrap_or_else(|| Error::Internal(format!("blob {id}: no copy read"))))
    }

    /// Read the copy of blob `id` at `loc` (its delta base from any copy).
    pub(crate) fn read_copy(
        &self,
        index: &Index,
        id: &BlobId,
        loc: &crate::BlobLocation,
        depth: usize,
    ) -> Result<Vec<u8>> {
        let pack = loc.pack.to_hex();
        if loc.length > crate::pack::MAX_BLOB_LEN || loc.plain_length > crate::pack::MAX_BLOB_LEN {
            return Err(Error::damaged(
                format!("blob {id}"),
                "its index entry gives an impossible length",
            ));
        }
        let base = match &loc.base {
            Some(b) => Some(self.read_blob_at_depth(index, b, depth + 1)?),
            None => None,
        };
        let path = FileKind::Pack.path(&pack);
        reread_if_damaged(&format!("blob {id} in {path}"), || {
            let raw = self
                .inner
                .backend
                .read_range(FileKind::Pack, &pack, loc.offset as u64, loc.length as u64)
                .map_err(|e| {
                    if e.is_not_found() {
                        Error::damaged(
                            &path,
                            "missing: an index names it but the repository does not have it \
                             (run `lifeboat verify` to see which snapshots need it)",
                        )
                    } else {
                        e.into()
                    }
                })?;
            self.open_blob(id, loc.kind, loc.plain_length, &raw, &path, base.as_deref())
        })
    }

    pub(crate) fn open_blob(
        &self,
        id: &BlobId,
        kind: BlobKind,
        plain_length: u32,
        raw: &[u8],
        pack_path: &str,
        base: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let what = format!("blob {id} in {pack_path}");
        if self.access.data_identities().is_empty() {
            return Err(Error::NeedRestoreKey {
                operation: match kind {
                    BlobKind::Data => "reading backed-up data",
                    BlobKind::Tree => "reading a snapshot's manifest",
                },
            });
        }
        let plain = crypto::open(&self.identities(), raw, plain_length as usize)
            .map_err(|e| e.into_error(what.clone()))?;
        if plain.len() != plain_length as usize {
            return Err(Error::damaged(what, "shorter than its index entry says"));
        }
        let full = match base {
            Some(base) => crate::delta::apply(base, &plain, crate::pack::MAX_BLOB_LEN as usize)
                .map_err(|e| Error::damaged(what.clone(), format!("delta: {e}")))?,
            None => plain,
        };
        if self.key().dedup.blob_id(&full) != *id {
            return Err(Error::damaged(what, "content does not match its id"));
        }
        Ok(full)
    }

    /// Read blobs in order into `sink`, fetching ahead in parallel with a
    /// bounded window (memory stays at about window x max chunk size).
    pub(crate) fn read_blobs(
        &self,
        index: &Index,
        blobs: &[BlobId],
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let threads = self.inner.backend.connections().clamp(2, 8);
        if blobs.len() <= 1 {
            for id in blobs {
                sink(&self.read_blob(index, id)?)?;
            }
            return Ok(());
        }
        let window = threads * 2;
        std::thread::scope(|s| -> Result<()> {
            let (job_tx, job_rx) = crossbeam_channel::bounded::<(usize, BlobId)>(window);
            let (res_tx, res_rx) = crossbeam_channel::bounded::<(usize, Result<Vec<u8>>)>(window);
            for _ in 0..threads {
                let job_rx = job_rx.clone();
                let res_tx = res_tx.clone();
                s.spawn(move || {
                    for (seq, id) in job_rx {
                        if res_tx.send((seq, self.read_blob(index, &id))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(res_tx);
            let mut pending = std::collections::BTreeMap::new();
            let (mut sent, mut next) = (0usize, 0usize);
            let result = (|| {
                while next < blobs.len() {
                    while sent < blobs.len() && sent < next + window {
                        job_tx
                            .send((sent, blobs[sent]))
                            .map_err(|_| Error::Invalid("reader threads stopped".into()))?;
                        sent += 1;
                    }
                    let (seq, r) = res_rx
                        .recv()
                        .map_err(|_| Error::Invalid("reader threads stopped".into()))?;
                    pending.insert(seq, r?);
                    while let Some(data) = pending.remove(&next) {
                        sink(&data)?;
                        next += 1;
                    }
                }
                Ok(())
            })();
            drop(job_tx);
            // Drain so the readers can exit.
            for _ in res_rx.iter() {}
            result
        })
    }

    /// Names of every file of `kind`.
    pub(crate) fn list_names(&self, kind: FileKind) -> Result<BTreeSet<String>> {
        Ok(self
            .inner
            .backend
            .list(kind)?
            .into_iter()
            .map(|f| f.name)
            .collect())
    }
}

/// Run a read that checks what it read; if the check fails, read again
/// (up to three reads in all) before reporting damage. Bytes can be
/// corrupted on the way (a proxy, a flaky link) rather than in the store:
/// restic re-reads on a hash mismatch for the same reason. The last
/// failure is reported as it is.
pub(crate) fn reread_if_damaged<T>(what: &str, read: impl Fn() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match read() {
            Err(Error::Damaged { detail, .. }) if attempt < 3 => {
                tracing::warn!("{what}: {detail}; reading it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The snapshot of `all` (oldest first) that `spec` names: `latest`, or a
/// unique prefix of at least 4 hex digits of its id.
pub(crate) fn pick_snapshot(all: Vec<SnapshotEntry>, spec: &str) -> Result<SnapshotEntry> {
    if spec == "latest" {
        for s in all.iter().rev().filter(|s| s.snapshot.is_from_the_future()) {
            tracing::warn!(
                "snapshot {} is dated {}, in the future: not taken as latest \
                     (forged, or a host's clock is wrong: look at it)",
                s.id.short(),
                s.snapshot.time
            );
        }
        return all
            .into_iter()
            .rfind(|s| !s.snapshot.is_from_the_future() && !s.snapshot.is_log())
            .ok_or_else(|| Error::NotFound("the repository has no snapshot yet".into()));
    }
    if spec.len() < 4 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "{spec:?} is not a snapshot id: give `latest`, or at least 4 hex digits of an id"
        )));
    }
    let spec = spec.to_ascii_lowercase();
    let mut hits: Vec<_> = all
        .into_iter()
        .filter(|s| s.id.to_hex().starts_with(&spec))
        .collect();
    match hits.len() {
        0 => Err(Error::NotFound(format!(
            "no snapshot id starts with {spec}: list them with `lifeboat snapshots`"
        ))),
        1 => Ok(hits.remove(0)),
        n => Err(Error::Invalid(format!(
            "{n} snapshots start with {spec}: give more digits ({})",
            hits.iter()
                .map(|s| format!(
                    "{} {}",
                    s.id.to_hex(),
                    s.snapshot.time.format("%Y-%m-%d %H:%M:%S")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod pick_tests {
    use super::*;

    fn entry(first: u8, hour: u32) -> SnapshotEntry {
        let mut id = [7u8; 32];
        id[0] = first;
        id[1] = 0xab;
        SnapshotEntry {
            id: SnapshotId(id),
            snapshot: Snapshot {
                version: 1,
                time: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, hour, 0, 0).unwrap(),
                hostname: "h".into(),
                tags: vec![],
                note: None,
                sources: Default::default(),
                manifest: crate::ManifestRef {
                    blobs: vec![],
                    size: 0,
                    sha256: String::new(),
                },
                stats: Default::default(),
                program: "lifeboat".into(),
            },
        }
    }

    #[test]
    fn an_ambiguous_prefix_lists_the_snapshots_it_matches() {
        let all = vec![entry(0x12, 1), entry(0x12, 2), entry(0x34, 3)];
        let err = pick_snapshot(all.clone(), "12ab").unwrap_err().to_string();
        assert!(err.contains("2 snapshots start with 12ab"), "{err}");
        assert!(
            err.contains(&all[0].id.to_hex()) && err.contains("2026-12-01 02:00:00"),
            "{err}"
        );
        assert_eq!(pick_snapshot(all.clone(), "34AB").unwrap().id, all[2].id);
        assert_eq!(pick_snapshot(all.clone(), "latest").unwrap().id, all[2].id);
        assert!(matches!(pick_snapshot(all, "12"), Err(Error::Invalid(_))));
    }
}

#[cfg(test)]
mod manifest_reader_tests {
    use super::*;

    /// A round-6 attack listed one 64 MiB blob of spaces 48 times in a
    /// manifest: `show` held all 3 GB. The reader holds one bounded line.
    #[test]
    fn a_line_without_end_is_refused_at_the_bound_not_held() {
        let chunk = vec![b' '; 8 << 20];
        let mut r = ManifestReader::default();
        let size = 100 * chunk.len() as u64;
        let mut fed = 0;
        let err = loop {
            match r.feed(&chunk, size) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("a line longer than"), "{err}");
        assert_eq!(fed, MAX_MANIFEST_LINE / chunk.len());
        assert!(r.line.len() <= MAX_MANIFEST_LINE);
    }

    #[test]
    fn items_split_across_chunks_are_read_and_more_than_the_size_is_refused() {
        let a = r#"{"source":"s","name":"a","kind":"stream","size":1,"sha256":"00","blobs":[]}"#;
        let text = format!("{a}\n{}\n", a.replace("\"a\"", "\"b\""));
        let mut r = ManifestReader::default();
        for part in text.as_bytes().chunks(7) {
            r.feed(part, text.len() as u64).unwrap();
        }
        let items = r.finish().unwrap();
        assert_eq!(
            items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let mut r = ManifestReader::default();
        assert!(r.feed(text.as_bytes(), 10).is_err());
        // A round-7 attack repeated one blob of items: the second copy of
        // an item is damage, found as it arrives.
        let twice = format!("{a}\n{a}\n");
        let mut r = ManifestReader::default();
        let e = r.feed(twice.as_bytes(), twice.len() as u64).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }
}
