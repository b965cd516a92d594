//! Joins that collect one side: a hash join whose other input is probed partition by
//! partition as it is, instead of repartitioning both sides by the join key:
//!
//! - **Reference joins**: a join with a reference table (a copy on every worker) collects the
//!   whole table as its build side. In stages, every task reads the reference table from its
//!   own worker's copy next to the shards it joins (as Citus joins a reference table on every
//!   worker): neither side moves, and nothing is broadcast (vendor/datafusion-distributed's
//!   `ReplicatedInputCheck` tells its planner that every task reads such a build side itself).
//! - **Broadcast joins of a small side**: a side that is one table's scan (through filters and
//!   projections) with fewer rows than DataFusion's `hash_join_single_partition_threshold_rows`
//!   — by the rows the catalog counts in the files read, times the filters' default
//!   selectivity — or narrow enough to fit a few megabytes against a larger other side, is
//!   collected into one partition; datafusion-distributed computes it once in its own stage
//!   and broadcasts it to the tasks reading the other side, which stays where it is. A join
//!   of colocated tables is left to the colocated rule, which runs after this one (and
//!   passes a shard group's partitioning through the joins this rule makes). The estimate
//!   of what is broadcast is of one scan only: DataFusion's estimate of a join's output
//!   without column statistics is the smaller input's size, far too small for the usual join
//!   of a large table with a small one, so Shoal gives DataFusion no statistics and decides
//!   here, where only a table's own rows count.
//! - **A scalar subquery's one row**: an inner nested-loop join whose right input is an
//!   aggregate without GROUP BY swaps its inputs, so that the one row is collected (and
//!   broadcast) rather than the other input, whole, where the one row is (the coordinator).
//! - **Reduced shuffles**: a join that keeps shuffling both sides, with a small filtered side,
//!   semi-joins its large side with the small side's broadcast keys before the shuffle
//!   (`shuffle_reduced`).
//!
//! ```text
//! HashJoinExec: mode=Partitioned, on=[(n.k, o.k)]     HashJoinExec: mode=CollectLeft
//!   RepartitionExec: Hash([n.k])                 ─►     ShardScanExec: nation  (read whole
//!     ShardScanExec: nation (reference)                   by every task)
//!   RepartitionExec: Hash([o.k])                        ShardScanExec: orders
//!     ShardScanExec: orders
//! ```
//!
//! Every task pairs its share of the other input with every row of the collected side: each
//! match is found once, since each row of the other input is in one partition of one task.
//! Rows the collected side would emit unmatched (left or full joins preserving it, semi/anti
//! joins returning its rows) would come once per task, so those joins keep their
//! repartitioning. The join no longer has DataFusion's hash partitioning: nothing above it, up
//! to the next repartition, may rely on its partitioning or ordering.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::union::InterleaveExec;
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};

use crate::query::colocated_join::{is_colocated_join, repartitions, with_children};
use crate::query::scan::ShardScanExec;

/// Joins reference tables in every task reading the other input, and broadcasts small sides
/// (see the module doc).
#[derive(Debug, Default)]
pub struct CollectJoinRule;

impl PhysicalOptimizerRule for CollectJoinRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // whoever runs the plan merges its partitions: nothing is relied on
        let limits = Limits {
            target_partitions: config.execution.target_partitions,
            broadcast_rows: config.optimizer.hash_join_single_partition_threshold_rows,
        };
        rewrite(plan, Reliance::default(), limits)
    }

    fn name(&self) -> &str {
        "shoal_collect_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    /// The session's partitions: a probe side with fewer is spread over this many.
    target_partitions: usize,
    /// A side estimated below this many rows is broadcast.
    broadcast_rows: usize,
}

/// What the plan above a node relies on of the node's output.
#[derive(Clone, Copy, Debug, Default)]
struct Reliance {
    /// Its partitioning: up to the next repartition or merge, something needs it (a
    /// partitioned join or aggregate).
    partitioning: bool,
    /// Its ordering: up to the next sort, something needs it (a merge of sorted partitions).
    ordering: bool,
    /// One partition: up to the next repartition, something needs all rows in one (a sort
    /// of all rows). A rewritten join giving more is merged on top.
    single: bool,
}

/// Rewrites the joins of `plan` that can collect a side, bottom up (a join of colocated
/// tables above a join this makes stays colocated, see `colocated_join`): a join whose
/// partitioning or ordering the plan above relies on keeps its own.
fn rewrite(
    plan: Arc<dyn ExecutionPlan>,
    relied: Reliance,
    limits: Limits,
) -> Result<Arc<dyn ExecutionPlan>> {
    let required = plan.input_distribution_requirements();
    let ordered = plan.required_input_ordering();
    let passes_partitions = !repartitions(&plan);
    let passes_order = passes_partitions && !plan.is::<SortExec>();
    let mut changed = false;
    let mut children = Vec::with_capacity(plan.children().len());
    for (i, child) in plan.children().into_iter().enumerate() {
        let child_relied = Reliance {
            // an interleave of unions needs its inputs' hash partitions, undeclared
            partitioning: (relied.partitioning && passes_partitions)
                || plan.is::<InterleaveExec>()
                || !matches!(
                    required.child_distribution(i),
                    None | Some(Distribution::UnspecifiedDistribution)
                        | Some(Distribution::SinglePartition)
                ),
            ordering: (relied.ordering && passes_order)
                || ordered.get(i).is_some_and(Option::is_some),
            single: (relied.single && passes_partitions)
                || matches!(
                    required.child_distribution(i),
                    Some(Distribution::SinglePartition)
                ),
        };
        let new = rewrite(Arc::clone(child), child_relied, limits)?;
        changed |= !Arc::ptr_eq(&new, child);
        children.push(new);
    }
    let plan = if changed {
        with_children(plan, children)?
    } else {
        plan
    };
    if relied.partitioning || relied.ordering {
        return Ok(shuffle_reduced(&plan, limits)?.unwrap_or(plan));
    }
    match collect_join(&plan, limits)? {
        Some(join) if relied.single && join.output_partitioning().partition_count() > 1 => {
            Ok(Arc::new(CoalescePartitionsExec::new(join)))
        }
        Some(join) => Ok(join),
        None => Ok(shuffle_reduced(&plan, limits)?.unwrap_or(plan)),
    }
}

/// `plan`, a join that shuffles both sides, with the shuffle of a large side reduced to the
/// rows that can matter: those whose key is among the keys of a small, filtered other side.
/// The small side is evaluated twice — once broadcast to the tasks reading the large side,
/// where a semi join keeps the large side's matching rows before they are shuffled, and once
/// shuffled for the join itself — so only a filtered side small by its estimate qualifies,
/// against a side at least [`REDUCTION_FACTOR`] times larger (or of unknown size), and only
/// when the large side's rows without a match are not in the join's output (it is not
/// preserved). The join still runs on both shuffles, and what relies on its partitioning still
/// has it: TPC-H Q17 shuffled all of lineitem to meet 200 parts, Q22 all of orders to meet
/// the customers of a few countries. (DataFusion's own dynamic filter does this within one
/// process; it cannot cross a shuffle.)
fn shuffle_reduced(
    plan: &Arc<dyn ExecutionPlan>,
    limits: Limits,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(join) = plan.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    if join.mode != PartitionMode::Partitioned
        || join.null_aware
        || is_colocated_join(plan, limits.target_partitions)?
    {
        return Ok(None);
    }
    let (left, right) = (join.left(), join.right());
    let (left_keys, right_keys): (Vec<_>, Vec<_>) = join
        .on()
        .iter()
        .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
        .unzip();
    let join_type = *join.join_type();
    // (small side, its keys, large side, its keys, whether the large side is the right)
    let candidates = [
        (left, &left_keys, right, &right_keys, true),
        (right, &right_keys, left, &left_keys, false),
    ];
    for (small, small_keys, large, large_keys, large_is_right) in candidates {
        // the large side's unmatched rows are not in the output when the join emits only
        // pairs or the small side's rows
        let large_preserved = !build_preserving_nothing(&if large_is_right {
            join_type.swap()
        } else {
            join_type
        });
        let Some(shuffle) = large.downcast_ref::<RepartitionExec>() else {
            continue;
        };
        if large_preserved
            || !matches!(shuffle.partitioning(), Partitioning::Hash(..))
            || shuffle.preserve_order()
            || !filtered(small)
            || !same_rows_each_time(small)
        {
            continue;
        }
        let Some(small_rows) = estimated_output_rows(small) else {
            continue;
        };
        let large_enough = estimated_output_rows(large)
            .is_none_or(|rows| rows >= small_rows.saturating_mul(REDUCTION_FACTOR));
        if small_rows >= limits.broadcast_rows || !large_enough {
            continue;
        }
        // only the keys are broadcast: the semi join needs nothing else of the small side
        let key_exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = small_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (Arc::clone(k), format!("key{i}")))
            .collect();
        let keys: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(
            key_exprs,
            below_hash_repartition(small),
        )?);
        let keys = if keys.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(keys)) as Arc<dyn ExecutionPlan>
        } else {
            keys
        };
        let on = large_keys
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&format!("key{i}"), i));
                (key, Arc::clone(l))
            })
            .collect();
        let matching: Arc<dyn ExecutionPlan> = Arc::new(HashJoinExec::try_new(
            keys,
            Arc::clone(shuffle.input()),
            on,
            None,
            &JoinType::RightSemi,
            None,
            PartitionMode::CollectLeft,
            join.null_equality(),
            false,
        )?);
        let reduced = with_children(Arc::clone(large), vec![matching])?;
        let children = if large_is_right {
            vec![Arc::clone(left), reduced]
        } else {
            vec![reduced, Arc::clone(right)]
        };
        return with_children(Arc::clone(plan), children).map(Some);
    }
    Ok(None)
}

/// How many times larger than a small side a shuffled side must be (by the estimates, if
/// it has one) for [`shuffle_reduced`] to reduce it.
const REDUCTION_FACTOR: usize = 4;

/// Whether two evaluations of `plan` give the same rows (it is evaluated twice when it
/// reduces a shuffle): nothing volatile, no limit, every scan reading all it keeps.
fn same_rows_each_time(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut repeats = true;
    let _ = plan.apply(|node| {
        repeats &= node.fetch().is_none()
            && node
                .downcast_ref::<ShardScanExec>()
                .is_none_or(ShardScanExec::reads_the_same_rows_each_time);
        let _ = node.apply_expressions(&mut |expr| {
            repeats &= !is_volatile(expr);
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(if repeats {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    repeats
}

/// Whether `plan` filters its rows somewhere: a filter over it or pushed into a scan.
fn filtered(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| {
        Ok(node.is::<FilterExec>()
            || node
                .downcast_ref::<ShardScanExec>()
                .is_some_and(ShardScanExec::is_filtered))
    })
    .unwrap_or(false)
}

/// How a join's left input is collected.
#[derive(Clone, Copy, Debug)]
enum Collected {
    /// A reference table that every task reads whole from its worker's copy.
    EveryTaskReadsItsCopy,
    /// Merged into one partition, which datafusion-distributed computes once and broadcasts.
    Broadcast,
}

/// `plan` as a join collecting one side, when it is a partitioned hash join whose other input
/// alone has rows the join preserves, and the side to collect is a reference table (through
/// filters and projections) or a small scan (see the module doc); that side on the build side
/// (the left), swapping the inputs if needed. A reference table wins over a small side, the
/// smaller of two small sides over the other.
fn collect_join(
    plan: &Arc<dyn ExecutionPlan>,
    limits: Limits,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(join) = plan.downcast_ref::<NestedLoopJoinExec>() {
        return one_row_collected(join);
    }
    let Some(join) = plan.downcast_ref::<HashJoinExec>() else {
        return Ok(None);
    };
    // NOT IN needs to know of a NULL anywhere on the other side, in one process
    if join.null_aware || join.mode != PartitionMode::Partitioned {
        return Ok(None);
    }
    // the dynamic filter's bounds are per hash partition (and swapping refuses one): left
    // unset, a copy of it pushed below stays `true`
    let join = join.builder().reset_state().build()?;
    let left_may = build_preserving_nothing(join.join_type());
    let right_may = build_preserving_nothing(&join.join_type().swap());
    if left_may && reference_chain(join.left()) {
        return collect_left(&join, Collected::EveryTaskReadsItsCopy, limits).map(Some);
    }
    if right_may && reference_chain(join.right()) {
        return collect_right(&join, Collected::EveryTaskReadsItsCopy, limits).map(Some);
    }
    // a colocated join moves nothing at all (its rule runs after this one)
    if is_colocated_join(plan, limits.target_partitions)? {
        return Ok(None);
    }
    let small = |may: bool, side: &Arc<dyn ExecutionPlan>, other: &Arc<dyn ExecutionPlan>| {
        may.then(|| estimated_rows(side))
            .flatten()
            .filter(|rows| broadcast_pays(*rows, side, other, limits))
    };
    match (
        small(left_may, join.left(), join.right()),
        small(right_may, join.right(), join.left()),
    ) {
        (Some(left), Some(right)) if right < left => {
            collect_right(&join, Collected::Broadcast, limits).map(Some)
        }
        (Some(_), _) => collect_left(&join, Collected::Broadcast, limits).map(Some),
        (None, Some(_)) => collect_right(&join, Collected::Broadcast, limits).map(Some),
        (None, None) => Ok(None),
    }
}

/// Beyond DataFusion's row limit, a side is still broadcast when its estimated rows take at
/// most this many bytes (by [`row_width`]) and the other side is not known to be small:
/// customer's keys at TPC-H scale factor 1 (150k rows, a few bytes each) are cheaper sent
/// whole to every task than the other side, millions of rows, is shuffled to meet them.
const BROADCAST_BYTES: usize = 8 << 20;

/// Whether broadcasting a side estimated at `rows` costs less than shuffling both sides: it
/// is under DataFusion's row limit for a build side collected whole, or it is narrow
/// ([`BROADCAST_BYTES`]) and the other side, where it can be estimated
/// ([`estimated_output_rows`]), has at least twice its rows (each task receives the whole
/// side: with three workers, twice the rows cross the network that a shuffle of this side
/// would send, which the other side's shuffle must outweigh).
fn broadcast_pays(
    rows: usize,
    side: &Arc<dyn ExecutionPlan>,
    other: &Arc<dyn ExecutionPlan>,
    limits: Limits,
) -> bool {
    if rows < limits.broadcast_rows {
        return true;
    }
    rows.saturating_mul(row_width(side)) <= BROADCAST_BYTES
        && estimated_output_rows(other).is_none_or(|other| other >= rows.saturating_mul(2))
}

/// Bytes a row of `plan`'s output takes in memory, roughly: fixed-width types their width, a
/// string or anything else 32 (a guess: the catalog keeps no average length).
fn row_width(plan: &Arc<dyn ExecutionPlan>) -> usize {
    const VARIABLE: usize = 32;
    plan.schema()
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Boolean => 1,
            other => other.primitive_width().unwrap_or(VARIABLE),
        })
        .sum::<usize>()
        .max(1)
}

/// The rows `plan` is estimated to give, more loosely than [`estimated_rows`] (which decides
/// what is broadcast): also through joins, as the larger input (a join on a foreign key gives
/// about the rows of the side holding it), and a join with one row (a scalar subquery) as
/// its other input. `None` where nothing is known (an aggregate, a union).
fn estimated_output_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    if let Some(rows) = estimated_rows(plan) {
        return Some(rows);
    }
    let children = plan.children();
    if plan.is::<HashJoinExec>() || plan.is::<NestedLoopJoinExec>() {
        let [left, right] = children.as_slice() else {
            return None;
        };
        return match (one_row(left), one_row(right)) {
            (true, _) => estimated_output_rows(right),
            (_, true) => estimated_output_rows(left),
            _ => Some(estimated_output_rows(left)?.max(estimated_output_rows(right)?)),
        };
    }
    let passes = plan.is::<FilterExec>() || plan.is::<ProjectionExec>() || repartitions(plan);
    match children.as_slice() {
        [child] if passes => estimated_output_rows(child),
        _ => None,
    }
}

/// An inner nested-loop join whose right input is one row (a scalar subquery's aggregate:
/// `c_acctbal > (SELECT avg(c_acctbal) ...)`, TPC-H Q22 and Q11) with its inputs swapped: the
/// one row is collected (and broadcast), and the other input, no longer merged into one
/// partition, is probed where it is. DataFusion, without statistics, collects the left input
/// whatever its size: all of it would reach the coordinator.
fn one_row_collected(join: &NestedLoopJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if *join.join_type() != JoinType::Inner || !one_row(join.right()) || one_row(join.left()) {
        return Ok(None);
    }
    let swapped = join.swap_inputs()?;
    let with_probe_as_is =
        |plan: &Arc<dyn ExecutionPlan>| -> Result<Option<Arc<dyn ExecutionPlan>>> {
            let Some(inner) = plan.downcast_ref::<NestedLoopJoinExec>() else {
                return Ok(None);
            };
            let probe = without_merge(inner.right())?;
            with_children(Arc::clone(plan), vec![Arc::clone(inner.left()), probe]).map(Some)
        };
    if let Some(rewritten) = with_probe_as_is(&swapped)? {
        return Ok(Some(rewritten));
    }
    if let Some(projection) = swapped.downcast_ref::<ProjectionExec>() {
        if let Some(inner) = with_probe_as_is(projection.input())? {
            return with_children(Arc::clone(&swapped), vec![inner]).map(Some);
        }
    }
    Ok(None)
}

/// `plan` without the merge into one partition under its projections and filters (a merge
/// with a fetch, a LIMIT, stays).
fn without_merge(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(merge) = plan.downcast_ref::<CoalescePartitionsExec>() {
        if merge.fetch().is_none() {
            return Ok(Arc::clone(merge.input()));
        }
    }
    if plan.is::<ProjectionExec>() || plan.is::<FilterExec>() {
        if let [child] = plan.children().as_slice() {
            let child = without_merge(child)?;
            return with_children(Arc::clone(plan), vec![child]);
        }
    }
    Ok(Arc::clone(plan))
}

/// Whether `plan` gives at most one row: an aggregate without GROUP BY (its final stage)
/// under projections, filters and merges.
fn one_row(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        return aggregate.group_expr().is_empty()
            && matches!(
                aggregate.mode(),
                AggregateMode::Final | AggregateMode::Single
            );
    }
    let passes = plan.is::<ProjectionExec>()
        || plan.is::<FilterExec>()
        || plan.is::<CoalescePartitionsExec>();
    match plan.children().as_slice() {
        [child] if passes => one_row(child),
        _ => false,
    }
}

/// `join` with its right input collected: the inputs swapped (under a projection restoring
/// the column order when it needs one), then [`collect_left`].
fn collect_right(
    join: &HashJoinExec,
    collected: Collected,
    limits: Limits,
) -> Result<Arc<dyn ExecutionPlan>> {
    let swapped = join.swap_inputs(PartitionMode::Partitioned)?;
    if let Some(inner) = swapped.downcast_ref::<HashJoinExec>() {
        return collect_left(inner, collected, limits);
    }
    if let Some(inner) = swapped
        .downcast_ref::<ProjectionExec>()
        .and_then(|projection| projection.input().downcast_ref::<HashJoinExec>())
    {
        let join = collect_left(inner, collected, limits)?;
        return with_children(Arc::clone(&swapped), vec![join]);
    }
    Err(datafusion::error::DataFusionError::Internal(
        "a swapped join is not a join".into(),
    ))
}

/// The rows a side that is one table's scan under filters, projections, repartitions and
/// merges is estimated to have: the rows the catalog counts in the files the scan reads (at
/// most its limit), times each filter's default selectivity, at most any limit on the way.
/// `None` for anything else.
fn estimated_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    if let Some(scan) = plan.downcast_ref::<ShardScanExec>() {
        return scan.catalog_rows();
    }
    let passes = plan.is::<FilterExec>() || plan.is::<ProjectionExec>() || repartitions(plan);
    let children = plan.children();
    let [child] = children.as_slice() else {
        return None;
    };
    if !passes {
        return None;
    }
    let mut rows = estimated_rows(child)?;
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        rows = rows.saturating_mul(usize::from(filter.default_selectivity())) / 100;
    }
    Some(plan.fetch().map_or(rows, |fetch| rows.min(fetch)))
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

/// `join` as a join collecting its left input as `collected` says and probing it with its
/// right input as it is (without a hash repartition on top; spread round-robin over the
/// session's partitions if it has fewer, as on the coordinator).
fn collect_left(
    join: &HashJoinExec,
    collected: Collected,
    limits: Limits,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut probe = below_hash_repartition(join.right());
    if probe.output_partitioning().partition_count() < limits.target_partitions {
        probe = Arc::new(RepartitionExec::try_new(
            probe,
            Partitioning::RoundRobinBatch(limits.target_partitions),
        )?);
    }
    let build = match collected {
        Collected::EveryTaskReadsItsCopy => read_whole(join.left())?,
        Collected::Broadcast => {
            let input = below_hash_repartition(join.left());
            if input.output_partitioning().partition_count() > 1 {
                Arc::new(CoalescePartitionsExec::new(input))
            } else {
                input
            }
        }
    };
    join.builder()
        .with_partition_mode(PartitionMode::CollectLeft)
        .reset_state()
        .with_new_children(vec![build, probe])?
        .recompute_properties()
        .build_exec()
}

/// `plan` without a hash repartition on top (order-preserving ones stay).
fn below_hash_repartition(plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match plan.downcast_ref::<RepartitionExec>() {
        Some(r) if matches!(r.partitioning(), Partitioning::Hash(..)) && !r.preserve_order() => {
            Arc::clone(r.input())
        }
        _ => Arc::clone(plan),
    }
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
