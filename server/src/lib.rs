//! The `shoal` binary: command line, coordinator (Postgres wire frontend, sessions, auth,
//! distributed planning and execution over the catalog), worker start-up and the `dev`
//! launcher.
//!
//! ```text
//!  psql / driver ──pgwire──► wire::ShoalHandlers ──► session (the connection's transaction)
//!                                   ├─► hook::ShoalHook (DDL, COPY, UPDATE/DELETE, cluster fns)
//!                                   │          └─► dml, sql-functions::Cluster
//!                                   └─► DataFusion ──► provider::DistributedTable
//!                                            ├─ scan ─► scan::ShardScanExec ─Flight─► workers
//!                                            └─ insert ─► sink::InsertSink ─Flight─► workers
//! ```

mod bench;
pub mod cli;
mod coordinator;
mod copy;
mod dev;
mod dml;
mod errors;
mod frontend;
mod functions;
mod hook;
mod metrics;
mod provider;
mod pushdown;
mod query;
mod recover;
mod scan;
mod session;
mod sink;
mod statement_timeout;
mod views;
mod wire;

pub use coordinator::{run_coordinator, session_context, CoordinatorOptions, MemoryLimit};
pub use wire::Passwords;

/// Why a `shoal` process could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration or a resource that could not be opened at start.
    #[error("{0}")]
    Startup(String),
    /// The worker service failed.
    #[error(transparent)]
    Worker(#[from] shoal_shard_store::ShardStoreError),
    /// An I/O error outside any client request.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
