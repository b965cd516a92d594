//! `switched`: the catalog names the target; queries planned from now on read it, and the
//! source's files are deferred cleanup records. The write fence is open again.
//!
//! - → `cleanup` always.

use super::{MoveRun, Phase};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Phase> {
    run.open_fence();
    Ok(Phase::Cleanup)
}
