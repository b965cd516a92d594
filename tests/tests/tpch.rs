//! TPC-H at scale factor 0.1 against PostgreSQL: the same generated data (`tpchgen`, the
//! reference generator's rows) is loaded into a 3-worker Shoal cluster — lineitem and orders
//! colocated on the order key, part and partsupp on the part key, customer distributed,
//! nation, region and supplier reference tables — and into the scratch PostgreSQL 15; all 22
//! queries (`tests/sql/tpch/qN.sql`, the specification's validation parameters) must give the
//! same rows on both.
//!
//! Values are compared as psql prints them, but for numeric quotients and averages:
//! PostgreSQL prints those with at least 16 fractional digits, Shoal with the scale its
//! decimal type carries (README, Compatibility), so two decimals are equal when they agree
//! rounded to the fewer fractional digits of the two.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shoal_e2e::{Cluster, PgServer, PsqlTarget};

const SCALE_FACTOR: f64 = 0.1;

/// The tables, their columns (string columns as varchar: the queries' results are what is
/// compared, not char(n) padding), and how Shoal distributes them.
const TABLES: &[(&str, &str, Distribution)] = &[
    (
        "nation",
        "n_nationkey integer, n_name varchar(25), n_regionkey integer, n_comment varchar(152)",
        Distribution::Reference,
    ),
    (
        "region",
        "r_regionkey integer, r_name varchar(25), r_comment varchar(152)",
        Distribution::Reference,
    ),
    (
        "supplier",
        "s_suppkey bigint, s_name varchar(25), s_address varchar(40), s_nationkey integer, \
         s_phone varchar(15), s_acctbal decimal(15,2), s_comment varchar(101)",
        Distribution::Reference,
    ),
    (
        "customer",
        "c_custkey bigint, c_name varchar(25), c_address varchar(40), c_nationkey integer, \
         c_phone varchar(15), c_acctbal decimal(15,2), c_mktsegment varchar(10), \
         c_comment varchar(117)",
        Distribution::Hash("c_custkey", None),
    ),
    (
        "part",
        "p_partkey bigint, p_name varchar(55), p_mfgr varchar(25), p_brand varchar(10), \
         p_type varchar(25), p_size integer, p_container varchar(10), \
         p_retailprice decimal(15,2), p_comment varchar(23)",
        Distribution::Hash("p_partkey", None),
    ),
    (
        "partsupp",
        "ps_partkey bigint, ps_suppkey bigint, ps_availqty integer, \
         ps_supplycost decimal(15,2), ps_comment varchar(199)",
        Distribution::Hash("ps_partkey", Some("part")),
    ),
    (
        "orders",
        "o_orderkey bigint, o_custkey bigint, o_orderstatus varchar(1), \
         o_totalprice decimal(15,2), o_orderdate date, o_orderpriority varchar(15), \
         o_clerk varchar(15), o_shippriority integer, o_comment varchar(79)",
        Distribution::Hash("o_orderkey", None),
    ),
    (
        "lineitem",
        "l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber integer, \
         l_quantity decimal(15,2), l_extendedprice decimal(15,2), l_discount decimal(15,2), \
         l_tax decimal(15,2), l_returnflag varchar(1), l_linestatus varchar(1), \
         l_shipdate date, l_commitdate date, l_receiptdate date, l_shipinstruct varchar(25), \
         l_shipmode varchar(10), l_comment varchar(44)",
        Distribution::Hash("l_orderkey", Some("orders")),
    ),
];

/// PostgreSQL's indexes: they change no answer, and without them the correlated subqueries
/// of Q2, Q17, Q20 and Q21 take PostgreSQL minutes.
const PG_INDEXES: &str = "\
    CREATE INDEX ON lineitem (l_partkey); CREATE INDEX ON lineitem (l_orderkey); \
    CREATE INDEX ON lineitem (l_suppkey); CREATE INDEX ON partsupp (ps_partkey); \
    CREATE INDEX ON partsupp (ps_suppkey); CREATE INDEX ON orders (o_orderkey); \
    CREATE INDEX ON orders (o_custkey); CREATE INDEX ON part (p_partkey); \
    CREATE INDEX ON supplier (s_suppkey); CREATE INDEX ON customer (c_custkey); ANALYZE";

#[derive(Clone, Copy)]
enum Distribution {
    Reference,
    /// Distribution column, and the table to colocate with.
    Hash(&'static str, Option<&'static str>),
}

/// One `.tbl` file per table, in the reference generator's format without the trailing `|`.
fn generate(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    use tpchgen::generators::*;
    fn write<T: std::fmt::Display>(
        dir: &Path,
        table: &'static str,
        rows: impl Iterator<Item = T>,
    ) -> (&'static str, PathBuf) {
        let path = dir.join(format!("{table}.tbl"));
        let file = std::fs::File::create(&path).expect("create .tbl");
        let mut out = std::io::BufWriter::new(file);
        for row in rows {
            let line = row.to_string();
            writeln!(out, "{}", line.strip_suffix('|').unwrap_or(&line)).expect("write .tbl");
        }
        out.flush().expect("flush .tbl");
        (table, path)
    }
    let sf = SCALE_FACTOR;
    vec![
        write(dir, "nation", NationGenerator::new(sf, 1, 1).iter()),
        write(dir, "region", RegionGenerator::new(sf, 1, 1).iter()),
        write(dir, "supplier", SupplierGenerator::new(sf, 1, 1).iter()),
        write(dir, "customer", CustomerGenerator::new(sf, 1, 1).iter()),
        write(dir, "part", PartGenerator::new(sf, 1, 1).iter()),
        write(dir, "partsupp", PartSuppGenerator::new(sf, 1, 1).iter()),
        write(dir, "orders", OrderGenerator::new(sf, 1, 1).iter()),
        write(dir, "lineitem", LineItemGenerator::new(sf, 1, 1).iter()),
    ]
}

fn load(target: &PsqlTarget, files: &[(&'static str, PathBuf)], shoal: bool) {
    for (table, columns, distribution) in TABLES {
        target.ok(&format!("CREATE TABLE {table} ({columns})"));
        if !shoal {
            continue;
        }
        target.ok(&match distribution {
            Distribution::Reference => format!("SELECT create_reference_table('{table}')"),
            Distribution::Hash(column, None) => {
                format!("SELECT create_distributed_table('{table}', '{column}')")
            }
            Distribution::Hash(column, Some(with)) => format!(
                "SELECT create_distributed_table('{table}', '{column}', colocate_with => '{with}')"
            ),
        });
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

fn queries() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/tpch");
    (1..=22)
        .map(|n| {
            let path = dir.join(format!("q{n}.sql"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (format!("Q{n}"), text)
        })
        .collect()
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
    for (name, sql) in queries() {
        let want = postgres.ok(&sql);
        assert!(!want.trim().is_empty(), "{name} returns no rows");
        let started = Instant::now();
        let out = shoal.run(&sql);
        let took = started.elapsed();
        if !out.status.success() {
            failures.push(format!(
                "{name} failed on Shoal: {}",
                shoal_e2e::stderr_of(&out)
            ));
            continue;
        }
        let got = shoal_e2e::stdout_of(&out);
        eprintln!("[tpch] {name}: {} rows in {took:?}", got.lines().count());
        if let Some(d) = difference(&want, &got) {
            failures.push(format!("{name} differs: {d}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
