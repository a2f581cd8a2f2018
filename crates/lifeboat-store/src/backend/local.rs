//! A repository in a local directory (any disk, NFS, a USB drive).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Backend, FileInfo, FileKind};
use crate::error::BackendError;

/// Files under a directory. Writes go to a temporary name in the target
/// folder, are fsynced, then renamed, and the folder is fsynced: a crash
/// leaves either the whole file or a `.tmp-*` leftover that listing ignores.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn full(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    fn list_dir(dir: &Path, out: &mut Vec<FileInfo>) -> Result<(), BackendError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BackendError::io("list", dir.display().to_string(), &e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| BackendError::io("list", dir.display().to_string(), &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(|e| BackendError::io("list", entry.path().display().to_string(), &e))?;
            if meta.is_file() {
                out.push(FileInfo {
                    name,
                    size: meta.len(),
                    modified: meta.modified().ok().map(Into::into),
                });
            }
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// True when a `.tmp-HOST-PID-RAND` file was left by a process that is gone.
fn is_dead_leftover(name: &str, modified: Option<std::time::SystemTime>) -> bool {
    let old = modified
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
    let mut parts = name.trim_start_matches(".tmp-").splitn(3, '-');
    match (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) {
        (Some(host), Some(pid)) if host == crate::lock::hostname().replace(['-', '/'], "_") => {
            !crate::lock::process_alive(pid, None) || old
        }
        _ => old,
    }
}

impl Backend for LocalBackend {
    fn remove_partial_writes(&self) -> Result<usize, BackendError> {
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let meta = entry.metadata().ok();
                if meta.as_ref().is_some_and(|m| m.is_dir()) {
                    dirs.push(path);
                } else if name.starts_with(".tmp-")
                    && is_dead_leftover(&name, meta.and_then(|m| m.modified().ok()))
                {
                    fs::remove_file(&path)
                        .map_err(|e| BackendError::io("remove", path.display().to_string(), &e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        let mut out = Vec::new();
        match kind {
            FileKind::Config => {
                if let Ok(meta) = fs::metadata(self.root.join("config")) {
                    out.push(FileInfo {
                        name: "config".into(),
                        size: meta.len(),
                        modified: meta.modified().ok().map(Into::into),
                    });
                }
            }
            FileKind::Pack => {
                let dir = self.root.join("data");
                let subdirs = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(BackendError::io("list", dir.display().to_string(), &e)),
                };
                for sub in subdirs {
                    let sub =
                        sub.map_err(|e| BackendError::io("list", dir.display().to_string(), &e))?;
                    if sub.path().is_dir() {
                        Self::list_dir(&sub.path(), &mut out)?;
                    }
                }
            }
            _ => Self::list_dir(&self.root.join(kind.dir()), &mut out)?,
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        super::check_name(kind, name)?;
        let path = self.full(kind, name);
        fs::read(&path).map_err(|e| BackendError::io("read", path.display().to_string(), &e))
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        super::check_name(kind, name)?;
        let path = self.full(kind, name);
        let err = |e: &std::io::Error| BackendError::io("read", path.display().to_string(), e);
        let mut f = fs::File::open(&path).map_err(|e| err(&e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| err(&e))?;
        let mut buf = Vec::with_capacity(length as usize);
        f.take(length).read_to_end(&mut buf).map_err(|e| err(&e))?;
        if (buf.len() as u64) < length {
            return Err(BackendError::local(
                crate::error::BackendErrorKind::Other,
                "read",
                path.display().to_string(),
                format!(
                    "file ends {} bytes short of the range asked for",
                    length - buf.len() as u64
                ),
            ));
        }
        Ok(buf)
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        super::check_name(kind, name)?;
        let path = self.full(kind, name);
        let shown = path.display().to_string();
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| BackendError::io("write", &shown, &e))?;
        let mut tmp = tempfile_in(&dir).map_err(|e| BackendError::io("write", &shown, &e))?;
        tmp.1
            .write_all(data)
            .and_then(|_| tmp.1.sync_all())
            .map_err(|e| BackendError::io("write", &shown, &e))?;
        drop(tmp.1);
        fs::rename(&tmp.0, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp.0);
            BackendError::io("write", &shown, &e)
        })?;
        sync_dir(&dir).map_err(|e| BackendError::io("write", &shown, &e))
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        super::check_name(kind, name)?;
        let path = self.full(kind, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::io("remove", path.display().to_string(), &e)),
        }
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    loop {
        // Host and pid in the name let a later run tell a dead writer's
        // leftover from a live concurrent writer's file.
        let path = dir.join(format!(
            ".tmp-{}-{}-{:016x}",
            crate::lock::hostname().replace(['-', '/'], "_"),
            std::process::id(),
            rand::random::<u64>()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_list_read_remove() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        assert!(b.list(FileKind::Pack).unwrap().is_empty());
        b.write(FileKind::Pack, "abcdef", b"0123456789").unwrap();
        b.write(FileKind::Index, "i1", b"x").unwrap();
        b.write(FileKind::Config, "config", b"{}").unwrap();
        assert!(dir.path().join("data/ab/abcdef").is_file());
        let l = b.list(FileKind::Pack).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].name.as_str(), l[0].size), ("abcdef", 10));
        let age = chrono::Utc::now() - l[0].modified.expect("a file's mtime");
        assert!(age.num_seconds().abs() < 60, "{age}");
        assert_eq!(b.list(FileKind::Config).unwrap().len(), 1);
        assert_eq!(
            b.read_range(FileKind::Pack, "abcdef", 2, 3).unwrap(),
            b"234"
        );
        assert!(b.read_range(FileKind::Pack, "abcdef", 8, 3).is_err());
        assert!(b.read(FileKind::Index, "nope").unwrap_err().is_not_found());
        b.remove(FileKind::Pack, "abcdef").unwrap();
        b.remove(FileKind::Pack, "abcdef").unwrap();
        assert!(b.list(FileKind::Pack).unwrap().is_empty());
        // A crash leftover is never listed.
        std::fs::write(dir.path().join("index/.tmp-123"), b"partial").unwrap();
        assert_eq!(b.list(FileKind::Index).unwrap().len(), 1);
    }
}
