//! SQL functions that answer from the calling session: `version()`, `session_user` (and
//! `current_user`, which the pg_catalog rewrite turns into it), `current_setting()` and
//! `set_config()`.
//!
//! DataFusion plans every connection's statements on one shared context, so these read the
//! session of the statement being planned ([`crate::frontend::session::current`]) and fold into a
//! literal while the plan is simplified (arguments must be constants, as they are in every
//! driver's and tool's use). `set_config` changes the setting then, once per execution of the
//! statement: the optimizer simplifies each plan once before it runs.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::frontend::errors::PgError;
use crate::frontend::session;
use crate::frontend::settings;

/// Registers the functions on the shared context (replacing pg_catalog's and DataFusion's
/// versions, which answer `postgres` and `Apache DataFusion ...`).
pub fn register(ctx: &SessionContext) {
    for f in [
        SessionFunction::Version,
        SessionFunction::SessionUser,
        SessionFunction::CurrentSetting,
        SessionFunction::SetConfig,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(SessionUdf::new(f)));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SessionFunction {
    Version,
    SessionUser,
    CurrentSetting,
    SetConfig,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionUdf {
    function: SessionFunction,
    signature: Signature,
    aliases: Vec<String>,
}

impl SessionUdf {
    fn new(function: SessionFunction) -> Self {
        let text = DataType::Utf8;
        let signature = match function {
            SessionFunction::Version | SessionFunction::SessionUser => {
                Signature::exact(vec![], Volatility::Stable)
            }
            SessionFunction::CurrentSetting => Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![text.clone()]),
                    TypeSignature::Exact(vec![text.clone(), DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
            SessionFunction::SetConfig => Signature::exact(
                vec![text.clone(), text, DataType::Boolean],
                Volatility::Volatile,
            ),
        };
        let aliases = match function {
            SessionFunction::SessionUser => ["current_user", "current_role", "user"]
                .map(String::from)
                .to_vec(),
            _ => vec![],
        };
        SessionUdf {
            function,
            signature,
            aliases,
        }
    }

    /// The function's value for constant arguments (`None` is SQL NULL).
    fn evaluate(&self, args: &[ScalarValue]) -> Result<Option<String>> {
        let text = |i: usize| -> Result<Option<String>> {
            match args.get(i) {
                Some(
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
                ) => Ok(v.clone()),
                Some(ScalarValue::Null) | None => Ok(None),
                Some(other) => plan_err!("expected text, got {other}"),
            }
        };
        let flag = |i: usize| -> Result<Option<bool>> {
            match args.get(i) {
                Some(ScalarValue::Boolean(v)) => Ok(*v),
                Some(ScalarValue::Null) | None => Ok(None),
                Some(other) => plan_err!("expected boolean, got {other}"),
            }
        };
        let current = session::current();
        match self.function {
            SessionFunction::Version => Ok(Some(settings::VERSION.to_string())),
            SessionFunction::SessionUser => {
                Ok(Some(crate::frontend::pg_catalog_context::session_user()))
            }
            SessionFunction::CurrentSetting => {
                let Some(name) = text(0)? else {
                    return Ok(None);
                };
                let missing_ok = flag(1)?.unwrap_or(false);
                let value = match &current {
                    Some(s) => s.setting(&name),
                    None => settings::Settings::default().get(&name),
                };
                match value {
                    Ok(Some(v)) => Ok(Some(v)),
                    Ok(None) if missing_ok => Ok(None),
                    Ok(None) => Err(pg(PgError::new(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    ))),
                    Err(_) if missing_ok => Ok(None),
                    Err(e) => Err(pg(e)),
                }
            }
            SessionFunction::SetConfig => {
                let Some(name) = text(0)? else {
                    return Err(pg(PgError::new("22004", "SET requires parameter name")));
                };
                let value = text(1)?;
                let local = flag(2)?.unwrap_or(false);
                let Some(s) = current else {
                    return plan_err!("set_config() needs a client session");
                };
                // Outside a transaction a local setting lasts for this statement, which is
                // its own transaction (the session drops it when the statement ends).
                s.set_setting(&name, value.as_deref(), local).map_err(pg)?;
                Ok(s.setting(&name).map_err(pg)?)
            }
        }
    }
}

/// A PostgreSQL error carried through DataFusion to the wire boundary.
fn pg(e: PgError) -> DataFusionError {
    DataFusionError::External(Box::new(e.into_pgwire()))
}

impl ScalarUDFImpl for SessionUdf {
    fn name(&self) -> &str {
        match self.function {
            SessionFunction::Version => "version",
            SessionFunction::SessionUser => "session_user",
            SessionFunction::CurrentSetting => "current_setting",
            SessionFunction::SetConfig => "set_config",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let mut values = Vec::with_capacity(args.len());
        for a in &args {
            match a {
                Expr::Literal(v, _) => values.push(v.clone()),
                _ => return Ok(ExprSimplifyResult::Original(args)),
            }
        }
        let value = self.evaluate(&values)?;
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            ScalarValue::Utf8(value),
            None,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Reached only when an argument is not a constant (simplify folds the rest).
        let mut values = Vec::with_capacity(args.args.len());
        for a in &args.args {
            match a {
                ColumnarValue::Scalar(v) => values.push(v.clone()),
                ColumnarValue::Array(_) => {
                    return Err(pg(PgError::new(
                        "0A000",
                        format!("{}() takes constant arguments only", self.name()),
                    )
                    .with_hint(Some(
                        "Pass the parameter name (and value) as literals or bound parameters."
                            .into(),
                    ))))
                }
            }
        }
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
            self.evaluate(&values)?,
        )))
    }
}

/// `current_schemas(include_implicit)`: the schemas of the session's `search_path` that
/// unqualified names resolve in (`public` only, in Shoal), after `pg_catalog` when implicit
/// schemas are asked for, as PostgreSQL lists them (pg_dump reads it back after setting an
/// empty path).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSchemas {
    signature: Signature,
}

fn current_schemas(include_implicit: bool) -> Result<Vec<String>> {
    let path = match session::current() {
        Some(s) => s.setting("search_path"),
        None => settings::Settings::default().get("search_path"),
    }
    .map_err(pg)?
    .unwrap_or_default();
    let mut schemas = Vec::new();
    if include_implicit {
        schemas.push("pg_catalog".to_string());
    }
    for entry in path.split(',').map(|s| s.trim().trim_matches('"')) {
        if entry == "public" && !schemas.iter().any(|s| s == "public") {
            schemas.push("public".to_string());
        }
    }
    Ok(schemas)
}

impl ScalarUDFImpl for CurrentSchemas {
    fn name(&self) -> &str {
        "current_schemas"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(std::sync::Arc::new(
            arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, ListBuilder, StringBuilder};
        let flags = args.args[0].to_array(args.number_rows)?;
        let flags = flags.as_boolean();
        let mut out = ListBuilder::new(StringBuilder::new());
        for i in 0..args.number_rows {
            if flags.is_null(i) {
                out.append_null();
                continue;
            }
            for s in current_schemas(flags.value(i))? {
                out.values().append_value(s);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(out.finish())))
    }
}

/// Registers `current_schemas` (replacing pg_catalog's, which lists `public` whatever the
/// path).
pub fn register_current_schemas(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSchemas {
        signature: Signature::exact(vec![DataType::Boolean], Volatility::Stable),
    }));
}
