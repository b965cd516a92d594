//! bytea input as PostgreSQL reads it. DataFusion casts text to binary byte for byte, so
//! `'\x0102'::bytea` (or that literal inserted into a bytea column) became the six bytes
//! `\x0102` instead of two. [`PgByteaInput`] is an analyzer rule that turns a cast of a text
//! literal to binary into the bytes PostgreSQL's input function makes of it: hex format
//! (`\x` then pairs of hex digits) or escape format (`\\` and `\ooo` octal escapes), failing
//! with 22P02 where PostgreSQL does. Parameters arrive as literals by the time the rule
//! runs; a text column cast to bytea (not a literal) keeps DataFusion's byte-for-byte cast.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, TryCast};
use datafusion::optimizer::AnalyzerRule;

use crate::frontend::errors::PgError;

#[derive(Debug, Default)]
pub struct PgByteaInput;

impl PgByteaInput {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgByteaInput)
    }
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn text_literal(e: &Expr) -> Option<Option<&str>> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            _,
        ) => Some(v.as_deref()),
        _ => None,
    }
}

fn binary_literal(bytes: Option<Vec<u8>>, t: &DataType) -> Expr {
    let v = match t {
        DataType::LargeBinary => ScalarValue::LargeBinary(bytes),
        DataType::BinaryView => ScalarValue::BinaryView(bytes),
        _ => ScalarValue::Binary(bytes),
    };
    Expr::Literal(v, None)
}

fn rewrite(e: Expr) -> Result<Transformed<Expr>> {
    let (inner, target) = match &e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if is_binary(field.data_type()) =>
        {
            (expr.as_ref(), field.data_type().clone())
        }
        _ => return Ok(Transformed::no(e)),
    };
    let Some(text) = text_literal(inner) else {
        return Ok(Transformed::no(e));
    };
    let bytes = match text {
        None => None,
        Some(t) => {
            Some(decode(t).map_err(|err| DataFusionError::External(Box::new(err.into_pgwire())))?)
        }
    };
    Ok(Transformed::yes(binary_literal(bytes, &target)))
}

impl AnalyzerRule for PgByteaInput {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| p.map_expressions(|e| e.transform_up(rewrite)))
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_bytea_input"
    }
}

/// PostgreSQL's `byteain`.
pub fn decode(text: &str) -> Result<Vec<u8>, PgError> {
    let invalid = || PgError::new("22P02", "invalid input syntax for type bytea");
    if let Some(hex) = text.strip_prefix("\\x") {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut chars = hex.chars().filter(|c| !c.is_ascii_whitespace());
        while let Some(hi) = chars.next() {
            let digit = |c: char| {
                c.to_digit(16).ok_or_else(|| {
                    PgError::new("22023", format!("invalid hexadecimal digit: \"{c}\""))
                })
            };
            let hi = digit(hi)?;
            let Some(lo) = chars.next() else {
                return Err(PgError::new(
                    "22023",
                    "invalid hexadecimal data: odd number of digits",
                ));
            };
            out.push((hi * 16 + digit(lo)?) as u8);
        }
        return Ok(out);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = bytes.get(i + 1..i + 4).ok_or_else(invalid)?;
            let ok = matches!(oct[0], b'0'..=b'3')
                && matches!(oct[1], b'0'..=b'7')
                && matches!(oct[2], b'0'..=b'7');
            if !ok {
                return Err(invalid());
            }
            out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
            i += 4;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
