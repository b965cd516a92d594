//! Transactions and changing rows: BEGIN/COMMIT/ROLLBACK of every write kind, savepoints,
//! aborted blocks (25P02), the implicit transaction of a query string, snapshots, concurrent
//! writers to the same rows (40001 and a retry), dropped connections, READ ONLY, and UPDATE /
//! DELETE with WHERE, FROM, USING and RETURNING. Each scenario runs on Shoal and on the scratch
//! PostgreSQL 15, which decides what is right; the crash tests are Shoal's own.

use std::time::Duration;

use shoal_e2e::{
    client_of, copy_in, err_text, exec, lines, on_shoal_and_postgresql, query_lines, scalar,
    sqlstate, within, Cluster, PgServer, PsqlTarget,
};
use tokio_postgres::{Client, SimpleQueryMessage};

/// `CREATE TABLE name (columns)`; on Shoal distributed on `id` in 4 shards, or a reference
/// table.
async fn create_table(client: &Client, shoal: bool, name: &str, columns: &str, reference: bool) {
    exec(client, &format!("CREATE TABLE {name} ({columns})")).await;
    if shoal {
        let sql = if reference {
            format!("SELECT create_reference_table('{name}')")
        } else {
            format!("SELECT create_distributed_table('{name}', 'id', shard_count => 4)")
        };
        exec(client, &sql).await;
    }
}

/// A statement that must fail with `code`.
async fn fails_with(client: &Client, sql: &str, code: &str) {
    match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected {code}, it succeeded"),
        Err(e) => assert_eq!(
            sqlstate(&e).as_deref(),
            Some(code),
            "{sql}: {}",
            err_text(&e)
        ),
    }
}

/// The row counts of the command tags a simple query string answered with.
async fn tags(client: &Client, sql: &str) -> Vec<String> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", err_text(&e)));
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

const SUMMARY: &str = "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(v), 0) FROM w";

async fn every_write_kind_rolls_back_and_commits(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(&client, shoal, "w", "id bigint NOT NULL, v bigint", false).await;
    exec(
        &client,
        "INSERT INTO w SELECT i, i * 10 FROM generate_series(1, 100) AS g(i)",
    )
    .await;
    let before = scalar(&client, SUMMARY).await;
    assert_eq!(before, "100|5050|50500");

    let writes: [(&str, &str); 5] = [
        ("INSERT", "INSERT INTO w VALUES (1000, 1), (1001, 2)"),
        ("COPY", ""),
        ("UPDATE", "UPDATE w SET v = v + 1 WHERE id % 3 = 0"),
        ("DELETE", "DELETE FROM w WHERE v > 500"),
        ("TRUNCATE", "TRUNCATE w"),
    ];
    let inside = [
        "102|7051|50503",
        "103|9050|50507",
        "100|5050|50533",
        "50|1275|12750",
        "0|0|0",
    ];
    for ((kind, sql), seen) in writes.iter().zip(inside) {
        exec(&client, "BEGIN").await;
        if *kind == "COPY" {
            let rows = copy_in(
                &client,
                "COPY w FROM STDIN",
                b"2000\t3\n2001\t4\n-1\t0\n".to_vec(),
            )
            .await
            .unwrap_or_else(|e| panic!("COPY in a transaction: {}", err_text(&e)));
            assert_eq!(rows, 3);
        } else {
            exec(&client, sql).await;
        }
        assert_eq!(
            scalar(&client, SUMMARY).await,
            seen,
            "{kind} seen inside its transaction"
        );
        if *kind != "TRUNCATE" {
            // (PostgreSQL's TRUNCATE locks out readers until the transaction ends.)
            let other = client_of(target).await;
            assert_eq!(
                scalar(&other, SUMMARY).await,
                before,
                "{kind} invisible to others before COMMIT"
            );
        }
        exec(&client, "ROLLBACK").await;
        assert_eq!(scalar(&client, SUMMARY).await, before, "{kind} rolled back");
    }

    // The same writes committed, one transaction each, then all of them in one.
    exec(
        &client,
        "BEGIN; INSERT INTO w VALUES (1000, 1), (1001, 2); COMMIT",
    )
    .await;
    assert_eq!(scalar(&client, SUMMARY).await, "102|7051|50503");
    exec(&client, "BEGIN").await;
    exec(&client, "UPDATE w SET v = 0 WHERE id >= 1000").await;
    exec(&client, "DELETE FROM w WHERE id <= 10").await;
    exec(&client, "INSERT INTO w VALUES (5, 5)").await;
    exec(&client, "END").await;
    let other = client_of(target).await;
    assert_eq!(scalar(&other, SUMMARY).await, "93|7001|49955");
}

on_shoal_and_postgresql!(
    every_write_kind_rolls_back_and_commits_on_shoal,
    every_write_kind_rolls_back_and_commits_on_postgresql,
    2,
    120,
    every_write_kind_rolls_back_and_commits
);

async fn savepoints_and_aborted_blocks(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(&client, shoal, "w", "id bigint NOT NULL, v bigint", false).await;

    exec(&client, "BEGIN").await;
    exec(&client, "INSERT INTO w VALUES (1, 1)").await;
    exec(&client, "SAVEPOINT a").await;
    exec(&client, "INSERT INTO w VALUES (2, 2)").await;
    fails_with(&client, "SELECT 1 / 0", "22012").await;
    fails_with(&client, "SELECT count(*) FROM w", "25P02").await;
    fails_with(&client, "INSERT INTO w VALUES (3, 3)", "25P02").await;
    fails_with(&client, "ROLLBACK TO SAVEPOINT nope", "3B001").await;
    exec(&client, "ROLLBACK TO SAVEPOINT a").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM w").await, "1");
    exec(&client, "SAVEPOINT b").await;
    exec(&client, "DELETE FROM w").await;
    exec(&client, "INSERT INTO w VALUES (4, 4)").await;
    exec(&client, "RELEASE SAVEPOINT b").await;
    fails_with(&client, "ROLLBACK TO b", "3B001").await;
    exec(&client, "ROLLBACK TO a").await;
    exec(&client, "INSERT INTO w VALUES (5, 5)").await;
    exec(&client, "COMMIT").await;
    assert_eq!(
        lines(&client, "SELECT id FROM w ORDER BY id").await,
        ["1", "5"]
    );

    // COMMIT of a failed block rolls it back.
    exec(&client, "BEGIN").await;
    exec(&client, "INSERT INTO w VALUES (6, 6)").await;
    fails_with(&client, "SELECT 1 / 0", "22012").await;
    exec(&client, "COMMIT").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM w").await, "2");

    // Outside a block.
    fails_with(&client, "SAVEPOINT x", "25P01").await;
    fails_with(&client, "RELEASE SAVEPOINT x", "25P01").await;
    fails_with(&client, "ROLLBACK TO SAVEPOINT x", "25P01").await;
    exec(&client, "COMMIT").await;
    exec(&client, "ROLLBACK").await;

    // READ ONLY refuses writes.
    exec(&client, "BEGIN READ ONLY").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM w").await, "2");
    fails_with(&client, "INSERT INTO w VALUES (7, 7)", "25006").await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ").await;
    fails_with(&client, "DELETE FROM w WHERE id = 1 AND 1 / 0 = 1", "22012").await;
    exec(&client, "ROLLBACK").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM w").await, "2");

    // The isolation level and READ WRITE are set before the first query, or not at all.
    exec(&client, "BEGIN").await;
    exec(&client, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await;
    exec(&client, "SET TRANSACTION READ ONLY").await;
    exec(&client, "SELECT 1").await;
    exec(&client, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await;
    fails_with(
        &client,
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "25001",
    )
    .await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN READ ONLY").await;
    exec(&client, "SELECT 1").await;
    fails_with(&client, "SET TRANSACTION READ WRITE", "25001").await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN").await;
    exec(&client, "SELECT 1").await;
    exec(&client, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED").await;
    exec(&client, "SET TRANSACTION READ ONLY").await;
    fails_with(&client, "INSERT INTO w VALUES (8, 8)", "25006").await;
    exec(&client, "ROLLBACK").await;
}

on_shoal_and_postgresql!(
    savepoints_and_aborted_blocks_on_shoal,
    savepoints_and_aborted_blocks_on_postgresql,
    2,
    120,
    savepoints_and_aborted_blocks
);

async fn query_strings_and_dropped_connections(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(&client, shoal, "w", "id bigint NOT NULL, v bigint", false).await;
    exec(&client, "INSERT INTO w VALUES (1, 1)").await;

    // A query string is one implicit transaction: an error anywhere rolls all of it back.
    match client
        .simple_query("INSERT INTO w VALUES (2, 2); UPDATE w SET v = 100; SELECT 1 / 0")
        .await
    {
        Ok(_) => panic!("division by zero succeeded"),
        Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("22012"), "{}", err_text(&e)),
    }
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(v) FROM w").await,
        "1|1"
    );
    assert_eq!(
        tags(
            &client,
            "INSERT INTO w VALUES (2, 2); INSERT INTO w VALUES (3, 3); DELETE FROM w WHERE id = 1"
        )
        .await,
        ["1", "1", "1"]
    );
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(v) FROM w").await,
        "2|5"
    );
    // BEGIN inside a string turns its implicit transaction into a block that outlives it.
    exec(
        &client,
        "INSERT INTO w VALUES (4, 4); BEGIN; INSERT INTO w VALUES (5, 5)",
    )
    .await;
    exec(&client, "ROLLBACK").await;
    assert_eq!(
        lines(&client, "SELECT id FROM w ORDER BY id").await,
        ["2", "3"]
    );

    // A connection that ends inside a transaction rolls it back.
    let doomed = client_of(target).await;
    exec(&doomed, "BEGIN").await;
    exec(
        &doomed,
        "INSERT INTO w SELECT i, i AS v FROM generate_series(100, 199) AS g(i)",
    )
    .await;
    exec(&doomed, "DELETE FROM w WHERE id = 2").await;
    assert_eq!(scalar(&doomed, "SELECT count(*) FROM w").await, "101");
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = client_of(target).await;
    assert_eq!(
        scalar(&fresh, "SELECT count(*), sum(id) FROM w").await,
        "2|5"
    );
}

on_shoal_and_postgresql!(
    query_strings_and_dropped_connections_on_shoal,
    query_strings_and_dropped_connections_on_postgresql,
    2,
    120,
    query_strings_and_dropped_connections
);

async fn one_snapshot_per_transaction(target: &PsqlTarget, shoal: bool) {
    let reader = client_of(target).await;
    let writer = client_of(target).await;
    create_table(&writer, shoal, "a", "id bigint NOT NULL", false).await;
    create_table(&writer, shoal, "b", "id bigint NOT NULL", true).await;
    exec(&writer, "INSERT INTO a VALUES (1), (2)").await;
    exec(&writer, "INSERT INTO b VALUES (1)").await;

    exec(&reader, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(scalar(&reader, "SELECT count(*) FROM a").await, "2");
    exec(&writer, "INSERT INTO a VALUES (3)").await;
    exec(&writer, "INSERT INTO b VALUES (2)").await;
    exec(&writer, "DELETE FROM a WHERE id = 1").await;
    // Neither table changes for the reader, not even the one it had not read yet.
    assert_eq!(
        scalar(&reader, "SELECT count(*), sum(id) FROM a").await,
        "2|3"
    );
    assert_eq!(scalar(&reader, "SELECT count(*) FROM b").await, "1");
    exec(&reader, "COMMIT").await;
    assert_eq!(
        scalar(&reader, "SELECT count(*), sum(id) FROM a").await,
        "2|5"
    );
    assert_eq!(scalar(&reader, "SELECT count(*) FROM b").await, "2");
}

on_shoal_and_postgresql!(
    one_snapshot_per_transaction_on_shoal,
    one_snapshot_per_transaction_on_postgresql,
    2,
    120,
    one_snapshot_per_transaction
);

/// `clients` connections each add 1 to the same row `rounds` times in REPEATABLE READ
/// transactions, retrying on 40001: no increment is lost.
async fn concurrent_writers_lose_no_update(target: &PsqlTarget, shoal: bool) {
    let setup = client_of(target).await;
    create_table(
        &setup,
        shoal,
        "acc",
        "id bigint NOT NULL, bal bigint",
        false,
    )
    .await;
    exec(
        &setup,
        "INSERT INTO acc SELECT i, 0 AS bal FROM generate_series(1, 50) AS g(i)",
    )
    .await;
    let (clients, rounds) = (4, 15);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let client = client_of(&target).await;
            let mut retries = 0u32;
            for r in 0..rounds {
                loop {
                    let other = 1 + (c * rounds + r) % 49 + 1;
                    let sql = format!(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ; \
                         UPDATE acc SET bal = bal + 1 WHERE id = 1; \
                         UPDATE acc SET bal = bal + 1 WHERE id = {other}; COMMIT"
                    );
                    match client.simple_query(&sql).await {
                        Ok(_) => break,
                        Err(e) if sqlstate(&e).as_deref() == Some("40001") => {
                            retries += 1;
                            let _ = client.simple_query("ROLLBACK").await;
                        }
                        Err(e) => panic!("increment: {}", err_text(&e)),
                    }
                }
            }
            retries
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let total = clients * rounds;
    assert_eq!(
        scalar(&setup, "SELECT bal FROM acc WHERE id = 1").await,
        total.to_string()
    );
    assert_eq!(
        scalar(&setup, "SELECT sum(bal), count(*) FROM acc").await,
        format!("{}|50", 2 * total)
    );
}

on_shoal_and_postgresql!(
    concurrent_writers_lose_no_update_on_shoal,
    concurrent_writers_lose_no_update_on_postgresql,
    3,
    240,
    concurrent_writers_lose_no_update
);

/// The statements of the UPDATE/DELETE comparison; after each, every table's contents are
/// summed on both servers.
const CHANGES: &[&str] = &[
    "UPDATE items SET price = price * 2 WHERE category = 3",
    "UPDATE items SET name = name || '-x', qty = NULL WHERE id % 1000 = 7",
    "DELETE FROM items WHERE qty < 5",
    "UPDATE items SET qty = qty + c.bonus FROM categories c WHERE items.category = c.id AND c.bonus > 2",
    "DELETE FROM items i USING categories c WHERE i.category = c.id AND c.name = 'cat-5'",
    "UPDATE items SET id = id + 1000000 WHERE id BETWEEN 5000 AND 5100",
    "UPDATE categories SET bonus = bonus * 10 WHERE id < 4",
    "DELETE FROM categories WHERE id = 9",
    "DELETE FROM items WHERE category NOT IN (SELECT id FROM categories)",
    "UPDATE items SET price = 0 WHERE false",
];

const SUMS: &[&str] = &[
    "SELECT count(*), sum(id), sum(category), sum(price), count(qty), sum(qty), sum(length(name)) FROM items",
    "SELECT count(*), sum(id), sum(bonus), string_agg(name, ',' ORDER BY id) FROM categories",
    "SELECT category, count(*), sum(qty) FROM items GROUP BY category ORDER BY category",
];

async fn sums(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for q in SUMS {
        out.extend(lines(client, q).await);
    }
    out
}

async fn load_items(client: &Client, shoal: bool) {
    create_table(
        client,
        shoal,
        "items",
        "id bigint NOT NULL, category integer, name text, price numeric(12,2), qty integer",
        false,
    )
    .await;
    create_table(
        client,
        shoal,
        "categories",
        "id integer NOT NULL, name text, bonus integer",
        true,
    )
    .await;
    exec(
        client,
        "INSERT INTO categories SELECT i, 'cat-' || i, i % 5 FROM generate_series(0, 11) AS g(i)",
    )
    .await;
    for part in 0..4 {
        exec(
            client,
            &format!(
                "INSERT INTO items SELECT i, i % 12, 'item-' || i, (i % 997) * 1.25, i % 50 \
                 FROM generate_series({}, {}) AS g(i)",
                part * 50_000 + 1,
                (part + 1) * 50_000
            ),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_match_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let mut cluster = Cluster::start(3).await;
    let pgc = pg.client().await;
    let shoal = cluster.client().await;
    within(300, "load", async {
        load_items(&pgc, false).await;
        load_items(&shoal, true).await;
    })
    .await;
    assert_eq!(sums(&shoal).await, sums(&pgc).await, "after loading");
    for (i, change) in CHANGES.iter().enumerate() {
        let want = tags(&pgc, change).await;
        let got = within(300, change, tags(&shoal, change)).await;
        assert_eq!(got, want, "{change}");
        assert_eq!(sums(&shoal).await, sums(&pgc).await, "after {change}");
        if i == 3 {
            // Rewritten shards keep their rows through compaction and a move: ten small
            // INSERTs leave every shard enough small files for the coordinator to merge.
            for k in 0..10 {
                let sql = format!(
                    "INSERT INTO items SELECT i, 1 AS c, 'late', 1.5 AS p, 2 AS q FROM generate_series({}, {}) AS g(i)",
                    300_000 + k * 10,
                    300_009 + k * 10
                );
                exec(&shoal, &sql).await;
                exec(&pgc, &sql).await;
            }
            let files = "SELECT max(file_count) FROM shoal.shards WHERE table_name = 'items'";
            within(120, "compaction", async {
                while scalar(&shoal, files).await.parse::<i64>().unwrap_or(99) > 2 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
            .await;
            assert_eq!(sums(&shoal).await, sums(&pgc).await, "after compaction");
            let moved = lines(
                &shoal,
                "SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'items' ORDER BY shardid LIMIT 1",
            )
            .await;
            let (shard, port) = moved[0].split_once('|').expect("shard|port");
            let to = cluster
                .worker_ports()
                .into_iter()
                .find(|p| p.to_string() != port)
                .expect("another worker");
            exec(
                &shoal,
                &format!(
                    "SELECT citus_move_shard_placement({shard}, '127.0.0.1', {port}, '127.0.0.1', {to})"
                ),
            )
            .await;
            assert_eq!(
                sums(&shoal).await,
                sums(&pgc).await,
                "after compaction and a move"
            );
        }
    }
    // RETURNING answers the changed rows: the new ones for UPDATE, the old ones for DELETE.
    let sql =
        "UPDATE items SET qty = qty * 2 WHERE id IN (1, 2, 3, 999999) RETURNING id, qty, price";
    let order = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        order(lines(&shoal, sql).await),
        order(lines(&pgc, sql).await)
    );
    let sql = "DELETE FROM items WHERE id IN (4, 5) RETURNING *";
    assert_eq!(
        order(lines(&shoal, sql).await),
        order(lines(&pgc, sql).await)
    );
    assert_eq!(
        tags(&shoal, "DELETE FROM items WHERE id = 6 RETURNING id").await,
        tags(&pgc, "DELETE FROM items WHERE id = 6 RETURNING id").await
    );
    drop(shoal);
    cluster.restart_coordinator().await;
    let shoal = cluster.client().await;
    assert_eq!(
        sums(&shoal).await,
        sums(&pgc).await,
        "after a coordinator restart"
    );
}

/// The coordinator killed inside a transaction loses it all; killed after COMMIT returned,
/// keeps it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_crash_is_all_or_nothing() {
    let mut cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    create_table(&client, true, "w", "id bigint NOT NULL, v bigint", false).await;
    exec(
        &client,
        "INSERT INTO w SELECT i, i AS v FROM generate_series(1, 1000) AS g(i)",
    )
    .await;

    exec(&client, "BEGIN").await;
    exec(
        &client,
        "INSERT INTO w SELECT i, i AS v FROM generate_series(1001, 3000) AS g(i)",
    )
    .await;
    exec(&client, "DELETE FROM w WHERE id <= 500").await;
    exec(&client, "UPDATE w SET v = 0 WHERE id > 900").await;
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(v) FROM w").await,
        "2500|280200"
    );
    cluster.kill_coordinator();
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(v) FROM w").await,
        "1000|500500"
    );

    exec(&client, "BEGIN").await;
    exec(&client, "DELETE FROM w WHERE id <= 500").await;
    exec(&client, "INSERT INTO w VALUES (5000, 5000)").await;
    exec(&client, "COMMIT").await;
    cluster.kill_coordinator();
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(v) FROM w").await,
        "501|380250"
    );
}

/// CREATE TABLE, CREATE TABLE AS and DROP TABLE inside a transaction are its own until it
/// commits, as in PostgreSQL: rolled back by ROLLBACK, ROLLBACK TO, an error in a query
/// string and a dropped connection; a DROP and CREATE of the same name (pandas'
/// `if_exists="replace"`) swaps the table at COMMIT.
async fn tables_created_and_dropped_in_transactions(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    let other = client_of(target).await;

    // Created, written and read inside a block; no one else sees it; ROLLBACK leaves nothing.
    exec(&client, "BEGIN").await;
    exec(&client, "CREATE TABLE t1 (id bigint NOT NULL, v text)").await;
    exec(&client, "INSERT INTO t1 VALUES (1, 'a'), (2, 'b')").await;
    copy_in(&client, "COPY t1 FROM STDIN", b"3\tc\n".to_vec())
        .await
        .expect("COPY into a table created in the block");
    exec(&client, "UPDATE t1 SET v = upper(v) WHERE id = 1").await;
    assert_eq!(
        lines(&client, "SELECT id, v FROM t1 ORDER BY id").await,
        ["1|A", "2|b", "3|c"]
    );
    fails_with(&other, "SELECT * FROM t1", "42P01").await;
    // The catalog views show it to the transaction alone.
    let in_pg_class = "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 't1'";
    let in_tables = "SELECT count(*) FROM information_schema.tables WHERE table_name = 't1'";
    // Also from a scalar subquery, whose scan runs while the rows are sent.
    let in_subquery = "SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 't1') + 0";
    for (session, n) in [(&client, "1"), (&other, "0")] {
        assert_eq!(scalar(session, in_pg_class).await, n);
        assert_eq!(scalar(session, in_tables).await, n);
        assert_eq!(scalar(session, in_subquery).await, n);
    }
    exec(&client, "ROLLBACK").await;
    fails_with(&client, "SELECT * FROM t1", "42P01").await;
    assert_eq!(scalar(&client, in_pg_class).await, "0");

    // COMMIT publishes the table and its rows together.
    exec(&client, "BEGIN").await;
    exec(&client, "CREATE TABLE t1 (id bigint NOT NULL, v text)").await;
    exec(&client, "CREATE TABLE IF NOT EXISTS t1 (id bigint)").await;
    exec(&client, "INSERT INTO t1 VALUES (1, 'a'), (2, 'b')").await;
    fails_with(&other, "SELECT * FROM t1", "42P01").await;
    exec(&client, "COMMIT").await;
    assert_eq!(
        lines(&other, "SELECT id, v FROM t1 ORDER BY id").await,
        ["1|a", "2|b"]
    );

    // DROP TABLE is undone by ROLLBACK, and done by COMMIT.
    exec(&client, "BEGIN").await;
    exec(&client, "DROP TABLE t1").await;
    fails_with(&client, "SELECT * FROM t1", "42P01").await;
    exec(&client, "ROLLBACK").await;
    assert_eq!(scalar(&other, "SELECT count(*) FROM t1").await, "2");
    exec(&client, "BEGIN").await;
    exec(&client, "DROP TABLE IF EXISTS missing, t1").await;
    if shoal {
        // PostgreSQL's readers wait for the dropping transaction; Shoal's read what was
        // committed until it commits.
        assert_eq!(scalar(&other, "SELECT count(*) FROM t1").await, "2");
    }
    exec(&client, "COMMIT").await;
    fails_with(&other, "SELECT * FROM t1", "42P01").await;

    // Replace a table in one transaction: readers see the old one until COMMIT.
    exec(&client, "CREATE TABLE r (id bigint, old text)").await;
    exec(&client, "INSERT INTO r VALUES (1, 'old')").await;
    exec(&client, "BEGIN").await;
    exec(&client, "DROP TABLE r").await;
    exec(&client, "CREATE TABLE r (id bigint, new text)").await;
    exec(&client, "INSERT INTO r VALUES (2, 'new'), (3, 'new')").await;
    if shoal {
        assert_eq!(lines(&other, "SELECT id, old FROM r").await, ["1|old"]);
    }
    assert_eq!(
        lines(&client, "SELECT id, new FROM r ORDER BY id").await,
        ["2|new", "3|new"]
    );
    exec(&client, "COMMIT").await;
    assert_eq!(
        lines(&other, "SELECT id, new FROM r ORDER BY id").await,
        ["2|new", "3|new"]
    );

    // ROLLBACK TO a savepoint undoes the creates and drops after it.
    exec(&client, "BEGIN").await;
    exec(&client, "CREATE TABLE s1 (id bigint)").await;
    exec(&client, "INSERT INTO s1 VALUES (1)").await;
    exec(&client, "SAVEPOINT a").await;
    exec(&client, "CREATE TABLE s2 (id bigint)").await;
    exec(&client, "DROP TABLE s1").await;
    exec(&client, "DROP TABLE r").await;
    exec(&client, "ROLLBACK TO SAVEPOINT a").await;
    exec(&client, "CREATE TABLE s3 AS SELECT id * 10 AS id FROM s1").await;
    exec(&client, "COMMIT").await;
    assert_eq!(scalar(&other, "SELECT count(*) FROM s1").await, "1");
    assert_eq!(scalar(&other, "SELECT id FROM s3").await, "10");
    assert_eq!(scalar(&other, "SELECT count(*) FROM r").await, "2");
    fails_with(&other, "SELECT * FROM s2", "42P01").await;

    // A query string is one implicit transaction, its CREATE TABLE included.
    fails_with(
        &client,
        "CREATE TABLE q (id bigint); INSERT INTO q VALUES (1); SELECT 1 / 0",
        "22012",
    )
    .await;
    fails_with(&client, "SELECT * FROM q", "42P01").await;
    assert_eq!(
        tags(
            &client,
            "CREATE TABLE q AS SELECT 1::bigint AS id; DROP TABLE s3; INSERT INTO q VALUES (2)"
        )
        .await,
        ["1", "0", "1"]
    );
    assert_eq!(scalar(&other, "SELECT sum(id) FROM q").await, "3");
    fails_with(&other, "SELECT * FROM s3", "42P01").await;

    // Errors as PostgreSQL's: a name taken in the transaction, a read-only transaction.
    exec(&client, "BEGIN").await;
    exec(&client, "CREATE TABLE d (id bigint)").await;
    fails_with(&client, "CREATE TABLE d (id bigint)", "42P07").await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN READ ONLY").await;
    fails_with(&client, "CREATE TABLE d (id bigint)", "25006").await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN READ ONLY").await;
    fails_with(&client, "DROP TABLE q", "25006").await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN").await;
    fails_with(&client, "DROP TABLE d", "42P01").await;
    exec(&client, "ROLLBACK").await;

    // A connection that ends inside the transaction takes its tables with it.
    let doomed = client_of(target).await;
    exec(&doomed, "BEGIN").await;
    exec(&doomed, "CREATE TABLE gone (id bigint)").await;
    exec(&doomed, "INSERT INTO gone VALUES (1)").await;
    exec(&doomed, "DROP TABLE q").await;
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fails_with(&other, "SELECT * FROM gone", "42P01").await;
    assert_eq!(scalar(&other, "SELECT count(*) FROM q").await, "2");
    exec(&other, "CREATE TABLE gone (id bigint)").await;
}

on_shoal_and_postgresql!(
    tables_created_and_dropped_in_transactions_on_shoal,
    tables_created_and_dropped_in_transactions_on_postgresql,
    2,
    120,
    tables_created_and_dropped_in_transactions
);

/// Other schema changes are refused inside a block, never half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_schema_changes_in_a_block_are_refused() {
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    create_table(&client, true, "w", "id bigint NOT NULL", false).await;
    for ddl in [
        "ALTER TABLE w ADD COLUMN x int",
        "CREATE VIEW v AS SELECT 1",
        "DROP VIEW IF EXISTS v",
    ] {
        exec(&client, "BEGIN").await;
        exec(&client, "INSERT INTO w VALUES (1)").await;
        fails_with(&client, ddl, "25001").await;
        fails_with(&client, "SELECT 1", "25P02").await;
        exec(&client, "ROLLBACK").await;
    }
    assert_eq!(scalar(&client, "SELECT count(*) FROM w").await, "0");
    let r = query_lines(&client, "SELECT * FROM v").await;
    assert!(r.is_err(), "no view was created");

    // Cluster functions that change the cluster cannot be rolled back either; those that
    // only read it run inside a block.
    exec(&client, "CREATE TABLE later (id bigint NOT NULL)").await;
    for call in [
        "SELECT create_distributed_table('later', 'id')",
        "SELECT set_cluster_setting('auto_rebalance', 'on')",
        "SELECT rebalance_start()",
    ] {
        exec(&client, "BEGIN").await;
        fails_with(&client, call, "25001").await;
        exec(&client, "ROLLBACK").await;
    }
    exec(&client, "BEGIN").await;
    exec(
        &client,
        "SELECT get_shard_id_for_distribution_column('w', 1)",
    )
    .await;
    exec(&client, "SELECT * FROM rebalance_plan()").await;
    exec(&client, "COMMIT").await;
    assert_eq!(
        scalar(
            &client,
            "SELECT kind FROM shoal.tables WHERE table_name = 'later'"
        )
        .await,
        "single_shard",
        "later was not distributed"
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT value FROM shoal.cluster_settings WHERE name = 'auto_rebalance'"
        )
        .await,
        "off"
    );
    // A query string with such a call runs statement by statement.
    exec(
        &client,
        "INSERT INTO later VALUES (1); SELECT create_distributed_table('later', 'id')",
    )
    .await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM later").await, "1");

    // A table a transaction creates is invisible to others until it commits; a table of
    // the same name committed meanwhile makes the COMMIT fail (42P07) and publish nothing.
    let other = cluster.client().await;
    exec(&client, "BEGIN").await;
    exec(&client, "CREATE TABLE race (id bigint)").await;
    exec(&client, "INSERT INTO race VALUES (1)").await;
    exec(&other, "CREATE TABLE race (id bigint)").await;
    exec(&other, "INSERT INTO race VALUES (2)").await;
    fails_with(&client, "COMMIT", "42P07").await;
    assert_eq!(lines(&client, "SELECT id FROM race").await, ["2"]);

    // Two transactions dropping the same table: the second COMMIT finds it gone (42P01).
    exec(&client, "BEGIN").await;
    exec(&client, "DROP TABLE race").await;
    exec(&other, "BEGIN").await;
    exec(&other, "DROP TABLE race").await;
    exec(&client, "COMMIT").await;
    fails_with(&other, "COMMIT", "42P01").await;
}

/// A coordinator killed while a transaction holds a table it created: after the restart
/// the table never was, and its name is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_crash_drops_uncommitted_tables() {
    let mut cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    exec(&client, "CREATE TABLE kept (id bigint)").await;
    exec(&client, "INSERT INTO kept VALUES (1)").await;
    exec(&client, "BEGIN").await;
    exec(&client, "CREATE TABLE pending (id bigint)").await;
    exec(
        &client,
        "INSERT INTO pending SELECT * FROM generate_series(1, 1000)",
    )
    .await;
    exec(&client, "DROP TABLE kept").await;
    cluster.kill_coordinator();
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    fails_with(&client, "SELECT * FROM pending", "42P01").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM kept").await, "1");
    exec(&client, "CREATE TABLE pending (id bigint)").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM pending").await, "0");
}

/// pgbench's own TPC-B-like script, 4 clients with retries on 40001, in the simple and the
/// extended protocol, on the tables `pgbench -i -s 1` makes: afterwards the account, teller
/// and branch balances and the history deltas all sum to the same.
async fn pgbench_tpcb_keeps_the_books(target: &PsqlTarget, shoal: bool) {
    if !shoal_e2e::require_tool("pgbench") {
        return;
    }
    let client = client_of(target).await;
    // pgbench's own loader, all of its steps: drop, create, client-side COPY ... (FREEZE ON)
    // in a transaction, VACUUM ANALYZE, ALTER TABLE ... ADD PRIMARY KEY.
    let port = target.port.to_string();
    let init = tokio::task::block_in_place(|| {
        shoal_e2e::run_with_timeout(
            std::process::Command::new("pgbench")
                .args(["-h", &target.host, "-p", &port, "-U", &target.user])
                .args(["-i", "-s", "1", &target.dbname]),
            None,
            Duration::from_secs(120),
        )
    });
    let init_err = shoal_e2e::stderr_of(&init);
    assert!(init.status.success(), "pgbench -i:\n{init_err}");
    for step in ["vacuuming...", "creating primary keys...", "done in"] {
        assert!(
            init_err.contains(step),
            "pgbench -i did not report {step:?}:\n{init_err}"
        );
    }
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM pgbench_accounts").await,
        "100000"
    );
    let nullable = "SELECT is_nullable FROM information_schema.columns \
                    WHERE table_name = 'pgbench_accounts' AND column_name = 'aid'";
    assert_eq!(scalar(&client, nullable).await, "NO");
    if shoal {
        for (table, key) in [
            ("pgbench_branches", "bid"),
            ("pgbench_tellers", "tid"),
            ("pgbench_accounts", "aid"),
            ("pgbench_history", "aid"),
        ] {
            exec(
                &client,
                &format!("SELECT create_distributed_table('{table}', '{key}', shard_count => 8)"),
            )
            .await;
        }
    }
    let books = "SELECT (SELECT sum(abalance) FROM pgbench_accounts), \
                 (SELECT sum(tbalance) FROM pgbench_tellers), \
                 (SELECT sum(bbalance) FROM pgbench_branches), \
                 (SELECT sum(delta) FROM pgbench_history), \
                 (SELECT count(*) FROM pgbench_history)";
    for mode in ["simple", "extended"] {
        let out = tokio::task::block_in_place(|| {
            shoal_e2e::run_with_timeout(
                std::process::Command::new("pgbench")
                    .args(["-h", &target.host, "-p", &port, "-U", &target.user])
                    .args(["-n", "-c", "4", "-j", "2", "-T", "8", "--max-tries=100000"])
                    .args(["-M", mode, &target.dbname]),
                None,
                Duration::from_secs(120),
            )
        });
        let text = shoal_e2e::stdout_of(&out);
        assert!(
            out.status.success(),
            "pgbench -M {mode}:\n{text}\n{}",
            shoal_e2e::stderr_of(&out)
        );
        let processed: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(
            processed > 0,
            "pgbench -M {mode} processed nothing:\n{text}"
        );
        let row = scalar(&client, books).await;
        let v: Vec<&str> = row.split('|').collect();
        assert_eq!(
            v[..4],
            [v[3]; 4],
            "pgbench -M {mode}: the books do not balance: {row}\n{text}"
        );
    }
}

on_shoal_and_postgresql!(
    pgbench_tpcb_keeps_the_books_on_shoal,
    pgbench_tpcb_keeps_the_books_on_postgresql,
    3,
    300,
    pgbench_tpcb_keeps_the_books
);

/// psycopg's transactions as applications use them: the default (non-autocommit) mode with
/// `commit()`/`rollback()`, `transaction()` blocks that raise, nested blocks (savepoints), and
/// bound parameters in INSERT/UPDATE/DELETE ... RETURNING.
async fn psycopg_transactions(target: &PsqlTarget, shoal: bool) {
    if !shoal_e2e::require_tool("psycopg") {
        return;
    }
    let client = client_of(target).await;
    create_table(&client, shoal, "py", "id bigint NOT NULL, name text", false).await;
    let python = shoal_e2e::python_with_psycopg().expect("python with psycopg");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = shoal_e2e::write_file(
        dir.path(),
        "tx.py",
        br#"
import sys
import psycopg

conninfo = dict(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3], dbname=sys.argv[4])
count = "SELECT count(*) FROM py"
with psycopg.connect(**conninfo) as conn:
    print("ins", conn.execute("INSERT INTO py VALUES (%s, %s), (%s, %s) RETURNING id, name",
                              (1, "one", 2, "two")).fetchall())
    print("upd", conn.execute("UPDATE py SET name = %s WHERE id = %s RETURNING id, name",
                              ("uno", 1)).fetchall())
    print("del", conn.execute("DELETE FROM py WHERE id = %s RETURNING name", (2,)).fetchall())
    print("inside", conn.execute(count).fetchone()[0])
    conn.rollback()
    print("rolled back", conn.execute(count).fetchone()[0])
    conn.commit()
    with conn.transaction():
        conn.execute("INSERT INTO py VALUES (%s, %s)", (10, "ten"))
        try:
            with conn.transaction():
                conn.execute("INSERT INTO py VALUES (%s, %s)", (11, "eleven"))
                conn.execute("SELECT 1 / 0")
        except psycopg.errors.DivisionByZero:
            print("savepoint rolled back")
        conn.execute("UPDATE py SET name = upper(name) WHERE id = %s", (10,))
    try:
        with conn.transaction():
            conn.execute("INSERT INTO py VALUES (%s, %s)", (20, "twenty"))
            raise RuntimeError("abandon")
    except RuntimeError:
        print("block rolled back")
    print("rows", conn.execute("SELECT id, name FROM py ORDER BY id").fetchall())
"#,
    );
    let port = target.port.to_string();
    let out = tokio::task::block_in_place(|| {
        shoal_e2e::run_with_timeout(
            std::process::Command::new(&python).arg(&script).args([
                &target.host,
                &port,
                &target.user,
                &target.dbname,
            ]),
            None,
            Duration::from_secs(120),
        )
    });
    assert!(
        out.status.success(),
        "psycopg script failed:\n{}\n{}",
        shoal_e2e::stdout_of(&out),
        shoal_e2e::stderr_of(&out)
    );
    assert_eq!(
        shoal_e2e::stdout_of(&out),
        "ins [(1, 'one'), (2, 'two')]\n\
         upd [(1, 'uno')]\n\
         del [('two',)]\n\
         inside 1\n\
         rolled back 0\n\
         savepoint rolled back\n\
         block rolled back\n\
         rows [(10, 'TEN')]\n"
    );
}

on_shoal_and_postgresql!(
    psycopg_transactions_on_shoal,
    psycopg_transactions_on_postgresql,
    2,
    180,
    psycopg_transactions
);

/// psql, as a runbook drives it: INSERT, `\copy`, UPDATE, DELETE and TRUNCATE inside BEGIN
/// ... ROLLBACK leave nothing; the same script with COMMIT keeps all of it.
async fn psql_rolls_back_every_write_kind(target: &PsqlTarget, shoal: bool) {
    if !shoal_e2e::require_tool("psql") {
        return;
    }
    let client = client_of(target).await;
    create_table(&client, shoal, "pw", "id bigint NOT NULL, v bigint", false).await;
    exec(&client, "INSERT INTO pw VALUES (1, 10), (2, 20)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (end, expected) in [("ROLLBACK", "2|30"), ("COMMIT", "0|")] {
        let script = format!(
            "BEGIN;\nINSERT INTO pw VALUES (3, 30);\n\\copy pw FROM stdin\n4\t40\n\\.\n\
             UPDATE pw SET v = v + 1;\nDELETE FROM pw WHERE id = 1;\n\
             SELECT count(*), sum(v) FROM pw;\nTRUNCATE pw;\n{end};\n\
             SELECT count(*), sum(v) FROM pw;\n"
        );
        let file = shoal_e2e::write_file(dir.path(), "tx.sql", script.as_bytes());
        let out = tokio::task::block_in_place(|| target.run_file(&file));
        assert!(
            out.status.success(),
            "psql {end}: {}",
            shoal_e2e::stderr_of(&out)
        );
        assert_eq!(
            shoal_e2e::stdout_of(&out),
            format!(
                "BEGIN\nINSERT 0 1\nCOPY 1\nUPDATE 4\nDELETE 1\n3|93\nTRUNCATE TABLE\n{end}\n{expected}\n"
            ),
            "psql {end}"
        );
    }
}

on_shoal_and_postgresql!(
    psql_rolls_back_every_write_kind_on_shoal,
    psql_rolls_back_every_write_kind_on_postgresql,
    2,
    120,
    psql_rolls_back_every_write_kind
);

/// asyncpg's transactions: `transaction()` blocks that raise, nested blocks (savepoints), a
/// manually started transaction rolled back, prepared statements and `executemany` inside
/// them, and an error that aborts the block.
async fn asyncpg_transactions(target: &PsqlTarget, shoal: bool) {
    if !shoal_e2e::require_tool("asyncpg") {
        return;
    }
    let client = client_of(target).await;
    create_table(
        &client,
        shoal,
        "apg",
        "id bigint NOT NULL, name text",
        false,
    )
    .await;
    create_table(
        &client,
        shoal,
        "apg_nn",
        "id bigint NOT NULL, name text NOT NULL",
        false,
    )
    .await;
    let python = shoal_e2e::python_with("asyncpg").expect("python with asyncpg");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = shoal_e2e::write_file(
        dir.path(),
        "tx.py",
        br#"
import asyncio
import sys
import asyncpg

COUNT = "SELECT count(*) FROM apg"

async def main():
    conn = await asyncpg.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3],
                                 database=sys.argv[4])
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO apg VALUES ($1, $2)", 1, "one")
            await conn.executemany("INSERT INTO apg VALUES ($1, $2)", [(2, "two"), (3, "three")])
            print("inside", await conn.fetchval(COUNT))
            raise RuntimeError("abandon")
    except RuntimeError:
        print("rolled back", await conn.fetchval(COUNT))
    async with conn.transaction():
        await conn.execute("INSERT INTO apg VALUES ($1, $2)", 10, "ten")
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO apg VALUES ($1, $2)", 11, "eleven")
                await conn.execute("SELECT 1 / 0")
        except asyncpg.DivisionByZeroError:
            print("savepoint rolled back")
        print("updated", await conn.fetch(
            "UPDATE apg SET name = upper(name) WHERE id = $1 RETURNING id, name", 10))
    tr = conn.transaction()
    await tr.start()
    await conn.execute("DELETE FROM apg WHERE id = $1", 10)
    print("deleted inside", await conn.fetchval(COUNT))
    await tr.rollback()
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("INSERT INTO apg VALUES ($1, $2)", 12, None)
        await conn.fetchval("SELECT 1 / 0")
    except asyncpg.DivisionByZeroError:
        pass
    try:
        await conn.fetchval(COUNT)
    except asyncpg.InFailedSQLTransactionError as e:
        print("aborted", e.sqlstate)
    await tr.rollback()
    rows = await conn.fetch("SELECT id, name FROM apg ORDER BY id")
    print("rows", [tuple(r) for r in rows])
    # executemany outside a transaction: the batch is one pipeline, all or nothing.
    batch = [(1000 + i, "b%d" % i) for i in range(500)]
    try:
        await conn.executemany("INSERT INTO apg_nn VALUES ($1, $2)",
                               batch[:250] + [(9999, None)] + batch[250:])
    except asyncpg.NotNullViolationError as e:
        print("batch refused", e.sqlstate)
    print("after refused batch", await conn.fetchval("SELECT count(*) FROM apg_nn"))
    await conn.executemany("INSERT INTO apg_nn VALUES ($1, $2)", batch)
    print("after batch", await conn.fetchval("SELECT count(*) FROM apg_nn"))
    await conn.close()

asyncio.run(main())
"#,
    );
    let out = shoal_e2e::run_client(&python, &[script.to_string_lossy().as_ref()], target);
    assert_eq!(
        out,
        "inside 3\n\
         rolled back 0\n\
         savepoint rolled back\n\
         updated [<Record id=10 name='TEN'>]\n\
         deleted inside 0\n\
         aborted 25P02\n\
         rows [(10, 'TEN')]\n\
         batch refused 23502\n\
         after refused batch 0\n\
         after batch 500\n"
    );
}

on_shoal_and_postgresql!(
    asyncpg_transactions_on_shoal,
    asyncpg_transactions_on_postgresql,
    2,
    180,
    asyncpg_transactions
);

/// pgjdbc's transactions: `setAutoCommit(false)` with `commit()`/`rollback()`, a batch of
/// prepared INSERTs, a `Savepoint` rolled back to, an error that aborts the transaction, and
/// UPDATE/DELETE through prepared statements (server-side once pgjdbc's prepare threshold
/// is passed).
async fn pgjdbc_transactions(target: &PsqlTarget, shoal: bool) {
    if !shoal_e2e::require_tool("pgjdbc") {
        return;
    }
    let client = client_of(target).await;
    create_table(&client, shoal, "jt", "id bigint NOT NULL, name text", false).await;
    let Some(out) = shoal_e2e::run_java(
        "Tx.java",
        br#"
import java.sql.*;

public class Tx {
    static long count(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*) FROM jt")) {
            r.next();
            return r.getLong(1);
        }
    }

    static void insert(Connection c, long id, String name) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO jt VALUES (?, ?)")) {
            ps.setLong(1, id);
            ps.setString(2, name);
            ps.executeUpdate();
        }
    }

    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[3];
        try (Connection c = DriverManager.getConnection(url, a[2], "")) {
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO jt VALUES (?, ?)")) {
                for (long i = 1; i <= 8; i++) {
                    ps.setLong(1, i);
                    ps.setString(2, "r" + i);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            System.out.println("inside " + count(c));
            c.rollback();
            System.out.println("rolled back " + count(c));
            insert(c, 10, "ten");
            Savepoint sp = c.setSavepoint();
            insert(c, 11, "eleven");
            c.rollback(sp);
            try (PreparedStatement ps = c.prepareStatement("UPDATE jt SET name = upper(name) WHERE id = ?")) {
                for (int i = 0; i < 6; i++) {
                    ps.setLong(1, 10);
                    ps.executeUpdate();
                }
            }
            c.commit();
            System.out.println("committed " + count(c));
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM jt WHERE id = ?")) {
                ps.setLong(1, 10);
                System.out.println("deleted " + ps.executeUpdate());
            }
            try (Statement s = c.createStatement()) {
                s.execute("SELECT 1 / 0");
            } catch (SQLException e) {
                System.out.println("error " + e.getSQLState());
            }
            try {
                count(c);
            } catch (SQLException e) {
                System.out.println("aborted " + e.getSQLState());
            }
            c.rollback();
            c.setAutoCommit(true);
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT id, name FROM jt ORDER BY id")) {
                while (r.next()) {
                    System.out.println("row " + r.getLong(1) + " " + r.getString(2));
                }
            }
        }
    }
}
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "inside 8\n\
         rolled back 0\n\
         committed 1\n\
         deleted 1\n\
         error 22012\n\
         aborted 25P02\n\
         row 10 TEN\n"
    );
}

on_shoal_and_postgresql!(
    pgjdbc_transactions_on_shoal,
    pgjdbc_transactions_on_postgresql,
    2,
    180,
    pgjdbc_transactions
);

/// INSERT ... RETURNING, CREATE TABLE AS, views kept across statements (and, on Shoal, a
/// coordinator restart: see `views_survive_a_restart`), ALTER TABLE RENAME, and the clear
/// refusals of what is not there yet.
async fn returning_ctas_views_and_renames(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(
        &client,
        shoal,
        "src",
        "id bigint NOT NULL, name text, score numeric(6,2)",
        false,
    )
    .await;
    assert_eq!(
        lines(&client, "INSERT INTO src VALUES (1, 'a', 1.50), (2, 'b', 2.25) RETURNING id, name || '!' AS shout").await,
        ["1|a!", "2|b!"]
    );
    assert_eq!(
        lines(
            &client,
            "INSERT INTO src (name, id) VALUES ('c', 3) RETURNING *"
        )
        .await,
        ["3|c|"]
    );
    exec(&client, "BEGIN").await;
    assert_eq!(
        lines(&client, "INSERT INTO src VALUES (4, 'd', 4) RETURNING id").await,
        ["4"]
    );
    exec(&client, "ROLLBACK").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM src").await, "3");

    assert_eq!(
        tags(&client, "CREATE TABLE copied AS SELECT id, upper(name) AS name, score * 2 AS doubled FROM src WHERE id < 3").await,
        ["2"]
    );
    assert_eq!(
        lines(&client, "SELECT id, name, doubled FROM copied ORDER BY id").await,
        ["1|A|3.00", "2|B|4.50"]
    );
    fails_with(&client, "CREATE TABLE copied AS SELECT 1 AS x", "42P07").await;

    exec(
        &client,
        "CREATE VIEW good AS SELECT id, name FROM src WHERE score > 2",
    )
    .await;
    assert_eq!(
        lines(&client, "SELECT * FROM good ORDER BY id").await,
        ["2|b"]
    );
    exec(
        &client,
        "CREATE VIEW good_count AS SELECT count(*) AS n FROM good",
    )
    .await;
    exec(&client, "UPDATE src SET score = 9 WHERE id = 1").await;
    assert_eq!(scalar(&client, "SELECT n FROM good_count").await, "2");
    fails_with(&client, "CREATE VIEW good AS SELECT 1 AS x", "42P07").await;
    exec(
        &client,
        "CREATE OR REPLACE VIEW good AS SELECT id, name FROM src WHERE score > 100",
    )
    .await;
    assert_eq!(scalar(&client, "SELECT n FROM good_count").await, "0");
    exec(&client, "DROP VIEW good_count").await;
    fails_with(&client, "SELECT * FROM good_count", "42P01").await;
    fails_with(&client, "DROP VIEW good_count", "42P01").await;
    exec(&client, "DROP VIEW IF EXISTS good_count").await;

    exec(&client, "ALTER TABLE copied RENAME TO renamed").await;
    assert_eq!(scalar(&client, "SELECT sum(id) FROM renamed").await, "3");
    fails_with(&client, "SELECT * FROM copied", "42P01").await;
    fails_with(&client, "ALTER TABLE renamed RENAME TO src", "42P07").await;

    // Columns renamed and dropped keep every row's other values; a column added with a
    // dropped one's name starts out NULL, as in PostgreSQL.
    exec(&client, "ALTER TABLE src RENAME COLUMN name TO label").await;
    exec(
        &client,
        "INSERT INTO src (id, label, score) VALUES (5, 'e', 5)",
    )
    .await;
    assert_eq!(
        lines(
            &client,
            "SELECT id, label, score FROM src WHERE label <> 'b' ORDER BY id"
        )
        .await,
        ["1|a|9.00", "3|c|", "5|e|5.00"]
    );
    fails_with(&client, "SELECT name FROM src", "42703").await;
    fails_with(
        &client,
        "ALTER TABLE src RENAME COLUMN label TO id",
        "42701",
    )
    .await;
    fails_with(&client, "ALTER TABLE src RENAME COLUMN nope TO x", "42703").await;
    // (PostgreSQL refuses to drop a column a view reads; Shoal does not track that yet.)
    exec(&client, "DROP VIEW good").await;
    exec(&client, "ALTER TABLE src DROP COLUMN score").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM src").await, "4");
    fails_with(&client, "SELECT score FROM src", "42703").await;
    exec(&client, "ALTER TABLE src ADD COLUMN score numeric(6,2)").await;
    assert_eq!(
        scalar(&client, "SELECT count(*), count(score) FROM src").await,
        "4|0"
    );
    exec(&client, "UPDATE src SET score = id * 2 WHERE id > 2").await;
    assert_eq!(
        lines(&client, "SELECT id, label, score FROM src ORDER BY id").await,
        ["1|a|", "2|b|", "3|c|6.00", "5|e|10.00"]
    );
    fails_with(&client, "ALTER TABLE src DROP COLUMN nope", "42703").await;
    exec(&client, "ALTER TABLE src DROP COLUMN IF EXISTS nope").await;

    // Not there yet on Shoal: a clear refusal. (PostgreSQL runs them.)
    if shoal {
        fails_with(&client, "ALTER TABLE src DROP COLUMN id", "0A000").await;
        for sql in [
            "INSERT INTO src VALUES (1, 'a', 1) ON CONFLICT DO NOTHING",
            "CREATE MATERIALIZED VIEW m AS SELECT 1 AS x",
        ] {
            fails_with(&client, sql, "0A000").await;
        }
    }
}

on_shoal_and_postgresql!(
    returning_ctas_views_and_renames_on_shoal,
    returning_ctas_views_and_renames_on_postgresql,
    2,
    180,
    returning_ctas_views_and_renames
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_and_renamed_columns_survive_a_restart() {
    let mut cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    create_table(&client, true, "base", "id bigint NOT NULL", false).await;
    exec(&client, "INSERT INTO base VALUES (1), (2), (3)").await;
    exec(
        &client,
        "CREATE VIEW odd AS SELECT id FROM base WHERE id % 2 = 1",
    )
    .await;
    exec(&client, "ALTER TABLE base ADD COLUMN note text").await;
    exec(&client, "INSERT INTO base VALUES (4, 'four')").await;
    exec(&client, "ALTER TABLE base RENAME COLUMN note TO remark").await;
    drop(client);
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    assert_eq!(
        lines(&client, "SELECT id FROM odd ORDER BY id").await,
        ["1", "3"]
    );
    assert_eq!(
        lines(&client, "SELECT id, remark FROM base ORDER BY id").await,
        ["1|", "2|", "3|", "4|four"]
    );
}

/// A transactional writer (INSERT and UPDATE of a counter in each transaction, retried on
/// 40001) runs while two workers join and the cluster rebalances: every committed transaction
/// is there exactly once, none that failed left anything, and moves still finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_during_a_rebalance_lose_nothing() {
    let cluster = Cluster::start_with(1, 2).await;
    let client = cluster.client().await;
    create_table(
        &client,
        true,
        "ledger",
        "id bigint NOT NULL, batch bigint",
        false,
    )
    .await;
    create_table(
        &client,
        true,
        "counter",
        "id bigint NOT NULL, n bigint",
        false,
    )
    .await;
    exec(&client, "INSERT INTO counter VALUES (1, 0)").await;
    exec(
        &client,
        "INSERT INTO ledger SELECT i, 0 AS batch FROM generate_series(1, 20000) AS g(i)",
    )
    .await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let target = cluster.psql_target();
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let client = client_of(&target).await;
            let (mut committed, mut conflicts) = (0i64, 0u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let b = committed + 1;
                let sql = format!(
                    "BEGIN; \
                     INSERT INTO ledger SELECT 100000 * {b} + i, {b} AS batch FROM generate_series(1, 50) AS g(i); \
                     UPDATE counter SET n = n + 1 WHERE id = 1; \
                     COMMIT"
                );
                match client.simple_query(&sql).await {
                    Ok(_) => committed += 1,
                    Err(e) if sqlstate(&e).as_deref() == Some("40001") => {
                        conflicts += 1;
                        let _ = client.simple_query("ROLLBACK").await;
                    }
                    Err(e) => panic!("transactional writer: {}", err_text(&e)),
                }
            }
            (committed, conflicts)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in [1, 2] {
        exec(
            &client,
            &format!(
                "SELECT citus_add_node('127.0.0.1', {})",
                cluster.worker_port(i)
            ),
        )
        .await;
    }
    within(300, "rebalance", async {
        exec(&client, "SELECT citus_rebalance_start()").await;
        exec(&client, "SELECT citus_rebalance_wait()").await;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (committed, _conflicts) = within(60, "writer", writer).await.expect("writer task");
    assert!(committed > 0, "the writer committed nothing");
    assert_eq!(
        scalar(&client, "SELECT n FROM counter").await,
        committed.to_string()
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT count(*), count(DISTINCT id), max(batch) FROM ledger"
        )
        .await,
        format!(
            "{}|{}|{committed}",
            20000 + 50 * committed,
            20000 + 50 * committed
        )
    );
    let nodes = scalar(
        &client,
        "SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'ledger'",
    )
    .await;
    assert_eq!(nodes, "3", "the rebalance spread the shards");
}

/// Isolation settings say what Shoal gives (snapshot isolation, `repeatable read`) and refuse
/// what it cannot give, instead of accepting and ignoring them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_settings_say_what_shoal_does() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    create_table(&client, true, "w", "id bigint NOT NULL", false).await;
    assert_eq!(
        scalar(&client, "SHOW transaction_isolation").await,
        "repeatable read"
    );
    assert_eq!(
        scalar(&client, "SHOW TRANSACTION ISOLATION LEVEL").await,
        "repeatable read"
    );
    for refused in [
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET default_transaction_isolation = 'serializable'",
        "SET default_transaction_read_only = on",
    ] {
        fails_with(&client, refused, "0A000").await;
    }
    exec(
        &client,
        "SET default_transaction_isolation = 'read committed'",
    )
    .await;
    exec(&client, "BEGIN").await;
    exec(&client, "SET TRANSACTION READ ONLY").await;
    assert_eq!(scalar(&client, "SHOW transaction_read_only").await, "on");
    fails_with(&client, "INSERT INTO w VALUES (1)", "25006").await;
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN ISOLATION LEVEL READ COMMITTED").await;
    exec(&client, "INSERT INTO w VALUES (1)").await;
    exec(&client, "COMMIT").await;
    assert_eq!(scalar(&client, "SELECT count(*) FROM w").await, "1");
}
