//! The one error type of the shard store, and its trip over gRPC.
//!
//! The worker turns a [`ShardStoreError`] into a `tonic::Status` with a gRPC code that says
//! whose fault it is and, for the variants a caller matches on, a JSON tag in the status
//! details ([`WireError`]). The client turns that status back into the same variant, so
//! `FileMissing`, `DiskFull`, `WrongCluster`, ... look the same on both sides of the wire.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// Result of every fallible shard-store operation.
pub type Result<T> = std::result::Result<T, ShardStoreError>;

/// Everything that can go wrong storing, scanning or talking to a worker.
#[derive(Debug, thiserror::Error)]
pub enum ShardStoreError {
    /// The worker at `addr` cannot be reached, or the connection broke during the call.
    /// The coordinator maps it to SQLSTATE 08006 naming the worker.
    #[error("worker {addr} is unavailable: {message}")]
    Unavailable { addr: String, message: String },

    /// The worker at `addr` refused the call: the cluster token is missing or wrong.
    #[error("worker {addr} refused the call: cluster token missing or wrong")]
    Unauthenticated { addr: String },

    /// A file named by a scan is not in `shards/<table_id>/<shard_id>/` on the worker
    /// (for example, the shard moved away); the caller may retry on another placement.
    #[error("file {name} of table {table_id} shard {shard_id} is missing on the worker")]
    FileMissing {
        table_id: i64,
        shard_id: i64,
        name: String,
    },

    /// A shard file on the worker does not match the size or CRC-32C the catalog recorded
    /// (a flipped bit, a truncated or zeroed file): it was not read. Another placement of the
    /// shard may serve it. `worker` is filled in by the client that called the worker.
    #[error(
        "file {name} of table {table_id} shard {shard_id} on worker {worker} is damaged: {damage}"
    )]
    FileDamaged {
        table_id: i64,
        shard_id: i64,
        name: String,
        worker: String,
        damage: String,
    },

    /// A file pulled for a move does not have the size or CRC-32C the catalog recorded for
    /// it (corrupted on the source, in transit or on the target's disk). The received copy was
    /// deleted; pulling again may succeed if the corruption was in transit.
    #[error(
        "checksum mismatch for file {name}: expected {expected_bytes} bytes crc32c \
         {expected_checksum:#010x}, got {actual_bytes} bytes crc32c {actual_checksum:#010x}"
    )]
    ChecksumMismatch {
        name: String,
        expected_bytes: u64,
        actual_bytes: u64,
        expected_checksum: u32,
        actual_checksum: u32,
    },

    /// Adopting a staged file would replace a live shard file of the same name but another
    /// size: two different files under one name is a bug, and the live one may be serving
    /// queries, so nothing was changed.
    #[error(
        "cannot adopt file {name} into table {table_id} shard {shard_id}: a live file of that \
         name already exists with {live_bytes} bytes, the staged one has {staged_bytes}"
    )]
    FileConflict {
        table_id: i64,
        shard_id: i64,
        name: String,
        live_bytes: u64,
        staged_bytes: u64,
    },

    /// The worker's disk is full (ENOSPC); the partial file was removed.
    #[error("disk full: {message}")]
    DiskFull { message: String },

    /// The worker is bound to cluster `actual`, but the caller presented cluster `expected`.
    #[error("worker belongs to cluster {actual}, not to cluster {expected}")]
    WrongCluster { expected: String, actual: String },

    /// A local file-system operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The worker could not listen on `addr`.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// Arrow failed to build, cast or (de)serialise record batches or schemas.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// Parquet failed to write or read a shard file.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// DataFusion failed to plan or run a scan, or to (de)serialise an expression.
    #[error("datafusion error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// A ticket, descriptor, action body or stream did not follow the worker protocol.
    #[error("protocol error: {message}")]
    Protocol { message: String },

    /// The client or server was given an unusable configuration (bad address or token, no
    /// tokio runtime, invalid cluster id).
    #[error("invalid configuration: {message}")]
    Config { message: String },

    /// The worker answered with an error that has no dedicated variant; `code` is the gRPC code.
    #[error("worker error ({code}): {message}")]
    Remote { code: String, message: String },

    /// A bug on our side (a worker thread panicked, an invariant broke).
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl ShardStoreError {
    /// Whether the same call can succeed later without anyone changing anything: the worker
    /// was down or busy, a transfer was damaged in transit, a disk was full, a file moved. A
    /// wrong token or cluster, a damaged file at its source, a name conflict, a bad
    /// configuration and our own bugs stay as they are.
    pub fn is_retryable(&self) -> bool {
        use datafusion::error::DataFusionError as DF;
        match self {
            ShardStoreError::Unavailable { .. }
            | ShardStoreError::FileMissing { .. }
            | ShardStoreError::ChecksumMismatch { .. }
            | ShardStoreError::DiskFull { .. }
            | ShardStoreError::Io { .. }
            | ShardStoreError::Protocol { .. }
            | ShardStoreError::Remote { .. } => true,
            ShardStoreError::DataFusion(e) => {
                matches!(e, DF::ResourcesExhausted(_) | DF::IoError(_))
            }
            ShardStoreError::Unauthenticated { .. }
            | ShardStoreError::FileDamaged { .. }
            | ShardStoreError::FileConflict { .. }
            | ShardStoreError::WrongCluster { .. }
            | ShardStoreError::Bind { .. }
            | ShardStoreError::Arrow(_)
            | ShardStoreError::Parquet(_)
            | ShardStoreError::Config { .. }
            | ShardStoreError::Internal { .. } => false,
        }
    }

    /// True when the worker could not be reached or the connection failed: the call may be
    /// retried on another placement, and the worker may be marked unreachable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ShardStoreError::Unavailable { .. })
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        ShardStoreError::Protocol {
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ShardStoreError::Internal {
            message: message.into(),
        }
    }

    /// An I/O error on `path`; ENOSPC becomes [`ShardStoreError::DiskFull`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_disk_full(&source) {
            return ShardStoreError::DiskFull {
                message: format!("writing {}: {source}", path.display()),
            };
        }
        ShardStoreError::Io { path, source }
    }

    /// A Parquet error while writing `path`; an ENOSPC inside it becomes `DiskFull`.
    pub(crate) fn parquet_write(
        path: impl Into<PathBuf>,
        source: parquet::errors::ParquetError,
    ) -> Self {
        if let parquet::errors::ParquetError::External(inner) = &source {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                if is_disk_full(io) {
                    return ShardStoreError::DiskFull {
                        message: format!("writing {}: {io}", path.into().display()),
                    };
                }
            }
        }
        ShardStoreError::Parquet(source)
    }

    /// The status the worker sends for this error.
    pub(crate) fn to_status(&self) -> Status {
        use datafusion::error::DataFusionError as DF;
        let code = match self {
            ShardStoreError::Unavailable { .. } => Code::Unavailable,
            ShardStoreError::Unauthenticated { .. } => Code::Unauthenticated,
            ShardStoreError::FileMissing { .. } => Code::NotFound,
            ShardStoreError::ChecksumMismatch { .. } | ShardStoreError::FileDamaged { .. } => {
                Code::DataLoss
            }
            ShardStoreError::FileConflict { .. } => Code::AlreadyExists,
            ShardStoreError::DiskFull { .. } => Code::ResourceExhausted,
            ShardStoreError::WrongCluster { .. } => Code::FailedPrecondition,
            ShardStoreError::Protocol { .. } | ShardStoreError::Config { .. } => {
                Code::InvalidArgument
            }
            ShardStoreError::DataFusion(DF::Plan(_) | DF::SchemaError(..)) => Code::InvalidArgument,
            ShardStoreError::DataFusion(DF::NotImplemented(_)) => Code::Unimplemented,
            ShardStoreError::Remote { .. }
            | ShardStoreError::Io { .. }
            | ShardStoreError::Bind { .. }
            | ShardStoreError::Arrow(_)
            | ShardStoreError::Parquet(_)
            | ShardStoreError::DataFusion(_)
            | ShardStoreError::Internal { .. } => Code::Internal,
        };
        let message = self.to_string();
        match WireError::from_error(self).and_then(|w| serde_json::to_vec(&w).ok()) {
            Some(details) => Status::with_details(code, message, details.into()),
            None => Status::new(code, message),
        }
    }

    /// The error a client reports for `status` received from (or on the way to) `addr`.
    pub(crate) fn from_status(addr: &str, status: Status) -> Self {
        if let Ok(wire) = serde_json::from_slice::<WireError>(status.details()) {
            return wire.into_error(addr);
        }
        // A status with a local source was made by tonic on this side from a transport
        // failure (connect refused, reset, broken h2 stream): the worker is unreachable.
        if status.code() == Code::Unavailable || std::error::Error::source(&status).is_some() {
            // tonic's message is often just "transport error": the innermost cause says what
            // happened (refused, reset, a TLS alert).
            let mut message = status.message().to_string();
            let mut source = std::error::Error::source(&status);
            let mut innermost = None;
            while let Some(e) = source {
                innermost = Some(e.to_string());
                source = e.source();
            }
            if let Some(cause) = innermost.filter(|c| !message.contains(c.as_str())) {
                message = format!("{message}: {cause}");
            }
            return ShardStoreError::Unavailable {
                addr: addr.to_string(),
                message,
            };
        }
        if status.code() == Code::Unauthenticated {
            return ShardStoreError::Unauthenticated {
                addr: addr.to_string(),
            };
        }
        ShardStoreError::Remote {
            code: format!("{:?}", status.code()),
            message: status.message().to_string(),
        }
    }

    /// The error a client reports for a Flight-level error while talking to `addr`.
    pub(crate) fn from_flight(addr: &str, error: arrow_flight::error::FlightError) -> Self {
        use arrow_flight::error::FlightError as FE;
        match error {
            FE::Tonic(status) => Self::from_status(addr, *status),
            FE::Arrow(e) => ShardStoreError::Arrow(e),
            FE::ExternalError(e) => match e.downcast::<ShardStoreError>() {
                Ok(ours) => *ours,
                Err(other) => ShardStoreError::protocol(other.to_string()),
            },
            FE::NotYetImplemented(m) | FE::ProtocolError(m) | FE::DecodeError(m) => {
                ShardStoreError::Protocol { message: m }
            }
        }
    }
}

/// Prefix of a [`ShardStoreError`] written as text by [`ShardStoreError::into_task_error`].
const TASK_ERROR_PREFIX: &str = "shoal-worker-error:";

/// A [`ShardStoreError`] raised in a task of a distributed query. datafusion-distributed
/// sends an external error to the coordinator as its text only, so the text is the error's
/// wire form; [`ShardStoreError::from_task_error`] reads it back there.
#[derive(Debug)]
struct TaskError(String);

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskError {}

#[derive(Serialize, Deserialize)]
struct TaskErrorText {
    message: String,
    wire: Option<WireError>,
    /// The worker the error is about, where the wire form leaves it to the receiver.
    addr: String,
}

impl ShardStoreError {
    /// This error as a task of a distributed query reports it: a DataFusion error stays one
    /// (datafusion-distributed keeps its kind), any other becomes its wire form.
    pub fn into_task_error(self) -> datafusion::error::DataFusionError {
        use datafusion::error::DataFusionError as DF;
        match self {
            ShardStoreError::DataFusion(e) => e,
            ShardStoreError::Arrow(e) => DF::ArrowError(Box::new(e), None),
            other => {
                let addr = match &other {
                    ShardStoreError::FileDamaged { worker, .. } => worker.clone(),
                    _ => String::new(),
                };
                let text = TaskErrorText {
                    message: other.to_string(),
                    wire: WireError::from_error(&other),
                    addr,
                };
                match serde_json::to_string(&text) {
                    Ok(json) => {
                        DF::External(Box::new(TaskError(format!("{TASK_ERROR_PREFIX}{json}"))))
                    }
                    Err(_) => DF::External(Box::new(other)),
                }
            }
        }
    }

    /// The error a task of a distributed query raised with
    /// [`ShardStoreError::into_task_error`], from the text the coordinator received.
    pub fn from_task_error(text: &str) -> Option<ShardStoreError> {
        let json = text.strip_prefix(TASK_ERROR_PREFIX)?;
        let TaskErrorText {
            message,
            wire,
            addr,
        } = serde_json::from_str(json).ok()?;
        Some(match wire {
            Some(wire) => wire.into_error(&addr),
            None => ShardStoreError::Remote {
                code: "task".into(),
                message,
            },
        })
    }
}

impl From<ShardStoreError> for Status {
    fn from(e: ShardStoreError) -> Self {
        e.to_status()
    }
}

/// Is this the "no space left on device" error?
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// The machine-readable form of the variants a caller matches on, carried in the status
/// details as JSON. The `kind` tags are part of the wire protocol: never rename them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireError {
    Unavailable {
        addr: String,
        message: String,
    },
    /// Relayed: a worker pulling files from another worker was refused by it.
    Unauthenticated {
        addr: String,
    },
    FileMissing {
        table_id: i64,
        shard_id: i64,
        name: String,
    },
    ChecksumMismatch {
        name: String,
        expected_bytes: u64,
        actual_bytes: u64,
        expected_checksum: u32,
        actual_checksum: u32,
    },
    FileConflict {
        table_id: i64,
        shard_id: i64,
        name: String,
        live_bytes: u64,
        staged_bytes: u64,
    },
    FileDamaged {
        table_id: i64,
        shard_id: i64,
        name: String,
        damage: String,
    },
    DiskFull {
        message: String,
    },
    WrongCluster {
        expected: String,
        actual: String,
    },
    Protocol {
        message: String,
    },
    Config {
        message: String,
    },
    /// A file-system operation on the worker failed (the path is the worker's).
    Io {
        path: String,
        message: String,
    },
    /// An expression failed on the worker the way it fails anywhere (overflow, division by
    /// zero); the client rebuilds the same DataFusion error so it maps to the same SQLSTATE.
    Evaluation {
        failure: EvaluationFailure,
        message: String,
    },
}

/// Which evaluation error crossed the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EvaluationFailure {
    ArithmeticOverflow,
    DivideByZero,
    /// The worker's memory limit: the query needs more than it may hold.
    ResourcesExhausted,
}

/// The arrow evaluation error inside `e`, if that is what it is.
fn evaluation_failure(
    e: &datafusion::error::DataFusionError,
) -> Option<(EvaluationFailure, String)> {
    use arrow::error::ArrowError as A;
    use datafusion::error::DataFusionError as DF;
    match e {
        DF::ArrowError(a, _) => match a.as_ref() {
            A::ArithmeticOverflow(m) => Some((EvaluationFailure::ArithmeticOverflow, m.clone())),
            A::DivideByZero => Some((EvaluationFailure::DivideByZero, String::new())),
            _ => None,
        },
        DF::ResourcesExhausted(m) => Some((EvaluationFailure::ResourcesExhausted, m.clone())),
        DF::Context(_, inner) | DF::Diagnostic(_, inner) => evaluation_failure(inner),
        DF::Shared(inner) => evaluation_failure(inner),
        _ => None,
    }
}

impl WireError {
    fn from_error(e: &ShardStoreError) -> Option<Self> {
        Some(match e {
            ShardStoreError::Unavailable { addr, message } => WireError::Unavailable {
                addr: addr.clone(),
                message: message.clone(),
            },
            ShardStoreError::Unauthenticated { addr } => {
                WireError::Unauthenticated { addr: addr.clone() }
            }
            ShardStoreError::FileMissing {
                table_id,
                shard_id,
                name,
            } => WireError::FileMissing {
                table_id: *table_id,
                shard_id: *shard_id,
                name: name.clone(),
            },
            ShardStoreError::ChecksumMismatch {
                name,
                expected_bytes,
                actual_bytes,
                expected_checksum,
                actual_checksum,
            } => WireError::ChecksumMismatch {
                name: name.clone(),
                expected_bytes: *expected_bytes,
                actual_bytes: *actual_bytes,
                expected_checksum: *expected_checksum,
                actual_checksum: *actual_checksum,
            },
            ShardStoreError::FileConflict {
                table_id,
                shard_id,
                name,
                live_bytes,
                staged_bytes,
            } => WireError::FileConflict {
                table_id: *table_id,
                shard_id: *shard_id,
                name: name.clone(),
                live_bytes: *live_bytes,
                staged_bytes: *staged_bytes,
            },
            ShardStoreError::FileDamaged {
                table_id,
                shard_id,
                name,
                damage,
                ..
            } => WireError::FileDamaged {
                table_id: *table_id,
                shard_id: *shard_id,
                name: name.clone(),
                damage: damage.clone(),
            },
            ShardStoreError::DiskFull { message } => WireError::DiskFull {
                message: message.clone(),
            },
            ShardStoreError::WrongCluster { expected, actual } => WireError::WrongCluster {
                expected: expected.clone(),
                actual: actual.clone(),
            },
            ShardStoreError::Protocol { message } => WireError::Protocol {
                message: message.clone(),
            },
            ShardStoreError::Config { message } => WireError::Config {
                message: message.clone(),
            },
            ShardStoreError::Io { path, source } => WireError::Io {
                path: path.display().to_string(),
                message: source.to_string(),
            },
            ShardStoreError::DataFusion(d) => {
                let (failure, message) = evaluation_failure(d)?;
                WireError::Evaluation { failure, message }
            }
            _ => return None,
        })
    }

    /// The error this stands for, from the worker at `addr`.
    fn into_error(self, addr: &str) -> ShardStoreError {
        match self {
            WireError::FileDamaged {
                table_id,
                shard_id,
                name,
                damage,
            } => ShardStoreError::FileDamaged {
                table_id,
                shard_id,
                name,
                worker: addr.to_string(),
                damage,
            },
            WireError::Unavailable { addr, message } => {
                ShardStoreError::Unavailable { addr, message }
            }
            WireError::Unauthenticated { addr } => ShardStoreError::Unauthenticated { addr },
            WireError::FileMissing {
                table_id,
                shard_id,
                name,
            } => ShardStoreError::FileMissing {
                table_id,
                shard_id,
                name,
            },
            WireError::ChecksumMismatch {
                name,
                expected_bytes,
                actual_bytes,
                expected_checksum,
                actual_checksum,
            } => ShardStoreError::ChecksumMismatch {
                name,
                expected_bytes,
                actual_bytes,
                expected_checksum,
                actual_checksum,
            },
            WireError::FileConflict {
                table_id,
                shard_id,
                name,
                live_bytes,
                staged_bytes,
            } => ShardStoreError::FileConflict {
                table_id,
                shard_id,
                name,
                live_bytes,
                staged_bytes,
            },
            WireError::DiskFull { message } => ShardStoreError::DiskFull { message },
            WireError::WrongCluster { expected, actual } => {
                ShardStoreError::WrongCluster { expected, actual }
            }
            WireError::Protocol { message } => ShardStoreError::Protocol { message },
            WireError::Config { message } => ShardStoreError::Config { message },
            WireError::Io { path, message } => ShardStoreError::Io {
                path: PathBuf::from(path),
                source: std::io::Error::other(format!("{message} (on worker {addr})")),
            },
            WireError::Evaluation { failure, message } => {
                let arrow = match failure {
                    EvaluationFailure::ArithmeticOverflow => {
                        arrow::error::ArrowError::ArithmeticOverflow(message)
                    }
                    EvaluationFailure::DivideByZero => arrow::error::ArrowError::DivideByZero,
                    EvaluationFailure::ResourcesExhausted => {
                        return ShardStoreError::DataFusion(
                            datafusion::error::DataFusionError::ResourcesExhausted(format!(
                                "{message} (on worker {addr})"
                            )),
                        );
                    }
                };
                ShardStoreError::DataFusion(arrow.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
