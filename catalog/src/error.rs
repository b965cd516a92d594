//! Errors of catalog operations.

/// What went wrong while reading or changing the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The SQLite database failed (I/O, corruption, locked past the busy timeout).
    #[error("catalog storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No table with this name exists.
    #[error("relation \"{name}\" does not exist")]
    TableNotFound { name: String },
    /// A table with this name exists already.
    #[error("relation \"{name}\" already exists")]
    TableExists { name: String },
    /// A column with this name exists already in the table.
    #[error("column \"{column}\" of relation \"{table}\" already exists")]
    ColumnExists { table: String, column: String },
    /// No column with this name in the table.
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    ColumnNotFound { table: String, column: String },
    /// `ADD COLUMN ... NOT NULL` on a table that has rows (they would hold NULL there).
    #[error("column \"{column}\" of relation \"{table}\" contains null values")]
    NullsInNotNullColumn { table: String, column: String },
    /// No node with this id or address exists.
    #[error("node \"{addr}\" does not exist")]
    NodeNotFound { addr: String },
    /// A placement that a statement wrote to was moved or dropped before the statement
    /// committed; the statement must be retried.
    #[error("shard placement {placement_id} changed while the statement ran; retry the statement")]
    PlacementGone { placement_id: i64 },
    /// A file a transaction meant to replace was replaced or removed by another transaction
    /// (or compaction) that committed first: committing would lose that write.
    #[error("could not serialize access due to concurrent update")]
    WriteConflict { table_id: i64, shard_id: i64 },
    /// A stored value could not be understood (a column type, a setting).
    #[error("invalid catalog value: {message}")]
    Invalid { message: String },
    /// A cluster setting that does not exist, or a value it does not take
    /// (`set_cluster_setting`).
    #[error("{message}")]
    InvalidSetting { message: String },
    /// A type's modifier is out of its range (`char(0)`, `numeric(50,2)`).
    #[error("{message}")]
    TypeModifier { message: String },
    /// A rebalance or drain job is active already; only one may run at a time.
    #[error("A rebalance is already running as job {job_id}")]
    JobRunning { job_id: i64 },
    /// No job with this id exists.
    #[error("no job found for job with jobid: {job_id}")]
    JobNotFound { job_id: i64 },
    /// The source placements of a move changed between the final copy and the switch (a
    /// statement or a compaction committed without going through the write gate); the move
    /// must copy again.
    #[error("shard {shard_id} changed during the final copy of its move: {message}")]
    MoveConflict { shard_id: i64, message: String },
    /// No sequence with this name belongs to a table.
    #[error("relation \"{name}\" does not exist")]
    SequenceNotFound { name: String },
    /// A change Shoal cannot make (yet); the message says which.
    #[error("{message}")]
    Unsupported { message: String },
    /// The catalog file was written by a newer Shoal.
    #[error("catalog schema version {found} is newer than this binary supports ({supported})")]
    TooNew { found: i64, supported: i64 },
}

impl CatalogError {
    /// Whether the same operation can succeed later without anyone changing anything: the
    /// storage was busy or failed, or another writer got there first. A missing object, a
    /// refused value or a catalog this binary cannot read stay as they are.
    pub fn is_retryable(&self) -> bool {
        match self {
            // SQLite itself failed (busy, I/O, a full disk); a value it could not convert
            // (a state this version does not know) stays unreadable.
            CatalogError::Sqlite(e) => matches!(e, rusqlite::Error::SqliteFailure(..)),
            CatalogError::PlacementGone { .. }
            | CatalogError::WriteConflict { .. }
            | CatalogError::JobRunning { .. }
            | CatalogError::MoveConflict { .. } => true,
            CatalogError::TableNotFound { .. }
            | CatalogError::TableExists { .. }
            | CatalogError::ColumnExists { .. }
            | CatalogError::ColumnNotFound { .. }
            | CatalogError::NullsInNotNullColumn { .. }
            | CatalogError::NodeNotFound { .. }
            | CatalogError::Invalid { .. }
            | CatalogError::InvalidSetting { .. }
            | CatalogError::TypeModifier { .. }
            | CatalogError::JobNotFound { .. }
            | CatalogError::SequenceNotFound { .. }
            | CatalogError::Unsupported { .. }
            | CatalogError::TooNew { .. } => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, CatalogError>;
