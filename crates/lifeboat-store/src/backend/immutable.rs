//! A store whose files cannot be deleted or overwritten for a while after
//! they are written: Cloudflare R2's bucket lock rules (R2 has no S3 Object
//! Lock headers, and its tokens cannot grant write without delete). The
//! rule lives in the bucket, outside lifeboat; `[repository]
//! immutable_days` tells lifeboat about it, and [`Immutable`] then refuses,
//! before any request, every delete or overwrite the rule would refuse, so
//! a command plans around protected files instead of stopping half-way at
//! the store's 403. Lock files are never protected (the layout's rules
//! leave `locks/` out: prune must be able to clear them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Backend, FileInfo, FileKind, Locking};
use crate::error::{BackendError, BackendErrorKind};

/// How long a file stays protected after it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Immutability {
    days: f64,
    window: TimeDelta,
}

impl Immutability {
    /// A rule of `days` (a fraction of a day is allowed: R2 counts in
    /// seconds). Refuses what no rule can be.
    pub fn from_days(days: f64) -> Result<Immutability, String> {
        if !days.is_finite() || days <= 0.0 || days > 36_500.0 {
            return Err(format!(
                "immutable_days = {days}: give the age of the bucket's lock rule, in days (more than 0, at most 36500)"
            ));
        }
        let window = TimeDelta::milliseconds((days * 86_400_000.0).round() as i64);
        Ok(Immutability { days, window })
    }

    /// The rule's age, in days.
    pub fn days(&self) -> f64 {
        self.days
    }

    /// Until when a file last written at `modified` is protected, or
    /// `None` when it is free at `now`. A margin of a hundredth of the rule
    /// (at most an hour) stands for the clocks of this host and the store
    /// not agreeing; a file the store gives no date for counts as new.
    pub fn protected_until(
        &self,
        modified: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let margin = (self.window / 100).min(TimeDelta::hours(1));
        let until = modified.unwrap_or(now) + self.window + margin;
        (until > now).then_some(until)
    }

    /// The files of `listing` still protected at `now`, with until when.
    pub fn protected_in(
        &self,
        listing: &[FileInfo],
        now: DateTime<Utc>,
    ) -> HashMap<String, DateTime<Utc>> {
        listing
            .iter()
            .filter_map(|f| Some((f.name.clone(), self.protected_until(f.modified, now)?)))
            .collect()
    }

    fn refusal(
        &self,
        op: &'static str,
        kind: FileKind,
        name: &str,
        until: DateTime<Utc>,
    ) -> BackendError {
        BackendError::new(
            BackendErrorKind::Protected,
            op,
            kind.path(name),
            format!(
                "the bucket's lock rule protects it until {} ([repository] immutable_days = {}): \
                 left as it is; run this again after then",
                until.format("%Y-%m-%d %H:%M:%S UTC"),
                self.days
            ),
        )
    }
}

/// When each file was written (`None`: the store did not say), by kind and name.
type Written = HashMap<(FileKind, String), Option<DateTime<Utc>>>;

/// A backend under a bucket lock rule: see the module documentation.
pub struct Immutable {
    inner: Arc<dyn Backend>,
    rule: Immutability,
    /// When each file listed or written was written (what `remove` and an
    /// overwrite check against without asking the store again).
    written: Mutex<Written>,
}

impl Immutable {
    /// Wrap `inner`.
    pub fn wrap(inner: Arc<dyn Backend>, rule: Immutability) -> Arc<dyn Backend> {
        Arc::new(Immutable {
            inner,
            rule,
            written: Mutex::default(),
        })
    }

    fn record(&self, kind: FileKind, files: &[FileInfo]) {
        if kind == FileKind::Lock {
            return;
        }
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        for f in files {
            w.insert((kind, f.name.clone()), f.modified);
        }
    }

    /// When `name` was written: `None` when it does not exist. Known from
    /// an earlier listing or write, else listed now.
    fn when_written(
        &self,
        kind: FileKind,
        name: &str,
        ask: bool,
    ) -> Result<Option<Option<DateTime<Utc>>>, BackendError> {
        let key = (kind, name.to_string());
        let known = self
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        if known.is_some() || !ask {
            return Ok(known);
        }
        let listing = self.list(kind)?;
        Ok(listing
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| f.modified))
    }

    /// Refuse to replace `name` while the rule protects it. Config is
    /// asked for (it is the one file written in place); other names are
    /// content hashes, new by construction, and checked only against what
    /// this process already knows.
    fn check_overwrite(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        if kind == FileKind::Lock {
            return Ok(());
        }
        if let Some(modified) = self.when_written(kind, name, kind == FileKind::Config)? {
            if let Some(until) = self.rule.protected_until(modified, Utc::now()) {
                return Err(self.rule.refusal("write", kind, name, until));
            }
        }
        Ok(())
    }

    fn written_now(&self, kind: FileKind, name: &str) {
        if kind != FileKind::Lock {
            self.written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((kind, name.to_string()), Some(Utc::now()));
        }
    }
}

impl Backend for Immutable {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        let listing = self.inner.list(kind)?;
        self.record(kind, &listing);
        Ok(listing)
    }
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        self.inner.read(kind, name)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(kind, name, offset, length)
    }
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.check_overwrite(kind, name)?;
        self.inner.write(kind, name, data)?;
        self.written_now(kind, name);
        Ok(())
    }
    fn write_shared(
        &self,
        kind: FileKind,
        name: &str,
        data: Arc<Vec<u8>>,
    ) -> Result<(), BackendError> {
        self.check_overwrite(kind, name)?;
        self.inner.write_shared(kind, name, data)?;
        self.written_now(kind, name);
        Ok(())
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        if kind != FileKind::Lock {
            match self.when_written(kind, name, true)? {
                // Gone already: deleting a missing file is no error.
                None => return Ok(()),
                Some(modified) => {
                    if let Some(until) = self.rule.protected_until(modified, Utc::now()) {
                        return Err(self.rule.refusal("remove", kind, name, until));
                    }
                }
            }
        }
        self.inner.remove(kind, name)?;
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(kind, name.to_string()));
        Ok(())
    }
    fn remove_partial_writes(&self) -> Result<usize, BackendError> {
        self.inner.remove_partial_writes()
    }
    fn connections(&self) -> usize {
        self.inner.connections()
    }
    fn locking(&self) -> Option<&dyn Locking> {
        self.inner.locking()
    }
    fn immutability(&self) -> Option<Immutability> {
        Some(self.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;

    fn age(dir: &std::path::Path, path: &str, days: u64) {
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(path))
            .unwrap();
        f.set_modified(
            std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400),
        )
        .unwrap();
    }

    #[test]
    fn young_files_are_neither_deleted_nor_overwritten_and_old_ones_are() {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        let rule = Immutability::from_days(7.0).unwrap();
        let b = Immutable::wrap(local.clone(), rule);
        let name = "ab".repeat(32);
        b.write(FileKind::Pack, &name, b"pack").unwrap();
        b.write(FileKind::Config, "config", b"{}").unwrap();
        b.write(FileKind::Lock, &name, b"lock").unwrap();
        // Young: refused, with the date and the setting named.
        let e = b.remove(FileKind::Pack, &name).unwrap_err();
        assert!(e.to_string().contains("immutable_days = 7"), "{e}");
        assert!(local.read(FileKind::Pack, &name).is_ok());
        let e = b
            .write(FileKind::Config, "config", b"{\"x\":1}")
            .unwrap_err();
        assert!(e.to_string().contains("protects it until"), "{e}");
        assert_eq!(local.read(FileKind::Config, "config").unwrap(), b"{}");
        // Locks are never protected; a missing file is no error.
        b.remove(FileKind::Lock, &name).unwrap();
        b.remove(FileKind::Index, &name).unwrap();
        // Aged past the rule (as the store's listing says): allowed.
        age(dir.path(), &FileKind::Pack.path(&name), 8);
        age(dir.path(), "config", 8);
        let b = Immutable::wrap(local.clone(), rule);
        let listed = rule.protected_in(&b.list(FileKind::Pack).unwrap(), Utc::now());
        assert!(listed.is_empty(), "{listed:?}");
        b.remove(FileKind::Pack, &name).unwrap();
        assert!(local.list(FileKind::Pack).unwrap().is_empty());
        b.write(FileKind::Config, "config", b"{\"x\":1}").unwrap();
        // Refused settings.
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            assert!(Immutability::from_days(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_margin_is_a_hundredth_of_the_rule_at_most_an_hour() {
        let now = Utc::now();
        let day = Immutability::from_days(1.0).unwrap();
        let written = now - TimeDelta::hours(24);
        let until = day.protected_until(Some(written), now).unwrap();
        assert_eq!(
            until - written,
            TimeDelta::hours(24) + TimeDelta::seconds(864)
        );
        let month = Immutability::from_days(30.0).unwrap();
        let until = month.protected_until(Some(now), now).unwrap();
        assert_eq!(until - now, TimeDelta::days(30) + TimeDelta::hours(1));
        assert!(day
            .protected_until(Some(now - TimeDelta::days(2)), now)
            .is_none());
        // No date from the store: as new.
        assert!(day.protected_until(None, now).is_some());
    }
}
