use std::{fmt::Debug, sync::Arc};

use async_trait::async_trait;

#[async_trait]
pub trait PgCatalogContextProvider: Clone + Debug + Send + Sync + 'static {
    // retrieve all database role names
    async fn roles(&self) -> Vec<String> {
        vec![]
    }

    // retrieve database role information
    async fn role(&self, _name: &str) -> Option<Role> {
        None
    }

    /// Shoal patch: where `pg_attribute` learns what a table's Arrow schema does not hold.
    fn column_attributes_source(&self) -> Option<Arc<dyn ColumnAttributesSource>> {
        None
    }

    /// Shoal patch: where `pg_class` and the size functions learn a table's rows and bytes.
    fn relation_stats_source(&self) -> Option<Arc<dyn RelationStatsSource>> {
        None
    }

    /// Shoal patch: where `pg_indexes` learns the database's indexes.
    fn index_source(&self) -> Option<Arc<dyn IndexSource>> {
        None
    }

    /// Shoal patch: where `pg_views` and `pg_get_viewdef` learn the database's views.
    fn view_source(&self) -> Option<Arc<dyn ViewSource>> {
        None
    }

    /// Shoal patch: the name and version of the extension the database system's own
    /// objects belong to (`pg_extension`), if it has one.
    fn system_extension(&self) -> Option<(String, String)> {
        None
    }

    /// Shoal patch: the system extension's member relations (schema, name) and schemas.
    fn system_objects(&self) -> (Vec<(String, String)>, Vec<String>) {
        (Vec::new(), Vec::new())
    }
}

/// Shoal patch: a view, as `pg_views` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewInfo {
    pub schema: String,
    pub name: String,
    pub owner: String,
    /// The view's query, as `pg_get_viewdef` answers it.
    pub definition: String,
}

/// Shoal patch: the views of a database. Synchronous, as `pg_get_viewdef` reads it while a
/// query runs.
pub trait ViewSource: Debug + Send + Sync {
    fn views(&self) -> Vec<ViewInfo>;
}

/// Shoal patch: an index as `pg_indexes`, `pg_class`, `pg_index` and `pg_constraint` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `CREATE INDEX ...` as PostgreSQL's `pg_get_indexdef` spells it.
    pub definition: String,
    pub unique: bool,
    /// The PRIMARY KEY or UNIQUE constraint the index stands for (named as the index).
    pub constraint: Option<IndexConstraint>,
    /// The key columns and expressions, in order.
    pub keys: Vec<IndexKey>,
    /// `INCLUDE (columns)`.
    pub include: Vec<String>,
    /// The `WHERE` of a partial index, as SQL text.
    pub predicate: Option<String>,
    pub nulls_not_distinct: bool,
    /// The access method (`btree`, `hash`, `gin`, ...).
    pub method: String,
}

/// Shoal patch: a key constraint, as `pg_constraint.contype` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexConstraint {
    PrimaryKey,
    Unique,
}

/// Shoal patch: one key of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    /// The table column the key is, or `None` for an expression.
    pub column: Option<String>,
    /// The key as `pg_get_indexdef(index, n)` prints it (a column name, or an expression).
    pub text: String,
    pub descending: bool,
    pub nulls_first: bool,
}

/// Shoal patch: the indexes of a database. Synchronous, as `pg_get_indexdef` and
/// `pg_get_constraintdef` read it while a query runs.
pub trait IndexSource: Debug + Send + Sync {
    fn indexes(&self) -> Vec<IndexInfo>;
}

/// Shoal patch: a table's size, as `pg_class.reltuples`/`relpages` and `pg_table_size`,
/// `pg_relation_size`, `pg_total_relation_size` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationStats {
    pub rows: i64,
    pub bytes: i64,
}

/// Shoal patch: the sizes of a database's tables.
pub trait RelationStatsSource: Debug + Send + Sync {
    fn relation_stats(&self, schema: &str, table: &str) -> Option<RelationStats>;
}

/// Shoal patch: what `pg_attribute` tells of a column beyond its Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnAttributes {
    pub not_null: bool,
    /// The PostgreSQL type, where the Arrow type alone would name another (varchar, uuid).
    pub type_oid: Option<i32>,
    /// `atttypmod`: -1, or the declared modifier (`varchar(n)`, `numeric(p,s)`).
    pub typmod: i32,
    /// The column's default as SQL text (`pg_attrdef.adbin`, `atthasdef`).
    pub default_expr: Option<String>,
}

/// Shoal patch: the columns of a table as its database declared them, in order.
#[async_trait]
pub trait ColumnAttributesSource: Debug + Send + Sync {
    async fn column_attributes(&self, schema: &str, table: &str) -> Option<Vec<ColumnAttributes>>;
}

#[derive(Debug, Clone)]
pub struct EmptyContextProvider;

impl PgCatalogContextProvider for EmptyContextProvider {}

#[async_trait]
impl<T> PgCatalogContextProvider for Arc<T>
where
    T: PgCatalogContextProvider,
{
    // retrieve all database role names
    async fn roles(&self) -> Vec<String> {
        self.roles().await
    }

    // retrieve database role information
    async fn role(&self, name: &str) -> Option<Role> {
        self.role(name).await
    }

    fn column_attributes_source(&self) -> Option<Arc<dyn ColumnAttributesSource>> {
        T::column_attributes_source(self)
    }

    fn relation_stats_source(&self) -> Option<Arc<dyn RelationStatsSource>> {
        T::relation_stats_source(self)
    }

    fn index_source(&self) -> Option<Arc<dyn IndexSource>> {
        T::index_source(self)
    }

    fn view_source(&self) -> Option<Arc<dyn ViewSource>> {
        T::view_source(self)
    }

    fn system_extension(&self) -> Option<(String, String)> {
        T::system_extension(self)
    }

    fn system_objects(&self) -> (Vec<(String, String)>, Vec<String>) {
        T::system_objects(self)
    }
}

/// User information stored in the authentication system
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub is_superuser: bool,
    pub can_login: bool,
    pub connection_limit: Option<i32>,
}

/// Permission types for granular access control
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Permission {
    Select,
    Insert,
    Update,
    Delete,
    Create,
    Drop,
    Alter,
    Index,
    References,
    Trigger,
    Execute,
    Usage,
    Connect,
    Temporary,
    All,
}

impl Permission {
    pub fn from_string(s: &str) -> Option<Permission> {
        match s.to_uppercase().as_str() {
            "SELECT" => Some(Permission::Select),
            "INSERT" => Some(Permission::Insert),
            "UPDATE" => Some(Permission::Update),
            "DELETE" => Some(Permission::Delete),
            "CREATE" => Some(Permission::Create),
            "DROP" => Some(Permission::Drop),
            "ALTER" => Some(Permission::Alter),
            "INDEX" => Some(Permission::Index),
            "REFERENCES" => Some(Permission::References),
            "TRIGGER" => Some(Permission::Trigger),
            "EXECUTE" => Some(Permission::Execute),
            "USAGE" => Some(Permission::Usage),
            "CONNECT" => Some(Permission::Connect),
            "TEMPORARY" => Some(Permission::Temporary),
            "ALL" => Some(Permission::All),
            _ => None,
        }
    }
}

/// Resource types for access control
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceType {
    Table(String),
    Schema(String),
    Database(String),
    Function(String),
    Sequence(String),
    All,
}

/// Grant entry for specific permissions on resources
#[derive(Debug, Clone)]
pub struct Grant {
    pub permission: Permission,
    pub resource: ResourceType,
    pub granted_by: String,
    pub with_grant_option: bool,
}

/// Role information for access control
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Shoal patch: `pg_roles.oid` (owners' oids point at it: 10 is the bootstrap superuser).
    pub oid: Option<u32>,
    pub is_superuser: bool,
    pub can_login: bool,
    pub can_create_db: bool,
    pub can_create_role: bool,
    pub can_create_user: bool,
    pub can_replication: bool,
    pub grants: Vec<Grant>,
    pub inherited_roles: Vec<String>,
}

/// Role configuration for creation
#[derive(Debug, Clone)]
pub struct RoleConfig {
    pub name: String,
    pub is_superuser: bool,
    pub can_login: bool,
    pub can_create_db: bool,
    pub can_create_role: bool,
    pub can_create_user: bool,
    pub can_replication: bool,
}
