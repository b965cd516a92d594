//! TPC-H at scale factor 0.1 against PostgreSQL: the same generated data (`tpchgen`, the
//! reference generator's rows) is loaded into a 3-worker Shoal cluster — lineitem and orders
//! colocated on the order key, part and partsupp on the part key, customer distributed,
//! nation, region and supplier reference tables — and into the scratch PostgreSQL 15; all 22
//! queries (`server/bench/tpch/qN.sql`, the specification's validation parameters) must give
//! the same rows on both, and each must run in stages on the workers, the coordinator reading
//! no table itself (its EXPLAIN), the colocated and reference joins it can push pushed, none falling back
//! to the coordinator. The schema, the distribution and the queries are the `tpch` bench
//! scenario's (`shoal_bench::tpch`).
//!
//! Values are compared as psql prints them, but for numeric quotients and averages:
//! PostgreSQL prints those with at least 16 fractional digits, Shoal with the scale its
//! decimal type carries (README, Compatibility), so two decimals are equal when they agree
//! rounded to the fewer fractional digits of the two.

use std::path::{Path, PathBuf};
use std::time::Instant;

use shoal_bench::tpch::{shoal_ddl, table_text, PG_INDEXES, QUERIES, TABLES};
use shoal_e2e::{Cluster, PgServer, PsqlTarget};

const SCALE_FACTOR: f64 = 0.1;

/// One `.tbl` file per table (`|` between fields), for psql's `\copy`.
fn generate(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    TABLES
        .iter()
        .map(|(table, _, _)| {
            let path = dir.join(format!("{table}.tbl"));
            let text: Vec<u8> = table_text(table, SCALE_FACTOR, 100_000)
                .expect("a TPC-H table")
                .concat();
            std::fs::write(&path, text).expect("write .tbl");
            (*table, path)
        })
        .collect()
}

fn load(target: &PsqlTarget, files: &[(&'static str, PathBuf)], shoal: bool) {
    for (table, columns, distribution) in TABLES {
        if shoal {
            for stmt in shoal_ddl(table, columns, *distribution) {
                target.ok(&stmt);
            }
        } else {
            target.ok(&format!("CREATE TABLE {table} ({columns})"));
        }
    }
    for (table, path) in files {
        target.ok(&format!(
            "\\copy {table} FROM '{}' WITH (FORMAT text, DELIMITER '|')",
            path.display()
        ));
    }
    if !shoal {
        target.ok(PG_INDEXES);
    }
}

/// Digits after the decimal point of a value psql printed as a decimal, if it is one.
fn decimal_scale(v: &str) -> Option<usize> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (all_digits(int) && all_digits(frac)).then_some(frac.len())
}

/// `v` rounded half away from zero to `scale` fractional digits, exactly (as text).
fn round_decimal(v: &str, scale: usize) -> String {
    let negative = v.starts_with('-');
    let digits = v.trim_start_matches('-');
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut all: Vec<u8> = int.bytes().chain(frac.bytes().take(scale)).collect();
    all.extend(std::iter::repeat_n(b'0', scale.saturating_sub(frac.len())));
    if frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5') {
        let mut i = all.len();
        loop {
            if i == 0 {
                all.insert(0, b'1');
                break;
            }
            i -= 1;
            if all[i] == b'9' {
                all[i] = b'0';
            } else {
                all[i] += 1;
                break;
            }
        }
    }
    let split = all.len() - scale;
    let (i, f) = all.split_at(split);
    let int = String::from_utf8_lossy(i)
        .trim_start_matches('0')
        .to_string();
    let int = if int.is_empty() { "0".into() } else { int };
    let body = if scale == 0 {
        int
    } else {
        format!("{int}.{}", String::from_utf8_lossy(f))
    };
    let zero = body.bytes().all(|b| b == b'0' || b == b'.');
    if negative && !zero {
        format!("-{body}")
    } else {
        body
    }
}

/// Whether two printed values are the same answer (see the module doc for decimals).
fn same_value(want: &str, got: &str) -> bool {
    if want == got {
        return true;
    }
    match (decimal_scale(want), decimal_scale(got)) {
        (Some(w), Some(g)) => {
            let scale = w.min(g);
            round_decimal(want, scale) == round_decimal(got, scale)
        }
        _ => false,
    }
}

/// The first difference between PostgreSQL's rows and Shoal's, if any.
fn difference(want: &str, got: &str) -> Option<String> {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    if w.len() != g.len() {
        return Some(format!(
            "{} rows on PostgreSQL, {} on Shoal",
            w.len(),
            g.len()
        ));
    }
    for (i, (wl, gl)) in w.iter().zip(&g).enumerate() {
        let (wf, gf): (Vec<&str>, Vec<&str>) = (wl.split('|').collect(), gl.split('|').collect());
        if wf.len() != gf.len() || wf.iter().zip(&gf).any(|(a, b)| !same_value(a, b)) {
            return Some(format!(
                "row {}:\n  PostgreSQL: {wl}\n  Shoal:      {gl}",
                i + 1
            ));
        }
    }
    None
}

#[test]
fn decimals_compare_at_the_shorter_scale() {
    assert!(same_value("25.5220058532573370", "25.522006"));
    assert!(same_value("0.04998529583839761162", "0.0499852958383976"));
    assert!(same_value("-1.5", "-1.50"));
    assert!(same_value("9.9996", "10.000"));
    assert!(!same_value("25.5220058532573370", "25.522005"));
    assert!(!same_value("1.24", "1.3"));
    assert!(same_value("1.25", "1.3"), "half away from zero");
    assert!(!same_value("BUILDING", "BUILDINGS"));
    assert!(!same_value("10", "10.0"), "an integer is not a decimal");
    assert_eq!(round_decimal("-0.004", 2), "0.00");
    assert_eq!(round_decimal("99.995", 2), "100.00");
}

const RECEIVED: &str = "shoal_scan_rows_received_total";

/// The queries whose join runs in the coordinator's stage, reading a (small) table there:
/// none (Q16's `NOT IN` did, as a null-aware anti join, before `not_in.rs`).
const READ_ON_COORDINATOR: &[&str] = &[];

/// The queries with a join of a reference table (nation, region, supplier) that reads it in
/// the tasks reading the other side, from each worker's copy, neither side shuffled for it
/// (Q16: its `NOT IN` over `supplier` as an ordinary anti join).
const REFERENCE_JOINS: &[&str] = &[
    "Q2", "Q5", "Q7", "Q8", "Q9", "Q10", "Q11", "Q15", "Q16", "Q20", "Q21",
];

/// The queries with a join of colocated tables (lineitem and orders on the order key, part
/// and partsupp on the part key) or an aggregate grouped by a distribution column that runs
/// shard group by shard group, no shuffle: joins also through joins with a reference table
/// or a broadcast side (Q3's customer, Q5, Q7–Q10), chained on one key (Q21's semi and anti
/// joins with lineitem) and with an aggregate by the order key (Q18's orders semi-joined
/// with lineitem's totals per order); Q11's sums per part finish per shard group of partsupp.
const COLOCATED: &[&str] = &[
    "Q2", "Q3", "Q4", "Q5", "Q7", "Q8", "Q9", "Q10", "Q11", "Q12", "Q16", "Q18", "Q20", "Q21",
];

/// The queries that broadcast a small side of a join (a table's scan with fewer rows than
/// DataFusion's collect threshold by the catalog's count, filters estimated at 20%; Q22's
/// scalar subquery, one row) to the tasks reading the other side, instead of shuffling both
/// (or collecting the large side on the coordinator; Q11's HAVING against its total and
/// Q16's counts of its `NOT IN` subquery, one row each, too), or broadcast the keys of a small filtered side to reduce the shuffle of a large
/// one to its matching rows (Q2, Q17, Q20, Q22).
const BROADCAST_JOINS: &[&str] = &[
    "Q2", "Q3", "Q5", "Q7", "Q8", "Q9", "Q10", "Q11", "Q14", "Q15", "Q16", "Q17", "Q18", "Q19",
    "Q20", "Q22",
];

/// The lines of the stage the coordinator runs in an EXPLAIN of a distributed plan.
fn head_stage(plan: &str) -> impl Iterator<Item = &str> {
    plan.lines()
        .skip_while(|l| !l.contains("DistributedExec"))
        .take_while(|l| !l.contains('└'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_answers_match_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let files = generate(dir.path());
    eprintln!(
        "[tpch] generated SF {SCALE_FACTOR} in {:?}",
        started.elapsed()
    );
    let cluster = Cluster::start(3).await;
    let shoal = cluster.psql_target();
    assert!(
        cluster.metric(RECEIVED).is_some(),
        "the coordinator serves /metrics"
    );
    let postgres = pg.psql_target();
    let started = Instant::now();
    load(&postgres, &files, false);
    load(&shoal, &files, true);
    eprintln!("[tpch] loaded both in {:?}", started.elapsed());
    for (table, _, _) in TABLES {
        let count = format!("SELECT count(*) FROM {table}");
        assert_eq!(
            shoal.ok(&count),
            postgres.ok(&count),
            "row count of {table}"
        );
    }
    let mut failures = Vec::new();
    let mut read_here = Vec::new();
    let mut colocated = Vec::new();
    let mut reference = Vec::new();
    let mut broadcast = Vec::new();
    for (i, sql) in QUERIES.iter().enumerate() {
        let name = format!("Q{}", i + 1);
        let received_before = cluster.metric(RECEIVED).unwrap_or(f64::NAN);
        let want = postgres.ok(sql);
        assert!(!want.trim().is_empty(), "{name} returns no rows");
        let started = Instant::now();
        let out = shoal.run(sql);
        let took = started.elapsed();
        if !out.status.success() {
            failures.push(format!(
                "{name} failed on Shoal: {}",
                shoal_e2e::stderr_of(&out)
            ));
            continue;
        }
        let got = shoal_e2e::stdout_of(&out);
        let received = cluster.metric(RECEIVED).unwrap_or(f64::NAN) - received_before;
        eprintln!(
            "[tpch] {name}: {} rows in {took:?}, the coordinator received {received} rows",
            got.lines().count()
        );
        if let Some(d) = difference(&want, &got) {
            failures.push(format!("{name} differs: {d}"));
        }
        // Every query joins or aggregates: it runs in stages, and the stage the coordinator
        // runs (the plan's first box) reads no table: every join of tables runs on the
        // workers (what may join there are the results of stages, as Q11's HAVING compares
        // per-part sums with the total).
        let plan = shoal.ok(&format!("EXPLAIN {sql}"));
        if plan.contains("colocated (partition") {
            colocated.push(name.clone());
        }
        if plan.contains("reference join") {
            reference.push(name.clone());
        }
        if plan.contains("NetworkBroadcastExec") {
            broadcast.push(name.clone());
        }
        if !plan.contains("DistributedExec") {
            failures.push(format!("{name} does not run in stages:\n{plan}"));
        } else if head_stage(&plan)
            .any(|l| l.contains("ShardLeafExec") || l.contains("ShardScanExec"))
        {
            read_here.push(name.clone());
            if !READ_ON_COORDINATOR.contains(&name.as_str()) {
                failures.push(format!("{name} reads a table on the coordinator:\n{plan}"));
            }
        }
    }
    assert_eq!(
        cluster.metric("shoal_distributed_fallbacks_total"),
        Some(0.0),
        "no distributed query fell back to the coordinator"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        read_here, READ_ON_COORDINATOR,
        "the queries whose coordinator stage reads a table (an improvement: update the list)"
    );
    eprintln!("[tpch] colocated joins in {colocated:?}, reference joins in {reference:?}");
    assert_eq!(
        reference, REFERENCE_JOINS,
        "the queries that join a reference table in the tasks reading the other side"
    );
    assert_eq!(
        broadcast, BROADCAST_JOINS,
        "the queries that broadcast a small side"
    );
    assert_eq!(
        colocated, COLOCATED,
        "the queries that join or aggregate shard group by shard group"
    );
}
