//! Array literals in PostgreSQL's text form (`'{1,2,NULL}'::bigint[]`, and a text constant
//! written into an array column, which DataFusion plans as a cast): Arrow casts no text to a
//! list, so [`PgArrayLiterals`] reads such constants while planning, as PostgreSQL's
//! `array_in` does, into list constants (22P02 for a malformed one).

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, TryCast};
use datafusion::optimizer::AnalyzerRule;

use crate::frontend::errors::PgError;

#[derive(Debug, Default)]
pub struct PgArrayLiterals;

impl PgArrayLiterals {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgArrayLiterals)
    }
}

/// The list constant a text constant stands for as a `to` (a list type), if it is one.
fn list_literal(e: &Expr, to: &DataType) -> Result<Option<Expr>> {
    let DataType::List(field) = to else {
        return Ok(None);
    };
    let Expr::Literal(value, _) = e else {
        return Ok(None);
    };
    let text = match value {
        ScalarValue::Utf8(t) | ScalarValue::Utf8View(t) | ScalarValue::LargeUtf8(t) => t,
        _ => return Ok(None),
    };
    let Some(text) = text else {
        return Ok(Some(Expr::Literal(ScalarValue::try_from(to)?, None)));
    };
    let column = shoal_sql_functions::types::array::list_column(
        std::iter::once(Some(text.as_str())),
        field.data_type(),
    )
    .map_err(|e| {
        DataFusionError::External(Box::new(PgError::new(e.sqlstate, e.message).into_pgwire()))
    })?;
    let list = column.as_list::<i32>().clone();
    Ok(Some(Expr::Literal(ScalarValue::List(Arc::new(list)), None)))
}

impl AnalyzerRule for PgArrayLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_plan_expressions(plan, |e, _input, _own| {
            let found = match &e {
                Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                    list_literal(expr, field.data_type())?
                }
                _ => None,
            };
            Ok(match found {
                Some(literal) => Transformed::yes(literal),
                None => Transformed::no(e),
            })
        })
    }

    fn name(&self) -> &str {
        "pg_array_literals"
    }
}
