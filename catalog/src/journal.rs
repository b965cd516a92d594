//! The catalog's commit journal: what lets a catalog be rebuilt when the coordinator's disk is
//! gone.
//!
//! Every committed state write (every write but a task's progress, see `WriteKind`) is
//! captured as the list of rows it inserted, updated and deleted (temporary triggers on every
//! table of the write connection log them, see [`install_change_log`]) and handed, in commit
//! order and numbered, to a [`CommitJournal`]; the write then waits, with the write lock released, until the journal
//! says the entry is durable somewhere else (the coordinator ships it to the workers, see
//! `shoal_sql_functions::catalog_journal`). A journal is a *base* (the whole catalog as of
//! entry `seq`, from [`Catalog::journal_base`]) followed by the changesets after it;
//! [`rebuild_catalog`] turns one back into a catalog file.
//!
//! ```text
//! write tx: triggers log row changes ─ commit ─► journal.committed(seq, changes)   (write lock held: commit order)
//!                                     unlock ─► journal.wait_durable(seq)           (before the caller sees success)
//! recovery: base(seq B) + changesets B+1..=S ─► rebuild_catalog ─► catalog.db as of S
//! ```
//!
//! Numbering starts again at every start of the process under a new *epoch*; the journal keeper
//! is expected to start every copy from a new base then.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::schema::SCHEMA_VERSION;

/// Where committed changesets go (see the module docs).
pub trait CommitJournal: Send + Sync {
    /// Entry `seq` (one more than the previous) committed with `changeset`. Called with the
    /// catalog's write lock held, so in commit order: must not block.
    fn committed(&self, seq: u64, changeset: Vec<u8>);

    /// Blocks until entry `seq` is durable in the journal, or the journal gives up on it
    /// (then it says so in its logs and metrics: the write itself has committed).
    fn wait_durable(&self, seq: u64);
}

/// What [`rebuild_catalog`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildSummary {
    /// The journal entry the catalog is as of.
    pub seq: u64,
    pub tables: i64,
    pub files: i64,
    pub nodes: i64,
}

/// Writes the catalog that `base` (a whole catalog as of entry `base_seq`) becomes with
/// `changesets` (entries `base_seq + 1 ..`, in order) applied, to `target`, durably. Refuses to
/// overwrite a file. A change that does not apply cleanly (a row to insert exists, a row to
/// update or delete does not) fails the rebuild, and nothing is left at `target`. Updates
/// write whole rows, so a row that progress writes (not journaled) changed in between gets
/// the journaled values.
pub fn rebuild_catalog(
    target: &Path,
    base: &[u8],
    base_seq: u64,
    changesets: &[Vec<u8>],
) -> Result<RebuildSummary> {
    if target.exists() {
        return Err(invalid(format!(
            "{} exists already; move it away to rebuild the catalog",
            target.display()
        )));
    }
    let partial = target.with_extension("db.rebuilding");
    let _ = fs::remove_file(&partial);
    let written = (|| {
        File::create(&partial)
            .and_then(|mut f| {
                f.write_all(base)?;
                f.sync_all()
            })
            .map_err(|e| io(&partial, e))?;
        let conn = Connection::open(&partial)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            return Err(invalid(format!(
                "the journal's catalog has schema version {version}, this binary writes \
                 {SCHEMA_VERSION}: rebuild it with the Shoal version that wrote it"
            )));
        }
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let columns = table_columns(&conn)?;
        for (i, changeset) in changesets.iter().enumerate() {
            let seq = base_seq + 1 + i as u64;
            let tx = Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
            apply_changes(&tx, &columns, changeset)
                .map_err(|e| invalid(format!("journal entry {seq} does not apply: {e}")))?;
            tx.commit()?;
        }
        // AUTOINCREMENT's high-water mark is not in the changesets: never below an id in use.
        conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq_id), 0) FROM sequences))
             WHERE name = 'sequences'",
            [],
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let broken: Option<String> = conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .ok();
        if let Some(table) = broken {
            return Err(invalid(format!(
                "the rebuilt catalog has dangling references in table {table}"
            )));
        }
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let summary = RebuildSummary {
            seq: base_seq + changesets.len() as u64,
            tables: count("SELECT count(*) FROM tables")?,
            files: count("SELECT count(*) FROM files")?,
            nodes: count("SELECT count(*) FROM nodes")?,
        };
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        drop(conn);
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&partial, e))?;
        Ok(summary)
    })();
    let summary = match written {
        Ok(summary) => summary,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, target).map_err(|e| io(target, e))?;
    if let Some(dir) = target.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(summary)
}

fn invalid(message: String) -> CatalogError {
    CatalogError::Invalid { message }
}

fn io(path: &Path, e: std::io::Error) -> CatalogError {
    invalid(format!("{}: {e}", path.display()))
}

/// One row change, as the triggers log it and a journal entry carries it.
#[derive(Debug, Serialize, Deserialize)]
struct RowChange {
    /// The table.
    t: String,
    /// `I`nsert, `U`pdate or `D`elete.
    o: char,
    /// The row's rowid before the change (update, delete) or after it (insert).
    r: i64,
    /// Update: the rowid after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<i64>,
    /// Insert, update: every column's new value, in the table's column order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    v: Vec<serde_json::Value>,
}

/// Creates (when a journal is set), on the write connection only, the temporary table
/// `journal_log` and, on every
/// table of the catalog, triggers that append each row inserted, updated or deleted to it
/// (also rows that foreign-key cascades delete). Temporary objects belong to this connection:
/// the catalog file's schema does not change, and readers never see them.
pub(crate) fn install_change_log(conn: &Connection) -> Result<()> {
    // Rows that `INSERT OR REPLACE` removes fire delete triggers only with this on; without
    // it the log would miss the delete and the insert would not replay.
    conn.pragma_update(None, "recursive_triggers", "ON")?;
    conn.execute_batch(
        "CREATE TEMP TABLE journal_log (id INTEGER PRIMARY KEY, change TEXT NOT NULL)",
    )?;
    for (table, columns) in table_columns(conn)? {
        let values = |row: &str| {
            columns
                .iter()
                .map(|(c, real)| {
                    if *real {
                        // JSON renders a REAL with 15 digits; 17 round-trip exactly, and the
                        // column's REAL affinity turns the text back into the same number.
                        format!(
                            "CASE WHEN typeof({row}.\"{c}\") = 'real' \
                             THEN printf('%!.17g', {row}.\"{c}\") ELSE {row}.\"{c}\" END"
                        )
                    } else {
                        format!("{row}.\"{c}\"")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let quoted = table.replace('\'', "''");
        conn.execute_batch(&format!(
            "CREATE TEMP TRIGGER \"journal_{table}_i\" AFTER INSERT ON main.\"{table}\" BEGIN
               INSERT INTO journal_log (change) VALUES (json_object('t', '{quoted}', 'o', 'I',
                 'r', NEW.rowid, 'v', json_array({new})));
             END;
             CREATE TEMP TRIGGER \"journal_{table}_u\" AFTER UPDATE ON main.\"{table}\" BEGIN
               INSERT INTO journal_log (change) VALUES (json_object('t', '{quoted}', 'o', 'U',
                 'r', OLD.rowid, 'n', NEW.rowid, 'v', json_array({new})));
             END;
             CREATE TEMP TRIGGER \"journal_{table}_d\" AFTER DELETE ON main.\"{table}\" BEGIN
               INSERT INTO journal_log (change) VALUES (json_object('t', '{quoted}', 'o', 'D',
                 'r', OLD.rowid));
             END;",
            new = values("NEW"),
        ))?;
    }
    Ok(())
}

/// The changes logged by the transaction `tx` so far, as one journal entry (empty if none),
/// and an empty log.
pub(crate) fn take_changes(tx: &Transaction<'_>) -> Result<Vec<u8>> {
    let changes: Vec<String> = tx
        .prepare("SELECT change FROM temp.journal_log ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    discard_changes(tx)?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    // Each logged change is a JSON object already: the entry is their JSON array.
    let mut entry = Vec::with_capacity(changes.iter().map(|c| c.len() + 1).sum::<usize>() + 2);
    entry.push(b'[');
    for (i, change) in changes.iter().enumerate() {
        if i > 0 {
            entry.push(b',');
        }
        entry.extend_from_slice(change.as_bytes());
    }
    entry.push(b']');
    Ok(entry)
}

/// Empties the change log (of a write that is not journaled).
pub(crate) fn discard_changes(tx: &Transaction<'_>) -> Result<()> {
    tx.execute("DELETE FROM temp.journal_log", [])?;
    Ok(())
}

/// A table's name and its columns in order, each with whether its declared type is REAL.
type TableColumns = (String, Vec<(String, bool)>);

/// Every table of the catalog (but SQLite's own) with its columns.
fn table_columns(conn: &Connection) -> Result<Vec<TableColumns>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM main.sqlite_master
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let columns: Vec<(String, bool)> = conn
            .prepare(
                "SELECT name, upper(type) IN ('REAL', 'DOUBLE', 'FLOAT')
                 FROM pragma_table_info(?1) ORDER BY cid",
            )?
            .query_map([&table], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        out.push((table, columns));
    }
    Ok(out)
}

/// Applies one journal entry.
fn apply_changes(tx: &Transaction<'_>, columns: &[TableColumns], entry: &[u8]) -> Result<()> {
    let changes: Vec<RowChange> =
        serde_json::from_slice(entry).map_err(|e| invalid(format!("not a journal entry: {e}")))?;
    for change in changes {
        let cols = columns
            .iter()
            .find(|(t, _)| *t == change.t)
            .map(|(_, c)| c)
            .ok_or_else(|| invalid(format!("no table {:?} in the catalog", change.t)))?;
        let values = || -> Result<Vec<Value>> {
            if change.v.len() != cols.len() {
                return Err(invalid(format!(
                    "{} values for the {} columns of {}",
                    change.v.len(),
                    cols.len(),
                    change.t
                )));
            }
            change.v.iter().map(sql_value).collect()
        };
        let list = cols
            .iter()
            .map(|(c, _)| format!("\"{c}\""))
            .collect::<Vec<_>>();
        let table = &change.t;
        let changed = match change.o {
            'I' => {
                let mut args = vec![Value::Integer(change.r)];
                args.extend(values()?);
                let marks = (1..=args.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                tx.execute(
                    &format!(
                        "INSERT INTO \"{table}\" (rowid, {}) VALUES ({marks})",
                        list.join(", ")
                    ),
                    params_from_iter(args),
                )?
            }
            'U' => {
                let mut args = vec![Value::Integer(change.n.unwrap_or(change.r))];
                args.extend(values()?);
                args.push(Value::Integer(change.r));
                let sets = list
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ?{}", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ");
                tx.execute(
                    &format!(
                        "UPDATE \"{table}\" SET rowid = ?1, {sets} WHERE rowid = ?{}",
                        args.len()
                    ),
                    params_from_iter(args),
                )?
            }
            'D' => tx.execute(
                &format!("DELETE FROM \"{table}\" WHERE rowid = ?1"),
                [change.r],
            )?,
            other => return Err(invalid(format!("unknown change {other:?}"))),
        };
        if changed != 1 {
            return Err(invalid(format!(
                "{} of row {} in {table} changed {changed} rows",
                change.o, change.r
            )));
        }
    }
    Ok(())
}

fn sql_value(v: &serde_json::Value) -> Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(
                n.as_f64()
                    .ok_or_else(|| invalid(format!("number {n} out of range")))?,
            ),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => return Err(invalid(format!("unexpected value {other}"))),
    })
}
