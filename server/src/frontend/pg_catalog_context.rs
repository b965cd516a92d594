//! What Shoal tells datafusion-pg-catalog's `pg_catalog` tables beyond the Arrow schemas of
//! its tables, read from the catalog: each column's NOT NULL, default, PostgreSQL type and type
//! modifier (psql's `\d`, SQLAlchemy's and pgjdbc's column reflection), and each table's rows
//! and bytes (`pg_class.reltuples`, `pg_table_size`, psql's `\dt+`), its indexes and key
//! constraints (`pg_index`, `pg_constraint`), and the role the session is (`pg_roles`,
//! `pg_get_userbyid`: psql's `\du` and the Owner column of `\dt`).

use std::sync::Arc;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    ColumnAttributes, ColumnAttributesSource, IndexInfo, IndexSource, PgCatalogContextProvider,
    RelationStats, RelationStatsSource, Role, ViewInfo, ViewSource,
};
use shoal_catalog::ColumnDefault;
use shoal_sql_functions::Cluster;

/// The oid of the role that owns every object (`pg_class.relowner`, `pg_namespace.nspowner`,
/// ...): the session's user.
pub const OWNER_OID: u32 = 10;

/// PostgreSQL 15's predefined role that owns schema `public` (so does Shoal's, as pg_dump
/// expects of a fresh database).
pub const DATABASE_OWNER_ROLE: (&str, u32) = ("pg_database_owner", 6171);

/// The name of the role `oid`, as `pg_get_userbyid` and `acldefault` show it; `None` for
/// an oid that names no role.
pub fn role_name(oid: i64) -> Option<String> {
    if oid == i64::from(OWNER_OID) {
        Some(session_user())
    } else if oid == i64::from(DATABASE_OWNER_ROLE.1) {
        Some(DATABASE_OWNER_ROLE.0.to_string())
    } else {
        None
    }
}

/// The user the running statement's session logged in as.
pub fn session_user() -> String {
    crate::frontend::session::current()
        .map_or_else(|| "shoal".to_string(), |s| s.user().to_string())
}

/// `pg_get_userbyid(oid)`: the session's user for the owner's oid (10), pg_database_owner
/// for its own; as PostgreSQL, `unknown (OID=n)` for any other.
pub fn pg_get_userbyid() -> ScalarUDF {
    ScalarUDF::new_from_impl(UserById {
        signature: Signature::any(1, Volatility::Stable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct UserById {
    signature: Signature,
}

impl ScalarUDFImpl for UserById {
    fn name(&self) -> &str {
        "pg_get_userbyid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use arrow::array::{Array, AsArray, StringArray};
        use arrow::datatypes::Int64Type;
        let oids = args.args[0].to_array(args.number_rows)?;
        let oids = arrow::compute::cast(&oids, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        let names: StringArray = (0..oids.len())
            .map(|i| {
                (!oids.is_null(i)).then(|| {
                    let n = oids.value(i);
                    role_name(n).unwrap_or_else(|| format!("unknown (OID={n})"))
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(names)))
    }
}

#[derive(Clone, Debug)]
pub struct PgCatalogContext {
    tables: Arc<DeclaredTables>,
}

impl PgCatalogContext {
    pub fn new(cluster: &Arc<Cluster>) -> Self {
        PgCatalogContext {
            tables: Arc::new(DeclaredTables {
                cluster: Arc::clone(cluster),
            }),
        }
    }
}

#[async_trait]
impl PgCatalogContextProvider for PgCatalogContext {
    /// The role the session logged in as: Shoal keeps no roles of its own, and every user
    /// may do anything, so the one role is a superuser, owner of every object (oid 10, as
    /// PostgreSQL's bootstrap superuser).
    async fn roles(&self) -> Vec<String> {
        vec![session_user(), DATABASE_OWNER_ROLE.0.to_string()]
    }

    async fn role(&self, name: &str) -> Option<Role> {
        if name == DATABASE_OWNER_ROLE.0 {
            return Some(Role {
                name: name.to_string(),
                oid: Some(DATABASE_OWNER_ROLE.1),
                is_superuser: false,
                can_login: false,
                can_create_db: false,
                can_create_role: false,
                can_create_user: false,
                can_replication: false,
                grants: Vec::new(),
                inherited_roles: Vec::new(),
            });
        }
        (name == session_user()).then(|| Role {
            name: name.to_string(),
            oid: Some(OWNER_OID),
            is_superuser: true,
            can_login: true,
            can_create_db: true,
            can_create_role: true,
            can_create_user: true,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }

    fn column_attributes_source(&self) -> Option<Arc<dyn ColumnAttributesSource>> {
        Some(Arc::clone(&self.tables) as Arc<dyn ColumnAttributesSource>)
    }

    fn relation_stats_source(&self) -> Option<Arc<dyn RelationStatsSource>> {
        Some(Arc::clone(&self.tables) as Arc<dyn RelationStatsSource>)
    }

    fn index_source(&self) -> Option<Arc<dyn IndexSource>> {
        Some(Arc::clone(&self.tables) as Arc<dyn IndexSource>)
    }

    fn view_source(&self) -> Option<Arc<dyn ViewSource>> {
        Some(Arc::clone(&self.tables) as Arc<dyn ViewSource>)
    }

    /// Shoal's own views belong to the `shoal` extension, as Citus's to `citus`: pg_dump
    /// leaves them out, and `\dx` lists it.
    fn system_extension(&self) -> Option<(String, String)> {
        Some(("shoal".to_string(), env!("CARGO_PKG_VERSION").to_string()))
    }

    fn system_objects(&self) -> (Vec<(String, String)>, Vec<String>) {
        let cluster = &self.tables.cluster;
        let mut relations: Vec<(String, String)> = crate::query::views::compat_views(cluster)
            .into_keys()
            .map(|name| ("public".to_string(), name))
            .collect();
        relations.extend(
            crate::query::views::shoal_schema(cluster)
                .table_names()
                .into_iter()
                .map(|name| ("shoal".to_string(), name)),
        );
        relations.sort();
        (relations, vec!["shoal".to_string()])
    }
}

/// Shoal's tables (schema `public`) as they were declared, and their sizes.
struct DeclaredTables {
    cluster: Arc<Cluster>,
}

impl std::fmt::Debug for DeclaredTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeclaredTables")
    }
}

impl RelationStatsSource for DeclaredTables {
    /// Rows counted once per shard, bytes of the files on every placement (as `shoal.tables`).
    fn relation_stats(&self, schema: &str, table: &str) -> Option<RelationStats> {
        if schema != "public" {
            return None;
        }
        // Tables only (a view has no size); a catalog read error leaves PostgreSQL's NULL.
        let snapshot = self.cluster.catalog().snapshot(table).ok()?;
        Some(RelationStats {
            rows: i64::try_from(snapshot.row_count()).unwrap_or(i64::MAX),
            bytes: i64::try_from(snapshot.bytes()).unwrap_or(i64::MAX),
        })
    }
}

#[async_trait]
impl ColumnAttributesSource for DeclaredTables {
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
                        default_expr: c.default.as_ref().map(ColumnDefault::pg_expr),
                    }
                })
                .collect(),
        )
    }
}

impl ViewSource for DeclaredTables {
    /// The committed views (a view is created and dropped only outside a transaction
    /// block); a catalog read error lists none.
    fn views(&self) -> Vec<ViewInfo> {
        let catalog = self.cluster.catalog();
        let Ok(names) = catalog.view_names() else {
            return Vec::new();
        };
        let owner = session_user();
        names
            .into_iter()
            .filter_map(|name| {
                let definition = catalog.view_query(&name).ok().flatten()?;
                Some(ViewInfo {
                    schema: "public".to_string(),
                    name,
                    owner: owner.clone(),
                    definition,
                })
            })
            .collect()
    }
}

impl IndexSource for DeclaredTables {
    fn indexes(&self) -> Vec<IndexInfo> {
        visible_indexes(&self.cluster)
    }
}

/// The indexes the running statement's transaction sees (its own CREATE and DROP INDEX
/// included), of the tables it sees; a catalog read error lists none.
pub(crate) fn visible_indexes(cluster: &Cluster) -> Vec<IndexInfo> {
    let catalog = cluster.catalog();
    let Ok(committed) = catalog.indexes() else {
        return Vec::new();
    };
    let visible = match crate::frontend::session::current().filter(|s| s.in_transaction()) {
        Some(s) => s.visible_indexes(committed),
        None => committed,
    };
    let Ok(tables) = catalog.table_names() else {
        return Vec::new();
    };
    // Each table's name as this statement sees it (a transaction's own tables too).
    let names: std::collections::HashMap<i64, String> = tables
        .into_iter()
        .filter_map(|t| {
            let info = catalog.table_by_name(&t).ok().flatten()?;
            Some((info.table_id, t))
        })
        .collect();
    let mut out = Vec::new();
    for index in visible {
        if let Some(table) = names.get(&index.table_id) {
            out.push(crate::frontend::indexes::catalog_info(&index, table));
        }
    }
    out
}
