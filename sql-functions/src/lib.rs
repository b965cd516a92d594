//! The cluster-management surface of Shoal and its logic: nodes, tables and their shard
//! layout (`create_distributed_table`, reference tables), the write path that routes rows to
//! shards, the background upkeep (heartbeats, cleanup, compaction), moves and rebalancing, and
//! the catalog journal's copies on the workers ([`catalog_journal`]).
//!
//! Entry point: [`Cluster`], shared by every session of the coordinator.
//!
//! ```text
//!  SQL function / INSERT / COPY ──► Cluster ──► Catalog (one tx per change)
//!                                      └──────► WorkerClient (Flight: put / scan / actions)
//!  rows ──► routing::hash_column ──► ShardWriter ──► one Parquet file per shard placement
//!       ──► Catalog::commit_files (all files of the statement in one tx)
//! ```

pub mod catalog_journal;
mod cluster;
mod error;
pub mod failpoints;
pub mod functions;
mod gate;
pub mod histogram;
pub mod integrity;
mod jobs;
mod moves;
pub mod planner;
mod rebalance;
pub mod routing;
mod transfer_rate;
pub mod types;
mod writer;

pub use cluster::SnapshotGuard;
pub use cluster::{now_ms, scan_files, to_record, Cluster, ClusterConfig};
pub use error::{BadValue, ClusterError, Result};
pub use gate::WritePermit;
pub use jobs::run_scheduler;
pub use moves::parse_transfer_mode;
pub use rebalance::{
    JobStatus, PlacementAtRisk, PlanRow, RebalanceRequest, Scheduled, SimulatedNode, Simulation,
};
pub use writer::{
    check_values, conform, first_null, not_null_columns, not_null_message, placement_addr,
    value_checks, Publish, ShardTarget, ShardWriter, ValueCheck, WrittenFile,
};
