//! `fenced`: closes the group's write gate. Statements in flight finish and commit first;
//! new ones wait behind the fence. Reads go on.
//!
//! - → `final_sync` with the fence held.
//! - → `catching_up` when the fence could not be taken within
//!   `rebalance.write_fence_timeout_ms` (writers are never held longer); after a few such
//!   attempts → deferred ([`ClusterError::MoveDeferred`]): the scheduler resumes the move in
//!   `catching_up` later, its staged copy kept.
//!
//! After a coordinator crash in this state the fence is gone with the process; resuming here
//! simply takes it again.

use super::{MoveRun, Phase, MAX_FENCE_ATTEMPTS};
use crate::error::{ClusterError, Result};

pub(super) async fn run(run: &mut MoveRun) -> Result<Phase> {
    if run.take_fence().await {
        return Ok(Phase::FinalSync);
    }
    run.fence_attempts += 1;
    if run.fence_attempts >= MAX_FENCE_ATTEMPTS {
        return Err(ClusterError::MoveDeferred {
            message: format!(
                "could not fence writes to shard {} within {} ms ({} attempts)",
                run.task.shard_id,
                run.fence_timeout.as_millis(),
                run.fence_attempts
            ),
            hint: Some(
                "Long-running writes hold the shard group; the move is retried later. Raise rebalance.write_fence_timeout_ms to wait longer."
                    .into(),
            ),
        });
    }
    Ok(Phase::CatchingUp)
}
