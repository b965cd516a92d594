//! Column defaults: what an INSERT that leaves a column out writes there. DataFusion's
//! planner asks the table for each omitted column's default expression
//! (`TableProvider::get_column_default`); Shoal answers with the stored SQL expression, or,
//! for a serial or identity column, `shoal_next_serial(table_id, column)`, which takes the
//! next values of the column's sequence from the catalog, one call per batch of rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast as sql;
use shoal_catalog::{ColumnDefault, SqlType, TableInfo};
use shoal_sql_functions::Cluster;

use crate::frontend::errors::PgError;

const NEXT_SERIAL: &str = "shoal_next_serial";

/// `shoal_next_serial(table_id, stored_column_name)`: as many consecutive values of the
/// column's sequence as the batch has rows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NextSerial {
    cluster: ClusterHandle,
    signature: Signature,
}

/// A catalog error inside a function, which the wire layer maps to its SQLSTATE.
fn catalog_error(e: shoal_catalog::CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The cluster a function reads sequences from; functions over the same cluster are equal.
struct ClusterHandle(Arc<Cluster>);

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cluster")
    }
}

impl PartialEq for ClusterHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ClusterHandle {}

impl std::hash::Hash for ClusterHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

impl NextSerial {
    pub fn udf(cluster: Arc<Cluster>) -> ScalarUDF {
        ScalarUDF::new_from_impl(NextSerial {
            cluster: ClusterHandle(cluster),
            signature: Signature::exact(
                vec![DataType::Int64, DataType::Utf8],
                Volatility::Volatile,
            ),
        })
    }
}

impl ScalarUDFImpl for NextSerial {
    fn name(&self) -> &str {
        NEXT_SERIAL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(table_id)))),
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(column)))),
        ) = (args.args.first(), args.args.get(1))
        else {
            return Err(DataFusionError::Execution(format!(
                "{NEXT_SERIAL} takes a table id and a column name as constants"
            )));
        };
        let n = args.number_rows as i64;
        if n == 0 {
            return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(
                Vec::<i64>::new(),
            ))));
        }
        let (seq_id, first) = self
            .cluster
            .0
            .catalog()
            .next_serial_values(*table_id, column, n)
            .map_err(catalog_error)?;
        // As in PostgreSQL, the serial default's `nextval` sets the session's `currval`.
        if let Some(session) = crate::frontend::session::current() {
            session.sequence_values().record(seq_id, first + n - 1);
        }
        Ok(ColumnarValue::Array(Arc::new(
            Int64Array::from_iter_values(first..first + n),
        )))
    }
}

/// The default expression of each column of `info` that has one, by column name.
pub fn default_exprs(state: &SessionState, info: &TableInfo) -> Result<HashMap<String, Expr>> {
    let mut out = HashMap::new();
    for c in &info.columns {
        let expr = match &c.default {
            None => continue,
            Some(ColumnDefault::Expr(sql)) => state.create_logical_expr(sql, &DFSchema::empty())?,
            Some(ColumnDefault::Serial { .. }) => {
                let udf = state.scalar_functions().get(NEXT_SERIAL).ok_or_else(|| {
                    DataFusionError::Internal(format!("{NEXT_SERIAL} is not registered"))
                })?;
                Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::clone(udf),
                    vec![
                        Expr::Literal(ScalarValue::Int64(Some(info.table_id)), None),
                        Expr::Literal(ScalarValue::Utf8(Some(c.stored_name.clone())), None),
                    ],
                ))
            }
        };
        out.insert(c.name.clone(), expr);
    }
    Ok(out)
}

/// [`default_exprs`] ready to compute (COPY fills the columns it leaves out with them).
pub fn physical_defaults(
    state: &SessionState,
    info: &TableInfo,
) -> Result<HashMap<String, Arc<dyn datafusion::physical_expr::PhysicalExpr>>> {
    default_exprs(state, info)?
        .into_iter()
        .map(|(name, e)| Ok((name, state.create_physical_expr(e, &DFSchema::empty())?)))
        .collect()
}

/// Refuses a `DEFAULT` expression that cannot be a value of the column's type on its own:
/// it names a column, does not plan, or its value (computed once now unless volatile, as
/// PostgreSQL folds a constant default when the table is created) does not cast to the type.
pub async fn check_default(ctx: &SessionContext, sql: &str, ty: &SqlType) -> Result<(), PgError> {
    let to_pg = |e: DataFusionError| {
        let err = crate::frontend::errors::from_datafusion(&e);
        if err.code == "42703" {
            PgError::new("0A000", "cannot use column reference in DEFAULT expression")
        } else {
            err
        }
    };
    // DataFusion casts to varchar without a length only; the length is checked on write.
    let target = match ty {
        SqlType::Varchar { .. } | SqlType::Char { .. } => "text".to_string(),
        other => other.to_string(),
    };
    let df = ctx
        .sql(&format!("SELECT CAST(({sql}) AS {target})"))
        .await
        .map_err(to_pg)?;
    // A volatile default (`nextval(...)`, `random()`) is only planned: computing it would
    // spend a sequence value.
    if !df
        .logical_plan()
        .expressions()
        .iter()
        .any(|e| e.is_volatile())
    {
        df.collect().await.map_err(to_pg)?;
    }
    Ok(())
}

/// Whether an INSERT names defaults the planner cannot fill by itself: `DEFAULT VALUES`, or
/// `DEFAULT` as a value in its VALUES list.
pub fn names_defaults(insert: &sql::Insert) -> bool {
    match &insert.source {
        None => true,
        Some(q) => match q.body.as_ref() {
            sql::SetExpr::Values(v) => v.rows.iter().any(|r| r.content.iter().any(is_default)),
            _ => false,
        },
    }
}

fn is_default(e: &sql::Expr) -> bool {
    matches!(e, sql::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// The INSERT with `DEFAULT VALUES`, and each `DEFAULT` in its VALUES, replaced by the
/// column's default expression (NULL for a column without one), as PostgreSQL reads them.
pub fn fill_defaults(insert: &mut sql::Insert, info: &TableInfo) -> Result<(), PgError> {
    if insert.source.is_none() {
        // DEFAULT VALUES: every column takes its default.
        insert.columns.clear();
        let row = info
            .columns
            .iter()
            .map(|_| sql::Expr::Identifier(sql::Ident::new("DEFAULT")))
            .collect();
        let values = sql::Values {
            explicit_row: false,
            value_keyword: false,
            rows: vec![sql::Parens {
                opening_token: sql::helpers::attached_token::AttachedToken::empty(),
                content: row,
                closing_token: sql::helpers::attached_token::AttachedToken::empty(),
            }],
        };
        insert.source = Some(Box::new(sql::Query {
            with: None,
            body: Box::new(sql::SetExpr::Values(values)),
            order_by: None,
            limit_clause: None,
            fetch: None,
            locks: vec![],
            for_clause: None,
            settings: None,
            format_clause: None,
            pipe_operators: vec![],
        }));
    }
    let targets: Vec<String> = if insert.columns.is_empty() {
        info.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        insert
            .columns
            .iter()
            .map(crate::frontend::hook::object_name)
            .collect()
    };
    let Some(source) = insert.source.as_mut() else {
        return Ok(());
    };
    let sql::SetExpr::Values(values) = source.body.as_mut() else {
        return Ok(());
    };
    for row in &mut values.rows {
        for (i, value) in row.content.iter_mut().enumerate() {
            if !is_default(value) {
                continue;
            }
            let Some(column) = targets
                .get(i)
                .and_then(|name| info.columns.iter().find(|c| &c.name == name))
            else {
                return Err(PgError::new(
                    "42601",
                    "INSERT has more expressions than target columns",
                ));
            };
            *value = match &column.default {
                None => sql::Expr::Value(sql::Value::Null.into()),
                Some(ColumnDefault::Expr(text)) => {
                    sqlparser::Parser::new(&sqlparser::PostgreSqlDialect {})
                        .try_with_sql(text)
                        .and_then(|mut p| p.parse_expr())
                        .map_err(|e| {
                            PgError::new(
                                "XX000",
                                format!(
                                    "the stored default of \"{}\" does not parse: {e}",
                                    column.name
                                ),
                            )
                        })?
                }
                Some(ColumnDefault::Serial { .. }) => crate::query::sql_call(
                    NEXT_SERIAL,
                    vec![
                        sql::Expr::Value(
                            sql::Value::Number(info.table_id.to_string(), false).into(),
                        ),
                        sql::Expr::Value(
                            sql::Value::SingleQuotedString(column.stored_name.clone()).into(),
                        ),
                    ],
                ),
            };
        }
    }
    Ok(())
}

mod sqlparser {
    pub use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    pub use datafusion::sql::sqlparser::parser::Parser;
}

/// The sequence functions PostgreSQL clients call on a serial column's sequence:
/// `nextval(name)`, `setval(name, value [, is_called])` (Django's sequence reset, pg_dump's
/// restore, a reset after loading explicit keys) and `pg_get_serial_sequence(table,
/// column)`; `currval(name)` and `lastval()`, the session's own last `nextval`.
pub fn sequence_udfs(cluster: Arc<Cluster>) -> Vec<ScalarUDF> {
    use datafusion::logical_expr::create_udf;

    let nextval = ScalarUDF::new_from_impl(Nextval {
        cluster: ClusterHandle(Arc::clone(&cluster)),
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
    });
    let setval = ScalarUDF::new_from_impl(Setval {
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Exact(vec![
                    DataType::Utf8,
                    DataType::Int64,
                ]),
                datafusion::logical_expr::TypeSignature::Exact(vec![
                    DataType::Utf8,
                    DataType::Int64,
                    DataType::Boolean,
                ]),
            ],
            Volatility::Volatile,
        ),
        cluster: ClusterHandle(Arc::clone(&cluster)),
    });
    let c = Arc::clone(&cluster);
    let serial_sequence = create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (tables, columns) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
            let mut out: Vec<Option<String>> = Vec::with_capacity(tables.len());
            for i in 0..tables.len() {
                if tables.is_null(i) || columns.is_null(i) {
                    out.push(None);
                    continue;
                }
                out.push(serial_sequence_of(&c, tables.value(i), columns.value(i))?);
            }
            Ok(ColumnarValue::Array(Arc::new(
                arrow::array::StringArray::from(out),
            )))
        }),
    );
    let c = Arc::clone(&cluster);
    let currval = create_udf(
        "currval",
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Volatile,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = arrays[0].as_string::<i32>();
            let mut out = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                if names.is_null(i) {
                    out.push(None);
                    continue;
                }
                let name = names.value(i);
                let seq = c.catalog().sequence_by_name(name).map_err(catalog_error)?;
                let value = crate::frontend::session::current()
                    .and_then(|s| s.sequence_values().current(seq))
                    .ok_or_else(|| {
                        not_yet_defined(format!(
                            "currval of sequence \"{}\" is not yet defined in this session",
                            name.strip_prefix("public.").unwrap_or(name)
                        ))
                    })?;
                out.push(Some(value));
            }
            Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
        }),
    );
    let lastval = ScalarUDF::new_from_impl(Lastval {
        signature: Signature::exact(vec![], Volatility::Volatile),
    });
    vec![nextval, setval, serial_sequence, currval, lastval]
}

/// 55000, PostgreSQL's error for `currval`/`lastval` before any `nextval`.
fn not_yet_defined(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(PgError::new("55000", message).into_pgwire()))
}

/// `lastval()`: the value the session's last `nextval` returned, of any sequence.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Lastval {
    signature: Signature,
}

impl ScalarUDFImpl for Lastval {
    fn name(&self) -> &str {
        "lastval"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value = crate::frontend::session::current()
            .and_then(|s| s.sequence_values().last())
            .ok_or_else(|| not_yet_defined("lastval is not yet defined in this session".into()))?;
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(vec![
            value;
            args.number_rows
        ]))))
    }
}

/// `nextval(name)`: the next value of a serial column's sequence, one per row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nextval {
    cluster: ClusterHandle,
    signature: Signature,
}

impl ScalarUDFImpl for Nextval {
    fn name(&self) -> &str {
        "nextval"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let names = args.args[0].to_array(n)?;
        let names = names.as_string::<i32>();
        let catalog = self.cluster.0.catalog();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if names.is_null(i) {
                out.push(None);
                continue;
            }
            let seq = catalog
                .sequence_by_name(names.value(i))
                .map_err(catalog_error)?;
            let value = catalog.sequence_values(seq, 1).map_err(catalog_error)?;
            if let Some(session) = crate::frontend::session::current() {
                session.sequence_values().record(seq, value);
            }
            out.push(Some(value));
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// `setval(name, value [, is_called])`: one function of two signatures.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Setval {
    signature: Signature,
    cluster: ClusterHandle,
}

impl ScalarUDFImpl for Setval {
    fn name(&self) -> &str {
        "setval"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let catalog = self.cluster.0.catalog();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = arrays[0].as_string::<i32>();
        let values = arrow::compute::cast(&arrays[1], &DataType::Int64)?;
        let values = values.as_primitive::<arrow::datatypes::Int64Type>();
        let called = arrays.get(2).map(|a| a.as_boolean().clone());
        let mut out = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            if names.is_null(i) || values.is_null(i) {
                out.push(None);
                continue;
            }
            let is_called = called.as_ref().is_none_or(|c| c.is_null(i) || c.value(i));
            let seq = catalog
                .sequence_by_name(names.value(i))
                .map_err(catalog_error)?;
            catalog
                .set_sequence_value(seq, values.value(i), is_called)
                .map_err(catalog_error)?;
            // As in PostgreSQL, setval (when is_called) sets currval and lastval.
            if let (true, Some(session)) = (is_called, crate::frontend::session::current()) {
                session.sequence_values().record(seq, values.value(i));
            }
            out.push(Some(values.value(i)));
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// `pg_get_serial_sequence`: `public.<sequence>` of a serial or identity column, NULL for
/// another column (42P01/42703 when the table or column does not exist, as in PostgreSQL).
fn serial_sequence_of(cluster: &Cluster, table: &str, column: &str) -> Result<Option<String>> {
    // The table is read as an identifier: unquoted names fold to lower case.
    let table = table.strip_prefix("public.").unwrap_or(table);
    let table = match table.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => table.to_lowercase(),
    };
    let found = cluster
        .catalog()
        .table_by_name(&table)
        .map_err(catalog_error)?;
    if found.is_none() && (table.starts_with("pg_") || table.starts_with("pg_catalog.")) {
        // A system catalog: its columns have no sequences.
        return Ok(None);
    }
    let info = found.ok_or_else(|| {
        catalog_error(shoal_catalog::CatalogError::TableNotFound {
            name: table.clone(),
        })
    })?;
    let c = info
        .columns
        .iter()
        .find(|c| c.name == column)
        .ok_or_else(|| {
            catalog_error(shoal_catalog::CatalogError::ColumnNotFound {
                table: table.clone(),
                column: column.to_string(),
            })
        })?;
    Ok(match &c.default {
        Some(ColumnDefault::Serial { sequence }) => Some(format!("public.{sequence}")),
        _ => None,
    })
}
