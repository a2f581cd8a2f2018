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
    let meta = fs::metadata(root).map_err(|e| Error::read(root, e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a directory: [objects] path must name the upload folder",
            root.display()
        )));
    }
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Error::read(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::read(&dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                skipped.push(format!("{} (name is not UTF-8)", path.display()));
                continue;
            };
            // A newline or other control character in a name would make the
            // whole backup fail (item names are one line) and cannot be
            // restored into a directory anyway: skip it, say so, go on.
            if name.chars().any(char::is_control) {
                skipped.push(format!(
                    "{} (name holds a control character)",
                    path.display().to_string().escape_debug()
                ));
                continue;
            }
            let key = format!("{prefix}{name}");
            let ft = entry.file_type().map_err(|e| Error::read(&path, e))?;
            if ft.is_dir() {
                stack.push((path, format!("{key}/")));
            } else if ft.is_file() {
                let meta = entry.metadata().map_err(|e| Error::read(&path, e))?;
                out.push(Listed {
                    key,
                    size: meta.len(),
                    etag: change_tag(&meta),
                    last_modified: modified(&meta),
                });
            } else {
                skipped.push(format!("{} (not a regular file)", path.display()));
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((out, skipped))
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
}
