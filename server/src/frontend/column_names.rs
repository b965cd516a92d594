//! Result column names as PostgreSQL gives them (its `FigureColname`): an unaliased function
//! call is named after the function (`count`, `now`), a cast after its argument or else its
//! type (`int4`), `CASE` `case`, and any other expression `?column?`. DataFusion names each
//! after the whole expression (`count(*)`, `Int64(1) + Int64(2)`) and refuses two columns of
//! the same name, which PostgreSQL allows (`SELECT i, i`, `SELECT 1, 2`).
//!
//! The select lists of a query (its CTEs, derived tables and set-operation branches too) get
//! these names as aliases. A name that repeats within one list is made unique for DataFusion
//! by a suffix after [`SEPARATOR`]; the vendored arrow-pg drops the suffix where a name
//! reaches the client (RowDescription), so the client sees PostgreSQL's names.

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, DataType, Expr, Ident, Query, Select, SelectItem, SetExpr, TableFactor,
};

/// Separates a column's shown name from the suffix that keeps it unique (U+001F, the unit
/// separator: no name a client writes holds it).
pub const SEPARATOR: char = '\u{1f}';

/// `q` with PostgreSQL's column names, or `None` when it already has them.
pub fn rewrite(q: &Query) -> Option<Query> {
    let mut q = q.clone();
    rewrite_query(&mut q).then_some(q)
}

fn rewrite_query(q: &mut Query) -> bool {
    let mut changed = false;
    if let Some(with) = &mut q.with {
        for cte in &mut with.cte_tables {
            changed |= rewrite_query(&mut cte.query);
        }
    }
    changed | rewrite_set_expr(&mut q.body)
}

fn rewrite_set_expr(body: &mut SetExpr) -> bool {
    match body {
        SetExpr::Select(sel) => rewrite_select(sel),
        SetExpr::Query(q) => rewrite_query(q),
        SetExpr::SetOperation { left, right, .. } => {
            let l = rewrite_set_expr(left);
            rewrite_set_expr(right) | l
        }
        _ => false,
    }
}

fn rewrite_factor(factor: &mut TableFactor) -> bool {
    match factor {
        TableFactor::Derived { subquery, .. } => rewrite_query(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            let mut changed = rewrite_factor(&mut table_with_joins.relation);
            for j in &mut table_with_joins.joins {
                changed |= rewrite_factor(&mut j.relation);
            }
            changed
        }
        _ => false,
    }
}

fn rewrite_select(sel: &mut Select) -> bool {
    let mut changed = false;
    for from in &mut sel.from {
        changed |= rewrite_factor(&mut from.relation);
        for j in &mut from.joins {
            changed |= rewrite_factor(&mut j.relation);
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut unique = |name: &str| -> String {
        let n = seen.entry(name.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            name.to_string()
        } else {
            format!("{name}{SEPARATOR}{n}")
        }
    };
    for item in &mut sel.projection {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let name = figure(e).unwrap_or_else(|| "?column?".to_string());
                let alias = unique(&name);
                // A plain column keeps DataFusion's own name (the same) unless it repeats.
                let plain = matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                if !plain || alias != name {
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', alias),
                    };
                    changed = true;
                }
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                let name = alias.value.clone();
                let unique_name = unique(&name);
                if unique_name != name {
                    *alias = Ident::with_quote('"', unique_name);
                    changed = true;
                }
            }
            _ => {}
        }
    }
    changed
}

/// The name of a column or function under any casts (`id::int::text` is `id`), which a cast
/// keeps; `None` for what PostgreSQL names weakly (a constant, `CASE`).
fn strong_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => strong_name(inner),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) => figure(e),
        _ => None,
    }
}

/// PostgreSQL's name for an expression's column, `None` where it says `?column?`.
fn figure(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase()),
        // As PostgreSQL's FigureColname: a cast keeps a column's or a function's name, and
        // is named after its (outermost) type otherwise (`'x'::timestamp::timestamptz` is
        // `timestamptz`).
        Expr::Cast {
            expr, data_type, ..
        } => strong_name(expr).or_else(|| Some(type_name(data_type))),
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => figure(inner),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::TypedString(t) => Some(type_name(&t.data_type)),
        Expr::Interval(_) => Some("interval".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::AtTimeZone { .. } => Some("timezone".into()),
        // `nums[1]` is named after the array, as PostgreSQL names an indirection.
        Expr::CompoundFieldAccess { root, .. } => figure(root),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.as_slice() {
                [SelectItem::ExprWithAlias { alias, .. }] => Some(alias.value.clone()),
                [SelectItem::UnnamedExpr(e)] => figure(e),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The name PostgreSQL gives a type in a cast's column name (`int4`, `varchar`).
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4".into(),
        DataType::BigInt(_) | DataType::Int8(_) => "int8".into(),
        DataType::SmallInt(_) | DataType::Int2(_) => "int2".into(),
        DataType::Varchar(_) | DataType::CharacterVarying(_) | DataType::CharVarying(_) => {
            "varchar".into()
        }
        DataType::Char(_) | DataType::Character(_) => "bpchar".into(),
        DataType::Boolean | DataType::Bool => "bool".into(),
        DataType::Float8 | DataType::Double(_) | DataType::DoublePrecision => "float8".into(),
        DataType::Real | DataType::Float4 => "float4".into(),
        DataType::Numeric(_) | DataType::Decimal(_) | DataType::Dec(_) => "numeric".into(),
        DataType::Timestamp(_, tz) => {
            use datafusion::sql::sqlparser::ast::TimezoneInfo;
            match tz {
                TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => "timestamptz".into(),
                _ => "timestamp".into(),
            }
        }
        DataType::Time(_, _) => "time".into(),
        // An array cast is named after its element type (`'{1}'::int[]` is `int4`).
        DataType::Array(
            ArrayElemTypeDef::SquareBracket(element, _) | ArrayElemTypeDef::AngleBracket(element),
        ) => type_name(element),
        DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_else(|| "?column?".into()),
        other => other
            .to_string()
            .split(['(', ' '])
            .next()
            .unwrap_or("?column?")
            .to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests;
