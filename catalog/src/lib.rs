//! The coordinator's metadata catalog: the single source of truth for nodes, tables, columns,
//! colocation groups, shards, placements, the files of every placement, cleanup records and
//! cluster settings.
//!
//! Entry point: [`Catalog::open`]. Every state change is one SQLite transaction (WAL mode,
//! `synchronous=FULL`; a move's phase and byte counts, which authorise nothing, commit without
//! waiting for the disk), written *before* the side effect it authorises:
//!
//! ```text
//!  worker writes file ──► coordinator: Catalog::commit_files (one tx per statement) ──► visible
//!  Catalog::snapshot(table) ──► placements + file lists a query reads (files not listed are invisible)
//!  drop / truncate / compaction ──► cleanup records ──► coordinator deletes on workers later
//! ```
//!
//! Tables created or dropped inside a transaction are pending until it commits
//! ([`TxnTables`]).
//!
//! All access goes through this crate so that a replicated store can replace SQLite later.
//! Backups of the catalog file and restoring one: [`backup_catalog`], [`restore_catalog`].
//! Every state write is also handed to a [`CommitJournal`] (the coordinator keeps one on the
//! workers), from which [`rebuild_catalog`] makes the catalog again when its disk is lost.

mod backup;
mod error;
mod journal;
mod model;
mod schema;
mod settings;
mod sql_type;
mod states;
mod store;
mod txn_tables;

pub use backup::{backup_catalog, restore_catalog, BACKUP_FILE};
pub use error::{CatalogError, Result};
pub use journal::{rebuild_catalog, CommitJournal, RebuildSummary};
pub use model::{
    CleanupRecord, ColumnDef, ColumnDefault, DrainQueued, FileChanges, FileRecord, GroupShardFiles,
    IndexDef, IndexUpdate, Job, KeyConstraint, NewFile, NewJob, NewShard, NewTable, NewTask, Node,
    PlacementSnapshot, QueuedDrain, RemovedFile, ShardSnapshot, TableInfo, TableKind,
    TableSnapshot, Task,
};
pub use settings::{ClusterSettings, SettingKind, SETTINGS_DEFAULTS};
pub use sql_type::{ArrayElement, SqlType};
pub use states::{
    JobState, JobType, MovePhase, NodeState, ShardState, TaskKind, TaskState, TransferMode,
    UnknownValue,
};
pub use store::Catalog;
pub use txn_tables::{ChangesMark, IndexChange, TableChanges, TxnTables};
