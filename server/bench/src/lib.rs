//! `shoal bench`: side-by-side benchmark scenarios, each printed as a table beside its
//! baseline in one run. A crate of its own so that the server's code holds no benchmark; the
//! `shoal` binary calls it for its `bench` command, and every cluster it measures runs as
//! separate processes of that binary.
//!
//! `core` (issue #2's targets):
//!
//! Starts a real cluster (coordinator and workers as separate processes of this binary), then
//! measures in one run:
//! - COPY ingest of N events rows through the coordinator, against PostgreSQL 15's COPY into
//!   a heap table on the same machine (when PostgreSQL is installed);
//! - peak coordinator RSS during that COPY (streamed, so it must stay flat);
//! - `SELECT kind, count(*), avg(value) FROM events GROUP BY kind` through the coordinator,
//!   against DataFusion reading the very same Parquet files in one process;
//! - a point query on the distribution column (one shard).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::SinkExt;
use tokio_postgres::NoTls;

mod rebalance;
mod tenant;
pub mod tpch;
mod transactions;

/// Why a benchmark could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A step failed: a process that did not start, a query that failed, a missing tool.
    #[error("{0}")]
    Failed(String),
    /// An I/O error (data directories, log files, the binary's own path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
pub use rebalance::run as run_rebalance;
pub use tenant::run as run_tenant;
pub use tpch::run as run_tpch;
pub use transactions::run as run_transactions;

fn err(m: impl std::fmt::Display + std::fmt::Debug) -> BenchError {
    BenchError::Failed(format!("{m}: {m:?}"))
}

const KINDS: [&str; 8] = [
    "click", "view", "purchase", "signup", "logout", "search", "share", "error",
];

/// Deterministic events rows as COPY text, `rows` of them starting at `start`.
pub fn events_chunk(start: u64, rows: u64) -> String {
    let mut s = String::with_capacity(rows as usize * 80);
    for id in start..start + rows {
        let x = id.wrapping_mul(2654435761) % 1_000_003;
        let kind = KINDS[(x % 8) as usize];
        let value = if x % 17 == 0 {
            "\\N".to_string()
        } else {
            format!("{:.3}", (x % 10_000) as f64 / 7.0)
        };
        let secs = 1_700_000_000 + (id % 2_592_000);
        let ts = chrono::DateTime::from_timestamp(secs as i64, 0)
            .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        s.push_str(&format!(
            "{id}\t{}\t{kind}\t{value}\t{}.{:02}\t{ts}\t{}\tnote {}\n",
            x % 5000,
            x % 100_000,
            x % 100,
            if x % 2 == 0 { "t" } else { "f" },
            x % 1000
        ));
    }
    s
}

const CREATE: &str = "CREATE TABLE events (id bigint, device_id integer, kind text, value double precision, amount numeric(12,2), ts timestamp, flag boolean, note text)";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `shoal worker` process of this binary on `127.0.0.1:port`, killed when dropped.
fn spawn_worker(exe: &Path, port: u16, dir: &Path, token: &str) -> Result<Proc, BenchError> {
    let child = Command::new(exe)
        .args([
            "worker",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args(["--cluster-token", token])
        .env("RUST_LOG", bench_log_filter())
        .stderr(bench_log_file(dir)?)
        .spawn()?;
    Ok(Proc(child))
}

/// The log filter of the processes a bench starts: `warn`, or `SHOAL_BENCH_LOG` (say `info`,
/// to see each move's steps and each pull's MB/s).
fn bench_log_filter() -> String {
    std::env::var("SHOAL_BENCH_LOG").unwrap_or_else(|_| "warn".to_string())
}

/// Where a bench process started on `dir` logs: `<dir>.log` beside it (kept with `--keep`).
fn bench_log_file(dir: &Path) -> Result<Stdio, BenchError> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(Stdio::from(std::fs::File::create(
        dir.with_extension("log"),
    )?))
}

fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn connect(port: u16, user: &str) -> Result<tokio_postgres::Client, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={port} user={user} dbname={}",
                if user == "shoal" { "shoal" } else { "postgres" }
            ),
            NoTls,
        )
        .await
        {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                return Ok(c);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(err(format!("cannot connect to port {port}: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The COPY input, generated before any clock starts so that both systems are timed on the
/// same bytes and neither competes with the generator for the CPU.
fn events_input(rows: u64) -> Vec<Bytes> {
    const CHUNK_ROWS: u64 = 50_000;
    (0..rows)
        .step_by(CHUNK_ROWS as usize)
        .map(|start| Bytes::from(events_chunk(start, CHUNK_ROWS.min(rows - start))))
        .collect()
}

async fn copy_rows(
    client: &tokio_postgres::Client,
    input: &[Bytes],
) -> Result<Duration, BenchError> {
    let sink = client
        .copy_in("COPY events FROM STDIN")
        .await
        .map_err(err)?;
    futures::pin_mut!(sink);
    let start = Instant::now();
    for chunk in input {
        sink.send(chunk.clone()).await.map_err(err)?;
    }
    sink.finish().await.map_err(err)?;
    Ok(start.elapsed())
}

async fn median_ms(
    runs: usize,
    mut f: impl AsyncFnMut() -> Result<(), BenchError>,
) -> Result<f64, BenchError> {
    f().await?; // warm-up
    let mut t = Vec::new();
    for _ in 0..runs {
        let s = Instant::now();
        f().await?;
        t.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// Runs `sql` to its last row in the in-process DataFusion baseline.
async fn run_datafusion(ctx: &SessionContext, sql: &str) -> Result<(), BenchError> {
    ctx.sql(sql)
        .await
        .map_err(err)?
        .collect()
        .await
        .map_err(err)?;
    Ok(())
}

fn parquet_files(dir: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                parquet_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.display().to_string());
            }
        }
    }
}

/// A scratch PostgreSQL for the COPY comparison; PostgreSQL refuses to run as root, so it runs
/// as the `postgres` user then.
struct ScratchPg {
    pg_ctl: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl ScratchPg {
    fn run(&self, bin: &Path, args: &[&str]) -> Result<(), BenchError> {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let out = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        if !out.status.success() {
            return Err(err(format!(
                "{} failed: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    fn start(bin_dir: &Path) -> Result<ScratchPg, BenchError> {
        let as_postgres = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
            || std::fs::read_to_string("/proc/self/status")
                .map(|s| {
                    s.lines()
                        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
                })
                .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!("shoal-bench-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        if as_postgres {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
        }
        let pg = ScratchPg {
            pg_ctl: bin_dir.join("pg_ctl"),
            dir: dir.clone(),
            as_postgres,
            port: free_port()?,
        };
        let data = dir.join("data");
        pg.run(
            &bin_dir.join("initdb"),
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
            ],
        )?;
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            dir.display()
        );
        pg.run(
            &pg.pg_ctl,
            &[
                "-D",
                &data.display().to_string(),
                "-o",
                &opts,
                "-l",
                &dir.join("log").display().to_string(),
                "-w",
                "start",
            ],
        )?;
        Ok(pg)
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self.run(&self.pg_ctl.clone(), &["-D", &data, "-m", "fast", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `workers` workers and a coordinator (processes of this binary) under `root`, and
/// waits until every worker is registered: the processes (killed when dropped), the
/// coordinator's port and pid, and the port of its `/metrics`.
async fn start_cluster(
    root: &Path,
    workers: usize,
) -> Result<(Vec<Proc>, u16, u32, u16), BenchError> {
    let exe = std::env::current_exe()?;
    let token = "bench-token";
    let mut procs = Vec::new();
    let mut worker_addrs = Vec::new();
    for i in 0..workers {
        let port = free_port()?;
        let dir = root.join(format!("worker{i}"));
        procs.push(spawn_worker(&exe, port, &dir, token)?);
        worker_addrs.push(format!("127.0.0.1:{port}"));
    }
    let cport = free_port()?;
    let metrics_port = free_port()?;
    let mut args = vec![
        "coordinator".to_string(),
        "--listen".into(),
        format!("127.0.0.1:{cport}"),
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics_port}"),
        "--data-dir".into(),
        root.join("coordinator").display().to_string(),
        "--cluster-token".into(),
        token.into(),
    ];
    for w in &worker_addrs {
        args.push("--worker".into());
        args.push(w.clone());
    }
    let coord = Command::new(&exe)
        .args(&args)
        .env("RUST_LOG", bench_log_filter())
        .stderr(bench_log_file(&root.join("coordinator"))?)
        .spawn()?;
    let coord_pid = coord.id();
    procs.push(Proc(coord));
    let client = connect(cport, "shoal").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = client
            .query_one("SELECT count(*) FROM citus_get_active_worker_nodes()", &[])
            .await
            .map_err(err)?
            .get(0);
        if n as usize == workers {
            break;
        }
        if Instant::now() > deadline {
            return Err(err("workers did not register"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((procs, cport, coord_pid, metrics_port))
}

pub async fn run(rows: u64, workers: usize, pg_bin: PathBuf, keep: bool) -> Result<(), BenchError> {
    let root = std::env::temp_dir().join(format!("shoal-bench-{}", std::process::id()));
    let (procs, cport, coord_pid, _) = start_cluster(&root, workers).await?;
    let client = connect(cport, "shoal").await?;
    client.batch_execute(CREATE).await.map_err(err)?;
    client
        .batch_execute("SELECT create_distributed_table('events', 'id', shard_count => 32)")
        .await
        .map_err(err)?;

    // COPY, sampling the coordinator's RSS meanwhile.
    let input = events_input(rows);
    let rss_before = rss_kib(coord_pid);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampler = {
        let (s, p) = (Arc::clone(&sampling), Arc::clone(&peak));
        tokio::spawn(async move {
            while s.load(std::sync::atomic::Ordering::Relaxed) {
                p.fetch_max(rss_kib(coord_pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let shoal_copy = copy_rows(&client, &input).await?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.await;
    let rss_peak = peak.load(std::sync::atomic::Ordering::Relaxed);

    let agg = "SELECT kind, count(*), avg(value) FROM events GROUP BY kind ORDER BY kind";
    let shoal_agg = median_ms(5, async || {
        client.simple_query(agg).await.map_err(err)?;
        Ok(())
    })
    .await?;
    let point = format!("SELECT * FROM events WHERE id = {}", rows / 2);
    let shoal_point = median_ms(20, async || {
        client.simple_query(&point).await.map_err(err)?;
        Ok(())
    })
    .await?;

    // DataFusion over the very same Parquet files, in this process.
    let mut files = Vec::new();
    parquet_files(&root, &mut files);
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(files.clone(), ParquetReadOptions::default())
        .await
        .map_err(err)?;
    ctx.register_table("events", df.into_view()).map_err(err)?;
    let df_agg = median_ms(5, async || run_datafusion(&ctx, agg).await).await?;
    let df_point = median_ms(20, async || run_datafusion(&ctx, &point).await).await?;

    // PostgreSQL 15 COPY into a heap table.
    let pg = if pg_bin.join("initdb").exists() {
        let pg = ScratchPg::start(&pg_bin)?;
        let pgc = connect(pg.port, "postgres").await?;
        pgc.batch_execute(CREATE).await.map_err(err)?;
        let t = copy_rows(&pgc, &input).await?;
        Some((pg, t))
    } else {
        None
    };

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!();
    println!(
        "shoal bench: {rows} events rows, {workers} workers, 32 shards, {} parquet files",
        files.len()
    );
    println!("| measurement | Shoal | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    match &pg {
        Some((_, t)) => println!(
            "| COPY ingest (rows/s) | {:.0} | PostgreSQL 15: {:.0} | {:.2}x | >= 2x |",
            rate(shoal_copy),
            rate(*t),
            rate(shoal_copy) / rate(*t)
        ),
        None => println!(
            "| COPY ingest (rows/s) | {:.0} | PostgreSQL 15: not installed ({}) | - | >= 2x |",
            rate(shoal_copy),
            pg_bin.display()
        ),
    }
    println!(
        "| GROUP BY kind (ms, median of 5) | {shoal_agg:.1} | DataFusion, same files: {df_agg:.1} | {:.2}x | <= 1.5x |",
        shoal_agg / df_agg
    );
    println!("| point query on id (ms, median of 20) | {shoal_point:.1} | DataFusion, same files: {df_point:.1} | - | <= 20 ms |");
    println!(
        "| coordinator RSS during COPY (MiB) | peak {:.0} | before {:.0} | +{:.0} MiB | flat |",
        rss_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        (rss_peak.saturating_sub(rss_before)) as f64 / 1024.0
    );
    drop(pg);
    drop(procs);
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}
