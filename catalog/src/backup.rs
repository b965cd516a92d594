//! Backups of the catalog file, and bringing one back.
//!
//! The catalog is the only record of which files make up each table, so it is copied while
//! the coordinator runs: `VACUUM INTO` reads one transaction's snapshot of the live database
//! (writers carry on in WAL mode) and writes a compact copy. A restore replaces the catalog of
//! a stopped coordinator with such a copy. Files that were deleted after the backup was taken
//! cannot come back: the setting `cleanup.retain_deleted_ms` keeps replaced files that long
//! before deleting them, so a backup younger than that restores whole.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::{CatalogError, Result};
use crate::schema::SCHEMA_VERSION;

/// The catalog file's name in a backup directory.
pub const BACKUP_FILE: &str = "catalog.db";

/// Copies the catalog at `db` (live or not) to `dir/catalog.db`, durably; refuses to
/// overwrite a backup. Returns the copy's path.
pub fn backup_catalog(db: &Path, dir: &Path) -> Result<PathBuf> {
    if !db.exists() {
        return Err(invalid(format!("no catalog at {}", db.display())));
    }
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let target = dir.join(BACKUP_FILE);
    if target.exists() {
        return Err(invalid(format!(
            "{} exists already; back up into a new directory",
            target.display()
        )));
    }
    let partial = dir.join(format!("{BACKUP_FILE}.partial"));
    let _ = fs::remove_file(&partial);
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let partial_text = partial
        .to_str()
        .ok_or_else(|| invalid(format!("{} is not UTF-8", partial.display())))?;
    conn.execute("VACUUM INTO ?1", [partial_text])?;
    drop(conn);
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&partial, e))?;
    fs::rename(&partial, &target).map_err(|e| io(&target, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))?;
    Ok(target)
}

/// Replaces the catalog at `db` with the backup in `dir`. The coordinator must be stopped
/// (the caller holds its data directory's lock). The catalog replaced is kept beside it as
/// `catalog.db.replaced-<ms>` (checkpointed: whole); returns that path, if there was one.
pub fn restore_catalog(dir: &Path, db: &Path) -> Result<Option<PathBuf>> {
    let source = dir.join(BACKUP_FILE);
    // A backup that is not a catalog, or of a newer Shoal, is refused before anything moves.
    {
        let conn = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| invalid(format!("cannot open {}: {e}", source.display())))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(CatalogError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(invalid(format!(
                "{} fails its integrity check: {check}",
                source.display()
            )));
        }
        let nodes: std::result::Result<i64, _> =
            conn.query_row("SELECT count(*) FROM nodes", [], |r| r.get(0));
        if nodes.is_err() {
            return Err(invalid(format!(
                "{} is not a Shoal catalog",
                source.display()
            )));
        }
    }
    let parent = db
        .parent()
        .ok_or_else(|| invalid(format!("{} has no directory", db.display())))?;
    fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let incoming = parent.join("catalog.db.restoring");
    fs::copy(&source, &incoming).map_err(|e| io(&incoming, e))?;
    File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&incoming, e))?;
    let mut replaced = None;
    if db.exists() {
        // Everything the old catalog committed goes into its main file first: its WAL is
        // removed below (SQLite would replay it onto the new file). A failed checkpoint
        // stops the restore with the old catalog untouched.
        {
            let conn = Connection::open(db)?;
            let (busy, _, _): (i64, i64, i64) =
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            if busy != 0 {
                return Err(invalid(format!(
                    "{} is in use (its WAL could not be checkpointed); stop the coordinator",
                    db.display()
                )));
            }
        }
        // A second name for the old file; `db` itself is replaced atomically below, so a
        // crash leaves either the old catalog or the new one there, never none.
        let keep = parent.join(format!("catalog.db.replaced-{}", crate::store::now_ms()));
        fs::hard_link(db, &keep).map_err(|e| io(&keep, e))?;
        replaced = Some(keep);
    }
    // Empty after the checkpoint; stale WAL frames must not meet the new file.
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        match fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&side, e)),
        }
    }
    fs::rename(&incoming, db).map_err(|e| io(db, e))?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(parent, e))?;
    Ok(replaced)
}

fn invalid(message: String) -> CatalogError {
    CatalogError::Invalid { message }
}

fn io(path: &Path, e: std::io::Error) -> CatalogError {
    invalid(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
