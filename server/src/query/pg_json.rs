//! `uuid`, `json` and `jsonb` in queries, as PostgreSQL has them. Shoal holds their values as
//! text (see `shoal_sql_functions::types::json`); this module gives queries the rest:
//!
//! - [`PgTypePlanner`]: the SQL planner accepts the three type names (a cast plans as a cast
//!   to text; in a SELECT, [`rewrite_casts`] has already turned it into an input function).
//! - [`JsonOperatorPlanner`]: `->`, `->>`, `#>`, `#>>`, `@>`, `<@` and `?` on text operands,
//!   planned as PostgreSQL's functions (`jsonb_object_field`, ...). PostgreSQL defines them
//!   for json/jsonb only, so a text operand can only be meant as jsonb. `||` and `-` are
//!   jsonb's where an operand is marked jsonb.
//! - [`udfs`]: those functions, `jsonb_typeof`, `jsonb_array_length`,
//!   `jsonb_extract_path[_text]`, and the input functions `shoal_uuid_in`, `shoal_json_in`,
//!   `shoal_jsonb_in`, which check a value as PostgreSQL's input functions do (22P02).
//! - [`builder_udfs`]: `to_jsonb`, `jsonb_build_object`, `jsonb_build_array` and their json
//!   twins; with [`rewrite_aggregates`], `jsonb_agg` and `json_agg`.
//!
//! A function returning jsonb, json or uuid marks its result field with arrow-pg's
//! `pg.text_type`, so the client is told the PostgreSQL type (psycopg gives a dict for a
//! jsonb result, a `UUID` for a uuid).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, DFSchema, DataFusionError, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr, TypePlanner};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self as sql, BinaryOperator};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use shoal_sql_functions::types::json::{self, Json, JsonError};
use shoal_sql_functions::types::uuid;

use crate::frontend::errors::PgError;

/// The PostgreSQL type a function's text result is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ResultType {
    Text,
    Jsonb,
    Json,
    Uuid,
    Boolean,
    Integer,
}

/// What a function computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum JsonFunction {
    /// `j -> 'key'`, `j -> 2`, `j ->> ...`: one step; `text` gives `->>`'s text.
    Field {
        text: bool,
    },
    /// `j #> '{a,2}'`, `jsonb_extract_path(j, 'a', '2')`; `text` as above.
    Path {
        text: bool,
        variadic: bool,
    },
    /// `jsonb || jsonb`.
    Concat,
    /// `jsonb - 'key'`, `jsonb - 2`.
    Delete,
    Contains,
    Contained,
    Exists,
    /// `?|`: any of the keys.
    ExistsAny,
    /// `?&`: all of the keys.
    ExistsAll,
    /// `jsonb_set(target, path, value [, create_if_missing])`.
    Set,
    StripNulls,
    Pretty,
    TypeOf,
    ArrayLength,
    JsonbIn,
    JsonIn,
    UuidIn,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonUdf {
    name: &'static str,
    function: JsonFunction,
    signature: Signature,
}

impl JsonFunction {
    fn result(self) -> ResultType {
        match self {
            JsonFunction::Field { text: false } | JsonFunction::Path { text: false, .. } => {
                ResultType::Jsonb
            }
            JsonFunction::JsonbIn
            | JsonFunction::Concat
            | JsonFunction::Delete
            | JsonFunction::Set
            | JsonFunction::StripNulls => ResultType::Jsonb,
            JsonFunction::JsonIn => ResultType::Json,
            JsonFunction::UuidIn => ResultType::Uuid,
            JsonFunction::Contains
            | JsonFunction::Contained
            | JsonFunction::Exists
            | JsonFunction::ExistsAny
            | JsonFunction::ExistsAll => ResultType::Boolean,
            JsonFunction::ArrayLength => ResultType::Integer,
            _ => ResultType::Text,
        }
    }
}

fn result_field(name: &str, t: ResultType) -> Field {
    let data_type = match t {
        ResultType::Boolean => DataType::Boolean,
        ResultType::Integer => DataType::Int32,
        _ => DataType::Utf8,
    };
    let field = Field::new(name, data_type, true);
    let pg_type = match t {
        ResultType::Jsonb => "jsonb",
        ResultType::Json => "json",
        ResultType::Uuid => "uuid",
        _ => return field,
    };
    field.with_metadata(HashMap::from([(
        arrow_pg::datatypes::PG_TEXT_TYPE_KEY.to_string(),
        pg_type.to_string(),
    )]))
}

fn json_error(e: JsonError) -> DataFusionError {
    DataFusionError::External(Box::new(
        PgError::new(e.sqlstate, e.message)
            .with_detail(Some(e.detail))
            .into_pgwire(),
    ))
}

fn pg_error(code: &'static str, message: String) -> DataFusionError {
    DataFusionError::External(Box::new(PgError::new(code, message).into_pgwire()))
}

fn parse(text: &str) -> Result<Json> {
    json::parse(text).map_err(json_error)
}

/// A path or key list given as PostgreSQL's text[] literal (`'{a,2}'`, `'{"a b",c}'`), as
/// DataFusion hands it over; a text[] value reaches here in the same form ([`array_text`]).
fn path_literal(text: &str) -> Result<Vec<String>> {
    // An unquoted NULL element stays the text `NULL`, a key like any other.
    shoal_sql_functions::types::array::elements(text)
        .map(|items| {
            items
                .into_iter()
                .map(|e| e.unwrap_or_else(|| "NULL".to_string()))
                .collect()
        })
        .map_err(|e| pg_error(e.sqlstate, e.message))
}

/// A text[] value in PostgreSQL's literal form, every element quoted.
fn array_text(items: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Some(s) => {
                out.push('"');
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            None => out.push_str("NULL"),
        }
    }
    out.push('}');
    out
}

impl JsonUdf {
    fn udf(name: &'static str, function: JsonFunction) -> ScalarUDF {
        let signature = match function {
            JsonFunction::Path { variadic: true, .. } | JsonFunction::Set => {
                Signature::variadic_any(Volatility::Immutable)
            }
            JsonFunction::TypeOf
            | JsonFunction::StripNulls
            | JsonFunction::Pretty
            | JsonFunction::ArrayLength
            | JsonFunction::JsonbIn
            | JsonFunction::JsonIn
            | JsonFunction::UuidIn => Signature::any(1, Volatility::Immutable),
            _ => Signature::any(2, Volatility::Immutable),
        };
        ScalarUDF::new_from_impl(JsonUdf {
            name,
            function,
            signature,
        })
    }

    /// One row: the arguments as text (`None` for NULL); the result as text, or NULL.
    fn row(&self, args: &[Option<String>], index: Option<i64>) -> Result<Option<Value>> {
        let Some(first) = args.first().cloned().flatten() else {
            return Ok(None);
        };
        let value = |j: Option<&Json>, text: bool| -> Option<Value> {
            let j = j?;
            if text {
                j.to_text().map(Value::Text)
            } else {
                Some(Value::Text(j.to_jsonb_text()))
            }
        };
        Ok(match self.function {
            JsonFunction::JsonbIn => {
                Some(Value::Text(json::jsonb_text(&first).map_err(json_error)?))
            }
            JsonFunction::JsonIn => {
                json::validate(&first).map_err(json_error)?;
                Some(Value::Text(first))
            }
            JsonFunction::UuidIn => {
                Some(Value::Text(uuid::canonical(&first).ok_or_else(|| {
                    pg_error("22P02", uuid::invalid_message(&first))
                })?))
            }
            JsonFunction::TypeOf => Some(Value::Text(parse(&first)?.type_name().to_string())),
            JsonFunction::ArrayLength => match parse(&first)? {
                Json::Array(items) => Some(Value::Integer(items.len() as i32)),
                Json::Object(_) => {
                    return Err(pg_error(
                        "22023",
                        "cannot get array length of a non-array".into(),
                    ))
                }
                _ => {
                    return Err(pg_error(
                        "22023",
                        "cannot get array length of a scalar".into(),
                    ))
                }
            },
            JsonFunction::Field { text } => {
                let j = parse(&first)?;
                match (index, args.get(1).cloned().flatten()) {
                    (Some(i), _) => value(j.get_index(i), text),
                    (None, Some(key)) => value(j.get_key(&key), text),
                    (None, None) => None,
                }
            }
            JsonFunction::Path { text, variadic } => {
                let j = parse(&first)?;
                let path: Vec<String> = if variadic {
                    let steps: Option<Vec<String>> = args[1..].iter().cloned().collect();
                    match steps {
                        Some(s) => s,
                        None => return Ok(None),
                    }
                } else {
                    match args.get(1).cloned().flatten() {
                        Some(p) => path_literal(&p)?,
                        None => return Ok(None),
                    }
                };
                value(j.get_path(&path), text)
            }
            JsonFunction::Concat => {
                let Some(second) = args.get(1).cloned().flatten() else {
                    return Ok(None);
                };
                let joined = parse(&first)?.concat(parse(&second)?);
                Some(Value::Text(joined.to_jsonb_text()))
            }
            JsonFunction::Delete => {
                let j = parse(&first)?;
                let left = match (index, args.get(1).cloned().flatten()) {
                    (Some(i), _) => j.delete_index(i),
                    (None, Some(key)) => j.delete_key(&key),
                    (None, None) => return Ok(None),
                };
                let left = left.map_err(|m| pg_error("22023", m.to_string()))?;
                Some(Value::Text(left.to_jsonb_text()))
            }
            JsonFunction::Contains | JsonFunction::Contained => {
                let Some(second) = args.get(1).cloned().flatten() else {
                    return Ok(None);
                };
                let (a, b) = (parse(&first)?, parse(&second)?);
                let (outer, inner) = if self.function == JsonFunction::Contains {
                    (a, b)
                } else {
                    (b, a)
                };
                Some(Value::Boolean(outer.contains(&inner)))
            }
            JsonFunction::Set => {
                if !(3..=4).contains(&args.len()) {
                    return Err(pg_error(
                        "42883",
                        "function jsonb_set takes 3 or 4 arguments".into(),
                    ));
                }
                // Strict, as PostgreSQL's: a NULL argument gives NULL.
                let (Some(path), Some(new)) = (args[1].clone(), args[2].clone()) else {
                    return Ok(None);
                };
                let create = match args.get(3) {
                    None => true,
                    Some(None) => return Ok(None),
                    Some(Some(flag)) => matches!(flag.as_str(), "true" | "t" | "1"),
                };
                let set = parse(&first)?
                    .set_path(&path_literal(&path)?, parse(&new)?, create)
                    .map_err(|m| pg_error("22023", m.to_string()))?;
                Some(Value::Text(set.to_jsonb_text()))
            }
            JsonFunction::StripNulls => {
                Some(Value::Text(parse(&first)?.strip_nulls().to_jsonb_text()))
            }
            JsonFunction::Pretty => Some(Value::Text(parse(&first)?.pretty())),
            JsonFunction::ExistsAny | JsonFunction::ExistsAll => {
                let Some(keys) = args.get(1).cloned().flatten() else {
                    return Ok(None);
                };
                let j = parse(&first)?;
                let keys = path_literal(&keys)?;
                Some(Value::Boolean(
                    if self.function == JsonFunction::ExistsAny {
                        keys.iter().any(|k| j.has_key(k))
                    } else {
                        keys.iter().all(|k| j.has_key(k))
                    },
                ))
            }
            JsonFunction::Exists => {
                let Some(key) = args.get(1).cloned().flatten() else {
                    return Ok(None);
                };
                Some(Value::Boolean(parse(&first)?.has_key(&key)))
            }
        })
    }
}

enum Value {
    Text(String),
    Boolean(bool),
    Integer(i32),
}

/// An argument column as text, or as integers for `->`'s index.
enum Arg {
    Text(StringArray),
    Index(arrow::array::Int64Array),
}

/// The elements of row `row` of a list column (List, LargeList or FixedSizeList).
fn list_items(list: &ArrayRef, row: usize) -> Result<ArrayRef> {
    let one = list.slice(row, 1);
    Ok(match one.data_type() {
        DataType::List(_) => one.as_list::<i32>().value(0),
        DataType::LargeList(_) => one.as_list::<i64>().value(0),
        DataType::FixedSizeList(..) => one.as_fixed_size_list().value(0),
        other => return exec_err!("a list was expected, not {other}"),
    })
}

/// Each row of a text[] column in PostgreSQL's literal form.
fn list_texts(a: &ArrayRef) -> Result<StringArray> {
    let mut out = Vec::with_capacity(a.len());
    for row in 0..a.len() {
        if a.is_null(row) {
            out.push(None);
            continue;
        }
        let items = arrow::compute::cast(&list_items(a, row)?, &DataType::Utf8)?;
        let items = items.as_string::<i32>();
        let values: Vec<Option<String>> = (0..items.len())
            .map(|i| (!items.is_null(i)).then(|| items.value(i).to_string()))
            .collect();
        out.push(Some(array_text(&values)));
    }
    Ok(StringArray::from(out))
}

impl ScalarUDFImpl for JsonUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(result_field("", self.function.result()).data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(result_field(self.name, self.function.result())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut columns = Vec::with_capacity(arrays.len());
        for (i, a) in arrays.iter().enumerate() {
            let integer_key = i == 1
                && matches!(
                    self.function,
                    JsonFunction::Field { .. } | JsonFunction::Delete
                )
                && a.data_type().is_integer();
            let list = matches!(
                a.data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
            );
            columns.push(if list {
                Arg::Text(list_texts(a)?)
            } else if integer_key {
                Arg::Index(
                    arrow::compute::cast(a, &DataType::Int64)?
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .clone(),
                )
            } else {
                Arg::Text(
                    arrow::compute::cast(a, &DataType::Utf8)?
                        .as_string::<i32>()
                        .clone(),
                )
            });
        }
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut texts = Vec::with_capacity(columns.len());
            let mut index = None;
            let mut null_index = false;
            for c in &columns {
                match c {
                    Arg::Text(s) => texts.push((!s.is_null(row)).then(|| s.value(row).to_string())),
                    Arg::Index(n) => {
                        texts.push(None);
                        if n.is_null(row) {
                            null_index = true;
                        } else {
                            index = Some(n.value(row));
                        }
                    }
                }
            }
            out.push(if null_index {
                None
            } else {
                self.row(&texts, index)?
            });
        }
        let array: ArrayRef = match self.function.result() {
            ResultType::Boolean => Arc::new(
                out.into_iter()
                    .map(|v| match v {
                        Some(Value::Boolean(b)) => Some(b),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            ),
            ResultType::Integer => Arc::new(
                out.into_iter()
                    .map(|v| match v {
                        Some(Value::Integer(n)) => Some(n),
                        _ => None,
                    })
                    .collect::<Int32Array>(),
            ),
            _ => Arc::new(
                out.into_iter()
                    .map(|v| match v {
                        Some(Value::Text(t)) => Some(t),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ),
        };
        Ok(ColumnarValue::Array(array))
    }
}

/// The functions of this module, to register in the session.
pub fn udfs() -> Vec<ScalarUDF> {
    use JsonFunction::*;
    [
        ("jsonb_object_field", Field { text: false }),
        ("jsonb_object_field_text", Field { text: true }),
        ("jsonb_array_element", Field { text: false }),
        ("jsonb_array_element_text", Field { text: true }),
        (
            "jsonb_extract_path",
            Path {
                text: false,
                variadic: true,
            },
        ),
        (
            "jsonb_extract_path_text",
            Path {
                text: true,
                variadic: true,
            },
        ),
        (
            "shoal_jsonb_path",
            Path {
                text: false,
                variadic: false,
            },
        ),
        (
            "shoal_jsonb_path_text",
            Path {
                text: true,
                variadic: false,
            },
        ),
        ("jsonb_concat", Concat),
        ("jsonb_delete", Delete),
        ("jsonb_contains", Contains),
        ("jsonb_contained", Contained),
        ("jsonb_exists", Exists),
        ("jsonb_exists_any", ExistsAny),
        ("jsonb_exists_all", ExistsAll),
        ("jsonb_set", Set),
        ("jsonb_strip_nulls", StripNulls),
        ("jsonb_pretty", Pretty),
        ("jsonb_typeof", TypeOf),
        ("json_typeof", TypeOf),
        ("jsonb_array_length", ArrayLength),
        ("json_array_length", ArrayLength),
        ("shoal_jsonb_in", JsonbIn),
        ("shoal_json_in", JsonIn),
        ("shoal_uuid_in", UuidIn),
    ]
    .into_iter()
    .map(|(name, f)| JsonUdf::udf(name, f))
    .collect()
}

/// Whether `e` is marked as jsonb (a jsonb column or function result).
fn is_jsonb(e: &Expr, schema: &DFSchema) -> Result<bool> {
    let (_, field) = e.to_field(schema)?;
    Ok(field
        .metadata()
        .get(arrow_pg::datatypes::PG_TEXT_TYPE_KEY)
        .is_some_and(|t| t == "jsonb"))
}

/// Plans the json operators on text operands (see the module comment).
#[derive(Debug)]
pub struct JsonOperatorPlanner;

impl ExprPlanner for JsonOperatorPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let is_text = |e: &Expr| -> Result<bool> {
            Ok(matches!(
                e.get_type(schema)?,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            ))
        };
        let name = match &expr.op {
            BinaryOperator::Arrow | BinaryOperator::LongArrow => {
                let text = matches!(expr.op, BinaryOperator::LongArrow);
                match (text, expr.right.get_type(schema)?.is_integer()) {
                    (false, false) => "jsonb_object_field",
                    (true, false) => "jsonb_object_field_text",
                    (false, true) => "jsonb_array_element",
                    (true, true) => "jsonb_array_element_text",
                }
            }
            // jsonb's own `||` and `-`: only where an operand is known to be jsonb (a jsonb
            // column, `::jsonb`, a jsonb result), as text has both operators too.
            BinaryOperator::StringConcat
                if is_jsonb(&expr.left, schema)? || is_jsonb(&expr.right, schema)? =>
            {
                "jsonb_concat"
            }
            BinaryOperator::Minus if is_jsonb(&expr.left, schema)? => "jsonb_delete",
            BinaryOperator::HashArrow => "shoal_jsonb_path",
            BinaryOperator::HashLongArrow => "shoal_jsonb_path_text",
            BinaryOperator::AtArrow if is_text(&expr.left)? && is_text(&expr.right)? => {
                "jsonb_contains"
            }
            BinaryOperator::ArrowAt if is_text(&expr.left)? && is_text(&expr.right)? => {
                "jsonb_contained"
            }
            BinaryOperator::Question if is_text(&expr.left)? => "jsonb_exists",
            BinaryOperator::QuestionPipe if is_text(&expr.left)? => "jsonb_exists_any",
            BinaryOperator::QuestionAnd if is_text(&expr.left)? => "jsonb_exists_all",
            _ => return Ok(PlannerResult::Original(expr)),
        };
        if !is_text(&expr.left)? {
            return plan_err!(
                "operator does not exist: {} {} {}",
                expr.left.get_type(schema)?,
                expr.op,
                expr.right.get_type(schema)?
            );
        }
        let udf = udfs()
            .into_iter()
            .find(|u| u.name() == name)
            .ok_or_else(|| DataFusionError::Plan(format!("function {name} is missing")))?;
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(
                Arc::new(udf),
                vec![expr.left, expr.right],
            ),
        )))
    }
}

/// Accepts `uuid`, `json` and `jsonb` as types (held as text); every other name goes to
/// datafusion-pg-catalog's planner. The field carries no metadata: a cast's target field
/// with metadata makes DataFusion's logical and physical schemas disagree (see
/// `oid_type_planner.rs`).
#[derive(Debug)]
pub struct PgTypePlanner;

fn text_type_name(t: &sql::DataType) -> Option<&'static str> {
    match t {
        sql::DataType::Uuid => Some("uuid"),
        sql::DataType::JSON => Some("json"),
        sql::DataType::JSONB => Some("jsonb"),
        _ => None,
    }
}

impl TypePlanner for PgTypePlanner {
    fn plan_type_field(&self, sql_type: &sql::DataType) -> Result<Option<FieldRef>> {
        if text_type_name(sql_type).is_some() {
            return Ok(Some(Arc::new(Field::new("", DataType::Utf8, true))));
        }
        PgOidTypePlanner.plan_type_field(sql_type)
    }
}

/// Turns the casts of `q` to uuid, json and jsonb into their input functions, so that a
/// SELECT checks the value and tells the client its type; true when there were any.
pub fn rewrite_casts(q: &mut sql::Query) -> bool {
    let mut changed = false;
    let _ = sql::visit_expressions_mut(q, |e| {
        if let sql::Expr::Cast {
            kind: sql::CastKind::Cast | sql::CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } = e
        {
            if let Some(name) = text_type_name(data_type) {
                let text = sql::Expr::Cast {
                    kind: sql::CastKind::Cast,
                    expr: expr.clone(),
                    data_type: sql::DataType::Text,
                    array: false,
                    format: None,
                };
                *e = super::sql_call(&format!("shoal_{name}_in"), vec![text]);
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// Which of the pair a builder makes: jsonb (canonical) or json (PostgreSQL's json text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Flavor {
    Json,
    Jsonb,
}

/// What a builder builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Build {
    /// `to_jsonb(value)`.
    Value,
    /// `jsonb_build_object(k1, v1, ...)`.
    Object,
    /// `jsonb_build_array(v1, ...)`.
    Array,
    /// The end of `jsonb_agg(x)`: an array of jsonb texts (see [`rewrite_aggregates`]).
    FromArray,
    /// The end of `jsonb_object_agg(k, v)`: an array of `[k, v]` jsonb texts.
    FromPairs,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuilder {
    name: &'static str,
    flavor: Flavor,
    build: Build,
    signature: Signature,
}

/// One SQL value as JSON, as PostgreSQL's `to_jsonb` makes it: numbers, booleans and NULL as
/// themselves, jsonb and json values embedded, timestamps in ISO 8601 with a `T`, anything
/// else as its text.
fn value_json(array: &ArrayRef, field: &Field, row: usize) -> Result<Json> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    // A NULL literal is a NullArray, whose rows have no validity bits.
    if array.data_type() == &DataType::Null || array.is_null(row) {
        return Ok(Json::Null);
    }
    let marked = field
        .metadata()
        .get(arrow_pg::datatypes::PG_TEXT_TYPE_KEY)
        .map(String::as_str);
    let text = || -> Result<String> {
        let options = FormatOptions::default().with_display_error(true);
        Ok(ArrayFormatter::try_new(array.as_ref(), &options)?
            .value(row)
            .to_string())
    };
    Ok(match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        t if t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => {
            Json::Number(text()?)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let v = arrow::compute::cast(&array.slice(row, 1), &DataType::Float64)?;
            let v = v.as_primitive::<arrow::datatypes::Float64Type>().value(0);
            if v.is_finite() {
                Json::Number(v.to_string())
            } else if v.is_nan() {
                Json::String("NaN".into())
            } else if v > 0.0 {
                Json::String("Infinity".into())
            } else {
                Json::String("-Infinity".into())
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = arrow::compute::cast(&array.slice(row, 1), &DataType::Utf8)?;
            let s = s.as_string::<i32>().value(0).to_string();
            match marked {
                Some("jsonb") | Some("json") => parse(&s)?,
                _ => Json::String(s),
            }
        }
        DataType::Timestamp(_, tz) => {
            // ISO 8601 as PostgreSQL's JSON output: `2024-01-02T03:04:05.5+00:00`.
            let t = text()?;
            let t = t.trim_end_matches('Z');
            let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
            let frac = frac.trim_end_matches('0');
            let mut out = whole.to_string();
            if !frac.is_empty() {
                out.push('.');
                out.push_str(frac);
            }
            if tz.is_some() {
                out.push_str("+00:00");
            }
            Json::String(out)
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let items = list_items(array, row)?;
            let item_field = match array.data_type() {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    f.as_ref().clone()
                }
                _ => Field::new("item", items.data_type().clone(), true),
            };
            Json::Array(
                (0..items.len())
                    .map(|i| value_json(&items, &item_field, i))
                    .collect::<Result<_>>()?,
            )
        }
        _ => Json::String(text()?),
    })
}

/// `json` text as PostgreSQL's json builders write it: `{"a" : 1, "b" : [1, 2]}` at the top,
/// members and elements as jsonb prints them.
fn json_text(v: &Json, top: bool) -> String {
    match v {
        Json::Object(members) if top => {
            let mut out = String::from("{");
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json::write_string(&mut out, k);
                out.push_str(" : ");
                out.push_str(&json_text(v, false));
            }
            out.push('}');
            out
        }
        other => other.to_jsonb_text(),
    }
}

impl JsonBuilder {
    fn udf(name: &'static str, flavor: Flavor, build: Build) -> ScalarUDF {
        let signature = match build {
            Build::Value | Build::FromArray | Build::FromPairs => {
                Signature::any(1, Volatility::Stable)
            }
            Build::Object | Build::Array => Signature::variadic_any(Volatility::Stable),
        };
        ScalarUDF::new_from_impl(JsonBuilder {
            name,
            flavor,
            build,
            signature,
        })
    }
}

impl ScalarUDFImpl for JsonBuilder {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let t = match self.flavor {
            Flavor::Json => ResultType::Json,
            Flavor::Jsonb => ResultType::Jsonb,
        };
        Ok(Arc::new(result_field(self.name, t)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if self.build == Build::Object && arrays.len() % 2 != 0 {
            return Err(DataFusionError::External(Box::new(
                PgError::new("22023", "argument list must have even number of elements")
                    .with_hint(Some(format!(
                        "The arguments of {}() must consist of alternating keys and values.",
                        self.name
                    )))
                    .into_pgwire(),
            )));
        }
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let value = |i: usize| value_json(&arrays[i], &args.arg_fields[i], row);
            let is_null =
                |i: usize| arrays[i].data_type() == &DataType::Null || arrays[i].is_null(row);
            let built = match self.build {
                // Strict, as PostgreSQL's: NULL in, NULL out.
                Build::Value if is_null(0) => {
                    out.push(None);
                    continue;
                }
                Build::Value => value(0)?,
                Build::Array => Json::Array((0..arrays.len()).map(value).collect::<Result<_>>()?),
                Build::Object => {
                    let mut members = Vec::with_capacity(arrays.len() / 2);
                    for pair in 0..arrays.len() / 2 {
                        let key = match value(2 * pair)? {
                            Json::Null => {
                                return Err(pg_error(
                                    "22023",
                                    format!("argument {}: key must not be null", 2 * pair + 1),
                                ))
                            }
                            Json::String(s) | Json::Number(s) => s,
                            other => other.to_jsonb_text(),
                        };
                        members.push((key, value(2 * pair + 1)?));
                    }
                    Json::Object(members)
                }
                Build::FromPairs => {
                    if arrays[0].is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let pairs =
                        arrow::compute::cast(&list_items(&arrays[0], row)?, &DataType::Utf8)?;
                    let pairs = pairs.as_string::<i32>();
                    let mut members = Vec::with_capacity(pairs.len());
                    for i in 0..pairs.len() {
                        let pair = parse(pairs.value(i))?;
                        let Json::Array(mut kv) = pair else {
                            return exec_err!("{} takes [key, value] pairs", self.name);
                        };
                        let value = kv.pop().unwrap_or(Json::Null);
                        let key = match kv.pop() {
                            Some(Json::String(k) | Json::Number(k)) => k,
                            Some(Json::Null) | None => {
                                return Err(pg_error("22023", "field name must not be null".into()))
                            }
                            Some(other) => other.to_jsonb_text(),
                        };
                        members.push((key, value));
                    }
                    Json::Object(members)
                }
                // The aggregated values, each already JSON text (`to_jsonb` of it, NULL for
                // NULL).
                Build::FromArray => {
                    if arrays[0].is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let items =
                        arrow::compute::cast(&list_items(&arrays[0], row)?, &DataType::Utf8)?;
                    let items = items.as_string::<i32>();
                    Json::Array(
                        (0..items.len())
                            .map(|i| match items.is_null(i) {
                                true => Ok(Json::Null),
                                false => parse(items.value(i)),
                            })
                            .collect::<Result<_>>()?,
                    )
                }
            };
            out.push(Some(match (self.flavor, &built) {
                (Flavor::Jsonb, _) => built.into_jsonb().to_jsonb_text(),
                // json_object_agg pads its braces: `{ "a" : 1, "b" : 2 }`.
                (Flavor::Json, Json::Object(members)) if self.build == Build::FromPairs => {
                    let inner = json_text(&Json::Object(members.clone()), true);
                    format!("{{ {} }}", &inner[1..inner.len() - 1])
                }
                (Flavor::Json, _) => json_text(&built, true),
            }));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// The json builders, to register in the session.
pub fn builder_udfs() -> Vec<ScalarUDF> {
    vec![
        JsonBuilder::udf("to_jsonb", Flavor::Jsonb, Build::Value),
        JsonBuilder::udf("to_json", Flavor::Json, Build::Value),
        JsonBuilder::udf("jsonb_build_object", Flavor::Jsonb, Build::Object),
        JsonBuilder::udf("json_build_object", Flavor::Json, Build::Object),
        JsonBuilder::udf("jsonb_build_array", Flavor::Jsonb, Build::Array),
        JsonBuilder::udf("json_build_array", Flavor::Json, Build::Array),
        JsonBuilder::udf("shoal_jsonb_from_array", Flavor::Jsonb, Build::FromArray),
        JsonBuilder::udf("shoal_json_from_array", Flavor::Json, Build::FromArray),
        JsonBuilder::udf("shoal_jsonb_from_pairs", Flavor::Jsonb, Build::FromPairs),
        JsonBuilder::udf("shoal_json_from_pairs", Flavor::Json, Build::FromPairs),
    ]
}

/// `jsonb_agg(x ...)` and `json_agg(x ...)` become `shoal_jsonb_from_array(array_agg(x ...))`
/// (`jsonb_object_agg(k, v)`: `shoal_jsonb_from_pairs(array_agg(jsonb_build_array(k, v)))`):
/// DataFusion's `array_agg` keeps the call's ORDER BY, DISTINCT and FILTER, and an empty
/// group gives NULL, as PostgreSQL's aggregates do. True when there were any.
pub fn rewrite_aggregates(q: &mut sql::Query) -> bool {
    let mut changed = false;
    let _ = sql::visit_expressions_mut(q, |e| {
        if let sql::Expr::Function(f) = e {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.trim_start_matches("pg_catalog.");
            let (wrapper, pairs) = match name {
                "jsonb_agg" => ("shoal_jsonb_from_array", false),
                "json_agg" => ("shoal_json_from_array", false),
                "jsonb_object_agg" => ("shoal_jsonb_from_pairs", true),
                "json_object_agg" => ("shoal_json_from_pairs", true),
                _ => return ControlFlow::<()>::Continue(()),
            };
            if f.over.is_some() {
                return ControlFlow::Continue(());
            }
            let mut inner = f.clone();
            inner.name = sql::ObjectName::from(vec![sql::Ident::new("array_agg")]);
            // Each value as JSON first: array_agg's list would lose a jsonb column's mark. A
            // key and its value travel together, as one `[key, value]` array.
            if let sql::FunctionArguments::List(list) = &mut inner.args {
                let values: Vec<sql::Expr> = list
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                let one = match (pairs, values.as_slice()) {
                    (false, [v]) => super::sql_call("to_jsonb", vec![v.clone()]),
                    (true, [k, v]) => {
                        super::sql_call("jsonb_build_array", vec![k.clone(), v.clone()])
                    }
                    _ => return ControlFlow::Continue(()),
                };
                list.args = vec![sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(one))];
            }
            *e = super::sql_call(wrapper, vec![sql::Expr::Function(inner)]);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

#[cfg(test)]
mod tests;
