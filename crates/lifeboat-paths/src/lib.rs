//! Names from a snapshot used as paths, and how a restore writes files.
//!
//! A snapshot is untrusted input: a compromised backup host holds the backup
//! key and can forge manifests, item names and source facts. Every name a
//! restore turns into a path goes through [`component`] (one file or
//! directory name) or [`relative`] (a `/`-separated path below a root), and
//! every file and directory a restore creates goes through this crate:
//!
//! - directories are created one component at a time below a root the user
//!   chose, and an existing component that is a symbolic link (or not a
//!   directory) is refused, so a link planted in the target beforehand is
//!   never followed ([`create_dirs`]);
//! - files are written to an exclusive temporary file (`O_EXCL`, mode 0600)
//!   in their directory and renamed into place, which replaces a planted
//!   link instead of writing through it ([`write_file`]); without
//!   `replace` an existing name is an error, never overwritten;
//! - modes are masked with [`MODE_MASK`] (0o775): no setuid, setgid,
//!   sticky bit nor write for other ever reaches a restored file or a
//!   directory a restore made.
//!
//! It lives in its own crate because every source (which may not import
//! another) and the CLI need the same check. Not covered: another process
//! that swaps a directory for a link *while* the restore runs in it (restore
//! into a directory only you can write).

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

/// The permission bits a restore may set: rwx for user and group, r-x for
/// other. Setuid (0o4000), setgid (0o2000), sticky (0o1000) and write for
/// other (0o002) are always cleared: a forged snapshot must not leave a
/// world-writable file for another user to replace.
pub const MODE_MASK: u32 = 0o775;

/// Longest file name accepted (bytes), what Linux, macOS and Windows allow.
pub const MAX_COMPONENT: usize = 255;

/// Longest relative path accepted (bytes), Linux's PATH_MAX less room for
/// the root.
pub const MAX_RELATIVE: usize = 3072;

/// Why a name cannot be used as a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The offending name (shown escaped, and cut if long).
    pub name: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", shown(&self.name), self.why)
    }
}

impl std::error::Error for PathError {}

/// A hostile name for a message: escaped (no control characters reach the
/// terminal), at most about 100 characters.
pub fn shown(name: &str) -> String {
    let cut: String = name.chars().take(100).collect();
    if cut.len() < name.len() {
        format!("{cut:?}... ({} bytes)", name.len())
    } else {
        format!("{cut:?}")
    }
}

fn bad(name: &str, why: impl Into<String>) -> PathError {
    PathError {
        name: name.to_string(),
        why: why.into(),
    }
}

/// Check that `name` is one safe file or directory name: not empty, not `.`
/// or `..`, no `/`, `\`, NUL or other control character, at most
/// [`MAX_COMPONENT`] bytes, and a plain name on this platform (no drive or
/// root prefix).
pub fn component(name: &str) -> Result<&str, PathError> {
    if name.is_empty() {
        return Err(bad(name, "is empty"));
    }
    if name == "." || name == ".." {
        return Err(bad(name, "is a `.` or `..` path segment"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(bad(name, "contains a path separator (`/` or `\\`)"));
    }
    if name.contains('\0') {
        return Err(bad(name, "contains a NUL byte"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(name, "contains a control character"));
    }
    if name.len() > MAX_COMPONENT {
        return Err(bad(
            name,
            format!("is longer than {MAX_COMPONENT} bytes ({})", name.len()),
        ));
    }
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) if n == name => Ok(name),
        _ => Err(bad(name, "is not a plain file name on this system")),
    }
}

/// Check a `/`-separated relative path (every segment a [`component`]) and
/// turn it into a `PathBuf` to join onto a root. Refuses absolute paths,
/// empty segments (`a//b`, a trailing `/`), `.` and `..`, and paths longer
/// than [`MAX_RELATIVE`] bytes.
pub fn relative(path: &str) -> Result<PathBuf, PathError> {
    if path.is_empty() {
        return Err(bad(path, "is empty"));
    }
    if path.starts_with('/') {
        return Err(bad(path, "is an absolute path"));
    }
    if path.len() > MAX_RELATIVE {
        return Err(bad(
            path,
            format!("is longer than {MAX_RELATIVE} bytes ({})", path.len()),
        ));
    }
    let mut out = PathBuf::new();
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err(bad(
                path,
                "has an empty path segment (`//` or a trailing `/`)",
            ));
        }
        component(seg).map_err(|e| bad(path, format!("segment {e}")))?;
        out.push(seg);
    }
    Ok(out)
}

/// How two names are compared for collisions: exactly, and also after case
/// folding, since macOS and Windows file systems fold case by default.
pub fn collision_key(name: &str) -> String {
    name.to_lowercase()
}

/// Clear setuid, setgid and sticky bits from a stored mode.
pub fn safe_mode(mode: u32) -> u32 {
    mode & MODE_MASK
}

/// Why a restore refused to write somewhere (a link, a file where a
/// directory goes, a path that is no plain relative path), carried inside
/// an [`io::Error`] so callers can tell it from a failing disk
/// ([`is_refusal`]).
#[derive(Debug)]
pub struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

fn refusal(message: String) -> io::Error {
    io::Error::other(Refusal(message))
}

/// True when `e` is a refusal of this crate (unsafe to write there), not
/// a failure of the disk.
pub fn is_refusal(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Refusal>())
}

fn refused_link(p: &Path) -> io::Error {
    refusal(format!(
        "{} is a symbolic link: a restore never writes through a link (remove it, or restore \
         into a new directory)",
        p.display()
    ))
}

/// Create `root/rel` and every directory between, one component at a time,
/// never following a symbolic link below `root` (`root` itself is the
/// user's choice and may be one). New directories get mode 0o777 less the
/// umask, never a special bit (one inherited setgid bit is cleared).
pub fn create_dirs(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(n) = c else {
            return Err(refusal(format!(
                "{} is not a plain relative path",
                rel.display()
            )));
        };
        cur.push(n);
        create_one_dir(&cur)?;
    }
    Ok(cur)
}

/// Create one directory (its parent must exist) or accept an existing real
/// directory; a link or a file there is an error.
pub fn create_one_dir(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => return Err(refused_link(p)),
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(refusal(format!(
                "{} exists and is not a directory",
                p.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o777);
    }
    match b.create(p) {
        Ok(()) => clear_special_bits(p),
        // Made by another thread of this restore in the meantime: check it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() && !m.file_type().is_symlink() => Ok(()),
            _ => Err(refused_link(p)),
        },
        Err(e) => Err(e),
    }
}

/// A directory that inherited setgid from its parent (Linux does that)
/// loses it.
fn clear_special_bits(p: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = fs::symlink_metadata(p)?;
        let mode = m.permissions().mode();
        if mode & 0o7000 != 0 {
            fs::set_permissions(p, fs::Permissions::from_mode(safe_mode(mode)))?;
        }
    }
    #[cfg(not(unix))]
    let _ = p;
    Ok(())
}

/// Refuse if `p` exists as a symbolic link (used before reading back a file
/// a restore wrote, and for a target that must be a real directory).
pub fn refuse_link(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => Err(refused_link(p)),
        _ => Ok(()),
    }
}

/// An exclusive temporary file in `dir` (created with `O_EXCL`, mode 0600,
/// a random name starting with `.lifeboat-`), to fill and then [`publish`].
pub fn temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".lifeboat-partial-")
        .tempfile_in(dir)
}

/// Rename a filled temporary file to `path` in the same directory. With
/// `replace`, an existing file (or a planted link: the link is replaced,
/// never followed) gives way; without it an existing name is an
/// `AlreadyExists` error and is left as it was. `mode`, if given, is masked
/// with [`MODE_MASK`] and set before the rename.
pub fn publish(
    tmp: tempfile::NamedTempFile,
    path: &Path,
    replace: bool,
    mode: Option<u32>,
) -> io::Result<fs::File> {
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    if let Some(m) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(safe_mode(m)))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    let r = if replace {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    r.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            )
        } else {
            e.error
        }
    })
}

/// Write `bytes` to `path` through [`temp_in`] and [`publish`] (mode 0600
/// unless `mode` says otherwise).
pub fn write_file(path: &Path, bytes: &[u8], replace: bool, mode: Option<u32>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = temp_in(dir)?;
    tmp.write_all(bytes)?;
    publish(tmp, path, replace, mode).map(drop)
}

/// Whether no other user can change what `path` leads to: every folder on
/// the way (as written, and with its links resolved) belongs to this user
/// or to root, and none is writable by others unless sticky (like /tmp,
/// where only an entry's owner may rename it, and the next component
/// must then be ours or root's). A folder another user could write is
/// where they would swap a directory for one of theirs between lifeboat's
/// check and its use. The parts of `path` that do not exist yet are
/// skipped (lifeboat creates them, private). Linux; elsewhere always Ok.
pub fn check_trusted_path(path: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let me = fs::metadata("/proc/self")?.uid();
        let check = |p: &Path, m: &fs::Metadata| -> io::Result<()> {
            if m.uid() != me && m.uid() != 0 {
                return Err(io::Error::other(format!(
                    "{} belongs to another user (uid {}): they could swap what is below it",
                    p.display(),
                    m.uid()
                )));
            }
            if m.is_dir() && m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
                return Err(io::Error::other(format!(
                    "{} may be written by other users (mode {:o}): they could swap what is \
                     below it",
                    p.display(),
                    m.mode() & 0o7777
                )));
            }
            Ok(())
        };
        let absolute = match path.is_absolute() {
            true => path.to_path_buf(),
            false => std::env::current_dir()?.join(path),
        };
        let mut walked = PathBuf::new();
        for c in absolute.components() {
            walked.push(c);
            match fs::symlink_metadata(&walked) {
                Ok(m) => check(&walked, &m)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        // And where the links lead.
        let mut existing = absolute.as_path();
        while !existing.exists() {
            match existing.parent() {
                Some(p) => existing = p,
                None => return Ok(()),
            }
        }
        let real = fs::canonicalize(existing)?;
        let mut walked = PathBuf::new();
        for c in real.components() {
            walked.push(c);
            check(&walked, &fs::metadata(&walked)?)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_one_plain_name() {
        for ok in ["a", "a b", "ü.pdf", ".env", "..a", "a..", "x.secret-files"] {
            assert_eq!(component(ok), Ok(ok));
        }
        let long = "x".repeat(MAX_COMPONENT + 1);
        for badname in [
            "", ".", "..", "a/b", "/", "/etc", "a\\b", "a\0b", "a\nb", "\x1b[2J", &long,
        ] {
            let e = component(badname).unwrap_err();
            assert!(!e.why.is_empty(), "{badname:?}");
        }
        assert!(component(&"x".repeat(MAX_COMPONENT)).is_ok());
    }

    #[test]
    fn relative_paths_stay_below_the_root() {
        assert_eq!(relative("a/b c/ü.pdf").unwrap(), Path::new("a/b c/ü.pdf"));
        for badpath in [
            "",
            "/",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/./b",
            "a/",
            "a\\b",
            "a/\0",
            "a/\nb",
        ] {
            assert!(relative(badpath).is_err(), "{badpath:?} accepted");
        }
        let deep = vec!["d"; MAX_RELATIVE / 2 + 1].join("/");
        assert!(relative(&deep).unwrap_err().why.contains("longer"));
        let e = relative("a/../x").unwrap_err();
        assert!(e.to_string().contains("`..`"), "{e}");
    }

    #[test]
    fn names_are_shown_escaped_and_cut() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        assert!(shown(&"y".repeat(500)).ends_with("(500 bytes)"));
    }

    #[test]
    fn modes_lose_special_bits() {
        assert_eq!(safe_mode(0o4755), 0o755);
        assert_eq!(safe_mode(0o7777), 0o775);
        assert_eq!(safe_mode(0o666), 0o664, "no write for other");
        assert_eq!(safe_mode(0o1644), 0o644);
    }

    #[cfg(unix)]
    #[test]
    fn links_are_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("l")).unwrap();
        let e = create_dirs(root.path(), Path::new("l/x")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);

        // A planted link at the file's own name is replaced, its target kept.
        let target = outside.path().join("victim");
        fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("f")).unwrap();
        let err = write_file(&root.path().join("f"), b"new", false, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        write_file(&root.path().join("f"), b"new", true, Some(0o4755)).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        let m = fs::symlink_metadata(root.path().join("f")).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);

        // A setgid parent does not hand its bit to a restored directory.
        let g = root.path().join("g");
        fs::create_dir(&g).unwrap();
        fs::set_permissions(&g, fs::Permissions::from_mode(0o2775)).unwrap();
        let made = create_dirs(root.path(), Path::new("g/sub")).unwrap();
        let mode = fs::metadata(made).unwrap().permissions().mode();
        assert_eq!(mode & 0o7000, 0, "{mode:o}");
    }
}
