//! `prepare` (phase `preparing`): checks that the move can happen and records, before anything is
//! copied, how to undo it.
//!
//! - → `copy` once: the source and target are known, live nodes (for a rebalance or a
//!   drain, the target still takes shards: one drained, disallowed or down since the plan is
//!   replaced by the node the planner would pick now, if any); no earlier deferred
//!   delete is pending for these shards on the target; the on-failure cleanup records for the
//!   target exist; the target has room for the group (10% of its free space stays free).
//!   In `block_writes` mode the write fence closes here and stays closed until the switch.
//! - → error (rolled back, retried by the scheduler) otherwise. Every check re-reads reality,
//!   so running this twice is harmless.

use tracing::info;

use super::{MoveRun, Step};
use crate::error::{ClusterError, Result};

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    let cluster = std::sync::Arc::clone(&run.cluster);
    let catalog = cluster.catalog();
    let nodes = catalog.list_nodes()?;
    let node = |id: i64, what: &str| {
        nodes
            .iter()
            .find(|n| n.node_id == id)
            .cloned()
            .ok_or_else(|| ClusterError::NotInState {
                message: format!("{what} node {id} of the move no longer exists"),
                hint: None,
            })
    };
    let source = node(run.task.source_node_id, "source")?;
    let mut target = node(run.task.target_node_id, "target")?;
    // A planned move (rebalance, drain) lands only on a node that takes shards at the time
    // it starts: the node may have been drained or disallowed since the plan was made; the
    // move then goes to the node the planner would pick now. An explicit move_shard names
    // its target and may go anywhere live.
    let job_type = catalog.job(run.task.job_id)?.job_type;
    let planned = crate::rebalance::REBALANCE_JOB_TYPES.contains(&job_type);
    if planned && (!target.should_have_shards || !target.is_live) {
        if let Some(other) = run.cluster.replacement_target(&run.task)? {
            if catalog.retarget_task(run.task_id(), other.node_id, &other.addr())? {
                let note = format!(
                    "planned for {}, which no longer takes shards; moved to {} instead",
                    target.addr(),
                    other.addr()
                );
                info!(task_id = run.task_id(), from = %target.addr(), to = %other.addr(), "move retargeted");
                catalog.set_task_message(run.task_id(), &note)?;
                run.retarget(&other)?;
                target = other;
            }
        }
    }
    if planned && (!target.should_have_shards || !target.is_live) {
        return Err(ClusterError::NotInState {
            message: format!(
                "the target {} of the move of shard {} no longer takes shards ({})",
                target.addr(),
                run.task.shard_id,
                if target.is_live {
                    "it is draining or disallowed"
                } else {
                    "it is not live"
                }
            ),
            hint: Some("Run rebalance_start() again to plan the moves anew.".into()),
        });
    }
    let group = run.group()?;
    if group
        .iter()
        .all(|g| g.on_target && (run.settings.keep_source || g.source_placement.is_none()))
    {
        // Switched by an earlier run whose state was lost: nothing to copy.
        return Ok(Step::Cleanup);
    }
    if group.iter().all(|g| g.source_placement.is_none()) {
        return Err(ClusterError::NotInState {
            message: format!(
                "shard {} has no placement on {} any more",
                run.task.shard_id,
                source.addr()
            ),
            hint: None,
        });
    }
    // A deferred delete of an earlier placement on the target would remove the new copy
    // (file names are kept); run it now or wait for the queries that hold it.
    let shard_ids: Vec<i64> = group.iter().map(|g| g.shard_id).collect();
    let pending = catalog.pending_cleanup_for(target.node_id, &shard_ids)?;
    if !pending.is_empty() {
        run.cluster.run_cleanup_records_now(&pending).await?;
        if !catalog
            .pending_cleanup_for(target.node_id, &shard_ids)?
            .is_empty()
        {
            return Err(ClusterError::NotInState {
                message: format!(
                    "old files of shard {} on {} are still waiting for running queries to end",
                    run.task.shard_id,
                    target.addr()
                ),
                hint: Some("The move is retried automatically.".into()),
            });
        }
    }
    let shards: Vec<(i64, i64)> = group.iter().map(|g| (g.table_id, g.shard_id)).collect();
    catalog.add_move_target_records(run.task_id(), target.node_id, &shards)?;
    let bytes: u64 = group.iter().flat_map(|g| &g.files).map(|f| f.bytes).sum();
    let disk_free_bytes = run.volatile.target.disk_free_bytes().await?;
    let reserve = disk_free_bytes / 10;
    if bytes.saturating_add(reserve) > disk_free_bytes {
        return Err(ClusterError::DiskFull {
            message: format!(
                "not enough disk space on {} for shard {}: {} bytes needed, {} bytes free (10% must stay free)",
                target.addr(),
                run.task.shard_id,
                bytes,
                disk_free_bytes
            ),
            hint: Some("Free disk space on the target, or move the shard elsewhere.".into()),
        });
    }
    run.task.bytes_total = bytes;
    run.save_progress(0)?;
    if run.settings.mode.blocks_writes() && !run.take_fence().await {
        return Err(ClusterError::MoveDeferred {
            message: format!(
                "could not block writes to shard {} within {} ms",
                run.task.shard_id,
                run.settings.fence_timeout.as_millis()
            ),
            hint: Some("Long-running statements hold the shard group; the move is retried.".into()),
        });
    }
    Ok(Step::Copy)
}
