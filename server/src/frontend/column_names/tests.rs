use super::*;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

fn names(sql: &str) -> String {
    let Some(Statement::Query(q)) = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().pop()
    else {
        panic!("not a query");
    };
    rewrite(&q).map_or_else(|| q.to_string(), |q| q.to_string())
}

#[test]
fn names_columns_as_postgresql() {
    assert_eq!(
        names("SELECT count(*), 1 + 2, '1'::int, a::text, CASE WHEN true THEN 1 END FROM t"),
        "SELECT count(*) AS \"count\", 1 + 2 AS \"?column?\", '1'::INT AS \"int4\", \
         a::TEXT AS \"a\", CASE WHEN true THEN 1 END AS \"case\" FROM t"
    );
    // A chain of casts keeps a column's or a function's name, and is named after its
    // outermost type otherwise (PostgreSQL's FigureColname).
    assert_eq!(
        names("SELECT a::int::text, now()::timestamp::date, '1'::timestamp::timestamptz FROM t"),
        "SELECT a::INT::TEXT AS \"a\", now()::TIMESTAMP::DATE AS \"now\", \
         '1'::TIMESTAMP::TIMESTAMPTZ AS \"timestamptz\" FROM t"
    );
    let dup = names("SELECT i, i, 1, 2 FROM t");
    assert_eq!(
        dup,
        format!(
            "SELECT i, i AS \"i{SEPARATOR}2\", 1 AS \"?column?\", 2 AS \"?column?{SEPARATOR}2\" FROM t"
        )
    );
    // Derived tables and CTEs: the outer query refers to PostgreSQL's names.
    assert_eq!(
        names("WITH c AS (SELECT count(*) FROM t) SELECT count FROM c"),
        "WITH c AS (SELECT count(*) AS \"count\" FROM t) SELECT count FROM c"
    );
    assert_eq!(names("SELECT a, b FROM t"), "SELECT a, b FROM t");
}
