//! `interval * number`, `number * interval` and `interval / number`, which DataFusion cannot
//! plan ("Cannot get result type for temporal operation Int64 * Interval"). Before planning,
//! [`rewrite`] turns such an operation, where one side is an interval by its syntax (an
//! `INTERVAL '...'` literal or a cast to interval), into `shoal_interval_mul(interval,
//! factor)`, which computes as PostgreSQL's `interval_mul`: months and days are scaled and
//! their fractions carried down (a month as 30 days, a day as 24 hours), the time rounded to
//! microseconds.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, DataType as SqlType, Expr, Query,
};

const NAME: &str = "shoal_interval_mul";

fn is_interval(e: &Expr) -> bool {
    match e {
        Expr::Interval(_) => true,
        Expr::Cast { data_type, .. } => matches!(data_type, SqlType::Interval { .. }),
        Expr::TypedString(t) => matches!(t.data_type, SqlType::Interval { .. }),
        Expr::Nested(inner) => is_interval(inner),
        _ => false,
    }
}

fn call(interval: Expr, factor: Expr) -> Expr {
    super::sql_call(NAME, vec![interval, factor])
}

/// Rewrites the interval multiplications and divisions of `q`; true when there were any.
pub fn rewrite(q: &mut Query) -> bool {
    let mut changed = false;
    let _ = visit_expressions_mut(q, |e| {
        if let Expr::BinaryOp { left, op, right } = e {
            let replaced = match op {
                BinaryOperator::Multiply if is_interval(left) && !is_interval(right) => {
                    Some(call(left.as_ref().clone(), right.as_ref().clone()))
                }
                BinaryOperator::Multiply if is_interval(right) && !is_interval(left) => {
                    Some(call(right.as_ref().clone(), left.as_ref().clone()))
                }
                BinaryOperator::Divide if is_interval(left) && !is_interval(right) => {
                    let one_over = Expr::BinaryOp {
                        left: Box::new(Expr::value(
                            datafusion::sql::sqlparser::ast::Value::Number("1.0".into(), false),
                        )),
                        op: BinaryOperator::Divide,
                        right: Box::new(Expr::Cast {
                            kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                            expr: right.clone(),
                            data_type: SqlType::DoublePrecision,
                            array: false,
                            format: None,
                        }),
                    };
                    Some(call(left.as_ref().clone(), one_over))
                }
                _ => None,
            };
            if let Some(r) = replaced {
                *e = r;
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// PostgreSQL's `interval_mul` on Arrow's month-day-nanosecond interval.
pub fn multiply(span: IntervalMonthDayNano, factor: f64) -> Option<IntervalMonthDayNano> {
    const DAYS_PER_MONTH: f64 = 30.0;
    const NANOS_PER_DAY: f64 = 86_400e9;
    if !factor.is_finite() {
        return None;
    }
    let months = span.months as f64 * factor;
    let result_months = months.trunc();
    let month_remainder_days = (months - result_months) * DAYS_PER_MONTH;
    let days = span.days as f64 * factor;
    let mut result_days = days.trunc();
    let mut remainder_nanos =
        (days - result_days + month_remainder_days - month_remainder_days.trunc()) * NANOS_PER_DAY;
    // PostgreSQL keeps microseconds.
    remainder_nanos = (remainder_nanos / 1e3).round() * 1e3;
    if remainder_nanos.abs() >= NANOS_PER_DAY {
        let whole = (remainder_nanos / NANOS_PER_DAY).trunc();
        result_days += whole;
        remainder_nanos -= whole * NANOS_PER_DAY;
    }
    result_days += month_remainder_days.trunc();
    let nanos = ((span.nanoseconds as f64 * factor + remainder_nanos) / 1e3).round() * 1e3;
    let fits = |v: f64, lo: f64, hi: f64| v >= lo && v <= hi;
    if !fits(result_months, i32::MIN as f64, i32::MAX as f64)
        || !fits(result_days, i32::MIN as f64, i32::MAX as f64)
        || !fits(nanos, i64::MIN as f64, i64::MAX as f64)
    {
        return None;
    }
    Some(IntervalMonthDayNano::new(
        result_months as i32,
        result_days as i32,
        nanos as i64,
    ))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalMul {
    signature: Signature,
}

impl IntervalMul {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(IntervalMul {
            signature: Signature::exact(
                vec![
                    DataType::Interval(IntervalUnit::MonthDayNano),
                    DataType::Float64,
                ],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for IntervalMul {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let spans = arrays[0].as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>();
        let factors = arrays[1].as_primitive::<arrow::datatypes::Float64Type>();
        let mut out = Vec::with_capacity(spans.len());
        for i in 0..spans.len() {
            if spans.is_null(i) || factors.is_null(i) {
                out.push(None);
                continue;
            }
            match multiply(spans.value(i), factors.value(i)) {
                Some(v) => out.push(Some(v)),
                None => return exec_err!("interval out of range"),
            }
        }
        Ok(ColumnarValue::Array(
            Arc::new(IntervalMonthDayNanoArray::from(out)) as ArrayRef,
        ))
    }
}

#[cfg(test)]
mod tests;
