//! Distributed execution (datafusion-distributed) end to end on a 3-worker cluster: joins of
//! colocated, non-colocated and reference tables, numeric aggregates, `count(DISTINCT)`,
//! top-k and window functions run in stages on the workers — EXPLAIN shows the stages and
//! the worker each leaf task runs on — and answer exactly as the same queries planned on the
//! coordinator (`shoal.distributed_execution = off`), while the coordinator receives a
//! fraction of the rows; the join runs exactly through a move of a shard group it reads; a
//! query pinned to one shard group runs whole on the worker holding it (router execution);
//! a join of colocated tables on their distribution columns joins shard group by shard group
//! without a shuffle; a join with a reference table reads it in every task, from the task's
//! worker, without a shuffle; a join with nothing to hash on, or with a side small by the rows
//! the catalog counts (or narrow, against an other side twice its rows), broadcasts a side; a
//! join of two large sides shuffles both.

use shoal_e2e::{exec, lines, within, Cluster};

/// (what, query, whether the coordinator must receive far fewer rows than the tables hold)
const QUERIES: &[(&str, &str, bool)] = &[
    (
        "colocated join",
        "SELECT o_cust % 10 AS k, count(*), sum(i_price) FROM orders JOIN items ON o_id = i_oid \
         GROUP BY 1 ORDER BY 1",
        true,
    ),
    (
        // customers is small (by the rows the catalog counts): it is built once and
        // broadcast to the tasks reading orders, which is read where it is
        "broadcast of the small side",
        "SELECT c_nation, count(*), sum(o_total) FROM orders JOIN customers ON o_cust = c_id \
         GROUP BY c_nation ORDER BY c_nation",
        true,
    ),
    (
        // visits is above DataFusion's row limit but narrow (two columns read), clicks has
        // more than twice its rows: visits is broadcast, clicks read where it is
        "broadcast of a narrow side",
        "SELECT count(*), sum(v_amount) FROM clicks JOIN visits ON k_visit = v_id",
        true,
    ),
    (
        // the visits of a few customers (filtered: small by its estimate) are preserved by
        // the left join and cannot be broadcast; clicks, too large to broadcast, are reduced
        // to the clicks of those visits (a semi join with their broadcast keys) before the
        // shuffle
        "shuffle reduced by a small side's keys",
        "SELECT count(*), count(k_visit), sum(v_amount) FROM visits LEFT JOIN clicks \
         ON k_visit = v_id WHERE v_cust < 700",
        true,
    ),
    (
        // the same for the anti join, which preserves the visits
        "shuffle reduced by a small side's keys, anti join",
        "SELECT count(*), sum(v_amount) FROM visits WHERE v_cust < 700 \
         AND NOT EXISTS (SELECT 1 FROM clicks WHERE k_visit = v_id)",
        true,
    ),
    (
        // the same with a volatile filter: two evaluations of the visits would differ, so
        // their keys do not reduce the clicks
        "shuffle not reduced by a volatile side",
        "SELECT count(*) > 0 FROM visits WHERE v_cust < 700 AND random() < 2 \
         AND NOT EXISTS (SELECT 1 FROM clicks WHERE k_visit = v_id)",
        false,
    ),
    (
        // both sides too large to broadcast: each is shuffled by the join key
        "repartitioned join",
        "SELECT a.v_cust % 10 AS k, count(*), sum(b.v_amount) FROM visits a JOIN visits b \
         ON a.v_cust = b.v_id GROUP BY 1 ORDER BY 1",
        true,
    ),
    (
        "reference join",
        "SELECT n_name, count(*), sum(o_total) FROM orders JOIN customers ON o_cust = c_id \
         JOIN nations ON c_nation = n_id GROUP BY n_name ORDER BY n_name",
        true,
    ),
    (
        // grouped by the distribution column: each shard group finishes its groups, nothing
        // is shuffled
        "aggregate by the distribution column",
        "SELECT i_oid, count(*), sum(i_price) FROM items GROUP BY i_oid ORDER BY 3 DESC, 1 LIMIT 5",
        true,
    ),
    (
        // TPC-H Q11's shape: the groups are finished per shard group and compared there with
        // the subquery's one row, broadcast; the coordinator receives the groups that pass
        "having against a scalar subquery",
        "SELECT i_oid, sum(i_price) FROM items GROUP BY i_oid \
         HAVING sum(i_price) > (SELECT sum(i_price) * 0.00009 FROM items) ORDER BY 2 DESC, 1",
        true,
    ),
    (
        "numeric aggregate",
        "SELECT o_cust % 7 AS k, sum(o_total), avg(o_total), min(o_total), max(o_total), \
         count(*) FROM orders GROUP BY 1 ORDER BY 1",
        true,
    ),
    (
        "count distinct",
        "SELECT count(DISTINCT o_cust), count(DISTINCT o_total) FROM orders",
        false,
    ),
    (
        "top-k",
        "SELECT o_id, o_total FROM orders ORDER BY o_total DESC, o_id LIMIT 5",
        true,
    ),
    (
        "window",
        "SELECT o_cust, o_id, rank() OVER (PARTITION BY o_cust ORDER BY o_total DESC, o_id) AS r \
         FROM orders WHERE o_cust < 3 ORDER BY o_cust, r LIMIT 10",
        false,
    ),
    (
        // an ordinary anti join probed where orders are, against the broadcast customers
        // and the subquery's two counts (whether it has rows, and NULLs)
        "not in",
        "SELECT count(*), sum(o_total) FROM orders WHERE o_cust NOT IN \
         (SELECT c_id FROM customers WHERE c_nation = 1)",
        true,
    ),
    (
        "semi join",
        "SELECT count(*) FROM customers WHERE c_id IN (SELECT o_cust FROM orders WHERE o_total > 1400)",
        true,
    ),
    (
        // a broadcast side with a LIMIT (whichever 10 customers: every order joins each)
        "broadcast of a limited side",
        "SELECT count(*) FROM (SELECT * FROM customers LIMIT 10) c JOIN orders \
         ON o_total > c_id * 0 - 1",
        true,
    ),
    (
        // the subquery's one row is broadcast to the tasks reading orders (not all of
        // orders collected where the one row is: the coordinator)
        "scalar subquery",
        "SELECT o_cust % 3 AS k, count(*), sum(o_total) FROM orders \
         WHERE o_total > (SELECT avg(o_total) FROM orders WHERE o_cust = 3) \
         GROUP BY 1 ORDER BY 1",
        true,
    ),
    (
        // no equality to hash on: one side is broadcast to the tasks reading the other
        "broadcast join",
        "SELECT c_nation, count(*), sum(o_total) FROM orders JOIN customers \
         ON o_total > c_id * 14 AND o_cust = 3 GROUP BY c_nation ORDER BY c_nation",
        true,
    ),
];

const ORDERS: i64 = 20_000;
const ITEMS: i64 = 60_000;
/// Above DataFusion's limit for a build side it collects and broadcasts (128k rows).
const VISITS: i64 = 150_000;
/// More than twice `VISITS`.
const CLICKS: i64 = 400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_aggregates_run_in_stages_on_the_workers() {
    let cluster = Cluster::start(3).await;
    let ports = cluster.worker_ports();
    within(600, "distributed execution", async {
        let client = cluster.client().await;
        for sql in [
            "CREATE TABLE orders (o_id bigint, o_cust integer, o_total numeric(12,2))",
            "SELECT create_distributed_table('orders', 'o_id', shard_count => 12)",
            "CREATE TABLE items (i_oid bigint, i_qty integer, i_price numeric(12,2))",
            "SELECT create_distributed_table('items', 'i_oid', colocate_with => 'orders')",
            "CREATE TABLE customers (c_id integer, c_nation integer, c_name text)",
            "SELECT create_distributed_table('customers', 'c_id', shard_count => 6)",
            "CREATE TABLE nations (n_id integer, n_name text)",
            "SELECT create_reference_table('nations')",
            &format!(
                "INSERT INTO orders SELECT g, g % 100, (g % 1000) * 1.5 FROM generate_series(1, {ORDERS}) g"
            ),
            &format!(
                "INSERT INTO items SELECT g % {ORDERS} + 1, g % 7, (g % 333) * 0.25 FROM generate_series(1, {ITEMS}) g"
            ),
            "INSERT INTO customers SELECT g, g % 5, 'c' || g FROM generate_series(0, 99) g",
            "INSERT INTO nations VALUES (0, 'zero'), (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')",
            "CREATE TABLE visits (v_id bigint, v_cust integer, v_amount numeric(12,2))",
            "SELECT create_distributed_table('visits', 'v_id', shard_count => 6)",
            &format!(
                "INSERT INTO visits SELECT g, (g * 7) % {VISITS} + 1, (g % 500) * 0.5 FROM generate_series(1, {VISITS}) g"
            ),
            "CREATE TABLE clicks (k_id bigint, k_visit bigint)",
            "SELECT create_distributed_table('clicks', 'k_id', shard_count => 6)",
            &format!(
                "INSERT INTO clicks SELECT g, (g * 13) % {} + 1 FROM generate_series(1, {CLICKS}) g",
                VISITS + 1000
            ),
        ] {
            exec(&client, sql).await;
        }
        let received = || {
            cluster
                .metric("shoal_scan_rows_received_total")
                .expect("shoal_scan_rows_received_total on /metrics")
        };
        for (what, sql, fewer_rows) in QUERIES {
            let plan = lines(&client, &format!("EXPLAIN {sql}")).await.join("\n");
            assert!(
                plan.contains("DistributedExec") && plan.contains("ShardLeafExec"),
                "{what}: EXPLAIN shows stages with shard leaves:\n{plan}"
            );
            // every leaf task is routed to a worker, named in the plan (a reference join's
            // leaf reads the copy of whichever worker its task runs on)
            for leaf in plan
                .lines()
                .filter(|l| l.contains("ShardLeafExec") && !l.contains("reference join"))
            {
                assert!(
                    ports.iter().any(|p| leaf.contains(&format!("at=127.0.0.1:{p}"))),
                    "{what}: a leaf names the worker it runs on ({ports:?}):\n{plan}"
                );
            }

            if what.contains("broadcast") {
                assert!(
                    plan.contains("NetworkBroadcastExec"),
                    "{what}: a side is broadcast:\n{plan}"
                );
            }
            for (case, broadcast, probed) in [
                ("broadcast of the small side", "customers", "orders"),
                ("broadcast of a narrow side", "visits", "clicks"),
            ] {
                if *what == case {
                    assert!(
                        stage_of(&plan, broadcast)
                            .iter()
                            .any(|l| l.contains(" BroadcastExec:"))
                            && stage_of(&plan, probed)
                                .iter()
                                .any(|l| l.contains("HashJoinExec: mode=CollectLeft")),
                        "{what}: {broadcast} is broadcast to the join reading {probed}:\n{plan}"
                    );
                }
            }
            if *what == "aggregate by the distribution column"
                || *what == "having against a scalar subquery"
            {
                let grouped = stages_reading(&plan, "items")
                    .iter()
                    .map(|stage| stage_lines(&plan, stage))
                    .find(|lines| lines.iter().any(|l| l.contains("gby=[i_oid")))
                    .unwrap_or_else(|| panic!("{what}: a stage groups by i_oid:\n{plan}"));
                assert!(
                    grouped.iter().any(|l| l.contains("mode=FinalPartitioned")
                        || l.contains("mode=SinglePartitioned"))
                        && grouped
                            .iter()
                            .filter(|l| l.contains("ShardLeafExec"))
                            .all(|l| l.contains("colocated")),
                    "{what}: the stage reading items finishes the groups per shard group:\n{plan}"
                );
                assert!(
                    !plan.contains("NetworkShuffleExec"),
                    "{what}: nothing is shuffled:\n{plan}"
                );
            }
            if what.starts_with("shuffle reduced by a small side's keys") {
                let clicks = stage_of(&plan, "clicks");
                assert!(
                    clicks.iter().any(|l| l.contains("mode=CollectLeft, join_type=RightSemi"))
                        && clicks.iter().any(|l| l.contains("NetworkBroadcastExec"))
                        && clicks.iter().any(|l| l.contains("RepartitionExec")),
                    "{what}: clicks are semi-joined with the broadcast keys before the shuffle:\n{plan}"
                );
                // what is broadcast is the visits' join key alone
                assert!(
                    plan.lines()
                        .any(|l| l.contains("ProjectionExec: expr=[v_id@") && l.contains(" as key0]")),
                    "{what}: only the keys are broadcast:\n{plan}"
                );
            }
            if *what == "not in" {
                let orders = stage_of(&plan, "orders");
                assert!(
                    orders
                        .iter()
                        .any(|l| l.contains("mode=CollectLeft, join_type=RightAnti"))
                        && orders.iter().any(|l| l.contains("NestedLoopJoinExec"))
                        && orders
                            .iter()
                            .filter(|l| l.contains("ShardLeafExec: table=orders"))
                            .count()
                            > 1,
                    "{what}: every task reading orders probes the anti join and the counts:\n{plan}"
                );
            }
            if *what == "shuffle not reduced by a volatile side" {
                assert!(
                    !plan.contains("join_type=RightSemi"),
                    "{what}: no reduction:\n{plan}"
                );
            }
            if *what == "repartitioned join" {
                let join = plan
                    .lines()
                    .position(|l| l.contains("HashJoinExec: mode=Partitioned"))
                    .unwrap_or_else(|| panic!("{what}: a partitioned join:\n{plan}"));
                let lines: Vec<&str> = plan.lines().collect();
                assert!(
                    lines[join + 1..]
                        .iter()
                        .take(2)
                        .all(|l| l.contains("NetworkShuffleExec"))
                        && !plan.contains("NetworkBroadcastExec"),
                    "{what}: both sides are shuffled to the join:\n{plan}"
                );
            }

            let before = received();
            let staged = lines(&client, sql).await;
            let staged_rows = received() - before;

            exec(&client, "SET shoal.distributed_execution = off").await;
            let plan_off = lines(&client, &format!("EXPLAIN {sql}")).await.join("\n");
            assert!(
                !plan_off.contains("DistributedExec"),
                "{what}: off plans on the coordinator:\n{plan_off}"
            );
            let before = received();
            let local = lines(&client, sql).await;
            let local_rows = received() - before;
            exec(&client, "RESET shoal.distributed_execution").await;

            assert!(!staged.is_empty(), "{what}: rows");
            assert_eq!(staged, local, "{what}: the same answer both ways");
            eprintln!("{what}: coordinator received {staged_rows} rows in stages, {local_rows} without");
            if *fewer_rows {
                assert!(
                    staged_rows * 20.0 < local_rows,
                    "{what}: in stages the coordinator receives {staged_rows} rows, without {local_rows}"
                );
            }
        }

        // Through a move of a colocated shard group: every answer exact, read from the
        // snapshot each query took, and none falls back to the coordinator's plan.
        let join = QUERIES[0].1;
        let want = lines(&client, join).await;
        let fallbacks = || cluster.metric("shoal_distributed_fallbacks_total");
        let fallbacks_before = fallbacks();
        let placed = lines(
            &client,
            "SELECT shard_id, port FROM shoal.shards WHERE table_name = 'orders' ORDER BY shard_id LIMIT 1",
        )
        .await;
        let (shard, port) = placed[0].split_once('|').expect("shard_id|port");
        let target = ports
            .iter()
            .find(|p| p.to_string() != port)
            .expect("another worker");
        let mover = cluster.client().await;
        let move_sql = format!("SELECT move_shard({shard}, '127.0.0.1', {target})");
        let moving = tokio::spawn(async move { mover.simple_query(&move_sql).await.map(|_| ()) });
        let mut rounds = 0;
        while !moving.is_finished() || rounds < 3 {
            assert_eq!(lines(&client, join).await, want, "a join during a move");
            rounds += 1;
        }
        moving
            .await
            .expect("move task")
            .unwrap_or_else(|e| panic!("move_shard: {}", shoal_e2e::err_text(&e)));
        assert_eq!(
            lines(
                &client,
                &format!("SELECT port FROM shoal.shards WHERE shard_id = {shard}")
            )
            .await,
            [target.to_string()],
            "the shard moved"
        );
        assert_eq!(lines(&client, join).await, want, "the join after the move");
        assert_eq!(fallbacks(), fallbacks_before, "no query fell back ({rounds} during the move)");

        // Router execution: a query its filters pin to one shard group (with a reference
        // table) runs whole, as one task, on the worker holding that group; the coordinator
        // receives only the answer.
        for (what, sql, table, key) in [
            (
                "colocated join of one order",
                "SELECT o_cust, count(*), sum(i_price), max(i_qty) FROM orders JOIN items \
                 ON o_id = i_oid WHERE o_id = 4242 GROUP BY o_cust ORDER BY o_cust",
                "orders",
                4242,
            ),
            (
                "one customer's orders by nation name",
                "SELECT n_name, count(*), sum(c_id) FROM customers JOIN nations ON c_nation = n_id \
                 WHERE c_id = 42 GROUP BY n_name ORDER BY n_name",
                "customers",
                42,
            ),
        ] {
            let shard = lines(
                &client,
                &format!("SELECT get_shard_id_for_distribution_column('{table}', {key})"),
            )
            .await;
            let port = lines(
                &client,
                &format!("SELECT port FROM shoal.shards WHERE shard_id = {}", shard[0]),
            )
            .await;
            let plan = lines(&client, &format!("EXPLAIN {sql}")).await.join("\n");
            let boundaries: Vec<&str> = plan.lines().filter(|l| l.contains("Network")).collect();
            assert!(
                plan.contains("DistributedExec")
                    && boundaries.len() == 1
                    && boundaries[0].contains("NetworkCoalesceExec")
                    && boundaries[0].contains("input_tasks=1"),
                "{what}: one stage of one task:\n{plan}"
            );
            let leaves: Vec<&str> = plan.lines().filter(|l| l.contains("ShardLeafExec")).collect();
            assert!(
                !leaves.is_empty()
                    && leaves
                        .iter()
                        .all(|l| l.contains(&format!("at=127.0.0.1:{}", port[0]))),
                "{what}: every leaf on the worker holding the shard ({port:?}):\n{plan}"
            );
            let before = received();
            let routed = lines(&client, sql).await;
            let routed_rows = received() - before;
            exec(&client, "SET shoal.distributed_execution = off").await;
            let local = lines(&client, sql).await;
            exec(&client, "RESET shoal.distributed_execution").await;
            assert!(!routed.is_empty(), "{what}: rows");
            assert_eq!(routed, local, "{what}: the same answer both ways");
            assert_eq!(
                routed_rows,
                routed.len() as f64,
                "{what}: the coordinator receives the answer's rows only"
            );
        }
        assert_eq!(fallbacks(), fallbacks_before, "no routed query fell back");
        // one table's shard: the shard scan filters and aggregates on the worker already, in
        // one request (cheaper than a task)
        let one_shard = "SELECT o_cust, count(*), sum(o_total) FROM orders WHERE o_id = 4242 \
                         GROUP BY o_cust";
        let plan = lines(&client, &format!("EXPLAIN {one_shard}")).await.join("\n");
        assert!(
            !plan.contains("DistributedExec") && plan.contains("shards=1 of 12"),
            "one shard of one table: its scan, no task:\n{plan}"
        );
        assert_eq!(lines(&client, one_shard).await.len(), 1);

        // Colocated joins: joined on both distribution columns, the tables' shard groups
        // join partition by partition with no shuffle of either side (every leaf is marked),
        // and answer as the same join on keys cast to numeric, which cannot be colocated,
        // with distributed execution on and off. (colocated: Some(must), None: either way)
        exec(
            &client,
            "CREATE TABLE refunds (r_oid bigint, r_amount numeric(12,2))",
        )
        .await;
        // the same type of distribution column, another shard count: not colocated
        exec(
            &client,
            "SELECT create_distributed_table('refunds', 'r_oid', shard_count => 5)",
        )
        .await;
        exec(
            &client,
            "INSERT INTO refunds SELECT g * 3, g % 50 FROM generate_series(1, 4000) g",
        )
        .await;
        let cast = |a: &str, b: &str| format!("CAST({a} AS numeric) = CAST({b} AS numeric)");
        for (what, sql, control, colocated) in [
            (
                "colocated join",
                "SELECT o_cust % 10 AS k, count(*), sum(i_price) FROM orders JOIN items \
                 ON o_id = i_oid GROUP BY 1 ORDER BY 1"
                    .to_string(),
                format!(
                    "SELECT o_cust % 10 AS k, count(*), sum(i_price) FROM orders JOIN items \
                     ON {} GROUP BY 1 ORDER BY 1",
                    cast("o_id", "i_oid")
                ),
                Some(true),
            ),
            (
                "colocated left join with a filter",
                "SELECT count(*), count(i_oid), sum(i_price) FROM orders LEFT JOIN items \
                 ON o_id = i_oid AND i_qty = 3 WHERE o_total > 100"
                    .to_string(),
                format!(
                    "SELECT count(*), count(i_oid), sum(i_price) FROM orders LEFT JOIN items \
                     ON {} AND i_qty = 3 WHERE o_total > 100",
                    cast("o_id", "i_oid")
                ),
                Some(true),
            ),
            (
                "colocated right join",
                "SELECT count(*), count(o_id), sum(i_price) FROM orders RIGHT JOIN items \
                 ON o_id = i_oid AND o_cust = 5"
                    .to_string(),
                format!(
                    "SELECT count(*), count(o_id), sum(i_price) FROM orders RIGHT JOIN items \
                     ON {} AND o_cust = 5",
                    cast("o_id", "i_oid")
                ),
                None,
            ),
            (
                "colocated full join",
                "SELECT count(*), count(o.o_id), count(i.i_oid) FROM \
                 (SELECT * FROM orders WHERE o_cust < 50) o FULL JOIN \
                 (SELECT * FROM items WHERE i_qty = 2) i ON o.o_id = i.i_oid"
                    .to_string(),
                format!(
                    "SELECT count(*), count(o.o_id), count(i.i_oid) FROM \
                     (SELECT * FROM orders WHERE o_cust < 50) o FULL JOIN \
                     (SELECT * FROM items WHERE i_qty = 2) i ON {}",
                    cast("o.o_id", "i.i_oid")
                ),
                None,
            ),
            (
                "colocated semi join",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_id IN \
                 (SELECT i_oid FROM items WHERE i_qty = 6)"
                    .to_string(),
                "SELECT count(*), sum(o_total) FROM orders WHERE CAST(o_id AS numeric) IN \
                 (SELECT CAST(i_oid AS numeric) FROM items WHERE i_qty = 6)"
                    .to_string(),
                None,
            ),
            (
                "colocated anti join",
                "SELECT count(*), sum(o_total) FROM orders WHERE NOT EXISTS \
                 (SELECT 1 FROM items WHERE i_oid = o_id AND i_qty = 1)"
                    .to_string(),
                format!(
                    "SELECT count(*), sum(o_total) FROM orders WHERE NOT EXISTS \
                     (SELECT 1 FROM items WHERE {} AND i_qty = 1)",
                    cast("i_oid", "o_id")
                ),
                None,
            ),
            (
                "colocated self join",
                "SELECT count(*), sum(a.o_total - b.o_total) FROM orders a JOIN orders b \
                 ON a.o_id = b.o_id WHERE a.o_cust = 7"
                    .to_string(),
                format!(
                    "SELECT count(*), sum(a.o_total - b.o_total) FROM orders a JOIN orders b \
                     ON {} WHERE a.o_cust = 7",
                    cast("a.o_id", "b.o_id")
                ),
                Some(true),
            ),
            (
                "colocated join pruned to a few shard groups",
                "SELECT count(*), count(i_oid), sum(i_price) FROM orders LEFT JOIN items \
                 ON o_id = i_oid WHERE o_id IN (5, 77, 4242, 19999)"
                    .to_string(),
                format!(
                    "SELECT count(*), count(i_oid), sum(i_price) FROM orders LEFT JOIN items \
                     ON {} WHERE o_id IN (5, 77, 4242, 19999)",
                    cast("o_id", "i_oid")
                ),
                None,
            ),
            (
                "colocated join under a join on the same key",
                "SELECT count(*), sum(a.i_price * b.i_qty) FROM orders \
                 JOIN items a ON o_id = a.i_oid JOIN items b ON o_id = b.i_oid WHERE o_cust < 20"
                    .to_string(),
                format!(
                    "SELECT count(*), sum(a.i_price * b.i_qty) FROM orders \
                     JOIN items a ON {} JOIN items b ON {} WHERE o_cust < 20",
                    cast("o_id", "a.i_oid"),
                    cast("o_id", "b.i_oid")
                ),
                Some(true),
            ),
            (
                // TPC-H Q21's shape: a join, a reference join, then a semi and an anti join,
                // all but the reference join on the order key
                "colocated joins chained through a reference join",
                "SELECT n_name, count(*), sum(a.i_price) FROM orders JOIN items a ON o_id = a.i_oid \
                 JOIN nations ON o_cust % 5 = n_id \
                 WHERE EXISTS (SELECT 1 FROM items b WHERE b.i_oid = o_id AND b.i_qty <> a.i_qty) \
                 AND NOT EXISTS (SELECT 1 FROM items c WHERE c.i_oid = o_id AND c.i_qty = 6 \
                 AND c.i_price > a.i_price) GROUP BY n_name ORDER BY n_name"
                    .to_string(),
                format!(
                    "SELECT n_name, count(*), sum(a.i_price) FROM orders JOIN items a ON {} \
                     JOIN nations ON o_cust % 5 = n_id \
                     WHERE EXISTS (SELECT 1 FROM items b WHERE {} AND b.i_qty <> a.i_qty) \
                     AND NOT EXISTS (SELECT 1 FROM items c WHERE {} AND c.i_qty = 6 \
                     AND c.i_price > a.i_price) GROUP BY n_name ORDER BY n_name",
                    cast("o_id", "a.i_oid"),
                    cast("b.i_oid", "o_id"),
                    cast("c.i_oid", "o_id")
                ),
                Some(true),
            ),
            (
                // TPC-H Q18's shape: the semi join's other side is an aggregate grouped by
                // the distribution column, finished per shard group
                "colocated join with an aggregate by the distribution column",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_id IN \
                 (SELECT i_oid FROM items GROUP BY i_oid HAVING sum(i_qty) > 12)"
                    .to_string(),
                "SELECT count(*), sum(o_total) FROM orders WHERE CAST(o_id AS numeric) IN \
                 (SELECT CAST(i_oid AS numeric) FROM items GROUP BY i_oid HAVING sum(i_qty) > 12)"
                    .to_string(),
                Some(true),
            ),
            (
                // ROLLUP's grand total (i_oid NULL), kept by the left join, would come once
                // per shard group
                "a rolled-up aggregate by the distribution column",
                "SELECT count(*), count(o_id), sum(x.q) FROM \
                 (SELECT i_oid, sum(i_qty) AS q FROM items GROUP BY ROLLUP(i_oid)) x \
                 LEFT JOIN orders ON o_id = x.i_oid"
                    .to_string(),
                format!(
                    "SELECT count(*), count(o_id), sum(x.q) FROM \
                     (SELECT i_oid, sum(i_qty) AS q FROM items GROUP BY ROLLUP(i_oid)) x \
                     LEFT JOIN orders ON {}",
                    cast("o_id", "x.i_oid")
                ),
                Some(false),
            ),
            (
                // customers is broadcast to the tasks joining orders with it; their output
                // keeps orders' shard groups, which join items' where they are (TPC-H Q3)
                "colocated join after a broadcast join",
                "SELECT c_nation, count(*), sum(i_price) FROM customers JOIN orders \
                 ON c_id = o_cust JOIN items ON o_id = i_oid WHERE c_name <> 'c7' \
                 GROUP BY c_nation ORDER BY c_nation"
                    .to_string(),
                format!(
                    "SELECT c_nation, count(*), sum(i_price) FROM customers JOIN orders \
                     ON c_id = o_cust JOIN items ON {} WHERE c_name <> 'c7' \
                     GROUP BY c_nation ORDER BY c_nation",
                    cast("o_id", "i_oid")
                ),
                Some(true),
            ),
            (
                "distribution columns of one type, tables not colocated",
                "SELECT count(*), sum(o_total), sum(r_amount) FROM orders JOIN refunds \
                 ON o_id = r_oid"
                    .to_string(),
                format!(
                    "SELECT count(*), sum(o_total), sum(r_amount) FROM orders JOIN refunds \
                     ON {}",
                    cast("o_id", "r_oid")
                ),
                Some(false),
            ),
        ] {
            let plan = lines(&client, &format!("EXPLAIN {sql}")).await.join("\n");
            // the leaves of the distributed tables joined on their distribution columns
            // (customers and nations are collected by every task)
            let leaves: Vec<&str> = plan
                .lines()
                .filter(|l| {
                    ["orders", "items", "refunds"]
                        .iter()
                        .any(|t| l.contains(&format!("ShardLeafExec: table={t},")))
                })
                .collect();
            let marked = leaves.iter().filter(|l| l.contains("colocated (partition")).count();
            match colocated {
                Some(true) => assert!(
                    !leaves.is_empty() && marked == leaves.len(),
                    "{what}: every leaf reads shard groups of a colocated join:\n{plan}"
                ),
                Some(false) => assert_eq!(marked, 0, "{what}: no colocated join:\n{plan}"),
                None => eprintln!("{what}: {marked} of {} leaves colocated", leaves.len()),
            }
            if what.contains("after a broadcast") {
                assert!(
                    stage_of(&plan, "customers").iter().any(|l| l.contains(" BroadcastExec:")),
                    "{what}: customers is broadcast:\n{plan}"
                );
            }
            let control_plan = lines(&client, &format!("EXPLAIN {control}")).await.join("\n");
            // its join on cast keys is not colocated: some side is read other than by shard
            // group (an aggregate in it by the distribution column still may be)
            assert!(
                control_plan
                    .lines()
                    .filter(|l| {
                        ["orders", "items", "refunds"]
                            .iter()
                            .any(|t| l.contains(&format!("ShardLeafExec: table={t},")))
                    })
                    .any(|l| !l.contains("colocated (partition")),
                "{what}: the control query's join is not colocated:\n{control_plan}"
            );
            let got = lines(&client, &sql).await;
            let want = lines(&client, &control).await;
            assert!(!got.is_empty() && got[0] != "0|0|", "{what}: rows: {got:?}");
            assert_eq!(got, want, "{what}: the same answer");
            exec(&client, "SET shoal.distributed_execution = off").await;
            assert_eq!(lines(&client, &sql).await, want, "{what}: the same answer, off");
            exec(&client, "RESET shoal.distributed_execution").await;
        }

        // Reference joins: a join with a reference table whose rows only the other side
        // preserves reads the table whole in every task, from the copy of the worker the task
        // runs on, in the stage that reads the other side (neither side is shuffled for it).
        // Answers equal the same joins with a distributed copy of the table, on and off.
        for sql in [
            "CREATE TABLE nations_d (n_id integer, n_name text)",
            "SELECT create_distributed_table('nations_d', 'n_id', shard_count => 3)",
            "INSERT INTO nations_d SELECT * FROM nations",
        ] {
            exec(&client, sql).await;
        }
        for (what, sql, reference) in [
            (
                "inner reference join",
                "SELECT n_name, count(*), sum(o_total) FROM orders JOIN nations \
                 ON o_cust % 5 = n_id GROUP BY n_name ORDER BY n_name",
                Some(true),
            ),
            (
                "reference join with the reference table first",
                "SELECT n_name, count(*), sum(o_total) FROM nations JOIN orders \
                 ON o_cust = n_id WHERE n_name <> 'two' GROUP BY n_name ORDER BY n_name",
                Some(true),
            ),
            (
                "left join preserving the distributed side",
                "SELECT count(*), count(n_id), sum(o_total) FROM orders LEFT JOIN nations \
                 ON o_cust = n_id",
                Some(true),
            ),
            (
                "semi join on a reference table",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_cust IN \
                 (SELECT n_id FROM nations WHERE n_name LIKE 't%')",
                Some(true),
            ),
            (
                "anti join on a reference table",
                "SELECT count(*), sum(o_total) FROM orders WHERE NOT EXISTS \
                 (SELECT 1 FROM nations WHERE n_id = o_cust)",
                Some(true),
            ),
            (
                "reference join after a broadcast join",
                "SELECT n_name, count(*), sum(o_total) FROM orders JOIN customers \
                 ON o_cust = c_id JOIN nations ON c_nation = n_id GROUP BY n_name \
                 ORDER BY n_name",
                Some(true),
            ),
            (
                "reference join after a repartitioned join",
                "SELECT n_name, count(*), sum(b.v_amount) FROM visits a JOIN visits b \
                 ON a.v_cust = b.v_id JOIN nations ON b.v_cust % 5 = n_id GROUP BY n_name \
                 ORDER BY n_name",
                Some(true),
            ),
            (
                // each task would emit the nations no order of its own matches
                "left join preserving the reference side",
                "SELECT n_name, count(o_id) FROM nations LEFT JOIN orders ON o_cust = n_id \
                 AND o_total > 1400 GROUP BY n_name ORDER BY n_name",
                Some(false),
            ),
            (
                // NOT IN as an ordinary anti join, with the subquery's counts broadcast
                "not in over a reference table",
                "SELECT count(*) FROM orders WHERE o_cust NOT IN (SELECT n_id FROM nations)",
                Some(true),
            ),
            (
                // a union of two joins on one key may be interleaved on their hash partitions
                "union of reference joins",
                "SELECT n_id, count(*) FROM (SELECT n_id FROM nations JOIN orders ON o_cust = n_id \
                 UNION ALL SELECT n_id FROM nations JOIN orders ON o_cust = n_id) u \
                 GROUP BY n_id ORDER BY n_id",
                None,
            ),
            (
                // every task would draw its own random numbers
                "a volatile filter on the reference table",
                "SELECT count(*), sum(o_total) FROM orders JOIN \
                 (SELECT * FROM nations WHERE random() < 2) n ON o_cust = n_id",
                Some(false),
            ),
        ] {
            let plan = lines(&client, &format!("EXPLAIN {sql}")).await.join("\n");
            let marked: Vec<&str> = plan
                .lines()
                .filter(|l| l.contains("ShardLeafExec") && l.contains("reference join"))
                .collect();
            if reference == Some(true) {
                assert!(!marked.is_empty(), "{what}: a reference join:\n{plan}");
                // the reference table's leaf is in the stage that reads orders (or the
                // shuffled join of orders), not a stage of its own (but for NOT IN's
                // counts of the subquery, one row broadcast)
                let stages = stages_reading(&plan, "nations");
                assert_eq!(
                    stages.len(),
                    if what.starts_with("not in") { 2 } else { 1 },
                    "{what}: the stages reading nations:\n{plan}"
                );
                let stage = stages
                    .iter()
                    .map(|stage| stage_lines(&plan, stage))
                    .find(|lines| {
                        lines.iter().any(|l| {
                            l.contains("ShardLeafExec: table=orders,")
                                || l.contains("NetworkShuffleExec")
                        })
                    })
                    .unwrap_or_else(|| {
                        panic!("{what}: nations is read by the tasks reading orders:\n{plan}")
                    });
                assert!(
                    stage.first().is_some_and(|header| !header.contains("tasks=1,")),
                    "{what}: the stage reading nations runs several tasks:\n{plan}"
                );
                assert!(
                    !stage.iter().any(|l| l.contains(" BroadcastExec:")),
                    "{what}: nations is not broadcast:\n{plan}"
                );
            } else if reference == Some(false) {
                assert!(marked.is_empty(), "{what}: no reference join:\n{plan}");
            }
            let control = sql.replace("JOIN nations", "JOIN nations_d").replace(
                "FROM nations",
                "FROM nations_d",
            );
            let control_plan = lines(&client, &format!("EXPLAIN {control}")).await.join("\n");
            assert!(
                !control_plan.contains("reference join"),
                "{what}: the control query reads a distributed copy:\n{control_plan}"
            );
            let got = lines(&client, sql).await;
            let want = lines(&client, &control).await;
            assert!(!got.is_empty(), "{what}: rows");
            assert_eq!(got, want, "{what}: the same answer");
            exec(&client, "SET shoal.distributed_execution = off").await;
            assert_eq!(lines(&client, sql).await, want, "{what}: the same answer, off");
            exec(&client, "RESET shoal.distributed_execution").await;
        }

        // A limit on the reference side is the subquery's, once: not a reference join, which
        // would apply it in every task (to rows each task may pick differently).
        let limited = "SELECT count(DISTINCT n_id) FROM orders JOIN \
                       (SELECT * FROM nations WHERE n_id >= 0 LIMIT 3) n ON o_cust = n_id";
        let plan = lines(&client, &format!("EXPLAIN {limited}")).await.join("\n");
        assert!(!plan.contains("reference join"), "a limited side:\n{plan}");
        assert_eq!(lines(&client, limited).await, ["3"], "three nations joined");

        // An error a Shoal function raises in a task keeps its SQLSTATE across the workers
        // (it is the query's answer: nothing reruns on the coordinator).
        let fallbacks_before = fallbacks();
        for (what, sql, code) in [
            (
                "a bad json input",
                "SELECT o_cust, count(*) FROM orders WHERE \
                 (CASE WHEN o_id = 777 THEN '{oops' ELSE '{}' END)::json IS NOT NULL \
                 GROUP BY o_cust ORDER BY o_cust",
                "22P02",
            ),
            (
                "an lpad() over its limit",
                "SELECT o_cust, max(lpad('x', CASE WHEN o_id = 777 THEN 2000000000 ELSE 1 END)) \
                 FROM orders GROUP BY o_cust ORDER BY o_cust",
                "54000",
            ),
        ] {
            let plan = lines(&client, &format!("EXPLAIN {sql}")).await.join("\n");
            assert!(plan.contains("DistributedExec"), "{what}: runs in stages:\n{plan}");
            let e = client
                .simple_query(sql)
                .await
                .expect_err("the query fails");
            assert_eq!(
                shoal_e2e::sqlstate(&e).as_deref(),
                Some(code),
                "{what}: {}",
                shoal_e2e::err_text(&e)
            );
        }
        assert_eq!(fallbacks(), fallbacks_before, "a query's own error reruns nothing");
    })
    .await;
}

/// The stages (by their number in EXPLAIN) whose tasks read `table` with a shard leaf.
fn stages_reading(plan: &str, table: &str) -> Vec<String> {
    let mut stage = String::from("head");
    let mut found = Vec::new();
    for line in plan.lines() {
        if let Some(rest) = line.split("┌───── Stage ").nth(1) {
            stage = rest.split_whitespace().next().unwrap_or("?").to_string();
        }
        if line.contains(&format!("ShardLeafExec: table={table},")) && !found.contains(&stage) {
            found.push(stage.clone());
        }
    }
    found
}

/// The lines of the one stage whose tasks read `table`.
fn stage_of<'a>(plan: &'a str, table: &str) -> Vec<&'a str> {
    let stages = stages_reading(plan, table);
    assert_eq!(stages.len(), 1, "one stage reads {table}:\n{plan}");
    stage_lines(plan, &stages[0])
}

/// The lines of stage `stage` in EXPLAIN (up to the next stage's header).
fn stage_lines<'a>(plan: &'a str, stage: &str) -> Vec<&'a str> {
    let mut current = String::from("head");
    let mut out = Vec::new();
    for line in plan.lines() {
        if let Some(rest) = line.split("┌───── Stage ").nth(1) {
            current = rest.split_whitespace().next().unwrap_or("?").to_string();
        }
        if current == stage {
            out.push(line);
        }
    }
    out
}

/// Joins that broadcast a small side, of every join type (the small side preserved or not,
/// swapped to the build side or not, semi, anti, mark, null-aware, full, INTERSECT/EXCEPT's
/// NULL-equal keys), over keys with NULLs and unmatched rows, answer exactly as PostgreSQL
/// does, with distributed execution on and off (the coordinator's plan collects the same
/// sides, so PostgreSQL is the independent answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_joins_answer_as_postgresql() {
    let Some(pg) = shoal_e2e::PgServer::start() else {
        return;
    };
    let cluster = Cluster::start(3).await;
    let shoal = cluster.psql_target();
    let postgres = pg.psql_target();
    within(600, "broadcast joins against PostgreSQL", async {
        let tables = [
            "CREATE TABLE orders (o_id bigint, o_cust integer, o_total numeric(12,2))",
            "CREATE TABLE customers (c_id integer, c_nation integer, c_name text)",
            "CREATE TABLE marks (m integer)",
            "CREATE TABLE views (w_id bigint, w_page integer)",
            "CREATE TABLE pages (p_id integer, p_site integer)",
        ];
        // customers 100..119 have no row; every 97th order has no customer (NULL), every
        // 11th customer no nation
        let rows = [
            "INSERT INTO orders SELECT g, CASE WHEN g % 97 = 0 THEN NULL ELSE g % 120 END, \
             (g % 1000) * 1.5 FROM generate_series(1, 20000) g",
            "INSERT INTO customers SELECT g, CASE WHEN g % 11 = 0 THEN NULL ELSE g % 5 END, \
             'c' || g FROM generate_series(0, 99) g",
            "INSERT INTO marks VALUES (1), (7), (NULL), (30)",
            // too large to broadcast: joins of these shuffle, reduced by small sides' keys
            "INSERT INTO views SELECT g, CASE WHEN g % 89 = 0 THEN NULL ELSE g % 150000 END \
             FROM generate_series(1, 400000) g",
            "INSERT INTO pages SELECT g, CASE WHEN g % 101 = 0 THEN NULL ELSE g % 37 END \
             FROM generate_series(1, 150000) g",
        ];
        for sql in tables.iter().chain(&rows) {
            postgres.ok(sql);
        }
        for sql in tables {
            shoal.ok(sql);
        }
        shoal.ok("SELECT create_distributed_table('orders', 'o_id', shard_count => 12)");
        shoal.ok("SELECT create_distributed_table('customers', 'c_id', shard_count => 6)");
        shoal.ok("SELECT create_reference_table('marks')");
        shoal.ok("SELECT create_distributed_table('views', 'w_id', shard_count => 6)");
        shoal.ok("SELECT create_distributed_table('pages', 'p_id', shard_count => 6)");
        for sql in rows {
            shoal.ok(sql);
        }
        // (what, query, whether the plan must broadcast)
        let queries = [
            (
                "inner",
                "SELECT c_nation, count(*), sum(o_total) FROM orders JOIN customers \
                 ON o_cust = c_id GROUP BY c_nation ORDER BY c_nation",
                true,
            ),
            (
                "left join preserving the large side (the small one swapped to the build side)",
                "SELECT count(*), count(c_id), sum(o_total), count(c_nation) FROM orders \
                 LEFT JOIN customers ON o_cust = c_id",
                true,
            ),
            (
                "left join preserving the small side (the filtered large one broadcast)",
                "SELECT count(*), count(o_id), sum(o_total), sum(c_id) FROM customers \
                 LEFT JOIN orders ON o_cust = c_id AND o_total > 1400",
                true,
            ),
            (
                "right join preserving the small side",
                "SELECT count(*), count(o_id), sum(o_total) FROM orders RIGHT JOIN customers \
                 ON o_cust = c_id AND o_total > 1490",
                true,
            ),
            (
                "semi join",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_cust IN \
                 (SELECT c_id FROM customers WHERE c_nation = 2)",
                true,
            ),
            (
                "semi join returning the small side's rows",
                "SELECT c_nation, count(*) FROM customers WHERE c_id IN \
                 (SELECT o_cust FROM orders WHERE o_total > 1400) GROUP BY c_nation \
                 ORDER BY c_nation",
                true,
            ),
            (
                "anti join",
                "SELECT count(*), sum(o_total) FROM orders WHERE NOT EXISTS \
                 (SELECT 1 FROM customers WHERE c_id = o_cust AND c_nation = 1)",
                true,
            ),
            (
                "anti join returning the small side's rows",
                "SELECT count(*), sum(c_id) FROM customers WHERE NOT EXISTS \
                 (SELECT 1 FROM orders WHERE o_cust = c_id AND o_total > 1400)",
                true,
            ),
            (
                // the subquery's one row is broadcast, orders probed where they are
                "scalar subquery",
                "SELECT o_cust % 3 AS k, count(*), sum(o_total) FROM orders \
                 WHERE o_total > (SELECT avg(o_total) FROM orders WHERE o_cust = 3) \
                 GROUP BY 1 ORDER BY 1",
                true,
            ),
            (
                "mark join (EXISTS under OR)",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_total > 1400 OR EXISTS \
                 (SELECT 1 FROM customers WHERE c_id = o_cust AND c_nation = 3)",
                false,
            ),
            (
                "NOT IN with NULLs on both sides",
                "SELECT count(*) FROM customers WHERE c_nation NOT IN \
                 (SELECT o_cust % 5 FROM orders WHERE o_total > 1490)",
                true,
            ),
            (
                // NOT IN a reference table: a NULL there lets no row pass ...
                "NOT IN a reference table with a NULL",
                "SELECT count(*), 'none' FROM orders WHERE o_cust NOT IN (SELECT m FROM marks)",
                true,
            ),
            (
                // ... rows there without one let no NULL o_cust pass ...
                "NOT IN a reference table without NULLs",
                "SELECT count(*), count(o_cust), sum(o_total) FROM orders WHERE o_cust NOT IN \
                 (SELECT m FROM marks WHERE m IS NOT NULL)",
                true,
            ),
            (
                // ... and no row there lets every row pass, a NULL o_cust too
                "NOT IN an empty subquery of a reference table",
                "SELECT count(*), count(o_cust), sum(o_total) FROM orders WHERE o_cust NOT IN \
                 (SELECT m FROM marks WHERE m > 100)",
                true,
            ),
            (
                // a literal NOT IN a set with a NULL: no row (DataFusion's planning pushed the
                // equality into the subquery and lost the NULL); as NOT EXISTS
                "NOT IN of a literal, a NULL in the set",
                "SELECT count(*), 'none' FROM orders WHERE 30 NOT IN (SELECT m FROM marks)",
                false,
            ),
            (
                "NOT IN of a literal, no NULL in the set",
                "SELECT count(*), sum(o_total) FROM orders WHERE 5 NOT IN \
                 (SELECT m FROM marks WHERE m IS NOT NULL)",
                false,
            ),
            (
                // correlated by an equality: DataFusion's null-aware join takes one key and
                // refused two; as NOT EXISTS
                "correlated NOT IN",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_cust NOT IN \
                 (SELECT c_id FROM customers WHERE c_nation = o_id % 5)",
                false,
            ),
            (
                // ... with NULLs on both sides and outer rows whose set is empty
                "correlated NOT IN with NULLs in the sets",
                "SELECT count(*), count(c_nation), sum(c_id) FROM customers c WHERE \
                 (c_nation + 1) % 5 NOT IN (SELECT o_cust % 5 FROM orders \
                 WHERE o_id % 50 = c.c_id AND o_total > 1400)",
                false,
            ),
            (
                "correlated NOT IN of a literal",
                "SELECT count(*), sum(c_id) FROM customers c WHERE 3 NOT IN \
                 (SELECT o_cust % 5 FROM orders WHERE o_id % 50 = c.c_id AND o_total > 1400)",
                false,
            ),
            (
                // under OR a NULL from NOT IN keeps the row out as false does: NOT EXISTS
                // there too (DataFusion's mark join read the NULL as false)
                "NOT IN under OR, a NULL in the set",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_cust NOT IN \
                 (SELECT m FROM marks) OR o_total > 1400",
                false,
            ),
            (
                "NOT IN under OR, no NULL in the set",
                "SELECT count(*), sum(o_total) FROM orders WHERE o_cust NOT IN \
                 (SELECT m FROM marks WHERE m IS NOT NULL) OR o_total > 1400",
                false,
            ),
            (
                // NOT (x NOT IN S) is x IN S: what DataFusion plans for it must be PostgreSQL's
                "NOT IN under NOT",
                "SELECT count(*), 'x' FROM orders WHERE NOT (o_cust NOT IN (SELECT m FROM marks))",
                false,
            ),
            (
                // a LIMIT could give other rows a second time: the null-aware join as it is
                "NOT IN a limited subquery",
                "SELECT count(*), count(o_cust), sum(o_total) FROM orders WHERE o_cust NOT IN \
                 (SELECT m FROM marks WHERE m IS NOT NULL ORDER BY m LIMIT 3)",
                false,
            ),
            (
                // pages, above 128k rows but narrow, broadcast to the tasks reading views
                "a narrow side broadcast",
                "SELECT count(*), count(p_site), sum(w_id) FROM views JOIN pages ON w_page = p_id",
                true,
            ),
            (
                // groups by the distribution column finished per shard group, also with a
                // HAVING against a scalar subquery and over a left join's NULLs
                "an aggregate by the distribution column",
                "SELECT count(*), sum(n), max(n) FROM \
                 (SELECT w_id, count(*) AS n FROM views GROUP BY w_id) g",
                false,
            ),
            (
                "groups by the distribution column against a scalar subquery",
                "SELECT count(*), sum(w_id) FROM (SELECT w_id FROM views GROUP BY w_id \
                 HAVING max(w_page) > (SELECT avg(w_page) * 1.9 FROM views)) g",
                true,
            ),
            (
                "groups by the distribution column over a left join",
                "SELECT p_id, count(w_id), count(*) FROM pages LEFT JOIN views ON w_page = p_id \
                 WHERE p_site = 5 GROUP BY p_id ORDER BY 2 DESC, 1 LIMIT 5",
                false,
            ),
            (
                // a shuffled join reduced by a small side's keys (views with a NULL page
                // match nothing): anti, semi, anti with NULL keys on the small side, left,
                // inner under an aggregate by the key
                "anti join with a reduced shuffle",
                "SELECT count(*), sum(p_site) FROM pages WHERE p_site = 3 AND NOT EXISTS \
                 (SELECT 1 FROM views WHERE w_page = p_id)",
                true,
            ),
            (
                "semi join with a reduced shuffle",
                "SELECT count(*), sum(p_id) FROM pages WHERE p_site = 4 AND p_id IN \
                 (SELECT w_page FROM views)",
                true,
            ),
            (
                "anti join with NULL keys and a reduced shuffle",
                "SELECT count(*), count(p_site), sum(p_id) FROM pages WHERE p_id % 50 = 1 \
                 AND NOT EXISTS (SELECT 1 FROM views WHERE w_page = p_site)",
                true,
            ),
            (
                "left join with a reduced shuffle",
                "SELECT count(*), count(w_id), sum(w_id) FROM pages LEFT JOIN views \
                 ON w_page = p_id WHERE p_site = 5",
                true,
            ),
            (
                "inner join with a reduced shuffle, grouped by its key",
                "SELECT p_id, count(*), sum(w_id) FROM views JOIN pages ON w_page = p_id \
                 WHERE p_site = 7 GROUP BY p_id ORDER BY 2 DESC, 1 LIMIT 5",
                true,
            ),
            (
                "full join of two small sides",
                "SELECT count(*), count(c_id), count(o_id) FROM \
                 (SELECT * FROM orders WHERE o_total > 1450) o FULL JOIN customers \
                 ON o_cust = c_id",
                false,
            ),
            (
                "INTERSECT (NULL equals NULL)",
                "SELECT o_cust FROM orders INTERSECT SELECT c_nation FROM customers ORDER BY 1",
                false,
            ),
            (
                "EXCEPT (NULL equals NULL)",
                "SELECT c_nation FROM customers EXCEPT SELECT o_cust FROM orders \
                 WHERE o_cust > 2 ORDER BY 1",
                false,
            ),
        ];
        for (what, sql, broadcasts) in queries {
            let plan = shoal.ok(&format!("EXPLAIN {sql}"));
            assert!(
                plan.contains("DistributedExec"),
                "{what}: runs in stages:\n{plan}"
            );
            if broadcasts {
                assert!(
                    plan.contains("NetworkBroadcastExec"),
                    "{what}: a small side is broadcast:\n{plan}"
                );
            }
            // (NOT IN under NOT is planned as IN: a semi join)
            if what.contains("NOT IN") && !what.contains("under NOT") {
                // an uncorrelated NOT IN of rows that are the same each time they are read
                // is an ordinary anti join, a correlated one or one of a literal NOT EXISTS
                // (`not_in.rs`); one of a LIMIT stays null-aware
                let rewritten = !what.contains("limited");
                assert_eq!(
                    !plan.contains("null_aware"),
                    rewritten,
                    "{what}: an ordinary anti join: {rewritten}\n{plan}"
                );
            }
            if what.contains("reduced shuffle") {
                assert!(
                    plan.contains("mode=CollectLeft, join_type=RightSemi")
                        && plan.contains("NetworkShuffleExec"),
                    "{what}: the shuffled views are reduced by the pages' keys:\n{plan}"
                );
            }
            let want = postgres.ok(sql);
            assert!(!want.trim().is_empty(), "{what}: PostgreSQL returns rows");
            assert_eq!(shoal.ok(sql), want, "{what}: as PostgreSQL answers\n{plan}");
            let off = shoal.run_args(
                &[
                    "-q",
                    "-c",
                    "SET shoal.distributed_execution = off",
                    "-c",
                    sql,
                ],
                None,
            );
            assert!(
                off.status.success(),
                "{what}: {}",
                shoal_e2e::stderr_of(&off)
            );
            assert_eq!(shoal_e2e::stdout_of(&off), want, "{what}: off");
        }
        // a correlated NOT IN over an aggregate (one row even where nothing correlates, which
        // DataFusion's decorrelation reads as none), a NOT IN in a CASE (where its NULL is
        // not false) and one of an enclosing query's column are refused, not answered wrong
        for sql in [
            "SELECT count(*) FROM orders WHERE o_total NOT IN \
             (SELECT max(c_id) FROM customers WHERE c_nation = o_cust)",
            "SELECT count(*) FROM orders WHERE CASE WHEN o_total > 100 \
             THEN o_cust NOT IN (SELECT m FROM marks) ELSE false END",
            // x a column of the enclosing query: its equality is no key of the inner join
            "SELECT count(*) FROM customers c WHERE EXISTS (SELECT 1 FROM orders \
             WHERE o_cust = c.c_id AND c.c_nation NOT IN (SELECT m FROM marks))",
        ] {
            let refused = shoal.run_args(&["-v", "VERBOSITY=verbose", "-c", sql], None);
            let stderr = shoal_e2e::stderr_of(&refused);
            assert!(
                !refused.status.success()
                    && stderr.contains("0A000")
                    && stderr.contains("NOT EXISTS"),
                "{sql}: refused with 0A000: {stderr}"
            );
        }
    })
    .await;
}
