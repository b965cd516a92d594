//! Moving shard files between workers, the async half (the file-system half is in
//! `files.rs`, the raw file channel in `raw.rs`).
//!
//! ```text
//! coordinator ── pull_files ──► target worker (up to 4 files at once)     source worker
//!                               raw::open ── SHOALRAW1 + token + file ──► (same port as Flight)
//!                                          ◄── Sending { bytes } ──────── token, name checked
//!                               thread, nice 19:                          thread, nice 19:
//!                               staging/move-<task>/…/<name>.part ◄─────── sendfile(2) from
//!                                 read into a 1 MiB buffer, token bucket,  the shard file
//!                                 CRC-32C, write, early writeback, fsync,
//!                                 verify, rename to <name>; fsync the dir once per call
//!                               (older source: DoGet(file ticket), 1 MiB chunks, same writer)
//! coordinator ── adopt_staged ► staging/move-<task>/…/<name> ──rename──► shards/<t>/<s>/<name>
//! ```
//!
//! The target pulls (rather than the source pushing) so that the worker that writes is the
//! one that verifies, rate-limits and cleans up, and the coordinator drives every step with
//! one idempotent call to one worker. A move costs CPU per byte, so the bytes bypass gRPC:
//! the source hands them from its page cache to the socket with `sendfile(2)`, and the target
//! copies them once out of the socket into a reused buffer and once into its page cache
//! (over Flight they crossed user space about six times: read, encode, HTTP/2 frames on one
//! side, and frames, decode, write on the other). Both ends run in threads of low CPU
//! priority, so that queries on the same workers keep the CPU (see
//! [`raw::lower_priority`](crate::raw::lower_priority)). A source that does not speak the raw
//! channel (a worker from before it) is asked over Flight instead.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::FlightData;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedMutexGuard};
use tonic::Status;
use tracing::{debug, info, warn};

use crate::client::WorkerClient;
use crate::error::{Result, ShardStoreError};
use crate::failpoints::FailpointSet;
use crate::files::{blocking, send_file_chunks, FileStore, PullMsg};
use crate::protocol::{FileMeta, FileTicket, PullFilesReport, PullFilesRequest};
use crate::raw::{self, CancelOnDrop, Opened, RawReceiver};
use crate::tls::ClusterTls;

/// Size of the chunks a source sends. A move is bound by CPU time per byte (copies, syscalls,
/// HTTP/2 frames); on loopback 1 MiB chunks (with 1 MiB HTTP/2 frames) moved about 1.5x the
/// bytes per second of 256 KiB ones, and more buys nothing measurable.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

/// Chunks read ahead of the network on the source, per transfer (4 MiB).
const READ_AHEAD_CHUNKS: usize = 4;

/// Chunks queued between the network and the writer thread on the target, per transfer
/// (4 MiB), so the network keeps going while the writer waits on the disk.
const WRITE_QUEUE_CHUNKS: usize = 4;

/// Files of one `pull_files` call transferred at the same time. The fsync that ends each file
/// is a wait on the disk: one at a time, they halved the throughput of a move of small files
/// (as for `dd conv=fsync` file after file against `cp` and one `sync`); four at a time
/// overlap them and keep both ends busy. At most ~32 MiB of buffers per call.
const PARALLEL_FILES: usize = 4;

/// After a source answered a raw request in another protocol (a worker from before the raw
/// channel), its files are pulled over Flight without asking again for this long.
const RAW_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The rate limiter may run ahead of its average rate by this much time after an idle spell.
const RATE_BURST: Duration = Duration::from_millis(100);

/// Failpoint: flip one byte of the first file `pull_files` receives (before verification).
pub(crate) const FAILPOINT_PULL_CORRUPT_ONCE: &str = "pull_corrupt_once";

/// Failpoint `disk_free_bytes=<n>`: the worker believes it has `n` free bytes.
pub(crate) const FAILPOINT_DISK_FREE_BYTES: &str = "disk_free_bytes";

type FlightStream = BoxStream<'static, std::result::Result<FlightData, Status>>;

/// Source side: the answer to a file ticket, the file's bytes from `offset` to its end.
/// A missing file fails here, before the stream starts, with `FileMissing`.
pub(crate) async fn serve_file(store: &Arc<FileStore>, ticket: FileTicket) -> Result<FlightStream> {
    let FileTicket {
        table_id,
        shard_id,
        name,
        offset,
    } = ticket;
    let path = store.file_path(table_id, shard_id, &name)?;
    let (file, len) = {
        let store = Arc::clone(store);
        let name = name.clone();
        blocking(move || store.open_shard_file(table_id, shard_id, &name, offset)).await?
    };
    debug!(
        table_id,
        shard_id, name, offset, len, "sending a shard file"
    );
    let (tx, mut rx) = mpsc::channel(READ_AHEAD_CHUNKS);
    // Ends by itself when the file is sent or when the stream (holding `rx`) is dropped.
    tokio::task::spawn_blocking(move || {
        send_file_chunks(file, &path, offset, CHUNK_BYTES, &tx);
    });
    let chunks = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(move |item| {
        item.map(|chunk| chunk.to_flight_data()).map_err(|e| {
            warn!(table_id, shard_id, name, error = %e, "sending a shard file failed");
            e.to_status()
        })
    });
    Ok(chunks.boxed())
}

/// Serialises the calls of one move task on a worker (pull, adopt, discard): a coordinator
/// that retries a call whose first attempt is still running must not get two writers of the
/// same part file, nor a discard under a running pull.
#[derive(Debug, Default)]
pub(crate) struct TaskLocks {
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while a call of a move task runs; shared with the writer threads it starts, so that
/// the task stays locked until they have cleaned up, even if the call is cancelled.
pub(crate) type TaskGuard = Arc<OwnedMutexGuard<()>>;

impl TaskLocks {
    pub(crate) async fn lock(&self, task_id: i64) -> TaskGuard {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // An entry only the map refers to is neither held nor awaited: forget it.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(task_id).or_default())
        };
        let guard = match Arc::clone(&lock).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                info!(task_id, "waiting for an earlier call of the same move task");
                lock.lock_owned().await
            }
        };
        Arc::new(guard)
    }
}

/// Bytes received so far by the running `pull_files` call of each move task on this worker
/// (calls of one task run one at a time, under its [`TaskLocks`] lock), so that the
/// coordinator can show progress while a file streams rather than only when a call ends.
#[derive(Debug, Default)]
pub(crate) struct PullProgress {
    running: Mutex<HashMap<i64, Arc<AtomicU64>>>,
}

impl PullProgress {
    /// Counts the bytes of a call of `task_id` until the returned handle is dropped.
    fn start(self: &Arc<Self>, task_id: i64) -> PullCounter {
        let received = Arc::new(AtomicU64::new(0));
        lock(&self.running).insert(task_id, Arc::clone(&received));
        PullCounter {
            progress: Arc::clone(self),
            task_id,
            received,
        }
    }

    /// Bytes received by the running call of `task_id`; `None` when no call runs.
    pub(crate) fn received(&self, task_id: i64) -> Option<u64> {
        lock(&self.running)
            .get(&task_id)
            .map(|r| r.load(Ordering::Relaxed))
    }
}

/// The byte count of one running `pull_files` call; unregistered when dropped.
struct PullCounter {
    progress: Arc<PullProgress>,
    task_id: i64,
    received: Arc<AtomicU64>,
}

impl Drop for PullCounter {
    fn drop(&mut self) {
        let mut running = lock(&self.progress.running);
        if running
            .get(&self.task_id)
            .is_some_and(|r| Arc::ptr_eq(r, &self.received))
        {
            running.remove(&self.task_id);
        }
    }
}

/// The clients a target uses to reach move sources, one per address, kept between calls so
/// that a move pulling one file per call does not pay a new connection each time; and what
/// it knows of the sources' raw file channels.
#[derive(Debug)]
pub(crate) struct SourceClients {
    /// This worker's cluster token, which the sources expect too.
    token: Option<String>,
    /// The same, as the raw channel presents it: `Bearer <token>`.
    authorization: Option<String>,
    clients: Mutex<HashMap<String, WorkerClient>>,
    /// This worker's node-to-node TLS, which the sources require too.
    tls: Option<ClusterTls>,
    /// Sources that answered a raw request in another protocol, and when.
    no_raw: Mutex<HashMap<String, Instant>>,
    /// Files whose transfer started over the raw channel and over Flight since the worker
    /// started.
    raw_files: AtomicU64,
    flight_files: AtomicU64,
}

impl SourceClients {
    pub(crate) fn new(token: Option<String>, tls: Option<ClusterTls>) -> Self {
        SourceClients {
            authorization: token.as_ref().map(|t| format!("Bearer {t}")),
            token,
            clients: Mutex::new(HashMap::new()),
            tls,
            no_raw: Mutex::new(HashMap::new()),
            raw_files: AtomicU64::new(0),
            flight_files: AtomicU64::new(0),
        }
    }

    /// Files whose transfer started so far over the raw channel and over Flight.
    #[cfg(test)]
    pub(crate) fn files_received(&self) -> (u64, u64) {
        (
            self.raw_files.load(Ordering::Relaxed),
            self.flight_files.load(Ordering::Relaxed),
        )
    }

    /// Whether this worker has a cluster token (and so refuses calls without it).
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Is the raw channel of the source at `addr` worth trying?
    fn try_raw(&self, addr: &str) -> bool {
        let mut no_raw = lock(&self.no_raw);
        match no_raw.get(addr) {
            Some(since) if since.elapsed() < RAW_RETRY_AFTER => false,
            Some(_) => {
                no_raw.remove(addr);
                true
            }
            None => true,
        }
    }

    fn raw_refused(&self, addr: &str, reason: &str) {
        if lock(&self.no_raw)
            .insert(addr.to_string(), Instant::now())
            .is_none()
        {
            info!(
                source = addr,
                reason, "the move source has no raw file channel; pulling over Flight"
            );
        }
    }

    /// The client of the worker at `addr` (it connects lazily and reconnects by itself).
    pub(crate) fn get(&self, addr: &str) -> Result<WorkerClient> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let client = WorkerClient::connect(addr, self.token.clone(), self.tls.as_ref())?;
        clients.insert(addr.to_string(), client.clone());
        Ok(client)
    }
}

/// Target side of `pull_files`: fetches from the source each file of `req` not staged and
/// verified yet, into `staging/move-<task_id>/<table_id>/<shard_id>/`.
pub(crate) async fn pull_files(
    store: &Arc<FileStore>,
    sources: &SourceClients,
    failpoints: &Arc<FailpointSet>,
    progress: &Arc<PullProgress>,
    guard: TaskGuard,
    req: PullFilesRequest,
) -> Result<PullFilesReport> {
    let PullFilesRequest {
        task_id,
        source_addr,
        table_id,
        shard_id,
        files,
        max_bytes_per_s,
    } = req;
    if max_bytes_per_s == Some(0) {
        return Err(ShardStoreError::protocol(
            "max_bytes_per_s must be positive (or null for no limit)",
        ));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = files.iter().find(|f| !seen.insert(f.name.as_str())) {
        return Err(ShardStoreError::protocol(format!(
            "pull_files lists file {} twice",
            dup.name
        )));
    }
    let counter = progress.start(task_id);
    let source = sources.get(&source_addr)?;
    let (dir, todo) = {
        let store = Arc::clone(store);
        let files = files.clone();
        blocking(move || store.prepare_pull(task_id, table_id, shard_id, &files)).await?
    };
    let files_skipped = files.len() - todo.len();
    let needed: u64 = todo.iter().map(|f| f.bytes).sum();
    // The `disk_free_bytes=<n>` failpoint makes `health` report `n`; the check here sees it too.
    let free = match failpoints
        .value(FAILPOINT_DISK_FREE_BYTES)
        .and_then(|v| v.parse().ok())
    {
        Some(n) => n,
        None => {
            let store = Arc::clone(store);
            blocking(move || store.disk_free_bytes()).await?
        }
    };
    if needed > free {
        return Err(ShardStoreError::DiskFull {
            message: format!(
                "move task {task_id} needs {needed} bytes for {} files, {free} bytes are free",
                todo.len()
            ),
        });
    }

    let started = Instant::now();
    let before = (
        sources.raw_files.load(Ordering::Relaxed),
        sources.flight_files.load(Ordering::Relaxed),
    );
    let pull = Pull {
        store,
        sources,
        source: &source,
        source_addr: &source_addr,
        dir: &dir,
        table_id,
        shard_id,
        limiter: max_bytes_per_s.map(|rate| Arc::new(Mutex::new(TokenBucket::new(rate)))),
        failpoints,
        guard,
        received: Arc::clone(&counter.received),
    };
    // On the first error the other transfers are dropped: their receiving threads see the
    // transfer cancelled (or the stream end without `Done`) and remove their part files
    // (still under the task lock).
    let mut transfers = futures::stream::iter(todo.iter().cloned().map(|file| pull.one(file)))
        .buffer_unordered(PARALLEL_FILES);
    let mut copied = Ok(0u64);
    while let Some(result) = transfers.next().await {
        match result {
            Ok(bytes) => copied = copied.map(|total| total + bytes),
            Err(e) => {
                copied = Err(e);
                break;
            }
        }
    }
    drop(transfers);
    // Files are renamed into place without syncing the directory each time: once for all of
    // them here, before the call reports success (also after a failure, for those that made it).
    let synced = {
        let store = Arc::clone(store);
        let dir = dir.clone();
        blocking(move || store.sync_staged_dir(&dir)).await
    };
    let bytes_copied = copied?;
    synced?;
    let secs = started.elapsed().as_secs_f64();
    info!(
        task_id,
        table_id,
        shard_id,
        source = %source_addr,
        files_copied = todo.len(),
        files_skipped,
        bytes_copied,
        raw_files = sources.raw_files.load(Ordering::Relaxed) - before.0,
        flight_files = sources.flight_files.load(Ordering::Relaxed) - before.1,
        mb_per_s = if secs > 0.0 { bytes_copied as f64 / secs / 1e6 } else { 0.0 },
        "pulled shard files into staging"
    );
    Ok(PullFilesReport {
        files_copied: todo.len(),
        bytes_copied,
        files_skipped,
    })
}

/// One `pull_files` call in progress.
struct Pull<'a> {
    store: &'a Arc<FileStore>,
    sources: &'a SourceClients,
    source: &'a WorkerClient,
    source_addr: &'a str,
    dir: &'a Path,
    table_id: i64,
    shard_id: i64,
    /// Shared by the transfers of the call.
    limiter: Option<Arc<Mutex<TokenBucket>>>,
    failpoints: &'a Arc<FailpointSet>,
    guard: TaskGuard,
    /// Bytes received by the call so far, over all its transfers.
    received: Arc<AtomicU64>,
}

impl Pull<'_> {
    /// Fetches one file into the staging directory, over the raw channel if the source has
    /// one, else over Flight; returns its size.
    async fn one(&self, file: FileMeta) -> Result<u64> {
        if self.sources.try_raw(self.source_addr) {
            if let Some(bytes) = self.one_raw(&file).await? {
                return Ok(bytes);
            }
        }
        self.sources.flight_files.fetch_add(1, Ordering::Relaxed);
        self.one_flight(file).await
    }

    /// Fetches one file over the raw channel; `None` if the source has none (or cannot be
    /// reached that way: Flight then says why).
    async fn one_raw(&self, file: &FileMeta) -> Result<Option<u64>> {
        let ticket = FileTicket {
            table_id: self.table_id,
            shard_id: self.shard_id,
            name: file.name.clone(),
            offset: 0,
        };
        let opened = raw::open(
            self.source_addr,
            self.sources.authorization.as_deref(),
            self.sources.tls.as_ref(),
            &ticket,
        )
        .await
        .map_err(|e| from_source(e, &file.name))?;
        let (socket, bytes) = match opened {
            Opened::Sending { socket, bytes } => (socket, bytes),
            Opened::Unavailable { reason, older } => {
                if older {
                    self.sources.raw_refused(self.source_addr, &reason);
                } else {
                    debug!(
                        source = self.source_addr,
                        reason, "raw file channel unavailable"
                    );
                }
                return Ok(None);
            }
        };
        self.sources.raw_files.fetch_add(1, Ordering::Relaxed);
        // Dropped with this future if the pull is cancelled: it stops the thread.
        let mut cancel = CancelOnDrop::new(&socket)?;
        let mut receiver = RawReceiver::new(
            socket,
            bytes,
            self.source_addr,
            &file.name,
            self.limiter.clone(),
            Arc::clone(self.failpoints),
            cancel.flag(),
        )
        .counting_into(Arc::clone(&self.received));
        let store = Arc::clone(self.store);
        let dir = self.dir.to_path_buf();
        let expected = file.clone();
        let guard = Arc::clone(&self.guard);
        let done = raw::spawn_transfer_thread("shoal-receive", move || {
            // Holds the task lock until the part file is renamed or removed.
            let _guard = guard;
            raw::lower_priority();
            store.receive_staged_from(&dir, &expected, &mut receiver)
        })
        .map_err(|e| ShardStoreError::internal(format!("cannot start a receiving thread: {e}")))?;
        let received = done
            .await
            .map_err(|_| ShardStoreError::internal("a pull receiving thread panicked"))?;
        cancel.disarm();
        received.map(Some)
    }

    /// Fetches one file over a Flight DoGet.
    async fn one_flight(&self, file: FileMeta) -> Result<u64> {
        let mut chunks = self
            .source
            .fetch_file_stream(self.table_id, self.shard_id, &file.name, 0)
            .await
            .map_err(|e| from_source(e, &file.name))?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_CHUNKS);
        let writer = {
            let store = Arc::clone(self.store);
            let dir = self.dir.to_path_buf();
            let file = file.clone();
            let guard = Arc::clone(&self.guard);
            tokio::task::spawn_blocking(move || {
                let _guard = guard;
                store.receive_staged_file(&dir, &file, rx)
            })
        };

        let mut next_offset = 0u64;
        let mut failure = None;
        while let Some(item) = chunks.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(from_source(e, &file.name));
                    break;
                }
            };
            if chunk.offset != next_offset {
                failure = Some(ShardStoreError::protocol(format!(
                    "the source sent file {} out of order: offset {} where {next_offset} was due",
                    file.name, chunk.offset
                )));
                break;
            }
            let len = chunk.bytes.len();
            next_offset += len as u64;
            self.received.fetch_add(len as u64, Ordering::Relaxed);
            if let Some(limiter) = &self.limiter {
                let wait = limiter
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .debit(len, Instant::now());
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
            }
            let mut bytes = chunk.bytes;
            if len > 0 && self.failpoints.fire_once(FAILPOINT_PULL_CORRUPT_ONCE) {
                warn!(
                    name = file.name,
                    "failpoint {FAILPOINT_PULL_CORRUPT_ONCE}: flipping a byte"
                );
                bytes = flip_first_byte(&bytes);
            }
            if tx.send(PullMsg::Chunk(bytes)).await.is_err() {
                // The writer stopped; its error is reported below.
                break;
            }
        }
        if failure.is_none() {
            // A send error means the writer already failed; it reports why.
            let _ = tx.send(PullMsg::Done).await;
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| ShardStoreError::internal(format!("pull writer task failed: {e}")))?;
        match failure {
            Some(e) => Err(e),
            None => written,
        }
    }
}

/// Says, in an unreachable source's error, what the target was doing with it.
fn from_source(e: ShardStoreError, name: &str) -> ShardStoreError {
    match e {
        ShardStoreError::Unavailable { addr, message } => ShardStoreError::Unavailable {
            message: format!("cannot pull file {name} from this move source: {message}"),
            addr,
        },
        other => other,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flip_first_byte(bytes: &Bytes) -> Bytes {
    let mut copy = BytesMut::from(bytes.as_ref());
    if let Some(first) = copy.first_mut() {
        *first ^= 0xff;
    }
    copy.freeze()
}

/// A token bucket over bytes, shared by the transfers of one call: on average at most `rate`
/// bytes per second, with bursts of at most [`RATE_BURST`] worth after an idle spell. Each
/// chunk is debited first and its sender then waits until the bucket is out of debt, so
/// chunks of any size pass and the average stays exact.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    /// Bytes per second.
    rate: f64,
    /// Most tokens the bucket holds.
    burst: f64,
    /// Tokens now; negative while in debt.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(bytes_per_s: u64) -> Self {
        let rate = bytes_per_s.max(1) as f64;
        TokenBucket {
            rate,
            burst: rate * RATE_BURST.as_secs_f64(),
            // Start empty: the first chunk already waits its share.
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// The average rate, in bytes per second.
    pub(crate) fn rate_bytes_per_s(&self) -> u64 {
        self.rate as u64
    }

    /// Refills for the time since the last call, takes `bytes`, and says how long to wait
    /// until the balance is back to zero.
    pub(crate) fn debit(&mut self, bytes: usize, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= bytes as f64;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod tests;
