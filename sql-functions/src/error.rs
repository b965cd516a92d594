//! Errors of cluster operations. Each variant says whose fault it is; the wire layer maps
//! them to SQLSTATEs once.

use shoal_catalog::CatalogError;
use shoal_shard_store::ShardStoreError;

/// What is wrong with an input value (each kind has its own SQLSTATE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// Not the binary form of the column's type (22P03).
    BinaryFormat,
    /// A binary field shorter than its type's form (08P01, as PostgreSQL's message reader).
    InsufficientData,
    /// Text that is not valid UTF-8, or holds a NUL (22021).
    Encoding,
    /// Beyond what the column's type holds (22003).
    OutOfRange,
    /// A date or timestamp beyond the range Shoal stores, or infinite (22008).
    DateTimeOutOfRange,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A worker refused or could not be reached.
    #[error(transparent)]
    Worker(#[from] ShardStoreError),
    /// A query engine error while reading or converting rows.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An Arrow error while converting rows.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A bad argument from the user (SQLSTATE 22023).
    #[error("{message}")]
    InvalidArgument {
        message: String,
        hint: Option<String>,
    },
    /// The object is not in the state the operation needs (SQLSTATE 55000).
    #[error("{message}")]
    NotInState {
        message: String,
        hint: Option<String>,
    },
    /// Not supported (SQLSTATE 0A000).
    #[error("{message}")]
    NotSupported { message: String },
    /// A column named by the user does not exist (SQLSTATE 42703).
    #[error("{message}")]
    UndefinedColumn { message: String },
    /// A NULL where none is allowed (SQLSTATE 23502).
    #[error("{message}")]
    NotNull { message: String },
    /// A string longer than its `varchar(n)` column allows (SQLSTATE 22001).
    #[error("{message}")]
    ValueTooLong { message: String },
    /// Text that is no value of its column's type (`sqlstate` is PostgreSQL's: 22P02 for
    /// syntax, 22P05 for a character jsonb cannot hold).
    #[error("{message}")]
    InvalidText {
        sqlstate: &'static str,
        message: String,
        detail: Option<String>,
    },
    /// Bad COPY input (SQLSTATE 22P04 for format, 22P02 for values).
    #[error("{message}")]
    BadCopyData { message: String },
    /// A COPY value that cannot be stored, of the kind `kind` says.
    #[error("{message}")]
    BadCopyValue { kind: BadValue, message: String },
    /// No worker can hold the data (SQLSTATE 55000 in Citus's wording).
    #[error("{message}")]
    NoWorkers { message: String },
    /// A shard has no live placement (SQLSTATE 08006).
    #[error("{message}")]
    ShardUnavailable {
        message: String,
        hint: Option<String>,
    },
    /// The operation was cancelled (SQLSTATE 57014).
    #[error("{message}")]
    Cancelled { message: String },
    /// A worker lacks the disk space an operation needs (SQLSTATE 53100).
    #[error("{message}")]
    DiskFull {
        message: String,
        hint: Option<String>,
    },
    /// A background job failed or was cancelled while a caller waited on it (SQLSTATE 55000
    /// for failed, 57014 for cancelled).
    #[error("{message}")]
    JobFailed {
        message: String,
        cancelled: bool,
        hint: Option<String>,
    },
    /// Another transaction changed what this one read or wrote; retrying the transaction
    /// can succeed (SQLSTATE 40001).
    #[error("{message}")]
    Conflict { message: String },
    /// A write in a READ ONLY transaction (SQLSTATE 25006).
    #[error("{message}")]
    ReadOnly { message: String },
    /// No cluster function of that name takes these arguments (SQLSTATE 42883).
    #[error("{message}")]
    UndefinedFunction {
        message: String,
        hint: Option<String>,
    },
    /// A cluster function's argument is NULL where a value is required (SQLSTATE 22004).
    #[error("{message}")]
    NullArgument { message: String },
    /// A worker named by the call does not answer (SQLSTATE 08006).
    #[error("{message}")]
    WorkerUnreachable {
        message: String,
        hint: Option<String>,
    },
    /// Our bug (SQLSTATE XX000).
    #[error("internal error: {message}")]
    Internal { message: String },
    /// A move could not finish now because writers held its shard group (the write fence
    /// could not be taken, or the fenced copy would have held them too long, or writes
    /// outpaced the copy). What it copied stays staged for its retry (SQLSTATE 55000).
    #[error("{message}")]
    MoveDeferred {
        message: String,
        hint: Option<String>,
    },
}

impl ClusterError {
    /// Whether the same operation can succeed later without anyone changing anything (a
    /// worker back, a disk freed, writers gone, a conflicting writer done). The scheduler
    /// retries a failed move only then; a bad argument, an unsupported request or our own
    /// bug fails it at once.
    pub fn is_retryable(&self) -> bool {
        use datafusion::error::DataFusionError as DF;
        match self {
            ClusterError::Catalog(e) => e.is_retryable(),
            ClusterError::Worker(e) => e.is_retryable(),
            ClusterError::DataFusion(e) => match e {
                DF::ResourcesExhausted(_) | DF::IoError(_) => true,
                DF::External(inner) => inner
                    .downcast_ref::<ShardStoreError>()
                    .is_some_and(ShardStoreError::is_retryable),
                _ => false,
            },
            ClusterError::NotInState { .. }
            | ClusterError::NoWorkers { .. }
            | ClusterError::ShardUnavailable { .. }
            | ClusterError::DiskFull { .. }
            | ClusterError::Conflict { .. }
            | ClusterError::WorkerUnreachable { .. }
            | ClusterError::MoveDeferred { .. } => true,
            ClusterError::Arrow(_)
            | ClusterError::InvalidArgument { .. }
            | ClusterError::NotSupported { .. }
            | ClusterError::UndefinedColumn { .. }
            | ClusterError::NotNull { .. }
            | ClusterError::ValueTooLong { .. }
            | ClusterError::InvalidText { .. }
            | ClusterError::BadCopyData { .. }
            | ClusterError::BadCopyValue { .. }
            | ClusterError::Cancelled { .. }
            | ClusterError::JobFailed { .. }
            | ClusterError::ReadOnly { .. }
            | ClusterError::UndefinedFunction { .. }
            | ClusterError::NullArgument { .. }
            | ClusterError::Internal { .. } => false,
        }
    }

    /// A move failed this way keeps its staged copy for the retry instead of rolling back.
    pub fn keeps_staged_copy(&self) -> bool {
        matches!(self, ClusterError::MoveDeferred { .. })
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ClusterError::InvalidArgument {
            message: message.into(),
            hint: None,
        }
    }

    pub fn not_in_state(message: impl Into<String>) -> Self {
        ClusterError::NotInState {
            message: message.into(),
            hint: None,
        }
    }

    /// The same error with `hint`, for the kinds that carry one (others are returned as
    /// they are).
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        if let ClusterError::InvalidArgument { hint: h, .. }
        | ClusterError::NotInState { hint: h, .. } = &mut self
        {
            *h = hint;
        }
        self
    }
}

pub type Result<T> = std::result::Result<T, ClusterError>;

#[cfg(test)]
mod tests;
