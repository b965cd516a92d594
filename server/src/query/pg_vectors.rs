//! Subscripts of `int2vector` and `oidvector` values (`pg_index.indkey`, `indoption`,
//! `indclass`, `indcollation`) start at 0 in PostgreSQL, where an array's start at 1. The
//! catalog holds them as lists marked with their PostgreSQL type, and DataFusion's
//! `array_element` counts from 1, so pgjdbc's `getIndexInfo` (`indoption[position - 1]`)
//! read the wrong key's option. [`PgVectorSubscripts`] turns a subscript of such a value
//! into [`VectorElement`], which counts from 0 (and is not rewritten again if the plan is
//! analyzed twice).
//! (`array_lower`/`array_upper` and `generate_subscripts` answer from 0 for them; see the
//! vendored datafusion-pg-catalog.)

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::array_bounds_udf::is_zero_based_vector;

#[derive(Debug, Default)]
pub struct PgVectorSubscripts;

impl PgVectorSubscripts {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgVectorSubscripts)
    }
}

impl AnalyzerRule for PgVectorSubscripts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_plan_expressions(plan, |e, input_schema, own_schema| {
            let Expr::ScalarFunction(ScalarFunction { func, args }) = &e else {
                return Ok(Transformed::no(e));
            };
            if func.name() != "array_element" || args.len() != 2 {
                return Ok(Transformed::no(e));
            }
            let field = args[0]
                .to_field(input_schema)
                .or_else(|_| args[0].to_field(own_schema));
            if !field.is_ok_and(|(_, f)| is_zero_based_vector(&f)) {
                return Ok(Transformed::no(e));
            }
            let index = args[1]
                .clone()
                .cast_to(&DataType::Int64, input_schema)
                .or_else(|_| args[1].clone().cast_to(&DataType::Int64, own_schema))?;
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(
                    Arc::new(VectorElement::udf()),
                    vec![args[0].clone(), index],
                ),
            )))
        })
    }

    fn name(&self) -> &str {
        "pg_vector_subscripts"
    }
}

/// `vector[i]` of an int2vector or oidvector: the element at 0-based position `i`, NULL
/// outside the vector (as PostgreSQL answers).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorElement {
    signature: Signature,
}

impl VectorElement {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(VectorElement {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for VectorElement {
    fn name(&self) -> &str {
        "shoal_vector_element"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::List(item)) => Ok(item.data_type().clone()),
            other => exec_err!("a vector subscript of {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let lists = args.args[0].to_array(rows)?;
        let DataType::List(item) = lists.data_type() else {
            return exec_err!("a vector subscript of {}", lists.data_type());
        };
        let item_type = item.data_type().clone();
        let lists = lists.as_list::<i32>();
        let index = args.args[1].to_array(rows)?;
        let Some(index) = index.as_any().downcast_ref::<Int64Array>() else {
            return exec_err!("a vector subscript must be bigint");
        };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let value = if lists.is_null(row) || index.is_null(row) {
                None
            } else {
                let list = lists.value(row);
                usize::try_from(index.value(row))
                    .ok()
                    .filter(|i| *i < list.len())
                    .map(|i| ScalarValue::try_from_array(&list, i))
                    .transpose()?
            };
            out.push(match value {
                Some(v) => v,
                None => ScalarValue::try_from(&item_type)?,
            });
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(arrow::array::new_empty_array(
                &item_type,
            )));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}
