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

use crate::frontend::errors::PgError;

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
        prepared: Box<PreparedSql>,
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
                prepared: Box::new(PreparedSql {
                    types: data_types.clone(),
                    statement: statement.as_ref().clone(),
                }),
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
    pub fn prepare(&mut self, name: &str, prepared: Box<PreparedSql>) -> Result<(), PgError> {
        if self.0.contains_key(name) {
            return Err(PgError::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        self.0.insert(name.to_string(), *prepared);
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
        let mut highest = prepared.types.len();
        let _ = visit_expressions_mut(&mut statement, |e| {
            if let Some(n) = placeholder(e) {
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
        substitute(&mut statement, args, &prepared.types);
        Ok(statement)
    }
}

/// The number of a `$n` placeholder.
fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        },
        _ => None,
    }
}

/// A parameter's type without its length: PostgreSQL ignores a parameter type's modifier
/// (`PREPARE p(char(2))` takes `'abcd'` whole), where a cast to `char(n)` or `varchar(n)`
/// would cut the value.
fn without_length(t: &DataType) -> DataType {
    match t {
        DataType::Char(_) | DataType::Character(_) => DataType::Text,
        DataType::Varchar(_) | DataType::CharacterVarying(_) | DataType::CharVarying(_) => {
            DataType::Varchar(None)
        }
        other => other.clone(),
    }
}

/// Replaces each `$n` with `args[n - 1]`, cast to `types[n - 1]` where one is given.
fn substitute(statement: &mut Statement, args: &[Expr], types: &[DataType]) {
    let _ = visit_expressions_mut(statement, |e| {
        if let Some(n) = placeholder(e).filter(|n| *n >= 1 && *n <= args.len()) {
            let arg = args[n - 1].clone();
            *e = match types.get(n - 1) {
                Some(t) => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(arg),
                    data_type: without_length(t),
                    array: false,
                    format: None,
                },
                None => Expr::Nested(Box::new(arg)),
            };
        }
        ControlFlow::<()>::Continue(())
    });
}

/// A parameter bound to a `DECLARE ... CURSOR FOR` in the extended protocol, as the
/// expression it stands for: text-format values as typed literals, binary ones decoded for
/// the types drivers send that way.
pub struct BoundParameter<'a> {
    pub value: Option<&'a [u8]>,
    pub binary: bool,
    /// The type the client gave (`None`: unknown, read as text).
    pub pg_type: Option<&'a datafusion_postgres::pgwire::api::Type>,
}

/// `statement` (a DECLARE) with its `$n` replaced by the bound parameters.
pub fn bind_parameters(
    mut statement: Statement,
    params: &[BoundParameter<'_>],
) -> Result<Statement, PgError> {
    use datafusion_postgres::pgwire::api::Type;
    let mut args = Vec::with_capacity(params.len());
    let mut types = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let Some(bytes) = p.value else {
            args.push(Expr::value(Value::Null));
            types.push(None);
            continue;
        };
        let text = if p.binary {
            let fixed = |n: usize| -> Result<&[u8], PgError> {
                if bytes.len() == n {
                    Ok(bytes)
                } else {
                    Err(PgError::new(
                        "08P01",
                        format!("incorrect binary data format in bind parameter {}", i + 1),
                    ))
                }
            };
            match p.pg_type {
                Some(t) if *t == Type::INT2 => {
                    i16::from_be_bytes([fixed(2)?[0], bytes[1]]).to_string()
                }
                Some(t) if *t == Type::INT4 => {
                    i32::from_be_bytes(fixed(4)?.try_into().unwrap_or([0; 4])).to_string()
                }
                Some(t) if *t == Type::INT8 => {
                    i64::from_be_bytes(fixed(8)?.try_into().unwrap_or([0; 8])).to_string()
                }
                Some(t) if *t == Type::FLOAT8 => {
                    f64::from_be_bytes(fixed(8)?.try_into().unwrap_or([0; 8])).to_string()
                }
                Some(t) if *t == Type::BOOL => (fixed(1)?[0] != 0).to_string(),
                Some(t) if *t == Type::TEXT || *t == Type::VARCHAR => {
                    String::from_utf8(bytes.to_vec()).map_err(|_| {
                        PgError::new("22021", "invalid byte sequence for encoding \"UTF8\"")
                    })?
                }
                _ => {
                    return Err(PgError::new(
                        "0A000",
                        format!(
                            "a binary-format parameter of type {} for DECLARE is not supported",
                            p.pg_type.map_or("unknown", |t| t.name())
                        ),
                    )
                    .with_hint(Some("Bind the parameter in text format.".into())))
                }
            }
        } else {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| PgError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?
        };
        args.push(Expr::value(Value::SingleQuotedString(text)));
        types.push(p.pg_type.and_then(sql_type));
    }
    // A parameter without a type stays a text literal, which the query's context coerces.
    let typed: Vec<DataType> = types
        .iter()
        .map(|t| t.clone().unwrap_or(DataType::Unspecified))
        .collect();
    let _ = visit_expressions_mut(&mut statement, |e| {
        if let Some(n) = placeholder(e).filter(|n| *n >= 1 && *n <= args.len()) {
            let arg = args[n - 1].clone();
            *e = match &typed[n - 1] {
                DataType::Unspecified => Expr::Nested(Box::new(arg)),
                t => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(arg),
                    data_type: without_length(t),
                    array: false,
                    format: None,
                },
            };
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(statement)
}

/// The SQL type a parameter's PostgreSQL type is cast to.
fn sql_type(t: &datafusion_postgres::pgwire::api::Type) -> Option<DataType> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    if *t == datafusion_postgres::pgwire::api::Type::UNKNOWN {
        return None;
    }
    let name = match t.name() {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        // A bpchar parameter has no length (`char` alone would be char(1) and cut it).
        "bpchar" => "text",
        other => other,
    };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(name)
        .and_then(|mut p| p.parse_data_type())
        .ok()
}

#[cfg(test)]
mod tests;
