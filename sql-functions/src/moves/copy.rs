//! `copy` (phase `copying`): the target pulls every file the catalog lists for the group's source
//! placements into its staging directory, verifying size and CRC-32C of each.
//!
//! - → `catch_up` when the files listed at the start are staged.
//! - → error (rolled back) when the source or target fails, a checksum does not match, or the
//!   move is cancelled. Files already staged are skipped on a re-run (the target checks them).

use super::{MoveRun, Step};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    let group = run.group()?;
    let (delta, bytes) = run.delta(&group);
    run.task.bytes_total = run.volatile.bytes_done + bytes;
    run.save_progress(0)?;
    run.pull(delta).await?;
    Ok(Step::CatchUp)
}
