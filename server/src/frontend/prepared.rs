//! SQL-level prepared statements (`PREPARE`, `EXECUTE`, `DEALLOCATE [ALL]`) and `DISCARD`,
//! each session's own as in PostgreSQL. (DataFusion keeps `PREPARE`d plans on the one context
//! every connection shares, so one session could `EXECUTE` another's.)
//!
//! `EXECUTE name(args)` runs the prepared statement with each `$n` replaced by its argument
//! (cast to the declared type, when `PREPARE` declared one): the statement then takes the
//! same path as if the client had sent it, hooks, transaction and all.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, CastKind, DataType, DiscardObject, Expr, Statement, Value,
};

use crate::errors::PgError;

/// A statement kept by `PREPARE`.
#[derive(Clone, Debug)]
pub struct PreparedSql {
    /// The declared parameter types (possibly fewer than the statement uses).
    types: Vec<DataType>,
    statement: Statement,
}

/// What a session-level statement asks.
#[derive(Debug)]
pub enum SessionStatement {
    Prepare {
        name: String,
        prepared: PreparedSql,
    },
    Execute {
        name: String,
        args: Vec<Expr>,
    },
    /// `DEALLOCATE name` (`None`: `DEALLOCATE ALL`).
    Deallocate(Option<String>),
    Discard(DiscardObject),
}

impl SessionStatement {
    pub fn of(stmt: &Statement) -> Option<SessionStatement> {
        Some(match stmt {
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => SessionStatement::Prepare {
                name: name.value.clone(),
                prepared: PreparedSql {
                    types: data_types.clone(),
                    statement: statement.as_ref().clone(),
                },
            },
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                using,
                into,
                ..
            } if using.is_empty() && into.is_empty() => SessionStatement::Execute {
                name: name.to_string(),
                args: parameters.clone(),
            },
            Statement::Deallocate { name, .. } => SessionStatement::Deallocate(
                if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                    None
                } else {
                    Some(name.value.clone())
                },
            ),
            Statement::Discard { object_type } => SessionStatement::Discard(*object_type),
            _ => return None,
        })
    }
}

fn missing(name: &str) -> PgError {
    PgError::new(
        "26000",
        format!("prepared statement \"{name}\" does not exist"),
    )
}

/// One session's `PREPARE`d statements.
#[derive(Debug, Default)]
pub struct PreparedStatements(HashMap<String, PreparedSql>);

impl PreparedStatements {
    pub fn prepare(&mut self, name: &str, prepared: PreparedSql) -> Result<(), PgError> {
        if self.0.contains_key(name) {
            return Err(PgError::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        self.0.insert(name.to_string(), prepared);
        Ok(())
    }

    /// Removes `name`; false when there is none.
    pub fn deallocate(&mut self, name: &str) -> bool {
        self.0.remove(name).is_some()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The statement `EXECUTE name(args)` runs.
    pub fn bind(&self, name: &str, args: &[Expr]) -> Result<Statement, PgError> {
        let prepared = self.0.get(name).ok_or_else(|| missing(name))?;
        let mut statement = prepared.statement.clone();
        let index = |e: &Expr| match e {
            Expr::Value(v) => match &v.value {
                Value::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
                _ => None,
            },
            _ => None,
        };
        let mut highest = prepared.types.len();
        let _ = visit_expressions_mut(&mut statement, |e| {
            if let Some(n) = index(e) {
                highest = highest.max(n);
            }
            ControlFlow::<()>::Continue(())
        });
        if args.len() != highest {
            return Err(PgError::new(
                "42601",
                format!("wrong number of parameters for prepared statement \"{name}\""),
            )
            .with_detail(Some(format!(
                "Expected {highest} parameters but got {}.",
                args.len()
            ))));
        }
        let _ = visit_expressions_mut(&mut statement, |e| {
            if let Some(n) = index(e).filter(|n| *n >= 1) {
                let arg = args[n - 1].clone();
                *e = match prepared.types.get(n - 1) {
                    Some(t) => Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(arg),
                        data_type: t.clone(),
                        array: false,
                        format: None,
                    },
                    None => Expr::Nested(Box::new(arg)),
                };
            }
            ControlFlow::<()>::Continue(())
        });
        Ok(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn execute_binds_arguments_with_declared_types() {
        let mut p = PreparedStatements::default();
        let Some(SessionStatement::Prepare { name, prepared }) =
            SessionStatement::of(&parse("PREPARE q (int) AS SELECT $1 + 1, $2"))
        else {
            panic!("not a PREPARE");
        };
        p.prepare(&name, prepared.clone()).unwrap();
        assert_eq!(p.prepare(&name, prepared).unwrap_err().code, "42P05");
        let Some(SessionStatement::Execute { name, args }) =
            SessionStatement::of(&parse("EXECUTE q(41, 'x')"))
        else {
            panic!("not an EXECUTE");
        };
        assert_eq!(
            p.bind(&name, &args).unwrap().to_string(),
            "SELECT CAST(41 AS INT) + 1, ('x')"
        );
        assert_eq!(p.bind(&name, &args[..1]).unwrap_err().code, "42601");
        assert_eq!(p.bind("nope", &args).unwrap_err().code, "26000");
        assert!(matches!(
            SessionStatement::of(&parse("DEALLOCATE ALL")),
            Some(SessionStatement::Deallocate(None))
        ));
        assert!(p.deallocate("q"));
        assert!(!p.deallocate("q"));
    }
}
