//! Integrity of committed shard files. A file is checked against the size and CRC-32C the
//! catalog recorded for it: its size on every read (a `stat`), its checksum on the first read
//! after the worker started or after the file changed on disk. Files are immutable, so a file
//! whose identity (inode, size, modification and change times) is unchanged since it last
//! verified is not re-read; the scrubber re-reads regardless.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ShardStoreError};
use crate::files::file_checksum;

/// What the catalog recorded for a file: the reader checks the file against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    pub bytes: u64,
    /// CRC-32C of the whole file.
    pub checksum: u32,
}

/// How a file differs from its [`FileCheck`], in words for an operator.
pub(crate) type Damage = String;

/// Identity of a file on disk; any write, truncation or replacement changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileIdentity {
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
    changed_ns: i128,
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
            changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// The files that verified, with the identity and checksum they verified with.
#[derive(Debug, Default)]
pub(crate) struct VerifiedFiles {
    seen: Mutex<HashMap<PathBuf, (FileIdentity, FileCheck)>>,
}

impl VerifiedFiles {
    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (FileIdentity, FileCheck)>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the file at `path`, whose metadata the caller just read, against `expected`:
    /// `Ok(None)` if it matches, `Ok(Some(damage))` if it does not. `rescan` re-reads the
    /// checksum even if the file verified before.
    pub(crate) fn check(
        &self,
        path: &Path,
        meta: &fs::Metadata,
        expected: FileCheck,
        rescan: bool,
    ) -> Result<Option<Damage>> {
        let identity = FileIdentity::of(meta);
        if identity.len != expected.bytes {
            self.seen().remove(path);
            return Ok(Some(format!(
                "it has {} bytes, the catalog recorded {}",
                identity.len, expected.bytes
            )));
        }
        if !rescan && self.seen().get(path) == Some(&(identity, expected)) {
            return Ok(None);
        }
        let (bytes, checksum) = file_checksum(path)?;
        if bytes != expected.bytes || checksum != expected.checksum {
            self.seen().remove(path);
            return Ok(Some(format!(
                "its {bytes} bytes have CRC-32C {checksum:#010x}, the catalog recorded \
                 {:#010x}",
                expected.checksum
            )));
        }
        // Re-stat: a file that changed while it was read must be verified again next time.
        let after = fs::metadata(path).map_err(|e| ShardStoreError::io(path, e))?;
        if FileIdentity::of(&after) == identity {
            self.seen().insert(path.to_path_buf(), (identity, expected));
        }
        Ok(None)
    }

    /// Forgets files under `prefix` (deleted files, dropped shard directories).
    pub(crate) fn forget_under(&self, prefix: &Path) {
        self.seen().retain(|p, _| !p.starts_with(prefix));
    }
}

/// One file the scrubber asks a worker to re-verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileToVerify {
    pub table_id: i64,
    pub shard_id: i64,
    pub name: String,
    pub check: FileCheck,
}

/// A file that failed verification on a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedFile {
    pub table_id: i64,
    pub shard_id: i64,
    pub name: String,
    /// How the file differs from the catalog's record.
    pub damage: String,
}
