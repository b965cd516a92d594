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
