//! `roll_back` (phase `rolling_back`): undoes a move that did not switch. The fence opens, the
//! target's staging and any adopted copies are removed (its on-failure cleanup records say which
//! shard directories), and the source stays the only authoritative placement.
//!
//! - → `aborted`. When the target cannot be reached, its records become due now and the
//!   cleanup loop deletes the copies once it answers again.

use tracing::warn;

use super::{MoveRun, Step};
use crate::error::Result;

pub(super) async fn run(run: &mut MoveRun) -> Result<Step> {
    run.open_fence();
    let catalog = run.cluster.catalog();
    let records = catalog.move_target_records(run.task_id())?;
    let mut reachable = true;
    for rec in &records {
        // Never drop a directory the catalog says the target holds (switched already).
        let group = run.group()?;
        if group
            .iter()
            .any(|g| g.shard_id == rec.shard_id && g.on_target)
        {
            catalog.finish_cleanup(rec.cleanup_id)?;
            continue;
        }
        match run
            .volatile
            .target
            .drop_shards(rec.table_id, vec![rec.shard_id])
            .await
        {
            Ok(()) => catalog.finish_cleanup(rec.cleanup_id)?,
            Err(e) => {
                warn!(task_id = run.task_id(), error = %e, "target copies left for the cleanup loop");
                reachable = false;
                break;
            }
        }
    }
    if !reachable {
        catalog.release_move_target_records(run.task_id())?;
    }
    if let Err(e) = run.volatile.target.discard_staging(run.task_id()).await {
        warn!(task_id = run.task_id(), error = %e, "staging not removed; the worker removes it later");
    }
    run.discard_progress()?;
    Ok(Step::Aborted)
}
