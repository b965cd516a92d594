use super::*;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

fn parse(sql: &str) -> Statement {
    Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .unwrap()
        .pop()
        .unwrap()
}

#[test]
fn execute_binds_arguments_with_declared_types() {
    let mut p = PreparedStatements::default();
    let Some(SessionStatement::Prepare { name, prepared }) =
        SessionStatement::of(&parse("PREPARE q (int) AS SELECT $1 + 1, $2"))
    else {
        panic!("not a PREPARE");
    };
    p.prepare(&name, prepared.clone()).unwrap();
    assert_eq!(p.prepare(&name, prepared).unwrap_err().code, "42P05");
    let Some(SessionStatement::Execute { name, args }) =
        SessionStatement::of(&parse("EXECUTE q(41, 'x')"))
    else {
        panic!("not an EXECUTE");
    };
    assert_eq!(
        p.bind(&name, &args).unwrap().to_string(),
        "SELECT CAST(41 AS INT) + 1, ('x')"
    );
    assert_eq!(p.bind(&name, &args[..1]).unwrap_err().code, "42601");
    assert_eq!(p.bind("nope", &args).unwrap_err().code, "26000");
    assert!(matches!(
        SessionStatement::of(&parse("DEALLOCATE ALL")),
        Some(SessionStatement::Deallocate(None))
    ));
    assert!(p.deallocate("q"));
    assert!(!p.deallocate("q"));
}
