//! The command line (`shoal dev|coordinator|worker|healthcheck`). Every flag also reads
//! `SHOAL_<FLAG>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shoal_shard_store::{serve_worker, ClusterTls, ClusterTlsFiles, WorkerClient, WorkerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::coordinator::{run_coordinator, CoordinatorOptions, MemoryLimit};
use crate::frontend::wire::Passwords;
use crate::ServerError;

#[derive(Parser, Debug)]
#[command(
    name = "shoal",
    version,
    about = "Shoal: a sharded columnar SQL database that speaks PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (overridden by RUST_LOG), e.g. info or shoal=debug.
    #[arg(long, global = true, env = "SHOAL_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, global = true, env = "SHOAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A coordinator and N workers on loopback in one process, nodes already added.
    Dev(DevArgs),
    /// The coordinator: Postgres wire protocol, catalog, distributed planning.
    Coordinator(CoordinatorArgs),
    /// A worker: keeps shard files and serves them.
    Worker(WorkerArgs),
    /// Exit 0 when the coordinator or worker at --target is ready.
    Healthcheck(HealthcheckArgs),
    /// Side-by-side benchmarks (COPY vs PostgreSQL, queries vs DataFusion); prints a table.
    Bench(BenchArgs),
    /// Copy the coordinator's catalog to DIR/catalog.db while the coordinator runs.
    Backup(BackupArgs),
    /// Replace the catalog of a stopped coordinator with a backup.
    Restore(RestoreArgs),
    /// Rebuild a lost coordinator catalog from the copies of its journal the workers keep.
    RecoverCatalog(RecoverArgs),
}

#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// The coordinator's data directory, without a catalog.db (the catalog is made there).
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: PathBuf,
    /// A worker to ask, as HOST:PORT; repeatable. The workers the newest copy lists are asked
    /// too.
    #[arg(
        long = "worker",
        env = "SHOAL_WORKER",
        value_delimiter = ',',
        required = true
    )]
    workers: Vec<String>,
    #[arg(long, env = "SHOAL_CLUSTER_TOKEN", value_parser = cluster_token)]
    cluster_token: Option<String>,
    /// Rebuild from the copies that answered even if some workers could not be asked (the
    /// writes only they hold are then lost).
    #[arg(long)]
    ignore_unreachable: bool,
    #[command(flatten)]
    tls: ClusterTlsArgs,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The coordinator's data directory (it holds catalog.db).
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: PathBuf,
    /// A new (or empty) directory for the backup.
    #[arg(long)]
    to: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The directory a `shoal backup` wrote.
    #[arg(long)]
    from: PathBuf,
    /// The data directory of the coordinator to restore (stopped).
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 5_000_000)]
    rows: u64,
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Directory with PostgreSQL's initdb and pg_ctl, for the COPY comparison.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
    /// Keep the cluster's data directory afterwards (with each process's log, `<name>.log`;
    /// `SHOAL_BENCH_LOG=info` logs more than warnings).
    #[arg(long)]
    keep: bool,
    /// `core` (issue #2: COPY, GROUP BY, point query, memory), `rebalance` (issue #3:
    /// shard moves, a 3 -> 4 worker rebalance under load, planning), `transactions`
    /// (issue #13: 1000 INSERTs in one transaction, pgbench TPC-B-like, against PostgreSQL) or
    /// `tpch` (issue #15: the 22 TPC-H queries against single-process DataFusion and
    /// PostgreSQL, with the rows the coordinator receives) or `tenant` (issue #15: one
    /// tenant's aggregate on `--rows` events distributed by tenant).
    #[arg(long, default_value = "core")]
    scenario: String,
    /// How long the transactions scenario runs pgbench on each server, in seconds.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Scale factor of the tpch scenario.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Seconds PostgreSQL may take for one TPC-H query in the tpch scenario.
    #[arg(long, default_value_t = 120)]
    pg_timeout_s: u64,
    /// Data size of the rebalance scenario, in GB.
    #[arg(long, default_value_t = 2.0)]
    gb: f64,
    /// `max_bandwidth_mb` of the rebalance scenario's `rebalance_start` (default unlimited).
    #[arg(long)]
    max_bandwidth_mb: Option<f64>,
    /// Rebalance scenario without the concurrent writer: the reader's latency during the
    /// rebalance alone (the write-fence numbers then measure an idle gate).
    #[arg(long)]
    no_writer: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// File of `user:password` lines; clients then log in with SCRAM-SHA-256.
    #[arg(long, env = "SHOAL_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// TLS certificate (PEM) for client connections.
    #[arg(long, env = "SHOAL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "SHOAL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): traffic between coordinator and workers is then
    /// TLS, both ways verified (each presents --tls-cert, which this CA must have signed).
    #[arg(long, env = "SHOAL_TLS_CA", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Shared secret carried by every coordinator↔worker call.
    #[arg(long, env = "SHOAL_CLUSTER_TOKEN", value_parser = cluster_token)]
    cluster_token: Option<String>,
    /// Allow password-less logins on a non-loopback address.
    #[arg(long, env = "SHOAL_INSECURE")]
    insecure: bool,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    #[arg(long, env = "SHOAL_WORKERS", default_value_t = 3)]
    workers: usize,
    #[arg(long, env = "SHOAL_PORT", default_value_t = 5432)]
    port: u16,
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = "./shoal-data")]
    data_dir: PathBuf,
    /// Password for user `shoal` (SCRAM); without it, loopback logins need no password.
    #[arg(long, env = "SHOAL_PASSWORD")]
    password: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long, env = "SHOAL_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    #[arg(long, env = "SHOAL_LISTEN", default_value = "0.0.0.0:5432")]
    listen: SocketAddr,
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: PathBuf,
    /// Workers to add at start (idempotent), as HOST:PORT; repeatable.
    #[arg(long = "worker", env = "SHOAL_WORKER", value_delimiter = ',')]
    workers: Vec<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long, env = "SHOAL_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// MB of memory all running queries may hold together in their operators; a query that
    /// needs more (and cannot spill to disk) fails with 53200. Default: half of the machine's.
    #[arg(long, env = "SHOAL_MEMORY_LIMIT_MB", value_parser = clap::value_parser!(u64).range(1..))]
    memory_limit_mb: Option<u64>,
    /// Milliseconds a worker may leave a liveness ping unanswered (stopped, partitioned)
    /// before queries on it fail with 08006 or move to another placement.
    #[arg(long, env = "SHOAL_WORKER_TIMEOUT_MS", default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(100..))]
    worker_timeout_ms: u64,
    /// Refuse clients that do not use TLS (SQLSTATE 28000). Default: on when a certificate is
    /// given and the coordinator listens on a non-loopback address; `--require-tls=false`
    /// turns it off.
    #[arg(long, env = "SHOAL_REQUIRE_TLS", num_args = 0..=1, default_missing_value = "true",
        require_equals = true)]
    require_tls: Option<bool>,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(long, env = "SHOAL_LISTEN", default_value = "0.0.0.0:7400")]
    listen: SocketAddr,
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: PathBuf,
    /// The address the coordinator uses for this worker, if not --listen.
    #[arg(long, env = "SHOAL_ADVERTISE")]
    advertise: Option<String>,
    /// MB of memory the worker's partial aggregates may hold together; at the limit they send
    /// their groups early, anything else fails with 53200. Default: half of the machine's.
    #[arg(long, env = "SHOAL_MEMORY_LIMIT_MB", value_parser = clap::value_parser!(u64).range(1..))]
    memory_limit_mb: Option<u64>,
    #[command(flatten)]
    security: SecurityArgs,
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    #[arg(long, env = "SHOAL_TARGET", default_value = "127.0.0.1:5432")]
    target: String,
    #[arg(long, env = "SHOAL_CLUSTER_TOKEN", value_parser = cluster_token)]
    cluster_token: Option<String>,
    #[command(flatten)]
    tls: ClusterTlsArgs,
}

/// Node-to-node TLS of a command that calls workers: the cluster CA, and the certificate and
/// key to present to them.
#[derive(Args, Debug)]
pub struct ClusterTlsArgs {
    #[arg(long, env = "SHOAL_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    #[arg(long, env = "SHOAL_TLS_CERT", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "SHOAL_TLS_KEY", requires = "tls_ca")]
    tls_key: Option<PathBuf>,
}

impl ClusterTlsArgs {
    fn load(self) -> Result<Option<ClusterTls>, ServerError> {
        cluster_tls(self.tls_ca, self.tls_cert, self.tls_key)
    }
}

/// The node-to-node TLS of `--tls-ca`, `--tls-cert` and `--tls-key`: all three, checked, or
/// none; some but not all is refused (a worker could verify neither its callers nor the
/// workers it pulls from).
fn cluster_tls(
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<ClusterTls>, ServerError> {
    match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => ClusterTls::load(&ClusterTlsFiles { ca, cert, key })
            .map(Some)
            .map_err(|e| ServerError::Startup(e.to_string())),
        (None, None, None) => Ok(None),
        _ => Err(ServerError::Startup(
            "node-to-node TLS needs all of --tls-ca, --tls-cert and --tls-key: a worker verifies \
             the coordinator and the other workers with the cluster CA, as they verify it"
                .into(),
        )),
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

const THREAD_STACK_BYTES: usize = 256 << 20;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format);
    // Planning, optimising and evaluating a statement recurse once per level of nesting; the
    // parser refuses statements deeper than `MAX_EXPRESSION_DEPTH` (54001), and these stacks
    // are large enough for that depth (reserved address space; pages are used as touched).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shoal: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(a) => {
                crate::dev::run(a.workers, a.port, a.data_dir, a.password, a.metrics_listen).await
            }
            Command::Coordinator(a) => coordinator(a).await,
            Command::Worker(a) => worker(a).await,
            Command::Healthcheck(a) => healthcheck(a).await,
            Command::Backup(a) => backup(a),
            Command::Restore(a) => restore(a),
            Command::RecoverCatalog(a) => {
                let tls = a.tls.load()?;
                crate::recover::recover_catalog(crate::recover::RecoverOptions {
                    data_dir: a.data_dir,
                    workers: a.workers,
                    token: a.cluster_token,
                    tls,
                    ignore_unreachable: a.ignore_unreachable,
                })
                .await
            }
            Command::Bench(a) => match a.scenario.as_str() {
                "core" => Ok(shoal_bench::run(a.rows, a.workers, a.pg_bin, a.keep).await?),
                "rebalance" => {
                    Ok(
                        shoal_bench::run_rebalance(a.gb, a.max_bandwidth_mb, !a.no_writer, a.keep)
                            .await?,
                    )
                }
                "transactions" => {
                    Ok(shoal_bench::run_transactions(a.workers, a.pg_bin, a.secs, a.keep).await?)
                }
                "tpch" => {
                    Ok(
                        shoal_bench::run_tpch(a.sf, a.workers, a.pg_bin, a.pg_timeout_s, a.keep)
                            .await?,
                    )
                }
                "tenant" => Ok(shoal_bench::run_tenant(a.rows, a.workers, a.pg_bin, a.keep).await?),
                other => Err(ServerError::Startup(format!(
                    "unknown bench scenario \"{other}\"; use core, rebalance, transactions, tpch or tenant"
                ))),
            },
        }
    });
    // Tasks still running (a query that never yields) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long a graceful shutdown may take after Ctrl-C or SIGTERM before the process exits
/// anyway (every committed write is durable by then; an unfinished statement is as after a
/// crash: not committed).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Resolves on Ctrl-C or SIGTERM. The signals are awaited on a thread of their own, because
/// queries that keep every runtime thread busy would otherwise keep the shutdown from ever
/// being noticed; that thread also ends the process if the graceful shutdown has not within
/// [`SHUTDOWN_GRACE`].
pub async fn shutdown_signal() {
    let (signalled, on_signal) = tokio::sync::oneshot::channel();
    let watcher = std::thread::Builder::new()
        .name("shoal-signals".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(wait_for_signal()),
                Err(e) => {
                    eprintln!("shoal: cannot watch for signals: {e}");
                    return;
                }
            }
            let _ = signalled.send(());
            std::thread::sleep(SHUTDOWN_GRACE);
            eprintln!(
                "shoal: not stopped {} s after the shutdown signal; exiting",
                SHUTDOWN_GRACE.as_secs()
            );
            std::process::exit(1);
        });
    match watcher {
        Ok(_) => {
            if on_signal.await.is_err() {
                // The watcher could not start its runtime: no signal will come through it.
                wait_for_signal().await
            }
        }
        Err(_) => wait_for_signal().await,
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// An empty token would count as "a token is set" for the non-loopback check while a worker
/// then accepts `Bearer ` with nothing after it: refuse it at start-up.
fn cluster_token(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("the cluster token must not be empty".into());
    }
    Ok(value.to_string())
}

fn read_passwords(path: &Option<PathBuf>) -> Result<Option<Passwords>, ServerError> {
    match path {
        None => Ok(None),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ServerError::Startup(format!("cannot read {}: {e}", p.display())))?;
            Passwords::parse(&text)
                .map(Some)
                .map_err(|e| ServerError::Startup(format!("{}: {e}", p.display())))
        }
    }
}

/// `shoal backup`: an online copy of the catalog (`VACUUM INTO` reads one snapshot while the
/// coordinator goes on writing).
fn backup(a: BackupArgs) -> Result<(), ServerError> {
    let db = a.data_dir.join("catalog.db");
    let copy = shoal_catalog::backup_catalog(&db, &a.to)
        .map_err(|e| ServerError::Startup(format!("backup failed: {e}")))?;
    println!("catalog backed up to {}", copy.display());
    Ok(())
}

/// `shoal restore`: puts a backup in place of a stopped coordinator's catalog.
fn restore(a: RestoreArgs) -> Result<(), ServerError> {
    let _lock = crate::coordinator::lock_data_dir(&a.data_dir)
        .map_err(|e| ServerError::Startup(format!("{e}; stop the coordinator before restoring")))?;
    let replaced = shoal_catalog::restore_catalog(&a.from, &a.data_dir.join("catalog.db"))
        .map_err(|e| ServerError::Startup(format!("restore failed: {e}")))?;
    println!("catalog restored from {}", a.from.display());
    if let Some(old) = replaced {
        println!("the catalog it replaced is kept as {}", old.display());
    }
    Ok(())
}

async fn coordinator(a: CoordinatorArgs) -> Result<(), ServerError> {
    let opts = CoordinatorOptions {
        listen: a.listen,
        data_dir: a.data_dir,
        workers: a.workers,
        cluster_token: a.security.cluster_token,
        passwords: read_passwords(&a.security.password_file)?,
        insecure: a.security.insecure,
        tls: a.security.tls_cert.zip(a.security.tls_key),
        tls_ca: a.security.tls_ca,
        require_tls: a.require_tls,
        metrics_listen: a.metrics_listen,
        memory_limit: memory_limit(a.memory_limit_mb),
        worker_timeout: Duration::from_millis(a.worker_timeout_ms),
    };
    run_coordinator(opts, None, shutdown_signal()).await
}

/// `--memory-limit-mb`, or half the machine's memory.
fn memory_limit(mb: Option<u64>) -> MemoryLimit {
    match mb {
        Some(mb) => MemoryLimit::Bytes(
            usize::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
        ),
        None => MemoryLimit::HalfOfMemory,
    }
}

async fn worker(a: WorkerArgs) -> Result<(), ServerError> {
    if a.security.cluster_token.is_none() && !a.listen.ip().is_loopback() && !a.security.insecure {
        return Err(ServerError::Startup(format!(
            "refusing to serve shards on {} without --cluster-token; pass --insecure to allow it",
            a.listen
        )));
    }
    // A worker's TLS is mutual: without the CA it could neither check who calls it nor the
    // workers it pulls from.
    let tls = cluster_tls(a.security.tls_ca, a.security.tls_cert, a.security.tls_key)?;
    if a.security.password_file.is_some() {
        return Err(ServerError::Startup(
            "--password-file is for the coordinator's clients; a worker takes only --cluster-token"
                .into(),
        ));
    }
    tracing::info!(listen = %a.listen, advertise = ?a.advertise, "worker starting");
    serve_worker(
        WorkerConfig {
            listen: a.listen,
            data_dir: a.data_dir,
            cluster_token: a.security.cluster_token,
            failpoints: WorkerConfig::failpoints_from_env(),
            memory_limit: Some(memory_limit(a.memory_limit_mb).bytes()?),
            tls,
            task_session: crate::query::distributed::worker_session_hook(),
        },
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// Ready means: a worker answers its health call, or a coordinator answers the Postgres
/// SSLRequest handshake.
async fn healthcheck(a: HealthcheckArgs) -> Result<(), ServerError> {
    let tls = a.tls.load()?;
    if let Ok(c) = WorkerClient::connect(&a.target, a.cluster_token.clone(), tls.as_ref()) {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), c.health()).await {
            return Ok(());
        }
    }
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(&a.target).await?;
        // SSLRequest: length 8, code 80877103
        s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        Ok::<u8, std::io::Error>(b[0])
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(b'N')) | Ok(Ok(b'S')) => Ok(()),
        Ok(Ok(other)) => Err(ServerError::Startup(format!(
            "{} answered {other:#x}: not a Shoal node",
            a.target
        ))),
        Ok(Err(e)) => Err(ServerError::Startup(format!(
            "{} is not ready: {e}",
            a.target
        ))),
        Err(_) => Err(ServerError::Startup(format!(
            "{} did not answer within 3 s",
            a.target
        ))),
    }
}
