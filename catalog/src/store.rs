//! `Catalog`: every read and every state change of the metadata, one SQLite transaction each.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::{CatalogError, Result};
use crate::journal::{self, CommitJournal};
use crate::model::*;
use crate::schema;
use crate::settings::{ClusterSettings, SettingKind, SETTINGS_DEFAULTS};
use crate::sql_type::SqlType;
use crate::txn_tables::{IndexChange, TableChanges, TxnTables};

/// How many values of a sequence one catalog write reserves.
pub const SEQUENCE_CACHE: i64 = 32;

/// The catalog. Cheap to share behind an `Arc`. Writes are serialised on one connection, which
/// is what SQLite does anyway for writers; reads use connections of their own (WAL mode lets
/// them run beside a write), so a query's planning never waits for a commit's fsync — which,
/// while a shard move streams hundreds of MB to the same disk, can take a long time.
pub struct Catalog {
    conn: Mutex<Connection>,
    /// Idle read connections of an on-disk catalog (`None` in memory: one connection sees it).
    readers: Option<ReadConnections>,
    generations: Generations,
    /// The last snapshot read of each table, with the generation it is at least as new as.
    /// Every query and INSERT plans on a table snapshot; reading it from SQLite costs
    /// O(files) (thousands while a writer adds small files), so between two commits the
    /// same snapshot is handed out again.
    snapshots: Mutex<HashMap<String, (u64, Arc<TableSnapshot>)>>,
    /// Values of each sequence reserved in the catalog and not handed out yet, by `seq_id`:
    /// (next, last).
    sequences: Mutex<HashMap<i64, (i64, i64)>>,
    /// The last write generation that may have changed tables, shards, placements or files
    /// (every write but [`WriteKind::Progress`]): a cached snapshot at least as new as it is
    /// still the tables' state.
    tables_changed: AtomicU64,
    /// Where committed state writes go, once set (see [`crate::journal`]).
    journal: std::sync::OnceLock<Arc<dyn CommitJournal>>,
    /// The number of the last journal entry; changes only under the write lock.
    journal_seq: AtomicU64,
}

/// Write transactions of this process, numbered: generation `g` is the `g`-th. Writes are
/// serialised, so "generation `g` has ended" means every write up to `g` is visible to a
/// transaction that begins afterwards.
///
/// What this is for: a query registers the generation that had ended when it started (see
/// [`Catalog::generation`]); it may then read any state from that one on. A file replaced by
/// generation `g + 1` or later may still be in its snapshot, and every such replacement was
/// decided after [`Catalog::generation_began_ms`]`(g + 1)` — so deleting only what was due
/// before that time is safe, however long the commit's fsync took. (Comparing wall-clock times
/// alone was not: a query that started while a commit's fsync ran read the old state with a
/// start time later than the commit's cleanup records.)
#[derive(Default)]
struct Generations {
    ended: AtomicU64,
    began: Mutex<BeganTimes>,
}

/// When each recent generation began (ms), oldest first, at most [`GENERATIONS_KEPT`]:
/// `ms[i]` is generation `first + i`.
#[derive(Default)]
struct BeganTimes {
    first: u64,
    ms: VecDeque<i64>,
}

/// Begin times remembered; a query older than this many commits blocks every cleanup until
/// it ends (see [`Catalog::generation_began_ms`]).
const GENERATIONS_KEPT: usize = 1 << 16;

impl Generations {
    /// Numbers the write about to run; the caller holds the write connection.
    fn begin(&self) -> u64 {
        let mut began = self.began.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.ended.load(Ordering::SeqCst) + 1;
        if began.ms.is_empty() {
            began.first = generation;
        }
        // Never earlier than the previous begin, even if the clock steps back.
        let at = began.ms.back().map_or(now_ms(), |&ms| ms.max(now_ms()));
        began.ms.push_back(at);
        if began.ms.len() > GENERATIONS_KEPT {
            began.ms.pop_front();
            began.first += 1;
        }
        generation
    }

    /// The write numbered `generation` has committed or rolled back.
    fn end(&self, generation: u64) {
        self.ended.store(generation, Ordering::SeqCst);
    }
}

/// Read-only (`query_only`) connections to the catalog file, opened on demand and kept for
/// reuse, at most [`IDLE_READERS`] of them.
struct ReadConnections {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Read connections kept open between calls.
const IDLE_READERS: usize = 8;

impl ReadConnections {
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let conn = Connection::open(&self.path)?;
                conn.pragma_update(None, "query_only", "ON")?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                Ok(conn)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a write transaction changes, which decides how it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteKind {
    /// Any state: the commit returns after an fsync of the WAL (`synchronous=FULL`), so what
    /// the transaction authorises may happen as soon as it returns; cached table snapshots are
    /// read again afterwards.
    State,
    /// Only how far a task got (a move's phase and byte counts, in `tasks`), which authorises
    /// nothing. The commit returns without waiting for the disk (`synchronous=NORMAL` for this
    /// transaction only): it survives a crash of the process (its WAL frames are in the
    /// operating system's cache) and reaches the disk with the next synced commit (the WAL is
    /// written and synced in order) or checkpoint; only a crash of the machine in between loses
    /// it, with every later progress commit, and the move then resumes from an earlier phase,
    /// as after a crash just before it was written, which every step of a move handles. That
    /// saves an fsync (about 0.3 ms here) a dozen times per move. Cached table snapshots stay
    /// valid: no table, shard, placement or file changed.
    Progress,
}

impl Catalog {
    /// Opens (creating if needed) the catalog file, in WAL mode with `synchronous=FULL`, and
    /// brings its schema up to date.
    pub fn open(path: &Path) -> Result<Catalog> {
        let conn = Connection::open(path)?;
        let readers = ReadConnections {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        };
        Self::init(conn, Some(readers))
    }

    pub fn open_in_memory() -> Result<Catalog> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(mut conn: Connection, readers: Option<ReadConnections>) -> Result<Catalog> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        schema::migrate(&mut conn)?;
        let tx = conn.transaction()?;
        let existing: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'cluster_id'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if existing.is_none() {
            let id = format!("{:016x}{:016x}", now_ms() as u64, random_u64());
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('cluster_id', ?1)",
                [id],
            )?;
        }
        repair_settings(&tx)?;
        tx.commit()?;
        Ok(Catalog {
            conn: Mutex::new(conn),
            readers,
            generations: Generations::default(),
            snapshots: Mutex::new(HashMap::new()),
            sequences: Mutex::new(HashMap::new()),
            tables_changed: AtomicU64::new(0),
            journal: std::sync::OnceLock::new(),
            journal_seq: AtomicU64::new(0),
        })
    }

    /// The newest write generation that has ended: a transaction that begins now sees every
    /// write up to it. See [`Generations`].
    pub fn generation(&self) -> u64 {
        self.generations.ended.load(Ordering::SeqCst)
    }

    /// When write generation `generation` began, before it decided anything; `None` if it has
    /// not begun yet, `Some(i64::MIN)` if it is too old to be remembered (so that a caller
    /// treating it as a bound stays on the safe side).
    pub fn generation_began_ms(&self, generation: u64) -> Option<i64> {
        let began = self
            .generations
            .began
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if began.ms.is_empty() {
            None
        } else if generation < began.first {
            Some(i64::MIN)
        } else {
            began.ms.get((generation - began.first) as usize).copied()
        }
    }

    /// Sends every later state write to `journal` (see [`crate::journal`]). Once per
    /// catalog; a second call fails.
    pub fn set_journal(&self, journal: Arc<dyn CommitJournal>) -> Result<()> {
        // Under the write lock: every write is either before the change log exists (and in
        // the first base) or logged and journaled.
        let conn = self.lock();
        if self.journal.get().is_some() {
            return Err(CatalogError::Invalid {
                message: "the catalog's journal is set already".into(),
            });
        }
        journal::install_change_log(&conn)?;
        let _ = self.journal.set(journal);
        Ok(())
    }

    /// Numbers a new run of the coordinator (1, 2, ...; kept in the catalog), which orders the
    /// journal copies of different runs whatever the machines' clocks say.
    pub fn next_journal_run(&self) -> Result<u64> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('journal_run', '1')
                 ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )?;
            let run: String = tx.query_row(
                "SELECT value FROM meta WHERE key = 'journal_run'",
                [],
                |r| r.get(0),
            )?;
            run.parse().map_err(|_| CatalogError::Invalid {
                message: format!("meta journal_run is {run:?}, not a number"),
            })
        })
    }

    /// The whole catalog as of journal entry `seq` (an SQLite database image), and `seq`:
    /// the base a journal's later entries apply to.
    pub fn journal_base(&self) -> Result<(u64, Vec<u8>)> {
        let take = || {
            let conn = self.lock();
            let seq = self.journal_seq.load(Ordering::SeqCst);
            let image = conn.serialize(rusqlite::MAIN_DB)?;
            Ok((seq, image.to_vec()))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(take)
            }
            _ => take(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction behind
        // (rusqlite rolls back on drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one write transaction (BEGIN IMMEDIATE) and commits it.
    ///
    /// The commit waits for an fsync, which takes long while the disk is busy (a shard move
    /// writing hundreds of MB): called on a worker thread of a multi-threaded tokio runtime,
    /// the runtime is told, so the other tasks of that thread (other sessions' queries) move
    /// to another thread instead of waiting behind the fsync.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_with(WriteKind::State, f)
    }

    /// [`Self::write`] for a record of how far a task got (see [`WriteKind::Progress`]).
    fn write_progress<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_with(WriteKind::Progress, f)
    }

    fn write_with<T>(
        &self,
        kind: WriteKind,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let commit = || {
            let mut conn = self.lock();
            // Read under the lock: a write either is in the first base or is journaled.
            let journal = self.journal.get();
            let generation = self.generations.begin();
            let mut journaled = None;
            let result = (|| {
                if kind == WriteKind::Progress {
                    conn.pragma_update(None, "synchronous", "NORMAL")?;
                }
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let committed = f(&tx).and_then(|out| {
                    // The change log exists once a journal is set; progress is not journaled.
                    let changes = match (journal, kind) {
                        (Some(_), WriteKind::State) => journal::take_changes(&tx)?,
                        (Some(_), WriteKind::Progress) => {
                            journal::discard_changes(&tx)?;
                            Vec::new()
                        }
                        (None, _) => Vec::new(),
                    };
                    tx.commit()?;
                    if let (Some(journal), false) = (journal, changes.is_empty()) {
                        let seq = self.journal_seq.fetch_add(1, Ordering::SeqCst) + 1;
                        journal.committed(seq, changes);
                        journaled = Some((journal, seq));
                    }
                    Ok(out)
                });
                if kind == WriteKind::Progress {
                    // Back to the default before anything else commits on this connection.
                    conn.pragma_update(None, "synchronous", "FULL")?;
                }
                committed
            })();
            if kind == WriteKind::State {
                // Before the generation ends: whoever sees it ended also sees this.
                self.tables_changed.store(generation, Ordering::SeqCst);
            }
            self.generations.end(generation);
            drop(conn);
            // Outside the lock: the writes behind this one commit (and ship) meanwhile.
            if let Some((journal, seq)) = journaled {
                journal.wait_durable(seq);
            }
            result
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(commit)
            }
            _ => commit(),
        }
    }

    /// Runs `f` in one read transaction: a snapshot of what was committed when it began.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let Some(readers) = &self.readers else {
            let mut conn = self.lock();
            return Self::read_on(&mut conn, f);
        };
        let mut conn = readers.take()?;
        // A failed call's transaction was rolled back when it was dropped: the connection is
        // clean either way.
        let out = Self::read_on(&mut conn, f);
        readers.give_back(conn);
        out
    }

    fn read_on<T>(
        conn: &mut Connection,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The id that binds workers to this cluster.
    pub fn cluster_id(&self) -> Result<String> {
        self.read(|tx| {
            Ok(
                tx.query_row("SELECT value FROM meta WHERE key = 'cluster_id'", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    // ---- nodes -------------------------------------------------------------------------

    /// Whether a `--worker` given at coordinator start was registered once already. After
    /// that the catalog alone decides membership: a node removed with `remove_node` is not
    /// added back by the next restart.
    pub fn worker_flag_registered(&self, addr: &str) -> Result<bool> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [format!("worker_flag:{addr}")],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .is_some())
        })
    }

    pub fn mark_worker_flag_registered(&self, addr: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![format!("worker_flag:{addr}"), now_ms().to_string()],
            )?;
            Ok(())
        })
    }

    /// Registers a node; returns its id and whether it was new.
    pub fn add_node(&self, host: &str, port: u16) -> Result<(i64, bool)> {
        self.write(|tx| {
            if let Some(id) = tx
                .query_row(
                    "SELECT node_id FROM nodes WHERE host = ?1 AND port = ?2",
                    params![host, port],
                    |r| r.get(0),
                )
                .optional()?
            {
                return Ok((id, false));
            }
            tx.execute(
                "INSERT INTO nodes (host, port, last_heartbeat_ms) VALUES (?1, ?2, ?3)",
                params![host, port, now_ms()],
            )?;
            Ok((tx.last_insert_rowid(), true))
        })
    }

    pub fn list_nodes(&self) -> Result<Vec<Node>> {
        self.read(list_nodes_tx)
    }

    pub fn node_by_addr(&self, host: &str, port: u16) -> Result<Option<Node>> {
        Ok(self
            .list_nodes()?
            .into_iter()
            .find(|n| n.host == host && n.port == port))
    }

    /// Records a heartbeat result.
    pub fn set_node_health(
        &self,
        node_id: i64,
        is_live: bool,
        disk_free_bytes: Option<u64>,
        data_bytes: Option<u64>,
    ) -> Result<()> {
        self.write(|tx| {
            if is_live {
                tx.execute(
                    "UPDATE nodes SET is_live = 1, disk_free_bytes = ?2, data_bytes = ?3, last_heartbeat_ms = ?4 WHERE node_id = ?1",
                    params![node_id, disk_free_bytes.map(|v| v as i64), data_bytes.map(|v| v as i64), now_ms()],
                )?;
            } else {
                tx.execute("UPDATE nodes SET is_live = 0 WHERE node_id = ?1", [node_id])?;
            }
            Ok(())
        })
    }

    pub fn set_should_have_shards(&self, node_id: i64, value: bool) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE nodes SET should_have_shards = ?2 WHERE node_id = ?1",
                params![node_id, value],
            )?;
            Ok(())
        })
    }

    /// Number of placements a node holds.
    pub fn placement_count(&self, node_id: i64) -> Result<i64> {
        self.read(|tx| {
            Ok(tx.query_row(
                "SELECT count(*) FROM placements WHERE node_id = ?1",
                [node_id],
                |r| r.get(0),
            )?)
        })
    }

    /// Removes a node that holds no placements.
    pub fn remove_node(&self, node_id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM nodes WHERE node_id = ?1", [node_id])?;
            Ok(())
        })
    }

    // ---- tables ------------------------------------------------------------------------

    /// Hands out `n` fresh shard ids (never reused, starting at 102008 as Citus does).
    pub fn reserve_shard_ids(&self, n: usize) -> Result<Vec<i64>> {
        self.write(|tx| {
            let next: i64 = tx
                .query_row("SELECT value FROM meta WHERE key = 'next_shard_id'", [], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(102008);
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('next_shard_id', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(next + n as i64).to_string()],
            )?;
            Ok((next..next + n as i64).collect())
        })
    }

    /// Finds a colocation group with these properties or creates one.
    pub fn find_or_create_colocation(
        &self,
        shard_count: i64,
        replication_factor: i64,
        distribution_type: &str,
        create_new: bool,
    ) -> Result<i64> {
        self.write(|tx| {
            if !create_new {
                if let Some(id) = tx
                    .query_row(
                        "SELECT colocation_id FROM colocation_groups WHERE shard_count = ?1 AND replication_factor = ?2 AND distribution_type = ?3 ORDER BY colocation_id LIMIT 1",
                        params![shard_count, replication_factor, distribution_type],
                        |r| r.get(0),
                    )
                    .optional()?
                {
                    return Ok(id);
                }
            }
            tx.execute(
                "INSERT INTO colocation_groups (shard_count, replication_factor, distribution_type) VALUES (?1, ?2, ?3)",
                params![shard_count, replication_factor, distribution_type],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Creates a table with its columns, shards, placements and any files already written.
    pub fn create_table(&self, new: &NewTable) -> Result<TableInfo> {
        self.write(|tx| {
            if visible_table_id(tx, &new.name)?.is_some() || view_exists(tx, &new.name)? {
                return Err(CatalogError::TableExists { name: new.name.clone() });
            }
            // A pending table's row keeps its name aside: no one else finds it, and the
            // name stays free for a table committed meanwhile (COMMIT then finds the clash).
            let (stored_name, pending_name) = match new.pending_txn {
                Some(txn) => (pending_placeholder(txn), Some(new.name.as_str())),
                None => (new.name.clone(), None),
            };
            tx.execute(
                "INSERT INTO tables (name, kind, distribution_column, colocation_id, created_at_ms, pending_txn, pending_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![stored_name, new.kind.as_str(), new.distribution_column, new.colocation_id, now_ms(), new.pending_txn.map(|t| t as i64), pending_name],
            )?;
            let table_id = tx.last_insert_rowid();
            for (i, c) in new.columns.iter().enumerate() {
                insert_column(tx, table_id, i, c, &c.stored_name)?;
            }
            insert_shards(tx, table_id, &new.shards)?;
            table_info_tx(tx, table_id)
        })
    }

    /// Replaces a table's layout (kind, distribution, shards and their files) in one
    /// transaction, as `create_distributed_table` does after writing the redistributed rows.
    /// Returns cleanup records for the old shard directories.
    pub fn replace_layout(
        &self,
        table_id: i64,
        kind: TableKind,
        distribution_column: Option<&str>,
        colocation_id: Option<i64>,
        shards: &[NewShard],
    ) -> Result<TableInfo> {
        self.write(|tx| {
            add_shard_cleanup(tx, table_id, None, "redistributed")?;
            tx.execute("DELETE FROM shards WHERE table_id = ?1", [table_id])?;
            tx.execute(
                "UPDATE tables SET kind = ?2, distribution_column = ?3, colocation_id = ?4 WHERE table_id = ?1",
                params![table_id, kind.as_str(), distribution_column, colocation_id],
            )?;
            insert_shards(tx, table_id, shards)?;
            table_info_tx(tx, table_id)
        })
    }

    /// The table `name` names for the running task's transaction (see [`TxnTables`]).
    pub fn table_by_name(&self, name: &str) -> Result<Option<TableInfo>> {
        self.read(|tx| match visible_table_id(tx, name)? {
            Some(id) => Ok(Some(table_info_tx(tx, id)?)),
            None => Ok(None),
        })
    }

    /// The names of the tables the running task's transaction sees.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let view = TxnTables::current();
        let txn = view.as_ref().map(|v| v.txn() as i64);
        let dropped = view.map(|v| v.changes().dropped_ids()).unwrap_or_default();
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT table_id, coalesce(pending_name, name) FROM tables
                 WHERE pending_txn IS NULL OR pending_txn = ?1 ORDER BY 2",
            )?;
            let rows = stmt.query_map([txn], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))?;
            let mut names = Vec::new();
            for row in rows {
                let (id, name): (i64, String) = row?;
                if !dropped.contains(&id) {
                    names.push(name);
                }
            }
            Ok(names)
        })
    }

    /// Ends a transaction's table changes in one catalog transaction with its file
    /// changes: the tables it dropped go (`TableNotFound` if another transaction dropped
    /// one first), the tables it created take their names (`TableExists` if a table of
    /// that name was committed meanwhile), then the files as [`Self::commit_transaction`].
    pub fn commit_transaction_with_tables(
        &self,
        changes: &FileChanges,
        txn: u64,
        tables: &TableChanges,
        grace_ms: i64,
    ) -> Result<()> {
        self.write(|tx| {
            for (table_id, name) in &tables.dropped {
                let table_id = *table_id;
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT table_id FROM tables WHERE table_id = ?1",
                        [table_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_none() {
                    return Err(CatalogError::TableNotFound { name: name.clone() });
                }
                add_shard_cleanup(tx, table_id, None, "drop table")?;
                tx.execute("DELETE FROM tables WHERE table_id = ?1", [table_id])?;
            }
            let pending: Vec<(i64, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT table_id, pending_name FROM tables WHERE pending_txn = ?1",
                )?;
                let rows = stmt.query_map([txn as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            for (table_id, name) in pending {
                let taken: Option<i64> = tx
                    .query_row(
                        "SELECT table_id FROM tables WHERE name = ?1",
                        [&name],
                        |r| r.get(0),
                    )
                    .optional()?;
                if taken.is_some() || view_exists(tx, &name)? {
                    return Err(CatalogError::TableExists { name });
                }
                tx.execute(
                    "UPDATE tables SET name = pending_name, pending_txn = NULL, pending_name = NULL WHERE table_id = ?1",
                    [table_id],
                )?;
            }
            let dropped_tables = tables.dropped_ids();
            for change in &tables.indexes {
                match change {
                    // An index of a table the transaction dropped went with it.
                    IndexChange::Created(def) if dropped_tables.contains(&def.table_id) => {}
                    IndexChange::Created(def) => insert_index(tx, def)?,
                    IndexChange::Dropped(name) => {
                        tx.execute("DELETE FROM indexes WHERE name = ?1", [name])?;
                    }
                }
            }
            commit_file_changes(tx, changes, grace_ms)
        })
    }

    /// Deletes tables that uncommitted transactions created (ROLLBACK, ROLLBACK TO): `ids`,
    /// or every one when `None` (at start-up, when no transaction is left running). Their
    /// shard directories, staged files included, become cleanup records.
    pub fn drop_pending_tables(&self, ids: Option<&[i64]>) -> Result<usize> {
        self.write(|tx| {
            let pending: Vec<i64> = {
                let mut stmt =
                    tx.prepare("SELECT table_id FROM tables WHERE pending_txn IS NOT NULL")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            let mut n = 0;
            for id in pending
                .into_iter()
                .filter(|id| ids.is_none_or(|ids| ids.contains(id)))
            {
                add_shard_cleanup(tx, id, None, "rolled back")?;
                tx.execute("DELETE FROM tables WHERE table_id = ?1", [id])?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Stores a view's query. A table of that name, or (unless `replace`) a view, is
    /// `TableExists`.
    pub fn create_view(&self, name: &str, query: &str, replace: bool) -> Result<()> {
        self.write(|tx| {
            let table: Option<i64> = tx
                .query_row("SELECT table_id FROM tables WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            if table.is_some() || (!replace && view_exists(tx, name)?) {
                return Err(CatalogError::TableExists {
                    name: name.to_string(),
                });
            }
            tx.execute(
                "INSERT INTO views (name, query, created_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET query = excluded.query",
                params![name, query, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Records an index of table `table_id`. A table, view or index of that name is
    /// `TableExists` (they share PostgreSQL's namespace of relations).
    pub fn create_index(&self, index: &IndexDef) -> Result<()> {
        self.write(|tx| insert_index(tx, index))
    }

    /// Forgets an index; whether there was one.
    pub fn drop_index(&self, name: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM indexes WHERE name = ?1", [name])? > 0))
    }

    /// Every recorded index, by name. An index goes with its table.
    pub fn indexes(&self) -> Result<Vec<IndexDef>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT name, table_id, is_unique, definition, constraint_type FROM indexes \
                 ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    IndexDef {
                        name: r.get(0)?,
                        table_id: r.get(1)?,
                        unique: r.get(2)?,
                        definition: r.get(3)?,
                        constraint: None,
                    },
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut index, constraint) = row?;
                index.constraint = match constraint {
                    None => None,
                    Some(c) => {
                        Some(
                            KeyConstraint::parse(&c).ok_or_else(|| CatalogError::Invalid {
                                message: format!(
                                    "unknown constraint type {c:?} of index {}",
                                    index.name
                                ),
                            })?,
                        )
                    }
                };
                out.push(index);
            }
            Ok(out)
        })
    }

    /// Forgets a view; whether there was one.
    pub fn drop_view(&self, name: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM views WHERE name = ?1", [name])? > 0))
    }

    /// The query of the view `name`, if there is one.
    pub fn view_query(&self, name: &str) -> Result<Option<String>> {
        self.read(|tx| {
            Ok(tx
                .query_row("SELECT query FROM views WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?)
        })
    }

    pub fn view_names(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut stmt = tx.prepare("SELECT name FROM views ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<std::result::Result<Vec<String>, _>>()?)
        })
    }

    /// Drops a table; its shard directories become cleanup records.
    pub fn drop_table(&self, table_id: i64) -> Result<()> {
        self.write(|tx| {
            add_shard_cleanup(tx, table_id, None, "drop table")?;
            tx.execute("DELETE FROM tables WHERE table_id = ?1", [table_id])?;
            Ok(())
        })
    }

    /// Forgets every file of a table; the files become cleanup records.
    pub fn truncate_table(&self, table_id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason)
                 SELECT p.node_id, s.table_id, s.shard_id, f.name, ?2, 'truncate'
                 FROM files f JOIN placements p USING (placement_id) JOIN shards s USING (shard_id)
                 WHERE s.table_id = ?1",
                params![table_id, now_ms()],
            )?;
            tx.execute(
                "DELETE FROM files WHERE placement_id IN (SELECT placement_id FROM placements JOIN shards USING (shard_id) WHERE table_id = ?1)",
                [table_id],
            )?;
            Ok(())
        })
    }

    /// `ALTER TABLE ... RENAME COLUMN`: the files keep the stored name; `indexes` rewrites the
    /// definitions that name the column.
    pub fn rename_column(
        &self,
        table_id: i64,
        old: &str,
        new: &str,
        indexes: &[IndexUpdate],
    ) -> Result<TableInfo> {
        self.write(|tx| {
            let info = table_info_tx(tx, table_id)?;
            if !info.columns.iter().any(|c| c.name == old) {
                return Err(CatalogError::ColumnNotFound {
                    table: info.name,
                    column: old.to_string(),
                });
            }
            if info.columns.iter().any(|c| c.name == new) {
                return Err(CatalogError::ColumnExists {
                    table: info.name,
                    column: new.to_string(),
                });
            }
            tx.execute(
                "UPDATE columns SET name = ?3 WHERE table_id = ?1 AND name = ?2",
                params![table_id, old, new],
            )?;
            tx.execute(
                "UPDATE tables SET distribution_column = ?3 WHERE table_id = ?1 AND distribution_column = ?2",
                params![table_id, old, new],
            )?;
            apply_index_updates(tx, indexes)?;
            table_info_tx(tx, table_id)
        })
    }

    /// Marks `names` NOT NULL (`not_null`), or nullable again: `ALTER TABLE ... ADD PRIMARY
    /// KEY`, and its undoing when existing rows hold NULLs there.
    pub fn set_not_null(
        &self,
        table_id: i64,
        names: &[String],
        not_null: bool,
    ) -> Result<TableInfo> {
        self.write(|tx| {
            let info = table_info_tx(tx, table_id)?;
            for name in names {
                if !info.columns.iter().any(|c| &c.name == name) {
                    return Err(CatalogError::ColumnNotFound {
                        table: info.name,
                        column: name.clone(),
                    });
                }
                tx.execute(
                    "UPDATE columns SET not_null = ?3 WHERE table_id = ?1 AND name = ?2",
                    params![table_id, name, not_null],
                )?;
            }
            table_info_tx(tx, table_id)
        })
    }

    /// `ALTER TABLE ... DROP COLUMN`: the column leaves the table; its values stay in the
    /// files, unread, until they are rewritten. `indexes` drops the indexes that use it.
    pub fn drop_column(
        &self,
        table_id: i64,
        name: &str,
        indexes: &[IndexUpdate],
    ) -> Result<TableInfo> {
        self.write(|tx| {
            let info = table_info_tx(tx, table_id)?;
            let Some(at) = info.columns.iter().position(|c| c.name == name) else {
                return Err(CatalogError::ColumnNotFound {
                    table: info.name,
                    column: name.to_string(),
                });
            };
            tx.execute(
                "DELETE FROM columns WHERE table_id = ?1 AND ordinal = ?2",
                params![table_id, at as i64],
            )?;
            for ordinal in at + 1..info.columns.len() {
                tx.execute(
                    "UPDATE columns SET ordinal = ?3 WHERE table_id = ?1 AND ordinal = ?2",
                    params![table_id, ordinal as i64, ordinal as i64 - 1],
                )?;
            }
            apply_index_updates(tx, indexes)?;
            table_info_tx(tx, table_id)
        })
    }

    /// `ALTER TABLE ... RENAME TO`: files and shards are keyed by the table's id, so only
    /// the name changes (and, through `indexes`, the definitions of its indexes).
    pub fn rename_table(
        &self,
        table_id: i64,
        new_name: &str,
        indexes: &[IndexUpdate],
    ) -> Result<()> {
        self.write(|tx| {
            let taken: Option<i64> = tx
                .query_row(
                    "SELECT table_id FROM tables WHERE name = ?1",
                    [new_name],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() || view_exists(tx, new_name)? {
                return Err(CatalogError::TableExists {
                    name: new_name.to_string(),
                });
            }
            tx.execute(
                "UPDATE tables SET name = ?2 WHERE table_id = ?1",
                params![table_id, new_name],
            )?;
            apply_index_updates(tx, indexes)
        })
    }

    pub fn add_column(&self, table_id: i64, column: &ColumnDef) -> Result<TableInfo> {
        self.write(|tx| {
            let info = table_info_tx(tx, table_id)?;
            if info.columns.iter().any(|c| c.name == column.name) {
                return Err(CatalogError::ColumnExists {
                    table: info.name,
                    column: column.name.clone(),
                });
            }
            if column.not_null && table_has_rows(tx, table_id)? {
                // Its value in every existing row would be NULL, as in PostgreSQL without a
                // default.
                return Err(CatalogError::NullsInNotNullColumn {
                    table: info.name,
                    column: column.name.clone(),
                });
            }
            if column.default.is_some() && table_has_rows(tx, table_id)? {
                // PostgreSQL writes the default into every existing row; Shoal's files
                // cannot take a new column's values without being rewritten.
                return Err(CatalogError::Unsupported {
                    message: format!(
                        "ADD COLUMN \"{}\" with a DEFAULT on a table that has rows is not supported",
                        column.name
                    ),
                });
            }
            let stored = unused_stored_name(tx, &column.name)?;
            insert_column(tx, table_id, info.columns.len(), column, &stored)?;
            table_info_tx(tx, table_id)
        })
    }

    /// The next `n` values of the sequence of column `stored_name` of table `table_id`, as
    /// the sequence's id and the first of `n` consecutive ones. Values are reserved in the catalog at least
    /// [`SEQUENCE_CACHE`] at a time and handed out from memory, so a crash skips at most
    /// that many (as PostgreSQL's sequences skip the values they logged ahead).
    pub fn next_serial_values(
        &self,
        table_id: i64,
        stored_name: &str,
        n: i64,
    ) -> Result<(i64, i64)> {
        let seq_id: i64 = self.read(|tx| {
            tx.query_row(
                "SELECT seq_id FROM sequences WHERE table_id = ?1 AND column_stored_name = ?2",
                params![table_id, stored_name],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| CatalogError::Invalid {
                message: format!("column {stored_name} of table {table_id} has no sequence"),
            })
        })?;
        Ok((seq_id, self.sequence_values(seq_id, n)?))
    }

    /// The sequence named `name` (`t_id_seq`, or `public.t_id_seq`) of a table the running
    /// task's transaction sees.
    pub fn sequence_by_name(&self, name: &str) -> Result<i64> {
        let bare = name
            .strip_prefix("public.")
            .unwrap_or(name)
            .trim_matches('"');
        let view = TxnTables::current();
        let txn = view.as_ref().map(|v| v.txn() as i64);
        let dropped = view.map(|v| v.changes().dropped_ids()).unwrap_or_default();
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT s.seq_id, s.table_id FROM sequences s JOIN tables t USING (table_id)
                 WHERE s.name = ?1 AND (t.pending_txn IS NULL OR t.pending_txn = ?2)",
            )?;
            let rows = stmt.query_map(params![bare, txn], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (seq_id, table_id) = row?;
                if !dropped.contains(&table_id) {
                    return Ok(seq_id);
                }
            }
            Err(CatalogError::SequenceNotFound {
                name: bare.to_string(),
            })
        })
    }

    /// `setval`: the sequence's next value is `value + 1` (`is_called`) or `value`.
    pub fn set_sequence_value(&self, seq_id: i64, value: i64, is_called: bool) -> Result<()> {
        let mut cache = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
        let last = if is_called { value } else { value - 1 };
        self.write(|tx| {
            tx.execute(
                "UPDATE sequences SET last_value = ?2 WHERE seq_id = ?1",
                params![seq_id, last],
            )?;
            Ok(())
        })?;
        cache.remove(&seq_id);
        Ok(())
    }

    /// The next `n` values of sequence `seq_id` (see [`Self::next_serial_values`]).
    pub fn sequence_values(&self, seq_id: i64, n: i64) -> Result<i64> {
        let mut cache = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
        let (next, end) = cache.get(&seq_id).copied().unwrap_or((1, 0));
        if end - next + 1 >= n {
            cache.insert(seq_id, (next + n, end));
            return Ok(next);
        }
        let reserve = n.max(SEQUENCE_CACHE);
        let last: i64 = self.write(|tx| {
            Ok(tx.query_row(
                "UPDATE sequences SET last_value = last_value + ?2 WHERE seq_id = ?1 RETURNING last_value",
                params![seq_id, reserve],
                |r| r.get(0),
            )?)
        })?;
        let first = last - reserve + 1;
        cache.insert(seq_id, (first + n, last));
        Ok(first)
    }

    // ---- files -------------------------------------------------------------------------

    /// Commits the files one statement wrote, all or nothing. Fails with `PlacementGone` if a
    /// placement disappeared meanwhile (the statement then commits nothing).
    pub fn commit_files(&self, files: &[NewFile]) -> Result<()> {
        self.write(|tx| insert_new_files(tx, files, now_ms()))
    }

    /// Publishes a transaction's file changes in one catalog transaction: every removed file
    /// must still be listed (else another writer replaced it first: `WriteConflict`, and
    /// nothing is published) and every placement written to must still exist
    /// (`PlacementGone`). Removed files become cleanup records, deletable after `grace_ms`.
    pub fn commit_transaction(&self, changes: &FileChanges, grace_ms: i64) -> Result<()> {
        self.write(|tx| commit_file_changes(tx, changes, grace_ms))
    }

    /// Swaps files of one placement for a merged one (compaction). The old files become
    /// cleanup records, deletable after `grace_ms`.
    pub fn replace_files(
        &self,
        placement_id: i64,
        remove: &[String],
        add: &FileRecord,
        grace_ms: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let (node_id, table_id, shard_id): (i64, i64, i64) = tx
                .query_row(
                    "SELECT p.node_id, s.table_id, s.shard_id FROM placements p JOIN shards s USING (shard_id) WHERE p.placement_id = ?1",
                    [placement_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?
                .ok_or(CatalogError::PlacementGone { placement_id })?;
            for name in remove {
                let n = tx.execute(
                    "DELETE FROM files WHERE placement_id = ?1 AND name = ?2",
                    params![placement_id, name],
                )?;
                if n == 0 {
                    // Someone else changed the file set; abort so nothing is lost.
                    return Err(CatalogError::PlacementGone { placement_id });
                }
                tx.execute(
                    "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5, 'compaction')",
                    params![node_id, table_id, shard_id, name, now_ms() + grace_ms],
                )?;
            }
            insert_file(tx, placement_id, add, now_ms())?;
            Ok(())
        })
    }

    /// Every shard of a table with placements and committed files, read in one transaction
    /// (or the same snapshot as the previous call, if nothing was written since).
    pub fn snapshot(&self, table_name: &str) -> Result<TableSnapshot> {
        // Read before the transaction begins: the snapshot is at least as new as this.
        let generation = self.generation();
        if TxnTables::current().is_some_and(|v| !v.changes().is_empty()) {
            // The name may mean another table to this transaction than to the cache.
            return self.read_snapshot(table_name);
        }
        {
            let cached = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, snap)) = cached.get(table_name) {
                if *at >= self.tables_changed.load(Ordering::SeqCst) {
                    return Ok(TableSnapshot::clone(snap));
                }
            }
        }
        let snap = self.read_snapshot(table_name)?;
        let mut cached = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        if cached
            .get(table_name)
            .is_none_or(|(at, _)| *at < generation)
        {
            cached.insert(table_name.to_string(), (generation, Arc::new(snap.clone())));
        }
        Ok(snap)
    }

    fn read_snapshot(&self, table_name: &str) -> Result<TableSnapshot> {
        self.read(|tx| {
            let id: i64 =
                visible_table_id(tx, table_name)?.ok_or_else(|| CatalogError::TableNotFound {
                    name: table_name.to_string(),
                })?;
            snapshot_tx(tx, id)
        })
    }

    /// Every file the catalog lists for placements on `node_id`, as
    /// `(table_id, shard_id, name)`, read in one transaction. A file on that worker that is
    /// not in this list (nor in a cleanup record) is invisible to every query.
    pub fn node_file_names(&self, node_id: i64) -> Result<Vec<(i64, i64, String)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT s.table_id, s.shard_id, f.name
                 FROM files f JOIN placements p USING (placement_id) JOIN shards s USING (shard_id)
                 WHERE p.node_id = ?1
                 ORDER BY s.table_id, s.shard_id, f.name",
            )?;
            let rows = stmt.query_map([node_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// The snapshot of the table `table_id` (committed or pending).
    pub fn snapshot_of(&self, table_id: i64) -> Result<TableSnapshot> {
        self.read(|tx| snapshot_tx(tx, table_id))
    }

    /// Snapshots of every committed table, in one transaction (for the `shoal.*` views).
    pub fn snapshot_all(&self) -> Result<Vec<TableSnapshot>> {
        self.read(|tx| {
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare(
                    "SELECT table_id FROM tables WHERE pending_txn IS NULL ORDER BY name",
                )?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            ids.into_iter().map(|id| snapshot_tx(tx, id)).collect()
        })
    }

    // ---- cleanup -----------------------------------------------------------------------

    /// Cleanup records not carried out yet, due or not.
    pub fn pending_cleanup_count(&self) -> Result<u64> {
        self.read(|tx| {
            let n: i64 = tx.query_row("SELECT count(*) FROM cleanup", [], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    /// Cleanup records due now.
    pub fn due_cleanup(&self) -> Result<Vec<CleanupRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT cleanup_id, node_id, table_id, shard_id, file_name, not_before_ms FROM cleanup WHERE not_before_ms <= ?1 ORDER BY cleanup_id",
            )?;
            let rows = stmt.query_map([now_ms()], cleanup_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// What every cleanup record of `node_id` names, due or not, as
    /// `(table_id, shard_id, file_name)`; `None` names the whole shard directory. Read in one
    /// transaction.
    pub fn node_cleanup_names(&self, node_id: i64) -> Result<Vec<(i64, i64, Option<String>)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT table_id, shard_id, file_name FROM cleanup WHERE node_id = ?1
                 ORDER BY cleanup_id",
            )?;
            let rows = stmt.query_map([node_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    pub fn finish_cleanup(&self, cleanup_id: i64) -> Result<()> {
        self.finish_cleanups(&[cleanup_id])
    }

    /// Removes several cleanup records in one transaction (one commit, not one per file).
    pub fn finish_cleanups(&self, cleanup_ids: &[i64]) -> Result<()> {
        if cleanup_ids.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut stmt = tx.prepare("DELETE FROM cleanup WHERE cleanup_id = ?1")?;
            for id in cleanup_ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
    }

    // ---- settings ----------------------------------------------------------------------

    /// Every setting with its current value and description.
    pub fn settings(&self) -> Result<Vec<(String, String, String)>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for (name, default, desc) in SETTINGS_DEFAULTS {
                let v: Option<String> = tx
                    .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                out.push((
                    name.to_string(),
                    v.unwrap_or_else(|| default.to_string()),
                    desc.to_string(),
                ));
            }
            Ok(out)
        })
    }

    /// Every cluster setting, typed; fails if a stored value is not one its kind takes.
    pub fn cluster_settings(&self) -> Result<ClusterSettings> {
        let values = self.settings()?;
        ClusterSettings::parse(values.iter().map(|(n, v, _)| (n.as_str(), v.as_str())))
    }

    pub fn setting(&self, name: &str) -> Result<String> {
        self.settings()?
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v)
            .ok_or_else(|| CatalogError::Invalid {
                message: format!("unrecognized cluster setting \"{name}\""),
            })
    }

    /// Stores a setting after checking its value against the setting's kind (stored in its
    /// canonical spelling), so that every later read of it parses.
    pub fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let kind = SettingKind::of(name).ok_or_else(|| CatalogError::InvalidSetting {
            message: format!("unrecognized cluster setting \"{name}\""),
        })?;
        let value = kind
            .canonical(value)
            .ok_or_else(|| CatalogError::InvalidSetting {
                message: format!(
                    "invalid value for cluster setting \"{name}\": \"{value}\" (expected {})",
                    kind.expected()
                ),
            })?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )?;
            Ok(())
        })
    }
}

/// Settings stored before `set_cluster_setting` checked values (a `0` where at least 1 is
/// needed, a rate of `0`) would make every typed read of the settings fail, stopping moves,
/// cleanup and the scrubber: once, when the catalog opens, each such value goes back to its
/// default, saying so in the log; a value in another spelling of its kind is stored in the
/// one spelling reads expect.
fn repair_settings(tx: &Transaction<'_>) -> Result<()> {
    let stored: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT name, value FROM settings")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for (name, value) in stored {
        let Some(kind) = SettingKind::of(&name) else {
            continue;
        };
        match kind.canonical(&value) {
            Some(canonical) if canonical == value => {}
            Some(canonical) => {
                tx.execute(
                    "UPDATE settings SET value = ?2 WHERE name = ?1",
                    params![name, canonical],
                )?;
            }
            None => {
                tracing::warn!(setting = %name, value = %value, expected = kind.expected(),
                    "stored cluster setting is not a value it takes; back to its default");
                tx.execute("DELETE FROM settings WHERE name = ?1", [&name])?;
            }
        }
    }
    Ok(())
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn list_nodes_tx(tx: &Transaction<'_>) -> Result<Vec<Node>> {
    let mut stmt = tx.prepare(
        "SELECT node_id, host, port, should_have_shards, state, is_live, disk_free_bytes, data_bytes, last_heartbeat_ms FROM nodes ORDER BY host, port",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Node {
            node_id: r.get(0)?,
            host: r.get(1)?,
            port: r.get(2)?,
            should_have_shards: r.get(3)?,
            state: r.get(4)?,
            is_live: r.get(5)?,
            disk_free_bytes: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
            data_bytes: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
            last_heartbeat_ms: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// A `cleanup` row selected as `cleanup_id, node_id, table_id, shard_id, file_name,
/// not_before_ms`.
pub(crate) fn cleanup_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CleanupRecord> {
    Ok(CleanupRecord {
        cleanup_id: r.get(0)?,
        node_id: r.get(1)?,
        table_id: r.get(2)?,
        shard_id: r.get(3)?,
        file_name: r.get(4)?,
        not_before_ms: r.get(5)?,
    })
}

/// A stored name for a column added now: one no file of any table has used (`name#n`, from
/// a counter that only grows).
fn unused_stored_name(tx: &Transaction<'_>, name: &str) -> Result<String> {
    let next: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'next_column_id'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .map(|v| {
            v.parse::<i64>().map_err(|_| CatalogError::Invalid {
                message: format!("next_column_id is {v:?}"),
            })
        })
        .transpose()?
        .unwrap_or(1);
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('next_column_id', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [(next + 1).to_string()],
    )?;
    Ok(format!("{name}#{next}"))
}

fn apply_index_updates(tx: &Transaction<'_>, updates: &[IndexUpdate]) -> Result<()> {
    for update in updates {
        match update {
            IndexUpdate::Redefine { name, definition } => tx.execute(
                "UPDATE indexes SET definition = ?2 WHERE name = ?1",
                params![name, definition],
            )?,
            IndexUpdate::Drop { name } => {
                tx.execute("DELETE FROM indexes WHERE name = ?1", [name])?
            }
        };
    }
    Ok(())
}

/// Records an index unless its name is a table's, a view's or another index's.
fn insert_index(tx: &Transaction<'_>, index: &IndexDef) -> Result<()> {
    let table: Option<i64> = tx
        .query_row(
            "SELECT table_id FROM tables WHERE name = ?1",
            [&index.name],
            |r| r.get(0),
        )
        .optional()?;
    let index_exists = tx
        .query_row(
            "SELECT 1 FROM indexes WHERE name = ?1",
            [&index.name],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if table.is_some() || index_exists || view_exists(tx, &index.name)? {
        return Err(CatalogError::TableExists {
            name: index.name.clone(),
        });
    }
    tx.execute(
        "INSERT INTO indexes (name, table_id, is_unique, definition, created_at_ms,
                              constraint_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            index.name,
            index.table_id,
            index.unique,
            index.definition,
            now_ms(),
            index.constraint.map(|c| c.as_str())
        ],
    )?;
    Ok(())
}

fn view_exists(tx: &Transaction<'_>, name: &str) -> Result<bool> {
    let v: Option<String> = tx
        .query_row("SELECT name FROM views WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.is_some())
}

fn insert_file(tx: &Transaction<'_>, placement_id: i64, f: &FileRecord, at: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO files (placement_id, name, bytes, rows, checksum, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![placement_id, f.name, f.bytes as i64, f.rows as i64, f.checksum as i64, at],
    )?;
    Ok(())
}

fn insert_shards(tx: &Transaction<'_>, table_id: i64, shards: &[NewShard]) -> Result<()> {
    let at = now_ms();
    for s in shards {
        tx.execute(
            "INSERT INTO shards (shard_id, table_id, shard_index, hash_min, hash_max) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.shard_id, table_id, s.shard_index, s.hash_min, s.hash_max],
        )?;
        let shard_id = s.shard_id;
        for (node_id, files) in &s.placements {
            tx.execute(
                "INSERT INTO placements (shard_id, node_id) VALUES (?1, ?2)",
                params![shard_id, node_id],
            )?;
            let placement_id = tx.last_insert_rowid();
            for f in files {
                insert_file(tx, placement_id, f, at)?;
            }
        }
    }
    Ok(())
}

/// Records every current shard directory of a table (all placements) for deletion.
/// [`Catalog::commit_transaction`]'s work inside a catalog transaction.
fn commit_file_changes(tx: &Transaction<'_>, changes: &FileChanges, grace_ms: i64) -> Result<()> {
    let at = now_ms();
    for r in &changes.removed {
        let owner: Option<(i64, i64, i64)> = tx
                .query_row(
                    "SELECT p.node_id, s.table_id, s.shard_id FROM placements p JOIN shards s USING (shard_id) WHERE p.placement_id = ?1",
                    [r.placement_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
        let Some((node_id, table_id, shard_id)) = owner else {
            return Err(CatalogError::PlacementGone {
                placement_id: r.placement_id,
            });
        };
        let n = tx.execute(
            "DELETE FROM files WHERE placement_id = ?1 AND name = ?2",
            params![r.placement_id, r.name],
        )?;
        if n == 0 {
            return Err(CatalogError::WriteConflict { table_id, shard_id });
        }
        tx.execute(
                "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5, 'rewritten')",
                params![node_id, table_id, shard_id, r.name, at + grace_ms],
            )?;
    }
    insert_new_files(tx, &changes.added, at)
}

/// Lists new files of placements that must still exist (`PlacementGone` otherwise).
fn insert_new_files(tx: &Transaction<'_>, files: &[NewFile], at: i64) -> Result<()> {
    for f in files {
        let exists: Option<i64> = tx
            .query_row(
                "SELECT placement_id FROM placements WHERE placement_id = ?1",
                [f.placement_id],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(CatalogError::PlacementGone {
                placement_id: f.placement_id,
            });
        }
        insert_file(tx, f.placement_id, &f.file, at)?;
    }
    Ok(())
}

/// Adds column `c` of table `table_id` at `ordinal`, with its files' name `stored_name`, and
/// its default (an expression, or its own sequence).
fn insert_column(
    tx: &Transaction<'_>,
    table_id: i64,
    ordinal: usize,
    c: &ColumnDef,
    stored_name: &str,
) -> Result<()> {
    let default_expr = match &c.default {
        Some(ColumnDefault::Expr(e)) => Some(e.as_str()),
        _ => None,
    };
    tx.execute(
        "INSERT INTO columns (table_id, ordinal, name, type_name, not_null, stored_name, default_expr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![table_id, ordinal as i64, c.name, c.sql_type.to_string(), c.not_null, stored_name, default_expr],
    )?;
    if let Some(ColumnDefault::Serial { sequence }) = &c.default {
        tx.execute(
            "INSERT INTO sequences (table_id, column_stored_name, name) VALUES (?1, ?2, ?3)",
            params![table_id, stored_name, sequence],
        )?;
    }
    Ok(())
}

/// The table `name` means to the running task's transaction (see [`TxnTables`]): its own
/// pending table of that name, else the committed one unless the transaction dropped it.
fn visible_table_id(tx: &Transaction<'_>, name: &str) -> Result<Option<i64>> {
    let view = TxnTables::current();
    let changes = view.as_ref().map(|v| v.changes()).unwrap_or_default();
    let dropped = changes.dropped_ids();
    // Only a transaction that created tables has pending rows to look among.
    if let Some(v) = view.as_ref().filter(|_| !changes.created.is_empty()) {
        let mut stmt = tx.prepare_cached(
            "SELECT table_id FROM tables WHERE pending_txn = ?1 AND pending_name = ?2",
        )?;
        let ids = stmt.query_map(params![v.txn() as i64, name], |r| r.get::<_, i64>(0))?;
        for id in ids {
            let id = id?;
            if !dropped.contains(&id) {
                return Ok(Some(id));
            }
        }
    }
    let id: Option<i64> = tx
        .query_row(
            "SELECT table_id FROM tables WHERE name = ?1 AND pending_txn IS NULL",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(id.filter(|id| !dropped.contains(id)))
}

/// A pending table's stored name: no SQL name can equal it (identifiers hold no NUL), and
/// no two pending tables share one.
fn pending_placeholder(txn: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "\u{0}pending\u{0}{txn}\u{0}{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn add_shard_cleanup(
    tx: &Transaction<'_>,
    table_id: i64,
    grace_ms: Option<i64>,
    reason: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason)
         SELECT p.node_id, s.table_id, s.shard_id, NULL, ?2, ?3
         FROM placements p JOIN shards s USING (shard_id) WHERE s.table_id = ?1",
        params![table_id, now_ms() + grace_ms.unwrap_or(0), reason],
    )?;
    Ok(())
}

fn table_info_tx(tx: &Transaction<'_>, table_id: i64) -> Result<TableInfo> {
    let (name, kind, dist, coloc): (String, String, Option<String>, Option<i64>) = tx.query_row(
        "SELECT coalesce(pending_name, name), kind, distribution_column, colocation_id FROM tables WHERE table_id = ?1",
        [table_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let kind = TableKind::parse(&kind).ok_or_else(|| CatalogError::Invalid {
        message: format!("unknown table kind {kind}"),
    })?;
    let mut stmt = tx.prepare(
        "SELECT c.name, c.type_name, c.not_null, c.stored_name, c.default_expr, s.name
         FROM columns c LEFT JOIN sequences s
           ON s.table_id = c.table_id AND s.column_stored_name = c.stored_name
         WHERE c.table_id = ?1 ORDER BY c.ordinal",
    )?;
    type ColumnRow = (
        String,
        String,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let cols: Vec<ColumnRow> = stmt
        .query_map([table_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<std::result::Result<_, _>>()?;
    let columns = cols
        .into_iter()
        .map(|(name, t, not_null, stored, default_expr, sequence)| {
            let stored_name = stored.ok_or_else(|| CatalogError::Invalid {
                message: format!("column \"{name}\" of table {table_id} has no stored name"),
            })?;
            let default = match (default_expr, sequence) {
                (None, None) => None,
                (Some(e), None) => Some(ColumnDefault::Expr(e)),
                (None, Some(sequence)) => Some(ColumnDefault::Serial { sequence }),
                (Some(_), Some(_)) => {
                    return Err(CatalogError::Invalid {
                        message: format!(
                            "column \"{name}\" of table {table_id} has both a default expression and a sequence"
                        ),
                    })
                }
            };
            Ok(ColumnDef {
                name,
                sql_type: SqlType::parse(&t)?,
                not_null,
                stored_name,
                default,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let shard_count: i64 = tx.query_row(
        "SELECT count(*) FROM shards WHERE table_id = ?1",
        [table_id],
        |r| r.get(0),
    )?;
    let replication_factor: i64 = tx.query_row(
        "SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM placements JOIN shards USING (shard_id) WHERE table_id = ?1 GROUP BY shard_id)",
        [table_id],
        |r| r.get(0),
    )?;
    Ok(TableInfo {
        table_id,
        name,
        kind,
        distribution_column: dist,
        colocation_id: coloc,
        shard_count,
        replication_factor,
        columns,
    })
}

fn snapshot_tx(tx: &Transaction<'_>, table_id: i64) -> Result<TableSnapshot> {
    let table = table_info_tx(tx, table_id)?;
    let mut shards: Vec<ShardSnapshot> = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT shard_id, shard_index, hash_min, hash_max, state FROM shards WHERE table_id = ?1 ORDER BY shard_index",
        )?;
        let rows = stmt.query_map([table_id], |r| {
            Ok(ShardSnapshot {
                shard_id: r.get(0)?,
                shard_index: r.get(1)?,
                hash_min: r.get(2)?,
                hash_max: r.get(3)?,
                state: r.get(4)?,
                placements: Vec::new(),
            })
        })?;
        for s in rows {
            shards.push(s?);
        }
    }
    let mut placements: BTreeMap<i64, PlacementSnapshot> = BTreeMap::new();
    let mut shard_of: BTreeMap<i64, i64> = BTreeMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT p.placement_id, p.shard_id, n.node_id, n.host, n.port, n.is_live
             FROM placements p JOIN shards s USING (shard_id) JOIN nodes n ON n.node_id = p.node_id
             WHERE s.table_id = ?1 ORDER BY p.placement_id",
        )?;
        let rows = stmt.query_map([table_id], |r| {
            Ok((
                r.get::<_, i64>(1)?,
                PlacementSnapshot {
                    placement_id: r.get(0)?,
                    node_id: r.get(2)?,
                    host: r.get(3)?,
                    port: r.get(4)?,
                    is_live: r.get(5)?,
                    files: Vec::new(),
                },
            ))
        })?;
        for row in rows {
            let (shard_id, p) = row?;
            shard_of.insert(p.placement_id, shard_id);
            placements.insert(p.placement_id, p);
        }
    }
    {
        let mut stmt = tx.prepare(
            "SELECT f.placement_id, f.name, f.bytes, f.rows, f.checksum
             FROM files f JOIN placements p USING (placement_id) JOIN shards s USING (shard_id)
             WHERE s.table_id = ?1 ORDER BY f.file_id",
        )?;
        let rows = stmt.query_map([table_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                FileRecord {
                    name: r.get(1)?,
                    bytes: r.get::<_, i64>(2)? as u64,
                    rows: r.get::<_, i64>(3)? as u64,
                    checksum: r.get::<_, i64>(4)? as u32,
                },
            ))
        })?;
        for row in rows {
            let (pid, f) = row?;
            if let Some(p) = placements.get_mut(&pid) {
                p.files.push(f);
            }
        }
    }
    for (pid, p) in placements {
        let shard_id = shard_of.get(&pid).copied().unwrap_or_default();
        if let Some(s) = shards.iter_mut().find(|s| s.shard_id == shard_id) {
            s.placements.push(p);
        }
    }
    Ok(TableSnapshot { table, shards })
}

mod jobs;
#[cfg(test)]
mod tests;

/// Whether any committed file of the table holds a row.
fn table_has_rows(tx: &Transaction, table_id: i64) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM files f \
           JOIN placements p ON p.placement_id = f.placement_id \
           JOIN shards s ON s.shard_id = p.shard_id \
         WHERE s.table_id = ?1 AND f.rows > 0)",
        [table_id],
        |r| r.get(0),
    )?)
}
