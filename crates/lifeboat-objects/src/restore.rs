//! Restoring objects into a directory or a bucket, each verified by
//! SHA-256 against the manifest (and, in a bucket, by the MD5 ETag the
//! bucket answers for what it stored).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lifeboat_store::{
    Classify, ErrorClass, FullAccess, Index, ManifestItem, NoProgress, ProgressBars, Repository,
};
use serde::Serialize;

use crate::bucket::{Bucket, Upload};
use crate::error::{Error, Result};
use crate::meta::ObjectMeta;
use crate::SOURCE;

/// Where to restore to.
pub enum Target {
    /// Files under this directory (created if absent).
    Dir(PathBuf),
    /// Objects in this bucket, under its prefix.
    Bucket(Bucket),
}

/// Name of the file a directory restore writes the objects' metadata to
/// (one JSON object per line: key, size, sha256 and the item's meta).
pub const METADATA_FILE: &str = ".lifeboat-objects.jsonl";

/// Which objects, and how.
#[derive(Debug, Clone, Default)]
pub struct ObjectsRestoreOptions {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Only this key.
    pub key: Option<String>,
    /// Write into a non-empty directory or bucket prefix.
    pub force: bool,
    /// Parallel objects (default: the bucket's connections, or 4).
    pub threads: Option<usize>,
    /// Multipart part size for bucket targets (default 16 MiB).
    pub part_size: Option<usize>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectsRestoreReport {
    /// Objects restored and verified.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// `key: why` for each object that could not be restored (damaged,
    /// or the target failed).
    pub failed: Vec<String>,
    /// `key: why` for each object refused as unsafe to write there (a key
    /// that is no safe path in a directory, a link in the way).
    pub refused: Vec<String>,
}

impl ObjectsRestoreReport {
    /// Whether every selected object was restored and verified.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.refused.is_empty()
    }
}

/// The objects items of a manifest that `opts` selects.
pub fn select(items: Vec<ManifestItem>, opts: &ObjectsRestoreOptions) -> Vec<ManifestItem> {
    items
        .into_iter()
        .filter(|i| i.source == SOURCE)
        .filter(|i| opts.key.as_ref().is_none_or(|k| &i.name == k))
        .filter(|i| opts.prefix.as_ref().is_none_or(|p| i.name.starts_with(p)))
        .collect()
}

/// Where `key` goes under `root`, or why it cannot be written there.
/// Keys are untrusted: nothing may land outside `root`. A key is a
/// `/`-separated relative path checked by [`lifeboat_paths::relative`]
/// (no `..`, `.`, empty segment, absolute path, NUL, backslash, control
/// character, segment over 255 bytes); a trailing `/` marks a directory.
pub fn path_for_key(root: &Path, key: &str) -> std::result::Result<PathBuf, String> {
    let rel = key.strip_suffix('/').unwrap_or(key);
    if key == METADATA_FILE {
        return Err(format!(
            "the key is the name of the metadata file {METADATA_FILE}"
        ));
    }
    let rel = lifeboat_paths::relative(rel).map_err(|e| format!("the key {}", e.why))?;
    Ok(root.join(rel))
}

/// The first key of `items` that appears twice (two objects that would be
/// written to one file; a forged manifest can hold them).
fn duplicate_key(items: &[ManifestItem]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .map(|i| i.name.as_str())
        .find(|k| !seen.insert(*k))
}

/// Restore `items` (objects items of one snapshot) into `target`. Objects
/// that fail are listed in the report; the others are still restored.
pub fn restore(
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    target: &Target,
    opts: &ObjectsRestoreOptions,
    bars: &dyn ProgressBars,
) -> Result<ObjectsRestoreReport> {
    if let Some(k) = duplicate_key(items) {
        return Err(Error::Refused(format!(
            "the snapshot holds two objects with the key {}: they would be written to one \
             file; refusing this restore (was the snapshot forged?)",
            lifeboat_paths::shown(k)
        )));
    }
    match target {
        Target::Dir(root) => {
            if !opts.force
                && std::fs::read_dir(root)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false)
            {
                return Err(Error::Target(format!(
                    "{} is not empty: restore into a new directory, or pass --force to write into it",
                    root.display()
                )));
            }
            std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        }
        Target::Bucket(b) => {
            if !opts.force && !b.is_empty()? {
                return Err(Error::Target(format!(
                    "{} already holds objects: restore into an empty bucket or prefix, or pass \
                     --force to write into it",
                    b.location()
                )));
            }
        }
    }
    let threads = opts
        .threads
        .unwrap_or(match target {
            Target::Bucket(b) => b.connections,
            Target::Dir(_) => 4,
        })
        .clamp(1, 64);
    let bar = bars.bytes("restoring objects");
    bar.set_length(items.iter().map(|i| i.size).sum());
    let report = Mutex::new(ObjectsRestoreReport::default());
    // Only objects restored (checked) get a line in the metadata file.
    let restored = Mutex::new(std::collections::HashSet::new());
    let (tx, rx) = crossbeam_channel::bounded::<&ManifestItem>(threads * 2);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let rx = rx.clone();
            let report = &report;
            let restored = &restored;
            let bar = &*bar;
            s.spawn(move || {
                for item in rx {
                    let r = restore_one(repo, index, item, target, opts);
                    let Ok(mut rep) = report.lock() else { return };
                    match r {
                        Ok(()) => {
                            rep.objects += 1;
                            rep.bytes += item.size;
                            if let Ok(mut r) = restored.lock() {
                                r.insert(item.name.as_str());
                            }
                        }
                        Err(e) => {
                            let list = match e.class() {
                                ErrorClass::Refused => &mut rep.refused,
                                _ => &mut rep.failed,
                            };
                            // A key with control characters is shown
                            // escaped: it must not drive the terminal.
                            let name = if item.name.chars().any(char::is_control) {
                                lifeboat_paths::shown(&item.name)
                            } else {
                                item.name.clone()
                            };
                            list.push(format!("{name}: {e}"));
                        }
                    }
                    bar.inc(item.size);
                }
            });
        }
        for item in items {
            if tx.send(item).is_err() {
                break;
            }
        }
        drop(tx);
    });
    bar.finish();
    let mut report = report
        .into_inner()
        .map_err(|_| Error::Internal("a restore thread panicked".into()))?;
    report.failed.sort();
    report.refused.sort();
    if let Target::Dir(root) = target {
        let restored = restored
            .into_inner()
            .map_err(|_| Error::Internal("a restore thread panicked".into()))?;
        let done: Vec<&ManifestItem> = items
            .iter()
            .filter(|i| restored.contains(i.name.as_str()))
            .collect();
        write_metadata_file(root, &done)?;
    }
    Ok(report)
}

fn restore_one(
    repo: &Repository<FullAccess>,
    index: &Index,
    item: &ManifestItem,
    target: &Target,
    opts: &ObjectsRestoreOptions,
) -> Result<()> {
    let meta: ObjectMeta = serde_json::from_value(item.meta.clone()).unwrap_or_default();
    match target {
        Target::Dir(root) => {
            let path = path_for_key(root, &item.name).map_err(|why| {
                Error::Refused(format!(
                    "cannot be written to a directory: {why}; restore into a bucket instead"
                ))
            })?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let no_follow = |e: std::io::Error| Error::io(root, e);
            if item.name.ends_with('/') && item.size == 0 {
                return lifeboat_paths::create_dirs(root, rel)
                    .map(drop)
                    .map_err(no_follow);
            }
            // Every directory on the way is created here or checked to be a
            // real directory: a link planted in the target is never followed.
            let parent = match rel.parent() {
                Some(p) => lifeboat_paths::create_dirs(root, p).map_err(no_follow)?,
                None => root.clone(),
            };
            let mut tmp = lifeboat_paths::temp_in(&parent).map_err(|e| Error::io(&parent, e))?;
            repo.restore_item(index, item, tmp.as_file_mut(), &NoProgress)?;
            tmp.as_file_mut()
                .flush()
                .map_err(|e| Error::io(tmp.path(), e))?;
            if let Some(t) = meta
                .last_modified
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            {
                let t: std::time::SystemTime = t.with_timezone(&chrono::Utc).into();
                tmp.as_file()
                    .set_modified(t)
                    .map_err(|e| Error::io(&path, e))?;
            }
            // The stored mode loses setuid, setgid, sticky and write for other (mask 0o775):
            // a forged snapshot must not hand out privileges. Renamed into
            // place: a link at the name is replaced, not written through;
            // without --force an existing file (or a second key that maps to
            // the same file, e.g. by case folding) is an error.
            lifeboat_paths::publish(tmp, &path, opts.force, meta.mode)
                .map_err(|e| Error::io(&path, e))?;
            Ok(())
        }
        Target::Bucket(b) => {
            let part = opts.part_size.unwrap_or(16 << 20).max(5 << 20);
            let mut up = Upload::new(b, b.target_key(&item.name), meta.headers, part);
            let mut w = UploadWriter(&mut up);
            // restore_item checks the SHA-256 before returning; a single-part
            // object is only sent in `finish`, and a multipart one is only
            // completed there: a bad object never becomes visible.
            repo.restore_item(index, item, &mut w, &NoProgress)?;
            up.finish()
        }
    }
}

struct UploadWriter<'a, 'b>(&'a mut Upload<'b>);

impl Write for UploadWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_metadata_file(root: &Path, items: &[&ManifestItem]) -> Result<()> {
    let path = root.join(METADATA_FILE);
    let mut out = Vec::new();
    for i in items {
        let line = serde_json::json!({
            "key": i.name, "size": i.size, "sha256": i.sha256, "meta": i.meta,
        });
        serde_json::to_writer(&mut out, &line).expect("metadata serializes");
        out.push(b'\n');
    }
    // Replaced by rename, never written through a planted link.
    lifeboat_paths::write_file(&path, &out, true, Some(0o644)).map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let root = Path::new("/r");
        assert_eq!(
            path_for_key(root, "a/b c/ü.pdf").unwrap(),
            Path::new("/r/a/b c/ü.pdf")
        );
        assert_eq!(path_for_key(root, "dir/").unwrap(), Path::new("/r/dir"));
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "",
            "/",
            METADATA_FILE,
            "a\\b",
            "a/./b",
            "a\0b",
            "a/\x1b[2J",
            &"x".repeat(256),
        ] {
            assert!(path_for_key(root, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn two_objects_for_one_file_are_found() {
        let item = |name: &str| ManifestItem {
            name: name.into(),
            source: SOURCE.into(),
            kind: "object".into(),
            size: 0,
            sha256: String::new(),
            blobs: vec![],
            meta: serde_json::Value::Null,
            info: None,
        };
        assert_eq!(duplicate_key(&[item("a"), item("b")]), None);
        assert_eq!(duplicate_key(&[item("d"), item("a"), item("d")]), Some("d"));
        // A file `d` and a directory marker `d/` are two objects: one of
        // them fails on its own (a file and a directory of one name).
        assert_eq!(duplicate_key(&[item("d/"), item("d")]), None);
    }
}
