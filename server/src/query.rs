//! The DataFusion layer: the table providers (`provider`), the execution nodes (`scan`:
//! shard scans on the workers, `sink`: INSERT, `dml`: UPDATE and DELETE), the optimizer rule
//! that pushes partial aggregates to the workers (`pushdown`), distributed execution in
//! stages on the workers (`distributed`) with joins of colocated tables per shard group
//! (`colocated_join`), and of reference tables and small sides collected against each
//! partition of the other side (`collect_join`), `NOT IN` with PostgreSQL's NULLs as NOT
//! EXISTS or as an ordinary anti join there (`not_in`), Shoal's views (`views`), and
//! the rules and functions whose behaviour Shoal takes from PostgreSQL where DataFusion
//! differs (`pg_*`).

pub mod collect_join;
pub mod colocated_join;
pub mod column_defaults;
pub mod distributed;
pub mod dml;
pub mod not_in;
pub mod pg_aggregates;
pub mod pg_arrays;
pub mod pg_bpchar;
pub mod pg_bytea;
pub mod pg_casts;
pub mod pg_from_functions;
pub mod pg_interval;
pub mod pg_json;
pub mod pg_like;
pub mod pg_limits;
pub mod pg_numeric;
pub mod pg_text_out;
pub mod pg_time_zone;
pub mod pg_to_char;
pub mod pg_vectors;
pub mod provider;
pub mod pushdown;
pub mod scan;
pub mod sink;
pub mod statement_scope;
pub mod views;

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

/// Rewrites every expression of `plan` and of its subqueries bottom-up with `f`, which is
/// given the schemas an expression of a node is typed against: the node's first input's (a
/// projection, a filter, an aggregate) and its own (a join's condition; VALUES). Top-level
/// expressions keep their names, as DataFusion's own rewrites keep them: a group-by
/// expression is referred to by its name above the aggregate.
pub(crate) fn rewrite_plan_expressions<F>(
    plan: datafusion::logical_expr::LogicalPlan,
    f: F,
) -> datafusion::common::Result<datafusion::logical_expr::LogicalPlan>
where
    F: Fn(
        datafusion::logical_expr::Expr,
        &datafusion::common::DFSchema,
        &datafusion::common::DFSchema,
    ) -> datafusion::common::Result<
        datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
    >,
{
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    plan.transform_up_with_subqueries(|p| {
        let own = std::sync::Arc::clone(p.schema());
        let input = p
            .inputs()
            .first()
            .map(|i| std::sync::Arc::clone(i.schema()))
            .unwrap_or_else(|| std::sync::Arc::clone(&own));
        let names = NamePreserver::new(&p);
        let rewritten = p.map_expressions(|e| {
            let saved = names.save(&e);
            Ok(e.transform_up(|e| f(e, &input, &own))?
                .update_data(|e| saved.restore(e)))
        })?;
        if rewritten.transformed {
            rewritten.map_data(|p| p.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })
    .map(|t| t.data)
}
