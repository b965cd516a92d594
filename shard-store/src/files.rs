//! The worker's on-disk store.
//!
//! ```text
//! DIR/cluster_id                                   the cluster this worker belongs to
//! DIR/shards/<table_id>/<shard_id>/<uuid>.parquet  committed, immutable shard files
//! DIR/staging/put-<uuid>.parquet.tmp               a put in progress
//! DIR/staging/move-<task_id>/<table_id>/<shard_id>/
//!     <uuid>.parquet.part                          a file of a move being received
//!     <uuid>.parquet                               received, fsynced and verified: staged
//! ```
//!
//! A put is written to staging, fsynced, renamed into its shard directory and the directory
//! fsynced, so `shards/` only ever holds complete files. `*.tmp` files under `staging/` are
//! incomplete by definition and removed when the worker starts.
//!
//! The target of a move receives each file as `<name>.part`, fsyncs it, checks its size and
//! CRC-32C against the catalog's, and only then renames it to `<name>` (the directory is
//! fsynced once per `pull_files` call, before it reports success): a staged file without the
//! suffix is always complete and verified. At start the
//! worker removes `*.part` files (incomplete transfers) but keeps staged files, so a resumed
//! move does not fetch them again. Adopting renames staged files into `shards/`; discarding
//! removes the task's whole `move-<task_id>/` directory.
//!
//! All functions here block: call them from `spawn_blocking`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::error::{Result, ShardStoreError};
use crate::integrity::VerifiedFiles;
use crate::protocol::{FileChunk, FileMeta, StoredFile};

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Name prefix of a move task's directory under `staging/`.
const MOVE_DIR_PREFIX: &str = "move-";

/// Suffix of a file of a move while it is being received.
const PART_SUFFIX: &str = ".part";

/// Read size when checksumming a whole file.
const CHECKSUM_READ_BYTES: usize = 1024 * 1024;

/// While a file is received, writeback of what was written is started every this many bytes
/// (see [`start_writeback`]), so the disk writes while the network delivers and the fsync
/// that ends the file has only the last few MiB left to write. Without it that fsync took a
/// fifth to a third of a move's time.
const FLUSH_EVERY_BYTES: u64 = 8 * 1024 * 1024;

/// A message from the network side of a pull to the writer thread of one received file.
pub(crate) enum PullMsg {
    /// The next bytes of the file.
    Chunk(Bytes),
    /// The source sent the whole file: verify it and make it durable and visible.
    Done,
}

/// Where the bytes of a file being received come from: the chunks of a Flight pull forwarded
/// by the network side ([`ChannelSource`]), or a raw socket read by the receiving thread itself
/// (`raw::RawReceiver`).
pub(crate) trait PullSource {
    /// The next bytes of the file; `None` once the source has sent all of it. An error ends
    /// the transfer (and its part file is removed).
    fn next_chunk(&mut self) -> Result<Option<&[u8]>>;
}

/// The chunks of a Flight pull, forwarded on a channel; the file is complete at
/// [`PullMsg::Done`], and a channel closed before it is an interrupted transfer.
pub(crate) struct ChannelSource {
    rx: mpsc::Receiver<PullMsg>,
    chunk: Bytes,
    name: String,
}

impl PullSource for ChannelSource {
    fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        match self.rx.blocking_recv() {
            Some(PullMsg::Chunk(chunk)) => {
                self.chunk = chunk;
                Ok(Some(&self.chunk))
            }
            Some(PullMsg::Done) => Ok(None),
            None => Err(ShardStoreError::protocol(format!(
                "transfer of file {} was interrupted",
                self.name
            ))),
        }
    }
}

/// A message from the network side of a put to its writer thread.
pub(crate) enum PutMsg {
    /// Rows to append.
    Batch(RecordBatch),
    /// The client sent everything: make the file durable and visible.
    Commit,
}

/// The data directory of one worker.
#[derive(Debug)]
pub(crate) struct FileStore {
    root: PathBuf,
    shards: PathBuf,
    staging: PathBuf,
    /// The bound cluster id; the lock also serialises handshakes.
    cluster_id: Mutex<Option<String>>,
    /// Files whose checksum matched the catalog's, while they stay unchanged.
    pub(crate) verified: VerifiedFiles,
}

impl FileStore {
    /// Opens (creating if needed) the data directory and removes leftovers of a crash.
    /// The worker's data directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn open(root: &Path) -> Result<Self> {
        let root = &std::path::absolute(root).map_err(|e| ShardStoreError::io(root, e))?;
        // Scans hand file paths to DataFusion as strings, where these characters start a glob.
        if root.to_str().is_none_or(|s| s.contains(['*', '?', '['])) {
            return Err(ShardStoreError::Config {
                message: format!(
                    "data directory {} must be valid UTF-8 without '*', '?' or '['",
                    root.display()
                ),
            });
        }
        let shards = root.join("shards");
        let staging = root.join("staging");
        for dir in [root, &shards, &staging] {
            fs::create_dir_all(dir).map_err(|e| ShardStoreError::io(dir, e))?;
        }
        let removed = remove_files_with_extension(&staging, "tmp")? + remove_part_files(&staging)?;
        if removed > 0 {
            info!(removed, dir = %staging.display(), "removed incomplete files of an earlier run");
        }
        let cluster_id = read_cluster_id(&root.join("cluster_id"))?;
        Ok(FileStore {
            root: root.to_path_buf(),
            shards,
            staging,
            cluster_id: Mutex::new(cluster_id),
            verified: VerifiedFiles::default(),
        })
    }

    pub(crate) fn shard_dir(&self, table_id: i64, shard_id: i64) -> PathBuf {
        self.shards
            .join(table_id.to_string())
            .join(shard_id.to_string())
    }

    /// Path of a shard file; refuses names that could leave the shard directory.
    pub(crate) fn file_path(&self, table_id: i64, shard_id: i64, name: &str) -> Result<PathBuf> {
        validate_file_name(name)?;
        Ok(self.shard_dir(table_id, shard_id).join(name))
    }

    /// Paths and metadata of the named files of a shard, checking that each is there: the
    /// first missing one is reported as [`ShardStoreError::FileMissing`].
    pub(crate) fn existing_files(
        &self,
        table_id: i64,
        shard_id: i64,
        names: &[String],
    ) -> Result<Vec<(PathBuf, fs::Metadata)>> {
        names
            .iter()
            .map(|name| {
                let path = self.file_path(table_id, shard_id, name)?;
                match fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => Ok((path, meta)),
                    Ok(_) => Err(ShardStoreError::FileMissing {
                        table_id,
                        shard_id,
                        name: name.clone(),
                    }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        Err(ShardStoreError::FileMissing {
                            table_id,
                            shard_id,
                            name: name.clone(),
                        })
                    }
                    Err(e) => Err(ShardStoreError::io(&path, e)),
                }
            })
            .collect()
    }

    /// Writes the batches received on `rx` as one new shard file and commits it on
    /// [`PutMsg::Commit`]. If the channel closes before `Commit`, or anything fails, the
    /// staged file is removed and nothing appears in `shards/`. A put of zero rows writes no
    /// file and returns a `FileMeta` with an empty name. With `cluster_by`, each row group's
    /// rows are sorted by that column (see [`RowGroupSorter`]).
    pub(crate) fn write_shard_file(
        &self,
        table_id: i64,
        shard_id: i64,
        cluster_by: Option<&str>,
        rx: mpsc::Receiver<PutMsg>,
    ) -> Result<FileMeta> {
        let id = uuid::Uuid::new_v4();
        let tmp = self.staging.join(format!("put-{id}.parquet.tmp"));
        let name = format!("{id}.parquet");
        let result = self.write_and_commit(table_id, shard_id, &name, &tmp, cluster_by, rx);
        if let Err(e) = &result {
            warn!(table_id, shard_id, error = %e, "put failed; discarding staged file");
            if let Err(rm) = fs::remove_file(&tmp) {
                if rm.kind() != io::ErrorKind::NotFound {
                    warn!(path = %tmp.display(), error = %rm, "cannot remove staged file");
                }
            }
        }
        result
    }

    fn write_and_commit(
        &self,
        table_id: i64,
        shard_id: i64,
        name: &str,
        tmp: &Path,
        cluster_by: Option<&str>,
        mut rx: mpsc::Receiver<PutMsg>,
    ) -> Result<FileMeta> {
        let mut writer: Option<ArrowWriter<ChecksumWriter<File>>> = None;
        let mut sorter: Option<RowGroupSorter> = None;
        let mut rows = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(PutMsg::Batch(batch)) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    let w = match &mut writer {
                        Some(w) => w,
                        None => {
                            if let Some(column) = cluster_by {
                                sorter = Some(RowGroupSorter::new(&batch, column)?);
                            }
                            writer.insert(new_writer(tmp, &batch)?)
                        }
                    };
                    rows += batch.num_rows() as u64;
                    match &mut sorter {
                        Some(sorter) => sorter.push(batch, w, tmp)?,
                        None => w
                            .write(&batch)
                            .map_err(|e| ShardStoreError::parquet_write(tmp, e))?,
                    }
                }
                Some(PutMsg::Commit) => {
                    if let (Some(sorter), Some(w)) = (&mut sorter, &mut writer) {
                        sorter.finish(w, tmp)?;
                    }
                    break;
                }
                None => {
                    return Err(ShardStoreError::protocol(
                        "put stream ended without its commit marker",
                    ))
                }
            }
        }
        let Some(mut writer) = writer else {
            debug!(table_id, shard_id, "empty put: no file written");
            return Ok(FileMeta {
                name: String::new(),
                bytes: 0,
                rows: 0,
                checksum: 0,
            });
        };
        // `finish` writes the footer and flushes every buffer down to the file (an ENOSPC
        // there stays an io::Error, unlike `into_inner`, which stringifies it).
        writer
            .finish()
            .map_err(|e| ShardStoreError::parquet_write(tmp, e))?;
        let sink = writer.inner_mut();
        sink.inner
            .sync_all()
            .map_err(|e| ShardStoreError::io(tmp, e))?;
        let (bytes, checksum) = (sink.bytes, sink.crc);
        drop(writer);

        let dir = self.shard_dir(table_id, shard_id);
        let created = self.create_shard_dir(&dir)?;
        let path = dir.join(name);
        fs::rename(tmp, &path).map_err(|e| ShardStoreError::io(&path, e))?;
        sync_dir(&dir)?;
        if created {
            // The new directory entries must be durable too, or a crash could lose the file.
            for parent in dir.ancestors().skip(1).take(2) {
                sync_dir(parent)?;
            }
        }
        info!(
            table_id,
            shard_id, name, rows, bytes, "shard file committed"
        );
        Ok(FileMeta {
            name: name.to_string(),
            bytes,
            rows,
            checksum,
        })
    }

    /// Creates the shard directory; true if it did not exist before.
    fn create_shard_dir(&self, dir: &Path) -> Result<bool> {
        if dir.is_dir() {
            return Ok(false);
        }
        fs::create_dir_all(dir).map_err(|e| ShardStoreError::io(dir, e))?;
        Ok(true)
    }

    /// Deletes the named files of a shard; missing files are fine.
    pub(crate) fn delete_files(
        &self,
        table_id: i64,
        shard_id: i64,
        names: &[String],
    ) -> Result<()> {
        let paths = names
            .iter()
            .map(|n| self.file_path(table_id, shard_id, n))
            .collect::<Result<Vec<_>>>()?;
        let mut deleted = 0usize;
        for path in &paths {
            match fs::remove_file(path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ShardStoreError::io(path, e)),
            }
        }
        for path in &paths {
            self.verified.forget_under(path);
        }
        if deleted > 0 {
            sync_dir(&self.shard_dir(table_id, shard_id))?;
        }
        info!(
            table_id,
            shard_id,
            deleted,
            requested = names.len(),
            "deleted shard files"
        );
        Ok(())
    }

    /// Every committed file under `shards/`: `<table_id>/<shard_id>/<name>.parquet` with
    /// decimal ids and a valid file name. Anything else (other names, symlinks, stray
    /// directories) is skipped. Entries removed while walking are skipped too.
    pub(crate) fn list_files(&self) -> Result<Vec<StoredFile>> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for (table_id, table_dir) in numbered_dirs(&self.shards)? {
            for (shard_id, shard_dir) in numbered_dirs(&table_dir)? {
                let Some(entries) = read_dir_if_exists(&shard_dir)? else {
                    continue;
                };
                for entry in entries {
                    let entry = entry.map_err(|e| ShardStoreError::io(&shard_dir, e))?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    if validate_file_name(&name).is_err() {
                        continue;
                    }
                    // `DirEntry::metadata` does not follow symlinks.
                    let meta = match entry.metadata() {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(ShardStoreError::io(entry.path(), e)),
                    };
                    if !meta.file_type().is_file() {
                        continue;
                    }
                    let modified = meta
                        .modified()
                        .map_err(|e| ShardStoreError::io(entry.path(), e))?;
                    let age_ms = now
                        .duration_since(modified)
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                        .unwrap_or(0);
                    out.push(StoredFile {
                        table_id,
                        shard_id,
                        name,
                        bytes: meta.len(),
                        age_ms,
                    });
                }
            }
        }
        debug!(files = out.len(), "listed shard files");
        Ok(out)
    }

    /// Deletes whole shard directories; missing ones are fine.
    pub(crate) fn drop_shards(&self, table_id: i64, shard_ids: &[i64]) -> Result<()> {
        let mut dropped = 0usize;
        for &shard_id in shard_ids {
            let dir = self.shard_dir(table_id, shard_id);
            self.verified.forget_under(&dir);
            match fs::remove_dir_all(&dir) {
                Ok(()) => dropped += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ShardStoreError::io(&dir, e)),
            }
        }
        let table_dir = self.shards.join(table_id.to_string());
        if dropped > 0 && table_dir.is_dir() {
            sync_dir(&table_dir)?;
        }
        info!(
            table_id,
            dropped,
            requested = shard_ids.len(),
            "dropped shard directories"
        );
        Ok(())
    }

    /// `staging/move-<task_id>/`: the files a move task received and has not adopted yet.
    pub(crate) fn move_dir(&self, task_id: i64) -> PathBuf {
        self.staging.join(format!("{MOVE_DIR_PREFIX}{task_id}"))
    }

    /// `staging/move-<task_id>/<table_id>/<shard_id>/`.
    pub(crate) fn staged_dir(&self, task_id: i64, table_id: i64, shard_id: i64) -> PathBuf {
        self.move_dir(task_id)
            .join(table_id.to_string())
            .join(shard_id.to_string())
    }

    /// Opens a committed shard file to send it to another worker, positioned at `offset`;
    /// returns it with its length. A missing file is [`ShardStoreError::FileMissing`].
    pub(crate) fn open_shard_file(
        &self,
        table_id: i64,
        shard_id: i64,
        name: &str,
        offset: u64,
    ) -> Result<(File, u64)> {
        let path = self.file_path(table_id, shard_id, name)?;
        let missing = || ShardStoreError::FileMissing {
            table_id,
            shard_id,
            name: name.to_string(),
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(ShardStoreError::io(&path, e)),
        };
        let meta = file.metadata().map_err(|e| ShardStoreError::io(&path, e))?;
        if !meta.is_file() {
            return Err(missing());
        }
        if offset > meta.len() {
            return Err(ShardStoreError::protocol(format!(
                "offset {offset} is past the end of file {name} ({} bytes)",
                meta.len()
            )));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| ShardStoreError::io(&path, e))?;
        // Read-ahead for a file read once from start to end, possibly cold. Only advice: a
        // failure changes nothing.
        #[cfg(target_os = "linux")]
        let _ = rustix::fs::fadvise(&file, offset, None, rustix::fs::Advice::Sequential);
        Ok((file, meta.len()))
    }

    /// Prepares a pull into `staging/move-<task_id>/<table_id>/<shard_id>/`: creates that
    /// directory durably and returns it with the files still to fetch. A file already staged
    /// with the expected size and checksum is left alone (an earlier call received it); a
    /// staged file that differs is deleted and fetched again.
    pub(crate) fn prepare_pull(
        &self,
        task_id: i64,
        table_id: i64,
        shard_id: i64,
        files: &[FileMeta],
    ) -> Result<(PathBuf, Vec<FileMeta>)> {
        for file in files {
            validate_file_name(&file.name)?;
        }
        let dir = self.staged_dir(task_id, table_id, shard_id);
        create_dir_durably(&dir, &self.staging)?;
        let mut todo = Vec::new();
        for file in files {
            let path = dir.join(&file.name);
            let staged = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    todo.push(file.clone());
                    continue;
                }
                Err(e) => return Err(ShardStoreError::io(&path, e)),
            };
            let verified = staged.is_file()
                && staged.len() == file.bytes
                && file_checksum(&path)? == (file.bytes, file.checksum);
            if !verified {
                warn!(
                    task_id,
                    path = %path.display(),
                    "staged file does not match the catalog; fetching it again"
                );
                remove_file_if_exists(&path)?;
                todo.push(file.clone());
            }
        }
        Ok((dir, todo))
    }

    /// Receives one file of a move into `dir`: writes the chunks from `rx` to
    /// `<name>.part`, fsyncs it, checks its size and CRC-32C against `expected` and renames it
    /// to `<name>`; the caller makes the rename durable with [`Self::sync_staged_dir`] once
    /// for all the files of a call. If the channel closes before [`PullMsg::Done`], the sizes or
    /// checksums differ ([`ShardStoreError::ChecksumMismatch`]) or anything fails, the part
    /// file is removed. Returns the bytes received.
    pub(crate) fn receive_staged_file(
        &self,
        dir: &Path,
        expected: &FileMeta,
        rx: mpsc::Receiver<PullMsg>,
    ) -> Result<u64> {
        let mut source = ChannelSource {
            rx,
            chunk: Bytes::new(),
            name: expected.name.clone(),
        };
        self.receive_staged_from(dir, expected, &mut source)
    }

    /// [`Self::receive_staged_file`] with the bytes from any [`PullSource`]: the same part
    /// file, early writeback, fsync, verification and rename, and the part file removed on
    /// any failure.
    pub(crate) fn receive_staged_from(
        &self,
        dir: &Path,
        expected: &FileMeta,
        source: &mut impl PullSource,
    ) -> Result<u64> {
        let part = dir.join(format!("{}{PART_SUFFIX}", expected.name));
        let result = receive_and_verify(dir, &part, expected, source);
        if let Err(e) = &result {
            warn!(path = %part.display(), error = %e, "receiving a file failed; discarding it");
            if let Err(rm) = fs::remove_file(&part) {
                if rm.kind() != io::ErrorKind::NotFound {
                    warn!(path = %part.display(), error = %rm, "cannot remove part file");
                }
            }
        }
        result
    }

    /// Makes the renames of received files in a staging directory durable. A crash before it
    /// may lose a renamed file (or turn it back into a part file): it is then fetched again.
    pub(crate) fn sync_staged_dir(&self, dir: &Path) -> Result<()> {
        sync_dir(dir)
    }

    /// Moves staged files of a move task into the live shard directory, durably. A file
    /// already adopted (staged copy gone, live file present) is fine, so adopting twice is
    /// harmless; a file in neither place is [`ShardStoreError::FileMissing`]; a live file of
    /// the same name but another size is [`ShardStoreError::FileConflict`] and is never
    /// replaced.
    pub(crate) fn adopt_staged(
        &self,
        task_id: i64,
        table_id: i64,
        shard_id: i64,
        names: &[String],
    ) -> Result<()> {
        for name in names {
            validate_file_name(name)?;
        }
        let staged_dir = self.staged_dir(task_id, table_id, shard_id);
        let live_dir = self.shard_dir(table_id, shard_id);
        create_dir_durably(&live_dir, &self.shards)?;
        let (mut adopted, mut already) = (0usize, 0usize);
        for name in names {
            let staged = staged_dir.join(name);
            let live = live_dir.join(name);
            let staged_bytes = match fs::metadata(&staged) {
                Ok(meta) if meta.is_file() => Some(meta.len()),
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(ShardStoreError::io(&staged, e)),
            };
            let live_bytes = match fs::symlink_metadata(&live) {
                Ok(meta) => Some(meta.len()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(ShardStoreError::io(&live, e)),
            };
            match (staged_bytes, live_bytes) {
                (Some(_), None) => {
                    fs::rename(&staged, &live).map_err(|e| ShardStoreError::io(&live, e))?;
                    adopted += 1;
                }
                // Adopted before, and the staged copy came back with the same size: a crash
                // lost the unlink of the staged name, or it was pulled again. Same file.
                (Some(staged_bytes), Some(live_bytes)) if staged_bytes == live_bytes => {
                    remove_file_if_exists(&staged)?;
                    already += 1;
                }
                (Some(staged_bytes), Some(live_bytes)) => {
                    return Err(ShardStoreError::FileConflict {
                        table_id,
                        shard_id,
                        name: name.clone(),
                        live_bytes,
                        staged_bytes,
                    })
                }
                (None, Some(_)) => already += 1,
                (None, None) => {
                    return Err(ShardStoreError::FileMissing {
                        table_id,
                        shard_id,
                        name: name.clone(),
                    })
                }
            }
        }
        sync_dir(&live_dir)?;
        if staged_dir.is_dir() {
            sync_dir(&staged_dir)?;
        }
        info!(
            task_id,
            table_id, shard_id, adopted, already, "adopted staged files"
        );
        Ok(())
    }

    /// Removes `staging/move-<task_id>/` and everything in it; missing is fine.
    pub(crate) fn discard_staging(&self, task_id: i64) -> Result<()> {
        let dir = self.move_dir(task_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {
                sync_dir(&self.staging)?;
                info!(task_id, "discarded staging of move task");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ShardStoreError::io(&dir, e)),
        }
        Ok(())
    }

    /// The ids of the move tasks that have a `staging/move-<task_id>/` directory, sorted.
    pub(crate) fn list_staging(&self) -> Result<Vec<i64>> {
        let mut out: Vec<i64> = move_dirs(&self.staging)?
            .into_iter()
            .map(|(task_id, _)| task_id)
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    pub(crate) fn cluster_id(&self) -> Option<String> {
        self.cluster_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Binds the worker to `cluster_id` (durably) unless it is bound already; binding to
    /// another id than the current one is refused.
    pub(crate) fn bind_cluster(&self, cluster_id: &str) -> Result<()> {
        validate_cluster_id(cluster_id)?;
        let mut bound = self
            .cluster_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match bound.as_deref() {
            Some(current) if current == cluster_id => return Ok(()),
            Some(current) => {
                return Err(ShardStoreError::WrongCluster {
                    expected: cluster_id.to_string(),
                    actual: current.to_string(),
                })
            }
            None => {}
        }
        let path = self.root.join("cluster_id");
        let tmp = self.root.join("cluster_id.tmp");
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(cluster_id.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| ShardStoreError::io(&path, e))?;
        sync_dir(&self.root)?;
        info!(cluster_id, "worker bound to cluster");
        *bound = Some(cluster_id.to_string());
        Ok(())
    }

    /// Free bytes for unprivileged users on the data directory's file system.
    pub(crate) fn disk_free_bytes(&self) -> Result<u64> {
        let st = rustix::fs::statvfs(&self.root)
            .map_err(|e| ShardStoreError::io(&self.root, e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Total size of the files under `shards/`.
    pub(crate) fn data_bytes(&self) -> Result<u64> {
        dir_size(&self.shards)
    }
}

/// Runs blocking file-system work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ShardStoreError::internal(format!("worker task failed: {e}")))?
}

/// Buffers a put's rows one row group at a time and writes each group sorted by one column.
///
/// A hash-distributed shard holds many distribution values in every file; sorted within each
/// row group, one value's rows fill a few consecutive pages, so a filter on it reads those
/// pages only (the Parquet page index has each page's min/max). Sorting whole files would need
/// the whole file in memory; one row group (`ROW_GROUP_ROWS` rows) is what the writer buffers
/// anyway.
struct RowGroupSorter {
    column: usize,
    pending: Vec<RecordBatch>,
    rows: usize,
}

impl RowGroupSorter {
    fn new(first: &RecordBatch, column: &str) -> Result<Self> {
        let column = first.schema().index_of(column).map_err(|_| {
            ShardStoreError::protocol(format!(
                "the put's rows have no column {column:?} to cluster by"
            ))
        })?;
        Ok(RowGroupSorter {
            column,
            pending: Vec::new(),
            rows: 0,
        })
    }

    /// Takes `batch`; writes a sorted row group each time a whole one is buffered.
    fn push<W: Write + Send>(
        &mut self,
        batch: RecordBatch,
        writer: &mut ArrowWriter<W>,
        tmp: &Path,
    ) -> Result<()> {
        self.rows += batch.num_rows();
        self.pending.push(batch);
        while self.rows >= ROW_GROUP_ROWS {
            let all = self.take_pending()?;
            let rest = all.slice(ROW_GROUP_ROWS, all.num_rows() - ROW_GROUP_ROWS);
            self.write_sorted(&all.slice(0, ROW_GROUP_ROWS), writer, tmp)?;
            self.rows = rest.num_rows();
            if self.rows > 0 {
                self.pending.push(rest);
            }
        }
        Ok(())
    }

    /// Writes the rows still buffered (the last, partial row group).
    fn finish<W: Write + Send>(&mut self, writer: &mut ArrowWriter<W>, tmp: &Path) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let all = self.take_pending()?;
        self.rows = 0;
        self.write_sorted(&all, writer, tmp)
    }

    fn take_pending(&mut self) -> Result<RecordBatch> {
        let pending = std::mem::take(&mut self.pending);
        let schema = pending
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| ShardStoreError::internal("row group sorter: nothing buffered"))?;
        Ok(arrow::compute::concat_batches(&schema, &pending)?)
    }

    fn write_sorted<W: Write + Send>(
        &self,
        group: &RecordBatch,
        writer: &mut ArrowWriter<W>,
        tmp: &Path,
    ) -> Result<()> {
        // stable: rows of one value keep the order they were written in
        let column = group.column(self.column);
        let compare =
            arrow::array::make_comparator(column, column, arrow::compute::SortOptions::default())?;
        let mut order: Vec<u32> = (0..group.num_rows() as u32).collect();
        order.sort_by(|a, b| compare(*a as usize, *b as usize));
        let order = arrow::array::UInt32Array::from(order);
        let sorted = arrow::compute::take_record_batch(group, &order)?;
        writer
            .write(&sorted)
            .map_err(|e| ShardStoreError::parquet_write(tmp, e))?;
        // ends the row group here, so that the next one starts with the next sorted run
        writer
            .flush()
            .map_err(|e| ShardStoreError::parquet_write(tmp, e))
    }
}

fn new_writer(tmp: &Path, first: &RecordBatch) -> Result<ArrowWriter<ChecksumWriter<File>>> {
    let file = File::create_new(tmp).map_err(|e| ShardStoreError::io(tmp, e))?;
    ArrowWriter::try_new(
        ChecksumWriter::new(file),
        first.schema(),
        Some(writer_properties(&first.schema())?),
    )
    .map_err(|e| ShardStoreError::parquet_write(tmp, e))
}

/// ZSTD level 1 (the workspace builds parquet with its default features, zstd included),
/// 128k-row row groups, page-level statistics for pruning, dictionary encoding for strings
/// and bytes only.
///
/// A dictionary pays off for repeated strings (smaller files, faster grouping); for numbers
/// and timestamps ZSTD does that job, while the dictionary attempt hashes every value of a
/// column chunk (a 128k-row chunk of unique bigints never outgrows the 1 MB dictionary limit,
/// so it is all hashed for nothing). That hashing was the largest cost of a COPY's writes.
fn writer_properties(schema: &Schema) -> Result<WriterProperties> {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("shoal {}", env!("CARGO_PKG_VERSION")));
    for field in schema.fields() {
        let strings = matches!(
            field.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
        );
        if !strings {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    Ok(builder.build())
}

/// A writer that counts the bytes and computes the CRC-32C of everything written through it.
struct ChecksumWriter<W> {
    inner: W,
    bytes: u64,
    crc: u32,
}

impl<W> ChecksumWriter<W> {
    fn new(inner: W) -> Self {
        ChecksumWriter {
            inner,
            bytes: 0,
            crc: 0,
        }
    }
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Shard file names are what this module generates: `<uuid>.parquet`. Anything with a path
/// separator or a leading dot is refused, so a ticket can never read outside its shard.
fn validate_file_name(name: &str) -> Result<()> {
    let ok = name.len() <= 255
        && name.ends_with(".parquet")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ShardStoreError::protocol(format!(
            "invalid shard file name {name:?}"
        )))
    }
}

fn validate_cluster_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ShardStoreError::Config {
            message: format!("invalid cluster id {id:?}: 1-256 characters, no spaces"),
        });
    }
    Ok(())
}

fn read_cluster_id(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => {
            let id = s.trim();
            Ok((!id.is_empty()).then(|| id.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ShardStoreError::io(path, e)),
    }
}

/// Removes every `*.<extension>` file under `dir` (recursively); returns how many.
fn remove_files_with_extension(dir: &Path, extension: &str) -> Result<usize> {
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(|e| ShardStoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ShardStoreError::io(dir, e))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| ShardStoreError::io(&path, e))?;
        if file_type.is_dir() {
            removed += remove_files_with_extension(&path, extension)?;
        } else if path.extension().is_some_and(|ext| ext == extension) {
            fs::remove_file(&path).map_err(|e| ShardStoreError::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes the `*.part` files (incomplete transfers) in every `staging/move-<task_id>/`,
/// keeping the completed staged files; returns how many.
fn remove_part_files(staging: &Path) -> Result<usize> {
    let mut removed = 0;
    for (_, dir) in move_dirs(staging)? {
        removed += remove_files_with_extension(&dir, "part")?;
    }
    Ok(removed)
}

/// The `move-<task_id>` directories directly under `staging`, with their task ids.
fn move_dirs(staging: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let Some(entries) = read_dir_if_exists(staging)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ShardStoreError::io(staging, e))?;
        let Some(task_id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(MOVE_DIR_PREFIX))
            // Only the canonical spelling, so that `move_dir(task_id)` names this directory.
            .and_then(|id| id.parse::<i64>().ok().filter(|t| t.to_string() == id))
        else {
            continue;
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.push((task_id, entry.path())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ShardStoreError::io(entry.path(), e)),
        }
    }
    Ok(out)
}

/// Body of [`FileStore::receive_staged_file`]; the caller removes `part` on failure.
fn receive_and_verify(
    dir: &Path,
    part: &Path,
    expected: &FileMeta,
    source: &mut impl PullSource,
) -> Result<u64> {
    // Truncates a part file an earlier failed attempt could not remove; only one pull of a
    // task runs at a time, so no one else writes it.
    let mut file = File::create(part).map_err(|e| ShardStoreError::io(part, e))?;
    let (mut bytes, mut crc, mut flushed) = (0u64, 0u32, 0u64);
    while let Some(chunk) = source.next_chunk()? {
        file.write_all(chunk)
            .map_err(|e| ShardStoreError::io(part, e))?;
        crc = crc32c::crc32c_append(crc, chunk);
        bytes += chunk.len() as u64;
        if bytes - flushed >= FLUSH_EVERY_BYTES {
            start_writeback(&file, flushed, bytes - flushed);
            flushed = bytes;
        }
    }
    file.sync_all().map_err(|e| ShardStoreError::io(part, e))?;
    drop(file);
    if (bytes, crc) != (expected.bytes, expected.checksum) {
        return Err(ShardStoreError::ChecksumMismatch {
            name: expected.name.clone(),
            expected_bytes: expected.bytes,
            actual_bytes: bytes,
            expected_checksum: expected.checksum,
            actual_checksum: crc,
        });
    }
    let path = dir.join(&expected.name);
    fs::rename(part, &path).map_err(|e| ShardStoreError::io(&path, e))?;
    debug!(path = %path.display(), bytes, "received and verified a file");
    Ok(bytes)
}

/// Reads `file` from its current position (`offset`) to its end in chunks of `chunk_bytes`
/// and sends them on `tx`; stops early if the receiver goes away. A read error is sent as
/// the last item.
pub(crate) fn send_file_chunks(
    mut file: File,
    path_for_errors: &Path,
    mut offset: u64,
    chunk_bytes: usize,
    tx: &mpsc::Sender<Result<FileChunk>>,
) {
    loop {
        // `read_to_end` reads into the spare capacity without zeroing it first, and the
        // buffer becomes the chunk without a copy.
        let mut buf = Vec::with_capacity(chunk_bytes);
        let read = (&mut file).take(chunk_bytes as u64).read_to_end(&mut buf);
        let filled = match read {
            Ok(n) => n,
            Err(e) => {
                // The receiver may be gone too; nothing else to tell.
                let _ = tx.blocking_send(Err(ShardStoreError::io(path_for_errors, e)));
                return;
            }
        };
        if filled == 0 {
            return;
        }
        let chunk = FileChunk {
            offset,
            bytes: Bytes::from(buf),
        };
        offset += filled as u64;
        if tx.blocking_send(Ok(chunk)).is_err() || filled < chunk_bytes {
            return;
        }
    }
}

/// Fills `buf` from `reader` as far as it goes; returns the bytes read (less than
/// `buf.len()` only at the end of the file).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, without
/// waiting and without flushing the device cache: what `sync_file_range(SYNC_FILE_RANGE_WRITE)`
/// does, which rustix does not offer. `POSIX_FADV_DONTNEED` starts writeback of the dirty
/// pages of the range and drops only its clean pages (none: they were just written);
/// PostgreSQL's `pg_flush_data` uses the same fallback. Only advice: durability still comes
/// from the fsync at the end, so a failure is ignored.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    );
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Size and CRC-32C of a whole file.
pub(crate) fn file_checksum(path: &Path) -> Result<(u64, u32)> {
    let mut file = File::open(path).map_err(|e| ShardStoreError::io(path, e))?;
    let mut buf = vec![0u8; CHECKSUM_READ_BYTES];
    let (mut bytes, mut crc) = (0u64, 0u32);
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| ShardStoreError::io(path, e))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        bytes += n as u64;
        if n < buf.len() {
            return Ok((bytes, crc));
        }
    }
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ShardStoreError::io(path, e)),
    }
}

/// Creates `dir` and any missing parents; when it did not exist, fsyncs its parents up to
/// and including `top`, so the new directory entries survive a crash.
fn create_dir_durably(dir: &Path, top: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| ShardStoreError::io(dir, e))?;
    for parent in dir.ancestors().skip(1) {
        sync_dir(parent)?;
        if parent == top {
            break;
        }
    }
    Ok(())
}

/// `read_dir`, or `None` if the directory is gone (dropped concurrently).
fn read_dir_if_exists(dir: &Path) -> Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ShardStoreError::io(dir, e)),
    }
}

/// The subdirectories of `dir` named by a non-negative decimal id, with their ids.
fn numbered_dirs(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ShardStoreError::io(dir, e))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_id) else {
            continue;
        };
        // `DirEntry::file_type` does not follow symlinks.
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.push((id, entry.path())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ShardStoreError::io(entry.path(), e)),
        }
    }
    Ok(out)
}

/// A directory name made only of ASCII digits, as an id.
fn parse_id(name: &str) -> Option<i64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn dir_size(dir: &Path) -> Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Dropped concurrently: counts as empty.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ShardStoreError::io(dir, e)),
    };
    let mut total = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| ShardStoreError::io(dir, e))?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ShardStoreError::io(entry.path(), e)),
        };
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

/// fsync a directory so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ShardStoreError::io(dir, e))
}

#[cfg(test)]
mod tests;
