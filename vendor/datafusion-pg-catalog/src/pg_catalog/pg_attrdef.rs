//! Shoal patch: `pg_attrdef` from the database's declared column defaults (psql's `\d`,
//! SQLAlchemy's and pgjdbc's column reflection read a default through
//! `pg_get_expr(adbin, adrelid)`). Upstream's table was a static export with no user rows.
//! `adbin` holds the default's SQL text, which `pg_get_expr` returns as it is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use datafusion::arrow::array::{ArrayRef, Int16Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use postgres_types::Oid;
use tokio::sync::RwLock;

use crate::pg_catalog::catalog_info::CatalogInfo;
use crate::pg_catalog::context::ColumnAttributesSource;

use super::oid_field;
use super::{OidCacheKey, resolve_oid};

#[derive(Debug, Clone)]
pub(crate) struct PgAttrdefTable<C> {
    schema: SchemaRef,
    catalog_list: C,
    attributes: Option<Arc<dyn ColumnAttributesSource>>,
    oid_counter: Arc<AtomicU32>,
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
}

impl<C: CatalogInfo> PgAttrdefTable<C> {
    pub(crate) fn new(
        catalog_list: C,
        attributes: Option<Arc<dyn ColumnAttributesSource>>,
        oid_counter: Arc<AtomicU32>,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    ) -> Self {
        let schema = Arc::new(Schema::new(vec![
            oid_field::oid_field("oid", oid_field::kind::OID, false),
            oid_field::oid_field("adrelid", oid_field::kind::REGCLASS, false),
            Field::new("adnum", DataType::Int16, false),
            Field::new("adbin", DataType::Utf8, false),
        ]));
        Self {
            schema,
            catalog_list,
            attributes,
            oid_counter,
            oid_cache,
        }
    }

    async fn get_data(this: Self) -> Result<RecordBatch> {
        let mut oids = Vec::new();
        let mut adrelids = Vec::new();
        let mut adnums = Vec::new();
        let mut adbins = Vec::new();
        if let Some(source) = &this.attributes {
            // The table oids pg_class and pg_attribute hand out: read from the shared cache,
            // and a table not seen yet gets its oid cached here.
            let mut oid_cache = this.oid_cache.write().await;
            for catalog_name in this.catalog_list.catalog_names().await? {
                let Some(schema_names) = this.catalog_list.schema_names(&catalog_name).await?
                else {
                    continue;
                };
                for schema_name in schema_names {
                    let Some(table_names) = this
                        .catalog_list
                        .table_names(&catalog_name, &schema_name)
                        .await?
                    else {
                        continue;
                    };
                    for table_name in table_names {
                        let Some(declared) =
                            source.column_attributes(&schema_name, &table_name).await
                        else {
                            continue;
                        };
                        if declared.iter().all(|c| c.default_expr.is_none()) {
                            continue;
                        }
                        let key = OidCacheKey::Table(
                            catalog_name.clone(),
                            schema_name.clone(),
                            table_name.clone(),
                        );
                        let table_oid = resolve_oid(&key, &oid_cache, &this.oid_counter);
                        oid_cache.insert(key, table_oid);
                        for (i, column) in declared.iter().enumerate() {
                            let Some(default) = &column.default_expr else {
                                continue;
                            };
                            oids.push(
                                this.oid_counter
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                                    as i32,
                            );
                            adrelids.push(table_oid as i32);
                            adnums.push((i + 1) as i16);
                            adbins.push(default.clone());
                        }
                    }
                }
            }
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(oids)),
            Arc::new(Int32Array::from(adrelids)),
            Arc::new(Int16Array::from(adnums)),
            Arc::new(StringArray::from(adbins)),
        ];
        Ok(RecordBatch::try_new(this.schema.clone(), arrays)?)
    }
}

impl<C: CatalogInfo> PartitionStream for PgAttrdefTable<C> {
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
