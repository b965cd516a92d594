//! Runs a [`ScanRequest`] on the worker with DataFusion: check each listed file against the
//! catalog's record (refusing a damaged one before any row), read exactly those files with
//! the table's schema (missing trailing columns read as NULL), filter, then aggregate or
//! project, then limit; stream the result cast to the announced output schema.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::stream::BoxStream;
use futures::StreamExt;
use tracing::{debug, warn};

use crate::error::{Result, ShardStoreError};
use crate::files::{blocking, FileStore};
use crate::protocol::{cast_batch_to, without_view_types, ScanRequest};

/// The output schema of a scan and its rows.
pub(crate) type ScanOutput = (SchemaRef, BoxStream<'static, Result<RecordBatch>>);

/// Plans and starts `req`. Fails with `FileMissing` before any row if a listed file is not
/// in the shard directory.
pub(crate) async fn execute_scan(
    ctx: &SessionContext,
    store: &Arc<FileStore>,
    req: ScanRequest,
) -> Result<ScanOutput> {
    let ScanRequest {
        table_id,
        shards,
        table_schema,
        filters,
        projection,
        aggregate,
        limit,
    } = req;
    let files: Vec<(i64, String, PathBuf)> = {
        let store = Arc::clone(store);
        blocking(move || {
            let mut files = Vec::new();
            for shard in shards {
                let found = store.existing_files(table_id, shard.shard_id, &shard.files)?;
                let mut paths = Vec::with_capacity(found.len());
                for (name, (path, meta)) in shard.files.iter().zip(found) {
                    let Some(check) = shard.checks.get(name) else {
                        paths.push(path);
                        continue;
                    };
                    if let Some(damage) = store.verified.check(&path, &meta, *check, false)? {
                        warn!(table_id, shard_id = shard.shard_id, file = %name, %damage,
                            "damaged shard file refused");
                        return Err(ShardStoreError::FileDamaged {
                            table_id,
                            shard_id: shard.shard_id,
                            name: name.clone(),
                            worker: String::new(),
                            damage,
                        });
                    }
                    paths.push(path);
                }
                files.extend(
                    shard
                        .files
                        .into_iter()
                        .zip(paths)
                        .map(|(name, path)| (shard.shard_id, name, path)),
                );
            }
            Ok(files)
        })
        .await?
    };

    let read_schema = read_schema(&table_schema);
    let mut df = if files.is_empty() {
        // Same plan over no rows: the right schema, and a global aggregate still yields its
        // one row (count 0), as it must for the coordinator's merge.
        let empty: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(Arc::clone(&read_schema)));
        ctx.read_table(empty)?
    } else {
        let urls: Vec<String> = files
            .iter()
            .map(|(_, _, path)| path.display().to_string())
            .collect();
        ctx.read_parquet(urls, ParquetReadOptions::default().schema(&read_schema))
            .await?
    };
    for filter in filters {
        df = df.filter(filter)?;
    }
    let output_schema = if let Some(agg) = aggregate {
        df = df.aggregate(named(agg.group_by), named(agg.aggr))?;
        Arc::new(without_view_types(df.schema().as_arrow()))
    } else if let Some(columns) = projection {
        let indices = columns
            .iter()
            .map(|c| {
                table_schema.index_of(c).map_err(|_| {
                    ShardStoreError::protocol(format!("projection names unknown column {c:?}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        df = df.select_columns(&names)?;
        Arc::new(table_schema.project(&indices)?)
    } else {
        Arc::clone(&table_schema)
    };
    if let Some(n) = limit {
        df = df.limit(0, Some(n))?;
    }
    debug!(table_id, files = files.len(), "scan started");

    let stream = df.execute_stream().await?;
    let schema = Arc::clone(&output_schema);
    let missing = MissingFileCheck { table_id, files };
    let rows = stream
        .map(move |item| match item {
            Ok(batch) => cast_batch_to(&batch, &schema),
            Err(e) => Err(missing.explain(e.into())),
        })
        .boxed();
    Ok((output_schema, rows))
}

/// The table's schema as the scan reads it: strings and bytes as views, which the Parquet
/// reader produces without copying short values and DataFusion filters and groups faster.
/// Rows leave the worker in the table's own types (`cast_batch_to`).
fn read_schema(table_schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = table_schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            DataType::Binary => f.as_ref().clone().with_data_type(DataType::BinaryView),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(
        fields,
        table_schema.metadata().clone(),
    ))
}

/// Names each expression by its `schema_name()` as the caller wrote it (unqualified), so the
/// output column names do not depend on how DataFusion qualifies columns.
fn named(exprs: Vec<Expr>) -> Vec<Expr> {
    exprs
        .into_iter()
        .map(|e| match e {
            Expr::Column(_) | Expr::Alias(_) => e,
            other => {
                let name = other.schema_name().to_string();
                other.alias(name)
            }
        })
        .collect()
}

/// Turns a failure in the middle of a scan into `FileMissing` when one of the scanned files
/// has disappeared (the shard was moved or dropped under the scan).
struct MissingFileCheck {
    table_id: i64,
    /// Shard, file name and path of every file scanned.
    files: Vec<(i64, String, PathBuf)>,
}

impl MissingFileCheck {
    fn explain(&self, error: ShardStoreError) -> ShardStoreError {
        for (shard_id, name, path) in &self.files {
            // Only on the error path; a stat of a local file.
            if !path.exists() {
                return ShardStoreError::FileMissing {
                    table_id: self.table_id,
                    shard_id: *shard_id,
                    name: name.clone(),
                };
            }
        }
        error
    }
}
