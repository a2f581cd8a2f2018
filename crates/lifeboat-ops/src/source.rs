//! The sources lifeboat backs up, by kind.

use std::fmt;
use std::str::FromStr;

/// A configurable source. Items written from a command, standard input or
/// files carry their own source names (`command`, `stdin`, `file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A MySQL/MariaDB database.
    Mysql,
    /// A bucket or an upload directory.
    Objects,
    /// A Render account.
    Render,
    /// git repositories.
    Git,
}

impl SourceKind {
    /// Every kind, in backup order.
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Mysql,
        SourceKind::Objects,
        SourceKind::Render,
        SourceKind::Git,
    ];

    /// What backing it up is called in messages ("MySQL dump failed: ...").
    pub fn activity(self) -> &'static str {
        match self {
            SourceKind::Mysql => "MySQL dump",
            SourceKind::Objects => "objects backup",
            SourceKind::Render => "Render backup",
            SourceKind::Git => "git backup",
        }
    }

    /// The name in snapshots, manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Mysql => lifeboat_mysql::SOURCE,
            SourceKind::Objects => lifeboat_objects::SOURCE,
            SourceKind::Render => lifeboat_render::SOURCE,
            SourceKind::Git => lifeboat_git::SOURCE,
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SourceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown source {s:?}: sources are mysql, objects, render and git")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SourceKind::ALL {
            assert_eq!(k.name().parse::<SourceKind>(), Ok(k));
        }
        assert!("ftp"
            .parse::<SourceKind>()
            .unwrap_err()
            .contains("mysql, objects"));
    }
}
