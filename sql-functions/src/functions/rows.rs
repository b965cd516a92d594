//! The rows cluster functions return: their schemas (also what the extended protocol
//! describes) and batches, and the column builders the `shoal.*` views share.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use shoal_catalog::TaskState;

use crate::cluster::Cluster;
use crate::error::{ClusterError, Result};
use crate::rebalance::{JobStatus, PlacementAtRisk, PlanRow, SimulatedNode, Simulation};

pub fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

pub fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

pub fn texts(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
pub fn ints(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
pub fn timestamps(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
}
pub fn bools(v: Vec<Option<bool>>) -> ArrayRef {
    Arc::new(BooleanArray::from(v))
}

/// `citus_get_active_worker_nodes()` rows: live nodes.
pub fn active_worker_nodes(cluster: &Cluster) -> Result<RecordBatch> {
    let nodes: Vec<_> = cluster
        .catalog()
        .list_nodes()?
        .into_iter()
        .filter(|n| n.is_live)
        .collect();
    Ok(RecordBatch::try_new(
        active_worker_nodes_schema(),
        vec![
            texts(nodes.iter().map(|n| Some(n.host.clone())).collect()),
            ints(nodes.iter().map(|n| Some(n.port as i64)).collect()),
        ],
    )?)
}

pub fn active_worker_nodes_schema() -> SchemaRef {
    schema(&[
        ("node_name", DataType::Utf8),
        ("node_port", DataType::Int64),
    ])
}

/// `rebalance_plan()` rows.
pub fn rebalance_plan_schema() -> SchemaRef {
    schema(&[
        ("table_name", DataType::Utf8),
        ("shard_id", DataType::Int64),
        ("shard_size", DataType::Int64),
        ("source_host", DataType::Utf8),
        ("source_port", DataType::Int64),
        ("target_host", DataType::Utf8),
        ("target_port", DataType::Int64),
    ])
}

/// `rebalance_simulate(...)` rows: each node's load before and after the plan.
pub fn rebalance_simulate_schema() -> SchemaRef {
    schema(&[
        ("node", DataType::Utf8),
        ("shards_before", DataType::Int64),
        ("shards_after", DataType::Int64),
        ("bytes_before", DataType::Int64),
        ("bytes_after", DataType::Int64),
        ("moves_in", DataType::Int64),
        ("moves_out", DataType::Int64),
    ])
}

pub fn rebalance_simulate_batch(sim: &Simulation) -> Result<RecordBatch> {
    let n = &sim.nodes;
    let col = |f: fn(&SimulatedNode) -> u64| ints(n.iter().map(|r| Some(f(r) as i64)).collect());
    RecordBatch::try_new(
        rebalance_simulate_schema(),
        vec![
            texts(n.iter().map(|r| Some(r.node.clone())).collect()),
            col(|r| r.shards_before),
            col(|r| r.shards_after),
            col(|r| r.bytes_before),
            col(|r| r.bytes_after),
            col(|r| r.moves_in),
            col(|r| r.moves_out),
        ],
    )
    .map_err(|e| ClusterError::Internal {
        message: format!("rebalance_simulate rows: {e}"),
    })
}

/// `remove_node_plan(host, port)` rows: what a forced `remove_node` would drop.
pub fn remove_node_plan_schema() -> SchemaRef {
    schema(&[
        ("table_name", DataType::Utf8),
        ("shard_id", DataType::Int64),
        ("rows", DataType::Int64),
        ("bytes", DataType::Int64),
        ("other_placements", DataType::Int64),
        ("lost", DataType::Boolean),
    ])
}

pub fn remove_node_plan_batch(rows: &[PlacementAtRisk]) -> Result<RecordBatch> {
    RecordBatch::try_new(
        remove_node_plan_schema(),
        vec![
            texts(rows.iter().map(|r| Some(r.table_name.clone())).collect()),
            ints(rows.iter().map(|r| Some(r.shard_id)).collect()),
            ints(rows.iter().map(|r| Some(r.rows as i64)).collect()),
            ints(rows.iter().map(|r| Some(r.bytes as i64)).collect()),
            ints(
                rows.iter()
                    .map(|r| Some(r.other_placements as i64))
                    .collect(),
            ),
            bools(rows.iter().map(|r| Some(r.other_placements == 0)).collect()),
        ],
    )
    .map_err(|e| ClusterError::Internal {
        message: format!("remove_node_plan rows: {e}"),
    })
}

/// `get_rebalance_table_shards_plan()` rows, with Citus's column names.
pub fn citus_rebalance_plan_schema() -> SchemaRef {
    schema(&[
        ("table_name", DataType::Utf8),
        ("shardid", DataType::Int64),
        ("shard_size", DataType::Int64),
        ("sourcename", DataType::Utf8),
        ("sourceport", DataType::Int64),
        ("targetname", DataType::Utf8),
        ("targetport", DataType::Int64),
    ])
}

const STATUS_COLUMNS: [&str; 7] = [
    "job_id",
    "state",
    "job_type",
    "description",
    "started_at",
    "finished_at",
    "details",
];

fn status_field(name: &str) -> (&str, DataType) {
    match name {
        "job_id" => (name, DataType::Int64),
        "started_at" | "finished_at" => (name, ts()),
        _ => (name, DataType::Utf8),
    }
}

/// `rebalance_status()` rows.
pub fn rebalance_status_schema() -> SchemaRef {
    let mut cols: Vec<(&str, DataType)> = STATUS_COLUMNS.iter().map(|n| status_field(n)).collect();
    cols.extend([
        ("progress", DataType::Float64),
        ("bytes_total", DataType::Int64),
        ("bytes_done", DataType::Int64),
        ("rate_bytes_per_s", DataType::Float64),
        ("eta_seconds", DataType::Float64),
        ("last_error", DataType::Utf8),
    ]);
    schema(&cols)
}

/// `citus_rebalance_status()` rows: the first seven columns.
pub fn citus_rebalance_status_schema() -> SchemaRef {
    let cols: Vec<(&str, DataType)> = STATUS_COLUMNS.iter().map(|n| status_field(n)).collect();
    schema(&cols)
}

/// Size as `pg_size_pretty` prints it.
pub(super) fn pretty(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 10.0 * 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", v.round() as u64, UNITS[u])
}

/// JSON text with keys ordered as PostgreSQL's jsonb prints them: by length, then bytes.
pub(super) fn jsonb_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}: {}",
                        serde_json::Value::String((*k).clone()),
                        jsonb_text(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        serde_json::Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(jsonb_text).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// `details` in Citus's shape: running tasks (with phase, hosts and sizes), then failed or
/// retrying ones, and the count of tasks per state.
fn details(s: &JobStatus) -> String {
    use serde_json::{json, Map, Value};
    let mut tasks: Vec<Value> = Vec::new();
    for t in s
        .tasks
        .iter()
        .filter(|t| matches!(t.state, TaskState::Running | TaskState::Cancelling))
    {
        tasks.push(json!({
            "state": t.state.as_str(),
            "retried": t.retries,
            "phase": t.phase.as_str(),
            "message": t.message,
            "command": format!("SELECT move_shard({}, '{}', ...)", t.shard_id, t.target),
            "task_id": t.task_id,
            "hosts": {"source": t.source, "target": t.target},
            "size": {"source": pretty(t.bytes_total), "target": pretty(t.bytes_done)},
        }));
    }
    for t in s.tasks.iter().filter(|t| {
        t.state == TaskState::Error || (t.state == TaskState::Runnable && t.retries > 0)
    }) {
        tasks.push(json!({
            "state": t.state.as_str(),
            "retried": t.retries,
            "message": t.message,
            "command": format!("SELECT move_shard({}, '{}', ...)", t.shard_id, t.target),
            "task_id": t.task_id,
        }));
    }
    let mut counts = Map::new();
    for t in &s.tasks {
        let n = counts
            .get(t.state.as_str())
            .and_then(Value::as_i64)
            .unwrap_or(0);
        counts.insert(t.state.to_string(), Value::from(n + 1));
    }
    jsonb_text(&json!({"tasks": tasks, "task_state_counts": Value::Object(counts)}))
}

/// `rebalance_status()` (or, `citus`, `citus_rebalance_status()`) of the latest job, if any.
pub(super) fn status_batch(citus: bool, s: Option<&JobStatus>) -> Result<RecordBatch> {
    let ts = |v: Option<i64>| {
        Arc::new(TimestampMillisecondArray::from(vec![v]).with_timezone("UTC")) as ArrayRef
    };
    let Some(s) = s else {
        let schema = if citus {
            citus_rebalance_status_schema()
        } else {
            rebalance_status_schema()
        };
        return Ok(RecordBatch::new_empty(schema));
    };
    let j = &s.job;
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![j.job_id])),
        Arc::new(StringArray::from(vec![j.state.to_string()])),
        Arc::new(StringArray::from(vec![j.job_type.to_string()])),
        Arc::new(StringArray::from(vec![j.description.clone()])),
        ts(j.started_at_ms),
        ts(j.finished_at_ms),
        Arc::new(StringArray::from(vec![details(s)])),
    ];
    if citus {
        return Ok(RecordBatch::try_new(citus_rebalance_status_schema(), cols)?);
    }
    cols.extend([
        Arc::new(Float64Array::from(vec![s.progress()])) as ArrayRef,
        Arc::new(Int64Array::from(vec![s.bytes_total as i64])),
        Arc::new(Int64Array::from(vec![s.bytes_done as i64])),
        Arc::new(Float64Array::from(vec![s.rate_bytes_per_s])),
        Arc::new(Float64Array::from(vec![s.eta_seconds])),
        Arc::new(StringArray::from(vec![s.last_error.clone()])),
    ]);
    Ok(RecordBatch::try_new(rebalance_status_schema(), cols)?)
}

/// `rebalance_plan()` rows, or with Citus's column names (`citus`) those of
/// `get_rebalance_table_shards_plan()`.
pub(super) fn plan_batch(citus: bool, rows: &[PlanRow]) -> Result<RecordBatch> {
    let schema = if citus {
        citus_rebalance_plan_schema()
    } else {
        rebalance_plan_schema()
    };
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.table_name.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.shard_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.shard_size as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.source_host.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.source_port as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.target_host.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.target_port as i64),
            )),
        ],
    )?)
}
