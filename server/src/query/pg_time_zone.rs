//! The session's `TimeZone` where PostgreSQL uses it. A timestamptz is an instant (Shoal
//! keeps it as microseconds since the epoch, labelled UTC); what depends on the zone is how
//! local times are read and written:
//!
//! - text without an offset read as a timestamptz (`'2024-03-10 10:00'::timestamptz`, a
//!   literal compared with or inserted into a timestamptz column), and a timestamp without
//!   time zone or a date turned into one, are local times in the session's zone;
//! - a timestamptz turned into a timestamp, date or time gives the local time there;
//! - `date_trunc`, `date_part`/`extract`, `date_bin` and `to_char` of a timestamptz work
//!   on its local time, and adding or subtracting an interval steps days and months in it
//!   (across a daylight saving change a day is 23 or 25 hours, as in PostgreSQL).
//!
//! `x AT TIME ZONE z` is PostgreSQL's: a timestamptz's local time in `z` (a timestamp
//! without time zone), or a local time in `z` read as a timestamptz ([`rewrite_at_time_zone`];
//! DataFusion relabelled the instant instead, so the answer kept its zone and its clock).
//!
//! [`PgTimeZone`], an analyzer rule after type coercion, relabels such a timestamptz with
//! the session's zone around the operation (Arrow's casts and DataFusion's date functions
//! honour a timestamp's zone), then labels the result as it was. Output (timestamptz as
//! text) is written in the session's zone by the encoder and by `shoal_text_out`. In a UTC
//! session the rule changes nothing.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{Date32Type, TimestampMicrosecondType};
use chrono::{NaiveDateTime, Offset, TimeZone};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, ScalarValue};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    lit, BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TryCast, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Functions whose answer for a timestamptz depends on the zone it is read in.
const ZONED_FUNCTIONS: [&str; 7] = [
    "date_trunc",
    "date_part",
    "datepart",
    "date_bin",
    "to_char",
    "shoal_to_char",
    "to_date",
];

#[derive(Debug, Default)]
pub struct PgTimeZone;

impl PgTimeZone {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgTimeZone)
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A timestamptz not already in `zone`.
fn foreign_tz(t: &DataType, zone: &str) -> Option<TimeUnit> {
    match t {
        DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != zone => Some(*unit),
        _ => None,
    }
}

fn in_zone(e: Expr, unit: TimeUnit, zone: &str) -> Expr {
    Expr::Cast(Cast::new(
        Box::new(e),
        DataType::Timestamp(unit, Some(zone.into())),
    ))
}

fn call(udf: ScalarUDF, e: &Expr, zone: &str) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(udf),
        vec![e.clone(), lit(zone.to_string())],
    ))
}

fn cast(e: Expr, to: &DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(e), to.clone()))
}

/// `e` with its zone-dependent parts done in `zone`; `None` when nothing depends on it.
/// `now` is the statement's `now()`.
fn rewrite(e: &Expr, schema: &DFSchema, zone: &str, now: &Arc<ScalarUDF>) -> Result<Option<Expr>> {
    let type_of = |x: &Expr| x.get_type(schema);
    Ok(match e {
        // The date of now() where the session is (DataFusion's is UTC's).
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "current_date" && args.is_empty() =>
        {
            let now = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(now), vec![]));
            Some(cast(call(LocalTime::udf(), &now, zone), &DataType::Date32))
        }
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            let to = field.data_type();
            let from = type_of(expr)?;
            let try_cast = matches!(e, Expr::TryCast(_));
            let inner = match (&from, to) {
                // Local text, timestamp or date read as an instant in the session's zone.
                (f, DataType::Timestamp(_, Some(_)))
                    if is_string(f)
                        || matches!(f, DataType::Timestamp(_, None) | DataType::Date32) =>
                {
                    Some(call(LocalToInstant::udf(), expr, zone))
                }
                // An instant's local timestamp in the session's zone.
                (f, DataType::Timestamp(_, None)) if foreign_tz(f, zone).is_some() => {
                    Some(call(LocalTime::udf(), expr, zone))
                }
                // Its local date or time (Arrow's casts honour the zone label).
                (f, DataType::Date32 | DataType::Date64)
                | (f, DataType::Time64(_) | DataType::Time32(_)) => {
                    foreign_tz(f, zone).map(|unit| in_zone(expr.as_ref().clone(), unit, zone))
                }
                _ => None,
            };
            inner.map(|inner| {
                if try_cast {
                    Expr::TryCast(TryCast::new(Box::new(inner), to.clone()))
                } else {
                    cast(inner, to)
                }
            })
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if ZONED_FUNCTIONS.contains(&func.name()) =>
        {
            let mut changed = false;
            let mut new_args = Vec::with_capacity(args.len());
            for a in args {
                match foreign_tz(&type_of(a)?, zone) {
                    Some(unit) => {
                        changed = true;
                        new_args.push(in_zone(a.clone(), unit, zone));
                    }
                    None => new_args.push(a.clone()),
                }
            }
            if !changed {
                return Ok(None);
            }
            let before = type_of(e)?;
            let call = Expr::ScalarFunction(ScalarFunction {
                func: Arc::clone(func),
                args: new_args,
            });
            Some(if call.get_type(schema)? == before {
                call
            } else {
                cast(call, &before)
            })
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Plus | Operator::Minus) =>
        {
            let (lt, rt) = (type_of(left)?, type_of(right)?);
            let interval = |t: &DataType| matches!(t, DataType::Interval(_));
            let (l, r) = match (foreign_tz(&lt, zone), foreign_tz(&rt, zone)) {
                (Some(unit), None) if interval(&rt) => (
                    in_zone(left.as_ref().clone(), unit, zone),
                    right.as_ref().clone(),
                ),
                (None, Some(unit)) if interval(&lt) => (
                    left.as_ref().clone(),
                    in_zone(right.as_ref().clone(), unit, zone),
                ),
                _ => return Ok(None),
            };
            let before = type_of(e)?;
            let step = Expr::BinaryExpr(BinaryExpr::new(Box::new(l), *op, Box::new(r)));
            Some(if step.get_type(schema)? == before {
                step
            } else {
                cast(step, &before)
            })
        }
        _ => None,
    })
}

impl AnalyzerRule for PgTimeZone {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let Some(zone) = crate::frontend::session::current().and_then(|s| s.time_zone()) else {
            return Ok(plan);
        };
        let now = datafusion::functions::datetime::now(config);
        super::rewrite_plan_expressions(plan, |e, input_schema, own_schema| {
            let done = rewrite(&e, input_schema, &zone, &now)
                .or_else(|_| rewrite(&e, own_schema, &zone, &now));
            Ok(match done {
                Ok(Some(new)) => Transformed::yes(new),
                _ => Transformed::no(e),
            })
        })
    }

    fn name(&self) -> &str {
        "pg_time_zone"
    }
}

/// The zone named by a function's second (literal) argument.
fn zone_arg(args: &ScalarFunctionArgs) -> Result<chrono_tz::Tz> {
    match args.args.get(1) {
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))) => match name.parse() {
            Ok(tz) => Ok(tz),
            Err(_) => exec_err!("time zone \"{name}\" not recognized"),
        },
        _ => exec_err!("a time zone name is expected"),
    }
}

/// The instant a local time in `zone` names, as PostgreSQL resolves it: in the hour a
/// daylight saving change repeats, the later of the two (the offset after the change); in
/// the hour it skips, the offset before the change.
fn resolve_local(zone: &chrono_tz::Tz, local: NaiveDateTime) -> i64 {
    use chrono::LocalResult;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.timestamp_micros(),
        LocalResult::Ambiguous(a, b) => a.timestamp_micros().max(b.timestamp_micros()),
        LocalResult::None => {
            let before = zone
                .offset_from_utc_datetime(&(local - chrono::Duration::hours(24)))
                .fix()
                .local_minus_utc();
            (local - chrono::Duration::seconds(i64::from(before)))
                .and_utc()
                .timestamp_micros()
        }
    }
}

/// Text values read as timestamptz in `zone`: a local time there, or a time with its own
/// offset as written.
pub fn text_to_instants(
    input: &ArrayRef,
    zone: &chrono_tz::Tz,
) -> Result<TimestampMicrosecondArray> {
    let text = arrow::compute::cast(input, &DataType::Utf8)?;
    let zoned = DataType::Timestamp(TimeUnit::Microsecond, Some(zone.name().into()));
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |a: &ArrayRef, to: &DataType| arrow::compute::cast_with_options(a, to, &strict);
    // Arrow reads a local time in the zone, and an explicit offset as written, but refuses
    // the hours a daylight saving change repeats or skips.
    let first = match cast(&text, &zoned) {
        Ok(values) => {
            return Ok(values
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect())
        }
        Err(e) => e,
    };
    let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
    let mut out = Vec::with_capacity(text.len());
    for i in 0..text.len() {
        let one: ArrayRef = text.slice(i, 1);
        if one.is_null(0) {
            out.push(None);
        } else if let Ok(v) = cast(&one, &zoned) {
            out.push(Some(v.as_primitive::<TimestampMicrosecondType>().value(0)));
        } else {
            let Ok(local) = cast(&one, &naive) else {
                return Err(first.into());
            };
            let local = local.as_primitive::<TimestampMicrosecondType>();
            let Some(local) = local.value_as_datetime(0) else {
                return Err(first.into());
            };
            out.push(Some(resolve_local(zone, local)));
        }
    }
    Ok(out.into_iter().collect())
}

/// `shoal_local_to_instant(local, zone)`: text (a local time, or one with its own offset),
/// a timestamp without time zone or a date, read as a timestamptz in `zone`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalToInstant {
    signature: Signature,
}

impl LocalToInstant {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(LocalToInstant {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for LocalToInstant {
    fn name(&self) -> &str {
        "shoal_local_to_instant"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = zone_arg(&args)?;
        let input = args.args[0].to_array(args.number_rows)?;
        let out: TimestampMicrosecondArray = match input.data_type() {
            t if is_string(t) => text_to_instants(&input, &zone)?,
            DataType::Timestamp(_, None) => {
                let micros = arrow::compute::cast(
                    &input,
                    &DataType::Timestamp(TimeUnit::Microsecond, None),
                )?;
                let micros = micros.as_primitive::<TimestampMicrosecondType>();
                (0..micros.len())
                    .map(|i| {
                        (!micros.is_null(i))
                            .then(|| micros.value_as_datetime(i))
                            .flatten()
                            .map(|local| resolve_local(&zone, local))
                    })
                    .collect()
            }
            DataType::Date32 => {
                let days = input.as_primitive::<Date32Type>();
                (0..days.len())
                    .map(|i| {
                        (!days.is_null(i))
                            .then(|| days.value_as_date(i))
                            .flatten()
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|local| resolve_local(&zone, local))
                    })
                    .collect()
            }
            other => return exec_err!("cannot read {other} as a local time"),
        };
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone("UTC"))))
    }
}

/// `shoal_local_time(timestamptz, zone)`: its local time in `zone`, a timestamp without
/// time zone.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LocalTime {
    signature: Signature,
}

impl LocalTime {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(LocalTime {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for LocalTime {
    fn name(&self) -> &str {
        "shoal_local_time"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = zone_arg(&args)?;
        let input = args.args[0].to_array(args.number_rows)?;
        let micros = arrow::compute::cast(
            &input,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let out: TimestampMicrosecondArray = (0..micros.len())
            .map(|i| {
                if micros.is_null(i) {
                    return None;
                }
                let instant = chrono::DateTime::from_timestamp_micros(micros.value(i))?;
                Some(
                    instant
                        .with_timezone(&zone)
                        .naive_local()
                        .and_utc()
                        .timestamp_micros(),
                )
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Turns `x AT TIME ZONE z` into `shoal_at_time_zone(z, x)`; true when there was one.
pub fn rewrite_at_time_zone(q: &mut datafusion::sql::sqlparser::ast::Query) -> bool {
    use datafusion::sql::sqlparser::ast as sql;
    let mut changed = false;
    let _ = sql::visit_expressions_mut(q, |e| {
        if let sql::Expr::AtTimeZone {
            timestamp,
            time_zone,
        } = e
        {
            *e = super::sql_call(
                "shoal_at_time_zone",
                vec![time_zone.as_ref().clone(), timestamp.as_ref().clone()],
            );
            changed = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    changed
}

/// `shoal_at_time_zone(zone, x)`: PostgreSQL's `x AT TIME ZONE zone`. A timestamptz (or
/// text or a date, read as one in the session's zone) gives its local time in `zone`; a
/// timestamp without time zone is read as a local time there and gives the timestamptz.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AtTimeZone {
    signature: Signature,
}

impl AtTimeZone {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(AtTimeZone {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

/// The zone `name` names: an IANA name or UTC's.
fn parse_zone(name: &str) -> Result<chrono_tz::Tz> {
    if crate::frontend::settings::is_utc(name.trim()) {
        return Ok(chrono_tz::UTC);
    }
    match crate::frontend::settings::zone_named(name.trim()) {
        Some(tz) => Ok(tz),
        None => exec_err!("time zone \"{name}\" not recognized"),
    }
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        "shoal_at_time_zone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match args.get(1) {
            Some(DataType::Timestamp(_, None)) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            _ => DataType::Timestamp(TimeUnit::Microsecond, None),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let zones = arrow::compute::cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        let input = args.args[1].to_array(rows)?;
        let zone_at = |i: usize| -> Result<Option<chrono_tz::Tz>> {
            if zones.is_null(i) {
                Ok(None)
            } else {
                parse_zone(zones.value(i)).map(Some)
            }
        };
        match input.data_type().clone() {
            DataType::Timestamp(_, None) => {
                let local = arrow::compute::cast(
                    &input,
                    &DataType::Timestamp(TimeUnit::Microsecond, None),
                )?;
                let local = local.as_primitive::<TimestampMicrosecondType>();
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    out.push(match (zone_at(i)?, local.is_null(i)) {
                        (Some(zone), false) => {
                            local.value_as_datetime(i).map(|t| resolve_local(&zone, t))
                        }
                        _ => None,
                    });
                }
                let out: TimestampMicrosecondArray = out.into_iter().collect();
                Ok(ColumnarValue::Array(Arc::new(out.with_timezone("UTC"))))
            }
            t => {
                // Text and a date are read as a timestamptz, as PostgreSQL resolves them:
                // in the session's zone.
                let session = crate::frontend::session::current()
                    .and_then(|s| s.time_zone())
                    .map_or(Ok(chrono_tz::UTC), |z| parse_zone(&z))?;
                let instants: ArrayRef = if is_string(&t) {
                    Arc::new(text_to_instants(&input, &session)?)
                } else if t == DataType::Date32 {
                    let days = input.as_primitive::<Date32Type>();
                    let out: TimestampMicrosecondArray = (0..days.len())
                        .map(|i| {
                            (!days.is_null(i))
                                .then(|| days.value_as_date(i))
                                .flatten()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map(|local| resolve_local(&session, local))
                        })
                        .collect();
                    Arc::new(out.with_timezone("UTC"))
                } else {
                    arrow::compute::cast(
                        &input,
                        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    )?
                };
                let instants = instants.as_primitive::<TimestampMicrosecondType>();
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    out.push(match (zone_at(i)?, instants.is_null(i)) {
                        (Some(zone), false) => {
                            chrono::DateTime::from_timestamp_micros(instants.value(i)).map(|t| {
                                t.with_timezone(&zone)
                                    .naive_local()
                                    .and_utc()
                                    .timestamp_micros()
                            })
                        }
                        _ => None,
                    });
                }
                let out: TimestampMicrosecondArray = out.into_iter().collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
