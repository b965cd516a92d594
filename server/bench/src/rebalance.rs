//! `shoal bench --scenario rebalance`: the benchmarks of issue #3, side by side in one run.
//!
//! - Shard move throughput between two workers against `cp` of the same files between the two
//!   data directories (target ≥ 0.8× the copy's MB/s).
//! - A rebalance of about `--gb` GB from 3 to 4 workers, end to end (wall time, MB/s), with a
//!   writer and a reader running: write-fence time per move (p50/p99, target p99 < 200 ms,
//!   from the coordinator's `/metrics`) and read latency p99 during the rebalance against the
//!   same load without one (target ≤ 1.5×: the writer's phase before the rebalance, or with
//!   `--no-writer` the idle reads), and against the idle reads in any case.
//! - Planning 100,000 shard groups on 100 nodes (target < 1 s).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use shoal_sql_functions::planner::{self, PlanNode, PlanOptions, PlanShardGroup, Strategy};

use super::{bench_log_file, bench_log_filter, connect, err, free_port, spawn_worker, Proc};
use crate::BenchError;

/// Payload characters per row: hex of a pseudo-random stream, so Parquet cannot shrink it
/// much and the data has a real size on disk.
const PAYLOAD_HEX: usize = 192;

/// Point reads timed on the idle cluster: about as many as the reader makes during the
/// rebalance, so that both p99s are the same rank of samples of the same size (with 500, one
/// slow spell decided the idle p99).
const IDLE_READS: u64 = 2000;

/// Moves of the single-move measurement (back and forth; the median is reported). Either
/// side of one round (`cp` + `sync`, or the move) sometimes takes twice its usual time on this
/// machine's disk; nine rounds keep one such round from deciding the median.
const SINGLE_MOVE_ROUNDS: usize = 9;

/// How long the writer runs before reads are recorded: from a freshly compacted table, small
/// files first pile up for ~15 s (128 files to 4,500 here) before compaction (every 10 s)
/// catches up; after that their number goes up and down between about 1,300 and 5,000.
const WRITER_WARM_UP: Duration = Duration::from_secs(10);

/// How long the writer and the reader run, recorded, before the rebalance starts: three
/// compaction cycles. Read latency under a writer of small INSERTs climbs as small files pile
/// up between two compactions and has its slowest reads while a compaction round merges them,
/// so the reads "without a rebalance" must see rounds as often as the reads during it (~11 s):
/// with one 10-s window they sometimes saw none, and the rebalance's window one.
const STEADY_PHASE: Duration = Duration::from_secs(30);

/// Phases of the reader during the rebalance measurement.
const WARMING_UP: u8 = 0;
const STEADY: u8 = 1;
const REBALANCING: u8 = 2;

fn rows_text(start: u64, n: u64) -> String {
    let mut s = String::with_capacity(n as usize * (PAYLOAD_HEX + 16));
    for id in start..start + n {
        let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D;
        s.push_str(&id.to_string());
        s.push('\t');
        for _ in 0..PAYLOAD_HEX / 16 {
            x ^= x >> 31;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x ^= x >> 29;
            s.push_str(&format!("{x:016x}"));
        }
        s.push('\n');
    }
    s
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The first column of the first row as an integer (text protocol, so any integer or numeric
/// type works); 0 for NULL or no row.
async fn scalar_i64(client: &tokio_postgres::Client, sql: &str) -> Result<i64, BenchError> {
    let msgs = client.simple_query(sql).await.map_err(err)?;
    let value = msgs.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    });
    Ok(value
        .flatten()
        .and_then(|v| v.split('.').next().and_then(|i| i.parse().ok()))
        .unwrap_or(0))
}

/// The coordinator's `/metrics` text.
async fn scrape(metrics: &str) -> Result<String, BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(metrics).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    Ok(body)
}

/// The value of the sample `key` (its name with its labels, if any; 0 if absent).
fn sample(body: &str, key: &str) -> f64 {
    body.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == key)
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Write-fence p50, p99 (ms) and count of the moves so far. The quantiles come from the
/// histogram's buckets as Prometheus's `histogram_quantile` computes them (linear within the
/// bucket), so they are upper-bounded by its bucket bounds rather than exact.
async fn scrape_fence(metrics: &str) -> Result<(f64, f64, u64), BenchError> {
    let body = scrape(metrics).await?;
    let buckets: Vec<(f64, f64)> = body
        .lines()
        .filter_map(|l| l.strip_prefix("shoal_move_write_fence_milliseconds_bucket{le=\""))
        .filter_map(|l| l.split_once("\"} "))
        .filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, n.parse::<f64>().ok()?)))
        .collect();
    let count = sample(&body, "shoal_move_write_fence_milliseconds_count");
    Ok((
        histogram_quantile(&buckets, count, 0.5),
        histogram_quantile(&buckets, count, 0.99),
        count as u64,
    ))
}

/// Prometheus's `histogram_quantile` over finite (upper bound, cumulative count) buckets;
/// observations above the last bound count as that bound.
fn histogram_quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> f64 {
    if count <= 0.0 {
        return 0.0;
    }
    let rank = q * count;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            let within = n - below;
            return if within > 0.0 {
                lower + (le - lower) * (rank - below) / within
            } else {
                le
            };
        }
        (lower, below) = (le, n);
    }
    lower
}

/// Waits until no deferred delete is pending (`shoal_cleanup_pending`), so that the deletes a
/// load's compaction or the moves before leave behind (unlinking hundreds of MB) do not run
/// under the next measurement: before this, they sometimes fell into the idle reads.
async fn wait_for_cleanup(metrics: &str) -> Result<(), BenchError> {
    let since = Instant::now();
    while sample(&scrape(metrics).await?, "shoal_cleanup_pending") > 0.0 {
        if since.elapsed() > Duration::from_secs(120) {
            return Err(err("deferred deletes still pending after 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Plans 100,000 shard groups on 100 nodes (99 full, one new) and returns the best of 3.
fn plan_100k() -> Result<(Duration, usize), BenchError> {
    let nodes: Vec<PlanNode> = (1..=100)
        .map(|id| PlanNode::new(id, format!("worker-{id}"), 7400))
        .collect();
    let groups: Vec<PlanShardGroup> = (0..100_000)
        .map(|i| PlanShardGroup {
            group_id: i + 1,
            colocation_id: 1,
            bytes: 1 << 20,
            placements: vec![(i % 99) + 1],
            replication_factor: 1,
            ..Default::default()
        })
        .collect();
    let mut best = Duration::MAX;
    let mut steps = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let p = planner::plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount))
            .map_err(err)?;
        best = best.min(t.elapsed());
        steps = p.steps.len();
    }
    Ok((best, steps))
}

pub async fn run(
    gb: f64,
    max_bandwidth_mb: Option<f64>,
    with_writer: bool,
    keep: bool,
) -> Result<(), BenchError> {
    let exe = std::env::current_exe()?;
    let root: PathBuf =
        std::env::temp_dir().join(format!("shoal-bench-rebalance-{}", std::process::id()));
    let token = "bench-token";
    let mut procs = Vec::new();
    let mut workers = Vec::new();
    for i in 0..4 {
        let port = free_port()?;
        let dir = root.join(format!("worker{i}"));
        procs.push(spawn_worker(&exe, port, &dir, token)?);
        workers.push((port, dir));
    }
    let cport = free_port()?;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(&exe);
    cmd.args([
        "coordinator",
        "--listen",
        &format!("127.0.0.1:{cport}"),
        "--data-dir",
    ])
    .arg(root.join("coordinator"))
    .args(["--cluster-token", token, "--metrics-listen", &metrics]);
    for (port, _) in workers.iter().take(3) {
        cmd.args(["--worker", &format!("127.0.0.1:{port}")]);
    }
    let coordinator_dir = root.join("coordinator");
    procs.push(Proc(
        cmd.env("RUST_LOG", bench_log_filter())
            .stderr(bench_log_file(&coordinator_dir)?)
            .spawn()?,
    ));
    let client = connect(cport, "shoal").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar_i64(
        &client,
        "SELECT count(*) FROM citus_get_active_worker_nodes()",
    )
    .await?
        < 3
    {
        if Instant::now() > deadline {
            return Err(err("workers did not register"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
        .batch_execute(
            "CREATE TABLE blobs (id bigint, payload text);
             SELECT create_distributed_table('blobs', 'id', shard_count => 32);",
        )
        .await
        .map_err(err)?;

    // Load until the table holds about `gb` GB.
    let target = (gb * 1e9) as i64;
    let mut next = 1u64;
    let load_start = Instant::now();
    loop {
        let bytes = scalar_i64(
            &client,
            "SELECT sum(bytes) FROM shoal.tables WHERE table_name = 'blobs'",
        )
        .await?;
        if bytes >= target {
            break;
        }
        let sink = client.copy_in("COPY blobs FROM STDIN").await.map_err(err)?;
        futures::pin_mut!(sink);
        for _ in 0..20 {
            sink.send(Bytes::from(rows_text(next, 50_000)))
                .await
                .map_err(err)?;
            next += 50_000;
        }
        sink.as_mut().finish().await.map_err(err)?;
    }
    let rows = next - 1;
    // Let compaction merge the load's small files first, so it does not run under the
    // measurements below: until no placement has 8 files, or the file count has not changed
    // for two compaction rounds (a placement can keep 8 or more files for good: the large
    // files earlier rounds merged during the load, which compaction leaves alone, beside
    // fewer than 8 small ones; one run gave up after 300 s, its logs not kept, and this is
    // the way found for it to happen).
    let settle = Instant::now();
    let (mut files, mut unchanged_since) = (-1, Instant::now());
    loop {
        let (max, sum) = (
            scalar_i64(
                &client,
                "SELECT max(file_count) FROM shoal.shards WHERE table_name = 'blobs'",
            )
            .await?,
            scalar_i64(
                &client,
                "SELECT sum(file_count) FROM shoal.shards WHERE table_name = 'blobs'",
            )
            .await?,
        );
        if sum != files {
            (files, unchanged_since) = (sum, Instant::now());
        }
        if max < 8 || unchanged_since.elapsed() > Duration::from_secs(25) {
            break;
        }
        if settle.elapsed() > Duration::from_secs(300) {
            return Err(err("compaction did not settle within 300 s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("compaction settled in {:.0?}", settle.elapsed());
    let total_bytes = scalar_i64(
        &client,
        "SELECT sum(bytes) FROM shoal.tables WHERE table_name = 'blobs'",
    )
    .await?;
    eprintln!(
        "loaded {rows} rows, {total_bytes} bytes in {:.0?}",
        load_start.elapsed()
    );

    wait_for_cleanup(&metrics).await?;

    // 1. One shard: `cp` between the two data directories, then a move; back and forth
    //    SINGLE_MOVE_ROUNDS times after a warm-up move, medians reported (`cp` + `sync` of
    //    ~100 MB alone varies 2x from run to run here).
    let shard = scalar_i64(
        &client,
        "SELECT shard_id FROM shoal.shards WHERE table_name = 'blobs' ORDER BY bytes DESC LIMIT 1",
    )
    .await?;
    let port0 = scalar_i64(
        &client,
        &format!("SELECT port FROM shoal.shards WHERE shard_id = {shard}"),
    )
    .await?;
    let (mut holder, mut other, table_subdir) = {
        let src = workers
            .iter()
            .position(|(p, _)| i64::from(*p) == port0)
            .unwrap_or(0);
        let table_dir = std::fs::read_dir(workers[src].1.join("shards"))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join(shard.to_string()).exists())
            .ok_or_else(|| err("shard directory not found"))?;
        let subdir = table_dir
            .file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| err("shard directory has no name"))?;
        (src, (src + 1) % 3, subdir)
    };
    let mbps = |b: u64, s: f64| b as f64 / 1e6 / s.max(1e-9);
    let (mut cp_rates, mut move_rates) = (Vec::new(), Vec::new());
    let mut shard_bytes = 0;
    // The first round is a warm-up, not counted (the worker's first raw connections, the
    // target's first staging directories). The deferred deletes of the files compaction merged
    // away are done (waited for above), so the directory `cp -r` copies holds exactly the
    // shard's live files.
    for round in 0..=SINGLE_MOVE_ROUNDS {
        let src_dir = workers[holder]
            .1
            .join("shards")
            .join(&table_subdir)
            .join(shard.to_string());
        shard_bytes = dir_bytes(&src_dir);
        let cp_target = workers[other].1.join("cp-baseline");
        let t = Instant::now();
        let status = Command::new("cp")
            .arg("-r")
            .arg(&src_dir)
            .arg(&cp_target)
            .status()?;
        let _ = Command::new("sync").status();
        let cp_secs = t.elapsed().as_secs_f64();
        if !status.success() {
            return Err(err("cp failed"));
        }
        let _ = std::fs::remove_dir_all(&cp_target);
        let t = Instant::now();
        client
            .batch_execute(&format!(
                "SELECT move_shard({shard}, '127.0.0.1', {})",
                workers[other].0
            ))
            .await
            .map_err(err)?;
        let move_secs = t.elapsed().as_secs_f64();
        eprintln!(
            "single move {round}{}: {:.1} MB, cp + sync {:.3} s ({:.0} MB/s), move_shard {:.3} s ({:.0} MB/s)",
            if round == 0 { " (warm-up, not counted)" } else { "" },
            shard_bytes as f64 / 1e6,
            cp_secs,
            mbps(shard_bytes, cp_secs),
            move_secs,
            mbps(shard_bytes, move_secs)
        );
        if round > 0 {
            cp_rates.push(mbps(shard_bytes, cp_secs));
            move_rates.push(mbps(shard_bytes, move_secs));
        }
        std::mem::swap(&mut holder, &mut other);
    }
    let cp_mbps = percentile(&mut cp_rates, 0.5);
    let move_mbps = percentile(&mut move_rates, 0.5);

    // 2. Read latency while idle.
    wait_for_cleanup(&metrics).await?;
    let reader_client = connect(cport, "shoal").await?;
    let point = reader_client
        .prepare("SELECT count(*) FROM blobs WHERE id = $1")
        .await
        .map_err(err)?;
    let mut idle = Vec::new();
    for i in 0..IDLE_READS {
        let id = (i * 7919) % rows + 1;
        let t = Instant::now();
        reader_client
            .query_one(&point, &[&(id as i64)])
            .await
            .map_err(err)?;
        idle.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    // 3. Rebalance 3 → 4 workers under a writer and a reader.
    client
        .batch_execute(&format!("SELECT add_node('127.0.0.1', {})", workers[3].0))
        .await
        .map_err(err)?;
    let stop = Arc::new(AtomicBool::new(false));
    let write_errors = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    // Each read during the rebalance as (start, ms since `origin`; latency, ms): the slowest
    // are printed with their time, to line them up with the move steps in the coordinator's
    // log (`SHOAL_BENCH_LOG=info --keep`).
    let origin = Instant::now();
    let busy = Arc::new(Mutex::new(Vec::<(f64, f64)>::new()));
    // Reads before the rebalance starts, with the writer already running: what the rebalance
    // itself adds to read latency, apart from the writer's share.
    let steady = Arc::new(Mutex::new(Vec::<f64>::new()));
    let phase = Arc::new(AtomicU8::new(if with_writer { WARMING_UP } else { STEADY }));
    let writer = {
        let (stop, errors, writes) = (
            Arc::clone(&stop),
            Arc::clone(&write_errors),
            Arc::clone(&writes),
        );
        let wc = connect(cport, "shoal").await?;
        let mut id = rows + 1;
        tokio::spawn(async move {
            while with_writer && !stop.load(Ordering::Relaxed) {
                let values: Vec<String> = (id..id + 100).map(|i| format!("({i}, 'w')")).collect();
                match wc
                    .batch_execute(&format!("INSERT INTO blobs VALUES {}", values.join(",")))
                    .await
                {
                    Ok(()) => {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                id += 100;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let reader = {
        let (stop, busy, steady, phase) = (
            Arc::clone(&stop),
            Arc::clone(&busy),
            Arc::clone(&steady),
            Arc::clone(&phase),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = (i * 7919) % rows + 1;
                let during = phase.load(Ordering::Relaxed);
                let t = Instant::now();
                if reader_client
                    .query_one(&point, &[&(id as i64)])
                    .await
                    .is_ok()
                {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if during == REBALANCING {
                        if let Ok(mut v) = busy.lock() {
                            v.push((t.duration_since(origin).as_secs_f64() * 1000.0, ms));
                        }
                    } else if during == STEADY {
                        if let Ok(mut v) = steady.lock() {
                            v.push(ms);
                        }
                    }
                }
                i += 1;
            }
        })
    };
    let table_files = "SELECT sum(file_count) FROM shoal.shards WHERE table_name = 'blobs'";
    if with_writer {
        tokio::time::sleep(WRITER_WARM_UP).await;
        phase.store(STEADY, Ordering::Relaxed);
    }
    let files_at_steady = scalar_i64(&client, table_files).await?;
    tokio::time::sleep(STEADY_PHASE).await;
    let files_at_rebalance = scalar_i64(&client, table_files).await?;
    phase.store(REBALANCING, Ordering::Relaxed);
    let t = Instant::now();
    let rebalance_from_ms = t.duration_since(origin).as_secs_f64() * 1000.0;
    let wall_clock_start = chrono::Utc::now().format("%H:%M:%S%.3f");
    let start = match max_bandwidth_mb {
        Some(mb) => format!("SELECT rebalance_start(max_bandwidth_mb => {mb})"),
        None => "SELECT rebalance_start()".to_string(),
    };
    let job = scalar_i64(&client, &start).await?;
    client
        .batch_execute("SELECT rebalance_wait()")
        .await
        .map_err(err)?;
    let rebalance_secs = t.elapsed().as_secs_f64();
    let files_at_end = scalar_i64(&client, table_files).await?;
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let _ = reader.await;
    let moved = scalar_i64(
        &client,
        &format!(
            "SELECT sum(bytes_total) FROM shoal.tasks WHERE job_id = {job} AND state = 'done'"
        ),
    )
    .await?;
    let moves = scalar_i64(
        &client,
        &format!("SELECT count(*) FROM shoal.tasks WHERE job_id = {job}"),
    )
    .await?;
    let (fence_p50, fence_p99, fences) = scrape_fence(&metrics).await?;
    let mut slowest = busy.lock().map(|v| v.clone()).unwrap_or_default();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut during: Vec<f64> = slowest.iter().map(|&(_, ms)| ms).collect();
    eprintln!(
        "files of the table: {files_at_steady} when reads without a rebalance began, {files_at_rebalance} when the rebalance began, {files_at_end} when it ended"
    );
    eprintln!("rebalance started at {wall_clock_start} (UTC); slowest reads during it:");
    for (at, ms) in slowest.iter().take(5) {
        eprintln!("  +{:.0} ms: {ms:.1} ms", at - rebalance_from_ms);
    }
    let idle_p99 = percentile(&mut idle, 0.99);
    let during_p99 = percentile(&mut during, 0.99);
    let mut steady = steady.lock().map(|v| v.clone()).unwrap_or_default();
    let steady_p99 = percentile(&mut steady, 0.99);
    let (plan_time, plan_steps) = plan_100k()?;

    println!();
    println!(
        "shoal bench --scenario rebalance: {rows} rows, {:.2} GB in 32 shards, 3 -> 4 workers on one machine, rebalance bandwidth {}, {}",
        total_bytes as f64 / 1e9,
        max_bandwidth_mb.map_or("unlimited".to_string(), |mb| format!("{mb} MB/s per move")),
        if with_writer { "with a concurrent writer" } else { "no writer (--no-writer)" }
    );
    println!("| measurement | Shoal | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| move of one shard ({:.0} MB), MB/s, median of {SINGLE_MOVE_ROUNDS} (cp too) | {:.0} | cp between the data dirs: {:.0} | {:.2}x | >= 0.8x |",
        shard_bytes as f64 / 1e6,
        move_mbps,
        cp_mbps,
        move_mbps / cp_mbps.max(1e-9)
    );
    println!(
        "| rebalance 3 -> 4 workers: {moves} moves, {:.2} GB | {rebalance_secs:.1} s, {:.0} MB/s | - | - | - |",
        moved as f64 / 1e9,
        mbps(moved as u64, rebalance_secs)
    );
    println!(
        "| write fence per move (ms), {fences} moves, concurrent writer | p50 {fence_p50:.0}, p99 {fence_p99:.0} | - | - | p99 < 200 ms |"
    );
    println!(
        "| writer during the rebalance | {} INSERTs, {} failed | - | - | 0 failed |",
        writes.load(Ordering::Relaxed),
        write_errors.load(Ordering::Relaxed)
    );
    // The target compares the same load with and without a rebalance; with the writer that
    // is the writer-only phase (the writer alone moves the read p99 far from the idle one).
    println!(
        "| point read p99 (ms), {} reads during rebalance | {during_p99:.1} | idle (no writer, no rebalance): {idle_p99:.1} | {:.2}x | {} |",
        during.len(),
        during_p99 / idle_p99.max(1e-9),
        if with_writer { "-" } else { "<= 1.5x" }
    );
    if with_writer {
        println!(
            "| point read p99 (ms) during the rebalance, against the same writer without one | {during_p99:.1} | writer only, {} reads: {steady_p99:.1} | {:.2}x | <= 1.5x |",
            steady.len(),
            during_p99 / steady_p99.max(1e-9)
        );
    }
    println!(
        "| plan 100,000 shards on 100 nodes ({plan_steps} moves) | {:.0} ms | - | - | < 1 s |",
        plan_time.as_secs_f64() * 1000.0
    );
    drop(procs);
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}
