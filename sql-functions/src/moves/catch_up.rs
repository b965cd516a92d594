//! `catch_up` (phase `copying`): copies the files committed to the source since the last round,
//! while writes continue.
//!
//! - → `fence` when the remaining delta is small enough to copy under the fence well within
//!   `rebalance.write_fence_timeout_ms` (at most 8 MiB, less under a bandwidth limit), or at
//!   once when the fence is already closed (`block_writes`).
//! - → `catch_up` after copying a larger delta.
//! - → deferred ([`ClusterError::MoveDeferred`], resumed at `copy` later with the staged copy
//!   kept) when writers keep outpacing the copy for many rounds; → error as in `copy`.

use super::{MoveRun, Step, MAX_CATCH_UP_ROUNDS};
use crate::error::{ClusterError, Result};

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    if run.volatile.fence.is_some() {
        return Ok(Step::Fence);
    }
    let group = run.group()?;
    let (delta, bytes) = run.delta(&group);
    if bytes <= run.fence_delta_bytes() {
        return Ok(Step::Fence);
    }
    run.volatile.catch_up_rounds += 1;
    if run.volatile.catch_up_rounds > MAX_CATCH_UP_ROUNDS {
        return Err(ClusterError::MoveDeferred {
            message: format!(
                "writes to shard {} outpace its copy: {} bytes still to copy after {} rounds",
                run.task.shard_id, bytes, MAX_CATCH_UP_ROUNDS
            ),
            hint: Some(
                "The move is retried later; raise rebalance.max_bandwidth_mb if it limits the copy."
                    .into(),
            ),
        });
    }
    run.task.bytes_total = run.volatile.bytes_done + bytes;
    run.pull(delta).await?;
    Ok(Step::CatchUp)
}
