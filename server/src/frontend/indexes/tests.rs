use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};

use super::IndexRequest;

fn request(sql: &str) -> IndexRequest {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .unwrap()
        .remove(0)
    {
        Statement::CreateIndex(ci) => IndexRequest::from_statement(&ci).unwrap(),
        other => panic!("not CREATE INDEX: {other}"),
    }
}

#[test]
fn definitions_read_as_pg_indexes_shows_them() {
    let r = request("CREATE UNIQUE INDEX ix ON public.t (a, lower(b) DESC) WHERE a > 1");
    assert_eq!(
        r.definition("ix"),
        "CREATE UNIQUE INDEX ix ON public.t USING btree (a, lower(b) DESC) WHERE (a > 1)"
    );
    assert_eq!(
        r.check_query(),
        "SELECT a, lower(b) FROM \"t\" WHERE a > 1 LIMIT 0"
    );
    let r = request("CREATE INDEX IF NOT EXISTS ix ON t USING hash (a)");
    assert!(r.if_not_exists && r.name.as_deref() == Some("ix"));
    assert_eq!(
        r.definition("ix"),
        "CREATE INDEX ix ON public.t USING hash (a)"
    );
    assert!(request("CREATE INDEX ON t (a)").name.is_none());
}

#[test]
fn unnamed_indexes_are_named_as_postgresql_names_them() {
    let r = request("CREATE INDEX ON t (a, b)");
    assert_eq!(r.default_name(|_| false), "t_a_b_idx");
    assert_eq!(
        r.default_name(|n| n == "t_a_b_idx" || n == "t_a_b_idx1"),
        "t_a_b_idx2"
    );
    assert_eq!(
        request("CREATE INDEX ON t (lower(b))").default_name(|_| false),
        "t_expr_idx"
    );
}
