//! `lifeboat upgrade` across sources: the store's format upgrade, with each
//! source's state files rewritten as the new format wants them.

use lifeboat_store::{FullAccess, Repository, RestoreKey, UpgradeOptions, UpgradeReport};

/// Upgrade `repo` to the current format (see
/// [`Repository::upgrade`]). Format 3 keeps objects' SHA-256s and meta out
/// of the backup key's reach: every objects state still holding them is
/// written again without (the next backup of that location reads its
/// objects once more, and stores nothing new for them but their details).
pub fn upgrade(
    repo: &mut Repository<FullAccess>,
    key: &RestoreKey,
) -> lifeboat_store::Result<UpgradeReport> {
    let rewrite = |source: &str, body: &[u8]| match source {
        lifeboat_objects::SOURCE => lifeboat_objects::scrub_state(body),
        _ => None,
    };
    repo.upgrade(
        key,
        &UpgradeOptions {
            rewrite_state: Some(&rewrite),
        },
    )
}
