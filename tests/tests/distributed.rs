//! Distributed and reference tables end to end on a 3-worker cluster: placement, the catalog
//! views (`shoal.*` and the Citus compatibility views), EXPLAIN, pruning on the distribution
//! column, joins with a reference table, a coordinator restart, and a worker that goes down
//! (queries fail fast with SQLSTATE 08006 naming it, and work again once it is back).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use shoal_e2e::{err_text, exec, lines, query_lines, scalar, sqlstate, within, Cluster};
use tokio_postgres::Client;

const KINDS: [&str; 4] = ["click", "view", "buy", "other"];

fn row(id: i64) -> (i64, i64, &'static str, f64) {
    (id, id % 50, KINDS[(id % 4) as usize], id as f64 / 4.0)
}

fn insert_sql(table: &str, ids: std::ops::RangeInclusive<i64>) -> String {
    let values: Vec<String> = ids
        .map(|id| {
            let (id, dev, kind, value) = row(id);
            format!("({id}, {dev}, '{kind}', {value})")
        })
        .collect();
    format!(
        "INSERT INTO {table} (id, device_id, kind, value) VALUES {}",
        values.join(", ")
    )
}

async fn create_events(client: &Client, table: &str, extra: &str) {
    exec(
        client,
        &format!(
            "CREATE TABLE {table} (id bigint, device_id integer, kind text, value double precision)"
        ),
    )
    .await;
    exec(
        client,
        &format!("SELECT create_distributed_table('{table}', 'id', shard_count => 8{extra})"),
    )
    .await;
}

/// Everything the tests compare before and after a restart.
async fn snapshot(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for q in [
        "SELECT count(*), sum(id), sum(value), count(DISTINCT device_id) FROM events",
        "SELECT k.label, count(*) FROM events e JOIN kinds k ON e.kind = k.kind GROUP BY k.label ORDER BY k.label",
        "SELECT id, device_id, kind, value FROM events WHERE id = 777",
        "SELECT table_name, kind, distribution_column, shard_count, replication_factor FROM shoal.tables WHERE table_name IN ('events', 'kinds') ORDER BY table_name",
        "SELECT shard_index, shard_id, hash_min, hash_max, port FROM shoal.shards WHERE table_name = 'events' ORDER BY shard_index",
    ] {
        out.push(format!("{q}\n{}", lines(client, q).await.join("\n")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_tables_views_explain_and_restart() {
    let mut cluster = Cluster::start(3).await;
    let mut ports = cluster.worker_ports();
    ports.sort_unstable();
    within(600, "distributed table checks", async {
        let client = cluster.client().await;
        create_events(&client, "events", "").await;
        exec(&client, "CREATE TABLE kinds (kind text, label text)").await;
        exec(
            &client,
            "INSERT INTO kinds VALUES ('click', 'Click'), ('view', 'View'), ('buy', 'Buy'), ('unused', 'Unused')",
        )
        .await;
        exec(&client, "SELECT create_reference_table('kinds')").await;
        exec(&client, &insert_sql("events", 1..=1000)).await;
        // INSERT ... SELECT
        exec(
            &client,
            "INSERT INTO events SELECT id + 1000, device_id, kind, value FROM events WHERE id <= 100",
        )
        .await;

        let all: Vec<_> = (1..=1000).chain(1..=100).map(row).collect();
        let count = all.len();
        let sum_id: i64 = (1..=1000).sum::<i64>() + (1001..=1100).sum::<i64>();
        assert_eq!(
            scalar(&client, "SELECT count(*), sum(id) FROM events").await,
            format!("{count}|{sum_id}")
        );

        // shoal.shards: 8 shards, hash ranges as the contract says, round-robin over the
        // workers sorted by (host, port).
        assert_eq!(
            scalar(
                &client,
                "SELECT count(*), count(DISTINCT shard_id), count(DISTINCT node_id), sum(row_count) \
                 FROM shoal.shards WHERE table_name = 'events'"
            )
            .await,
            format!("8|8|3|{count}")
        );
        let shards = lines(
            &client,
            "SELECT shard_index, hash_min, hash_max, host, port, state FROM shoal.shards \
             WHERE table_name = 'events' ORDER BY shard_index",
        )
        .await;
        let step = (1i64 << 32) / 8;
        let expected: Vec<String> = (0..8i64)
            .map(|i| {
                let min = i64::from(i32::MIN) + i * step;
                let max = if i == 7 { i64::from(i32::MAX) } else { min + step - 1 };
                format!("{i}|{min}|{max}|127.0.0.1|{}|active", ports[(i % 3) as usize])
            })
            .collect();
        assert_eq!(shards, expected, "shoal.shards for events");
        assert_eq!(
            scalar(
                &client,
                "SELECT count(DISTINCT shard_id), count(DISTINCT port), sum(row_count) FROM shoal.shards \
                 WHERE table_name = 'kinds'"
            )
            .await,
            "1|3|12",
            "the reference table has one shard placed on every worker"
        );

        // shoal.tables
        assert_eq!(
            lines(
                &client,
                "SELECT table_name, kind, distribution_column, shard_count, replication_factor, row_count \
                 FROM shoal.tables WHERE table_name = 'events'"
            )
            .await,
            [format!("events|distributed|id|8|1|{count}")]
        );
        assert_eq!(
            scalar(&client, "SELECT kind FROM shoal.tables WHERE table_name = 'kinds'").await,
            "reference"
        );

        // shoal.nodes and citus_get_active_worker_nodes()
        let want_nodes: Vec<String> = ports
            .iter()
            .map(|p| format!("127.0.0.1|{p}|active|t|t"))
            .collect();
        assert_eq!(
            lines(
                &client,
                "SELECT host, port, state, should_have_shards, is_live FROM shoal.nodes ORDER BY port"
            )
            .await,
            want_nodes
        );
        let want_active: Vec<String> = ports.iter().map(|p| format!("127.0.0.1|{p}")).collect();
        assert_eq!(
            lines(
                &client,
                "SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY node_port"
            )
            .await,
            want_active
        );

        // Citus compatibility views.
        assert_eq!(
            scalar(
                &client,
                "SELECT count(*), count(DISTINCT shardid), count(DISTINCT nodeport) FROM citus_shards \
                 WHERE table_name = 'events'"
            )
            .await,
            "8|8|3"
        );
        assert_eq!(
            lines(
                &client,
                "SELECT DISTINCT table_name, citus_table_type FROM citus_shards \
                 WHERE table_name IN ('events', 'kinds') ORDER BY table_name"
            )
            .await,
            ["events|distributed", "kinds|reference"]
        );
        let want_dist_node: Vec<String> = ports.iter().map(|p| format!("127.0.0.1|{p}|t")).collect();
        let worker_list = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            lines(
                &client,
                &format!(
                    "SELECT nodename, nodeport, isactive FROM pg_dist_node \
                     WHERE nodeport IN ({worker_list}) ORDER BY nodeport"
                )
            )
            .await,
            want_dist_node
        );
        assert_eq!(
            scalar(
                &client,
                "SELECT count(*), count(DISTINCT nodeport) FROM citus_shard_placement WHERE shardid IN \
                 (SELECT shard_id FROM shoal.shards WHERE table_name = 'events')"
            )
            .await,
            "8|3"
        );

        // get_shard_id_for_distribution_column returns shards of the table, and spreads values.
        let shard_ids: BTreeSet<String> = lines(
            &client,
            "SELECT shard_id FROM shoal.shards WHERE table_name = 'events'",
        )
        .await
        .into_iter()
        .collect();
        let mut hit = BTreeSet::new();
        for id in 1..=40 {
            let s = scalar(
                &client,
                &format!("SELECT get_shard_id_for_distribution_column('events', {id})"),
            )
            .await;
            assert!(shard_ids.contains(&s), "shard {s} for id {id} is not one of {shard_ids:?}");
            hit.insert(s);
        }
        assert!(hit.len() >= 5, "40 ids land in only {} shards", hit.len());

        // EXPLAIN shows the per-shard work and the workers.
        let plan = lines(&client, "EXPLAIN SELECT kind, count(*) FROM events GROUP BY kind")
            .await
            .join("\n");
        assert!(
            plan.to_lowercase().contains("shard"),
            "EXPLAIN mentions shards:\n{plan}"
        );
        assert!(
            ports.iter().any(|p| plan.contains(&p.to_string())),
            "EXPLAIN names the workers (ports {ports:?}):\n{plan}"
        );
        // EXPLAIN ANALYZE counts what the workers sent (every row here: no pushdown for a
        // filter on a non-distribution column and a projection), and /metrics adds it up.
        let received = |c: &Cluster| c.metric("shoal_scan_rows_received_total").unwrap_or(-1.0);
        let before = received(&cluster);
        let analyzed = lines(&client, "EXPLAIN ANALYZE SELECT id FROM events WHERE kind <> 'nope'")
            .await
            .join("\n");
        let scan = analyzed
            .lines()
            .find(|l| l.contains("ShardScanExec"))
            .unwrap_or_else(|| panic!("no shard scan in:\n{analyzed}"));
        // (EXPLAIN ANALYZE rounds: 1100 rows print as `1.10 K`.)
        assert!(
            scan.contains("metrics=[output_rows=1.10 K") && scan.contains("bytes_received="),
            "the shard scan reports what it received ({count} rows):\n{scan}"
        );
        assert_eq!(received(&cluster) - before, count as f64, "rows received on /metrics");

        // A filter on the distribution column returns the right row.
        let (id, dev, kind, value) = row(777);
        assert_eq!(
            lines(&client, "SELECT id, device_id, kind, value FROM events WHERE id = 777").await,
            [format!("{id}|{dev}|{kind}|{value}")]
        );
        assert_eq!(
            lines(&client, "SELECT id FROM events WHERE id IN (5, 1050, 99999) ORDER BY id").await,
            ["5", "1050"]
        );

        // A join with the reference table stays correct.
        let mut per_label: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, kind, _) in &all {
            let label = match *kind {
                "click" => "Click",
                "view" => "View",
                "buy" => "Buy",
                _ => continue,
            };
            *per_label.entry(label).or_default() += 1;
        }
        let want_join: Vec<String> = per_label.iter().map(|(l, n)| format!("{l}|{n}")).collect();
        assert_eq!(
            lines(
                &client,
                "SELECT k.label, count(*) FROM events e JOIN kinds k ON e.kind = k.kind GROUP BY k.label ORDER BY k.label"
            )
            .await,
            want_join
        );

        // The coordinator comes back from kill -9 with all data and metadata.
        let before = snapshot(&client).await;
        drop(client);
        cluster.kill_coordinator();
        cluster.restart_coordinator().await;
        let client = cluster.client().await;
        let after = snapshot(&client).await;
        assert_eq!(before, after, "state after a coordinator restart");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_down_fails_fast_then_recovers() {
    let mut cluster = Cluster::start(3).await;
    let victim = 1;
    let victim_addr = cluster.worker_addr(victim);
    let victim_port = cluster.worker_port(victim).to_string();
    within(600, "worker failure checks", async {
        let client = cluster.client().await;
        create_events(&client, "events", "").await;
        exec(&client, &insert_sql("events", 1..=300)).await;
        create_events(&client, "events_r2", ", replication_factor => 2").await;
        exec(&client, &insert_sql("events_r2", 1..=300)).await;

        // Which ids live on the victim and which elsewhere.
        let placement: BTreeMap<String, String> = lines(
            &client,
            "SELECT shard_id, port FROM shoal.shards WHERE table_name = 'events'",
        )
        .await
        .into_iter()
        .filter_map(|l| {
            l.split_once('|')
                .map(|(s, p)| (s.to_string(), p.to_string()))
        })
        .collect();
        let mut elsewhere = None;
        for id in 1..=300 {
            let shard = scalar(
                &client,
                &format!("SELECT get_shard_id_for_distribution_column('events', {id})"),
            )
            .await;
            if placement.get(&shard) != Some(&victim_port) {
                elsewhere = Some(id);
                break;
            }
        }
        let elsewhere = elsewhere.expect("some id lives on another worker");

        cluster.kill_worker(victim);

        // A query touching the dead worker's shards fails fast, with 08006 naming it.
        let started = Instant::now();
        let res = tokio::time::timeout(
            Duration::from_secs(60),
            client.simple_query("SELECT count(*) FROM events"),
        )
        .await;
        let elapsed = started.elapsed();
        let err = match res {
            Err(_) => panic!("a query touching a dead worker hangs (> 60 s)"),
            Ok(Ok(rows)) => panic!(
                "a query touching a dead worker succeeded: {:?}",
                shoal_e2e::simple_rows(&rows)
            ),
            Ok(Err(e)) => e,
        };
        let text = err_text(&err);
        assert!(
            elapsed < Duration::from_secs(10),
            "failing took {elapsed:?} (should be a few seconds): {text}"
        );
        assert_eq!(sqlstate(&err).as_deref(), Some("08006"), "{text}");
        assert!(
            text.contains(&victim_addr),
            "the error names {victim_addr}: {text}"
        );

        // The session survives, a query that only needs other workers still works, and so
        // does a table with a second placement of every shard.
        let (id, dev, kind, value) = row(elsewhere);
        assert_eq!(
            lines(
                &client,
                &format!("SELECT id, device_id, kind, value FROM events WHERE id = {elsewhere}")
            )
            .await,
            [format!("{id}|{dev}|{kind}|{value}")]
        );
        assert_eq!(
            scalar(&client, "SELECT count(*), sum(id) FROM events_r2").await,
            "300|45150",
            "replication_factor 2 serves reads from the other placement"
        );

        // Back up: the same query works again.
        cluster.restart_worker(victim).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match query_lines(&client, "SELECT count(*), sum(id) FROM events").await {
                Ok(v) => {
                    assert_eq!(v, ["300|45150"]);
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("not yet: {}", err_text(&e));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!(
                    "the query still fails 30 s after the worker came back: {}",
                    err_text(&e)
                ),
            }
        }
    })
    .await;
}

/// Many small INSERTs leave many small files; the coordinator's compaction merges a placement
/// with 8 or more into one, and every row is still there exactly once, also for a query that
/// runs meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_files() {
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    within(120, "compaction", async {
        exec(&client, "CREATE TABLE small (id bigint, v text)").await;
        for i in 0..10 {
            let values: Vec<String> = (0..100)
                .map(|j| format!("({}, 'v{j}')", i * 100 + j))
                .collect();
            exec(
                &client,
                &format!("INSERT INTO small VALUES {}", values.join(", ")),
            )
            .await;
        }
        let files = "SELECT sum(file_count) FROM shoal.shards WHERE table_name = 'small'";
        let totals = "SELECT count(*), count(DISTINCT id), sum(id) FROM small";
        assert_eq!(scalar(&client, totals).await, "1000|1000|499500");
        let before: i64 = scalar(&client, files).await.parse().unwrap_or(0);
        assert_eq!(before, 10, "one file per INSERT");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert_eq!(scalar(&client, totals).await, "1000|1000|499500");
            let now: i64 = scalar(&client, files).await.parse().unwrap_or(-1);
            if now == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the 10 files were not merged into one (now {now})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(scalar(&client, totals).await, "1000|1000|499500");
    })
    .await;
}
