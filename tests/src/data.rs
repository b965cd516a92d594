//! Deterministic generated data for the tests: the events-shaped table of the design brief
//! (with NULLs, empty strings, quotes, commas and non-ASCII text) and the small `kinds`
//! reference table. Same seed, same bytes, on every machine.

use std::fmt::Write as _;

use chrono::{Duration as ChronoDuration, NaiveDate};

/// `CREATE TABLE events ...` — identical in Shoal and PostgreSQL.
pub const EVENTS_DDL: &str = "CREATE TABLE events (id bigint, device_id integer, kind text, \
    value double precision, amount numeric(12,2), ts timestamp, flag boolean, note text)";

/// `CREATE TABLE kinds ...` — the reference table.
pub const KINDS_DDL: &str = "CREATE TABLE kinds (kind text, label text)";

/// The kinds that appear in `events.kind` (besides NULL).
pub const EVENT_KINDS: [&str; 12] = [
    "click", "view", "purchase", "signup", "login", "logout", "error", "refund", "share", "search",
    "scroll", "hover",
];

/// splitmix64: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

fn csv_quote(s: &str) -> String {
    // Always quote text: an unquoted empty field means NULL in CSV, a quoted one is ''.
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `n` rows of the events table as CSV (no header; NULL is an empty unquoted field).
///
/// - id: 1..=n, except every 1000th row whose id is negated;
/// - device_id: 0..999, 2% NULL; kind: one of [`EVENT_KINDS`], 1% NULL;
/// - value: two decimals in [-5000, 5000], 3% NULL; amount: [-500.00, 1500.00], 3% NULL;
/// - ts: whole seconds in 2024-01-01 .. 2024-03-31, 1% NULL; flag: 5% NULL;
/// - note: 10% NULL, 1% empty, 2% with quotes and a comma, 2% non-ASCII, else `note-N`.
pub fn events_csv(n: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let base = NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("valid date");
    let mut out = String::with_capacity(n * 90);
    for i in 1..=n as i64 {
        let id = if i % 1000 == 0 { -i } else { i };
        let _ = write!(out, "{id},");
        if !rng.pct(2) {
            let _ = write!(out, "{}", rng.below(1000));
        }
        out.push(',');
        if !rng.pct(1) {
            out.push_str(EVENT_KINDS[rng.below(EVENT_KINDS.len() as u64) as usize]);
        }
        out.push(',');
        if !rng.pct(3) {
            let hundredths = rng.below(1_000_001) as i64 - 500_000;
            let _ = write!(out, "{}", hundredths as f64 / 100.0);
        }
        out.push(',');
        if !rng.pct(3) {
            let cents = rng.below(200_001) as i64 - 50_000;
            let sign = if cents < 0 { "-" } else { "" };
            let _ = write!(out, "{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100);
        }
        out.push(',');
        if !rng.pct(1) {
            let ts = base + ChronoDuration::seconds(rng.below(91 * 86_400) as i64);
            let _ = write!(out, "{}", ts.format("%Y-%m-%d %H:%M:%S"));
        }
        out.push(',');
        if !rng.pct(5) {
            out.push_str(if rng.below(2) == 0 { "false" } else { "true" });
        }
        out.push(',');
        let p = rng.below(100);
        let k = rng.below(50_000);
        match p {
            0..=9 => {}
            10 => out.push_str(&csv_quote("")),
            11..=12 => out.push_str(&csv_quote(&format!("say \"hi\", {k}"))),
            13..=14 => out.push_str(&csv_quote(&format!("ünïcødé-{k}"))),
            _ => out.push_str(&csv_quote(&format!("note-{k}"))),
        }
        out.push('\n');
    }
    out
}

/// The `kinds` reference table as CSV: 10 of the 12 event kinds (no `scroll`, `hover`) plus
/// one kind no event has.
pub fn kinds_csv() -> String {
    let labels = [
        ("click", "Click"),
        ("view", "Page view"),
        ("purchase", "Purchase"),
        ("signup", "Sign-up"),
        ("login", "Log in"),
        ("logout", "Log out"),
        ("error", "Error"),
        ("refund", "Refund"),
        ("share", "Share"),
        ("search", "Search"),
        ("unused", "Never happens"),
    ];
    labels.iter().map(|(k, l)| format!("{k},{l}\n")).collect()
}

/// Rows `first..first+count` of a simple 4-column table `(id bigint, device_id integer, kind
/// text, value double precision)` in COPY text format; used for the big COPY streams.
pub fn simple_rows_text(first: u64, count: u64) -> Vec<u8> {
    let mut out = String::with_capacity(count as usize * 32);
    for id in first..first + count {
        let kind = EVENT_KINDS[(id % EVENT_KINDS.len() as u64) as usize];
        let _ = writeln!(
            out,
            "{id}\t{}\t{kind}\t{}",
            id % 1000,
            (id % 10_000) as f64 / 4.0
        );
    }
    out.into_bytes()
}
