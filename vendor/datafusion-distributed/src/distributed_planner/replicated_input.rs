//! Shoal's addition: inputs every task can read whole where it runs (a table copied to every
//! worker). The build side of a join that is such an input is neither broadcast nor a reason
//! to run the join in one task: each task reads its own copy.

use std::fmt;
use std::sync::Arc;

use datafusion::execution::config::SessionConfig;
use datafusion::physical_plan::ExecutionPlan;

/// Registered on the session: tells whether a plan's output is the whole input in every task
/// that executes it, read on the task's worker.
#[derive(Clone)]
pub struct ReplicatedInputCheck(pub Arc<dyn Fn(&dyn ExecutionPlan) -> bool + Send + Sync>);

impl fmt::Debug for ReplicatedInputCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplicatedInputCheck")
    }
}

/// Whether the session's [`ReplicatedInputCheck`] (if any) accepts `plan`.
pub(crate) fn is_replicated_input(cfg: &SessionConfig, plan: &dyn ExecutionPlan) -> bool {
    cfg.get_extension::<ReplicatedInputCheck>()
        .is_some_and(|check| (check.0)(plan))
}
