//! Aggregates whose result types follow PostgreSQL rather than DataFusion.
//!
//! `sum` over `bigint` returns `numeric` in PostgreSQL and never wraps; DataFusion's `sum`
//! returns `Int64` and wraps on overflow. [`PgSum`] is DataFusion's `sum` with PostgreSQL's
//! result types: `smallint`/`integer` sum as `bigint`, `bigint` sums as `numeric`
//! ([`BIGINT_SUM_TYPE`], which cannot overflow before 10^19 maximal rows). The argument keeps
//! its type through coercion (so coercing twice changes nothing); the accumulators cast each
//! batch to the result type and are otherwise DataFusion's own, so the workers' partial sums
//! (plain `sum` over the argument cast the same way) and the coordinator's merge agree.
//!
//! `avg` over integers returns `numeric` in PostgreSQL, `double` in DataFusion: [`PgAvg`] keeps
//! an exact sum and count and divides as numeric ([`integer_avg`]); a pushed-down `avg` merges
//! the workers' partial sums and counts with the same division ([`IntegerAvgFinal`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array};
use arrow::compute::cast;
use arrow::datatypes::{i256, DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::functions_aggregate::average::Avg;
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Documentation, EmitTo, Expr,
    GroupsAccumulator, Operator, ReversedUDAF, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    SetMonotonicity, Signature, Volatility,
};

/// The type `sum(bigint)` returns: PostgreSQL's `numeric` with no fractional digits.
pub const BIGINT_SUM_TYPE: DataType = DataType::Decimal128(38, 0);

/// The type PostgreSQL's `sum` returns for an integer argument, `None` for other types.
pub fn integer_sum_type(arg: &DataType) -> Option<DataType> {
    match arg {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Some(DataType::Int64),
        DataType::Int64 | DataType::UInt64 => Some(BIGINT_SUM_TYPE),
        _ => None,
    }
}

/// `sum` with PostgreSQL's result types; registered under DataFusion's name, replacing it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSum {
    inner: Sum,
    signature: Signature,
}

impl PgSum {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            inner: Sum::new(),
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }

    /// `args` as DataFusion's `sum` sees them: its input is already of the result type.
    fn inner_args<'a>(args: &AccumulatorArgs<'a>, fields: &'a [FieldRef]) -> AccumulatorArgs<'a> {
        AccumulatorArgs {
            expr_fields: fields,
            ..args.clone()
        }
    }
}

/// The argument field cast to the result type, when they differ.
fn cast_fields(args: &AccumulatorArgs) -> Option<Vec<FieldRef>> {
    let input = args.expr_fields.first()?;
    let target = args.return_field.data_type();
    (input.data_type() != target)
        .then(|| vec![Arc::new(Field::new(input.name(), target.clone(), true)) as FieldRef])
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("sum takes one argument, got {}", arg_types.len());
        };
        let coerced = match arg {
            DataType::Null => DataType::Int64,
            DataType::Float16 | DataType::Float32 => DataType::Float64,
            DataType::Dictionary(_, value) => return self.coerce_types(&[value.as_ref().clone()]),
            t if integer_sum_type(t).is_some() => t.clone(),
            DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => arg.clone(),
            other => return plan_err!("function sum({other}) does not exist"),
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first().and_then(integer_sum_type) {
            Some(t) => Ok(t),
            None => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match cast_fields(&args) {
            Some(fields) => Ok(Box::new(CastInput {
                target: args.return_field.data_type().clone(),
                inner: self.inner.accumulator(Self::inner_args(&args, &fields))?,
            })),
            None => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match cast_fields(&args) {
            Some(fields) => Ok(Box::new(CastGroupsInput {
                target: args.return_field.data_type().clone(),
                inner: self
                    .inner
                    .create_groups_accumulator(Self::inner_args(&args, &fields))?,
            })),
            None => self.inner.create_groups_accumulator(args),
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match cast_fields(&args) {
            Some(fields) => Ok(Box::new(CastInput {
                target: args.return_field.data_type().clone(),
                inner: self
                    .inner
                    .create_sliding_accumulator(Self::inner_args(&args, &fields))?,
            })),
            None => self.inner.create_sliding_accumulator(args),
        }
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> Result<Option<Expr>> {
        self.inner
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}

fn cast_all(values: &[ArrayRef], target: &DataType) -> Result<Vec<ArrayRef>> {
    Ok(values
        .iter()
        .map(|v| cast(v, target))
        .collect::<Result<Vec<_>, _>>()?)
}

/// An accumulator fed the argument cast to the result type (states already have it).
#[derive(Debug)]
struct CastInput {
    target: DataType,
    inner: Box<dyn Accumulator>,
}

impl Accumulator for CastInput {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&cast_all(values, &self.target)?)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&cast_all(values, &self.target)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}

/// [`CastInput`] for grouped aggregation.
struct CastGroupsInput {
    target: DataType,
    inner: Box<dyn GroupsAccumulator>,
}

impl GroupsAccumulator for CastGroupsInput {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let values = cast_all(values, &self.target)?;
        self.inner
            .update_batch(&values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner
            .convert_to_state(&cast_all(values, &self.target)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}

/// The type `avg` over an integer returns: PostgreSQL's `numeric`. PostgreSQL picks the
/// fractional digits per value (16 significant digits at least); Arrow's decimal has one scale
/// per column, so 16 fractional digits: the same text as PostgreSQL for averages from 1 to
/// 10,000 in magnitude; otherwise the same value, with more digits above (PostgreSQL rounds the
/// `avg` of large values to fewer) and 4 to 8 fewer below 1.
pub const INTEGER_AVG_TYPE: DataType = DataType::Decimal128(38, INTEGER_AVG_SCALE as i8);
const INTEGER_AVG_SCALE: u32 = 16;

/// `avg(sum, count)` for integer inputs: `sum / count` at [`INTEGER_AVG_TYPE`]'s scale, rounded
/// half away from zero as PostgreSQL's numeric division; None for no rows.
pub fn integer_avg(sum: i128, count: i128) -> Result<Option<i128>> {
    if count == 0 {
        return Ok(None);
    }
    let overflow = || DataFusionError::Execution("numeric field overflow in avg".into());
    let num = i256::from_i128(sum)
        .checked_mul(i256::from_i128(10i128.pow(INTEGER_AVG_SCALE)))
        .ok_or_else(overflow)?;
    let den = i256::from_i128(count);
    let (q, r) = (num / den, num % den);
    let twice_r = r.wrapping_abs().wrapping_mul(i256::from_i128(2));
    let q = if twice_r >= den.wrapping_abs() {
        if (num < i256::ZERO) != (den < i256::ZERO) {
            q - i256::ONE
        } else {
            q + i256::ONE
        }
    } else {
        q
    };
    q.to_i128().map(Some).ok_or_else(overflow)
}

/// `avg` with PostgreSQL's result type over integers (numeric, exact: an `i128` sum and a
/// count); DataFusion's own `avg` for floats, decimals and durations.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAvg {
    inner: Avg,
    signature: Signature,
}

impl PgAvg {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(Self {
            inner: Avg::new(),
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

fn is_integer_arg(arg_types: &[DataType]) -> bool {
    matches!(arg_types, [t] if t.is_integer())
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("avg takes one argument, got {}", arg_types.len());
        };
        let coerced = match arg {
            DataType::Dictionary(_, value) => return self.coerce_types(&[value.as_ref().clone()]),
            t if t.is_integer() => t.clone(),
            DataType::Null | DataType::Float16 | DataType::Float32 => DataType::Float64,
            DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_) => arg.clone(),
            other => return plan_err!("function avg({other}) does not exist"),
        };
        Ok(vec![coerced])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if is_integer_arg(arg_types) {
            Ok(INTEGER_AVG_TYPE)
        } else {
            self.inner.return_type(arg_types)
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args
            .expr_fields
            .first()
            .is_some_and(|f| f.data_type().is_integer())
        {
            Ok(Box::new(IntegerAvg::default()))
        } else {
            self.inner.accumulator(args)
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if args
            .input_fields
            .first()
            .is_some_and(|f| f.data_type().is_integer())
        {
            Ok(vec![
                Arc::new(Field::new(
                    format!("{}[sum]", args.name),
                    BIGINT_SUM_TYPE,
                    true,
                )),
                Arc::new(Field::new(
                    format!("{}[count]", args.name),
                    DataType::Int64,
                    true,
                )),
            ])
        } else {
            self.inner.state_fields(args)
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        // Integers: DataFusion adapts the row accumulator per group.
        !args
            .expr_fields
            .first()
            .is_some_and(|f| f.data_type().is_integer())
            && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The exact running sum and count of an integer `avg`.
#[derive(Debug, Default)]
struct IntegerAvg {
    sum: i128,
    count: i128,
}

impl IntegerAvg {
    fn add(&mut self, sum: i128, count: i128) -> Result<()> {
        let overflow = || DataFusionError::Execution("numeric field overflow in avg".into());
        self.sum = self.sum.checked_add(sum).ok_or_else(overflow)?;
        self.count = self.count.checked_add(count).ok_or_else(overflow)?;
        Ok(())
    }
}

impl Accumulator for IntegerAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else {
            return Ok(());
        };
        let values = cast(values, &DataType::Int64)?;
        let values = values.as_primitive::<Int64Type>();
        let mut sum: i128 = 0;
        for v in values.iter().flatten() {
            sum += i128::from(v);
        }
        let count = (values.len() - values.null_count()) as i128;
        self.add(sum, count)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (p, s) = (38, INTEGER_AVG_SCALE as i8);
        Ok(ScalarValue::Decimal128(
            integer_avg(self.sum, self.count)?,
            p,
            s,
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let count = i64::try_from(self.count)
            .map_err(|_| DataFusionError::Execution("avg over too many rows".into()))?;
        Ok(vec![
            ScalarValue::Decimal128(Some(self.sum), 38, 0),
            ScalarValue::Int64(Some(count)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [sums, counts] = states else {
            return plan_err!("avg state has {} fields, not 2", states.len());
        };
        let sums = cast(sums, &BIGINT_SUM_TYPE)?;
        let sums = sums.as_primitive::<Decimal128Type>();
        let counts = cast(counts, &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        for (s, c) in sums.iter().zip(counts.iter()) {
            self.add(s.unwrap_or(0), i128::from(c.unwrap_or(0)))?;
        }
        Ok(())
    }
}

/// `shoal_integer_avg(sum, count)`: the last step of a pushed-down integer `avg`, whose
/// workers return partial sums and counts; the same division as [`PgAvg`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntegerAvgFinal {
    signature: Signature,
}

impl IntegerAvgFinal {
    pub const NAME: &'static str = "shoal_integer_avg";

    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(IntegerAvgFinal {
            signature: Signature::exact(
                vec![BIGINT_SUM_TYPE, BIGINT_SUM_TYPE],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for IntegerAvgFinal {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(INTEGER_AVG_TYPE)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [sums, counts] = arrays.as_slice() else {
            return plan_err!("{} takes two arguments", Self::NAME);
        };
        let sums = sums.as_primitive::<Decimal128Type>();
        let counts = counts.as_primitive::<Decimal128Type>();
        let out = sums
            .iter()
            .zip(counts.iter())
            .map(|(s, c)| match (s, c) {
                (Some(s), Some(c)) => integer_avg(s, c),
                _ => Ok(None),
            })
            .collect::<Result<Decimal128Array>>()?
            .with_precision_and_scale(38, INTEGER_AVG_SCALE as i8)?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod avg_tests {
    use super::integer_avg;

    #[test]
    fn rounds_half_away_from_zero() {
        let e = 10i128.pow(16);
        assert_eq!(integer_avg(3, 2).ok(), Some(Some(15 * e / 10)));
        // 5/3 = 1.6666666666666666|67 rounds up; -5/3 rounds down.
        assert_eq!(integer_avg(5, 3).ok(), Some(Some(16_666_666_666_666_667)));
        assert_eq!(integer_avg(-5, 3).ok(), Some(Some(-16_666_666_666_666_667)));
        // 1/3 rounds down.
        assert_eq!(integer_avg(1, 3).ok(), Some(Some(3_333_333_333_333_333)));
        assert_eq!(integer_avg(7, 0).ok(), Some(None));
        let max = i128::from(i64::MAX);
        assert_eq!(integer_avg(max * 4, 4).ok(), Some(Some(max * e)));
    }
}
