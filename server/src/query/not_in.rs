//! `NotInRewriteRule`: `x NOT IN (SELECT y ...)` as an ordinary anti join plus the subquery's
//! two counts, so that it can run where the data is.
//!
//! DataFusion plans `NOT IN` as a null-aware anti join, which must see every row of the
//! subquery (a NULL anywhere there lets no row through) in one process: in stages, the
//! whole outer side would be gathered into one task. In a WHERE clause (where only true
//! keeps a row) `x NOT IN (S)` is true exactly when S is empty, or x is not NULL, S holds no
//! NULL and no y equals x:
//!
//! ```text
//! Join(LeftAnti, x = y, null_aware)       Projection(L's columns)
//!   L                               ─►      Filter(rows = 0 OR (x IS NOT NULL AND keys = rows))
//!   S                                         Join(Inner)
//!                                               Aggregate(count(*) AS rows, count(y) AS keys)
//!                                                 S
//!                                               Join(LeftAnti, x = y)   (ordinary: NULLs
//!                                                 L                      match nothing)
//!                                                 S
//! ```
//!
//! The ordinary anti join can be probed partition by partition (a reference table read in
//! every task, a small side broadcast), and the counts are one row, broadcast. S is computed
//! twice, so the rule applies only where S gives the same rows each time (nothing volatile,
//! no LIMIT), to a NOT IN of one column without a correlation (a join filter), and only to
//! queries that run in stages: on the coordinator alone the null-aware join reads S once.

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{JoinType, Result};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{lit, Expr, Join, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use std::sync::Arc;

/// Rewrites null-aware anti joins (see the module doc).
#[derive(Debug, Default)]
pub struct NotInRewriteRule;

/// The counts' column names: unlikely in a user's query, and qualified by a fresh alias.
const ROWS: &str = "__shoal_not_in_rows";
const KEYS: &str = "__shoal_not_in_keys";

impl OptimizerRule for NotInRewriteRule {
    fn name(&self) -> &str {
        "shoal_not_in_rewrite"
    }

    /// The whole plan at once: whether it runs in stages is a property of all of it.
    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let has_not_in = any_node(
            &plan,
            |node| matches!(node, LogicalPlan::Join(join) if join.null_aware),
        )?;
        if !has_not_in || !crate::query::distributed::distributes(&plan)? {
            return Ok(Transformed::no(plan));
        }
        plan.transform_up_with_subqueries(|node| match &node {
            LogicalPlan::Join(join) => match rewrite_not_in(join, config)? {
                Some(rewritten) => Ok(Transformed::yes(rewritten)),
                None => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// `join` as the plan in the module doc, when it is a null-aware anti join on one key
/// without a filter and its right input gives the same rows each time it is read.
fn rewrite_not_in(join: &Join, config: &dyn OptimizerConfig) -> Result<Option<LogicalPlan>> {
    let [(x, y)] = join.on.as_slice() else {
        return Ok(None);
    };
    if !join.null_aware
        || join.join_type != JoinType::LeftAnti
        || join.filter.is_some()
        || !same_rows_each_time(&join.right)?
    {
        return Ok(None);
    }
    let anti = Join::try_new(
        Arc::clone(&join.left),
        Arc::clone(&join.right),
        join.on.clone(),
        None,
        JoinType::LeftAnti,
        join.join_constraint,
        join.null_equality,
        false,
    )?;
    let alias = config.alias_generator().next("__shoal_not_in");
    let counts = LogicalPlanBuilder::from(Arc::clone(&join.right))
        .aggregate(
            Vec::<Expr>::new(),
            vec![count_all().alias(ROWS), count(y.clone()).alias(KEYS)],
        )?
        .alias(alias.as_str())?
        .build()?;
    let rows = Expr::Column(datafusion::common::Column::new(Some(alias.as_str()), ROWS));
    let keys = Expr::Column(datafusion::common::Column::new(Some(alias.as_str()), KEYS));
    let passes = rows
        .clone()
        .eq(lit(0i64))
        .or(x.clone().is_not_null().and(keys.eq(rows)));
    let outer_columns: Vec<Expr> = join
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    // the one row on the left, the build side DataFusion collects; the anti join probed
    LogicalPlanBuilder::from(counts)
        .cross_join(LogicalPlan::Join(anti))?
        .filter(passes)?
        .project(outer_columns)?
        .build()
        .map(Some)
}

/// Whether `plan` gives the same rows each time it runs: no volatile expression (`random()`)
/// and no limit, which may pick different rows each time.
fn same_rows_each_time(plan: &LogicalPlan) -> Result<bool> {
    let varies = any_node(plan, |node| {
        let limited = match node {
            LogicalPlan::Limit(_) => true,
            LogicalPlan::Sort(sort) => sort.fetch.is_some(),
            LogicalPlan::TableScan(scan) => scan.fetch.is_some(),
            _ => false,
        };
        limited || node.expressions().iter().any(Expr::is_volatile)
    })?;
    Ok(!varies)
}

/// Whether some node of `plan`, its subqueries' included, is one `test` accepts.
fn any_node(plan: &LogicalPlan, test: impl Fn(&LogicalPlan) -> bool) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        found = test(node);
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}
