//! `VACUUM` and `ANALYZE` in PostgreSQL's syntax, as `pgbench -i`, psql runbooks and
//! maintenance scripts send them.
//!
//! What they mean on Shoal's immutable files:
//! - `VACUUM [FULL] [tables]` merges each named table's small files now (what compaction
//!   does in the background), so that a table loaded in many small writes is read from few
//!   files. There are no dead rows to reclaim: UPDATE and DELETE rewrite the files they change.
//! - `ANALYZE [tables]` has nothing to collect: the statistics the planner and `pg_class`
//!   read (rows, bytes per file) are the catalog's, exact and current after every commit. It
//!   checks that the tables and columns exist, as PostgreSQL does.
//!
//! sqlparser reads only some of PostgreSQL's forms (`VACUUM ANALYZE t`, option lists and
//! several tables are missing), so [`parse`] reads the statement's tokens itself; the forms
//! sqlparser does read reach [`from_statement`] through the extended protocol.

use datafusion::sql::sqlparser::ast::{ObjectName, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use shoal_sql_functions::Cluster;

use crate::frontend::errors::PgError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceKind {
    Vacuum,
    Analyze,
}

impl MaintenanceKind {
    pub fn tag(self) -> &'static str {
        match self {
            MaintenanceKind::Vacuum => "VACUUM",
            MaintenanceKind::Analyze => "ANALYZE",
        }
    }
}

/// A table a maintenance statement names, with the columns it names (ANALYZE's column list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintainedTable {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maintenance {
    pub kind: MaintenanceKind,
    /// Every table when empty.
    pub tables: Vec<MaintainedTable>,
}

fn syntax_error(near: &str) -> PgError {
    PgError::new("42601", format!("syntax error at or near \"{near}\""))
}

/// An identifier as PostgreSQL folds it: quoted ones keep their case.
fn identifier(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) => Some(match w.quote_style {
            Some(_) => w.value.clone(),
            None => w.value.to_lowercase(),
        }),
        _ => None,
    }
}

fn keyword(t: Option<&Token>) -> Option<String> {
    match t {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// `VACUUM`/`ANALYZE` in PostgreSQL's grammar; `None` when `sql` is another statement.
pub fn parse(sql: &str) -> Option<Result<Maintenance, PgError>> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let kind = match keyword(tokens.first())?.as_str() {
        "VACUUM" => MaintenanceKind::Vacuum,
        "ANALYZE" | "ANALYSE" => MaintenanceKind::Analyze,
        _ => return None,
    };
    Some(parse_tokens(kind, &tokens[1..]))
}

fn parse_tokens(kind: MaintenanceKind, tokens: &[Token]) -> Result<Maintenance, PgError> {
    let mut at = 0;
    let next_text = |at: usize| tokens.get(at).map_or(String::new(), |t| t.to_string());
    // `( option [value] [, ...] )`
    if tokens.first() == Some(&Token::LParen) {
        at = 1;
        loop {
            let Some(option) = keyword(tokens.get(at)) else {
                return Err(syntax_error(&next_text(at)));
            };
            let known: &[&str] = match kind {
                MaintenanceKind::Vacuum => &[
                    "FULL",
                    "FREEZE",
                    "VERBOSE",
                    "ANALYZE",
                    "ANALYSE",
                    "DISABLE_PAGE_SKIPPING",
                    "SKIP_LOCKED",
                    "INDEX_CLEANUP",
                    "PROCESS_TOAST",
                    "TRUNCATE",
                    "PARALLEL",
                ],
                MaintenanceKind::Analyze => &["VERBOSE", "SKIP_LOCKED"],
            };
            if !known.contains(&option.as_str()) {
                return Err(PgError::new(
                    "42601",
                    format!(
                        "unrecognized {} option \"{}\"",
                        kind.tag(),
                        option.to_lowercase()
                    ),
                ));
            }
            at += 1;
            // An option's value (`INDEX_CLEANUP off`, `PARALLEL 2`, `FULL true`).
            if !matches!(tokens.get(at), Some(Token::Comma | Token::RParen) | None) {
                at += 1;
            }
            match tokens.get(at) {
                Some(Token::Comma) => at += 1,
                Some(Token::RParen) => {
                    at += 1;
                    break;
                }
                _ => return Err(syntax_error(&next_text(at))),
            }
        }
    } else {
        let legacy: &[&str] = match kind {
            MaintenanceKind::Vacuum => &["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"],
            MaintenanceKind::Analyze => &["VERBOSE"],
        };
        while keyword(tokens.get(at)).is_some_and(|k| legacy.contains(&k.as_str())) {
            at += 1;
        }
    }
    let mut tables = Vec::new();
    while at < tokens.len() && tokens[at] != Token::SemiColon {
        let Some(mut name) = identifier(&tokens[at]) else {
            return Err(syntax_error(&next_text(at)));
        };
        at += 1;
        if tokens.get(at) == Some(&Token::Period) {
            // Only `public` holds tables.
            if name != "public" {
                return Err(PgError::new(
                    "42P01",
                    format!(
                        "relation \"{name}.{}\" does not exist",
                        next_text(at + 1).trim_matches('"')
                    ),
                ));
            }
            name = tokens
                .get(at + 1)
                .and_then(identifier)
                .ok_or_else(|| syntax_error(&next_text(at + 1)))?;
            at += 2;
        }
        let mut columns = Vec::new();
        if tokens.get(at) == Some(&Token::LParen) {
            at += 1;
            loop {
                let column = tokens
                    .get(at)
                    .and_then(identifier)
                    .ok_or_else(|| syntax_error(&next_text(at)))?;
                columns.push(column);
                at += 1;
                match tokens.get(at) {
                    Some(Token::Comma) => at += 1,
                    Some(Token::RParen) => {
                        at += 1;
                        break;
                    }
                    _ => return Err(syntax_error(&next_text(at))),
                }
            }
        }
        tables.push(MaintainedTable { name, columns });
        match tokens.get(at) {
            Some(Token::Comma) => at += 1,
            Some(Token::SemiColon) | None => {}
            _ => return Err(syntax_error(&next_text(at))),
        }
    }
    // Nothing but `;` may follow.
    if tokens[at.min(tokens.len())..]
        .iter()
        .any(|t| *t != Token::SemiColon)
    {
        return Err(syntax_error(&next_text(at + 1)));
    }
    Ok(Maintenance { kind, tables })
}

fn table_of(name: &ObjectName) -> MaintainedTable {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    MaintainedTable {
        name: parts.last().cloned().unwrap_or_default(),
        columns: Vec::new(),
    }
}

/// The forms sqlparser reads (`VACUUM [FULL] [t]`, `ANALYZE [t]`), as the extended protocol
/// delivers them.
pub fn from_statement(stmt: &Statement) -> Option<Maintenance> {
    match stmt {
        Statement::Vacuum(v) => Some(Maintenance {
            kind: MaintenanceKind::Vacuum,
            tables: v.table_name.iter().map(table_of).collect(),
        }),
        Statement::Analyze(a) => Some(Maintenance {
            kind: MaintenanceKind::Analyze,
            tables: a
                .table_name
                .iter()
                .map(|n| MaintainedTable {
                    columns: a.columns.iter().map(|c| c.value.clone()).collect(),
                    ..table_of(n)
                })
                .collect(),
        }),
        _ => None,
    }
}

/// Runs `m`; `in_transaction`: the session is inside a transaction (block or a
/// multi-statement string), where VACUUM cannot run.
pub async fn run(cluster: &Cluster, m: &Maintenance, in_transaction: bool) -> Result<(), PgError> {
    if m.kind == MaintenanceKind::Vacuum && in_transaction {
        return Err(PgError::new(
            "25001",
            "VACUUM cannot run inside a transaction block",
        ));
    }
    let mut ids = Vec::new();
    for t in &m.tables {
        let info = cluster
            .catalog()
            .table_by_name(&t.name)
            .map_err(|e| crate::frontend::errors::from_catalog(&e))?
            .ok_or_else(|| {
                PgError::new("42P01", format!("relation \"{}\" does not exist", t.name))
            })?;
        for c in &t.columns {
            if !info.columns.iter().any(|ic| &ic.name == c) {
                return Err(PgError::new(
                    "42703",
                    format!("column \"{c}\" of relation \"{}\" does not exist", t.name),
                ));
            }
        }
        ids.push(info.table_id);
    }
    if m.kind == MaintenanceKind::Vacuum {
        let only = (!m.tables.is_empty()).then_some(ids.as_slice());
        let merged = cluster
            .compact_tables(2, only)
            .await
            .map_err(|e| crate::frontend::errors::from_cluster(&e))?;
        tracing::info!(merged, "VACUUM merged small files");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
