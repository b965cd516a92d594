//! The `shoal.*` views and the Citus compatibility views, computed from the catalog when a
//! query reads them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::DataType;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use shoal_catalog::{JobType, ShardState, TableKind, TaskKind, TaskState};
use shoal_sql_functions::{Cluster, ClusterError};

use shoal_sql_functions::functions::rows::{bools, ints, schema, texts, timestamps, ts};

use crate::query::provider::{LiveTable, ViewFn};

fn view(
    cluster: &Arc<Cluster>,
    cols: &[(&str, DataType)],
    build: impl Fn(&Cluster) -> Result<Vec<ArrayRef>, ClusterError> + Send + Sync + 'static,
) -> Arc<dyn TableProvider> {
    let s = schema(cols);
    let s2 = Arc::clone(&s);
    let c = Arc::clone(cluster);
    let f: ViewFn = Arc::new(move || {
        let arrays = build(&c)?;
        Ok(RecordBatch::try_new(Arc::clone(&s2), arrays)?)
    });
    LiveTable::new(s, f)
}

/// One row per shard placement, as several views show them.
struct PlacementRow {
    table: String,
    kind: TableKind,
    colocation_id: Option<i64>,
    shard_id: i64,
    shard_index: i64,
    hash_min: i32,
    hash_max: i32,
    state: ShardState,
    placement_id: Option<i64>,
    node_id: Option<i64>,
    host: Option<String>,
    port: Option<i64>,
    files: i64,
    rows: i64,
    bytes: i64,
}

fn placement_rows(c: &Cluster) -> Result<Vec<PlacementRow>, ClusterError> {
    let mut out = Vec::new();
    for snap in c.catalog().snapshot_all()? {
        for s in &snap.shards {
            let base = |p: Option<&shoal_catalog::PlacementSnapshot>| PlacementRow {
                table: snap.table.name.clone(),
                kind: snap.table.kind,
                colocation_id: snap.table.colocation_id,
                shard_id: s.shard_id,
                shard_index: s.shard_index,
                hash_min: s.hash_min,
                hash_max: s.hash_max,
                state: s.state,
                placement_id: p.map(|p| p.placement_id),
                node_id: p.map(|p| p.node_id),
                host: p.map(|p| p.host.clone()),
                port: p.map(|p| p.port as i64),
                files: p.map(|p| p.files.len() as i64).unwrap_or(0),
                rows: p.map(|p| p.rows() as i64).unwrap_or(0),
                bytes: p.map(|p| p.bytes() as i64).unwrap_or(0),
            };
            if s.placements.is_empty() {
                out.push(base(None));
            }
            for p in &s.placements {
                out.push(base(Some(p)));
            }
        }
    }
    Ok(out)
}

/// The `shoal` schema.
pub fn shoal_schema(cluster: &Arc<Cluster>) -> Arc<dyn SchemaProvider> {
    let schema = MemorySchemaProvider::new();
    let add = |name: &str, t: Arc<dyn TableProvider>| {
        // registering into a fresh in-memory schema cannot collide
        let _ = schema.register_table(name.to_string(), t);
    };
    add("nodes", nodes_view(cluster));
    add("tables", tables_view(cluster));
    add("damaged_files", damaged_files_view(cluster));
    add("shards", shards_view(cluster));
    add("jobs", jobs_view(cluster));
    add("tasks", tasks_view(cluster));
    add("cluster_settings", cluster_settings_view(cluster));
    Arc::new(schema)
}

/// `shoal.nodes`.
fn nodes_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("node_id", DataType::Int64),
            ("host", DataType::Utf8),
            ("port", DataType::Int64),
            ("state", DataType::Utf8),
            ("should_have_shards", DataType::Boolean),
            ("is_live", DataType::Boolean),
            ("shard_count", DataType::Int64),
            ("bytes", DataType::Int64),
            ("disk_free_bytes", DataType::Int64),
            ("last_heartbeat", ts()),
        ],
        |c| {
            let nodes = c.catalog().list_nodes()?;
            let rows = placement_rows(c)?;
            let draining: Vec<i64> = match c
                .catalog()
                .active_job(&[JobType::Drain, JobType::Rebalance])?
            {
                Some(j) => c
                    .catalog()
                    .tasks(Some(j.job_id))?
                    .iter()
                    .filter(|t| t.kind == TaskKind::Move)
                    .map(|t| t.source_node_id)
                    .collect(),
                None => Vec::new(),
            };
            let count = |id: i64| rows.iter().filter(|r| r.node_id == Some(id)).count() as i64;
            let bytes = |id: i64| {
                rows.iter()
                    .filter(|r| r.node_id == Some(id))
                    .map(|r| r.bytes)
                    .sum::<i64>()
            };
            Ok(vec![
                ints(nodes.iter().map(|n| Some(n.node_id)).collect()),
                texts(nodes.iter().map(|n| Some(n.host.clone())).collect()),
                ints(nodes.iter().map(|n| Some(n.port as i64)).collect()),
                texts(
                    nodes
                        .iter()
                        .map(|n| {
                            Some(if !n.is_live {
                                "unreachable".to_string()
                            } else if !n.should_have_shards && draining.contains(&n.node_id) {
                                "draining".to_string()
                            } else {
                                n.state.to_string()
                            })
                        })
                        .collect(),
                ),
                bools(nodes.iter().map(|n| Some(n.should_have_shards)).collect()),
                bools(nodes.iter().map(|n| Some(n.is_live)).collect()),
                ints(nodes.iter().map(|n| Some(count(n.node_id))).collect()),
                ints(nodes.iter().map(|n| Some(bytes(n.node_id))).collect()),
                ints(
                    nodes
                        .iter()
                        .map(|n| n.disk_free_bytes.map(|v| v as i64))
                        .collect(),
                ),
                Arc::new(
                    TimestampMillisecondArray::from(
                        nodes
                            .iter()
                            .map(|n| n.last_heartbeat_ms)
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
            ])
        },
    )
}

/// `shoal.tables`.
fn tables_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("table_name", DataType::Utf8),
            ("kind", DataType::Utf8),
            ("distribution_column", DataType::Utf8),
            ("shard_count", DataType::Int64),
            ("replication_factor", DataType::Int64),
            ("colocation_id", DataType::Int64),
            ("row_count", DataType::Int64),
            ("bytes", DataType::Int64),
        ],
        |c| {
            let snaps = c.catalog().snapshot_all()?;
            // rows counted once per shard (first placement); bytes over all placements
            let rows = |s: &shoal_catalog::TableSnapshot| s.row_count() as i64;
            let bytes = |s: &shoal_catalog::TableSnapshot| s.bytes() as i64;
            Ok(vec![
                texts(snaps.iter().map(|s| Some(s.table.name.clone())).collect()),
                texts(
                    snaps
                        .iter()
                        .map(|s| Some(s.table.kind.as_str().to_string()))
                        .collect(),
                ),
                texts(
                    snaps
                        .iter()
                        .map(|s| s.table.distribution_column.clone())
                        .collect(),
                ),
                ints(snaps.iter().map(|s| Some(s.table.shard_count)).collect()),
                ints(
                    snaps
                        .iter()
                        .map(|s| Some(s.table.replication_factor))
                        .collect(),
                ),
                ints(snaps.iter().map(|s| s.table.colocation_id).collect()),
                ints(snaps.iter().map(|s| Some(rows(s))).collect()),
                ints(snaps.iter().map(|s| Some(bytes(s))).collect()),
            ])
        },
    )
}

/// `shoal.damaged_files`.
fn damaged_files_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("table_name", DataType::Utf8),
            ("shard_id", DataType::Int64),
            ("node_id", DataType::Int64),
            ("host", DataType::Utf8),
            ("port", DataType::Int64),
            ("file_name", DataType::Utf8),
            ("damage", DataType::Utf8),
            ("found_by", DataType::Utf8),
            ("found_at", ts()),
        ],
        |c| {
            let damaged = c.damaged_files();
            // The catalog is read only when there is something to show (almost never).
            let (nodes, names) = if damaged.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                (c.catalog().list_nodes()?, c.catalog().table_names()?)
            };
            let mut tables = HashMap::new();
            for name in names {
                if let Some(t) = c.catalog().table_by_name(&name)? {
                    tables.insert(t.table_id, t.name);
                }
            }
            let node = |w: &str| nodes.iter().find(|n| format!("{}:{}", n.host, n.port) == w);
            Ok(vec![
                texts(
                    damaged
                        .iter()
                        .map(|d| tables.get(&d.table_id).cloned())
                        .collect(),
                ),
                ints(damaged.iter().map(|d| Some(d.shard_id)).collect()),
                ints(
                    damaged
                        .iter()
                        .map(|d| node(&d.worker).map(|n| n.node_id))
                        .collect(),
                ),
                texts(
                    damaged
                        .iter()
                        .map(|d| {
                            Some(
                                node(&d.worker)
                                    .map_or_else(|| d.worker.clone(), |n| n.host.clone()),
                            )
                        })
                        .collect(),
                ),
                ints(
                    damaged
                        .iter()
                        .map(|d| node(&d.worker).map(|n| i64::from(n.port)))
                        .collect(),
                ),
                texts(damaged.iter().map(|d| Some(d.file.clone())).collect()),
                texts(damaged.iter().map(|d| Some(d.damage.clone())).collect()),
                texts(
                    damaged
                        .iter()
                        .map(|d| Some(d.found_by.as_str().to_string()))
                        .collect(),
                ),
                timestamps(damaged.iter().map(|d| Some(d.found_at_ms)).collect()),
            ])
        },
    )
}

/// `shoal.shards`.
fn shards_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("table_name", DataType::Utf8),
            ("shard_id", DataType::Int64),
            ("shard_index", DataType::Int64),
            ("hash_min", DataType::Int64),
            ("hash_max", DataType::Int64),
            ("node_id", DataType::Int64),
            ("host", DataType::Utf8),
            ("port", DataType::Int64),
            ("state", DataType::Utf8),
            ("file_count", DataType::Int64),
            ("row_count", DataType::Int64),
            ("bytes", DataType::Int64),
        ],
        |c| {
            let r = placement_rows(c)?;
            let moving: Vec<shoal_catalog::Task> = c
                .catalog()
                .unfinished_running_tasks()?
                .into_iter()
                .filter(|t| t.kind == TaskKind::Move)
                .collect();
            let state = |r: &PlacementRow| -> String {
                let is_moving = moving.iter().any(|t| {
                    r.node_id == Some(t.source_node_id)
                        && match t.colocation_id {
                            Some(co) => {
                                r.colocation_id == Some(co) && r.shard_index == t.shard_index
                            }
                            None => r.shard_id == t.shard_id,
                        }
                });
                if is_moving && r.state == ShardState::Active {
                    "moving".into()
                } else {
                    r.state.to_string()
                }
            };
            Ok(vec![
                texts(r.iter().map(|r| Some(r.table.clone())).collect()),
                ints(r.iter().map(|r| Some(r.shard_id)).collect()),
                ints(r.iter().map(|r| Some(r.shard_index)).collect()),
                ints(r.iter().map(|r| Some(r.hash_min as i64)).collect()),
                ints(r.iter().map(|r| Some(r.hash_max as i64)).collect()),
                ints(r.iter().map(|r| r.node_id).collect()),
                texts(r.iter().map(|r| r.host.clone()).collect()),
                ints(r.iter().map(|r| r.port).collect()),
                texts(r.iter().map(|r| Some(state(r))).collect()),
                ints(r.iter().map(|r| Some(r.files)).collect()),
                ints(r.iter().map(|r| Some(r.rows)).collect()),
                ints(r.iter().map(|r| Some(r.bytes)).collect()),
            ])
        },
    )
}

/// `shoal.jobs`.
fn jobs_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("job_id", DataType::Int64),
            ("job_type", DataType::Utf8),
            ("state", DataType::Utf8),
            ("description", DataType::Utf8),
            ("started_at", ts()),
            ("finished_at", ts()),
            ("tasks_total", DataType::Int64),
            ("tasks_done", DataType::Int64),
            ("bytes_total", DataType::Int64),
            ("bytes_done", DataType::Int64),
            ("last_error", DataType::Utf8),
        ],
        |c| {
            let mut st = Vec::new();
            for j in c.catalog().jobs()? {
                st.push(c.job_status(j)?);
            }
            Ok(vec![
                ints(st.iter().map(|s| Some(s.job.job_id)).collect()),
                texts(
                    st.iter()
                        .map(|s| Some(s.job.job_type.to_string()))
                        .collect(),
                ),
                texts(st.iter().map(|s| Some(s.job.state.to_string())).collect()),
                texts(st.iter().map(|s| Some(s.job.description.clone())).collect()),
                timestamps(st.iter().map(|s| s.job.started_at_ms).collect()),
                timestamps(st.iter().map(|s| s.job.finished_at_ms).collect()),
                ints(st.iter().map(|s| Some(s.tasks.len() as i64)).collect()),
                ints(
                    st.iter()
                        .map(|s| {
                            Some(
                                s.tasks
                                    .iter()
                                    .filter(|t| t.state == TaskState::Done)
                                    .count() as i64,
                            )
                        })
                        .collect(),
                ),
                ints(st.iter().map(|s| Some(s.bytes_total as i64)).collect()),
                ints(st.iter().map(|s| Some(s.bytes_done as i64)).collect()),
                texts(st.iter().map(|s| s.last_error.clone()).collect()),
            ])
        },
    )
}

/// `shoal.tasks`.
fn tasks_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("job_id", DataType::Int64),
            ("task_id", DataType::Int64),
            ("state", DataType::Utf8),
            ("shard_id", DataType::Int64),
            ("source", DataType::Utf8),
            ("target", DataType::Utf8),
            ("phase", DataType::Utf8),
            ("bytes_total", DataType::Int64),
            ("bytes_done", DataType::Int64),
            ("bytes_verified", DataType::Int64),
            ("retries", DataType::Int64),
            ("message", DataType::Utf8),
            ("started_at", ts()),
            ("finished_at", ts()),
        ],
        |c| {
            let t = c.catalog().tasks(None)?;
            Ok(vec![
                ints(t.iter().map(|t| Some(t.job_id)).collect()),
                ints(t.iter().map(|t| Some(t.task_id)).collect()),
                texts(t.iter().map(|t| Some(t.state.to_string())).collect()),
                ints(t.iter().map(|t| Some(t.shard_id)).collect()),
                texts(t.iter().map(|t| Some(t.source.clone())).collect()),
                texts(t.iter().map(|t| Some(t.target.clone())).collect()),
                texts(t.iter().map(|t| Some(t.phase.to_string())).collect()),
                ints(t.iter().map(|t| Some(t.bytes_total as i64)).collect()),
                ints(t.iter().map(|t| Some(t.bytes_done as i64)).collect()),
                ints(t.iter().map(|t| Some(t.bytes_verified as i64)).collect()),
                ints(t.iter().map(|t| Some(t.retries)).collect()),
                texts(t.iter().map(|t| Some(t.message.clone())).collect()),
                timestamps(t.iter().map(|t| t.started_at_ms).collect()),
                timestamps(t.iter().map(|t| t.finished_at_ms).collect()),
            ])
        },
    )
}

/// `shoal.cluster_settings`.
fn cluster_settings_view(cluster: &Arc<Cluster>) -> Arc<dyn TableProvider> {
    view(
        cluster,
        &[
            ("name", DataType::Utf8),
            ("value", DataType::Utf8),
            ("description", DataType::Utf8),
        ],
        |c| {
            let s = c.catalog().settings()?;
            Ok(vec![
                texts(s.iter().map(|r| Some(r.0.clone())).collect()),
                texts(s.iter().map(|r| Some(r.1.clone())).collect()),
                texts(s.iter().map(|r| Some(r.2.clone())).collect()),
            ])
        },
    )
}

/// Compatibility views that live in `public` for existing Citus runbooks.
pub fn compat_views(cluster: &Arc<Cluster>) -> HashMap<String, Arc<dyn TableProvider>> {
    let mut m: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
    m.insert(
        "citus_shards".into(),
        view(
            cluster,
            &[
                ("table_name", DataType::Utf8),
                ("shardid", DataType::Int64),
                ("shard_name", DataType::Utf8),
                ("citus_table_type", DataType::Utf8),
                ("colocation_id", DataType::Int64),
                ("nodename", DataType::Utf8),
                ("nodeport", DataType::Int64),
                ("shard_size", DataType::Int64),
            ],
            |c| {
                let r = placement_rows(c)?;
                Ok(vec![
                    texts(r.iter().map(|r| Some(r.table.clone())).collect()),
                    ints(r.iter().map(|r| Some(r.shard_id)).collect()),
                    texts(
                        r.iter()
                            .map(|r| Some(format!("{}_{}", r.table, r.shard_id)))
                            .collect(),
                    ),
                    texts(
                        r.iter()
                            .map(|r| {
                                Some(
                                    match r.kind {
                                        TableKind::Distributed => "distributed",
                                        TableKind::Reference => "reference",
                                        TableKind::SingleShard => "single_shard",
                                    }
                                    .to_string(),
                                )
                            })
                            .collect(),
                    ),
                    ints(r.iter().map(|r| r.colocation_id).collect()),
                    texts(r.iter().map(|r| r.host.clone()).collect()),
                    ints(r.iter().map(|r| r.port).collect()),
                    ints(r.iter().map(|r| Some(r.bytes)).collect()),
                ])
            },
        ),
    );
    let placement_cols: &[(&str, DataType)] = &[
        ("shardid", DataType::Int64),
        ("shardstate", DataType::Int64),
        ("shardlength", DataType::Int64),
        ("nodename", DataType::Utf8),
        ("nodeport", DataType::Int64),
        ("placementid", DataType::Int64),
    ];
    for name in ["citus_shard_placement", "pg_dist_shard_placement"] {
        m.insert(
            name.into(),
            view(cluster, placement_cols, |c| {
                let r: Vec<PlacementRow> = placement_rows(c)?
                    .into_iter()
                    .filter(|r| r.placement_id.is_some())
                    .collect();
                Ok(vec![
                    ints(r.iter().map(|r| Some(r.shard_id)).collect()),
                    // Citus: 1 = active, 3 = to be deleted / lost
                    ints(
                        r.iter()
                            .map(|r| Some(if r.state == ShardState::Lost { 3 } else { 1 }))
                            .collect(),
                    ),
                    ints(r.iter().map(|r| Some(r.bytes)).collect()),
                    texts(r.iter().map(|r| r.host.clone()).collect()),
                    ints(r.iter().map(|r| r.port).collect()),
                    ints(r.iter().map(|r| r.placement_id).collect()),
                ])
            }),
        );
    }
    m.insert(
        "pg_dist_node".into(),
        view(
            cluster,
            &[
                ("nodeid", DataType::Int64),
                ("groupid", DataType::Int64),
                ("nodename", DataType::Utf8),
                ("nodeport", DataType::Int64),
                ("noderack", DataType::Utf8),
                ("hasmetadata", DataType::Boolean),
                ("isactive", DataType::Boolean),
                ("noderole", DataType::Utf8),
                ("nodecluster", DataType::Utf8),
                ("shouldhaveshards", DataType::Boolean),
            ],
            |c| {
                let nodes = c.catalog().list_nodes()?;
                Ok(vec![
                    ints(nodes.iter().map(|n| Some(n.node_id)).collect()),
                    ints(nodes.iter().map(|n| Some(n.node_id)).collect()),
                    texts(nodes.iter().map(|n| Some(n.host.clone())).collect()),
                    ints(nodes.iter().map(|n| Some(n.port as i64)).collect()),
                    texts(nodes.iter().map(|_| Some("default".to_string())).collect()),
                    bools(nodes.iter().map(|_| Some(true)).collect()),
                    bools(nodes.iter().map(|_| Some(true)).collect()),
                    texts(nodes.iter().map(|_| Some("primary".to_string())).collect()),
                    texts(nodes.iter().map(|_| Some("default".to_string())).collect()),
                    bools(nodes.iter().map(|n| Some(n.should_have_shards)).collect()),
                ])
            },
        ),
    );
    m
}
