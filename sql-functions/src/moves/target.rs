//! What a move asks of its target worker, as a trait: the production implementation is the
//! worker's client ([`WorkerClient`]), and the state machine's unit tests drive every step
//! against a fake that keeps the target's staging in memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use shoal_shard_store::{PullFilesRequest, ShardStoreError, WorkerClient};

use crate::error::Result;

pub(crate) type Call<'a, T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, ShardStoreError>> + Send + 'a>>;

/// Opens the [`MoveTarget`] of a worker address (a retargeted move opens another).
pub(crate) type ConnectTarget = Arc<dyn Fn(&str) -> Result<Arc<dyn MoveTarget>> + Send + Sync>;

/// The target worker's side of a move. Every call is idempotent, as the steps that make it.
pub(crate) trait MoveTarget: Send + Sync {
    /// Copies the files from the source into the move's staging directory, verifying each
    /// one's size and CRC-32C; files staged and verified before are skipped. Returns the
    /// bytes copied by this call.
    fn pull_files<'a>(&'a self, req: &'a PullFilesRequest) -> Call<'a, u64>;
    /// Bytes received so far by the running `pull_files` of move `task_id`.
    fn pull_progress(&self, task_id: i64) -> Call<'_, Option<u64>>;
    /// Moves staged files into the shard's live directory, durably.
    fn adopt_staged(
        &self,
        task_id: i64,
        table_id: i64,
        shard_id: i64,
        names: Vec<String>,
    ) -> Call<'_, ()>;
    /// Removes the shards' live directories.
    fn drop_shards(&self, table_id: i64, shard_ids: Vec<i64>) -> Call<'_, ()>;
    /// Removes the move's staging directory.
    fn discard_staging(&self, task_id: i64) -> Call<'_, ()>;
    /// Free bytes on the worker's data disk.
    fn disk_free_bytes(&self) -> Call<'_, u64>;
}

impl MoveTarget for WorkerClient {
    fn pull_files<'a>(&'a self, req: &'a PullFilesRequest) -> Call<'a, u64> {
        Box::pin(async move { Ok(WorkerClient::pull_files(self, req).await?.bytes_copied) })
    }

    fn pull_progress(&self, task_id: i64) -> Call<'_, Option<u64>> {
        Box::pin(WorkerClient::pull_progress(self, task_id))
    }

    fn adopt_staged(
        &self,
        task_id: i64,
        table_id: i64,
        shard_id: i64,
        names: Vec<String>,
    ) -> Call<'_, ()> {
        Box::pin(WorkerClient::adopt_staged(
            self, task_id, table_id, shard_id, names,
        ))
    }

    fn drop_shards(&self, table_id: i64, shard_ids: Vec<i64>) -> Call<'_, ()> {
        Box::pin(WorkerClient::drop_shards(self, table_id, shard_ids))
    }

    fn discard_staging(&self, task_id: i64) -> Call<'_, ()> {
        Box::pin(WorkerClient::discard_staging(self, task_id))
    }

    fn disk_free_bytes(&self) -> Call<'_, u64> {
        Box::pin(async move { Ok(self.health().await?.disk_free_bytes) })
    }
}
