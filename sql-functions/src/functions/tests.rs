use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast as sql;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::args::{bind, bind_values, describe};
use super::registry::{spec, SPECS};
use super::rows::{jsonb_text, pretty};
use super::*;

fn parse_call(sql_text: &str) -> FunctionCall {
    let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql_text)
        .unwrap()
        .remove(0);
    let sql::Statement::Query(q) = stmt else {
        panic!()
    };
    let sql::SetExpr::Select(s) = q.body.as_ref() else {
        panic!()
    };
    let sql::SelectItem::UnnamedExpr(sql::Expr::Function(f)) = &s.projection[0] else {
        panic!()
    };
    let sql::FunctionArguments::List(l) = &f.args else {
        panic!()
    };
    FunctionCall {
        name: f.name.to_string(),
        args: l
            .args
            .iter()
            .map(|a| match a {
                sql::FunctionArg::Named {
                    name,
                    arg: sql::FunctionArgExpr::Expr(e),
                    ..
                } => (Some(name.value.clone()), e.clone()),
                sql::FunctionArg::ExprNamed {
                    name,
                    arg: sql::FunctionArgExpr::Expr(e),
                    ..
                } => (Some(name.to_string()), e.clone()),
                sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => (None, e.clone()),
                _ => panic!(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn binds_positional_named_defaults_and_aliases() {
    let ctx = SessionContext::new();
    let c = parse_call("SELECT create_distributed_table('events', 'id', replication_factor => 2)");
    let a = bind_values(
        &ctx,
        spec("create_distributed_table").unwrap(),
        &c,
        &ParamValues::List(vec![]),
    )
    .await
    .unwrap();
    assert_eq!(a.text("table_name").unwrap(), "events");
    // Not given: the cluster applies the default (Citus's `citus.shard_count`, 32), and can
    // tell it apart from an explicit count (refused beside a `colocate_with` table).
    assert_eq!(a.opt_int("shard_count"), None);
    assert_eq!(a.int("replication_factor").unwrap(), 2);
    assert_eq!(a.text("colocate_with").unwrap(), "default");

    let c = parse_call("SELECT citus_add_node(nodename => 'w1', nodeport => '7400')");
    let a = bind_values(
        &ctx,
        spec("citus_add_node").unwrap(),
        &c,
        &ParamValues::List(vec![]),
    )
    .await
    .unwrap();
    assert_eq!(a.port().unwrap(), 7400);

    let c = parse_call("SELECT add_node('w1')");
    assert!(matches!(
        bind(spec("add_node").unwrap(), &c).unwrap_err(),
        ClusterError::UndefinedFunction { .. }
    ));
    let c = parse_call("SELECT add_node('w1', 1, bogus => 1)");
    assert!(matches!(
        bind(spec("add_node").unwrap(), &c).unwrap_err(),
        ClusterError::UndefinedFunction { .. }
    ));

    let c = parse_call("SELECT add_node($1, $2)");
    let params = ParamValues::List(vec![
        ScalarValue::Utf8(Some("h".into())).into(),
        ScalarValue::Utf8(Some("7401".into())).into(),
    ]);
    let a = bind_values(&ctx, spec("add_node").unwrap(), &c, &params)
        .await
        .unwrap();
    assert_eq!(a.port().unwrap(), 7401);
    let plan = describe(&ctx, &c).await.unwrap();
    assert_eq!(plan.schema().field(0).name(), "add_node");
}

#[test]
fn jsonb_text_orders_keys_as_postgres_prints_jsonb() {
    let v = serde_json::json!({"task_state_counts": {"running": 1, "done": 2, "blocked": 3}, "tasks": []});
    assert_eq!(
        jsonb_text(&v),
        r#"{"tasks": [], "task_state_counts": {"done": 2, "blocked": 3, "running": 1}}"#
    );
}

#[test]
fn sizes_print_like_pg_size_pretty() {
    assert_eq!(pretty(0), "0 bytes");
    assert_eq!(pretty(10_239), "10239 bytes");
    assert_eq!(pretty(10_240), "10 kB");
    assert_eq!(pretty(5 * 1024 * 1024 * 1024), "5120 MB");
    assert_eq!(pretty(50 * 1024 * 1024 * 1024), "50 GB");
}

#[test]
fn every_name_and_alias_belongs_to_one_function() {
    let mut seen = std::collections::HashMap::new();
    for s in SPECS {
        for n in s.names {
            assert!(
                seen.insert(*n, s.function).is_none(),
                "{n} is registered twice"
            );
        }
    }
    assert_eq!(
        spec("citus_move_shard_placement").unwrap().function,
        Function::CitusMoveShardPlacement
    );
    assert_eq!(spec("master_add_node").unwrap().function, Function::AddNode);
    assert!(spec("pg_sleep").is_none());
}
