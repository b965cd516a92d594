use super::*;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

fn rewritten(sql: &str) -> String {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
    let datafusion::sql::sqlparser::ast::Statement::Query(q) = &mut stmts[0] else {
        panic!("not a query: {sql}");
    };
    crate::query::pg_casts::rewrite(q);
    q.to_string()
}

#[test]
fn char_casts_become_shoal_bpchar() {
    assert_eq!(
        rewritten("SELECT 'ab'::char(3), CAST(x AS character(2)), 'q'::char FROM t"),
        "SELECT shoal_bpchar(CAST('ab' AS VARCHAR), 3), shoal_bpchar(CAST(x AS VARCHAR), 2), \
         shoal_bpchar(CAST('q' AS VARCHAR), 1) FROM t"
    );
    // varchar(n) keeps its own rewrite in the same pass.
    assert_eq!(
        rewritten("SELECT x::varchar(2) FROM t"),
        "SELECT CAST(substr(CAST(x AS VARCHAR), 1, 2) AS VARCHAR) FROM t"
    );
}

fn to_bpchar(values: Vec<Option<&str>>, len: u32) -> Vec<Option<String>> {
    let udf = ToBpchar::udf();
    let field = Arc::new(
        Field::new("c", DataType::Utf8, true)
            .with_metadata(marks(&shoal_catalog::SqlType::Char { len })),
    );
    let n = values.len();
    let out = udf
        .invoke_with_args(ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(arrow::array::StringArray::from(values))),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(i64::from(len)))),
            ],
            arg_fields: vec![],
            number_rows: n,
            return_field: field,
            config_options: Arc::new(ConfigOptions::default()),
        })
        .unwrap()
        .to_array(n)
        .unwrap();
    out.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn explicit_casts_cut_and_drop_trailing_spaces() {
    assert_eq!(
        to_bpchar(
            vec![Some("abcd"), Some("ab  "), Some("a b"), None, Some("né€x")],
            3
        ),
        vec![
            Some("abc".to_string()),
            Some("ab".to_string()),
            Some("a b".to_string()),
            None,
            Some("né€".to_string())
        ]
    );
    assert_eq!(
        to_bpchar(vec![Some("ab c")], 3),
        vec![Some("ab".to_string())]
    );
}
