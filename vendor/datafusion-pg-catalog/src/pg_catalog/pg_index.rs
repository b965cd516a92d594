//! Shoal patch: the database's own indexes and key constraints in `pg_index` and
//! `pg_constraint` (after the static rows of PostgreSQL's system catalogs), and the functions
//! that print them, `pg_get_indexdef` and `pg_get_constraintdef`. psql's `\d` and `\di`,
//! SQLAlchemy's `get_pk_constraint`/`get_indexes`/`get_unique_constraints` and pgjdbc's
//! `getPrimaryKeys`/`getIndexInfo` read them. Upstream's tables were static exports with no
//! user rows, and both functions answered nothing.
//!
//! An index's oid, its constraint's oid and its table's oid are the ones `pg_class` hands out
//! (the shared oid cache, keyed by name), so the joins these clients write hold.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int16Array, Int32Array, ListBuilder, PrimitiveBuilder,
    RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use postgres_types::Oid;
use tokio::sync::RwLock;

use super::context::{IndexConstraint, IndexInfo, IndexSource};
use super::{ArrowTable, OidCacheKey, resolve_oid};
use crate::pg_catalog::catalog_info::CatalogInfo;

/// An index with the oids the catalog tables give it and its columns' numbers.
pub(crate) struct ResolvedIndex {
    pub(crate) info: IndexInfo,
    pub(crate) index_oid: Oid,
    pub(crate) constraint_oid: Option<Oid>,
    pub(crate) table_oid: Oid,
    pub(crate) schema_oid: Oid,
    /// `pg_index.indkey`: the keys' column numbers (0 for an expression), then INCLUDE's.
    pub(crate) attnums: Vec<i16>,
}

/// The oid of `key`: the one this scan gave it already, else the cache's, else a new one;
/// recorded in `into` so that the cache keeps it.
pub(crate) fn oid_of(
    key: OidCacheKey,
    cached: &HashMap<OidCacheKey, Oid>,
    into: &mut HashMap<OidCacheKey, Oid>,
    counter: &AtomicU32,
) -> Oid {
    if let Some(oid) = into.get(&key) {
        return *oid;
    }
    let oid = resolve_oid(&key, cached, counter);
    into.insert(key, oid);
    oid
}

/// The source's indexes whose tables the catalog lists, with their oids (resolved through
/// `cached`, recorded into `into`).
pub(crate) async fn resolve_indexes<C: CatalogInfo>(
    catalog_list: &C,
    source: &dyn IndexSource,
    cached: &HashMap<OidCacheKey, Oid>,
    into: &mut HashMap<OidCacheKey, Oid>,
    counter: &AtomicU32,
) -> Result<Vec<ResolvedIndex>> {
    let indexes = source.indexes();
    let mut out = Vec::new();
    if indexes.is_empty() {
        return Ok(out);
    }
    for catalog in catalog_list.catalog_names().await? {
        let Some(schemas) = catalog_list.schema_names(&catalog).await? else {
            continue;
        };
        for schema in schemas {
            let mine: Vec<&IndexInfo> = indexes.iter().filter(|i| i.schema == schema).collect();
            if mine.is_empty() {
                continue;
            }
            let schema_oid = oid_of(
                OidCacheKey::Schema(catalog.clone(), schema.clone()),
                cached,
                into,
                counter,
            );
            for info in mine {
                let Some(table_schema) = catalog_list
                    .table_schema(&catalog, &schema, &info.table)
                    .await?
                else {
                    continue;
                };
                let attnum = |column: &str| {
                    table_schema
                        .fields()
                        .iter()
                        .position(|f| f.name() == column)
                        .map_or(0, |i| i16::try_from(i + 1).unwrap_or(0))
                };
                let attnums = info
                    .keys
                    .iter()
                    .map(|k| k.column.as_deref().map_or(0, attnum))
                    .chain(info.include.iter().map(|c| attnum(c)))
                    .collect();
                let table_oid = oid_of(
                    OidCacheKey::Table(catalog.clone(), schema.clone(), info.table.clone()),
                    cached,
                    into,
                    counter,
                );
                let index_oid = oid_of(
                    OidCacheKey::Index(catalog.clone(), schema.clone(), info.name.clone()),
                    cached,
                    into,
                    counter,
                );
                let constraint_oid = info.constraint.map(|_| {
                    oid_of(
                        OidCacheKey::Constraint(catalog.clone(), schema.clone(), info.name.clone()),
                        cached,
                        into,
                        counter,
                    )
                });
                out.push(ResolvedIndex {
                    info: info.clone(),
                    index_oid,
                    constraint_oid,
                    table_oid,
                    schema_oid,
                    attnums,
                });
            }
        }
    }
    Ok(out)
}

/// `pg_am.oid` of an access method.
pub(crate) fn access_method_oid(method: &str) -> i32 {
    match method {
        "hash" => 405,
        "gist" => 783,
        "gin" => 2742,
        "spgist" => 4000,
        "brin" => 3580,
        _ => 403,
    }
}

fn int16_list(rows: impl Iterator<Item = Vec<i16>>) -> ArrayRef {
    let mut b = ListBuilder::new(PrimitiveBuilder::<Int16Type>::new());
    for row in rows {
        b.values().append_slice(&row);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn int32_list(rows: impl Iterator<Item = Vec<i32>>) -> ArrayRef {
    let mut b = ListBuilder::new(PrimitiveBuilder::<Int32Type>::new());
    for row in rows {
        b.values().append_slice(&row);
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Which of the two catalogs a [`UserRowsTable`] extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyCatalog {
    PgIndex,
    PgConstraint,
}

/// A static catalog table followed by a row for each of the database's indexes
/// (`pg_index`) or key constraints (`pg_constraint`).
#[derive(Debug, Clone)]
pub(crate) struct UserRowsTable<C> {
    which: KeyCatalog,
    schema: SchemaRef,
    system: Arc<ArrowTable>,
    catalog_list: C,
    source: Option<Arc<dyn IndexSource>>,
    oid_counter: Arc<AtomicU32>,
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
}

impl<C: CatalogInfo> UserRowsTable<C> {
    pub(crate) fn new(
        which: KeyCatalog,
        system: Arc<ArrowTable>,
        catalog_list: C,
        source: Option<Arc<dyn IndexSource>>,
        oid_counter: Arc<AtomicU32>,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    ) -> Self {
        Self {
            which,
            schema: system.schema(),
            system,
            catalog_list,
            source,
            oid_counter,
            oid_cache,
        }
    }

    async fn user_rows(this: Self) -> Result<RecordBatch> {
        let schema = Arc::clone(&this.schema);
        let resolved = match &this.source {
            None => Vec::new(),
            Some(source) => {
                let mut cache = this.oid_cache.write().await;
                let cached = cache.clone();
                resolve_indexes(
                    &this.catalog_list,
                    source.as_ref(),
                    &cached,
                    &mut cache,
                    &this.oid_counter,
                )
                .await?
            }
        };
        match this.which {
            KeyCatalog::PgIndex => pg_index_rows(&schema, &resolved),
            KeyCatalog::PgConstraint => {
                let keys: Vec<&ResolvedIndex> = resolved
                    .iter()
                    .filter(|r| r.constraint_oid.is_some())
                    .collect();
                pg_constraint_rows(&schema, &keys)
            }
        }
    }
}

fn pg_index_rows(schema: &SchemaRef, rows: &[ResolvedIndex]) -> Result<RecordBatch> {
    let n = rows.len();
    let bools = |f: &dyn Fn(&ResolvedIndex) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let constant = |b: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![b; n])) };
    let count = |f: &dyn Fn(&ResolvedIndex) -> usize| -> ArrayRef {
        Arc::new(Int16Array::from(
            rows.iter()
                .map(|r| i16::try_from(f(r)).unwrap_or(i16::MAX))
                .collect::<Vec<_>>(),
        ))
    };
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.index_oid as i32).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.table_oid as i32).collect::<Vec<_>>(),
        )),
        count(&|r| r.attnums.len()),
        count(&|r| r.info.keys.len()),
        bools(&|r| r.info.unique),
        bools(&|r| r.info.nulls_not_distinct),
        bools(&|r| r.info.constraint == Some(IndexConstraint::PrimaryKey)),
        constant(false), // indisexclusion
        constant(true),  // indimmediate
        constant(false), // indisclustered
        constant(true),  // indisvalid
        constant(false), // indcheckxmin
        constant(true),  // indisready
        constant(true),  // indislive
        constant(false), // indisreplident
        int16_list(rows.iter().map(|r| r.attnums.clone())),
        // indcollation, indclass: one per key column (INCLUDE columns have none).
        int32_list(rows.iter().map(|r| vec![0; r.info.keys.len()])),
        int32_list(rows.iter().map(|r| vec![0; r.info.keys.len()])),
        // indoption: bit 0 DESC, bit 1 NULLS FIRST, per key.
        int16_list(rows.iter().map(|r| {
            r.info
                .keys
                .iter()
                .map(|k| i16::from(k.descending) | (i16::from(k.nulls_first) << 1))
                .collect()
        })),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| {
                    let exprs: Vec<&str> = r
                        .info
                        .keys
                        .iter()
                        .filter(|k| k.column.is_none())
                        .map(|k| k.text.as_str())
                        .collect();
                    (!exprs.is_empty()).then(|| exprs.join(", "))
                })
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| r.info.predicate.clone())
                .collect::<Vec<_>>(),
        )),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

fn pg_constraint_rows(schema: &SchemaRef, rows: &[&ResolvedIndex]) -> Result<RecordBatch> {
    let n = rows.len();
    let oids = |f: &dyn Fn(&ResolvedIndex) -> Oid| -> ArrayRef {
        Arc::new(Int32Array::from(
            rows.iter().map(|r| f(r) as i32).collect::<Vec<_>>(),
        ))
    };
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let constant = |b: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![b; n])) };
    let zero = || -> ArrayRef { Arc::new(Int32Array::from(vec![0; n])) };
    let mut arrays: Vec<ArrayRef> = vec![
        oids(&|r| r.constraint_oid.unwrap_or(0)),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.info.name.clone()).collect::<Vec<_>>(),
        )),
        oids(&|r| r.schema_oid),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| match r.info.constraint {
                    Some(IndexConstraint::PrimaryKey) => "p",
                    _ => "u",
                })
                .collect::<Vec<_>>(),
        )),
        constant(false), // condeferrable
        constant(false), // condeferred
        constant(true),  // convalidated
        oids(&|r| r.table_oid),
        zero(), // contypid
        oids(&|r| r.index_oid),
        zero(), // conparentid
        zero(), // confrelid
        text(" "),
        text(" "),
        text(" "),
        constant(true), // conislocal
        Arc::new(Int16Array::from(vec![0i16; n])),
        constant(true), // connoinherit
        int16_list(
            rows.iter()
                .map(|r| r.attnums[..r.info.keys.len().min(r.attnums.len())].to_vec()),
        ),
    ];
    // confkey .. conbin: nothing for a key constraint.
    for field in schema.fields().iter().skip(arrays.len()) {
        arrays.push(datafusion::arrow::array::new_null_array(
            field.data_type(),
            n,
        ));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

impl<C: CatalogInfo> PartitionStream for UserRowsTable<C> {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let this = self.clone();
        let system: Vec<Result<RecordBatch>> = this.system.data().iter().cloned().map(Ok).collect();
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&this.schema),
            futures::stream::iter(system).chain(futures::stream::once(async move {
                Self::user_rows(this).await
            })),
        ))
    }
}

use futures::StreamExt as _;

/// The index (or, with `constraint`, the key constraint) an oid names, from the oids the
/// catalog tables handed out.
fn index_by_oid(
    oid_cache: &RwLock<HashMap<OidCacheKey, Oid>>,
    source: &Option<Arc<dyn IndexSource>>,
    constraint: bool,
) -> HashMap<i64, IndexInfo> {
    let Some(source) = source else {
        return HashMap::new();
    };
    // Another statement's catalog scan may hold the cache for a moment: wait for it (bounded)
    // rather than answer NULL.
    let mut guard = oid_cache.try_read();
    for _ in 0..200 {
        if guard.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        guard = oid_cache.try_read();
    }
    let names: HashMap<(String, String), i64> = match guard {
        Ok(cache) => cache
            .iter()
            .filter_map(|(k, oid)| match (k, constraint) {
                (OidCacheKey::Index(_, schema, name), false)
                | (OidCacheKey::Constraint(_, schema, name), true) => {
                    Some(((schema.clone(), name.clone()), i64::from(*oid)))
                }
                _ => None,
            })
            .collect(),
        Err(_) => HashMap::new(),
    };
    if names.is_empty() {
        return HashMap::new();
    }
    source
        .indexes()
        .into_iter()
        .filter_map(|i| {
            let oid = *names.get(&(i.schema.clone(), i.name.clone()))?;
            Some((oid, i))
        })
        .collect()
}

fn oids_of(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(datafusion::arrow::compute::cast(&array, &DataType::Int64)?)
}

/// A column list as an index or constraint definition prints it.
fn quoted(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `pg_get_indexdef(index, 0, true)`: the table unqualified (its schema is on the search
/// path) and the predicate without its parentheses, as psql's `\d` shows an index.
fn pretty_definition(index: &IndexInfo) -> String {
    let mut def = index
        .definition
        .replacen(&format!(" ON {}.", index.schema), " ON ", 1);
    if let Some(p) = &index.predicate {
        let wrapped = format!(" WHERE ({p})");
        if def.ends_with(&wrapped) {
            def.truncate(def.len() - wrapped.len());
            def.push_str(&format!(" WHERE {p}"));
        }
    }
    def
}

/// `pg_get_constraintdef`'s text of a key constraint: `PRIMARY KEY (id)`, `UNIQUE (a, b)`.
pub fn constraint_definition(info: &IndexInfo) -> String {
    let kind = match info.constraint {
        Some(IndexConstraint::PrimaryKey) => "PRIMARY KEY",
        _ if info.nulls_not_distinct => "UNIQUE NULLS NOT DISTINCT",
        _ => "UNIQUE",
    };
    let keys: Vec<String> = info.keys.iter().map(|k| k.text.clone()).collect();
    let mut out = format!("{kind} ({})", keys.join(", "));
    if !info.include.is_empty() {
        let include: Vec<String> = info.include.iter().map(|c| quoted(c)).collect();
        out.push_str(&format!(" INCLUDE ({})", include.join(", ")));
    }
    out
}

/// `pg_get_indexdef(index [, column, pretty])`: the index's `CREATE INDEX` statement, or (for
/// column n > 0) its n-th column or expression; NULL for an oid that names no index, as in
/// PostgreSQL.
pub(crate) fn create_pg_get_indexdef(
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    source: Option<Arc<dyn IndexSource>>,
) -> ScalarUDF {
    #[derive(Debug)]
    struct GetIndexDef {
        signature: Signature,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
        source: Option<Arc<dyn IndexSource>>,
    }
    impl PartialEq for GetIndexDef {
        fn eq(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.oid_cache, &other.oid_cache)
        }
    }
    impl Eq for GetIndexDef {}
    impl std::hash::Hash for GetIndexDef {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            "pg_get_indexdef".hash(state);
        }
    }
    impl ScalarUDFImpl for GetIndexDef {
        fn name(&self) -> &str {
            "pg_get_indexdef"
        }
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
            Ok(DataType::Utf8)
        }
        fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            let rows = args.number_rows;
            let oids = oids_of(&args.args[0], rows)?;
            let oids = oids.as_primitive::<Int64Type>();
            let columns = match args.args.get(1) {
                Some(c) => Some(oids_of(c, rows)?),
                None => None,
            };
            let columns = columns.as_ref().map(|c| c.as_primitive::<Int64Type>());
            let pretty = match args.args.get(2) {
                Some(p) => Some(datafusion::arrow::compute::cast(
                    &p.to_array(rows)?,
                    &DataType::Boolean,
                )?),
                None => None,
            };
            let pretty = pretty.as_ref().map(|p| p.as_boolean());
            let indexes = index_by_oid(&self.oid_cache, &self.source, false);
            let out: StringArray = (0..rows)
                .map(|i| {
                    if oids.is_null(i) {
                        return None;
                    }
                    let index = indexes.get(&oids.value(i))?;
                    let column = match columns {
                        Some(c) if c.is_null(i) => return None,
                        Some(c) => c.value(i),
                        None => 0,
                    };
                    if column == 0 {
                        let pretty = pretty.is_some_and(|p| !p.is_null(i) && p.value(i));
                        return Some(if pretty {
                            pretty_definition(index)
                        } else {
                            index.definition.clone()
                        });
                    }
                    let at = usize::try_from(column - 1).ok()?;
                    match index.keys.get(at) {
                        Some(k) => Some(k.text.clone()),
                        None => index.include.get(at - index.keys.len()).map(|c| quoted(c)),
                    }
                    .or(Some(String::new()))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }
    }
    ScalarUDF::new_from_impl(GetIndexDef {
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(3)],
            Volatility::Stable,
        ),
        oid_cache,
        source,
    })
}

/// `pg_get_constraintdef(constraint [, pretty])`: a key constraint's definition; the empty
/// text for other oids (the system catalogs' constraints), as upstream answered.
pub(crate) fn create_pg_get_constraintdef(
    oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
    source: Option<Arc<dyn IndexSource>>,
) -> ScalarUDF {
    #[derive(Debug)]
    struct GetConstraintDef {
        signature: Signature,
        oid_cache: Arc<RwLock<HashMap<OidCacheKey, Oid>>>,
        source: Option<Arc<dyn IndexSource>>,
    }
    impl PartialEq for GetConstraintDef {
        fn eq(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.oid_cache, &other.oid_cache)
        }
    }
    impl Eq for GetConstraintDef {}
    impl std::hash::Hash for GetConstraintDef {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            "pg_get_constraintdef".hash(state);
        }
    }
    impl ScalarUDFImpl for GetConstraintDef {
        fn name(&self) -> &str {
            "pg_get_constraintdef"
        }
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
            Ok(DataType::Utf8)
        }
        fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
            let rows = args.number_rows;
            let oids = oids_of(&args.args[0], rows)?;
            let oids = oids.as_primitive::<Int64Type>();
            let constraints = index_by_oid(&self.oid_cache, &self.source, true);
            let out: StringArray = (0..rows)
                .map(|i| {
                    if oids.is_null(i) {
                        return None;
                    }
                    Some(
                        constraints
                            .get(&oids.value(i))
                            .map(constraint_definition)
                            .unwrap_or_default(),
                    )
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }
    }
    ScalarUDF::new_from_impl(GetConstraintDef {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int32]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
        oid_cache,
        source,
    })
}
