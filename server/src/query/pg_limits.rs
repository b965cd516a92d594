//! Limits PostgreSQL puts on a single value, for the functions that can build one too large
//! to compute.
//!
//! Some functions build a value far larger than their arguments in one synchronous call that
//! nothing can cancel, and the memory pool never sees it (a function's result is not an
//! operator's reservation): `unnest(range(1, 500000000))` allocated 12 GB,
//! `array_repeat(1, 1000000000)` 8 GB, `repeat('x', 2000000000)` 2 GB. [`BoundedFunction`]
//! computes the size a call would produce from its arguments, before any allocation, and
//! refuses what PostgreSQL refuses, with 54000: arrays beyond [`MAX_ARRAY_ELEMENTS`] elements,
//! strings beyond [`MAX_VALUE_BYTES`]. The row-producing table function `generate_series` in
//! `FROM` streams in batches and needs no limit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, FieldRef, Int64Type, IntervalMonthDayNanoType, TimeUnit,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// PostgreSQL's `MaxArraySize`: the most elements one array may hold.
pub const MAX_ARRAY_ELEMENTS: u64 = 134_217_727;

/// PostgreSQL's `MaxAllocSize`: the most bytes one value may take.
pub const MAX_VALUE_BYTES: u64 = 0x3fff_ffff;

/// A value larger than PostgreSQL allows (54000, program_limit_exceeded).
#[derive(Debug, thiserror::Error)]
pub enum ValueLimitError {
    #[error("array size exceeds the maximum allowed ({max})", max = MAX_ARRAY_ELEMENTS)]
    ArrayTooLarge,
    #[error("requested length too large")]
    StringTooLong,
}

/// The functions whose results are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BoundedKind {
    /// `range`: the stop value is excluded.
    Range,
    /// `generate_series` (the array-valued one): the stop value is included.
    GenerateSeries,
    /// `array_repeat(element, count)`.
    ArrayRepeat,
    /// `repeat(text, count)`.
    Repeat,
    /// `lpad` / `rpad(text, length [, fill])`.
    Pad,
}

/// A DataFusion function that refuses, before it runs, a call whose result would exceed
/// PostgreSQL's limits (in any one call: one call builds every row's value at once).
#[derive(Debug)]
pub struct BoundedFunction {
    kind: BoundedKind,
    inner: Arc<ScalarUDF>,
}

impl PartialEq for BoundedFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.inner.name() == other.inner.name()
    }
}

impl Eq for BoundedFunction {}

impl std::hash::Hash for BoundedFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.inner.name().hash(state);
    }
}

impl BoundedFunction {
    /// The bounded functions, registered under DataFusion's names (replacing DataFusion's).
    pub fn udfs() -> Vec<ScalarUDF> {
        use datafusion::functions::{string, unicode};
        use datafusion::functions_nested::{range, repeat};
        [
            (BoundedKind::Range, range::range_udf()),
            (BoundedKind::GenerateSeries, range::gen_series_udf()),
            (BoundedKind::ArrayRepeat, repeat::array_repeat_udf()),
            (BoundedKind::Repeat, string::repeat()),
            (BoundedKind::Pad, unicode::lpad()),
            (BoundedKind::Pad, unicode::rpad()),
        ]
        .into_iter()
        .map(|(kind, inner)| ScalarUDF::new_from_impl(BoundedFunction { kind, inner }))
        .collect()
    }

    /// Refuses the call if its result would be too large.
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        let too_large = match self.kind {
            BoundedKind::Range | BoundedKind::GenerateSeries => self
                .series_elements(args, rows)?
                .is_some_and(|n| n > u128::from(MAX_ARRAY_ELEMENTS))
                .then_some(ValueLimitError::ArrayTooLarge),
            BoundedKind::ArrayRepeat => {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let counts = arrays.get(1).and_then(int64s).unwrap_or_default();
                let total: u128 = counts
                    .iter()
                    .flatten()
                    .map(|c| u128::try_from(*c).unwrap_or(0))
                    .sum();
                (total > u128::from(MAX_ARRAY_ELEMENTS)).then_some(ValueLimitError::ArrayTooLarge)
            }
            BoundedKind::Repeat => {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let (Some(text), Some(counts)) = (
                    arrays.first().and_then(byte_lengths),
                    arrays.get(1).and_then(int64s),
                ) else {
                    return Ok(());
                };
                text.iter()
                    .zip(&counts)
                    .any(|(len, n)| match (len, n) {
                        (Some(len), Some(n)) => {
                            (*len as u128) * u128::try_from(*n).unwrap_or(0)
                                > u128::from(MAX_VALUE_BYTES)
                        }
                        _ => false,
                    })
                    .then_some(ValueLimitError::StringTooLong)
            }
            BoundedKind::Pad => {
                // PostgreSQL refuses a length whose worst-case encoding (4 bytes a character)
                // would not fit.
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let lengths = arrays.get(1).and_then(int64s).unwrap_or_default();
                lengths
                    .iter()
                    .flatten()
                    .any(|l| u128::try_from(*l).unwrap_or(0) * 4 > u128::from(MAX_VALUE_BYTES))
                    .then_some(ValueLimitError::StringTooLong)
            }
        };
        match too_large {
            Some(e) => Err(DataFusionError::External(Box::new(e))),
            None => Ok(()),
        }
    }

    /// Elements a series call with `args` would produce, over all rows; None where the
    /// argument types are not ones this counts (the call is then left to DataFusion).
    fn series_elements(&self, args: &[ColumnarValue], rows: usize) -> Result<Option<u128>> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let rows = arrays.first().map_or(rows, |a| a.len());
        let inclusive = self.kind == BoundedKind::GenerateSeries;
        let mut total: u128 = 0;
        match arrays.as_slice() {
            // range(stop): start 0, step 1.
            [stop] => {
                let Some(stop) = int64s(stop) else {
                    return Ok(None);
                };
                for row in 0..rows {
                    if let Some(stop) = stop[row] {
                        total += count(0, i128::from(stop), 1, inclusive);
                    }
                }
            }
            [start, stop, rest @ ..] => {
                let step = rest.first();
                if let (Some(start), Some(stop)) = (int64s(start), int64s(stop)) {
                    let step = match step {
                        Some(s) => match int64s(s) {
                            Some(s) => s,
                            None => return Ok(None),
                        },
                        None => vec![Some(1); rows],
                    };
                    for row in 0..rows {
                        if let (Some(a), Some(b), Some(s)) = (start[row], stop[row], step[row]) {
                            total += count(a.into(), b.into(), s.into(), inclusive);
                        }
                    }
                } else if let (Some(start), Some(stop), Some(step)) =
                    (nanos(start), nanos(stop), step.and_then(min_step_nanos))
                {
                    for row in 0..rows {
                        if let (Some(a), Some(b), Some(s)) = (start[row], stop[row], step[row]) {
                            total += count(a, b, s, inclusive);
                        }
                    }
                } else {
                    return Ok(None);
                }
            }
            _ => return Ok(None),
        }
        Ok(Some(total))
    }
}

/// Elements from `start` towards `stop` by `step` (0 for a step of 0 or pointing away).
fn count(start: i128, stop: i128, step: i128, inclusive: bool) -> u128 {
    if step == 0 {
        return 0;
    }
    let (distance, step) = if step > 0 {
        (stop - start, step)
    } else {
        (start - stop, -step)
    };
    let n = if inclusive {
        if distance < 0 {
            0
        } else {
            distance / step + 1
        }
    } else if distance <= 0 {
        0
    } else {
        (distance + step - 1) / step
    };
    n.unsigned_abs()
}

/// Integer arguments as `i64`s (None for other types).
fn int64s(a: &ArrayRef) -> Option<Vec<Option<i64>>> {
    if !a.data_type().is_integer() {
        return None;
    }
    let a = arrow::compute::cast(a, &DataType::Int64).ok()?;
    Some(a.as_primitive::<Int64Type>().iter().collect())
}

/// The byte length of each string of a text argument (None for other types).
fn byte_lengths(a: &ArrayRef) -> Option<Vec<Option<usize>>> {
    Some(match a.data_type() {
        DataType::Utf8 => a
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::len))
            .collect(),
        DataType::LargeUtf8 => a
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::len))
            .collect(),
        DataType::Utf8View => a.as_string_view().iter().map(|s| s.map(str::len)).collect(),
        _ => return None,
    })
}

const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// Dates and timestamps as nanoseconds since the epoch.
fn nanos(a: &ArrayRef) -> Option<Vec<Option<i128>>> {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    Some(match a.data_type() {
        DataType::Date32 => a
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.map(|d| i128::from(d) * NANOS_PER_DAY))
            .collect(),
        DataType::Date64 => a
            .as_primitive::<Date64Type>()
            .iter()
            .map(|d| d.map(|d| i128::from(d) * 1_000_000))
            .collect(),
        DataType::Timestamp(unit, _) => {
            let (values, scale): (Vec<Option<i64>>, i128) = match unit {
                TimeUnit::Second => (
                    a.as_primitive::<TimestampSecondType>().iter().collect(),
                    1_000_000_000,
                ),
                TimeUnit::Millisecond => (
                    a.as_primitive::<TimestampMillisecondType>()
                        .iter()
                        .collect(),
                    1_000_000,
                ),
                TimeUnit::Microsecond => (
                    a.as_primitive::<TimestampMicrosecondType>()
                        .iter()
                        .collect(),
                    1_000,
                ),
                TimeUnit::Nanosecond => (
                    a.as_primitive::<TimestampNanosecondType>().iter().collect(),
                    1,
                ),
            };
            values
                .into_iter()
                .map(|v| v.map(|v| i128::from(v) * scale))
                .collect()
        }
        _ => return None,
    })
}

/// An interval step as the fewest nanoseconds it can span (a month as 28 days), so the count
/// is never under-estimated; a step mixing signs is left to DataFusion's own checks.
fn min_step_nanos(a: &ArrayRef) -> Option<Vec<Option<i128>>> {
    match a.data_type() {
        DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano) => Some(
            a.as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        i128::from(v.months) * 28 * NANOS_PER_DAY
                            + i128::from(v.days) * NANOS_PER_DAY
                            + i128::from(v.nanoseconds)
                    })
                })
                .collect(),
        ),
        _ => None,
    }
}

impl ScalarUDFImpl for BoundedFunction {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_match_the_series() {
        for (start, stop, step) in [(1, 10, 1), (1, 10, 3), (10, 1, -2), (5, 5, 1), (1, 0, 1)] {
            let expected_exclusive = series(start, stop, step, false);
            let expected_inclusive = series(start, stop, step, true);
            assert_eq!(
                count(start, stop, step, false),
                expected_exclusive,
                "{start} {stop} {step}"
            );
            assert_eq!(
                count(start, stop, step, true),
                expected_inclusive,
                "{start} {stop} {step}"
            );
        }
        assert_eq!(count(1, 10, 0, true), 0);
    }

    fn series(start: i128, stop: i128, step: i128, inclusive: bool) -> u128 {
        let mut n = 0;
        let mut v = start;
        while (step > 0 && (v < stop || inclusive && v == stop))
            || (step < 0 && (v > stop || inclusive && v == stop))
        {
            n += 1;
            v += step;
        }
        n
    }
}
