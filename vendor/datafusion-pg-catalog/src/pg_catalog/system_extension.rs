//! Shoal patch: the database system's own relations (Shoal's `shoal.*` views and its
//! Citus-compatible views) as members of a built-in extension, as Citus's are of the
//! `citus` extension. The extension's oid is below `FirstNormalObjectId`, so pg_dump takes
//! it and its members for part of the system and dumps none of them; psql's `\dx` lists it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{StreamExt, stream};
use tokio::sync::RwLock;

use super::context::PgCatalogContextProvider;
use super::{ArrowTable, OidCacheKey, PG_CATALOG_NAMESPACE_OID, resolve_oid};
use crate::pg_catalog::catalog_info::CatalogInfo;

type Oid = u32;

/// The extension's oid: the last one PostgreSQL reserves for built-in objects.
pub(crate) const SYSTEM_EXTENSION_OID: Oid = 16383;
const PG_EXTENSION_OID: i32 = 3079;
const PG_CLASS_OID: i32 = 1259;
const PG_NAMESPACE_OID: i32 = 2615;

/// `pg_extension`: the exported rows, then the system's extension.
#[derive(Debug, Clone)]
pub(crate) struct PgExtensionTable<P> {
    system: Arc<ArrowTable>,
    provider: P,
}

impl<P: PgCatalogContextProvider> PgExtensionTable<P> {
    pub(crate) fn new(system: Arc<ArrowTable>, provider: P) -> Self {
        Self { system, provider }
    }

    fn extension_row(&self) -> Result<Option<RecordBatch>> {
        let Some((name, version)) = self.provider.system_extension() else {
            return Ok(None);
        };
        let schema = self.system.schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> Result<ArrayRef> {
                Ok(match f.name().as_str() {
                    "oid" => Arc::new(Int32Array::from(vec![SYSTEM_EXTENSION_OID as i32])),
                    "extname" => Arc::new(StringArray::from(vec![name.clone()])),
                    "extowner" => Arc::new(Int32Array::from(vec![10])),
                    "extnamespace" => {
                        Arc::new(Int32Array::from(vec![PG_CATALOG_NAMESPACE_OID as i32]))
                    }
                    "extrelocatable" => Arc::new(BooleanArray::from(vec![false])),
                    "extversion" => Arc::new(StringArray::from(vec![version.clone()])),
                    _ => new_null_array(f.data_type(), 1),
                })
            })
            .collect::<Result<_>>()?;
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| datafusion::arrow::compute::cast(&c, f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(RecordBatch::try_new(schema, columns)?))
    }
}

impl<P: PgCatalogContextProvider> PartitionStream for PgExtensionTable<P> {
    fn schema(&self) -> &SchemaRef {
        self.system.schema_ref()
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut batches: Vec<Result<RecordBatch>> =
            self.system.data().iter().cloned().map(Ok).collect();
        match self.extension_row() {
            Ok(Some(b)) => batches.push(Ok(b)),
            Ok(None) => {}
            Err(e) => batches.push(Err(e)),
        }
        Box::pin(RecordBatchStreamAdapter::new(
            self.system.schema(),
            stream::iter(batches),
        ))
    }
}

/// `pg_depend`: the exported rows, then one `e` (extension member) row for each of the
/// system's relations and schemas.
#[derive(Debug, Clone)]
pub(crate) struct PgDependTable<C, P> {
    system: Arc<ArrowTable>,
    catalog_list: C,
    provider: P,
    oid_counter: Arc<AtomicU32>,
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
}

impl<C: CatalogInfo, P: PgCatalogContextProvider> PgDependTable<C, P> {
    pub(crate) fn new(
        system: Arc<ArrowTable>,
        catalog_list: C,
        provider: P,
        oid_counter: Arc<AtomicU32>,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    ) -> Self {
        Self {
            system,
            catalog_list,
            provider,
            oid_counter,
            oid_cache,
        }
    }

    async fn member_rows(this: Self) -> Result<RecordBatch> {
        let (relations, schemas) = this.provider.system_objects();
        let mut members: Vec<(i32, i32)> = Vec::new();
        if this.provider.system_extension().is_some() {
            let catalogs = this.catalog_list.catalog_names().await?;
            let mut cache = this.oid_cache.write().await;
            for catalog in catalogs {
                let mut oid_of = |key: OidCacheKey| {
                    let oid = resolve_oid(&key, &cache, &this.oid_counter);
                    cache.insert(key, oid);
                    oid as i32
                };
                for schema in &schemas {
                    let key = OidCacheKey::Schema(catalog.clone(), schema.clone());
                    members.push((PG_NAMESPACE_OID, oid_of(key)));
                }
                for (schema, name) in &relations {
                    let key = OidCacheKey::Table(catalog.clone(), schema.clone(), name.clone());
                    members.push((PG_CLASS_OID, oid_of(key)));
                }
            }
        }
        let schema = this.system.schema();
        let n = members.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> Result<ArrayRef> {
                let column: ArrayRef = match f.name().as_str() {
                    "classid" => Arc::new(Int32Array::from_iter_values(members.iter().map(|m| m.0))),
                    "objid" => Arc::new(Int32Array::from_iter_values(members.iter().map(|m| m.1))),
                    "objsubid" | "refobjsubid" => Arc::new(Int32Array::from(vec![0; n])),
                    "refclassid" => Arc::new(Int32Array::from(vec![PG_EXTENSION_OID; n])),
                    "refobjid" => {
                        Arc::new(Int32Array::from(vec![SYSTEM_EXTENSION_OID as i32; n]))
                    }
                    "deptype" => Arc::new(StringArray::from(vec!["e"; n])),
                    _ => new_null_array(f.data_type(), n),
                };
                Ok(datafusion::arrow::compute::cast(&column, f.data_type())?)
            })
            .collect::<Result<_>>()?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

impl<C: CatalogInfo, P: PgCatalogContextProvider> PartitionStream for PgDependTable<C, P> {
    fn schema(&self) -> &SchemaRef {
        self.system.schema_ref()
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let system: Vec<Result<RecordBatch>> =
            self.system.data().iter().cloned().map(Ok).collect();
        let this = self.clone();
        Box::pin(RecordBatchStreamAdapter::new(
            self.system.schema(),
            stream::iter(system).chain(stream::once(Self::member_rows(this))),
        ))
    }
}
