//! The catalog's SQLite schema and its migrations. Each migration runs once, in order, inside
//! one transaction together with the bump of `user_version`.

use rusqlite::Connection;

use crate::error::{CatalogError, Result};

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE nodes (
        node_id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        should_have_shards INTEGER NOT NULL DEFAULT 1,
        state TEXT NOT NULL DEFAULT 'active',
        is_live INTEGER NOT NULL DEFAULT 1,
        disk_free_bytes INTEGER,
        data_bytes INTEGER,
        last_heartbeat_ms INTEGER,
        UNIQUE (host, port)
    );
    CREATE TABLE colocation_groups (
        colocation_id INTEGER PRIMARY KEY,
        shard_count INTEGER NOT NULL,
        replication_factor INTEGER NOT NULL,
        distribution_type TEXT NOT NULL
    );
    CREATE TABLE tables (
        table_id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        distribution_column TEXT,
        colocation_id INTEGER REFERENCES colocation_groups (colocation_id),
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE columns (
        table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        name TEXT NOT NULL,
        type_name TEXT NOT NULL,
        PRIMARY KEY (table_id, ordinal)
    );
    CREATE TABLE shards (
        shard_id INTEGER PRIMARY KEY,
        table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
        shard_index INTEGER NOT NULL,
        hash_min INTEGER NOT NULL,
        hash_max INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'active'
    );
    CREATE INDEX shards_by_table ON shards (table_id, shard_index);
    CREATE TABLE placements (
        placement_id INTEGER PRIMARY KEY,
        shard_id INTEGER NOT NULL REFERENCES shards (shard_id) ON DELETE CASCADE,
        node_id INTEGER NOT NULL REFERENCES nodes (node_id),
        state TEXT NOT NULL DEFAULT 'active',
        UNIQUE (shard_id, node_id)
    );
    CREATE TABLE files (
        file_id INTEGER PRIMARY KEY,
        placement_id INTEGER NOT NULL REFERENCES placements (placement_id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        checksum INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        UNIQUE (placement_id, name)
    );
    CREATE TABLE cleanup (
        cleanup_id INTEGER PRIMARY KEY,
        node_id INTEGER NOT NULL,
        table_id INTEGER NOT NULL,
        shard_id INTEGER NOT NULL,
        file_name TEXT,
        not_before_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    "#,
    // 2: background jobs (rebalance, drain, move) and their tasks, Citus-shaped. A task's
    // `phase` is the persisted state of the move state machine; `context` is its small JSON
    // context (stable field names, never Rust type names).
    r#"
    CREATE TABLE jobs (
        job_id INTEGER PRIMARY KEY,
        job_type TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'scheduled',
        description TEXT NOT NULL,
        transfer_mode TEXT NOT NULL,
        max_bandwidth_mb REAL,
        max_concurrent_moves INTEGER,
        created_at_ms INTEGER NOT NULL,
        started_at_ms INTEGER,
        finished_at_ms INTEGER
    );
    CREATE TABLE tasks (
        task_id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs (job_id),
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        phase TEXT NOT NULL DEFAULT 'planned',
        shard_id INTEGER NOT NULL,
        colocation_id INTEGER,
        shard_index INTEGER NOT NULL,
        source_node_id INTEGER NOT NULL,
        target_node_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        bytes_verified INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        not_before_ms INTEGER,
        message TEXT NOT NULL DEFAULT '',
        started_at_ms INTEGER,
        finished_at_ms INTEGER,
        context TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX tasks_by_job ON tasks (job_id, task_id);
    CREATE TABLE task_depends (
        task_id INTEGER NOT NULL REFERENCES tasks (task_id),
        depends_on INTEGER NOT NULL REFERENCES tasks (task_id),
        PRIMARY KEY (task_id, depends_on)
    );
    "#,
    // 3: NOT NULL columns.
    r#"
    ALTER TABLE columns ADD COLUMN not_null INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: tasks by state: the scheduler and every move look for the few unfinished tasks
    // among all the finished ones a cluster keeps as history.
    r#"
    CREATE INDEX tasks_by_state ON tasks (state, task_id);
    "#,
    // 5: views, kept as their query's SQL; planned again whenever a query names them.
    r#"
    CREATE TABLE views (
        name TEXT PRIMARY KEY,
        query TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    "#,
    // 6: a column's name in the files, apart from its SQL name (RENAME/DROP COLUMN).
    r#"
    ALTER TABLE columns ADD COLUMN stored_name TEXT;
    UPDATE columns SET stored_name = name;
    "#,
    // 7: tables created by a transaction that has not committed: the transaction's id, and
    // the name the table takes at COMMIT (its `name` is a placeholder until then).
    r#"
    ALTER TABLE tables ADD COLUMN pending_txn INTEGER;
    ALTER TABLE tables ADD COLUMN pending_name TEXT;
    "#,
    // 8: column defaults: an expression's SQL, or the column's own sequence (serial,
    // identity). A sequence id is never reused, so a cache of reserved values can never
    // outlive its sequence into another's.
    r#"
    ALTER TABLE columns ADD COLUMN default_expr TEXT;
    CREATE TABLE sequences (
        seq_id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
        column_stored_name TEXT NOT NULL,
        name TEXT NOT NULL,
        last_value INTEGER NOT NULL DEFAULT 0,
        UNIQUE (table_id, column_stored_name)
    );
    "#,
    // 9: indexes a user declared (CREATE INDEX): kept so that their names, DROP INDEX and
    // IF NOT EXISTS behave as in PostgreSQL; queries never use them (a scan reads the
    // table's column files). `definition` is the statement as PostgreSQL's pg_indexes
    // shows it.
    r#"
    CREATE TABLE indexes (
        name TEXT PRIMARY KEY,
        table_id INTEGER NOT NULL REFERENCES tables (table_id) ON DELETE CASCADE,
        is_unique INTEGER NOT NULL,
        definition TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    "#,
    // 10: the PRIMARY KEY or UNIQUE constraint an index stands for ('p', 'u'; NULL for a
    // CREATE INDEX).
    r#"
    ALTER TABLE indexes ADD COLUMN constraint_type TEXT;
    "#,
    // 11: drains queued behind a running rebalance or drain: the node ids (comma-separated)
    // and strategy a job is planned for when it starts (NULL once planned); and why a job
    // failed before it had tasks.
    r#"
    ALTER TABLE jobs ADD COLUMN queued_drain TEXT;
    ALTER TABLE jobs ADD COLUMN queued_strategy TEXT;
    ALTER TABLE jobs ADD COLUMN error TEXT;
    "#,
    // 12: a move persists only the phases it recovers from differently: the catch-up, the
    // fence and the final copy resume as the copy does (the fence died with the process, the
    // target skips what it staged), and `cleanup` as `switched` (the switch is done).
    r#"
    UPDATE tasks SET phase = 'copying' WHERE phase IN ('catching_up', 'fenced', 'final_sync');
    UPDATE tasks SET phase = 'switched' WHERE phase = 'cleanup';
    "#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(CatalogError::TooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "catalog migrated");
    }
    Ok(())
}
