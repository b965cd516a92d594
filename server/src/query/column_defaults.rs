//! Column defaults: what an INSERT that leaves a column out writes there. DataFusion's
//! planner asks the table for each omitted column's default expression
//! (`TableProvider::get_column_default`); Shoal answers with the stored SQL expression, or,
//! for a serial or identity column, `shoal_next_serial(table_id, column)`, which takes the
//! next values of the column's sequence from the catalog, one call per batch of rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use shoal_catalog::{ColumnDefault, SqlType, TableInfo};
use shoal_sql_functions::Cluster;

use crate::errors::PgError;

const NEXT_SERIAL: &str = "shoal_next_serial";

/// `shoal_next_serial(table_id, stored_column_name)`: as many consecutive values of the
/// column's sequence as the batch has rows.
pub struct NextSerial {
    cluster: Arc<Cluster>,
    signature: Signature,
}

impl std::fmt::Debug for NextSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(NEXT_SERIAL)
    }
}

impl PartialEq for NextSerial {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for NextSerial {}

impl std::hash::Hash for NextSerial {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NEXT_SERIAL.hash(state);
    }
}

impl NextSerial {
    pub fn udf(cluster: Arc<Cluster>) -> ScalarUDF {
        ScalarUDF::new_from_impl(NextSerial {
            cluster,
            signature: Signature::exact(
                vec![DataType::Int64, DataType::Utf8],
                Volatility::Volatile,
            ),
        })
    }
}

impl ScalarUDFImpl for NextSerial {
    fn name(&self) -> &str {
        NEXT_SERIAL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(table_id)))),
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(column)))),
        ) = (args.args.first(), args.args.get(1))
        else {
            return Err(DataFusionError::Execution(format!(
                "{NEXT_SERIAL} takes a table id and a column name as constants"
            )));
        };
        let n = args.number_rows as i64;
        if n == 0 {
            return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(
                Vec::<i64>::new(),
            ))));
        }
        let first = self
            .cluster
            .catalog()
            .next_serial_values(*table_id, column, n)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(
            Int64Array::from_iter_values(first..first + n),
        )))
    }
}

/// The default expression of each column of `info` that has one, by column name.
pub fn default_exprs(state: &SessionState, info: &TableInfo) -> Result<HashMap<String, Expr>> {
    let mut out = HashMap::new();
    for c in &info.columns {
        let expr = match &c.default {
            None => continue,
            Some(ColumnDefault::Expr(sql)) => state.create_logical_expr(sql, &DFSchema::empty())?,
            Some(ColumnDefault::Serial { .. }) => {
                let udf = state.scalar_functions().get(NEXT_SERIAL).ok_or_else(|| {
                    DataFusionError::Internal(format!("{NEXT_SERIAL} is not registered"))
                })?;
                Expr::ScalarFunction(ScalarFunction::new_udf(
                    Arc::clone(udf),
                    vec![
                        Expr::Literal(ScalarValue::Int64(Some(info.table_id)), None),
                        Expr::Literal(ScalarValue::Utf8(Some(c.stored_name.clone())), None),
                    ],
                ))
            }
        };
        out.insert(c.name.clone(), expr);
    }
    Ok(out)
}

/// Refuses a `DEFAULT` expression that cannot be a value of the column's type on its own:
/// it names a column, does not plan, or its value (computed once now, as PostgreSQL folds a
/// constant default when the table is created) does not cast to the type.
pub async fn check_default(ctx: &SessionContext, sql: &str, ty: &SqlType) -> Result<(), PgError> {
    let to_pg = |e: DataFusionError| {
        let err = crate::errors::from_datafusion(&e);
        if err.code == "42703" {
            PgError::new("0A000", "cannot use column reference in DEFAULT expression")
        } else {
            err
        }
    };
    // DataFusion casts to varchar without a length only; the length is checked on write.
    let target = match ty {
        SqlType::Varchar { .. } => "text".to_string(),
        other => other.to_string(),
    };
    ctx.sql(&format!("SELECT CAST(({sql}) AS {target})"))
        .await
        .map_err(to_pg)?
        .collect()
        .await
        .map_err(to_pg)?;
    Ok(())
}
