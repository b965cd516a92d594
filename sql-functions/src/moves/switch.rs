//! `switch` (phase `copying`, fence held): copies the last delta, checks that the target holds
//! every file the source lists (each was verified against the catalog's size and checksum as it was
//! staged), adopts the staged files into the target's live directory and switches.
//!
//! - → `cleanup` after the switch transaction, which records the phase `switched` with the
//!   new placements; the fence opens.
//! - → `catch_up`, fence opened, when the fenced work would outlast
//!   `rebalance.write_fence_timeout_ms`: writers are never held longer; the files copied so
//!   far stay staged for the next round.
//!   After a few such rounds → deferred ([`ClusterError::MoveDeferred`]), the staged copy
//!   kept for the retry.
//! - → error (rolled back) on a failed copy or a conflicting change of the source's files.
//!
//! Without the fence this step first takes it again (→ `fence`). After a crash between the
//! adopt and the switch the move resumes at `copy`: adopting again is idempotent (a live file
//! of the same name and size counts as adopted).

use std::time::Instant;

use tracing::info;

use super::{MovePhase, MoveRun, Step, MAX_FENCE_ATTEMPTS};
use crate::error::{ClusterError, Result};

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    if run.volatile.fence.is_none() {
        return Ok(Step::Fence);
    }
    let started = Instant::now();
    let deadline = run.settings.fence_timeout;
    let work = async {
        let group = run.group()?;
        let (delta, _) = run.delta(&group);
        run.pull(delta).await?;
        for g in &group {
            let staged = run.volatile.staged.get(&g.shard_id);
            if let Some(missing) = g
                .files
                .iter()
                .find(|f| !staged.is_some_and(|s| s.contains(&f.name)))
            {
                return Err(ClusterError::Internal {
                    message: format!(
                        "file {} of shard {} was not staged",
                        missing.name, g.shard_id
                    ),
                });
            }
        }
        for g in &group {
            let names: Vec<String> = g.files.iter().map(|f| f.name.clone()).collect();
            if g.on_target || g.source_placement.is_none() {
                continue;
            }
            run.volatile
                .target
                .adopt_staged(run.task.task_id, g.table_id, g.shard_id, names)
                .await?;
        }
        Ok::<_, ClusterError>(group)
    };
    let group = match tokio::time::timeout(deadline, work).await {
        Ok(r) => r?,
        Err(_) => {
            run.open_fence();
            run.volatile.fence_attempts += 1;
            if run.volatile.fence_attempts >= MAX_FENCE_ATTEMPTS {
                return Err(ClusterError::MoveDeferred {
                    message: format!(
                        "the final copy of shard {} outlasted the write fence timeout ({} ms) {} times",
                        run.task.shard_id,
                        deadline.as_millis(),
                        run.volatile.fence_attempts
                    ),
                    hint: Some("The move is retried later. Raise rebalance.write_fence_timeout_ms or rebalance.max_bandwidth_mb.".into()),
                });
            }
            info!(
                task_id = run.task_id(),
                "final copy outlasted the write fence timeout; catching up again"
            );
            return Ok(Step::CatchUp);
        }
    };
    let bytes: u64 = group.iter().flat_map(|g| &g.files).map(|f| f.bytes).sum();
    run.task.bytes_total = bytes.max(run.volatile.bytes_done);
    run.cluster.catalog().set_task_progress(
        run.task_id(),
        run.task.bytes_total,
        run.volatile.bytes_done.max(bytes),
        bytes,
    )?;
    run.cluster.catalog().switch_placements(
        run.task_id(),
        run.settings.keep_source,
        run.task.source_node_id,
        run.task.target_node_id,
        &group,
    )?;
    // The transaction recorded the phase with the placements.
    run.task.phase = MovePhase::Switched;
    let fenced_ms = started.elapsed().as_millis() as u64;
    run.cluster.record_fence_ms(fenced_ms);
    run.open_fence();
    info!(task_id = run.task_id(), fenced_ms, "switched");
    Ok(Step::Cleanup)
}
