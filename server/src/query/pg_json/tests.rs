use super::*;

#[test]
fn paths_read_as_postgresqls_text_arrays() {
    assert_eq!(path_literal("{a,2}").unwrap(), vec!["a", "2"]);
    assert_eq!(path_literal(" { \"a b\" , c } ").unwrap(), vec!["a b", "c"]);
    assert!(path_literal("{}").unwrap().is_empty());
    assert!(path_literal("a,b").is_err());
    assert_eq!(
        path_literal(r#"{"a,b","c\"d"}"#).unwrap(),
        vec!["a,b", "c\"d"]
    );
    let items = [Some("x,y".to_string()), Some("q\"".to_string())];
    assert_eq!(
        path_literal(&array_text(&items)).unwrap(),
        vec!["x,y", "q\""]
    );
}

#[test]
fn casts_in_a_select_become_input_functions() {
    use datafusion::sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};
    let stmt = Parser::parse_sql(
        &PostgreSqlDialect {},
        "SELECT '{}'::jsonb, CAST(x AS uuid), y::json, z::text FROM t",
    )
    .unwrap()
    .remove(0);
    let sql::Statement::Query(mut q) = stmt else {
        panic!("a query");
    };
    assert!(rewrite_casts(&mut q));
    assert_eq!(
        q.to_string(),
        "SELECT shoal_jsonb_in(CAST('{}' AS TEXT)), shoal_uuid_in(CAST(x AS TEXT)), \
         shoal_json_in(CAST(y AS TEXT)), z::TEXT FROM t"
    );
}

#[test]
fn the_column_marker_is_the_one_arrow_pg_reads() {
    assert_eq!(
        shoal_sql_functions::types::PG_TEXT_TYPE_KEY,
        arrow_pg::datatypes::PG_TEXT_TYPE_KEY
    );
}
