//! The cross-check (`check-references`): the `medical_documents` rows of a
//! MySQL backup (or the live database) against the objects of a bucket
//! backup (or the live bucket): rows whose object is missing or differs,
//! objects no row points at, rows still on local storage.

use std::collections::{BTreeMap, HashSet};

use lifeboat_mysql::MysqlOptions;
use lifeboat_objects::Source;
use lifeboat_store::{FullAccess, Index, ManifestItem, Repository};
use serde::Serialize;

use crate::Error;

/// Where the document rows come from.
pub enum Documents<'a> {
    /// The MySQL backup in a snapshot.
    Snapshot {
        /// The repository.
        repo: &'a Repository<FullAccess>,
        /// Its index.
        index: &'a Index,
        /// The snapshot's manifest.
        items: &'a [ManifestItem],
    },
    /// The live database.
    Live(&'a MysqlOptions),
}

/// Where the objects come from.
pub enum Objects<'a> {
    /// The `objects` items of a snapshot's manifest.
    Snapshot(&'a [ManifestItem]),
    /// The live bucket or directory.
    Live(&'a Source),
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CrossCheckOptions {
    /// The table of documents (`medical_documents`).
    pub table: String,
    /// Only rows whose bucket column is this are checked against the
    /// objects; other buckets are listed apart. `None`: every row not on
    /// local storage.
    pub bucket: Option<String>,
    /// The column saying where a file is (`storage_provider`; `local` means
    /// the application's own disk).
    pub provider_column: String,
    /// The column naming the bucket (`storage_bucket`).
    pub bucket_column: String,
    /// The column holding the object's key (`storage_key`).
    pub key_column: String,
}

impl Default for CrossCheckOptions {
    fn default() -> Self {
        CrossCheckOptions {
            table: "medical_documents".into(),
            bucket: None,
            provider_column: "storage_provider".into(),
            bucket_column: "storage_bucket".into(),
            key_column: "storage_key".into(),
        }
    }
}

/// A document row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocRef {
    /// Its `id`.
    pub id: String,
    /// Its `storage_key`.
    pub key: String,
    /// Why it is listed, when that needs saying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrossCheck {
    /// Document rows read.
    pub rows: u64,
    /// Objects listed.
    pub objects: u64,
    /// Rows whose object is not there (the failure this check exists for).
    pub missing: Vec<DocRef>,
    /// Rows whose object is there with another size or SHA-256.
    pub differs: Vec<DocRef>,
    /// Objects no row points at.
    pub orphans: Vec<String>,
    /// Rows still on `storage_provider = 'local'` (not in the bucket yet).
    pub local: Vec<DocRef>,
    /// Rows in another bucket than the one checked.
    pub elsewhere: Vec<DocRef>,
}

impl CrossCheck {
    /// No row points at a missing or different object.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.differs.is_empty()
    }
}

struct ObjectFact {
    size: u64,
    sha256: Option<String>,
}

/// Compare document rows with objects.
pub fn check_references(
    documents: Documents<'_>,
    objects: Objects<'_>,
    opts: &CrossCheckOptions,
) -> Result<CrossCheck, Error> {
    let mut found: BTreeMap<String, ObjectFact> = BTreeMap::new();
    match objects {
        Objects::Snapshot(items) => {
            for i in items
                .iter()
                .filter(|i| i.source == lifeboat_objects::SOURCE)
            {
                found.insert(
                    i.name.clone(),
                    ObjectFact {
                        size: i.size,
                        sha256: Some(i.sha256.clone()),
                    },
                );
            }
        }
        Objects::Live(source) => {
            for l in source.list()? {
                found.insert(
                    l.key,
                    ObjectFact {
                        size: l.size,
                        sha256: None,
                    },
                );
            }
        }
    }
    let mut report = CrossCheck {
        objects: found.len() as u64,
        ..Default::default()
    };
    let mut pointed: HashSet<String> = HashSet::new();
    let mut each = |row: Vec<Option<String>>| {
        let [id, provider, bucket, key, sha, size] =
            <[Option<String>; 6]>::try_from(row).unwrap_or_default();
        report.rows += 1;
        let doc = DocRef {
            id: id.unwrap_or_default(),
            key: key.unwrap_or_default(),
            detail: None,
        };
        if provider.as_deref() == Some("local") {
            report.local.push(doc);
            return;
        }
        if let (Some(want), Some(b)) = (&opts.bucket, &bucket) {
            if want != b {
                report.elsewhere.push(DocRef {
                    detail: Some(format!("bucket {b}")),
                    ..doc
                });
                return;
            }
        }
        pointed.insert(doc.key.clone());
        let Some(obj) = found.get(&doc.key) else {
            report.missing.push(doc);
            return;
        };
        let size: Option<u64> = size.and_then(|s| s.parse().ok());
        if let Some(s) = size.filter(|s| *s != obj.size) {
            report.differs.push(DocRef {
                detail: Some(format!("row says {s} bytes, object has {}", obj.size)),
                ..doc
            });
        } else if let (Some(want), Some(got)) = (&sha, &obj.sha256) {
            if !want.eq_ignore_ascii_case(got) {
                report.differs.push(DocRef {
                    detail: Some(format!("row says SHA-256 {want}, object has {got}")),
                    ..doc
                });
            }
        }
    };
    let columns = [
        "id",
        opts.provider_column.as_str(),
        opts.bucket_column.as_str(),
        opts.key_column.as_str(),
        "sha256",
        "size_bytes",
    ];
    match documents {
        Documents::Snapshot { repo, index, items } => lifeboat_mysql::rows::snapshot_rows(
            repo,
            index,
            items,
            &opts.table,
            &columns,
            &mut each,
        )?,
        Documents::Live(mysql) => {
            lifeboat_mysql::rows::live_rows(mysql, &opts.table, &columns, &mut each)?
        }
    }
    report.orphans = found
        .keys()
        .filter(|k| !pointed.contains(*k))
        .cloned()
        .collect();
    for list in [&mut report.missing, &mut report.differs, &mut report.local] {
        list.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(report)
}
