//! The worker's copy of the coordinator's catalog journal (see `shoal_catalog::journal`): a
//! base (the whole catalog as of entry `seq`) and the entries after it, kept so that the
//! catalog can be rebuilt from the workers when the coordinator's disk is lost
//! (`shoal recover-catalog`).
//!
//! ```text
//! DIR/catalog-journal/base                 "SHOALJB1" u32 len, JSON {epoch, seq}, image, u32 CRC-32C of all before
//! DIR/catalog-journal/log-<epoch>-<seq>    records: u32 len, u32 CRC-32C, u64 seq, entry
//! ```
//!
//! A new base is written beside the old one and renamed over it, then its (empty) log is
//! created and older logs removed: a crash at any point leaves a base with the log of its own
//! epoch and seq, or with none (no entries yet). Appends are fsynced before they are
//! acknowledged; a torn last record (a crash during an append, never acknowledged) is ignored
//! when the log is read, and cut off before the next append. Entries are accepted only in
//! order: an append must start right after the last entry of the same epoch, or it is refused
//! and the coordinator sends a new base.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ShardStoreError};

const BASE_MAGIC: &[u8; 8] = b"SHOALJB1";
const DIR: &str = "catalog-journal";

/// Where a worker's journal stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// The coordinator run that wrote it (ordered: a later run's epoch is greater).
    pub epoch: String,
    /// The entry the base is as of.
    pub base_seq: u64,
    /// The last entry kept (`base_seq` if none after the base).
    pub last_seq: u64,
}

/// A whole journal, as `shoal recover-catalog` reads it.
#[derive(Clone, Debug)]
pub struct JournalCopy {
    pub status: JournalStatus,
    pub base: Vec<u8>,
    /// Entries `base_seq + 1 ..= last_seq`, in order.
    pub entries: Vec<Vec<u8>>,
}

/// The header of a base file, and of the `journal_base` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BaseHeader {
    /// The catalog's cluster: a worker bound to another refuses the base.
    pub cluster_id: String,
    pub epoch: String,
    pub seq: u64,
}

/// The header of the `journal_append` action: entries `first_seq ..` follow, of these lengths.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppendHeader {
    pub epoch: String,
    pub first_seq: u64,
    pub lengths: Vec<u64>,
}

/// The header of a `journal_read` answer: the base's bytes and then each entry's follow.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadHeader {
    pub status: JournalStatus,
    pub base_bytes: u64,
    pub lengths: Vec<u64>,
}

/// The open journal: its status and the log being appended to.
struct Open {
    status: JournalStatus,
    log: File,
    /// Bytes of valid records in `log` (a torn tail beyond it is cut before appending).
    log_len: u64,
}

/// A worker's journal directory. Calls are serialised.
pub(crate) struct JournalStore {
    dir: PathBuf,
    open: Mutex<Option<Open>>,
}

impl JournalStore {
    pub(crate) fn new(data_dir: &Path) -> Self {
        JournalStore {
            dir: data_dir.join(DIR),
            open: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the journal with a new base.
    pub(crate) fn put_base(&self, header: BaseHeader, image: &[u8]) -> Result<JournalStatus> {
        let mut open = self.lock();
        // Whatever happens below, what is in memory may no longer be what is on disk: it is
        // read again from disk at the next call unless this one succeeds.
        *open = None;
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let json = serde_json::to_vec(&header)
            .map_err(|e| ShardStoreError::internal(format!("journal header: {e}")))?;
        let mut bytes = Vec::with_capacity(BASE_MAGIC.len() + 4 + json.len() + image.len() + 4);
        bytes.extend_from_slice(BASE_MAGIC);
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(image);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join("base.tmp");
        write_synced(&tmp, &bytes)?;
        let base = self.dir.join("base");
        fs::rename(&tmp, &base).map_err(|e| io(&base, e))?;
        let log_path = self.log_path(&header.epoch, header.seq);
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| io(&log_path, e))?;
        log.sync_all().map_err(|e| io(&log_path, e))?;
        sync_dir(&self.dir)?;
        // Older logs belong to older bases.
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("log-") && path != log_path {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let status = JournalStatus {
            epoch: header.epoch,
            base_seq: header.seq,
            last_seq: header.seq,
        };
        *open = Some(Open {
            status: status.clone(),
            log,
            log_len: 0,
        });
        Ok(status)
    }

    /// Appends entries `header.first_seq ..`; refused unless they follow the last entry of
    /// the same epoch.
    pub(crate) fn append(&self, header: AppendHeader, payload: &[u8]) -> Result<JournalStatus> {
        let mut guard = self.lock();
        if guard.is_none() {
            *guard = self.load()?;
        }
        let Some(open) = guard.as_mut() else {
            return Err(ShardStoreError::protocol(
                "journal gap: this worker has no journal base yet",
            ));
        };
        if open.status.epoch != header.epoch || header.first_seq != open.status.last_seq + 1 {
            return Err(ShardStoreError::protocol(format!(
                "journal gap: this worker holds epoch {} up to entry {}, not the entries from {} of epoch {}",
                open.status.epoch, open.status.last_seq, header.first_seq, header.epoch
            )));
        }
        let total = header
            .lengths
            .iter()
            .try_fold(0u64, |sum, len| sum.checked_add(*len));
        if total != Some(payload.len() as u64) {
            return Err(ShardStoreError::protocol(format!(
                "journal append: {total:?} bytes announced, {} sent",
                payload.len()
            )));
        }
        let mut records = Vec::with_capacity(payload.len() + header.lengths.len() * 16);
        let mut at = 0usize;
        for (i, len) in header.lengths.iter().enumerate() {
            let entry = &payload[at..at + *len as usize];
            at += *len as usize;
            let mut body = Vec::with_capacity(8 + entry.len());
            body.extend_from_slice(&(header.first_seq + i as u64).to_le_bytes());
            body.extend_from_slice(entry);
            records.extend_from_slice(&(body.len() as u32).to_le_bytes());
            records.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
            records.extend_from_slice(&body);
        }
        let path = self.log_path(&open.status.epoch, open.status.base_seq);
        // A torn record left by a crash is cut off first.
        open.log
            .set_len(open.log_len)
            .and_then(|()| {
                use std::io::{Seek, SeekFrom};
                open.log.seek(SeekFrom::Start(open.log_len))?;
                open.log.write_all(&records)?;
                open.log.sync_data()
            })
            .map_err(|e| io(&path, e))?;
        open.log_len += records.len() as u64;
        open.status.last_seq += header.lengths.len() as u64;
        Ok(open.status.clone())
    }

    /// Where the journal stands; `None` without one.
    pub(crate) fn status(&self) -> Result<Option<JournalStatus>> {
        let mut guard = self.lock();
        if guard.is_none() {
            *guard = self.load()?;
        }
        Ok(guard.as_ref().map(|o| o.status.clone()))
    }

    /// The whole journal; `None` without one.
    pub(crate) fn read(&self) -> Result<Option<JournalCopy>> {
        let _guard = self.lock();
        let Some((header, image)) = self.read_base()? else {
            return Ok(None);
        };
        let (entries, _) = self.read_log(&header)?;
        Ok(Some(JournalCopy {
            status: JournalStatus {
                last_seq: header.seq + entries.len() as u64,
                epoch: header.epoch,
                base_seq: header.seq,
            },
            base: image,
            entries,
        }))
    }

    fn log_path(&self, epoch: &str, base_seq: u64) -> PathBuf {
        self.dir.join(format!("log-{epoch}-{base_seq}"))
    }

    /// Opens the journal on disk, if there is one.
    fn load(&self) -> Result<Option<Open>> {
        let Some((header, _)) = self.read_base()? else {
            return Ok(None);
        };
        let (entries, log_len) = self.read_log(&header)?;
        let path = self.log_path(&header.epoch, header.seq);
        let existed = path.exists();
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        if !existed {
            // A crash between the base's rename and its log's creation: the new file's name
            // must be durable before an append to it is acknowledged.
            sync_dir(&self.dir)?;
        }
        Ok(Some(Open {
            status: JournalStatus {
                last_seq: header.seq + entries.len() as u64,
                epoch: header.epoch,
                base_seq: header.seq,
            },
            log,
            log_len,
        }))
    }

    fn read_base(&self) -> Result<Option<(BaseHeader, Vec<u8>)>> {
        let path = self.dir.join("base");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        let damaged = |why: &str| ShardStoreError::protocol(format!("{}: {why}", path.display()));
        if bytes.len() < BASE_MAGIC.len() + 8 || &bytes[..BASE_MAGIC.len()] != BASE_MAGIC {
            return Err(damaged("not a journal base"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(damaged("checksum mismatch"));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&body[BASE_MAGIC.len()..BASE_MAGIC.len() + 4]);
        let start = BASE_MAGIC.len() + 4;
        let end = start + u32::from_le_bytes(len) as usize;
        if end > body.len() {
            return Err(damaged("truncated header"));
        }
        let header: BaseHeader =
            serde_json::from_slice(&body[start..end]).map_err(|e| damaged(&e.to_string()))?;
        Ok(Some((header, body[end..].to_vec())))
    }

    /// The entries of the base's log and the length of its valid records.
    fn read_log(&self, header: &BaseHeader) -> Result<(Vec<Vec<u8>>, u64)> {
        let path = self.log_path(&header.epoch, header.seq);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| io(&path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(io(&path, e)),
        }
        let mut entries = Vec::new();
        let mut at = 0usize;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                as usize;
            let crc = [bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]];
            let Some(body) = bytes.get(at + 8..at + 8 + len) else {
                break; // torn tail
            };
            if len < 8 || crc32c::crc32c(body).to_le_bytes() != crc {
                break; // torn tail
            }
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&body[..8]);
            if u64::from_le_bytes(seq) != header.seq + entries.len() as u64 + 1 {
                return Err(ShardStoreError::protocol(format!(
                    "{}: entries out of order",
                    path.display()
                )));
            }
            entries.push(body[8..].to_vec());
            at += 8 + len;
        }
        Ok((entries, at as u64))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn io(path: &Path, e: std::io::Error) -> ShardStoreError {
    ShardStoreError::internal(format!("catalog journal {}: {e}", path.display()))
}

/// `u32 header length | header JSON | payload`: the body of the journal actions.
pub(crate) fn frame<T: Serialize>(header: &T, payload: &[&[u8]]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(header)
        .map_err(|e| ShardStoreError::internal(format!("journal header: {e}")))?;
    let size = 4 + json.len() + payload.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for p in payload {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Splits a body made by [`frame`].
pub(crate) fn unframe<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<(T, usize)> {
    let bad = |why: String| ShardStoreError::protocol(format!("{what}: {why}"));
    if body.len() < 4 {
        return Err(bad("too short".into()));
    }
    let len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let json = body
        .get(4..4 + len)
        .ok_or_else(|| bad("truncated header".into()))?;
    let header = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    Ok((header, 4 + len))
}

#[cfg(test)]
mod tests;
