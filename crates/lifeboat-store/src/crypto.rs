//! Keys and the two transformations every stored byte goes through:
//! zstd then age (seal), and age then zstd (open).
//!
//! Three kinds of secret exist (see ARCHITECTURE.md, "Keys"):
//! - the *dedup secret*, from which the blob-id key, the chunker's gear seed
//!   and the config MAC key are derived;
//! - the *metadata identity*, an age X25519 identity that decrypts indexes,
//!   snapshot files, pack headers and locks (not manifests);
//! - the *data identities*, age X25519 identities that decrypt data and
//!   manifest blobs.
//!
//! A backup host holds the first two (its backup key file). A restore key is
//! an ordinary age identity; the repository's `keys/` files hold all three
//! secrets encrypted to it.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::id::BlobId;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hmac_check(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    // Constant time.
    mac.verify_slice(tag).is_ok()
}

/// The secret that makes blob ids unguessable and chunk boundaries private.
#[derive(Clone)]
pub(crate) struct DedupKey {
    secret: Zeroizing<[u8; 32]>,
    id_key: Zeroizing<[u8; 32]>,
    mac_key: Zeroizing<[u8; 32]>,
    file_key: Zeroizing<[u8; 32]>,
    gear_seed: u64,
}

impl DedupKey {
    pub(crate) fn from_secret(secret: [u8; 32]) -> Self {
        let id_key = hmac(&secret, b"lifeboat blob-id v1");
        let mac_key = hmac(&secret, b"lifeboat config-mac v1");
        let file_key = hmac(&secret, b"lifeboat file-auth v2");
        let seed = hmac(&secret, b"lifeboat gear-seed v1");
        let mut seed8 = [0u8; 8];
        seed8.copy_from_slice(&seed[..8]);
        Self {
            secret: Zeroizing::new(secret),
            id_key: Zeroizing::new(id_key),
            mac_key: Zeroizing::new(mac_key),
            file_key: Zeroizing::new(file_key),
            gear_seed: u64::from_le_bytes(seed8),
        }
    }

    pub(crate) fn generate() -> Self {
        let mut s = [0u8; 32];
        rand::fill(&mut s);
        Self::from_secret(s)
    }

    pub(crate) fn secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.secret))
    }

    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).ok()?;
        Some(Self::from_secret(out))
    }

    /// The id of a blob with this plaintext.
    pub(crate) fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(hmac(&*self.id_key, plaintext))
    }

    pub(crate) fn mac(&self, data: &[u8]) -> [u8; 32] {
        hmac(&*self.mac_key, data)
    }

    /// Format 2: the tag that authenticates a metadata plaintext `body` as a
    /// file of kind `label` (docs/FORMAT.md, "Authentication").
    pub(crate) fn file_tag(&self, label: &str, body: &[u8]) -> [u8; 32] {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&*self.file_key).expect("HMAC takes any key");
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` authenticates `body` as a file of kind `label`.
    pub(crate) fn check_file_tag(&self, label: &str, body: &[u8], tag: &[u8]) -> bool {
        hmac_check(&*self.file_key, &[label.as_bytes(), &[0], body], tag)
    }

    /// A key for `purpose`, independent of the others.
    pub(crate) fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac(
            &*self.secret,
            format!("lifeboat derived v1: {purpose}").as_bytes(),
        )
    }

    pub(crate) fn gear_seed(&self) -> u64 {
        self.gear_seed
    }
}

/// Length of the tag line that starts every authenticated plaintext:
/// 64 hex digits and `\n`.
pub(crate) const TAG_LINE_LEN: usize = 65;

/// `hex(tag) ‖ "\n" ‖ body`: how format 2 stores an authenticated plaintext.
pub(crate) fn with_tag_line(tag: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAG_LINE_LEN + body.len());
    out.extend_from_slice(hex::encode(tag).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// Split a plaintext into its tag and body, if it starts with a tag line.
/// JSON bodies start with `{`, so a format-1 plaintext never looks like one.
pub(crate) fn split_tag_line(plain: &[u8]) -> Option<([u8; 32], &[u8])> {
    if plain.len() < TAG_LINE_LEN || plain[TAG_LINE_LEN - 1] != b'\n' {
        return None;
    }
    let mut tag = [0u8; 32];
    hex::decode_to_slice(&plain[..TAG_LINE_LEN - 1], &mut tag).ok()?;
    Some((tag, &plain[TAG_LINE_LEN..]))
}

/// The key that authenticates the keyring sealed to one restore key: only
/// someone holding that restore key can compute it, so a keyring planted by
/// anyone else (sealing to the public key is open to all) is refused.
pub(crate) fn keyring_auth_key(identity: &x25519::Identity) -> Zeroizing<[u8; 32]> {
    let text = identity.to_string();
    Zeroizing::new(hmac(
        text.expose_secret().as_bytes(),
        b"lifeboat keyring-auth v2",
    ))
}

/// The tag of a keyring body sealed to `identity`.
pub(crate) fn keyring_tag(identity: &x25519::Identity, body: &[u8]) -> [u8; 32] {
    let key = keyring_auth_key(identity);
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&*key).expect("HMAC takes any key");
    mac.update(b"keys\0");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` authenticates a keyring `body` sealed to `identity`.
pub(crate) fn check_keyring_tag(identity: &x25519::Identity, body: &[u8], tag: &[u8]) -> bool {
    hmac_check(&*keyring_auth_key(identity), &[b"keys\0", body], tag)
}

/// The Ed25519 key that signs the config of a format-2 repository. Its
/// secret is in the keyring (restore keys only); backup keys pin its public
/// half, so neither a backup host nor the store's credentials can forge a
/// config that anyone accepts.
#[derive(Clone)]
pub(crate) struct ConfigSigner(ed25519_dalek::SigningKey);

impl ConfigSigner {
    pub(crate) fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::fill(&mut *seed);
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A signer derived from another secret (`lifeboat upgrade` derives it
    /// from the data identity, so an interrupted upgrade run again signs
    /// with the same key).
    pub(crate) fn derived_from(secret: &[u8]) -> Self {
        let seed = Zeroizing::new(hmac(secret, b"lifeboat config-signing v2"));
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s.trim(), &mut *seed).ok()?;
        Some(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub(crate) fn secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    /// The public key, as 64 hex digits.
    pub(crate) fn verify_key_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    pub(crate) fn sign_hex(&self, message: &[u8]) -> String {
        use ed25519_dalek::Signer;
        hex::encode(self.0.sign(message).to_bytes())
    }
}

/// Whether `signature_hex` is an Ed25519 signature of `message` by
/// `verify_key_hex` (strict verification: no malleable signatures).
pub(crate) fn verify_signature(verify_key_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let mut key = [0u8; 32];
    let mut sig = [0u8; 64];
    if hex::decode_to_slice(verify_key_hex, &mut key).is_err()
        || hex::decode_to_slice(signature_hex, &mut sig).is_err()
        // One spelling only: lowercase, as written (no other bytes verify).
        || hex::encode(key) != verify_key_hex
        || hex::encode(sig) != signature_hex
    {
        return false;
    }
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

/// Encrypt `plaintext` to one age recipient (binary age format).
pub(crate) fn encrypt(recipient: &dyn age::Recipient, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    // Encrypting to a valid recipient into memory cannot fail.
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient))
        .expect("a single valid recipient is always accepted");
    let mut w = enc
        .wrap_output(&mut out)
        .expect("writing to a Vec cannot fail");
    w.write_all(plaintext)
        .expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail");
    out
}

/// Why an age file could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// None of our identities can decrypt it.
    NoMatchingKey,
    /// It is not a valid age file, or its authentication failed.
    Corrupt(String),
}

impl OpenError {
    pub(crate) fn into_error(self, what: impl Into<String>) -> Error {
        match self {
            OpenError::NoMatchingKey => Error::WrongKey {
                detail: format!("{} is not encrypted to any key given", what.into()),
            },
            OpenError::Corrupt(detail) => Error::damaged(what, detail),
        }
    }
}

/// Decrypt an age file with any of `identities`.
pub(crate) fn decrypt(
    identities: &[&dyn age::Identity],
    ciphertext: &[u8],
    limit: usize,
) -> std::result::Result<Vec<u8>, OpenError> {
    let dec = age::Decryptor::new_buffered(ciphertext)
        .map_err(|e| OpenError::Corrupt(format!("not a valid age file: {e}")))?;
    let reader = dec
        .decrypt(identities.iter().copied())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => OpenError::NoMatchingKey,
            other => OpenError::Corrupt(format!("decryption failed: {other}")),
        })?;
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| OpenError::Corrupt(format!("decryption failed: {e}")))?;
    if out.len() > limit {
        return Err(OpenError::Corrupt(format!(
            "plaintext larger than the {limit} bytes expected"
        )));
    }
    Ok(out)
}

/// zstd, then age: how every blob and metadata file is stored.
pub(crate) fn seal(recipient: &dyn age::Recipient, level: i32, plaintext: &[u8]) -> Vec<u8> {
    let compressed = compress(level, plaintext)
        .or_else(|_| zstd::bulk::compress(plaintext, level))
        .expect("zstd compression into memory");
    encrypt(recipient, &compressed)
}

thread_local! {
    /// One zstd context per thread and level, reused for every blob (the
    /// frames are the same as a fresh context's; setting one up per blob
    /// cost about 1% of a backup).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(level: i32, plaintext: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        match cell.as_mut() {
            Some((l, c)) if *l == level => c.compress(plaintext),
            _ => {
                let mut c = zstd::bulk::Compressor::new(level)?;
                let out = c.compress(plaintext);
                *cell = Some((level, c));
                out
            }
        }
    })
}

/// age, then zstd: the inverse of [`seal`]. `limit` bounds the plaintext.
pub(crate) fn open(
    identities: &[&dyn age::Identity],
    ciphertext: &[u8],
    limit: usize,
) -> std::result::Result<Vec<u8>, OpenError> {
    // A zstd frame is never much larger than its input plus a small header.
    let compressed = decrypt(identities, ciphertext, limit + limit / 64 + 1024)?;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(compressed.as_slice())
        .map_err(|e| OpenError::Corrupt(format!("zstd: {e}")))?
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| OpenError::Corrupt(format!("zstd: {e}")))?;
    if out.len() > limit {
        return Err(OpenError::Corrupt(format!(
            "decompressed size exceeds the {limit} bytes expected"
        )));
    }
    Ok(out)
}

/// Parse an `age1...` public key.
pub(crate) fn parse_recipient(s: &str) -> Result<x25519::Recipient> {
    s.trim().parse().map_err(|e| {
        Error::Invalid(format!(
            "{s:?} is not an age X25519 public key (age1...): {e}"
        ))
    })
}

pub(crate) fn parse_identity(s: &SecretString, what: &str) -> Result<x25519::Identity> {
    s.expose_secret()
        .trim()
        .parse()
        .map_err(|_| Error::KeyFile {
            path: what.to_string(),
            detail: "not an age X25519 secret key (AGE-SECRET-KEY-1...)".into(),
        })
}

/// Create `dir` (and its parents) readable by its owner only (mode 0700);
/// an existing `dir` is made 0700. For folders that hold secrets or
/// plaintext a user asked for (restored env files, caches, git mirrors).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    b.create(dir)
}

/// Create a file readable by its owner only (mode 0600). Refuses to
/// overwrite: a key file written over is a repository lost.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Invalid(format!(
                "{} already exists; lifeboat never overwrites a key file (move it away first)",
                path.display()
            ))
        } else {
            Error::io(format!("creating {}", path.display()), e)
        }
    })?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Error::KeyFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
}

/// What a backup host holds: it can add snapshots and dedup against what is
/// stored, and read metadata (names, sizes, blob ids), but not one byte of
/// backed-up data.
#[derive(Clone)]
pub struct BackupKey {
    pub(crate) repository: String,
    pub(crate) dedup: DedupKey,
    pub(crate) metadata_identity: x25519::Identity,
    /// What the key was issued for (format 2); `None` for a format-1 key.
    pub(crate) pin: Option<KeyPin>,
}

/// What a format-2 backup key accepts: the one data recipient it may seal
/// to and the key that must have signed the config. A config that differs
/// (a recipient slipped in, a re-signed or replaced config) is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPin {
    pub data_recipient: String,
    pub verify_key: String,
    /// The repository's format when the key was issued: a config of an
    /// older format (put back by whoever can write the store) is refused,
    /// since an older format shows the backup key more (format 2: objects'
    /// hashes and metadata). 2 for key files without the line.
    pub min_format: u32,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupKey(repository {})", self.repository)
    }
}

const BACKUP_KEY_HEADER: &str = "# lifeboat backup key";

impl BackupKey {
    /// The id of the repository this key belongs to.
    pub fn repository_id(&self) -> &str {
        &self.repository
    }

    /// The key file's text (see docs/FORMAT.md, "Backup key file").
    pub fn to_file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{BACKUP_KEY_HEADER}: lets this host add snapshots to the repository; it cannot read them.\n\
             # Keep it private (mode 0600).\n\
             repository: {}\n\
             dedup-secret: {}\n\
             metadata-identity: {}\n{}",
            self.repository,
            self.dedup.secret_hex().as_str(),
            self.metadata_identity.to_string().expose_secret(),
            match &self.pin {
                Some(p) if p.min_format > 2 => format!(
                    "data-recipient: {}\nconfig-verify-key: {}\nminimum-format: {}\n",
                    p.data_recipient, p.verify_key, p.min_format
                ),
                Some(p) => format!(
                    "data-recipient: {}\nconfig-verify-key: {}\n",
                    p.data_recipient, p.verify_key
                ),
                None => String::new(),
            }
        ))
    }

    /// True for a key issued before format 2 (it pins nothing).
    pub fn is_format_1(&self) -> bool {
        self.pin.is_none()
    }

    /// Parse a backup key file's text.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let bad = |detail: &str| Error::KeyFile {
            path: what.to_string(),
            detail: detail.to_string(),
        };
        if text.trim_start().starts_with("AGE-SECRET-KEY-")
            || text.contains("\nAGE-SECRET-KEY-")
            || text.starts_with("age-encryption.org/")
            || text.starts_with("-----BEGIN AGE")
        {
            return Err(bad(
                "this is a restore key (an age identity), not a backup key; pass it as --restore-key-file",
            ));
        }
        let (mut repo, mut secret, mut meta) = (None, None, None);
        let (mut data_recipient, mut verify_key, mut min_format) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some(("repository", v)) => repo = Some(v.trim().to_string()),
                Some(("dedup-secret", v)) => secret = Some(v.trim().to_string()),
                Some(("metadata-identity", v)) => {
                    meta = Some(SecretString::from(v.trim().to_string()))
                }
                Some(("data-recipient", v)) => data_recipient = Some(v.trim().to_string()),
                Some(("config-verify-key", v)) => verify_key = Some(v.trim().to_string()),
                Some(("minimum-format", v)) => {
                    min_format = Some(
                        v.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n >= 2)
                            .ok_or_else(|| bad("malformed `minimum-format:` line"))?,
                    )
                }
                _ => return Err(bad("unexpected line (not a lifeboat backup key file)")),
            }
        }
        let repository = repo.ok_or_else(|| bad("missing `repository:` line"))?;
        let dedup = secret
            .as_deref()
            .and_then(DedupKey::from_hex)
            .ok_or_else(|| bad("missing or malformed `dedup-secret:` line"))?;
        let meta = meta.ok_or_else(|| bad("missing `metadata-identity:` line"))?;
        let pin = match (data_recipient, verify_key) {
            (None, None) if min_format.is_none() => None,
            (Some(data_recipient), Some(verify_key)) => {
                parse_recipient(&data_recipient)
                    .map_err(|_| bad("malformed `data-recipient:` line"))?;
                if verify_key.len() != 64 || hex::decode(&verify_key).is_err() {
                    return Err(bad("malformed `config-verify-key:` line"));
                }
                Some(KeyPin {
                    data_recipient,
                    verify_key,
                    min_format: min_format.unwrap_or(2),
                })
            }
            (None, None) if min_format.is_some() => {
                return Err(bad(
                    "`minimum-format:` without the pin lines; the file was cut or edited",
                ))
            }
            _ => {
                return Err(bad(
                    "`data-recipient:` and `config-verify-key:` come together; the file was cut or edited",
                ))
            }
        };
        Ok(Self {
            repository,
            dedup,
            metadata_identity: parse_identity(&meta, what)?,
            pin,
        })
    }

    /// Read a backup key file.
    pub fn load(path: &Path) -> Result<Self> {
        let raw = read_key_file(path)?;
        let text = std::str::from_utf8(&raw).map_err(|_| Error::KeyFile {
            path: path.display().to_string(),
            detail: "not a text file".into(),
        })?;
        Self::parse(text, &path.display().to_string())
    }
}

/// The secrets stored in each `keys/` file, encrypted to one restore key.
#[derive(Serialize, Deserialize)]
pub(crate) struct Keyring {
    pub version: u32,
    pub repository: String,
    pub dedup_secret: String,
    pub metadata_identity: String,
    /// Newest first; blobs name the one they were encrypted to by recipient.
    pub data_identities: Vec<String>,
    /// Format 2: the Ed25519 secret (64 hex digits) that signs the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_signing_key: Option<String>,
}

impl Drop for Keyring {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.dedup_secret.zeroize();
        self.metadata_identity.zeroize();
        for s in &mut self.data_identities {
            s.zeroize();
        }
        if let Some(s) = &mut self.config_signing_key {
            s.zeroize();
        }
    }
}

/// A restore key: one or more age identities, read from an age identity
/// file that may itself be passphrase-protected (as `age -p` writes it).
pub struct RestoreKey {
    pub(crate) identities: Vec<x25519::Identity>,
}

impl std::fmt::Debug for RestoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RestoreKey({} identities)", self.identities.len())
    }
}

impl RestoreKey {
    /// A new random restore key.
    pub fn generate() -> Self {
        Self {
            identities: vec![x25519::Identity::generate()],
        }
    }

    /// Add the identities of `other` (several key files given at once).
    pub fn merge(&mut self, other: RestoreKey) {
        for id in other.identities {
            let public = id.to_public().to_string();
            if !self
                .identities
                .iter()
                .any(|i| i.to_public().to_string() == public)
            {
                self.identities.push(id);
            }
        }
    }

    /// The public keys (`age1...`) of this key.
    pub fn recipients(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| i.to_public().to_string())
            .collect()
    }

    /// The text of an age identity file holding this key, optionally
    /// encrypted with a passphrase (scrypt, armored), as `age -p` would.
    pub fn to_file_bytes(&self, passphrase: Option<&SecretString>) -> Zeroizing<Vec<u8>> {
        let mut text = String::from(
            "# lifeboat restore key: reads every backup in the repository. Keep it offline and private.\n",
        );
        for id in &self.identities {
            text.push_str(&format!("# public key: {}\n", id.to_public()));
            text.push_str(id.to_string().expose_secret());
            text.push('\n');
        }
        let text = Zeroizing::new(text);
        match passphrase {
            None => Zeroizing::new(text.as_bytes().to_vec()),
            Some(p) => {
                let recipient = age::scrypt::Recipient::new(p.clone());
                let mut out = Vec::new();
                let armored = age::armor::ArmoredWriter::wrap_output(
                    &mut out,
                    age::armor::Format::AsciiArmor,
                )
                .expect("writing to a Vec cannot fail");
                let enc = age::Encryptor::with_recipients(std::iter::once(
                    &recipient as &dyn age::Recipient,
                ))
                .expect("a passphrase recipient is always accepted");
                let mut w = enc
                    .wrap_output(armored)
                    .expect("writing to a Vec cannot fail");
                w.write_all(text.as_bytes())
                    .expect("writing to a Vec cannot fail");
                w.finish()
                    .and_then(|a| a.finish())
                    .expect("writing to a Vec cannot fail");
                Zeroizing::new(out)
            }
        }
    }

    /// True when the file at `path` is passphrase-protected.
    pub fn file_needs_passphrase(path: &Path) -> Result<bool> {
        let raw = read_key_file(path)?;
        Ok(is_age_file(&raw))
    }

    /// Read a restore key file; `passphrase` is used only if it is protected.
    pub fn load(path: &Path, passphrase: Option<&SecretString>) -> Result<Self> {
        let what = path.display().to_string();
        let raw = read_key_file(path)?;
        let text: Zeroizing<Vec<u8>> = if is_age_file(&raw) {
            let Some(p) = passphrase else {
                return Err(Error::KeyFile {
                    path: what,
                    detail: "the restore key is passphrase-protected; set LIFEBOAT_RESTORE_KEY_PASSPHRASE or run on a terminal".into(),
                });
            };
            let reader = age::armor::ArmoredReader::new(raw.as_slice());
            let dec = age::Decryptor::new(reader).map_err(|e| Error::KeyFile {
                path: what.clone(),
                detail: format!("not a valid encrypted key file: {e}"),
            })?;
            let identity = age::scrypt::Identity::new(p.clone());
            let mut r = dec
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .map_err(|_| Error::WrongKey {
                    detail: format!("the passphrase does not unlock {what}"),
                })?;
            let mut out = Zeroizing::new(Vec::new());
            r.read_to_end(&mut out).map_err(|e| Error::KeyFile {
                path: what.clone(),
                detail: e.to_string(),
            })?;
            out
        } else {
            raw
        };
        let text = std::str::from_utf8(&text).map_err(|_| Error::KeyFile {
            path: what.clone(),
            detail: "not a text file".into(),
        })?;
        Self::parse(text, &what)
    }

    /// Parse the text of an (unprotected) age identity file.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let mut identities = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("repository:") || line.starts_with("dedup-secret:") {
                return Err(Error::KeyFile {
                    path: what.to_string(),
                    detail: "this is a backup key; reading backups needs the restore key written by `lifeboat init`".into(),
                });
            }
            identities.push(parse_identity(&SecretString::from(line.to_string()), what)?);
        }
        if identities.is_empty() {
            return Err(Error::KeyFile {
                path: what.to_string(),
                detail: "no AGE-SECRET-KEY-1... line found".into(),
            });
        }
        Ok(Self { identities })
    }
}

fn is_age_file(raw: &[u8]) -> bool {
    raw.starts_with(b"age-encryption.org/")
        || raw.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let id = x25519::Identity::generate();
        let other = x25519::Identity::generate();
        let data = b"hello hello hello hello".repeat(100);
        let ct = seal(&id.to_public(), 3, &data);
        assert_ne!(&ct[..], &data[..]);
        let back = open(&[&id], &ct, data.len()).unwrap();
        assert_eq!(back, data);
        assert!(matches!(
            open(&[&other], &ct, data.len()),
            Err(OpenError::NoMatchingKey)
        ));
        assert!(matches!(open(&[&id], &ct, 10), Err(OpenError::Corrupt(_))));
        let mut bad = ct.clone();
        let n = bad.len() - 5;
        bad[n] ^= 1;
        assert!(matches!(
            open(&[&id], &bad, data.len()),
            Err(OpenError::Corrupt(_))
        ));
    }

    #[test]
    fn a_reused_zstd_context_writes_the_frames_a_fresh_one_does() {
        let a: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let b = b"(1,'x')\n".repeat(5000);
        for level in [1, 3, 1] {
            for data in [&a[..], &b[..], &a[..10]] {
                assert_eq!(
                    compress(level, data).unwrap(),
                    zstd::bulk::compress(data, level).unwrap()
                );
            }
        }
    }

    #[test]
    fn tags_bind_the_key_the_kind_and_every_byte() {
        let a = DedupKey::generate();
        let b = DedupKey::generate();
        let tag = a.file_tag("snapshots", b"{}");
        assert!(a.check_file_tag("snapshots", b"{}", &tag));
        assert!(!a.check_file_tag("index", b"{}", &tag), "another kind");
        assert!(!a.check_file_tag("snapshots", b"{ }", &tag), "another body");
        assert!(
            !b.check_file_tag("snapshots", b"{}", &tag),
            "another repository"
        );
        let line = with_tag_line(&tag, b"{}");
        assert_eq!(line.len(), TAG_LINE_LEN + 2);
        let (t, body) = split_tag_line(&line).unwrap();
        assert_eq!((t, body), (tag, &b"{}"[..]));
        assert!(
            split_tag_line(b"{\"version\":1}").is_none(),
            "format 1 JSON"
        );
        assert!(split_tag_line(&line[1..]).is_none());
    }

    #[test]
    fn keyring_auth_needs_the_identity_and_signatures_the_signer() {
        let r = x25519::Identity::generate();
        let other = x25519::Identity::generate();
        assert_eq!(*keyring_auth_key(&r), *keyring_auth_key(&r));
        assert_ne!(*keyring_auth_key(&r), *keyring_auth_key(&other));
        let signer = ConfigSigner::generate();
        let sig = signer.sign_hex(b"config");
        assert!(verify_signature(&signer.verify_key_hex(), b"config", &sig));
        assert!(!verify_signature(
            &signer.verify_key_hex(),
            b"config!",
            &sig
        ));
        let forger = ConfigSigner::generate();
        assert!(!verify_signature(
            &signer.verify_key_hex(),
            b"config",
            &forger.sign_hex(b"config")
        ));
        assert!(!verify_signature("00", b"config", &sig));
        assert!(
            !verify_signature(&signer.verify_key_hex(), b"config", &sig.to_uppercase()),
            "one spelling of the signature only"
        );
        let again = ConfigSigner::from_hex(&signer.secret_hex()).unwrap();
        assert_eq!(again.verify_key_hex(), signer.verify_key_hex());
        assert_eq!(
            ConfigSigner::derived_from(b"s").verify_key_hex(),
            ConfigSigner::derived_from(b"s").verify_key_hex()
        );
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = DedupKey::generate();
        let b = DedupKey::generate();
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, crate::id::sha256(b"x"));
    }

    #[test]
    fn backup_key_text_round_trip_and_confusions() {
        let k = BackupKey {
            repository: "r1".into(),
            dedup: DedupKey::generate(),
            metadata_identity: x25519::Identity::generate(),
            pin: Some(KeyPin {
                data_recipient: x25519::Identity::generate().to_public().to_string(),
                verify_key: ConfigSigner::generate().verify_key_hex(),
                min_format: 3,
            }),
        };
        let text = k.to_file_text();
        assert!(text.contains("minimum-format: 3\n"));
        let back = BackupKey::parse(&text, "b.key").unwrap();
        assert_eq!(back.repository, "r1");
        assert_eq!(back.dedup.blob_id(b"a"), k.dedup.blob_id(b"a"));
        assert_eq!(back.pin, k.pin);
        // A format-2 key file (no minimum-format line) pins format 2.
        let v2: String = text
            .lines()
            .filter(|l| !l.starts_with("minimum-format"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            BackupKey::parse(&v2, "v2.key")
                .unwrap()
                .pin
                .unwrap()
                .min_format,
            2
        );
        // A format-1 key file (no pin lines) still parses, as format 1.
        let v1: String = text
            .lines()
            .filter(|l| {
                !l.starts_with("data-recipient")
                    && !l.starts_with("config-verify-key")
                    && !l.starts_with("minimum-format")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(BackupKey::parse(&v1, "v1.key").unwrap().is_format_1());
        // Half a pin is an edited file.
        let cut: String = text
            .lines()
            .filter(|l| !l.starts_with("config-verify-key"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(BackupKey::parse(&cut, "cut.key").is_err());
        let rk = RestoreKey::generate();
        let rtext = String::from_utf8(rk.to_file_bytes(None).to_vec()).unwrap();
        let err = BackupKey::parse(&rtext, "r.key").unwrap_err().to_string();
        assert!(err.contains("restore key"), "{err}");
        let err = RestoreKey::parse(&text, "b.key").unwrap_err().to_string();
        assert!(err.contains("backup key"), "{err}");
    }

    #[test]
    fn passphrase_protected_restore_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.key");
        let rk = RestoreKey::generate();
        let pass = SecretString::from("correct horse".to_string());
        write_secret_file(&path, &rk.to_file_bytes(Some(&pass))).unwrap();
        assert!(RestoreKey::file_needs_passphrase(&path).unwrap());
        let loaded = RestoreKey::load(&path, Some(&pass)).unwrap();
        assert_eq!(loaded.recipients(), rk.recipients());
        let wrong = SecretString::from("nope".to_string());
        assert!(matches!(
            RestoreKey::load(&path, Some(&wrong)),
            Err(Error::WrongKey { .. })
        ));
        assert!(RestoreKey::load(&path, None).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            write_secret_file(&path, b"x").is_err(),
            "must not overwrite"
        );
    }
}
