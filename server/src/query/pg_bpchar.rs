//! `character(n)` (`char(n)`, PostgreSQL's `bpchar`) in queries. A `char(n)` column holds its
//! values without their trailing spaces (see `SqlType::Char`) and is marked `bpchar` with its
//! typmod, so that arrow-pg describes it as `character(n)` and pads it on output. What that
//! leaves to queries, as PostgreSQL does it:
//!
//! - `pg_casts::rewrite`: an explicit `CAST(x AS char(n))` / `x::char(n)` becomes
//!   `shoal_bpchar(CAST(x AS varchar), n)` ([`ToBpchar`]): trailing spaces dropped, cut to `n`
//!   characters, the result marked `character(n)` (`'ab'::char(3)` is `ab ` on output).
//! - [`PgBpchar`], an analyzer rule: an untyped literal or a parameter compared with a
//!   `char(n)` value is read as `char(n)` too, so its trailing spaces do not count
//!   (`c = 'ab  '` holds for `ab`); a cast of a `char(n)` value to text is text, without the
//!   padding (DataFusion's cast would keep the column's marks).

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{InList, ScalarFunction};
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TryCast, TypeSignature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{CharacterLength, DataType as SqlDataType};
use shoal_sql_functions::types::{char_length, marks, PG_TEXT_TYPE_KEY};

pub(crate) const TO_BPCHAR: &str = "shoal_bpchar";
const AS_TEXT: &str = "shoal_bpchar_text";

/// The length of an explicit cast's `char(n)` type (`char` alone is `char(1)`).
pub(crate) fn char_cast_length(t: &SqlDataType) -> Option<u64> {
    match t {
        SqlDataType::Char(len) | SqlDataType::Character(len) => match len {
            None => Some(1),
            Some(CharacterLength::IntegerLength { length, .. }) => Some(*length),
            Some(CharacterLength::Max) => None,
        },
        _ => None,
    }
}

/// Whether `e` is a `char(n)` value (a column or a cast marked `bpchar`).
fn is_bpchar(e: &Expr, schemas: [&DFSchema; 2]) -> bool {
    schemas.iter().any(|schema| {
        e.to_field(*schema).is_ok_and(|(_, f)| {
            f.metadata().get(PG_TEXT_TYPE_KEY).map(String::as_str) == Some("bpchar")
        })
    })
}

/// An operand read as `char(n)`: a string literal without its trailing spaces, a parameter
/// trimmed when bound; `None` for anything else (compared as text, as PostgreSQL compares a
/// `char(n)` with a text value).
fn as_bpchar_operand(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Literal(value, meta) => {
            let trimmed = match value {
                ScalarValue::Utf8(Some(s)) if s.ends_with(' ') => {
                    ScalarValue::Utf8(Some(s.trim_end_matches(' ').to_string()))
                }
                ScalarValue::Utf8View(Some(s)) if s.ends_with(' ') => {
                    ScalarValue::Utf8View(Some(s.trim_end_matches(' ').to_string()))
                }
                ScalarValue::LargeUtf8(Some(s)) if s.ends_with(' ') => {
                    ScalarValue::LargeUtf8(Some(s.trim_end_matches(' ').to_string()))
                }
                _ => return None,
            };
            Some(Expr::Literal(trimmed, meta.clone()))
        }
        Expr::Placeholder(_) => Some(datafusion::functions::string::expr_fn::rtrim(vec![
            e.clone()
        ])),
        _ => None,
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

#[derive(Debug, Default)]
pub struct PgBpchar;

impl PgBpchar {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgBpchar)
    }
}

impl AnalyzerRule for PgBpchar {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // Comparisons first, while the casts type coercion put around a `char(n)` operand
        // still carry its mark.
        let plan = super::rewrite_plan_expressions(plan, |e, input, own| {
            let schemas = [input, own];
            match e {
                Expr::BinaryExpr(BinaryExpr { left, op, right })
                    if matches!(
                        op,
                        Operator::Eq
                            | Operator::NotEq
                            | Operator::Lt
                            | Operator::LtEq
                            | Operator::Gt
                            | Operator::GtEq
                            | Operator::IsDistinctFrom
                            | Operator::IsNotDistinctFrom
                    ) =>
                {
                    let new_right = is_bpchar(&left, schemas)
                        .then(|| as_bpchar_operand(&right))
                        .flatten();
                    let new_left = is_bpchar(&right, schemas)
                        .then(|| as_bpchar_operand(&left))
                        .flatten();
                    if new_left.is_none() && new_right.is_none() {
                        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                            left,
                            op,
                            right,
                        })));
                    }
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: new_left.map_or(left, Box::new),
                        op,
                        right: new_right.map_or(right, Box::new),
                    })))
                }
                Expr::InList(InList {
                    expr,
                    list,
                    negated,
                }) if is_bpchar(&expr, schemas) => {
                    let mut changed = false;
                    let list = list
                        .into_iter()
                        .map(|item| match as_bpchar_operand(&item) {
                            Some(trimmed) => {
                                changed = true;
                                trimmed
                            }
                            None => item,
                        })
                        .collect();
                    let e = Expr::InList(InList {
                        expr,
                        list,
                        negated,
                    });
                    Ok(if changed {
                        Transformed::yes(e)
                    } else {
                        Transformed::no(e)
                    })
                }
                Expr::Between(between) if is_bpchar(&between.expr, schemas) => {
                    let low = as_bpchar_operand(&between.low);
                    let high = as_bpchar_operand(&between.high);
                    let changed = low.is_some() || high.is_some();
                    let mut between = between;
                    if let Some(low) = low {
                        between.low = Box::new(low);
                    }
                    if let Some(high) = high {
                        between.high = Box::new(high);
                    }
                    let e = Expr::Between(between);
                    Ok(if changed {
                        Transformed::yes(e)
                    } else {
                        Transformed::no(e)
                    })
                }
                other => Ok(Transformed::no(other)),
            }
        })?;
        super::rewrite_plan_expressions(plan, |e, input, own| {
            let (inner, target) = match &e {
                Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
                    if is_string(field.data_type()) =>
                {
                    (expr.as_ref(), field.data_type().clone())
                }
                _ => return Ok(Transformed::no(e)),
            };
            if !is_bpchar(inner, [input, own]) {
                return Ok(Transformed::no(e));
            }
            let text = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(BpcharText::udf()),
                vec![inner.clone()],
            ));
            Ok(Transformed::yes(if target == DataType::Utf8 {
                text
            } else {
                Expr::Cast(Cast::new(Box::new(text), target))
            }))
        })
    }

    fn name(&self) -> &str {
        "pg_bpchar"
    }
}

/// `shoal_bpchar(text, n)`: the value as `char(n)` holds it, for an explicit cast:
/// without trailing spaces, cut to `n` characters.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToBpchar {
    signature: Signature,
}

impl ToBpchar {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(ToBpchar {
            // The length is read from its literal when the result is typed: it must reach
            // the call uncast (an `integer` literal, or `bigint` when it does not fit).
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int32]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for ToBpchar {
    fn name(&self) -> &str {
        TO_BPCHAR
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let len = match args.scalar_arguments.get(1) {
            Some(Some(ScalarValue::Int64(Some(n)))) => *n,
            Some(Some(ScalarValue::Int32(Some(n)))) => i64::from(*n),
            _ => 0,
        };
        // PostgreSQL's bounds (`char(0)`, `char(20000000)` fail with 22023).
        let len = match shoal_catalog::SqlType::parse(&format!("char({len})"))
            .and_then(|t| t.check_declared().map(|()| t))
        {
            Ok(shoal_catalog::SqlType::Char { len }) => len,
            Ok(_) => return exec_err!("char({len}) is not a character type"),
            Err(e) => {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::frontend::errors::from_catalog(&e).into_pgwire(),
                )))
            }
        };
        let field = Field::new(self.name(), DataType::Utf8, true);
        Ok(Arc::new(field.with_metadata(marks(
            &shoal_catalog::SqlType::Char { len },
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let len = char_length(&args.return_field)
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let Some(value) = args.args.first() else {
            return exec_err!("{TO_BPCHAR} takes two arguments");
        };
        let input = value.to_array(args.number_rows)?;
        let strings = input.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
        for v in strings.iter() {
            match v {
                None => out.append_null(),
                Some(s) => {
                    let cut = match s.char_indices().nth(len) {
                        Some((at, _)) => &s[..at],
                        None => s,
                    };
                    out.append_value(cut.trim_end_matches(' '));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `shoal_bpchar_text(c)`: a `char(n)` value as text (its held value, without the
/// padding and the `bpchar` mark).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BpcharText {
    signature: Signature,
}

impl BpcharText {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(BpcharText {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for BpcharText {
    fn name(&self) -> &str {
        AS_TEXT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.into_iter().next() {
            Some(value) => Ok(value),
            None => exec_err!("{AS_TEXT} takes one argument"),
        }
    }
}

#[cfg(test)]
mod tests;
