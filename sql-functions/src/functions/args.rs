//! Argument binding: written arguments (positional, then named, Citus's names too) matched
//! to a function's parameters, evaluated (bound parameters substituted), coerced to the
//! declared types, with defaults for the rest; and the result shape the extended protocol
//! describes.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast as sql;

use super::registry::{spec, Returns, Spec};
use super::FunctionCall;
use crate::error::{ClusterError, Result};

pub(super) fn undefined(name: &str, why: String) -> ClusterError {
    ClusterError::UndefinedFunction {
        message: format!("function {name} {why}"),
        hint: Some("Check the argument names and count against the Shoal SQL API.".into()),
    }
}

/// Matches written arguments to parameters: positional first, then by name.
pub(super) fn bind<'a>(spec: &Spec, call: &'a FunctionCall) -> Result<Vec<Option<&'a sql::Expr>>> {
    let mut slots: Vec<Option<&sql::Expr>> = vec![None; spec.params.len()];
    let mut positional = 0;
    for (name, expr) in &call.args {
        let idx = match name {
            None => {
                let i = positional;
                positional += 1;
                if i >= spec.params.len() {
                    return Err(undefined(
                        &call.name,
                        format!("takes at most {} arguments", spec.params.len()),
                    ));
                }
                i
            }
            Some(n) => spec
                .params
                .iter()
                .position(|p| p.names.contains(&n.as_str()))
                .ok_or_else(|| undefined(&call.name, format!("has no parameter named \"{n}\"")))?,
        };
        if slots[idx].is_some() {
            return Err(undefined(
                &call.name,
                format!("got argument \"{}\" twice", spec.params[idx].names[0]),
            ));
        }
        slots[idx] = Some(expr);
    }
    for (p, s) in spec.params.iter().zip(&slots) {
        if s.is_none() && p.default.is_none() {
            return Err(undefined(
                &call.name,
                format!("requires argument \"{}\"", p.names[0]),
            ));
        }
    }
    Ok(slots)
}

/// The placeholder number of an argument that is exactly `$n`.
fn placeholder(expr: &sql::Expr) -> Option<usize> {
    let s = expr.to_string();
    s.strip_prefix('$').and_then(|n| n.parse().ok())
}

fn return_columns(name: &str, r: Returns) -> Vec<(String, &'static str)> {
    match r {
        Returns::Void => vec![(name.to_string(), "TEXT")],
        Returns::BigInt => vec![(name.to_string(), "BIGINT")],
        Returns::Rows(s) => s()
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Int64 => "BIGINT",
                    DataType::Boolean => "BOOLEAN",
                    DataType::Float64 => "DOUBLE",
                    DataType::Timestamp(_, _) => "TIMESTAMPTZ",
                    _ => "TEXT",
                };
                (f.name().clone(), t)
            })
            .collect(),
    }
}

/// The plan the extended protocol describes: the result columns, and parameter types taken
/// from the declared argument types (so drivers send `$1` as the right type).
pub async fn describe(ctx: &SessionContext, call: &FunctionCall) -> Result<LogicalPlan> {
    let spec = spec(&call.name).ok_or_else(|| undefined(&call.name, "does not exist".into()))?;
    let slots = bind(spec, call)?;
    let cols: Vec<String> = return_columns(&call.name, spec.returns)
        .into_iter()
        .map(|(n, t)| format!("CAST(NULL AS {t}) AS \"{n}\""))
        .collect();
    let mut conds = Vec::new();
    for (p, s) in spec.params.iter().zip(&slots) {
        if let Some(n) = s.and_then(placeholder) {
            conds.push(format!("${n} = CAST(NULL AS {})", p.ty.sql()));
        }
    }
    let mut q = format!("SELECT {}", cols.join(", "));
    if !conds.is_empty() {
        q.push_str(&format!(" WHERE {}", conds.join(" AND ")));
    }
    Ok(ctx.state().create_logical_plan(&q).await?)
}

/// Evaluates one argument expression (bound parameters substituted) to a value.
async fn eval(ctx: &SessionContext, expr: &sql::Expr, params: &ParamValues) -> Result<ScalarValue> {
    let plan = ctx
        .state()
        .create_logical_plan(&format!("SELECT {expr}"))
        .await?;
    let has_params = match params {
        ParamValues::List(l) => !l.is_empty(),
        ParamValues::Map(m) => !m.is_empty(),
    };
    let plan = if has_params {
        plan.with_param_values(params.clone())?
    } else {
        plan
    };
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| ClusterError::invalid(format!("argument {expr} has no value")))?;
    Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
}

/// Bound argument values, by the parameter's contract name.
pub(super) struct Args {
    function: String,
    values: Vec<(&'static str, ScalarValue)>,
}

impl Args {
    pub(super) fn get(&self, name: &str) -> &ScalarValue {
        static NULL: ScalarValue = ScalarValue::Null;
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or(&NULL)
    }
    pub(super) fn text(&self, name: &str) -> Result<String> {
        match self.get(name) {
            ScalarValue::Utf8(Some(s)) => Ok(s.clone()),
            _ => Err(self.null_arg(name)),
        }
    }
    pub(super) fn opt_text(&self, name: &str) -> Option<String> {
        match self.get(name) {
            ScalarValue::Utf8(Some(s)) => Some(s.clone()),
            _ => None,
        }
    }
    pub(super) fn opt_int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            ScalarValue::Int64(Some(v)) => Some(*v),
            _ => None,
        }
    }
    pub(super) fn opt_real(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            ScalarValue::Float64(Some(v)) => Some(*v),
            _ => None,
        }
    }
    pub(super) fn int(&self, name: &str) -> Result<i64> {
        match self.get(name) {
            ScalarValue::Int64(Some(v)) => Ok(*v),
            _ => Err(self.null_arg(name)),
        }
    }
    pub(super) fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            ScalarValue::Boolean(Some(v)) => Ok(*v),
            _ => Err(self.null_arg(name)),
        }
    }
    pub(super) fn port(&self) -> Result<u16> {
        let p = self.int("port")?;
        u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| ClusterError::InvalidArgument {
                message: format!("port {p} is out of range"),
                hint: Some("A port is between 1 and 65535.".into()),
            })
    }
    fn null_arg(&self, name: &str) -> ClusterError {
        ClusterError::NullArgument {
            message: format!("{}: argument \"{name}\" must not be NULL", self.function),
        }
    }
}

pub(super) async fn bind_values(
    ctx: &SessionContext,
    spec: &'static Spec,
    call: &FunctionCall,
    params: &ParamValues,
) -> Result<Args> {
    let slots = bind(spec, call)?;
    let mut values = Vec::new();
    for (p, slot) in spec.params.iter().zip(slots) {
        let v = match slot {
            Some(e) => eval(ctx, e, params).await?,
            None => p.default.map(|d| d()).unwrap_or(ScalarValue::Null),
        };
        let v = match p.ty.data_type() {
            Some(t) if !v.is_null() => v.cast_to(&t).map_err(|_| {
                ClusterError::invalid(format!(
                    "invalid value {v} for argument \"{}\" of {}",
                    p.names[0], call.name
                ))
            })?,
            _ => v,
        };
        values.push((p.names[0], v));
    }
    Ok(Args {
        function: call.name.clone(),
        values,
    })
}
