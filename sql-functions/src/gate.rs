//! The coordinator-side write gate of each shard group. Every INSERT/COPY holds its table's
//! gate open (shared) from the moment it reads placements until its files are committed; a
//! move's fence takes it exclusively for the final catch-up and the switch, so no statement
//! can commit to a placement that the switch is about to retire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// Held by a statement while it writes; the group cannot be fenced until it is dropped.
pub struct WritePermit {
    _guard: OwnedRwLockReadGuard<()>,
}

/// Held by a move while writes to its shard group are fenced.
pub(crate) struct Fence {
    _guard: OwnedRwLockWriteGuard<()>,
}

/// The gate key of a table: its colocation group, or the table itself when it has none.
/// Colocation ids are positive and table ids are negated, so the two never collide.
pub(crate) fn gate_key(colocation_id: Option<i64>, table_id: i64) -> i64 {
    colocation_id.unwrap_or(-table_id)
}

#[derive(Default)]
pub(crate) struct WriteGates {
    gates: Mutex<HashMap<i64, Arc<RwLock<()>>>>,
}

impl WriteGates {
    fn gate(&self, key: i64) -> Arc<RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(gates.entry(key).or_default())
    }

    /// Waits while the group is fenced (a fence is bounded by its timeout), then admits.
    pub(crate) async fn admit(&self, key: i64) -> WritePermit {
        WritePermit {
            _guard: self.gate(key).read_owned().await,
        }
    }

    /// Closes the gate: waits for statements in flight to commit, at most `timeout`. New
    /// statements queue behind the fence meanwhile (tokio's lock is fair), so the fence
    /// blocks writers for at most `timeout` plus the fenced work. `None` on timeout.
    pub(crate) async fn fence(&self, key: i64, timeout: Duration) -> Option<Fence> {
        let gate = self.gate(key);
        tokio::time::timeout(timeout, gate.write_owned())
            .await
            .ok()
            .map(|g| Fence { _guard: g })
    }
}
