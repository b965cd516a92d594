//! The worker's Arrow Flight service: DoPut writes a shard file, DoGet scans shard files or
//! sends one raw file to another worker, DoAction runs `handshake`, `health`, `delete_files`,
//! `drop_shards`, `list_files` and the move actions `pull_files`, `adopt_staged`,
//! `discard_staging`, `list_staging`. Every call passes the cluster-token interceptor first.
//!
//! The same port also serves the raw file channel of moves (see `raw.rs`): the listener
//! hands HTTP/2 connections to tonic and serves connections that start with the raw magic
//! itself, checking the same cluster token.

use std::future::{ready, Future};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use bytes::Bytes;
use datafusion::execution::TaskContext;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::distributed::{add_task_service, ClusterChannels, LeafContext, WorkerSessionHook};
use crate::error::{Result, ShardStoreError};
use crate::failpoints::{self, FailpointSet};
use crate::files::{blocking, FileStore, PutMsg};
use crate::integrity::{DamagedFile, FileToVerify};
use crate::journal::{frame, unframe, AppendHeader, BaseHeader, JournalStore, ReadHeader};
use crate::protocol::{
    from_json, is_commit_marker, json_bytes, AdoptStagedBody, DeleteFilesBody, DiscardStagingBody,
    DropShardsBody, FileMeta, FileTicket, HandshakeBody, PullFilesRequest, PullProgressBody,
    PullProgressReport, PutCommand, ScanRequest, WorkerInfo, ACTION_ADOPT_STAGED,
    ACTION_DELETE_FILES, ACTION_DISCARD_STAGING, ACTION_DROP_SHARDS, ACTION_HANDSHAKE,
    ACTION_HEALTH, ACTION_JOURNAL_APPEND, ACTION_JOURNAL_BASE, ACTION_JOURNAL_READ,
    ACTION_JOURNAL_STATUS, ACTION_LIST_FILES, ACTION_LIST_STAGING, ACTION_PULL_FILES,
    ACTION_PULL_PROGRESS, ACTION_VERIFY_FILES,
};
use crate::raw::{split_incoming, PortRouting, RawFileServer};
use crate::scan::execute_scan;
use crate::tls::ClusterTls;
use crate::transfer::{
    pull_files, serve_file, PullProgress, SourceClients, TaskLocks, FAILPOINT_DISK_FREE_BYTES,
};

/// Largest gRPC message accepted or sent (a Flight batch is split near 2 MiB, but one huge
/// row can make a bigger message).
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Largest HTTP/2 DATA frame a worker or client accepts (the default is 16 KiB). Bulk
/// streams (file transfers, puts, scans) then arrive in far fewer frames and socket reads,
/// which matters for the CPU time of a move.
pub(crate) const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// Largest piece of a `journal_read` answer.
const JOURNAL_PIECE_BYTES: usize = 8 << 20;

/// Batches queued between the network and the Parquet writer thread of one put.
const PUT_QUEUE: usize = 4;

/// How a worker is started.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Address to listen on for Flight gRPC.
    pub listen: SocketAddr,
    /// The worker's data directory (`shards/`, `staging/`, `cluster_id`).
    pub data_dir: PathBuf,
    /// When set, every call must carry `authorization: Bearer <token>`. The worker also
    /// presents it to the source worker when it pulls the files of a move.
    pub cluster_token: Option<String>,
    /// Failpoints to enable in this worker, for crash and corruption tests (see
    /// [`crate::failpoints`]); empty in production. The CLI fills it with
    /// [`WorkerConfig::failpoints_from_env`]; tests running several workers in one process
    /// set it per worker.
    pub failpoints: Vec<String>,
    /// Bytes the operators of the worker's partial aggregates may hold together (hash
    /// tables): at the limit a partial aggregate emits its groups early, anything else fails
    /// with ResourcesExhausted (53200 at the client). `None`: no limit.
    pub memory_limit: Option<usize>,
    /// Node-to-node TLS: with it, the port accepts only TLS connections from peers whose
    /// certificate the cluster CA signed, and this worker presents its certificate when it
    /// pulls from another worker (see [`crate::tls`]).
    pub tls: Option<ClusterTls>,
    /// The functions the tasks of distributed queries may call (the server's).
    pub task_session: WorkerSessionHook,
}

impl WorkerConfig {
    /// The failpoints listed in the `SHOAL_FAILPOINTS` environment variable
    /// (comma-separated), for [`WorkerConfig::failpoints`].
    pub fn failpoints_from_env() -> Vec<String> {
        failpoints::from_env()
    }
}

/// Binds `cfg.listen` and serves the worker until `shutdown` resolves.
/// See [`serve_worker_with_listener`].
pub async fn serve_worker(
    cfg: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ShardStoreError::Bind {
            addr: cfg.listen,
            source,
        })?;
    serve_worker_with_listener(cfg, listener, shutdown).await
}

/// Serves the worker on an already-bound listener (`cfg.listen` is ignored) until
/// `shutdown` resolves. Before serving, creates `data_dir/shards` and `data_dir/staging` and
/// removes the files an earlier crash left incomplete in staging (`*.tmp` of puts, `*.part`
/// of moves; completed staged files of moves are kept).
pub async fn serve_worker_with_listener(
    cfg: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve(cfg, listener, shutdown, true).await
}

/// [`serve_worker_with_listener`]; without `raw_channel`, the port serves Flight only, as
/// workers did before the raw file channel (to test the fallback of newer targets).
pub(crate) async fn serve(
    cfg: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    raw_channel: bool,
) -> Result<()> {
    let data_dir = cfg.data_dir.clone();
    let store = blocking(move || FileStore::open(&data_dir)).await?;
    let auth = TokenCheck::new(cfg.cluster_token.as_deref())?;
    if !cfg.failpoints.is_empty() {
        warn!(failpoints = ?cfg.failpoints, "failpoints enabled: this worker misbehaves on purpose");
    }
    let store = Arc::new(store);
    let raw = Arc::new(RawFileServer::new(Arc::clone(&store), auth.clone()));
    let service = WorkerService::new(
        store,
        cfg.cluster_token.clone(),
        Arc::new(FailpointSet::new(cfg.failpoints.iter().cloned())),
        cfg.memory_limit,
        cfg.tls.clone(),
    )?;
    let leaf = LeafContext::new(
        Arc::clone(&service.store),
        service.ctx.clone(),
        Arc::clone(&service.sources),
    );
    let runtime = service.ctx.runtime_env();
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let local = listener.local_addr().ok();
    info!(
        addr = ?local,
        data_dir = %cfg.data_dir.display(),
        token = cfg.cluster_token.is_some(),
        tls = cfg.tls.is_some(),
        "worker serving"
    );
    let router = Server::builder()
        .max_frame_size(MAX_FRAME_BYTES)
        .add_service(InterceptedService::new(flight, auth.clone()));
    let router = add_task_service(
        router,
        auth,
        leaf,
        ClusterChannels::new(cfg.cluster_token.as_deref(), cfg.tls.clone())?,
        cfg.task_session.clone(),
        runtime,
        MAX_MESSAGE_BYTES,
    );
    // One port for all: raw file requests are served by `raw`, HTTP/2 goes to tonic (with
    // TCP_NODELAY, as tonic's own listener sets it); with TLS, only after the handshake.
    let routing = PortRouting {
        raw: raw_channel.then_some(raw),
        tls: cfg.tls.as_ref().map(ClusterTls::acceptor),
    };
    let served = router
        .serve_with_incoming_shutdown(split_incoming(listener, routing), shutdown)
        .await;
    served.map_err(|e| ShardStoreError::internal(format!("worker server failed: {e}")))?;
    info!(addr = ?local, "worker stopped");
    Ok(())
}

/// Refuses calls without `authorization: Bearer <token>` when a token is configured (Flight
/// calls through the interceptor, raw file requests through [`TokenCheck::accepts`]).
#[derive(Clone)]
pub(crate) struct TokenCheck {
    expected: Option<Arc<[u8]>>,
}

impl TokenCheck {
    pub(crate) fn new(token: Option<&str>) -> Result<Self> {
        let expected = match token {
            Some(t) => {
                // Also proves the token can travel in a header.
                let value: MetadataValue<_> =
                    format!("Bearer {t}")
                        .parse()
                        .map_err(|_| ShardStoreError::Config {
                            message: "the cluster token must be printable ASCII".into(),
                        })?;
                Some(Arc::from(value.as_bytes()))
            }
            None => None,
        };
        Ok(TokenCheck { expected })
    }

    /// Is `given` (the value of an `authorization` header, if any) the expected
    /// `Bearer <token>`? Always true without a configured token. Compared in constant time.
    pub(crate) fn accepts(&self, given: Option<&[u8]>) -> bool {
        match (&self.expected, given) {
            (None, _) => true,
            (Some(expected), Some(given)) => constant_time_eq(given, expected),
            (Some(_), None) => false,
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if self.expected.is_none() {
            return Ok(request);
        }
        match request.metadata().get("authorization") {
            given if self.accepts(given.map(|v| v.as_bytes())) => Ok(request),
            given => {
                warn!(
                    peer = ?request.remote_addr(),
                    token_given = given.is_some(),
                    "refused a call: cluster token missing or wrong"
                );
                Err(Status::unauthenticated("cluster token missing or wrong"))
            }
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct WorkerService {
    store: Arc<FileStore>,
    ctx: SessionContext,
    /// Function registry used to decode expressions in tickets.
    functions: Arc<TaskContext>,
    /// Clients of the other workers (carrying this worker's cluster token): the sources of
    /// moves, the placements a distributed task reads remotely.
    sources: Arc<SourceClients>,
    failpoints: Arc<FailpointSet>,
    /// One call at a time per move task.
    task_locks: TaskLocks,
    /// Bytes received by the running `pull_files` calls.
    pull_progress: Arc<PullProgress>,
    /// This worker's copy of the catalog journal.
    journal: Arc<JournalStore>,
}

impl WorkerService {
    fn new(
        store: Arc<FileStore>,
        cluster_token: Option<String>,
        failpoints: Arc<FailpointSet>,
        memory_limit: Option<usize>,
        tls: Option<ClusterTls>,
    ) -> Result<Self> {
        // Strings and bytes are read as views (DataFusion's default, see `scan::read_schema`):
        // cheaper to decode, filter and group than contiguous Utf8; results are cast to the
        // wire types only at the end, and aggregates send few rows.
        let config = SessionConfig::new();
        let journal = Arc::new(JournalStore::new(store.root()));
        let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
        if let Some(bytes) = memory_limit {
            runtime = runtime.with_memory_limit(bytes, 1.0);
        }
        let runtime = runtime.build_arc().map_err(ShardStoreError::DataFusion)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let functions = ctx.task_ctx();
        Ok(WorkerService {
            store,
            ctx,
            functions,
            sources: Arc::new(SourceClients::new(cluster_token, tls)),
            failpoints,
            task_locks: TaskLocks::default(),
            pull_progress: Arc::default(),
            journal,
        })
    }

    async fn worker_info(&self) -> Result<WorkerInfo> {
        let store = Arc::clone(&self.store);
        let token_required = self.sources.has_token();
        let fake_free: Option<u64> = self
            .failpoints
            .value(FAILPOINT_DISK_FREE_BYTES)
            .and_then(|v| v.parse().ok());
        blocking(move || {
            Ok(WorkerInfo {
                token_required,
                cluster_id: store.cluster_id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                disk_free_bytes: match fake_free {
                    Some(n) => n,
                    None => store.disk_free_bytes()?,
                },
                data_bytes: store.data_bytes()?,
            })
        })
        .await
    }

    /// Streams one put into a new shard file; commits only after the client's commit marker.
    async fn put(
        &self,
        table_id: i64,
        shard_id: i64,
        cluster_by: Option<String>,
        first: FlightData,
        rest: Streaming<FlightData>,
    ) -> Result<FileMeta> {
        let (tx, rx) = mpsc::channel(PUT_QUEUE);
        let store = Arc::clone(&self.store);
        let writer = tokio::task::spawn_blocking(move || {
            store.write_shard_file(table_id, shard_id, cluster_by.as_deref(), rx)
        });

        let committed = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&committed);
        let raw = futures::stream::once(ready(Ok(first)))
            .chain(rest)
            .map_err(FlightError::from)
            .try_filter(move |data| {
                let marker = is_commit_marker(data);
                if marker {
                    seen.store(true, Ordering::SeqCst);
                }
                ready(!marker)
            });
        let mut decoder = FlightDataDecoder::new(raw);
        let mut failure = None;
        while let Some(item) = decoder.next().await {
            match item {
                Ok(data) => {
                    if let DecodedPayload::RecordBatch(batch) = data.payload {
                        if tx.send(PutMsg::Batch(batch)).await.is_err() {
                            // The writer stopped; its error is reported below.
                            break;
                        }
                    }
                }
                Err(e) => {
                    failure = Some(ShardStoreError::protocol(format!("put stream failed: {e}")));
                    break;
                }
            }
        }
        if failure.is_none() && committed.load(Ordering::SeqCst) {
            // A send error means the writer already failed; it reports why.
            let _ = tx.send(PutMsg::Commit).await;
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| ShardStoreError::internal(format!("put writer task failed: {e}")))?;
        match failure {
            Some(e) => Err(e),
            None => written,
        }
    }

    /// The worker's whole catalog journal as `journal_read` sends it: one framed body (header,
    /// base, entries) cut into pieces of at most [`JOURNAL_PIECE_BYTES`]; none without a
    /// journal.
    async fn journal_read(&self) -> Result<Vec<Bytes>> {
        let journal = Arc::clone(&self.journal);
        let copy = blocking(move || journal.read()).await?;
        let Some(copy) = copy else {
            return Ok(Vec::new());
        };
        let header = ReadHeader {
            status: copy.status,
            base_bytes: copy.base.len() as u64,
            lengths: copy.entries.iter().map(|e| e.len() as u64).collect(),
        };
        let mut parts: Vec<&[u8]> = vec![&copy.base];
        parts.extend(copy.entries.iter().map(Vec::as_slice));
        let body = Bytes::from(frame(&header, &parts)?);
        Ok((0..body.len())
            .step_by(JOURNAL_PIECE_BYTES)
            .map(|at| body.slice(at..(at + JOURNAL_PIECE_BYTES).min(body.len())))
            .collect())
    }

    async fn action(&self, action: Action) -> Result<Option<Bytes>> {
        match action.r#type.as_str() {
            ACTION_HANDSHAKE => {
                let body: HandshakeBody = from_json("handshake body", &action.body)?;
                let store = Arc::clone(&self.store);
                blocking(move || store.bind_cluster(&body.cluster_id)).await?;
                Ok(Some(json_bytes(&self.worker_info().await?)?))
            }
            ACTION_HEALTH => Ok(Some(json_bytes(&self.worker_info().await?)?)),
            ACTION_DELETE_FILES => {
                let body: DeleteFilesBody = from_json("delete_files body", &action.body)?;
                let store = Arc::clone(&self.store);
                blocking(move || store.delete_files(body.table_id, body.shard_id, &body.names))
                    .await?;
                Ok(None)
            }
            ACTION_DROP_SHARDS => {
                let body: DropShardsBody = from_json("drop_shards body", &action.body)?;
                let store = Arc::clone(&self.store);
                blocking(move || store.drop_shards(body.table_id, &body.shard_ids)).await?;
                Ok(None)
            }
            ACTION_LIST_FILES => {
                let store = Arc::clone(&self.store);
                let files = blocking(move || store.list_files()).await?;
                Ok(Some(json_bytes(&files)?))
            }
            ACTION_VERIFY_FILES => {
                let files: Vec<FileToVerify> = from_json("verify_files body", &action.body)?;
                let store = Arc::clone(&self.store);
                let damaged = blocking(move || verify_files(&store, files)).await?;
                Ok(Some(json_bytes(&damaged)?))
            }
            ACTION_PULL_FILES => {
                let body: PullFilesRequest = from_json("pull_files body", &action.body)?;
                let guard = self.task_locks.lock(body.task_id).await;
                let report = pull_files(
                    &self.store,
                    &self.sources,
                    &self.failpoints,
                    &self.pull_progress,
                    guard,
                    body,
                )
                .await?;
                Ok(Some(json_bytes(&report)?))
            }
            ACTION_PULL_PROGRESS => {
                let body: PullProgressBody = from_json("pull_progress body", &action.body)?;
                let progress = PullProgressReport {
                    bytes_received: self.pull_progress.received(body.task_id),
                };
                Ok(Some(json_bytes(&progress)?))
            }
            ACTION_ADOPT_STAGED => {
                let body: AdoptStagedBody = from_json("adopt_staged body", &action.body)?;
                let guard = self.task_locks.lock(body.task_id).await;
                let store = Arc::clone(&self.store);
                blocking(move || {
                    let _guard = guard;
                    store.adopt_staged(body.task_id, body.table_id, body.shard_id, &body.names)
                })
                .await?;
                Ok(None)
            }
            ACTION_DISCARD_STAGING => {
                let body: DiscardStagingBody = from_json("discard_staging body", &action.body)?;
                let guard = self.task_locks.lock(body.task_id).await;
                let store = Arc::clone(&self.store);
                blocking(move || {
                    let _guard = guard;
                    store.discard_staging(body.task_id)
                })
                .await?;
                Ok(None)
            }
            ACTION_LIST_STAGING => {
                let store = Arc::clone(&self.store);
                let tasks = blocking(move || store.list_staging()).await?;
                Ok(Some(json_bytes(&tasks)?))
            }
            ACTION_JOURNAL_BASE => {
                let journal = Arc::clone(&self.journal);
                let store = Arc::clone(&self.store);
                let status = blocking(move || {
                    let (header, at) = unframe::<BaseHeader>("journal_base body", &action.body)?;
                    // Only the catalog of the cluster this worker belongs to.
                    store.bind_cluster(&header.cluster_id)?;
                    journal.put_base(header, &action.body[at..])
                })
                .await?;
                Ok(Some(json_bytes(&status)?))
            }
            ACTION_JOURNAL_APPEND => {
                let journal = Arc::clone(&self.journal);
                let status = blocking(move || {
                    let (header, at) =
                        unframe::<AppendHeader>("journal_append body", &action.body)?;
                    journal.append(header, &action.body[at..])
                })
                .await?;
                Ok(Some(json_bytes(&status)?))
            }
            ACTION_JOURNAL_STATUS => {
                let journal = Arc::clone(&self.journal);
                let status = blocking(move || journal.status()).await?;
                Ok(Some(json_bytes(&status)?))
            }
            other => Err(ShardStoreError::protocol(format!(
                "unknown action {other:?}"
            ))),
        }
    }
}

/// Logs a failed call and turns it into its status.
pub(crate) fn failed(call: &str, e: ShardStoreError) -> Status {
    match &e {
        ShardStoreError::FileMissing { .. } | ShardStoreError::WrongCluster { .. } => {
            info!(call, error = %e, "call refused")
        }
        _ => warn!(call, error = %e, "call failed"),
    }
    e.to_status()
}

type RpcResult<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl FlightService for WorkerService {
    type HandshakeStream = BoxStream<'static, std::result::Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, std::result::Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, std::result::Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, std::result::Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, std::result::Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, std::result::Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, std::result::Result<ActionType, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> RpcResult<Self::HandshakeStream> {
        Err(Status::unimplemented(
            "use the \"handshake\" action; authentication is a bearer cluster token",
        ))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> RpcResult<Self::ListFlightsStream> {
        Err(Status::unimplemented("list_flights is not supported"))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> RpcResult<FlightInfo> {
        Err(Status::unimplemented("get_flight_info is not supported"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> RpcResult<PollInfo> {
        Err(Status::unimplemented("poll_flight_info is not supported"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> RpcResult<SchemaResult> {
        Err(Status::unimplemented("get_schema is not supported"))
    }

    async fn do_get(&self, request: Request<Ticket>) -> RpcResult<Self::DoGetStream> {
        if let Some(ticket) = FileTicket::from_ticket(request.get_ref()) {
            let ticket = ticket.map_err(|e| failed("do_get", e))?;
            let chunks = serve_file(&self.store, ticket)
                .await
                .map_err(|e| failed("do_get", e))?;
            return Ok(Response::new(chunks));
        }
        let req = ScanRequest::from_ticket_with_ctx(request.get_ref(), &self.functions)
            .map_err(|e| failed("do_get", e))?;
        let table_id = req.table_id;
        let shards: Vec<i64> = req.shards.iter().map(|s| s.shard_id).collect();
        let (schema, rows) = execute_scan(&self.ctx, &self.store, req)
            .await
            .map_err(|e| failed("do_get", e))?;
        let rows = rows.map_err(move |e| {
            warn!(table_id, ?shards, error = %e, "scan failed while streaming");
            FlightError::Tonic(Box::new(e.to_status()))
        });
        // The schema goes first even when there are no rows, so the client always learns it.
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(rows)
            .map_err(Status::from);
        Ok(Response::new(data.boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> RpcResult<Self::DoPutStream> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| failed("do_put", ShardStoreError::protocol("empty put stream")))?;
        let command = first.flight_descriptor.as_ref().ok_or_else(|| {
            failed(
                "do_put",
                ShardStoreError::protocol("the first put message carries no descriptor"),
            )
        })?;
        let PutCommand {
            table_id,
            shard_id,
            cluster_by,
        } = from_json("put command", &command.cmd).map_err(|e| failed("do_put", e))?;
        let meta = self
            .put(table_id, shard_id, cluster_by, first, stream)
            .await
            .map_err(|e| failed("do_put", e))?;
        let result = PutResult {
            app_metadata: json_bytes(&meta).map_err(|e| failed("do_put", e))?,
        };
        Ok(Response::new(
            futures::stream::once(ready(Ok(result))).boxed(),
        ))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> RpcResult<Self::DoExchangeStream> {
        Err(Status::unimplemented("do_exchange is not supported"))
    }

    async fn do_action(&self, request: Request<Action>) -> RpcResult<Self::DoActionStream> {
        let action = request.into_inner();
        let name = action.r#type.clone();
        if name == ACTION_JOURNAL_READ {
            // A whole journal may exceed one message: it goes in pieces.
            let pieces = self.journal_read().await.map_err(|e| failed(&name, e))?;
            let results = pieces
                .into_iter()
                .map(|body| Ok(arrow_flight::Result { body }));
            return Ok(Response::new(futures::stream::iter(results).boxed()));
        }
        let body = self.action(action).await.map_err(|e| failed(&name, e))?;
        let results = body.map(|body| Ok(arrow_flight::Result { body }));
        Ok(Response::new(futures::stream::iter(results).boxed()))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> RpcResult<Self::ListActionsStream> {
        let actions = [
            (
                ACTION_HANDSHAKE,
                "bind the worker to a cluster id; returns WorkerInfo (JSON)",
            ),
            (ACTION_HEALTH, "returns WorkerInfo (JSON)"),
            (
                ACTION_VERIFY_FILES,
                "re-read files and compare size and CRC-32C with the catalog's record",
            ),
            (ACTION_DELETE_FILES, "delete files of a shard (idempotent)"),
            (
                ACTION_DROP_SHARDS,
                "delete whole shard directories (idempotent)",
            ),
            (
                ACTION_LIST_FILES,
                "list every committed shard file with size and age; returns [StoredFile] (JSON)",
            ),
            (
                ACTION_PULL_FILES,
                "move target: fetch files of a shard from the source worker into staging, \
                 verified against size and CRC-32C (idempotent); returns PullFilesReport (JSON)",
            ),
            (
                ACTION_PULL_PROGRESS,
                "move target: bytes received so far by the running pull_files call of a task; \
                 returns PullProgressReport (JSON)",
            ),
            (
                ACTION_ADOPT_STAGED,
                "move target: rename staged files into the live shard directory (idempotent)",
            ),
            (
                ACTION_DISCARD_STAGING,
                "delete the staging directory of a move task (idempotent)",
            ),
            (
                ACTION_LIST_STAGING,
                "list the move tasks that have a staging directory; returns [task_id] (JSON)",
            ),
            (
                ACTION_JOURNAL_BASE,
                "catalog journal: replace this worker's copy with a new base (framed header + \
                 catalog image); returns JournalStatus (JSON)",
            ),
            (
                ACTION_JOURNAL_APPEND,
                "catalog journal: append entries that follow the last one, fsynced; returns \
                 JournalStatus (JSON)",
            ),
            (
                ACTION_JOURNAL_STATUS,
                "catalog journal: epoch and entries held; returns JournalStatus or null (JSON)",
            ),
            (
                ACTION_JOURNAL_READ,
                "catalog journal: the base and every entry after it (framed), for \
                 shoal recover-catalog",
            ),
        ]
        .map(|(name, description)| {
            Ok(ActionType {
                r#type: name.to_string(),
                description: description.to_string(),
            })
        });
        Ok(Response::new(futures::stream::iter(actions).boxed()))
    }
}

#[cfg(test)]
mod tests;

/// Re-reads each file and compares it with its record; the files that differ. A file that is
/// not there is skipped: the scrubber's catalog snapshot may predate a move or a drop, and a
/// scan reports a missing file on its own.
fn verify_files(store: &FileStore, files: Vec<FileToVerify>) -> Result<Vec<DamagedFile>> {
    let mut damaged = Vec::new();
    for f in files {
        let path = store.file_path(f.table_id, f.shard_id, &f.name)?;
        let meta = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => meta,
            _ => continue,
        };
        if let Some(damage) = store.verified.check(&path, &meta, f.check, true)? {
            tracing::warn!(table_id = f.table_id, shard_id = f.shard_id, file = %f.name,
                %damage, "scrubber found a damaged shard file");
            damaged.push(DamagedFile {
                table_id: f.table_id,
                shard_id: f.shard_id,
                name: f.name,
                damage,
            });
        }
    }
    Ok(damaged)
}
