//! Hostile and unlucky input: statements nested too deep for a stack, COPY data that ends
//! mid-line or mid-quote, integer overflow, duplicate column names, invalid cluster settings, empty secrets.
//! Each scenario runs on Shoal and on the scratch PostgreSQL 15, which decides what is right;
//! after every hostile statement the server must still answer a new connection.

use std::process::Command;
use std::time::Duration;

use shoal_e2e::{
    client_of, copy_in, err_text, exec, lines, on_shoal_and_postgresql, run_with_timeout, scalar,
    shoal_bin, sqlstate, stderr_of, within, Cluster, PgServer, PsqlTarget,
};
use tokio_postgres::Client;

/// A statement that must either answer `expected` or be refused with 54001 (too deep), and
/// leave the server answering new connections.
async fn answered_or_too_deep(target: &PsqlTarget, sql: &str, expected: &str) {
    let client = client_of(target).await;
    match client.simple_query(sql).await {
        Ok(_) => assert_eq!(scalar(&client, sql).await, expected),
        Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("54001"), "{}", err_text(&e)),
    }
    let fresh = client_of(target).await;
    assert_eq!(
        scalar(&fresh, "SELECT 1").await,
        "1",
        "server alive after a deep statement"
    );
}

/// `CREATE TABLE name (columns)`, on Shoal distributed on `id` in 4 shards.
async fn create_table(client: &Client, shoal: bool, name: &str, columns: &str) {
    exec(client, &format!("CREATE TABLE {name} ({columns})")).await;
    if shoal {
        let sql = format!("SELECT create_distributed_table('{name}', 'id', shard_count => 4)");
        exec(client, &sql).await;
    }
}

/// A distributed table `name (id bigint, v bigint)` holding (i, i) for i in 1..=rows.
async fn table_of_pairs(client: &Client, name: &str, rows: u32) {
    create_table(client, true, name, "id bigint, v bigint").await;
    let values: Vec<String> = (1..=rows).map(|i| format!("({i}, {i})")).collect();
    let insert = format!("INSERT INTO {name} VALUES {}", values.join(", "));
    exec(client, &insert).await;
}

async fn deep_statements(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(&client, shoal, "deep", "id bigint, v integer").await;
    exec(
        &client,
        "INSERT INTO deep VALUES (1, 10), (2, 20), (3, 30), (5000, 1)",
    )
    .await;

    // Deep enough to have overflowed a 2 MB stack; answered on both.
    let sum = format!("SELECT {} AS s", vec!["1"; 1000].join("+"));
    assert_eq!(scalar(&client, &sum).await, "1000");
    // An ORM's OR chain on a distributed table (pushed to the workers as a filter).
    let or_chain: Vec<String> = (1..=1950).map(|i| format!("id = {i}")).collect();
    let sql = format!(
        "SELECT count(*) AS n FROM deep WHERE {}",
        or_chain.join(" OR ")
    );
    assert_eq!(scalar(&client, &sql).await, "3");

    // 100,000 terms: answered or refused with 54001, never fatal.
    let huge = format!("SELECT {} AS s", vec!["1"; 100_000].join("+"));
    answered_or_too_deep(target, &huge, "100000").await;
    let huge_or: Vec<String> = (1..=100_000).map(|i| format!("v = {i}")).collect();
    let sql = format!(
        "SELECT count(*) AS n FROM deep WHERE {}",
        huge_or.join(" OR ")
    );
    answered_or_too_deep(target, &sql, "4").await;

    let fresh = client_of(target).await;
    assert_eq!(scalar(&fresh, "SELECT count(*) AS n FROM deep").await, "4");
}

on_shoal_and_postgresql!(
    deep_statements_are_answered_or_refused,
    deep_statements_hold_on_postgresql,
    2,
    600,
    deep_statements
);

/// `sql` (simple protocol) fails with SQLSTATE `code` and an error text containing `text`.
async fn refused(client: &Client, sql: &str, code: &str, text: &str) {
    match client.simple_query(sql).await {
        Ok(rows) => panic!("{sql} answered {} messages; expected {code}", rows.len()),
        Err(e) => {
            assert_eq!(
                sqlstate(&e).as_deref(),
                Some(code),
                "{sql}: {}",
                err_text(&e)
            );
            assert!(err_text(&e).contains(text), "{sql}: {}", err_text(&e));
        }
    }
}

/// `sql` fails with SQLSTATE 22003 and PostgreSQL's message.
async fn out_of_range(client: &Client, sql: &str, message: &str) {
    match client.simple_query(sql).await {
        Ok(rows) => panic!("{sql} answered {rows:?}; expected 22003 {message}"),
        Err(e) => {
            let db = e.as_db_error();
            assert_eq!(
                sqlstate(&e).as_deref(),
                Some("22003"),
                "{sql}: {}",
                err_text(&e)
            );
            assert_eq!(
                db.map(|d| d.message()),
                Some(message),
                "{sql}: {}",
                err_text(&e)
            );
        }
    }
}

/// Integer arithmetic raises 22003 instead of wrapping, on the coordinator, in constant
/// folding and in filters the workers run; `sum(bigint)` is numeric and exact, `sum(int)` is
/// bigint.
async fn integer_overflow(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(&client, shoal, "big", "id bigint, v bigint, w integer").await;
    exec(
        &client,
        "INSERT INTO big VALUES (1, 9223372036854775807, 2147483647), \
         (2, 9223372036854775807, 2147483647), (3, -9223372036854775808, 1)",
    )
    .await;

    out_of_range(
        &client,
        "SELECT 9223372036854775807 + 1",
        "bigint out of range",
    )
    .await;
    out_of_range(
        &client,
        "SELECT -9223372036854775807 - 2",
        "bigint out of range",
    )
    .await;
    out_of_range(
        &client,
        "SELECT 4611686018427387904 * 2",
        "bigint out of range",
    )
    .await;
    out_of_range(
        &client,
        "SELECT v + 1 FROM big WHERE id = 1",
        "bigint out of range",
    )
    .await;
    out_of_range(&client, "SELECT v * 2 FROM big", "bigint out of range").await;
    out_of_range(
        &client,
        "SELECT -v FROM big WHERE id = 3",
        "bigint out of range",
    )
    .await;
    out_of_range(
        &client,
        "SELECT w + w FROM big WHERE id = 1",
        "integer out of range",
    )
    .await;
    // A filter the workers evaluate next to the data.
    out_of_range(
        &client,
        "SELECT count(*) FROM big WHERE v * 2 > 0",
        "bigint out of range",
    )
    .await;

    // No wrap-around in aggregates: PostgreSQL sums bigint as numeric.
    assert_eq!(
        scalar(&client, "SELECT sum(v) AS s FROM big WHERE id IN (1, 2)").await,
        "18446744073709551614"
    );
    assert_eq!(
        scalar(&client, "SELECT sum(v) AS s FROM big").await,
        "9223372036854775806"
    );
    assert_eq!(
        scalar(&client, "SELECT sum(w) AS s FROM big").await,
        "4294967295"
    );
    let grouped = lines(
        &client,
        "SELECT id, sum(v) AS s FROM big GROUP BY id ORDER BY id",
    )
    .await;
    assert_eq!(
        grouped,
        [
            "1|9223372036854775807",
            "2|9223372036854775807",
            "3|-9223372036854775808"
        ]
    );
    let sums = client
        .prepare("SELECT sum(v) AS sv, sum(w) AS sw FROM big")
        .await
        .unwrap_or_else(|e| panic!("prepare: {}", err_text(&e)));
    let types: Vec<&str> = sums.columns().iter().map(|c| c.type_().name()).collect();
    assert_eq!(types, ["numeric", "int8"]);

    if shoal {
        // Still summed next to the data: the workers' partial sums are numeric too.
        let plan = lines(&client, "EXPLAIN SELECT sum(v), avg(w) FROM big")
            .await
            .join("\n");
        // (Shoal's pushdown, or the partial aggregate of a distributed plan's stage)
        assert!(
            plan.contains(
                "worker_partial_aggregate=[group_by=[], aggr=[sum(CAST(v AS Decimal128(38, 0)))"
            ) || (plan.contains("ShardLeafExec")
                && plan.contains("AggregateExec: mode=Partial, gby=[], aggr=[sum(big.v)")),
            "sum pushed to the workers:\n{plan}"
        );
    }
    // avg over integers is numeric (pushed down as a sum and a count), exact, rounded at
    // the last digit. PostgreSQL chooses the fractional digits per value, Shoal 16 for all:
    // the values, without trailing zeros, must agree.
    let avgs = client
        .prepare("SELECT avg(w) AS aw, avg(v) AS av FROM big")
        .await
        .unwrap_or_else(|e| panic!("prepare: {}", err_text(&e)));
    let types: Vec<&str> = avgs.columns().iter().map(|c| c.type_().name()).collect();
    assert_eq!(types, ["numeric", "numeric"]);
    let trimmed = |v: String| {
        if v.contains('.') {
            v.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            v
        }
    };
    for (sql, expected) in [
        ("SELECT avg(w) AS a FROM big", "1431655765"),
        ("SELECT avg(v) AS a FROM big", "3074457345618258602"),
        (
            "SELECT avg(v) AS a FROM big WHERE id < 3",
            "9223372036854775807",
        ),
        ("SELECT avg(w) AS a FROM big WHERE id > 1", "1073741824"),
        ("SELECT avg(id) AS a FROM big WHERE id > 1", "2.5"),
        ("SELECT avg(id) AS a FROM big", "2"),
    ] {
        assert_eq!(trimmed(scalar(&client, sql).await), expected, "{sql}");
    }
    // 5/3: 16 fractional digits (PostgreSQL's count for values from 1 to 10,000), the last
    // one rounded.
    assert_eq!(
        scalar(
            &client,
            "SELECT avg(x) AS a FROM (SELECT CASE WHEN id = 1 THEN 1 ELSE 2 END AS x FROM big) t"
        )
        .await,
        "1.6666666666666667"
    );
    let fresh = client_of(target).await;
    assert_eq!(scalar(&fresh, "SELECT count(*) AS n FROM big").await, "3");
}

on_shoal_and_postgresql!(
    integer_overflow_is_an_error,
    integer_overflow_on_postgresql,
    2,
    300,
    integer_overflow
);

/// CPU seconds (user + system) the process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}

/// Clients that start cross joins and vanish leave nothing running: within seconds the
/// coordinator and the workers (which run the joins' stages) are idle and a new login is
/// answered.
async fn abandoned_queries(cluster: &Cluster) {
    let target = cluster.psql_target();
    let client = client_of(&target).await;
    table_of_pairs(&client, "wide", 3000).await;
    let runaway_sql = "SELECT count(*) FROM wide a, wide b, wide c WHERE a.v + b.v + c.v = -1";
    // the joins' build sides are broadcast between workers: their producers stop too
    let plan = lines(&client, &format!("EXPLAIN {runaway_sql}"))
        .await
        .join("\n");
    assert!(
        plan.contains("NetworkBroadcastExec"),
        "the cross joins broadcast:\n{plan}"
    );

    // The joins run on the coordinator or, in stages, on the workers: all of them count.
    let pids: Vec<u32> = std::iter::once(cluster.coordinator_pid().expect("coordinator runs"))
        .chain((0..2).map(|i| cluster.worker_pid(i).expect("worker runs")))
        .collect();
    let cpu = || pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
    let config = format!(
        "host={} port={} user={} dbname={}",
        target.host, target.port, target.user, target.dbname
    );
    let mut connections = Vec::new();
    for _ in 0..3 {
        let (runaway, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {}", err_text(&e)));
        let connection = tokio::spawn(connection);
        // 2.7e10 rows: hours of work if nothing stops it.
        let query = tokio::spawn(async move {
            let _ = runaway.simple_query(runaway_sql).await;
        });
        connections.push((connection, query));
    }
    // Let them get going, check they do burn CPU, then drop the sockets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = cpu();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = cpu() - before;
    assert!(busy > 1.0, "the cross joins run: {busy:.2} CPU s in 2 s");
    for (connection, query) in &connections {
        connection.abort();
        query.abort();
    }

    // Within a second or two the work stops.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = cpu();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = cpu() - before;
    assert!(
        idle < 0.6,
        "abandoned queries still running: {idle:.2} CPU s in 3 s"
    );
    let fresh = client_of(&target).await;
    assert_eq!(
        scalar(&fresh, "SELECT count(*) AS n FROM wide").await,
        "3000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_queries_stop() {
    let cluster = Cluster::start(2).await;
    within(120, "abandoned queries", abandoned_queries(&cluster)).await;
}

/// With a memory limit, a query whose operators need more than it fails with 53200 and
/// takes nothing else down; smaller queries still run.
async fn memory_hungry_query(cluster: &Cluster) {
    let target = cluster.psql_target();
    let client = client_of(&target).await;
    // The build side of this hash join holds 3 million rows, over 32 MB.
    let hungry = "SELECT count(*) AS n FROM unnest(range(1, 3000000)) AS a(x) \
                  JOIN unnest(range(1, 3000000)) AS b(y) ON x = y";
    match client.simple_query(hungry).await {
        Ok(rows) => panic!("a join over 32 MB answered {} messages", rows.len()),
        Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("53200"), "{}", err_text(&e)),
    }
    let fresh = client_of(&target).await;
    let small = "SELECT count(*) AS n FROM unnest(range(1, 1000)) AS a(x) \
                 JOIN unnest(range(1, 1000)) AS b(y) ON x = y";
    assert_eq!(scalar(&fresh, small).await, "999");
    assert_eq!(
        scalar(&client, "SELECT 1").await,
        "1",
        "the failed session goes on"
    );
}

/// The worker's own memory limit: a pushed-down GROUP BY over 300,000 groups on a worker
/// allowed 16 MB spills or sends its groups early instead of holding them, and the answer
/// stays exact; allowed 1 MB, it fails with 53200 from the worker.
async fn grouped_under_worker_limit(cluster: &Cluster) {
    let client = client_of(&cluster.psql_target()).await;
    exec(&client, "CREATE TABLE many (id bigint, v bigint)").await;
    exec(
        &client,
        "SELECT create_distributed_table('many', 'id', shard_count => 2)",
    )
    .await;
    exec(
        &client,
        "INSERT INTO many SELECT g AS id, g % 7 AS v FROM generate_series(1, 300000) g",
    )
    .await;
    let grouped = "SELECT count(*) AS groups, sum(n) AS rows, sum(s) AS total FROM \
                   (SELECT id, count(*) AS n, sum(v) AS s FROM many GROUP BY id) g";
    let plan = lines(&client, &format!("EXPLAIN {grouped}"))
        .await
        .join("\n");
    // partial aggregates on the worker: Shoal's own pushdown, or a stage of a distributed plan
    assert!(
        plan.contains("worker_partial_aggregate")
            || (plan.contains("DistributedExec") && plan.contains("ShardLeafExec")),
        "pushed down:\n{plan}"
    );
    let expected_total: u64 = (1..=300_000u64).map(|v| v % 7).sum();
    assert_eq!(
        lines(&client, grouped).await,
        [format!("300000|300000|{expected_total}")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hungry_query_fails_with_53200() {
    let mut cluster = Cluster::start(1).await;
    cluster.set_coordinator_env(&[("SHOAL_MEMORY_LIMIT_MB", "32")]);
    cluster.restart_coordinator().await;
    within(120, "memory limit", memory_hungry_query(&cluster)).await;
    cluster.set_worker_env(0, &[("SHOAL_MEMORY_LIMIT_MB", "16")]);
    cluster.restart_worker(0).await;
    within(
        120,
        "worker memory limit",
        grouped_under_worker_limit(&cluster),
    )
    .await;
    cluster.set_worker_env(0, &[("SHOAL_MEMORY_LIMIT_MB", "1")]);
    cluster.restart_worker(0).await;
    let client = client_of(&cluster.psql_target()).await;
    // 1 MB is too little for the worker's aggregate. The coordinator's first task request to
    // the restarted worker may meet the connection the restart broke (class 08): the query
    // then runs on the coordinator's plan instead (counted as a fallback) and answers; the
    // next one reaches the worker.
    let grouped = "SELECT count(*) FROM (SELECT id, count(*) FROM many GROUP BY id) g";
    let fallbacks = || {
        cluster
            .metric("shoal_distributed_fallbacks_total")
            .unwrap_or(0.0)
    };
    // Until the coordinator sees the restarted worker live again it plans the aggregate on
    // itself (the plan reads the rows, within the coordinator's limit): wait for a plan
    // that runs it on the worker.
    let on_worker =
        |plan: &str| plan.contains("worker_partial_aggregate") || plan.contains("DistributedExec");
    for wait in 0.. {
        let plan = lines(&client, &format!("EXPLAIN {grouped}"))
            .await
            .join("\n");
        if on_worker(&plan) {
            break;
        }
        assert!(
            wait < 60,
            "the aggregate is never planned on the worker:\n{plan}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for attempt in 0.. {
        let before = fallbacks();
        match client.simple_query(grouped).await {
            Ok(_) if attempt == 0 && fallbacks() > before => continue,
            Ok(rows) => panic!(
                "{grouped} answered {} messages ({} fallbacks); expected 53200",
                rows.len(),
                fallbacks() - before
            ),
            Err(e) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("53200"), "{}", err_text(&e));
                assert!(err_text(&e).contains("on worker"), "{}", err_text(&e));
                break;
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// A stopped worker (SIGSTOP: the kernel still accepts its connections, nothing answers) makes
/// queries on it fail within the worker timeout instead of hanging; resumed, it serves again.
async fn stopped_worker(cluster: &Cluster) {
    let target = cluster.psql_target();
    let client = client_of(&target).await;
    table_of_pairs(&client, "frozen", 200).await;
    assert_eq!(
        scalar(&client, "SELECT count(*) AS n FROM frozen").await,
        "200"
    );

    let pid = cluster.worker_pid(1).expect("worker 1 runs");
    signal(pid, "-STOP");
    // Twice: once on the connection open before the stop, once on a new one.
    for attempt in 0..2 {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            client.simple_query("SELECT count(*) AS n FROM frozen"),
        )
        .await;
        let took = started.elapsed();
        match outcome {
            Err(_) => {
                signal(pid, "-CONT");
                panic!("attempt {attempt}: a query on a stopped worker hung for 30 s");
            }
            Ok(Ok(rows)) => {
                signal(pid, "-CONT");
                panic!("attempt {attempt}: answered {rows:?} without worker 1's shards");
            }
            Ok(Err(e)) => assert_eq!(sqlstate(&e).as_deref(), Some("08006"), "{}", err_text(&e)),
        }
        assert!(
            took < Duration::from_secs(12),
            "attempt {attempt} failed after {took:?}"
        );
    }
    signal(pid, "-CONT");
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(rows) = client
            .simple_query("SELECT count(*) AS n FROM frozen")
            .await
        {
            answered = !rows.is_empty();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered, "worker 1 serves again after SIGCONT");
    assert_eq!(
        scalar(&client, "SELECT count(*) AS n FROM frozen").await,
        "200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_worker_fails_queries_in_bounded_time() {
    let mut cluster = Cluster::start(2).await;
    cluster.set_coordinator_env(&[("SHOAL_WORKER_TIMEOUT_MS", "3000")]);
    cluster.restart_coordinator().await;
    within(180, "stopped worker", stopped_worker(&cluster)).await;
}

/// COPY either stores exactly the rows PostgreSQL stores and reports that count, or fails
/// and stores nothing.
async fn copy_edges(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    create_table(&client, shoal, "edge", "id bigint, name text").await;
    let copy = |format: &str| format!("COPY edge FROM STDIN WITH (FORMAT {format})");
    let cases: [(&str, &[u8], u64); 6] = [
        ("csv", b"1,one", 1),
        ("csv", b"2,two\n3,three", 2),
        ("csv", b"4,\"four, quoted\"", 1),
        ("csv", b"5,", 1),
        ("text", b"6\tsix", 1),
        ("text", b"7\tseven\n8\teight", 2),
    ];
    let mut stored = 0;
    for (format, data, rows) in cases {
        let n = copy_in(&client, &copy(format), data.to_vec())
            .await
            .unwrap_or_else(|e| panic!("COPY {data:?}: {}", err_text(&e)));
        assert_eq!(n, rows, "COPY of {data:?} reports its rows");
        stored += rows;
    }
    let rows = lines(
        &client,
        "SELECT id, coalesce(name, '<null>') FROM edge ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            "1|one",
            "2|two",
            "3|three",
            "4|four, quoted",
            "5|<null>",
            "6|six",
            "7|seven",
            "8|eight"
        ]
    );
    assert_eq!(rows.len() as u64, stored);

    // Data ending inside a quoted field is an error, and nothing of it is stored.
    for data in [&b"9,\"nine"[..], b"9,nine\n10,\"ten\n11,eleven"] {
        let e = copy_in(&client, &copy("csv"), data.to_vec())
            .await
            .expect_err("an unterminated quoted field must fail the COPY");
        assert_eq!(sqlstate(&e).as_deref(), Some("22P04"), "{}", err_text(&e));
        assert!(
            err_text(&e).contains("unterminated CSV quoted field"),
            "{}",
            err_text(&e)
        );
    }
    assert_eq!(scalar(&client, "SELECT count(*) AS n FROM edge").await, "8");
}

on_shoal_and_postgresql!(
    copy_stores_what_postgresql_stores,
    copy_edges_hold_on_postgresql,
    2,
    300,
    copy_edges
);

async fn duplicate_columns(target: &PsqlTarget) {
    let client = client_of(target).await;
    let e = client
        .simple_query("CREATE TABLE dup (a integer, a integer)")
        .await
        .expect_err("a column named twice must be refused");
    assert_eq!(sqlstate(&e).as_deref(), Some("42701"), "{}", err_text(&e));
    assert!(err_text(&e).contains("column \"a\" specified more than once"));
    let e = client
        .simple_query("SELECT * FROM dup")
        .await
        .expect_err("the refused table must not exist");
    assert_eq!(sqlstate(&e).as_deref(), Some("42P01"), "{}", err_text(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_column_names_are_refused() {
    let cluster = Cluster::start(1).await;
    duplicate_columns(&cluster.psql_target()).await;
    if let Some(pg) = PgServer::start() {
        duplicate_columns(&pg.psql_target()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_settings_are_validated() {
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let bad = [
        ("rebalance.max_bandwidth_mb", "-1"),
        ("rebalance.max_bandwidth_mb", "NaN"),
        ("rebalance.max_bandwidth_mb", "1e309"),
        ("rebalance.yield_bandwidth_mb", "0"),
        ("rebalance.max_concurrent_moves", "0"),
        ("rebalance.max_concurrent_moves", "1.5"),
        ("rebalance.task_retries", "-3"),
        ("rebalance.write_fence_timeout_ms", "soon"),
        ("auto_rebalance", "maybe"),
    ];
    for (name, value) in bad {
        let sql = format!("SELECT set_cluster_setting('{name}', '{value}')");
        let e = client
            .simple_query(&sql)
            .await
            .expect_err("an invalid setting value must be refused");
        assert_eq!(
            sqlstate(&e).as_deref(),
            Some("22023"),
            "{sql}: {}",
            err_text(&e)
        );
    }
    let settings = "SELECT name, value FROM shoal.cluster_settings \
                    WHERE name IN ('auto_rebalance', 'rebalance.max_bandwidth_mb', \
                    'rebalance.max_concurrent_moves') ORDER BY name";
    assert_eq!(
        lines(&client, settings).await,
        [
            "auto_rebalance|off",
            "rebalance.max_bandwidth_mb|unlimited",
            "rebalance.max_concurrent_moves|2"
        ],
        "refused values change nothing"
    );
    for (name, value) in [
        ("auto_rebalance", "TRUE"),
        ("rebalance.max_bandwidth_mb", "0.5"),
        ("rebalance.max_concurrent_moves", " 3 "),
    ] {
        exec(
            &client,
            &format!("SELECT set_cluster_setting('{name}', '{value}')"),
        )
        .await;
    }
    assert_eq!(
        lines(&client, settings).await,
        [
            "auto_rebalance|on",
            "rebalance.max_bandwidth_mb|0.5",
            "rebalance.max_concurrent_moves|3"
        ],
        "accepted values are stored in their canonical spelling"
    );
}

#[test]
fn empty_secrets_refuse_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_string_lossy();
    let worker = ["worker", "--listen", "127.0.0.1:0", "--data-dir", &data];
    // An empty token, by flag and by environment.
    for (args, env) in [
        ([&worker[..], &["--cluster-token", ""]].concat(), None),
        (worker.to_vec(), Some(("SHOAL_CLUSTER_TOKEN", ""))),
        (worker.to_vec(), Some(("SHOAL_CLUSTER_TOKEN", "  "))),
    ] {
        let mut cmd = Command::new(shoal_bin());
        cmd.args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
        assert!(!out.status.success(), "{args:?} {env:?} started");
        assert!(
            stderr_of(&out).contains("cluster token must not be empty"),
            "{}",
            stderr_of(&out)
        );
    }
    // A password file with an empty password.
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, "shoal:secret\nintruder:\n").expect("write passwords");
    let mut cmd = Command::new(shoal_bin());
    cmd.args([
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--password-file",
        &passwords.to_string_lossy(),
    ]);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "coordinator started with an empty password"
    );
    assert!(
        stderr_of(&out).contains("line 2: empty user or password"),
        "{}",
        stderr_of(&out)
    );
}

/// Queries that keep both coordinator threads busy must not keep SIGTERM from stopping it;
/// their sessions, and idle ones, end with FATAL 57P01 as in PostgreSQL's fast shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_busy_coordinator() {
    let mut cluster = Cluster::start(1).await;
    let runaway =
        "SELECT count(*) FROM generate_series(1, 200000) a, generate_series(1, 200000) b \
                   WHERE a.a + b.b = -1";
    let port = cluster.port();
    let idle = tokio::task::spawn_blocking(move || {
        let mut c = raw_wire::Conn::ready(port, "shoal", "shoal");
        c.until_ready()
    });
    let mut running = Vec::new();
    for _ in 0..3 {
        let client = cluster.client().await;
        running.push(tokio::spawn(async move {
            match client.simple_query(runaway).await {
                Ok(_) => "success".to_string(),
                Err(e) => sqlstate(&e).unwrap_or_else(|| err_text(&e)),
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // While they saturate both cores, a new login and a read of a distributed table (the
    // workers' liveness pings included) still go through.
    let fresh = within(10, "a login under load", cluster.client()).await;
    exec(&fresh, "CREATE TABLE busy (id bigint)").await;
    exec(
        &fresh,
        "SELECT create_distributed_table('busy', 'id', shard_count => 2)",
    )
    .await;
    exec(&fresh, "INSERT INTO busy VALUES (1), (2), (3)").await;
    assert_eq!(
        within(
            10,
            "a read under load",
            scalar(&fresh, "SELECT count(*) FROM busy")
        )
        .await,
        "3"
    );
    let took =
        tokio::task::block_in_place(|| cluster.terminate_coordinator(Duration::from_secs(15)));
    let took = took.expect("the coordinator ignored SIGTERM for 15 s");
    assert!(took < Duration::from_secs(8), "SIGTERM took {took:?}");
    for r in running {
        let ended = within(30, "a runaway query's end", r).await.expect("task");
        assert_eq!(ended, "57P01", "a runaway query's session at shutdown");
    }
    let idle = within(30, "the idle session's end", idle)
        .await
        .expect("idle");
    assert_eq!(
        raw_wire::error_codes(&idle),
        vec!["57P01".to_string()],
        "{idle:?}"
    );
}

/// Frontend messages written byte by byte, for what no driver would send.
mod raw_wire {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    pub fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        message(b'P', &[cstr(name), cstr(sql), vec![0, 0]].concat())
    }

    /// Bind with text values and the given result format codes.
    pub fn bind(values: &[&str], result_formats: &[i16]) -> Vec<u8> {
        let mut body = [cstr(""), cstr("")].concat();
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            body.extend_from_slice(&(v.len() as i32).to_be_bytes());
            body.extend_from_slice(v.as_bytes());
        }
        body.extend_from_slice(&(result_formats.len() as u16).to_be_bytes());
        for f in result_formats {
            body.extend_from_slice(&f.to_be_bytes());
        }
        message(b'B', &body)
    }

    pub fn execute_sync() -> Vec<u8> {
        [
            message(b'E', &[cstr(""), 0i32.to_be_bytes().to_vec()].concat()),
            message(b'S', &[]),
        ]
        .concat()
    }

    pub fn query(sql: &str) -> Vec<u8> {
        message(b'Q', &cstr(sql))
    }

    pub struct Conn(TcpStream);

    impl Conn {
        /// Connect and send the startup message; the server's first answer is left unread.
        pub fn start(port: u16, user: &str, db: &str) -> Conn {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let mut body = 196608i32.to_be_bytes().to_vec();
            for (k, v) in [("user", user), ("database", db)] {
                body.extend(cstr(k));
                body.extend(cstr(v));
            }
            body.push(0);
            let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
            m.extend(body);
            let mut c = Conn(s);
            c.send(&m);
            c
        }

        /// Connect and log in (trust); ready for a query.
        pub fn ready(port: u16, user: &str, db: &str) -> Conn {
            let mut c = Conn::start(port, user, db);
            let seen = c.until_ready();
            assert!(
                seen.last().map(|m| m.0) == Some(b'Z'),
                "no ReadyForQuery: {seen:?}"
            );
            c
        }

        pub fn send(&mut self, bytes: &[u8]) {
            // The server may already have closed after an earlier message; a failed write shows
            // up as end of stream when reading.
            let _ = self.0.write_all(bytes);
        }

        /// The next message, or None at end of stream (or a reset).
        pub fn read(&mut self) -> Option<(u8, Vec<u8>)> {
            let mut head = [0u8; 5];
            match self.0.read_exact(&mut head) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("the server neither answered nor closed within 20 s")
                }
                Err(_) => return None,
            }
            let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            self.0.read_exact(&mut body).ok()?;
            Some((head[0], body))
        }

        /// Messages up to and including ReadyForQuery, or up to the end of the stream.
        pub fn until_ready(&mut self) -> Vec<(u8, Vec<u8>)> {
            let mut seen = Vec::new();
            while let Some(m) = self.read() {
                let done = m.0 == b'Z';
                seen.push(m);
                if done {
                    break;
                }
            }
            seen
        }
    }

    /// (severity, SQLSTATE) of an ErrorResponse body.
    pub fn error_fields(body: &[u8]) -> (String, String) {
        let (mut severity, mut code) = (String::new(), String::new());
        let mut rest = body;
        while let Some((&field, tail)) = rest.split_first() {
            if field == 0 {
                break;
            }
            let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
            let value = String::from_utf8_lossy(&tail[..end]).into_owned();
            match field {
                b'S' => severity = value,
                b'C' => code = value,
                _ => {}
            }
            rest = tail.get(end + 1..).unwrap_or(&[]);
        }
        (severity, code)
    }

    /// (severity, SQLSTATE) of the one ErrorResponse among `seen`; None for none or several.
    pub fn sole_error(seen: &[(u8, Vec<u8>)]) -> Option<(String, String)> {
        let mut errors = seen.iter().filter(|m| m.0 == b'E');
        match (errors.next(), errors.next()) {
            (Some(e), None) => Some(error_fields(&e.1)),
            _ => None,
        }
    }

    /// SQLSTATEs of the ErrorResponses among `seen`.
    pub fn error_codes(seen: &[(u8, Vec<u8>)]) -> Vec<String> {
        seen.iter()
            .filter(|m| m.0 == b'E')
            .map(|m| error_fields(&m.1).1)
            .collect()
    }
}

/// Malformed frontend messages: each gets 08P01 (or, where PostgreSQL closes without a word,
/// a closed connection) and never a panic; the server answers a new connection afterwards.
/// Bind with the wrong number of values or result formats gets 08P01 and the connection goes on.
fn malformed_messages(port: u16, user: &str, db: &str) {
    use raw_wire::*;
    let mut bad_length = vec![b'Q'];
    bad_length.extend_from_slice(&2i32.to_be_bytes());
    let mut huge_value = [cstr(""), cstr("")].concat();
    huge_value.extend_from_slice(&0u16.to_be_bytes());
    huge_value.extend_from_slice(&1u16.to_be_bytes());
    huge_value.extend_from_slice(&1_000_000_000i32.to_be_bytes());
    huge_value.extend_from_slice(b"short");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        // (what, bytes, PostgreSQL may close without an ErrorResponse)
        ("Bind cut short", message(b'B', b"\0\0\x00"), false),
        (
            "Bind value longer than the message",
            message(b'B', &huge_value),
            false,
        ),
        (
            "Parse without its terminator",
            message(b'P', b"s\0SELECT 1"),
            false,
        ),
        (
            "Parse with more type oids than bytes",
            message(
                b'P',
                &[cstr(""), cstr("SELECT $1"), vec![0, 9, 0, 0, 0, 23]].concat(),
            ),
            false,
        ),
        (
            "Execute cut short",
            message(b'E', &[cstr(""), vec![0, 0]].concat()),
            false,
        ),
        ("Describe without a target", message(b'D', &[]), false),
        (
            "Query without its terminator",
            message(b'Q', b"SELECT 1"),
            false,
        ),
        (
            "Query with bytes after the terminator",
            message(b'Q', b"SELECT 1\0junk"),
            false,
        ),
        ("message length below 4", bad_length, true),
    ];
    for (what, bytes, may_close) in cases {
        let mut c = Conn::ready(port, user, db);
        // A statement to bind to: PostgreSQL looks it up before it reads the rest of a Bind.
        c.send(&parse("", "SELECT 1"));
        c.send(&bytes);
        c.send(&message(b'S', &[]));
        let seen = c.until_ready();
        let codes = error_codes(&seen);
        if !(may_close && seen.is_empty()) {
            assert_eq!(codes, vec!["08P01".to_string()], "{what}: {seen:?}");
        }
        let mut fresh = Conn::ready(port, user, db);
        fresh.send(&query("SELECT 1"));
        let answer = fresh.until_ready();
        assert!(
            error_codes(&answer).is_empty() && answer.iter().any(|m| m.0 == b'D'),
            "after {what}: {answer:?}"
        );
    }

    // Bind whose counts do not fit the statement: an ERROR, and the session goes on.
    let cases: Vec<(&str, Vec<&str>, Vec<i16>)> = vec![
        ("more values than parameters", vec!["1", "2"], vec![]),
        ("fewer values than parameters", vec![], vec![]),
        ("more result formats than columns", vec!["1"], vec![0, 0, 0]),
    ];
    for (what, values, formats) in cases {
        let mut c = Conn::ready(port, user, db);
        c.send(&parse("", "SELECT $1::int4 + 1 AS a, 2 AS b"));
        c.send(&bind(&values, &formats));
        c.send(&execute_sync());
        let seen = c.until_ready();
        assert_eq!(
            sole_error(&seen),
            Some(("ERROR".to_string(), "08P01".to_string())),
            "{what}: {seen:?}"
        );
        c.send(&query("SELECT 41 + 1"));
        let answer = c.until_ready();
        assert!(
            error_codes(&answer).is_empty() && answer.iter().any(|m| m.0 == b'D'),
            "the session after {what}: {answer:?}"
        );
    }
    // The matching Bind still works, and one result format code applies to every column.
    let mut c = Conn::ready(port, user, db);
    c.send(&parse("", "SELECT $1::int4 + 1 AS a, 2 AS b"));
    c.send(&bind(&["41"], &[0]));
    c.send(&execute_sync());
    let seen = c.until_ready();
    assert!(error_codes(&seen).is_empty(), "{seen:?}");
    let row = seen.iter().find(|m| m.0 == b'D').expect("a row");
    assert!(row.1.windows(2).any(|w| w == b"42"), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_08p01() {
    let cluster = Cluster::start(1).await;
    let port = cluster.port();
    tokio::task::spawn_blocking(move || malformed_messages(port, "shoal", "shoal"))
        .await
        .expect("scenario");
    assert_eq!(scalar(&cluster.client().await, "SELECT 1").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let port = pg.port();
    tokio::task::spawn_blocking(move || malformed_messages(port, "postgres", "postgres"))
        .await
        .expect("scenario");
}

/// Malformed SASL messages during a SCRAM login get FATAL 08P01, not a panicked connection;
/// a correct login works afterwards.
#[test]
fn malformed_sasl_messages_get_08p01() {
    use raw_wire::*;
    if !shoal_e2e::require_tool("psql") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port) = password_coordinator(dir.path(), &[]);
    let first = [
        cstr("SCRAM-SHA-256"),
        1000i32.to_be_bytes().to_vec(),
        b"n,,n=,r=abc".to_vec(),
    ]
    .concat();
    let negative = [cstr("SCRAM-SHA-256"), (-7i32).to_be_bytes().to_vec()].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "SASLInitialResponse longer than its message",
            message(b'p', &first),
        ),
        (
            "SASLInitialResponse with a negative length",
            message(b'p', &negative),
        ),
        (
            "SASLInitialResponse without a mechanism terminator",
            message(b'p', b"SCRAM"),
        ),
        ("empty password message", message(b'p', &[])),
    ];
    for (what, bytes) in cases {
        let mut c = Conn::start(port, "shoal", "shoal");
        let auth = c.read().expect("authentication request");
        assert_eq!(auth.0, b'R', "{what}: {auth:?}");
        c.send(&bytes);
        let seen = c.until_ready();
        assert_eq!(
            sole_error(&seen),
            Some(("FATAL".to_string(), "08P01".to_string())),
            "{what}: {seen:?}"
        );
    }
    let out = psql_login(port, "");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.as_deref(), Ok("1"));
}

/// A coordinator with no workers, user `shoal` with password `secret`, listening on
/// `listen_ip` with `args`; waits until it accepts connections.
fn password_coordinator_on(
    dir: &std::path::Path,
    listen_ip: &str,
    args: &[&str],
) -> (std::process::Child, u16) {
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "shoal:secret\n").expect("write passwords");
    let port = shoal_e2e::free_port();
    let listen = format!("{listen_ip}:{port}");
    let mut child = Command::new(shoal_bin())
        .args(["coordinator", "--listen", &listen, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--password-file")
        .arg(&passwords)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).expect("log"))
        .spawn()
        .expect("start coordinator");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "coordinator exited ({status}): {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "coordinator did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, port)
}

fn password_coordinator(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, u16) {
    password_coordinator_on(dir, "127.0.0.1", args)
}

/// `SELECT 1` through psql as `shoal`/`secret` with extra conninfo `options`: the output, or
/// psql's error text.
fn psql_login(port: u16, options: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "SELECT 1"])
        .arg(format!(
            "host=127.0.0.1 port={port} user=shoal dbname=shoal password=secret \
             connect_timeout=10 {options}"
        ))
        .output()
        .expect("psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(stderr_of(&out))
    }
}

/// TLS: plaintext logins are refused (28000) where TLS is required (by default with a
/// certificate on a non-loopback address, or with `--require-tls`) and allowed on loopback or
/// with `--require-tls=false`; SCRAM-SHA-256-PLUS (channel binding) works over TLS and is not
/// offered over plain TCP (libpq refuses a server that offers it there).
#[test]
fn tls_is_required_where_it_must_be() {
    if !shoal_e2e::require_tool("psql") || !shoal_e2e::require_tool("openssl") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", stderr_of(&made));
    let (cert, key) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];

    for (i, (what, ip, extra, plaintext_allowed)) in [
        ("non-loopback default", "0.0.0.0", vec![], false),
        (
            "--require-tls on loopback",
            "127.0.0.1",
            vec!["--require-tls"],
            false,
        ),
        ("loopback default", "127.0.0.1", vec![], true),
        (
            "--require-tls=false",
            "0.0.0.0",
            vec!["--require-tls=false"],
            true,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let sub = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let args: Vec<&str> = tls.iter().copied().chain(extra).collect();
        let (mut child, port) = password_coordinator_on(&sub, ip, &args);
        let plain = psql_login(port, "sslmode=disable");
        let with_tls = psql_login(port, "sslmode=require");
        let bound = psql_login(port, "sslmode=require channel_binding=require");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(with_tls.as_deref(), Ok("1"), "{what}: TLS login");
        assert_eq!(bound.as_deref(), Ok("1"), "{what}: channel-bound login");
        if plaintext_allowed {
            assert_eq!(plain.as_deref(), Ok("1"), "{what}: plaintext login");
        } else {
            let e = plain.expect_err(what);
            assert!(e.contains("requires TLS"), "{what}: {e}");
        }
    }

    // --require-tls without a certificate cannot be honoured: a start-up error.
    let out = run_with_timeout(
        Command::new(shoal_bin())
            .args(["coordinator", "--listen", "127.0.0.1:0", "--require-tls"])
            .arg("--data-dir")
            .arg(dir.path().join("none")),
        None,
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("--require-tls needs --tls-cert"),
        "{}",
        stderr_of(&out)
    );
}

/// `statement_timeout` and cancel stop a statement whatever runs it (a cross join of table
/// functions, in the simple and the extended protocol), the session goes on, the setting
/// parses and shows as PostgreSQL's; an array too large to build is refused up front (54000).
async fn statement_timeout(target: &PsqlTarget, shoal: bool) {
    let client = client_of(target).await;
    let runaway = "SELECT count(*) FROM generate_series(1, 200000) a(x), \
                   generate_series(1, 200000) b(y) WHERE x + y = -1";
    exec(&client, "SET statement_timeout = '1s'").await;
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "1s");
    let started = std::time::Instant::now();
    refused(&client, runaway, "57014", "statement timeout").await;
    let e = client
        .query(runaway, &[])
        .await
        .expect_err("the timeout stops it (extended)");
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{}", err_text(&e));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "two 1 s timeouts took {:?}",
        started.elapsed()
    );
    assert_eq!(scalar(&client, "SELECT 40 + 2").await, "42");
    exec(&client, "SET statement_timeout = 60000").await;
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "1min");
    exec(&client, "RESET statement_timeout").await;
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "0");
    for bad in ["'abc'", "'10x'", "-1"] {
        let set = format!("SET statement_timeout = {bad}");
        refused(&client, &set, "22023", "statement_timeout").await;
    }
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "0");
    // SET LOCAL: for the rest of the transaction only.
    exec(&client, "BEGIN").await;
    exec(&client, "SET LOCAL statement_timeout = '1s'").await;
    refused(&client, runaway, "57014", "statement timeout").await;
    exec(&client, "ROLLBACK").await;
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "0");

    // Cancel, with no timeout set.
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    refused(&client, runaway, "57014", "canceling statement").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    canceller.await.expect("task").expect("cancel request");

    let too_large = if shoal {
        "SELECT count(*) FROM unnest(range(1, 500000000))"
    } else {
        "SELECT cardinality(array_fill(1, ARRAY[500000000]))"
    };
    let max_array = "array size exceeds the maximum allowed (134217727)";
    refused(&client, too_large, "54000", max_array).await;
    for too_long in [
        "SELECT length(repeat('x', 2000000000))",
        "SELECT length(lpad('x', 2000000000))",
        "SELECT length(rpad('x', 2000000000, 'yz'))",
    ] {
        refused(&client, too_long, "54000", "requested length too large").await;
    }
    assert_eq!(scalar(&client, "SELECT repeat('ab', 3)").await, "ababab");
    assert_eq!(scalar(&client, "SELECT lpad('x', 3, '-')").await, "--x");
    if shoal {
        let repeated = "SELECT cardinality(array_repeat(1, 1000000000))";
        refused(&client, repeated, "54000", max_array).await;
        for (sql, expected) in [
            ("SELECT cardinality(array_repeat('a', 1000))", "1000"),
            ("SELECT count(*) FROM unnest(range(1, 500001))", "500000"),
            ("SELECT cardinality(generate_series(1, 10, 3))", "4"),
        ] {
            assert_eq!(scalar(&client, sql).await, expected, "{sql}");
        }
    }
}

on_shoal_and_postgresql!(
    statement_timeout_and_cancel_stop_any_statement,
    statement_timeout_on_postgresql,
    1,
    120,
    statement_timeout
);

/// `shoal --log-format json dev --metrics-listen ADDR`: every log line is a JSON object with a
/// level and a message, and the dev cluster serves `/metrics` (its workers live, the frontend
/// counters there).
#[test]
fn dev_serves_metrics_and_logs_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics) = (shoal_e2e::free_port(), shoal_e2e::free_port());
    let log = dir.path().join("log");
    let mut child = Command::new(shoal_bin())
        .args(["--log-format", "json", "dev", "--workers", "2", "--port"])
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start shoal dev");
    let scrape = || -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Some(body) = scrape().filter(|b| b.contains("\nshoal_nodes_live 2\n")) {
            break body;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "shoal dev exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no /metrics with two live workers: {:?}",
            scrape()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        body.contains("# TYPE shoal_statements_total counter"),
        "{body}"
    );
    assert!(body.contains("shoal_connections 0"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(value.get("level").is_some(), "no level: {line}");
        assert!(
            value.pointer("/fields/message").is_some(),
            "no message: {line}"
        );
        lines += 1;
    }
    assert!(lines >= 3, "only {lines} log lines:\n{text}");
}

/// `add_node` refuses a worker that takes calls without the cluster's token (it would serve
/// anyone), changing nothing. (TLS material a worker cannot use: `node_tls.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_refuse_what_they_cannot_secure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(1).await;
    let client = cluster.client().await;
    let port = shoal_e2e::free_port();
    let mut open = Command::new(shoal_bin())
        .args(["worker", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("open-worker"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a worker without a token");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = client
        .simple_query(&format!("SELECT add_node('127.0.0.1', {port})"))
        .await
        .expect_err("a worker without the token");
    let _ = open.kill();
    let _ = open.wait();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{}", err_text(&e));
    assert!(
        err_text(&e).contains("accepts calls without the cluster token"),
        "{}",
        err_text(&e)
    );
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM shoal.nodes").await,
        "1"
    );
}
