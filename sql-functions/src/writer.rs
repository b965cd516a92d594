//! `ShardWriter`: routes a stream of rows to shards and streams each shard's rows to every
//! placement of it, where each worker writes one new Parquet file. Committing those files is
//! the caller's job (one catalog transaction), which is what makes a statement atomic.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use shoal_catalog::TableInfo;
use shoal_shard_store::{FileMeta, ShardStoreError, WorkerClient};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::error::{ClusterError, Result};
use crate::routing;

mod statement;
pub use statement::{conform, placement_addr, Publish};

/// Rows per batch sent to a worker; small per-shard slices are gathered up to this.
const TARGET_BATCH_ROWS: usize = 16 * 1024;

/// Where one shard's rows go.
#[derive(Clone, Debug)]
pub struct ShardTarget {
    pub shard_id: i64,
    /// The shard's hash range, as the catalog holds it (rows are routed by it).
    pub hash_range: (i32, i32),
    /// Each placement: a key the caller chooses (placement id or node id) and the worker
    /// address.
    pub placements: Vec<(i64, String)>,
}

/// A file a worker wrote for one placement.
#[derive(Clone, Debug)]
pub struct WrittenFile {
    pub shard_id: i64,
    pub placement_key: i64,
    pub file: FileMeta,
}

struct OpenPut {
    sender: mpsc::Sender<shoal_shard_store::Result<RecordBatch>>,
    task: JoinHandle<(i64, i64, shoal_shard_store::Result<FileMeta>)>,
}

pub struct ShardWriter {
    table_id: i64,
    schema: SchemaRef,
    distribution: Option<(usize, String)>,
    targets: Vec<ShardTarget>,
    /// The targets' hash ranges: a row goes to the target whose range holds its hash.
    ranges: routing::ShardRanges,
    clients: HashMap<String, WorkerClient>,
    pending: Vec<Vec<RecordBatch>>,
    pending_rows: Vec<usize>,
    puts: HashMap<(usize, usize), OpenPut>,
    rows: u64,
    /// The table's name, the indices of its NOT NULL columns and the SQL names of all of
    /// them (the schema holds their stored names).
    table_name: String,
    not_null: Vec<usize>,
    column_names: Vec<String>,
    /// `varchar(n)` columns: (index, n).
    value_checks: Vec<(usize, ValueCheck)>,
}

/// The first NULL in one of `columns` of `batch`: (column index, row index).
pub fn first_null(batch: &RecordBatch, columns: &[usize]) -> Option<(usize, usize)> {
    columns
        .iter()
        .filter_map(|&c| {
            let col = batch.columns().get(c)?;
            if col.null_count() == 0 {
                return None;
            }
            (0..col.len()).find(|&r| col.is_null(r)).map(|r| (c, r))
        })
        .min_by_key(|&(_, row)| row)
}

/// The indices of `table`'s NOT NULL columns.
pub fn not_null_columns(table: &TableInfo) -> Vec<usize> {
    table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.not_null)
        .map(|(i, _)| i)
        .collect()
}

/// What a write checks of a column's values beyond NOT NULL: PostgreSQL's input checks of
/// the types Shoal stores as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCheck {
    /// `varchar(n)`: at most `n` characters (22001), trailing spaces over the limit cut.
    MaxChars(u32),
    /// `char(n)`: at most `n` characters besides trailing spaces (22001), stored without
    /// its trailing spaces (see `SqlType::Char`).
    Char(u32),
    /// `uuid`: canonical text (22P02 for anything else).
    Uuid,
    /// `json`: valid JSON text, kept as given (22P02).
    Json,
    /// `jsonb`: valid JSON, stored in jsonb's text form (22P02, 22P05).
    Jsonb,
}

/// The checked columns of `table`: (index, check).
pub fn value_checks(table: &TableInfo) -> Vec<(usize, ValueCheck)> {
    use shoal_catalog::SqlType;
    table
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.sql_type {
            SqlType::Varchar { max_len: Some(n) } => Some((i, ValueCheck::MaxChars(n))),
            SqlType::Char { len } => Some((i, ValueCheck::Char(len))),
            SqlType::Uuid => Some((i, ValueCheck::Uuid)),
            SqlType::Json => Some((i, ValueCheck::Json)),
            SqlType::Jsonb => Some((i, ValueCheck::Jsonb)),
            _ => None,
        })
        .collect()
}

/// One value as the column stores it, or PostgreSQL's error for it; `None` when the value
/// is stored as given.
fn checked_value(s: &str, check: ValueCheck) -> Result<Option<String>> {
    use crate::types::{json, uuid};
    let json_error = |e: json::JsonError| ClusterError::InvalidText {
        sqlstate: e.sqlstate,
        message: e.message,
        detail: Some(e.detail),
    };
    match check {
        ValueCheck::MaxChars(n) => {
            let n = n as usize;
            if s.chars().nth(n).is_none() {
                return Ok(None);
            }
            let keep: String = s.chars().take(n).collect();
            if !s[keep.len()..].chars().all(|c| c == ' ') {
                return Err(ClusterError::ValueTooLong {
                    message: format!("value too long for type character varying({n})"),
                });
            }
            Ok(Some(keep))
        }
        ValueCheck::Char(n) => {
            let kept = s.trim_end_matches(' ');
            if kept.chars().nth(n as usize).is_some() {
                return Err(ClusterError::ValueTooLong {
                    message: format!("value too long for type character({n})"),
                });
            }
            Ok((kept.len() != s.len()).then(|| kept.to_string()))
        }
        ValueCheck::Uuid => match uuid::canonical(s) {
            Some(c) if c == s => Ok(None),
            Some(c) => Ok(Some(c)),
            None => Err(ClusterError::InvalidText {
                sqlstate: "22P02",
                message: uuid::invalid_message(s),
                detail: None,
            }),
        },
        ValueCheck::Json => json::validate(s).map(|()| None).map_err(json_error),
        ValueCheck::Jsonb => {
            let text = json::jsonb_text(s).map_err(json_error)?;
            Ok((text != s).then_some(text))
        }
    }
}

/// PostgreSQL's input checks of values written into the `checks` columns: the batch with
/// each value as its column stores it, or the first value's error.
pub fn check_values(batch: RecordBatch, checks: &[(usize, ValueCheck)]) -> Result<RecordBatch> {
    use arrow::array::{AsArray, StringArray};
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for &(i, check) in checks {
        let Some(col) = columns.get(i) else { continue };
        let Some(strings) = col.as_string_opt::<i32>() else {
            continue;
        };
        let mut stored: Option<Vec<Option<String>>> = None;
        for (row, v) in strings.iter().enumerate() {
            let Some(s) = v else {
                if let Some(out) = stored.as_mut() {
                    out.push(None);
                }
                continue;
            };
            match checked_value(s, check)? {
                Some(new) => {
                    let out = stored.get_or_insert_with(|| {
                        strings
                            .iter()
                            .take(row)
                            .map(|v| v.map(str::to_string))
                            .collect()
                    });
                    out.push(Some(new));
                }
                None => {
                    if let Some(out) = stored.as_mut() {
                        out.push(Some(s.to_string()));
                    }
                }
            }
        }
        if let Some(values) = stored {
            columns[i] = Arc::new(StringArray::from(values));
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// PostgreSQL's words for a NULL written into a NOT NULL column.
pub fn not_null_message(table: &str, column: &str) -> String {
    format!(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )
}

impl ShardWriter {
    /// `distribution`: the distribution column's name for hash-distributed tables; `None`
    /// sends every row to the only shard (single-shard and reference tables).
    pub fn new(
        table_id: i64,
        schema: SchemaRef,
        distribution: Option<&str>,
        targets: Vec<ShardTarget>,
        clients: HashMap<String, WorkerClient>,
    ) -> Result<Self> {
        let distribution = match distribution {
            Some(col) => {
                let idx = schema
                    .index_of(col)
                    .map_err(|_| ClusterError::UndefinedColumn {
                        message: format!("column \"{col}\" does not exist"),
                    })?;
                Some((idx, col.to_string()))
            }
            None => None,
        };
        if targets.is_empty() || (distribution.is_none() && targets.len() != 1) {
            return Err(ClusterError::Internal {
                message: format!(
                    "writer for table {table_id} got {} shard targets",
                    targets.len()
                ),
            });
        }
        let n = targets.len();
        let ranges = routing::ShardRanges::new(targets.iter().map(|t| t.hash_range));
        Ok(ShardWriter {
            table_id,
            schema,
            distribution,
            ranges,
            targets,
            clients,
            pending: vec![Vec::new(); n],
            pending_rows: vec![0; n],
            puts: HashMap::new(),
            rows: 0,
            table_name: String::new(),
            not_null: Vec::new(),
            column_names: Vec::new(),
            value_checks: Vec::new(),
        })
    }

    /// Makes every write check the table's NOT NULL columns (a NULL there fails with 23502).
    pub fn checking_not_null(mut self, table: &TableInfo) -> Self {
        self.table_name = table.name.clone();
        self.not_null = not_null_columns(table);
        self.value_checks = value_checks(table);
        self.column_names = table.columns.iter().map(|c| c.name.clone()).collect();
        self
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Routes one batch (already in the table's schema).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some((column, _)) = first_null(&batch, &self.not_null) {
            let name = self
                .column_names
                .get(column)
                .map_or_else(|| self.schema.field(column).name().as_str(), String::as_str);
            return Err(ClusterError::NotNull {
                message: not_null_message(&self.table_name, name),
            });
        }
        let batch = check_values(batch, &self.value_checks)?;
        // The same columns, named as in the files (callers hold the table's SQL names).
        let batch = if batch.schema().fields() == self.schema.fields() {
            batch
        } else {
            RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())?
        };
        self.rows += batch.num_rows() as u64;
        match &self.distribution {
            None => self.buffer(0, batch).await?,
            Some((idx, name)) => {
                let hashes = routing::hash_column(batch.column(*idx), name)?;
                let mut per_shard: Vec<Vec<u32>> = vec![Vec::new(); self.targets.len()];
                for (row, h) in hashes.iter().enumerate() {
                    let shard = self
                        .ranges
                        .shard_of(*h)
                        .ok_or_else(|| ClusterError::Internal {
                            message: format!("no shard of table {} covers hash {h}", self.table_id),
                        })?;
                    per_shard[shard].push(row as u32);
                }
                for (shard, rows) in per_shard.into_iter().enumerate() {
                    if rows.is_empty() {
                        continue;
                    }
                    let part = if rows.len() == batch.num_rows() {
                        batch.clone()
                    } else {
                        take_record_batch(&batch, &UInt32Array::from(rows))?
                    };
                    self.buffer(shard, part).await?;
                }
            }
        }
        Ok(())
    }

    async fn buffer(&mut self, shard: usize, batch: RecordBatch) -> Result<()> {
        self.pending_rows[shard] += batch.num_rows();
        self.pending[shard].push(batch);
        if self.pending_rows[shard] >= TARGET_BATCH_ROWS {
            self.flush(shard).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, shard: usize) -> Result<()> {
        let batches = std::mem::take(&mut self.pending[shard]);
        self.pending_rows[shard] = 0;
        if batches.is_empty() {
            return Ok(());
        }
        let batch = concat_batches(&self.schema, &batches)?;
        let placements = self.targets[shard].placements.len();
        for p in 0..placements {
            self.send(shard, p, batch.clone()).await?;
        }
        Ok(())
    }

    async fn send(&mut self, shard: usize, placement: usize, batch: RecordBatch) -> Result<()> {
        if !self.puts.contains_key(&(shard, placement)) {
            let target = &self.targets[shard];
            let (key, addr) = &target.placements[placement];
            let client = self
                .clients
                .get(addr)
                .cloned()
                .ok_or_else(|| ClusterError::Internal {
                    message: format!("no client for worker {addr}"),
                })?;
            let (tx, rx) = mpsc::channel(4);
            let (table_id, shard_id, key) = (self.table_id, target.shard_id, *key);
            let schema = Arc::clone(&self.schema);
            let cluster_by = self.distribution.as_ref().map(|(_, name)| name.clone());
            let task = tokio::spawn(async move {
                let stream = ReceiverStream::new(rx).boxed();
                let res = client
                    .put_clustered(table_id, shard_id, schema, cluster_by.as_deref(), stream)
                    .await;
                (shard_id, key, res)
            });
            self.puts
                .insert((shard, placement), OpenPut { sender: tx, task });
        }
        let failed = match self.puts.get(&(shard, placement)) {
            Some(put) => put.sender.send(Ok(batch)).await.is_err(),
            None => true,
        };
        if failed {
            // The put ended early: its task holds the reason.
            if let Some(put) = self.puts.remove(&(shard, placement)) {
                let (_, _, res) = put.task.await.map_err(|e| ClusterError::Internal {
                    message: format!("write task failed: {e}"),
                })?;
                res?;
            }
            return Err(ClusterError::Internal {
                message: "a worker stopped accepting rows".into(),
            });
        }
        Ok(())
    }

    /// Rows routed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes everything and waits for every worker to make its file durable.
    ///
    /// On error no file of this statement stays behind where it can be helped: puts still
    /// open are aborted (when `self` drops) and files other workers already committed are
    /// deleted, so a failed statement leaves nothing for the orphan collector's hour-long
    /// grace. The catalog names none of them yet, so no reader can see them.
    pub async fn finish(mut self) -> Result<Vec<WrittenFile>> {
        for shard in 0..self.targets.len() {
            self.flush(shard).await?;
        }
        let mut out = Vec::new();
        let mut first_err: Option<ClusterError> = None;
        for ((shard, placement), put) in std::mem::take(&mut self.puts) {
            drop(put.sender);
            let addr = self.targets[shard].placements[placement].1.clone();
            match put.task.await {
                Ok((shard_id, key, Ok(file))) => {
                    if file.rows > 0 {
                        out.push((
                            addr,
                            WrittenFile {
                                shard_id,
                                placement_key: key,
                                file,
                            },
                        ));
                    }
                }
                Ok((_, _, Err(e))) => {
                    first_err.get_or_insert(ClusterError::Worker(e));
                }
                Err(e) => {
                    first_err.get_or_insert(ClusterError::Internal {
                        message: format!("write task failed: {e}"),
                    });
                }
            }
        }
        match first_err {
            Some(e) => {
                self.delete_written(out).await;
                Err(e)
            }
            None => Ok(out.into_iter().map(|(_, f)| f).collect()),
        }
    }

    /// Best effort: a file that cannot be deleted now is an orphan, collected after the grace.
    async fn delete_written(&self, files: Vec<(String, WrittenFile)>) {
        for (addr, f) in files {
            let Some(client) = self.clients.get(&addr) else {
                continue;
            };
            let deleted = client
                .delete_files(self.table_id, f.shard_id, vec![f.file.name.clone()])
                .await;
            match deleted {
                Ok(()) => debug!(
                    table_id = self.table_id,
                    shard_id = f.shard_id,
                    name = %f.file.name,
                    node = %addr,
                    "deleted a file of a failed statement"
                ),
                Err(e) => warn!(
                    table_id = self.table_id,
                    shard_id = f.shard_id,
                    name = %f.file.name,
                    node = %addr,
                    error = %e,
                    "a file of a failed statement is left for orphan collection"
                ),
            }
        }
    }
}

impl Drop for ShardWriter {
    /// A writer dropped before `finish` (an error on the way, a cancelled statement) stops
    /// every open put, so its workers discard the unfinished files: letting a put's stream
    /// just close would commit its file on the worker.
    fn drop(&mut self) {
        for (_, put) in self.puts.drain() {
            let _ = put.sender.try_send(Err(ShardStoreError::Protocol {
                message: "statement aborted".into(),
            }));
            put.task.abort();
        }
    }
}
