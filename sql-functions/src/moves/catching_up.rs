//! `catching_up`: copies the files committed to the source since the last round, while writes
//! continue.
//!
//! - → `fenced` when the remaining delta is small (or after a bounded number of rounds, so a
//!   fast writer cannot starve the move), or at once when the fence is already closed
//!   (`block_writes`).
//! - → `catching_up` after copying a larger delta.
//! - → error (rolled back) as in `copying`.

use super::{MoveRun, Phase, FENCE_DELTA_BYTES, MAX_CATCH_UP_ROUNDS};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Phase> {
    if run.fence.is_some() {
        return Ok(Phase::Fenced);
    }
    let group = run.group()?;
    let (delta, bytes) = run.delta(&group);
    if bytes <= FENCE_DELTA_BYTES || run.catch_up_rounds >= MAX_CATCH_UP_ROUNDS {
        return Ok(Phase::Fenced);
    }
    run.catch_up_rounds += 1;
    run.bytes_total = run.bytes_done + bytes;
    run.pull(delta).await?;
    Ok(Phase::CatchingUp)
}
