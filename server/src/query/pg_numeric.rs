//! `numeric` division with PostgreSQL's precision. A literal such as `1.0` is `numeric`, as in
//! PostgreSQL; Arrow divides decimals at the dividend's scale plus 4, so the everyday ratio
//! `1.0 * a / b` kept 5 fractional digits (`0.33333`) where PostgreSQL keeps at least 16
//! significant ones. [`PgNumericDivision`] is an analyzer rule (after type coercion) that
//! widens the dividend's scale to 12 when its declared digits leave room, so the quotient
//! has 16 fractional digits (`10.0 / 4` is `2.5000000000000000`, as PostgreSQL prints it;
//! PostgreSQL sizes the scale per value and shows `1.0 / 3` with 20 digits). Arrow's quotient
//! is truncated; PostgreSQL's is rounded, so the rule divides with one more digit and casts
//! back to the quotient's type, which rounds half away from zero (`2.0 / 3` is
//! `0.6666666666666667`, TPC-H Q8's market share `0.01825028`, not `...27`).

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// The dividend's scale the rule widens to: Arrow adds 4 to it for the quotient.
const DIVIDEND_SCALE: i8 = 12;
const MAX_PRECISION: u8 = 38;

#[derive(Debug, Default)]
pub struct PgNumericDivision;

impl PgNumericDivision {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgNumericDivision)
    }
}

/// The type to cast a `Decimal128(p, s)` dividend to, if its scale can grow: Arrow
/// multiplies the dividend by `10^(4 + divisor's scale)` in 128 bits, so its declared digits
/// plus that must stay within 38 (its integer digits stay as declared).
fn widened(t: &DataType, divisor_scale: i8) -> Option<DataType> {
    let DataType::Decimal128(p, s) = *t else {
        return None;
    };
    if s < 0 {
        // Not a scale PostgreSQL has (Shoal's literals never make one); left as Arrow types it.
        return None;
    }
    let room = i16::from(MAX_PRECISION) - i16::from(p) - 4 - i16::from(divisor_scale.max(0));
    let grow = (i16::from(DIVIDEND_SCALE) - i16::from(s)).min(room);
    if grow <= 0 {
        return None;
    }
    let p = u8::try_from(i16::from(p) + grow).ok()?;
    let s = i8::try_from(i16::from(s) + grow).ok()?;
    Some(DataType::Decimal128(p, s))
}

/// The dividend's type with one more fractional digit, so that the quotient has one too:
/// precision grows with it up to 38. (At 38 the dividend loses an integer digit; a value that
/// no longer fits would have overflowed Arrow's division, which multiplies the dividend by at
/// least `10^4`, anyway.)
fn one_more_digit(t: &DataType) -> Option<DataType> {
    let DataType::Decimal128(p, s) = *t else {
        return None;
    };
    if !(0..38).contains(&s) {
        return None;
    }
    Some(DataType::Decimal128(
        p.saturating_add(1).min(MAX_PRECISION),
        s + 1,
    ))
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    }) = e
    else {
        return Ok(Transformed::no(e));
    };
    let decimal = |x: &Expr| {
        x.get_type(schema)
            .ok()
            .filter(|t| matches!(t, DataType::Decimal128(..)))
    };
    let (Some(lt), Some(DataType::Decimal128(_, divisor_scale))) =
        (decimal(&left), decimal(&right))
    else {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        })));
    };
    let dividend = widened(&lt, divisor_scale).unwrap_or(lt);
    let divide = |dividend_type: DataType| {
        Expr::BinaryExpr(BinaryExpr {
            left: Box::new(Expr::Cast(Cast::new(left.clone(), dividend_type))),
            op: Operator::Divide,
            right: right.clone(),
        })
    };
    let quotient = divide(dividend.clone());
    let quotient_type = quotient.get_type(schema)?;
    let Some(finer) = one_more_digit(&dividend) else {
        return Ok(Transformed::yes(quotient));
    };
    let finer_quotient = divide(finer);
    match (finer_quotient.get_type(schema)?, &quotient_type) {
        (DataType::Decimal128(_, fs), DataType::Decimal128(_, qs)) if fs > *qs => {
            Ok(Transformed::yes(Expr::Cast(Cast::new(
                Box::new(finer_quotient),
                quotient_type,
            ))))
        }
        _ => Ok(Transformed::yes(quotient)),
    }
}

impl AnalyzerRule for PgNumericDivision {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            // Expressions are typed against the node's inputs; the node's own schema is
            // computed again when a quotient's type changed.
            let schema = match p.inputs().as_slice() {
                [input] => Arc::clone(input.schema()),
                _ => Arc::new(p.schema().as_ref().clone()),
            };
            let t = p.map_expressions(|e| e.transform_up(|e| rewrite(e, &schema)))?;
            if t.transformed {
                t.map_data(|p| p.recompute_schema())
            } else {
                Ok(t)
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_numeric_division"
    }
}

#[cfg(test)]
mod tests;
