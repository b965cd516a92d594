//! Each connection's session: its transaction (`BEGIN` ... `COMMIT`, or the implicit one of a
//! multi-statement query string) and the query handlers that run every statement inside it.
//!
//! A transaction's writes are staged: their files are on the workers but no catalog state
//! names them, so nobody else sees them. Its reads see one snapshot (pinned at its first
//! table access) with its own staged changes applied. COMMIT publishes every staged change
//! in one catalog transaction; ROLLBACK, an error, a dropped connection or a crash publish
//! nothing, and the staged files are deleted (or, after a crash, collected as orphans).
//!
//! DataFusion plans every connection's statements on one shared `SessionContext`, so the
//! statement's session travels in a task-local ([`current`]) that table providers read while
//! they plan.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::{
    Set, Statement, TransactionAccessMode, TransactionIsolationLevel, TransactionMode,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use datafusion_postgres::pgwire::api::portal::{Format as PortalFormat, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::DEFAULT_NAME;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::extendedquery::{Parse, Sync as PgSync};
use datafusion_postgres::pgwire::messages::response::{NoticeResponse, TransactionStatus};
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt, StreamExt};
use shoal_catalog::{
    FileChanges, FileRecord, NewFile, RemovedFile, TableChanges, TableSnapshot, TxnTables,
};
use shoal_sql_functions::{Cluster, ClusterError, SnapshotGuard};

use crate::frontend::errors::{self, PgError};
use crate::frontend::prepared::{BoundParameter, PreparedStatements, SessionStatement};
use crate::frontend::settings::Settings;

tokio::task_local! {
    static CURRENT: Arc<Session>;
}

/// The session of the statement running on this task, if it came from a client connection.
pub fn current() -> Option<Arc<Session>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Where a session is in the transaction protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnMode {
    /// No transaction: each statement commits on its own.
    Autocommit,
    /// The statements of one multi-statement query string, committed together at its end.
    Implicit,
    /// Between `BEGIN` and `COMMIT`/`ROLLBACK`.
    Block,
    /// A statement of the block failed: everything but `ROLLBACK` (or `ROLLBACK TO`) fails.
    Failed,
}

/// A file a transaction wrote and has not published.
#[derive(Clone, Debug)]
pub struct StagedFile {
    pub addr: String,
    pub shard_id: i64,
    pub placement_id: i64,
    pub file: FileRecord,
}

/// What one statement of a transaction changed in one table's file lists.
#[derive(Clone, Debug)]
pub struct StagedWrite {
    pub table_id: i64,
    pub table_name: String,
    pub added: Vec<StagedFile>,
    pub removed: Vec<RemovedFile>,
}

struct Pinned {
    tables: HashMap<String, TableSnapshot>,
    /// Keeps every file of the pinned snapshot on disk until the transaction ends.
    _guard: SnapshotGuard,
}

#[derive(Default)]
struct Txn {
    pinned: Option<Pinned>,
    /// Rows INSERTed and not written yet, per table, with their size in bytes.
    buffered: std::collections::BTreeMap<String, (Vec<arrow::array::RecordBatch>, usize)>,
    writes: Vec<StagedWrite>,
    savepoints: Vec<Savepoint>,
    /// The session's settings when the transaction began: ROLLBACK restores them.
    settings_at_begin: Option<Settings>,
    /// Whether a statement other than transaction control has run: the isolation level
    /// and READ WRITE can no longer be set.
    queried: bool,
    /// The isolation level BEGIN or SET TRANSACTION asked for (None: the default).
    isolation: Option<TransactionIsolationLevel>,
    /// Cursors declared without WITH HOLD: they close when the transaction ends.
    cursors: Vec<String>,
}

/// PostgreSQL's `default_transaction_isolation`, which a transaction asks for unless it
/// names a level.
const DEFAULT_ISOLATION: TransactionIsolationLevel = TransactionIsolationLevel::ReadCommitted;

struct Savepoint {
    name: String,
    /// How many writes were staged when it was set.
    writes: usize,
    /// How many tables the transaction had created and dropped then.
    tables: shoal_catalog::ChangesMark,
    /// The settings then: ROLLBACK TO restores them.
    settings: Settings,
}

struct State {
    mode: TxnMode,
    read_only: bool,
    txn: Txn,
    settings: Settings,
    /// The reported parameters' values the client was last told (ParameterStatus).
    reported: Vec<(&'static str, String)>,
}

pub struct Session {
    cluster: Arc<Cluster>,
    /// The logged-in user.
    user: String,
    state: Mutex<State>,
    /// `PREPARE`d statements.
    prepared: Mutex<PreparedStatements>,
    /// Cursors of an ended transaction, to close on the connection.
    closed_cursors: Mutex<Vec<String>>,
    /// The UPDATE or DELETE this session is planning, whose target table reads with row ids.
    dml: Mutex<Option<Arc<crate::query::dml::DmlTarget>>>,
    /// The tables the transaction created and dropped, which the catalog's look-ups by
    /// name see while a statement of this session runs ([`Session::scope`]).
    tables: Arc<TxnTables>,
    /// What `nextval` (and a serial column's default) last returned in this session.
    sequences: Mutex<SequenceValues>,
}

/// The values this session's `nextval` calls returned: `currval(seq)` is the last of `seq`,
/// `lastval()` the last of any. Not transactional, as in PostgreSQL.
#[derive(Debug, Default)]
pub struct SequenceValues {
    by_sequence: HashMap<i64, i64>,
    last: Option<i64>,
}

impl SequenceValues {
    pub fn record(&mut self, seq_id: i64, value: i64) {
        self.by_sequence.insert(seq_id, value);
        self.last = Some(value);
    }

    pub fn current(&self, seq_id: i64) -> Option<i64> {
        self.by_sequence.get(&seq_id).copied()
    }

    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// `DISCARD SEQUENCES`.
    pub fn clear(&mut self) {
        *self = SequenceValues::default();
    }
}

/// Rows are computed while pgwire sends them, after the handler returned: each poll of a
/// result's rows runs in its session's scope, so what reads the session (`currval`, the
/// tables a transaction created, the tasks DataFusion spawns meanwhile) sees it.
struct ScopedRows {
    session: Arc<Session>,
    rows: datafusion_postgres::pgwire::api::results::SendableRowStream,
}

impl futures::Stream for ScopedRows {
    type Item = PgWireResult<datafusion_postgres::pgwire::messages::data::DataRow>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let session = Arc::clone(&this.session);
        session.sync_scope(|| this.rows.poll_next_unpin(cx))
    }
}

/// Makes the rows of `response` stream in `session`'s scope.
fn scoped_rows(session: &Arc<Session>, response: &mut Response) {
    if let Response::Query(q) = response {
        let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
        q.data_rows = Box::pin(ScopedRows {
            session: Arc::clone(session),
            rows,
        });
    }
}

impl Session {
    /// The session's `DateStyle` and `IntervalStyle`, as pgwire's text encoders take them.
    pub fn output_styles(&self) -> (String, String) {
        let st = self.lock();
        let get = |name: &str| st.settings.get(name).ok().flatten().unwrap_or_default();
        (get("DateStyle"), get("IntervalStyle"))
    }

    /// The session's `TimeZone`: `None` for UTC (under any of its names), else an IANA
    /// zone name, in which timestamptz values are shown and local times read.
    pub fn time_zone(&self) -> Option<String> {
        let zone = self.lock().settings.get("TimeZone").ok().flatten()?;
        (!crate::frontend::settings::is_utc(&zone)).then_some(zone)
    }

    /// `shoal.distributed_execution`: whether queries over distributed tables may run in
    /// stages on the workers.
    pub fn distributed_execution(&self) -> bool {
        let value = self
            .lock()
            .settings
            .get("shoal.distributed_execution")
            .ok()
            .flatten();
        value.as_deref() != Some("off")
    }

    /// A session for the client whose startup parameters are `startup` (`user` among
    /// them); the reported parameters are those the startup sent ([`startup_parameters`]).
    pub fn new(cluster: Arc<Cluster>, startup: &HashMap<String, String>) -> Session {
        let user = startup
            .get("user")
            .cloned()
            .unwrap_or_else(|| "shoal".to_string());
        let settings = Settings::from_startup(&user, startup);
        let reported = settings.reported();
        Session {
            cluster,
            user,
            state: Mutex::new(State {
                mode: TxnMode::Autocommit,
                read_only: false,
                txn: Txn::default(),
                settings,
                reported,
            }),
            prepared: Mutex::new(PreparedStatements::default()),
            closed_cursors: Mutex::new(Vec::new()),
            dml: Mutex::new(None),
            tables: Arc::new(TxnTables::new()),
            sequences: Mutex::new(SequenceValues::default()),
        }
    }

    /// Runs a statement of this session: the providers find the session, and the catalog
    /// resolves names as its transaction sees them.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, f: F) -> F::Output {
        CURRENT.scope(Arc::clone(self), self.tables.scope(f)).await
    }

    /// [`Self::scope`] for one synchronous step.
    pub fn sync_scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(Arc::clone(self), || self.tables.sync_scope(f))
    }

    /// The session's last value of each sequence (`currval`, `lastval`).
    pub fn sequence_values(&self) -> MutexGuard<'_, SequenceValues> {
        self.sequences.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id a table this session's transaction creates is pending under (`None`
    /// outside a transaction: the table is committed at once).
    pub fn pending_txn(&self) -> Option<u64> {
        self.in_transaction().then(|| self.tables.txn())
    }

    /// Records a table the transaction created (pending until COMMIT).
    pub fn created_table(&self, table_id: i64, name: &str) {
        self.tables.record_created(table_id, name);
    }

    /// `DROP TABLE` inside a transaction: the table is gone for it at once, for everyone
    /// else at COMMIT.
    pub fn drop_table(&self, table_id: i64, name: &str) {
        self.tables.record_dropped(table_id, name);
    }

    /// `CREATE INDEX` or `DROP INDEX` inside a transaction: the catalog learns of it at
    /// COMMIT; ROLLBACK forgets it.
    pub fn change_index(&self, change: shoal_catalog::IndexChange) {
        self.tables.record_index(change);
    }

    /// The indexes this session's transaction sees, given the committed ones.
    pub fn visible_indexes(
        &self,
        committed: Vec<shoal_catalog::IndexDef>,
    ) -> Vec<shoal_catalog::IndexDef> {
        self.tables.changes().visible_indexes(committed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mode(&self) -> TxnMode {
        self.lock().mode
    }

    /// Whether writes are staged (inside a block or an implicit transaction).
    pub fn in_transaction(&self) -> bool {
        matches!(self.mode(), TxnMode::Implicit | TxnMode::Block)
    }

    fn prepared(&self) -> MutexGuard<'_, PreparedStatements> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The logged-in user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// A setting's current value (`None`: a custom parameter never set). The transaction's
    /// own state answers `transaction_isolation` and `transaction_read_only`.
    pub fn setting(&self, name: &str) -> Result<Option<String>, PgError> {
        let st = self.lock();
        if name.eq_ignore_ascii_case("transaction_read_only") {
            // Whether the transaction is READ ONLY.
            let ro = st.read_only && st.mode != TxnMode::Autocommit;
            return Ok(Some(if ro { "on" } else { "off" }.into()));
        }
        st.settings.get(name)
    }

    /// `SET [LOCAL]`, `RESET` (`value` None) or `set_config()`.
    pub fn set_setting(&self, name: &str, value: Option<&str>, local: bool) -> Result<(), PgError> {
        self.lock().settings.set(name, value, local)
    }

    /// Whether `SET name = value` would be taken, changing nothing.
    pub fn check_setting(&self, name: &str, value: Option<&str>) -> Result<(), PgError> {
        let mut copy = self.lock().settings.clone();
        copy.set(name, value, false)
    }

    /// `RESET ALL`.
    pub fn reset_settings(&self) {
        self.lock().settings.reset_all();
    }

    /// `SHOW ALL`'s rows.
    pub fn all_settings(&self) -> Vec<(&'static str, String, &'static str)> {
        let rows = self.lock().settings.all();
        rows.into_iter()
            .map(|(name, value, description)| match self.setting(name) {
                Ok(Some(v)) => (name, v, description),
                _ => (name, value, description),
            })
            .collect()
    }

    /// After a statement: the settings pgwire and the encoders read from the connection's
    /// metadata take their current values, and the client hears of every reported
    /// parameter that changed (ParameterStatus, as PostgreSQL sends before ReadyForQuery).
    async fn sync_client<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send,
        C::PortalStore: PortalStore,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let closed = std::mem::take(
            &mut *self
                .closed_cursors
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for name in closed {
            client.portal_store().rm_portal(&name);
        }
        let (mirrored, changed) = {
            let mut st = self.lock();
            if st.mode == TxnMode::Autocommit {
                // A statement outside a transaction was its own: its local settings end.
                st.settings.end_local();
            }
            let get = |name: &str| st.settings.get(name).ok().flatten().unwrap_or_default();
            let timeout_ms =
                crate::frontend::statement_timeout::parse(&get("statement_timeout")).unwrap_or(0);
            let mirrored = [
                ("datestyle", get("DateStyle")),
                ("intervalstyle", get("IntervalStyle")),
                ("bytea_output", get("bytea_output")),
                ("extra_float_digits", get("extra_float_digits")),
                ("timezone", get("TimeZone")),
                (
                    crate::frontend::statement_timeout::METADATA_KEY,
                    timeout_ms.to_string(),
                ),
            ];
            let now = st.settings.reported();
            let changed: Vec<(&'static str, String)> = now
                .iter()
                .filter(|kv| !st.reported.contains(kv))
                .cloned()
                .collect();
            st.reported = now;
            (mirrored, changed)
        };
        let metadata = client.metadata_mut();
        for (key, value) in mirrored {
            if key == crate::frontend::statement_timeout::METADATA_KEY && value == "0" {
                metadata.remove(key);
            } else {
                metadata.insert(key.to_string(), value);
            }
        }
        for (name, value) in changed {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name.to_string(),
                    value,
                )))
                .await?;
        }
        Ok(())
    }

    /// Fails with 25006 in a `READ ONLY` transaction.
    pub fn check_writable(&self, command: &str) -> Result<(), ClusterError> {
        let st = self.lock();
        if st.read_only && matches!(st.mode, TxnMode::Block | TxnMode::Implicit) {
            return Err(ClusterError::ReadOnly {
                message: format!("cannot execute {command} in a read-only transaction"),
            });
        }
        Ok(())
    }

    pub(crate) fn dml_target(&self, table: &str) -> Option<Arc<crate::query::dml::DmlTarget>> {
        let d = self.dml.lock().unwrap_or_else(|e| e.into_inner());
        d.as_ref().filter(|t| t.table_name() == table).cloned()
    }

    pub(crate) fn set_dml_target(&self, target: Option<Arc<crate::query::dml::DmlTarget>>) {
        *self.dml.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// The table as this transaction sees it: its pinned snapshot with the transaction's own
    /// changes applied. `None` outside a transaction (read the catalog).
    pub fn view(&self, table: &str) -> Result<Option<TableSnapshot>, ClusterError> {
        let mut st = self.lock();
        if !matches!(st.mode, TxnMode::Implicit | TxnMode::Block) {
            return Ok(None);
        }
        let pinned = match &mut st.txn.pinned {
            Some(p) => p,
            slot @ None => {
                // The guard before the read: the files it lists stay while it is pinned.
                let guard = self.cluster.begin_snapshot();
                let tables = self
                    .cluster
                    .catalog()
                    .snapshot_all()?
                    .into_iter()
                    .map(|s| (s.table.name.clone(), s))
                    .collect();
                slot.insert(Pinned {
                    tables,
                    _guard: guard,
                })
            }
        };
        let changes = self.tables.changes();
        let mut snap = match pinned.tables.get(table) {
            // The name may mean a table this transaction created, not the pinned one.
            Some(_) if changes.changes_name(table) => self.cluster.catalog().snapshot(table)?,
            Some(s) => s.clone(),
            None if changes.changes_name(table) => self.cluster.catalog().snapshot(table)?,
            None => {
                // Created after the snapshot was pinned.
                let s = self.cluster.catalog().snapshot(table)?;
                pinned.tables.insert(table.to_string(), s.clone());
                s
            }
        };
        let table_id = snap.table.table_id;
        for w in st.txn.writes.iter().filter(|w| w.table_id == table_id) {
            apply(&mut snap, w);
        }
        Ok(Some(snap))
    }

    /// (placement, name) of every file this transaction has staged.
    pub fn staged_names(&self) -> HashSet<(i64, String)> {
        self.lock()
            .txn
            .writes
            .iter()
            .flat_map(|w| {
                w.added
                    .iter()
                    .map(|f| (f.placement_id, f.file.name.clone()))
            })
            .collect()
    }

    /// Holds INSERTed rows of `table` until [`Session::flush`]; the bytes now held for it.
    pub fn buffer(&self, table: &str, batch: arrow::array::RecordBatch) -> usize {
        let mut st = self.lock();
        let entry = st.txn.buffered.entry(table.to_string()).or_default();
        entry.1 += batch.get_array_memory_size();
        entry.0.push(batch);
        entry.1
    }

    /// Writes the held rows (of `only` that table, or of all) to staged files. Runs before
    /// anything that may read them, at SAVEPOINT and at COMMIT.
    pub async fn flush(&self, only: Option<&str>) -> Result<(), ClusterError> {
        let tables: Vec<(String, Vec<arrow::array::RecordBatch>)> = {
            let mut st = self.lock();
            let names: Vec<String> = st
                .txn
                .buffered
                .keys()
                .filter(|t| only.is_none_or(|o| o == t.as_str()))
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|n| st.txn.buffered.remove(&n).map(|(b, _)| (n, b)))
                .collect()
        };
        // Tables resolve as the transaction sees them: it may have created them.
        self.tables
            .scope(async {
                for (table, batches) in tables {
                    let stream = futures::stream::iter(batches.into_iter().map(Ok)).boxed();
                    crate::query::sink::write_files(&self.cluster, &table, stream, Some(self))
                        .await?;
                }
                Ok(())
            })
            .await
    }

    fn has_buffered(&self) -> bool {
        !self.lock().txn.buffered.is_empty()
    }

    /// Adds a statement's changes to the transaction.
    pub fn stage(&self, write: StagedWrite) {
        for (shard, names) in names_by_shard(&write.added) {
            self.cluster.hold_staged(write.table_id, shard, &names);
        }
        self.lock().txn.writes.push(write);
    }

    fn begin(&self, mode: TxnMode, read_only: bool) {
        let mut st = self.lock();
        st.mode = mode;
        st.read_only = read_only;
        st.txn = Txn {
            settings_at_begin: Some(st.settings.clone()),
            ..Txn::default()
        };
    }

    /// Ends the transaction, handing back what it staged. Its settings stay if it
    /// committed (but for `SET LOCAL`s) and are undone if not.
    fn end(&self, committed: bool) -> Txn {
        let mut st = self.lock();
        st.mode = TxnMode::Autocommit;
        st.read_only = false;
        let mut txn = std::mem::take(&mut st.txn);
        self.closed_cursors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut txn.cursors);
        match txn.settings_at_begin.take() {
            Some(before) if !committed => st.settings = before,
            _ => {}
        }
        st.settings.end_local();
        txn
    }

    /// Publishes everything staged in one catalog transaction. On error nothing is
    /// published and the transaction is over all the same, as in PostgreSQL.
    pub async fn commit(&self) -> Result<(), ClusterError> {
        let tables = Arc::clone(&self.tables);
        tables
            .scope(async {
                if let Err(e) = self.flush(None).await {
                    self.rollback().await;
                    return Err(e);
                }
                let txn = self.end(true);
                // The changes stay in force while publishing: the write gates resolve the
                // tables the transaction created by name.
                let changes = self.tables.changes();
                let result = self.publish(txn.writes, &changes).await;
                self.tables.take();
                if result.is_err() {
                    self.drop_pending(&changes.created_ids());
                }
                result
            })
            .await
    }

    pub async fn rollback(&self) {
        let txn = self.end(false);
        let changes = self.tables.take();
        self.drop_pending(&changes.created_ids());
        self.discard(txn.writes).await;
    }

    /// Deletes tables this transaction created and will not commit.
    fn drop_pending(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.cluster.catalog().drop_pending_tables(Some(ids)) {
            // They stay invisible to everyone; the next start-up deletes them.
            tracing::warn!(error = %e, "tables of a rolled-back transaction stay until restart");
        }
    }

    async fn publish(
        &self,
        writes: Vec<StagedWrite>,
        table_changes: &TableChanges,
    ) -> Result<(), ClusterError> {
        // Writes to a table the transaction dropped are never published.
        let dropped = table_changes.dropped_ids();
        let (writes, garbage): (Vec<StagedWrite>, Vec<StagedWrite>) = writes
            .into_iter()
            .partition(|w| !dropped.contains(&w.table_id));
        self.discard(garbage).await;
        let removed: HashSet<(i64, String)> = writes
            .iter()
            .flat_map(|w| w.removed.iter().map(|r| (r.placement_id, r.name.clone())))
            .collect();
        let added: HashSet<(i64, String)> = writes
            .iter()
            .flat_map(|w| {
                w.added
                    .iter()
                    .map(|f| (f.placement_id, f.file.name.clone()))
            })
            .collect();
        let mut changes = FileChanges::default();
        let mut seen = HashSet::new();
        for w in &writes {
            for r in &w.removed {
                let key = (r.placement_id, r.name.clone());
                // A file this transaction added and then rewrote was never published.
                if !added.contains(&key) && seen.insert(key) {
                    changes.removed.push(r.clone());
                }
            }
            for f in &w.added {
                if !removed.contains(&(f.placement_id, f.file.name.clone())) {
                    changes.added.push(NewFile {
                        placement_id: f.placement_id,
                        file: f.file.clone(),
                    });
                }
            }
        }
        let result = if changes.removed.is_empty() && changes.added.is_empty() {
            if table_changes.is_empty() {
                Ok(())
            } else {
                self.cluster
                    .commit_transaction(&changes, self.tables.txn(), table_changes)
            }
        } else {
            let mut tables: Vec<&str> = writes.iter().map(|w| w.table_name.as_str()).collect();
            tables.sort_unstable();
            tables.dedup();
            // A move's switch waits for these permits, so no placement written to can be
            // switched between the check in the catalog and the publish.
            let mut permits = Vec::new();
            let mut admitted = Ok(());
            for t in tables {
                match self.cluster.admit_write(t).await {
                    Ok(p) => permits.push(p),
                    Err(e) => {
                        admitted = Err(e);
                        break;
                    }
                }
            }
            admitted.and_then(|()| {
                self.cluster
                    .commit_transaction(&changes, self.tables.txn(), table_changes)
            })
        };
        match result {
            Ok(()) => {
                // Only the files written and rewritten within the transaction are garbage.
                let garbage = writes
                    .iter()
                    .map(|w| StagedWrite {
                        added: w
                            .added
                            .iter()
                            .filter(|f| removed.contains(&(f.placement_id, f.file.name.clone())))
                            .cloned()
                            .collect(),
                        ..w.clone()
                    })
                    .collect::<Vec<_>>();
                self.release(&writes);
                delete_files(&self.cluster, &garbage).await;
                Ok(())
            }
            Err(e) => {
                self.discard(writes).await;
                Err(e)
            }
        }
    }

    /// Forgets staged writes and deletes their files.
    async fn discard(&self, writes: Vec<StagedWrite>) {
        self.release(&writes);
        delete_files(&self.cluster, &writes).await;
    }

    fn release(&self, writes: &[StagedWrite]) {
        for w in writes {
            for (shard, names) in names_by_shard(&w.added) {
                self.cluster.release_staged(w.table_id, shard, &names);
            }
        }
    }

    async fn savepoint(&self, name: &str) -> Result<(), ClusterError> {
        // Rows held now belong before the savepoint.
        self.flush(None).await?;
        self.set_savepoint(name);
        Ok(())
    }

    fn set_savepoint(&self, name: &str) {
        let mut st = self.lock();
        let savepoint = Savepoint {
            name: name.to_string(),
            writes: st.txn.writes.len(),
            tables: self.tables.mark(),
            settings: st.settings.clone(),
        };
        st.txn.savepoints.push(savepoint);
    }

    fn find_savepoint(&self, name: &str) -> Result<usize, PgError> {
        let st = self.lock();
        st.txn
            .savepoints
            .iter()
            .rposition(|s| s.name == name)
            .ok_or_else(|| PgError::new("3B001", format!("savepoint \"{name}\" does not exist")))
    }

    /// `ROLLBACK TO SAVEPOINT`: undoes what was staged since, keeps the savepoint.
    async fn rollback_to(&self, name: &str) -> Result<(), PgError> {
        let at = self.find_savepoint(name)?;
        let (dropped, tables) = {
            let mut st = self.lock();
            st.txn.savepoints.truncate(at + 1);
            let keep = st.txn.savepoints[at].writes;
            let tables = st.txn.savepoints[at].tables;
            st.settings = st.txn.savepoints[at].settings.clone();
            st.mode = TxnMode::Block;
            // Everything held was inserted after the savepoint (SAVEPOINT flushes).
            st.txn.buffered.clear();
            (st.txn.writes.split_off(keep), tables)
        };
        let created = self.tables.truncate(tables);
        self.drop_pending(&created);
        self.discard(dropped).await;
        Ok(())
    }

    fn release_savepoint(&self, name: &str) -> Result<(), PgError> {
        let at = self.find_savepoint(name)?;
        self.lock().txn.savepoints.truncate(at);
        Ok(())
    }

    /// A statement failed in the extended protocol: the implicit transaction of a pipeline
    /// rolls back at once (the messages up to the Sync are skipped), a block is failed.
    async fn fail_extended(&self) {
        if self.mode() == TxnMode::Implicit {
            self.rollback().await;
        } else {
            self.fail();
        }
    }

    /// A statement of the transaction failed.
    fn fail(&self) {
        let mut st = self.lock();
        if st.mode == TxnMode::Block {
            st.mode = TxnMode::Failed;
        }
    }

    /// pgwire marks the transaction failed when a statement fails after its handler
    /// returned (while its rows were sent).
    fn sync(&self, status: TransactionStatus) {
        if status == TransactionStatus::Error {
            self.fail();
        }
    }

    fn status(&self) -> TransactionStatus {
        match self.mode() {
            TxnMode::Autocommit => TransactionStatus::Idle,
            TxnMode::Implicit | TxnMode::Block => TransactionStatus::Transaction,
            TxnMode::Failed => TransactionStatus::Error,
        }
    }
}

impl Drop for Session {
    /// A connection that ends inside a transaction rolls it back.
    fn drop(&mut self) {
        let created = self.tables.take().created_ids();
        self.drop_pending(&created);
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let writes = std::mem::take(&mut st.txn.writes);
        if writes.is_empty() {
            return;
        }
        self.release(&writes);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let cluster = Arc::clone(&self.cluster);
            handle.spawn(async move { delete_files(&cluster, &writes).await });
        }
    }
}

fn names_by_shard(files: &[StagedFile]) -> HashMap<i64, Vec<String>> {
    let mut by_shard: HashMap<i64, Vec<String>> = HashMap::new();
    for f in files {
        by_shard
            .entry(f.shard_id)
            .or_default()
            .push(f.file.name.clone());
    }
    by_shard
}

fn apply(snap: &mut TableSnapshot, w: &StagedWrite) {
    for shard in &mut snap.shards {
        for p in &mut shard.placements {
            p.files.retain(|f| {
                !w.removed
                    .iter()
                    .any(|r| r.placement_id == p.placement_id && r.name == f.name)
            });
            for a in &w.added {
                if a.placement_id == p.placement_id {
                    p.files.push(a.file.clone());
                }
            }
        }
    }
}

async fn delete_files(cluster: &Cluster, writes: &[StagedWrite]) {
    for w in writes {
        delete_staged(cluster, w.table_id, &w.added).await;
    }
}

/// Deletes files written for a transaction or statement that will not publish them.
pub async fn delete_staged(cluster: &Cluster, table_id: i64, files: &[StagedFile]) {
    if files.is_empty() {
        return;
    }
    let files = files
        .iter()
        .map(|f| (f.addr.clone(), f.shard_id, f.file.name.clone()))
        .collect();
    cluster.delete_unlisted(table_id, files).await;
}

/// A transaction control statement.
#[derive(Debug, PartialEq)]
enum Control {
    Begin {
        read_only: bool,
        isolation: Option<TransactionIsolationLevel>,
    },
    Commit,
    Rollback,
    Savepoint(String),
    RollbackTo(String),
    Release(String),
    /// `SET TRANSACTION ...` (`session`: `SET SESSION CHARACTERISTICS AS TRANSACTION ...`).
    SetTransaction {
        read_only: Option<bool>,
        isolation: Option<TransactionIsolationLevel>,
        session: bool,
    },
}

/// What `BEGIN`'s or `SET TRANSACTION`'s modes ask.
struct Modes {
    /// `Some(read_only)` when they set the access mode.
    read_only: Option<bool>,
    /// The level they name: every level Shoal accepts runs as REPEATABLE READ, but the
    /// one asked for is kept so that changing it late fails as it does in PostgreSQL.
    isolation: Option<TransactionIsolationLevel>,
}

/// What `BEGIN`'s or `SET TRANSACTION`'s modes ask. Isolation levels Shoal cannot give are
/// refused.
fn access_mode(modes: &[TransactionMode]) -> Result<Modes, PgError> {
    let mut read_only = None;
    let mut isolation = None;
    for m in modes {
        match m {
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => read_only = Some(true),
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => {
                read_only = Some(false)
            }
            TransactionMode::IsolationLevel(
                level @ (TransactionIsolationLevel::ReadUncommitted
                | TransactionIsolationLevel::ReadCommitted
                | TransactionIsolationLevel::RepeatableRead),
            ) => isolation = Some(*level),
            TransactionMode::IsolationLevel(level) => {
                return Err(PgError::new(
                    "0A000",
                    format!("isolation level {level} is not supported"),
                )
                .with_hint(Some(
                    "Shoal transactions are REPEATABLE READ (snapshot isolation): a transaction \
                     whose rows another one changed first fails with 40001. Use ISOLATION \
                     LEVEL REPEATABLE READ."
                        .into(),
                )))
            }
        }
    }
    Ok(Modes {
        read_only,
        isolation,
    })
}

impl Control {
    fn of(stmt: &Statement) -> Option<Result<Control, PgError>> {
        Some(Ok(match stmt {
            Statement::StartTransaction { modes, .. } => match access_mode(modes) {
                Ok(m) => Control::Begin {
                    read_only: m.read_only.unwrap_or(false),
                    isolation: m.isolation,
                },
                Err(e) => return Some(Err(e)),
            },
            Statement::Set(Set::SetTransaction { modes, session, .. }) => {
                match access_mode(modes) {
                    Ok(m) => Control::SetTransaction {
                        read_only: m.read_only,
                        isolation: m.isolation,
                        session: *session,
                    },
                    Err(e) => return Some(Err(e)),
                }
            }
            Statement::Commit { .. } => Control::Commit,
            Statement::Rollback {
                savepoint: None, ..
            } => Control::Rollback,
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => Control::RollbackTo(name.value.clone()),
            Statement::Savepoint { name } => Control::Savepoint(name.value.clone()),
            Statement::ReleaseSavepoint { name } => Control::Release(name.value.clone()),
            _ => return None,
        }))
    }
}

/// Statements that change the schema: they run only outside a transaction block.
/// The schema changes that cannot run inside a transaction (CREATE TABLE [AS], DROP TABLE,
/// CREATE INDEX and DROP INDEX can: they are pending until COMMIT).
fn ddl_name(stmt: &Statement) -> Option<&'static str> {
    use datafusion::sql::sqlparser::ast::ObjectType;
    Some(match stmt {
        Statement::AlterTable(_) => "ALTER TABLE",
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::Index,
            ..
        } => return None,
        Statement::Drop { .. } => "DROP",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        _ => return None,
    })
}

fn aborted() -> PgError {
    PgError::new(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn outside_block(what: &str) -> PgError {
    PgError::new(
        "25P01",
        format!("{what} can only be used in transaction blocks"),
    )
}

/// The statements of a query string, each with its text; the whole string when it does not
/// parse here (the inner handler reports the error) or holds one statement.
fn split(query: &str) -> Vec<(String, Option<Statement>)> {
    match SqlParser::parse_sql(&PostgreSqlDialect {}, query) {
        Ok(mut v) if v.len() == 1 => vec![(query.to_string(), v.pop())],
        Ok(v) if v.len() > 1 => v.into_iter().map(|s| (s.to_string(), Some(s))).collect(),
        _ => vec![(query.to_string(), None)],
    }
}

/// A `FETCH` or `MOVE` as the `FETCH` sqlparser reads, `FETCH [direction] FROM name`
/// (PostgreSQL also takes `FETCH name`, `FETCH 2 name` and `MOVE`, which sqlparser does not
/// read); `moved` when it is a MOVE, whose rows are counted instead of sent. `None`: another
/// statement, or more than one.
struct CursorStep {
    fetch: String,
    moved: bool,
}

fn cursor_step(query: &str) -> Option<CursorStep> {
    let trimmed = query.trim();
    let body = trimmed.strip_suffix(';').unwrap_or(trimmed);
    let (keyword, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    let moved = keyword.eq_ignore_ascii_case("move");
    if !(moved || keyword.eq_ignore_ascii_case("fetch")) || rest.contains(';') {
        return None;
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let fetch = if words
        .iter()
        .any(|w| w.eq_ignore_ascii_case("from") || w.eq_ignore_ascii_case("in"))
    {
        format!("FETCH {rest}")
    } else {
        let (name, direction) = words.split_last()?;
        let direction = if direction.is_empty() {
            "NEXT".to_string()
        } else {
            direction.join(" ")
        };
        format!("FETCH {direction} FROM {name}")
    };
    Some(CursorStep { fetch, moved })
}

/// What `rewrite` makes of an error, as the client will see it.
fn error_info(mut e: PgWireError) -> ErrorInfo {
    errors::rewrite(&mut e);
    ErrorInfo::from(e)
}

/// datafusion-postgres's handlers, run inside each connection's [`Session`].
pub struct SessionQueryHandler {
    inner: Arc<DfSessionService>,
    cluster: Arc<Cluster>,
}

impl SessionQueryHandler {
    pub fn new(inner: Arc<DfSessionService>, cluster: Arc<Cluster>) -> Self {
        SessionQueryHandler { inner, cluster }
    }

    fn session_of<C: ClientInfo>(&self, client: &C) -> Arc<Session> {
        let cluster = Arc::clone(&self.cluster);
        client
            .session_extensions()
            .get_or_insert_with(move || Session::new(cluster, client.metadata()))
    }

    /// Runs a transaction control statement.
    async fn control<C>(
        &self,
        client: &mut C,
        session: &Session,
        control: Control,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mode = session.mode();
        let end = |t: &str| Ok(Response::TransactionEnd(Tag::new(t)));
        match control {
            Control::Begin {
                read_only,
                isolation,
            } => match mode {
                TxnMode::Autocommit => {
                    session.begin(TxnMode::Block, read_only);
                    session.lock().txn.isolation = isolation;
                    Ok(Response::TransactionStart(Tag::new("BEGIN")))
                }
                TxnMode::Implicit => {
                    // BEGIN inside a query string turns its implicit transaction into a block.
                    let mut st = session.lock();
                    st.mode = TxnMode::Block;
                    st.read_only = read_only;
                    if isolation.is_some() {
                        st.txn.isolation = isolation;
                    }
                    Ok(Response::TransactionStart(Tag::new("BEGIN")))
                }
                TxnMode::Block => {
                    warn(
                        client,
                        "25001",
                        "there is already a transaction in progress",
                    )
                    .await?;
                    Ok(Response::Execution(Tag::new("BEGIN")))
                }
                TxnMode::Failed => Err(aborted().into_pgwire()),
            },
            Control::Commit => match mode {
                TxnMode::Autocommit => {
                    warn(client, "25P01", "there is no transaction in progress").await?;
                    end("COMMIT")
                }
                TxnMode::Failed => {
                    session.rollback().await;
                    end("ROLLBACK")
                }
                TxnMode::Implicit | TxnMode::Block => match session.commit().await {
                    Ok(()) => end("COMMIT"),
                    Err(e) => Err(errors::from_cluster(&e).into_pgwire()),
                },
            },
            Control::Rollback => {
                if mode == TxnMode::Autocommit {
                    warn(client, "25P01", "there is no transaction in progress").await?;
                } else {
                    session.rollback().await;
                }
                end("ROLLBACK")
            }
            Control::Savepoint(name) => match mode {
                TxnMode::Autocommit => Err(outside_block("SAVEPOINT").into_pgwire()),
                TxnMode::Failed => Err(aborted().into_pgwire()),
                TxnMode::Implicit | TxnMode::Block => {
                    session
                        .savepoint(&name)
                        .await
                        .map_err(|e| errors::from_cluster(&e).into_pgwire())?;
                    Ok(Response::Execution(Tag::new("SAVEPOINT")))
                }
            },
            Control::RollbackTo(name) => match mode {
                TxnMode::Autocommit => Err(outside_block("ROLLBACK TO SAVEPOINT").into_pgwire()),
                _ => {
                    session
                        .rollback_to(&name)
                        .await
                        .map_err(PgError::into_pgwire)?;
                    Ok(Response::Execution(Tag::new("ROLLBACK")))
                }
            },
            Control::SetTransaction {
                read_only,
                session: true,
                ..
            } => {
                if read_only == Some(true) {
                    return Err(PgError::new(
                        "0A000",
                        "READ ONLY as the session's default is not supported",
                    )
                    .with_hint(Some(
                        "Begin each read-only transaction with BEGIN READ ONLY.".into(),
                    ))
                    .into_pgwire());
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Control::SetTransaction {
                read_only,
                isolation,
                session: false,
            } => match mode {
                TxnMode::Autocommit => {
                    warn(
                        client,
                        "25P01",
                        "SET TRANSACTION can only be used in transaction blocks",
                    )
                    .await?;
                    Ok(Response::Execution(Tag::new("SET")))
                }
                TxnMode::Failed => Err(aborted().into_pgwire()),
                TxnMode::Implicit | TxnMode::Block => {
                    let mut st = session.lock();
                    // As in PostgreSQL: once a query has run, the level may not change and
                    // a READ ONLY transaction may not become READ WRITE.
                    let level = st.txn.isolation.unwrap_or(DEFAULT_ISOLATION);
                    if st.txn.queried && isolation.is_some_and(|l| l != level) {
                        return Err(PgError::new(
                            "25001",
                            "SET TRANSACTION ISOLATION LEVEL must be called before any query",
                        )
                        .into_pgwire());
                    }
                    if st.txn.queried && st.read_only && read_only == Some(false) {
                        return Err(PgError::new(
                            "25001",
                            "transaction read-write mode must be set before any query",
                        )
                        .into_pgwire());
                    }
                    if let Some(ro) = read_only {
                        st.read_only = ro;
                    }
                    if isolation.is_some() {
                        st.txn.isolation = isolation;
                    }
                    Ok(Response::Execution(Tag::new("SET")))
                }
            },
            Control::Release(name) => match mode {
                TxnMode::Autocommit => Err(outside_block("RELEASE SAVEPOINT").into_pgwire()),
                TxnMode::Failed => Err(aborted().into_pgwire()),
                TxnMode::Implicit | TxnMode::Block => {
                    session
                        .release_savepoint(&name)
                        .map_err(PgError::into_pgwire)?;
                    Ok(Response::Execution(Tag::new("RELEASE")))
                }
            },
        }
    }

    /// A `DECLARE ... CURSOR FOR` bound with parameters (psycopg's named cursors): the
    /// cursor's query runs with the parameters in place. (datafusion-postgres's cursor hook
    /// plans the query text alone, so `$1` had no value.)
    async fn declare_with_parameters<C>(
        &self,
        client: &mut C,
        session: &Arc<Session>,
        declare: &Statement,
        portal: &Portal<<DfSessionService as ExtendedQueryHandler>::Statement>,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let types = &portal.statement.parameter_types;
        let params: Vec<BoundParameter<'_>> = portal
            .parameters
            .iter()
            .enumerate()
            .map(|(i, v)| BoundParameter {
                value: v.as_deref(),
                binary: portal.parameter_format.is_binary(i),
                pg_type: types.get(i).and_then(|t| t.as_ref()),
            })
            .collect();
        let bound = crate::frontend::prepared::bind_parameters(declare.clone(), &params)
            .map_err(PgError::into_pgwire)?;
        let bound = crate::frontend::hook::rewrite_declare(&bound).unwrap_or(bound);
        let sql = bound.to_string();
        let inner = Arc::clone(&self.inner);
        let mut responses = session
            .scope(async { SimpleQueryHandler::do_query(&*inner, client, &sql).await })
            .await?;
        match responses.pop() {
            Some(Response::Error(e)) => Err(PgWireError::UserError(e)),
            Some(r) => Ok(r),
            None => Ok(Response::Execution(Tag::new("DECLARE CURSOR"))),
        }
    }

    /// `PREPARE`, `DEALLOCATE` and `DISCARD` (`EXECUTE` is bound and run by the caller; in
    /// the extended protocol it is refused).
    fn session_statement<C>(
        &self,
        client: &mut C,
        session: &Session,
        statement: SessionStatement,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        use datafusion::sql::sqlparser::ast::DiscardObject;
        let tag = |t: &str| Ok(Response::Execution(Tag::new(t)));
        match statement {
            SessionStatement::Prepare { name, prepared } => {
                session
                    .prepared()
                    .prepare(&name, prepared)
                    .map_err(PgError::into_pgwire)?;
                tag("PREPARE")
            }
            SessionStatement::Execute { .. } => Err(PgError::new(
                "0A000",
                "EXECUTE of a prepared statement through the extended protocol is not supported",
            )
            .with_hint(Some(
                "Send EXECUTE as a simple query, or bind the protocol-level prepared statement."
                    .into(),
            ))
            .into_pgwire()),
            SessionStatement::Deallocate(Some(name)) => {
                // PostgreSQL's one namespace: PREPARE's statements and the protocol's.
                let store = client.portal_store();
                let in_store = store.get_statement(&name).is_some();
                if !session.prepared().deallocate(&name) && !in_store {
                    return Err(PgError::new(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    )
                    .into_pgwire());
                }
                store.rm_statement(&name);
                tag("DEALLOCATE")
            }
            SessionStatement::Deallocate(None) => {
                session.prepared().clear();
                client.portal_store().clear_statements();
                tag("DEALLOCATE ALL")
            }
            SessionStatement::Discard(DiscardObject::ALL) => {
                if session.mode() != TxnMode::Autocommit {
                    return Err(PgError::new(
                        "25001",
                        "DISCARD ALL cannot run inside a transaction block",
                    )
                    .into_pgwire());
                }
                session.prepared().clear();
                client.portal_store().clear_statements();
                client.portal_store().clear_portals();
                session.reset_settings();
                session.sequence_values().clear();
                tag("DISCARD ALL")
            }
            // Shoal has no temporary tables or sequences: nothing to drop.
            SessionStatement::Discard(DiscardObject::TEMP) => tag("DISCARD TEMP"),
            SessionStatement::Discard(DiscardObject::SEQUENCES) => {
                session.sequence_values().clear();
                tag("DISCARD SEQUENCES")
            }
            SessionStatement::Discard(DiscardObject::PLANS) => {
                Err(PgError::new("0A000", "DISCARD PLANS is not supported")
                    .with_hint(Some(
                        "Shoal keeps a prepared statement's plan until it is deallocated: use \
                 DEALLOCATE ALL (or DISCARD ALL) and prepare again."
                            .into(),
                    ))
                    .into_pgwire())
            }
        }
    }

    /// Before a statement runs: the transaction control it is, or why it may not run now
    /// (an unparsed statement in a failed block is refused too).
    fn precheck(session: &Session, stmt: Option<&Statement>) -> Result<Option<Control>, PgError> {
        match stmt {
            Some(s) => match Control::of(s) {
                Some(control) => control.map(Some),
                None => match Self::refusal(session, s) {
                    Some(e) => Err(e),
                    None => {
                        session.lock().txn.queried = true;
                        Ok(None)
                    }
                },
            },
            None if session.mode() == TxnMode::Failed => Err(aborted()),
            None => {
                session.lock().txn.queried = true;
                Ok(None)
            }
        }
    }

    /// What a statement may not do in the session's state, checked before it runs.
    fn refusal(session: &Session, stmt: &Statement) -> Option<PgError> {
        if let Statement::Declare { stmts } = stmt {
            for d in stmts {
                let hold = d.hold == Some(true);
                if !hold && session.mode() == TxnMode::Autocommit {
                    return Some(PgError::new(
                        "25P01",
                        "DECLARE CURSOR can only be used in transaction blocks",
                    ));
                }
                if !hold {
                    if let Some(name) = d.names.first() {
                        session.lock().txn.cursors.push(name.value.clone());
                    }
                }
            }
        }
        match session.mode() {
            TxnMode::Failed => Some(aborted()),
            TxnMode::Block => {
                if let Some(what) = ddl_name(stmt) {
                    return Some(
                        PgError::new(
                            "25001",
                            format!("{what} cannot run inside a transaction block"),
                        )
                        .with_hint(Some(
                            "Inside a transaction Shoal runs CREATE TABLE, CREATE TABLE AS and \
                             DROP TABLE; run other schema changes on their own (autocommit)."
                                .into(),
                        )),
                    );
                }
                crate::frontend::hook::cluster_change(stmt).map(|name| {
                    PgError::new(
                        "25001",
                        format!("{name}() cannot run inside a transaction block"),
                    )
                    .with_hint(Some(
                        "Its change to the cluster cannot be rolled back: call it on its own \
                         (autocommit), outside BEGIN ... COMMIT."
                            .into(),
                    ))
                })
            }
            _ => None,
        }
    }

    async fn run_simple<C>(
        &self,
        client: &mut C,
        session: &Arc<Session>,
        sql: &str,
        stmt: Option<&Statement>,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        crate::metrics::statement_started();
        let bound;
        let (sql, stmt) = match stmt.and_then(SessionStatement::of) {
            Some(SessionStatement::Execute { name, args }) => {
                // A failed block refuses EXECUTE before looking the name up.
                Self::precheck(session, stmt).map_err(PgError::into_pgwire)?;
                let statement = session
                    .prepared()
                    .bind(&name, &args)
                    .map_err(PgError::into_pgwire)?;
                bound = (statement.to_string(), statement);
                (bound.0.as_str(), Some(&bound.1))
            }
            Some(other) => {
                Self::precheck(session, stmt).map_err(PgError::into_pgwire)?;
                let result = self.session_statement(client, session, other);
                session.sync_client(client).await?;
                return Ok(vec![result?]);
            }
            None => (sql, stmt),
        };
        // A cursor's query gets the rewrites every query gets.
        let declared;
        let (sql, stmt) = match stmt.and_then(crate::frontend::hook::rewrite_declare) {
            Some(d) => {
                declared = (d.to_string(), d);
                (declared.0.as_str(), Some(&declared.1))
            }
            None => (sql, stmt),
        };
        if let Some(control) = Self::precheck(session, stmt).map_err(PgError::into_pgwire)? {
            let result = self.control(client, session, control).await;
            session.sync_client(client).await?;
            return Ok(vec![result?]);
        }
        flush_before(session, stmt).await?;
        let inner = Arc::clone(&self.inner);
        let mut result = session
            .scope(async { SimpleQueryHandler::do_query(&*inner, client, sql).await })
            .await;
        if let Ok(responses) = &mut result {
            responses.iter_mut().for_each(|r| scoped_rows(session, r));
        }
        // The next statement of the string already runs with what this one set.
        session.sync_client(client).await?;
        result
    }
}

/// The cursor a `FETCH` statement reads.
fn fetched_cursor(
    statement: &<DfSessionService as ExtendedQueryHandler>::Statement,
) -> Option<String> {
    if is_move(statement) {
        return None;
    }
    match statement.1.as_ref().map(|(s, _)| s) {
        Some(Statement::Fetch { name, .. }) => Some(name.value.clone()),
        _ => None,
    }
}

/// Whether a parsed statement is a `MOVE` (planned as a FETCH, see `on_parse`).
fn is_move(statement: &<DfSessionService as ExtendedQueryHandler>::Statement) -> bool {
    matches!(statement.1, Some((Statement::Fetch { .. }, _)))
        && cursor_step(&statement.0).is_some_and(|step| step.moved)
}

/// A FETCH's rows counted as the `MOVE` that skips them.
async fn counted_as_move(response: Response) -> PgWireResult<Response> {
    Ok(match response {
        Response::Query(mut q) => {
            let mut moved = 0;
            while let Some(row) = q.data_rows.next().await {
                row?;
                moved += 1;
            }
            Response::Execution(Tag::new("MOVE").with_rows(moved))
        }
        other => other,
    })
}

/// The columns of the open cursor `name`, in `format` (34000 when there is none).
fn cursor_fields<C>(client: &C, name: &str, format: &PortalFormat) -> PgWireResult<Vec<FieldInfo>>
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore,
    <C::PortalStore as PortalStore>::Statement: Clone,
{
    let schema = client
        .portal_store()
        .get_portal(name)
        .and_then(|e| e.value().and_then(|p| p.result_schema_in(format)))
        .ok_or_else(|| {
            PgError::new("34000", format!("cursor \"{name}\" does not exist")).into_pgwire()
        })?;
    Ok(schema.as_ref().clone())
}

/// Statements that write rows (and so open the implicit transaction of a pipeline).
fn is_write(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Insert(_)
            | Statement::Update { .. }
            | Statement::Delete(_)
            | Statement::Truncate { .. }
    )
}

/// Writes the rows the session holds before a statement that may read them: anything but
/// an `INSERT ... VALUES`.
async fn flush_before(session: &Session, stmt: Option<&Statement>) -> PgWireResult<()> {
    let values_only = matches!(stmt, Some(Statement::Insert(ins))
        if ins.source.as_ref().is_some_and(|q| matches!(q.body.as_ref(), datafusion::sql::sqlparser::ast::SetExpr::Values(_))));
    if values_only || !session.has_buffered() {
        return Ok(());
    }
    session
        .flush(None)
        .await
        .map_err(|e| errors::from_cluster(&e).into_pgwire())
}

async fn warn<C>(client: &mut C, code: &str, message: &str) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let info = ErrorInfo::new("WARNING".into(), code.into(), message.into());
    client
        .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
            info,
        )))
        .await?;
    Ok(())
}

/// A query's rows read to the end: in an implicit transaction they are all computed before
/// it commits, so that an error in them still rolls it back.
async fn buffered(mut q: QueryResponse) -> PgWireResult<QueryResponse> {
    let tag = q.command_tag().to_string();
    let schema = q.row_schema();
    let mut rows = Vec::new();
    while let Some(row) = q.data_rows().next().await {
        rows.push(Ok(row?));
    }
    let mut out = QueryResponse::new(schema, futures::stream::iter(rows));
    out.set_command_tag(&tag);
    Ok(out)
}

#[async_trait]
impl SimpleQueryHandler for SessionQueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session_of(client);
        let query = crate::frontend::copy::normalize_boolean_options(query);
        let result = self.simple_statements(client, &session, &query).await;
        session.sync_client(client).await?;
        result
    }

    fn transaction_status_after<C: ClientInfo>(
        &self,
        client: &C,
        _derived: TransactionStatus,
    ) -> TransactionStatus {
        // Every failure `do_query` saw has failed the session already; the derived status
        // stays "failed" after a successful ROLLBACK TO, which only the session knows.
        self.session_of(client).status()
    }
}

impl SessionQueryHandler {
    /// The statements of a simple query string, in the session's transaction.
    async fn simple_statements<C>(
        &self,
        client: &mut C,
        session: &Arc<Session>,
        query: &str,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = Arc::clone(session);
        session.sync(client.transaction_status());
        // The session decides: a COMMIT that failed has ended its transaction all the same.
        client.set_transaction_status(session.status());
        // FETCH in PostgreSQL's short forms, and MOVE: a FETCH whose rows are counted.
        let step = cursor_step(query);
        if let Some(CursorStep { fetch, moved: true }) = &step {
            let result = async {
                let statements = split(fetch);
                let [(sql, stmt)] = statements.as_slice() else {
                    return Err(PgError::new("42601", "syntax error in MOVE").into_pgwire());
                };
                if !matches!(stmt, Some(Statement::Fetch { .. })) {
                    return Err(PgError::new("42601", "syntax error in MOVE").into_pgwire());
                }
                let responses = self
                    .run_simple(client, &session, sql, stmt.as_ref())
                    .await?;
                let mut out = Vec::with_capacity(responses.len());
                for r in responses {
                    out.push(counted_as_move(r).await?);
                }
                Ok(out)
            }
            .await;
            if result.is_err() {
                session.fail();
            }
            return result;
        }
        let query = match &step {
            Some(step) => step.fetch.as_str(),
            None => query,
        };
        // VACUUM and ANALYZE in PostgreSQL's forms, which sqlparser reads only in part.
        if let Some(parsed) = crate::frontend::maintenance::parse(query) {
            let result = async {
                let m = parsed.map_err(PgError::into_pgwire)?;
                Self::precheck(&session, None).map_err(PgError::into_pgwire)?;
                let in_transaction = session.mode() != TxnMode::Autocommit;
                crate::frontend::maintenance::run(&self.cluster, &m, in_transaction)
                    .await
                    .map_err(PgError::into_pgwire)?;
                Ok(vec![Response::Execution(Tag::new(m.kind.tag()))])
            }
            .await;
            if result.is_err() {
                session.fail();
            }
            return result;
        }
        let statements = split(query);
        if let [(sql, stmt)] = statements.as_slice() {
            let result = self.run_simple(client, &session, sql, stmt.as_ref()).await;
            if result.is_err() {
                session.fail();
            }
            return result;
        }
        // Several statements run in one implicit transaction (a BEGIN among them turns it
        // into a block), unless one makes a schema change that cannot run inside a
        // transaction (nor can a cluster function that changes the cluster), or is a COPY,
        // whose rows arrive after the string has ended.
        let implicit = session.mode() == TxnMode::Autocommit
            && !statements.iter().any(|(_, s)| {
                s.as_ref().is_some_and(|s| {
                    ddl_name(s).is_some()
                        || matches!(s, Statement::Copy { .. })
                        || crate::frontend::hook::cluster_change(s).is_some()
                })
            });
        if implicit {
            session.begin(TxnMode::Implicit, false);
        }
        let mut out = Vec::new();
        for (sql, stmt) in &statements {
            let mut result = self.run_simple(client, &session, sql, stmt.as_ref()).await;
            if session.mode() == TxnMode::Implicit {
                if let Ok(responses) = result {
                    let mut done = Vec::new();
                    let mut failed = None;
                    for r in responses {
                        match r {
                            Response::Query(q) => match buffered(q).await {
                                Ok(q) => done.push(Response::Query(q)),
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            },
                            other => done.push(other),
                        }
                    }
                    result = match failed {
                        Some(e) => Err(e),
                        None => Ok(done),
                    };
                }
            }
            match result {
                Ok(responses) => out.extend(responses),
                Err(e) => {
                    // The first error ends the string; its implicit transaction rolls back.
                    if session.mode() == TxnMode::Implicit {
                        session.rollback().await;
                    } else {
                        session.fail();
                    }
                    out.push(Response::Error(Box::new(error_info(e))));
                    return Ok(out);
                }
            }
        }
        if session.mode() == TxnMode::Implicit {
            if let Err(e) = session.commit().await {
                out.push(Response::Error(Box::new(
                    errors::from_cluster(&e).into_pgwire().into(),
                )));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for SessionQueryHandler {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.inner.query_parser()
    }

    /// Parse plans the statement, naming tables as the session's transaction sees them.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session_of(client);
        let inner = Arc::clone(&self.inner);
        let mut message = message;
        if let std::borrow::Cow::Owned(q) =
            crate::frontend::copy::normalize_boolean_options(&message.query)
        {
            message.query = q;
        }
        // MOVE (which sqlparser does not read) is planned as the FETCH that reads the same
        // rows; the stored statement keeps the MOVE's text, which tells Execute to count the
        // rows instead of sending them.
        let moved = match cursor_step(&message.query) {
            Some(CursorStep { moved: true, fetch })
                if !matches!(
                    split(&fetch).as_slice(),
                    [(_, Some(Statement::Fetch { .. }))]
                ) =>
            {
                // Refused before the inner handler answers ParseComplete.
                return Err(PgError::new("42601", "syntax error in MOVE").into_pgwire());
            }
            Some(CursorStep { fetch, moved }) => {
                let text = std::mem::replace(&mut message.query, fetch);
                moved.then(|| {
                    let name = message
                        .name
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAME.to_owned());
                    (name, text)
                })
            }
            None => None,
        };
        session
            .scope(ExtendedQueryHandler::on_parse(&*inner, client, message))
            .await?;
        if let Some((name, text)) = moved {
            let store = client.portal_store();
            if let Some(stored) = store.get_statement(&name).and_then(|e| e.value().cloned()) {
                let (_, parsed) = &stored.statement;
                store.put_statement(Arc::new(StoredStatement::new(
                    stored.id.clone(),
                    (text, parsed.clone()),
                    stored.parameter_types.clone(),
                )));
            }
        }
        Ok(())
    }

    /// A Sync ends the implicit transaction of the messages before it: its writes commit
    /// (an error then goes before ReadyForQuery), and ReadyForQuery tells the session's state.
    async fn on_sync<C>(&self, client: &mut C, message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.session_of(client);
        // A statement that failed while its rows were sent is known only to pgwire's status.
        let failed = client.transaction_status() == TransactionStatus::Error;
        if failed && session.mode() == TxnMode::Implicit {
            session.rollback().await;
        }
        session.sync(client.transaction_status());
        if session.mode() == TxnMode::Implicit {
            if let Err(e) = session.commit().await {
                let info = error_info(errors::from_cluster(&e).into_pgwire());
                client
                    .feed(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await?;
            }
        }
        session.sync_client(client).await?;
        client.set_transaction_status(session.status());
        ExtendedQueryHandler::on_sync(&*self.inner, client, message).await
    }

    /// A Describe of `FETCH` answers the cursor's columns (in the formats the portal was
    /// bound with); anything else is described by datafusion-postgres.
    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(cursor) = fetched_cursor(&target.statement.statement) {
            let fields = cursor_fields(client, &cursor, &target.result_column_format)?;
            return Ok(DescribePortalResponse::new(fields));
        }
        if target.cursor {
            // The cursor itself (psycopg describes its named cursor before fetching).
            let fields = cursor_fields(client, &target.name, &target.result_column_format)?;
            return Ok(DescribePortalResponse::new(fields));
        }
        let session = self.session_of(client);
        session
            .scope(ExtendedQueryHandler::do_describe_portal(
                &*self.inner,
                client,
                target,
            ))
            .await
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(cursor) = fetched_cursor(&target.statement) {
            let fields = cursor_fields(client, &cursor, &PortalFormat::UnifiedText)?;
            return Ok(DescribeStatementResponse::new(vec![], fields));
        }
        let session = self.session_of(client);
        session
            .scope(ExtendedQueryHandler::do_describe_statement(
                &*self.inner,
                client,
                target,
            ))
            .await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        crate::metrics::statement_started();
        let session = self.session_of(client);
        let result = async {
            session.sync(client.transaction_status());
            client.set_transaction_status(session.status());
            let stmt = portal.statement.statement.1.as_ref().map(|(s, _)| s);
            if let Some(other) = stmt.and_then(SessionStatement::of) {
                Self::precheck(&session, stmt).map_err(PgError::into_pgwire)?;
                return self.session_statement(client, &session, other);
            }
            if let Some(control) = Self::precheck(&session, stmt).map_err(PgError::into_pgwire)? {
                return self.control(client, &session, control).await;
            }
            if let Err(e) = flush_before(&session, stmt).await {
                session.fail_extended().await;
                return Err(e);
            }
            if let Some(declare @ Statement::Declare { .. }) = stmt {
                if !portal.parameters.is_empty() {
                    let result = self
                        .declare_with_parameters(client, &session, declare, portal)
                        .await;
                    if result.is_err() {
                        session.fail_extended().await;
                    }
                    return result;
                }
            }
            // As in PostgreSQL, the messages up to a Sync are one implicit transaction: the
            // writes of a pipelined batch (asyncpg's executemany, a JDBC batch, psycopg's
            // pipeline) commit together at the Sync, or not at all.
            if session.mode() == TxnMode::Autocommit && stmt.is_some_and(is_write) {
                session.begin(TxnMode::Implicit, false);
            }
            let inner = Arc::clone(&self.inner);
            let mut result = session
                .scope(async {
                    ExtendedQueryHandler::do_query(&*inner, client, portal, max_rows).await
                })
                .await;
            if let Ok(response) = &mut result {
                scoped_rows(&session, response);
            }
            if is_move(&portal.statement.statement) {
                if let Ok(response) = result {
                    result = counted_as_move(response).await;
                }
            }
            if result.is_err() {
                session.fail_extended().await;
            }
            result
        }
        .await;
        session.sync_client(client).await?;
        result
    }

    fn transaction_status_after<C: ClientInfo>(
        &self,
        client: &C,
        _derived: TransactionStatus,
    ) -> TransactionStatus {
        // Every failure `do_query` saw has failed the session already; the derived status
        // stays "failed" after a successful ROLLBACK TO, which only the session knows.
        self.session_of(client).status()
    }
}

#[cfg(test)]
mod tests;
