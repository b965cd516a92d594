//! Plain records read from and written to the catalog.

use crate::sql_type::SqlType;

/// A worker node as registered in the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub node_id: i64,
    pub host: String,
    pub port: u16,
    pub should_have_shards: bool,
    /// `active` or `draining`.
    pub state: String,
    pub is_live: bool,
    pub disk_free_bytes: Option<u64>,
    pub data_bytes: Option<u64>,
    pub last_heartbeat_ms: Option<i64>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How a table's rows are spread over shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    Distributed,
    Reference,
    SingleShard,
}

impl TableKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TableKind::Distributed => "distributed",
            TableKind::Reference => "reference",
            TableKind::SingleShard => "single_shard",
        }
    }

    pub fn parse(s: &str) -> Option<TableKind> {
        match s {
            "distributed" => Some(TableKind::Distributed),
            "reference" => Some(TableKind::Reference),
            "single_shard" => Some(TableKind::SingleShard),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    /// `NOT NULL` (or part of the primary key): writes with a NULL here fail with 23502.
    pub not_null: bool,
    /// The column's name in the table's files. It never changes once the column exists:
    /// `RENAME COLUMN` changes `name` only, and a column added after one was dropped gets a
    /// stored name no file of the table has used, so the dropped column's values stay unseen.
    pub stored_name: String,
}

impl ColumnDef {
    /// A new column whose files will name it as the user does.
    pub fn new(name: impl Into<String>, sql_type: SqlType, not_null: bool) -> ColumnDef {
        let name = name.into();
        ColumnDef {
            stored_name: name.clone(),
            name,
            sql_type,
            not_null,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    pub table_id: i64,
    pub name: String,
    pub kind: TableKind,
    pub distribution_column: Option<String>,
    pub colocation_id: Option<i64>,
    pub shard_count: i64,
    pub replication_factor: i64,
    pub columns: Vec<ColumnDef>,
}

/// A committed Parquet file of one placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub name: String,
    pub bytes: u64,
    pub rows: u64,
    pub checksum: u32,
}

/// A file written by a worker for a placement, to be committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    pub placement_id: i64,
    pub file: FileRecord,
}

/// One placement's file that a transaction removes (UPDATE, DELETE, TRUNCATE).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RemovedFile {
    pub placement_id: i64,
    pub name: String,
}

/// Everything one transaction changes in the file lists, published by
/// [`crate::Catalog::commit_transaction`] at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileChanges {
    pub removed: Vec<RemovedFile>,
    pub added: Vec<NewFile>,
}

/// A shard to create, with the nodes holding it (first = primary) and, for each, files already
/// written there (used when existing rows are redistributed).
#[derive(Clone, Debug, PartialEq)]
pub struct NewShard {
    /// From [`crate::Catalog::reserve_shard_ids`], so workers can be written to before the
    /// shard is committed.
    pub shard_id: i64,
    pub shard_index: i64,
    pub hash_min: i32,
    pub hash_max: i32,
    pub placements: Vec<(i64, Vec<FileRecord>)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewTable {
    pub name: String,
    pub kind: TableKind,
    pub distribution_column: Option<String>,
    pub colocation_id: Option<i64>,
    pub columns: Vec<ColumnDef>,
    pub shards: Vec<NewShard>,
    /// The uncommitted transaction that creates it ([`crate::TxnTables`]), if any.
    pub pending_txn: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlacementSnapshot {
    pub placement_id: i64,
    pub node_id: i64,
    pub host: String,
    pub port: u16,
    pub is_live: bool,
    pub files: Vec<FileRecord>,
}

impl PlacementSnapshot {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ShardSnapshot {
    pub shard_id: i64,
    pub shard_index: i64,
    pub hash_min: i32,
    pub hash_max: i32,
    /// `active`, `moving` or `lost`.
    pub state: String,
    pub placements: Vec<PlacementSnapshot>,
}

/// What one query reads of one table: every shard, its placements and their committed files,
/// as of one catalog transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSnapshot {
    pub table: TableInfo,
    pub shards: Vec<ShardSnapshot>,
}

/// Files or shard directories on a worker that are no longer referenced and may be deleted
/// once `not_before_ms` has passed (queries planned earlier may still read them).
#[derive(Clone, Debug, PartialEq)]
pub struct CleanupRecord {
    pub cleanup_id: i64,
    pub node_id: i64,
    pub table_id: i64,
    pub shard_id: i64,
    /// `None`: the whole shard directory.
    pub file_name: Option<String>,
    pub not_before_ms: i64,
}

/// A background job (rebalance, drain, move), as `shoal.jobs` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub job_id: i64,
    pub job_type: String,
    /// scheduled, running, cancelling, cancelled, finished, failing, failed (as Citus).
    pub state: String,
    pub description: String,
    pub transfer_mode: String,
    pub max_bandwidth_mb: Option<f64>,
    pub max_concurrent_moves: Option<i64>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

impl Job {
    /// Finished, cancelled and failed jobs never change again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state.as_str(), "finished" | "cancelled" | "failed")
    }
}

/// One task of a job: the move (or copy) of one shard group's placement.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub task_id: i64,
    pub job_id: i64,
    /// `move` or `copy` (a copy keeps the source placement).
    pub kind: String,
    /// blocked, runnable, running, done, cancelling, error, unscheduled, cancelled (as Citus).
    pub state: String,
    /// The move state machine's persisted state (`planned` ... `done`, `aborted`).
    pub phase: String,
    /// The representative shard of the group.
    pub shard_id: i64,
    pub colocation_id: Option<i64>,
    pub shard_index: i64,
    pub source_node_id: i64,
    pub target_node_id: i64,
    /// `host:port` of the source and the target when the task was planned.
    pub source: String,
    pub target: String,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub bytes_verified: u64,
    pub retries: i64,
    pub not_before_ms: Option<i64>,
    /// The last error (for a retrying or failed task) or a note.
    pub message: String,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The move's persisted JSON context.
    pub context: String,
}

/// A task to schedule with a new job. `depends_on` holds indexes into the job's task list.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    pub kind: String,
    pub shard_id: i64,
    pub colocation_id: Option<i64>,
    pub shard_index: i64,
    pub source_node_id: i64,
    pub target_node_id: i64,
    pub source: String,
    pub target: String,
    pub bytes_total: u64,
    pub depends_on: Vec<usize>,
}

/// A new job with its tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub job_type: String,
    pub description: String,
    pub transfer_mode: String,
    pub max_bandwidth_mb: Option<f64>,
    pub max_concurrent_moves: Option<i64>,
    pub tasks: Vec<NewTask>,
}

/// The files of one shard's placement on one node, as a move sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupShardFiles {
    pub table_id: i64,
    pub table_name: String,
    pub shard_id: i64,
    /// The placement on the move's source node, if it has one.
    pub source_placement: Option<i64>,
    /// Whether the target node already holds a placement of this shard.
    pub on_target: bool,
    /// Files of the source placement.
    pub files: Vec<FileRecord>,
}
