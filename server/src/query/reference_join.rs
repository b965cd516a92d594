//! Reference joins: a hash join of any input with a reference table (a copy on every worker)
//! whose rows only the other input preserves (inner, right, semi, anti and mark joins on that
//! side) collects the whole reference table as its build side and probes it with each
//! partition of the other input as it is, instead of repartitioning both sides by the join
//! key. In stages, every task reads the reference table from its own worker's copy next to
//! the shards it joins (as Citus joins a reference table on every worker): neither side
//! moves, and nothing is broadcast (vendor/datafusion-distributed's `ReplicatedInputCheck`
//! tells its planner that every task reads such a build side itself).
//!
//! ```text
//! HashJoinExec: mode=Partitioned, on=[(n.k, o.k)]     HashJoinExec: mode=CollectLeft
//!   RepartitionExec: Hash([n.k])                 ─►     ShardScanExec: nation  (read whole
//!     ShardScanExec: nation (reference)                   by every task)
//!   RepartitionExec: Hash([o.k])                        ShardScanExec: orders
//!     ShardScanExec: orders
//! ```
//!
//! Every task pairs its share of the other input with every row of the reference table: each
//! match is found once, since each row of the other input is in one partition of one task.
//! Rows the reference side would emit unmatched (left or full joins preserving it, semi/anti
//! joins returning its rows) would come once per task, so those joins keep their
//! repartitioning. The join no longer has DataFusion's hash partitioning: nothing above it, up
//! to the next repartition, may rely on its partitioning or ordering.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::{JoinType, Result};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::InterleaveExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    ReplaceChildrenOptions,
};

use crate::query::scan::ShardScanExec;

/// Joins reference tables in every task reading the other input (see the module doc).
#[derive(Debug, Default)]
pub struct ReferenceJoinRule;

impl PhysicalOptimizerRule for ReferenceJoinRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // whoever runs the plan merges its partitions: nothing is relied on
        rewrite(
            plan,
            Reliance::default(),
            config.execution.target_partitions,
        )
    }

    fn name(&self) -> &str {
        "shoal_reference_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What the plan above a node relies on of the node's output.
#[derive(Clone, Copy, Debug, Default)]
struct Reliance {
    /// Its partitioning: up to the next repartition or merge, something needs it (a
    /// partitioned join or aggregate).
    partitioning: bool,
    /// Its ordering: up to the next sort, something needs it (a merge of sorted partitions).
    ordering: bool,
}

/// Rewrites the reference joins of `plan`, top down: a join whose partitioning or ordering
/// the plan above relies on keeps its own.
fn rewrite(
    plan: Arc<dyn ExecutionPlan>,
    relied: Reliance,
    target_partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let free = !relied.partitioning && !relied.ordering;
    let rewritten = free
        .then(|| reference_join(&plan, target_partitions))
        .transpose()?;
    let (plan, mut changed) = match rewritten {
        Some(Some(join)) => (join, true),
        _ => (plan, false),
    };
    // a reference join pairs any partition of its other input with the whole table
    let joins_whole = is_reference_join(&plan);
    let required = plan.input_distribution_requirements();
    let ordered = plan.required_input_ordering();
    let passes_partitions = !repartitions(&plan);
    let passes_order = passes_partitions && !plan.is::<SortExec>();
    let mut children = Vec::with_capacity(plan.children().len());
    for (i, child) in plan.children().into_iter().enumerate() {
        let child_relied = Reliance {
            // an interleave of unions needs its inputs' hash partitions, undeclared
            partitioning: !joins_whole
                && ((relied.partitioning && passes_partitions)
                    || plan.is::<InterleaveExec>()
                    || !matches!(
                        required.child_distribution(i),
                        None | Some(Distribution::UnspecifiedDistribution)
                    )),
            ordering: !joins_whole
                && ((relied.ordering && passes_order)
                    || ordered.get(i).is_some_and(Option::is_some)),
        };
        let new = rewrite(Arc::clone(child), child_relied, target_partitions)?;
        changed |= !Arc::ptr_eq(&new, child);
        children.push(new);
    }
    if !changed {
        return Ok(plan);
    }
    with_children(plan, children)
}

fn with_children(
    plan: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

/// Whether `plan` makes new partitions of its input's rows.
fn repartitions(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<RepartitionExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<SortPreservingMergeExec>()
}

/// `plan` as a reference join, when it is a hash join of a reference table (through filters
/// and projections) with an input whose rows alone the join preserves; the reference table on
/// the build side (the left), swapping the inputs if needed.
fn reference_join(
    plan: &Arc<dyn ExecutionPlan>,
    target_partitions: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(join) = plan.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    // NOT IN needs to know of a NULL anywhere on the other side, in one process
    if join.null_aware || join.mode == PartitionMode::Auto || is_reference_join(plan) {
        return Ok(None);
    }
    // the dynamic filter's bounds are per hash partition (and swapping refuses one): left
    // unset, a copy of it pushed below stays `true`
    let join = join.builder().reset_state().build()?;
    if build_preserving_nothing(join.join_type()) && reference_chain(join.left()) {
        return rewrite_join(&join, target_partitions).map(Some);
    }
    if build_preserving_nothing(&join.join_type().swap()) && reference_chain(join.right()) {
        let swapped = join.swap_inputs(PartitionMode::Partitioned)?;
        // the swapped join, under a projection restoring the column order when it needs one
        if let Some(inner) = swapped.downcast_ref::<HashJoinExec>() {
            return rewrite_join(inner, target_partitions).map(Some);
        }
        if let Some(projection) = swapped.downcast_ref::<ProjectionExec>() {
            if let Some(inner) = projection.input().downcast_ref::<HashJoinExec>() {
                let join = rewrite_join(inner, target_partitions)?;
                return with_children(Arc::clone(&swapped), vec![join]).map(Some);
            }
        }
    }
    Ok(None)
}

/// Whether a join of this type emits only rows of its right (probe) input, or pairs: then
/// its left input may be read whole by every task.
fn build_preserving_nothing(join_type: &JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Inner
            | JoinType::Right
            | JoinType::RightSemi
            | JoinType::RightAnti
            | JoinType::RightMark
    )
}

/// Whether `plan` is a reference table's scan under nothing but filters, projections and
/// repartitions or merges (which go), with no limit and nothing volatile: every task
/// evaluates it on its own copy, and each must get the same rows.
fn reference_chain(plan: &Arc<dyn ExecutionPlan>) -> bool {
    chain_scan(plan).is_some_and(|scan| scan.is_reference() && scan.reads_the_same_rows_each_time())
        && deterministic_chain(plan)
}

/// Whether no node of the chain above the scan stops at a count of rows (a LIMIT pushed into
/// it) or evaluates a volatile expression (`random()`).
fn deterministic_chain(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.is::<ShardScanExec>() {
        return true;
    }
    if plan.fetch().is_some() {
        return false;
    }
    let volatile = if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        is_volatile(filter.predicate())
    } else if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        projection.expr().iter().any(|e| is_volatile(&e.expr))
    } else {
        false
    };
    !volatile
        && plan
            .children()
            .iter()
            .all(|child| deterministic_chain(child))
}

/// Whether `plan` is a join this rule made.
fn is_reference_join(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<HashJoinExec>()
        .is_some_and(|join| read_whole_by_every_task(join.left().as_ref()))
}

/// Whether `plan` is the build side of a reference join: a reference table's scan that every
/// task reads whole, under filters and projections. What datafusion-distributed's planner
/// asks (`ReplicatedInputCheck`) before it would broadcast a build side.
pub fn read_whole_by_every_task(plan: &dyn ExecutionPlan) -> bool {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        return scan.read_whole_by_every_task();
    }
    let passes = plan.is::<FilterExec>() || plan.is::<ProjectionExec>();
    match plan.children().as_slice() {
        [child] if passes => read_whole_by_every_task(child.as_ref()),
        _ => false,
    }
}

/// The shard scan under a chain of filters, projections, repartitions and merges.
fn chain_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&ShardScanExec> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        return Some(scan);
    }
    let passes = plan.is::<FilterExec>() || plan.is::<ProjectionExec>() || repartitions(plan);
    match plan.children().as_slice() {
        [child] if passes => chain_scan(child),
        _ => None,
    }
}

/// `join` (a reference table's chain on the left) as a join collecting the whole table and
/// probing it with its right input as it is (without a hash repartition on top; spread
/// round-robin over `target_partitions` if it has fewer partitions, as on the coordinator).
fn rewrite_join(join: &HashJoinExec, target_partitions: usize) -> Result<Arc<dyn ExecutionPlan>> {
    let mut probe = match join.right().downcast_ref::<RepartitionExec>() {
        Some(r) if matches!(r.partitioning(), Partitioning::Hash(..)) && !r.preserve_order() => {
            Arc::clone(r.input())
        }
        _ => Arc::clone(join.right()),
    };
    if probe.output_partitioning().partition_count() < target_partitions {
        probe = Arc::new(RepartitionExec::try_new(
            probe,
            Partitioning::RoundRobinBatch(target_partitions),
        )?);
    }
    let build = read_whole(join.left())?;
    join.builder()
        .with_partition_mode(PartitionMode::CollectLeft)
        .reset_state()
        .with_new_children(vec![build, probe])?
        .recompute_properties()
        .build_exec()
}

/// A reference chain without its repartitions and merges, its scan one partition that every
/// task reads whole.
fn read_whole(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        return Ok(Arc::new(scan.whole_in_every_task()?));
    }
    let children = plan.children();
    let [child] = children.as_slice() else {
        return Err(datafusion::error::DataFusionError::Internal(
            "a reference join's input is not a chain".into(),
        ));
    };
    let child = read_whole(child)?;
    if repartitions(plan) {
        return Ok(child);
    }
    with_children(Arc::clone(plan), vec![child])
}
