//! The cluster-management SQL surface, end to end: the typed registry of functions
//! ([`registry`]: signatures, Citus aliases, effects, result shapes), argument binding
//! ([`args`]), and what each function does with the policies that go with it (a node removed
//! only when empty or when forced, a drain's `should_have_shards`, a move's source checks).
//! The coordinator's wire layer only recognises a call, hands it here and sends back the
//! rows, the notices and (mapped to a SQLSTATE) the error.

mod args;
mod jobs;
mod nodes;
mod registry;
pub mod rows;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast as sql;

use crate::cluster::Cluster;
use crate::error::{ClusterError, Result};
pub use crate::planner::{NoticeLevel, PlanNotice as Notice};

pub use args::describe;
use args::{bind_values, undefined};
pub use registry::Function;
use registry::{spec, Effect, Returns};
pub use rows::{active_worker_nodes, active_worker_nodes_schema};

/// A call as written: the function name and its (optionally named) argument expressions.
pub struct FunctionCall {
    pub name: String,
    pub args: Vec<(Option<String>, sql::Expr)>,
}

/// Whether `name` is a cluster function (or one of its Citus aliases).
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

fn warning(message: impl Into<String>) -> Notice {
    Notice {
        level: NoticeLevel::Warning,
        message: message.into(),
        detail: None,
        hint: None,
    }
}

fn notice(message: impl Into<String>) -> Notice {
    Notice {
        level: NoticeLevel::Notice,
        message: message.into(),
        detail: None,
        hint: None,
    }
}

fn single(name: &str, array: ArrayRef) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        name,
        array.data_type().clone(),
        true,
    )]));
    Ok(RecordBatch::try_new(schema, vec![array])?)
}

/// The one-row result of a function that returns nothing (`void`, as PostgreSQL prints it).
fn void(name: &str) -> Result<RecordBatch> {
    single(name, Arc::new(StringArray::from(vec![Some("")])))
}

fn bigint(name: &str, v: Option<i64>) -> Result<RecordBatch> {
    single(name, Arc::new(Int64Array::from(vec![v])))
}

/// Runs a cluster function; its rows are the result. Notices go to `notices` as they come,
/// also when the call then fails.
pub async fn call(
    cluster: &Arc<Cluster>,
    ctx: &SessionContext,
    call: &FunctionCall,
    params: &ParamValues,
    notices: &mut Vec<Notice>,
) -> Result<RecordBatch> {
    let spec = spec(&call.name).ok_or_else(|| undefined(&call.name, "does not exist".into()))?;
    let a = bind_values(ctx, spec, call, params).await?;
    let name = call.name.as_str();
    tracing::info!(function = name, "cluster function called");
    match spec.function {
        Function::AddNode => {
            let id = nodes::add_node(cluster, &a.text("host")?, a.port()?, notices).await?;
            bigint(name, Some(id))
        }
        Function::RemoveNode => {
            nodes::remove_node(cluster, &a, notices).await?;
            void(name)
        }
        Function::RemoveNodePlan => {
            let node = nodes::node_at(cluster, &a.text("host")?, a.port()?)?;
            rows::remove_node_plan_batch(&cluster.placements_at_risk(node.node_id)?)
        }
        Function::SetNodeProperty => {
            nodes::set_node_property(cluster, &a)?;
            void(name)
        }
        Function::CreateDistributedTable => {
            let dtype = a.text("distribution_type")?;
            if !dtype.eq_ignore_ascii_case("hash") {
                return Err(ClusterError::NotSupported {
                    message: format!(
                        "distribution_type '{dtype}' is not supported; only 'hash' is"
                    ),
                });
            }
            cluster
                .create_distributed_table(
                    &a.text("table_name")?,
                    &a.text("distribution_column")?,
                    a.opt_int("shard_count"),
                    a.int("replication_factor")?,
                    &a.text("colocate_with")?,
                )
                .await?;
            void(name)
        }
        Function::CreateReferenceTable => {
            cluster
                .create_reference_table(&a.text("table_name")?)
                .await?;
            void(name)
        }
        Function::GetShardIdForDistributionColumn => {
            let id = cluster.shard_id_for_value(&a.text("table_name")?, a.get("value"))?;
            bigint(name, Some(id))
        }
        Function::SetClusterSetting => {
            let setting = a.text("name")?;
            let value = a.text("value")?;
            cluster.catalog().set_setting(&setting, &value)?;
            notices.push(notice(format!("cluster setting {setting} is now {value}")));
            void(name)
        }
        Function::CitusGetActiveWorkerNodes => active_worker_nodes(cluster),
        Function::RebalanceStart
        | Function::RebalancePlan
        | Function::RebalanceSimulate
        | Function::GetRebalanceTableShardsPlan
        | Function::RebalanceStatus
        | Function::CitusRebalanceStatus
        | Function::RebalanceStop
        | Function::RebalanceWait
        | Function::DrainNode
        | Function::DrainNodes
        | Function::CitusDrainNode
        | Function::MoveShard
        | Function::CitusMoveShardPlacement
        | Function::JobWait
        | Function::JobCancel => jobs::call(cluster, spec.function, name, &a, notices).await,
    }
}
