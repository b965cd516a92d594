//! A timestamp, timestamptz, time or interval (or a difference of timestamps) turned into text reads as PostgreSQL's output
//! function writes it, the same text a client receives for the value itself. DataFusion's
//! cast to a string wrote Arrow's form (`2024-01-02T03:04:05.500Z`, `1 days 2 hours`) where
//! PostgreSQL writes `2024-01-02 03:04:05.5+00` and `1 day 02:00:00`, so `ts::text`,
//! `'at ' || ts` and a `CREATE TABLE AS` of such a cast gave other text than PostgreSQL.
//!
//! [`PgTextOutput`] is an analyzer rule, run after type coercion so that the casts coercion
//! inserts (`||`) are seen too: a cast of those types to a string becomes
//! `shoal_text_out(value)`, which formats each value with pgwire's text encoders and the
//! session's `DateStyle` and `IntervalStyle`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{
    DataType, DurationMicrosecondType, IntervalMonthDayNanoType, IntervalUnit,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use bytes::BytesMut;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TryCast, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::pgwire::types::ToSqlText;

const NAME: &str = "shoal_text_out";

/// The types whose text DataFusion writes otherwise than PostgreSQL.
fn has_pg_output(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..)
            | DataType::Interval(_)
            | DataType::Duration(_)
            | DataType::Time32(_)
            | DataType::Time64(_)
    )
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

#[derive(Debug, Default)]
pub struct PgTextOutput;

impl PgTextOutput {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgTextOutput)
    }
}

impl AnalyzerRule for PgTextOutput {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_plan_expressions(plan, |e, input_schema, own_schema| {
            let (inner, target) = match &e {
                Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
                    if is_string(field.data_type()) =>
                {
                    (expr.as_ref(), field.data_type().clone())
                }
                _ => return Ok(Transformed::no(e)),
            };
            let typed = inner
                .get_type(input_schema)
                .map(|t| (t, input_schema))
                .or_else(|_| inner.get_type(own_schema).map(|t| (t, own_schema)));
            let Ok((source, schema)) = typed else {
                return Ok(Transformed::no(e));
            };
            if !has_pg_output(&source) {
                return Ok(Transformed::no(e));
            }
            let call = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(TextOut::udf()),
                vec![inner.clone()],
            ));
            Ok(Transformed::yes(if target == DataType::Utf8 {
                call
            } else {
                call.cast_to(&target, schema)?
            }))
        })
    }

    fn name(&self) -> &str {
        "pg_text_output"
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextOut {
    signature: Signature,
}

impl TextOut {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(TextOut {
            signature: Signature::any(1, Volatility::Stable),
        })
    }
}

/// The session's DateStyle, IntervalStyle and TimeZone (PostgreSQL's defaults outside a
/// session).
pub fn session_format_options() -> FormatOptions {
    let mut options = FormatOptions::default();
    if let Some(session) = crate::frontend::session::current() {
        let (date_style, interval_style) = session.output_styles();
        options.date_style = date_style;
        options.interval_style = interval_style;
        if let Some(zone) = session.time_zone() {
            options.time_zone = zone;
        }
    }
    options
}

fn text_of<T: ToSqlText>(value: &T, ty: &Type, options: &FormatOptions) -> Result<String> {
    let mut out = BytesMut::new();
    if let Err(e) = value.to_sql_text(ty, &mut out, options) {
        return exec_err!("cannot write {ty} as text: {e}");
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

impl ScalarUDFImpl for TextOut {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(value) = args.args.first() else {
            return exec_err!("{NAME} takes one argument");
        };
        let input = value.to_array(args.number_rows)?;
        let options = session_format_options();
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * 24);
        match input.data_type().clone() {
            DataType::Timestamp(_, tz) => {
                let micros = arrow::compute::cast(
                    &input,
                    &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                )?;
                let micros = micros.as_primitive::<TimestampMicrosecondType>();
                // A timestamptz reads in the session's zone, as the value itself is sent.
                let zone = match &tz {
                    Some(name) => {
                        let name = if options.time_zone.is_empty() || options.time_zone == "Etc/UTC"
                        {
                            name.as_ref()
                        } else {
                            options.time_zone.as_str()
                        };
                        Some(name.parse::<arrow::array::timezone::Tz>().map_err(|e| {
                            datafusion::error::DataFusionError::ArrowError(Box::new(e), None)
                        })?)
                    }
                    None => None,
                };
                for i in 0..micros.len() {
                    if micros.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let text = match zone {
                        Some(zone) => match micros.value_as_datetime_with_tz(i, zone) {
                            Some(t) => text_of(&t.fixed_offset(), &Type::TIMESTAMPTZ, &options)?,
                            None => return exec_err!("timestamp out of range"),
                        },
                        None => match micros.value_as_datetime(i) {
                            Some(t) => text_of(&t, &Type::TIMESTAMP, &options)?,
                            None => return exec_err!("timestamp out of range"),
                        },
                    };
                    out.append_value(text);
                }
            }
            DataType::Time32(_) | DataType::Time64(_) => {
                let micros =
                    arrow::compute::cast(&input, &DataType::Time64(TimeUnit::Microsecond))?;
                let micros = micros.as_primitive::<Time64MicrosecondType>();
                for i in 0..micros.len() {
                    match micros.is_null(i) {
                        true => out.append_null(),
                        false => match micros.value_as_time(i) {
                            Some(t) => out.append_value(text_of(&t, &Type::TIME, &options)?),
                            None => return exec_err!("time out of range"),
                        },
                    }
                }
            }
            DataType::Interval(_) => {
                let spans =
                    arrow::compute::cast(&input, &DataType::Interval(IntervalUnit::MonthDayNano))?;
                let spans = spans.as_primitive::<IntervalMonthDayNanoType>();
                for i in 0..spans.len() {
                    if spans.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let v = spans.value(i);
                    // PostgreSQL keeps microseconds.
                    let span = pg_interval::Interval::new(v.months, v.days, v.nanoseconds / 1000);
                    out.append_value(text_of(&span, &Type::INTERVAL, &options)?);
                }
            }
            DataType::Duration(_) => {
                let micros =
                    arrow::compute::cast(&input, &DataType::Duration(TimeUnit::Microsecond))?;
                let micros = micros.as_primitive::<DurationMicrosecondType>();
                for i in 0..micros.len() {
                    match micros.is_null(i) {
                        true => out.append_null(),
                        false => {
                            let span = arrow_pg::encoder::duration_interval(micros.value(i));
                            out.append_value(text_of(&span, &Type::INTERVAL, &options)?)
                        }
                    }
                }
            }
            other => return exec_err!("{NAME} cannot write {other}"),
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}
