//! The coordinator's side of the catalog journal (see `shoal_catalog::journal`): every state
//! write of the catalog is copied to the workers, so that `shoal recover-catalog` can rebuild
//! the catalog from them when the coordinator's disk is lost.
//!
//! ```text
//! catalog write ─ commit ─► committed(seq, entry): queued          (catalog write lock held)
//!               ─ unlock ─► wait_durable(seq): until one worker holds seq
//! one sender per worker:  base (the whole catalog, at start, after a gap, every
//!                          REBASE_AFTER entries) ─► journal_base
//!                         queued entries after what it acknowledged, batched ─► journal_append (fsynced)
//! ```
//!
//! A write returns once *one* worker has its entry on disk: the fastest decides, and a worker
//! that is slow or down does not hold writes up. A sender that falls behind what is still
//! queued, or whose worker refuses an append (it restarted, or missed entries), starts that
//! worker over from a new base. Senders run on a thread of their own, so a catalog write may
//! wait for them from any runtime.
//!
//! Writes wait at most [`WAIT_LIMIT`], and at most [`UNREACHABLE_WAIT`] while no sender is
//! healthy (its last call succeeded, or it has not tried yet): with every worker unreachable,
//! the catalog commits without a copy, which the log and
//! `shoal_catalog_journal_unshipped_total` say.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shoal_catalog::{Catalog, CommitJournal};

use crate::histogram::{Histogram, HistogramSnapshot, JOURNAL_WAIT_BUCKETS_US};
use shoal_shard_store::{ClusterTls, WorkerClient};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// Longest a catalog write waits for a worker to hold its entry.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Entries and bytes kept queued for senders that are behind; a sender further behind
/// rebases.
const QUEUE_LIMIT: usize = 20_000;
const QUEUE_BYTES: usize = 256 << 20;
/// Entries sent in one append at most.
const BATCH_ENTRIES: usize = 512;
/// Bytes sent in one append at most (one entry may exceed it alone).
const BATCH_BYTES: usize = 8 << 20;
/// A worker's journal starts over from a new base after this many entries, which bounds what
/// a recovery replays and what a worker keeps.
const REBASE_AFTER: u64 = 20_000;
/// Pause of the node list's refresh, and of a sender between two looks at an empty queue.
const RETRY: Duration = Duration::from_secs(1);
/// Pause of a sender whose worker did not take a call: short, so that a worker back from a
/// restart holds the writes waiting for it soon.
const WORKER_RETRY: Duration = Duration::from_millis(250);
/// How long a write waits when no worker took the last call (each may be back at its next
/// try) before it returns without a copy.
const UNREACHABLE_WAIT: Duration = Duration::from_secs(2);

/// What the catalog hands committed entries to. Cheap to clone.
#[derive(Clone)]
pub struct WorkerJournal {
    shared: Arc<Shared>,
}

struct Shared {
    /// This coordinator run: `<run number>-<ms>-<random>`, in hex of fixed width, so a later
    /// run's epoch is greater as a string.
    epoch: String,
    queue: Mutex<Queue>,
    queued: Notify,
    durable: Mutex<Durable>,
    durable_changed: Condvar,
    /// Entries committed, and those a write stopped waiting for (no worker held them in time).
    last_seq: AtomicU64,
    unshipped: AtomicU64,
    /// How long writes waited for their entry, in µs.
    waits: Histogram,
}

/// Entries not yet held by every worker, oldest first, and their bytes.
#[derive(Default)]
struct Queue {
    entries: VecDeque<(u64, Arc<[u8]>)>,
    bytes: usize,
}

impl Queue {
    fn pop_front(&mut self) {
        if let Some((_, entry)) = self.entries.pop_front() {
            self.bytes -= entry.len();
        }
    }
}

#[derive(Default)]
struct Durable {
    /// Every entry up to this one is held by at least one worker.
    seq: u64,
    /// Per worker: the last entry it holds, and whether its last call succeeded.
    senders: HashMap<String, SenderState>,
}

#[derive(Clone, Copy)]
struct SenderState {
    acked: u64,
    healthy: bool,
}

/// The journal's numbers, for `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalStats {
    pub last_seq: u64,
    pub durable_seq: u64,
    pub workers_healthy: usize,
    pub workers: usize,
    pub unshipped: u64,
    /// How long writes waited for a worker to hold their entry (µs).
    pub waits: HistogramSnapshot,
}

impl WorkerJournal {
    /// A journal for `catalog`, whose senders reach the workers with `token` and `tls`.
    /// Installs itself in the catalog and starts its thread.
    pub fn start(
        catalog: &Arc<Catalog>,
        token: Option<String>,
        tls: Option<ClusterTls>,
    ) -> std::io::Result<WorkerJournal> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // The run number orders epochs (clocks may disagree); time and chance make it unique.
        let run = catalog
            .next_journal_run()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            epoch: format!("{run:016x}-{now:016x}-{:08x}", random_u32()),
            queue: Mutex::new(Queue::default()),
            queued: Notify::new(),
            durable: Mutex::new(Durable::default()),
            durable_changed: Condvar::new(),
            last_seq: AtomicU64::new(0),
            unshipped: AtomicU64::new(0),
            waits: Histogram::new(JOURNAL_WAIT_BUCKETS_US),
        });
        let journal = WorkerJournal { shared };
        catalog
            .set_journal(Arc::new(journal.clone()))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::downgrade(&journal.shared);
        let catalog = Arc::downgrade(catalog);
        std::thread::Builder::new()
            .name("catalog-journal".into())
            .spawn(move || runtime.block_on(supervise(shared, catalog, token, tls)))?;
        info!(epoch = %journal.shared.epoch, "catalog journal started: every state write is copied to the workers");
        Ok(journal)
    }

    pub fn stats(&self) -> JournalStats {
        let durable = lock(&self.shared.durable);
        JournalStats {
            last_seq: self.shared.last_seq.load(Ordering::SeqCst),
            durable_seq: durable.seq,
            workers_healthy: durable.senders.values().filter(|s| s.healthy).count(),
            workers: durable.senders.len(),
            unshipped: self.shared.unshipped.load(Ordering::SeqCst),
            waits: self.shared.waits.snapshot(),
        }
    }
}

impl CommitJournal for WorkerJournal {
    fn committed(&self, seq: u64, changeset: Vec<u8>) {
        let mut queue = lock(&self.shared.queue);
        queue.bytes += changeset.len();
        queue.entries.push_back((seq, Arc::from(changeset)));
        while queue.entries.len() > QUEUE_LIMIT || queue.bytes > QUEUE_BYTES {
            queue.pop_front();
        }
        drop(queue);
        self.shared.last_seq.store(seq, Ordering::SeqCst);
        self.shared.queued.notify_waiters();
    }

    fn wait_durable(&self, seq: u64) {
        let started = Instant::now();
        self.wait_until_durable(seq, started);
        self.shared
            .waits
            .observe(started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
    }
}

impl WorkerJournal {
    fn wait_until_durable(&self, seq: u64, started: Instant) {
        let mut durable = lock(&self.shared.durable);
        loop {
            if durable.seq >= seq {
                return;
            }
            if durable.senders.is_empty() {
                // No worker yet: the base each one gets first will hold this write.
                return;
            }
            let waited = started.elapsed();
            let limit = if durable.senders.values().any(|s| s.healthy) {
                WAIT_LIMIT
            } else {
                UNREACHABLE_WAIT
            };
            if waited >= limit {
                self.shared.unshipped.fetch_add(1, Ordering::SeqCst);
                warn!(
                    seq,
                    "no worker took the catalog journal entry within {limit:?}: the write \
                     committed without a copy (one follows when a worker is back)"
                );
                return;
            }
            durable = self
                .shared
                .durable_changed
                .wait_timeout(durable, limit - waited)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

impl Shared {
    fn report(&self, addr: &str, acked: Option<u64>) {
        let mut durable = lock(&self.durable);
        let state = durable
            .senders
            .entry(addr.to_string())
            .or_insert(SenderState {
                acked: 0,
                healthy: true,
            });
        match acked {
            Some(seq) => {
                state.acked = seq;
                state.healthy = true;
                durable.seq = durable.seq.max(seq);
            }
            None => state.healthy = false,
        }
        let slowest = durable.senders.values().map(|s| s.acked).min();
        drop(durable);
        self.durable_changed.notify_all();
        // What every worker holds need not stay queued.
        if let Some(slowest) = slowest {
            let mut queue = lock(&self.queue);
            while queue
                .entries
                .front()
                .is_some_and(|(seq, _)| *seq <= slowest)
            {
                queue.pop_front();
            }
        }
    }

    fn forget(&self, addr: &str) {
        lock(&self.durable).senders.remove(addr);
        self.durable_changed.notify_all();
    }
}

/// Keeps one sender per worker node of the catalog.
async fn supervise(
    shared: Weak<Shared>,
    catalog: Weak<Catalog>,
    token: Option<String>,
    tls: Option<ClusterTls>,
) {
    let mut senders: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let (Some(shared_now), Some(catalog_now)) = (shared.upgrade(), catalog.upgrade()) else {
            break;
        };
        match catalog_now.list_nodes() {
            Ok(nodes) => {
                let addrs: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
                senders.retain(|addr, task| {
                    let keep = addrs.contains(addr) && !task.is_finished();
                    if !keep {
                        task.abort();
                        shared_now.forget(addr);
                    }
                    keep
                });
                for addr in addrs {
                    if senders.contains_key(&addr) {
                        continue;
                    }
                    match WorkerClient::connect(&addr, token.clone(), tls.as_ref()) {
                        Ok(client) => {
                            // Healthy until its first call says otherwise: writes wait for it.
                            shared_now.report(&addr, Some(0));
                            let task = tokio::spawn(send(
                                Arc::downgrade(&shared_now),
                                Weak::clone(&catalog),
                                client,
                            ));
                            senders.insert(addr, task);
                        }
                        Err(e) => warn!(worker = %addr, error = %e, "catalog journal: no client"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "catalog journal: cannot list the nodes"),
        }
        drop((shared_now, catalog_now));
        tokio::time::sleep(RETRY).await;
    }
    for task in senders.values() {
        task.abort();
    }
}

/// Ships the journal to one worker, forever.
async fn send(shared: Weak<Shared>, catalog: Weak<Catalog>, client: WorkerClient) {
    let addr = client.addr().to_string();
    let mut acked: Option<u64> = None; // None: the worker needs a base
    let mut since_base = 0u64;
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(from) = acked else {
            let Some(catalog) = catalog.upgrade() else {
                return;
            };
            let base = tokio::task::spawn_blocking(move || {
                let cluster_id = catalog.cluster_id()?;
                let (seq, image) = catalog.journal_base()?;
                Ok::<_, shoal_catalog::CatalogError>((cluster_id, seq, image))
            })
            .await;
            let (cluster_id, seq, image) = match base {
                Ok(Ok(base)) => base,
                Ok(Err(e)) => {
                    warn!(worker = %addr, error = %e, "catalog journal: cannot take a base");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(e) => {
                    warn!(worker = %addr, error = %e, "catalog journal: base task failed");
                    return;
                }
            };
            match client
                .journal_base(&cluster_id, &shared.epoch, seq, &image)
                .await
            {
                Ok(_) => {
                    debug!(worker = %addr, seq, bytes = image.len(), "catalog journal: base sent");
                    acked = Some(seq);
                    since_base = 0;
                    shared.report(&addr, Some(seq));
                }
                Err(e) => {
                    debug!(worker = %addr, error = %e, "catalog journal: base not sent");
                    shared.report(&addr, None);
                    drop(shared);
                    tokio::time::sleep(WORKER_RETRY).await;
                }
            }
            continue;
        };
        if since_base >= REBASE_AFTER {
            acked = None;
            continue;
        }
        // Registered before the queue is read: an entry queued after that wakes it.
        let queued = shared.queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let batch: Vec<(u64, Arc<[u8]>)> = {
            let queue = lock(&shared.queue);
            let mut bytes = 0usize;
            queue
                .entries
                .iter()
                .filter(|(seq, _)| *seq > from)
                .take_while(|(_, entry)| {
                    bytes += entry.len();
                    bytes <= BATCH_BYTES || bytes == entry.len()
                })
                .take(BATCH_ENTRIES)
                .cloned()
                .collect()
        };
        let Some((first, _)) = batch.first() else {
            // New entries, or a look at the time now and then (rebase, shutdown).
            let _ = tokio::time::timeout(RETRY, queued).await;
            continue;
        };
        if *first != from + 1 {
            // The entries it lacks are no longer queued.
            acked = None;
            continue;
        }
        let entries: Vec<&[u8]> = batch.iter().map(|(_, e)| &e[..]).collect();
        match client.journal_append(&shared.epoch, *first, &entries).await {
            Ok(status) => {
                acked = Some(status.last_seq);
                since_base += batch.len() as u64;
                shared.report(&addr, Some(status.last_seq));
            }
            Err(e) if e.is_unavailable() => {
                debug!(worker = %addr, error = %e, "catalog journal: worker unreachable");
                shared.report(&addr, None);
                tokio::time::sleep(WORKER_RETRY).await;
            }
            Err(e) => {
                // A gap (the worker restarted from an older copy, or lost its journal): a new
                // base brings it up to date. Anything else (its disk is full) is not healthy
                // either, and a base is tried again only after a pause.
                let gap = e.to_string().contains("journal gap");
                info!(worker = %addr, error = %e, "catalog journal: sending the worker a new base");
                acked = None;
                if !gap {
                    shared.report(&addr, None);
                    tokio::time::sleep(WORKER_RETRY).await;
                }
            }
        }
    }
}

/// A random number (std's hash keys are seeded from the OS's randomness).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
