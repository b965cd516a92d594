//! `InsertSink`: INSERT ... VALUES / SELECT into a Shoal table. Rows are routed to shards and
//! streamed to every placement; the statement's files commit in one catalog transaction.

use std::fmt;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use shoal_catalog::TableSnapshot;
use shoal_sql_functions::{to_record, Cluster, ClusterError, WrittenFile};

use crate::frontend::session::{Session, StagedFile, StagedWrite};

use crate::query::provider::external;

pub struct InsertSink {
    cluster: Arc<Cluster>,
    table: String,
    schema: SchemaRef,
    /// The session of the statement that planned this insert.
    session: Option<Arc<Session>>,
}

impl InsertSink {
    pub fn new(
        cluster: Arc<Cluster>,
        table: String,
        schema: SchemaRef,
        session: Option<Arc<Session>>,
    ) -> Self {
        InsertSink {
            cluster,
            table,
            schema,
            session,
        }
    }
}

impl fmt::Debug for InsertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InsertSink({})", self.table)
    }
}

impl DisplayAs for InsertSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ShardInsert: table={}", self.table)
    }
}

/// Inside a transaction, rows are held in the session until this many bytes of a table
/// have gathered (or a statement that may read them runs, or COMMIT): a loop of single-row
/// INSERTs then writes a few files, not one per row.
const TRANSACTION_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Writes a whole stream of rows as one atomic statement; returns the row count. Inside a
/// transaction of `session` the rows are held in it (see [`TRANSACTION_BUFFER_BYTES`]) and
/// written as staged files later; else they are written and committed at once.
pub async fn write_statement(
    cluster: &Cluster,
    table: &str,
    mut data: futures::stream::BoxStream<
        '_,
        std::result::Result<arrow::array::RecordBatch, ClusterError>,
    >,
    session: Option<&Arc<Session>>,
) -> std::result::Result<u64, ClusterError> {
    let Some(session) = session.filter(|s| s.in_transaction()) else {
        return write_files(cluster, table, data, None).await;
    };
    session.check_writable("INSERT")?;
    let view = match session.view(table)? {
        Some(v) => v,
        None => cluster.catalog().snapshot(table)?,
    };
    let schema = shoal_sql_functions::types::table_schema(&view.table.columns);
    let not_null = shoal_sql_functions::not_null_columns(&view.table);
    let checks = shoal_sql_functions::value_checks(&view.table);
    let mut rows = 0u64;
    while let Some(batch) = data.next().await {
        let batch = shoal_sql_functions::check_values(conform(&batch?, &schema)?, &checks)?;
        // Checked now, not when the rows are written: the error belongs to this statement.
        if let Some((column, _)) = shoal_sql_functions::first_null(&batch, &not_null) {
            return Err(ClusterError::NotNull {
                message: shoal_sql_functions::not_null_message(
                    &view.table.name,
                    &view.table.columns[column].name,
                ),
            });
        }
        rows += batch.num_rows() as u64;
        if session.buffer(table, batch) >= TRANSACTION_BUFFER_BYTES {
            session.flush(Some(table)).await?;
        }
    }
    Ok(rows)
}

/// Writes rows to new files of every shard they belong to: staged in `session`'s
/// transaction, or (without one) committed in one catalog transaction.
pub async fn write_files(
    cluster: &Cluster,
    table: &str,
    mut data: futures::stream::BoxStream<
        '_,
        std::result::Result<arrow::array::RecordBatch, ClusterError>,
    >,
    session: Option<&Session>,
) -> std::result::Result<u64, ClusterError> {
    // Placements are read only once admitted: a move's switch cannot happen between this
    // snapshot and the commit below (a transaction checks its placements again at COMMIT).
    let _permit = cluster.admit_write(table).await?;
    // Counts as a client's statement: moves yield bandwidth to it.
    let _statement = cluster.begin_statement();
    let snapshot = match session {
        Some(s) => match s.view(table)? {
            Some(v) => v,
            None => cluster.catalog().snapshot(table)?,
        },
        None => cluster.catalog().snapshot(table)?,
    };
    let mut writer = cluster.writer_for(&snapshot)?;
    let schema = Arc::clone(writer.schema());
    while let Some(batch) = data.next().await {
        let step = match batch {
            Ok(b) => match conform(&b, &schema) {
                Ok(b) => writer.write(b).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = step {
            // Dropped unfinished: its workers discard the files.
            drop(writer);
            return Err(e);
        }
    }
    // Rows, not files: a reference table's row lands on every placement but is one row.
    let rows = writer.rows();
    let files = writer.finish().await?;
    match session {
        Some(s) => s.stage(StagedWrite {
            table_id: snapshot.table.table_id,
            table_name: snapshot.table.name.clone(),
            added: staged_files(&snapshot, &files),
            removed: vec![],
        }),
        None => {
            cluster.commit(&files)?;
        }
    }
    Ok(rows)
}

/// Written files with the address of the placement each went to.
pub fn staged_files(snapshot: &TableSnapshot, files: &[WrittenFile]) -> Vec<StagedFile> {
    files
        .iter()
        .map(|f| {
            let addr = snapshot
                .shards
                .iter()
                .flat_map(|s| s.placements.iter())
                .find(|p| p.placement_id == f.placement_key)
                .map(|p| p.addr())
                .unwrap_or_default();
            StagedFile {
                addr,
                shard_id: f.shard_id,
                placement_id: f.placement_key,
                file: to_record(f),
            }
        })
        .collect()
}

/// Casts a batch to the table's exact schema (column names and types).
pub(crate) fn conform(
    batch: &arrow::array::RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<arrow::array::RecordBatch, ClusterError> {
    if batch.schema().fields().len() != schema.fields().len() {
        return Err(ClusterError::Internal {
            message: format!(
                "insert produced {} columns for a table of {}",
                batch.num_columns(),
                schema.fields().len()
            ),
        });
    }
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| -> std::result::Result<ArrayRef, ClusterError> {
            if c.data_type() == f.data_type() {
                return Ok(Arc::clone(c));
            }
            // Text into an array column is an array's text (`'{1,2}'`); Arrow's cast would
            // wrap the whole text as one element.
            if let (DataType::Utf8, DataType::List(element)) = (c.data_type(), f.data_type()) {
                use arrow::array::AsArray;
                return shoal_sql_functions::types::array::list_column(
                    c.as_string::<i32>().iter(),
                    element.data_type(),
                )
                .map_err(|e| ClusterError::InvalidText {
                    sqlstate: e.sqlstate,
                    message: e.message,
                    detail: None,
                });
            }
            Ok(arrow::compute::cast(c, f.data_type())?)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(arrow::array::RecordBatch::try_new(
        Arc::clone(schema),
        cols,
    )?)
}

#[async_trait]
impl DataSink for InsertSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let stream = data.map(|b| b.map_err(ClusterError::from)).boxed();
        write_statement(&self.cluster, &self.table, stream, self.session.as_ref())
            .await
            .map_err(external)
    }
}
