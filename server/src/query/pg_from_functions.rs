//! A scalar function in FROM, as PostgreSQL reads it: `FROM string_to_array(x, ',') s` is a
//! relation of one row whose one column `s` holds the function's value. Grafana's table list
//! reads the search path that way. DataFusion only knows table functions there ("table
//! function 'string_to_array' not found"); before planning, [`rewrite`] turns such a call
//! into `(SELECT f(args) AS s) AS s`.
//!
//! Only the scalar functions listed in [`SCALAR_IN_FROM`] are rewritten: a table function
//! (`generate_series`, `unnest`, a cluster function returning rows) must stay a table
//! function. The one column of `generate_series`, `generate_subscripts` and a one-argument
//! `unnest` is named as PostgreSQL names it: after the alias (`FROM generate_series(1, 3) i`
//! has a column `i`), else after the function (DataFusion named it `value`).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias, TableAliasColumnDef,
    TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Scalar functions tools call in FROM.
const SCALAR_IN_FROM: [&str; 6] = [
    "string_to_array",
    "regexp_split_to_array",
    "current_schemas",
    "current_setting",
    "current_database",
    "current_schema",
];

/// Table functions of one output column.
const SINGLE_COLUMN: [&str; 3] = ["generate_series", "generate_subscripts", "unnest"];

struct ScalarInFrom {
    changed: bool,
}

impl VisitorMut for ScalarInFrom {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } = factor
        {
            if let [_] = array_exprs.as_slice() {
                self.changed |= name_single_column(alias, "unnest");
            }
            return ControlFlow::Continue(());
        }
        let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality: false,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let [ObjectNamePart::Identifier(fname)] = name.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        let lower = fname.value.to_ascii_lowercase();
        if SINGLE_COLUMN.contains(&lower.as_str()) && (lower != "unnest" || args.args.len() == 1) {
            self.changed |= name_single_column(alias, &lower);
            return ControlFlow::Continue(());
        }
        if !SCALAR_IN_FROM.contains(&lower.as_str()) {
            return ControlFlow::Continue(());
        }
        // PostgreSQL names the column after the alias's column list, else the alias, else
        // the function.
        let (alias_name, column) = match alias {
            Some(a) => (
                a.name.clone(),
                a.columns
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| a.name.clone()),
            ),
            None => (Ident::new(&lower), Ident::new(&lower)),
        };
        let call = datafusion::sql::sqlparser::ast::Expr::Function(super::from_clause_call(
            ObjectName::from(vec![fname.clone()]),
            args,
        ));
        // The one-row query, parsed from its text: the AST's constructors change with
        // every sqlparser release.
        let sql = format!("SELECT {call} AS {column}");
        let Ok(Some(Statement::Query(subquery))) =
            Parser::parse_sql(&PostgreSqlDialect {}, &sql).map(|mut v| v.pop())
        else {
            return ControlFlow::Continue(());
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(TableAlias {
                explicit: true,
                name: alias_name,
                columns: vec![],
                at: None,
            }),
            sample: None,
        };
        self.changed = true;
        ControlFlow::Continue(())
    }
}

/// Names the one column of a table function as PostgreSQL does: after the table alias, else
/// after the function (DataFusion calls it `value`). True when the alias changed.
fn name_single_column(alias: &mut Option<TableAlias>, function: &str) -> bool {
    match alias {
        Some(a) if a.columns.is_empty() => {
            a.columns = vec![TableAliasColumnDef {
                name: a.name.clone(),
                data_type: None,
            }];
            true
        }
        Some(_) => false,
        None => {
            *alias = Some(TableAlias {
                explicit: true,
                name: Ident::new(function),
                columns: vec![TableAliasColumnDef {
                    name: Ident::new(function),
                    data_type: None,
                }],
                at: None,
            });
            true
        }
    }
}

/// Rewrites the scalar function calls in FROM of `q`; true when there were any.
pub fn rewrite(q: &mut Query) -> bool {
    let mut v = ScalarInFrom { changed: false };
    let _ = q.visit(&mut v);
    v.changed
}
