//! Shoal's worker side: immutable Parquet shard files on disk, the worker's Arrow Flight gRPC
//! service, the client the coordinator uses to call it, CRC-32C checksums, cluster-token auth,
//! node-to-node mutual TLS ([`ClusterTls`]), and the worker's copy of the coordinator's catalog
//! journal (`journal_*` actions; read back by `shoal recover-catalog`).
//!
//! Entry points: [`serve_worker`] / [`serve_worker_with_listener`] run a worker (see
//! [`WorkerConfig`]); [`WorkerClient`] calls one; [`ScanRequest`] is the sub-plan a scan
//! runs next to the data. The same port serves datafusion-distributed's task service, whose
//! stages read shards through [`ShardLeafExec`] (see `distributed`).
//!
//! ```text
//! coordinator                              worker (DIR)
//! WorkerClient::put_batches ── DoPut ────► staging/put-<uuid>.parquet.tmp ──fsync, rename──►
//!   batches + commit marker               shards/<table>/<shard>/<uuid>.parquet ──► FileMeta
//! WorkerClient::scan ── DoGet(ScanRequest)► check size (+ CRC-32C once) → DataFusion: listed files → filter →
//!   ◄── schema, then batches ────────────    aggregate | project → limit
//! WorkerClient::{handshake, health, ── DoAction ──► DIR/cluster_id, statvfs, unlink,
//!   delete_files, drop_shards, list_files}           readdir of shards/
//! WorkerClient::verify_files ── DoAction ──► re-read files, compare size + CRC-32C (scrubber)
//!
//! move: coordinator                  target worker                     source worker
//! WorkerClient::pull_files ─ DoAction ─► raw::open ── SHOALRAW1 request (same port) ──►
//!                                        staging/move-<task>/…/<name>.part ◄─ sendfile(2) ─
//!                                        fsync, verify size + CRC-32C, rename to <name>
//!                                        (older source: fetch_file_stream, DoGet(file))
//! WorkerClient::adopt_staged ─────────► rename into shards/<table>/<shard>/, fsync
//! WorkerClient::{discard_staging, list_staging} ─► rm -r staging/move-<task>/, readdir
//! ```
//!
//! Every call carries `authorization: Bearer <cluster token>` when the worker has one; with
//! TLS configured the port takes only TLS connections from peers of the cluster CA. Errors
//! cross the wire as gRPC statuses and come back as the same [`ShardStoreError`] variant.

mod client;
mod distributed;
mod error;
pub mod failpoints;
mod files;
mod integrity;
mod journal;
mod protocol;
mod raw;
mod scan;
mod service;
mod tls;
mod transfer;

pub use client::WorkerClient;
pub use distributed::{
    ClusterChannels, LeafPartitions, LeafPlacement, LeafShard, ShardLeafCodec, ShardLeafExec,
    WorkerSessionHook,
};
pub use error::{Result, ShardStoreError};
pub use integrity::{DamagedFile, FileCheck, FileToVerify};
pub use journal::{JournalCopy, JournalStatus};
pub use protocol::{
    FileChunk, FileMeta, PartialAggregate, PullFilesReport, PullFilesRequest, PullProgressReport,
    ScanRequest, ShardFiles, StoredFile, WorkerInfo,
};
pub use service::{serve_worker, serve_worker_with_listener, WorkerConfig};
pub use tls::{ClusterTls, ClusterTlsFiles};
