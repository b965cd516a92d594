//! `cleanup`: starts the removal of the target's staging directory and the deferred deletes of
//! the source's files of this group that are already allowed (no query older than the switch
//! runs), in the background: the move is complete at the switch, and its caller does not wait
//! for the unlinks (as Citus defers the drop of the source placement). Deletes still held by a
//! running query, one that fails, and everything else due are left to the cleanup loop.
//!
//! - → `done`; a failure here is retried without undoing the move.

use std::sync::Arc;

use tracing::{warn, Instrument};

use super::{MoveRun, Phase};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Phase> {
    // After the adopt the staging directory holds only empty directories: removing it is
    // housekeeping the caller need not wait for (a failure leaves those empty directories).
    let (target, task_id) = (run.target.clone(), run.task_id());
    tokio::spawn(
        async move {
            if let Err(e) = target.discard_staging(task_id).await {
                warn!(task_id, error = %e, "empty staging directories of the move not removed");
            }
        }
        .in_current_span(),
    );
    // The move reads nothing from the source any more: its snapshot no longer needs to hold
    // back the deletes of the source's files.
    run.snapshot = None;
    let records = run.group().and_then(|group| {
        let shard_ids: Vec<i64> = group.iter().map(|g| g.shard_id).collect();
        Ok(run
            .cluster
            .catalog()
            .pending_cleanup_for(run.task.source_node_id, &shard_ids)?)
    });
    match records {
        Ok(records) if !records.is_empty() => {
            let cluster = Arc::clone(&run.cluster);
            let task_id = run.task_id();
            tokio::spawn(
                async move {
                    if let Err(e) = cluster.run_cleanup_records(&records).await {
                        warn!(task_id, error = %e, "deferred deletes left to the cleanup loop");
                    }
                }
                .in_current_span(),
            );
        }
        Ok(_) => {}
        Err(e) => {
            warn!(task_id = run.task_id(), error = %e, "deferred deletes left to the cleanup loop")
        }
    }
    Ok(Phase::Done)
}
