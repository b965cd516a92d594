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

fn index(name: &str, definition: &str) -> shoal_catalog::IndexDef {
    shoal_catalog::IndexDef {
        name: name.into(),
        table_id: 7,
        unique: false,
        definition: definition.into(),
        constraint: None,
    }
}

#[test]
fn key_constraints_are_named_and_defined_as_postgresql_does() {
    use super::KeyRequest;
    use shoal_catalog::KeyConstraint;
    let pk = KeyRequest {
        constraint: KeyConstraint::PrimaryKey,
        name: None,
        columns: vec!["id".into()],
        nulls_distinct: None,
    };
    assert_eq!(pk.name("t", |_| false), "t_pkey");
    assert_eq!(pk.name("t", |n| n == "t_pkey"), "t_pkey1");
    let unique = KeyRequest {
        constraint: KeyConstraint::Unique,
        name: None,
        columns: vec!["a".into(), "B".into()],
        nulls_distinct: Some(false),
    };
    assert_eq!(unique.name("t", |_| false), "t_a_B_key");
    let def = unique.index_def("t", 7, "t_a_B_key");
    assert_eq!(
        def.definition,
        "CREATE UNIQUE INDEX \"t_a_B_key\" ON public.t USING btree (a, \"B\") NULLS NOT DISTINCT"
    );
    assert_eq!(def.constraint, Some(KeyConstraint::Unique));
    let info = super::catalog_info(&def, "t");
    let columns: Vec<Option<String>> = info.keys.iter().map(|k| k.column.clone()).collect();
    assert_eq!(columns, [Some("a".to_string()), Some("B".to_string())]);
    assert!(info.nulls_not_distinct && info.unique);
}

#[test]
fn definitions_follow_renames_and_go_with_dropped_columns() {
    use shoal_catalog::IndexUpdate;
    let indexes = [
        index(
            "ix",
            "CREATE INDEX ix ON public.t USING btree (a, lower(b) DESC) WHERE (c > 1)",
        ),
        index("other", "CREATE INDEX other ON public.t USING btree (d)"),
    ];
    assert_eq!(
        super::after_rename_column(&indexes, 7, "b", "New"),
        [IndexUpdate::Redefine {
            name: "ix".into(),
            definition:
                "CREATE INDEX ix ON public.t USING btree (a, lower(\"New\") DESC) WHERE (c > 1)"
                    .into()
        }]
    );
    assert_eq!(super::after_rename_column(&indexes, 8, "b", "x"), []);
    assert_eq!(
        super::after_drop_column(&indexes, 7, "c"),
        [IndexUpdate::Drop { name: "ix".into() }]
    );
    assert_eq!(
        super::after_rename_table(&indexes[1..], 7, "u"),
        [IndexUpdate::Redefine {
            name: "other".into(),
            definition: "CREATE INDEX other ON public.u USING btree (d)".into()
        }]
    );
    let info = super::catalog_info(&indexes[0], "t");
    assert_eq!(info.keys.len(), 2);
    assert_eq!(info.keys[0].column.as_deref(), Some("a"));
    assert!(info.keys[1].column.is_none() && info.keys[1].descending && info.keys[1].nulls_first);
    assert_eq!(info.predicate.as_deref(), Some("c > 1"));
}
