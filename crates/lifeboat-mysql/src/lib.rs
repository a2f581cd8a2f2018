//! lifeboat's MySQL source.
//!
//! - [`dump`]: one consistent snapshot (`START TRANSACTION WITH CONSISTENT
//!   SNAPSHOT`, on one connection or on several started under one `LOCK
//!   TABLES ... READ`) of every table, streamed row by row into a backup
//!   session in primary-key order, with the schema objects (tables, views,
//!   triggers, routines, events) made replayable by a user without SUPER.
//!   It reads through its own lean client (`wire`: the text protocol over
//!   a blocking socket, TCP or rustls TLS);
//! - [`replay`]: a snapshot into a named target database, tables in
//!   parallel with multi-row inserts, then every table's row count and
//!   content checksum compared with the manifest. A snapshot may be forged
//!   by whoever holds the backup key: replay checks every name, CREATE text
//!   and row line first (`guard`, with the tokenizer `lexer`) and sends one
//!   statement per call through `wire`, which never enables multi-statements;
//! - [`export`]: a plain SQL file the stock `mysql`/`mariadb` client loads;
//! - [`Capture`]: the binary log read as a replica reads it, stored as
//!   binlog files (point-in-time recovery); [`apply`] replays them into a
//!   restored database up to a moment, confined to its tables;
//! - [`rows`]: some columns of one table, from a snapshot or a live database.
//!
//! Data format of a table item: one row per line, `(v1,v2,...)\n`, each
//! value a SQL literal (`NULL`, a number, `'escaped text'`, `X'hex'`). The
//! item's SHA-256 is the table's content checksum; lifeboat recomputes it
//! from the target after a replay by reading the table back with the same
//! query and encoder.

#![forbid(unsafe_code)]

mod accounts;
mod apply;
pub mod binlog;
mod cache;
mod capture;
mod connect;
mod continuity;
mod dump;
mod encode;
mod error;
mod export;
mod fidelity;
#[cfg(test)]
mod fuzz;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod lexer;
mod records;
mod replay;
pub mod rows;
mod schema;
mod wire;

pub use accounts::{drill_account, DrillAccount};
pub use apply::{apply, ApplyOptions, ApplyReport, Piece};
pub use cache::PendingCache;
pub use capture::{
    Capture, CaptureOptions, Run, Segment, ServerLog, SOURCE as BINLOG_SOURCE, TAG as BINLOG_TAG,
};
pub use connect::{MysqlOptions, SslMode};
pub use continuity::{check_segment, GtidLinks, SegmentCheck, SegmentSpan};
pub use dump::{dump, Dump, DumpOptions, DumpReport, SnapshotCoordinates, TableFilter};
pub use error::{Error, Result};
pub use export::{export, export_accounts, AccountsExportOptions, ExportOptions};
pub use fidelity::{schema_line, Definers, ExpectedSchema, SchemaCheck};
pub use records::RowHashReport;
pub use replay::{
    databases, expected_tables, replay, select_database, snapshot_tables, verify_database,
    AccountsReport, ReplayOptions, ReplayReport, TableCheck,
};
pub use schema::{strip_definer, Schema, SOURCE};
