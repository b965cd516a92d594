//! Wire messages between the coordinator (or another worker) and a worker.
//!
//! - DoGet, two kinds of ticket told apart by their magic prefix:
//!   - `SHOALSCAN2…`: an encoded [`ScanRequest`] (see [`ScanRequest::to_ticket`]); the worker
//!     answers with the output schema, then Arrow IPC batches.
//!   - `SHOALFILE1` + JSON [`FileTicket`]: the raw bytes of one committed shard file, from
//!     `offset` to its end, for a move. Each `FlightData` carries one chunk in `data_body`
//!     (no Arrow IPC, empty `data_header`) and the chunk's file offset as 8 little-endian
//!     bytes in `app_metadata`; the stream simply ends after the last byte.
//! - DoPut: the descriptor is `FlightDescriptor::new_cmd(JSON PutCommand)`; the batches are
//!   followed by one [`commit marker`](commit_marker) message; the worker answers with one
//!   `PutResult` whose `app_metadata` is the JSON [`FileMeta`] of the file it wrote.
//! - DoAction, JSON bodies and answers:
//!   - `handshake`, `health` → [`WorkerInfo`]; `delete_files`, `drop_shards` → nothing;
//!     `list_files` (empty body) → `[StoredFile]`; `verify_files` (`[FileToVerify]`) →
//!     `[DamagedFile]`: re-reads each file and compares it with the catalog's record.
//!   - moves, on the target worker: `pull_files` ([`PullFilesRequest`] → [`PullFilesReport`])
//!     fetches files from the source worker over the file DoGet into
//!     `staging/move-<task_id>/`; `pull_progress` → [`PullProgressReport`] says how many bytes
//!     its running call has received; `adopt_staged` moves staged files into the live shard
//!     directory; `discard_staging` deletes a task's staging; `list_staging` (empty body) →
//!     `[task_id]` of the tasks that have a staging directory.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::{FlightData, IpcMessage, SchemaAsIpc, Ticket};
use bytes::Bytes;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::Serializeable;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ShardStoreError};
use crate::integrity::FileCheck;

/// Metadata of one immutable shard file, as the catalog records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// File name inside `shards/<table_id>/<shard_id>/`, `<uuid-v4>.parquet`. Empty for a put
    /// of zero rows, which writes no file.
    pub name: String,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Number of rows in the file.
    pub rows: u64,
    /// CRC-32C of the whole file's bytes.
    pub checksum: u32,
}

/// A committed file found in a worker's `shards/` directory (the `list_files` action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub table_id: i64,
    pub shard_id: i64,
    /// File name inside `shards/<table_id>/<shard_id>/`.
    pub name: String,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Milliseconds since the file was last modified (its commit on the worker); 0 if its
    /// modification time lies in the future.
    pub age_ms: u64,
}

/// What a worker says about itself (handshake and health).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The cluster the worker is bound to, if any handshake happened yet.
    pub cluster_id: Option<String>,
    /// The worker's software version.
    pub version: String,
    /// Free bytes (for unprivileged users) on the data directory's file system.
    pub disk_free_bytes: u64,
    /// Total size of all files under `shards/`.
    pub data_bytes: u64,
    /// Whether the worker refuses calls without its cluster token (absent from a worker
    /// that predates the field: it says nothing, which counts as no).
    #[serde(default)]
    pub token_required: bool,
}

/// A partial aggregation run on the worker, evaluated like
/// `DataFrame::aggregate(group_by, aggr)`. The output columns are `group_by` then `aggr`,
/// named by each expression's `Expr::schema_name()` as sent (an alias gives the name).
#[derive(Clone, Debug, PartialEq)]
pub struct PartialAggregate {
    pub group_by: Vec<Expr>,
    pub aggr: Vec<Expr>,
}

/// The files of one shard a scan reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFiles {
    pub shard_id: i64,
    /// File names (as in [`FileMeta::name`]) to read; only these files are read.
    pub files: Vec<String>,
    /// What the catalog recorded for the files, by name: the worker refuses to read a file
    /// that does not match ([`ShardStoreError::FileDamaged`]). A file without an entry is
    /// read unchecked (requests from coordinators older than the check).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, FileCheck>,
}

impl ShardFiles {
    /// The named files, each checked against its record before it is read.
    pub fn checked(shard_id: i64, files: impl IntoIterator<Item = (String, FileCheck)>) -> Self {
        let (files, checks) = files
            .into_iter()
            .map(|(name, check)| (name.clone(), (name, check)))
            .unzip();
        ShardFiles {
            shard_id,
            files,
            checks,
        }
    }
}

/// A scan of one or more shards of one table held by one worker, sent as a Flight ticket.
/// The worker runs one plan over the files of all of them, so a query costs one round trip,
/// one plan and one partial aggregate per worker rather than per shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanRequest {
    pub table_id: i64,
    pub shards: Vec<ShardFiles>,
    /// The table's full current schema. Files written before an `ADD COLUMN` lack trailing
    /// columns; those read as NULL.
    pub table_schema: SchemaRef,
    /// Conjunctive predicates over `table_schema`'s (unqualified) column names.
    pub filters: Vec<Expr>,
    /// Column names to return, in this order; `None` = all. Ignored when `aggregate` is set.
    pub projection: Option<Vec<String>>,
    /// If set: return the aggregate of the filtered rows instead of the rows.
    pub aggregate: Option<PartialAggregate>,
    /// At most this many output rows (applied after the aggregate or projection).
    pub limit: Option<usize>,
}

/// Magic prefix of a scan ticket; the digit is the ticket format version.
const TICKET_MAGIC: &[u8] = b"SHOALSCAN2";

/// Magic prefix of a file ticket; the digit is the ticket format version.
const FILE_TICKET_MAGIC: &[u8] = b"SHOALFILE1";

/// The JSON head of a scan ticket; the schema and the expressions follow it as
/// length-prefixed binary sections (Arrow IPC, then datafusion-proto bytes).
#[derive(Serialize, Deserialize)]
struct TicketHeader {
    table_id: i64,
    shards: Vec<ShardFiles>,
    projection: Option<Vec<String>>,
    limit: Option<usize>,
    filters: usize,
    aggregate: Option<AggregateHeader>,
}

#[derive(Serialize, Deserialize)]
struct AggregateHeader {
    group_by: usize,
    aggr: usize,
}

/// Expressions are decoded against the built-in functions (count, sum, like, ...).
static BUILTIN_FUNCTIONS: LazyLock<Arc<TaskContext>> =
    LazyLock::new(|| SessionContext::new().task_ctx());

impl ScanRequest {
    /// Encodes the request as a Flight ticket.
    pub fn to_ticket(&self) -> Result<Ticket> {
        let header = TicketHeader {
            table_id: self.table_id,
            shards: self.shards.clone(),
            projection: self.projection.clone(),
            limit: self.limit,
            filters: self.filters.len(),
            aggregate: self.aggregate.as_ref().map(|a| AggregateHeader {
                group_by: a.group_by.len(),
                aggr: a.aggr.len(),
            }),
        };
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(TICKET_MAGIC);
        push_section(&mut out, &json_bytes(&header)?)?;
        push_section(&mut out, &schema_to_ipc(&self.table_schema)?)?;
        let exprs = self.filters.iter().chain(
            self.aggregate
                .iter()
                .flat_map(|a| a.group_by.iter().chain(a.aggr.iter())),
        );
        for expr in exprs {
            push_section(&mut out, &expr.to_bytes()?)?;
        }
        Ok(Ticket::new(out))
    }

    /// Decodes a ticket made by [`Self::to_ticket`]; expressions may use built-in functions.
    pub fn from_ticket(ticket: &Ticket) -> Result<Self> {
        Self::from_ticket_with_ctx(ticket, &BUILTIN_FUNCTIONS)
    }

    /// Like [`Self::from_ticket`], resolving functions in the expressions with `ctx`
    /// (for user-defined functions).
    pub fn from_ticket_with_ctx(ticket: &Ticket, ctx: &TaskContext) -> Result<Self> {
        let rest = ticket
            .ticket
            .strip_prefix(TICKET_MAGIC)
            .ok_or_else(|| ShardStoreError::protocol("not a shoal scan ticket (bad magic)"))?;
        let mut sections = Sections { rest };
        let header: TicketHeader = serde_json::from_slice(sections.next()?)
            .map_err(|e| ShardStoreError::protocol(format!("bad scan ticket header: {e}")))?;
        let table_schema = Arc::new(schema_from_ipc(sections.next()?)?);
        let mut exprs = |n: usize| -> Result<Vec<Expr>> {
            (0..n)
                .map(|_| Ok(Expr::from_bytes_with_ctx(sections.next()?, ctx)?))
                .collect()
        };
        let filters = exprs(header.filters)?;
        let aggregate = match header.aggregate {
            Some(a) => Some(PartialAggregate {
                group_by: exprs(a.group_by)?,
                aggr: exprs(a.aggr)?,
            }),
            None => None,
        };
        if !sections.rest.is_empty() {
            return Err(ShardStoreError::protocol(
                "scan ticket has trailing bytes after its last section",
            ));
        }
        Ok(ScanRequest {
            table_id: header.table_id,
            shards: header.shards,
            table_schema,
            filters,
            projection: header.projection,
            aggregate,
            limit: header.limit,
        })
    }
}

pub(crate) fn push_section(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| ShardStoreError::protocol("scan ticket section larger than 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Reader of length-prefixed ticket sections.
pub(crate) struct Sections<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Sections<'a> {
    pub(crate) fn next(&mut self) -> Result<&'a [u8]> {
        let truncated = || ShardStoreError::protocol("scan ticket is truncated");
        let (len, rest) = self.rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(truncated());
        }
        let (section, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(section)
    }
}

pub(crate) fn schema_to_ipc(schema: &Schema) -> Result<Bytes> {
    let options = IpcWriteOptions::default();
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options).try_into()?;
    Ok(bytes)
}

pub(crate) fn schema_from_ipc(bytes: &[u8]) -> Result<Schema> {
    Ok(Schema::try_from(IpcMessage(Bytes::copy_from_slice(bytes)))?)
}

/// A request for the raw bytes of one committed shard file (a DoGet ticket), read by the
/// target of a move from the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileTicket {
    pub table_id: i64,
    pub shard_id: i64,
    /// File name inside `shards/<table_id>/<shard_id>/`.
    pub name: String,
    /// First byte to send; lets a later version resume a transfer.
    pub offset: u64,
}

impl FileTicket {
    pub(crate) fn to_ticket(&self) -> Result<Ticket> {
        let json = json_bytes(self)?;
        let mut out = Vec::with_capacity(FILE_TICKET_MAGIC.len() + json.len());
        out.extend_from_slice(FILE_TICKET_MAGIC);
        out.extend_from_slice(&json);
        Ok(Ticket::new(out))
    }

    /// `None` if the ticket is not a file ticket (a scan ticket, then).
    pub(crate) fn from_ticket(ticket: &Ticket) -> Option<Result<Self>> {
        let json = ticket.ticket.strip_prefix(FILE_TICKET_MAGIC)?;
        Some(from_json("file ticket", json))
    }
}

/// One chunk of a file sent in answer to a file ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChunk {
    /// Position of `bytes` in the file.
    pub offset: u64,
    pub bytes: Bytes,
}

impl FileChunk {
    pub(crate) fn to_flight_data(&self) -> FlightData {
        FlightData {
            app_metadata: Bytes::copy_from_slice(&self.offset.to_le_bytes()),
            data_body: self.bytes.clone(),
            ..Default::default()
        }
    }

    pub(crate) fn from_flight_data(data: FlightData) -> Result<Self> {
        let offset = <[u8; 8]>::try_from(data.app_metadata.as_ref()).map_err(|_| {
            ShardStoreError::protocol("a file chunk must carry its 8-byte offset in app_metadata")
        })?;
        Ok(FileChunk {
            offset: u64::from_le_bytes(offset),
            bytes: data.data_body,
        })
    }
}

/// Body of the `pull_files` action, sent by the coordinator to the target of a move: fetch
/// these files of one shard from the source worker into the task's staging directory and
/// verify them against the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullFilesRequest {
    /// The move task; names the staging directory `staging/move-<task_id>/`.
    pub task_id: i64,
    /// The source worker's address (`host:port`), as the target can reach it.
    pub source_addr: String,
    pub table_id: i64,
    pub shard_id: i64,
    /// The files as the coordinator's catalog lists them: each is checked against its `bytes`
    /// and `checksum` (`rows` is not checked).
    pub files: Vec<FileMeta>,
    /// Cap on the rate the target receives and writes the files at, in bytes per second;
    /// `None` = as fast as possible. Must not be 0.
    pub max_bytes_per_s: Option<u64>,
}

/// Answer of `pull_files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullFilesReport {
    /// Files fetched from the source in this call.
    pub files_copied: usize,
    /// Bytes fetched from the source in this call.
    pub bytes_copied: u64,
    /// Files already staged and verified by an earlier call, not fetched again.
    pub files_skipped: usize,
}

/// Body of the `pull_progress` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PullProgressBody {
    pub task_id: i64,
}

/// Answer of `pull_progress`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgressReport {
    /// Bytes the running `pull_files` call of the task has received so far, including those
    /// of files not verified yet; `None` when no call of the task runs.
    pub bytes_received: Option<u64>,
}

/// Body of the `adopt_staged` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AdoptStagedBody {
    pub task_id: i64,
    pub table_id: i64,
    pub shard_id: i64,
    pub names: Vec<String>,
}

/// Body of the `discard_staging` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DiscardStagingBody {
    pub task_id: i64,
}

/// JSON body of the DoPut descriptor command.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PutCommand {
    pub table_id: i64,
    pub shard_id: i64,
    /// Column whose values the file's rows are sorted by within each row group (the table's
    /// distribution column), so that a filter on one value reads only the pages holding it.
    pub cluster_by: Option<String>,
}

/// Body of the `handshake` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HandshakeBody {
    pub cluster_id: String,
}

/// Body of the `delete_files` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeleteFilesBody {
    pub table_id: i64,
    pub shard_id: i64,
    pub names: Vec<String>,
}

/// Body of the `drop_shards` action.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DropShardsBody {
    pub table_id: i64,
    pub shard_ids: Vec<i64>,
}

pub(crate) const ACTION_HANDSHAKE: &str = "handshake";
pub(crate) const ACTION_HEALTH: &str = "health";
pub(crate) const ACTION_DELETE_FILES: &str = "delete_files";
pub(crate) const ACTION_DROP_SHARDS: &str = "drop_shards";
pub(crate) const ACTION_LIST_FILES: &str = "list_files";
pub(crate) const ACTION_PULL_FILES: &str = "pull_files";
pub(crate) const ACTION_PULL_PROGRESS: &str = "pull_progress";
pub(crate) const ACTION_ADOPT_STAGED: &str = "adopt_staged";
pub(crate) const ACTION_DISCARD_STAGING: &str = "discard_staging";
pub(crate) const ACTION_LIST_STAGING: &str = "list_staging";
pub(crate) const ACTION_VERIFY_FILES: &str = "verify_files";
pub(crate) const ACTION_JOURNAL_BASE: &str = "journal_base";
pub(crate) const ACTION_JOURNAL_APPEND: &str = "journal_append";
pub(crate) const ACTION_JOURNAL_STATUS: &str = "journal_status";
pub(crate) const ACTION_JOURNAL_READ: &str = "journal_read";

/// `app_metadata` of the message that ends a complete DoPut. The worker commits a file only
/// after seeing it: a put stream that simply ends (a client whose input failed half-closes
/// its stream) must never leave a partial file in `shards/`.
const COMMIT_MARKER: &[u8] = b"shoal:commit";

/// The message a client sends after the last batch of a DoPut.
pub(crate) fn commit_marker() -> FlightData {
    FlightData {
        app_metadata: Bytes::from_static(COMMIT_MARKER),
        ..Default::default()
    }
}

pub(crate) fn is_commit_marker(data: &FlightData) -> bool {
    data.data_header.is_empty() && data.app_metadata.as_ref() == COMMIT_MARKER
}

pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ShardStoreError::internal(format!("cannot encode JSON: {e}")))
}

pub(crate) fn from_json<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ShardStoreError::protocol(format!("bad {what}: {e}")))
}

/// `batch` with exactly `schema`: same column count, each column cast to the field's type.
pub(crate) fn cast_batch_to(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    if batch.num_columns() != schema.fields().len() {
        return Err(ShardStoreError::protocol(format!(
            "batch has {} columns, schema has {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// `schema` with view types replaced by their classic forms (Utf8View → Utf8,
/// BinaryView → Binary), also inside lists, structs and maps.
pub(crate) fn without_view_types(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| field_without_views(f))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn field_without_views(field: &Field) -> Field {
    field
        .clone()
        .with_data_type(type_without_views(field.data_type()))
}

fn type_without_views(data_type: &DataType) -> DataType {
    let inner = |f: &Arc<Field>| Arc::new(field_without_views(f));
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) | DataType::ListView(f) => DataType::List(inner(f)),
        DataType::LargeList(f) | DataType::LargeListView(f) => DataType::LargeList(inner(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(inner(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| field_without_views(f)).collect())
        }
        DataType::Map(f, sorted) => DataType::Map(inner(f), *sorted),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
