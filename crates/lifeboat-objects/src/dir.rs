//! A local upload directory as a source: every regular file under the
//! root, keyed by its path relative to the root with `/` separators.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::meta::Listed;

/// A file's change tag: it changes whenever the content may have (as
/// restic decides a file is unchanged: same size, mtime, ctime and inode).
fn change_tag(meta: &fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!(
            "m{}.{}-c{}.{}-i{}",
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.ino()
        )
    }
    #[cfg(not(unix))]
    {
        let m = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("m{m}")
    }
}

pub(crate) fn mode(meta: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Permission bits only: setuid, setgid and sticky are never
        // recorded (and a restore masks them off anyway).
        Some(meta.permissions().mode() & lifeboat_paths::MODE_MASK)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

pub(crate) fn modified(meta: &fs::Metadata) -> Option<String> {
    meta.modified()
        .ok()
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
}

/// Every regular file under `root`, sorted by key, and the paths skipped
/// (symbolic links, special files, names that are not UTF-8).
pub(crate) fn list(root: &Path) -> Result<(Vec<Listed>, Vec<String>)> {
    let mut walk = Walk::new(root)?;
    let out = walk.by_ref().collect::<Result<Vec<_>>>()?;
    Ok((out, walk.skipped))
}

/// One directory being walked: its path, its key prefix, and its entries
/// not yet visited, in key order (`true`: a directory).
type Frame = (PathBuf, String, std::vec::IntoIter<(String, bool)>);

/// The regular files under a root in key order, one directory's entries
/// in memory at a time: siblings are sorted with a `/` after directory
/// names, so that a depth-first walk yields keys in byte order, as a
/// bucket listing does (`a.txt` before `a/b`).
pub(crate) struct Walk {
    stack: Vec<Frame>,
    /// Paths skipped (links, special files, names that are not UTF-8 or
    /// hold a control character), for the operator's log.
    pub skipped: Vec<String>,
}

impl Walk {
    pub fn new(root: &Path) -> Result<Self> {
        let meta = fs::metadata(root).map_err(|e| Error::read(root, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is not a directory: [objects] path must name the upload folder",
                root.display()
            )));
        }
        let mut walk = Walk {
            stack: Vec::new(),
            skipped: Vec::new(),
        };
        walk.enter(root.to_path_buf(), String::new())?;
        Ok(walk)
    }

    fn enter(&mut self, dir: PathBuf, prefix: String) -> Result<()> {
        let entries = fs::read_dir(&dir).map_err(|e| Error::read(&dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::read(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                self.skipped
                    .push(format!("{} (name is not UTF-8)", entry.path().display()));
                continue;
            };
            // A newline or other control character in a name would make the
            // whole backup fail (item names are one line) and cannot be
            // restored into a directory anyway: skip it, say so, go on.
            if name.chars().any(char::is_control) {
                self.skipped.push(format!(
                    "{} (name holds a control character)",
                    entry.path().display().to_string().escape_debug()
                ));
                continue;
            }
            let ft = entry
                .file_type()
                .map_err(|e| Error::read(entry.path(), e))?;
            if ft.is_dir() {
                names.push((format!("{name}/"), true));
            } else if ft.is_file() {
                names.push((name, false));
            } else {
                self.skipped
                    .push(format!("{} (not a regular file)", entry.path().display()));
            }
        }
        names.sort_unstable();
        self.stack.push((dir, prefix, names.into_iter()));
        Ok(())
    }
}

impl Iterator for Walk {
    type Item = Result<Listed>;

    fn next(&mut self) -> Option<Result<Listed>> {
        loop {
            let (dir, prefix, entries) = self.stack.last_mut()?;
            let Some((name, is_dir)) = entries.next() else {
                self.stack.pop();
                continue;
            };
            let key = format!("{prefix}{name}");
            if is_dir {
                let path = dir.join(name.trim_end_matches('/'));
                if let Err(e) = self.enter(path, key) {
                    return Some(Err(e));
                }
                continue;
            }
            let path = dir.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => m,
                // Gone or replaced since the directory was read: as if
                // it had not been there.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Some(Err(Error::read(&path, e))),
            };
            return Some(Ok(Listed {
                key,
                size: meta.len(),
                etag: change_tag(&meta),
                last_modified: modified(&meta),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_sorted_with_relative_keys() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/x y.pdf"), b"123").unwrap();
        fs::write(dir.path().join("a"), b"").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("bad\nname.txt"), b"x").unwrap();
        let (files, skipped) = list(dir.path()).unwrap();
        let keys: Vec<_> = files.iter().map(|f| (f.key.as_str(), f.size)).collect();
        assert_eq!(keys, [("a", 0), ("b/c/x y.pdf", 3)]);
        #[cfg(unix)]
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped.iter().any(|s| s.contains("control character")));
    }

    #[test]
    fn walks_in_the_byte_order_of_keys() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.txt", "a/b", "a-b", "a/c/d", "a0", "b", "a/b.c"] {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        let keys: Vec<String> = Walk::new(dir.path())
            .unwrap()
            .map(|l| l.unwrap().key)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 7);
    }
}
