//! The statements Shoal answers itself before DataFusion sees them: cluster functions
//! (`SELECT fn(...)` without FROM, `CALL fn(...)`), DDL on Shoal tables, COPY, and the
//! statements that are not supported yet.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self as sql, AlterTableOperation, CopySource, CopyTarget, FunctionArg, FunctionArgExpr,
    FunctionArguments, ObjectType, SelectItem, SetExpr, Statement,
};
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::portal::{ExecutingPortal, Format};
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::DEFAULT_NAME;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireResult};
use datafusion_postgres::pgwire::messages::response::NoticeResponse;
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;
use shoal_catalog::{ColumnDef, ColumnDefault, KeyConstraint, SqlType};

use crate::frontend::indexes::KeyRequest;
use shoal_sql_functions::functions::{self, FunctionCall, Notice, NoticeLevel};
use shoal_sql_functions::Cluster;
use tracing::Instrument;

use crate::frontend::copy::{copy_out, start_copy_in, CopyOptions};
use crate::frontend::errors::{from_cluster, from_datafusion, PgError};
use crate::frontend::{column_names, settings};

/// What a statement asks of Shoal.
enum Action {
    /// `SET [LOCAL] name = value`, `SET name TO DEFAULT` or `RESET name` (`value` None),
    /// with the command tag.
    Set {
        name: String,
        value: Option<String>,
        local: bool,
        tag: &'static str,
    },
    /// `RESET ALL`.
    ResetAll,
    /// `SHOW name`.
    Show(String),
    /// `SHOW ALL`.
    ShowAll,
    Call(FunctionCall),
    /// `SELECT ... FROM cluster_function(...)`: the function's rows, then the rest of the
    /// query (`query`, which reads them as the table `fn_result`).
    CallFrom {
        call: FunctionCall,
        query: Box<Statement>,
    },
    /// A query whose unnamed function-call columns get PostgreSQL's names (`count`, not
    /// `count(*)`); planned by DataFusion as usual.
    Query(Box<Statement>),
    CreateTable {
        name: String,
        columns: Vec<ColumnDef>,
        if_not_exists: bool,
        /// The PRIMARY KEY and UNIQUE constraints: recorded, not enforced (notice).
        keys: Vec<KeyRequest>,
    },
    CreateView {
        name: String,
        query: Box<sql::Query>,
        or_replace: bool,
        if_not_exists: bool,
    },
    DropView {
        names: Vec<String>,
        if_exists: bool,
    },
    CreateIndex(Box<crate::frontend::indexes::IndexRequest>),
    DropIndex {
        names: Vec<String>,
        if_exists: bool,
    },
    /// `CREATE TABLE name AS query`.
    CreateTableAs {
        name: String,
        query: Box<sql::Query>,
        if_not_exists: bool,
    },
    Drop {
        names: Vec<String>,
        if_exists: bool,
    },
    Truncate {
        names: Vec<String>,
    },
    AddColumn {
        table: String,
        column: ColumnDef,
        if_not_exists: bool,
    },
    RenameTable {
        table: String,
        new_name: String,
    },
    RenameColumn {
        table: String,
        old: String,
        new: String,
    },
    DropColumns {
        table: String,
        columns: Vec<String>,
        if_exists: bool,
    },
    CopyIn {
        table: String,
        columns: Vec<String>,
        options: CopyOptions,
    },
    /// `VACUUM` or `ANALYZE`.
    Maintenance(crate::frontend::maintenance::Maintenance),
    /// `LOCK TABLE names IN ACCESS SHARE MODE` (what pg_dump takes): the tables are
    /// checked; the transaction's snapshot already keeps what it reads.
    LockShared {
        tables: Vec<String>,
    },
    /// `ALTER TABLE ... ADD [CONSTRAINT name] PRIMARY KEY (...)` or `UNIQUE (...)`: the key's
    /// columns must exist, a primary key's become NOT NULL (neither is enforced as unique).
    AddKey {
        table: String,
        key: KeyRequest,
    },
    /// `ALTER TABLE ... DROP CONSTRAINT [IF EXISTS] name`: a PRIMARY KEY or UNIQUE one.
    DropConstraint {
        table: String,
        name: String,
        if_exists: bool,
    },
    CopyOut {
        query: String,
        options: CopyOptions,
    },
    /// UPDATE or DELETE.
    Dml(Box<crate::query::dml::DmlStatement>),
    /// An INSERT with `DEFAULT VALUES` or `DEFAULT` among its values (filled in from the
    /// table's defaults, then run as any INSERT), or one whose SELECT source was rewritten
    /// (functions in FROM), and its table.
    InsertDefaults {
        insert: Box<Statement>,
        table: String,
    },
    /// `INSERT ... RETURNING`: the INSERT without its RETURNING list, the list, the table.
    InsertReturning {
        insert: Box<Statement>,
        returning: Vec<SelectItem>,
        table: String,
    },
    /// `EXPLAIN` of a cluster-function call: the call is shown, never run.
    ExplainCall(FunctionCall),
    Refuse(PgError),
}

pub(crate) fn object_name(n: &sql::ObjectName) -> String {
    // Shoal has one schema for user tables; `public.t` and `t` are the same table.
    n.0.last()
        .map(|p| match p.as_ident() {
            Some(i) => i.value.clone(),
            None => p.to_string(),
        })
        .unwrap_or_default()
}

fn column_def(table: &str, c: &sql::ColumnDef) -> Result<ColumnDef, PgError> {
    let type_text = c.data_type.to_string();
    // serial types are an integer column NOT NULL whose default is its own sequence.
    let serial_type = match type_text.to_ascii_lowercase().as_str() {
        "smallserial" | "serial2" => Some(SqlType::SmallInt),
        "serial" | "serial4" => Some(SqlType::Integer),
        "bigserial" | "serial8" => Some(SqlType::BigInt),
        _ => None,
    };
    let sequence = || ColumnDefault::Serial {
        sequence: format!("{table}_{}_seq", c.name.value),
    };
    let sql_type = match serial_type {
        Some(t) => t,
        None => SqlType::parse(&type_text).and_then(|t| t.check_declared().map(|()| t)).map_err(|e| match e {
            shoal_catalog::CatalogError::TypeModifier { .. } => crate::frontend::errors::from_catalog(&e),
            _ => PgError::new("0A000", format!("type \"{}\" is not supported", c.data_type)).with_hint(Some(
                "Supported: smallint, integer, bigint, serial, bigserial, real, double precision, numeric(p,s), text, varchar(n), char(n), boolean, date, timestamp, timestamptz, bytea, uuid, json, jsonb, and one-dimensional arrays of smallint, integer, bigint, real, double precision, text or boolean.".into(),
            )),
        })?,
    };
    let mut not_null = serial_type.is_some();
    let mut default = serial_type.map(|_| sequence());
    for o in &c.options {
        match &o.option {
            sql::ColumnOption::Null | sql::ColumnOption::Comment(_) => {}
            // A primary key implies NOT NULL, as in PostgreSQL; uniqueness is not enforced
            // (see `declares_key`).
            sql::ColumnOption::NotNull | sql::ColumnOption::PrimaryKey(_) => not_null = true,
            sql::ColumnOption::Unique(_) => {}
            sql::ColumnOption::Default(expr) => {
                if default.is_some() {
                    return Err(PgError::new(
                        "42601",
                        format!(
                            "multiple default values specified for column \"{}\" of table \"{table}\"",
                            c.name.value
                        ),
                    ));
                }
                default = Some(ColumnDefault::Expr(expr.to_string()));
            }
            // Identity with its sequence's defaults; options (START WITH, INCREMENT BY, ...)
            // are refused below rather than ignored.
            sql::ColumnOption::Generated {
                generated_as: sql::GeneratedAs::ByDefault,
                generation_expr: None,
                sequence_options,
                ..
            } if matches!(
                sql_type,
                SqlType::SmallInt | SqlType::Integer | SqlType::BigInt
            ) && sequence_options.as_ref().is_none_or(|o| o.is_empty()) =>
            {
                if default.is_some() {
                    return Err(PgError::new(
                        "42601",
                        format!(
                            "both default and identity specified for column \"{}\" of table \"{table}\"",
                            c.name.value
                        ),
                    ));
                }
                not_null = true;
                default = Some(sequence());
            }
            other => return Err(unsupported_constraint(&other.to_string())),
        }
    }
    Ok(ColumnDef::new(c.name.value.clone(), sql_type, not_null).with_default(default))
}

/// The columns of `CREATE TABLE`, with table-level `PRIMARY KEY (...)` making its columns
/// NOT NULL; and the PRIMARY KEY and UNIQUE constraints it declares.
fn table_columns(ct: &sql::CreateTable) -> Result<(Vec<ColumnDef>, Vec<KeyRequest>), PgError> {
    if ct.like.is_some() {
        return Err(
            PgError::new("0A000", "CREATE TABLE ... (LIKE ...) is not supported").with_hint(Some(
                "Copy the columns with CREATE TABLE new AS SELECT * FROM old LIMIT 0 (NOT NULL \
                 and defaults are not copied), or declare them."
                    .into(),
            )),
        );
    }
    let mut columns: Vec<ColumnDef> = ct
        .columns
        .iter()
        .map(|c| column_def(&object_name(&ct.name), c))
        .collect::<Result<_, _>>()?;
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].iter().any(|d| d.name == c.name) {
            return Err(PgError::new(
                "42701",
                format!("column \"{}\" specified more than once", c.name),
            ));
        }
    }
    let mut keys = Vec::new();
    for c in &ct.columns {
        for o in &c.options {
            let constraint_name =
                |n: &Option<sql::Ident>| o.name.as_ref().or(n.as_ref()).map(|i| i.value.clone());
            match &o.option {
                sql::ColumnOption::PrimaryKey(pk) => keys.push(KeyRequest {
                    constraint: KeyConstraint::PrimaryKey,
                    name: constraint_name(&pk.name),
                    columns: vec![c.name.value.clone()],
                    nulls_distinct: None,
                }),
                sql::ColumnOption::Unique(u) => keys.push(KeyRequest {
                    constraint: KeyConstraint::Unique,
                    name: constraint_name(&u.name),
                    columns: vec![c.name.value.clone()],
                    nulls_distinct: nulls_distinct(&u.nulls_distinct),
                }),
                _ => {}
            }
        }
    }
    for constraint in &ct.constraints {
        let key = match constraint {
            sql::TableConstraint::PrimaryKey(_) | sql::TableConstraint::Unique(_) => {
                key_request(constraint)
            }
            other => return Err(unsupported_constraint(&other.to_string())),
        };
        let Some(key) = key else { continue };
        for name in &key.columns {
            let column = columns
                .iter_mut()
                .find(|c| &c.name == name)
                .ok_or_else(|| {
                    PgError::new(
                        "42703",
                        format!("column \"{name}\" named in key does not exist"),
                    )
                })?;
            // A primary key implies NOT NULL, as in PostgreSQL.
            if key.constraint == KeyConstraint::PrimaryKey {
                column.not_null = true;
            }
        }
        keys.push(key);
    }
    if keys
        .iter()
        .filter(|k| k.constraint == KeyConstraint::PrimaryKey)
        .count()
        > 1
    {
        return Err(PgError::new(
            "42P16",
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                object_name(&ct.name)
            ),
        ));
    }
    // As PostgreSQL does, keys on the same columns are one: the first name written is kept,
    // and a primary key among them makes it the primary key.
    let mut merged: Vec<KeyRequest> = Vec::new();
    for key in keys {
        match merged
            .iter_mut()
            .find(|m| m.columns == key.columns && m.nulls_distinct == key.nulls_distinct)
        {
            Some(m) => {
                if m.name.is_none() {
                    m.name = key.name;
                }
                if key.constraint == KeyConstraint::PrimaryKey {
                    m.constraint = KeyConstraint::PrimaryKey;
                }
            }
            None => merged.push(key),
        }
    }
    Ok((columns, merged))
}

/// `NULLS [NOT] DISTINCT` of a UNIQUE constraint, when written.
fn nulls_distinct(o: &sql::NullsDistinctOption) -> Option<bool> {
    match o {
        sql::NullsDistinctOption::None => None,
        sql::NullsDistinctOption::Distinct => Some(true),
        sql::NullsDistinctOption::NotDistinct => Some(false),
    }
}

/// A table-level PRIMARY KEY (...) or UNIQUE (...) constraint.
fn key_request(c: &sql::TableConstraint) -> Option<KeyRequest> {
    let columns = |keys: &[sql::IndexColumn]| -> Vec<String> {
        keys.iter()
            .map(|k| match &k.column.expr {
                sql::Expr::Identifier(i) => i.value.clone(),
                other => other.to_string(),
            })
            .collect()
    };
    match c {
        sql::TableConstraint::PrimaryKey(pk) => Some(KeyRequest {
            constraint: KeyConstraint::PrimaryKey,
            name: pk.name.as_ref().map(|i| i.value.clone()),
            columns: columns(&pk.columns),
            nulls_distinct: None,
        }),
        sql::TableConstraint::Unique(u) => Some(KeyRequest {
            constraint: KeyConstraint::Unique,
            name: u.name.as_ref().map(|i| i.value.clone()),
            columns: columns(&u.columns),
            nulls_distinct: nulls_distinct(&u.nulls_distinct),
        }),
        _ => None,
    }
}

fn unsupported_constraint(what: &str) -> PgError {
    PgError::new(
        "0A000",
        format!("\"{what}\" is not supported in Shoal tables"),
    )
    .with_hint(Some(
        "Shoal enforces NOT NULL, keeps DEFAULT, serial and GENERATED BY DEFAULT AS IDENTITY, \
         and accepts PRIMARY KEY and UNIQUE without enforcing them; check other constraints \
         when loading."
            .into(),
    ))
}

/// The cluster function a statement calls that changes the cluster (see
/// [`functions::changes_cluster`]), if any.
pub fn cluster_change(stmt: &Statement) -> Option<String> {
    match classify(stmt)? {
        Action::Call(call) if functions::changes_cluster(&call.name) => Some(call.name),
        _ => None,
    }
}

fn function_call(f: &sql::Function) -> Option<FunctionCall> {
    let name = object_name(&f.name).to_ascii_lowercase();
    if !functions::is_cluster_function(&name) {
        return None;
    }
    let mut args = Vec::new();
    match &f.args {
        FunctionArguments::None => {}
        FunctionArguments::List(list) => {
            for a in &list.args {
                let (n, e) = match a {
                    FunctionArg::Named { name, arg, .. } => {
                        (Some(name.value.to_ascii_lowercase()), arg)
                    }
                    FunctionArg::ExprNamed { name, arg, .. } => {
                        (Some(name.to_string().to_ascii_lowercase()), arg)
                    }
                    FunctionArg::Unnamed(arg) => (None, arg),
                };
                match e {
                    FunctionArgExpr::Expr(e) => args.push((n, e.clone())),
                    _ => return None,
                }
            }
        }
        FunctionArguments::Subquery(_) => return None,
    }
    Some(FunctionCall { name, args })
}

/// `SELECT ... FROM f(args)` over one cluster function that returns rows: the call, and the
/// query rewritten to read its result from `fn_result`.
fn call_in_from(q: &sql::Query) -> Option<Action> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    let [from] = sel.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    let sql::TableFactor::Table {
        name,
        alias,
        args: Some(args),
        ..
    } = &from.relation
    else {
        return None;
    };
    let fname = object_name(name).to_ascii_lowercase();
    // `citus_get_active_worker_nodes` is also a DataFusion table function (registered in
    // `session_context`), which plans with the rest of the query and honours binary result
    // formats; the hook's own path answers in text only (see `portal_format`).
    if !functions::returns_rows(&fname) || fname == "citus_get_active_worker_nodes" {
        return None;
    }
    let f = crate::query::from_clause_call(name.clone(), args);
    let call = function_call(&f)?;
    let mut new_sel = sel.as_ref().clone();
    new_sel.from[0].relation = sql::TableFactor::Table {
        name: sql::ObjectName::from(vec![sql::Ident::new("fn_result")]),
        alias: Some(alias.clone().unwrap_or(sql::TableAlias {
            name: sql::Ident::new(fname),
            columns: vec![],
            explicit: true,
            at: None,
        })),
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    };
    let mut new_q = q.clone();
    new_q.body = Box::new(SetExpr::Select(Box::new(new_sel)));
    Some(Action::CallFrom {
        call,
        query: Box::new(Statement::Query(Box::new(new_q))),
    })
}

/// The query with PostgreSQL's semantics where DataFusion's differ (column names, interval
/// arithmetic, LIKE escapes, `varchar(n)` and `char(n)`, uuid and json casts, functions in FROM); `None`
/// when nothing changed.
pub(crate) fn rewrite_query(q: &sql::Query) -> Option<sql::Query> {
    let named = column_names::rewrite(q);
    let mut query = named.clone().unwrap_or_else(|| q.clone());
    let arithmetic = crate::query::pg_interval::rewrite(&mut query);
    let like = crate::query::pg_like::rewrite(&mut query);
    let casts = crate::query::pg_casts::rewrite(&mut query);
    let json_casts = crate::query::pg_json::rewrite_casts(&mut query);
    let json_aggregates = crate::query::pg_json::rewrite_aggregates(&mut query);
    let from_functions = crate::query::pg_from_functions::rewrite(&mut query);
    let at_time_zone = crate::query::pg_time_zone::rewrite_at_time_zone(&mut query);
    (named.is_some()
        || at_time_zone
        || arithmetic
        || like
        || casts
        || json_casts
        || json_aggregates
        || from_functions)
        .then_some(query)
}

/// A `DECLARE ... CURSOR FOR query` with its query rewritten as [`rewrite_query`] rewrites
/// any (datafusion-postgres plans a cursor's query itself); `None` when nothing changed.
pub(crate) fn rewrite_declare(stmt: &Statement) -> Option<Statement> {
    let Statement::Declare { stmts } = stmt else {
        return None;
    };
    let mut changed = false;
    let mut stmts = stmts.clone();
    for d in &mut stmts {
        if let Some(q) = d.for_query.as_ref().and_then(|q| rewrite_query(q)) {
            d.for_query = Some(Box::new(q));
            changed = true;
        }
    }
    changed.then_some(Statement::Declare { stmts })
}

fn classify(stmt: &Statement) -> Option<Action> {
    if let Some(a) = settings_action(stmt) {
        return Some(a);
    }
    match stmt {
        Statement::Query(q) => {
            if let Some(a) = call_in_from(q) {
                return Some(a);
            }
            if let SetExpr::Select(sel) = q.body.as_ref() {
                if let ([item], true, None) =
                    (sel.projection.as_slice(), sel.from.is_empty(), &q.order_by)
                {
                    let expr = match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            Some(e)
                        }
                        _ => None,
                    };
                    if let Some(sql::Expr::Function(f)) = expr {
                        if let Some(call) = function_call(f) {
                            return Some(Action::Call(call));
                        }
                    }
                }
            }
            rewrite_query(q).map(|query| Action::Query(Box::new(Statement::Query(Box::new(query)))))
        }
        Statement::Call(f) => function_call(f).map(Action::Call),
        Statement::Explain {
            statement,
            analyze,
            format,
            options,
            ..
        } => explain(statement, *analyze, format.is_some(), options.as_deref()),
        Statement::Lock(lock) => Some(match lock.lock_mode {
            Some(sql::LockTableMode::AccessShare) => Action::LockShared {
                tables: lock.tables.iter().map(|t| object_name(&t.name)).collect(),
            },
            _ => Action::Refuse(
                PgError::new(
                    "0A000",
                    format!(
                        "LOCK TABLE IN {} MODE is not supported",
                        lock.lock_mode
                            .as_ref()
                            .map_or("ACCESS EXCLUSIVE".to_string(), |m| m.to_string())
                    ),
                )
                .with_hint(Some(
                    "Shoal takes no table locks: a transaction reads one snapshot, and of two \
                     that change the same rows the second to commit fails with 40001. \
                     ACCESS SHARE is taken (it blocks nothing a Shoal reader needs)."
                        .into(),
                )),
            ),
        }),
        Statement::Vacuum(_) | Statement::Analyze(_) => {
            crate::frontend::maintenance::from_statement(stmt).map(Action::Maintenance)
        }
        Statement::CreateTable(ct) => {
            if let Some(query) = &ct.query {
                if !ct.columns.is_empty() {
                    return Some(Action::Refuse(PgError::new("0A000", "CREATE TABLE name (columns) AS ... is not supported").with_hint(Some(
                        "Name the columns in the query: CREATE TABLE t AS SELECT a AS x, b AS y ...".into(),
                    ))));
                }
                return Some(Action::CreateTableAs {
                    name: object_name(&ct.name),
                    query: query.clone(),
                    if_not_exists: ct.if_not_exists,
                });
            }
            Some(match table_columns(ct) {
                Ok((columns, keys)) => Action::CreateTable {
                    name: object_name(&ct.name),
                    columns,
                    if_not_exists: ct.if_not_exists,
                    keys,
                },
                Err(e) => Action::Refuse(e),
            })
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => Some(Action::Drop {
            names: names.iter().map(object_name).collect(),
            if_exists: *if_exists,
        }),
        Statement::Truncate(t) => Some(Action::Truncate {
            names: t.table_names.iter().map(|n| object_name(&n.name)).collect(),
        }),
        Statement::AlterTable(at) => {
            if at.operations.len() != 1 {
                return Some(Action::Refuse(PgError::new(
                    "0A000",
                    "only one ALTER TABLE action at a time is supported",
                )));
            }
            match &at.operations[0] {
                AlterTableOperation::AddColumn {
                    column_def: c,
                    if_not_exists,
                    ..
                } => Some(match column_def(&object_name(&at.name), c) {
                    Ok(column) => Action::AddColumn {
                        table: object_name(&at.name),
                        column,
                        if_not_exists: *if_not_exists,
                    },
                    Err(e) => Action::Refuse(e),
                }),
                AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                } => Some(Action::RenameColumn {
                    table: object_name(&at.name),
                    old: old_column_name.value.clone(),
                    new: new_column_name.value.clone(),
                }),
                AlterTableOperation::DropColumn {
                    column_names,
                    if_exists,
                    drop_behavior,
                    ..
                } => {
                    if matches!(drop_behavior, Some(sql::DropBehavior::Cascade)) {
                        return Some(Action::Refuse(PgError::new(
                            "0A000",
                            "DROP COLUMN ... CASCADE is not supported",
                        )));
                    }
                    Some(Action::DropColumns {
                        table: object_name(&at.name),
                        columns: column_names.iter().map(|c| c.value.clone()).collect(),
                        if_exists: *if_exists,
                    })
                }
                AlterTableOperation::RenameTable { table_name } => {
                    let new_name = match table_name {
                        sql::RenameTableNameKind::As(n) | sql::RenameTableNameKind::To(n) => {
                            object_name(n)
                        }
                    };
                    Some(Action::RenameTable {
                        table: object_name(&at.name),
                        new_name,
                    })
                }
                AlterTableOperation::AddConstraint {
                    constraint:
                        c @ (sql::TableConstraint::PrimaryKey(_) | sql::TableConstraint::Unique(_)),
                    ..
                } => Some(Action::AddKey {
                    table: object_name(&at.name),
                    key: key_request(c)?,
                }),
                AlterTableOperation::DropConstraint {
                    if_exists, name, ..
                } => Some(Action::DropConstraint {
                    table: object_name(&at.name),
                    name: name.value.clone(),
                    if_exists: *if_exists,
                }),
                other => Some(Action::Refuse(PgError::new(
                    "0A000",
                    format!("ALTER TABLE ... {other} is not supported"),
                ))),
            }
        }
        Statement::Insert(ins) if ins.on.is_some() => Some(Action::Refuse(
            PgError::new("0A000", "INSERT ... ON CONFLICT is not supported").with_hint(Some(
                "Shoal keeps no unique index to find a conflict with: insert only the new rows \
                 (INSERT ... SELECT ... WHERE NOT EXISTS (...)), or UPDATE the existing ones \
                 first."
                    .into(),
            )),
        )),
        Statement::Insert(ins) if ins.returning.is_some() => {
            let sql::TableObject::TableName(name) = &ins.table else {
                return Some(Action::Refuse(PgError::new(
                    "0A000",
                    "INSERT into a table function is not supported",
                )));
            };
            let mut plain = ins.clone();
            let returning = plain.returning.take().unwrap_or_default();
            Some(Action::InsertReturning {
                table: object_name(name),
                insert: Box::new(Statement::Insert(plain)),
                returning,
            })
        }
        Statement::Insert(ins) if crate::query::column_defaults::names_defaults(ins) => {
            let sql::TableObject::TableName(name) = &ins.table else {
                return None;
            };
            Some(Action::InsertDefaults {
                table: object_name(name),
                insert: Box::new(stmt.clone()),
            })
        }
        // A SELECT source gets a query's PostgreSQL semantics ([`rewrite_query`]): a function
        // in FROM as PostgreSQL reads it (pgbench's server-side loader: `... FROM
        // generate_series(1, n) AS bid`), and columns of one name (`SELECT 1, 1`, `SELECT g,
        // g`), which DataFusion refuses in a projection and an INSERT takes by position.
        // Rewritten, then run as any INSERT.
        Statement::Insert(ins)
            if ins
                .source
                .as_ref()
                .is_some_and(|q| !matches!(q.body.as_ref(), SetExpr::Values(_))) =>
        {
            let sql::TableObject::TableName(name) = &ins.table else {
                return None;
            };
            let source = ins.source.as_ref().and_then(|q| rewrite_query(q))?;
            let mut rewritten = ins.clone();
            rewritten.source = Some(Box::new(source));
            Some(Action::InsertDefaults {
                table: object_name(name),
                insert: Box::new(Statement::Insert(rewritten)),
            })
        }
        Statement::CreateView(v) => {
            if v.materialized || !v.columns.is_empty() {
                return Some(Action::Refuse(
                    PgError::new(
                        "0A000",
                        "materialized views and view column lists are not supported",
                    )
                    .with_hint(Some(
                        "Name the columns in the query: CREATE VIEW v AS SELECT a AS x, ...".into(),
                    )),
                ));
            }
            Some(Action::CreateView {
                name: object_name(&v.name),
                query: v.query.clone(),
                or_replace: v.or_replace,
                if_not_exists: v.if_not_exists,
            })
        }
        Statement::CreateIndex(ci) => Some(
            match crate::frontend::indexes::IndexRequest::from_statement(ci) {
                Ok(r) => Action::CreateIndex(Box::new(r)),
                Err(e) => Action::Refuse(e),
            },
        ),
        Statement::Drop {
            object_type: ObjectType::Index,
            if_exists,
            names,
            ..
        } => Some(Action::DropIndex {
            names: names.iter().map(object_name).collect(),
            if_exists: *if_exists,
        }),
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            ..
        } => Some(Action::DropView {
            names: names.iter().map(object_name).collect(),
            if_exists: *if_exists,
        }),
        Statement::Update(_) | Statement::Delete(_) => crate::query::dml::DmlStatement::parse(stmt)
            .map(|r| match r {
                Ok(d) => Action::Dml(Box::new(d)),
                Err(e) => Action::Refuse(e),
            }),
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => {
            let opts = match CopyOptions::from_sql(options, legacy_options) {
                Ok(o) => o,
                Err(e) => return Some(Action::Refuse(e)),
            };
            match (to, target, source) {
                (
                    false,
                    CopyTarget::Stdin,
                    CopySource::Table {
                        table_name,
                        columns,
                    },
                ) => Some(Action::CopyIn {
                    table: object_name(table_name),
                    columns: columns.iter().map(|c| c.value.clone()).collect(),
                    options: opts,
                }),
                (
                    true,
                    CopyTarget::Stdout,
                    CopySource::Table {
                        table_name,
                        columns,
                    },
                ) => {
                    let cols = if columns.is_empty() {
                        "*".to_string()
                    } else {
                        columns
                            .iter()
                            .map(|c| format!("\"{}\"", c.value))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    Some(Action::CopyOut {
                        query: format!("SELECT {cols} FROM \"{}\"", object_name(table_name)),
                        options: opts,
                    })
                }
                (true, CopyTarget::Stdout, CopySource::Query(q)) => Some(Action::CopyOut {
                    query: q.to_string(),
                    options: opts,
                }),
                _ => Some(Action::Refuse(
                    PgError::new(
                        "0A000",
                        "COPY to or from a file or program on the server is not supported",
                    )
                    .with_hint(Some(
                        "Use COPY ... FROM STDIN / TO STDOUT, or psql's \\copy.".into(),
                    )),
                )),
            }
        }
        _ => None,
    }
}

pub struct ShoalHook {
    cluster: Arc<Cluster>,
}

mod commands;
mod ddl;
mod writes;

/// The command tag of a statement that returns no rows.
fn tag(t: &str) -> PgWireResult<Response> {
    Ok(Response::Execution(Tag::new(t)))
}

impl ShoalHook {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        ShoalHook { cluster }
    }

    async fn run(
        &self,
        action: Action,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
        format: Format,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        match action {
            Action::Refuse(e) => Err(e.into()),
            Action::AddKey { table, key } => self.add_key(table, key, ctx, client).await,
            Action::DropConstraint {
                table,
                name,
                if_exists,
            } => self.drop_constraint(table, name, if_exists, client).await,
            Action::LockShared { tables } => self.lock_shared(tables).await,
            Action::Maintenance(m) => {
                let in_transaction =
                    current_session()?.mode() != crate::frontend::session::TxnMode::Autocommit;
                crate::frontend::maintenance::run(cluster, &m, in_transaction)
                    .await
                    .map_err(PgError::into_pgwire)?;
                tag(m.kind.tag())
            }
            Action::Set {
                name,
                value,
                local,
                tag: command,
            } => self.set_setting(name, value, local, command, client).await,
            Action::ResetAll => {
                current_session()?.reset_settings();
                tag("RESET")
            }
            Action::ExplainCall(call) => {
                let batch = explain_call_batch(&call).map_err(|e| PgWireErrorOf::df(&e.into()))?;
                rows_response(ctx, batch, client, &format).await
            }
            Action::Show(name) => self.show_setting(name, ctx, client, &format).await,
            Action::ShowAll => self.show_all_settings(ctx, client, &format).await,
            Action::Query(stmt) => {
                let df = ctx
                    .sql(&stmt.to_string())
                    .await
                    .map_err(|e| PgWireErrorOf::df(&e))?;
                let opts = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                let resp =
                    arrow_pg::datatypes::df::encode_dataframe(df, &format, Some(opts)).await?;
                Ok(Response::Query(resp))
            }
            Action::CreateTable {
                name,
                columns,
                if_not_exists,
                keys,
            } => {
                self.create_table(name, columns, if_not_exists, keys, ctx, client)
                    .await
            }
            Action::CreateView {
                name,
                query,
                or_replace,
                if_not_exists,
            } => {
                self.create_view(name, query, or_replace, if_not_exists, ctx, client)
                    .await
            }
            Action::CreateIndex(request) => self.create_index(request, ctx, client).await,
            Action::DropIndex { names, if_exists } => {
                self.drop_index(names, if_exists, client).await
            }
            Action::DropView { names, if_exists } => self.drop_view(names, if_exists, client).await,
            Action::CreateTableAs {
                name,
                query,
                if_not_exists,
            } => {
                self.create_table_as(name, query, if_not_exists, ctx, client, params)
                    .await
            }
            Action::Drop { names, if_exists } => self.drop_tables(names, if_exists, client).await,
            Action::Truncate { names } => self.truncate_tables(names).await,
            Action::InsertDefaults { insert, table } => {
                self.insert_defaults(insert, table, ctx, params).await
            }
            Action::InsertReturning {
                insert,
                returning,
                table,
            } => {
                self.insert_returning((insert, returning, table), ctx, client, params, &format)
                    .await
            }
            Action::Dml(stmt) => {
                self.update_or_delete(stmt, ctx, client, params, &format)
                    .await
            }
            Action::RenameColumn { table, old, new } => self.rename_column(table, old, new).await,
            Action::DropColumns {
                table,
                columns,
                if_exists,
            } => self.drop_columns(table, columns, if_exists, client).await,
            Action::RenameTable { table, new_name } => self.rename_table(table, new_name).await,
            Action::AddColumn {
                table,
                column,
                if_not_exists,
            } => {
                self.add_column(table, column, if_not_exists, ctx, client)
                    .await
            }
            Action::CopyIn {
                table,
                columns,
                options,
            } => self.copy_in(table, columns, options, ctx, client).await,
            Action::CopyOut { query, options } => self.copy_out(query, options, ctx).await,
            Action::Call(call) => self.call_function(call, ctx, client, params, &format).await,
            Action::CallFrom { call, query } => {
                self.call_function_from(call, query, ctx, client, params, &format)
                    .await
            }
        }
    }
}

/// The NOTICE a declared PRIMARY KEY or UNIQUE constraint gets.
const KEYS_NOT_ENFORCED: &str = "PRIMARY KEY and UNIQUE constraints are recorded, not enforced: Shoal \
     keeps no indexes, so duplicate keys are stored as written (a primary key's columns are NOT NULL)";

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

struct PgWireErrorOf;
impl PgWireErrorOf {
    fn df(
        e: &datafusion::error::DataFusionError,
    ) -> datafusion_postgres::pgwire::error::PgWireError {
        from_datafusion(e).into_pgwire()
    }
}

/// `insert` (an INSERT into `table`) with its `DEFAULT`s filled from the table's defaults.
fn with_defaults(cluster: &Cluster, table: &str, insert: Statement) -> Result<Statement, PgError> {
    let Statement::Insert(mut ins) = insert else {
        return Ok(insert);
    };
    if crate::query::column_defaults::names_defaults(&ins) {
        let info = cluster.table(table).map_err(|e| from_cluster(&e))?;
        crate::query::column_defaults::fill_defaults(&mut ins, &info)?;
    }
    Ok(Statement::Insert(ins))
}

/// `CREATE TABLE`: committed at once in autocommit, pending until COMMIT in a transaction.
fn create_table(
    cluster: &Cluster,
    name: &str,
    columns: Vec<ColumnDef>,
) -> PgWireResult<shoal_catalog::TableInfo> {
    let session = crate::frontend::session::current().filter(|s| s.in_transaction());
    if let Some(s) = &session {
        s.check_writable("CREATE TABLE").map_err(|e| pg(&e))?;
    }
    let info = cluster
        .create_table(
            name,
            columns,
            session.as_ref().and_then(|s| s.pending_txn()),
        )
        .map_err(|e| pg(&e))?;
    if let Some(s) = &session {
        s.created_table(info.table_id, &info.name);
    }
    Ok(info)
}

fn pg(e: &shoal_sql_functions::ClusterError) -> datafusion_postgres::pgwire::error::PgWireError {
    from_cluster(e).into_pgwire()
}

/// The names of the indexes that stand for `keys` of the table `table` (declared, or chosen
/// as PostgreSQL chooses them); a declared name another relation has fails with 42P07.
fn key_index_names<'k>(
    cluster: &Arc<Cluster>,
    session: Option<&crate::frontend::session::Session>,
    table: &str,
    keys: &'k [KeyRequest],
) -> PgWireResult<Vec<(String, &'k KeyRequest)>> {
    let indexes: std::collections::HashSet<String> = visible_indexes(cluster, session)?
        .into_iter()
        .map(|i| i.name)
        .collect();
    let catalog = cluster.catalog();
    let mut chosen: Vec<(String, &KeyRequest)> = Vec::new();
    for key in keys {
        let taken = |n: &str| {
            n == table
                || indexes.contains(n)
                || chosen.iter().any(|(c, _)| c == n)
                || catalog.table_by_name(n).ok().flatten().is_some()
                || catalog.view_query(n).ok().flatten().is_some()
        };
        let name = key.name(table, taken);
        if key.name.is_some() && taken(&name) {
            return Err(
                PgError::new("42P07", format!("relation \"{name}\" already exists")).into_pgwire(),
            );
        }
        chosen.push((name, key));
    }
    Ok(chosen)
}

/// Records the indexes of a table's key constraints: at COMMIT when a transaction is open.
fn record_key_indexes(
    cluster: &Arc<Cluster>,
    session: Option<&crate::frontend::session::Session>,
    table: &shoal_catalog::TableInfo,
    keys: &[(String, &KeyRequest)],
) -> PgWireResult<()> {
    for (name, key) in keys {
        let index = key.index_def(&table.name, table.table_id, name);
        match session {
            Some(s) => s.change_index(shoal_catalog::IndexChange::Created(index)),
            None => cluster
                .catalog()
                .create_index(&index)
                .map_err(|e| pg(&e.into()))?,
        }
    }
    Ok(())
}

/// The indexes a statement sees: the committed ones, changed by its transaction's.
fn visible_indexes(
    cluster: &Arc<Cluster>,
    session: Option<&crate::frontend::session::Session>,
) -> PgWireResult<Vec<shoal_catalog::IndexDef>> {
    let committed = cluster.catalog().indexes().map_err(|e| pg(&e.into()))?;
    Ok(match session {
        Some(s) => s.visible_indexes(committed),
        None => committed,
    })
}

async fn send_notice(client: &mut dyn HookClient, n: &Notice) -> PgWireResult<()> {
    let (severity, code) = match n.level {
        NoticeLevel::Warning => ("WARNING", "01000"),
        NoticeLevel::Notice => ("NOTICE", "00000"),
    };
    let mut info = ErrorInfo::new(severity.to_string(), code.to_string(), n.message.clone());
    info.detail = n.detail.clone();
    info.hint = n.hint.clone();
    client
        .send_message(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
            info,
        )))
        .await
}

async fn notice(client: &mut dyn HookClient, severity: &str, message: &str) -> PgWireResult<()> {
    let code = if severity == "WARNING" {
        "01000"
    } else {
        "00000"
    };
    let info = ErrorInfo::new(severity.to_string(), code.to_string(), message.to_string());
    client
        .send_message(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
            info,
        )))
        .await
}

async fn rows_response(
    ctx: &SessionContext,
    batch: RecordBatch,
    client: &dyn HookClient,
    format: &Format,
) -> PgWireResult<Response> {
    let df = ctx.read_batch(batch).map_err(|e| PgWireErrorOf::df(&e))?;
    let opts = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let resp = arrow_pg::datatypes::df::encode_dataframe(df, format, Some(opts)).await?;
    Ok(Response::Query(resp))
}

/// The result formats the client asked for when it bound the portal being executed. The hook
/// is not given the portal; the vendored pgwire names it in the session extensions
/// (`ExecutingPortal`, the unnamed portal being `DEFAULT_NAME`, not ""), so drivers that bind
/// named portals (JDBC with a fetch size) get the formats they asked for too.
fn portal_format(client: &dyn HookClient) -> Format {
    let executing = client.session_extensions().get::<ExecutingPortal>();
    let name = executing.as_ref().map_or(DEFAULT_NAME, |p| p.0.as_str());
    client
        .portal_store()
        .get_portal(name)
        .and_then(|entry| entry.value().map(|p| p.result_column_format.clone()))
        .unwrap_or(Format::UnifiedText)
}

#[async_trait]
impl QueryHook for ShoalHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let action = classify(statement)?;
        let span = tracing::info_span!("statement", sql = %statement);
        Some(
            self.run(
                action,
                session_context,
                client,
                &ParamValues::List(vec![]),
                Format::UnifiedText,
            )
            .instrument(span)
            .await,
        )
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Transaction control runs in the session (`crate::frontend::session`); nothing to describe.
        if matches!(
            statement,
            Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::Set(sql::Set::SetTransaction { .. })
                | Statement::Prepare { .. }
                | Statement::Execute { .. }
                | Statement::Deallocate { .. }
                | Statement::Discard { .. }
        ) {
            return Some(Ok(empty_plan()));
        }
        let action = classify(statement)?;
        Some(match action {
            Action::Query(stmt) => session_context
                .state()
                .statement_to_plan(datafusion::sql::parser::Statement::Statement(stmt))
                .await
                .map_err(|e| PgWireErrorOf::df(&e)),
            Action::Call(call) => functions::describe(session_context, &call)
                .await
                .map_err(|e| PgError::from(e).into_pgwire()),
            Action::CallFrom { call, query } => {
                let local = SessionContext::new();
                let registered = functions::result_schema(&call.name)
                    .map(|s| local.register_batch("fn_result", RecordBatch::new_empty(s)));
                match registered {
                    Some(Ok(_)) => local
                        .state()
                        .statement_to_plan(datafusion::sql::parser::Statement::Statement(query))
                        .await
                        .map_err(|e| PgWireErrorOf::df(&e)),
                    Some(Err(e)) => Err(PgWireErrorOf::df(&e)),
                    None => Ok(empty_plan()),
                }
            }
            Action::InsertReturning {
                insert,
                returning,
                table,
            } => {
                // The RETURNING columns, and the INSERT's inputs for its parameters' types.
                let describe = async {
                    let info = self.cluster.table(&table).map_err(|e| from_cluster(&e))?;
                    let insert = with_defaults(&self.cluster, &table, *insert)?;
                    let state = session_context.state();
                    let list = returning_list(&returning, &info);
                    let shown = state
                        .create_logical_plan(&format!(
                            "SELECT {list} FROM \"{}\"",
                            table.replace('"', "\"\"")
                        ))
                        .await
                        .map_err(|e| from_datafusion(&e))?;
                    let plan = state
                        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                            insert,
                        )))
                        .await
                        .map_err(|e| from_datafusion(&e))?;
                    let LogicalPlan::Dml(dml) = plan else {
                        return Err(PgError::new("XX000", "INSERT did not plan as an insert"));
                    };
                    let inputs = datafusion::logical_expr::LogicalPlanBuilder::from(
                        dml.input.as_ref().clone(),
                    )
                    .project(Vec::<datafusion::logical_expr::Expr>::new())
                    .and_then(|b| b.build())
                    .map_err(|e| from_datafusion(&e))?;
                    datafusion::logical_expr::LogicalPlanBuilder::from(shown)
                        .cross_join(inputs)
                        .and_then(|b| b.build())
                        .map_err(|e| from_datafusion(&e))
                };
                describe.await.map_err(PgError::into_pgwire)
            }
            Action::InsertDefaults { insert, table } => {
                match with_defaults(&self.cluster, &table, *insert) {
                    Ok(insert) => session_context
                        .state()
                        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                            insert,
                        )))
                        .await
                        .map_err(|e| PgWireErrorOf::df(&e)),
                    Err(e) => Err(e.into_pgwire()),
                }
            }
            Action::Dml(stmt) => match self.cluster.table(&stmt.table) {
                Ok(info) => stmt
                    .describe_plan(session_context, &info)
                    .await
                    .map_err(PgError::into_pgwire),
                Err(e) => Err(pg(&e)),
            },
            Action::Show(name) => session_context
                .state()
                .create_logical_plan(&format!(
                    "SELECT '' AS \"{}\"",
                    settings::display_name(&name).replace('"', "\"\"")
                ))
                .await
                .map_err(|e| PgWireErrorOf::df(&e)),
            Action::ShowAll => session_context
                .state()
                .create_logical_plan("SELECT '' AS name, '' AS setting, '' AS description")
                .await
                .map_err(|e| PgWireErrorOf::df(&e)),
            Action::ExplainCall(_) => session_context
                .state()
                .create_logical_plan("SELECT '' AS plan_type, '' AS plan")
                .await
                .map_err(|e| PgWireErrorOf::df(&e)),
            // DDL and COPY send no row description: nothing to describe.
            _ => Ok(empty_plan()),
        })
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        params: &ParamValues,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let action = classify(statement)?;
        if matches!(action, Action::Query(_)) {
            // planned at parse time; datafusion-postgres executes it
            return None;
        }
        let format = portal_format(client);
        let span = tracing::info_span!("statement", sql = %statement);
        Some(
            self.run(action, session_context, client, params, format)
                .instrument(span)
                .await,
        )
    }
}

/// A RETURNING list as SQL over the table's rows, `*` standing for its columns.
fn returning_list(items: &[SelectItem], info: &shoal_catalog::TableInfo) -> String {
    items
        .iter()
        .map(|item| match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => info
                .columns
                .iter()
                .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty_plan() -> LogicalPlan {
    LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(datafusion::common::DFSchema::empty()),
    })
}

/// `SET`, `SET LOCAL`, `SET TIME ZONE`, `SET NAMES`, `RESET` and `SHOW`: the session's
/// settings (see [`settings`]).
fn settings_action(stmt: &Statement) -> Option<Action> {
    let set = |name: String, values: &[sql::Expr], local: bool| Action::Set {
        name,
        value: setting_value(values),
        local,
        tag: "SET",
    };
    match stmt {
        Statement::Set(sql::Set::SingleAssignment {
            scope,
            hivevar: false,
            variable,
            values,
        }) => match scope {
            None | Some(sql::ContextModifier::Session) => {
                Some(set(variable.to_string(), values, false))
            }
            Some(sql::ContextModifier::Local) => Some(set(variable.to_string(), values, true)),
            Some(other) => Some(Action::Refuse(PgError::new(
                "42601",
                format!("syntax error at or near \"{other}\""),
            ))),
        },
        Statement::Set(sql::Set::SetTimeZone { local, value }) => {
            Some(set("TimeZone".into(), std::slice::from_ref(value), *local))
        }
        Statement::Set(sql::Set::SetNames { charset_name, .. }) => Some(Action::Set {
            name: "client_encoding".into(),
            value: Some(charset_name.value.clone()),
            local: false,
            tag: "SET",
        }),
        Statement::Set(sql::Set::SetRole { .. } | sql::Set::SetSessionAuthorization(_)) => {
            Some(Action::Refuse(
                PgError::new(
                    "0A000",
                    "SET ROLE and SET SESSION AUTHORIZATION are not supported",
                )
                .with_hint(Some("Log in as the user instead.".into())),
            ))
        }
        Statement::Reset(r) => Some(match &r.reset {
            sql::Reset::ALL => Action::ResetAll,
            sql::Reset::ConfigurationParameter(name) => Action::Set {
                name: name.to_string(),
                value: None,
                local: false,
                tag: "RESET",
            },
        }),
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            Some(match name.as_str() {
                "all" => Action::ShowAll,
                "transaction isolation level" => Action::Show("transaction_isolation".into()),
                "time zone" => Action::Show("TimeZone".into()),
                "session authorization" => Action::Show("session_authorization".into()),
                _ => Action::Show(
                    variable
                        .iter()
                        .map(|i| i.value.clone())
                        .collect::<Vec<_>>()
                        .join("."),
                ),
            })
        }
        _ => None,
    }
}

/// A `SET` value as PostgreSQL reads it: `DEFAULT` (None), or the items joined by `, `
/// (string literals unquoted, `"quoted"` identifiers kept quoted, as `search_path` shows them).
fn setting_value(values: &[sql::Expr]) -> Option<String> {
    if let [sql::Expr::Identifier(i)] = values {
        if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") {
            return None;
        }
    }
    fn item(e: &sql::Expr) -> String {
        match e {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s)
                | sql::Value::EscapedStringLiteral(s)
                | sql::Value::DoubleQuotedString(s) => s.clone(),
                sql::Value::Number(n, _) => n.to_string(),
                sql::Value::Boolean(b) => if *b { "on" } else { "off" }.into(),
                other => other.to_string(),
            },
            sql::Expr::Identifier(i) if i.quote_style.is_some() => format!("\"{}\"", i.value),
            sql::Expr::Identifier(i) => i.value.clone(),
            sql::Expr::UnaryOp {
                op: sql::UnaryOperator::Minus,
                expr,
            } => format!("-{}", item(expr)),
            other => other.to_string(),
        }
    }
    Some(values.iter().map(item).collect::<Vec<_>>().join(", "))
}

/// `SHOW ALL`'s columns, as PostgreSQL names them.
/// `EXPLAIN [ANALYZE] statement`. A cluster function's call is shown and never run (`ANALYZE`
/// would run it: refused); PostgreSQL explains only queries, DML, `EXECUTE`, `DECLARE` and
/// `CREATE TABLE AS`, and its grammar refuses the rest, so Shoal does too. Everything else is
/// DataFusion's EXPLAIN, which plans without performing.
fn explain(
    statement: &Statement,
    analyze: bool,
    format: bool,
    options: Option<&[sql::UtilityOption]>,
) -> Option<Action> {
    match classify(statement) {
        Some(Action::Call(call) | Action::CallFrom { call, .. }) => {
            // `EXPLAIN (ANALYZE) ...` carries ANALYZE as an option; FORMAT is not shown by the
            // plain rows below, so it is refused rather than ignored.
            let option = |name: &str| {
                options
                    .unwrap_or_default()
                    .iter()
                    .find(|o| o.name.value.eq_ignore_ascii_case(name))
                    .map(|o| !matches!(&o.arg, Some(a) if matches!(a.to_string().to_ascii_lowercase().as_str(), "false" | "off" | "0")))
            };
            let analyze = analyze || option("analyze") == Some(true);
            if format || option("format").is_some() {
                return Some(Action::Refuse(
                    PgError::new(
                        "0A000",
                        format!(
                            "EXPLAIN with FORMAT of the cluster function {} is not supported",
                            call.name
                        ),
                    )
                    .with_hint(Some(
                        "Use EXPLAIN without FORMAT: it shows the call.".into(),
                    )),
                ));
            }
            return Some(if analyze {
                Action::Refuse(
                    PgError::new(
                        "0A000",
                        format!(
                            "EXPLAIN ANALYZE of the cluster function {} is not supported: it would run it",
                            call.name
                        ),
                    )
                    .with_hint(Some(
                        "EXPLAIN without ANALYZE shows the call; rebalance_plan() and rebalance_simulate() show what a rebalance would do."
                            .into(),
                    )),
                )
            } else {
                Action::ExplainCall(call)
            });
        }
        Some(Action::Refuse(e)) => return Some(Action::Refuse(e)),
        _ => {}
    }
    let explainable = match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update { .. }
        | Statement::Delete(_)
        | Statement::Merge { .. }
        | Statement::Execute { .. }
        | Statement::Declare { .. } => true,
        Statement::CreateTable(t) => t.query.is_some(),
        Statement::CreateView(v) => v.materialized,
        _ => false,
    };
    if explainable {
        return None;
    }
    let text = statement.to_string();
    let word = text.split_whitespace().next().unwrap_or_default();
    Some(Action::Refuse(PgError::new(
        "42601",
        format!("syntax error at or near \"{word}\""),
    )))
}

/// The rows `EXPLAIN` shows for a cluster-function call, in DataFusion's shape.
fn explain_call_batch(call: &FunctionCall) -> Result<RecordBatch, arrow::error::ArrowError> {
    let args: Vec<String> = call
        .args
        .iter()
        .map(|(name, e)| match name {
            Some(n) => format!("{n} => {e}"),
            None => e.to_string(),
        })
        .collect();
    let shown = format!("{}({})", call.name, args.join(", "));
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["logical_plan", "physical_plan"])),
            Arc::new(StringArray::from(vec![
                format!("ClusterFunction: {shown}"),
                format!(
                    "ClusterFunctionExec: {shown} (runs on the coordinator; not run by EXPLAIN)"
                ),
            ])),
        ],
    )
}

fn show_all_schema() -> arrow::datatypes::SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ]))
}

/// The session of the statement being run (every client statement has one).
fn current_session() -> PgWireResult<Arc<crate::frontend::session::Session>> {
    crate::frontend::session::current().ok_or_else(|| {
        PgError::new("XX000", "statement run outside a client session").into_pgwire()
    })
}

async fn warn_code(client: &mut dyn HookClient, code: &str, message: &str) -> PgWireResult<()> {
    let info = ErrorInfo::new("WARNING".into(), code.into(), message.into());
    client
        .send_message(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
            info,
        )))
        .await
}
