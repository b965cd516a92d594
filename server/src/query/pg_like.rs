//! `LIKE ... ESCAPE 'c'` with an escape character other than backslash, which DataFusion
//! refuses (SQLAlchemy's schema listing sends `ESCAPE '/'`). Before planning, [`rewrite`]
//! turns `x LIKE p ESCAPE 'c'` into `x LIKE shoal_like_escape(p, 'c')`: the pattern rewritten
//! to backslash escapes, character by character, so `c_` still means a literal `_` and a
//! backslash in the pattern a literal backslash, as PostgreSQL reads them.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr, Query, Value};

const NAME: &str = "shoal_like_escape";

/// Rewrites the LIKE / ILIKE of `q` whose escape character is not a backslash; true when
/// there were any.
pub fn rewrite(q: &mut Query) -> bool {
    let mut changed = false;
    let _ = visit_expressions_mut(q, |e| {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = e
        {
            let escape = match escape_char.as_ref().map(|v| &v.value) {
                Some(Value::SingleQuotedString(c)) if c != "\\" => Some(c.clone()),
                _ => None,
            };
            if let Some(c) = escape {
                **pattern = super::sql_call(
                    NAME,
                    vec![
                        pattern.as_ref().clone(),
                        Expr::value(Value::SingleQuotedString(c)),
                    ],
                );
                *escape_char = None;
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// `pattern` written with backslash escapes instead of `escape` (an empty `escape`, as in
/// PostgreSQL's `ESCAPE ''`, means no escape character at all).
pub fn to_backslash_escapes(pattern: &str, escape: &str) -> String {
    let esc = escape.chars().next();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        if Some(ch) == esc {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                // PostgreSQL: a pattern may not end with the escape character; kept as a
                // literal one here.
                None => {
                    out.push('\\');
                    out.push(ch);
                }
            }
        } else if ch == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(ch);
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LikeEscape {
    signature: Signature,
}

impl LikeEscape {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(LikeEscape {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for LikeEscape {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let patterns = arrays[0].as_string::<i32>();
        let escapes = arrays[1].as_string::<i32>();
        let out: StringArray = (0..patterns.len())
            .map(|i| {
                (!patterns.is_null(i) && !escapes.is_null(i))
                    .then(|| to_backslash_escapes(patterns.value(i), escapes.value(i)))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

#[cfg(test)]
mod tests;
