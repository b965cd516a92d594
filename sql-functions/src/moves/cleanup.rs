//! `cleanup`: removes the target's staging directory and runs the deferred deletes of the
//! source's files of this group that are already allowed (no query older than the switch
//! runs). Deletes still held by a running query, and everything else due, are left to the
//! cleanup loop: the move does not wait for them.
//!
//! - → `done`; a failure here is retried without undoing the move.

use tracing::warn;

use super::{MoveRun, Phase};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Phase> {
    if let Err(e) = run.target.discard_staging(run.task_id()).await {
        warn!(task_id = run.task_id(), error = %e, "staging not removed; the worker removes it later");
    }
    // The move reads nothing from the source any more: its snapshot no longer needs to hold
    // back the deletes of the source's files.
    run.snapshot = None;
    let deleted = async {
        let shard_ids: Vec<i64> = run.group()?.iter().map(|g| g.shard_id).collect();
        let records = run
            .cluster
            .catalog()
            .pending_cleanup_for(run.task.source_node_id, &shard_ids)?;
        run.cluster.run_cleanup_records(&records).await
    };
    if let Err(e) = deleted.await {
        warn!(task_id = run.task_id(), error = %e, "deferred deletes left to the cleanup loop");
    }
    Ok(Phase::Done)
}
