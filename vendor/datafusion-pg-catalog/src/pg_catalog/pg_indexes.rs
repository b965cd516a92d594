//! Shoal patch: the `pg_indexes` view, from the indexes the database declares (upstream had
//! no such view, so `SELECT indexname FROM pg_indexes WHERE tablename = ...` failed).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::pg_catalog::context::IndexSource;

#[derive(Debug, Clone)]
pub(crate) struct PgIndexesView {
    schema: SchemaRef,
    source: Option<Arc<dyn IndexSource>>,
}

impl PgIndexesView {
    pub(crate) fn new(source: Option<Arc<dyn IndexSource>>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("schemaname", DataType::Utf8, false),
            Field::new("tablename", DataType::Utf8, false),
            Field::new("indexname", DataType::Utf8, false),
            Field::new("tablespace", DataType::Utf8, true),
            Field::new("indexdef", DataType::Utf8, false),
        ]));
        Self { schema, source }
    }

    async fn get_data(this: Self) -> Result<RecordBatch> {
        let indexes = match &this.source {
            Some(source) => source.indexes(),
            None => Vec::new(),
        };
        let column = |f: &dyn Fn(&crate::pg_catalog::context::IndexInfo) -> String| {
            Arc::new(StringArray::from(
                indexes.iter().map(f).collect::<Vec<String>>(),
            )) as ArrayRef
        };
        let arrays: Vec<ArrayRef> = vec![
            column(&|i| i.schema.clone()),
            column(&|i| i.table.clone()),
            column(&|i| i.name.clone()),
            Arc::new(StringArray::new_null(indexes.len())),
            column(&|i| i.definition.clone()),
        ];
        Ok(RecordBatch::try_new(this.schema.clone(), arrays)?)
    }
}

impl PartitionStream for PgIndexesView {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let this = self.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            this.schema.clone(),
            futures::stream::once(async move { Self::get_data(this).await }),
        ))
    }
}
