//! What Shoal tells datafusion-pg-catalog's `pg_catalog` tables beyond the Arrow schemas of
//! its tables: each column's NOT NULL, PostgreSQL type and type modifier, read from the
//! catalog (psql's `\d`, SQLAlchemy's and pgjdbc's column reflection).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    ColumnAttributes, ColumnAttributesSource, PgCatalogContextProvider,
};
use shoal_sql_functions::Cluster;

#[derive(Clone, Debug)]
pub struct PgCatalogContext {
    columns: Arc<DeclaredColumns>,
}

impl PgCatalogContext {
    pub fn new(cluster: &Arc<Cluster>) -> Self {
        PgCatalogContext {
            columns: Arc::new(DeclaredColumns {
                cluster: Arc::clone(cluster),
            }),
        }
    }
}

impl PgCatalogContextProvider for PgCatalogContext {
    fn column_attributes_source(&self) -> Option<Arc<dyn ColumnAttributesSource>> {
        Some(Arc::clone(&self.columns) as Arc<dyn ColumnAttributesSource>)
    }
}

/// The columns of Shoal's tables (schema `public`) as they were declared.
struct DeclaredColumns {
    cluster: Arc<Cluster>,
}

impl std::fmt::Debug for DeclaredColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeclaredColumns")
    }
}

#[async_trait]
impl ColumnAttributesSource for DeclaredColumns {
    async fn column_attributes(&self, schema: &str, table: &str) -> Option<Vec<ColumnAttributes>> {
        if schema != "public" {
            return None;
        }
        // A catalog read error leaves the Arrow schema's answer (every column nullable).
        let info = self.cluster.catalog().table_by_name(table).ok()??;
        Some(
            info.columns
                .iter()
                .map(|c| {
                    let (not_null, type_oid, typmod) = shoal_sql_functions::types::pg_attributes(c);
                    ColumnAttributes {
                        not_null,
                        type_oid,
                        typmod,
                    }
                })
                .collect(),
        )
    }
}
