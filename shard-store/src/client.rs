//! [`WorkerClient`]: what the coordinator (and other workers) use to call a worker.

use std::fmt;
use std::future::ready;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightClient, FlightDescriptor};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tracing::debug;

use crate::error::{Result, ShardStoreError};
use crate::integrity::{DamagedFile, FileToVerify};
use crate::journal::{
    frame, unframe, AppendHeader, BaseHeader, JournalCopy, JournalStatus, ReadHeader,
};
use crate::protocol::{
    cast_batch_to, commit_marker, from_json, json_bytes, AdoptStagedBody, DeleteFilesBody,
    DiscardStagingBody, DropShardsBody, FileChunk, FileMeta, FileTicket, HandshakeBody,
    PullFilesReport, PullFilesRequest, PullProgressBody, PullProgressReport, PutCommand,
    ScanRequest, StoredFile, WorkerInfo, ACTION_ADOPT_STAGED, ACTION_DELETE_FILES,
    ACTION_DISCARD_STAGING, ACTION_DROP_SHARDS, ACTION_HANDSHAKE, ACTION_HEALTH, ACTION_LIST_FILES,
    ACTION_LIST_STAGING, ACTION_PULL_FILES, ACTION_PULL_PROGRESS, ACTION_VERIFY_FILES,
};
use crate::protocol::{
    ACTION_JOURNAL_APPEND, ACTION_JOURNAL_BASE, ACTION_JOURNAL_READ, ACTION_JOURNAL_STATUS,
};
use crate::service::{MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use crate::tls::{host_of, ClusterTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings find a dead worker in the middle of a long call.
pub(crate) const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
pub(crate) const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

type Inner = FlightServiceClient<InterceptedService<Channel, BearerToken>>;

/// A client of one worker. Cheap to clone (it wraps a tonic `Channel`), safe to share
/// between tasks; connects lazily and reconnects by itself.
#[derive(Clone)]
pub struct WorkerClient {
    addr: Arc<str>,
    inner: Inner,
}

impl fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
struct BearerToken {
    value: Option<MetadataValue<Ascii>>,
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The HTTP/2 endpoint of the worker at `addr` (`host:port`, or a URL): Shoal's timeouts,
/// keep-alive pings and frame size, and TLS when `tls` is given.
pub(crate) fn endpoint(
    addr: &str,
    tls: Option<&ClusterTls>,
    ping_interval: Duration,
    ping_timeout: Duration,
) -> Result<Endpoint> {
    let host_port = match addr.split_once("://") {
        Some((_, rest)) => rest.trim_end_matches('/'),
        None => addr,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let invalid = |e: &dyn fmt::Display| ShardStoreError::Config {
        message: format!("invalid worker address {addr:?}: {e}"),
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host_port}"))
        .map_err(|e| invalid(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(ping_interval)
        .keep_alive_timeout(ping_timeout)
        .keep_alive_while_idle(true)
        .http2_adaptive_window(true)
        .max_frame_size(MAX_FRAME_BYTES);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.flight_client(host_of(host_port)))
            .map_err(|e| invalid(&e))?;
    }
    Ok(endpoint)
}

/// The `authorization` header value that presents `token`.
pub(crate) fn bearer_value(token: Option<String>) -> Result<Option<MetadataValue<Ascii>>> {
    token
        .map(|t| format!("Bearer {t}").parse::<MetadataValue<Ascii>>())
        .transpose()
        .map_err(|_| ShardStoreError::Config {
            message: "the cluster token must be printable ASCII".into(),
        })
}

impl WorkerClient {
    /// Lazily-connecting client for the worker at `"host:port"`. Every request carries
    /// `authorization: Bearer <token>` when `token` is `Some`. Connect timeout 3 s.
    /// Must be called inside a tokio runtime.
    pub fn new(addr: &str, token: Option<String>) -> Result<Self> {
        Self::connect(addr, token, None)
    }

    /// [`WorkerClient::new`] over TLS when `tls` is given: the worker must present a
    /// certificate from the cluster CA naming the host of `addr`, and this process presents
    /// its own.
    pub fn connect(addr: &str, token: Option<String>, tls: Option<&ClusterTls>) -> Result<Self> {
        Self::with_liveness(addr, token, tls, KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
    }

    /// [`WorkerClient::connect`] that pings the worker every `ping_interval` and drops the
    /// connection, failing every call on it with [`ShardStoreError::Unavailable`], when a ping
    /// is not answered within `ping_timeout`: a stopped or partitioned worker fails queries in
    /// bounded time instead of hanging them, however long a healthy call may run.
    pub fn with_liveness(
        addr: &str,
        token: Option<String>,
        tls: Option<&ClusterTls>,
        ping_interval: Duration,
        ping_timeout: Duration,
    ) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ShardStoreError::Config {
                message: "WorkerClient::new must be called inside a tokio runtime".into(),
            });
        }
        let endpoint = endpoint(addr, tls, ping_interval, ping_timeout)?;
        let value = bearer_value(token)?;
        let inner =
            FlightServiceClient::with_interceptor(endpoint.connect_lazy(), BearerToken { value })
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(WorkerClient {
            addr: Arc::from(addr),
            inner,
        })
    }

    /// The worker's address as given to [`Self::new`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Streams `batches` to the worker, which writes them as ONE new Parquet file in
    /// `shards/<table_id>/<shard_id>/` durably and returns its metadata. Batches are cast to
    /// `schema`. The input is streamed, never collected. A put of zero rows writes no file
    /// and returns `FileMeta { name: "", rows: 0, .. }`. If `batches` yields an error, the
    /// worker discards what it received and that error is returned.
    pub async fn put_batches(
        &self,
        table_id: i64,
        shard_id: i64,
        schema: SchemaRef,
        batches: BoxStream<'static, Result<RecordBatch>>,
    ) -> Result<FileMeta> {
        self.put_clustered(table_id, shard_id, schema, None, batches)
            .await
    }

    /// [`Self::put_batches`], the file's rows sorted by the column `cluster_by` within each
    /// row group (a table's distribution column: one tenant's rows then sit in few pages).
    pub async fn put_clustered(
        &self,
        table_id: i64,
        shard_id: i64,
        schema: SchemaRef,
        cluster_by: Option<&str>,
        batches: BoxStream<'static, Result<RecordBatch>>,
    ) -> Result<FileMeta> {
        let command = json_bytes(&PutCommand {
            table_id,
            shard_id,
            cluster_by: cluster_by.map(str::to_string),
        })?;
        // An input error ends the request stream without the commit marker (so the worker
        // discards the file) and is kept here to be reported instead of the worker's answer.
        let input_error: Arc<Mutex<Option<ShardStoreError>>> = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&input_error);
        let target = Arc::clone(&schema);
        let input = batches.scan((), move |_, item| {
            ready(match item.and_then(|b| cast_batch_to(&b, &target)) {
                Ok(batch) => Some(Ok::<_, FlightError>(batch)),
                Err(e) => {
                    *lock(&slot) = Some(e);
                    None
                }
            })
        });
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_flight_descriptor(Some(FlightDescriptor::new_cmd(command)))
            .build(input);
        let slot = Arc::clone(&input_error);
        let marker = futures::stream::once(ready(commit_marker()))
            .filter(move |_| ready(lock(&slot).is_none()))
            .map(Ok);

        let mut client = FlightClient::new_from_inner(self.inner.clone());
        let response = client.do_put(data.chain(marker)).await;
        let first = match response {
            Ok(mut results) => results.next().await,
            Err(e) => Some(Err(e)),
        };
        if let Some(e) = lock(&input_error).take() {
            return Err(e);
        }
        let result = first
            .ok_or_else(|| ShardStoreError::protocol("the worker sent no put result"))?
            .map_err(|e| self.flight_error(e))?;
        let meta: FileMeta = from_json("put result", &result.app_metadata)?;
        debug!(worker = %self.addr, table_id, shard_id, name = %meta.name, rows = meta.rows, "put done");
        Ok(meta)
    }

    /// Runs a scan on the worker and returns its rows (or partial aggregate) as a stream;
    /// each batch has exactly the output schema the worker announced. Errors the worker hits
    /// before sending rows (such as `FileMissing`) are returned here, not in the stream.
    pub async fn scan(&self, req: &ScanRequest) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        Ok(self.scan_with_schema(req).await?.1)
    }

    /// Like [`Self::scan`], also returning the output schema the worker announced (known
    /// even when no rows follow).
    pub async fn scan_with_schema(
        &self,
        req: &ScanRequest,
    ) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch>>)> {
        let ticket = req.to_ticket()?;
        let response = self
            .inner
            .clone()
            .do_get(ticket)
            .await
            .map_err(|s| self.status_error(s))?;
        let mut decoder =
            FlightDataDecoder::new(response.into_inner().map(|r| r.map_err(FlightError::from)));
        let schema = loop {
            match decoder.next().await {
                Some(Ok(data)) => match data.payload {
                    DecodedPayload::Schema(schema) => break schema,
                    DecodedPayload::None => continue,
                    DecodedPayload::RecordBatch(_) => {
                        return Err(ShardStoreError::protocol(
                            "the worker sent rows before the schema",
                        ))
                    }
                },
                Some(Err(e)) => return Err(self.flight_error(e)),
                None => {
                    return Err(ShardStoreError::protocol(
                        "the worker ended the scan without sending a schema",
                    ))
                }
            }
        };
        let addr = Arc::clone(&self.addr);
        let target = Arc::clone(&schema);
        let rows = decoder
            .filter_map(move |item| {
                ready(match item {
                    Ok(data) => match data.payload {
                        DecodedPayload::RecordBatch(batch) => Some(cast_batch_to(&batch, &target)),
                        DecodedPayload::Schema(_) | DecodedPayload::None => None,
                    },
                    Err(e) => Some(Err(ShardStoreError::from_flight(&addr, e))),
                })
            })
            .boxed();
        Ok((schema, rows))
    }

    /// Binds the worker to `cluster_id` on the first call (persisted, fsynced); the same id
    /// again is fine; another id fails with [`ShardStoreError::WrongCluster`].
    pub async fn handshake(&self, cluster_id: &str) -> Result<WorkerInfo> {
        let body = json_bytes(&HandshakeBody {
            cluster_id: cluster_id.to_string(),
        })?;
        let info = self.action(ACTION_HANDSHAKE, body).await?;
        from_json("handshake result", &info)
    }

    /// The worker's state: cluster id, version, free disk and size of its shard files.
    pub async fn health(&self) -> Result<WorkerInfo> {
        let info = self.action(ACTION_HEALTH, Bytes::new()).await?;
        from_json("health result", &info)
    }

    /// Deletes `shards/<table_id>/<shard_id>/<name>` for each name; missing files are not an
    /// error.
    pub async fn delete_files(
        &self,
        table_id: i64,
        shard_id: i64,
        names: Vec<String>,
    ) -> Result<()> {
        let body = json_bytes(&DeleteFilesBody {
            table_id,
            shard_id,
            names,
        })?;
        self.action(ACTION_DELETE_FILES, body).await.map(drop)
    }

    /// Every committed file in the worker's `shards/` directory, with its size and its age
    /// (time since its modification time). Includes files no catalog names (orphans of a
    /// crashed statement) and files of statements not committed yet.
    pub async fn list_files(&self) -> Result<Vec<StoredFile>> {
        let body = self.action(ACTION_LIST_FILES, Bytes::new()).await?;
        from_json("list_files result", &body)
    }

    /// Re-reads `files` on the worker (ignoring what verified before) and returns those whose
    /// size or CRC-32C differs from the given record. Files not on the worker are skipped.
    pub async fn verify_files(&self, files: Vec<FileToVerify>) -> Result<Vec<DamagedFile>> {
        let body = self
            .action(ACTION_VERIFY_FILES, json_bytes(&files)?)
            .await?;
        from_json("verify_files result", &body)
    }

    /// Deletes the directories `shards/<table_id>/<shard_id>` of the given shards; missing
    /// ones are not an error.
    pub async fn drop_shards(&self, table_id: i64, shard_ids: Vec<i64>) -> Result<()> {
        let body = json_bytes(&DropShardsBody {
            table_id,
            shard_ids,
        })?;
        self.action(ACTION_DROP_SHARDS, body).await.map(drop)
    }

    /// Streams the bytes of the committed file `shards/<table_id>/<shard_id>/<name>` from
    /// `offset` to its end, in chunks in file order. A missing file fails here with
    /// [`ShardStoreError::FileMissing`]; later errors (the worker went away) end the stream.
    /// Workers use it to pull the files of a move from each other.
    pub async fn fetch_file_stream(
        &self,
        table_id: i64,
        shard_id: i64,
        name: &str,
        offset: u64,
    ) -> Result<BoxStream<'static, Result<FileChunk>>> {
        let ticket = FileTicket {
            table_id,
            shard_id,
            name: name.to_string(),
            offset,
        }
        .to_ticket()?;
        let response = self
            .inner
            .clone()
            .do_get(ticket)
            .await
            .map_err(|s| self.status_error(s))?;
        let addr = Arc::clone(&self.addr);
        let chunks = response.into_inner().map(move |item| match item {
            Ok(data) => FileChunk::from_flight_data(data),
            Err(status) => Err(ShardStoreError::from_status(&addr, status)),
        });
        Ok(chunks.boxed())
    }

    /// Asks this worker, the target of move `req.task_id`, to fetch the listed files of a
    /// shard from the source worker into its staging area, verifying each against the
    /// catalog's size and CRC-32C. Idempotent: files staged and verified by an earlier call
    /// are skipped. A corrupt copy fails with [`ShardStoreError::ChecksumMismatch`] and is
    /// deleted; an unreachable source fails with an error whose
    /// [`is_unavailable`](ShardStoreError::is_unavailable) is true and whose `addr` is the
    /// source's. Runs until every file is staged (no timeout besides connection liveness).
    pub async fn pull_files(&self, req: &PullFilesRequest) -> Result<PullFilesReport> {
        let body = self.action(ACTION_PULL_FILES, json_bytes(req)?).await?;
        from_json("pull_files result", &body)
    }

    /// Bytes received so far by the running [`pull_files`](Self::pull_files) call of move
    /// `task_id` on this worker (`None` when none runs), files not yet verified included.
    pub async fn pull_progress(&self, task_id: i64) -> Result<Option<u64>> {
        let body = json_bytes(&PullProgressBody { task_id })?;
        let body = self.action(ACTION_PULL_PROGRESS, body).await?;
        let report: PullProgressReport = from_json("pull_progress result", &body)?;
        Ok(report.bytes_received)
    }

    /// Moves the named files staged by move `task_id` into the live directory
    /// `shards/<table_id>/<shard_id>/`, durably. Idempotent: a file adopted already is fine.
    /// A file neither staged nor live is [`ShardStoreError::FileMissing`]; a live file of the
    /// same name and another size is [`ShardStoreError::FileConflict`].
    pub async fn adopt_staged(
        &self,
        task_id: i64,
        table_id: i64,
        shard_id: i64,
        names: Vec<String>,
    ) -> Result<()> {
        let body = json_bytes(&AdoptStagedBody {
            task_id,
            table_id,
            shard_id,
            names,
        })?;
        self.action(ACTION_ADOPT_STAGED, body).await.map(drop)
    }

    /// Deletes everything move `task_id` staged on this worker (a rollback, or the end of a
    /// move); a task with nothing staged is not an error.
    pub async fn discard_staging(&self, task_id: i64) -> Result<()> {
        let body = json_bytes(&DiscardStagingBody { task_id })?;
        self.action(ACTION_DISCARD_STAGING, body).await.map(drop)
    }

    /// The ids of the move tasks that have a staging directory on this worker, sorted (for a
    /// restarted coordinator to discard those of finished or unknown tasks).
    pub async fn list_staging(&self) -> Result<Vec<i64>> {
        let body = self.action(ACTION_LIST_STAGING, Bytes::new()).await?;
        from_json("list_staging result", &body)
    }

    /// Replaces the worker's copy of the catalog journal with a base: the catalog `image` of
    /// cluster `cluster_id` as of entry `seq` of coordinator run `epoch`. A worker bound to
    /// another cluster refuses it ([`ShardStoreError::WrongCluster`]).
    pub async fn journal_base(
        &self,
        cluster_id: &str,
        epoch: &str,
        seq: u64,
        image: &[u8],
    ) -> Result<JournalStatus> {
        let header = BaseHeader {
            cluster_id: cluster_id.to_string(),
            epoch: epoch.to_string(),
            seq,
        };
        let body = self
            .action(ACTION_JOURNAL_BASE, Bytes::from(frame(&header, &[image])?))
            .await?;
        from_json("journal_base result", &body)
    }

    /// Appends catalog journal entries `first_seq ..` of `epoch`, durably. Refused
    /// ([`ShardStoreError::Protocol`], "journal gap") unless they follow the worker's last
    /// entry of that epoch: it then needs a new base.
    pub async fn journal_append(
        &self,
        epoch: &str,
        first_seq: u64,
        entries: &[&[u8]],
    ) -> Result<JournalStatus> {
        let header = AppendHeader {
            epoch: epoch.to_string(),
            first_seq,
            lengths: entries.iter().map(|e| e.len() as u64).collect(),
        };
        let body = self
            .action(ACTION_JOURNAL_APPEND, Bytes::from(frame(&header, entries)?))
            .await?;
        from_json("journal_append result", &body)
    }

    /// Where the worker's catalog journal stands; `None` if it has none.
    pub async fn journal_status(&self) -> Result<Option<JournalStatus>> {
        let body = self.action(ACTION_JOURNAL_STATUS, Bytes::new()).await?;
        from_json("journal_status result", &body)
    }

    /// The worker's whole catalog journal; `None` if it has none.
    pub async fn journal_read(&self) -> Result<Option<JournalCopy>> {
        // The answer comes in pieces of one framed body.
        let mut stream = self
            .inner
            .clone()
            .do_action(Action::new(ACTION_JOURNAL_READ, Bytes::new()))
            .await
            .map_err(|s| self.status_error(s))?
            .into_inner();
        let mut body = Vec::new();
        while let Some(piece) = stream.message().await.map_err(|s| self.status_error(s))? {
            body.extend_from_slice(&piece.body);
        }
        if body.is_empty() {
            return Ok(None);
        }
        let (header, mut at) = unframe::<ReadHeader>("journal_read result", &body)?;
        let mut take = |len: u64| {
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .filter(|end| *end <= body.len())
                .ok_or_else(|| ShardStoreError::protocol("journal_read result: truncated"))?;
            let part = body[at..end].to_vec();
            at = end;
            Ok::<_, ShardStoreError>(part)
        };
        let base = take(header.base_bytes)?;
        let entries = header
            .lengths
            .iter()
            .map(|len| take(*len))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(JournalCopy {
            status: header.status,
            base,
            entries,
        }))
    }

    /// Runs an action and returns the body of its first result (empty if none).
    async fn action(&self, name: &str, body: Bytes) -> Result<Bytes> {
        let response = self
            .inner
            .clone()
            .do_action(Action::new(name, body))
            .await
            .map_err(|s| self.status_error(s))?;
        let first = response
            .into_inner()
            .message()
            .await
            .map_err(|s| self.status_error(s))?;
        Ok(first.map(|r| r.body).unwrap_or_default())
    }

    fn status_error(&self, status: Status) -> ShardStoreError {
        ShardStoreError::from_status(&self.addr, status)
    }

    fn flight_error(&self, error: FlightError) -> ShardStoreError {
        ShardStoreError::from_flight(&self.addr, error)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
