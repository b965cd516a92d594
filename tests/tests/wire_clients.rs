//! Real PostgreSQL clients against a real Shoal cluster: tokio-postgres (simple and extended
//! protocol, bound parameters, binary results, COPY FROM STDIN), psql (`\dt`, `\d`, `\copy`,
//! `COPY ... TO STDOUT`) and psycopg 3 (`cursor.copy()`), plus SQLSTATEs of user errors.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use shoal_e2e::{
    connect, copy_in, err_text, exec, lines, python_with_psycopg, require_tool, run_with_timeout,
    scalar, sqlstate, stderr_of, stdout_of, within, write_file, Cluster, PgNumeric, PgServer,
    PsqlTarget,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// Where a scenario runs: a Shoal cluster, or — to check the expectations themselves — the
/// scratch PostgreSQL 15 (every scenario runs on both; Shoal-only statements are skipped there).
struct Db {
    psql: PsqlTarget,
    shoal: bool,
}

impl Db {
    fn shoal(cluster: &Cluster) -> Db {
        Db {
            psql: cluster.psql_target(),
            shoal: true,
        }
    }

    fn postgres(pg: &PgServer) -> Db {
        Db {
            psql: pg.psql_target(),
            shoal: false,
        }
    }

    async fn try_client(&self, dbname: &str) -> Result<Client, tokio_postgres::Error> {
        connect(&self.psql.host, self.psql.port, &self.psql.user, dbname).await
    }

    async fn client(&self) -> Client {
        self.try_client(&self.psql.dbname)
            .await
            .unwrap_or_else(|e| panic!("connect: {}", err_text(&e)))
    }

    /// `create_distributed_table` on Shoal; nothing on PostgreSQL.
    async fn distribute(&self, client: &Client, table: &str, shards: u32) {
        if self.shoal {
            exec(
                client,
                &format!(
                    "SELECT create_distributed_table('{table}', 'id', shard_count => {shards})"
                ),
            )
            .await;
        }
    }

    fn psql_distribute(&self, table: &str, shards: u32) {
        if self.shoal {
            self.psql.ok(&format!(
                "SELECT create_distributed_table('{table}', 'id', shard_count => {shards})"
            ));
        }
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn ts(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    date(y, m, d).and_hms_opt(h, mi, s).expect("time")
}

/// A column read in binary format, or a panic that says why not.
fn col<T>(r: Result<T, tokio_postgres::Error>) -> T {
    r.unwrap_or_else(|e| panic!("binary column: {}", err_text(&e)))
}

/// Stream `data` through `COPY ... FROM STDIN`; returns the rows reported or the error (from
/// sending or from finishing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_simple_extended_and_binary() {
    let cluster = Cluster::start(2).await;
    tokio_postgres_scenario(&Db::shoal(&cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_scenario_holds_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    tokio_postgres_scenario(&Db::postgres(&pg)).await;
}

async fn tokio_postgres_scenario(db: &Db) {
    let client = db.client().await;
    within(300, "tokio-postgres checks", async {
        // Simple protocol.
        assert_eq!(
            lines(&client, "SELECT 1 AS one, 'two' AS two").await,
            ["1|two"]
        );

        exec(
            &client,
            "CREATE TABLE t (id bigint, name text, score double precision, d date, \
             ts timestamp, ok boolean, amt numeric(10,2))",
        )
        .await;

        // Extended protocol: an INSERT with bound parameters whose types the server infers.
        let insert = client
            .prepare(
                "INSERT INTO t (id, name, score, d, ts, ok, amt) \
                 VALUES ($1, $2, $3, $4, $5, $6, 12.50)",
            )
            .await
            .unwrap_or_else(|e| panic!("prepare INSERT: {}", err_text(&e)));
        type Row<'a> = (i64, Option<&'a str>, f64, NaiveDate, NaiveDateTime, bool);
        let rows: [Row; 3] = [
            (
                1,
                Some("alpha"),
                1.5,
                date(2024, 1, 2),
                ts(2024, 1, 2, 3, 4, 5),
                true,
            ),
            (
                2,
                Some("beta"),
                -0.25,
                date(1999, 12, 31),
                ts(2000, 2, 29, 23, 59, 59),
                false,
            ),
            (
                3,
                None,
                1e10,
                date(2024, 2, 29),
                ts(2024, 2, 29, 12, 0, 0),
                true,
            ),
        ];
        for (id, name, score, d, t, ok) in &rows {
            let params: [&(dyn ToSql + Sync); 6] = [id, name, score, d, t, ok];
            let n = client
                .execute(&insert, &params)
                .await
                .unwrap_or_else(|e| panic!("INSERT with parameters: {}", err_text(&e)));
            assert_eq!(n, 1, "INSERT reports one row");
        }
        exec(
            &client,
            "INSERT INTO t VALUES (4, 'delta', NULL, NULL, NULL, NULL, -1234.05)",
        )
        .await;

        // Text results through the simple protocol.
        assert_eq!(
            lines(
                &client,
                "SELECT id, name, score, d, ts, ok, amt FROM t ORDER BY id"
            )
            .await,
            [
                "1|alpha|1.5|2024-01-02|2024-01-02 03:04:05|t|12.50",
                "2|beta|-0.25|1999-12-31|2000-02-29 23:59:59|f|12.50",
                "3||10000000000|2024-02-29|2024-02-29 12:00:00|t|12.50",
                "4|delta|||||-1234.05",
            ]
        );

        // Binary results (tokio-postgres asks for binary) with a bound parameter.
        let found = client
            .query(
                "SELECT id, name, score, d, ts, ok, amt FROM t WHERE id = $1",
                &[&2i64],
            )
            .await
            .unwrap_or_else(|e| panic!("SELECT ... WHERE id = $1: {}", err_text(&e)));
        assert_eq!(found.len(), 1);
        let r = &found[0];
        assert_eq!(col(r.try_get::<_, i64>(0)), 2);
        assert_eq!(col(r.try_get::<_, String>(1)), "beta");
        assert_eq!(col(r.try_get::<_, f64>(2)), -0.25);
        assert_eq!(col(r.try_get::<_, NaiveDate>(3)), date(1999, 12, 31));
        assert_eq!(
            col(r.try_get::<_, NaiveDateTime>(4)),
            ts(2000, 2, 29, 23, 59, 59)
        );
        assert!(!col(r.try_get::<_, bool>(5)));
        assert_eq!(col(r.try_get::<_, PgNumeric>(6)), PgNumeric("12.50".into()));

        let r = client
            .query_one("SELECT name, amt, score FROM t WHERE id = $1", &[&4i64])
            .await
            .unwrap_or_else(|e| panic!("query_one: {}", err_text(&e)));
        assert_eq!(r.get::<_, Option<String>>(0).as_deref(), Some("delta"));
        assert_eq!(r.get::<_, PgNumeric>(1), PgNumeric("-1234.05".into()));
        assert_eq!(r.get::<_, Option<f64>>(2), None);

        // A text parameter, and NULLs written through parameters.
        let r = client
            .query_one("SELECT id FROM t WHERE name = $1", &[&"alpha"])
            .await
            .unwrap_or_else(|e| panic!("text parameter: {}", err_text(&e)));
        assert_eq!(r.get::<_, i64>(0), 1);
        let r = client
            .query_one("SELECT count(*) FROM t WHERE name IS NULL", &[])
            .await
            .unwrap_or_else(|e| panic!("count: {}", err_text(&e)));
        assert_eq!(r.get::<_, i64>(0), 1);
        let r = client
            .query_one(
                "SELECT count(*), max(d), min(ts) FROM t WHERE ok = $1",
                &[&true],
            )
            .await
            .unwrap_or_else(|e| panic!("bool parameter: {}", err_text(&e)));
        assert_eq!(r.get::<_, i64>(0), 2);
        assert_eq!(r.get::<_, NaiveDate>(1), date(2024, 2, 29));
        assert_eq!(r.get::<_, NaiveDateTime>(2), ts(2024, 1, 2, 3, 4, 5));

        if db.shoal {
            // Cluster functions are answered by Shoal's own hook, in the format the driver
            // bound (binary here), like every other result.
            let r = client
                .query_one("SELECT get_shard_id_for_distribution_column('t', 2)", &[])
                .await
                .unwrap_or_else(|e| panic!("cluster function, binary: {}", err_text(&e)));
            assert!(col(r.try_get::<_, i64>(0)) > 0, "a shard id");
            let r = client
                .query_one(
                    "SELECT count(*) FROM get_rebalance_table_shards_plan()",
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("cluster function in FROM, binary: {}", err_text(&e)));
            assert_eq!(col(r.try_get::<_, i64>(0)), 0, "nothing to move");

            // The same through a named portal (what JDBC binds when a fetch size is set).
            let mut named = db.client().await;
            let tx = named
                .transaction()
                .await
                .unwrap_or_else(|e| panic!("BEGIN: {}", err_text(&e)));
            let stmt = tx
                .prepare("SELECT get_shard_id_for_distribution_column('t', 2)")
                .await
                .unwrap_or_else(|e| panic!("prepare: {}", err_text(&e)));
            let portal = tx
                .bind(&stmt, &[])
                .await
                .unwrap_or_else(|e| panic!("bind a named portal: {}", err_text(&e)));
            let rows = tx
                .query_portal(&portal, 10)
                .await
                .unwrap_or_else(|e| panic!("cluster function, named portal: {}", err_text(&e)));
            assert_eq!(rows.len(), 1);
            assert!(col(rows[0].try_get::<_, i64>(0)) > 0, "a shard id");
            tx.commit()
                .await
                .unwrap_or_else(|e| panic!("COMMIT: {}", err_text(&e)));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_bad_rows_and_sqlstates() {
    let cluster = Cluster::start(2).await;
    copy_in_scenario(&Db::shoal(&cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_scenario_holds_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    copy_in_scenario(&Db::postgres(&pg)).await;
}

async fn copy_in_scenario(db: &Db) {
    let client = db.client().await;
    within(300, "COPY and SQLSTATE checks", async {
        exec(
            &client,
            "CREATE TABLE c (id bigint, name text, v double precision)",
        )
        .await;
        db.distribute(&client, "c", 4).await;

        // A few thousand rows in text format, NULLs as \N.
        let mut data = String::new();
        for id in 1..=3000u32 {
            let name = if id % 100 == 0 {
                "\\N".to_string()
            } else {
                format!("name-{id}")
            };
            data.push_str(&format!("{id}\t{name}\t{}\n", f64::from(id) * 0.5));
        }
        let n = copy_in(&client, "COPY c FROM STDIN", data.into_bytes())
            .await
            .unwrap_or_else(|e| panic!("COPY FROM STDIN: {}", err_text(&e)));
        assert_eq!(n, 3000, "COPY reports the row count");
        assert_eq!(
            scalar(
                &client,
                "SELECT count(*), count(name), sum(id), sum(v) FROM c"
            )
            .await,
            "3000|2970|4501500|2250750"
        );
        assert_eq!(
            scalar(&client, "SELECT name FROM c WHERE id = 1234").await,
            "name-1234"
        );

        // A bad value on line 1234: the statement fails, names the line, commits nothing.
        let mut bad = String::new();
        for id in 10_001..=12_000u32 {
            if id == 11_234 {
                bad.push_str("abc\tbroken\t1\n");
            } else {
                bad.push_str(&format!("{id}\tx\t1\n"));
            }
        }
        let err = copy_in(&client, "COPY c FROM STDIN", bad.into_bytes())
            .await
            .expect_err("COPY with a non-numeric id must fail");
        let text = err_text(&err);
        assert!(text.contains("line 1234"), "error names the line: {text}");
        let code = sqlstate(&err);
        assert!(
            code.is_some() && code.as_deref() != Some("XX000"),
            "a bad row is a user error with a real SQLSTATE (22P02 in PostgreSQL): {text}"
        );
        assert_eq!(scalar(&client, "SELECT count(*) FROM c").await, "3000");

        // A row with a missing column on line 17.
        let mut short = String::new();
        for id in 20_001..=20_100u32 {
            if id == 20_017 {
                short.push_str(&format!("{id}\tonly-two-columns\n"));
            } else {
                short.push_str(&format!("{id}\tx\t1\n"));
            }
        }
        let err = copy_in(&client, "COPY c FROM STDIN", short.into_bytes())
            .await
            .expect_err("COPY with a short row must fail");
        let text = err_text(&err);
        assert!(text.contains("line 17"), "error names the line: {text}");
        assert_eq!(scalar(&client, "SELECT count(*) FROM c").await, "3000");

        // CSV with HEADER through COPY FROM STDIN as well.
        let csv = "id,name,v\n5001,\"with, comma\",2.5\n5002,,3\n5003,\"\",4\n";
        let n = copy_in(
            &client,
            "COPY c FROM STDIN WITH (FORMAT csv, HEADER)",
            csv.as_bytes().to_vec(),
        )
        .await
        .unwrap_or_else(|e| panic!("COPY csv: {}", err_text(&e)));
        assert_eq!(n, 3);
        assert_eq!(
            lines(
                &client,
                "SELECT id, name, name IS NULL FROM c WHERE id > 5000 ORDER BY id"
            )
            .await,
            ["5001|with, comma|f", "5002||t", "5003||f"]
        );

        // SQLSTATEs, through the simple and the extended protocol.
        let err = client
            .simple_query("SELECT * FROM no_such_table")
            .await
            .expect_err("unknown table");
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42P01"),
            "{}",
            err_text(&err)
        );
        let err = client
            .query("SELECT * FROM no_such_table WHERE id = $1", &[&1i64])
            .await
            .expect_err("unknown table (extended)");
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42P01"),
            "{}",
            err_text(&err)
        );
        for sql in [
            "UPDATE c SET no_such_column = 'x' WHERE id = 1",
            "DELETE FROM c WHERE no_such_column = 1",
        ] {
            let err = client.simple_query(sql).await.expect_err(sql);
            assert_eq!(
                sqlstate(&err).as_deref(),
                Some("42703"),
                "{}",
                err_text(&err)
            );
        }
        // The session still works after errors.
        assert_eq!(scalar(&client, "SELECT count(*) FROM c").await, "3003");

        // NOT NULL, also implied by a primary key: INSERT VALUES, INSERT SELECT and COPY with
        // a NULL there fail with 23502 (COPY naming the line) and commit nothing.
        exec(
            &client,
            "CREATE TABLE nn (id bigint PRIMARY KEY, name text NOT NULL, note text)",
        )
        .await;
        db.distribute(&client, "nn", 4).await;
        exec(&client, "INSERT INTO nn VALUES (1, 'a', NULL)").await;
        for sql in [
            "INSERT INTO nn VALUES (2, NULL, 'x')",
            "INSERT INTO nn (id, note) VALUES (3, 'x')",
            "INSERT INTO nn SELECT id + 10, CASE WHEN id = 2 THEN NULL ELSE 'y' END, NULL \
             FROM c WHERE id <= 3",
        ] {
            let err = client.simple_query(sql).await.expect_err(sql);
            let text = err_text(&err);
            assert_eq!(sqlstate(&err).as_deref(), Some("23502"), "{sql}: {text}");
            assert!(
                text.contains(
                    "null value in column \"name\" of relation \"nn\" violates not-null constraint"
                ),
                "{sql}: {text}"
            );
        }
        let err = copy_in(
            &client,
            "COPY nn FROM STDIN",
            b"4\tb\t\\N\n5\t\\N\tz\n6\tc\td\n".to_vec(),
        )
        .await
        .expect_err("COPY with a NULL in a NOT NULL column");
        let text = err_text(&err);
        assert_eq!(sqlstate(&err).as_deref(), Some("23502"), "{text}");
        assert!(text.contains("line 2"), "error names the line: {text}");
        assert_eq!(scalar(&client, "SELECT count(*) FROM nn").await, "1");
        // Adding a NOT NULL column to a table with rows would leave NULLs in it.
        let err = client
            .simple_query("ALTER TABLE nn ADD COLUMN extra bigint NOT NULL")
            .await
            .expect_err("ADD COLUMN NOT NULL on a table with rows");
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("23502"),
            "{}",
            err_text(&err)
        );
        if db.shoal {
            // Constraints Shoal does not enforce are refused rather than silently ignored.
            for sql in [
                "CREATE TABLE d1 (id bigint GENERATED ALWAYS AS IDENTITY, v integer)",
                "CREATE TABLE d2 (id bigint CHECK (id > 0))",
                "CREATE TABLE d3 (id bigint, FOREIGN KEY (id) REFERENCES nn (id))",
            ] {
                let err = client.simple_query(sql).await.expect_err(sql);
                assert_eq!(
                    sqlstate(&err).as_deref(),
                    Some("0A000"),
                    "{sql}: {}",
                    err_text(&err)
                );
            }
        }

        match db.try_client("nope").await {
            Ok(_) => panic!("connecting to database \"nope\" must fail"),
            Err(e) => assert_eq!(sqlstate(&e).as_deref(), Some("3D000"), "{}", err_text(&e)),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_and_copy() {
    if !require_tool("psql") {
        return;
    }
    let cluster = Cluster::start(2).await;
    tokio::task::block_in_place(|| psql_scenario(&Db::shoal(&cluster)));
}

#[test]
fn psql_scenario_holds_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    psql_scenario(&Db::postgres(&pg));
}

fn psql_scenario(db: &Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let psql = &db.psql;

    psql.ok("CREATE TABLE people (id bigint, name text, born date)");
    db.psql_distribute("people", 4);
    psql.ok("CREATE TABLE notes (body text)");

    let dt = psql.ok("\\dt");
    assert!(
        dt.contains("people") && dt.contains("notes"),
        "\\dt lists the tables:\n{dt}"
    );
    let d = psql.ok("\\d people");
    for word in ["id", "bigint", "name", "text", "born", "date"] {
        assert!(d.contains(word), "\\d people mentions {word}:\n{d}");
    }

    // \copy with CSV HEADER.
    let born0 = NaiveDate::from_ymd_opt(1950, 1, 1).expect("date");
    let name = |i: i64| {
        if i % 7 == 0 {
            format!("Doe, Jane {i}")
        } else {
            format!("person {i}")
        }
    };
    let born = |i: i64| {
        (born0 + chrono::Duration::days(i))
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut csv = String::from("id,name,born\n");
    let mut expected_text = Vec::new();
    for i in 1..=500i64 {
        csv.push_str(&format!("{i},\"{}\",{}\n", name(i), born(i)));
        expected_text.push(format!("{i}\t{}\t{}", name(i), born(i)));
    }
    let file = write_file(dir.path(), "people.csv", csv.as_bytes());
    psql.ok(&format!(
        "\\copy people FROM '{}' WITH (FORMAT csv, HEADER)",
        file.display()
    ));
    assert_eq!(psql.ok("SELECT count(*) FROM people").trim(), "500");
    assert_eq!(
        psql.ok("SELECT name, born FROM people WHERE id = 14")
            .trim(),
        "Doe, Jane 14|1950-01-15"
    );

    // A bad row on data row 5 = line 6 of the file (the header is line 1): nothing commits.
    let mut bad = String::from("id,name,born\n");
    for i in 1001..=1009i64 {
        let b = if i == 1005 {
            "not-a-date".to_string()
        } else {
            born(i)
        };
        bad.push_str(&format!("{i},x,{b}\n"));
    }
    let bad_file = write_file(dir.path(), "bad.csv", bad.as_bytes());
    let out = psql.run(&format!(
        "\\copy people FROM '{}' WITH (FORMAT csv, HEADER)",
        bad_file.display()
    ));
    assert!(!out.status.success(), "\\copy of a bad row must fail");
    let err = stderr_of(&out);
    assert!(err.contains("line 6"), "the error names line 6:\n{err}");
    assert_eq!(psql.ok("SELECT count(*) FROM people").trim(), "500");

    // COPY ... TO STDOUT returns the rows.
    let out = psql.ok("COPY people TO STDOUT");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_by_key(|l| l.split('\t').next().and_then(|id| id.parse::<i64>().ok()));
    assert_eq!(got, expected_text, "COPY people TO STDOUT");
    assert_eq!(
        psql.ok(
            "COPY (SELECT id, name FROM people WHERE id IN (1, 7) ORDER BY id) TO STDOUT WITH (FORMAT csv)"
        ),
        "1,person 1\n7,\"Doe, Jane 7\"\n"
    );

    // psql's unaligned output of a query.
    assert_eq!(
        psql.ok("SELECT id, name FROM people WHERE id BETWEEN 20 AND 22 ORDER BY id"),
        "20|person 20\n21|Doe, Jane 21\n22|person 22\n"
    );

    // A script with its rows inline, ended by `\.`; bytea in COPY's text format.
    psql.ok("CREATE TABLE blobs (id bigint, b bytea)");
    let script = write_file(
        dir.path(),
        "inline.sql",
        b"\\copy blobs FROM stdin\n1\t\\\\x0a0b\n2\t\\N\n\\.\nSELECT id, b, length(b) FROM blobs ORDER BY id;\n",
    );
    let out = psql.run_file(&script);
    assert!(out.status.success(), "inline \\copy: {}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "COPY 2\n1|\\x0a0b|2\n2||\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3_copy_and_query() {
    if !require_tool("psycopg") {
        return;
    }
    let cluster = Cluster::start(2).await;
    psycopg_scenario(&Db::shoal(&cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_scenario_holds_on_postgresql() {
    if !require_tool("psycopg") {
        return;
    }
    let Some(pg) = PgServer::start() else { return };
    psycopg_scenario(&Db::postgres(&pg)).await;
}

async fn psycopg_scenario(db: &Db) {
    let python = python_with_psycopg().expect("python with psycopg");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = write_file(
        dir.path(),
        "psycopg_check.py",
        br#"
import sys
import psycopg

conninfo = dict(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], dbname=sys.argv[3],
                connect_timeout=10)

with psycopg.connect(autocommit=True, **conninfo) as conn:
    conn.execute("CREATE TABLE py (id bigint, name text, score double precision)")
    with conn.cursor() as cur:
        with cur.copy("COPY py FROM STDIN") as copy:
            for i in range(1, 1001):
                copy.write_row((i, None if i % 10 == 0 else f"name-{i}", i / 4))
        cur.execute("SELECT count(*), count(name), sum(score) FROM py")
        print("totals", *cur.fetchone())
        cur.execute("SELECT name FROM py WHERE id = %s", (42,))
        print("by_param", cur.fetchone()[0])
        cur.execute("SELECT id, name FROM py WHERE id < %s ORDER BY id", (4,))
        print("rows", cur.fetchall())

# The default, transactional mode most applications use (psycopg sends BEGIN/COMMIT).
with psycopg.connect(**conninfo) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM py WHERE name LIKE %s", ("name-1%",))
        print("tx", cur.fetchone()[0])

# Query cancel from another thread (psycopg sends every query through the extended protocol):
# the join runs until cancelled, the error is 57014, the session goes on.
import threading
with psycopg.connect(autocommit=True, **conninfo) as conn:
    threading.Timer(1.5, conn.cancel).start()
    try:
        conn.execute("SELECT count(*) FROM py a, py b, py c WHERE a.id + b.id + c.id = %s", (-1,))
        print("cancel not honoured")
    except psycopg.errors.QueryCanceled as e:
        print("cancelled", e.sqlstate)
    print("after", conn.execute("SELECT count(*) FROM py WHERE id < %s", (11,)).fetchone()[0])
"#,
    );
    let out = tokio::task::block_in_place(|| {
        run_with_timeout(
            std::process::Command::new(&python)
                .arg(&script)
                .arg(db.psql.port.to_string())
                .arg(&db.psql.user)
                .arg(&db.psql.dbname),
            None,
            Duration::from_secs(180),
        )
    });
    assert!(
        out.status.success(),
        "psycopg script failed:\n{}\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    assert_eq!(
        stdout_of(&out),
        "totals 1000 900 125125.0\n\
         by_param name-42\n\
         rows [(1, 'name-1'), (2, 'name-2'), (3, 'name-3')]\n\
         tx 100\n\
         cancelled 57014\n\
         after 10\n"
    );
    // And the rows are there for everyone else too.
    let client = db.client().await;
    assert_eq!(
        within(
            60,
            "count",
            scalar(&client, "SELECT count(*), sum(id) FROM py")
        )
        .await,
        "1000|500500"
    );
}

/// Runs `query` and sends a CancelRequest for `client`'s session 1.5 s after it starts: the
/// query must fail with 57014, and the cancel request itself must succeed.
async fn expect_cancelled<T>(
    client: &Client,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) {
    let token = client.cancel_token();
    // A cancel that arrives before the statement runs (a loaded machine may take longer than
    // the first wait to start it) is ignored, as PostgreSQL ignores it: send it again until
    // the query fails.
    let canceller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            token.cancel_query(tokio_postgres::NoTls).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), tokio_postgres::Error>(())
    });
    let result = query.await;
    canceller.abort();
    let Err(err) = result else {
        panic!("a cancelled query fails");
    };
    assert_eq!(
        sqlstate(&err).as_deref(),
        Some("57014"),
        "{}",
        err_text(&err)
    );
    if let Ok(Err(e)) = canceller.await {
        panic!("cancel request: {}", err_text(&e));
    }
}

/// A query cancelled through the protocol's CancelRequest (tokio-postgres' cancel token) stops
/// with 57014, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_cancel_stops_a_running_query() {
    let cluster = Cluster::start(1).await;
    let client = Db::shoal(&cluster).client().await;
    within(120, "query cancel", async {
        exec(&client, "CREATE TABLE big (id bigint)").await;
        let values: Vec<String> = (0..2000).map(|i| format!("({i})")).collect();
        exec(
            &client,
            &format!("INSERT INTO big VALUES {}", values.join(", ")),
        )
        .await;
        // 8 billion combinations: runs until cancelled.
        expect_cancelled(
            &client,
            client.simple_query(
                "SELECT count(*) FROM big a, big b, big c WHERE a.id + b.id + c.id = -1",
            ),
        )
        .await;
        assert_eq!(scalar(&client, "SELECT count(*) FROM big").await, "2000");

        // The same through the extended protocol (Parse/Bind/Execute with a parameter), as
        // psycopg and JDBC send every query.
        expect_cancelled(
            &client,
            client.query(
                "SELECT count(*) FROM big a, big b, big c WHERE a.id + b.id + c.id = $1",
                &[&-1i64],
            ),
        )
        .await;
        let rows = client
            .query("SELECT count(*) FROM big WHERE id < $1", &[&10i64])
            .await
            .expect("the session goes on after a cancelled extended query");
        assert_eq!(rows[0].get::<_, i64>(0), 10);
    })
    .await;
}
