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
//! no LIMIT), and an uncorrelated NOT IN only in queries that run in stages: on the
//! coordinator alone the null-aware join reads S once.
//!
//! A correlated NOT IN (`x NOT IN (SELECT y FROM s WHERE s.c = outer.a)`), which DataFusion
//! plans as a null-aware join on two keys and then refuses to run, is rewritten wherever it
//! runs: the anti join on `x = y AND a = c`, the counts grouped by `c` and left-joined on
//! `a = c`, and the test `rows IS NULL OR (x IS NOT NULL AND keys = rows)` (no group: an
//! empty set for that row). A correlation other than equalities (a join filter) is left to
//! DataFusion.

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, JoinType, Result};
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
        if !has_not_in {
            return Ok(Transformed::no(plan));
        }
        let in_stages = crate::query::distributed::distributes(&plan)?;
        plan.transform_up_with_subqueries(|node| match &node {
            LogicalPlan::Join(join) => match rewrite_not_in(join, in_stages, config)? {
                Some(rewritten) => Ok(Transformed::yes(rewritten)),
                None => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// `join` as the plan in the module doc, when it is a null-aware anti join without a
/// filter whose right input gives the same rows each time it is read: uncorrelated (one
/// key) in a query that runs in stages, correlated (the NOT IN key first, then the
/// correlation's equalities) always, since DataFusion's null-aware join takes one key only.
fn rewrite_not_in(
    join: &Join,
    in_stages: bool,
    config: &dyn OptimizerConfig,
) -> Result<Option<LogicalPlan>> {
    // DataFusion's decorrelation writes the NOT IN equality first, then the correlation's
    let [(x, y), correlation @ ..] = join.on.as_slice() else {
        return Ok(None);
    };
    if !join.null_aware
        || join.join_type != JoinType::LeftAnti
        || join.filter.is_some()
        || (correlation.is_empty() && !in_stages)
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
    let column = |name: &str| Expr::Column(Column::new(Some(alias.as_str()), name));
    let group_names: Vec<String> = (0..correlation.len())
        .map(|i| format!("__shoal_not_in_group{i}"))
        .collect();
    let counts = LogicalPlanBuilder::from(Arc::clone(&join.right))
        .aggregate(
            correlation
                .iter()
                .zip(&group_names)
                .map(|((_, inner), name)| inner.clone().alias(name)),
            vec![count_all().alias(ROWS), count(y.clone()).alias(KEYS)],
        )?
        .alias(alias.as_str())?
        .build()?;
    let (rows, keys) = (column(ROWS), column(KEYS));
    let no_null_in_set = x.clone().is_not_null().and(keys.eq(rows.clone()));
    let outer_columns: Vec<Expr> = join
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let filtered = if correlation.is_empty() {
        // the one row on the left, the build side DataFusion collects; the anti join probed
        LogicalPlanBuilder::from(counts)
            .cross_join(LogicalPlan::Join(anti))?
            .filter(rows.eq(lit(0i64)).or(no_null_in_set))?
    } else {
        // an outer row without a group of counts has an empty set
        let outer_keys: Vec<Expr> = correlation.iter().map(|(outer, _)| outer.clone()).collect();
        let group_keys: Vec<Expr> = group_names.iter().map(|name| column(name)).collect();
        LogicalPlanBuilder::from(LogicalPlan::Join(anti))
            .join_with_expr_keys(counts, JoinType::Left, (outer_keys, group_keys), None)?
            .filter(rows.is_null().or(no_null_in_set))?
    };
    filtered.project(outer_columns)?.build().map(Some)
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
