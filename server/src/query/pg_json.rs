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
//!
//! A function returning jsonb, json or uuid marks its result field with arrow-pg's
//! `pg.text_type`, so the client is told the PostgreSQL type (psycopg gives a dict for a
//! jsonb result, a `UUID` for a uuid).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{plan_err, DFSchema, DataFusionError, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr, TypePlanner};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self as sql, BinaryOperator};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use shoal_sql_functions::types::json::{self, Json, JsonError};
use shoal_sql_functions::types::uuid;

use crate::errors::PgError;

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
            JsonFunction::JsonbIn | JsonFunction::Concat | JsonFunction::Delete => {
                ResultType::Jsonb
            }
            JsonFunction::JsonIn => ResultType::Json,
            JsonFunction::UuidIn => ResultType::Uuid,
            JsonFunction::Contains | JsonFunction::Contained | JsonFunction::Exists => {
                ResultType::Boolean
            }
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

/// A path given as PostgreSQL's text[] literal (`'{a,2}'`), as DataFusion hands it over.
fn path_literal(text: &str) -> Result<Vec<String>> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| pg_error("22P02", format!("malformed array literal: \"{text}\"")))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(inner
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect())
}

impl JsonUdf {
    fn udf(name: &'static str, function: JsonFunction) -> ScalarUDF {
        let signature = match function {
            JsonFunction::Path { variadic: true, .. } => {
                Signature::variadic_any(Volatility::Immutable)
            }
            JsonFunction::TypeOf
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
            columns.push(if integer_key {
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

#[cfg(test)]
mod tests;
