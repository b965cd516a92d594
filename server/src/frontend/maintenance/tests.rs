use super::*;

fn tables(sql: &str) -> Vec<(String, Vec<String>)> {
    parse(sql)
        .expect("a maintenance statement")
        .expect("parses")
        .tables
        .into_iter()
        .map(|t| (t.name, t.columns))
        .collect()
}

#[test]
fn postgresql_forms_parse() {
    assert_eq!(
        tables("vacuum analyze pgbench_branches"),
        [("pgbench_branches".to_string(), vec![])]
    );
    assert_eq!(
        tables("VACUUM (VERBOSE, ANALYZE, INDEX_CLEANUP off) a, public.\"B\";"),
        [("a".to_string(), vec![]), ("B".to_string(), vec![])]
    );
    assert_eq!(tables("VACUUM FULL FREEZE VERBOSE"), []);
    assert_eq!(
        tables("analyse t (x, \"Y\")"),
        [("t".to_string(), vec!["x".to_string(), "Y".to_string()])]
    );
    assert_eq!(
        parse("vacuum").unwrap().unwrap().kind,
        MaintenanceKind::Vacuum
    );
    assert_eq!(
        parse("ANALYZE VERBOSE").unwrap().unwrap().kind,
        MaintenanceKind::Analyze
    );
    assert!(parse("SELECT 1").is_none());
    assert!(parse("   -- c\n select 'vacuum'").is_none());
}

#[test]
fn malformed_statements_fail_with_42601() {
    for sql in [
        "VACUUM (NOPE) t",
        "VACUUM t u",
        "VACUUM (VERBOSE t",
        "ANALYZE t (",
        "VACUUM t; SELECT 1",
        "ANALYZE FULL t",
    ] {
        let e = parse(sql).expect("maintenance").expect_err(sql);
        assert_eq!(e.code, "42601", "{sql}: {}", e.message);
    }
    assert_eq!(parse("VACUUM other.t").unwrap().unwrap_err().code, "42P01");
}
