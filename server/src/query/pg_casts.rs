//! An explicit cast to `char(n)` becomes `shoal_bpchar(CAST(x AS varchar), n)` (see
//! `pg_bpchar`). An explicit cast to `varchar(n)` cuts the value to `n` characters, as PostgreSQL's does
//! (`'abcdefg'::varchar(5)` is `abcde`); DataFusion's type has no length and kept the whole
//! value. Before planning, [`rewrite`] turns `CAST(x AS varchar(n))` into
//! `CAST(substr(CAST(x AS varchar), 1, n) AS varchar)`. (A write into a `varchar(n)` column
//! is checked instead, failing with 22001, by the shard writer.)

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, CastKind, CharacterLength, DataType, Expr, Query, Value,
};

fn varchar_length(t: &DataType) -> Option<u64> {
    match t {
        DataType::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. }))
        | DataType::CharVarying(Some(CharacterLength::IntegerLength { length, .. })) => {
            Some(*length)
        }
        _ => None,
    }
}

fn cast(expr: Expr) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type: DataType::Varchar(None),
        array: false,
        format: None,
    }
}

/// Rewrites the explicit `varchar(n)` casts of `q`; true when there were any.
pub fn rewrite(q: &mut Query) -> bool {
    let mut changed = false;
    let _ = visit_expressions_mut(q, |e| {
        if let Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type,
            ..
        } = e
        {
            if let Some(n) = super::pg_bpchar::char_cast_length(data_type) {
                // char(n): see pg_bpchar.
                let length = Expr::value(Value::Number(n.to_string(), false));
                *e = super::sql_call(
                    super::pg_bpchar::TO_BPCHAR,
                    vec![cast(expr.as_ref().clone()), length],
                );
                changed = true;
            } else if let Some(n) = varchar_length(data_type) {
                let number = |v: u64| Expr::value(Value::Number(v.to_string(), false));
                let substr = super::sql_call(
                    "substr",
                    vec![cast(expr.as_ref().clone()), number(1), number(n)],
                );
                *e = cast(substr);
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}
