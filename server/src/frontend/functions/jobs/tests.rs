use super::*;

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
