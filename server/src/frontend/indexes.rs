//! `CREATE INDEX` and `DROP INDEX`. Shoal keeps no index structures: every query scans the
//! table's column files, pruned by shard and by the files' statistics, which an index would
//! not speed up much. Schema scripts, ORMs and migration tools create indexes all the same,
//! so an index is checked as PostgreSQL checks it (its table, columns and expressions), then
//! recorded in the catalog, where its name, `IF NOT EXISTS` and `DROP INDEX` behave as in
//! PostgreSQL. A NOTICE says it is not used, and for a UNIQUE index that uniqueness is not
//! enforced (as for PRIMARY KEY and UNIQUE constraints).

use datafusion::sql::sqlparser::ast::{visit_expressions_mut, CreateIndex, Expr, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    IndexConstraint, IndexInfo, IndexKey,
};
use shoal_catalog::{IndexDef, IndexUpdate, KeyConstraint};

use crate::frontend::errors::PgError;

/// A `CREATE INDEX` as Shoal records it.
#[derive(Debug, Clone)]
pub struct IndexRequest {
    pub table: String,
    /// The declared name; `None` lets [`default_name`] choose one.
    pub name: Option<String>,
    pub unique: bool,
    pub if_not_exists: bool,
    /// Each key as written (`a`, `lower(b) DESC`).
    pub keys: Vec<String>,
    /// The key expressions, checked against the table before the index is recorded.
    pub key_exprs: Vec<String>,
    /// Each key's expression, whether it is DESC and whether its NULLs sort first.
    pub parsed_keys: Vec<(Expr, bool, bool)>,
    pub method: String,
    /// `INCLUDE (columns)`.
    pub include: Vec<String>,
    /// `NULLS [NOT] DISTINCT`, when written.
    pub nulls_distinct: Option<bool>,
    /// `WITH (name = value, ...)` storage parameters, as `name='value'`.
    pub with: Vec<String>,
    pub predicate: Option<String>,
}

impl IndexRequest {
    pub fn from_statement(ci: &CreateIndex) -> Result<IndexRequest, PgError> {
        if ci.columns.is_empty() {
            return Err(PgError::new("42601", "syntax error at or near \")\""));
        }
        let method = match &ci.using {
            None => "btree".to_string(),
            Some(m) => m.to_string().to_ascii_lowercase(),
        };
        Ok(IndexRequest {
            table: crate::frontend::hook::object_name(&ci.table_name),
            name: ci.name.as_ref().map(crate::frontend::hook::object_name),
            unique: ci.unique,
            if_not_exists: ci.if_not_exists,
            keys: ci.columns.iter().map(|c| c.to_string()).collect(),
            key_exprs: ci
                .columns
                .iter()
                .map(|c| c.column.expr.to_string())
                .collect(),
            parsed_keys: ci
                .columns
                .iter()
                .map(|c| {
                    let descending = c.column.options.asc == Some(false);
                    let nulls_first = c.column.options.nulls_first.unwrap_or(descending);
                    (c.column.expr.clone(), descending, nulls_first)
                })
                .collect(),
            method,
            include: ci.include.iter().map(|c| c.value.clone()).collect(),
            nulls_distinct: ci.nulls_distinct,
            with: ci.with.iter().map(storage_parameter).collect(),
            // A stored definition holds the predicate in parentheses, as PostgreSQL prints it.
            predicate: ci.predicate.as_ref().map(|p| match p {
                Expr::Nested(inner) => inner.to_string(),
                other => other.to_string(),
            }),
        })
    }

    /// A query that plans only if the keys and the predicate are valid for the table.
    pub fn check_query(&self) -> String {
        let columns: Vec<&str> = self
            .key_exprs
            .iter()
            .chain(&self.include)
            .map(String::as_str)
            .collect();
        format!(
            "SELECT {} FROM \"{}\"{} LIMIT 0",
            columns.join(", "),
            self.table.replace('"', "\"\""),
            self.predicate
                .as_ref()
                .map(|p| format!(" WHERE {p}"))
                .unwrap_or_default()
        )
    }

    /// PostgreSQL's `pg_indexes.indexdef` for the index named `name`.
    pub fn definition(&self, name: &str) -> String {
        let include = if self.include.is_empty() {
            String::new()
        } else {
            format!(" INCLUDE ({})", self.include.join(", "))
        };
        let nulls = match self.nulls_distinct {
            Some(false) => " NULLS NOT DISTINCT",
            _ => "",
        };
        let with = if self.with.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", self.with.join(", "))
        };
        format!(
            "CREATE {}INDEX {} ON public.{} USING {} ({}){include}{nulls}{with}{}",
            if self.unique { "UNIQUE " } else { "" },
            quote_ident(name),
            quote_ident(&self.table),
            self.method,
            self.keys.join(", "),
            self.predicate
                .as_ref()
                .map(|p| format!(" WHERE ({p})"))
                .unwrap_or_default()
        )
    }

    /// The name PostgreSQL chooses for an unnamed index: the table, the key columns (`expr`
    /// for an expression) and `idx`, with a number added until it is free.
    pub fn default_name(&self, taken: impl Fn(&str) -> bool) -> String {
        let mut parts = vec![self.table.clone()];
        for k in &self.key_exprs {
            let plain = k.chars().all(|c| c.is_alphanumeric() || c == '_');
            parts.push(if plain { k.clone() } else { "expr".into() });
        }
        choose_name(&parts, "idx", taken)
    }

    /// What `pg_index`, `pg_constraint` and `pg_get_indexdef` tell of this index.
    fn catalog_info(&self, index: &IndexDef, table: &str) -> IndexInfo {
        let keys = self
            .parsed_keys
            .iter()
            .map(|(expr, descending, nulls_first)| {
                let column = match expr {
                    Expr::Identifier(i) => Some(i.value.clone()),
                    _ => None,
                };
                IndexKey {
                    text: column
                        .as_deref()
                        .map_or_else(|| expr.to_string(), quote_ident),
                    column,
                    descending: *descending,
                    nulls_first: *nulls_first,
                }
            })
            .collect();
        IndexInfo {
            keys,
            include: self.include.clone(),
            predicate: self.predicate.clone(),
            nulls_not_distinct: self.nulls_distinct == Some(false),
            method: self.method.clone(),
            ..recorded_info(index, table)
        }
    }
}

/// PostgreSQL's choice of a name for an index or key constraint it names: the parts joined
/// by `_`, then the label (`idx`, `key`, `pkey`), cut to fit 63 bytes, and numbered from 1
/// until the name is free.
pub fn choose_name(parts: &[String], label: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut stem = parts.join("_");
    while stem.len() > 63 - label.len() - 1 - 2 {
        stem.pop();
    }
    let base = format!("{stem}_{label}");
    if !taken(&base) {
        return base;
    }
    (1..)
        .map(|n| format!("{base}{n}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

/// PostgreSQL's keywords that are not unreserved, which `quote_ident` quotes (a column named
/// `user` printed bare would read back as the function).
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// An identifier as PostgreSQL prints it: bare when it is lower case letters, digits and
/// underscores and not a reserved word, quoted otherwise.
pub fn quote_ident(name: &str) -> String {
    let plain = !RESERVED.contains(&name)
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn quote_style(name: &str) -> Option<char> {
    quote_ident(name).starts_with('"').then_some('"')
}

/// A PRIMARY KEY or UNIQUE constraint a table declares: recorded as the unique index
/// PostgreSQL builds for it, named as PostgreSQL names it.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub constraint: KeyConstraint,
    /// `CONSTRAINT name`, when written.
    pub name: Option<String>,
    pub columns: Vec<String>,
    /// `NULLS [NOT] DISTINCT` of a UNIQUE constraint, when written.
    pub nulls_distinct: Option<bool>,
}

impl KeyRequest {
    /// The index the constraint stands for.
    pub fn index_request(&self, table: &str) -> IndexRequest {
        let keys: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        IndexRequest {
            table: table.to_string(),
            name: self.name.clone(),
            unique: true,
            if_not_exists: false,
            keys: keys.clone(),
            key_exprs: keys,
            parsed_keys: Vec::new(),
            method: "btree".into(),
            include: Vec::new(),
            nulls_distinct: self.nulls_distinct,
            with: Vec::new(),
            predicate: None,
        }
    }

    /// The declared name, or PostgreSQL's: `t_pkey`, `t_a_b_key`.
    pub fn name(&self, table: &str, taken: impl Fn(&str) -> bool) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match self.constraint {
            KeyConstraint::PrimaryKey => choose_name(&[table.to_string()], "pkey", taken),
            KeyConstraint::Unique => {
                let mut parts = vec![table.to_string()];
                parts.extend(self.columns.iter().cloned());
                choose_name(&parts, "key", taken)
            }
        }
    }

    /// The index record of the constraint named `name` on the table `table_id`.
    pub fn index_def(&self, table: &str, table_id: i64, name: &str) -> IndexDef {
        IndexDef {
            name: name.to_string(),
            table_id,
            unique: true,
            definition: self.index_request(table).definition(name),
            constraint: Some(self.constraint),
        }
    }
}

/// A recorded definition read back; `None` if it does not parse (it was written by Shoal, so
/// only a damaged catalog gets there).
pub fn parse_definition(definition: &str) -> Option<(CreateIndex, IndexRequest)> {
    match Parser::parse_sql(&PostgreSqlDialect {}, definition)
        .ok()?
        .into_iter()
        .next()?
    {
        Statement::CreateIndex(ci) => {
            let request = IndexRequest::from_statement(&ci).ok()?;
            Some((ci, request))
        }
        _ => None,
    }
}

/// What the `pg_catalog` tables tell of a recorded index of `table`.
pub fn catalog_info(index: &IndexDef, table: &str) -> IndexInfo {
    match parse_definition(&index.definition) {
        Some((_, request)) => request.catalog_info(index, table),
        None => recorded_info(index, table),
    }
}

/// What the record itself tells of an index of `table` (no keys: those come from its
/// definition).
fn recorded_info(index: &IndexDef, table: &str) -> IndexInfo {
    IndexInfo {
        schema: "public".into(),
        table: table.to_string(),
        name: index.name.clone(),
        definition: index.definition.clone(),
        unique: index.unique,
        constraint: index.constraint.map(|c| match c {
            KeyConstraint::PrimaryKey => IndexConstraint::PrimaryKey,
            KeyConstraint::Unique => IndexConstraint::Unique,
        }),
        keys: Vec::new(),
        include: Vec::new(),
        predicate: None,
        nulls_not_distinct: false,
        method: "btree".into(),
    }
}

/// Whether the index's keys, INCLUDE columns or predicate name `column`.
fn uses_column(ci: &mut CreateIndex, request: &IndexRequest, column: &str) -> bool {
    let mut found = request.include.iter().any(|c| c == column);
    let mut look = |e: &mut Expr| {
        if let Expr::Identifier(i) = e {
            found |= i.value == column;
        }
        std::ops::ControlFlow::<()>::Continue(())
    };
    for c in ci.columns.iter_mut() {
        let _ = visit_expressions_mut(&mut c.column.expr, &mut look);
    }
    if let Some(p) = ci.predicate.as_mut() {
        let _ = visit_expressions_mut(p, &mut look);
    }
    found
}

/// The indexes of table `table_id` to drop with its column `column`, as PostgreSQL drops an
/// index (and the key constraint it stands for) that uses a dropped column.
pub fn after_drop_column(indexes: &[IndexDef], table_id: i64, column: &str) -> Vec<IndexUpdate> {
    indexes
        .iter()
        .filter(|i| i.table_id == table_id)
        .filter(|i| {
            parse_definition(&i.definition)
                .is_some_and(|(mut ci, request)| uses_column(&mut ci, &request, column))
        })
        .map(|i| IndexUpdate::Drop {
            name: i.name.clone(),
        })
        .collect()
}

/// The definitions of table `table_id`'s indexes after its column `old` is renamed `new`.
pub fn after_rename_column(
    indexes: &[IndexDef],
    table_id: i64,
    old: &str,
    new: &str,
) -> Vec<IndexUpdate> {
    let mut out = Vec::new();
    for index in indexes.iter().filter(|i| i.table_id == table_id) {
        let Some((mut ci, _)) = parse_definition(&index.definition) else {
            continue;
        };
        let mut renamed = false;
        let mut rename = |e: &mut Expr| {
            if let Expr::Identifier(i) = e {
                if i.value == old {
                    i.value = new.to_string();
                    i.quote_style = quote_style(new);
                    renamed = true;
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        };
        for c in ci.columns.iter_mut() {
            let _ = visit_expressions_mut(&mut c.column.expr, &mut rename);
        }
        if let Some(p) = ci.predicate.as_mut() {
            let _ = visit_expressions_mut(p, &mut rename);
        }
        for c in ci.include.iter_mut() {
            if c.value == old {
                c.value = new.to_string();
                c.quote_style = quote_style(new);
                renamed = true;
            }
        }
        if !renamed {
            continue;
        }
        if let Ok(request) = IndexRequest::from_statement(&ci) {
            out.push(IndexUpdate::Redefine {
                name: index.name.clone(),
                definition: request.definition(&index.name),
            });
        }
    }
    out
}

/// The definitions of table `table_id`'s indexes after the table is renamed `new_table`.
pub fn after_rename_table(
    indexes: &[IndexDef],
    table_id: i64,
    new_table: &str,
) -> Vec<IndexUpdate> {
    indexes
        .iter()
        .filter(|i| i.table_id == table_id)
        .filter_map(|i| {
            let (_, mut request) = parse_definition(&i.definition)?;
            request.table = new_table.to_string();
            Some(IndexUpdate::Redefine {
                name: i.name.clone(),
                definition: request.definition(&i.name),
            })
        })
        .collect()
}

/// A storage parameter as `pg_get_indexdef` prints it: `fillfactor='70'`.
fn storage_parameter(e: &Expr) -> String {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Value};
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let value = match right.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            format!("{left}='{}'", value.replace('\'', "''"))
        }
        other => other.to_string(),
    }
}

/// What the NOTICE after `CREATE INDEX` says.
pub fn not_used_notice(name: &str, unique: bool) -> String {
    let mut text = format!(
        "Shoal keeps no indexes: \"{name}\" is recorded, and queries read the table's column files"
    );
    if unique {
        text.push_str("; its uniqueness is not enforced");
    }
    text
}

#[cfg(test)]
mod tests;
