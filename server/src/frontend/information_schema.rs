//! PostgreSQL's `information_schema`, read from what the session sees: `schemata`, `tables`,
//! `columns`, `views`, and the constraint views (`table_constraints`, `key_column_usage`,
//! `constraint_column_usage`, `referential_constraints`, `check_constraints`), with
//! PostgreSQL 15's columns, names and spellings. Grafana's table and column lists, Metabase's
//! sync, dbt and DBeaver read them.
//!
//! DataFusion's own `information_schema` answered with Arrow type names (`Int64`, `Utf8`),
//! 0-based ordinals, every column nullable and no constraint views; it is turned off and this
//! one registered in its place. A table's declared type (`varchar(10)`, `numeric(10,2)`),
//! NOT NULL and default come from Shoal's catalog; other relations (views, `pg_catalog`,
//! `shoal.*`) are described from their Arrow schemas.
//!
//! The constraint views list the PRIMARY KEY and UNIQUE constraints tables declare (recorded,
//! not enforced); Shoal has no foreign keys or CHECK constraints, and NOT NULL, which it
//! enforces, shows in `columns.is_nullable` (PostgreSQL also lists it as a CHECK constraint
//! named `<namespace>_<table>_<n>_not_null`; Shoal does not).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{IndexConstraint, IndexInfo};
use shoal_catalog::ColumnDefault;
use shoal_sql_functions::Cluster;

/// The views this module answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Schemata,
    Tables,
    Columns,
    Views,
    TableConstraints,
    KeyColumnUsage,
    ConstraintColumnUsage,
    ReferentialConstraints,
    CheckConstraints,
}

impl View {
    const ALL: [View; 9] = [
        View::Schemata,
        View::Tables,
        View::Columns,
        View::Views,
        View::TableConstraints,
        View::KeyColumnUsage,
        View::ConstraintColumnUsage,
        View::ReferentialConstraints,
        View::CheckConstraints,
    ];

    fn name(self) -> &'static str {
        match self {
            View::Schemata => "schemata",
            View::Tables => "tables",
            View::Columns => "columns",
            View::Views => "views",
            View::TableConstraints => "table_constraints",
            View::KeyColumnUsage => "key_column_usage",
            View::ConstraintColumnUsage => "constraint_column_usage",
            View::ReferentialConstraints => "referential_constraints",
            View::CheckConstraints => "check_constraints",
        }
    }

    /// PostgreSQL 15's columns, in its order (`cardinal_number` columns are integers, the
    /// rest text).
    fn columns(self) -> &'static [&'static str] {
        match self {
            View::Schemata => &[
                "catalog_name",
                "schema_name",
                "schema_owner",
                "default_character_set_catalog",
                "default_character_set_schema",
                "default_character_set_name",
                "sql_path",
            ],
            View::Tables => &[
                "table_catalog",
                "table_schema",
                "table_name",
                "table_type",
                "self_referencing_column_name",
                "reference_generation",
                "user_defined_type_catalog",
                "user_defined_type_schema",
                "user_defined_type_name",
                "is_insertable_into",
                "is_typed",
                "commit_action",
            ],
            View::Columns => &COLUMNS,
            View::Views => &[
                "table_catalog",
                "table_schema",
                "table_name",
                "view_definition",
                "check_option",
                "is_updatable",
                "is_insertable_into",
                "is_trigger_updatable",
                "is_trigger_deletable",
                "is_trigger_insertable_into",
            ],
            View::TableConstraints => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "table_catalog",
                "table_schema",
                "table_name",
                "constraint_type",
                "is_deferrable",
                "initially_deferred",
                "enforced",
                "nulls_distinct",
            ],
            View::KeyColumnUsage => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
                "ordinal_position",
                "position_in_unique_constraint",
            ],
            View::ConstraintColumnUsage => &[
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
            ],
            View::ReferentialConstraints => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "unique_constraint_catalog",
                "unique_constraint_schema",
                "unique_constraint_name",
                "match_option",
                "update_rule",
                "delete_rule",
            ],
            View::CheckConstraints => &[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "check_clause",
            ],
        }
    }

    fn schema(self) -> SchemaRef {
        // The cardinal_number columns (PostgreSQL's identity_start..minimum are text).
        const NUMBERS: [&str; 10] = [
            "ordinal_position",
            "character_maximum_length",
            "character_octet_length",
            "numeric_precision",
            "numeric_precision_radix",
            "numeric_scale",
            "datetime_precision",
            "interval_precision",
            "maximum_cardinality",
            "position_in_unique_constraint",
        ];
        Arc::new(Schema::new(
            self.columns()
                .iter()
                .map(|c| {
                    let ty = if NUMBERS.contains(c) {
                        DataType::Int32
                    } else {
                        DataType::Utf8
                    };
                    Field::new(*c, ty, true)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

const COLUMNS: [&str; 44] = [
    "table_catalog",
    "table_schema",
    "table_name",
    "column_name",
    "ordinal_position",
    "column_default",
    "is_nullable",
    "data_type",
    "character_maximum_length",
    "character_octet_length",
    "numeric_precision",
    "numeric_precision_radix",
    "numeric_scale",
    "datetime_precision",
    "interval_type",
    "interval_precision",
    "character_set_catalog",
    "character_set_schema",
    "character_set_name",
    "collation_catalog",
    "collation_schema",
    "collation_name",
    "domain_catalog",
    "domain_schema",
    "domain_name",
    "udt_catalog",
    "udt_schema",
    "udt_name",
    "scope_catalog",
    "scope_schema",
    "scope_name",
    "maximum_cardinality",
    "dtd_identifier",
    "is_self_referencing",
    "is_identity",
    "identity_generation",
    "identity_start",
    "identity_increment",
    "identity_maximum",
    "identity_minimum",
    "identity_cycle",
    "is_generated",
    "generation_expression",
    "is_updatable",
];

/// The `information_schema` schema.
pub fn schema(cluster: &Arc<Cluster>, database: &str) -> Arc<dyn SchemaProvider> {
    let schema = MemorySchemaProvider::new();
    for view in View::ALL {
        // Registering into a fresh in-memory schema cannot collide.
        let _ = schema.register_table(
            view.name().to_string(),
            Arc::new(InformationSchemaView {
                view,
                schema: view.schema(),
                cluster: Arc::clone(cluster),
                database: database.to_string(),
            }),
        );
    }
    Arc::new(schema)
}

struct InformationSchemaView {
    view: View,
    schema: SchemaRef,
    cluster: Arc<Cluster>,
    database: String,
}

impl std::fmt::Debug for InformationSchemaView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "information_schema.{}", self.view.name())
    }
}

#[async_trait]
impl TableProvider for InformationSchemaView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("not a SessionState".into()))?;
        let rows = self.rows(state).await?;
        let batch = to_batch(&self.schema, rows)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}

/// One cell of a row.
#[derive(Clone, Debug)]
enum Cell {
    Text(Option<String>),
    Int(Option<i32>),
}

/// The first columns of `table_constraints` and `key_column_usage`: the constraint's
/// catalog, schema and name, then its table's.
fn constraint_and_table(db: &str, k: &IndexInfo) -> Vec<Cell> {
    vec![
        text(db),
        text(&k.schema),
        text(&k.name),
        text(db),
        text(&k.schema),
        text(&k.table),
    ]
}

fn text(v: impl Into<String>) -> Cell {
    Cell::Text(Some(v.into()))
}

fn null() -> Cell {
    Cell::Text(None)
}

fn int(v: Option<i32>) -> Cell {
    Cell::Int(v)
}

fn yes_no(b: bool) -> Cell {
    text(if b { "YES" } else { "NO" })
}

fn to_batch(schema: &SchemaRef, rows: Vec<Vec<Cell>>) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let cells = rows.iter().map(|r| r.get(i).cloned().unwrap_or(null()));
        arrays.push(match f.data_type() {
            DataType::Int32 => Arc::new(
                cells
                    .map(|c| match c {
                        Cell::Int(v) => v,
                        Cell::Text(_) => None,
                    })
                    .collect::<Int32Array>(),
            ),
            _ => Arc::new(
                cells
                    .map(|c| match c {
                        Cell::Text(v) => v,
                        Cell::Int(v) => v.map(|n| n.to_string()),
                    })
                    .collect::<StringArray>(),
            ),
        });
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

/// A relation the session sees, with what `tables`, `columns` and `views` tell of it.
struct Relation {
    schema: String,
    name: String,
    is_view: bool,
    columns: Vec<ColumnInfo>,
    /// A Shoal view's query.
    definition: Option<String>,
}

struct ColumnInfo {
    name: String,
    not_null: bool,
    default: Option<String>,
    ty: PgType,
}

/// Schemas in the order PostgreSQL lists them.
const SCHEMA_ORDER: [&str; 4] = ["pg_catalog", "public", "information_schema", "shoal"];

impl InformationSchemaView {
    async fn rows(&self, state: &SessionState) -> Result<Vec<Vec<Cell>>> {
        let db = self.database.as_str();
        Ok(match self.view {
            View::Schemata => {
                let names = self.schema_names(state);
                names
                    .into_iter()
                    .map(|s| {
                        let owner = if s == "public" {
                            "pg_database_owner"
                        } else {
                            "postgres"
                        };
                        vec![
                            text(db),
                            text(s),
                            text(owner),
                            null(),
                            null(),
                            null(),
                            null(),
                        ]
                    })
                    .collect()
            }
            View::Tables => self
                .relations(state, false)
                .await?
                .into_iter()
                .map(|r| {
                    vec![
                        text(db),
                        text(&r.schema),
                        text(&r.name),
                        text(if r.is_view { "VIEW" } else { "BASE TABLE" }),
                        null(),
                        null(),
                        null(),
                        null(),
                        null(),
                        yes_no(!r.is_view),
                        text("NO"),
                        null(),
                    ]
                })
                .collect(),
            View::Views => self
                .relations(state, false)
                .await?
                .into_iter()
                .filter(|r| r.is_view)
                .map(|r| {
                    vec![
                        text(db),
                        text(&r.schema),
                        text(&r.name),
                        Cell::Text(r.definition.clone()),
                        text("NONE"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                    ]
                })
                .collect(),
            View::Columns => {
                let mut rows = Vec::new();
                for r in self.relations(state, true).await? {
                    for (i, c) in r.columns.iter().enumerate() {
                        rows.push(column_row(db, &r, i, c));
                    }
                }
                rows
            }
            View::TableConstraints => self
                .key_constraints()
                .into_iter()
                .map(|k| {
                    let primary = k.constraint == Some(IndexConstraint::PrimaryKey);
                    let mut row = constraint_and_table(db, &k);
                    row.extend([
                        text(if primary { "PRIMARY KEY" } else { "UNIQUE" }),
                        text("NO"),
                        text("NO"),
                        text("YES"),
                        if primary {
                            null()
                        } else {
                            yes_no(!k.nulls_not_distinct)
                        },
                    ]);
                    row
                })
                .collect(),
            View::KeyColumnUsage => self.key_column_rows(|k, position, column| {
                let mut row = constraint_and_table(db, k);
                row.extend([text(column), int(i32::try_from(position).ok()), int(None)]);
                row
            }),
            View::ConstraintColumnUsage => self.key_column_rows(|k, _, column| {
                vec![
                    text(db),
                    text(&k.schema),
                    text(&k.table),
                    text(column),
                    text(db),
                    text(&k.schema),
                    text(&k.name),
                ]
            }),
            View::ReferentialConstraints | View::CheckConstraints => Vec::new(),
        })
    }

    /// A row per column of each key constraint, from the constraint, the column's 1-based
    /// position in the key and its name.
    fn key_column_rows(
        &self,
        row: impl Fn(&IndexInfo, usize, &str) -> Vec<Cell>,
    ) -> Vec<Vec<Cell>> {
        let mut rows = Vec::new();
        for k in self.key_constraints() {
            let columns = k.keys.iter().filter_map(|c| c.column.as_deref());
            for (i, column) in columns.enumerate() {
                rows.push(row(&k, i + 1, column));
            }
        }
        rows
    }

    /// The PRIMARY KEY and UNIQUE constraints the session sees.
    fn key_constraints(&self) -> Vec<IndexInfo> {
        crate::frontend::pg_catalog_context::visible_indexes(&self.cluster)
            .into_iter()
            .filter(|i| i.constraint.is_some())
            .collect()
    }

    fn schema_names(&self, state: &SessionState) -> Vec<String> {
        let mut names = state
            .catalog_list()
            .catalog(&self.database)
            .map(|c| c.schema_names())
            .unwrap_or_default();
        names.sort_by_key(|s| {
            SCHEMA_ORDER
                .iter()
                .position(|o| o == s)
                .unwrap_or(SCHEMA_ORDER.len())
        });
        names
    }

    /// Every relation of every schema; with `columns`, each one's columns.
    async fn relations(&self, state: &SessionState, columns: bool) -> Result<Vec<Relation>> {
        let Some(catalog) = state.catalog_list().catalog(&self.database) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for schema_name in self.schema_names(state) {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            names.dedup();
            for name in names {
                // A Shoal table: its declared columns.
                if schema_name == "public" {
                    let info = self
                        .cluster
                        .catalog()
                        .table_by_name(&name)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    if let Some(info) = info {
                        out.push(Relation {
                            schema: schema_name.clone(),
                            name,
                            is_view: false,
                            columns: info
                                .columns
                                .iter()
                                .map(|c| {
                                    let (not_null, oid, typmod) =
                                        shoal_sql_functions::types::pg_attributes(c);
                                    let arrow = shoal_sql_functions::types::arrow_type(&c.sql_type);
                                    ColumnInfo {
                                        name: c.name.clone(),
                                        not_null,
                                        default: c.default.as_ref().map(ColumnDefault::pg_expr),
                                        ty: PgType::of(oid, &arrow, typmod),
                                    }
                                })
                                .collect(),
                            definition: None,
                        });
                        continue;
                    }
                }
                let definition = if schema_name == "public" {
                    self.cluster
                        .catalog()
                        .view_query(&name)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?
                } else {
                    None
                };
                // Reading a view's columns plans it; a view that no longer plans (a
                // table it reads was dropped) is listed without columns.
                let provider = if columns || definition.is_none() {
                    schema.table(&name).await.ok().flatten()
                } else {
                    None
                };
                let is_view = definition.is_some()
                    || provider
                        .as_ref()
                        .is_some_and(|p| p.table_type() == TableType::View);
                let columns = provider
                    .map(|p| {
                        p.schema()
                            .fields()
                            .iter()
                            .map(|f| ColumnInfo {
                                name: f.name().clone(),
                                not_null: !f.is_nullable(),
                                default: None,
                                ty: PgType::of(None, f.data_type(), -1),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Relation {
                    schema: schema_name.clone(),
                    name,
                    is_view,
                    columns,
                    definition,
                });
            }
        }
        Ok(out)
    }
}

fn column_row(db: &str, r: &Relation, i: usize, c: &ColumnInfo) -> Vec<Cell> {
    let t = &c.ty;
    let position = i32::try_from(i + 1).unwrap_or(i32::MAX);
    vec![
        text(db),
        text(&r.schema),
        text(&r.name),
        text(&c.name),
        int(Some(position)),
        Cell::Text(c.default.clone()),
        yes_no(!c.not_null),
        text(t.data_type),
        int(t.char_max_len),
        int(t.char_octet_len),
        int(t.numeric_precision),
        int(t.numeric_radix),
        int(t.numeric_scale),
        int(t.datetime_precision),
        null(),
        null(),
        null(),
        null(),
        null(),
        null(),
        null(),
        null(),
        null(),
        null(),
        null(),
        text(db),
        text("pg_catalog"),
        text(t.udt_name),
        null(),
        null(),
        null(),
        null(),
        text(position.to_string()),
        text("NO"),
        text("NO"),
        null(),
        null(),
        null(),
        null(),
        null(),
        text("NO"),
        text("NEVER"),
        null(),
        yes_no(!r.is_view),
    ]
}

/// What `information_schema.columns` says of a column's type.
struct PgType {
    data_type: &'static str,
    udt_name: &'static str,
    char_max_len: Option<i32>,
    char_octet_len: Option<i32>,
    numeric_precision: Option<i32>,
    numeric_radix: Option<i32>,
    numeric_scale: Option<i32>,
    datetime_precision: Option<i32>,
}

/// The octet length PostgreSQL reports for text of unbounded length (1 GB).
const UNBOUNDED_OCTETS: i32 = 1_073_741_824;

impl PgType {
    fn named(data_type: &'static str, udt_name: &'static str) -> PgType {
        PgType {
            data_type,
            udt_name,
            char_max_len: None,
            char_octet_len: None,
            numeric_precision: None,
            numeric_radix: None,
            numeric_scale: None,
            datetime_precision: None,
        }
    }

    fn binary_number(
        data_type: &'static str,
        udt_name: &'static str,
        bits: i32,
        int: bool,
    ) -> Self {
        PgType {
            numeric_precision: Some(bits),
            numeric_radix: Some(2),
            numeric_scale: int.then_some(0),
            ..PgType::named(data_type, udt_name)
        }
    }

    fn datetime(data_type: &'static str, udt_name: &'static str, precision: i32) -> Self {
        PgType {
            datetime_precision: Some(precision),
            ..PgType::named(data_type, udt_name)
        }
    }

    /// The type of a column: `oid` where the catalog declares one beyond the Arrow type
    /// (varchar, char, uuid, jsonb), `typmod` as `pg_attribute.atttypmod`.
    fn of(oid: Option<i32>, arrow: &DataType, typmod: i32) -> PgType {
        match oid {
            Some(1043) => {
                let n = (typmod >= 4).then(|| typmod - 4);
                return PgType {
                    char_max_len: n,
                    char_octet_len: Some(n.map_or(UNBOUNDED_OCTETS, |n| n.saturating_mul(4))),
                    ..PgType::named("character varying", "varchar")
                };
            }
            Some(1042) => {
                let n = (typmod >= 4).then(|| typmod - 4);
                return PgType {
                    char_max_len: n,
                    char_octet_len: Some(n.map_or(UNBOUNDED_OCTETS, |n| n.saturating_mul(4))),
                    ..PgType::named("character", "bpchar")
                };
            }
            Some(2950) => return PgType::named("uuid", "uuid"),
            Some(3802) => return PgType::named("jsonb", "jsonb"),
            Some(114) => return PgType::named("json", "json"),
            _ => {}
        }
        match arrow {
            DataType::Boolean => PgType::named("boolean", "bool"),
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => {
                PgType::binary_number("smallint", "int2", 16, true)
            }
            DataType::Int32 | DataType::UInt16 => {
                PgType::binary_number("integer", "int4", 32, true)
            }
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => {
                PgType::binary_number("bigint", "int8", 64, true)
            }
            DataType::Float16 | DataType::Float32 => {
                PgType::binary_number("real", "float4", 24, false)
            }
            DataType::Float64 => PgType::binary_number("double precision", "float8", 53, false),
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => PgType {
                numeric_precision: Some(i32::from(*p)),
                numeric_radix: Some(10),
                numeric_scale: Some(i32::from(*s)),
                ..PgType::named("numeric", "numeric")
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => PgType {
                char_octet_len: Some(UNBOUNDED_OCTETS),
                ..PgType::named("text", "text")
            },
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                PgType::named("bytea", "bytea")
            }
            DataType::Date32 | DataType::Date64 => PgType::datetime("date", "date", 0),
            DataType::Timestamp(_, None) => {
                PgType::datetime("timestamp without time zone", "timestamp", 6)
            }
            DataType::Timestamp(_, Some(_)) => {
                PgType::datetime("timestamp with time zone", "timestamptz", 6)
            }
            DataType::Time32(_) | DataType::Time64(_) => {
                PgType::datetime("time without time zone", "time", 6)
            }
            DataType::Interval(_) | DataType::Duration(_) => {
                PgType::datetime("interval", "interval", 6)
            }
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                let element = PgType::of(None, f.data_type(), -1);
                PgType::named("ARRAY", array_udt(element.udt_name))
            }
            _ => PgType::named("text", "text"),
        }
    }
}

/// An array type's `udt_name`: its element type's with a leading underscore.
fn array_udt(element: &str) -> &'static str {
    match element {
        "bool" => "_bool",
        "int2" => "_int2",
        "int4" => "_int4",
        "int8" => "_int8",
        "float4" => "_float4",
        "float8" => "_float8",
        "numeric" => "_numeric",
        "bytea" => "_bytea",
        "date" => "_date",
        "timestamp" => "_timestamp",
        "timestamptz" => "_timestamptz",
        "varchar" => "_varchar",
        _ => "_text",
    }
}
