//! `x NOT IN (SELECT y ...)` in a WHERE clause (where only true keeps a row), as PostgreSQL
//! answers it: true exactly when the subquery's set S is empty, or x is not NULL, S holds no
//! NULL and no y equals x. DataFusion plans it as a null-aware anti join, which takes one key
//! and must see all of S in one process. Two rules:
//!
//! - [`NotInAsNotExists`] (an analyzer rule, before DataFusion decorrelates anything): a NOT
//!   IN whose equality DataFusion cannot keep as the join's key — a correlated subquery (the
//!   null-aware join of its two keys is refused at run time), or an x without a column of
//!   the outer query (a literal, a parameter: the equality is pushed into the subquery and
//!   the null-aware join runs on the correlation's key, or on nothing, without NULL
//!   semantics) — becomes `NOT EXISTS (SELECT 1 FROM (S) WHERE y = x OR y IS NULL OR x IS
//!   NULL)`, exactly the rows for which no element of S makes `x <> y` anything but true. A
//!   correlated S over an aggregate (`NOT IN (SELECT max(v) ... WHERE s.c = outer.a)`, one
//!   row even for no input) DataFusion would decorrelate as if empty: refused (0A000).
//! - [`NotInRewriteRule`] (an optimizer rule, after DataFusion's): what remains, an
//!   uncorrelated NOT IN of an outer expression, in a query that runs in stages, becomes an
//!   ordinary anti join plus the subquery's two counts, so that it can run where the data is
//!   (in stages, the null-aware join would gather the whole outer side into one task):
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
//! twice, so that rule applies only where S gives the same rows each time (nothing volatile,
//! no LIMIT); on the coordinator alone the null-aware join reads S once.
//!
//! A NOT IN under OR is rewritten as NOT EXISTS as well (DataFusion's mark join would read
//! its NULL as false, and `x NOT IN (1, NULL) OR ...` kept rows PostgreSQL does not); in a
//! CASE or a select list, where a NULL is not false, it is refused (0A000). (`NOT (x NOT IN
//! S)` reaches the rules as `x IN S`.)

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, DataFusionError, JoinType, Result};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::expr::{BinaryExpr, Exists, InSubquery};
use datafusion::logical_expr::{
    lit, Expr, Filter, Join, LogicalPlan, LogicalPlanBuilder, Operator, Subquery,
};
use datafusion::optimizer::{AnalyzerRule, ApplyOrder, OptimizerConfig, OptimizerRule};

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

/// `join` as the plan in the module doc, when it is a null-aware anti join on one key (the
/// NOT IN equality: [`NotInAsNotExists`] has taken every other NOT IN) without a filter
/// whose right input gives the same rows each time.
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
    let rows = Expr::Column(Column::new(Some(alias.as_str()), ROWS));
    let keys = Expr::Column(Column::new(Some(alias.as_str()), KEYS));
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

/// Rewrites, in a WHERE or HAVING clause, the NOT IN subqueries DataFusion would answer
/// without PostgreSQL's NULLs as NOT EXISTS, and refuses those it cannot (see the module doc).
#[derive(Debug, Default)]
pub struct NotInAsNotExists;

impl NotInAsNotExists {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(NotInAsNotExists)
    }
}

impl AnalyzerRule for NotInAsNotExists {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Filter(filter) => rewrite_filter(filter),
            other => {
                // borrowed, not cloned: this runs for every statement
                let mut found = false;
                other.apply_expressions(|expr| {
                    found = has_not_in(expr)?;
                    Ok(if found {
                        TreeNodeRecursion::Stop
                    } else {
                        TreeNodeRecursion::Continue
                    })
                })?;
                if found {
                    return Err(unsupported_position());
                }
                Ok(Transformed::no(other))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "shoal_not_in_as_not_exists"
    }
}

fn rewrite_filter(filter: Filter) -> Result<Transformed<LogicalPlan>> {
    if !has_not_in(&filter.predicate)? {
        return Ok(Transformed::no(LogicalPlan::Filter(filter)));
    }
    let outer = Arc::clone(filter.input.schema());
    let mut changed = false;
    let predicate = rewrite_where(filter.predicate.clone(), true, &outer, &mut changed)?;
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Filter(filter)));
    }
    Filter::try_new(predicate, filter.input).map(|f| Transformed::yes(LogicalPlan::Filter(f)))
}

/// `predicate` with its NOT INs reached through AND and OR alone rewritten: there a NULL
/// and false keep a row out alike, so the NOT EXISTS form (true exactly where NOT IN is)
/// may replace it. `top`: reached through AND alone, where DataFusion's null-aware join takes
/// a NOT IN that [`keeps_its_key`]; under OR it would be a mark join, which reads NULL as
/// false. A NOT IN anywhere else (under NOT, in a CASE) is refused.
fn rewrite_where(
    predicate: Expr,
    top: bool,
    outer: &DFSchemaRef,
    changed: &mut bool,
) -> Result<Expr> {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::And | Operator::Or) =>
        {
            let top = top && op == Operator::And;
            let left = rewrite_where(*left, top, outer, changed)?;
            let right = rewrite_where(*right, top, outer, changed)?;
            Ok(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(left),
                op,
                Box::new(right),
            )))
        }
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated: true,
        }) if !(top && keeps_its_key(&expr, &subquery)) => {
            *changed = true;
            not_exists(&expr, subquery, outer)
        }
        Expr::InSubquery(not_in @ InSubquery { negated: true, .. }) => Ok(Expr::InSubquery(not_in)),
        other if has_not_in(&other)? => Err(unsupported_position()),
        other => Ok(other),
    }
}

/// Whether `expr` holds a `NOT IN (subquery)` (not inside a subquery of its own).
fn has_not_in(expr: &Expr) -> Result<bool> {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::InSubquery(InSubquery { negated: true, .. })
        ))
    })
}

/// A NOT IN Shoal cannot answer as PostgreSQL does: 0A000, naming the form that works.
fn refused(what: &str) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "{what} is not supported; write it as NOT EXISTS (SELECT 1 FROM ... WHERE y = x \
         OR y IS NULL OR x IS NULL) and handle NULLs explicitly"
    ))
}

fn unsupported_position() -> DataFusionError {
    refused("NOT IN (subquery) outside WHERE and HAVING's AND and OR (where NULL and false mean the same)")
}

/// Whether DataFusion's decorrelation keeps `x = y` as the null-aware join's one key: the
/// subquery is uncorrelated and x is an expression of the outer query's columns.
fn keeps_its_key(x: &Expr, subquery: &Subquery) -> bool {
    subquery.outer_ref_columns.is_empty() && !x.column_refs().is_empty() && !x.contains_outer()
}

/// `NOT EXISTS (SELECT 1 FROM (S) WHERE y = x OR y IS NULL OR x IS NULL)`, x's columns made
/// references to the outer query (of schema `outer`).
fn not_exists(x: &Expr, subquery: Subquery, outer: &DFSchemaRef) -> Result<Expr> {
    if x.contains_outer() || x.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_))))? {
        return Err(refused(
            "NOT IN of an expression of an enclosing query or of a subquery",
        ));
    }
    let correlated = !subquery.outer_ref_columns.is_empty();
    let over_aggregate = any_node(
        &subquery.subquery,
        |node| matches!(node, LogicalPlan::Aggregate(a) if !a.aggr_expr.is_empty()),
    )?;
    if correlated && over_aggregate {
        return Err(refused("NOT IN of a correlated subquery with an aggregate"));
    }
    let x_outer = x
        .clone()
        .transform(|e| match e {
            Expr::Column(column) => {
                let (_, field) = outer.qualified_field_from_column(&column)?;
                Ok(Transformed::yes(Expr::OuterReferenceColumn(
                    Arc::clone(field),
                    column,
                )))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let inner = subquery.subquery.as_ref();
    let y = Expr::Column(Column::from(inner.schema().qualified_field(0)));
    let matches = y
        .clone()
        .eq(x_outer.clone())
        .or(y.is_null())
        .or(x_outer.clone().is_null());
    let plan = LogicalPlanBuilder::from(inner.clone())
        .filter(matches)?
        .build()?;
    let mut outer_ref_columns = subquery.outer_ref_columns.clone();
    x_outer.apply(|e| {
        if matches!(e, Expr::OuterReferenceColumn(..)) && !outer_ref_columns.contains(e) {
            outer_ref_columns.push(e.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(Expr::Exists(Exists {
        subquery: Subquery {
            subquery: Arc::new(plan),
            outer_ref_columns,
            spans: subquery.spans,
        },
        negated: true,
    }))
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
