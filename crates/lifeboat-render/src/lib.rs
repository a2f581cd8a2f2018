//! lifeboat's Render source.
//!
//! [`backup`] reads, through Render's REST API ([`api::Client`]: Bearer key,
//! cursor paging, 429/5xx retries), every service with its settings, env
//! vars, secret files, custom domains, routes and headers, and the env
//! groups linked to them, and stores one item per service and group.
//! [`diff`] names what changed between two snapshots from keyed
//! fingerprints (no values; names with the backup key, changes with the restore key). [`restore`] writes `.env`
//! files, exports a Blueprint, or puts variables into a service.
//!
//! Every value is a secret: it is only ever in the encrypted store, in
//! files the user asked for (0600), or in a request to Render. No `Debug`,
//! error or log line of this crate prints one.

pub mod api;
mod backup;
mod diff;
pub mod dotenv;
mod error;
mod model;
mod restore;

pub use api::{Client, RenderOptions, Requests, DEFAULT_API_URL};
pub use backup::{
    backup, fingerprints, fingerprints_of_items, RenderReport, ENV_GROUP_KIND, SERVICE_KIND,
};
pub use diff::{diff, Change, Delta, RenderDiff};
pub use dotenv::Dialect;
pub use error::{Error, Result};
pub use model::{fetch, Counts, EnvGroup, EnvVar, RenderSnapshot, SecretFile, Service};
pub use restore::{
    blueprint, env_set, load, push_env, write_env_dir, EnvDirReport, EnvForm, EnvPlan,
};

/// The source name in snapshots.
pub const SOURCE: &str = "render";
