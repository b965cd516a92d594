//! `ShardAggregatePushdownRule`: runs an aggregate's partial step on the workers, next to the
//! data, and merges the per-shard partials on the coordinator.
//!
//! ```text
//!  Aggregate(g; count(x), sum(y), avg(z))          Projection(g, coalesce(sum(p0),0), sum(p1),
//!    Filter(f)                               ==>              sum(p2s)/nullif(sum(p2c),0))
//!      TableScan(distributed t)                      Aggregate(g; sum(p0), sum(p1), sum(p2s), sum(p2c))
//!                                                      TableScan(PartialAggregateScan: workers run
//!                                                        Filter(f) + Aggregate(g; count, sum, sum+count))
//! ```
//! Only decomposable aggregates (count, sum, min, max, avg over integers and floats) without
//! DISTINCT, FILTER or ORDER BY are pushed, and only when every filter can run on a worker;
//! anything else is left to the coordinator unchanged.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::functions::expr_fn::{coalesce, nullif};
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, Cast, ScalarFunction};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    cast, lit, Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, TableScan, TableType,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use shoal_shard_store::PartialAggregate;
use shoal_sql_functions::Cluster;

use crate::query::pg_aggregates::{integer_sum_type, IntegerAvgFinal, BIGINT_SUM_TYPE};
use crate::query::provider::{external, unqualify, DistributedTable};
use crate::query::scan::{ShardScanArgs, ShardScanExec};

#[derive(Debug, Default)]
pub struct ShardAggregatePushdownRule;

/// How one original aggregate is computed from partials.
enum Merge {
    Count(String),
    Same(&'static str, String),
    /// Partial sum and count; `integer`: the average is numeric ([`IntegerAvgFinal`]).
    Avg(String, String, bool),
}

impl OptimizerRule for ShardAggregatePushdownRule {
    fn name(&self) -> &str {
        "shard_aggregate_pushdown"
    }

    /// The whole plan at once: a query that runs in stages on the workers gets its partial
    /// aggregates from DataFusion there, so nothing is pushed (if it ends up in one stage
    /// after all, the distributed planner pushes them: `push_aggregates`).
    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if crate::query::distributed::distributes(&plan)? {
            return Ok(Transformed::no(plan));
        }
        push_aggregates(plan)
    }
}

/// `plan` with every aggregate that can be pushed to the workers pushed.
pub fn push_aggregates(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    plan.transform_down_with_subqueries(|node| match &node {
        LogicalPlan::Aggregate(agg) => match try_push(agg)? {
            Some(new) => Ok(Transformed::yes(new)),
            None => Ok(Transformed::no(node)),
        },
        _ => Ok(Transformed::no(node)),
    })
}

fn try_push(agg: &Aggregate) -> Result<Option<LogicalPlan>> {
    // Aggregate -> [Projection of columns] -> [Filter] -> TableScan(DistributedTable)
    let mut input = agg.input.as_ref();
    if let LogicalPlan::Projection(p) = input {
        if !p.expr.iter().all(|e| matches!(e, Expr::Column(_))) {
            return Ok(None);
        }
        input = p.input.as_ref();
    }
    let (predicates, scan): (Vec<Expr>, &TableScan) = match input {
        LogicalPlan::TableScan(s) => (vec![], s),
        LogicalPlan::Filter(f) => match f.input.as_ref() {
            LogicalPlan::TableScan(s) => (
                split_conjunction(&f.predicate)
                    .into_iter()
                    .cloned()
                    .collect(),
                s,
            ),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    if scan.fetch.is_some() {
        return Ok(None);
    }
    let provider = source_as_provider(&scan.source)?;
    let any: &dyn Any = provider.as_ref();
    let Some(table) = any.downcast_ref::<DistributedTable>() else {
        return Ok(None);
    };

    let mut filters = predicates;
    for f in &scan.filters {
        if !filters.contains(f) {
            filters.push(f.clone());
        }
    }
    let mut worker_filters = Vec::new();
    for f in &filters {
        match unqualify(f) {
            Some(e) => worker_filters.push(e),
            None => return Ok(None),
        }
    }

    let mut group_cols: Vec<Column> = Vec::new();
    for g in &agg.group_expr {
        match g {
            Expr::Column(c) => group_cols.push(c.clone()),
            _ => return Ok(None),
        }
    }

    let table_schema = table.schema();
    let mut partials: Vec<Expr> = Vec::new();
    let mut merges: Vec<Merge> = Vec::new();
    for (j, a) in agg.aggr_expr.iter().enumerate() {
        let inner = match a {
            Expr::Alias(al) => al.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Ok(None);
        };
        if params.distinct
            || params.filter.is_some()
            || !params.order_by.is_empty()
            || params.null_treatment.is_some()
        {
            return Ok(None);
        }
        let arg = match params.args.as_slice() {
            [Expr::Column(c)] => Expr::Column(Column::new_unqualified(c.name.clone())),
            // The argument type coercion added (`sum(bigint)` sums as numeric, `avg(int)`
            // as double); the workers' partials cast the same way.
            [Expr::Cast(Cast { expr, field })] if matches!(expr.as_ref(), Expr::Column(_)) => {
                let Expr::Column(c) = expr.as_ref() else {
                    return Ok(None);
                };
                cast(
                    Expr::Column(Column::new_unqualified(c.name.clone())),
                    field.data_type().clone(),
                )
            }
            [Expr::Literal(v, _)] if func.name() == "count" => Expr::Literal(v.clone(), None),
            _ => return Ok(None),
        };
        let p = format!("__shoal_p{j}");
        match func.name() {
            "count" => {
                partials.push(count(arg).alias(&p));
                merges.push(Merge::Count(p));
            }
            "sum" => {
                partials.push(exact_sum(arg, &table_schema)?.alias(&p));
                merges.push(Merge::Same("sum", p));
            }
            "min" => {
                partials.push(min(arg).alias(&p));
                merges.push(Merge::Same("min", p));
            }
            "max" => {
                partials.push(max(arg).alias(&p));
                merges.push(Merge::Same("max", p));
            }
            "avg" => {
                let ty = match &arg {
                    Expr::Column(c) => table_schema.field_with_name(&c.name)?.data_type().clone(),
                    Expr::Cast(Cast { field, .. }) => field.data_type().clone(),
                    _ => return Ok(None),
                };
                if !(ty.is_integer() || ty.is_floating()) {
                    return Ok(None);
                }
                let (s, n) = (format!("{p}s"), format!("{p}c"));
                partials.push(exact_sum(arg.clone(), &table_schema)?.alias(&s));
                partials.push(count(arg).alias(&n));
                merges.push(Merge::Avg(s, n, ty.is_integer()));
            }
            _ => return Ok(None),
        }
    }

    // The schema the workers will return, computed by the same planner over no rows.
    let worker_group: Vec<Expr> = group_cols
        .iter()
        .map(|c| Expr::Column(Column::new_unqualified(c.name.clone())))
        .collect();
    let probe = SessionContext::new();
    let mut df = probe.read_table(Arc::new(EmptyTable::new(Arc::clone(&table_schema))))?;
    for f in &worker_filters {
        df = df.filter(f.clone())?;
    }
    let df = df.aggregate(worker_group.clone(), partials.clone())?;
    let partial_schema: SchemaRef = Arc::new(Schema::new(
        df.schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), no_views(f.data_type()), true))
            .collect::<Vec<_>>(),
    ));

    let source = PartialAggregateScan {
        cluster: table.cluster(),
        table: table.clone_handle(),
        schema: Arc::clone(&partial_schema),
        aggregate: PartialAggregate {
            group_by: worker_group,
            aggr: partials,
        },
        filters: worker_filters,
    };
    let qualifier = scan.table_name.clone();
    let q = |name: &str| Expr::Column(Column::new(Some(qualifier.clone()), name));
    let new_scan = LogicalPlanBuilder::scan(
        qualifier.clone(),
        provider_as_source(Arc::new(source)),
        None,
    )?
    .build()?;

    let mut final_aggs = Vec::new();
    for m in &merges {
        match m {
            Merge::Count(p) => final_aggs.push(sum(q(p)).alias(format!("{p}_m"))),
            Merge::Same(f, p) => final_aggs.push(
                match *f {
                    "sum" => sum(q(p)),
                    "min" => min(q(p)),
                    _ => max(q(p)),
                }
                .alias(format!("{p}_m")),
            ),
            Merge::Avg(s, n, _) => {
                final_aggs.push(sum(q(s)).alias(format!("{s}_m")));
                final_aggs.push(sum(q(n)).alias(format!("{n}_m")));
            }
        }
    }
    let group_exprs: Vec<Expr> = group_cols.iter().map(|c| q(&c.name)).collect();
    let merged = LogicalPlanBuilder::from(new_scan)
        .aggregate(group_exprs, final_aggs)?
        .build()?;

    // Restore the original output: same names, same types, same qualifiers.
    let out_schema = Arc::clone(&agg.schema);
    let mut projection: Vec<Expr> = Vec::new();
    for (i, c) in group_cols.iter().enumerate() {
        let (qual, field) = out_schema.qualified_field(i);
        let e = q(&c.name);
        projection.push(match qual {
            Some(qq) if qq == &qualifier && field.name() == &c.name => e,
            _ => e.alias_qualified(qual.cloned(), field.name()),
        });
    }
    let m = |name: String| Expr::Column(Column::new_unqualified(name));
    for (j, merge) in merges.iter().enumerate() {
        let (qual, field) = out_schema.qualified_field(group_cols.len() + j);
        let ty = field.data_type().clone();
        let e = match merge {
            Merge::Count(p) => coalesce(vec![m(format!("{p}_m")), lit(0i64)]),
            Merge::Same(_, p) => m(format!("{p}_m")),
            Merge::Avg(s, n, true) => Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(IntegerAvgFinal::udf()),
                vec![
                    cast(m(format!("{s}_m")), BIGINT_SUM_TYPE),
                    cast(m(format!("{n}_m")), BIGINT_SUM_TYPE),
                ],
            )),
            Merge::Avg(s, n, false) => {
                cast(m(format!("{s}_m")), DataType::Float64)
                    / nullif(cast(m(format!("{n}_m")), DataType::Float64), lit(0f64))
            }
        };
        projection.push(cast(e, ty).alias_qualified(qual.cloned(), field.name()));
    }
    let plan = LogicalPlanBuilder::from(merged)
        .project(projection)?
        .build()?;
    if plan.schema().fields().len() != agg.schema.fields().len() {
        return Ok(None);
    }
    Ok(Some(plan))
}

/// A worker's partial `sum(arg)` that cannot wrap: integers sum as PostgreSQL's `sum` does
/// (`bigint` as numeric), since the workers run DataFusion's own `sum`.
fn exact_sum(arg: Expr, table_schema: &SchemaRef) -> Result<Expr> {
    let ty = match &arg {
        Expr::Column(c) => table_schema.field_with_name(&c.name)?.data_type().clone(),
        Expr::Cast(Cast { field, .. }) => field.data_type().clone(),
        _ => return Ok(sum(arg)),
    };
    Ok(match integer_sum_type(&ty) {
        Some(t) => sum(cast(arg, t)),
        None => sum(arg),
    })
}

fn no_views(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// A scan whose workers return per-shard partial aggregates.
struct PartialAggregateScan {
    cluster: Arc<Cluster>,
    table: DistributedTable,
    schema: SchemaRef,
    aggregate: PartialAggregate,
    filters: Vec<Expr>,
}

impl fmt::Debug for PartialAggregateScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartialAggregateScan({})", self.table.info.name)
    }
}

#[async_trait]
impl TableProvider for PartialAggregateScan {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let guard = Arc::new(self.cluster.begin_statement());
        let snapshot = crate::query::provider::statement_snapshot(&self.cluster, &self.table.info)
            .map_err(external)?;
        let total = snapshot.shards.len();
        let table_schema = shoal_sql_functions::types::table_schema(&snapshot.table.columns);
        let shards = self.table.prune(snapshot.shards, &self.filters);
        let exec: Arc<dyn ExecutionPlan> = Arc::new(ShardScanExec::new(
            Arc::clone(&self.cluster),
            ShardScanArgs {
                table_name: self.table.info.name.clone(),
                table_id: self.table.info.table_id,
                stored_names: shoal_sql_functions::types::stored_names(&snapshot.table.columns),
                table_schema,
                projection: None,
                filters: self.filters.clone(),
                aggregate: Some((self.aggregate.clone(), Arc::clone(&self.schema))),
                limit: None,
                shards,
                total_shards: total,
                snapshot: guard,
                distribution_column: None,
                reference: snapshot.table.kind == shoal_catalog::TableKind::Reference,
            },
        )?);
        match projection {
            Some(p) if p.iter().copied().ne(0..self.schema.fields().len()) => {
                let exprs: Vec<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, String)> = p
                    .iter()
                    .map(|i| {
                        let name = self.schema.field(*i).name().clone();
                        (
                            Arc::new(datafusion::physical_expr::expressions::Column::new(
                                &name, *i,
                            ))
                                as Arc<dyn datafusion::physical_expr::PhysicalExpr>,
                            name,
                        )
                    })
                    .collect();
                Ok(Arc::new(
                    datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, exec)?,
                ))
            }
            _ => Ok(exec),
        }
    }
}
