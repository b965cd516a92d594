//! Correctness against PostgreSQL: the same generated data (200k events with NULLs in a
//! distributed table, plus a reference table) is loaded into Shoal and into a scratch
//! PostgreSQL 15; every query of `tests/sql/pg_oracle.sql` must print identically through
//! `psql -X -A -t` on both.

use std::path::{Path, PathBuf};

use shoal_e2e::data::{events_csv, kinds_csv, EVENTS_DDL, KINDS_DDL};
use shoal_e2e::{stderr_of, stdout_of, write_file, Cluster, PgServer, PsqlTarget};

const ROWS: usize = 200_000;
const SEED: u64 = 20_240_101;

fn queries() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/pg_oracle.sql");
    let text = std::fs::read_to_string(&path).expect("read pg_oracle.sql");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("--") {
            continue;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(t);
        if t.ends_with(';') {
            out.push(std::mem::take(&mut cur));
        }
    }
    assert!(
        cur.trim().is_empty(),
        "unterminated statement at the end of pg_oracle.sql: {cur}"
    );
    out
}

fn has_order_by(q: &str) -> bool {
    q.to_ascii_lowercase().contains("order by")
}

/// Output lines, sorted when the query defines no order.
fn normalized(q: &str, out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    if !has_order_by(q) {
        lines.sort();
    }
    lines
}

struct Data {
    _dir: tempfile::TempDir,
    events: PathBuf,
    kinds: PathBuf,
}

fn generate() -> Data {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = write_file(dir.path(), "events.csv", events_csv(ROWS, SEED).as_bytes());
    let kinds = write_file(dir.path(), "kinds.csv", kinds_csv().as_bytes());
    Data {
        _dir: dir,
        events,
        kinds,
    }
}

fn copy_cmd(table: &str, file: &Path) -> String {
    format!("\\copy {table} FROM '{}' WITH (FORMAT csv)", file.display())
}

/// Load the data into PostgreSQL and return every query's output.
fn postgres_side(pg: &PgServer, data: &Data, queries: &[String]) -> Vec<String> {
    pg.psql_ok(EVENTS_DDL);
    pg.psql_ok(KINDS_DDL);
    pg.psql_ok(&copy_cmd("events", &data.events));
    pg.psql_ok(&copy_cmd("kinds", &data.kinds));
    pg.psql_ok("ANALYZE");
    assert_eq!(
        pg.psql_ok("SELECT count(*) FROM events").trim(),
        ROWS.to_string()
    );
    queries.iter().map(|q| pg.psql_ok(q)).collect()
}

/// Where two outputs first differ, for the failure report.
fn first_difference(want: &[String], got: &[String]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(w, g)| w != g)
        .unwrap_or(want.len().min(got.len()));
    format!(
        "first difference at row {} of {} (PostgreSQL) / {} (Shoal):\n  PostgreSQL: {}\n  Shoal:      {}",
        at + 1,
        want.len(),
        got.len(),
        want.get(at).map_or("<no row>", String::as_str),
        got.get(at).map_or("<no row>", String::as_str)
    )
}

fn truncate_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= n {
        s.to_string()
    } else {
        format!(
            "{}\n... ({} lines in all)",
            lines[..n].join("\n"),
            lines.len()
        )
    }
}

/// The queries themselves are sound: each runs on PostgreSQL, returns rows, and prints the
/// same whatever plan PostgreSQL picks (so no query depends on an undefined order).
#[test]
fn oracle_queries_are_deterministic_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let data = generate();
    let qs = queries();
    assert!(qs.len() >= 30, "only {} oracle queries", qs.len());
    let first = postgres_side(&pg, &data, &qs);
    let mut problems = Vec::new();
    let target: PsqlTarget = pg.psql_target();
    let print = std::env::var_os("SHOAL_E2E_PRINT").is_some();
    for (q, out) in qs.iter().zip(&first) {
        if print {
            eprintln!("QUERY: {q}\n{}\n", truncate_lines(out, 12));
        }
        if out.trim().is_empty() {
            problems.push(format!("returns nothing on PostgreSQL: {q}"));
        }
        if !has_order_by(q) && out.lines().count() > 1 {
            problems.push(format!("returns several rows but has no ORDER BY: {q}"));
        }
        // Same query under different plans: no hash aggregation / hash joins, no parallelism.
        let again = target.run_args(
            &[
                "-q",
                "-c",
                "SET enable_hashagg = off; SET enable_hashjoin = off; SET max_parallel_workers_per_gather = 0; SET enable_indexscan = off",
                "-c",
                q,
            ],
            None,
        );
        assert!(again.status.success(), "{q}: {}", stderr_of(&again));
        if normalized(q, &stdout_of(&again)) != normalized(q, out) {
            problems.push(format!(
                "output depends on the plan (add a total ORDER BY): {q}\n--- default plan:\n{}\n--- other plan:\n{}",
                truncate_lines(out, 20),
                truncate_lines(&stdout_of(&again), 20)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    eprintln!("{} oracle queries ran on PostgreSQL", qs.len());
}

/// Shoal returns exactly what PostgreSQL returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_matches_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let data = generate();
    let qs = queries();
    assert!(qs.len() >= 30, "only {} oracle queries", qs.len());
    let expected = postgres_side(&pg, &data, &qs);

    let cluster = Cluster::start(3).await;
    cluster.psql_ok(EVENTS_DDL);
    cluster.psql_ok("SELECT create_distributed_table('events', 'id', shard_count => 8)");
    cluster.psql_ok(KINDS_DDL);
    // kinds is loaded first and made a reference table afterwards (existing rows move).
    cluster.psql_ok(&copy_cmd("kinds", &data.kinds));
    cluster.psql_ok("SELECT create_reference_table('kinds')");
    let started = std::time::Instant::now();
    cluster.psql_ok(&copy_cmd("events", &data.events));
    eprintln!("loaded {ROWS} rows into Shoal in {:.1?}", started.elapsed());
    assert_eq!(
        cluster.psql_ok("SELECT count(*) FROM events").trim(),
        ROWS.to_string()
    );
    assert_eq!(
        cluster
            .psql_ok("SELECT kind FROM shoal.tables WHERE table_name = 'events'")
            .trim(),
        "distributed"
    );

    let mut failures = Vec::new();
    for (q, want) in qs.iter().zip(&expected) {
        let out = cluster.psql(q);
        if !out.status.success() {
            failures.push(format!(
                "QUERY: {q}\n  Shoal failed: {}\n  PostgreSQL:\n{}",
                stderr_of(&out).trim(),
                truncate_lines(want, 15)
            ));
            continue;
        }
        let got = stdout_of(&out);
        let (g, w) = (normalized(q, &got), normalized(q, want));
        if g != w {
            failures.push(format!(
                "QUERY: {q}\n{}\n--- PostgreSQL:\n{}\n--- Shoal:\n{}",
                first_difference(&w, &g),
                truncate_lines(want, 25),
                truncate_lines(&got, 25)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} oracle queries differ from PostgreSQL:\n\n{}",
        failures.len(),
        qs.len(),
        failures.join("\n\n")
    );
    eprintln!("all {} oracle queries match PostgreSQL", qs.len());
}
