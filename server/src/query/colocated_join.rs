//! Colocated joins: partitioned hash joins of hash-distributed tables on their distribution
//! columns, whose shards line up partition by partition (colocated tables: the same hash
//! ranges on the same workers), join each partition with its counterpart without
//! repartitioning either side — every row a key can match is in the same shard group, as
//! Citus runs such a join per shard group. In stages, every side's leaves are in one stage
//! and each task reads the same shard groups of every table on the worker holding them: no
//! shuffle.
//!
//! ```text
//! HashJoinExec: mode=Partitioned, on=[(a.k, b.k)]         HashJoinExec: mode=Partitioned
//!   RepartitionExec: Hash([a.k])                     ─►     ShardScanExec: a   (partition p =
//!     ShardScanExec: a (dist. column k)                     ShardScanExec: b    shard group p)
//!   RepartitionExec: Hash([b.k])
//!     ShardScanExec: b (dist. column k, colocated)
//! ```
//!
//! Joins chained on one key are rewritten together (TPC-H Q21: lineitem joined with orders,
//! then a semi and an anti join with lineitem, all on the order key): a side may be another
//! such join, an aggregate grouped by the distribution column (TPC-H Q18's orders semi-joined
//! with lineitem's totals per order) finishes per shard group, and filters, projections and
//! joins that collect their other side (reference joins, broadcasts of a small side: every
//! partition of the probe side meets all of the collected side) pass a shard group's
//! partitioning through — orders joined with a broadcast
//! customer table still joins lineitem shard group by shard group (TPC-H Q3). Every partitioned join of the rewritten tree is checked as
//! DataFusion's planner checks it (each input's partitioning satisfies the join's keys, the
//! inputs are co-partitioned), with the shard groups' hash partitioning in place of
//! DataFusion's; the tree is taken whole or not at all.
//!
//! An aggregate grouped by a distribution column (among other keys) is taken the same way:
//! it finishes per shard group over such a tree, or over one table's scan, instead of
//! repartitioning its partial results (TPC-H Q11 by `ps_partkey`, Q3 by `l_orderkey` and
//! two more above orders joined with lineitem).
//!
//! Runs last, after every DataFusion rule (the sanity check included) and after the joins
//! that collect a side are made (`collect_join`, which leaves the joins this rule takes):
//! only the scans this rule rewrites declare hash partitioning by shard group, and no rule
//! runs after it that could pair such a partition with one of DataFusion's hash partitions.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{NullEquality, Result};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ChildSatisfactionOptions, ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties,
    ReplaceChildrenOptions,
};

use crate::query::scan::ShardScanExec;

/// Removes the repartitioning under colocated joins (see the module doc).
#[derive(Debug, Default)]
pub struct ColocatedJoinRule;

impl PhysicalOptimizerRule for ColocatedJoinRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        rewrite(plan, false, config.execution.target_partitions)
    }

    fn name(&self) -> &str {
        "shoal_colocated_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Rewrites the colocated joins of `plan`, top down: the highest join whose tree can be
/// partitioned by shard group is rewritten whole. `constrained`: between `plan` and the next
/// repartition (or merge) above it, a node combines its partitions with another input's
/// partitions (a join, a union): they were planned as DataFusion's hash partitions and must
/// stay so, so a join here keeps its repartitioning. Nodes with one input only need equal
/// keys in one partition, which shard groups give too.
fn rewrite(
    plan: Arc<dyn ExecutionPlan>,
    constrained: bool,
    target_partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    if !constrained && (is_partitioned_join(&plan) || is_partitioned_aggregate(&plan)) {
        if let Some(colocated) = colocated_tree(&plan, target_partitions)? {
            return Ok(colocated);
        }
    }
    let children_constrained = if repartitions(&plan) {
        false
    } else if plan.children().len() > 1 && !collects_one_side(&plan) {
        true
    } else {
        constrained
    };
    let mut changed = false;
    let mut children = Vec::with_capacity(plan.children().len());
    for child in plan.children() {
        let new = rewrite(Arc::clone(child), children_constrained, target_partitions)?;
        changed |= !Arc::ptr_eq(&new, child);
        children.push(new);
    }
    if !changed {
        return Ok(plan);
    }
    with_children(plan, children)
}

/// Whether `plan` is a join that collects its left side into one partition (a reference or
/// broadcast join, a nested-loop or cross join) and joins every partition of its right side
/// with it: those partitions are combined with nothing, only passed on as the join's own.
fn collects_one_side(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<HashJoinExec>()
        .is_some_and(|join| join.mode == PartitionMode::CollectLeft)
        || plan.is::<NestedLoopJoinExec>()
        || plan.is::<CrossJoinExec>()
}

/// Whether `plan` makes new partitions of its input's rows.
pub(crate) fn repartitions(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<RepartitionExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<SortPreservingMergeExec>()
}

/// `plan` over `children`, its properties computed again.
pub(crate) fn with_children(
    plan: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

/// Whether `plan` is an aggregate finishing partition by partition on hash partitions of its
/// GROUP BY keys: grouped by a distribution column (among others), it can finish per shard
/// group without its repartition (TPC-H Q11's `GROUP BY ps_partkey`, Q3's `GROUP BY
/// l_orderkey, ...` above a colocated join).
fn is_partitioned_aggregate(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<AggregateExec>()
        .is_some_and(|aggregate| {
            matches!(
                aggregate.mode(),
                AggregateMode::FinalPartitioned | AggregateMode::SinglePartitioned
            )
        })
}

/// Whether `plan` is a partitioned hash join a shard group can run: not null-aware (NOT IN
/// needs to know of a NULL anywhere on its build side), NULL keys matching nothing (unless
/// NULL = NULL is asked for, as INTERSECT does, where the writer put a NULL distribution
/// value does not matter).
fn is_partitioned_join(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<HashJoinExec>().is_some_and(|join| {
        join.mode == PartitionMode::Partitioned
            && !join.null_aware
            && join.null_equality() == NullEquality::NullEqualsNothing
    })
}

/// Whether `plan` is a partitioned join whose tree this rule would partition by shard group
/// (see [`colocated_tree`]): what the broadcast of a small side leaves alone.
pub fn is_colocated_join(plan: &Arc<dyn ExecutionPlan>, target_partitions: usize) -> Result<bool> {
    Ok(is_partitioned_join(plan) && colocated_tree(plan, target_partitions)?.is_some())
}

/// `join`'s tree partitioned by shard group, when every partitioned join in it keeps its
/// distribution requirement met, its scans' shard groups all align, and it has at least
/// `target_partitions` of them (one partition per shard group of a worker: fewer than the
/// session's partitions would join on fewer threads than the shuffle it saves would use).
fn colocated_tree(
    join: &Arc<dyn ExecutionPlan>,
    target_partitions: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(tree) = by_shard_group(join)? else {
        return Ok(None);
    };
    if tree.output_partitioning().partition_count() < target_partitions {
        return Ok(None);
    }
    let mut scans = Vec::new();
    tree.apply(|node| {
        if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            if scan.is_shard_group_partitioned() {
                scans.push(Arc::clone(node));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let aligned = match scans.split_first() {
        Some((first, rest)) => {
            let first = first.downcast_ref::<ShardScanExec>();
            rest.iter().all(|other| {
                first
                    .zip(other.downcast_ref::<ShardScanExec>())
                    .is_some_and(|(a, b)| a.shard_groups_align(b))
            })
        }
        None => false,
    };
    Ok(aligned.then_some(tree))
}

/// `plan` with its output partitioned by shard group (hash partitioning by a distribution
/// column, partition `p` = shard group `p`), or `None`: a shard scan declaring its shard
/// groups (its distribution column in its output); repartitions dropped; filters,
/// projections, aggregates (whose distribution requirement it meets: grouped by the
/// distribution column) and joins collecting their other side (reference and broadcast
/// joins: their probe side) over such a plan; a partitioned join of two such plans whose
/// distribution requirement they meet.
fn by_shard_group(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        let schema = scan.schema();
        let Some(column) = scan
            .distribution_column()
            .and_then(|name| schema.index_of(name).ok())
        else {
            return Ok(None);
        };
        return Ok(Some(Arc::new(scan.partitioned_by_shard_group(column)?)));
    }
    if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
        if repartition.preserve_order() {
            return Ok(None);
        }
        return by_shard_group(repartition.input());
    }
    // grouping sets leave the distribution column out of some groups (NULL there), which
    // then span every shard group: such an aggregate keeps its repartition
    if plan
        .downcast_ref::<AggregateExec>()
        .is_some_and(|aggregate| aggregate.group_expr().has_grouping_set())
    {
        return Ok(None);
    }
    if plan.is::<FilterExec>() || plan.is::<ProjectionExec>() || plan.is::<AggregateExec>() {
        let children = plan.children();
        let [child] = children.as_slice() else {
            return Ok(None);
        };
        let Some(child) = by_shard_group(child)? else {
            return Ok(None);
        };
        // an aggregate by the distribution column finishes per shard group (TPC-H Q18's
        // `GROUP BY l_orderkey`); one by anything else needs its repartition
        let rebuilt = with_children(Arc::clone(plan), vec![child])?;
        return Ok(meets_requirements(&rebuilt)?.then_some(rebuilt));
    }
    let Some(join) = plan.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    if join.mode == PartitionMode::CollectLeft {
        // a reference or broadcast join pairs any partition of its probe side with the whole
        // collected side
        let Some(probe) = by_shard_group(join.right())? else {
            return Ok(None);
        };
        return join
            .builder()
            .reset_state()
            .with_new_children(vec![Arc::clone(join.left()), probe])?
            .recompute_properties()
            .build_exec()
            .map(Some);
    }
    if !is_partitioned_join(plan) {
        return Ok(None);
    }
    let (Some(left), Some(right)) = (by_shard_group(join.left())?, by_shard_group(join.right())?)
    else {
        return Ok(None);
    };
    // without its dynamic filter: the filter's bounds are picked per partition by
    // DataFusion's hash of the key, which is not how shard groups split keys (a probe-side
    // node evaluating it would drop rows); left unset, a pushed copy of it stays `true`
    let rewritten = join
        .builder()
        .reset_state()
        .with_new_children(vec![left, right])?
        .recompute_properties()
        .build_exec()?;
    Ok(meets_requirements(&rewritten)?.then_some(rewritten))
}

/// What DataFusion's planner checks of a node's inputs before it runs a plan: each input's
/// partitioning satisfies the node's distribution requirement (exactly: hash partitioning by
/// the same keys, up to equivalences), the inputs that must be are co-partitioned; and no
/// input ordering is required (shard scans declare none).
fn meets_requirements(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    if plan.required_input_ordering().iter().any(Option::is_some) {
        return Ok(false);
    }
    let required = plan.input_distribution_requirements();
    let children = plan.children();
    // A join needs exact satisfaction: a shard group's partitioning by one column must not
    // pass for a join on several (its other side's partitions would not pair). An aggregate
    // only needs the rows of a group in one partition: by any of its keys will do.
    let options = ChildSatisfactionOptions::new().with_allow_subset(plan.is::<AggregateExec>());
    let inputs: Vec<&dyn ExecutionPlan> = children.iter().map(|c| c.as_ref()).collect();
    for (i, input) in inputs.iter().enumerate() {
        if !required
            .child_satisfaction(i, *input, options)?
            .is_satisfied()
        {
            return Ok(false);
        }
    }
    Ok(required
        .unsatisfied_co_partitioned_children(plan.name(), &inputs)?
        .is_empty())
}
