//! The DataFusion layer's PostgreSQL semantics: functions whose behaviour Shoal takes from
//! PostgreSQL where DataFusion differs.

pub mod column_defaults;
pub mod pg_aggregates;
pub mod pg_bytea;
pub mod pg_casts;
pub mod pg_from_functions;
pub mod pg_interval;
pub mod pg_json;
pub mod pg_like;
pub mod pg_limits;
pub mod pg_text_out;
pub mod pg_time_zone;
pub mod pg_to_char;
pub mod pg_vectors;
pub mod statement_scope;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, TableFunctionArgs,
};

/// The SQL expression `name(args...)`, for the rewrites that run before planning.
pub(crate) fn sql_call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// A function called in FROM (`FROM f(args)`, a table factor with arguments) as the same call
/// in an expression.
pub(crate) fn from_clause_call(name: ObjectName, args: &TableFunctionArgs) -> Function {
    Function {
        name,
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.args.clone(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }
}
