//! Aggregates whose result types follow PostgreSQL rather than DataFusion.
//!
//! `sum` over `bigint` returns `numeric` in PostgreSQL and never wraps; DataFusion's `sum`
//! returns `Int64` and wraps on overflow. [`PgSum`] is DataFusion's `sum` with PostgreSQL's
//! result types: `smallint`/`integer` sum as `bigint`, `bigint` sums as `numeric`
//! ([`BIGINT_SUM_TYPE`], which cannot overflow before 10^19 maximal rows). The argument keeps
//! its type through coercion (so coercing twice changes nothing); the accumulators cast each
//! batch to the result type and are otherwise DataFusion's own, so the workers' partial sums
//! (plain `sum` over the argument cast the same way) and the coordinator's merge agree.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, Expr, GroupsAccumulator,
    Operator, ReversedUDAF, SetMonotonicity, Signature, Volatility,
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
