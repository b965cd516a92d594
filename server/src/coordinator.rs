//! The coordinator process: opens the catalog, builds the DataFusion session over it, serves
//! the Postgres wire protocol, and runs the background upkeep (heartbeats, cleanup,
//! compaction).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::execution::context::SessionConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::{DfSessionService, QueryHook};
use shoal_catalog::Catalog;
use shoal_shard_store::{ClusterTls, ClusterTlsFiles};
use shoal_sql_functions::{functions, Cluster, ClusterConfig};
use tokio::net::TcpListener;
use tracing::{info, warn, Instrument};

use crate::frontend::hook::ShoalHook;
use crate::frontend::pg_catalog_context::PgCatalogContext;
use crate::frontend::wire::{Passwords, ShoalHandlers, TlsPolicy, DATABASE};
use crate::query::provider::{LiveTable, ShoalSchemaProvider};
use crate::query::views;
use crate::ServerError;

#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub workers: Vec<String>,
    pub cluster_token: Option<String>,
    pub passwords: Option<Passwords>,
    pub insecure: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The cluster CA: workers are called over TLS and verified with it, and the coordinator
    /// presents `tls`'s certificate to them (which it must have signed).
    pub tls_ca: Option<PathBuf>,
    /// Refuse plaintext clients; `None`: only when `tls` is set and `listen` is not loopback.
    pub require_tls: Option<bool>,
    /// Where to serve `/metrics` (Prometheus text), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Bytes the coordinator's running queries may hold at once in their operators (hash
    /// tables, sort buffers); a query that needs more and cannot spill fails with 53200.
    pub memory_limit: MemoryLimit,
    /// How long a worker may go without answering a liveness ping before queries on it fail.
    pub worker_timeout: Duration,
}

/// The default of `--worker-timeout-ms`.
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(5);

/// How much memory the coordinator's queries may take together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLimit {
    /// At most this many bytes.
    Bytes(usize),
    /// Half of the machine's memory (`MemTotal` in `/proc/meminfo`).
    HalfOfMemory,
}

impl MemoryLimit {
    pub fn bytes(self) -> Result<usize, ServerError> {
        match self {
            MemoryLimit::Bytes(n) => Ok(n),
            MemoryLimit::HalfOfMemory => {
                let meminfo = std::fs::read_to_string("/proc/meminfo").map_err(|e| {
                    ServerError::Startup(format!(
                        "cannot read /proc/meminfo for the default memory limit ({e}); \
                         give --memory-limit-mb"
                    ))
                })?;
                let kib = meminfo
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
                    .ok_or_else(|| {
                        ServerError::Startup(
                            "no MemTotal in /proc/meminfo; give --memory-limit-mb".into(),
                        )
                    })?;
                Ok(kib.saturating_mul(1024) / 2)
            }
        }
    }
}

struct ActiveWorkerNodes(Arc<Cluster>);

impl std::fmt::Debug for ActiveWorkerNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("citus_get_active_worker_nodes")
    }
}

impl TableFunctionImpl for ActiveWorkerNodes {
    fn call_with_args(&self, _args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let c = Arc::clone(&self.0);
        Ok(LiveTable::new(
            functions::active_worker_nodes_schema(),
            Arc::new(move || functions::active_worker_nodes(&c)),
        ))
    }
}

/// The session every connection shares: Shoal tables in `public`, views in `shoal`, and
/// PostgreSQL's `pg_catalog` for psql and drivers.
pub fn session_context(
    cluster: &Arc<Cluster>,
    memory_limit: MemoryLimit,
) -> Result<SessionContext, ServerError> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(DATABASE, "public")
        // Shoal's own information_schema (PostgreSQL's columns and type names) replaces
        // DataFusion's.
        .with_information_schema(false);
    // Sessions run in UTC (the only TimeZone Shoal takes): now() and timestamptz values
    // carry it, so they reach clients as timestamptz, as in PostgreSQL.
    config.options_mut().execution.time_zone = Some("UTC".into());
    // Statements Shoal rewrites are parsed again from their text; PostgreSQL's dialect keeps
    // its operators (`?`, `@>`, `#>`) parseable there.
    config.options_mut().sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;
    // A literal with a decimal point or exponent is PostgreSQL's `numeric` (`pg_typeof(1.5)`),
    // exact in arithmetic and sent to drivers as numeric; an integer literal is `integer`,
    // or `bigint` when it does not fit (the vendored datafusion-sql's `parse_sql_number`).
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // A view's (or derived table's) ORDER BY holds for a query that selects from it, as in
    // PostgreSQL; DataFusion drops it (without a LIMIT) unless told not to. Where the order
    // cannot matter (a join's build side, an aggregate) the physical optimizer still drops it.
    config
        .options_mut()
        .sql_parser
        .enable_subquery_sort_elimination = false;
    // One pool for every session's operators: sorts and aggregates spill to disk when it is
    // full, anything else fails with ResourcesExhausted (53200) instead of growing unbounded.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory_limit.bytes()?, 1.0)
        .build_arc()
        .map_err(|e| ServerError::Startup(format!("query runtime: {e}")))?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    {
        // Queries that can run in stages on the workers do (datafusion-distributed). First:
        // rebuilding a state re-registers its functions in no particular order, so a
        // built-in's alias could replace a Shoal function registered before (`length`).
        let channels = cluster
            .task_channels()
            .map_err(|e| ServerError::Startup(format!("task channels: {e}")))?
            .with_received_counter(Arc::new(crate::metrics::scan_received));
        let state = ctx.state_ref();
        let existing = state.read().clone();
        *state.write() = crate::query::distributed::install(existing, cluster, channels)
            .map_err(|e| ServerError::Startup(format!("distributed planner: {e}")))?;
    }
    let planner = Arc::new(std::sync::OnceLock::new());
    let catalog = ctx
        .catalog(DATABASE)
        .ok_or_else(|| ServerError::Startup(format!("catalog {DATABASE} missing")))?;
    catalog
        .register_schema(
            "public",
            Arc::new(ShoalSchemaProvider::new(
                Arc::clone(cluster),
                views::compat_views(cluster),
                Arc::clone(&planner),
            )),
        )
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    catalog
        .register_schema("shoal", views::shoal_schema(cluster))
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    catalog
        .register_schema(
            "information_schema",
            crate::frontend::information_schema::schema(cluster, DATABASE),
        )
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    crate::query::statement_scope::install();
    setup_pg_catalog(&ctx, DATABASE, PgCatalogContext::new(cluster))
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    // The owner's name is the session's user (upstream answered `postgres` for any oid).
    ctx.register_udf(crate::frontend::pg_catalog_context::pg_get_userbyid());
    {
        // uuid, json and jsonb: their type names, operators and functions.
        use datafusion::execution::session_state::SessionStateBuilder;
        let state = ctx.state_ref();
        let existing = state.read().clone();
        let mut planners = existing.expr_planners().to_vec();
        planners.push(Arc::new(crate::query::pg_json::JsonOperatorPlanner));
        *state.write() = SessionStateBuilder::new_from_existing(existing)
            .with_type_planner(Arc::new(crate::query::pg_json::PgTypePlanner))
            .with_expr_planners(planners)
            // last, after DataFusion's sanity check (see the rules' modules)
            .with_physical_optimizer_rule(Arc::new(crate::query::collect_join::CollectJoinRule))
            .with_physical_optimizer_rule(Arc::new(crate::query::colocated_join::ColocatedJoinRule))
            .build();
    }
    for udf in crate::query::pg_json::builder_udfs() {
        ctx.register_udf(udf);
    }
    for udf in crate::query::pg_json::udfs() {
        ctx.register_udf(udf);
    }
    ctx.add_optimizer_rule(Arc::new(crate::query::pushdown::ShardAggregatePushdownRule));
    ctx.add_optimizer_rule(Arc::new(crate::query::not_in::NotInRewriteRule));
    ctx.add_analyzer_rule(crate::query::pg_bytea::PgByteaInput::rule());
    ctx.add_analyzer_rule(crate::query::not_in::NotInAsNotExists::rule());
    ctx.add_analyzer_rule(crate::query::pg_to_char::PgToChar::rule());
    ctx.add_analyzer_rule(crate::query::pg_time_zone::PgTimeZone::rule());
    // Bound parameters of a local time, read as timestamptz, are in the session's zone.
    arrow_pg::datatypes::df::set_local_time_zone_source(|| {
        crate::frontend::session::current().and_then(|s| s.time_zone())
    });
    ctx.register_udf(crate::query::pg_time_zone::LocalToInstant::udf());
    ctx.register_udf(crate::query::pg_time_zone::LocalTime::udf());
    ctx.register_udf(crate::query::pg_time_zone::AtTimeZone::udf());
    ctx.add_analyzer_rule(crate::query::pg_text_out::PgTextOutput::rule());
    ctx.add_analyzer_rule(crate::query::pg_bpchar::PgBpchar::rule());
    ctx.add_analyzer_rule(crate::query::pg_arrays::PgArrayLiterals::rule());
    ctx.add_analyzer_rule(crate::query::pg_numeric::PgNumericDivision::rule());
    ctx.register_udf(crate::query::pg_bpchar::ToBpchar::udf());
    ctx.register_udf(crate::query::pg_bpchar::BpcharText::udf());
    ctx.register_udf(crate::query::pg_text_out::TextOut::udf());
    ctx.add_analyzer_rule(crate::query::pg_vectors::PgVectorSubscripts::rule());
    ctx.register_udf(crate::query::pg_vectors::VectorElement::udf());
    ctx.register_udf(crate::query::column_defaults::NextSerial::udf(Arc::clone(
        cluster,
    )));
    for udf in crate::query::column_defaults::sequence_udfs(Arc::clone(cluster)) {
        ctx.register_udf(udf);
    }
    ctx.register_udaf(crate::query::pg_aggregates::PgSum::udaf());
    ctx.register_udaf(crate::query::pg_aggregates::PgAvg::udaf());
    ctx.register_udf(crate::query::pg_aggregates::IntegerAvgFinal::udf());
    for udf in crate::query::pg_limits::BoundedFunction::udfs() {
        ctx.register_udf(udf);
    }
    crate::frontend::session_functions::register(&ctx);
    crate::frontend::session_functions::register_current_schemas(&ctx);
    crate::frontend::pg_functions::register(&ctx);
    ctx.register_udf(crate::query::pg_interval::IntervalMul::udf());
    ctx.register_udf(crate::query::pg_like::LikeEscape::udf());
    ctx.register_udtf(
        "citus_get_active_worker_nodes",
        Arc::new(ActiveWorkerNodes(Arc::clone(cluster))),
    );
    // Views plan with everything registered above.
    let _ = planner.set(ctx.state());
    Ok(ctx)
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use std::io::BufReader;
    use tokio_rustls::rustls;
    let bad = |m: String| ServerError::Startup(format!("TLS: {m}"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        std::fs::File::open(cert).map_err(|e| bad(format!("{}: {e}", cert.display())))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| bad(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(bad(format!("{} holds no certificate", cert.display())));
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        std::fs::File::open(key).map_err(|e| bad(format!("{}: {e}", key.display())))?,
    ))
    .map_err(|e| bad(e.to_string()))?
    .ok_or_else(|| bad(format!("{} holds no private key", key.display())))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How long a shutdown waits for connections to tell their clients and close (the process
/// exits after `cli::SHUTDOWN_GRACE` regardless).
const CONNECTIONS_CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Runs the coordinator until `shutdown` resolves.
/// Takes the coordinator data directory's lock (`coordinator.lock`, an advisory file lock
/// the OS releases when the process ends, however it ends).
pub fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, ServerError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ServerError::Startup(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("coordinator.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ServerError::Startup(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Startup(format!(
            "another coordinator is using {}",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(ServerError::Startup(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

pub async fn run_coordinator(
    opts: CoordinatorOptions,
    listener: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    if opts.passwords.is_none() && !opts.listen.ip().is_loopback() && !opts.insecure {
        return Err(ServerError::Startup(format!(
            "refusing to accept password-less logins on {}: pass --password-file, listen on a loopback address, or pass --insecure",
            opts.listen
        )));
    }
    let cluster_tls = match (&opts.tls_ca, &opts.tls) {
        (Some(ca), Some((cert, key))) => Some(
            ClusterTls::load(&ClusterTlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })
            .map_err(|e| ServerError::Startup(e.to_string()))?,
        ),
        (Some(_), None) => {
            return Err(ServerError::Startup(
                "--tls-ca needs --tls-cert and --tls-key: the coordinator presents that \
                 certificate to the workers"
                    .into(),
            ))
        }
        (None, _) => None,
    };
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let require_tls = opts
        .require_tls
        .unwrap_or(tls.is_some() && !opts.listen.ip().is_loopback());
    if require_tls && tls.is_none() {
        return Err(ServerError::Startup(
            "--require-tls needs --tls-cert and --tls-key".into(),
        ));
    }
    // The certificate SCRAM-SHA-256-PLUS binds logins to (channel binding).
    let tls_cert_pem = match &opts.tls {
        Some((cert, _)) => Some(
            std::fs::read(cert)
                .map_err(|e| ServerError::Startup(format!("TLS: {}: {e}", cert.display())))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| {
        ServerError::Startup(format!("cannot create {}: {e}", opts.data_dir.display()))
    })?;
    // Held until the coordinator stops: no second coordinator, and no restore, under it.
    let _data_dir_lock = lock_data_dir(&opts.data_dir)?;
    let catalog = Arc::new(
        Catalog::open(&opts.data_dir.join("catalog.db"))
            .map_err(|e| ServerError::Startup(format!("cannot open the catalog: {e}")))?,
    );
    // No transaction survives a restart: the tables they created never were.
    let rolled_back = catalog
        .drop_pending_tables(None)
        .map_err(|e| ServerError::Startup(format!("cannot read the catalog: {e}")))?;
    if rolled_back > 0 {
        tracing::info!(
            tables = rolled_back,
            "dropped tables created by transactions that did not commit"
        );
    }
    let cluster = Cluster::new(
        catalog,
        ClusterConfig {
            cluster_token: opts.cluster_token.clone(),
            worker_timeout: opts.worker_timeout,
            tls: cluster_tls,
        },
    );
    cluster
        .start_catalog_journal()
        .map_err(|e| ServerError::Startup(format!("cannot start the catalog journal: {e}")))?;
    let ctx = Arc::new(session_context(&cluster, opts.memory_limit)?);
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ShoalHook::new(Arc::clone(&cluster))),
        Arc::new(datafusion_postgres::hooks::set_show::SetShowHook),
        Arc::new(datafusion_postgres::hooks::transactions::TransactionStatementHook),
        Arc::new(datafusion_postgres::hooks::cursor::CursorStatementHook),
    ];
    let session = Arc::new(crate::frontend::session::SessionQueryHandler::new(
        Arc::new(DfSessionService::new_with_hooks(ctx, hooks)),
        Arc::clone(&cluster),
    ));
    let handlers = Arc::new(ShoalHandlers::new(
        session,
        opts.passwords.clone().map(Arc::new),
        TlsPolicy {
            required: require_tls,
            cert_pem: tls_cert_pem,
        },
    )?);

    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(opts.listen)
            .await
            .map_err(|e| ServerError::Startup(format!("cannot listen on {}: {e}", opts.listen)))?,
    };
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    info!(%addr, tls = tls.is_some(), require_tls, "coordinator listening");

    datafusion_postgres::pgwire::observe::set_error_observer(crate::metrics::error_sent);
    let upkeep = tokio::spawn(upkeep(Arc::clone(&cluster), opts.workers.clone()));
    let scheduler = tokio::spawn(shoal_sql_functions::run_scheduler(Arc::clone(&cluster)));
    let metrics = opts.metrics_listen.map(|addr| {
        let c = Arc::clone(&cluster);
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, c).await {
                warn!(error = %e, "metrics endpoint stopped");
            }
        })
    });
    // Every connection watches `shutdown_tx`: on shutdown its statement is dropped and its
    // client told 57P01, as PostgreSQL's fast shutdown does.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((socket, peer)) => {
                    while connections.try_join_next().is_some() {}
                    let h = Arc::clone(&handlers);
                    let tls = tls.clone();
                    let shutdown = Some(shutdown_rx.clone());
                    connections.spawn(
                        async move {
                            let _open = crate::metrics::ConnectionGauge::open();
                            if let Err(e) =
                                datafusion_postgres::pgwire::tokio::process_socket_until(
                                    socket, tls, h, shutdown,
                                )
                                .await
                            {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        .instrument(tracing::info_span!("connection", %peer)),
                    );
                }
                Err(e) => warn!(error = %e, "accept failed"),
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => info!("coordinator shutting down"),
    }
    let _ = shutdown_tx.send(true);
    let closing = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(CONNECTIONS_CLOSE_WITHIN, closing)
        .await
        .is_err()
    {
        warn!(
            open = connections.len(),
            "connections still open after the shutdown notice"
        );
    }
    upkeep.abort();
    scheduler.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    Ok(())
}

/// Heartbeats every 2 s, and beside them: adds the `--worker` nodes, cleans up, compacts,
/// scrubs and collects orphan files forever.
async fn upkeep(cluster: Arc<Cluster>, workers: Vec<String>) {
    // A task of its own, so that nothing synchronous in housekeeping delays it; it ends with
    // this one (dropped when the coordinator stops).
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _heartbeats = AbortOnDrop(tokio::spawn(heartbeats(Arc::clone(&cluster))));
    housekeeping(cluster, workers).await;
}

/// Liveness has its own loop: a cleanup round waiting on a dead worker, a compaction or a
/// scrub would otherwise hold back the news that a worker is back (it stayed `unreachable`
/// for ~25 s after it answered again).
async fn heartbeats(cluster: Arc<Cluster>) {
    let mut interval = tokio::time::interval(Duration::from_secs(2));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = cluster.heartbeat_once().await {
            warn!(error = %e, "heartbeat round failed");
        }
    }
}

/// Adds the `--worker` nodes (retrying until they answer; each only once in the catalog's
/// life, so a node removed later stays removed across restarts), then cleans up, compacts,
/// scrubs and collects orphan files forever.
async fn housekeeping(cluster: Arc<Cluster>, workers: Vec<String>) {
    let mut pending: Vec<(String, u16)> = workers
        .iter()
        .filter_map(|w| {
            let (h, p) = w.rsplit_once(':')?;
            Some((h.to_string(), p.parse().ok()?))
        })
        .collect();
    // How old a file no catalog row names must be before it is deleted as an orphan: far
    // longer than any statement runs, since a statement's files are young until it commits.
    const ORPHAN_GRACE_MS: u64 = 3_600_000;
    let mut tick: u64 = 0;
    loop {
        let mut still = Vec::new();
        for (h, p) in pending.drain(..) {
            let addr = format!("{h}:{p}");
            match cluster.catalog().worker_flag_registered(&addr) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "catalog read failed"),
            }
            match cluster.add_node(&h, p).await {
                Ok(id) => {
                    info!(node_id = id, "worker {h}:{p} registered");
                    if let Err(e) = cluster.catalog().mark_worker_flag_registered(&addr) {
                        warn!(error = %e, "catalog write failed");
                    }
                }
                Err(e) => {
                    if tick.is_multiple_of(10) {
                        warn!(error = %e, "worker {h}:{p} not registered yet; retrying");
                    }
                    still.push((h, p));
                }
            }
        }
        pending = still;
        if tick.is_multiple_of(3) {
            if let Err(e) = cluster.cleanup_once().await {
                warn!(error = %e, "cleanup round failed");
            }
        }
        if tick % 5 == 4 {
            match cluster.compact_once(8).await {
                Ok(n) if n > 0 => info!(placements = n, "compacted small files"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "compaction round failed"),
            }
        }
        match scrub_rate(&cluster) {
            Ok(rate) => {
                if let Err(e) = cluster.scrub_once(rate).await {
                    warn!(error = %e, "scrub round failed");
                }
            }
            Err(e) => warn!(error = %e, "scrub.rate_mb unreadable; scrub round skipped"),
        }
        // Every 10 s: a round reads the whole catalog while damage is known, even damage that
        // has no good replica to repair it from.
        if tick % 5 == 2 {
            if let Err(e) = cluster.repair_damaged_placements() {
                warn!(error = %e, "repair round failed");
            }
        }
        if tick % 30 == 29 {
            match cluster.collect_orphans(ORPHAN_GRACE_MS).await {
                Ok(n) if n > 0 => info!(files = n, "deleted orphan files"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "orphan collection round failed"),
            }
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The scrubber's rate in MB/s (0 = off), as stored by `set_cluster_setting`.
fn scrub_rate(cluster: &Cluster) -> Result<u64, String> {
    cluster
        .catalog()
        .cluster_settings()
        .map(|s| s.scrub_rate_mb)
        .map_err(|e| e.to_string())
}
