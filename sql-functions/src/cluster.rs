//! `Cluster`: the coordinator's handle on the catalog and the workers, and every operation
//! that changes the cluster's tables and nodes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::histogram::{Histogram, HistogramSnapshot, FENCE_BUCKETS_MS};
use crate::integrity::DamageRegistry;
use crate::transfer_rate::TransferMeter;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use futures::StreamExt;
use shoal_catalog::{
    Catalog, CleanupRecord, ColumnDef, FileRecord, NewFile, NewShard, NewTable, Node, ShardState,
    TableInfo, TableKind, TableSnapshot,
};
use shoal_shard_store::{ClusterTls, FileCheck, ScanRequest, ShardFiles, WorkerClient};
use tracing::{info, warn};

use crate::catalog_journal::{JournalStats, WorkerJournal};
use crate::error::{ClusterError, Result};
use crate::gate::{gate_key, WriteGates, WritePermit};
use crate::routing;
use crate::types::{arrow_type, stored_schema};
use crate::writer::{ShardTarget, ShardWriter, WrittenFile};

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Sent with every call to a worker.
    pub cluster_token: Option<String>,
    /// How long a worker may leave a liveness ping unanswered before calls on it fail (a
    /// stopped or partitioned worker); pings go every second.
    pub worker_timeout: Duration,
    /// Node-to-node TLS: workers are called over TLS, verified with the cluster CA, and this
    /// process presents its certificate to them.
    pub tls: Option<ClusterTls>,
}

impl Default for ClusterConfig {
    /// No token; a worker that leaves pings unanswered for 5 s fails its calls.
    fn default() -> Self {
        ClusterConfig {
            cluster_token: None,
            worker_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// Query snapshots still running, each with the catalog generation that had ended when it
/// started: files replaced by a later generation may be in its snapshot and must stay on disk
/// until it ends (see `shoal_catalog::Catalog::generation`).
#[derive(Default)]
struct ActiveSnapshots {
    next: AtomicU64,
    running: Mutex<BTreeMap<u64, u64>>,
}

/// Statements of clients (queries and writes) running now and when the last one started:
/// while there are any, moves transfer at `rebalance.yield_bandwidth_mb` at most.
#[derive(Default)]
struct Foreground {
    running: AtomicU64,
    last_started_ms: AtomicI64,
}

/// Shards of a table distributed without `shard_count` (Citus's `citus.shard_count`).
const DEFAULT_SHARD_COUNT: i64 = 32;
/// The most shards a table may have (Citus's bound).
const MAX_SHARD_COUNT: i64 = 64000;
/// A statement started within this long counts as foreground activity even once it ended:
/// a client issuing short queries back to back is busy between them too.
const FOREGROUND_RECENT_MS: i64 = 1000;

/// Held by a running query; while it lives, files it may read are not deleted.
pub struct SnapshotGuard {
    id: u64,
    registry: Arc<ActiveSnapshots>,
    /// Set for a client's statement (see [`Cluster::begin_statement`]).
    foreground: Option<Arc<Foreground>>,
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        let mut running = self
            .registry
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running.remove(&self.id);
        if let Some(f) = &self.foreground {
            f.running.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

pub struct Cluster {
    catalog: Arc<Catalog>,
    config: ClusterConfig,
    clients: Mutex<HashMap<String, WorkerClient>>,
    snapshots: Arc<ActiveSnapshots>,
    foreground: Arc<Foreground>,
    gates: WriteGates,
    /// Tasks this coordinator is running now, with the nodes they involve.
    running_tasks: Mutex<HashMap<i64, (i64, i64)>>,
    /// How long each switch held writes fenced, in ms.
    fence_ms: Histogram,
    /// Shard groups with a move in progress, as (gate key, shard index), with a count of
    /// moves: compaction leaves them alone so that the source's file list only grows while it
    /// is copied. Only those: a rebalance moves one group after another for minutes, and the
    /// table's other placements must still be compacted meanwhile (a writer of small INSERTs
    /// otherwise piled up thousands of files, and point reads took twice as long).
    moving_groups: Mutex<HashMap<(i64, i64), usize>>,
    /// Woken when a job is created or cancelled and when a task ends, so that the scheduler
    /// starts the next task and `rebalance_wait()` returns at once instead of at its next poll
    /// (the polls stay, for changes this coordinator does not see).
    job_events: tokio::sync::Notify,
    /// Held while cleanup records run. A move that lands on a node first runs that node's
    /// pending deletes of the same shards (file names are kept, so an old delete would remove
    /// the new copy); with this, a delete call still in flight from the cleanup loop or from
    /// an earlier move's cleanup step has landed before the move checks that none is pending.
    cleanup_running: tokio::sync::Mutex<()>,
    /// The copy of the catalog's writes on the workers, once started.
    journal: std::sync::OnceLock<WorkerJournal>,
    /// Damaged files found by reads and the scrubber.
    damage: DamageRegistry,
    /// Files written by open transactions, as (table id, shard id, name), with how many
    /// holders: the catalog lists none of them until COMMIT, and the orphan collector must
    /// not take them for garbage however long the transaction stays open.
    staged: Mutex<HashMap<(i64, i64, String), usize>>,
    /// Transfer rates of the jobs this coordinator runs (for their ETA).
    transfer_meter: Arc<TransferMeter>,
}

/// Files at least this large are left alone by compaction (see [`Cluster::compact_once`]).
pub const SMALL_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Milliseconds since the Unix epoch: the clock of the catalog's timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Cluster {
    pub fn new(catalog: Arc<Catalog>, config: ClusterConfig) -> Arc<Self> {
        Arc::new(Cluster {
            catalog,
            config,
            clients: Mutex::new(HashMap::new()),
            snapshots: Arc::new(ActiveSnapshots::default()),
            foreground: Arc::new(Foreground::default()),
            gates: WriteGates::default(),
            running_tasks: Mutex::new(HashMap::new()),
            fence_ms: Histogram::new(FENCE_BUCKETS_MS),
            moving_groups: Mutex::new(HashMap::new()),
            job_events: tokio::sync::Notify::new(),
            cleanup_running: tokio::sync::Mutex::new(()),
            journal: std::sync::OnceLock::new(),
            damage: DamageRegistry::default(),
            staged: Mutex::new(HashMap::new()),
            transfer_meter: Arc::default(),
        })
    }

    pub(crate) fn transfer_meter(&self) -> &Arc<TransferMeter> {
        &self.transfer_meter
    }

    /// Marks files an open transaction wrote (see [`Cluster::staged`]).
    pub fn hold_staged(&self, table_id: i64, shard_id: i64, names: &[String]) {
        let mut m = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        for n in names {
            *m.entry((table_id, shard_id, n.clone())).or_default() += 1;
        }
    }

    /// Undoes [`Cluster::hold_staged`] once the transaction has committed or rolled back.
    pub fn release_staged(&self, table_id: i64, shard_id: i64, names: &[String]) {
        let mut m = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        for n in names {
            let key = (table_id, shard_id, n.clone());
            if let Some(c) = m.get_mut(&key) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    m.remove(&key);
                }
            }
        }
    }

    fn is_staged(&self, key: &(i64, i64, String)) -> bool {
        let m = self.staged.lock().unwrap_or_else(|e| e.into_inner());
        m.contains_key(key)
    }

    /// Publishes a statement's file changes (see [`Catalog::commit_transaction`]).
    pub fn commit_changes(&self, changes: &shoal_catalog::FileChanges) -> Result<()> {
        self.catalog.commit_transaction(changes, 0)?;
        Ok(())
    }

    /// Publishes a transaction's file and table changes in one catalog transaction (see
    /// [`Catalog::commit_transaction_with_tables`]).
    pub fn commit_transaction(
        &self,
        changes: &shoal_catalog::FileChanges,
        txn: u64,
        tables: &shoal_catalog::TableChanges,
    ) -> Result<()> {
        self.catalog
            .commit_transaction_with_tables(changes, txn, tables, 0)?;
        Ok(())
    }

    /// Deletes files no catalog state names (a rolled-back transaction's); best effort, what
    /// fails stays for the orphan collector.
    pub async fn delete_unlisted(&self, table_id: i64, files: Vec<(String, i64, String)>) {
        for (addr, shard_id, name) in files {
            let client = match self.worker(&addr) {
                Ok(c) => c,
                Err(_) => continue,
            };
            if let Err(e) = client
                .delete_files(table_id, shard_id, vec![name.clone()])
                .await
            {
                warn!(node = %addr, table_id, shard_id, name = %name, error = %e,
                    "a rolled-back file is left for orphan collection");
            }
        }
    }

    pub(crate) fn damage(&self) -> &DamageRegistry {
        &self.damage
    }

    /// Wakes whoever waits on [`Cluster::job_events`].
    pub(crate) fn jobs_changed(&self) {
        self.job_events.notify_waiters();
    }

    /// Woken by [`Cluster::jobs_changed`]; `enable` the future before looking at the catalog,
    /// so that a change in between is not missed.
    pub(crate) fn job_events(&self) -> tokio::sync::futures::Notified<'_> {
        self.job_events.notified()
    }

    pub(crate) fn set_moving(&self, key: i64, shard_index: i64, moving: bool) {
        let mut m = self.moving_groups.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry((key, shard_index)).or_default();
        if moving {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&(key, shard_index));
            }
        }
    }

    fn is_moving(&self, key: i64, shard_index: i64) -> bool {
        let m = self.moving_groups.lock().unwrap_or_else(|e| e.into_inner());
        m.contains_key(&(key, shard_index))
    }

    pub(crate) fn gates(&self) -> &WriteGates {
        &self.gates
    }

    /// Admits one writing statement into `table`'s shard group: waits while a move has the
    /// group fenced. Hold the permit until the statement's files are committed.
    pub async fn admit_write(&self, table: &str) -> Result<WritePermit> {
        let info = self.table(table)?;
        Ok(self
            .gates
            .admit(gate_key(info.colocation_id, info.table_id))
            .await)
    }

    pub(crate) fn record_fence_ms(&self, ms: u64) {
        self.fence_ms.observe(ms);
    }

    /// How long the switches so far held writes fenced, in ms.
    pub fn fence_histogram(&self) -> HistogramSnapshot {
        self.fence_ms.snapshot()
    }

    pub(crate) fn running_tasks(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, i64)>> {
        self.running_tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Starts copying every catalog write to the workers (see [`crate::catalog_journal`]).
    pub fn start_catalog_journal(&self) -> std::io::Result<()> {
        let journal = WorkerJournal::start(
            &self.catalog,
            self.config.cluster_token.clone(),
            self.config.tls.clone(),
        )?;
        let _ = self.journal.set(journal);
        Ok(())
    }

    /// Where the catalog journal stands; `None` before it started.
    pub fn catalog_journal_stats(&self) -> Option<JournalStats> {
        self.journal.get().map(WorkerJournal::stats)
    }

    /// Channels to the nodes' task services for distributed queries, with this cluster's
    /// token and TLS.
    pub fn task_channels(&self) -> Result<shoal_shard_store::ClusterChannels> {
        Ok(shoal_shard_store::ClusterChannels::new(
            self.config.cluster_token.as_deref(),
            self.config.tls.clone(),
        )?
        .with_liveness(
            Duration::from_secs(1).min(self.config.worker_timeout),
            self.config.worker_timeout,
        ))
    }

    /// A (cached) client for the worker at `addr`.
    pub fn worker(&self, addr: &str) -> Result<WorkerClient> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let c = WorkerClient::with_liveness(
            addr,
            self.config.cluster_token.clone(),
            self.config.tls.as_ref(),
            Duration::from_secs(1).min(self.config.worker_timeout),
            self.config.worker_timeout,
        )?;
        clients.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    fn clients_for(&self, targets: &[ShardTarget]) -> Result<HashMap<String, WorkerClient>> {
        let mut out = HashMap::new();
        for t in targets {
            for (_, addr) in &t.placements {
                if !out.contains_key(addr) {
                    out.insert(addr.clone(), self.worker(addr)?);
                }
            }
        }
        Ok(out)
    }

    /// [`Self::begin_snapshot`] for a client's query or write: while it runs (and for
    /// [`FOREGROUND_RECENT_MS`] after it started) moves yield bandwidth to it.
    pub fn begin_statement(&self) -> SnapshotGuard {
        self.foreground.running.fetch_add(1, Ordering::SeqCst);
        self.foreground
            .last_started_ms
            .fetch_max(now_ms(), Ordering::SeqCst);
        let mut guard = self.begin_snapshot();
        guard.foreground = Some(Arc::clone(&self.foreground));
        guard
    }

    /// Whether clients' statements are running or ran within the last
    /// [`FOREGROUND_RECENT_MS`].
    pub fn foreground_active(&self) -> bool {
        self.foreground.running.load(Ordering::SeqCst) > 0
            || now_ms() - self.foreground.last_started_ms.load(Ordering::SeqCst)
                < FOREGROUND_RECENT_MS
    }

    /// Registers a query snapshot; take it *before* reading the catalog and keep it until the
    /// query has read everything.
    pub fn begin_snapshot(&self) -> SnapshotGuard {
        let id = self.snapshots.next.fetch_add(1, Ordering::Relaxed);
        let mut running = self
            .snapshots
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running.insert(id, self.catalog.generation());
        SnapshotGuard {
            id,
            registry: Arc::clone(&self.snapshots),
            foreground: None,
        }
    }

    /// Waits (at most `limit`) until every query that may read the catalog as it was before
    /// `since_ms` has ended; false if some still runs then.
    pub async fn wait_for_queries_before(&self, since_ms: i64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.oldest_snapshot_ms() {
                None => return true,
                Some(t) if t > since_ms => return true,
                Some(_) => {}
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Cleanup records due before this time (ms) delete nothing a running query may read;
    /// `None` when no query runs. For the oldest running snapshot, which saw every write up
    /// to generation `g`, that is the time write `g + 1` began: whatever a later write
    /// replaced was decided (and its record's `not_before_ms` set) after that.
    fn oldest_snapshot_ms(&self) -> Option<i64> {
        let oldest = {
            let running = self
                .snapshots
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            running.values().min().copied()
        }?;
        // Not begun yet: every write a record can come from has ended before the query.
        Some(
            self.catalog
                .generation_began_ms(oldest + 1)
                .unwrap_or(i64::MAX),
        )
    }

    // ---- nodes ---------------------------------------------------------------------------

    /// `add_node`: checks the worker answers and binds it to this cluster; idempotent.
    pub async fn add_node(&self, host: &str, port: u16) -> Result<i64> {
        let addr = format!("{host}:{port}");
        if let Some(n) = self.catalog.node_by_addr(host, port)? {
            return Ok(n.node_id);
        }
        let cluster_id = self.catalog.cluster_id()?;
        let client = self.worker(&addr)?;
        // A worker started without the cluster's token would take calls from anyone: refused
        // before it is bound to the cluster. (One with another token fails the call itself.)
        if self.config.cluster_token.is_some() && !client.health().await?.token_required {
            return Err(ClusterError::NotInState {
                message: format!(
                    "worker {addr} accepts calls without the cluster token; it is not added"
                ),
                hint: Some(
                    "Start the worker with the coordinator's --cluster-token (SHOAL_CLUSTER_TOKEN), then add it again."
                        .into(),
                ),
            });
        }
        let info = client.handshake(&cluster_id).await?;
        let (id, _) = self.catalog.add_node(host, port)?;
        self.catalog.set_node_health(
            id,
            true,
            Some(info.disk_free_bytes),
            Some(info.data_bytes),
        )?;
        info!(node_id = id, %addr, "node added");
        Ok(id)
    }

    /// Nodes that take new shards, sorted by (host, port).
    fn placement_nodes(&self) -> Result<Vec<Node>> {
        Ok(self
            .catalog
            .list_nodes()?
            .into_iter()
            .filter(|n| n.should_have_shards)
            .collect())
    }

    /// Forgets the cached client of a worker, so the next call opens a fresh connection
    /// instead of waiting on one the network has silently cut.
    fn forget_worker(&self, addr: &str) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.remove(addr);
    }

    /// One heartbeat round: records liveness, free disk and bytes of every node. The nodes
    /// are asked at once, so that one that does not answer delays no other's news (a worker
    /// back from a restart is live after the round that first reaches it).
    pub async fn heartbeat_once(&self) -> Result<()> {
        let nodes = self.catalog.list_nodes()?;
        let mut asks = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let client = self.worker(&node.addr())?;
            asks.push(async move {
                tokio::time::timeout(Duration::from_secs(3), client.health()).await
            });
        }
        let answers = futures::future::join_all(asks).await;
        for (node, res) in nodes.into_iter().zip(answers) {
            match res {
                Ok(Ok(info)) => {
                    if !node.is_live {
                        info!(node = %node.addr(), "worker is live again");
                    }
                    self.catalog.set_node_health(
                        node.node_id,
                        true,
                        Some(info.disk_free_bytes),
                        Some(info.data_bytes),
                    )?
                }
                Ok(Err(e)) => {
                    if node.is_live {
                        warn!(node = %node.addr(), error = %e, "worker unreachable");
                    }
                    self.forget_worker(&node.addr());
                    self.catalog
                        .set_node_health(node.node_id, false, None, None)?
                }
                Err(_) => {
                    if node.is_live {
                        warn!(node = %node.addr(), "worker heartbeat timed out");
                    }
                    self.forget_worker(&node.addr());
                    self.catalog
                        .set_node_health(node.node_id, false, None, None)?
                }
            }
        }
        Ok(())
    }

    // ---- tables --------------------------------------------------------------------------

    pub fn table(&self, name: &str) -> Result<TableInfo> {
        self.catalog.table_by_name(name)?.ok_or_else(|| {
            shoal_catalog::CatalogError::TableNotFound {
                name: name.to_string(),
            }
            .into()
        })
    }

    /// `CREATE TABLE`: a single shard on the node holding the fewest placements; pending
    /// (seen by that transaction alone until it commits) when `pending_txn` names one.
    pub fn create_table(
        &self,
        name: &str,
        columns: Vec<ColumnDef>,
        pending_txn: Option<u64>,
    ) -> Result<TableInfo> {
        if columns.is_empty() {
            return Err(ClusterError::NotSupported {
                message: "tables without columns are not supported".into(),
            });
        }
        let nodes = self.placement_nodes()?;
        let mut best: Option<(i64, i64)> = None;
        for n in &nodes {
            let count = self.catalog.placement_count(n.node_id)?;
            if best.is_none_or(|(_, c)| count < c) {
                best = Some((n.node_id, count));
            }
        }
        let (node_id, _) = best.ok_or_else(|| ClusterError::NoWorkers {
            message: "no worker nodes are available for placing shards".into(),
        })?;
        let shard_id = self.catalog.reserve_shard_ids(1)?[0];
        Ok(self.catalog.create_table(&NewTable {
            name: name.to_string(),
            kind: TableKind::SingleShard,
            distribution_column: None,
            colocation_id: None,
            columns,
            shards: vec![NewShard {
                shard_id,
                shard_index: 0,
                hash_min: i32::MIN,
                hash_max: i32::MAX,
                placements: vec![(node_id, vec![])],
            }],
            pending_txn,
        })?)
    }

    pub fn drop_table(&self, name: &str, if_exists: bool) -> Result<bool> {
        match self.catalog.table_by_name(name)? {
            Some(t) => {
                self.catalog.drop_table(t.table_id)?;
                Ok(true)
            }
            None if if_exists => Ok(false),
            None => Err(shoal_catalog::CatalogError::TableNotFound { name: name.into() }.into()),
        }
    }

    pub fn truncate(&self, name: &str) -> Result<()> {
        let t = self.table(name)?;
        self.catalog.truncate_table(t.table_id)?;
        Ok(())
    }

    pub fn rename_table(
        &self,
        name: &str,
        new_name: &str,
        indexes: &[shoal_catalog::IndexUpdate],
    ) -> Result<()> {
        let t = self.table(name)?;
        Ok(self.catalog.rename_table(t.table_id, new_name, indexes)?)
    }

    pub fn add_column(&self, name: &str, column: ColumnDef) -> Result<TableInfo> {
        let t = self.table(name)?;
        Ok(self.catalog.add_column(t.table_id, &column)?)
    }

    /// Makes `columns` of `table` NOT NULL for every write that commits from now on, and
    /// returns those that were nullable. The catalog changes first; then the table's write
    /// gate is fenced once, which waits for the statements that read the columns before the
    /// change to commit or fail, so a check for NULLs after this sees every row but those
    /// the new rule refuses.
    pub async fn require_not_null(&self, table: &str, columns: &[String]) -> Result<Vec<String>> {
        let t = self.table(table)?;
        let nullable: Vec<String> = t
            .columns
            .iter()
            .filter(|c| columns.contains(&c.name) && !c.not_null)
            .map(|c| c.name.clone())
            .collect();
        self.catalog.set_not_null(t.table_id, columns, true)?;
        let timeout =
            Duration::from_millis(self.catalog.cluster_settings()?.write_fence_timeout_ms);
        let key = gate_key(t.colocation_id, t.table_id);
        if self.gates.fence(key, timeout).await.is_none() {
            self.catalog.set_not_null(t.table_id, &nullable, false)?;
            return Err(ClusterError::Conflict {
                message: format!(
                    "could not add the key to \"{table}\": writes to it did not finish within {} ms",
                    timeout.as_millis()
                ),
            });
        }
        Ok(nullable)
    }

    /// Undoes [`Self::require_not_null`] for `columns`.
    pub fn allow_null(&self, table: &str, columns: &[String]) -> Result<()> {
        let t = self.table(table)?;
        self.catalog.set_not_null(t.table_id, columns, false)?;
        Ok(())
    }

    /// `create_distributed_table`: hash-distributes a table, moving its existing rows.
    pub async fn create_distributed_table(
        &self,
        table_name: &str,
        column: &str,
        shard_count: Option<i64>,
        replication_factor: i64,
        colocate_with: &str,
    ) -> Result<TableInfo> {
        let table = self.table(table_name)?;
        if table.kind != TableKind::SingleShard {
            return Err(ClusterError::NotInState {
                message: format!("table \"{table_name}\" is already distributed"),
                hint: None,
            });
        }
        let col = table
            .columns
            .iter()
            .find(|c| c.name == column)
            .ok_or_else(|| ClusterError::UndefinedColumn {
                message: format!("column \"{column}\" of relation \"{table_name}\" does not exist"),
            })?;
        // As Citus: a table to colocate with fixes the shard count, so naming both is an
        // error rather than one of them silently ignored.
        if shard_count.is_some() && !matches!(colocate_with, "default" | "none") {
            return Err(ClusterError::invalid(
                "Cannot use colocate_with with a table and shard_count at the same time",
            ));
        }
        let shard_count = shard_count.unwrap_or(DEFAULT_SHARD_COUNT);
        if !(1..=MAX_SHARD_COUNT).contains(&shard_count) {
            return Err(ClusterError::invalid(format!(
                "{shard_count} is outside the valid range for parameter \"shard_count\" (1 .. {MAX_SHARD_COUNT})"
            )));
        }
        if replication_factor < 1 {
            return Err(ClusterError::invalid(
                "replication_factor must be at least 1",
            ));
        }
        // Floats hash badly (0.1 + 0.2 != 0.3); refuse them before moving anything.
        let dist_type = col.sql_type.to_string();
        if matches!(
            arrow_type(&col.sql_type),
            arrow::datatypes::DataType::Float32 | arrow::datatypes::DataType::Float64
        ) {
            return Err(ClusterError::NotSupported {
                message: format!("cannot distribute on column \"{column}\" of type {dist_type}"),
            });
        }
        let nodes = self.placement_nodes()?;
        if nodes.is_empty() {
            return Err(ClusterError::NoWorkers {
                message: "no worker nodes are available for placing shards".into(),
            });
        }
        if replication_factor as usize > nodes.len() {
            return Err(ClusterError::InvalidArgument {
                message: format!(
                    "replication_factor ({replication_factor}) exceeds number of worker nodes ({})",
                    nodes.len()
                ),
                hint: Some(
                    "Add more worker nodes or try again with a lower replication factor.".into(),
                ),
            });
        }

        // Colocation: an existing table's group fixes shard count and placements.
        let (colocation_id, template): (i64, Option<TableSnapshot>) = match colocate_with {
            "none" => (
                self.catalog.find_or_create_colocation(
                    shard_count,
                    replication_factor,
                    &dist_type,
                    true,
                )?,
                None,
            ),
            "default" => {
                let id = self.catalog.find_or_create_colocation(
                    shard_count,
                    replication_factor,
                    &dist_type,
                    false,
                )?;
                (id, self.colocated_template(id, table.table_id)?)
            }
            other => {
                let t = self.table(other)?;
                let id = t
                    .colocation_id
                    .filter(|_| t.kind == TableKind::Distributed)
                    .ok_or_else(|| {
                        ClusterError::invalid(format!(
                            "cannot colocate with \"{other}\": it is not a distributed table"
                        ))
                    })?;
                let snap = self.catalog.snapshot(other)?;
                let other_col = t.distribution_column.clone().unwrap_or_default();
                let other_type = t
                    .columns
                    .iter()
                    .find(|c| c.name == other_col)
                    .map(|c| c.sql_type.to_string())
                    .unwrap_or_default();
                if other_type != dist_type {
                    return Err(ClusterError::invalid(format!(
                        "cannot colocate tables {table_name} and {other}: distribution column types don't match ({dist_type} vs {other_type})"
                    )));
                }
                (id, Some(snap))
            }
        };
        let shard_count = match &template {
            Some(t) => t.shards.len() as i64,
            None => shard_count,
        };

        let ids = self.catalog.reserve_shard_ids(shard_count as usize)?;
        let addr_of: HashMap<i64, String> = self
            .catalog
            .list_nodes()?
            .into_iter()
            .map(|n| (n.node_id, n.addr()))
            .collect();
        let mut layout: Vec<(i64, i32, i32, Vec<i64>)> = Vec::new();
        for i in 0..shard_count as usize {
            let (lo, hi) = routing::shard_range(i, shard_count as usize);
            let node_ids: Vec<i64> = match &template {
                Some(t) => t.shards[i].placements.iter().map(|p| p.node_id).collect(),
                None => (0..replication_factor as usize)
                    .map(|r| nodes[(i + r) % nodes.len()].node_id)
                    .collect(),
            };
            layout.push((ids[i], lo, hi, node_ids));
        }
        let new_shards = self
            .rewrite_rows(&table, Some(column), &layout, &addr_of)
            .await?;
        let info = self.catalog.replace_layout(
            table.table_id,
            TableKind::Distributed,
            Some(column),
            Some(colocation_id),
            &new_shards,
        )?;
        info!(
            table = table_name,
            shards = shard_count,
            "table distributed"
        );
        Ok(info)
    }

    /// An existing table of the colocation group to copy placements from.
    fn colocated_template(&self, colocation_id: i64, except: i64) -> Result<Option<TableSnapshot>> {
        for snap in self.catalog.snapshot_all()? {
            if snap.table.colocation_id == Some(colocation_id)
                && snap.table.table_id != except
                && snap.table.kind == TableKind::Distributed
            {
                return Ok(Some(snap));
            }
        }
        Ok(None)
    }

    /// `create_reference_table`: one shard with a placement on every node.
    pub async fn create_reference_table(&self, table_name: &str) -> Result<TableInfo> {
        let table = self.table(table_name)?;
        if table.kind != TableKind::SingleShard {
            return Err(ClusterError::NotInState {
                message: format!("table \"{table_name}\" is already distributed"),
                hint: None,
            });
        }
        let nodes = self.catalog.list_nodes()?;
        if nodes.is_empty() {
            return Err(ClusterError::NoWorkers {
                message: "no worker nodes are available for placing shards".into(),
            });
        }
        let addr_of: HashMap<i64, String> = nodes.iter().map(|n| (n.node_id, n.addr())).collect();
        let shard_id = self.catalog.reserve_shard_ids(1)?[0];
        let layout = vec![(
            shard_id,
            i32::MIN,
            i32::MAX,
            nodes.iter().map(|n| n.node_id).collect(),
        )];
        let new_shards = self.rewrite_rows(&table, None, &layout, &addr_of).await?;
        Ok(self.catalog.replace_layout(
            table.table_id,
            TableKind::Reference,
            None,
            None,
            &new_shards,
        )?)
    }

    /// Reads every committed row of `table` and writes it in a new layout; returns the new
    /// shards with their files, ready for one catalog transaction.
    async fn rewrite_rows(
        &self,
        table: &TableInfo,
        distribution: Option<&str>,
        layout: &[(i64, i32, i32, Vec<i64>)],
        addr_of: &HashMap<i64, String>,
    ) -> Result<Vec<NewShard>> {
        let schema = stored_schema(&table.columns);
        let distribution = distribution.map(|d| stored_name_of(table, d));
        let distribution = distribution.as_deref();
        let addr = |n: &i64| -> Result<(i64, String)> {
            let a = addr_of.get(n).ok_or_else(|| ClusterError::Internal {
                message: format!("node {n} of the new layout is unknown"),
            })?;
            Ok((*n, a.clone()))
        };
        let targets: Vec<ShardTarget> = layout
            .iter()
            .map(|(id, min, max, nodes)| {
                Ok(ShardTarget {
                    shard_id: *id,
                    hash_range: (*min, *max),
                    placements: nodes.iter().map(addr).collect::<Result<_>>()?,
                })
            })
            .collect::<Result<_>>()?;
        let clients = self.clients_for(&targets)?;
        let mut writer = ShardWriter::new(
            table.table_id,
            Arc::clone(&schema),
            distribution,
            targets,
            clients,
        )?;
        let _guard = self.begin_statement();
        let snapshot = self.catalog.snapshot(&table.name)?;
        for shard in &snapshot.shards {
            let mut stream = self.scan_shard(&snapshot, shard.shard_id, &schema).await?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                writer.write(batch).await?
            }
        }
        let files = writer.finish().await?;
        Ok(layout
            .iter()
            .enumerate()
            .map(|(i, (id, lo, hi, nodes))| NewShard {
                shard_id: *id,
                shard_index: i as i64,
                hash_min: *lo,
                hash_max: *hi,
                placements: nodes
                    .iter()
                    .map(|n| {
                        let files: Vec<FileRecord> = files
                            .iter()
                            .filter(|f| f.shard_id == *id && f.placement_key == *n)
                            .map(to_record)
                            .collect();
                        (*n, files)
                    })
                    .collect(),
            })
            .collect())
    }

    /// Streams all rows of one shard from its first reachable placement.
    pub async fn scan_shard(
        &self,
        snapshot: &TableSnapshot,
        shard_id: i64,
        schema: &SchemaRef,
    ) -> Result<
        futures::stream::BoxStream<'static, shoal_shard_store::Result<arrow::array::RecordBatch>>,
    > {
        let shard = snapshot
            .shards
            .iter()
            .find(|s| s.shard_id == shard_id)
            .ok_or_else(|| ClusterError::Internal {
                message: format!("shard {shard_id} not in snapshot"),
            })?;
        let mut last_err: Option<ClusterError> = None;
        for p in &shard.placements {
            let req = ScanRequest {
                table_id: snapshot.table.table_id,
                shards: vec![scan_files(shard_id, &p.files)],
                table_schema: Arc::clone(schema),
                filters: vec![],
                projection: None,
                aggregate: None,
                limit: None,
            };
            match self.worker(&p.addr())?.scan(&req).await {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e.into()),
            }
        }
        Err(last_err.unwrap_or_else(|| ClusterError::ShardUnavailable {
            message: format!("shard {shard_id} has no placement"),
            hint: None,
        }))
    }

    /// The shard of `table` that holds `value` of its distribution column.
    pub fn shard_id_for_value(&self, table_name: &str, value: &ScalarValue) -> Result<i64> {
        let snap = self.catalog.snapshot(table_name)?;
        match snap.table.kind {
            TableKind::Distributed => {
                let col = snap.table.distribution_column.clone().unwrap_or_default();
                let def = snap
                    .table
                    .columns
                    .iter()
                    .find(|c| c.name == col)
                    .ok_or_else(|| ClusterError::Internal {
                        message: format!("distribution column {col} missing"),
                    })?;
                let h = routing::hash_scalar(value, &arrow_type(&def.sql_type), &col)?;
                routing::ShardRanges::new(snap.shards.iter().map(|s| (s.hash_min, s.hash_max)))
                    .shard_of(h)
                    .map(|i| snap.shards[i].shard_id)
                    .ok_or_else(|| ClusterError::Internal {
                        message: format!("no shard covers hash {h}"),
                    })
            }
            _ => snap
                .shards
                .first()
                .map(|s| s.shard_id)
                .ok_or_else(|| ClusterError::Internal {
                    message: "table has no shard".into(),
                }),
        }
    }

    /// A writer for one statement into `snapshot`'s table: every shard, every placement.
    pub fn writer_for(&self, snapshot: &TableSnapshot) -> Result<ShardWriter> {
        let schema = stored_schema(&snapshot.table.columns);
        for s in &snapshot.shards {
            if s.state == ShardState::Lost || s.placements.is_empty() {
                return Err(ClusterError::ShardUnavailable {
                    message: format!(
                        "shard {} of table \"{}\" is lost: its only placement was removed",
                        s.shard_id, snapshot.table.name
                    ),
                    hint: None,
                });
            }
        }
        let targets: Vec<ShardTarget> = snapshot
            .shards
            .iter()
            .map(|s| ShardTarget {
                shard_id: s.shard_id,
                hash_range: (s.hash_min, s.hash_max),
                placements: s
                    .placements
                    .iter()
                    .map(|p| (p.placement_id, p.addr()))
                    .collect(),
            })
            .collect();
        let clients = self.clients_for(&targets)?;
        let dist = stored_distribution_column(&snapshot.table);
        let dist = dist.as_deref();
        Ok(
            ShardWriter::new(snapshot.table.table_id, schema, dist, targets, clients)?
                .checking_not_null(&snapshot.table),
        )
    }

    /// Commits what a statement's writer produced, in one catalog transaction.
    pub fn commit(&self, files: &[WrittenFile]) -> Result<u64> {
        let new: Vec<NewFile> = files
            .iter()
            .map(|f| NewFile {
                placement_id: f.placement_key,
                file: to_record(f),
            })
            .collect();
        self.catalog.commit_files(&new)?;
        Ok(files.iter().map(|f| f.file.rows).sum())
    }

    // ---- upkeep --------------------------------------------------------------------------

    /// Deletes files and shard directories that no committed state and no running query
    /// refers to any more.
    pub async fn cleanup_once(&self) -> Result<usize> {
        let due = self.catalog.due_cleanup()?;
        self.run_cleanup_records(&due).await
    }

    /// Runs the given cleanup records that are due, that no running query still needs, and
    /// that are older than `cleanup.retain_deleted_ms` (so that a catalog backup younger than
    /// that still finds every file it names); returns how many ran. A record whose worker
    /// cannot be reached stays for later.
    pub async fn run_cleanup_records(&self, records: &[CleanupRecord]) -> Result<usize> {
        let retain_ms =
            i64::try_from(self.catalog.cluster_settings()?.retain_deleted_ms).unwrap_or(i64::MAX);
        self.run_cleanup(records, retain_ms).await
    }

    /// [`Self::run_cleanup_records`] without the retention: for the deletes that must
    /// happen before a move lands on a node (file names are kept, so a pending delete of an
    /// earlier placement there would remove the new copy).
    pub(crate) async fn run_cleanup_records_now(&self, records: &[CleanupRecord]) -> Result<usize> {
        self.run_cleanup(records, 0).await
    }

    async fn run_cleanup(&self, records: &[CleanupRecord], retain_ms: i64) -> Result<usize> {
        let _running = self.cleanup_running.lock().await;
        let oldest = self.oldest_snapshot_ms();
        let nodes: HashMap<i64, Node> = self
            .catalog
            .list_nodes()?
            .into_iter()
            .map(|n| (n.node_id, n))
            .collect();
        // One call per shard directory and one catalog commit per call: a compaction or a
        // load leaves hundreds of small files to delete, and a call and a commit for each
        // took seconds (and held up the move whose cleanup step ran them).
        let mut removed_nodes = Vec::new();
        let mut files: BTreeMap<(i64, i64, i64), Vec<&CleanupRecord>> = BTreeMap::new();
        let mut shard_dirs = Vec::new();
        for rec in records {
            if rec.not_before_ms.saturating_add(retain_ms) > now_ms()
                || oldest.is_some_and(|o| o <= rec.not_before_ms)
            {
                continue;
            }
            if !nodes.contains_key(&rec.node_id) {
                // node removed: nothing left to delete there
                removed_nodes.push(rec.cleanup_id);
                continue;
            }
            match &rec.file_name {
                Some(_) => files
                    .entry((rec.node_id, rec.table_id, rec.shard_id))
                    .or_default()
                    .push(rec),
                None => shard_dirs.push(rec),
            }
        }
        self.catalog.finish_cleanups(&removed_nodes)?;
        let mut done = 0;
        for ((node_id, table_id, shard_id), recs) in files {
            let Some(node) = nodes.get(&node_id) else {
                continue;
            };
            let names: Vec<String> = recs.iter().filter_map(|r| r.file_name.clone()).collect();
            match self
                .worker(&node.addr())?
                .delete_files(table_id, shard_id, names)
                .await
            {
                Ok(()) => {
                    let ids: Vec<i64> = recs.iter().map(|r| r.cleanup_id).collect();
                    self.catalog.finish_cleanups(&ids)?;
                    done += ids.len();
                }
                Err(e) => warn!(node = %node.addr(), error = %e, "cleanup deferred"),
            }
        }
        // Whole shard directories go after the files in them.
        for rec in shard_dirs {
            let Some(node) = nodes.get(&rec.node_id) else {
                continue;
            };
            match self
                .worker(&node.addr())?
                .drop_shards(rec.table_id, vec![rec.shard_id])
                .await
            {
                Ok(()) => {
                    self.catalog.finish_cleanup(rec.cleanup_id)?;
                    done += 1;
                }
                Err(e) => warn!(node = %node.addr(), error = %e, "cleanup deferred"),
            }
        }
        Ok(done)
    }

    /// Deletes orphan files: files on a live worker that are at least `grace_ms` old and that
    /// neither the catalog's file list for that node nor any pending cleanup record names
    /// (the cleanup loop handles those). They are left behind by a statement whose worker or
    /// coordinator crashed before its files were committed, and are invisible to every query.
    /// Returns how many files were deleted.
    ///
    /// Races with statements in flight: a file written but not committed yet is young, hence
    /// the grace period. The worker's files are listed *before* the catalog is read, so a file
    /// committed between the two reads is in the catalog's list and kept. The catalog's file
    /// list is read before its cleanup records: a file moves only from the first to the
    /// second (compaction, truncate, drop), so it is always found in one of them. A worker
    /// that cannot be listed is skipped until the next round.
    pub async fn collect_orphans(&self, grace_ms: u64) -> Result<usize> {
        let mut deleted = 0;
        for node in self.catalog.list_nodes()? {
            if !node.is_live {
                continue;
            }
            let addr = node.addr();
            let client = self.worker(&addr)?;
            // The worker first, then the catalog (see above).
            let stored = match client.list_files().await {
                Ok(files) => files,
                Err(e) => {
                    warn!(node = %addr, error = %e, "orphan collection skipped a worker");
                    continue;
                }
            };
            let candidates: Vec<_> = stored
                .into_iter()
                .filter(|f| f.age_ms >= grace_ms)
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let listed: HashSet<(i64, i64, String)> = self
                .catalog
                .node_file_names(node.node_id)?
                .into_iter()
                .collect();
            let mut cleanup_files: HashSet<(i64, i64, String)> = HashSet::new();
            let mut cleanup_shards: HashSet<(i64, i64)> = HashSet::new();
            for (table_id, shard_id, name) in self.catalog.node_cleanup_names(node.node_id)? {
                match name {
                    Some(name) => {
                        cleanup_files.insert((table_id, shard_id, name));
                    }
                    None => {
                        cleanup_shards.insert((table_id, shard_id));
                    }
                }
            }
            let mut orphans: BTreeMap<(i64, i64), (Vec<String>, u64)> = BTreeMap::new();
            for f in candidates {
                let key = (f.table_id, f.shard_id, f.name);
                if listed.contains(&key)
                    || self.is_staged(&key)
                    || cleanup_files.contains(&key)
                    || cleanup_shards.contains(&(key.0, key.1))
                {
                    continue;
                }
                let (names, bytes) = orphans.entry((key.0, key.1)).or_default();
                names.push(key.2);
                *bytes += f.bytes;
            }
            for ((table_id, shard_id), (names, bytes)) in orphans {
                let count = names.len();
                match client.delete_files(table_id, shard_id, names).await {
                    Ok(()) => {
                        info!(
                            node = %addr,
                            table_id,
                            shard_id,
                            files = count,
                            bytes,
                            grace_ms,
                            "deleted orphan files"
                        );
                        deleted += count;
                    }
                    Err(e) => warn!(
                        node = %addr,
                        table_id,
                        shard_id,
                        error = %e,
                        "orphan files not deleted; retrying next round"
                    ),
                }
            }
        }
        Ok(deleted)
    }

    /// Merges the small files of every placement that has many, keeping query snapshots valid:
    /// the merged file is committed in one transaction and the old ones are deleted only after
    /// every query that could read them has ended.
    ///
    /// Only files under [`SMALL_FILE_BYTES`] are merged, once a placement has `min_files` of
    /// them: merging everything rewrote a whole shard (hundreds of MB) to absorb a few rows of
    /// new INSERTs, kept both cores busy while a writer ran, and held the write gate for the
    /// whole table meanwhile, so a move could not fence it. Each placement is merged under its
    /// own short hold of the gate, and a shard group that is moving is left alone until its move
    /// ends (the table's other placements are not).
    pub async fn compact_once(&self, min_files: usize) -> Result<usize> {
        self.compact_tables(min_files, None).await
    }

    /// [`Self::compact_once`] over the tables `only` names (every table when `None`):
    /// `VACUUM`.
    pub async fn compact_tables(&self, min_files: usize, only: Option<&[i64]>) -> Result<usize> {
        let mut merged = 0;
        // Taken before the catalog read: the files merged below stay until this round ends.
        let _guard = self.begin_snapshot();
        for snap in self.catalog.snapshot_all()? {
            if only.is_some_and(|ids| !ids.contains(&snap.table.table_id)) {
                continue;
            }
            let key = gate_key(snap.table.colocation_id, snap.table.table_id);
            let schema = stored_schema(&snap.table.columns);
            // the merged file is clustered as the writer clusters every put
            let cluster_by = stored_distribution_column(&snap.table);
            for shard in &snap.shards {
                for p in &shard.placements {
                    let small: Vec<&FileRecord> = p
                        .files
                        .iter()
                        .filter(|f| f.bytes < SMALL_FILE_BYTES)
                        .collect();
                    if small.len() < min_files.max(2) || self.is_moving(key, shard.shard_index) {
                        continue;
                    }
                    // Holding the gate makes a move's fence wait for this merge to commit.
                    let _permit = self.gates.admit(key).await;
                    if self.is_moving(key, shard.shard_index) {
                        // It started moving while the gate was awaited.
                        continue;
                    }
                    let names: Vec<String> = small.iter().map(|f| f.name.clone()).collect();
                    let client = self.worker(&p.addr())?;
                    let req = ScanRequest {
                        table_id: snap.table.table_id,
                        shards: vec![scan_files(shard.shard_id, small.iter().copied())],
                        table_schema: Arc::clone(&schema),
                        filters: vec![],
                        projection: None,
                        aggregate: None,
                        limit: None,
                    };
                    let rows = match client.scan(&req).await {
                        Ok(s) => s,
                        Err(e) => {
                            warn!(error = %e, "compaction skipped");
                            continue;
                        }
                    };
                    let file = client
                        .put_clustered(
                            snap.table.table_id,
                            shard.shard_id,
                            Arc::clone(&schema),
                            cluster_by.as_deref(),
                            rows,
                        )
                        .await?;
                    let expected: u64 = small.iter().map(|f| f.rows).sum();
                    if file.rows != expected {
                        return Err(ClusterError::Internal {
                            message: format!(
                                "compaction of shard {} read {} rows, expected {expected}",
                                shard.shard_id, file.rows
                            ),
                        });
                    }
                    let record = FileRecord {
                        name: file.name,
                        bytes: file.bytes,
                        rows: file.rows,
                        checksum: file.checksum,
                    };
                    match self
                        .catalog
                        .replace_files(p.placement_id, &names, &record, 0)
                    {
                        Ok(()) => merged += 1,
                        Err(e) => {
                            // the placement changed meanwhile; the new file is garbage
                            warn!(error = %e, "compaction result discarded");
                            let _ = client
                                .delete_files(
                                    snap.table.table_id,
                                    shard.shard_id,
                                    vec![record.name],
                                )
                                .await;
                        }
                    }
                }
            }
        }
        Ok(merged)
    }
}

/// The stored name of a hash-distributed table's distribution column (what a writer routes
/// rows by and a put clusters them by); `None` for reference and single-shard tables.
pub fn stored_distribution_column(table: &TableInfo) -> Option<String> {
    match table.kind {
        TableKind::Distributed => table
            .distribution_column
            .as_deref()
            .map(|d| stored_name_of(table, d)),
        _ => None,
    }
}

/// The stored name (the name in the files) of `table`'s column `name`.
pub fn stored_name_of(table: &TableInfo, name: &str) -> String {
    table
        .columns
        .iter()
        .find(|c| c.name == name)
        .map_or_else(|| name.to_string(), |c| c.stored_name.clone())
}

/// The catalog record of a file a worker wrote.
pub fn to_record(f: &WrittenFile) -> FileRecord {
    FileRecord {
        name: f.file.name.clone(),
        bytes: f.file.bytes,
        rows: f.file.rows,
        checksum: f.file.checksum,
    }
}

/// The files of one placement for a scan, each checked against the catalog's size and
/// CRC-32C before the worker reads it.
pub fn scan_files<'a>(
    shard_id: i64,
    files: impl IntoIterator<Item = &'a FileRecord>,
) -> ShardFiles {
    ShardFiles::checked(
        shard_id,
        files.into_iter().map(|f| {
            (
                f.name.clone(),
                FileCheck {
                    bytes: f.bytes,
                    checksum: f.checksum,
                },
            )
        }),
    )
}
