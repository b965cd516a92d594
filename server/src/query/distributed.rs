//! Distributed execution on datafusion-distributed, the coordinator's side: which queries
//! run in stages on the workers ([`DistributedGate`]), how a [`ShardScanExec`] becomes the
//! per-task leaves of a stage and where each task runs (the event handlers), which nodes
//! can run tasks ([`ShoalWorkers`]), and the functions a worker's tasks may call.
//!
//! ```text
//! SQL ─► logical plan ─► DistributedGate: every table a distributed Shoal table, every
//!        function one workers have, shoal.distributed_execution on?
//!          no  ─► DataFusion's planner: scans bring rows, the rest runs here
//!          yes ─► DataFusion's planner ─► every scan reads one shard group that one live
//!                 worker holds? one table: its scan runs on the worker as it is; more
//!                 (a join): the whole plan is one task on that worker (router)
//!               ─► else datafusion-distributed cuts the plan into stages
//!                 at repartitions, broadcasts and merges; a ShardScanExec asks one task
//!                 per worker that serves its shards; task i reads the shards whose first
//!                 live placement is on worker i and is routed there
//! ```
//!
//! The coordinator's snapshot guard is held by the `ShardScanExec` inside the plan until the
//! query's stream ends; the leaves read exactly the files of that snapshot.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, FieldRef};
use async_trait::async_trait;
use datafusion::common::display::{PlanType, StringifiedPlan, ToStringifiedPlan};
use datafusion::common::format::ExplainFormat;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{
    display_plan_ascii, DesiredTaskCountEvent, DesiredTaskCountEventResponse,
    DesiredTaskCountHandler, DistributedConfig, DistributedExec, DistributedExt,
    DistributedLeafExec, NetworkBoundary, NetworkBoundaryExt, NetworkCoalesceExec,
    ReplicatedInputCheck, RouteTasksEvent, RouteTasksEventResponse, ScaleUpLeafNodeEvent,
    ScaleUpLeafNodeEventResponse, SessionStateBuilderExt, Stage, WorkerResolver,
};
use futures::{StreamExt, TryStreamExt};
use shoal_shard_store::{
    ClusterChannels, ShardLeafCodec, ShardLeafExec, ShardStoreError, WorkerSessionHook,
};
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

/// What a worker adds to the session of each task: [`worker_functions`], each raising its
/// errors as [`TaskFunction`] does.
pub fn worker_session_hook() -> WorkerSessionHook {
    session_hook(true)
}

/// [`worker_session_hook`]; with `in_tasks` false, the functions as the coordinator has them
/// (what [`WORKER_FUNCTIONS`] compares the coordinator's with).
fn session_hook(in_tasks: bool) -> WorkerSessionHook {
    WorkerSessionHook(Arc::new(move |builder: SessionStateBuilder| {
        let (scalar, aggregate) = worker_functions();
        let scalar: Vec<ScalarUDF> = match in_tasks {
            true => scalar
                .into_iter()
                .map(|f| ScalarUDF::new_from_impl(TaskFunction(f)))
                .collect(),
            false => scalar,
        };
        let mut builder = builder;
        // as the coordinator's sessions (coordinator.rs): the zone of now() and timestamptz
        if let Some(config) = builder.config() {
            config.options_mut().execution.time_zone = Some("UTC".into());
        }
        if let Some(fs) = builder.scalar_functions() {
            fs.extend(scalar.into_iter().map(Arc::new));
        }
        if let Some(fs) = builder.aggregate_functions() {
            fs.extend(aggregate.into_iter().map(Arc::new));
        }
        builder
    }))
}

/// A Shoal function as a worker's task runs it: the same function, whose errors leave the
/// task in the form that crosses datafusion-distributed with their SQLSTATE
/// ([`crate::frontend::errors::into_task_sql_error`]: a bad json input stays 22P02, an
/// `lpad()` over its limit 54000, and the query does not rerun on the coordinator).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TaskFunction(ScalarUDF);

impl ScalarUDFImpl for TaskFunction {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn aliases(&self) -> &[String] {
        self.0.aliases()
    }

    fn signature(&self) -> &Signature {
        self.0.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.0.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.0.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.0
            .invoke_with_args(args)
            .map_err(crate::frontend::errors::into_task_sql_error)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.0.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.0.short_circuits()
    }

    fn is_strict(&self) -> bool {
        self.0.inner().is_strict()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.0.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.0.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.0.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.0.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.0.inner().strictly_order_preserving(inputs)
    }
}

/// Every function a worker's task can call, by name (and alias). A plan's function runs on a
/// worker only if the worker's function of that name is the same function: Shoal overrides
/// some of DataFusion's (`length` of bytea, ...), which a worker would resolve to DataFusion's.
struct WorkerFunctions {
    scalar: std::collections::HashMap<String, Arc<ScalarUDF>>,
    aggregate: std::collections::HashMap<String, Arc<AggregateUDF>>,
    window: std::collections::HashMap<String, Arc<datafusion::logical_expr::WindowUDF>>,
}

static WORKER_FUNCTIONS: LazyLock<WorkerFunctions> = LazyLock::new(|| {
    let state = (session_hook(false).0)(SessionStateBuilder::new().with_default_features()).build();
    WorkerFunctions {
        scalar: state.scalar_functions().clone(),
        aggregate: state.aggregate_functions().clone(),
        window: state.window_functions().clone(),
    }
});

impl WorkerFunctions {
    /// Whether `e` (not its children) calls a function workers do not have as the
    /// coordinator does.
    fn lacks(&self, e: &Expr) -> bool {
        match e {
            Expr::ScalarFunction(f) => self
                .scalar
                .get(f.func.name())
                .is_none_or(|w| w.as_ref() != f.func.as_ref()),
            Expr::AggregateFunction(f) => self
                .aggregate
                .get(f.func.name())
                .is_none_or(|w| w.as_ref() != f.func.as_ref()),
            Expr::WindowFunction(f) => match &f.fun {
                datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(u) => self
                    .aggregate
                    .get(u.name())
                    .is_none_or(|w| w.as_ref() != u.as_ref()),
                datafusion::logical_expr::WindowFunctionDefinition::WindowUDF(u) => self
                    .window
                    .get(u.name())
                    .is_none_or(|w| w.as_ref() != u.as_ref()),
            },
            _ => false,
        }
    }
}

/// Makes `state` plan eligible queries in stages on the workers (see the module doc).
pub fn install(
    state: SessionState,
    cluster: &Arc<Cluster>,
    channels: ClusterChannels,
) -> Result<SessionState> {
    // a reference join's build side is read by every task from its worker's copy
    let config = state
        .config()
        .clone()
        .with_extension(Arc::new(ReplicatedInputCheck(Arc::new(
            crate::query::collect_join::read_whole_by_every_task,
        ))));
    let distributed = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
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
        // Broadcasts rely on vendor/datafusion-distributed: its producer reads only a little
        // ahead of the tasks reading it, and a worker stops serving a query's streams when
        // the query ends (upstream's ran on after a cancel).
        .with_distributed_broadcast_joins(true)?
        // Streams between stages go uncompressed: LZ4 (the default) took 4% of all CPU over
        // the 22 TPC-H queries on one host (5% of Q13's, a shuffle); on a LAN the bytes it
        // saves are cheaper than that CPU.
        .with_distributed_compression(None)?
        .build();
    let planner = Arc::clone(distributed.query_planner());
    Ok(SessionStateBuilder::new_from_existing(distributed)
        .with_query_planner(Arc::new(DistributedGate {
            distributed: planner,
        }))
        .build())
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
                let (physical, _) = self.choose(&e.plan, session_state).await?;
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
            LogicalPlan::Analyze(_) if distributes(logical_plan)? => {
                return self
                    .distributed
                    .create_physical_plan(logical_plan, session_state)
                    .await;
            }
            _ if distributes(logical_plan)? => {
                return Ok(match self.choose(logical_plan, session_state).await? {
                    (on_workers, Some(local)) => Arc::new(FallbackExec::new(on_workers, local)),
                    (plan, None) => plan,
                });
            }
            _ => {}
        }
        DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

impl DistributedGate {
    /// How a distributable `plan` runs: the physical plan, and when it runs on the workers
    /// (in stages, or routed whole to one), the coordinator's plan of it to fall back to.
    async fn choose(
        &self,
        plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> Result<(Arc<dyn ExecutionPlan>, Option<Arc<dyn ExecutionPlan>>)> {
        // One table's shard: its scan filters and (where it can) aggregates on the worker in
        // one request, which costs less than a task (measured: 8.8 against 12.0 ms for a
        // tenant's aggregate). Planned first when the query reads one table, so that a
        // tenant's query is planned once.
        let pushed = match table_scans(plan)? {
            1 => self.pushed_down(plan, session_state).await?,
            _ => None,
        };
        if let Some(pushed) = pushed.filter(reads_one_shard) {
            return Ok((pushed, None));
        }
        let local = DefaultPhysicalPlanner::default()
            .create_physical_plan(plan, session_state)
            .await?;
        if reads_unreachable_shard(&local)? {
            // its tasks would only wait on a node known to be down; the coordinator's scans
            // fail (or use another placement) at once
            return Ok((local, None));
        }
        if let Some(worker) = router_target(&local)? {
            if shard_scans(&local)? == 1 {
                return Ok((local, None));
            }
            let routed = route_whole(Arc::clone(&local), &worker, session_state)?;
            return Ok((routed, Some(local)));
        }
        let distributed = self.staged(plan, session_state).await?;
        if !distributed.is::<DistributedExec>() {
            return Ok((distributed, None));
        }
        Ok((distributed, Some(local)))
    }

    /// `plan` cut into stages; when datafusion-distributed finds no stage boundary worth it
    /// (one worker, one shard group), the plan as it runs on the coordinator, with the
    /// aggregates the optimizer left for the stages pushed to the workers after all.
    async fn staged(
        &self,
        plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let staged = self
            .distributed
            .create_physical_plan(plan, session_state)
            .await?;
        if staged.is::<DistributedExec>() {
            return Ok(staged);
        }
        Ok(self
            .pushed_down(plan, session_state)
            .await?
            .unwrap_or(staged))
    }

    /// `plan` as it runs on the coordinator with the partial aggregates the shard scans can
    /// run on the workers pushed there (`ShardAggregatePushdownRule`'s rewrite), or `None`
    /// when there is none to push.
    async fn pushed_down(
        &self,
        plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let pushed = crate::query::pushdown::push_aggregates(plan.clone())?;
        let Some(state) = session_state.as_any().downcast_ref::<SessionState>() else {
            return Ok(None);
        };
        if !pushed.transformed {
            return Ok(None);
        }
        // the merge expressions the pushdown writes need the optimizer's simplification
        let optimized = state.optimize(&pushed.data)?;
        Ok(Some(
            DefaultPhysicalPlanner::default()
                .create_physical_plan(&optimized, session_state)
                .await?,
        ))
    }
}

/// Whether `plan` runs in stages on the workers: the statement's session has
/// `shoal.distributed_execution` on (statements without a session, the server's own, do not
/// distribute) and [`runs_on_workers`].
pub fn distributes(plan: &LogicalPlan) -> Result<bool> {
    // EXPLAIN ANALYZE runs its statement as the statement runs alone
    let plan = match plan {
        LogicalPlan::Analyze(a) => a.input.as_ref(),
        other => other,
    };
    let allowed = crate::frontend::session::current().is_some_and(|s| s.distributed_execution());
    Ok(allowed && runs_on_workers(plan, &WORKER_FUNCTIONS)?)
}

/// Whether `plan` gains from running in stages and every part of it can run on a worker: it
/// reads at least one distributed Shoal table, no other table, calls only functions workers
/// have, and joins, aggregates, sorts or windows (a scan with filters and a limit sends the
/// workers' rows to the coordinator either way, and the shard scan does that with one
/// request per worker). Anything else (catalog views, DML, functions that read the session)
/// runs on the coordinator.
fn runs_on_workers(plan: &LogicalPlan, worker_functions: &WorkerFunctions) -> Result<bool> {
    let mut shoal_tables = 0usize;
    let mut stages = false;
    let mut ok = true;
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::Join(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Distinct(_) => stages = true,
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
                    if worker_functions.lacks(x) {
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
    Ok(ok && stages && shoal_tables > 0)
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
    // Each variant keeps the scan's partition count: the plan above was planned for it (a
    // one-task stage even executes the original scan's partitions).
    let partitions = ev.plan.output_partitioning().partition_count();
    Some(
        scan.leaf_variants(ev.task_count, partitions)
            .and_then(|variants| DistributedLeafExec::try_new(Arc::clone(ev.plan), variants))
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

/// Routes the tasks of a stage that reads shards to the workers holding them: task `i` to
/// where its leaf's shards are (the first shard leaf of the stage whose task `i` reads a
/// shard decides); a task without
/// shards, or whose worker is not live, goes to a live worker. Other stages are routed by
/// datafusion-distributed.
fn route_scan_tasks(
    ev: &RouteTasksEvent,
    channels: &ClusterChannels,
) -> Option<Result<RouteTasksEventResponse>> {
    let mut leaves = Vec::new();
    shard_leaves(ev.plan, &mut leaves);
    if leaves.is_empty() {
        return None;
    }
    let route = || -> Result<RouteTasksEventResponse> {
        let workers =
            datafusion_distributed::get_distributed_worker_resolver(ev.task_ctx.session_config())?
                .get_urls()?;
        let mut urls = Vec::with_capacity(ev.task_count);
        for i in 0..ev.task_count {
            // the first leaf whose task i reads a shard decides
            let preferred = leaves.iter().find_map(|leaf| {
                leaf.variants()
                    .get(i)
                    .and_then(|v| v.downcast_ref::<ShardLeafExec>())
                    .and_then(ShardLeafExec::preferred_addr)
            });
            let preferred = preferred
                .map(|addr| channels.url_of(addr))
                .transpose()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            // a worker the heartbeat found down gets no task: another reads its shards
            // from their other placements
            let url = match preferred.filter(|u| workers.contains(u)) {
                Some(url) => url,
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

/// The worker a query runs on whole (router execution, as Citus does) when every shard scan
/// of its plan reads at most one shard and one live worker holds all of those shards: a
/// query that its filters pin to one shard group, with any reference tables. `None` when the
/// plan reads more, or nothing.
fn router_target(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<String>> {
    let mut holders: Option<Vec<String>> = None;
    let mut single = true;
    plan.apply(|node| {
        let Some(scan) = node.downcast_ref::<ShardScanExec>() else {
            return Ok(TreeNodeRecursion::Continue);
        };
        if scan.shard_count() > 1 || scan.pushes_aggregate() {
            single = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        if scan.shard_count() == 1 {
            let theirs = scan.live_holders();
            match &mut holders {
                None => holders = Some(theirs),
                Some(h) => h.retain(|a| theirs.contains(a)),
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if !single {
        return Ok(None);
    }
    Ok(holders.and_then(|h| h.into_iter().next()))
}

/// How many table scans `plan` has, in subqueries too.
fn table_scans(plan: &LogicalPlan) -> Result<usize> {
    let mut n = 0;
    plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::TableScan(_)) {
            n += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(n)
}

/// Whether `plan` has one shard scan and it reads one shard.
fn reads_one_shard(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut shards = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<ShardScanExec>() {
            shards.push(scan.shard_count());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    shards == [1]
}

/// How many shard scans `plan` has.
fn shard_scans(plan: &Arc<dyn ExecutionPlan>) -> Result<usize> {
    let mut n = 0;
    plan.apply(|node| {
        if node.is::<ShardScanExec>() {
            n += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(n)
}

/// `plan` as one task on `worker`: its shard scans become leaves reading the placements
/// there, and datafusion-distributed sends the whole plan to the worker and streams its
/// result back (a one-task stage, which its own planner would elide as not worth a
/// boundary).
fn route_whole(
    plan: Arc<dyn ExecutionPlan>,
    worker: &str,
    session_state: &dyn datafusion::catalog::Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    let leaves = plan
        .transform_up(|node| {
            let Some(scan) = node.downcast_ref::<ShardScanExec>() else {
                return Ok(Transformed::no(node));
            };
            let partitions = node.output_partitioning().partition_count();
            let leaf = scan.router_leaf(worker, partitions)?;
            let leaf = DistributedLeafExec::try_new(Arc::clone(&node), [leaf])?;
            Ok(Transformed::yes(Arc::new(leaf) as Arc<dyn ExecutionPlan>))
        })?
        .data;
    let boundary = NetworkCoalesceExec::try_new(leaves, 1, 1)?;
    // the stage's identity, as datafusion-distributed's planner stamps the stages it keeps
    let Stage::Local(mut stage) = boundary.input_stage().clone() else {
        return Err(DataFusionError::Internal(
            "a new network boundary with a remote stage".into(),
        ));
    };
    stage.query_id = uuid::Uuid::new_v4();
    stage.num = 1;
    let boundary: Arc<dyn ExecutionPlan> = boundary.with_input_stage(Stage::Local(stage))?;
    // the coordinator merges the task's partitions (as over any stage: the boundary is
    // never the head itself)
    let head = Arc::new(CoalescePartitionsExec::new(boundary));
    let metrics =
        DistributedConfig::from_config_options(session_state.config_options())?.collect_metrics;
    Ok(Arc::new(
        DistributedExec::new(head).with_metrics_collection(metrics),
    ))
}

/// Whether a shard scan of `plan` reads a shard with no live placement.
fn reads_unreachable_shard(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    let mut found = false;
    plan.apply(|node| {
        if node
            .downcast_ref::<ShardScanExec>()
            .is_some_and(ShardScanExec::has_unreachable_shard)
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// The leaves made from [`ShardScanExec`]s in a stage's plan, in plan order (not looking
/// into the stages it reads from).
fn shard_leaves<'a>(plan: &'a Arc<dyn ExecutionPlan>, out: &mut Vec<&'a DistributedLeafExec>) {
    if let Some(leaf) = plan.downcast_ref::<DistributedLeafExec>() {
        if leaf.original().is::<ShardScanExec>() {
            out.push(leaf);
        }
        return;
    }
    if plan.is_network_boundary() {
        return;
    }
    for child in plan.children() {
        shard_leaves(child, out);
    }
}

/// A distributed plan and the coordinator's plan of the same query. When the distributed
/// query fails before its first row with an error of the cluster — a task's worker
/// unreachable, a file damaged, an internal error (SQLSTATE classes 08 and XX) — and not of
/// the query (overflow, memory, cancel) nor a shard a leaf found unreadable at every
/// placement, the coordinator's plan runs instead: its shard scans try every placement,
/// record damaged files and name the worker that failed.
/// (datafusion-distributed retries nothing: a task that fails fails the query.)
#[derive(Debug)]
struct FallbackExec {
    distributed: Arc<dyn ExecutionPlan>,
    local: Arc<dyn ExecutionPlan>,
}

impl FallbackExec {
    fn new(distributed: Arc<dyn ExecutionPlan>, local: Arc<dyn ExecutionPlan>) -> Self {
        let local: Arc<dyn ExecutionPlan> = if local.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(local))
        } else {
            local
        };
        FallbackExec { distributed, local }
    }
}

impl DisplayAs for FallbackExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "FallbackExec")
    }
}

impl ExecutionPlan for FallbackExec {
    fn name(&self) -> &'static str {
        "FallbackExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.distributed.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.distributed]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(distributed), true) => Ok(Arc::new(FallbackExec {
                distributed,
                local: Arc::clone(&self.local),
            })),
            _ => Err(DataFusionError::Internal(
                "FallbackExec takes one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut distributed = self.distributed.execute(partition, Arc::clone(&context))?;
        let local = Arc::clone(&self.local);
        let schema = self.schema();
        let stream = futures::stream::once(async move {
            let first = distributed.next().await;
            let rest: BatchStream = match first {
                None => futures::stream::empty().boxed(),
                Some(Ok(batch)) => futures::stream::once(async { Ok(batch) })
                    .chain(distributed)
                    .boxed(),
                Some(Err(e)) if cluster_failure(&e) => {
                    tracing::warn!(error = %e, "distributed query failed before its first row; running it on the coordinator");
                    crate::metrics::distributed_fallback();
                    local.execute(partition, context)?.boxed()
                }
                Some(Err(e)) => futures::stream::once(async { Err(e) }).boxed(),
            };
            Ok::<_, DataFusionError>(rest)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

/// An error of the cluster rather than of the query (SQLSTATE class 08 or XX) that the
/// coordinator's plan may not meet: not a shard a task already tried at every placement.
fn cluster_failure(e: &DataFusionError) -> bool {
    if let DataFusionError::External(inner) = e.find_root() {
        if let Some(ShardStoreError::Unavailable { .. }) =
            ShardStoreError::from_task_error(&inner.to_string())
        {
            return false;
        }
    }
    let code = crate::frontend::errors::from_datafusion(e).code;
    code.starts_with("08") || code.starts_with("XX")
}
