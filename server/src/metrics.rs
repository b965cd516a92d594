//! `/metrics`: the coordinator's Prometheus text endpoint (`--metrics-listen`). A minimal
//! HTTP/1.1 responder — one GET, one answer, connection closed — so that no web framework is
//! pulled in for a handful of gauges.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shoal_catalog::TaskState;
use shoal_sql_functions::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::ServerError;

/// What the PostgreSQL frontend counts: statements, errors sent by SQLSTATE class, and open
/// connections. Process-wide (one coordinator per process; pgwire reports errors through a
/// plain function).
struct WireCounters {
    statements: AtomicU64,
    connections: AtomicI64,
    errors_by_class: Mutex<BTreeMap<String, u64>>,
}

static WIRE: WireCounters = WireCounters {
    statements: AtomicU64::new(0),
    connections: AtomicI64::new(0),
    errors_by_class: Mutex::new(BTreeMap::new()),
};

/// Rows and bytes (Arrow's in-memory size) the coordinator's shard scans received from
/// workers: what distributed execution is meant to shrink.
static SCAN_ROWS: AtomicU64 = AtomicU64::new(0);
static DISTRIBUTED_FALLBACKS: AtomicU64 = AtomicU64::new(0);
static SCAN_BYTES: AtomicU64 = AtomicU64::new(0);

/// The coordinator received a batch of `rows` rows, `bytes` in memory, from a shard scan or
/// from the tasks of a distributed query.
pub fn scan_received(rows: usize, bytes: usize) {
    SCAN_ROWS.fetch_add(rows as u64, Ordering::Relaxed);
    SCAN_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// A distributed query failed before its first row and ran on the coordinator instead.
pub fn distributed_fallback() {
    DISTRIBUTED_FALLBACKS.fetch_add(1, Ordering::Relaxed);
}

/// A client statement begins (each of a simple-query batch, each Execute).
pub fn statement_started() {
    WIRE.statements.fetch_add(1, Ordering::Relaxed);
}

/// The pgwire observer of every ErrorResponse sent (see `pgwire::observe`).
pub fn error_sent(code: &str) {
    let class = code.get(..2).unwrap_or(code).to_string();
    let mut errors = WIRE
        .errors_by_class
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *errors.entry(class).or_default() += 1;
}

/// Counts a client connection while it lives.
pub struct ConnectionGauge(());

impl ConnectionGauge {
    pub fn open() -> Self {
        WIRE.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGauge(())
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        WIRE.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: String) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// A label value as the text format wants it.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text: the frontend's counters; node, job, move and cleanup gauges; and the
/// write-fence durations of moves as a histogram.
pub fn render(cluster: &Cluster) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP shoal_statements_total Client statements begun (each of a simple-query batch, each Execute).\n\
         # TYPE shoal_statements_total counter\n\
         shoal_statements_total {}",
        WIRE.statements.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP shoal_errors_total Errors sent to clients, by SQLSTATE class (the code's first two characters).\n\
         # TYPE shoal_errors_total counter"
    );
    {
        let errors = WIRE
            .errors_by_class
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (class, n) in errors.iter() {
            let _ = writeln!(out, "shoal_errors_total{{class=\"{}\"}} {n}", label(class));
        }
    }
    let _ = writeln!(
        out,
        "# HELP shoal_scan_rows_received_total Rows the coordinator received from workers (shard scans and distributed tasks).\n\
         # TYPE shoal_scan_rows_received_total counter\n\
         shoal_scan_rows_received_total {}\n\
         # HELP shoal_scan_bytes_received_total Bytes (in memory) the coordinator received from workers (shard scans and distributed tasks).\n\
         # TYPE shoal_scan_bytes_received_total counter\n\
         shoal_scan_bytes_received_total {}\n\
         # HELP shoal_distributed_fallbacks_total Distributed queries that failed before their first row and ran on the coordinator.\n\
         # TYPE shoal_distributed_fallbacks_total counter\n\
         shoal_distributed_fallbacks_total {}",
        SCAN_ROWS.load(Ordering::Relaxed),
        SCAN_BYTES.load(Ordering::Relaxed),
        DISTRIBUTED_FALLBACKS.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP shoal_connections Client connections open now.\n\
         # TYPE shoal_connections gauge\n\
         shoal_connections {}",
        WIRE.connections.load(Ordering::Relaxed)
    );
    match cluster.catalog().list_nodes() {
        Ok(nodes) => {
            gauge(
                &mut out,
                "shoal_nodes",
                "Worker nodes in the catalog.",
                nodes.len().to_string(),
            );
            gauge(
                &mut out,
                "shoal_nodes_live",
                "Worker nodes that answered the last heartbeat.",
                nodes.iter().filter(|n| n.is_live).count().to_string(),
            );
        }
        Err(e) => warn!(error = %e, "metrics: nodes unavailable"),
    }
    match per_node(cluster) {
        Ok(nodes) => {
            let _ = writeln!(
                out,
                "# HELP shoal_node_shards Shard placements on each worker.\n\
                 # TYPE shoal_node_shards gauge"
            );
            for (node, (shards, _)) in &nodes {
                let _ = writeln!(
                    out,
                    "shoal_node_shards{{node=\"{}\"}} {shards}",
                    label(node)
                );
            }
            let _ = writeln!(
                out,
                "# HELP shoal_node_bytes Bytes of the committed shard files on each worker.\n\
                 # TYPE shoal_node_bytes gauge"
            );
            for (node, (_, bytes)) in &nodes {
                let _ = writeln!(out, "shoal_node_bytes{{node=\"{}\"}} {bytes}", label(node));
            }
        }
        Err(e) => warn!(error = %e, "metrics: placements unavailable"),
    }
    match cluster.catalog().unfinished_running_tasks() {
        Ok(tasks) => {
            let running: Vec<_> = tasks
                .iter()
                .filter(|t| t.state == TaskState::Running)
                .collect();
            gauge(
                &mut out,
                "shoal_move_in_progress_bytes_done",
                "Bytes the running moves have copied so far.",
                running
                    .iter()
                    .map(|t| t.bytes_done)
                    .sum::<u64>()
                    .to_string(),
            );
            gauge(
                &mut out,
                "shoal_move_in_progress_bytes_total",
                "Bytes the running moves copy in all.",
                running
                    .iter()
                    .map(|t| t.bytes_total.max(t.bytes_done))
                    .sum::<u64>()
                    .to_string(),
            );
        }
        Err(e) => warn!(error = %e, "metrics: running tasks unavailable"),
    }
    match cluster.catalog().task_totals() {
        Ok(totals) => {
            let total = |state: TaskState| totals.get(&state).copied().unwrap_or((0, 0));
            for (name, help, value) in [
                (
                    "shoal_move_tasks_running",
                    "Move tasks running now.",
                    total(TaskState::Running).0,
                ),
                (
                    "shoal_move_tasks_done",
                    "Move tasks finished successfully.",
                    total(TaskState::Done).0,
                ),
                (
                    "shoal_move_tasks_failed",
                    "Move tasks that gave up.",
                    total(TaskState::Error).0,
                ),
                (
                    "shoal_move_bytes_done",
                    "Bytes of finished moves.",
                    total(TaskState::Done).1,
                ),
            ] {
                gauge(&mut out, name, help, value.to_string());
            }
        }
        Err(e) => warn!(error = %e, "metrics: tasks unavailable"),
    }
    match cluster.catalog().pending_cleanup_count() {
        Ok(n) => gauge(
                &mut out,
            "shoal_cleanup_pending",
            "Deferred deletes of files or shard directories on workers not carried out yet (waiting for older queries to end, for their time, or for their worker).",
            n.to_string(),
        ),
        Err(e) => warn!(error = %e, "metrics: cleanup records unavailable"),
    }
    gauge(
                &mut out,
        "shoal_damaged_files",
        "Shard files on workers that do not match the size or CRC-32C the catalog recorded, as reads and the scrubber found them (see shoal.damaged_files).",
        cluster.damaged_files().len().to_string(),
    );
    if let Some(journal) = cluster.catalog_journal_stats() {
        for (name, help, value) in [
            (
                "shoal_catalog_journal_seq",
                "Catalog writes numbered since the coordinator started (the catalog journal's last entry).",
                journal.last_seq,
            ),
            (
                "shoal_catalog_journal_durable_seq",
                "The last catalog journal entry that at least one worker holds on disk.",
                journal.durable_seq,
            ),
            (
                "shoal_catalog_journal_workers_healthy",
                "Workers whose copy of the catalog journal took the last call.",
                journal.workers_healthy as u64,
            ),
            (
                "shoal_catalog_journal_workers",
                "Workers the catalog journal is copied to.",
                journal.workers as u64,
            ),
        ] {
            gauge(&mut out, name, help, value.to_string());
        }
        let _ = writeln!(
            out,
            "# HELP shoal_catalog_journal_unshipped_total Catalog writes that returned before any worker held their journal entry (none reachable, or none within 10 s).\n\
             # TYPE shoal_catalog_journal_unshipped_total counter\n\
             shoal_catalog_journal_unshipped_total {}",
            journal.unshipped
        );
        let _ = writeln!(
            out,
            "# HELP shoal_catalog_journal_wait_microseconds How long each catalog write waited for a worker to hold its journal entry.\n\
             # TYPE shoal_catalog_journal_wait_microseconds histogram"
        );
        for (le, n) in &journal.waits.buckets {
            let _ = writeln!(
                out,
                "shoal_catalog_journal_wait_microseconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "shoal_catalog_journal_wait_microseconds_bucket{{le=\"+Inf\"}} {}\n\
             shoal_catalog_journal_wait_microseconds_sum {}\n\
             shoal_catalog_journal_wait_microseconds_count {}",
            journal.waits.count, journal.waits.sum, journal.waits.count
        );
    }
    let fences = cluster.fence_histogram();
    let _ = writeln!(
        out,
        "# HELP shoal_move_write_fence_milliseconds How long each move held writes to its shard group (since start).\n\
         # TYPE shoal_move_write_fence_milliseconds histogram"
    );
    for (le, n) in &fences.buckets {
        let _ = writeln!(
            out,
            "shoal_move_write_fence_milliseconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "shoal_move_write_fence_milliseconds_bucket{{le=\"+Inf\"}} {}\n\
         shoal_move_write_fence_milliseconds_sum {}\n\
         shoal_move_write_fence_milliseconds_count {}",
        fences.count, fences.sum, fences.count
    );
    out
}

/// Shard placements and bytes per node (`host:port`), from one catalog snapshot.
fn per_node(
    cluster: &Cluster,
) -> Result<BTreeMap<String, (u64, u64)>, shoal_sql_functions::ClusterError> {
    let mut nodes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for n in cluster.catalog().list_nodes()? {
        nodes.insert(n.addr(), (0, 0));
    }
    for table in cluster.catalog().snapshot_all()? {
        for shard in &table.shards {
            for p in &shard.placements {
                let entry = nodes.entry(p.addr()).or_default();
                entry.0 += 1;
                entry.1 += p.bytes();
            }
        }
    }
    Ok(nodes)
}

/// Serves `/metrics` on `listen` until the task is dropped.
pub async fn serve(listen: SocketAddr, cluster: Arc<Cluster>) -> Result<(), ServerError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| ServerError::Startup(format!("cannot listen for metrics on {listen}: {e}")))?;
    info!(%listen, "metrics on /metrics");
    loop {
        let (mut socket, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "metrics accept failed");
                continue;
            }
        };
        let cluster = Arc::clone(&cluster);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" {
                ("200 OK", render(&cluster))
            } else {
                ("404 Not Found", "see /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
