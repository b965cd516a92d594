//! `shoal bench --scenario transactions` (issue #13): small transactions against PostgreSQL
//! 15 on the same machine, in one run:
//! - 1000 single-row INSERTs in one transaction (BEGIN, 1000 x INSERT, COMMIT), the way an
//!   application's loop of inserts runs;
//! - 200 single-row INSERTs in autocommit, each its own catalog commit (and catalog journal
//!   entry);
//! - pgbench's built-in TPC-B-like script, scale 1, 4 clients, with `--max-tries` retrying
//!   40001, on pgbench's tables (made the way `pgbench -i` makes them; distributed on Shoal);
//! - pgbench's built-in select-only script (`-S`, a point SELECT by `aid`, the distribution
//!   column) with prepared statements (`-M prepared`), 4 clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{connect, err, start_cluster, ScratchPg};
use crate::BenchError;

const TABLES: [(&str, &str, &str); 4] = [
    (
        "pgbench_branches",
        "bid int NOT NULL, bbalance int, filler char(88)",
        "bid",
    ),
    (
        "pgbench_tellers",
        "tid int NOT NULL, bid int, tbalance int, filler char(84)",
        "tid",
    ),
    (
        "pgbench_accounts",
        "aid int NOT NULL, bid int, abalance int, filler char(84)",
        "aid",
    ),
    (
        "pgbench_history",
        "tid int, bid int, aid int NOT NULL, delta int, mtime timestamp, filler char(22)",
        "aid",
    ),
];

const LOAD: [&str; 3] = [
    "INSERT INTO pgbench_branches (bid, bbalance) SELECT b, 0 AS bbalance FROM generate_series(1, 1) AS g(b)",
    "INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT t, (t - 1) / 10 + 1 AS bid, 0 AS tbalance FROM generate_series(1, 10) AS g(t)",
    "INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT a, (a - 1) / 100000 + 1 AS bid, 0 AS abalance, '' AS filler FROM generate_series(1, 100000) AS g(a)",
];

/// One single-row INSERT into `tx_rows`, as an application's loop sends it.
async fn insert_row(client: &tokio_postgres::Client, id: usize) -> Result<(), BenchError> {
    client
        .execute(
            "INSERT INTO tx_rows (id, name) VALUES ($1, $2)",
            &[&(id as i64), &format!("row {id}")],
        )
        .await
        .map_err(err)?;
    Ok(())
}

/// The median of `runs` timings of 1000 single-row INSERTs in one transaction, in ms.
async fn thousand_inserts(client: &tokio_postgres::Client, runs: usize) -> Result<f64, BenchError> {
    let mut t = Vec::new();
    for run in 0..runs + 1 {
        let start = Instant::now();
        client.batch_execute("BEGIN").await.map_err(err)?;
        for i in 0..1000 {
            let id = run * 1000 + i;
            insert_row(client, id).await?;
        }
        client.batch_execute("COMMIT").await.map_err(err)?;
        if run > 0 {
            // the first run warms up
            t.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// The median of `runs` timings of `n` single-row INSERTs, each its own transaction
/// (autocommit), in ms per INSERT: every one commits in the catalog (and, on Shoal, waits
/// for a worker to hold the catalog journal's entry).
async fn autocommit_inserts(
    client: &tokio_postgres::Client,
    n: usize,
    runs: usize,
) -> Result<f64, BenchError> {
    let mut t = Vec::new();
    for run in 0..runs + 1 {
        let start = Instant::now();
        for i in 0..n {
            let id = 1_000_000 + run * n + i;
            insert_row(client, id).await?;
        }
        if run > 0 {
            t.push(start.elapsed().as_secs_f64() * 1000.0 / n as f64);
        }
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// Runs pgbench's TPC-B-like script against `port` for `secs`; its tps and the share of
/// transactions it had to retry. Checks the books balance afterwards.
async fn pgbench_tps(
    pgbench: &Path,
    client: &tokio_postgres::Client,
    port: u16,
    user: &str,
    dbname: &str,
    secs: u64,
) -> Result<(f64, f64), BenchError> {
    let out = Command::new(pgbench)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .args(["-n", "-c", "4", "-j", "2", "-T", &secs.to_string()])
        .args(["--max-tries=100000", "-M", "extended", dbname])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(err(format!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let tps = field("tps = ").ok_or_else(|| err(format!("no tps in pgbench output: {text}")))?;
    let processed = field("number of transactions actually processed: ").unwrap_or(0.0);
    let retried = field("number of transactions retried: ").unwrap_or(0.0);
    let books = client
        .simple_query(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts), \
             (SELECT sum(tbalance) FROM pgbench_tellers), \
             (SELECT sum(bbalance) FROM pgbench_branches), \
             (SELECT sum(delta) FROM pgbench_history)",
        )
        .await
        .map_err(err)?;
    if let Some(tokio_postgres::SimpleQueryMessage::Row(r)) = books.first() {
        let v: Vec<Option<&str>> = (0..4).map(|i| r.get(i)).collect();
        if v.iter().any(|x| *x != v[3]) {
            return Err(err(format!("pgbench left the books unbalanced: {v:?}")));
        }
    }
    let retried_share = if processed > 0.0 {
        retried / processed
    } else {
        0.0
    };
    Ok((tps, retried_share))
}

/// pgbench's select-only script (`-S`: one point SELECT by primary key per transaction)
/// with prepared statements, 4 clients, against `port` for `secs`: its tps.
fn point_select_tps(
    pgbench: &Path,
    port: u16,
    user: &str,
    dbname: &str,
    secs: u64,
) -> Result<f64, BenchError> {
    let out = Command::new(pgbench)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .args(["-n", "-S", "-c", "4", "-j", "2", "-T", &secs.to_string()])
        .args(["-M", "prepared", dbname])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(err(format!(
            "pgbench -S failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if failed > 0 {
        return Err(err(format!(
            "pgbench -S: {failed} transactions failed: {text}"
        )));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err(format!("no tps in pgbench output: {text}")))
}

async fn setup(client: &tokio_postgres::Client, shoal: bool) -> Result<(), BenchError> {
    client
        .batch_execute("CREATE TABLE tx_rows (id bigint NOT NULL, name text)")
        .await
        .map_err(err)?;
    if shoal {
        client
            .batch_execute("SELECT create_distributed_table('tx_rows', 'id')")
            .await
            .map_err(err)?;
    }
    for (table, columns, key) in TABLES {
        client
            .batch_execute(&format!("CREATE TABLE {table} ({columns})"))
            .await
            .map_err(err)?;
        if shoal {
            client
                .batch_execute(&format!(
                    "SELECT create_distributed_table('{table}', '{key}')"
                ))
                .await
                .map_err(err)?;
        }
    }
    for sql in LOAD {
        client.batch_execute(sql).await.map_err(err)?;
    }
    // The keys `pgbench -i` declares: PostgreSQL's point SELECTs use their indexes (Shoal
    // keeps none; it routes a SELECT by the distribution column to one shard).
    for (table, _, key) in &TABLES[..3] {
        client
            .batch_execute(&format!("ALTER TABLE {table} ADD PRIMARY KEY ({key})"))
            .await
            .map_err(err)?;
    }
    Ok(())
}

pub async fn run(workers: usize, pg_bin: PathBuf, secs: u64, keep: bool) -> Result<(), BenchError> {
    let pgbench = [pg_bin.join("pgbench"), PathBuf::from("/usr/bin/pgbench")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| err(format!("pgbench not found in {}", pg_bin.display())))?;
    if !pg_bin.join("initdb").exists() {
        return Err(err(format!(
            "PostgreSQL 15 (initdb) not found in {}: the baseline is required",
            pg_bin.display()
        )));
    }
    let root = std::env::temp_dir().join(format!("shoal-bench-tx-{}", std::process::id()));
    let (procs, cport, _, _) = start_cluster(&root, workers).await?;
    let shoal = connect(cport, "shoal").await?;
    setup(&shoal, true).await?;
    let shoal_inserts = thousand_inserts(&shoal, 5).await?;
    let shoal_autocommit = autocommit_inserts(&shoal, 200, 3).await?;
    let (shoal_tps, shoal_retried) =
        pgbench_tps(&pgbench, &shoal, cport, "shoal", "shoal", secs).await?;
    let shoal_select = point_select_tps(&pgbench, cport, "shoal", "shoal", secs)?;
    drop(shoal);
    drop(procs);

    let pg = ScratchPg::start(&pg_bin)?;
    let pgc = connect(pg.port, "postgres").await?;
    setup(&pgc, false).await?;
    let pg_inserts = thousand_inserts(&pgc, 5).await?;
    let pg_autocommit = autocommit_inserts(&pgc, 200, 3).await?;
    let (pg_tps, pg_retried) =
        pgbench_tps(&pgbench, &pgc, pg.port, "postgres", "postgres", secs).await?;
    let pg_select = point_select_tps(&pgbench, pg.port, "postgres", "postgres", secs)?;
    drop(pgc);
    drop(pg);

    println!();
    println!(
        "shoal bench transactions: {workers} workers, 32 shards per table; pgbench scale 1, 4 clients, {secs} s, extended protocol"
    );
    println!("| measurement | Shoal | PostgreSQL 15 | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| 1000 single-row INSERTs in one transaction (ms, median of 5) | {shoal_inserts:.0} | {pg_inserts:.0} | {:.1}x | <= 10x |",
        shoal_inserts / pg_inserts
    );
    println!(
        "| 200 single-row INSERTs, autocommit (ms per INSERT, median of 3) | {shoal_autocommit:.2} | {pg_autocommit:.2} | {:.1}x | - |",
        shoal_autocommit / pg_autocommit
    );
    println!(
        "| pgbench TPC-B-like (tps) | {shoal_tps:.1} ({:.0}% retried) | {pg_tps:.1} ({:.0}% retried) | {:.3}x | - |",
        shoal_retried * 100.0,
        pg_retried * 100.0,
        shoal_tps / pg_tps
    );
    println!(
        "| pgbench select-only, point SELECT by key, -M prepared (tps) | {shoal_select:.1} | {pg_select:.1} | {:.3}x | - |",
        shoal_select / pg_select
    );
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}
