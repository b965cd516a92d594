//! `tenant` (issue #15, item 4): one tenant's aggregate on a multi-tenant table.
//!
//! The `events` rows of the `core` scenario, distributed by `device_id` (5000 devices, the
//! tenants; 32 shards), loaded with COPY; then `SELECT kind, count(*), avg(value), sum(amount)
//! FROM events WHERE device_id = K GROUP BY kind` for 40 different tenants, timed through the
//! coordinator, against single-process DataFusion over the very same Parquet files and against
//! PostgreSQL 15 with a btree index on `device_id` (what Citus answers from on each worker).
//! Target: median ≤ 10 ms on 20M rows (`--rows 20000000`).

use std::path::PathBuf;
use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::{
    connect, copy_rows, err, events_input, parquet_files, run_datafusion, start_cluster,
    BenchError, ScratchPg, CREATE,
};

/// Tenants queried, spread over the 5000 devices the rows use.
const TENANTS: u32 = 40;

fn tenant_query(device: u32) -> String {
    format!(
        "SELECT kind, count(*), avg(value), sum(amount) FROM events \
         WHERE device_id = {device} GROUP BY kind ORDER BY kind"
    )
}

/// Runs `f` once per tenant after one warm-up run; the median and the largest time, in ms.
async fn per_tenant(
    mut f: impl AsyncFnMut(String) -> Result<(), BenchError>,
) -> Result<(f64, f64), BenchError> {
    f(tenant_query(1)).await?;
    let mut times = Vec::new();
    for i in 0..TENANTS {
        let sql = tenant_query(i * 5000 / TENANTS + 7);
        let start = Instant::now();
        f(sql).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

pub async fn run(rows: u64, workers: usize, pg_bin: PathBuf, keep: bool) -> Result<(), BenchError> {
    let root = std::env::temp_dir().join(format!("shoal-bench-tenant-{}", std::process::id()));
    let (procs, cport, _, _) = start_cluster(&root, workers).await?;
    let client = connect(cport, "shoal").await?;
    client.batch_execute(CREATE).await.map_err(err)?;
    client
        .batch_execute("SELECT create_distributed_table('events', 'device_id', shard_count => 32)")
        .await
        .map_err(err)?;
    let input = events_input(rows);
    let load = copy_rows(&client, &input).await?;
    let files: i64 = client
        .query_one(
            "SELECT sum(file_count)::bigint FROM shoal.shards WHERE table_name = 'events'",
            &[],
        )
        .await
        .map_err(err)?
        .get(0);

    // The answer for one tenant must be the baseline's, or the times mean nothing.
    let answer = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<Vec<String>> {
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    };
    let shoal_answer = answer(client.simple_query(&tenant_query(42)).await.map_err(err)?);
    let shoal = per_tenant(async |sql| {
        client.simple_query(&sql).await.map_err(err)?;
        Ok(())
    })
    .await?;
    // the same without router execution: the coordinator's plan, the workers returning
    // the tenant's rows (partial aggregates where the pushdown has them)
    let unrouted = connect(cport, "shoal").await?;
    unrouted
        .batch_execute("SET shoal.distributed_execution = off")
        .await
        .map_err(err)?;
    let shoal_off = per_tenant(async |sql| {
        unrouted.simple_query(&sql).await.map_err(err)?;
        Ok(())
    })
    .await?;

    let mut paths = Vec::new();
    parquet_files(&root, &mut paths);
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(paths.clone(), ParquetReadOptions::default())
        .await
        .map_err(err)?;
    ctx.register_table("events", df.into_view()).map_err(err)?;
    let datafusion = per_tenant(async |sql| run_datafusion(&ctx, &sql).await).await?;

    let pg = if pg_bin.join("initdb").exists() {
        let pg = ScratchPg::start(&pg_bin)?;
        let pgc = connect(pg.port, "postgres").await?;
        pgc.batch_execute(CREATE).await.map_err(err)?;
        copy_rows(&pgc, &input).await?;
        pgc.batch_execute("CREATE INDEX ON events (device_id); ANALYZE events")
            .await
            .map_err(err)?;
        let pg_answer = answer(pgc.simple_query(&tenant_query(42)).await.map_err(err)?);
        let times = per_tenant(async |sql| {
            pgc.simple_query(&sql).await.map_err(err)?;
            Ok(())
        })
        .await?;
        Some((pg, pg_answer, times))
    } else {
        None
    };
    if let Some((_, pg_answer, _)) = &pg {
        // avg(value) is a float: PostgreSQL and Shoal may differ in its last digits
        let key = |a: &[Vec<String>]| -> Vec<(String, String, String)> {
            a.iter()
                .map(|r| (r[0].clone(), r[1].clone(), r[3].clone()))
                .collect()
        };
        if key(pg_answer) != key(&shoal_answer) {
            return Err(err(format!(
                "tenant 42: Shoal answered {shoal_answer:?}, PostgreSQL {pg_answer:?}"
            )));
        }
    }

    println!();
    println!(
        "shoal bench --scenario tenant: {rows} events rows by device_id (5000 tenants), \
         {workers} workers, 32 shards, {files} parquet files, loaded in {:.1} s",
        load.as_secs_f64()
    );
    println!("| one-tenant aggregate, {TENANTS} tenants (ms) | median | slowest | target |");
    println!("|---|---|---|---|");
    println!(
        "| Shoal | {:.1} | {:.1} | median <= 10 ms |",
        shoal.0, shoal.1
    );
    println!(
        "| Shoal, shoal.distributed_execution = off (no router) | {:.1} | {:.1} | - |",
        shoal_off.0, shoal_off.1
    );
    println!(
        "| DataFusion, same files, one process | {:.1} | {:.1} | - |",
        datafusion.0, datafusion.1
    );
    match &pg {
        Some((_, _, t)) => println!(
            "| PostgreSQL 15, btree index on device_id | {:.1} | {:.1} | - |",
            t.0, t.1
        ),
        None => println!(
            "| PostgreSQL 15 | not installed ({}) | - | - |",
            pg_bin.display()
        ),
    }
    drop(pg);
    drop(procs);
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(())
}
