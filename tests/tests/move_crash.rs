//! Crash safety of shard moves. The coordinator is killed (`abort()` at a failpoint, as a
//! `kill -9` there would) right after it persisted each state of the move state machine; after
//! a restart the move resumes and finishes, every row is there exactly once, every shard has
//! exactly one placement, and the source's copy is deleted. Source and target workers are
//! killed mid-copy and come back; a staged file is corrupted and the checksum catches it; a
//! target without enough disk is refused up front.

use std::path::Path;
use std::time::{Duration, Instant};

use shoal_e2e::{err_text, exec, lines, scalar, sqlstate, Cluster};
use tokio_postgres::Client;

const ROWS: u64 = 4000;

async fn setup(cluster: &Cluster, shards: u32, rows: u64, payload: bool) -> Client {
    let client = cluster.client().await;
    exec(&client, "CREATE TABLE events (id bigint, payload text)").await;
    exec(
        &client,
        &format!("SELECT create_distributed_table('events', 'id', shard_count => {shards})"),
    )
    .await;
    exec(
        &client,
        "SELECT set_cluster_setting('rebalance.retry_backoff_ms', '300')",
    )
    .await;
    let mut next = 1;
    while next <= rows {
        let n = 2000.min(rows - next + 1);
        let values: Vec<String> = (next..next + n)
            .map(|id| {
                let p = if payload { noise(id) } else { format!("p{id}") };
                format!("({id}, '{p}')")
            })
            .collect();
        exec(
            &client,
            &format!("INSERT INTO events VALUES {}", values.join(",")),
        )
        .await;
        next += n;
    }
    client
}

/// 96 characters of hex that compress poorly, so that shard files have a real size.
fn noise(id: u64) -> String {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut s = String::with_capacity(96);
    for _ in 0..6 {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 29;
        s.push_str(&format!("{x:016x}"));
    }
    s
}

async fn assert_rows_once(client: &Client, rows: u64) {
    let got = scalar(client, "SELECT count(*), sum(id) FROM events").await;
    assert_eq!(
        got,
        format!("{rows}|{}", rows * (rows + 1) / 2),
        "every row exactly once"
    );
    let bad = scalar(
        client,
        "SELECT count(*) FROM (SELECT shard_id FROM shoal.shards WHERE table_name = 'events' GROUP BY shard_id HAVING count(*) <> 1) d",
    )
    .await;
    assert_eq!(bad, "0", "every shard has exactly one placement");
}

/// A shard of `events` on the worker at `port`.
async fn shard_on(client: &Client, port: u16) -> i64 {
    scalar(
        client,
        &format!(
            "SELECT min(shard_id) FROM shoal.shards WHERE table_name = 'events' AND port = {port}"
        ),
    )
    .await
    .parse()
    .unwrap_or_else(|_| panic!("no events shard on port {port}"))
}

async fn port_of(client: &Client, shard: i64) -> String {
    scalar(
        client,
        &format!("SELECT port FROM shoal.shards WHERE shard_id = {shard}"),
    )
    .await
}

/// Waits until the newest job is in a terminal state; returns (state, task message).
async fn wait_last_job(client: &Client, secs: u64) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let rows = lines(
            client,
            "SELECT state, coalesce(last_error, '') FROM shoal.jobs ORDER BY job_id DESC LIMIT 1",
        )
        .await;
        if let Some(line) = rows.first() {
            let (state, msg) = line.split_once('|').unwrap_or((line, ""));
            if matches!(state, "finished" | "failed" | "cancelled") {
                return (state.to_string(), msg.to_string());
            }
        }
        assert!(
            Instant::now() < deadline,
            "job did not end in {secs}s: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Parquet files of one shard in a worker's data directory.
fn shard_files(worker_dir: &Path, shard: i64) -> usize {
    let Ok(tables) = std::fs::read_dir(worker_dir.join("shards")) else {
        return 0;
    };
    tables
        .flatten()
        .map(|t| t.path().join(shard.to_string()))
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|d| d.flatten())
        .filter(|f| f.path().extension().is_some_and(|e| e == "parquet"))
        .count()
}

async fn eventually_no_files(worker_dir: &Path, shard: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while shard_files(worker_dir, shard) > 0 {
        assert!(
            Instant::now() < deadline,
            "the source's copy of shard {shard} was never deleted from {}",
            worker_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_killed_at_every_move_state_resumes_and_finishes() {
    let mut cluster = Cluster::start_with(2, 0).await;
    let mut client = setup(&cluster, 4, ROWS, false).await;
    let ports = [cluster.worker_port(0), cluster.worker_port(1)];
    // After every persisted phase, and before the steps within `copying` (the catch-up with
    // files staged, the fence, the switch with the fence held).
    let failpoints = [
        "crash_after:preparing",
        "crash_after:copying",
        "crash_before:catch_up",
        "crash_before:fence",
        "crash_before:switch",
        "crash_after:switched",
    ];
    for (i, failpoint) in failpoints.iter().enumerate() {
        let (from, to) = (i % 2, (i + 1) % 2);
        cluster.set_coordinator_env(&[("SHOAL_FAILPOINTS", failpoint)]);
        cluster.restart_coordinator_any().await;
        client = cluster.client().await;
        let shard = shard_on(&client, ports[from]).await;
        eprintln!("[e2e] moving shard {shard} to worker{to}, with {failpoint}");
        let res = client
            .simple_query(&format!(
                "SELECT move_shard({shard}, '127.0.0.1', {})",
                ports[to]
            ))
            .await;
        assert!(
            res.is_err(),
            "the coordinator should have died at {failpoint}"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.coordinator_exited() {
            assert!(
                Instant::now() < deadline,
                "coordinator still running at {failpoint}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster.set_coordinator_env(&[]);
        cluster.restart_coordinator_any().await;
        client = cluster.client().await;
        let (state, msg) = wait_last_job(&client, 60).await;
        assert_eq!(state, "finished", "after a crash at {failpoint}: {msg}");
        assert_eq!(port_of(&client, shard).await, ports[to].to_string());
        assert_rows_once(&client, ROWS).await;
        eventually_no_files(cluster.worker_data_dir(from), shard).await;
    }
    // Writes still work and land once.
    exec(
        &client,
        &format!("INSERT INTO events VALUES ({}, 'x')", ROWS + 1),
    )
    .await;
    assert_rows_once(&client, ROWS + 1).await;
}

/// Starts a rate-limited move of a shard from worker `from` to worker `to` (about 2 MB at
/// 0.4 MB/s) and returns once it is copying.
async fn start_slow_move(client: &Client, cluster: &Cluster, from: usize, to: usize) -> i64 {
    exec(
        client,
        "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', '0.4')",
    )
    .await;
    let shard = shard_on(client, cluster.worker_port(from)).await;
    // move_shard waits; run it from its own connection in the background.
    let bg = cluster.client().await;
    let port = cluster.worker_port(to);
    tokio::spawn(async move {
        let _ = bg
            .simple_query(&format!("SELECT move_shard({shard}, '127.0.0.1', {port})"))
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let phase = lines(
            client,
            "SELECT phase FROM shoal.tasks ORDER BY task_id DESC LIMIT 1",
        )
        .await;
        if phase.first().is_some_and(|p| p == "copying") {
            return shard;
        }
        assert!(
            Instant::now() < deadline,
            "move never reached copying: {phase:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_or_target_killed_mid_copy_then_back() {
    let mut cluster = Cluster::start_with(2, 0).await;
    let rows = 40_000;
    let client = setup(&cluster, 2, rows, true).await;
    for (victim, from, to) in [("target", 0, 1), ("source", 1, 0)] {
        let shard = start_slow_move(&client, &cluster, from, to).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let idx = if victim == "target" { to } else { from };
        cluster.kill_worker(idx);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.restart_worker(idx).await;
        exec(
            &client,
            "SELECT set_cluster_setting('rebalance.max_bandwidth_mb', 'unlimited')",
        )
        .await;
        let (state, msg) = wait_last_job(&client, 120).await;
        assert_eq!(state, "finished", "after killing the {victim}: {msg}");
        let retries = scalar(
            &client,
            "SELECT retries FROM shoal.tasks ORDER BY task_id DESC LIMIT 1",
        )
        .await;
        // The target writes what it received at the rate limit, so when the source dies the
        // rest of a small shard may already be in flight and the copy completes; the
        // target's death always costs the attempt.
        if victim == "target" {
            assert_ne!(retries, "0", "the target's death made the move retry");
        }
        eprintln!("[e2e] killing the {victim} mid-copy: {retries} retries");
        assert_eq!(
            port_of(&client, shard).await,
            cluster.worker_port(to).to_string()
        );
        assert_rows_once(&client, rows).await;
        eventually_no_files(cluster.worker_data_dir(from), shard).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_staged_file_is_caught_and_the_move_retries() {
    let mut cluster = Cluster::start_with(2, 0).await;
    let client = setup(&cluster, 2, ROWS, true).await;
    cluster.set_worker_env(1, &[("SHOAL_FAILPOINTS", "pull_corrupt_once")]);
    cluster.restart_worker(1).await;
    let shard = shard_on(&client, cluster.worker_port(0)).await;
    let res = client
        .simple_query(&format!(
            "SELECT move_shard({shard}, '127.0.0.1', {})",
            cluster.worker_port(1)
        ))
        .await;
    if let Err(e) = res {
        panic!("move_shard: {}", err_text(&e));
    }
    let task = lines(
        &client,
        "SELECT state, retries, message FROM shoal.tasks ORDER BY task_id DESC LIMIT 1",
    )
    .await;
    let line = task.first().cloned().unwrap_or_default();
    assert!(
        line.starts_with("done|1|"),
        "one failed attempt, then done: {line}"
    );
    assert!(
        line.contains("checksum mismatch"),
        "the checksum caught it: {line}"
    );
    assert_eq!(
        port_of(&client, shard).await,
        cluster.worker_port(1).to_string()
    );
    assert_rows_once(&client, ROWS).await;
    // And back again with writes blocked for the whole copy.
    exec(
        &client,
        &format!(
            "SELECT move_shard({shard}, '127.0.0.1', {}, shard_transfer_mode => 'block_writes')",
            cluster.worker_port(0)
        ),
    )
    .await;
    assert_eq!(
        port_of(&client, shard).await,
        cluster.worker_port(0).to_string()
    );
    exec(
        &client,
        &format!("INSERT INTO events VALUES ({}, 'x')", ROWS + 1),
    )
    .await;
    assert_rows_once(&client, ROWS + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_without_enough_disk_is_refused_up_front() {
    let mut cluster = Cluster::start_with(1, 1).await;
    let client = setup(&cluster, 4, ROWS, true).await;
    // The spare worker claims 1 kB of free disk.
    cluster.set_worker_env(1, &[("SHOAL_FAILPOINTS", "disk_free_bytes=1000")]);
    cluster.restart_worker(1).await;
    let p1 = cluster.worker_port(1);
    exec(&client, &format!("SELECT add_node('127.0.0.1', {p1})")).await;
    let shard = shard_on(&client, cluster.worker_port(0)).await;
    let e = client
        .simple_query(&format!("SELECT move_shard({shard}, '127.0.0.1', {p1})"))
        .await
        .expect_err("move to a full node");
    assert_eq!(sqlstate(&e).as_deref(), Some("53100"), "{}", err_text(&e));
    assert!(err_text(&e).contains("not enough"), "{}", err_text(&e));
    let p0 = cluster.worker_port(0);
    let e = client
        .simple_query(&format!("SELECT drain_node('127.0.0.1', {p0})"))
        .await
        .expect_err("drain onto a full node");
    assert_eq!(sqlstate(&e).as_deref(), Some("53100"), "{}", err_text(&e));
    assert!(
        err_text(&e).contains("nothing was moved"),
        "{}",
        err_text(&e)
    );
    let jobs = scalar(&client, "SELECT count(*) FROM shoal.jobs").await;
    assert_eq!(jobs, "0", "nothing was scheduled");
    assert_rows_once(&client, ROWS).await;
}
