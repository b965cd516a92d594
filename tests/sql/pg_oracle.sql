-- Correctness oracle: every statement here runs through `psql -X -A -t` against Shoal and
-- against a scratch PostgreSQL 15 loaded with the same data (tests/tests/pg_oracle.rs), and
-- the two outputs must be identical, byte for byte.
--
-- Tables: events (distributed on id in Shoal, ~200k rows, NULLs in every column but id) and
-- kinds (a reference table). PostgreSQL runs with C collation and TimeZone=UTC.
--
-- Format: statements end with `;` at the end of a line; `--` lines are comments. Every query
-- has a total ORDER BY (or returns one row), so output order is defined. Floating point
-- results are rounded through numeric so that both engines must print the same digits.

-- Plain aggregates
SELECT count(*) FROM events;
SELECT count(*), count(device_id), count(kind), count(value), count(amount), count(ts), count(flag), count(note) FROM events;
SELECT min(id), max(id), count(DISTINCT id) FROM events;
SELECT sum(amount), min(amount), max(amount) FROM events;
SELECT round(avg(amount), 4) FROM events;
SELECT min(value), max(value), round(sum(value)::numeric, 2) FROM events;
SELECT round(avg(value)::numeric, 6), round(avg(device_id), 6) FROM events;
SELECT min(ts), max(ts) FROM events;
SELECT min(note), max(note), min(kind), max(kind) FROM events;

-- NULL handling
SELECT count(*) FROM events WHERE kind IS NULL;
SELECT count(*) FROM events WHERE note IS NULL;
SELECT count(*) FROM events WHERE note = '';
SELECT sum(CASE WHEN device_id IS NULL THEN 1 ELSE 0 END), sum(CASE WHEN value IS NULL THEN 1 ELSE 0 END), sum(CASE WHEN ts IS NULL THEN 1 ELSE 0 END) FROM events;
SELECT flag, count(*) FROM events GROUP BY flag ORDER BY flag;
SELECT coalesce(kind, '(none)') AS k, coalesce(flag, false) AS f, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2;
SELECT id, coalesce(note, '<null>'), coalesce(device_id, -1) FROM events WHERE id BETWEEN 1 AND 40 ORDER BY id;

-- GROUP BY / HAVING
SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind;
SELECT kind, count(*), round(avg(value)::numeric, 6), sum(amount) FROM events GROUP BY kind ORDER BY kind NULLS FIRST;
SELECT device_id, count(*) FROM events GROUP BY device_id HAVING count(*) > 215 ORDER BY device_id;
SELECT kind, count(*) FROM events WHERE flag AND value > 0 GROUP BY kind HAVING sum(amount) > 0 ORDER BY count(*) DESC, kind LIMIT 5;
SELECT device_id % 10 AS m, count(*), max(amount), min(value) FROM events WHERE device_id IS NOT NULL GROUP BY 1 ORDER BY 1;
SELECT kind, flag, count(*), sum(amount) FROM events WHERE kind IN ('click', 'refund', 'hover') GROUP BY kind, flag ORDER BY kind, flag;

-- DISTINCT
SELECT DISTINCT kind FROM events ORDER BY 1;
SELECT count(DISTINCT device_id), count(DISTINCT kind), count(DISTINCT note) FROM events;
SELECT count(*) FROM (SELECT DISTINCT device_id, kind FROM events) AS x;
SELECT DISTINCT flag, kind FROM events WHERE device_id = 7 ORDER BY 1, 2;

-- Joins with the reference table, outer joins, a self join
SELECT k.label, count(*) FROM events e JOIN kinds k ON e.kind = k.kind GROUP BY k.label ORDER BY k.label;
SELECT k.kind, k.label, count(e.id) FROM kinds k LEFT JOIN events e ON e.kind = k.kind GROUP BY k.kind, k.label ORDER BY k.kind;
SELECT e.kind, k.label, count(*) FROM events e LEFT JOIN kinds k ON e.kind = k.kind GROUP BY e.kind, k.label ORDER BY e.kind NULLS FIRST, k.label;
SELECT e.id, k.label, e.amount FROM events e JOIN kinds k ON e.kind = k.kind WHERE e.id BETWEEN 100 AND 130 ORDER BY e.id;
SELECT count(*), sum(a.device_id), sum(b.device_id) FROM events a JOIN events b ON a.id = b.id + 1 WHERE a.id BETWEEN 1000 AND 20000;
SELECT a.id, b.id, a.kind FROM events a JOIN events b ON a.device_id = b.device_id AND a.kind = b.kind AND a.id < b.id WHERE a.id BETWEEN 1 AND 300 AND b.id BETWEEN 1 AND 300 ORDER BY a.id, b.id;

-- ORDER BY / LIMIT / OFFSET (total orders only)
SELECT id, device_id, kind, value, amount, ts, flag, note FROM events ORDER BY id LIMIT 20;
SELECT id, value FROM events WHERE value IS NOT NULL ORDER BY value DESC, id LIMIT 15;
SELECT id, ts FROM events ORDER BY ts, id LIMIT 10 OFFSET 1000;
SELECT id, amount FROM events ORDER BY amount DESC NULLS LAST, id LIMIT 10;
SELECT id, ts FROM events ORDER BY ts DESC, id LIMIT 5;
SELECT id, note FROM events WHERE id > 0 AND note <> '' ORDER BY note, id LIMIT 12;

-- Date / time functions
SELECT date_trunc('day', ts) AS d, count(*) FROM events GROUP BY 1 ORDER BY 1;
SELECT extract(hour FROM ts) AS h, count(*) FROM events WHERE ts IS NOT NULL GROUP BY 1 ORDER BY 1;
SELECT date_trunc('month', ts), count(*), min(ts), max(ts) FROM events GROUP BY 1 ORDER BY 1;
SELECT ts::date, sum(amount) FROM events WHERE ts >= '2024-02-01' AND ts < '2024-02-08' GROUP BY 1 ORDER BY 1;
SELECT count(*) FROM events WHERE ts BETWEEN '2024-01-15 00:00:00' AND '2024-01-15 23:59:59';
SELECT extract(dow FROM ts) AS dow, count(*) FROM events WHERE ts IS NOT NULL GROUP BY 1 ORDER BY 1;
SELECT date_trunc('hour', ts), count(*) FROM events WHERE ts >= '2024-03-10' AND ts < '2024-03-11' GROUP BY 1 ORDER BY 1;

-- LIKE, string functions
SELECT count(*) FROM events WHERE note LIKE 'note-12%';
SELECT count(*) FROM events WHERE note NOT LIKE 'note-%';
SELECT count(*) FROM events WHERE note ILIKE 'NOTE-9%';
SELECT note, count(*) FROM events WHERE note LIKE 'say%' AND note LIKE '%, 4%' GROUP BY note ORDER BY note LIMIT 20;
SELECT upper(kind), length(note), count(*) FROM events WHERE note LIKE 'ü%' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT id, kind || ':' || coalesce(note, '?') FROM events WHERE id < 15 ORDER BY id;

-- Floating point text output (shortest round-trip digits, whole numbers without ".0")
SELECT id, floor(value), ceil(value), value * 4, value / 3 FROM events WHERE id BETWEEN 1 AND 12 ORDER BY id;
SELECT device_id, sum(floor(value)) FROM events WHERE device_id BETWEEN 10 AND 14 GROUP BY device_id ORDER BY device_id;

-- CASE
SELECT CASE WHEN value IS NULL THEN 'none' WHEN value < 0 THEN 'neg' WHEN value < 1000 THEN 'small' ELSE 'big' END AS bucket, count(*) FROM events GROUP BY 1 ORDER BY 1;
SELECT sum(CASE WHEN flag THEN amount ELSE 0 END), sum(CASE WHEN NOT flag THEN amount END) FROM events;

-- Filters on the distribution column
SELECT * FROM events WHERE id = 4242;
SELECT id, kind, amount FROM events WHERE id IN (1, 2, 3, 99999, 150000, -5000) ORDER BY id;
SELECT count(*), sum(amount) FROM events WHERE id BETWEEN 50000 AND 60000;
SELECT id, device_id FROM events WHERE id = -123000 OR id = 7 ORDER BY id;
SELECT count(*) FROM events WHERE id < 0;

-- Subqueries, CTEs, window functions
SELECT count(*) FROM events WHERE device_id IN (SELECT device_id FROM events WHERE kind = 'refund' AND amount > 1490);
WITH d AS (SELECT device_id, sum(amount) AS s FROM events WHERE device_id IS NOT NULL GROUP BY device_id) SELECT device_id, s FROM d ORDER BY s DESC, device_id LIMIT 10;
SELECT kind, id, value, rank() OVER (PARTITION BY kind ORDER BY value DESC, id) AS r FROM events WHERE device_id = 7 ORDER BY kind, r LIMIT 30;
SELECT k.kind, (SELECT count(*) FROM events e WHERE e.kind = k.kind AND e.flag) FROM kinds k ORDER BY k.kind;
