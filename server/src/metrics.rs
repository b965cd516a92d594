//! `/metrics`: the coordinator's Prometheus text endpoint (`--metrics-listen`). A minimal
//! HTTP/1.1 responder — one GET, one answer, connection closed — so that no web framework is
//! pulled in for a handful of gauges.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use shoal_sql_functions::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::ServerError;

/// The metrics text: node, job, move and cleanup gauges, and the write-fence durations of
/// moves.
pub fn render(cluster: &Cluster) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    match cluster.catalog().list_nodes() {
        Ok(nodes) => {
            gauge(
                "shoal_nodes",
                "Worker nodes in the catalog.",
                nodes.len().to_string(),
            );
            gauge(
                "shoal_nodes_live",
                "Worker nodes that answered the last heartbeat.",
                nodes.iter().filter(|n| n.is_live).count().to_string(),
            );
        }
        Err(e) => warn!(error = %e, "metrics: nodes unavailable"),
    }
    match cluster.catalog().task_totals() {
        Ok(totals) => {
            let total = |state: &str| totals.get(state).copied().unwrap_or((0, 0));
            for (name, help, value) in [
                (
                    "shoal_move_tasks_running",
                    "Move tasks running now.",
                    total("running").0,
                ),
                (
                    "shoal_move_tasks_done",
                    "Move tasks finished successfully.",
                    total("done").0,
                ),
                (
                    "shoal_move_tasks_failed",
                    "Move tasks that gave up.",
                    total("error").0,
                ),
                (
                    "shoal_move_bytes_done",
                    "Bytes of finished moves.",
                    total("done").1,
                ),
            ] {
                gauge(name, help, value.to_string());
            }
        }
        Err(e) => warn!(error = %e, "metrics: tasks unavailable"),
    }
    match cluster.catalog().pending_cleanup_count() {
        Ok(n) => gauge(
            "shoal_cleanup_pending",
            "Deferred deletes of files or shard directories on workers not carried out yet (waiting for older queries to end, for their time, or for their worker).",
            n.to_string(),
        ),
        Err(e) => warn!(error = %e, "metrics: cleanup records unavailable"),
    }
    gauge(
        "shoal_damaged_files",
        "Shard files on workers that do not match the size or CRC-32C the catalog recorded, as reads and the scrubber found them (see shoal.damaged_files).",
        cluster.damaged_files().len().to_string(),
    );
    let mut fences = cluster.fence_durations_ms();
    fences.sort_unstable();
    let q = |p: f64| -> u64 {
        if fences.is_empty() {
            return 0;
        }
        let i = ((fences.len() as f64 * p).ceil() as usize).clamp(1, fences.len()) - 1;
        fences[i]
    };
    let _ = writeln!(
        out,
        "# HELP shoal_move_write_fence_milliseconds How long each move held writes to its shard group (since start).\n\
         # TYPE shoal_move_write_fence_milliseconds summary\n\
         shoal_move_write_fence_milliseconds{{quantile=\"0.5\"}} {}\n\
         shoal_move_write_fence_milliseconds{{quantile=\"0.99\"}} {}\n\
         shoal_move_write_fence_milliseconds{{quantile=\"1\"}} {}\n\
         shoal_move_write_fence_milliseconds_sum {}\n\
         shoal_move_write_fence_milliseconds_count {}",
        q(0.5),
        q(0.99),
        q(1.0),
        fences.iter().sum::<u64>(),
        fences.len()
    );
    out
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
