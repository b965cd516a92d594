//! Statement atomicity under crashes: a large COPY (2M generated rows streamed through
//! tokio-postgres `copy_in`) is cut by `kill -9` of a worker, or of the coordinator — early, in
//! the middle, and just before the end of the stream. The COPY fails, and once the node is
//! back `count(*)` (and `sum(id)`) is either the old value or old + all rows — never in
//! between. Afterwards the cluster takes writes again.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use shoal_e2e::data::simple_rows_text;
use shoal_e2e::{err_text, exec, query_lines, within, Cluster};
use tokio_postgres::Client;

const BASE_ROWS: u64 = 10_000;
const TOTAL: u64 = 2_000_000;
const CHUNK: u64 = 20_000;
/// Rows sent before the kill, one crash per entry.
const KILL_POINTS: [u64; 3] = [100_000, 1_000_000, TOTAL - CHUNK];

fn sum_ids(first: u64, count: u64) -> u64 {
    (first..first + count).sum()
}

async fn setup(cluster: &Cluster) -> Client {
    let client = cluster.client().await;
    exec(
        &client,
        "CREATE TABLE big (id bigint, device_id integer, kind text, value double precision)",
    )
    .await;
    exec(
        &client,
        "SELECT create_distributed_table('big', 'id', shard_count => 8)",
    )
    .await;
    let n = copy_all(&client, 1, BASE_ROWS).await;
    assert_eq!(n, BASE_ROWS);
    assert_eq!(
        count_and_sum(&client).await.expect("count"),
        (BASE_ROWS, sum_ids(1, BASE_ROWS))
    );
    client
}

async fn copy_all(client: &Client, first: u64, count: u64) -> u64 {
    let sink = client
        .copy_in("COPY big FROM STDIN")
        .await
        .unwrap_or_else(|e| panic!("COPY: {}", err_text(&e)));
    let mut sink = Box::pin(sink);
    let mut next = first;
    while next < first + count {
        let n = CHUNK.min(first + count - next);
        sink.send(Bytes::from(simple_rows_text(next, n)))
            .await
            .unwrap_or_else(|e| panic!("COPY send: {}", err_text(&e)));
        next += n;
    }
    sink.as_mut()
        .finish()
        .await
        .unwrap_or_else(|e| panic!("COPY finish: {}", err_text(&e)))
}

async fn count_and_sum(client: &Client) -> Result<(u64, u64), tokio_postgres::Error> {
    let rows = query_lines(client, "SELECT count(*), coalesce(sum(id), 0) FROM big").await?;
    let line = rows.first().cloned().unwrap_or_default();
    let (c, s) = line.split_once('|').unwrap_or(("", ""));
    Ok((
        c.parse().unwrap_or_else(|_| panic!("count: {line}")),
        s.parse().unwrap_or_else(|_| panic!("sum: {line}")),
    ))
}

/// Stream `TOTAL` rows starting at id `first`; after `kill_after` rows have been sent, call
/// `kill` and keep streaming. Returns the outcome of the COPY and the rows sent.
async fn copy_and_kill(
    client: &Client,
    first: u64,
    kill_after: u64,
    kill: impl FnOnce(),
) -> (Result<u64, tokio_postgres::Error>, u64) {
    let sink = match client.copy_in("COPY big FROM STDIN").await {
        Ok(s) => s,
        Err(e) => panic!("COPY did not start: {}", err_text(&e)),
    };
    let mut sink = Box::pin(sink);
    let mut kill = Some(kill);
    let mut sent = 0;
    let started = Instant::now();
    while sent < TOTAL {
        if sent >= kill_after {
            if let Some(k) = kill.take() {
                // Let the coordinator catch up with what is buffered, so that rows are
                // flowing to the workers when the process dies.
                tokio::time::sleep(Duration::from_millis(500)).await;
                eprintln!(
                    "[e2e] {sent} rows sent in {:.1?}; killing",
                    started.elapsed()
                );
                k();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if let Err(e) = sink
            .send(Bytes::from(simple_rows_text(first + sent, CHUNK)))
            .await
        {
            eprintln!("[e2e] COPY send failed after {sent} rows: {}", err_text(&e));
            return (Err(e), sent);
        }
        sent += CHUNK;
    }
    let res = sink.as_mut().finish().await;
    eprintln!(
        "[e2e] COPY of {sent} rows finished after {:.1?}: {:?}",
        started.elapsed(),
        res.as_ref().map_err(err_text)
    );
    (res, sent)
}

/// Poll count/sum until the cluster answers again.
async fn count_when_back(cluster: &Cluster) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let client = cluster.client().await;
        match count_and_sum(&client).await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {}", err_text(&e));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the table is not readable again: {}", err_text(&e)),
        }
    }
}

fn check_all_or_nothing(
    before: (u64, u64),
    after: (u64, u64),
    first: u64,
    server_said_failed: bool,
) {
    let all = (before.0 + TOTAL, before.1 + sum_ids(first, TOTAL));
    if server_said_failed {
        assert_eq!(
            after, before,
            "the server reported the COPY as failed, so none of its rows may be visible"
        );
    } else {
        assert!(
            after == before || after == all,
            "after the crash (count, sum) = {after:?}: neither the old {before:?} nor old + all {all:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_worker_during_copy_is_all_or_nothing() {
    let mut cluster = Cluster::start(3).await;
    within(1200, "worker crash during COPY", async {
        drop(setup(&cluster).await);
        for (round, kill_after) in KILL_POINTS.into_iter().enumerate() {
            let round = round as u64;
            let victim = 1 + (round as usize % 2);
            let first = 1_000_000_000 * (round + 1);
            let client = cluster.client().await;
            let before = count_and_sum(&client).await.expect("count before");
            let (res, sent) = {
                let cluster = &mut cluster;
                copy_and_kill(&client, first, kill_after, move || {
                    cluster.kill_worker(victim)
                })
                .await
            };
            let err = match res {
                Ok(n) => panic!(
                    "COPY reported success ({n} rows) although worker {victim} was killed after {sent} rows"
                ),
                Err(e) => e,
            };
            eprintln!("[e2e] COPY failed as it must: {}", err_text(&err));
            let server_said_failed = err.as_db_error().is_some();
            cluster.restart_worker(victim).await;
            let after = count_when_back(&cluster).await;
            check_all_or_nothing(before, after, first, server_said_failed);
        }

        // The cluster takes writes again.
        let client = cluster.client().await;
        let (before, _) = count_and_sum(&client).await.expect("count");
        assert_eq!(copy_all(&client, 9_000_000_000, 1000).await, 1000);
        let (c, _) = count_and_sum(&client).await.expect("count");
        assert_eq!(c, before + 1000);
        drop(client);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_coordinator_during_copy_is_all_or_nothing() {
    let mut cluster = Cluster::start(3).await;
    within(1200, "coordinator crash during COPY", async {
        drop(setup(&cluster).await);
        for (round, kill_after) in KILL_POINTS.into_iter().enumerate() {
            let first = 1_000_000_000 * (round as u64 + 1);
            let client = cluster.client().await;
            let before = count_and_sum(&client).await.expect("count before");
            let (res, sent) = {
                let cluster = &mut cluster;
                copy_and_kill(&client, first, kill_after, move || cluster.kill_coordinator())
                    .await
            };
            if let Ok(n) = res {
                panic!(
                    "COPY reported success ({n} rows) although the coordinator was killed after {sent} rows"
                );
            }
            drop(client);
            cluster.restart_coordinator().await;
            let after = count_when_back(&cluster).await;
            // The client lost its connection: it cannot know the outcome, so both are allowed
            // — but nothing in between.
            check_all_or_nothing(before, after, first, false);
        }

        let client = cluster.client().await;
        let (before, _) = count_and_sum(&client).await.expect("count");
        assert_eq!(copy_all(&client, 9_000_000_000, 1000).await, 1000);
        let (c, _) = count_and_sum(&client).await.expect("count");
        assert_eq!(c, before + 1000);
    })
    .await;
}

/// Every `.parquet` file under `shards/<table_id>/` of a worker's data directory.
fn table_files(data_dir: &std::path::Path, table_id: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(data_dir.join("shards").join(table_id)) else {
        return out;
    };
    for shard in shards.flatten() {
        if let Ok(files) = std::fs::read_dir(shard.path()) {
            out.extend(
                files
                    .flatten()
                    .map(|f| f.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "parquet")),
            );
        }
    }
    out.sort();
    out
}

/// A statement that fails on one worker after the others committed their files leaves none
/// of them behind (not for an hour until orphan collection): the table's directories hold
/// exactly the files the catalog names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_statement_leaves_no_files() {
    let cluster = Cluster::start(2).await;
    let client = cluster.client().await;
    exec(&client, "CREATE TABLE f (id bigint, v bigint)").await;
    exec(
        &client,
        "SELECT create_distributed_table('f', 'id', shard_count => 8)",
    )
    .await;
    exec(&client, "INSERT INTO f VALUES (1, 1)").await;
    // The one row's file names the table's directory.
    let first: Vec<_> = (0..2)
        .flat_map(|w| table_files_any(cluster.worker_data_dir(w)))
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    let table_id = first[0]
        .parent()
        .and_then(|s| s.parent())
        .and_then(|t| t.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .expect("table directory");
    // A regular file where worker 0 would create a shard directory: its put fails at commit,
    // after the puts of the other shards have committed theirs.
    let port0 = cluster.worker_port(0).to_string();
    let shards = query_lines(
        &client,
        &format!("SELECT shard_id FROM shoal.shards WHERE table_name = 'f' AND port = {port0}"),
    )
    .await
    .expect("shards");
    let root = cluster.worker_data_dir(0).join("shards").join(&table_id);
    let blocked = shards
        .iter()
        .map(|s| root.join(s.trim()))
        .find(|p| !p.exists())
        .unwrap_or_else(|| panic!("a shard of worker 0 ({port0}) without a directory: {shards:?}"));
    std::fs::create_dir_all(&root).expect("table directory");
    std::fs::write(&blocked, b"not a directory").expect("blocker");

    let values: Vec<String> = (2..=2000).map(|i| format!("({i}, {i})")).collect();
    let insert = format!("INSERT INTO f VALUES {}", values.join(", "));
    let err = client
        .simple_query(&insert)
        .await
        .expect_err("the insert cannot commit on worker 0");
    // PostgreSQL's io_error, naming the worker.
    assert_eq!(
        err.code().map(|c| c.code()),
        Some("58030"),
        "{}",
        err_text(&err)
    );
    assert!(err_text(&err).contains("on worker"), "{}", err_text(&err));
    let after: Vec<_> = (0..2)
        .flat_map(|w| table_files(cluster.worker_data_dir(w), &table_id))
        .collect();
    assert_eq!(
        after,
        first,
        "files left by the failed insert ({})",
        err_text(&err)
    );
    assert_eq!(
        query_lines(&client, "SELECT count(*) FROM f")
            .await
            .expect("count"),
        vec!["1".to_string()]
    );

    std::fs::remove_file(&blocked).expect("remove blocker");
    exec(&client, &insert).await;
    assert_eq!(
        query_lines(&client, "SELECT count(*), sum(id) FROM f")
            .await
            .expect("count"),
        vec![format!("2000|{}", (1..=2000u64).sum::<u64>())]
    );
}

/// Every `.parquet` file under a worker's `shards/`.
fn table_files_any(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(tables) = std::fs::read_dir(data_dir.join("shards")) else {
        return Vec::new();
    };
    tables
        .flatten()
        .flat_map(|t| table_files(data_dir, &t.file_name().to_string_lossy()))
        .collect()
}
