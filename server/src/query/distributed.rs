//! Distributed execution on datafusion-distributed, the coordinator's side: which queries
//! run in stages on the workers ([`DistributedGate`]), how a [`ShardScanExec`] becomes the
//! per-task leaves of a stage and where each task runs (the event handlers), which nodes
//! can run tasks ([`ShoalWorkers`]), and the functions a worker's tasks may call.
//!
//! ```text
//! SQL ─► logical plan ─► DistributedGate: every table a distributed Shoal table, every
//!        function one workers have, shoal.distributed_execution on?
//!          no  ─► DataFusion's planner: scans bring rows, the rest runs here
//!          yes ─► DataFusion's planner ─► datafusion-distributed cuts the plan into stages
//!                 at repartitions, broadcasts and merges; a ShardScanExec asks one task
//!                 per worker that serves its shards; task i reads the shards whose first
//!                 live placement is on worker i and is routed there
//! ```
//!
//! The coordinator's snapshot guard is held by the `ShardScanExec` inside the plan until the
//! query's stream ends; the leaves read exactly the files of that snapshot.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::common::display::{PlanType, StringifiedPlan, ToStringifiedPlan};
use datafusion::common::format::ExplainFormat;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{
    display_plan_ascii, DesiredTaskCountEvent, DesiredTaskCountEventResponse,
    DesiredTaskCountHandler, DistributedExt, DistributedLeafExec, NetworkBoundaryExt,
    RouteTasksEvent, RouteTasksEventResponse, ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse,
    SessionStateBuilderExt, WorkerResolver,
};
use shoal_shard_store::{ClusterChannels, ShardLeafCodec, ShardLeafExec, WorkerSessionHook};
use shoal_sql_functions::Cluster;
use url::Url;

use crate::query::provider::DistributedTable;
use crate::query::scan::ShardScanExec;

/// Functions the tasks on a worker may call besides DataFusion's: Shoal's that depend on
/// nothing but their arguments (not the session's settings, the catalog or a sequence).
fn worker_functions() -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    use crate::query::{
        pg_aggregates, pg_bpchar, pg_interval, pg_json, pg_like, pg_limits, pg_vectors,
    };
    let mut scalar = vec![
        pg_bpchar::ToBpchar::udf(),
        pg_bpchar::BpcharText::udf(),
        pg_vectors::VectorElement::udf(),
        pg_aggregates::IntegerAvgFinal::udf(),
        pg_interval::IntervalMul::udf(),
        pg_like::LikeEscape::udf(),
    ];
    scalar.extend(pg_json::builder_udfs());
    scalar.extend(pg_json::udfs());
    scalar.extend(pg_limits::BoundedFunction::udfs());
    let aggregate = vec![pg_aggregates::PgSum::udaf(), pg_aggregates::PgAvg::udaf()];
    (scalar, aggregate)
}

/// What a worker adds to the session of each task: [`worker_functions`].
pub fn worker_session_hook() -> WorkerSessionHook {
    WorkerSessionHook(Arc::new(|builder: SessionStateBuilder| {
        let (scalar, aggregate) = worker_functions();
        let mut builder = builder;
        if let Some(fs) = builder.scalar_functions() {
            fs.extend(scalar.into_iter().map(Arc::new));
        }
        if let Some(fs) = builder.aggregate_functions() {
            fs.extend(aggregate.into_iter().map(Arc::new));
        }
        builder
    }))
}

/// The names (and aliases) of every function a worker's task can call.
static WORKER_FUNCTIONS: LazyLock<HashSet<String>> = LazyLock::new(worker_function_names);

fn worker_function_names() -> HashSet<String> {
    let state =
        (worker_session_hook().0)(SessionStateBuilder::new().with_default_features()).build();
    let mut names: HashSet<String> = HashSet::new();
    names.extend(state.scalar_functions().keys().cloned());
    names.extend(state.aggregate_functions().keys().cloned());
    names.extend(state.window_functions().keys().cloned());
    names
}

/// Makes `state` plan eligible queries in stages on the workers (see the module doc).
pub fn install(
    state: SessionState,
    cluster: &Arc<Cluster>,
    channels: ClusterChannels,
) -> SessionState {
    let distributed = SessionStateBuilder::new_from_existing(state)
        .with_distributed_worker_resolver(ShoalWorkers {
            cluster: Arc::clone(cluster),
            channels: channels.clone(),
        })
        .with_distributed_channel_resolver(channels.clone())
        .with_distributed_user_codec(ShardLeafCodec)
        .with_distributed_desired_task_count_handler(ScanTaskCount)
        .with_distributed_scale_up_leaf_node_handler(scale_up_scan)
        .with_distributed_route_tasks_handler(move |ev: RouteTasksEvent| {
            route_scan_tasks(&ev, &channels)
        })
        .with_distributed_planner()
        .build();
    let planner = Arc::clone(distributed.query_planner());
    SessionStateBuilder::new_from_existing(distributed)
        .with_query_planner(Arc::new(DistributedGate {
            distributed: planner,
        }))
        .build()
}

/// Chooses per query between datafusion-distributed's planner and DataFusion's own.
#[derive(Debug)]
struct DistributedGate {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for DistributedGate {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match logical_plan {
            // DataFusion plans an EXPLAIN's statement with its own planner: plan it here so the
            // stages are what is shown (EXPLAIN ANALYZE is datafusion-distributed's).
            LogicalPlan::Explain(e)
                if e.explain_format == ExplainFormat::Indent
                    && e.logical_optimization_succeeded
                    && distributes(&e.plan)? =>
            {
                let physical = self
                    .distributed
                    .create_physical_plan(&e.plan, session_state)
                    .await?;
                let plans = vec![
                    e.plan.to_stringified(PlanType::FinalLogicalPlan),
                    StringifiedPlan::new(
                        PlanType::FinalPhysicalPlan,
                        display_plan_ascii(physical.as_ref(), false),
                    ),
                ];
                return Ok(Arc::new(ExplainExec::new(
                    Arc::clone(e.schema.inner()),
                    plans,
                    e.verbose,
                )));
            }
            LogicalPlan::Analyze(a) if distributes(&a.input)? => {
                return self
                    .distributed
                    .create_physical_plan(logical_plan, session_state)
                    .await;
            }
            _ if distributes(logical_plan)? => {
                return self
                    .distributed
                    .create_physical_plan(logical_plan, session_state)
                    .await;
            }
            _ => {}
        }
        DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

/// Whether `plan` runs in stages on the workers: the statement's session has
/// `shoal.distributed_execution` on (statements without a session, the server's own, do not
/// distribute) and [`runs_on_workers`].
pub fn distributes(plan: &LogicalPlan) -> Result<bool> {
    let allowed = crate::frontend::session::current().is_some_and(|s| s.distributed_execution());
    Ok(allowed && runs_on_workers(plan, &WORKER_FUNCTIONS)?)
}

/// Whether every part of `plan` can run on a worker: it reads at least one distributed
/// Shoal table, no other table, and calls only functions workers have. Anything else
/// (catalog views, DML, functions that read the session) runs on the coordinator.
pub fn runs_on_workers(plan: &LogicalPlan, worker_functions: &HashSet<String>) -> Result<bool> {
    let mut shoal_tables = 0usize;
    let mut ok = true;
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                let provider = source_as_provider(&scan.source)?;
                let any: &dyn std::any::Any = provider.as_ref();
                if any.is::<DistributedTable>() {
                    shoal_tables += 1;
                } else {
                    ok = false;
                }
            }
            LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::RecursiveQuery(_) => ok = false,
            _ => {}
        }
        if ok {
            node.apply_expressions(|e| {
                e.apply(|x| {
                    let name = match x {
                        Expr::ScalarFunction(f) => Some(f.func.name()),
                        Expr::AggregateFunction(f) => Some(f.func.name()),
                        Expr::WindowFunction(f) => Some(f.fun.name()),
                        _ => None,
                    };
                    if name.is_some_and(|n| !worker_functions.contains(n)) {
                        ok = false;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })?;
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })?;
    Ok(ok && shoal_tables > 0)
}

/// The live worker nodes, as URLs of their task service.
struct ShoalWorkers {
    cluster: Arc<Cluster>,
    channels: ClusterChannels,
}

impl WorkerResolver for ShoalWorkers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        let nodes = self
            .cluster
            .catalog()
            .list_nodes()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        nodes
            .iter()
            .filter(|n| n.is_live)
            .map(|n| {
                self.channels
                    .url_of(&n.addr())
                    .map_err(|e| DataFusionError::External(Box::new(e)))
            })
            .collect()
    }
}

/// A shard scan wants one task per worker that serves its shards.
struct ScanTaskCount;

#[async_trait]
impl DesiredTaskCountHandler for ScanTaskCount {
    async fn handle(
        &self,
        ev: DesiredTaskCountEvent<'_>,
    ) -> Option<Result<DesiredTaskCountEventResponse>> {
        let scan = ev.plan.downcast_ref::<ShardScanExec>()?;
        if scan.pushes_aggregate() {
            // its partials are merged by the plan above it, on one node
            return Some(Ok(DesiredTaskCountEventResponse::maximum(1)));
        }
        Some(Ok(DesiredTaskCountEventResponse::desired(
            scan.worker_groups(),
        )))
    }
}

/// A shard scan in a stage of `task_count` tasks: one [`ShardLeafExec`] per task.
fn scale_up_scan(ev: ScaleUpLeafNodeEvent) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = ev.plan.downcast_ref::<ShardScanExec>()?;
    if scan.pushes_aggregate() {
        return None;
    }
    let partitions = ev.session_config.options().execution.target_partitions;
    Some(
        scan.leaf_variants(ev.task_count, partitions)
            .and_then(|variants| DistributedLeafExec::try_new(Arc::clone(ev.plan), variants))
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

/// Routes the tasks of a stage that reads shards to the workers holding them: task `i` to
/// where its leaf's shards are (the first shard leaf of the stage decides); a task without
/// shards goes to any live worker. Other stages are routed by datafusion-distributed.
fn route_scan_tasks(
    ev: &RouteTasksEvent,
    channels: &ClusterChannels,
) -> Option<Result<RouteTasksEventResponse>> {
    let leaf = first_shard_leaf(ev.plan)?;
    let route = || -> Result<RouteTasksEventResponse> {
        let workers =
            datafusion_distributed::get_distributed_worker_resolver(ev.task_ctx.session_config())?
                .get_urls()?;
        let mut urls = Vec::with_capacity(ev.task_count);
        for i in 0..ev.task_count {
            let preferred = leaf
                .variants()
                .get(i)
                .and_then(|v| v.downcast_ref::<ShardLeafExec>())
                .and_then(ShardLeafExec::preferred_addr);
            let url = match preferred {
                Some(addr) => channels
                    .url_of(addr)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
                None => workers
                    .get(i % workers.len().max(1))
                    .cloned()
                    .ok_or_else(|| {
                        DataFusionError::Execution("no live worker to run a task on".into())
                    })?,
            };
            urls.push(url);
        }
        Ok(RouteTasksEventResponse::new(urls))
    };
    Some(route())
}

/// The first leaf made from a [`ShardScanExec`] in a stage's plan (not looking into the
/// stages it reads from).
fn first_shard_leaf(plan: &Arc<dyn ExecutionPlan>) -> Option<&DistributedLeafExec> {
    if let Some(leaf) = plan.downcast_ref::<DistributedLeafExec>() {
        return leaf.original().is::<ShardScanExec>().then_some(leaf);
    }
    if plan.is_network_boundary() {
        return None;
    }
    plan.children().into_iter().find_map(first_shard_leaf)
}
