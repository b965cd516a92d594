//! Colocated joins: a partitioned hash join of two hash-distributed tables on their
//! distribution columns, whose shards line up partition by partition (colocated tables: the
//! same hash ranges on the same workers), joins each partition with its counterpart without
//! repartitioning either side — every row a key can match is in the same shard group, as
//! Citus runs such a join per shard group. In stages, both sides' leaves are in one stage and
//! each task reads the same shard groups of both tables on the worker holding them: no shuffle.
//!
//! ```text
//! HashJoinExec: mode=Partitioned, on=[(a.k, b.k)]         HashJoinExec: mode=Partitioned
//!   RepartitionExec: Hash([a.k])                     ─►     ShardScanExec: a   (partition p =
//!     ShardScanExec: a (dist. column k)                     ShardScanExec: b    shard group p)
//!   RepartitionExec: Hash([b.k])
//!     ShardScanExec: b (dist. column k, colocated)
//! ```
//!
//! Runs after every DataFusion rule, the sanity check included: only the scans this rule
//! rewrites declare hash partitioning (by shard group), and no rule runs after it that could
//! pair such a partition with one of DataFusion's hash partitions.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, NullEquality, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ChildSatisfactionOptions, ExecutionPlan, ExecutionPlanProperties, Partitioning,
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
        Ok(rewrite(plan, false, config.execution.target_partitions)?.data)
    }

    fn name(&self) -> &str {
        "shoal_colocated_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Rewrites the colocated joins of `plan`, bottom up. `constrained`: between `plan` and the
/// next repartition (or merge) above it, a node combines its partitions with another input's
/// partitions (a join, a union): they were planned as DataFusion's hash partitions and must
/// stay so, so a join here keeps its repartitioning. Nodes with one input only need equal
/// keys in one partition, which shard groups give too.
fn rewrite(
    plan: Arc<dyn ExecutionPlan>,
    constrained: bool,
    target_partitions: usize,
) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let children_constrained = if repartitions(&plan) {
        false
    } else if plan.children().len() > 1 {
        true
    } else {
        constrained
    };
    plan.map_children(|child| rewrite(child, children_constrained, target_partitions))?
        .transform_data(|node| {
            if constrained {
                return Ok(Transformed::no(node));
            }
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            match colocated_inputs(join, target_partitions)? {
                // without its dynamic filter: the filter's bounds are picked per partition
                // by DataFusion's hash of the key, which is not how shard groups split keys
                // (a probe-side node evaluating it would drop rows); left unset, a pushed
                // copy of it stays `true`
                Some(children) => Ok(Transformed::yes(
                    join.builder()
                        .reset_state()
                        .with_new_children(children)?
                        .recompute_properties()
                        .build_exec()?,
                )),
                None => Ok(Transformed::no(node)),
            }
        })
}

/// Whether `plan` makes new partitions of its input's rows.
fn repartitions(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<RepartitionExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<SortPreservingMergeExec>()
}

/// The join's inputs without their repartitioning, each reading its shard scan partitioned
/// by shard group, when the join is colocated: partitioned, not null-aware (NOT IN needs to
/// know of a NULL anywhere on its build side), both inputs repartitioned from shard scans
/// whose shard groups align, one of its key pairs the two tables' distribution columns, of
/// one type, at least `target_partitions` shard groups, and the join's distribution
/// requirement met by the shard groups.
fn colocated_inputs(
    join: &HashJoinExec,
    target_partitions: usize,
) -> Result<Option<Vec<Arc<dyn ExecutionPlan>>>> {
    // NULL keys match nothing (unless NULL = NULL is asked for, as INTERSECT does): where
    // the writer put a NULL distribution value does not matter then
    if join.mode != PartitionMode::Partitioned
        || join.null_aware
        || join.null_equality() != NullEquality::NullEqualsNothing
    {
        return Ok(None);
    }
    let (Some(left), Some(right)) = (
        below_repartitions(join.left()),
        below_repartitions(join.right()),
    ) else {
        return Ok(None);
    };
    let pair = join.on().iter().find_map(|(l, r)| {
        let (a, a_column, a_type) = distribution_scan(&left, l.as_ref())?;
        let (b, b_column, b_type) = distribution_scan(&right, r.as_ref())?;
        (a_type == b_type && a.shard_groups_align(b)).then_some((a_column, b_column))
    });
    let Some((left_column, right_column)) = pair else {
        return Ok(None);
    };
    let left = with_partitioned_scan(&left, left_column)?;
    let right = with_partitioned_scan(&right, right_column)?;
    // one partition per shard group (per worker): fewer than the session's partitions would
    // join on fewer threads than the shuffle it saves would use
    if left.output_partitioning().partition_count() < target_partitions {
        return Ok(None);
    }
    // what DataFusion's planner checks of the join's inputs before it runs a plan
    let required = join.input_distribution_requirements();
    let inputs = [left.as_ref(), right.as_ref()];
    for (i, input) in inputs.iter().enumerate() {
        if !required
            .child_satisfaction(i, *input, ChildSatisfactionOptions::new())?
            .is_satisfied()
        {
            return Ok(None);
        }
    }
    if !required
        .unsatisfied_co_partitioned_children(join.name(), &inputs)?
        .is_empty()
    {
        return Ok(None);
    }
    Ok(Some(vec![left, right]))
}

/// The input under a hash repartition (and a round-robin one below it, which only spreads a
/// single partition), or `None` when `plan` is not a hash repartition.
fn below_repartitions(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let repartition = plan.downcast_ref::<RepartitionExec>()?;
    if !matches!(repartition.partitioning(), Partitioning::Hash(..)) || repartition.preserve_order()
    {
        return None;
    }
    let mut input = Arc::clone(repartition.input());
    while let Some(spread) = input.downcast_ref::<RepartitionExec>() {
        if !matches!(spread.partitioning(), Partitioning::RoundRobinBatch(_)) {
            return None;
        }
        input = Arc::clone(spread.input());
    }
    Some(input)
}

/// When `key` (an expression over `plan`'s output) is, through filters and projections, the
/// distribution column of a shard scan: the scan, the column's index in `plan`'s output, and
/// its type.
fn distribution_scan<'a>(
    plan: &'a Arc<dyn ExecutionPlan>,
    key: &dyn PhysicalExpr,
) -> Option<(&'a ShardScanExec, usize, arrow::datatypes::DataType)> {
    let column = key.downcast_ref::<Column>()?;
    let data_type = plan
        .schema()
        .fields()
        .get(column.index())?
        .data_type()
        .clone();
    let scan = scan_column(plan, column.index())?.0;
    Some((scan, column.index(), data_type))
}

/// The shard scan that output column `index` of `plan` is the distribution column of, and
/// the column's index in the scan's output.
fn scan_column(plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<(&ShardScanExec, usize)> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        let schema = scan.schema();
        let name = schema.fields().get(index)?.name();
        return (scan.distribution_column() == Some(name.as_str())).then_some((scan, index));
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let index = match filter.projection() {
            Some(projection) => *projection.get(index)?,
            None => index,
        };
        return scan_column(filter.input(), index);
    }
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let column = projection
            .expr()
            .get(index)?
            .expr
            .downcast_ref::<Column>()?;
        return scan_column(projection.input(), column.index());
    }
    None
}

/// `plan` (filters and projections over a shard scan, whose output column `index` is the
/// scan's distribution column) over that scan partitioned by shard group.
fn with_partitioned_scan(
    plan: &Arc<dyn ExecutionPlan>,
    index: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let (_, scan_index) = scan_column(plan, index).ok_or_else(|| {
        DataFusionError::Internal("a colocated join's input lost its shard scan".into())
    })?;
    Arc::clone(plan)
        .transform_down(|node| match node.downcast_ref::<ShardScanExec>() {
            Some(scan) => Ok(Transformed::new(
                Arc::new(scan.partitioned_by_shard_group(scan_index)?) as Arc<dyn ExecutionPlan>,
                true,
                TreeNodeRecursion::Stop,
            )),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
}
