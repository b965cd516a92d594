//! `cleanup`: removes the target's staging directory and runs the deferred deletes of the
//! source's files that are already allowed (no query older than the switch runs). Deletes
//! still held by a running query are left to the cleanup loop.
//!
//! - → `done`; a failure here is retried without undoing the move.

use tracing::warn;

use super::{MoveRun, Phase};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Phase> {
    if let Err(e) = run.target.discard_staging(run.task_id()).await {
        warn!(task_id = run.task_id(), error = %e, "staging not removed; the worker removes it later");
    }
    if let Err(e) = run.cluster.cleanup_once().await {
        warn!(task_id = run.task_id(), error = %e, "deferred deletes left to the cleanup loop");
    }
    Ok(Phase::Done)
}
