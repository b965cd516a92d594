//! `cleanup` (phase `switched`): starts, in the background, the removal of the target's staging
//! directory and the deferred deletes of the source's files of this group that are already allowed
//! (no query older than the switch runs): the move is complete at the switch, and its caller does
//! not wait for the unlinks (as Citus defers the drop of the source placement). Deletes still held
//! by a running query, one that fails, and everything else due are left to the cleanup loop.
//!
//! - → `done`; a failure here is retried without undoing the move.

use std::sync::Arc;

use tracing::{warn, Instrument};

use super::{MoveRun, Step};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    // The move reads nothing from the source any more: its snapshot no longer needs to hold
    // back the deletes of the source's files.
    run.volatile.snapshot = None;
    let shard_ids = run
        .group()
        .map(|group| group.iter().map(|g| g.shard_id).collect::<Vec<i64>>());
    let (cluster, target) = (Arc::clone(&run.cluster), Arc::clone(&run.volatile.target));
    let (task_id, source_node_id) = (run.task_id(), run.task.source_node_id);
    tokio::spawn(
        async move {
            // After the adopt the staging directory holds only empty directories (a failure
            // leaves those behind).
            if let Err(e) = target.discard_staging(task_id).await {
                warn!(task_id, error = %e, "empty staging directories of the move not removed");
            }
            let deleted = async {
                let records = cluster
                    .catalog()
                    .pending_cleanup_for(source_node_id, &shard_ids?)?;
                if records.is_empty() {
                    return Ok(0);
                }
                cluster.run_cleanup_records(&records).await
            };
            if let Err(e) = deleted.await {
                warn!(task_id, error = %e, "deferred deletes left to the cleanup loop");
            }
        }
        .in_current_span(),
    );
    Ok(Step::Done)
}
