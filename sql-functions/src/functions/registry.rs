//! The registry of cluster functions: each one's typed identity, signature (positional and
//! named parameters with Citus's aliases, types, defaults), effect and result shape.

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;

use super::rows;

/// A cluster function, whatever name (contract or Citus alias) it was called by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    AddNode,
    RemoveNode,
    RemoveNodePlan,
    SetNodeProperty,
    CreateDistributedTable,
    CreateReferenceTable,
    GetShardIdForDistributionColumn,
    SetClusterSetting,
    RebalanceStart,
    RebalancePlan,
    RebalanceSimulate,
    GetRebalanceTableShardsPlan,
    RebalanceStatus,
    CitusRebalanceStatus,
    RebalanceStop,
    RebalanceWait,
    DrainNode,
    DrainNodes,
    CitusDrainNode,
    MoveShard,
    CitusMoveShardPlacement,
    JobWait,
    JobCancel,
    CitusGetActiveWorkerNodes,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum ArgType {
    Text,
    Int,
    Real,
    Bool,
    Any,
}

impl ArgType {
    pub(super) fn data_type(&self) -> Option<DataType> {
        match self {
            ArgType::Text => Some(DataType::Utf8),
            ArgType::Int => Some(DataType::Int64),
            ArgType::Real => Some(DataType::Float64),
            ArgType::Bool => Some(DataType::Boolean),
            ArgType::Any => None,
        }
    }
    pub(super) fn sql(&self) -> &'static str {
        match self {
            ArgType::Text | ArgType::Any => "TEXT",
            ArgType::Int => "INT",
            ArgType::Real => "DOUBLE",
            ArgType::Bool => "BOOLEAN",
        }
    }
}

pub(super) struct Param {
    /// The contract's name first, then Citus's.
    pub(super) names: &'static [&'static str],
    pub(super) ty: ArgType,
    /// `None`: required.
    pub(super) default: Option<fn() -> ScalarValue>,
}

#[derive(Clone, Copy)]
pub(super) enum Returns {
    Void,
    BigInt,
    Rows(fn() -> SchemaRef),
}

pub(super) struct Spec {
    /// Which function this is; dispatch matches on it, never on a name.
    pub(super) function: Function,
    /// The contract's name first, then Citus's aliases.
    pub(super) names: &'static [&'static str],
    pub(super) params: &'static [Param],
    pub(super) effect: Effect,
    pub(super) returns: Returns,
}

/// Whether a function changes the cluster (nodes, tables' distribution, settings, jobs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
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

pub(super) static SPECS: &[Spec] = &[
    Spec {
        function: Function::AddNode,
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
        function: Function::RemoveNode,
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
        function: Function::RemoveNodePlan,
        names: &["remove_node_plan"],
        params: &[req(HOST, ArgType::Text), req(PORT, ArgType::Int)],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(rows::remove_node_plan_schema),
    },
    Spec {
        function: Function::SetNodeProperty,
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
        function: Function::CreateDistributedTable,
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
        function: Function::CreateReferenceTable,
        names: &["create_reference_table"],
        params: &[req(&["table_name"], ArgType::Text)],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        function: Function::GetShardIdForDistributionColumn,
        names: &["get_shard_id_for_distribution_column"],
        params: &[
            req(&["table_name"], ArgType::Text),
            opt(&["value", "distribution_value"], ArgType::Any, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::BigInt,
    },
    Spec {
        function: Function::SetClusterSetting,
        names: &["set_cluster_setting"],
        params: &[
            req(&["name"], ArgType::Text),
            req(&["value"], ArgType::Text),
        ],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        function: Function::RebalanceStart,
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
        function: Function::RebalancePlan,
        names: &["rebalance_plan"],
        params: &[
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["drain_only"], ArgType::Bool, false_),
            opt(&["threshold"], ArgType::Real, null),
            opt(&["improvement_threshold"], ArgType::Real, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(rows::rebalance_plan_schema),
    },
    Spec {
        function: Function::RebalanceSimulate,
        names: &["rebalance_simulate"],
        params: &[
            opt(&["add_nodes"], ArgType::Int, zero),
            opt(&["drain"], ArgType::Text, null),
            opt(&["rebalance_strategy"], ArgType::Text, null),
            opt(&["threshold"], ArgType::Real, null),
            opt(&["improvement_threshold"], ArgType::Real, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(rows::rebalance_simulate_schema),
    },
    Spec {
        function: Function::GetRebalanceTableShardsPlan,
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
        returns: Returns::Rows(rows::citus_rebalance_plan_schema),
    },
    Spec {
        function: Function::RebalanceStatus,
        names: &["rebalance_status"],
        params: &[],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(rows::rebalance_status_schema),
    },
    Spec {
        function: Function::CitusRebalanceStatus,
        names: &["citus_rebalance_status"],
        params: &[opt(&["raw"], ArgType::Bool, false_)],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(rows::citus_rebalance_status_schema),
    },
    Spec {
        function: Function::RebalanceStop,
        names: &["rebalance_stop", "citus_rebalance_stop"],
        params: &[],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        function: Function::RebalanceWait,
        names: &["rebalance_wait", "citus_rebalance_wait"],
        params: &[],
        effect: Effect::ReadsCluster,
        returns: Returns::Void,
    },
    Spec {
        function: Function::DrainNode,
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
        function: Function::DrainNodes,
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
        function: Function::CitusDrainNode,
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
        function: Function::MoveShard,
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
        function: Function::CitusMoveShardPlacement,
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
        function: Function::JobWait,
        names: &["job_wait", "citus_job_wait"],
        params: &[
            req(&["job_id", "jobid"], ArgType::Int),
            opt(&["desired_status"], ArgType::Text, null),
        ],
        effect: Effect::ReadsCluster,
        returns: Returns::Void,
    },
    Spec {
        function: Function::JobCancel,
        names: &["job_cancel", "citus_job_cancel"],
        params: &[req(&["job_id", "jobid"], ArgType::Int)],
        effect: Effect::ChangesCluster,
        returns: Returns::Void,
    },
    Spec {
        function: Function::CitusGetActiveWorkerNodes,
        names: &[
            "citus_get_active_worker_nodes",
            "master_get_active_worker_nodes",
        ],
        params: &[],
        effect: Effect::ReadsCluster,
        returns: Returns::Rows(rows::active_worker_nodes_schema),
    },
];

/// The function called `name` (contract name or alias), if any.
pub(super) fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.names.contains(&name))
}
