//! `InsertSink`: INSERT ... VALUES / SELECT into a Shoal table. Rows are routed to shards and
//! streamed to every placement; the statement's files commit in one catalog transaction.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use shoal_catalog::TableSnapshot;
use shoal_sql_functions::{
    conform, placement_addr, to_record, Cluster, ClusterError, Publish, WrittenFile,
};

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

/// Writes rows to new files of every shard they belong to (the protocol is
/// [`Cluster::write_statement_rows`]): staged in `session`'s transaction, or (without one)
/// committed in one catalog transaction.
pub async fn write_files(
    cluster: &Cluster,
    table: &str,
    data: futures::stream::BoxStream<
        '_,
        std::result::Result<arrow::array::RecordBatch, ClusterError>,
    >,
    session: Option<&Session>,
) -> std::result::Result<u64, ClusterError> {
    // A transaction sees its own uncommitted changes of the table.
    let snapshot = || match session.map(|s| s.view(table)).transpose()?.flatten() {
        Some(v) => Ok(v),
        None => Ok(cluster.catalog().snapshot(table)?),
    };
    let publish = match session {
        Some(s) => Publish::Stage(Box::new(move |snapshot: &TableSnapshot, files| {
            s.stage(StagedWrite {
                table_id: snapshot.table.table_id,
                table_name: snapshot.table.name.clone(),
                added: staged_files(snapshot, &files)?,
                removed: vec![],
            });
            Ok(())
        })),
        None => Publish::Commit,
    };
    cluster
        .write_statement_rows(table, snapshot, data, publish)
        .await
}

/// Written files with the address of the placement each went to.
pub fn staged_files(
    snapshot: &TableSnapshot,
    files: &[WrittenFile],
) -> std::result::Result<Vec<StagedFile>, ClusterError> {
    files
        .iter()
        .map(|f| {
            Ok(StagedFile {
                addr: placement_addr(snapshot, f.placement_key)?,
                shard_id: f.shard_id,
                placement_id: f.placement_key,
                file: to_record(f),
            })
        })
        .collect()
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
