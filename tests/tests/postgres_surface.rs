//! What a client sees of a result besides its values: column names as PostgreSQL gives them
//! (`?column?`, `count`, a cast's type, a column named twice), in both protocols. Each
//! scenario runs on Shoal and on the scratch PostgreSQL 15 with the same expectations.

use shoal_e2e::{client_of, on_shoal_and_postgresql, PsqlTarget};
use tokio_postgres::SimpleQueryMessage;

async fn column_names(target: &PsqlTarget, _shoal: bool) {
    let client = client_of(target).await;
    let cases: &[(&str, &[&str])] = &[
        ("SELECT 1", &["?column?"]),
        ("SELECT 1, 2", &["?column?", "?column?"]),
        ("SELECT i, i FROM (VALUES (1)) v(i)", &["i", "i"]),
        ("SELECT 1 + 2, 'a' || 'b'", &["?column?", "?column?"]),
        (
            "SELECT count(*), max(i) FROM (VALUES (1)) v(i)",
            &["count", "max"],
        ),
        (
            "SELECT '1'::int, 2::bigint, i::text FROM (VALUES (1)) v(i)",
            &["int4", "int8", "i"],
        ),
        ("SELECT CASE WHEN true THEN 1 END", &["case"]),
        (
            "SELECT now() IS NOT NULL, upper('x')",
            &["?column?", "upper"],
        ),
        (
            "SELECT current_user, session_user",
            &["current_user", "session_user"],
        ),
        ("SELECT x AS a, x AS a FROM (VALUES (1)) v(x)", &["a", "a"]),
        ("SELECT * FROM (SELECT 1, 2) s", &["?column?", "?column?"]),
        (
            "WITH c AS (SELECT count(*) FROM (VALUES (1)) v(x)) SELECT count FROM c",
            &["count"],
        ),
        ("SELECT 1 UNION ALL SELECT 2", &["?column?"]),
        ("SELECT (SELECT 5 AS five)", &["five"]),
        ("SELECT 'abcdefg'::varchar(5)", &["varchar"]),
    ];
    for (sql, expected) in cases {
        let prepared = client
            .prepare(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", shoal_e2e::err_text(&e)));
        let described: Vec<&str> = prepared.columns().iter().map(|c| c.name()).collect();
        assert_eq!(&described, expected, "{sql} (described)");
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", shoal_e2e::err_text(&e)));
        let simple: Vec<String> = messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::RowDescription(cols) => {
                    Some(cols.iter().map(|c| c.name().to_string()).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        assert_eq!(&simple, expected, "{sql} (simple)");
    }
}

/// The types a driver sees for common expressions (the OIDs in RowDescription).
async fn result_types(target: &PsqlTarget, _shoal: bool) {
    use tokio_postgres::types::Type;
    let client = client_of(target).await;
    let cases: &[(&str, Type)] = &[
        ("SELECT now()", Type::TIMESTAMPTZ),
        (
            "SELECT '2024-01-01 10:00:00+02'::timestamptz",
            Type::TIMESTAMPTZ,
        ),
        ("SELECT TIMESTAMP '2024-01-01 10:00:00'", Type::TIMESTAMP),
        ("SELECT 'x'::text", Type::TEXT),
        ("SELECT '\\x01'::bytea", Type::BYTEA),
        ("SELECT true", Type::BOOL),
        ("SELECT 1.5::float8", Type::FLOAT8),
        ("SELECT DATE '2024-01-01'", Type::DATE),
    ];
    for (sql, expected) in cases {
        let prepared = client
            .prepare(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {}", shoal_e2e::err_text(&e)));
        assert_eq!(prepared.columns()[0].type_(), expected, "{sql}");
    }
}

on_shoal_and_postgresql!(
    result_types_are_postgresqls_on_shoal,
    result_types_are_postgresqls_on_postgresql,
    1,
    120,
    result_types
);

on_shoal_and_postgresql!(
    column_names_are_postgresqls_on_shoal,
    column_names_are_postgresqls_on_postgresql,
    1,
    120,
    column_names
);
