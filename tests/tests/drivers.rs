//! Drivers and tools as applications use them, each scenario run on Shoal and on the scratch
//! PostgreSQL 15 with the same expected output: SQLAlchemy 2 (psycopg) with pandas, and
//! psycopg's automatic prepared statements across DDL (which make it send `DEALLOCATE ALL`).

use shoal_e2e::{on_shoal_and_postgresql, PsqlTarget};

/// Runs a Python script that imports `module` against `target`; returns what it printed
/// (`None`: skipped, no such Python here).
fn run_python(module: &str, script: &[u8], target: &PsqlTarget) -> Option<String> {
    if !shoal_e2e::require_tool(module) {
        return None;
    }
    let python = shoal_e2e::python_with(module).expect("python");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = shoal_e2e::write_file(dir.path(), "scenario.py", script);
    Some(shoal_e2e::run_client(
        &python,
        &[path.to_string_lossy().as_ref()],
        target,
    ))
}

/// What a scenario runs after creating table `table`: on Shoal it distributes the table by
/// `column`, on PostgreSQL it does nothing (`SELECT 1`), so both run the same script.
fn distribute_sql(shoal: bool, table: &str, column: &str) -> String {
    if shoal {
        format!("SELECT create_distributed_table('{table}', '{column}')")
    } else {
        "SELECT 1".to_string()
    }
}

async fn sqlalchemy_and_pandas(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = run_python(
        "sqlalchemy",
        br#"
import sys
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

host, port, user, db = sys.argv[1:5]
engine = sa.create_engine(f"postgresql+psycopg://{user}@{host}:{port}/{db}")
with engine.connect() as c:
    print("select", c.execute(sa.text("SELECT 1 AS one, 'x' AS two")).all())
    print("major", c.dialect.server_version_info[0])
    print("user", c.execute(sa.text("SELECT current_user = :u"), {"u": user}).scalar())
autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
with autocommit.connect() as c:
    c.execute(sa.text("DROP TABLE IF EXISTS sa_items"))
    c.execute(sa.text("CREATE TABLE sa_items (id bigint NOT NULL, name text, price float8)"))
df = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "price": [1.5, 2.25, 0.0]})
print("to_sql", df.to_sql("sa_items", engine, if_exists="append", index=False))
back = pd.read_sql("SELECT id, name, price FROM sa_items ORDER BY id", engine)
print("read_sql", list(back.columns), back.to_dict("records"))
print("aggregate", pd.read_sql("SELECT count(*), sum(price) FROM sa_items", engine).to_dict("records"))
with Session(engine) as s:
    s.execute(sa.text("INSERT INTO sa_items VALUES (4, 'd', 4.0)"))
    s.rollback()
    s.execute(sa.text("INSERT INTO sa_items VALUES (5, 'e', 5.0)"))
    s.commit()
# Past psycopg's prepare threshold, then a statement after which it deallocates them all.
with engine.connect() as c:
    for _ in range(7):
        c.execute(sa.text("SELECT count(*) FROM sa_items WHERE id > :x"), {"x": 0}).scalar()
    c.rollback()
    print("after rollback", c.execute(sa.text("SELECT count(*) FROM sa_items WHERE id > :x"), {"x": 0}).scalar())
insp = sa.inspect(engine)
print("tables", sorted(t for t in insp.get_table_names() if t.startswith("sa_")))
print("has_table", insp.has_table("sa_items"), insp.has_table("sa_nope"))
with autocommit.connect() as c:
    c.execute(sa.text("DROP TABLE sa_items"))
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "select [(1, 'x')]\n\
         major 15\n\
         user True\n\
         to_sql -1\n\
         read_sql ['id', 'name', 'price'] [{'id': 1, 'name': 'a', 'price': 1.5}, \
         {'id': 2, 'name': 'b', 'price': 2.25}, {'id': 3, 'name': nan, 'price': 0.0}]\n\
         aggregate [{'count': 3, 'sum': 3.75}]\n\
         after rollback 4\n\
         tables ['sa_items']\n\
         has_table True False\n"
    );
}

on_shoal_and_postgresql!(
    sqlalchemy_and_pandas_on_shoal,
    sqlalchemy_and_pandas_on_postgresql,
    2,
    240,
    sqlalchemy_and_pandas
);

async fn psycopg_prepared_statements_across_ddl(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = run_python(
        "psycopg",
        br#"
import sys
import psycopg
from psycopg.types import TypeInfo

host, port, user, db = sys.argv[1:5]
with psycopg.connect(host=host, port=int(port), user=user, dbname=db, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS pp")
    conn.execute("CREATE TABLE pp (id bigint NOT NULL)")
    conn.execute("INSERT INTO pp VALUES (1), (2)")
    for _ in range(8):
        n = conn.execute("SELECT count(*) FROM pp WHERE id > %s", (0,)).fetchone()[0]
    print("prepared", n, conn.execute("SELECT count(*) FROM pp WHERE id > %s", (0,), prepare=True).fetchone()[0])
    conn.execute("CREATE TABLE pp2 (id bigint)")
    print("after ddl", conn.execute("SELECT count(*) FROM pp WHERE id > %s", (0,)).fetchone()[0])
    conn.execute("DROP TABLE pp2")
    conn.execute("DEALLOCATE ALL")
    print("after deallocate", conn.execute("SELECT count(*) FROM pp WHERE id > %s", (1,)).fetchone()[0])
    info = TypeInfo.fetch(conn, "int4")
    print("typeinfo", info.oid, info.array_oid)
    print("hstore", TypeInfo.fetch(conn, "hstore"))
    print("status", conn.info.parameter_status("server_version").split(".")[0])
    conn.execute("SET application_name = 'nightly'")
    print("reported", conn.info.parameter_status("application_name"))
    conn.execute("DROP TABLE pp")
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "prepared 2 2\n\
         after ddl 2\n\
         after deallocate 1\n\
         typeinfo 23 1007\n\
         hstore None\n\
         status 15\n\
         reported nightly\n"
    );
}

on_shoal_and_postgresql!(
    psycopg_prepared_statements_across_ddl_on_shoal,
    psycopg_prepared_statements_across_ddl_on_postgresql,
    1,
    180,
    psycopg_prepared_statements_across_ddl
);

/// psycopg's server-side (named) cursors: iterated in a transaction in chunks, with a bound
/// parameter, `fetchmany` to the end, WITH HOLD outside a transaction; and SQL cursors in
/// a block, closed by its COMMIT.
async fn psycopg_named_cursors(target: &PsqlTarget, shoal: bool) {
    let distribute = distribute_sql(shoal, "nc", "id");
    let script = format!(
        r#"
import sys
import psycopg

host, port, user, db = sys.argv[1:5]
args = dict(host=host, port=int(port), user=user, dbname=db)
with psycopg.connect(**args, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS nc")
    conn.execute("CREATE TABLE nc (id bigint NOT NULL, name text)")
    conn.execute("{distribute}")
    with conn.cursor().copy("COPY nc FROM STDIN") as cp:
        for i in range(1000):
            cp.write_row((i, f"n{{i}}"))
with psycopg.connect(**args) as conn:
    with conn.cursor(name="big") as cur:
        cur.itersize = 100
        cur.execute("SELECT id, name FROM nc ORDER BY id")
        rows = list(cur)
        print("iterated", len(rows), rows[0], rows[-1], [d.name for d in cur.description])
    with conn.cursor(name="chunks") as cur:
        cur.execute("SELECT id FROM nc WHERE id < %s AND name <> %s ORDER BY id", (25, "n3"))
        print("fetchmany", [len(cur.fetchmany(10)) for _ in range(4)])
    conn.commit()
with psycopg.connect(**args, autocommit=True) as conn:
    with conn.cursor(name="held", withhold=True) as cur:
        cur.execute("SELECT count(*) FROM nc")
        print("held", cur.fetchone())
    try:
        conn.execute("DECLARE c CURSOR FOR SELECT 1")
    except psycopg.Error as e:
        print("outside a block", e.sqlstate)
with psycopg.connect(**args) as conn:
    conn.execute("DECLARE c CURSOR FOR SELECT id FROM nc ORDER BY id")
    cur = conn.execute("FETCH 2 FROM c")
    print("fetch", cur.fetchall(), cur.statusmessage)
    conn.commit()
    try:
        conn.execute("FETCH 2 FROM c")
    except psycopg.Error as e:
        print("after commit", e.sqlstate)
with psycopg.connect(**args, autocommit=True) as conn:
    conn.execute("DROP TABLE nc")
"#
    );
    let Some(out) = run_python("psycopg", script.as_bytes(), target) else {
        return;
    };
    assert_eq!(
        out,
        "iterated 1000 (0, 'n0') (999, 'n999') ['id', 'name']\n\
         fetchmany [10, 10, 4, 0]\n\
         held (1000,)\n\
         outside a block 25P01\n\
         fetch [(0,), (1,)] FETCH 2\n\
         after commit 34000\n"
    );
}

on_shoal_and_postgresql!(
    psycopg_named_cursors_on_shoal,
    psycopg_named_cursors_on_postgresql,
    2,
    180,
    psycopg_named_cursors
);

/// Cursors in binary: psycopg's binary named cursor (FETCH bound for binary results),
/// `DECLARE ... BINARY` fetched by a simple query (raw bytes, as libpq hands them over) and
/// through the extended protocol in text; `MOVE` through the extended protocol (prepared, and
/// in a pipeline), as pgjdbc and psycopg send it.
async fn binary_cursors_and_move(target: &PsqlTarget, shoal: bool) {
    let distribute = distribute_sql(shoal, "bc", "id");
    let script = format!(
        r#"
import sys
import psycopg

host, port, user, db = sys.argv[1:5]
args = dict(host=host, port=int(port), user=user, dbname=db)
with psycopg.connect(**args, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS bc")
    conn.execute("CREATE TABLE bc (id bigint NOT NULL, name text, score double precision, at timestamptz)")
    conn.execute("{distribute}")
    with conn.cursor().copy("COPY bc FROM STDIN") as cp:
        for i in range(50):
            cp.write_row((i, f"n{{i}}", i / 4, f"2024-01-01 00:00:{{i:02d}}+00"))
with psycopg.connect(**args) as conn:
    with conn.cursor(name="bin", binary=True) as cur:
        cur.execute("SELECT id, name, score, at FROM bc WHERE id >= %s ORDER BY id", (40,))
        first = [(*r[:3], r[3].isoformat()) for r in cur.fetchmany(3)]
        print("binary", first, [d.type_code for d in cur.description])
        cur.scroll(2)
        print("after scroll", cur.fetchone()[:3])
        print("rest", len(cur.fetchall()))
    pg = conn.pgconn
    pg.exec_(b"DECLARE b BINARY CURSOR FOR SELECT id, name FROM bc WHERE id < 3 ORDER BY id")
    res = pg.exec_(b"FETCH 2 FROM b")
    print("declared binary", psycopg.pq.ExecStatus(res.status).name, res.nfields, [res.fformat(i) for i in range(res.nfields)],
          [[res.get_value(r, c) for c in range(res.nfields)] for r in range(res.ntuples)])
    cur = conn.execute("FETCH 1 FROM b", prepare=True)
    print("fetched as text", cur.fetchall(), cur.statusmessage)
    conn.execute("DECLARE m CURSOR FOR SELECT id FROM bc ORDER BY id")
    cur = conn.execute("MOVE FORWARD 5 FROM m", prepare=True)
    print("move", cur.statusmessage, cur.rowcount, cur.description)
    cur = conn.execute("MOVE 3 IN m", prepare=True)
    print("move again", cur.statusmessage)
    print("next", conn.execute("FETCH NEXT FROM m").fetchall())
    with conn.pipeline():
        conn.execute("MOVE 10 FROM m")
        cur = conn.execute("FETCH 2 FROM m")
    print("pipeline", cur.fetchall())
    try:
        conn.execute("MOVE 1 FROM nosuch", prepare=True)
    except psycopg.Error as e:
        print("no cursor", e.sqlstate)
    conn.rollback()
with psycopg.connect(**args, autocommit=True) as conn:
    conn.execute("DROP TABLE bc")
"#
    );
    let Some(out) = run_python("psycopg", script.as_bytes(), target) else {
        return;
    };
    assert_eq!(
        out,
        "binary [(40, 'n40', 10.0, '2024-01-01T00:00:40+00:00'), (41, 'n41', 10.25, '2024-01-01T00:00:41+00:00'), \
         (42, 'n42', 10.5, '2024-01-01T00:00:42+00:00')] [20, 25, 701, 1184]\n\
         after scroll (45, 'n45', 11.25)\n\
         rest 4\n\
         declared binary TUPLES_OK 2 [1, 1] [[b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00', b'n0'], \
         [b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01', b'n1']]\n\
         fetched as text [(2, 'n2')] FETCH 1\n\
         move MOVE 5 5 None\n\
         move again MOVE 3\n\
         next [(8,)]\n\
         pipeline [(19,), (20,)]\n\
         no cursor 34000\n"
    );
}

on_shoal_and_postgresql!(
    binary_cursors_and_move_on_shoal,
    binary_cursors_and_move_on_postgresql,
    2,
    180,
    binary_cursors_and_move
);

/// `char(n)` values come out padded to n characters, as PostgreSQL sends them: in text and
/// binary results, a cursor's rows and COPY TO; the column is described as bpchar with its
/// length.
async fn char_padding_in_drivers(target: &PsqlTarget, shoal: bool) {
    let distribute = distribute_sql(shoal, "cp", "id");
    let script = format!(
        r#"
import sys
import psycopg

host, port, user, db = sys.argv[1:5]
args = dict(host=host, port=int(port), user=user, dbname=db)
with psycopg.connect(**args, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS cp")
    conn.execute("CREATE TABLE cp (id bigint NOT NULL, code char(5), flag char)")
    conn.execute("{distribute}")
    conn.execute("INSERT INTO cp VALUES (1, 'ab', 'y'), (2, 'abcde', NULL), (3, NULL, 'n')")
    cur = conn.execute("SELECT code, flag, 'x'::char(3) AS lit FROM cp ORDER BY id")
    print("text", cur.fetchall(), [(d.name, d.type_code, d.display_size) for d in cur.description])
    cur = conn.cursor(binary=True)
    cur.execute("SELECT code FROM cp WHERE id = %s", (1,))
    print("binary", cur.fetchall())
    print("param", conn.execute("SELECT id FROM cp WHERE code = %s", ("ab   ",)).fetchall())
    with conn.transaction():
        with conn.cursor(name="cc") as cur:
            cur.execute("SELECT code FROM cp ORDER BY id")
            print("cursor", cur.fetchall())
    with conn.cursor().copy("COPY (SELECT id, code FROM cp ORDER BY id) TO STDOUT") as cp:
        print("copy", b"".join(bytes(b) for b in cp).decode().replace(" ", "_").splitlines())
    conn.execute("DROP TABLE cp")
"#
    );
    let Some(out) = run_python("psycopg", script.as_bytes(), target) else {
        return;
    };
    assert_eq!(
        out,
        "text [('ab   ', 'y', 'x  '), ('abcde', None, 'x  '), (None, 'n', 'x  ')] \
         [('code', 1042, 5), ('flag', 1042, 1), ('lit', 1042, 3)]\n\
         binary [('ab   ',)]\n\
         param [(1,)]\n\
         cursor [('ab   ',), ('abcde',), (None,)]\n\
         copy ['1\\tab___', '2\\tabcde', '3\\t\\\\N']\n"
    );
}

on_shoal_and_postgresql!(
    char_padding_in_drivers_on_shoal,
    char_padding_in_drivers_on_postgresql,
    2,
    120,
    char_padding_in_drivers
);

/// Schema changes the way applications send them: inside the transaction a driver opens
/// (psycopg's default mode, SQLAlchemy's `create_all` and `drop_all`, pandas `to_sql` of a
/// new table), rolled back or committed with it.
async fn schema_changes_in_driver_transactions(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = run_python(
        "sqlalchemy",
        br#"
import sys
import pandas as pd
import psycopg
import sqlalchemy as sa

host, port, user, db = sys.argv[1:5]
with psycopg.connect(host=host, port=int(port), user=user, dbname=db) as conn:
    conn.execute("CREATE TABLE dt_a (id bigint NOT NULL, name text)")
    conn.execute("INSERT INTO dt_a VALUES (%s, %s)", (1, "one"))
    print("inside", conn.execute("SELECT count(*) FROM dt_a").fetchone()[0])
    conn.rollback()
    try:
        conn.execute("SELECT count(*) FROM dt_a")
    except psycopg.errors.UndefinedTable:
        print("rolled back: no dt_a")
    conn.rollback()
    conn.execute("CREATE TABLE dt_a (id bigint NOT NULL, name text)")
    conn.execute("INSERT INTO dt_a VALUES (%s, %s)", (2, "two"))
# Leaving the block committed it.
with psycopg.connect(host=host, port=int(port), user=user, dbname=db) as conn:
    print("committed", conn.execute("SELECT id, name FROM dt_a").fetchall())
    conn.execute("DROP TABLE dt_a")

engine = sa.create_engine(f"postgresql+psycopg://{user}@{host}:{port}/{db}")
md = sa.MetaData()
items = sa.Table(
    "dt_items", md,
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("price", sa.Float),
)
md.create_all(engine)
md.create_all(engine)  # checks first: nothing to do
with engine.begin() as c:
    c.execute(items.insert(), [{"id": 1, "name": "a", "price": 1.5}, {"id": 2, "name": "b", "price": 2.5}])
with engine.connect() as c:
    print("items", c.execute(sa.select(items.c.id, items.c.name).order_by(items.c.id)).all())
df = pd.DataFrame({"id": [1, 2], "v": [0.5, 0.25], "label": ["x", "y"]})
print("to_sql new", df.to_sql("dt_frame", engine, index=False))
try:
    df.to_sql("dt_frame", engine, index=False)
except ValueError as e:
    print("to_sql exists:", "already exists" in str(e))
print("to_sql append", df.to_sql("dt_frame", engine, index=False, if_exists="append"))
print("frame", pd.read_sql("SELECT id, v, label FROM dt_frame ORDER BY id, v", engine).to_dict("records"))
md.drop_all(engine)
with engine.begin() as c:
    c.execute(sa.text("DROP TABLE dt_frame"))
print("left", sorted(t for t in sa.inspect(engine).get_table_names() if t.startswith("dt_")))
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "inside 1\n\
         rolled back: no dt_a\n\
         committed [(2, 'two')]\n\
         items [(1, 'a'), (2, 'b')]\n\
         to_sql new -1\n\
         to_sql exists: True\n\
         to_sql append -1\n\
         frame [{'id': 1, 'v': 0.5, 'label': 'x'}, {'id': 1, 'v': 0.5, 'label': 'x'}, \
         {'id': 2, 'v': 0.25, 'label': 'y'}, {'id': 2, 'v': 0.25, 'label': 'y'}]\n\
         left []\n"
    );
}

on_shoal_and_postgresql!(
    schema_changes_in_driver_transactions_on_shoal,
    schema_changes_in_driver_transactions_on_postgresql,
    2,
    240,
    schema_changes_in_driver_transactions
);

/// SQLAlchemy's reflection, as `Table(autoload_with=...)`, Alembic and pandas
/// `if_exists="replace"` use it: columns with their types, NOT NULL, type modifiers and
/// defaults (a serial column is autoincrement); keys, indexes and constraints (none here).
async fn sqlalchemy_reflection(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = run_python(
        "sqlalchemy",
        br#"
import sys
import pandas as pd
import sqlalchemy as sa

host, port, user, db = sys.argv[1:5]
engine = sa.create_engine(f"postgresql+psycopg://{user}@{host}:{port}/{db}")
with engine.begin() as c:
    c.execute(sa.text("DROP TABLE IF EXISTS rf_items"))
    c.execute(sa.text(
        "CREATE TABLE rf_items (id bigint PRIMARY KEY, code varchar(20) UNIQUE, price numeric(10,2), "
        "ratio double precision, note text, ok boolean, at timestamp, day date, n integer NOT NULL)"))
    c.execute(sa.text("CREATE INDEX rf_items_n_day_idx ON rf_items (n, day DESC)"))
insp = sa.inspect(engine)
for col in insp.get_columns("rf_items"):
    print("column", col["name"], col["type"], col["nullable"], col["default"])
print("pk", insp.get_pk_constraint("rf_items")["constrained_columns"])
print("fks", insp.get_foreign_keys("rf_items"))
print("indexes", insp.get_indexes("rf_items"))
print("unique", insp.get_unique_constraints("rf_items"))
print("checks", insp.get_check_constraints("rf_items"))
t = sa.Table("rf_items", sa.MetaData(), autoload_with=engine)
print("autoload", [(c.name, str(c.type), c.nullable) for c in t.columns])
print("autoload keys", [c.name for c in t.primary_key.columns], sorted(i.name for i in t.indexes),
      sorted(c.name for c in t.constraints if c.name))
df = pd.DataFrame({"id": [1, 2], "label": ["a", "b"]})
print("to_sql", df.to_sql("rf_frame", engine, index=False))
print("replace", df.head(1).to_sql("rf_frame", engine, index=False, if_exists="replace"))
print("frame", pd.read_sql("SELECT * FROM rf_frame", engine).to_dict("records"))
with engine.begin() as c:
    c.execute(sa.text("CREATE TABLE rf_defaults (id serial, n int DEFAULT 0, at timestamptz DEFAULT now())"))
for col in sa.inspect(engine).get_columns("rf_defaults"):
    print("default", col["name"], col["default"], col["autoincrement"])
with engine.begin() as c:
    c.execute(sa.text("DROP TABLE rf_items"))
    c.execute(sa.text("DROP TABLE rf_frame"))
    c.execute(sa.text("DROP TABLE rf_defaults"))
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "column id BIGINT False None\n\
         column code VARCHAR(20) True None\n\
         column price NUMERIC(10, 2) True None\n\
         column ratio DOUBLE PRECISION True None\n\
         column note TEXT True None\n\
         column ok BOOLEAN True None\n\
         column at TIMESTAMP True None\n\
         column day DATE True None\n\
         column n INTEGER False None\n\
         pk ['id']\n\
         fks []\n\
         indexes [{'name': 'rf_items_code_key', 'unique': True, 'column_names': ['code'], \
         'duplicates_constraint': 'rf_items_code_key', 'dialect_options': {'postgresql_include': []}}, \
         {'name': 'rf_items_n_day_idx', 'unique': False, 'column_names': ['n', 'day'], \
         'column_sorting': {'day': ('desc',)}, 'dialect_options': {'postgresql_include': []}}]\n\
         unique [{'column_names': ['code'], 'name': 'rf_items_code_key', 'comment': None, \
         'dialect_options': {'postgresql_include': [], 'postgresql_nulls_not_distinct': False}}]\n\
         checks []\n\
         autoload [('id', 'BIGINT', False), ('code', 'VARCHAR(20)', True), \
         ('price', 'NUMERIC(10, 2)', True), ('ratio', 'DOUBLE PRECISION', True), \
         ('note', 'TEXT', True), ('ok', 'BOOLEAN', True), ('at', 'TIMESTAMP', True), \
         ('day', 'DATE', True), ('n', 'INTEGER', False)]\n\
         autoload keys ['id'] ['rf_items_n_day_idx'] ['rf_items_code_key', 'rf_items_pkey']\n\
         to_sql -1\n\
         replace -1\n\
         frame [{'id': 1, 'label': 'a'}]\n\
         default id nextval('rf_defaults_id_seq'::regclass) True\n\
         default n 0 False\n\
         default at now() False\n"
    );
}

on_shoal_and_postgresql!(
    sqlalchemy_reflection_on_shoal,
    sqlalchemy_reflection_on_postgresql,
    2,
    240,
    sqlalchemy_reflection
);

/// psql's `\d` of a table shows the types, modifiers, NOT NULL, defaults and indexes that
/// were declared (`float(p)` is real up to 24 bits); `\d+` and `\df` run, `\du` lists the
/// user, who owns the table in `\dt`.
async fn psql_describes_declared_columns(target: &PsqlTarget, _shoal: bool) {
    target.ok(
        "CREATE TABLE described (id bigint NOT NULL, code varchar(20), price numeric(10,2), \
         note text, n integer NOT NULL, at timestamp with time zone, r float(24), \
         d float(53), f float, qty integer DEFAULT 0, s serial, UNIQUE (code, n))",
    );
    target.ok("CREATE INDEX described_lower ON described (lower(note)) WHERE n > 0");
    let out = target.ok("\\d described");
    // psql's queries for the "Indexes:" footer of `\d` (not printed with -t) and `\di`.
    let indexes = target.ok(
        "SELECT c2.relname, i.indisprimary, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), \
         pg_catalog.pg_get_constraintdef(con.oid, true), contype \
         FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i \
         LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x')) \
         WHERE c.oid = 'described'::regclass AND c.oid = i.indrelid AND i.indexrelid = c2.oid \
         ORDER BY i.indisprimary DESC, c2.relname",
    );
    let di = target.ok("\\di described*");
    let plus = target.ok("\\d+ described");
    assert_eq!(target.ok("\\df"), "", "no functions of one's own");
    // The logged-in user is a superuser role and owns the table.
    let me = target.ok("SELECT current_user");
    let me = me.trim();
    let du = target.ok("\\du");
    assert!(
        du.lines()
            .any(|l| l.starts_with(&format!("{me}|Superuser"))),
        "\\du lists {me} as a superuser: {du}"
    );
    assert_eq!(
        target.ok("\\dt described"),
        format!("public|described|table|{me}\n")
    );
    target.ok("DROP TABLE described");
    assert_eq!(
        indexes,
        "described_code_n_key|f|t|CREATE UNIQUE INDEX described_code_n_key ON described USING btree (code, n)|UNIQUE (code, n)|u\n\
         described_lower|f|f|CREATE INDEX described_lower ON described USING btree (lower(note)) WHERE n > 0||\n"
    );
    let di: Vec<&str> = di
        .lines()
        .map(|l| l.split('|').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(di, ["described_code_n_key", "described_lower"]);
    // `\d+` adds storage, compression, statistics target and description columns.
    assert_eq!(
        plus,
        "id|bigint||not null||plain|||\n\
         code|character varying(20)||||extended|||\n\
         price|numeric(10,2)||||main|||\n\
         note|text||||extended|||\n\
         n|integer||not null||plain|||\n\
         at|timestamp with time zone||||plain|||\n\
         r|real||||plain|||\n\
         d|double precision||||plain|||\n\
         f|double precision||||plain|||\n\
         qty|integer|||0|plain|||\n\
         s|integer||not null|nextval('described_s_seq'::regclass)|plain|||\n"
    );
    assert_eq!(
        out,
        "id|bigint||not null|\n\
         code|character varying(20)|||\n\
         price|numeric(10,2)|||\n\
         note|text|||\n\
         n|integer||not null|\n\
         at|timestamp with time zone|||\n\
         r|real|||\n\
         d|double precision|||\n\
         f|double precision|||\n\
         qty|integer|||0\n\
         s|integer||not null|nextval('described_s_seq'::regclass)\n"
    );
}

on_shoal_and_postgresql!(
    psql_describes_declared_columns_on_shoal,
    psql_describes_declared_columns_on_postgresql,
    2,
    60,
    psql_describes_declared_columns
);

/// pgjdbc's `DatabaseMetaData`, as JDBC tools (DBeaver, Metabase) browse a database, and the
/// update counts `executeBatch` returns (Hibernate and Spring check them).
async fn pgjdbc_metadata_and_batches(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = shoal_e2e::run_java(
        "Meta.java",
        br#"
import java.sql.*;
import java.util.Arrays;

public class Meta {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[3] + "?user=" + a[2];
        try (Connection c = DriverManager.getConnection(url)) {
            Statement s = c.createStatement();
            s.execute("DROP TABLE IF EXISTS mdt_items");
            s.execute("CREATE TABLE mdt_items (id bigint NOT NULL, code varchar(20), price numeric(10,2), note text, CONSTRAINT mdt_pk PRIMARY KEY (id, code))");
            s.execute("CREATE INDEX mdt_note ON mdt_items (note DESC)");
            PreparedStatement ps = c.prepareStatement("INSERT INTO mdt_items (id, code) VALUES (?, ?)");
            for (int i = 0; i < 3; i++) { ps.setLong(1, i); ps.setString(2, "c" + i); ps.addBatch(); }
            System.out.println("insert batch " + Arrays.toString(ps.executeBatch()));
            PreparedStatement up = c.prepareStatement("UPDATE mdt_items SET note = ? WHERE id <= ?");
            up.setString(1, "y"); up.setLong(2, 1); up.addBatch();
            up.setString(1, "z"); up.setLong(2, 0); up.addBatch();
            System.out.println("update batch " + Arrays.toString(up.executeBatch()));
            Statement st = c.createStatement();
            st.addBatch("INSERT INTO mdt_items (id, code) VALUES (10, 'x')");
            st.addBatch("DELETE FROM mdt_items WHERE id = 2");
            System.out.println("statement batch " + Arrays.toString(st.executeBatch()));

            DatabaseMetaData md = c.getMetaData();
            try (ResultSet rs = md.getTables(null, "public", "mdt%", new String[] {"TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
            }
            try (ResultSet rs = md.getColumns(null, "public", "mdt_items", null)) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                        + " size " + rs.getInt("COLUMN_SIZE") + " digits " + rs.getInt("DECIMAL_DIGITS")
                        + " nullable " + rs.getInt("NULLABLE") + " position " + rs.getInt("ORDINAL_POSITION"));
                }
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "mdt_items")) {
                while (rs.next()) System.out.println("primary key " + rs.getString("PK_NAME") + " "
                    + rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ"));
            }
            try (ResultSet rs = md.getIndexInfo(null, "public", "mdt_items", false, false)) {
                while (rs.next()) System.out.println("index " + rs.getString("INDEX_NAME") + " "
                    + rs.getString("COLUMN_NAME") + " " + rs.getInt("ORDINAL_POSITION") + " non-unique "
                    + rs.getBoolean("NON_UNIQUE") + " " + rs.getString("ASC_OR_DESC"));
            }
            try (ResultSet rs = md.getTypeInfo()) {
                boolean int8 = false, text = false;
                while (rs.next()) {
                    int8 |= "int8".equals(rs.getString("TYPE_NAME"));
                    text |= "text".equals(rs.getString("TYPE_NAME"));
                }
                System.out.println("type info int8 " + int8 + " text " + text);
            }
            try (ResultSet rs = md.getSchemas(null, "public")) {
                while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
            }
            s.execute("DROP TABLE mdt_items");
        }
    }
}
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "insert batch [1, 1, 1]\n\
         update batch [2, 1]\n\
         statement batch [1, 1]\n\
         table mdt_items TABLE\n\
         column id int8 size 19 digits 0 nullable 0 position 1\n\
         column code varchar size 20 digits 0 nullable 0 position 2\n\
         column price numeric size 10 digits 2 nullable 1 position 3\n\
         column note text size 2147483647 digits 0 nullable 1 position 4\n\
         primary key mdt_pk id 1\n\
         primary key mdt_pk code 2\n\
         index mdt_pk id 1 non-unique false A\n\
         index mdt_pk code 2 non-unique false A\n\
         index mdt_note note 1 non-unique true D\n\
         type info int8 true text true\n\
         schema public\n"
    );
}

on_shoal_and_postgresql!(
    pgjdbc_metadata_and_batches_on_shoal,
    pgjdbc_metadata_and_batches_on_postgresql,
    2,
    180,
    pgjdbc_metadata_and_batches
);

/// SQLAlchemy's ORM as applications use it: a model with a serial primary key and a server
/// default, `create_all`, objects added one at a time and in a batch (whose new keys come
/// back through `INSERT ... RETURNING`), changed, deleted, rolled back, fetched by key; objects
/// of nothing but defaults (`INSERT ... DEFAULT VALUES`), and `DEFAULT` beside a bound
/// parameter.
async fn sqlalchemy_orm(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = run_python(
        "sqlalchemy",
        br#"
import sys
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, Session

host, port, user, db = sys.argv[1:5]
engine = sa.create_engine(f"postgresql+psycopg://{user}@{host}:{port}/{db}")

class Base(DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "orm_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    score: Mapped[int] = mapped_column(server_default=sa.text("0"))

class Counter(Base):
    __tablename__ = "orm_counters"
    id: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(server_default=sa.text("10"))

Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
with Session(engine) as s:
    first = Item(name="ann")
    s.add(first)
    s.flush()
    print("first id", first.id)
    s.add_all([Item(name="bob"), Item(name="cy"), Item(name="di", score=5)])
    s.commit()
    print("items", [(i.id, i.name, i.score) for i in s.scalars(sa.select(Item).order_by(Item.id))])
    first.name = "ann2"
    s.delete(s.scalars(sa.select(Item).where(Item.name == "bob")).one())
    s.commit()
    s.add(Item(name="gone"))
    s.flush()
    s.rollback()
    s.add(Item(name="eve"))
    s.commit()
    print("after", [(i.id, i.name, i.score) for i in s.scalars(sa.select(Item).order_by(Item.id))])
    print("get", s.get(Item, 3).name)
    counters = [Counter(), Counter()]
    s.add_all(counters)
    s.commit()
    print("counters", [(c.id, c.n) for c in counters])
with engine.begin() as c:
    c.exec_driver_sql("INSERT INTO orm_items VALUES (DEFAULT, %(name)s, DEFAULT)", {"name": "param"})
    print("param row", c.exec_driver_sql("SELECT id, name, score FROM orm_items WHERE name = 'param'").all())
Base.metadata.drop_all(engine)
print("dropped", sa.inspect(engine).has_table("orm_items"))
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "first id 1\n\
         items [(1, 'ann', 0), (2, 'bob', 0), (3, 'cy', 0), (4, 'di', 5)]\n\
         after [(1, 'ann2', 0), (3, 'cy', 0), (4, 'di', 5), (6, 'eve', 0)]\n\
         get cy\n\
         counters [(1, 10), (2, 10)]\n\
         param row [(7, 'param', 0)]\n\
         dropped False\n"
    );
}

on_shoal_and_postgresql!(
    sqlalchemy_orm_on_shoal,
    sqlalchemy_orm_on_postgresql,
    2,
    240,
    sqlalchemy_orm
);

/// psql's `\copy` with a column list into a table with a serial key and defaults: the
/// columns left out take their defaults, as in PostgreSQL.
async fn psql_copy_fills_defaults(target: &PsqlTarget, _shoal: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = shoal_e2e::write_file(dir.path(), "items.csv", b"name,price\nann,1.5\nbob,2\n");
    let script = format!(
        "CREATE TABLE cp_items (id serial, name text NOT NULL, price numeric(10,2), \
           added date DEFAULT '2024-01-01', qty int DEFAULT 1);\n\
         \\copy cp_items (name, price) FROM '{}' WITH (FORMAT csv, HEADER)\n\
         INSERT INTO cp_items (name) VALUES ('cy');\n\
         \\copy cp_items (name, qty) FROM stdin\n\
         di\t5\n\
         \\.\n\
         SELECT id, name, price, added, qty FROM cp_items ORDER BY id;\n\
         DROP TABLE cp_items;\n",
        csv.display()
    );
    let file = shoal_e2e::write_file(dir.path(), "copy.sql", script.as_bytes());
    let out = tokio::task::block_in_place(|| target.run_file(&file));
    assert!(out.status.success(), "{}", shoal_e2e::stderr_of(&out));
    assert_eq!(
        shoal_e2e::stdout_of(&out),
        "CREATE TABLE\n\
         COPY 2\n\
         INSERT 0 1\n\
         COPY 1\n\
         1|ann|1.50|2024-01-01|1\n\
         2|bob|2.00|2024-01-01|1\n\
         3|cy||2024-01-01|1\n\
         4|di||2024-01-01|5\n\
         DROP TABLE\n"
    );
}

on_shoal_and_postgresql!(
    psql_copy_fills_defaults_on_shoal,
    psql_copy_fills_defaults_on_postgresql,
    2,
    60,
    psql_copy_fills_defaults
);

/// Table sizes and row counts as tools read them (`pg_class.reltuples`, `pg_table_size`,
/// psql's `\dt+`): true, not zeros. PostgreSQL's are estimates that ANALYZE brings up to date;
/// Shoal's come from the catalog and are always current (so only PostgreSQL is analyzed).
async fn table_sizes_are_true(target: &PsqlTarget, shoal: bool) {
    target.ok("CREATE TABLE sized (id bigint, v text); \
         INSERT INTO sized SELECT i, 'value ' || i FROM generate_series(1, 5000) AS g(i)");
    if !shoal {
        target.ok("ANALYZE sized");
    }
    let stats = target.ok(
        "SELECT c.reltuples, c.relpages > 0, pg_table_size(c.oid) > 0, \
           pg_total_relation_size(c.oid) >= pg_table_size(c.oid), pg_indexes_size(c.oid), \
           am.amname, pg_table_size(0) IS NULL, obj_description(c.oid, 'pg_class') IS NULL \
         FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'sized'",
    );
    let listing = target.ok("\\dt+ sized");
    target.ok("DROP TABLE sized");
    assert_eq!(stats, "5000|t|t|t|0|heap|t|t\n");
    assert!(
        listing.starts_with("public|sized|table|") && listing.contains("|permanent|heap|"),
        "{listing}"
    );
}

on_shoal_and_postgresql!(
    table_sizes_are_true_on_shoal,
    table_sizes_are_true_on_postgresql,
    2,
    60,
    table_sizes_are_true
);

/// Binary COPY as drivers send it: asyncpg's `copy_records_to_table` (every stored type,
/// a column list, a value beyond its numeric column and a NULL into NOT NULL, which load
/// nothing) and psycopg's binary `copy` in and out (its header arrives with the first row,
/// and with the trailer when there is none).
async fn binary_copy(target: &PsqlTarget, shoal: bool) {
    let distribute = distribute_sql(shoal, "bc", "id");
    let script = format!(
        r#"
import sys, asyncio, datetime, decimal
import asyncpg, psycopg

host, port, user, db = sys.argv[1:5]

async def with_asyncpg():
    conn = await asyncpg.connect(host=host, port=int(port), user=user, database=db)
    await conn.execute("DROP TABLE IF EXISTS bc")
    await conn.execute("CREATE TABLE bc (id bigint NOT NULL, name text, price numeric(10,2), at timestamptz, day date, ok boolean, raw bytea, n integer, f double precision)")
    await conn.execute("{distribute}")
    rows = [(i, f"n{{i}}" if i % 7 else None, decimal.Decimal(i) / 4,
             datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=i),
             datetime.date(2024, 1, 1) + datetime.timedelta(days=i), i % 2 == 0, bytes([i % 256, 0]), i * 2, i / 3)
            for i in range(2000)]
    print("copy", await conn.copy_records_to_table("bc", records=rows))
    print("copy cols", await conn.copy_records_to_table("bc", records=[(5000, "x")], columns=["id", "name"]))
    print(await conn.fetchrow("SELECT count(*), sum(id), count(name), sum(price), min(at), max(day), count(*) FILTER (WHERE ok), sum(n), sum(length(raw)) FROM bc"))
    print(await conn.fetchrow("SELECT * FROM bc WHERE id = 1999"))
    try:
        await conn.copy_records_to_table("bc", records=[(1, "x", decimal.Decimal("123456789012"))], columns=["id", "name", "price"])
    except asyncpg.PostgresError as e:
        print("overflow", e.sqlstate)
    try:
        await conn.copy_records_to_table("bc", records=[(None, "x")], columns=["id", "name"])
    except asyncpg.PostgresError as e:
        print("null", e.sqlstate)
    print("after errors", await conn.fetchval("SELECT count(*) FROM bc"))
    await conn.close()

asyncio.run(with_asyncpg())

with psycopg.connect(host=host, port=int(port), user=user, dbname=db, autocommit=True) as conn:
    cur = conn.cursor()
    with cur.copy("COPY bc (id, name, price) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text", "numeric"])
        for i in range(10000, 10100):
            copy.write_row((i, f"p{{i}}", decimal.Decimal("1.005")))
    print("psycopg in", cur.rowcount)
    out = []
    with cur.copy("COPY (SELECT id, name, price, at FROM bc WHERE id IN (3, 10001) ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "text", "numeric", "timestamptz"])
        for row in copy.rows():
            # The zone's name is the server's TimeZone setting: print the offset.
            out.append(row[:3] + (row[3] and row[3].isoformat(),))
    print("psycopg out", out, cur.rowcount)
    with cur.copy("COPY (SELECT id FROM bc WHERE id < 0) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["int8"])
        print("psycopg none", list(copy.rows()), cur.rowcount)
    conn.execute("DROP TABLE bc")
"#
    );
    let Some(out) = run_python("asyncpg", script.as_bytes(), target) else {
        return;
    };
    assert_eq!(
        out,
        "copy COPY 2000\n\
         copy cols COPY 1\n\
         <Record count=2001 sum=Decimal('2004000') count=1715 sum=Decimal('499750.00') \
         min=datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc) \
         max=datetime.date(2029, 6, 22) count=1000 sum=3998000 sum=4000>\n\
         <Record id=1999 name='n1999' price=Decimal('499.75') \
         at=datetime.datetime(2024, 1, 2, 9, 19, tzinfo=datetime.timezone.utc) \
         day=datetime.date(2029, 6, 22) ok=False raw=b'\\xcf\\x00' n=3998 f=666.3333333333334>\n\
         overflow 22003\n\
         null 23502\n\
         after errors 2001\n\
         psycopg in 100\n\
         psycopg out [(3, 'n3', Decimal('0.75'), '2024-01-01T00:03:00+00:00'), \
         (10001, 'p10001', Decimal('1.01'), None)] 2\n\
         psycopg none [] 0\n"
    );
}

on_shoal_and_postgresql!(
    binary_copy_on_shoal,
    binary_copy_on_postgresql,
    2,
    180,
    binary_copy
);

/// uuid, json and jsonb through the drivers: psycopg's adapters in text and binary results
/// and binary COPY, asyncpg's uuid parameters and binary results, pgjdbc's `setObject(UUID)`
/// and `getObject`. Each driver decodes by the type the server describes, so a column
/// described as text would come back as a string instead of a dict or a UUID.
async fn uuid_and_json_in_drivers(target: &PsqlTarget, shoal: bool) {
    let distribute = distribute_sql(shoal, "ujd", "id");
    let script = format!(
        r#"
import sys, asyncio, uuid
import asyncpg, psycopg
from psycopg.types.json import Jsonb, Json

host, port, user, db = sys.argv[1:5]
u1 = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")

with psycopg.connect(host=host, port=int(port), user=user, dbname=db, autocommit=True) as c:
    c.execute("DROP TABLE IF EXISTS ujd")
    c.execute("CREATE TABLE ujd (id int NOT NULL, u uuid, j jsonb, js json)")
    c.execute("{distribute}")
    c.execute("INSERT INTO ujd VALUES (%s, %s, %s, %s)", (1, u1, Jsonb({{"b": 1, "a": [1, 2]}}), Json({{"x": "y"}})))
    c.execute("INSERT INTO ujd VALUES (%b, %b, %b, %b)", (2, uuid.UUID(int=2), Jsonb([1, None]), Json(3)))
    for binary in (False, True):
        cur = c.cursor(binary=binary)
        cur.execute("SELECT id, u, j, js, j->'a' AS a, j->>'b' AS b FROM ujd ORDER BY id")
        print("binary" if binary else "text", cur.fetchall(), [d.type_code for d in cur.description])
    print("by uuid", c.execute("SELECT id FROM ujd WHERE u = %s", (u1,)).fetchall())
    print("contains", c.execute("SELECT id FROM ujd WHERE j @> %s", (Jsonb({{"a": [2]}}),)).fetchall())
    try:
        c.execute("INSERT INTO ujd (id, u) VALUES (9, %s)", ("not-a-uuid",))
    except psycopg.Error as e:
        print("bad uuid", e.sqlstate)
    with c.cursor().copy("COPY ujd (id, u, j) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(["int4", "uuid", "jsonb"])
        cp.write_row((3, u1, {{"c": True}}))
    with c.cursor().copy("COPY (SELECT id, u, j FROM ujd ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
        cp.set_types(["int4", "uuid", "jsonb"])
        print("copy out", list(cp.rows()))

async def with_asyncpg():
    conn = await asyncpg.connect(host=host, port=int(port), user=user, database=db)
    print("asyncpg", [tuple(r) for r in await conn.fetch("SELECT id, u, j FROM ujd WHERE u = $1 ORDER BY id", u1)])
    await conn.execute("INSERT INTO ujd (id, u, j) VALUES ($1, $2, $3)", 4, uuid.UUID(int=5), '{{"d": 1}}')
    print("asyncpg insert", [tuple(r) for r in await conn.fetch("SELECT id, u, j FROM ujd WHERE id = 4")])
    await conn.close()

asyncio.run(with_asyncpg())
"#
    );
    let Some(out) = run_python("asyncpg", script.as_bytes(), target) else {
        return;
    };
    assert_eq!(
        out,
        "text [(1, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), {'a': [1, 2], 'b': 1}, {'x': 'y'}, [1, 2], '1'), \
         (2, UUID('00000000-0000-0000-0000-000000000002'), [1, None], 3, None, None)] [23, 2950, 3802, 114, 3802, 25]\n\
         binary [(1, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), {'a': [1, 2], 'b': 1}, {'x': 'y'}, [1, 2], '1'), \
         (2, UUID('00000000-0000-0000-0000-000000000002'), [1, None], 3, None, None)] [23, 2950, 3802, 114, 3802, 25]\n\
         by uuid [(1,)]\n\
         contains [(1,)]\n\
         bad uuid 22P02\n\
         copy out [(1, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), {'a': [1, 2], 'b': 1}), \
         (2, UUID('00000000-0000-0000-0000-000000000002'), [1, None]), \
         (3, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), {'c': True})]\n\
         asyncpg [(1, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), '{\"a\": [1, 2], \"b\": 1}'), \
         (3, UUID('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), '{\"c\": true}')]\n\
         asyncpg insert [(4, UUID('00000000-0000-0000-0000-000000000005'), '{\"d\": 1}')]\n"
    );

    let Some(out) = shoal_e2e::run_java(
        "Uuids.java",
        br#"
import java.sql.*;
import java.util.UUID;

public class Uuids {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[3] + "?user=" + a[2];
        try (Connection c = DriverManager.getConnection(url)) {
            PreparedStatement ps = c.prepareStatement("INSERT INTO ujd (id, u) VALUES (?, ?)");
            ps.setInt(1, 7); ps.setObject(2, UUID.fromString("00000000-0000-0000-0000-000000000007"));
            System.out.println("insert " + ps.executeUpdate());
            PreparedStatement q = c.prepareStatement("SELECT u, j FROM ujd WHERE u = ? OR id = 1 ORDER BY id");
            q.setObject(1, UUID.fromString("00000000-0000-0000-0000-000000000007"));
            try (ResultSet rs = q.executeQuery()) {
                ResultSetMetaData md = rs.getMetaData();
                System.out.println("types " + md.getColumnTypeName(1) + " " + md.getColumnTypeName(2));
                while (rs.next()) {
                    Object u = rs.getObject(1);
                    System.out.println(u.getClass().getSimpleName() + " " + u + " " + rs.getString(2));
                }
            }
            c.createStatement().execute("DROP TABLE ujd");
        }
    }
}
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "insert 1\n\
         types uuid jsonb\n\
         UUID a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 {\"a\": [1, 2], \"b\": 1}\n\
         UUID 00000000-0000-0000-0000-000000000007 null\n"
    );
}

on_shoal_and_postgresql!(
    uuid_and_json_in_drivers_on_shoal,
    uuid_and_json_in_drivers_on_postgresql,
    2,
    180,
    uuid_and_json_in_drivers
);

/// Indexes the way ORMs create them, inside their transactions: pandas `to_sql` of a new
/// table (it indexes the frame's index column) and SQLAlchemy `create_all` with `index=True`
/// and an explicit `Index`, then a drop and a re-create in one transaction.
async fn indexes_from_orms(target: &PsqlTarget, _shoal: bool) {
    let script = br#"
import sys
import pandas as pd
import sqlalchemy as sa

host, port, user, db = sys.argv[1:5]
eng = sa.create_engine(f"postgresql+psycopg://{user}@{host}:{port}/{db}")
df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
df.to_sql("orm_frame", eng, if_exists="replace")
print(pd.read_sql("SELECT * FROM orm_frame ORDER BY a", eng).to_dict("list"))
df.to_sql("orm_frame", eng, if_exists="replace")
print(pd.read_sql("SELECT count(*) AS n FROM orm_frame", eng).to_dict("list"))
md = sa.MetaData()
t = sa.Table("orm_indexed", md,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.String(20), index=True),
             sa.Index("orm_indexed_both", "id", "name"))
md.drop_all(eng)
md.create_all(eng)
with eng.begin() as c:
    c.execute(t.insert(), [{"id": 1, "name": "n"}, {"id": 2, "name": "m"}])
with eng.begin() as c:
    c.execute(sa.text("DROP INDEX orm_indexed_both"))
    c.execute(sa.text("CREATE INDEX orm_indexed_both ON orm_indexed (name, id)"))
try:
    with eng.begin() as c:
        c.execute(sa.text("CREATE INDEX orm_indexed_both ON orm_indexed (id)"))
except sa.exc.DBAPIError as e:
    print("duplicate", e.orig.sqlstate)
with eng.connect() as c:
    print(c.execute(sa.text("SELECT count(*) FROM orm_indexed")).scalar())
md.drop_all(eng)
with eng.begin() as c:
    c.execute(sa.text("DROP TABLE orm_frame"))
print("done")
"#;
    let Some(out) = run_python("sqlalchemy", script, target) else {
        return;
    };
    assert_eq!(
        out,
        "{'index': [0, 1, 2], 'a': [1, 2, 3], 'b': ['x', 'y', 'z']}\n\
         {'n': [3]}\n\
         duplicate 42P07\n\
         2\n\
         done\n"
    );
}

on_shoal_and_postgresql!(
    indexes_from_orms_on_shoal,
    indexes_from_orms_on_postgresql,
    2,
    180,
    indexes_from_orms
);

/// A session's TimeZone through psycopg: timestamptz results (text and binary) come back
/// in the zone, COPY reads local times there and writes in it, and a naive datetime bound
/// where a timestamptz is wanted is a local time there.
async fn time_zone_in_drivers(target: &PsqlTarget, _shoal: bool) {
    let Some(out) = run_python(
        "psycopg",
        br#"
import sys, datetime, psycopg
host, port, user, db = sys.argv[1:5]
with psycopg.connect(host=host, port=port, user=user, dbname=db, autocommit=True) as c:
    c.execute("SET TimeZone = 'Europe/Berlin'")
    c.execute("DROP TABLE IF EXISTS tzd")
    c.execute("CREATE TABLE tzd (id int, at timestamptz)")
    with c.cursor().copy("COPY tzd FROM STDIN") as cp:
        cp.write_row((1, "2024-01-15 09:00"))
        cp.write_row((2, "2024-06-15 09:00:00+02"))
    for r in c.execute("SELECT id, at, at::text FROM tzd ORDER BY id"):
        print(r[0], r[1].isoformat(), r[2])
    cur = c.cursor(binary=True)
    for r in cur.execute("SELECT id, at FROM tzd ORDER BY id"):
        print("binary", r[0], r[1].isoformat())
    c.execute("INSERT INTO tzd VALUES (3, %s)", (datetime.datetime(2024, 3, 31, 12, 0),))
    c.execute("INSERT INTO tzd VALUES (4, %s)", (datetime.datetime(2024, 3, 31, 12, 0, tzinfo=datetime.timezone.utc),))
    for r in c.execute("SELECT id, at::text FROM tzd WHERE id > 2 ORDER BY id"):
        print(r[0], r[1])
    print(c.execute("SELECT count(*) FROM tzd WHERE at < %s", (datetime.datetime(2024, 3, 31, 12, 0),)).fetchone()[0])
    with c.cursor().copy("COPY (SELECT id, at FROM tzd ORDER BY id) TO STDOUT") as cp:
        for row in cp.rows():
            print("out", row)
    c.execute("DROP TABLE tzd")
"#,
        target,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "1 2024-01-15T09:00:00+01:00 2024-01-15 09:00:00+01\n\
         2 2024-06-15T09:00:00+02:00 2024-06-15 09:00:00+02\n\
         binary 1 2024-01-15T09:00:00+01:00\n\
         binary 2 2024-06-15T09:00:00+02:00\n\
         3 2024-03-31 12:00:00+02\n\
         4 2024-03-31 14:00:00+02\n\
         1\n\
         out ('1', '2024-01-15 09:00:00+01')\n\
         out ('2', '2024-06-15 09:00:00+02')\n\
         out ('3', '2024-03-31 12:00:00+02')\n\
         out ('4', '2024-03-31 14:00:00+02')\n"
    );
}

on_shoal_and_postgresql!(
    time_zone_in_drivers_on_shoal,
    time_zone_in_drivers_on_postgresql,
    2,
    120,
    time_zone_in_drivers
);

/// `pg_dump --schema-only` of a database: the same script from Shoal as from PostgreSQL
/// (tables with their declared types, keys, indexes, owner), without Shoal's own views,
/// which belong to its built-in `shoal` extension as Citus's belong to `citus`.
async fn pg_dump_schema_only(target: &PsqlTarget, shoal: bool) {
    if !shoal_e2e::require_tool("pg_dump") {
        return;
    }
    target.ok(
        "CREATE TABLE dump_orders (id bigint NOT NULL PRIMARY KEY, customer varchar(40) NOT NULL, \
         code char(3), amount numeric(12,2), placed timestamptz, note text, UNIQUE (customer, code))",
    );
    target.ok(&distribute_sql(shoal, "dump_orders", "id"));
    target.ok("CREATE INDEX dump_orders_placed ON dump_orders (placed DESC)");
    let out = std::process::Command::new("pg_dump")
        .args(["--schema-only", "-w", "-h", &target.host, "-p"])
        .arg(target.port.to_string())
        .args(["-U", &target.user, &target.dbname])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What names the server and pg_dump's own version, and the per-run restrict key.
    let dump: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
                && !l.starts_with("-- Dumped from")
                && !l.starts_with("-- Dumped by")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let owner = &target.user;
    let expected = format!(
        "--
-- PostgreSQL database dump
--



SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: dump_orders; Type: TABLE; Schema: public; Owner: {owner}
--

CREATE TABLE public.dump_orders (
    id bigint NOT NULL,
    customer character varying(40) NOT NULL,
    code character(3),
    amount numeric(12,2),
    placed timestamp with time zone,
    note text
);


ALTER TABLE public.dump_orders OWNER TO {owner};

--
-- Name: dump_orders dump_orders_customer_code_key; Type: CONSTRAINT; Schema: public; Owner: {owner}
--

ALTER TABLE ONLY public.dump_orders
    ADD CONSTRAINT dump_orders_customer_code_key UNIQUE (customer, code);


--
-- Name: dump_orders dump_orders_pkey; Type: CONSTRAINT; Schema: public; Owner: {owner}
--

ALTER TABLE ONLY public.dump_orders
    ADD CONSTRAINT dump_orders_pkey PRIMARY KEY (id);


--
-- Name: dump_orders_placed; Type: INDEX; Schema: public; Owner: {owner}
--

CREATE INDEX dump_orders_placed ON public.dump_orders USING btree (placed DESC);


--
-- PostgreSQL database dump complete
--


"
    );
    assert_eq!(dump, expected);
    target.ok("DROP TABLE dump_orders");
}

on_shoal_and_postgresql!(
    pg_dump_schema_only_on_shoal,
    pg_dump_schema_only_on_postgresql,
    2,
    120,
    pg_dump_schema_only
);

/// Array columns from a driver: Python lists as parameters (psycopg sends them typed, in
/// text or binary), read back as lists in both formats, and COPY in and out in text format.
async fn arrays_in_drivers(target: &PsqlTarget, shoal: bool) {
    let distribute = distribute_sql(shoal, "ad", "id");
    let script = format!(
        r#"
import sys
import psycopg

host, port, user, db = sys.argv[1:5]
args = dict(host=host, port=int(port), user=user, dbname=db)
with psycopg.connect(**args, autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS ad")
    conn.execute("CREATE TABLE ad (id bigint NOT NULL, nums bigint[], tags text[])")
    conn.execute("{distribute}")
    conn.execute("INSERT INTO ad VALUES (%s, %s, %s)", (1, [1, 2, None], ["a", "b,c", None]))
    with conn.cursor(binary=True) as cur:
        cur.execute("INSERT INTO ad VALUES (%s, %s, %s)", (2, [3], []))
    with conn.cursor().copy("COPY ad FROM STDIN") as cp:
        cp.write_row((3, [7, 8], ["q r"]))
    cur = conn.execute("SELECT id, nums, tags FROM ad ORDER BY id")
    print("text", cur.fetchall(), [d.type_code for d in cur.description])
    cur = conn.cursor(binary=True)
    cur.execute("SELECT nums, tags FROM ad WHERE id = %s", (1,))
    print("binary", cur.fetchall())
    print("any", conn.execute("SELECT id FROM ad WHERE %s = ANY(nums) ORDER BY id", (8,)).fetchall())
    with conn.cursor().copy("COPY (SELECT id, nums, tags FROM ad ORDER BY id) TO STDOUT") as cp:
        print("copy", b"".join(bytes(b) for b in cp).decode().splitlines())
    conn.execute("DROP TABLE ad")
"#
    );
    let Some(out) = run_python("psycopg", script.as_bytes(), target) else {
        return;
    };
    assert_eq!(
        out,
        "text [(1, [1, 2, None], ['a', 'b,c', None]), (2, [3], []), (3, [7, 8], ['q r'])] [20, 1016, 1009]\n\
         binary [([1, 2, None], ['a', 'b,c', None])]\n\
         any [(3,)]\n\
         copy ['1\\t{1,2,NULL}\\t{a,\"b,c\",NULL}', '2\\t{3}\\t{}', '3\\t{7,8}\\t{\"q r\"}']\n"
    );
}

on_shoal_and_postgresql!(
    arrays_in_drivers_on_shoal,
    arrays_in_drivers_on_postgresql,
    2,
    120,
    arrays_in_drivers
);
