//! The write protocol of one statement (INSERT, COPY, a transaction's buffered rows): admitted
//! at its shard groups' write gate before the placements are read, so no move can switch them
//! between the snapshot and the commit; counted as a client's statement (moves yield bandwidth
//! to it); rows conformed to the table's exact schema, routed and streamed to every placement;
//! and the files published while the gate is still held — committed in one catalog
//! transaction, or handed to the open transaction that commits them later. A statement that
//! fails drops its writer unfinished, and the workers discard what it wrote.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use futures::stream::BoxStream;
use futures::StreamExt;
use shoal_catalog::TableSnapshot;

use super::WrittenFile;
use crate::cluster::Cluster;
use crate::error::{ClusterError, Result};

/// Hands a statement's files, written against the snapshot, to an open transaction.
pub type StageFiles<'a> =
    Box<dyn FnOnce(&TableSnapshot, Vec<WrittenFile>) -> Result<()> + Send + 'a>;

/// Where a statement's files go once every placement has them.
pub enum Publish<'a> {
    /// Committed now, in one catalog transaction.
    Commit,
    /// Handed to an open transaction, which commits (or discards) them with itself.
    Stage(StageFiles<'a>),
}

impl Cluster {
    /// Writes `data` to new files of every shard its rows belong to and publishes them;
    /// returns the rows written (a reference table's row lands on every placement but is one
    /// row). `snapshot` reads the table as the statement sees it; it is called once the
    /// statement is admitted.
    pub async fn write_statement_rows(
        &self,
        table: &str,
        snapshot: impl FnOnce() -> Result<TableSnapshot>,
        mut data: BoxStream<'_, Result<RecordBatch>>,
        publish: Publish<'_>,
    ) -> Result<u64> {
        let _permit = self.admit_write(table).await?;
        let _statement = self.begin_statement();
        let snapshot = snapshot()?;
        let mut writer = self.writer_for(&snapshot)?;
        let schema = Arc::clone(writer.schema());
        while let Some(batch) = data.next().await {
            // An error drops the writer unfinished: its workers discard the files.
            writer.write(conform(&batch?, &schema)?).await?;
        }
        let rows = writer.rows();
        let files = writer.finish().await?;
        match publish {
            Publish::Commit => {
                self.commit(&files)?;
            }
            Publish::Stage(stage) => stage(&snapshot, files)?,
        }
        Ok(rows)
    }
}

/// The address of the placement a file was written to.
pub fn placement_addr(snapshot: &TableSnapshot, placement_id: i64) -> Result<String> {
    snapshot
        .shards
        .iter()
        .flat_map(|s| s.placements.iter())
        .find(|p| p.placement_id == placement_id)
        .map(|p| p.addr())
        .ok_or_else(|| ClusterError::Internal {
            message: format!(
                "placement {placement_id} is not in the snapshot of table {}",
                snapshot.table.name
            ),
        })
}

/// Casts a batch to the table's exact schema (column names and types).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
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
        .map(|(c, f)| -> Result<ArrayRef> {
            if c.data_type() == f.data_type() {
                return Ok(Arc::clone(c));
            }
            // Text into an array column is an array's text (`'{1,2}'`); Arrow's cast would
            // wrap the whole text as one element.
            if let (DataType::Utf8, DataType::List(element)) = (c.data_type(), f.data_type()) {
                return crate::types::array::list_column(
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
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}
