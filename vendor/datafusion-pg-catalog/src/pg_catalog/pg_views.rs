use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::context::ViewSource;
use super::empty_table::EmptyTable;

/// Shoal patch: `pg_views`, the database's views (it was always empty).
#[derive(Debug, Clone)]
pub(crate) struct PgViewsTable {
    schema: SchemaRef,
    source: Option<Arc<dyn ViewSource>>,
}

impl PgViewsTable {
    pub(crate) fn new(source: Option<Arc<dyn ViewSource>>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("schemaname", DataType::Utf8, true),
            Field::new("viewname", DataType::Utf8, true),
            Field::new("viewowner", DataType::Utf8, true),
            Field::new("definition", DataType::Utf8, true),
        ]));
        Self { schema, source }
    }

    fn batch(&self) -> datafusion::error::Result<RecordBatch> {
        let views = self.source.as_ref().map(|s| s.views()).unwrap_or_default();
        let column = |f: fn(&super::context::ViewInfo) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(views.iter().map(f)))
        };
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                column(|v| v.schema.clone()),
                column(|v| v.name.clone()),
                column(|v| v.owner.clone()),
                column(|v| view_definition(&v.definition)),
            ],
        )?)
    }
}

impl PartitionStream for PgViewsTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch = self.batch();
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::once(async move { batch }),
        ))
    }
}

/// A view's query as `pg_get_viewdef` and `pg_views.definition` show it: after a space and
/// ending in `;`, as PostgreSQL's (which also reformats the query; this keeps it as given).
pub(crate) fn view_definition(query: &str) -> String {
    format!(" {};", query.trim().trim_end_matches(';'))
}

pub fn pg_matviews() -> EmptyTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, true),
        Field::new("matviewname", DataType::Utf8, true),
        Field::new("matviewowner", DataType::Utf8, true),
        Field::new("tablespace", DataType::Utf8, true),
        Field::new("hasindexes", DataType::Boolean, true),
        Field::new("ispopulated", DataType::Boolean, true),
        Field::new("definition", DataType::Utf8, true),
    ]));

    EmptyTable::new(schema)
}

pub fn pg_stat_user_tables() -> EmptyTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("relid", DataType::Int32, false),
        Field::new("schemaname", DataType::Utf8, false),
        Field::new("relname", DataType::Utf8, false),
        Field::new("seq_scan", DataType::Int64, false),
        Field::new(
            "last_seq_scan",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("seq_tup_read", DataType::Int64, false),
        Field::new("idx_scan", DataType::Int64, false),
        Field::new(
            "last_idx_scan",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("idx_tup_fetch", DataType::Int64, false),
        Field::new("n_tup_ins", DataType::Int64, false),
        Field::new("n_tup_upd", DataType::Int64, false),
        Field::new("n_tup_del", DataType::Int64, false),
        Field::new("n_tup_hot_upd", DataType::Int64, false),
        Field::new("n_tup_newpage_upd", DataType::Int64, false),
        Field::new("n_live_tup", DataType::Int64, false),
        Field::new("n_dead_tup", DataType::Int64, false),
        Field::new("n_mod_since_analyze", DataType::Int64, false),
        Field::new("n_ins_since_vacuum", DataType::Int64, false),
        Field::new(
            "last_vacuum",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new(
            "last_autovacuum",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new(
            "last_analyze",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new(
            "last_autoanalyze",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("vacuum_count", DataType::Int64, false),
        Field::new("autovacuum_count", DataType::Int64, false),
        Field::new("analyze_count", DataType::Int64, false),
        Field::new("autoanalyze_count", DataType::Int64, false),
        Field::new("total_vacuum_time", DataType::Float64, false),
        Field::new("total_autovacuum_time", DataType::Float64, false),
        Field::new("total_analyze_time", DataType::Float64, false),
        Field::new("total_autoanalyze_time", DataType::Float64, false),
    ]));

    EmptyTable::new(schema)
}
