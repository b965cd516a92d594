//! The cluster functions callable as `SELECT fn(...)` or `CALL fn(...)`: their signatures
//! (positional and named arguments, defaults, Citus aliases), argument binding and coercion
//! (bound parameters included), and what each one does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast as sql;
use shoal_sql_functions::planner::{NoticeLevel, PlanNotice};
use shoal_sql_functions::{Cluster, ClusterError};

use crate::frontend::errors::PgError;
use crate::query::views;

/// A call as written: the function name and its (optionally named) argument expressions.
pub struct FunctionCall {
    pub name: String,
    pub args: Vec<(Option<String>, sql::Expr)>,
}

/// A NOTICE or WARNING to send before the result.
pub struct Notice {
    pub severity: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Notice {
    fn from_plan(n: &PlanNotice) -> Notice {
        Notice {
            severity: match n.level {
                NoticeLevel::Notice => "NOTICE",
                NoticeLevel::Warning => "WARNING",
            },
            message: n.message.clone(),
            detail: n.detail.clone(),
            hint: n.hint.clone(),
        }
    }
    fn warning(message: impl Into<String>) -> Notice {
        Notice {
            severity: "WARNING",
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
    fn info(message: impl Into<String>) -> Notice {
        Notice {
            severity: "NOTICE",
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ArgType {
    Text,
    Int,
    Real,
    Bool,
    Any,
}

impl ArgType {
    fn data_type(&self) -> Option<DataType> {
        match self {
            ArgType::Text => Some(DataType::Utf8),
            ArgType::Int => Some(DataType::Int64),
            ArgType::Real => Some(DataType::Float64),
            ArgType::Bool => Some(DataType::Boolean),
            ArgType::Any => None,
        }
    }
    fn sql(&self) -> &'static str {
        match self {
            ArgType::Text | ArgType::Any => "TEXT",
            ArgType::Int => "INT",
            ArgType::Real => "DOUBLE",
            ArgType::Bool => "BOOLEAN",
        }
    }
}

struct Param {
    /// The contract's name first, then Citus's.
    names: &'static [&'static str],
    ty: ArgType,
    /// `None`: required.
    default: Option<fn() -> ScalarValue>,
}

#[derive(Clone, Copy)]
enum Returns {
    Void,
    BigInt,
    Rows(fn() -> SchemaRef),
}

struct Spec {
    names: &'static [&'static str],
    params: &'static [Param],
    effect: Effect,
    returns: Returns,
}

/// Whether a function changes the cluster (nodes, tables' distribution, settings, jobs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Reads only: runs anywhere, also in a transaction block.
    ReadsCluster,
    /// Not transactional (a node added, a job started cannot be rolled back), so it runs only
    /// outside a transaction block.
    ChangesCluster,
}

const fn req(names: &'static [&'static str], ty: ArgType) -> Param {
    Param {
        names,
        ty,
        default: None,
    }
}
const fn opt(names: &'static [&'static str], ty: ArgType, default: fn() -> ScalarValue) -> Param {
    Param {
        names,
        ty,
        default: Some(default),
    }
}
fn null() -> ScalarValue {
    ScalarValue::Null
}
fn false_() -> ScalarValue {
    ScalarValue::Boolean(Some(false))
}
fn true_() -> ScalarValue {
    ScalarValue::Boolean(Some(true))
}
fn zero() -> ScalarValue {
    ScalarValue::Int64(Some(0))
}
fn auto() -> ScalarValue {
    ScalarValue::Utf8(Some("auto".into()))
}

const HOST: &[&str] = &["host", "nodename", "node_name"];
const PORT: &[&str] = &["port", "nodeport", "node_port"];

static SPECS: &[Spec] = &[
    Spec {
        names: &["add_node", "citus_add_node", "master_add_node"],
        params: &[
            req(HOST, ArgType::Text),
            req(PORT, ArgType::Int),
            opt(&["groupid"], ArgType::Int, null),
            opt(&["noderole"], ArgType::Text, null),
            opt(&["nodecluster"], ArgType::Text, null),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::BigInt,
    },
    Spec {
        names: &["remove_node", "citus_remove_node", "master_remove_node"],
        params: &[
            req(HOST, ArgType::Text),
            req(PORT, ArgType::Int),
            opt(&["force"], ArgType::Bool, false_),
            opt(&["drop_data"], ArgType::Bool, false_),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["remove_node_plan"],
        params: &[req(HOST, ArgType::Text), req(PORT, ArgType::Int)],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::remove_node_plan_schema),
    },
    Spec {
        names: &["set_node_property", "citus_set_node_property"],
        params: &[
            req(HOST, ArgType::Text),
            req(PORT, ArgType::Int),
            req(&["property"], ArgType::Text),
            req(&["value"], ArgType::Bool),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["create_distributed_table"],
        params: &[
            req(&["table_name"], ArgType::Text),
            req(&["distribution_column"], ArgType::Text),
            opt(&["shard_count"], ArgType::Int, null),
            opt(&["replication_factor"], ArgType::Int, || {
                ScalarValue::Int64(Some(1))
            }),
            opt(&["colocate_with"], ArgType::Text, || {
                ScalarValue::Utf8(Some("default".into()))
            }),
            opt(&["distribution_type"], ArgType::Text, || {
                ScalarValue::Utf8(Some("hash".into()))
            }),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["create_reference_table"],
        params: &[req(&["table_name"], ArgType::Text)],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["get_shard_id_for_distribution_column"],
        params: &[
            req(&["table_name"], ArgType::Text),
            opt(&["value", "distribution_value"], ArgType::Any, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::BigInt,
    },
    Spec {
        names: &["set_cluster_setting"],
        params: &[
            req(&["name"], ArgType::Text),
            req(&["value"], ArgType::Text),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["rebalance_start", "citus_rebalance_start"],
        params: &[
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["drain_only"], ArgType::Bool, false_),
            opt(&["shard_transfer_mode"], ArgType::Text, auto),
            opt(&["threshold"], ArgType::Real, null),
            opt(&["max_bandwidth_mb"], ArgType::Real, null),
            opt(&["max_concurrent_moves"], ArgType::Int, null),
            opt(
                &["parallel_transfer_reference_tables"],
                ArgType::Bool,
                false_,
            ),
            opt(
                &["parallel_transfer_colocated_shards"],
                ArgType::Bool,
                false_,
            ),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::BigInt,
    },
    Spec {
        names: &["rebalance_plan"],
        params: &[
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["drain_only"], ArgType::Bool, false_),
            opt(&["threshold"], ArgType::Real, null),
            opt(&["improvement_threshold"], ArgType::Real, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::rebalance_plan_schema),
    },
    Spec {
        names: &["rebalance_simulate"],
        params: &[
            opt(&["add_nodes"], ArgType::Int, zero),
            opt(&["drain"], ArgType::Text, null),
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["threshold"], ArgType::Real, null),
            opt(&["improvement_threshold"], ArgType::Real, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::rebalance_simulate_schema),
    },
    Spec {
        names: &["get_rebalance_table_shards_plan"],
        params: &[
            opt(&["relation"], ArgType::Text, null),
            opt(&["threshold"], ArgType::Real, null),
            opt(&["max_shard_moves"], ArgType::Int, null),
            opt(&["excluded_shard_list"], ArgType::Any, null),
            opt(&["drain_only"], ArgType::Bool, false_),
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["improvement_threshold"], ArgType::Real, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::citus_rebalance_plan_schema),
    },
    Spec {
        names: &["rebalance_status"],
        params: &[],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::rebalance_status_schema),
    },
    Spec {
        names: &["citus_rebalance_status"],
        params: &[opt(&["raw"], ArgType::Bool, false_)],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::citus_rebalance_status_schema),
    },
    Spec {
        names: &["rebalance_stop", "citus_rebalance_stop"],
        params: &[],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["rebalance_wait", "citus_rebalance_wait"],
        params: &[],
        effect: Effect::ReadsCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["drain_node"],
        params: &[
            req(HOST, ArgType::Text),
            req(PORT, ArgType::Int),
            opt(&["wait"], ArgType::Bool, true_),
            opt(&["shard_transfer_mode"], ArgType::Text, auto),
            opt(&["rebalance_strategy"], ArgType::Text, null),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::BigInt,
    },
    Spec {
        names: &["drain_nodes"],
        params: &[
            req(&["nodes"], ArgType::Text),
            opt(&["wait"], ArgType::Bool, true_),
            opt(&["shard_transfer_mode"], ArgType::Text, auto),
            opt(&["rebalance_strategy"], ArgType::Text, null),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::BigInt,
    },
    Spec {
        names: &["citus_drain_node"],
        params: &[
            req(HOST, ArgType::Text),
            req(PORT, ArgType::Int),
            opt(&["shard_transfer_mode"], ArgType::Text, auto),
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["wait"], ArgType::Bool, true_),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["move_shard"],
        params: &[
            req(&["shard_id"], ArgType::Int),
            req(&["target_host", "target_node_name"], ArgType::Text),
            req(&["target_port", "target_node_port"], ArgType::Int),
            opt(&["shard_transfer_mode"], ArgType::Text, auto),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["citus_move_shard_placement", "master_move_shard_placement"],
        params: &[
            req(&["shard_id"], ArgType::Int),
            req(&["source_node_name"], ArgType::Text),
            req(&["source_node_port"], ArgType::Int),
            req(&["target_host", "target_node_name"], ArgType::Text),
            req(&["target_port", "target_node_port"], ArgType::Int),
            opt(&["shard_transfer_mode"], ArgType::Text, auto),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["job_wait", "citus_job_wait"],
        params: &[
            req(&["job_id", "jobid"], ArgType::Int),
            opt(&["desired_status"], ArgType::Text, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &["job_cancel", "citus_job_cancel"],
        params: &[req(&["job_id", "jobid"], ArgType::Int)],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        names: &[
            "citus_get_active_worker_nodes",
            "master_get_active_worker_nodes",
        ],
        params: &[],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(views::active_worker_nodes_schema),
    },
];

fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.names.contains(&name))
}

pub fn is_cluster_function(name: &str) -> bool {
    spec(name).is_some()
}

/// Whether the function changes the cluster (nodes, tables' distribution, settings, jobs):
/// such a change is not transactional, so it runs only outside a transaction block.
pub fn changes_cluster(name: &str) -> bool {
    spec(name).is_some_and(|s| s.effect == Effect::ChangesCluster)
}

/// Whether the function returns rows (and so may stand in a FROM clause).
pub fn returns_rows(name: &str) -> bool {
    matches!(spec(name).map(|s| s.returns), Some(Returns::Rows(_)))
}

/// The row schema of a function that returns rows.
pub fn result_schema(name: &str) -> Option<SchemaRef> {
    match spec(name)?.returns {
        Returns::Rows(s) => Some(s()),
        _ => None,
    }
}

fn undefined(name: &str, why: String) -> PgError {
    PgError::new("42883", format!("function {name} {why}")).with_hint(Some(
        "Check the argument names and count against the Shoal SQL API.".into(),
    ))
}

/// Matches written arguments to parameters: positional first, then by name.
fn bind<'a>(spec: &Spec, call: &'a FunctionCall) -> Result<Vec<Option<&'a sql::Expr>>, PgError> {
    let mut slots: Vec<Option<&sql::Expr>> = vec![None; spec.params.len()];
    let mut positional = 0;
    for (name, expr) in &call.args {
        let idx = match name {
            None => {
                let i = positional;
                positional += 1;
                if i >= spec.params.len() {
                    return Err(undefined(
                        &call.name,
                        format!("takes at most {} arguments", spec.params.len()),
                    ));
                }
                i
            }
            Some(n) => spec
                .params
                .iter()
                .position(|p| p.names.contains(&n.as_str()))
                .ok_or_else(|| undefined(&call.name, format!("has no parameter named \"{n}\"")))?,
        };
        if slots[idx].is_some() {
            return Err(undefined(
                &call.name,
                format!("got argument \"{}\" twice", spec.params[idx].names[0]),
            ));
        }
        slots[idx] = Some(expr);
    }
    for (p, s) in spec.params.iter().zip(&slots) {
        if s.is_none() && p.default.is_none() {
            return Err(undefined(
                &call.name,
                format!("requires argument \"{}\"", p.names[0]),
            ));
        }
    }
    Ok(slots)
}

/// The placeholder number of an argument that is exactly `$n`.
fn placeholder(expr: &sql::Expr) -> Option<usize> {
    let s = expr.to_string();
    s.strip_prefix('$').and_then(|n| n.parse().ok())
}

fn return_columns(name: &str, r: Returns) -> Vec<(String, &'static str)> {
    match r {
        Returns::Void => vec![(name.to_string(), "TEXT")],
        Returns::BigInt => vec![(name.to_string(), "BIGINT")],
        Returns::Rows(s) => s()
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Int64 => "BIGINT",
                    DataType::Boolean => "BOOLEAN",
                    DataType::Float64 => "DOUBLE",
                    DataType::Timestamp(_, _) => "TIMESTAMPTZ",
                    _ => "TEXT",
                };
                (f.name().clone(), t)
            })
            .collect(),
    }
}

/// The plan the extended protocol describes: the result columns, and parameter types taken
/// from the declared argument types (so drivers send `$1` as the right type).
pub async fn describe(ctx: &SessionContext, call: &FunctionCall) -> Result<LogicalPlan, PgError> {
    let spec = spec(&call.name).ok_or_else(|| undefined(&call.name, "does not exist".into()))?;
    let slots = bind(spec, call)?;
    let cols: Vec<String> = return_columns(&call.name, spec.returns)
        .into_iter()
        .map(|(n, t)| format!("CAST(NULL AS {t}) AS \"{n}\""))
        .collect();
    let mut conds = Vec::new();
    for (p, s) in spec.params.iter().zip(&slots) {
        if let Some(n) = s.and_then(placeholder) {
            conds.push(format!("${n} = CAST(NULL AS {})", p.ty.sql()));
        }
    }
    let mut q = format!("SELECT {}", cols.join(", "));
    if !conds.is_empty() {
        q.push_str(&format!(" WHERE {}", conds.join(" AND ")));
    }
    Ok(ctx.state().create_logical_plan(&q).await?)
}

/// Evaluates one argument expression (bound parameters substituted) to a value.
async fn eval(
    ctx: &SessionContext,
    expr: &sql::Expr,
    params: &ParamValues,
) -> Result<ScalarValue, PgError> {
    let plan = ctx
        .state()
        .create_logical_plan(&format!("SELECT {expr}"))
        .await?;
    let has_params = match params {
        ParamValues::List(l) => !l.is_empty(),
        ParamValues::Map(m) => !m.is_empty(),
    };
    let plan = if has_params {
        plan.with_param_values(params.clone())?
    } else {
        plan
    };
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| PgError::new("22023", format!("argument {expr} has no value")))?;
    Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
}

/// Bound argument values, by the parameter's contract name.
struct Args {
    function: String,
    values: Vec<(&'static str, ScalarValue)>,
}

impl Args {
    fn get(&self, name: &str) -> &ScalarValue {
        static NULL: ScalarValue = ScalarValue::Null;
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or(&NULL)
    }
    fn text(&self, name: &str) -> Result<String, PgError> {
        match self.get(name) {
            ScalarValue::Utf8(Some(s)) => Ok(s.clone()),
            _ => Err(self.null_arg(name)),
        }
    }
    fn opt_text(&self, name: &str) -> Option<String> {
        match self.get(name) {
            ScalarValue::Utf8(Some(s)) => Some(s.clone()),
            _ => None,
        }
    }
    fn opt_int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            ScalarValue::Int64(Some(v)) => Some(*v),
            _ => None,
        }
    }
    fn opt_real(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            ScalarValue::Float64(Some(v)) => Some(*v),
            _ => None,
        }
    }
    fn int(&self, name: &str) -> Result<i64, PgError> {
        match self.get(name) {
            ScalarValue::Int64(Some(v)) => Ok(*v),
            _ => Err(self.null_arg(name)),
        }
    }
    fn bool(&self, name: &str) -> Result<bool, PgError> {
        match self.get(name) {
            ScalarValue::Boolean(Some(v)) => Ok(*v),
            _ => Err(self.null_arg(name)),
        }
    }
    fn port(&self) -> Result<u16, PgError> {
        let p = self.int("port")?;
        u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
            PgError::new("22023", format!("port {p} is out of range"))
                .with_hint(Some("A port is between 1 and 65535.".into()))
        })
    }
    fn null_arg(&self, name: &str) -> PgError {
        PgError::new(
            "22004",
            format!("{}: argument \"{name}\" must not be NULL", self.function),
        )
    }
}

async fn bind_values(
    ctx: &SessionContext,
    spec: &'static Spec,
    call: &FunctionCall,
    params: &ParamValues,
) -> Result<Args, PgError> {
    let slots = bind(spec, call)?;
    let mut values = Vec::new();
    for (p, slot) in spec.params.iter().zip(slots) {
        let v = match slot {
            Some(e) => eval(ctx, e, params).await?,
            None => p.default.map(|d| d()).unwrap_or(ScalarValue::Null),
        };
        let v = match p.ty.data_type() {
            Some(t) if !v.is_null() => v.cast_to(&t).map_err(|_| {
                PgError::new(
                    "22023",
                    format!(
                        "invalid value {v} for argument \"{}\" of {}",
                        p.names[0], call.name
                    ),
                )
            })?,
            _ => v,
        };
        values.push((p.names[0], v));
    }
    Ok(Args {
        function: call.name.clone(),
        values,
    })
}

/// The node at `host:port`, or the contract's "does not exist" error.
fn node_at(cluster: &Cluster, host: &str, port: u16) -> Result<shoal_catalog::Node, PgError> {
    cluster
        .catalog()
        .node_by_addr(host, port)
        .map_err(ClusterError::from)?
        .ok_or_else(|| PgError::new("22023", format!("node \"{host}:{port}\" does not exist")))
}

fn single(name: &str, array: ArrayRef) -> Result<RecordBatch, PgError> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        name,
        array.data_type().clone(),
        true,
    )]));
    RecordBatch::try_new(schema, vec![array]).map_err(|e| PgError::new("XX000", e.to_string()))
}

fn void(name: &str) -> Result<RecordBatch, PgError> {
    single(name, Arc::new(StringArray::from(vec![Some("")])))
}

fn bigint(name: &str, v: Option<i64>) -> Result<RecordBatch, PgError> {
    single(name, Arc::new(Int64Array::from(vec![v])))
}

/// Runs a cluster function; its rows are the result.
pub async fn call(
    cluster: &Arc<Cluster>,
    ctx: &SessionContext,
    call: &FunctionCall,
    params: &ParamValues,
    notices: &mut Vec<Notice>,
) -> Result<RecordBatch, PgError> {
    let spec = spec(&call.name).ok_or_else(|| undefined(&call.name, "does not exist".into()))?;
    let a = bind_values(ctx, spec, call, params).await?;
    let name = call.name.as_str();
    tracing::info!(function = name, "cluster function called");
    match spec.names[0] {
        "add_node" => {
            let host = a.text("host")?;
            let existed = cluster
                .catalog()
                .node_by_addr(&host, a.port()?)
                .map_err(ClusterError::from)?
                .is_some();
            let id = cluster
                .add_node(&host, a.port()?)
                .await
                .map_err(|e| match e {
                    ClusterError::Worker(w) if w.is_unavailable() => PgError::new(
                        "08006",
                        format!(
                            "could not connect to worker {host}:{}: {w}",
                            a.port().unwrap_or(0)
                        ),
                    )
                    .with_hint(Some(
                        "Start the worker first, and check the host name and port. With \
                         node-to-node TLS, the worker needs --tls-ca, --tls-cert and --tls-key \
                         from the cluster's CA, its certificate naming this host."
                            .into(),
                    )),
                    other => other.into(),
                })?;
            if !existed {
                jobs::after_add_node(cluster, notices).await?;
            }
            bigint(name, Some(id))
        }
        "remove_node" => {
            let host = a.text("host")?;
            let port = a.port()?;
            let node = node_at(cluster, &host, port)?;
            let n = cluster
                .catalog()
                .placements_blocking_removal(node.node_id)
                .map_err(ClusterError::from)?;
            if n > 0 {
                if a.bool("force")? {
                    // force is for a node that is gone; dropping a live node's data needs
                    // a second, explicit yes.
                    let live = cluster.worker_answers(&node.addr()).await;
                    if live && !a.bool("drop_data")? {
                        let at_risk = cluster.placements_at_risk(node.node_id)?;
                        let only = at_risk.iter().filter(|p| p.other_placements == 0).count();
                        return Err(PgError::new(
                            "55000",
                            format!(
                                "node {host}:{port} is running and holds {} shard placements, {only} of them the only copy of their shard; force => true is for a node that is gone",
                                at_risk.len()
                            ),
                        )
                        .with_hint(Some(format!(
                            "Drain it first: SELECT drain_node('{host}', {port}); SELECT * FROM remove_node_plan('{host}', {port}) lists what removing it would drop. To drop that data, pass drop_data => true as well."
                        ))));
                    }
                    // Its files, to delete from it once the catalog forgets them.
                    let mut files: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
                    if live {
                        for (table_id, shard_id, _) in cluster
                            .catalog()
                            .node_file_names(node.node_id)
                            .map_err(ClusterError::from)?
                        {
                            files.entry(table_id).or_default().insert(shard_id);
                        }
                    }
                    let removed_at = shoal_sql_functions::now_ms();
                    let lost = cluster.force_remove_node(node.node_id)?;
                    if live {
                        drop_removed_node_files(cluster, &node.addr(), removed_at, files, notices)
                            .await?;
                    }
                    if !lost.is_empty() {
                        let list: Vec<String> =
                            lost.iter().map(|(t, s)| format!("{t} shard {s}")).collect();
                        notices.push(Notice {
                            severity: "WARNING",
                            message: format!(
                                "removed node {host}:{port}; {} shard(s) lost their only placement: {}",
                                lost.len(),
                                list.join(", ")
                            ),
                            detail: Some(
                                "Queries and writes that touch a lost shard fail until the table is recreated or the shard restored.".into(),
                            ),
                            hint: None,
                        });
                    } else {
                        notices.push(Notice::info(format!(
                            "removed node {host}:{port}; every shard it held has a replica elsewhere, the next rebalance re-creates the missing replicas"
                        )));
                    }
                    return void(name);
                }
                return Err(PgError::new(
                    "55000",
                    format!("cannot remove node {host}:{port} because it holds {n} shard placements"),
                )
                .with_hint(Some(format!(
                    "Run SELECT drain_node('{host}', {port}) first, or pass force => true to drop its placements."
                ))));
            }
            // Only reference-table copies that other nodes hold are left: drop them with it.
            cluster.force_remove_node(node.node_id)?;
            void(name)
        }
        "remove_node_plan" => {
            let host = a.text("host")?;
            let port = a.port()?;
            let node = node_at(cluster, &host, port)?;
            let rows = cluster.placements_at_risk(node.node_id)?;
            Ok(views::remove_node_plan_batch(&rows)?)
        }
        "set_node_property" => {
            let host = a.text("host")?;
            let port = a.port()?;
            let property = a.text("property")?;
            if !matches!(property.as_str(), "should_have_shards" | "shouldhaveshards") {
                return Err(PgError::new(
                    "22023",
                    format!("unrecognized node property \"{property}\""),
                )
                .with_hint(Some("The only node property is should_have_shards.".into())));
            }
            let node = node_at(cluster, &host, port)?;
            cluster
                .catalog()
                .set_should_have_shards(node.node_id, a.bool("value")?)
                .map_err(ClusterError::from)?;
            void(name)
        }
        "create_distributed_table" => {
            let dtype = a.text("distribution_type")?;
            if !dtype.eq_ignore_ascii_case("hash") {
                return Err(PgError::new(
                    "0A000",
                    format!("distribution_type '{dtype}' is not supported; only 'hash' is"),
                ));
            }
            let table = a.text("table_name")?;
            cluster
                .create_distributed_table(
                    &table,
                    &a.text("distribution_column")?,
                    a.opt_int("shard_count"),
                    a.int("replication_factor")?,
                    &a.text("colocate_with")?,
                )
                .await?;
            void(name)
        }
        "create_reference_table" => {
            cluster
                .create_reference_table(&a.text("table_name")?)
                .await?;
            void(name)
        }
        "get_shard_id_for_distribution_column" => {
            let id = cluster.shard_id_for_value(&a.text("table_name")?, a.get("value"))?;
            bigint(name, Some(id))
        }
        "set_cluster_setting" => {
            let setting = a.text("name")?;
            let value = a.text("value")?;
            cluster
                .catalog()
                .set_setting(&setting, &value)
                .map_err(ClusterError::from)?;
            notices.push(Notice::info(format!(
                "cluster setting {setting} is now {value}"
            )));
            void(name)
        }
        "citus_get_active_worker_nodes" => Ok(views::active_worker_nodes(cluster)?),
        "rebalance_start"
        | "rebalance_plan"
        | "rebalance_simulate"
        | "get_rebalance_table_shards_plan"
        | "rebalance_status"
        | "citus_rebalance_status"
        | "rebalance_stop"
        | "rebalance_wait"
        | "drain_node"
        | "drain_nodes"
        | "citus_drain_node"
        | "move_shard"
        | "citus_move_shard_placement"
        | "job_wait"
        | "job_cancel" => jobs::call(cluster, spec.names[0], name, &a, notices).await,
        other => Err(PgError::new(
            "XX000",
            format!("function {other} has no implementation"),
        )),
    }
}

mod jobs;
#[cfg(test)]
mod tests;

/// Deletes the shard directories a live node held once a forced `remove_node` took them out
/// of the catalog: after the queries that began before (`removed_at`) have ended, and not
/// while `cleanup.retain_deleted_ms` keeps replaced files for catalog backups. What is not
/// deleted is said in a warning: the node is removed either way, and its files are garbage.
async fn drop_removed_node_files(
    cluster: &Arc<Cluster>,
    addr: &str,
    removed_at: i64,
    files: BTreeMap<i64, BTreeSet<i64>>,
    notices: &mut Vec<Notice>,
) -> Result<(), PgError> {
    if cluster
        .catalog()
        .cluster_settings()
        .map_err(ClusterError::from)?
        .retain_deleted_ms
        > 0
    {
        notices.push(Notice::warning(format!(
            "the files of the removed node {addr} are left in place: cleanup.retain_deleted_ms keeps replaced files for catalog backups; delete the worker's data directory once no backup needs them"
        )));
        return Ok(());
    }
    if !cluster
        .wait_for_queries_before(removed_at, Duration::from_secs(30))
        .await
    {
        notices.push(Notice::warning(format!(
            "the files of the removed node {addr} are left in place: queries that began before the removal still read them; delete the worker's data directory later"
        )));
        return Ok(());
    }
    let client = match cluster.worker(addr) {
        Ok(c) => c,
        Err(e) => {
            notices.push(Notice::warning(format!(
                "the files of the removed node {addr} were not deleted: {e}"
            )));
            return Ok(());
        }
    };
    for (table_id, shards) in files {
        if let Err(e) = client
            .drop_shards(table_id, shards.into_iter().collect())
            .await
        {
            notices.push(Notice::warning(format!(
                "the files of the removed node {addr} were not all deleted: {e}"
            )));
            return Ok(());
        }
    }
    Ok(())
}
