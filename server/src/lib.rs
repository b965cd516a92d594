//! The `shoal` binary. The process: command line (`cli`), coordinator start-up
//! (`coordinator`), the `dev` launcher, `recover-catalog`, `/metrics`; the PostgreSQL surface
//! (`frontend`); the DataFusion layer (`query`). `shoal bench` runs the `shoal-bench` crate
//! (`server/bench`), which is not part of the server's code.
//!
//! ```text
//!  psql / driver ──pgwire──► frontend::wire ──► frontend::session (the connection's transaction)
//!                              ├─► frontend::hook (DDL, COPY, UPDATE/DELETE, cluster fns)
//!                              │          └─► query::dml, sql-functions::Cluster
//!                              └─► DataFusion ──► query::provider::DistributedTable
//!                                       ├─ scan ─► query::scan::ShardScanExec ─Flight─► workers
//!                                       └─ insert ─► query::sink::InsertSink ─Flight─► workers
//! ```

pub mod cli;
mod coordinator;
mod dev;
mod frontend;
mod metrics;
mod query;
mod recover;

pub use coordinator::{run_coordinator, session_context, CoordinatorOptions, MemoryLimit};
pub use frontend::wire::Passwords;

/// Why a `shoal` process could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad configuration or a resource that could not be opened at start.
    #[error("{0}")]
    Startup(String),
    /// The worker service failed.
    #[error(transparent)]
    Worker(#[from] shoal_shard_store::ShardStoreError),
    /// A `shoal bench` scenario could not run to its end.
    #[error(transparent)]
    Bench(#[from] shoal_bench::BenchError),
    /// An I/O error outside any client request.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
