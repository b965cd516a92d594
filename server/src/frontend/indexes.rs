//! `CREATE INDEX` and `DROP INDEX`. Shoal keeps no index structures: every query scans the
//! table's column files, pruned by shard and by the files' statistics, which an index would
//! not speed up much. Schema scripts, ORMs and migration tools create indexes all the same,
//! so an index is checked as PostgreSQL checks it (its table, columns and expressions), then
//! recorded in the catalog, where its name, `IF NOT EXISTS` and `DROP INDEX` behave as in
//! PostgreSQL. A NOTICE says it is not used, and for a UNIQUE index that uniqueness is not
//! enforced (as for PRIMARY KEY and UNIQUE constraints).

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr};

use crate::errors::PgError;

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
            table: crate::hook::object_name(&ci.table_name),
            name: ci.name.as_ref().map(crate::hook::object_name),
            unique: ci.unique,
            if_not_exists: ci.if_not_exists,
            keys: ci.columns.iter().map(|c| c.to_string()).collect(),
            key_exprs: ci
                .columns
                .iter()
                .map(|c| c.column.expr.to_string())
                .collect(),
            method,
            include: ci.include.iter().map(|c| c.value.clone()).collect(),
            nulls_distinct: ci.nulls_distinct,
            with: ci.with.iter().map(storage_parameter).collect(),
            predicate: ci.predicate.as_ref().map(Expr::to_string),
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
            "CREATE {}INDEX {name} ON public.{} USING {} ({}){include}{nulls}{with}{}",
            if self.unique { "UNIQUE " } else { "" },
            self.table,
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
        // PostgreSQL's names are at most 63 bytes; the suffix is kept.
        let mut stem = parts.join("_");
        while stem.len() > 63 - "_idx".len() - 2 {
            stem.pop();
        }
        let base = format!("{stem}_idx");
        if !taken(&base) {
            return base;
        }
        (1..)
            .map(|n| format!("{base}{n}"))
            .find(|n| !taken(n))
            .unwrap_or(base)
    }
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
