//! Scaling a live cluster through psql, as a user's runbook does it: 2 workers, 2 more added
//! and `citus_rebalance_start()`, one drained and removed — with a writer and a reader running
//! the whole time. Every read must see exactly a committed prefix of the writes (count and sum
//! match), no write may fail, be lost or be duplicated. Also: the errors and notices of the
//! contract, `remove_node(..., force => true)` of a dead node, and `rebalance_stop()`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_e2e::{
    err_text, exec, lines, require_tool, scalar, sqlstate, stderr_of, stdout_of, within, Cluster,
};
use tokio_postgres::Client;

/// Rows per INSERT of the writer; ids are consecutive from 1, so a committed prefix of n
/// rows has sum n(n+1)/2.
const BATCH: u64 = 50;
const INITIAL_ROWS: u64 = 20_000;

fn prefix_sum(n: u64) -> u64 {
    n * (n + 1) / 2
}

fn insert_sql(first: u64, n: u64) -> String {
    let values: Vec<String> = (first..first + n)
        .map(|id| format!("({id}, {}, 'k{}', {}.5)", id % 97, id % 4, id))
        .collect();
    format!("INSERT INTO events VALUES {}", values.join(", "))
}

async fn create_tables(client: &Client) {
    exec(
        client,
        "CREATE TABLE events (id bigint, device_id integer, kind text, value double precision)",
    )
    .await;
    exec(
        client,
        "SELECT create_distributed_table('events', 'id', shard_count => 8)",
    )
    .await;
    exec(client, "CREATE TABLE kinds (kind text, label text)").await;
    exec(
        client,
        "INSERT INTO kinds VALUES ('k0','zero'),('k1','one'),('k2','two'),('k3','three')",
    )
    .await;
    exec(client, "SELECT create_reference_table('kinds')").await;
    let mut next = 1;
    while next <= INITIAL_ROWS {
        exec(client, &insert_sql(next, 1000)).await;
        next += 1000;
    }
}

async fn count_sum(client: &Client) -> Result<(u64, u64), tokio_postgres::Error> {
    let rows =
        shoal_e2e::query_lines(client, "SELECT count(*), coalesce(sum(id), 0) FROM events").await?;
    let line = rows.first().cloned().unwrap_or_default();
    let (c, s) = line.split_once('|').unwrap_or(("0", "0"));
    Ok((c.parse().unwrap_or(u64::MAX), s.parse().unwrap_or(u64::MAX)))
}

/// A writer and a reader that run until stopped, recording every failure.
struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    writer: tokio::task::JoinHandle<Vec<String>>,
    reader: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    async fn start(cluster: &Cluster, already: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(already));
        let reads = Arc::new(AtomicU64::new(0));
        let wclient = cluster.client().await;
        let rclient = cluster.client().await;
        let writer = {
            let stop = Arc::clone(&stop);
            let committed = Arc::clone(&committed);
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let first = committed.load(Ordering::SeqCst) + 1;
                    match wclient.simple_query(&insert_sql(first, BATCH)).await {
                        Ok(_) => {
                            committed.fetch_add(BATCH, Ordering::SeqCst);
                        }
                        Err(e) => {
                            errors.push(format!("INSERT of ids {first}..: {}", err_text(&e)));
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                errors
            })
        };
        let reader = {
            let stop = Arc::clone(&stop);
            let committed = Arc::clone(&committed);
            let reads = Arc::clone(&reads);
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::SeqCst) && errors.len() < 5 {
                    let before = committed.load(Ordering::SeqCst);
                    match count_sum(&rclient).await {
                        Ok((n, s)) => {
                            let after = committed.load(Ordering::SeqCst);
                            // The writer may have committed one more batch than it counted yet.
                            if n < before || n > after + BATCH || s != prefix_sum(n) {
                                errors.push(format!(
                                    "read count={n} sum={s}; committed between {before} and {after} (sum for {n} would be {})",
                                    prefix_sum(n)
                                ));
                            }
                            reads.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => errors.push(format!("SELECT failed: {}", err_text(&e))),
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                errors
            })
        };
        Load {
            stop,
            committed,
            reads,
            writer,
            reader,
        }
    }

    /// Stops both, asserts that neither saw a failure, and returns the committed row count.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let werr = self.writer.await.expect("writer task");
        let rerr = self.reader.await.expect("reader task");
        assert!(werr.is_empty(), "writer failed: {werr:?}");
        assert!(rerr.is_empty(), "reader saw wrong answers: {rerr:?}");
        let reads = self.reads.load(Ordering::SeqCst);
        assert!(reads > 10, "the reader ran only {reads} queries");
        self.committed.load(Ordering::SeqCst)
    }
}

/// psql in a blocking thread (the reader and writer keep running on the runtime); returns
/// (success, stdout, stderr).
async fn psql(cluster: &Cluster, sql: &str) -> (bool, String, String) {
    let target = cluster.psql_target();
    let sql = sql.to_string();
    tokio::task::spawn_blocking(move || {
        let out = target.run(&sql);
        (out.status.success(), stdout_of(&out), stderr_of(&out))
    })
    .await
    .expect("psql thread")
}

async fn psql_ok(cluster: &Cluster, sql: &str) -> (String, String) {
    let (ok, out, err) = psql(cluster, sql).await;
    assert!(
        ok,
        "psql failed for {sql}:\n{err}\n{}",
        cluster.log_tails(40)
    );
    (out, err)
}

/// Placements per node port of `events`.
async fn placements_by_port(client: &Client) -> Vec<String> {
    lines(
        client,
        "SELECT port, count(*) FROM shoal.shards WHERE table_name = 'events' GROUP BY port ORDER BY port",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_scale_out_then_drain_and_remove_under_load() {
    if !require_tool("psql") {
        return;
    }
    let cluster = Cluster::start_with(2, 2).await;
    let client = cluster.client().await;
    create_tables(&client).await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.retry_backoff_ms', '200')",
    )
    .await;
    let load = Load::start(&cluster, INITIAL_ROWS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Scale out: two more workers, then the Citus runbook.
    let (p2, p3) = (cluster.worker_port(2), cluster.worker_port(3));
    psql_ok(
        &cluster,
        &format!("SELECT citus_add_node('127.0.0.1', {p2})"),
    )
    .await;
    psql_ok(
        &cluster,
        &format!("SELECT citus_add_node('127.0.0.1', {p3})"),
    )
    .await;
    let (out, err) = psql_ok(&cluster, "SELECT citus_rebalance_start()").await;
    assert!(
        err.contains("Scheduled") && err.contains("moves as job"),
        "notice: {err}"
    );
    let job_id: i64 = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("job id: {out}"));
    let (status, _) = psql_ok(&cluster, "SELECT * FROM citus_rebalance_status()").await;
    assert!(
        status.starts_with(&format!("{job_id}|")),
        "status: {status}"
    );
    psql_ok(&cluster, "SELECT citus_rebalance_wait()").await;
    let (status, _) = psql_ok(
        &cluster,
        "SELECT state, job_type, progress, bytes_total > 0, bytes_done = bytes_total, eta_seconds FROM rebalance_status()",
    )
    .await;
    assert_eq!(
        status.trim(),
        "finished|rebalance|1|t|t|0",
        "status: {status}"
    );
    let (details, _) = psql_ok(&cluster, "SELECT details FROM citus_rebalance_status()").await;
    assert!(
        details
            .trim()
            .starts_with("{\"tasks\": [], \"task_state_counts\": {\"done\": "),
        "details: {details}"
    );
    let by_port = placements_by_port(&client).await;
    assert_eq!(
        by_port.len(),
        4,
        "every worker holds events shards: {by_port:?}"
    );
    for line in &by_port {
        assert!(
            line.ends_with("|2"),
            "8 shards over 4 workers, 2 each: {by_port:?}"
        );
    }
    let refs = scalar(
        &client,
        "SELECT count(DISTINCT port) FROM shoal.shards WHERE table_name = 'kinds'",
    )
    .await;
    assert_eq!(
        refs, "4",
        "the reference table was copied to the new workers"
    );

    // Scale in: drain worker 1, then remove it.
    let p1 = cluster.worker_port(1);
    psql_ok(
        &cluster,
        &format!("SELECT citus_drain_node('127.0.0.1', {p1})"),
    )
    .await;
    let left = scalar(
        &client,
        &format!("SELECT count(*) FROM shoal.shards WHERE table_name = 'events' AND port = {p1}"),
    )
    .await;
    assert_eq!(left, "0", "no events shard is left on the drained node");
    psql_ok(
        &cluster,
        &format!("SELECT citus_remove_node('127.0.0.1', {p1})"),
    )
    .await;
    let (left, _) = psql_ok(
        &cluster,
        &format!("SELECT * FROM citus_shard_placement WHERE nodeport = {p1}"),
    )
    .await;
    assert_eq!(left.trim(), "", "no placement is left on the removed node");
    let nodes = scalar(
        &client,
        "SELECT count(*) FROM citus_get_active_worker_nodes()",
    )
    .await;
    assert_eq!(nodes, "3");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed = load.finish().await;
    let (n, s) = count_sum(&client).await.expect("final count");
    assert_eq!(
        (n, s),
        (committed, prefix_sum(committed)),
        "every committed row exactly once"
    );
    let joined = scalar(
        &client,
        "SELECT count(*) FROM events e JOIN kinds k ON e.kind = k.kind",
    )
    .await;
    assert_eq!(joined, committed.to_string());
    let jobs = lines(
        &client,
        "SELECT job_type, state, tasks_total = tasks_done FROM shoal.jobs ORDER BY job_id",
    )
    .await;
    assert_eq!(jobs, vec!["rebalance|finished|t", "drain|finished|t"]);
    // A restart does not bring the removed worker back, though it is still a --worker flag.
    drop(client);
    let mut cluster = cluster;
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    let nodes = scalar(&client, "SELECT count(*) FROM shoal.nodes").await;
    assert_eq!(nodes, "3", "the removed node stays removed");
    let (n, s) = count_sum(&client).await.expect("count after restart");
    assert_eq!((n, s), (committed, prefix_sum(committed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_notices_of_the_contract() {
    if !require_tool("psql") {
        return;
    }
    let cluster = Cluster::start_with(2, 1).await;
    let client = cluster.client().await;
    create_tables(&client).await;
    let expect_err = |sql: &'static str, code: &'static str, text: &'static str| {
        let client = &client;
        async move {
            let e = client
                .simple_query(sql)
                .await
                .err()
                .unwrap_or_else(|| panic!("{sql} should fail"));
            assert_eq!(
                sqlstate(&e).as_deref(),
                Some(code),
                "{sql}: {}",
                err_text(&e)
            );
            assert!(err_text(&e).contains(text), "{sql}: {}", err_text(&e));
        }
    };
    // A balanced cluster: nothing to do.
    let (out, err) = psql_ok(&cluster, "SELECT rebalance_start()").await;
    assert!(err.contains("No moves available for rebalancing"), "{err}");
    assert_eq!(out.trim(), "", "NULL job id");
    expect_err(
        "SELECT rebalance_stop()",
        "55000",
        "no ongoing rebalance that can be stopped",
    )
    .await;
    let (_, err) = psql_ok(&cluster, "SELECT rebalance_wait()").await;
    assert!(
        err.contains("no ongoing rebalance that can be waited on"),
        "{err}"
    );
    expect_err(
        "SELECT drain_node('nohost', 7400)",
        "22023",
        "node \"nohost:7400\" does not exist",
    )
    .await;
    expect_err(
        "SELECT remove_node('nohost', 7400)",
        "22023",
        "node \"nohost:7400\" does not exist",
    )
    .await;
    let p0 = cluster.worker_port(0);
    let shard = scalar(
        &client,
        &format!(
            "SELECT min(shard_id) FROM shoal.shards WHERE table_name = 'events' AND port = {p0}"
        ),
    )
    .await;
    let e = client
        .simple_query(&format!("SELECT remove_node('127.0.0.1', {p0})"))
        .await
        .expect_err("remove_node of a node with placements");
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"));
    let text = err_text(&e);
    assert!(
        text.contains("because it holds") && text.contains("drain_node('127.0.0.1',"),
        "{text}"
    );
    let e = client
        .simple_query(&format!("SELECT move_shard({shard}, 'nohost', 7400)"))
        .await
        .expect_err("move to a non-existing node");
    assert!(
        err_text(&e).contains("Moving shards to a non-existing node is not supported"),
        "{}",
        err_text(&e)
    );
    let (_, err) = psql_ok(
        &cluster,
        &format!("SELECT move_shard({shard}, '127.0.0.1', {p0})"),
    )
    .await;
    assert!(
        err.contains(&format!("shard is already present on node 127.0.0.1:{p0}")),
        "{err}"
    );
    // A third node that should not have shards is no target.
    let p2 = cluster.worker_port(2);
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p2})")).await;
    exec(
        &client,
        &format!("SELECT set_node_property('127.0.0.1', {p2}, 'should_have_shards', false)"),
    )
    .await;
    let e = client
        .simple_query(&format!("SELECT move_shard({shard}, '127.0.0.1', {p2})"))
        .await
        .expect_err("move to a node that should not have shards");
    assert!(
        err_text(&e)
            .contains("Moving shards to a node that shouldn't have a shard is not supported"),
        "{}",
        err_text(&e)
    );
    // The dry run names the moves and changes nothing.
    exec(
        &client,
        &format!("SELECT set_node_property('127.0.0.1', {p2}, 'should_have_shards', true)"),
    )
    .await;
    let plan = lines(&client, "SELECT table_name, target_port FROM rebalance_plan(rebalance_strategy => 'by_shard_count')").await;
    assert!(
        !plan.is_empty() && plan.iter().all(|l| l.ends_with(&format!("|{p2}"))),
        "plan: {plan:?}"
    );
    assert!(
        plan.iter().any(|l| l.starts_with("events|")),
        "plan: {plan:?}"
    );
    let still = scalar(
        &client,
        &format!("SELECT count(*) FROM shoal.shards WHERE port = {p2} AND table_name = 'events'"),
    )
    .await;
    assert_eq!(still, "0", "rebalance_plan moved nothing");
    // A slow rebalance is running: a second one is refused, stop rolls back cleanly.
    let (out, _) = psql_ok(
        &cluster,
        "SELECT rebalance_start(rebalance_strategy => 'by_shard_count', max_bandwidth_mb => 0.005)",
    )
    .await;
    let job: i64 = out.trim().parse().expect("job id");
    let e = client
        .simple_query("SELECT rebalance_start()")
        .await
        .expect_err("second rebalance");
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"));
    assert!(
        err_text(&e).contains(&format!("A rebalance is already running as job {job}")),
        "{}",
        err_text(&e)
    );
    assert!(
        err_text(&e).contains("rebalance_status()"),
        "hint: {}",
        err_text(&e)
    );
    // A drain asked for while the job runs waits behind it as a job of its own.
    let p1 = cluster.worker_port(1);
    let takes = |port: u16| {
        let client = &client;
        async move {
            scalar(
                client,
                &format!(
                    "SELECT CASE WHEN should_have_shards THEN 'yes' ELSE 'no' END FROM shoal.nodes \
                     WHERE port = {port}"
                ),
            )
            .await
        }
    };
    let (out, notices) = psql_ok(
        &cluster,
        &format!("SELECT drain_node('127.0.0.1', {p1}, wait => false)"),
    )
    .await;
    let drain_job: i64 = out.trim().parse().expect("drain job id");
    assert!(drain_job > job, "{out}");
    assert!(
        notices.contains(&format!(
            "The drain waits for job {job} to end, as job {drain_job}"
        )),
        "{notices}"
    );
    assert_eq!(takes(p1).await, "no");
    // Stop it while a move runs (moves start at once; at 5 KB/s each takes seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(
        &client,
        &format!("SELECT count(*) FROM shoal.tasks WHERE job_id = {job} AND state = 'running'"),
    )
    .await
        == "0"
    {
        assert!(Instant::now() < deadline, "no move of job {job} started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // rebalance_stop stops the queued drain too, so it never starts.
    exec(&client, "SELECT rebalance_stop()").await;
    let states = lines(
        &client,
        &format!(
            "SELECT state FROM shoal.jobs WHERE job_id IN ({job}, {drain_job}) ORDER BY job_id"
        ),
    )
    .await;
    assert_eq!(states, vec!["cancelled", "cancelled"]);
    let state = scalar(&client, "SELECT state FROM rebalance_status()").await;
    assert_eq!(state, "cancelled");
    let (n, s) = count_sum(&client).await.expect("count");
    assert_eq!((n, s), (INITIAL_ROWS, prefix_sum(INITIAL_ROWS)));
    let dup = scalar(&client, "SELECT count(*) FROM (SELECT shard_id FROM shoal.shards WHERE table_name = 'events' GROUP BY shard_id HAVING count(*) <> 1) d").await;
    assert_eq!(dup, "0", "exactly one placement per shard after the stop");
    // A drain refused (nowhere to go: the other nodes take no shards) changes nothing.
    exec(
        &client,
        &format!("SELECT set_node_property('127.0.0.1', {p2}, 'should_have_shards', false)"),
    )
    .await;
    let p0 = cluster.worker_port(0);
    let e = client
        .simple_query(&format!("SELECT drain_node('127.0.0.1', {p0})"))
        .await
        .expect_err("a drain with nowhere to go");
    assert!(
        err_text(&e).contains("number of nodes with should_have_shards=true (0)"),
        "{}",
        err_text(&e)
    );
    assert_eq!(
        takes(p0).await,
        "yes",
        "a refused drain left the node draining"
    );
    let e = client
        .simple_query("SELECT job_wait(999999)")
        .await
        .expect_err("unknown job");
    assert!(
        err_text(&e).contains("no job found for job with jobid: 999999"),
        "{}",
        err_text(&e)
    );
}

/// `r2` (replication factor 2) and `r1` (one placement per shard), 6 shards and 600 rows each.
async fn create_r1_r2(client: &Client) {
    exec(client, "CREATE TABLE r2 (id bigint, v text)").await;
    exec(
        client,
        "SELECT create_distributed_table('r2', 'id', shard_count => 6, replication_factor => 2)",
    )
    .await;
    exec(client, "CREATE TABLE r1 (id bigint, v text)").await;
    exec(
        client,
        "SELECT create_distributed_table('r1', 'id', shard_count => 6, colocate_with => 'none')",
    )
    .await;
    let values: Vec<String> = (1..=600).map(|i| format!("({i}, 'v{i}')")).collect();
    for t in ["r1", "r2"] {
        exec(
            client,
            &format!("INSERT INTO {t} VALUES {}", values.join(",")),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_remove_of_a_dead_worker() {
    let mut cluster = Cluster::start_with(3, 0).await;
    let client = cluster.client().await;
    create_r1_r2(&client).await;
    let p2 = cluster.worker_port(2);
    let on_dead = scalar(
        &client,
        &format!("SELECT count(*) FROM shoal.shards WHERE table_name = 'r1' AND port = {p2}"),
    )
    .await;
    assert_ne!(on_dead, "0");
    cluster.kill_worker(2);
    let msgs = client
        .simple_query(&format!(
            "SELECT remove_node('127.0.0.1', {p2}, force => true)"
        ))
        .await
        .unwrap_or_else(|e| panic!("force remove: {}", err_text(&e)));
    drop(msgs);
    // Replicated shards keep working; the others are lost, and say so.
    assert_eq!(scalar(&client, "SELECT count(*) FROM r2").await, "600");
    let lost = scalar(
        &client,
        "SELECT count(*) FROM shoal.shards WHERE table_name = 'r1' AND state = 'lost'",
    )
    .await;
    assert_eq!(lost, on_dead);
    let e = client
        .simple_query("SELECT count(*) FROM r1")
        .await
        .expect_err("query on a lost shard");
    assert!(err_text(&e).contains("is lost"), "{}", err_text(&e));
    // The next rebalance re-creates the missing replicas of r2 on the two live workers.
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.retry_backoff_ms', '200')",
    )
    .await;
    let msgs = client
        .simple_query("SELECT rebalance_start()")
        .await
        .expect("rebalance");
    drop(msgs);
    exec(&client, "SELECT rebalance_wait()").await;
    let under = scalar(&client, "SELECT count(*) FROM (SELECT shard_id FROM shoal.shards WHERE table_name = 'r2' GROUP BY shard_id HAVING count(*) < 2) d").await;
    assert_eq!(under, "0", "every r2 shard has 2 replicas again");
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(id) FROM r2").await,
        "600|180300"
    );
}

/// A worker that does not answer the first health check of a job's planning (as one killed
/// and started again between two heartbeats does: still live in the catalog, planned as a
/// target, not yet listening) is asked again; the drain goes ahead instead of failing 08006.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_waits_for_a_worker_answering_late() {
    let mut cluster = Cluster::start_with(3, 0).await;
    cluster.set_coordinator_env(&[("SHOAL_FAILPOINTS", "job_health_check_fails_once")]);
    cluster.restart_coordinator_any().await;
    let client = cluster.client().await;
    create_r1_r2(&client).await;
    let before = scalar(&client, "SELECT count(*), sum(id) FROM r1").await;
    let p2 = cluster.worker_port(2);
    client
        .simple_query(&format!("SELECT drain_node('127.0.0.1', {p2})"))
        .await
        .unwrap_or_else(|e| panic!("drain: {}", err_text(&e)));
    let left = scalar(
        &client,
        &format!("SELECT count(*) FROM shoal.shards WHERE port = {p2}"),
    )
    .await;
    assert_eq!(left, "0", "the drained worker holds no placement");
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(id) FROM r1").await,
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rebalance_starts_when_a_node_is_added() {
    let cluster = Cluster::start_with(1, 1).await;
    let client = cluster.client().await;
    create_tables(&client).await;
    exec(
        &client,
        "SELECT set_cluster_setting('auto_rebalance', 'on')",
    )
    .await;
    let p1 = cluster.worker_port(1);
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p1})")).await;
    let job = scalar(&client, "SELECT job_type FROM rebalance_status()").await;
    assert_eq!(job, "rebalance", "add_node started a rebalance");
    exec(&client, "SELECT rebalance_wait()").await;
    let by_port = placements_by_port(&client).await;
    assert_eq!(
        by_port.len(),
        2,
        "both workers hold events shards: {by_port:?}"
    );
    let (n, s) = count_sum(&client).await.expect("count");
    assert_eq!((n, s), (INITIAL_ROWS, prefix_sum(INITIAL_ROWS)));
    // Idempotent add_node of a known node starts nothing new.
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p1})")).await;
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM shoal.jobs").await,
        "1"
    );
}

/// `(id, payload)` rows `first..first + n` for a `blobs (id bigint, payload text)` table; the
/// payload is 192 hex digits of a pseudo-random stream, which Parquet cannot shrink much.
fn blob_rows(first: u64, n: u64) -> String {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ first;
    let rows: Vec<String> = (first..first + n)
        .map(|id| {
            let payload: String = (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            format!("({id}, '{payload}')")
        })
        .collect();
    rows.join(",")
}

/// `blobs (id bigint, payload text)` distributed over `shards` shards, with rows 1..=`rows`
/// of [`blob_rows`] in one INSERT.
async fn create_blobs(client: &Client, shards: u32, rows: u64) {
    exec(
        client,
        &format!(
            "CREATE TABLE blobs (id bigint, payload text);
             SELECT create_distributed_table('blobs', 'id', shard_count => {shards});"
        ),
    )
    .await;
    exec(
        client,
        &format!("INSERT INTO blobs VALUES {}", blob_rows(1, rows)),
    )
    .await;
}

/// Seconds a synchronous `move_shard` of `shard` to 127.0.0.1:`port` takes.
async fn timed_move_shard(client: &Client, shard: &str, port: u16) -> f64 {
    let t = Instant::now();
    exec(
        client,
        &format!("SELECT move_shard({shard}, '127.0.0.1', {port})"),
    )
    .await;
    t.elapsed().as_secs_f64()
}

/// `rebalance.yield_bandwidth_mb`: a move copies at full speed while no client statement runs,
/// and at the yield limit while one does (here 20 KB/s, so a shard of ~150 KB takes seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_yield_bandwidth_while_statements_run() {
    let cluster = Cluster::start_with(2, 0).await;
    let client = cluster.client().await;
    create_blobs(&client, 1, 1500).await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.yield_bandwidth_mb', '0.02')",
    )
    .await;
    let row = scalar(
        &client,
        "SELECT shard_id, bytes, port FROM shoal.shards WHERE table_name = 'blobs'",
    )
    .await;
    let (shard, bytes, holder) = match row.split('|').collect::<Vec<_>>()[..] {
        [shard, bytes, port] => (
            shard.to_string(),
            bytes.parse::<f64>().expect("bytes"),
            port.parse::<u16>().expect("port"),
        ),
        _ => panic!("shoal.shards row: {row}"),
    };
    let at_yield_rate = bytes / 20_000.0;
    assert!(at_yield_rate > 4.0, "the shard is only {bytes} bytes");
    let other = cluster
        .worker_ports()
        .into_iter()
        .find(|p| *p != holder)
        .expect("a second worker");

    // No statement for over a second (the catalog views above are not table statements).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle_move = timed_move_shard(&client, &shard, other).await;
    assert!(
        idle_move < at_yield_rate / 2.0,
        "with no statement running the move took {idle_move:.2} s ({bytes} bytes)"
    );

    // A reader running: the move back yields.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let rclient = cluster.client().await;
        tokio::spawn(async move {
            let mut counts = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                counts.push(scalar(&rclient, "SELECT count(*) FROM blobs").await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            counts
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy_move = timed_move_shard(&client, &shard, holder).await;
    stop.store(true, Ordering::SeqCst);
    let counts = reader.await.expect("reader task");
    assert!(
        busy_move >= at_yield_rate * 0.8,
        "with a reader running the move took {busy_move:.2} s, at 20 KB/s {bytes} bytes take {at_yield_rate:.2} s"
    );
    assert!(
        !counts.is_empty() && counts.iter().all(|c| c == "1500"),
        "reads during the move: {counts:?}"
    );
}

/// Waits (bounded) until the gauge `name` of `/metrics` satisfies `ok`; returns its value.
async fn wait_for_metric(cluster: &Cluster, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = cluster.metric(name);
        match value {
            Some(v) if ok(v) => return v,
            _ if Instant::now() > deadline => {
                panic!("{name} is {value:?}:\n{}", cluster.metrics())
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// `/metrics` counts statements, errors by SQLSTATE class and connections; placements and
/// bytes per node; finished moves, their write fences (a histogram) and bytes, and the
/// deferred deletes still to do: a move's source files go once no older query runs; a dropped table's
/// directories on a dead worker wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_moves_fences_and_pending_deletes() {
    let mut cluster = Cluster::start_with(2, 0).await;
    let client = cluster.client().await;
    create_tables(&client).await;
    assert_eq!(cluster.metric("shoal_nodes_live"), Some(2.0));
    assert_eq!(cluster.metric("shoal_move_tasks_done"), Some(0.0));
    assert_eq!(
        cluster.metric("shoal_move_write_fence_milliseconds_count"),
        Some(0.0)
    );

    let row = scalar(
        &client,
        "SELECT shard_id, port, bytes FROM shoal.shards WHERE table_name = 'events' ORDER BY shard_id LIMIT 1",
    )
    .await;
    let (shard, holder, bytes) = match row.split('|').collect::<Vec<_>>()[..] {
        [shard, port, bytes] => (
            shard.to_string(),
            port.parse::<u16>().expect("port"),
            bytes.parse::<f64>().expect("bytes"),
        ),
        _ => panic!("shoal.shards row: {row}"),
    };
    let other = cluster
        .worker_ports()
        .into_iter()
        .find(|p| *p != holder)
        .expect("a second worker");
    exec(
        &client,
        &format!("SELECT move_shard({shard}, '127.0.0.1', {other})"),
    )
    .await;
    assert_eq!(cluster.metric("shoal_move_tasks_done"), Some(1.0));
    // The bytes moved are the shard's files at the move: background compaction may have
    // merged them since they were listed above (then fewer bytes moved), so they are read
    // again from the placement the move made.
    let moved = scalar(
        &client,
        &format!("SELECT bytes FROM shoal.shards WHERE shard_id = {shard} AND port = {other}"),
    )
    .await
    .parse::<f64>()
    .expect("bytes");
    assert!(moved > 0.0 && moved <= bytes, "moved {moved} of {bytes}");
    assert_eq!(cluster.metric("shoal_move_bytes_done"), Some(moved));
    assert_eq!(
        cluster.metric("shoal_move_write_fence_milliseconds_count"),
        Some(1.0)
    );
    assert_eq!(
        cluster.metric("shoal_move_write_fence_milliseconds_bucket{le=\"+Inf\"}"),
        Some(1.0)
    );
    assert_eq!(
        cluster.metric("shoal_move_in_progress_bytes_total"),
        Some(0.0)
    );
    // Placements and bytes per node add up to the catalog's.
    let node = |port: u16| format!("{{node=\"127.0.0.1:{port}\"}}");
    for port in cluster.worker_ports() {
        let (shards, bytes) = match scalar(
            &client,
            &format!(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM shoal.shards WHERE port = {port}"
            ),
        )
        .await
        .split_once('|')
        {
            Some((s, b)) => (
                s.parse::<f64>().expect("count"),
                b.parse::<f64>().expect("bytes"),
            ),
            None => panic!("shoal.shards per port"),
        };
        assert_eq!(
            cluster.metric(&format!("shoal_node_shards{}", node(port))),
            Some(shards)
        );
        assert_eq!(
            cluster.metric(&format!("shoal_node_bytes{}", node(port))),
            Some(bytes)
        );
    }
    // The frontend: statements, errors by SQLSTATE class, open connections.
    let statements = cluster
        .metric("shoal_statements_total")
        .expect("statements");
    let undefined = cluster
        .metric("shoal_errors_total{class=\"42\"}")
        .unwrap_or(0.0);
    for _ in 0..3 {
        client
            .simple_query("SELECT * FROM no_such_table")
            .await
            .expect_err("an undefined table");
    }
    assert_eq!(
        cluster.metric("shoal_errors_total{class=\"42\"}"),
        Some(undefined + 3.0)
    );
    assert!(
        cluster
            .metric("shoal_statements_total")
            .expect("statements")
            >= statements + 3.0
    );
    let open = cluster.metric("shoal_connections").expect("connections");
    assert!(open >= 1.0, "{open} connections");
    let extra = cluster.client().await;
    assert_eq!(cluster.metric("shoal_connections"), Some(open + 1.0));
    drop(extra);
    wait_for_metric(&cluster, "shoal_connections", |n| n == open).await;
    // The source's files are deleted in the background after the move.
    wait_for_metric(&cluster, "shoal_cleanup_pending", |n| n == 0.0).await;

    // A dropped table's shard directories on a dead worker wait for it to come back.
    let on_worker0 = lines(
        &client,
        &format!(
            "SELECT shard_id FROM shoal.shards WHERE table_name = 'events' AND port = {}",
            cluster.worker_port(0)
        ),
    )
    .await;
    assert!(!on_worker0.is_empty(), "worker 0 holds events shards");
    let shard_dirs = |cluster: &Cluster| -> usize {
        let tables = std::fs::read_dir(cluster.worker_data_dir(0).join("shards"))
            .expect("shards dir")
            .flatten();
        tables
            .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
            .filter(|d| {
                on_worker0
                    .iter()
                    .any(|id| d.file_name().to_str() == Some(id))
            })
            .count()
    };
    assert_eq!(shard_dirs(&cluster), on_worker0.len());
    cluster.kill_worker(0);
    exec(&client, "DROP TABLE events").await;
    let pending = wait_for_metric(&cluster, "shoal_cleanup_pending", |n| n > 0.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster.metric("shoal_cleanup_pending"),
        Some(pending),
        "nothing can be deleted on a dead worker"
    );
    assert_eq!(shard_dirs(&cluster), on_worker0.len(), "still there");
    cluster.restart_worker(0).await;
    wait_for_metric(&cluster, "shoal_cleanup_pending", |n| n == 0.0).await;
    assert_eq!(shard_dirs(&cluster), 0, "deleted once the worker is back");
}

/// While one shard group of a table moves (for many seconds here: 3 KB/s), compaction keeps
/// merging the small files of the table's other shards, and leaves the moving one alone until
/// its move ends; every row is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_continues_beside_a_move() {
    let cluster = Cluster::start_with(2, 0).await;
    let client = cluster.client().await;
    create_blobs(&client, 2, 1000).await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '0.003')",
    )
    .await;
    let shards = lines(
        &client,
        "SELECT shard_id, port FROM shoal.shards WHERE table_name = 'blobs' ORDER BY shard_id",
    )
    .await;
    let (moving, holder) = match shards[0].split('|').collect::<Vec<_>>()[..] {
        [shard, port] => (shard.to_string(), port.parse::<u16>().expect("port")),
        _ => panic!("shoal.shards row: {}", shards[0]),
    };
    let still = shards[1].split('|').next().expect("shard id").to_string();
    let target = cluster
        .worker_ports()
        .into_iter()
        .find(|p| *p != holder)
        .expect("a second worker");
    let mover = {
        let client = cluster.client().await;
        let sql = format!("SELECT move_shard({moving}, '127.0.0.1', {target})");
        tokio::spawn(async move { exec(&client, &sql).await })
    };
    let running = "SELECT count(*) FROM shoal.tasks WHERE state = 'running'";
    within(30, "the move starts", async {
        while scalar(&client, running).await != "1" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // Small INSERTs: each leaves one small file in each shard.
    let mut next = 1001;
    for _ in 0..10 {
        exec(
            &client,
            &format!("INSERT INTO blobs VALUES {}", blob_rows(next, 40)),
        )
        .await;
        next += 40;
    }
    let files =
        |shard: &str| format!("SELECT file_count FROM shoal.shards WHERE shard_id = {shard}");
    let count = |v: String| v.parse::<u64>().expect("file count");
    assert!(count(scalar(&client, &files(&still)).await) >= 9);
    // Compaction runs every 10 s.
    within(40, "the other shard is compacted", async {
        while count(scalar(&client, &files(&still)).await) >= 9 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(
        scalar(&client, running).await,
        "1",
        "the move still runs (slow it down further if this machine is faster)"
    );
    assert!(
        count(scalar(&client, &files(&moving)).await) >= 9,
        "the moving shard is not compacted during its move"
    );
    within(120, "the move", mover).await.expect("move task");
    assert_eq!(
        scalar(&client, "SELECT count(*), sum(id) FROM blobs").await,
        format!("{}|{}", next - 1, (next - 1) * next / 2)
    );
}

/// A rebalance's moves land only on nodes that take shards when each move starts: a node
/// disallowed while the job runs gets none of the moves that had not started yet (they fail
/// and the job says so), and every row stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_do_not_land_on_a_node_disallowed_mid_job() {
    let cluster = Cluster::start_with(1, 1).await;
    let client = cluster.client().await;
    create_blobs(&client, 8, 400).await;
    for setting in [
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '0.003')",
        "SELECT set_cluster_setting('rebalance.retry_backoff_ms', '200')",
        "SELECT set_cluster_setting('rebalance.task_retries', '1')",
    ] {
        exec(&client, setting).await;
    }
    let p1 = cluster.worker_port(1);
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p1})")).await;
    let job = scalar(&client, "SELECT rebalance_start()").await;
    let running =
        format!("SELECT count(*) FROM shoal.tasks WHERE job_id = {job} AND state = 'running'");
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar(&client, &running).await == "0" {
        assert!(Instant::now() < deadline, "no move of job {job} started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    exec(
        &client,
        &format!("SELECT set_node_property('127.0.0.1', {p1}, 'should_have_shards', false)"),
    )
    .await;
    let waiting = lines(
        &client,
        &format!(
            "SELECT task_id FROM shoal.tasks WHERE job_id = {job} AND state IN ('runnable', 'blocked') ORDER BY task_id"
        ),
    )
    .await;
    assert!(!waiting.is_empty(), "the job has moves still to start");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let state = scalar(
            &client,
            &format!("SELECT state FROM shoal.jobs WHERE job_id = {job}"),
        )
        .await;
        if matches!(state.as_str(), "finished" | "failed" | "cancelled") {
            assert_eq!(
                state, "failed",
                "moves onto the disallowed node were refused"
            );
            break;
        }
        assert!(Instant::now() < deadline, "job {job} still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut refused = 0;
    for task in &waiting {
        let (state, message) = match lines(
            &client,
            &format!("SELECT state, message FROM shoal.tasks WHERE task_id = {task}"),
        )
        .await
        .first()
        .and_then(|l| {
            l.split_once('|')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        }) {
            Some(sm) => sm,
            None => panic!("task {task} is gone"),
        };
        assert_ne!(
            state, "done",
            "task {task} moved a shard onto the disallowed node"
        );
        // The first to start is refused; the job fails then, and the rest never start.
        if message.contains("no longer takes shards") {
            refused += 1;
        }
    }
    assert!(refused >= 1, "a waiting move was refused with the reason");
    let rows = scalar(&client, "SELECT count(*) FROM blobs").await;
    assert_eq!(rows, "400");
}

/// One look at `rebalance_status()`: when, progress, ETA, state.
struct StatusSample {
    at: Instant,
    progress: f64,
    eta: Option<f64>,
    state: String,
}

/// `rebalance_status()` tells the truth about a throttled job: its bytes move while a file
/// streams (not only at file boundaries), and after the first 20% its ETA is within 25% of
/// the time the job really took to end. Also, a session sitting in `rebalance_wait()` and one
/// polling the status are not clients' statements: the moves keep their full rate instead of
/// yielding (at a tenth of it here, the job would take minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_progress_and_eta_follow_a_throttled_job() {
    let cluster = Cluster::start_with(1, 1).await;
    let client = cluster.client().await;
    create_blobs(&client, 6, 24_000).await;
    const RATE_MB: f64 = 0.1;
    for setting in [
        format!("SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '{RATE_MB}')"),
        format!(
            "SELECT set_cluster_setting('rebalance.yield_bandwidth_mb', '{}')",
            RATE_MB / 10.0
        ),
    ] {
        exec(&client, &setting).await;
    }
    let p1 = cluster.worker_port(1);
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p1})")).await;
    // The INSERT above was a client's statement: the first move would yield for it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let job = scalar(&client, "SELECT rebalance_start()").await;
    let waiter = {
        let wclient = cluster.client().await;
        tokio::spawn(async move {
            exec(&wclient, "SELECT rebalance_wait()").await;
            Instant::now()
        })
    };
    let mut samples = Vec::new();
    let deadline = started + Duration::from_secs(120);
    loop {
        let row = scalar(
            &client,
            "SELECT progress, coalesce(eta_seconds, -1), state FROM rebalance_status()",
        )
        .await;
        let at = Instant::now();
        let sample = match row.split('|').collect::<Vec<_>>()[..] {
            [progress, eta, state] => StatusSample {
                at,
                progress: progress.parse().expect("progress"),
                eta: Some(eta.parse::<f64>().expect("eta")).filter(|e| *e >= 0.0),
                state: state.to_string(),
            },
            _ => panic!("rebalance_status(): {row}"),
        };
        // A job is `scheduled` until the scheduler starts its first task.
        let ended = !matches!(sample.state.as_str(), "scheduled" | "running");
        samples.push(sample);
        if ended {
            break;
        }
        assert!(Instant::now() < deadline, "job {job} still running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited_until = waiter.await.expect("rebalance_wait session");
    let last = samples.last().expect("a sample");
    assert_eq!(last.state, "finished", "job {job}");
    // The job ended between the last running sample and the first finished one.
    let end = samples[samples.len().saturating_sub(2)].at;
    assert!(waited_until >= end, "rebalance_wait() returned early");

    let bytes: f64 = scalar(&client, "SELECT bytes_done FROM rebalance_status()")
        .await
        .parse()
        .expect("bytes_done");
    let took = end.duration_since(started).as_secs_f64();
    let at_full_rate = bytes / (RATE_MB * 1e6);
    let trace: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "t={:.1} progress={:.3} eta={:?}",
                s.at.duration_since(started).as_secs_f64(),
                s.progress,
                s.eta.map(|e| (e * 10.0).round() / 10.0)
            )
        })
        .collect();
    println!("{bytes} bytes in {took:.1} s:\n{}", trace.join("\n"));
    assert!(
        at_full_rate > 6.0,
        "the job moved only {bytes} bytes ({at_full_rate:.1} s at the limit)"
    );
    assert!(
        took < at_full_rate * 1.5,
        "the job took {took:.1} s, at the full rate {at_full_rate:.1} s: waiting sessions made it yield"
    );

    // Progress moves while files stream: between 10% and 90% no two looks a second apart
    // see the same progress.
    let middle: Vec<&StatusSample> = samples
        .iter()
        .filter(|s| s.state == "running" && s.progress > 0.1 && s.progress < 0.9)
        .collect();
    for pair in middle.windows(6) {
        assert!(
            pair[5].progress > pair[0].progress,
            "progress stood still for a second:\n{}",
            trace.join("\n")
        );
    }
    // The ETA after the first 20%, while more than 2 s are left (closer to the end, a poll's
    // 0.2 s are a large part of what is left).
    let mut checked = 0;
    for s in samples.iter().filter(|s| s.state == "running") {
        let left = end.duration_since(s.at).as_secs_f64();
        if s.progress < 0.2 || left < 2.0 {
            continue;
        }
        let eta = s
            .eta
            .unwrap_or_else(|| panic!("no ETA at {:.0}%", s.progress * 100.0));
        assert!(
            (eta - left).abs() <= 0.25 * left,
            "ETA {eta:.1} s with {left:.1} s left:\n{}",
            trace.join("\n")
        );
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} samples checked:\n{}",
        trace.join("\n")
    );
    let rows = scalar(&client, "SELECT count(*) FROM blobs").await;
    assert_eq!(rows, "24000");
}

/// `rebalance_stop()` returns within a second even while a throttled file is in flight (it
/// used to wait for the file), the move rolls back, and the bytes it had copied are not
/// counted as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_stop_returns_at_once_and_discards_progress() {
    let cluster = Cluster::start_with(1, 1).await;
    let client = cluster.client().await;
    create_blobs(&client, 2, 8_000).await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '0.02')",
    )
    .await;
    let p1 = cluster.worker_port(1);
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p1})")).await;
    let job = scalar(&client, "SELECT rebalance_start()").await;
    // Until some bytes of the file in flight count as done.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done: u64 = scalar(&client, "SELECT bytes_done FROM rebalance_status()")
            .await
            .parse()
            .expect("bytes_done");
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "job {job} shows no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = Instant::now();
    exec(&client, "SELECT rebalance_stop()").await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "rebalance_stop() took {took:?}"
    );
    let status = scalar(
        &client,
        "SELECT state, bytes_done, progress FROM rebalance_status()",
    )
    .await;
    assert_eq!(status, "cancelled|0|0");
    let tasks = lines(
        &client,
        &format!("SELECT state, bytes_done FROM shoal.tasks WHERE job_id = {job}"),
    )
    .await;
    assert_eq!(tasks, vec!["cancelled|0".to_string()]);
    let placements = scalar(
        &client,
        &format!("SELECT count(*) FROM shoal.shards WHERE table_name = 'blobs' AND port = {p1}"),
    )
    .await;
    assert_eq!(placements, "0");
    let rows = scalar(&client, "SELECT count(*) FROM blobs").await;
    assert_eq!(rows, "8000");
}

/// Placements of `blobs` per worker port, in the order of `ports`.
async fn blob_placements(client: &Client, ports: &[u16]) -> Vec<u64> {
    let mut out = Vec::new();
    for port in ports {
        let n = scalar(
            client,
            &format!(
                "SELECT count(*) FROM shoal.shards WHERE table_name = 'blobs' AND port = {port}"
            ),
        )
        .await;
        out.push(n.parse().expect("count"));
    }
    out
}

/// Three workers drained from three sessions at once: the first drain runs, the second
/// waits behind it as a queued job and the third joins that one; moves of the first job
/// planned onto the nodes drained since go to the node left instead; every session gets
/// its answer, all three nodes end empty, and every row stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_drains_queue_into_one_job_and_all_nodes_end_empty() {
    let cluster = Cluster::start_with(4, 0).await;
    let client = cluster.client().await;
    // Three shards a worker: the first drain sends one to each other worker, one at a time.
    create_blobs(&client, 12, 8_000).await;
    // ~1.3 s a move: the next drains are asked for well before the first move ends.
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '0.05')",
    )
    .await;
    let ports = cluster.worker_ports();
    assert_eq!(blob_placements(&client, &ports).await, vec![3, 3, 3, 3]);
    let (w1, w2, w3) = (ports[0], ports[1], ports[2]);

    let first = {
        let c = cluster.client().await;
        tokio::spawn(async move {
            c.query_one(&format!("SELECT drain_node('127.0.0.1', {w1})"), &[])
                .await
                .map(|row| row.get::<_, i64>(0))
        })
    };
    let running = "SELECT job_id FROM shoal.jobs WHERE state = 'running'";
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_job = loop {
        if let Some(job) = lines(&client, running).await.first() {
            break job.clone();
        }
        assert!(Instant::now() < deadline, "the first drain did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Moves of the first job that have not started yet, onto the nodes drained next.
    let waiting_onto_drained = lines(
        &client,
        &format!(
            "SELECT task_id FROM shoal.tasks WHERE job_id = {first_job} AND state IN ('runnable', 'blocked') \
             AND (target LIKE '%:{w2}' OR target LIKE '%:{w3}')"
        ),
    )
    .await;
    assert!(
        !waiting_onto_drained.is_empty(),
        "no move of the first drain waits to go to a node drained next"
    );

    let (second, notices) = psql_ok(
        &cluster,
        &format!("SELECT drain_node('127.0.0.1', {w2}, wait => false)"),
    )
    .await;
    assert!(
        notices.contains(&format!("The drain waits for job {first_job} to end")),
        "notices: {notices}"
    );
    let (third, notices) = psql_ok(
        &cluster,
        &format!("SELECT drain_node('127.0.0.1', {w3}, wait => false)"),
    )
    .await;
    assert_eq!(
        third.trim(),
        second.trim(),
        "the third drain joins the queued one"
    );
    assert!(notices.contains("joins job"), "notices: {notices}");
    let queued = second.trim().to_string();
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT state, description FROM shoal.jobs WHERE job_id = {queued}")
        )
        .await,
        format!("scheduled|Drain nodes 127.0.0.1:{w2}, 127.0.0.1:{w3}")
    );
    // Another rebalance meanwhile is refused, as with any job running.
    let e = client
        .simple_query("SELECT rebalance_start()")
        .await
        .expect_err("a rebalance beside the drains");
    assert!(err_text(&e).contains("already running"), "{}", err_text(&e));

    let first_result = within(180, "the first drain session", first)
        .await
        .expect("first drain session");
    let first_result = first_result.unwrap_or_else(|e| panic!("first drain: {}", err_text(&e)));
    assert_eq!(first_result.to_string(), first_job);
    psql_ok(&cluster, &format!("SELECT job_wait({queued})")).await;
    let states = lines(
        &client,
        &format!(
            "SELECT state FROM shoal.jobs WHERE job_id IN ({first_job}, {queued}) ORDER BY job_id"
        ),
    )
    .await;
    assert_eq!(states, vec!["finished", "finished"]);
    assert_eq!(blob_placements(&client, &ports).await, vec![0, 0, 0, 12]);
    for task in &waiting_onto_drained {
        let row = scalar(
            &client,
            &format!("SELECT state, target, message FROM shoal.tasks WHERE task_id = {task}"),
        )
        .await;
        assert!(
            row.starts_with(&format!("done|127.0.0.1:{}|planned for", ports[3])),
            "task {task}: {row}"
        );
    }
    println!(
        "tasks of job {first_job}:\n{}",
        lines(
            &client,
            &format!("SELECT task_id, state, target, message FROM shoal.tasks WHERE job_id = {first_job}")
        )
        .await
        .join("\n")
    );
    let rows = scalar(&client, "SELECT count(*) FROM blobs").await;
    assert_eq!(rows, "8000");
}

/// Parquet files under a worker's `shards/` directory.
fn shard_files_in(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path, n: &mut usize) {
        let Ok(entries) = std::fs::read_dir(p) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("shards"), &mut n);
    n
}

/// `remove_node(..., force => true)` is for a node that is gone: on a running worker it is
/// refused (nothing changes) unless `drop_data => true` says its data may go, and
/// `remove_node_plan` lists beforehand what would be dropped — each placement with its rows
/// and bytes, and whether it is the shard's only copy. Dropped, the worker's files go too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_remove_of_a_live_worker_needs_drop_data() {
    let cluster = Cluster::start_with(3, 0).await;
    let client = cluster.client().await;
    create_r1_r2(&client).await;
    let p2 = cluster.worker_port(2);
    let plan = lines(
        &client,
        &format!(
            "SELECT table_name, count(*), sum(rows), bool_and(lost), bool_or(lost), min(other_placements) \
             FROM remove_node_plan('127.0.0.1', {p2}) GROUP BY table_name ORDER BY table_name"
        ),
    )
    .await;
    let expected_rows = |table: &str| {
        let client = &client;
        let table = table.to_string();
        async move {
            scalar(
                client,
                &format!(
                    "SELECT count(*) FROM shoal.shards WHERE table_name = '{table}' AND port = {p2}"
                ),
            )
            .await
        }
    };
    let (r1_shards, r2_shards) = (expected_rows("r1").await, expected_rows("r2").await);
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert!(
        plan[0].starts_with(&format!("r1|{r1_shards}|")) && plan[0].ends_with("|t|t|0"),
        "{plan:?}"
    );
    assert!(
        plan[1].starts_with(&format!("r2|{r2_shards}|")) && plan[1].ends_with("|f|f|1"),
        "{plan:?}"
    );
    let at_risk_rows: u64 = scalar(
        &client,
        &format!("SELECT sum(rows) FROM remove_node_plan('127.0.0.1', {p2}) WHERE lost"),
    )
    .await
    .parse()
    .expect("rows");
    assert!(at_risk_rows > 0);

    let e = client
        .simple_query(&format!(
            "SELECT remove_node('127.0.0.1', {p2}, force => true)"
        ))
        .await
        .expect_err("force on a running worker");
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{}", err_text(&e));
    assert!(
        err_text(&e).contains(&format!("node 127.0.0.1:{p2} is running")),
        "{}",
        err_text(&e)
    );
    assert!(
        err_text(&e).contains("drop_data => true"),
        "{}",
        err_text(&e)
    );
    assert_eq!(
        expected_rows("r1").await,
        r1_shards,
        "a refused remove changed nothing"
    );
    assert_eq!(scalar(&client, "SELECT count(*) FROM r1").await, "600");
    assert!(shard_files_in(cluster.worker_data_dir(2)) > 0);

    let (_, notices) = psql_ok(
        &cluster,
        &format!("SELECT remove_node('127.0.0.1', {p2}, force => true, drop_data => true)"),
    )
    .await;
    assert!(notices.contains("lost their only placement"), "{notices}");
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT count(*) FROM shoal.nodes WHERE port = {p2}")
        )
        .await,
        "0"
    );
    assert_eq!(scalar(&client, "SELECT count(*) FROM r2").await, "600");
    assert_eq!(
        shard_files_in(cluster.worker_data_dir(2)),
        0,
        "its files were dropped"
    );
    let e = client
        .simple_query(&format!(
            "SELECT * FROM remove_node_plan('127.0.0.1', {p2})"
        ))
        .await
        .expect_err("plan for a removed node");
    assert!(err_text(&e).contains("does not exist"), "{}", err_text(&e));
}

/// Waits (bounded) until `shoal.nodes` says the worker at `port` is live or not; returns how
/// long that took.
async fn wait_node_live(client: &Client, port: u16, live: bool, limit: Duration) -> Duration {
    let t = Instant::now();
    let want = if live { "t" } else { "f" };
    loop {
        let now = scalar(
            client,
            &format!("SELECT is_live FROM shoal.nodes WHERE port = {port}"),
        )
        .await;
        if now == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "worker {port} still is_live={now} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With a worker down, draining another one moves that one's shard groups and is not refused
/// for the down worker's groups (which have no live placement but are none of the drain's
/// business); the down worker, started again, is live within a heartbeat or two of answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_beside_a_down_worker_and_its_quick_return() {
    let mut cluster = Cluster::start_with(3, 0).await;
    let client = cluster.client().await;
    create_blobs(&client, 6, 600).await;
    let ports = cluster.worker_ports();
    assert_eq!(blob_placements(&client, &ports).await, vec![2, 2, 2]);
    cluster.kill_worker(2);
    wait_node_live(&client, ports[2], false, Duration::from_secs(30)).await;

    psql_ok(
        &cluster,
        &format!("SELECT drain_node('127.0.0.1', {})", ports[1]),
    )
    .await;
    assert_eq!(blob_placements(&client, &ports).await, vec![4, 0, 2]);

    cluster.restart_worker(2).await;
    let took = wait_node_live(&client, ports[2], true, Duration::from_secs(30)).await;
    assert!(
        took < Duration::from_secs(5),
        "the restarted worker was live only after {took:?}"
    );
    assert_eq!(scalar(&client, "SELECT count(*) FROM blobs").await, "600");
}

/// `rebalance_simulate`: "what if I add two workers and drain a third" answered without
/// touching anything — each node's shards and bytes before and after, the moves, and the time
/// they would take at the rate the last moves reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_simulate_answers_what_if_without_acting() {
    if !require_tool("psql") {
        return;
    }
    let cluster = Cluster::start_with(3, 0).await;
    let client = cluster.client().await;
    create_blobs(&client, 6, 1200).await;
    let ports = cluster.worker_ports();
    let placements = blob_placements(&client, &ports).await;
    assert_eq!(placements, vec![2, 2, 2]);
    let w3 = ports[2];
    let query = format!(
        "SELECT node, shards_before, shards_after, bytes_before, bytes_after, moves_in, moves_out \
         FROM rebalance_simulate(add_nodes => 2, drain => '127.0.0.1:{w3}', rebalance_strategy => 'by_shard_count') ORDER BY node"
    );
    let (out, notices) = psql_ok(&cluster, &query).await;
    assert!(
        notices.contains("no move has been measured yet"),
        "{notices}"
    );
    let rows: Vec<Vec<i64>> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split('|')
                .skip(1)
                .map(|v| v.parse().expect("number"))
                .collect()
        })
        .collect();
    let names: Vec<&str> = out.lines().filter_map(|l| l.split('|').next()).collect();
    assert_eq!(names.len(), 5, "{out}");
    assert_eq!(names[3..], ["new-1", "new-2"], "{out}");
    let sum = |i: usize| rows.iter().map(|r| r[i]).sum::<i64>();
    assert_eq!((sum(0), sum(1)), (6, 6), "shards before and after:\n{out}");
    assert_eq!(sum(2), sum(3), "bytes before and after:\n{out}");
    assert_eq!(sum(4), sum(5), "moves in and out:\n{out}");
    let drained = names
        .iter()
        .position(|n| *n == format!("127.0.0.1:{w3}"))
        .expect("the drained node");
    assert_eq!(rows[drained][1], 0, "drained:\n{out}");
    assert!(
        rows[3][1] >= 1 && rows[4][1] >= 1,
        "new nodes get shards:\n{out}"
    );
    assert!(rows[3][0] == 0 && rows[4][0] == 0, "{out}");
    // Nothing changed.
    assert_eq!(blob_placements(&client, &ports).await, placements);
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM shoal.nodes").await,
        "3"
    );
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM shoal.jobs").await,
        "0"
    );

    // After a move, the estimate uses the rate it reached.
    let shard = scalar(
        &client,
        &format!(
            "SELECT min(shard_id) FROM shoal.shards WHERE table_name = 'blobs' AND port = {}",
            ports[0]
        ),
    )
    .await;
    exec(
        &client,
        &format!("SELECT move_shard({shard}, '127.0.0.1', {w3})"),
    )
    .await;
    let (_, notices) = psql_ok(&cluster, &query).await;
    assert!(notices.contains("s at "), "{notices}");

    for (drain, error) in [
        ("nonsense", "is not host:port"),
        ("127.0.0.1:1", "does not exist"),
    ] {
        let e = client
            .simple_query(&format!(
                "SELECT * FROM rebalance_simulate(drain => '{drain}')"
            ))
            .await
            .expect_err("a bad drain list");
        assert!(err_text(&e).contains(error), "{}", err_text(&e));
    }
}

/// `shoal backup` / `shoal restore` of the catalog: a backup taken while a writer and a move
/// run restores a consistent state (a committed prefix of the writes, every row readable);
/// with `cleanup.retain_deleted_ms` above the backup's age, the files that moves, UPDATEs and
/// DELETEs replaced after it are still there to read. A restore under a running coordinator
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_backup_under_writes_and_moves_restores_a_committed_prefix() {
    let mut cluster = Cluster::start_with(2, 0).await;
    let client = cluster.client().await;
    create_tables(&client).await;
    exec(
        &client,
        "SELECT set_cluster_setting('cleanup.retain_deleted_ms', '600000')",
    )
    .await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '0.05')",
    )
    .await;
    let load = Load::start(&cluster, INITIAL_ROWS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A slow move runs while the backup is taken.
    let shard = scalar(
        &client,
        &format!(
            "SELECT min(shard_id) FROM shoal.shards WHERE table_name = 'events' AND port = {}",
            cluster.worker_port(0)
        ),
    )
    .await;
    let mover = {
        let c = cluster.client().await;
        let target = cluster.worker_port(1);
        tokio::spawn(async move {
            c.simple_query(&format!(
                "SELECT move_shard({shard}, '127.0.0.1', {target})"
            ))
            .await
            .map(drop)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup_dir = cluster.root().join("backup-1");
    let before_backup = load.committed.load(Ordering::SeqCst);
    let out = std::process::Command::new(shoal_e2e::shoal_bin())
        .args(["backup", "--data-dir"])
        .arg(cluster.coordinator_data_dir())
        .arg("--to")
        .arg(&backup_dir)
        .output()
        .expect("shoal backup");
    assert!(out.status.success(), "backup: {}", stderr_of(&out));
    let after_backup = load.committed.load(Ordering::SeqCst);
    // The reader and writer go on a while (the load checks every read it made).
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.finish().await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', 'unlimited')",
    )
    .await;
    within(120, "the move", mover)
        .await
        .expect("move task")
        .unwrap_or_else(|e| panic!("move: {}", err_text(&e)));
    // After the backup: rows change and files are replaced (background compaction may
    // commit first: 40001, retried).
    shoal_e2e::exec_retrying(&client, "DELETE FROM events WHERE id % 7 = 0").await;
    shoal_e2e::exec_retrying(
        &client,
        "UPDATE events SET value = value + 1 WHERE id % 5 = 0",
    )
    .await;

    // Not under a running coordinator.
    let refused = std::process::Command::new(shoal_e2e::shoal_bin())
        .args(["restore", "--from"])
        .arg(&backup_dir)
        .arg("--data-dir")
        .arg(cluster.coordinator_data_dir())
        .output()
        .expect("shoal restore");
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("stop the coordinator"),
        "{}",
        stderr_of(&refused)
    );

    cluster.kill_coordinator();
    let out = std::process::Command::new(shoal_e2e::shoal_bin())
        .args(["restore", "--from"])
        .arg(&backup_dir)
        .arg("--data-dir")
        .arg(cluster.coordinator_data_dir())
        .output()
        .expect("shoal restore");
    assert!(out.status.success(), "restore: {}", stderr_of(&out));
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    let (n, s) = count_sum(&client).await.expect("read after restore");
    // The backup saw every batch committed before it began, and none begun after it ended
    // (one may have been in flight, committed but not counted yet).
    assert!(
        n >= before_backup && n <= after_backup + BATCH && s == prefix_sum(n),
        "restored count={n} sum={s}; {before_backup} rows committed before the backup, {after_backup} after it"
    );
    let dup = scalar(&client, "SELECT count(*) FROM (SELECT shard_id FROM shoal.shards WHERE table_name = 'events' GROUP BY shard_id HAVING count(*) <> 1) d").await;
    assert_eq!(dup, "0", "one placement per shard");
}

/// `drain_nodes('h:p, h:p')` drains several nodes in one job: one plan, no shard moved onto a
/// node that is drained with it, all of them empty at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_nodes_empties_several_nodes_in_one_job() {
    let cluster = Cluster::start_with(4, 0).await;
    let client = cluster.client().await;
    create_blobs(&client, 8, 800).await;
    let ports = cluster.worker_ports();
    let (w2, w3) = (ports[1], ports[2]);
    let job = scalar(
        &client,
        &format!("SELECT drain_nodes('127.0.0.1:{w2}, 127.0.0.1:{w3}')"),
    )
    .await;
    assert_eq!(
        scalar(
            &client,
            &format!("SELECT state, description FROM shoal.jobs WHERE job_id = {job}")
        )
        .await,
        format!("finished|Drain nodes 127.0.0.1:{w2}, 127.0.0.1:{w3}")
    );
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM shoal.jobs").await,
        "1"
    );
    let onto_drained = scalar(
        &client,
        &format!(
            "SELECT count(*) FROM shoal.tasks WHERE job_id = {job} \
             AND (target LIKE '%:{w2}' OR target LIKE '%:{w3}')"
        ),
    )
    .await;
    assert_eq!(onto_drained, "0");
    assert_eq!(blob_placements(&client, &ports).await, vec![4, 0, 0, 4]);
    assert_eq!(scalar(&client, "SELECT count(*) FROM blobs").await, "800");
    for (list, error) in [("", "at least one node"), ("127.0.0.1", "is not host:port")] {
        let e = client
            .simple_query(&format!("SELECT drain_nodes('{list}')"))
            .await
            .expect_err("a bad node list");
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{}", err_text(&e));
        assert!(err_text(&e).contains(error), "{}", err_text(&e));
    }
}

/// What a client sees of every table, view and placement: compared before the coordinator's
/// disk is lost and after its catalog was rebuilt from the workers.
async fn cluster_answers(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT count(*), sum(id), sum(value) FROM events",
        "SELECT kind, label FROM kinds ORDER BY kind",
        "SELECT count(*), sum(id), count(DISTINCT v) FROM kv",
        "SELECT * FROM kv_sizes ORDER BY len",
        "SELECT table_name, shard_id, port FROM shoal.shards ORDER BY table_name, shard_id, port",
        "SELECT count(*) FROM pg_class WHERE relname = 'gone'",
        "SELECT name, value FROM shoal.cluster_settings WHERE name = 'rebalance.yield_bandwidth_mb'",
    ] {
        out.push(format!("{sql} => {}", lines(client, sql).await.join(" / ")));
    }
    out
}

/// The coordinator's disk is lost after a loaded cluster went through writes, UPDATE and
/// DELETE, compaction (VACUUM), a dropped table, a view, a setting and a scale-out with
/// moves under a writer: `shoal recover-catalog`, given one worker, finds the newest copy of
/// the catalog journal among all workers and rebuilds the catalog; the restarted coordinator
/// answers every query exactly as before, down to the placements, and takes writes again
/// without reusing a serial value. It refuses to overwrite a catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_recovered_from_the_workers_after_the_coordinator_disk_is_lost() {
    let mut cluster = Cluster::start_with(2, 1).await;
    let client = cluster.client().await;
    create_tables(&client).await;
    exec(
        &client,
        "CREATE TABLE kv (id bigserial, v text);
         SELECT create_distributed_table('kv', 'id', shard_count => 4);",
    )
    .await;
    for i in 0..12 {
        exec(
            &client,
            &format!(
                "INSERT INTO kv (v) SELECT 'v' || g FROM generate_series(1, {}) g",
                50 + i
            ),
        )
        .await;
    }
    shoal_e2e::exec_retrying(&client, "UPDATE kv SET v = 'changed' WHERE id % 3 = 0").await;
    shoal_e2e::exec_retrying(&client, "DELETE FROM kv WHERE id % 7 = 0").await;
    exec(&client, "VACUUM kv").await;
    exec(
        &client,
        "CREATE TABLE gone (a int); INSERT INTO gone VALUES (1); DROP TABLE gone;
         CREATE VIEW kv_sizes AS SELECT length(v) AS len, count(*) AS n FROM kv GROUP BY 1 ORDER BY 1;
         SELECT set_cluster_setting('rebalance.yield_bandwidth_mb', '77');",
    )
    .await;
    // A scale-out with a writer running: moves switch placements while rows commit.
    let load = Load::start(&cluster, INITIAL_ROWS).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    exec(
        &client,
        &format!("SELECT add_node('127.0.0.1', {})", cluster.worker_port(2)),
    )
    .await;
    exec(&client, "SELECT rebalance_start()").await;
    exec(&client, "SELECT rebalance_wait()").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    load.finish().await;
    // One last write, and the disk goes at once: nothing waits for a background copy.
    exec(&client, "INSERT INTO kv (v) VALUES ('last')").await;
    let before = cluster_answers(&client).await;
    let moved = scalar(
        &client,
        &format!(
            "SELECT count(*) FROM shoal.shards WHERE port = {}",
            cluster.worker_port(2)
        ),
    )
    .await;
    assert_ne!(moved, "0", "the scale-out moved nothing");
    drop(client);
    // Every write so far is held by a worker, and all three take the copies.
    let seq = wait_for_metric(&cluster, "shoal_catalog_journal_seq", |v| v > 0.0).await;
    wait_for_metric(&cluster, "shoal_catalog_journal_durable_seq", |v| v >= seq).await;
    assert_eq!(cluster.metric("shoal_catalog_journal_workers"), Some(3.0));
    wait_for_metric(&cluster, "shoal_catalog_journal_workers_healthy", |v| {
        v == 3.0
    })
    .await;
    assert_eq!(
        cluster.metric("shoal_catalog_journal_unshipped_total"),
        Some(0.0)
    );

    cluster.lose_coordinator_disk();
    let out = cluster.recover_catalog(&[0], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "recover-catalog: {stdout}{}",
        stderr_of(&out)
    );
    assert!(stdout.contains("catalog rebuilt from worker"), "{stdout}");
    // Every worker was asked, also those not named.
    for i in 0..3 {
        assert!(
            stdout.contains(&format!("worker {}:", cluster.worker_addr(i))),
            "worker {i} not asked: {stdout}"
        );
    }
    let again = cluster.recover_catalog(&[0], &[]);
    assert!(
        !again.status.success(),
        "a second recovery overwrote the catalog"
    );
    assert!(
        stderr_of(&again).contains("exists"),
        "{}",
        stderr_of(&again)
    );

    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    assert_eq!(cluster_answers(&client).await, before);
    // Writes go on, and a serial value is never handed out twice.
    exec(
        &client,
        "INSERT INTO kv (v) SELECT 'after' FROM generate_series(1, 100)",
    )
    .await;
    assert_eq!(
        scalar(&client, "SELECT count(*) = count(DISTINCT id) FROM kv").await,
        "t"
    );
}

/// Waits until `n` workers are live in the coordinator's view.
async fn wait_live_workers(client: &Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = scalar(client, "SELECT count(*) FROM shoal.nodes WHERE is_live").await;
        if live == n.to_string() {
            return;
        }
        assert!(Instant::now() < deadline, "{live} workers live, want {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The catalog journal through failures. The coordinator restarts (a new run: every worker
/// gets a new base); a worker is down while catalog writes go on and comes back (it catches
/// up with what is still queued); then the other worker dies and the next write waits until
/// the one left holds it. With the coordinator's disk gone and the first worker still down,
/// `recover-catalog` refuses (that worker may hold newer writes) until told to go on without
/// it, rebuilds from the one that answers, and the cluster has every row and the last
/// setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_journal_survives_outages_and_recovers_from_the_worker_left() {
    let mut cluster = Cluster::start_with(2, 0).await;
    let client = cluster.client().await;
    exec(
        &client,
        "CREATE TABLE j (id bigint, v text);
         SELECT create_distributed_table('j', 'id', shard_count => 4);
         INSERT INTO j SELECT g, 'a' FROM generate_series(1, 100) g;",
    )
    .await;
    drop(client);
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    // Worker 1 misses catalog writes, then comes back.
    cluster.kill_worker(1);
    for value in ["11", "22"] {
        exec(
            &client,
            &format!("SELECT set_cluster_setting('rebalance.yield_bandwidth_mb', '{value}')"),
        )
        .await;
    }
    cluster.restart_worker(1).await;
    wait_live_workers(&client, 2).await;
    exec(
        &client,
        "INSERT INTO j SELECT g, 'b' FROM generate_series(101, 150) g",
    )
    .await;
    // Worker 0 dies: the next write returns once worker 1 holds it.
    cluster.kill_worker(0);
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.yield_bandwidth_mb', '55')",
    )
    .await;
    drop(client);

    cluster.lose_coordinator_disk();
    let data_dir = cluster.coordinator_data_dir().to_path_buf();
    // Worker 0 might hold a newer copy: refused until told to go on without it.
    let refused = cluster.recover_catalog(&[0, 1], &[]);
    assert!(
        !refused.status.success(),
        "recovered without asking worker 0"
    );
    assert!(
        stderr_of(&refused).contains("--ignore-unreachable")
            && stderr_of(&refused).contains(&cluster.worker_addr(0)),
        "{}",
        stderr_of(&refused)
    );
    assert!(!data_dir.join("catalog.db").exists());
    let out = cluster.recover_catalog(&[0, 1], &["--ignore-unreachable".as_ref()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "recover-catalog: {stdout}{}",
        stderr_of(&out)
    );
    assert!(
        stdout.contains(&format!("worker {}: not asked", cluster.worker_addr(0))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "catalog rebuilt from worker {}",
            cluster.worker_addr(1)
        )),
        "{stdout}"
    );
    cluster.restart_worker(0).await;
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    assert_eq!(
        scalar(&client, "SELECT count(*) || '/' || sum(id) FROM j").await,
        format!("150/{}", 150 * 151 / 2)
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT value FROM shoal.cluster_settings WHERE name = 'rebalance.yield_bandwidth_mb'"
        )
        .await,
        "55"
    );
}

/// Files under `dir`, recursively (0 when it does not exist).
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                files_under(&p)
            } else {
                1
            }
        })
        .sum()
}

/// A COPY into `blobs` with `rows` sent and left open: it holds the group's writes.
async fn open_copy(
    writer: &Client,
    rows: &'static str,
) -> std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>> {
    use futures::SinkExt;
    let sink = writer
        .copy_in("COPY blobs FROM STDIN")
        .await
        .unwrap_or_else(|e| panic!("COPY: {}", err_text(&e)));
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from(rows))
        .await
        .expect("COPY rows");
    // The COPY holds the gate from its first rows on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink
}

/// `move_shard(shard, port)` on a connection of its own, in the background.
async fn spawn_move(
    cluster: &Cluster,
    shard: &str,
    port: u16,
) -> tokio::task::JoinHandle<Result<(), tokio_postgres::Error>> {
    let mover = cluster.client().await;
    let sql = format!("SELECT move_shard({shard}, '127.0.0.1', {port})");
    tokio::spawn(async move { mover.simple_query(&sql).await.map(|_| ()) })
}

/// The `blobs` shard is on `port` and the table holds `rows` rows.
async fn assert_shard_and_rows(client: &Client, shard: &str, port: u16, rows: u64) {
    assert_eq!(
        scalar(
            client,
            &format!("SELECT port FROM shoal.shards WHERE shard_id = {shard}")
        )
        .await,
        port.to_string()
    );
    assert_eq!(
        scalar(client, "SELECT count(*) FROM blobs").await,
        rows.to_string()
    );
}

/// Waits until the newest task after `after` waits for a retry (runnable, retried);
/// returns its task id, job id and phase.
async fn wait_deferred(client: &Client, after: i64) -> (i64, i64, String) {
    within(60, "the move is deferred", async {
        loop {
            let rows = lines(
                client,
                &format!(
                    "SELECT task_id, job_id, state, phase, retries FROM shoal.tasks \
                     WHERE task_id > {after} ORDER BY task_id DESC LIMIT 1"
                ),
            )
            .await;
            let row = rows.first().cloned().unwrap_or_default();
            let f: Vec<&str> = row.split('|').collect();
            if let [task, job, "runnable", phase, retries] = f[..] {
                if retries != "0" {
                    return (
                        task.parse().expect("task id"),
                        job.parse().expect("job id"),
                        phase.to_string(),
                    );
                }
            }
            assert_ne!(f.get(2), Some(&"error"), "{row}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// A move whose write fence cannot be taken — a COPY keeps the shard group's writes open —
/// is deferred, not rolled back: the task waits for its retry in `copying` with its
/// staged copy kept on the target; once the COPY commits, the retry resumes there and the
/// move completes with every row, the COPY's included. A job cancelled while its task waits
/// like that still rolls the staged copy back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_held_off_by_writers_keeps_its_staged_copy() {
    let cluster = Cluster::start_with(2, 0).await;
    let client = cluster.client().await;
    create_blobs(&client, 1, 3000).await;
    for (name, value) in [
        ("rebalance.write_fence_timeout_ms", "200"),
        ("rebalance.retry_backoff_ms", "300"),
    ] {
        exec(
            &client,
            &format!("SELECT set_cluster_setting('{name}', '{value}')"),
        )
        .await;
    }
    let row = scalar(
        &client,
        "SELECT shard_id, port FROM shoal.shards WHERE table_name = 'blobs'",
    )
    .await;
    let (shard, holder) = row.split_once('|').expect("shard row");
    let holder: u16 = holder.parse().expect("port");
    let target = (0..cluster.worker_count())
        .find(|i| cluster.worker_port(*i) != holder)
        .expect("a second worker");
    let target_port = cluster.worker_port(target);

    // Deferred while the COPY is open, then completed once it commits.
    let writer = cluster.client().await;
    let mut sink = open_copy(&writer, "100001\tlast\n100002\tlast\n").await;
    let moving = spawn_move(&cluster, shard, target_port).await;
    let (task_id, _, phase) = wait_deferred(&client, 0).await;
    assert_eq!(phase, "copying");
    let staging = cluster
        .worker_data_dir(target)
        .join("staging")
        .join(format!("move-{task_id}"));
    assert!(
        files_under(&staging) > 0,
        "the staged copy is kept in {}",
        staging.display()
    );
    let message = scalar(
        &client,
        &format!("SELECT message FROM shoal.tasks WHERE task_id = {task_id}"),
    )
    .await;
    assert!(message.contains("could not fence writes"), "{message}");
    assert_eq!(sink.as_mut().finish().await.expect("COPY commits"), 2);
    within(60, "the deferred move completes", async {
        moving
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("move_shard: {}", err_text(&e)))
    })
    .await;
    assert_shard_and_rows(&client, shard, target_port, 3002).await;
    let done = scalar(
        &client,
        &format!("SELECT state, message FROM shoal.tasks WHERE task_id = {task_id}"),
    )
    .await;
    assert!(done.starts_with("done|done after"), "{done}");
    assert_eq!(files_under(&staging), 0, "adopted: {}", staging.display());

    // Cancelled while it waits for its retry: the staged copy goes, the shard stays.
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.retry_backoff_ms', '600000')",
    )
    .await;
    let mut sink = open_copy(&writer, "100003\tlast\n").await;
    let moving = spawn_move(&cluster, shard, holder).await;
    let (task_id, job_id, _) = wait_deferred(&client, task_id).await;
    let holder_index = (0..cluster.worker_count())
        .find(|i| cluster.worker_port(*i) == holder)
        .expect("the first holder");
    let staging = cluster
        .worker_data_dir(holder_index)
        .join("staging")
        .join(format!("move-{task_id}"));
    assert!(files_under(&staging) > 0, "{}", staging.display());
    exec(&client, &format!("SELECT job_cancel({job_id})")).await;
    within(60, "the deferred move is rolled back", async {
        while scalar(
            &client,
            &format!("SELECT state FROM shoal.tasks WHERE task_id = {task_id}"),
        )
        .await
            != "cancelled"
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(
        files_under(&staging),
        0,
        "rolled back: {}",
        staging.display()
    );
    let e = moving
        .await
        .expect("join")
        .expect_err("move_shard of a cancelled job");
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{}", err_text(&e));
    assert_eq!(sink.as_mut().finish().await.expect("COPY commits"), 1);
    assert_shard_and_rows(&client, shard, target_port, 3003).await;
}
