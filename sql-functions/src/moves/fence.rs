//! `fence` (phase `copying`): closes the group's write gate. Statements in flight finish and commit
//! first; new ones wait behind the fence. Reads go on.
//!
//! - → `switch` with the fence held.
//! - → `catch_up` when the fence could not be taken within
//!   `rebalance.write_fence_timeout_ms` (writers are never held longer); after a few such
//!   attempts → deferred ([`ClusterError::MoveDeferred`]): the scheduler resumes the move at
//!   `copy` later, its staged copy kept.
//!
//! After a coordinator crash the fence is gone with the process; the move resumes at `copy`
//! (which lists every file again; the target skips those it staged), then `catch_up` finds
//! the delta small and comes back here.

use super::{MoveRun, Step, MAX_FENCE_ATTEMPTS};
use crate::error::{ClusterError, Result};

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    if run.take_fence().await {
        return Ok(Step::Switch);
    }
    run.volatile.fence_attempts += 1;
    if run.volatile.fence_attempts >= MAX_FENCE_ATTEMPTS {
        return Err(ClusterError::MoveDeferred {
            message: format!(
                "could not fence writes to shard {} within {} ms ({} attempts)",
                run.task.shard_id,
                run.settings.fence_timeout.as_millis(),
                run.volatile.fence_attempts
            ),
            hint: Some(
                "Long-running writes hold the shard group; the move is retried later. Raise rebalance.write_fence_timeout_ms to wait longer."
                    .into(),
            ),
        });
    }
    Ok(Step::CatchUp)
}
