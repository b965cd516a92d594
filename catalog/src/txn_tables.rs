//! Tables as one uncommitted transaction sees them.
//!
//! A table created inside a transaction is a catalog row marked with the transaction
//! (`pending_txn`) under a placeholder name, so that no other session can find it and its
//! real name stays free until COMMIT; a table dropped inside a transaction stays in the
//! catalog, hidden from that transaction alone. COMMIT applies both in the same catalog
//! transaction that publishes the transaction's files ([`crate::Catalog::commit_transaction`]);
//! ROLLBACK and a coordinator restart delete the pending rows.
//!
//! The transaction's view travels in a task-local ([`TxnTables::scope`]), read by the
//! catalog's look-ups by name, so that every layer that resolves a table by its name (the
//! planner, the writers, the write gates) sees what the transaction sees.

use crate::model::IndexDef;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

tokio::task_local! {
    static CURRENT: Arc<TxnTables>;
}

/// Identifies a connection's transactions in `tables.pending_txn`. A connection runs one
/// transaction at a time and each ends with no pending row left, so the id is per
/// connection; unique within the process, and a restart deletes every pending row.
static NEXT_TXN: AtomicU64 = AtomicU64::new(1);

/// One connection's transactional table changes.
#[derive(Debug)]
pub struct TxnTables {
    txn: u64,
    changes: Mutex<TableChanges>,
}

/// What the running transaction did to the set of tables, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// Tables it created (pending rows): id and name.
    pub created: Vec<(i64, String)>,
    /// Tables it dropped (committed or its own pending ones): id and name.
    pub dropped: Vec<(i64, String)>,
    /// Indexes it created and dropped, in order; the catalog learns of them at COMMIT.
    pub indexes: Vec<IndexChange>,
}

/// A `CREATE INDEX` or `DROP INDEX` of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexChange {
    Created(IndexDef),
    Dropped(String),
}

/// How far a transaction's changes went when a savepoint was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangesMark {
    created: usize,
    dropped: usize,
    indexes: usize,
}

impl TableChanges {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.dropped.is_empty() && self.indexes.is_empty()
    }

    /// The index names the transaction sees, given the committed ones.
    pub fn visible_indexes(&self, committed: Vec<IndexDef>) -> Vec<IndexDef> {
        let mut visible = committed;
        for change in &self.indexes {
            match change {
                IndexChange::Created(def) => visible.push(def.clone()),
                IndexChange::Dropped(name) => visible.retain(|d| &d.name != name),
            }
        }
        let dropped = self.dropped_ids();
        visible.retain(|d| !dropped.contains(&d.table_id));
        visible
    }

    pub fn dropped_ids(&self) -> Vec<i64> {
        self.dropped.iter().map(|d| d.0).collect()
    }

    pub fn created_ids(&self) -> Vec<i64> {
        self.created.iter().map(|c| c.0).collect()
    }

    /// Whether `name` means another table to the transaction than to everyone else.
    pub fn changes_name(&self, name: &str) -> bool {
        self.created
            .iter()
            .chain(&self.dropped)
            .any(|t| t.1 == name)
    }
}

impl Default for TxnTables {
    fn default() -> Self {
        Self::new()
    }
}

impl TxnTables {
    pub fn new() -> TxnTables {
        TxnTables {
            txn: NEXT_TXN.fetch_add(1, Ordering::Relaxed),
            changes: Mutex::new(TableChanges::default()),
        }
    }

    /// The id pending rows of this connection's transaction carry.
    pub fn txn(&self) -> u64 {
        self.txn
    }

    fn lock(&self) -> MutexGuard<'_, TableChanges> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn changes(&self) -> TableChanges {
        self.lock().clone()
    }

    pub fn record_created(&self, table_id: i64, name: &str) {
        self.lock().created.push((table_id, name.to_string()));
    }

    pub fn record_dropped(&self, table_id: i64, name: &str) {
        self.lock().dropped.push((table_id, name.to_string()));
    }

    pub fn record_index(&self, change: IndexChange) {
        self.lock().indexes.push(change);
    }

    pub fn is_dropped(&self, table_id: i64) -> bool {
        self.lock().dropped.iter().any(|d| d.0 == table_id)
    }

    /// How far the transaction's changes went so far (a savepoint's mark).
    pub fn mark(&self) -> ChangesMark {
        let c = self.lock();
        ChangesMark {
            created: c.created.len(),
            dropped: c.dropped.len(),
            indexes: c.indexes.len(),
        }
    }

    /// Forgets the changes after `mark` (ROLLBACK TO a savepoint), handing back the ids of
    /// the tables created since, whose rows the caller deletes.
    pub fn truncate(&self, mark: ChangesMark) -> Vec<i64> {
        let mut c = self.lock();
        c.dropped.truncate(mark.dropped);
        c.indexes.truncate(mark.indexes);
        if mark.created < c.created.len() {
            c.created
                .split_off(mark.created)
                .into_iter()
                .map(|t| t.0)
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Ends the transaction's changes, handing them back.
    pub fn take(&self) -> TableChanges {
        std::mem::take(&mut *self.lock())
    }

    /// Runs `f` with the catalog's look-ups by name seeing what this transaction sees.
    pub async fn scope<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        CURRENT.scope(Arc::clone(self), f).await
    }

    /// [`Self::scope`] for one synchronous step (a poll of a result's rows).
    pub fn sync_scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(Arc::clone(self), f)
    }

    /// The transaction the running task works for, if any.
    pub(crate) fn current() -> Option<Arc<TxnTables>> {
        CURRENT.try_with(Arc::clone).ok()
    }
}
