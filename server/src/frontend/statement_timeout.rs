//! `statement_timeout`, as PostgreSQL parses and shows it.
//!
//! The value lives in the session's metadata under [`METADATA_KEY`], in milliseconds, where
//! the vendored pgwire reads it when a statement starts and races the whole statement (its
//! rows' production and sending included) against it. datafusion-postgres's own `SET` hook
//! stored the same key but disabled the timeout for any value it could not parse (`'1h'`,
//! `'abc'`, `-1`) and failed `RESET`; these statements are answered here instead.

use crate::frontend::errors::PgError;

/// The session metadata key (shared with the vendored pgwire and datafusion-postgres).
pub const METADATA_KEY: &str = "statement_timeout_ms";

/// PostgreSQL's upper bound for the setting (`INT_MAX` milliseconds).
const MAX_MS: f64 = 2_147_483_647.0;

/// Units PostgreSQL accepts for a time setting, in milliseconds, largest first.
const UNITS: [(&str, f64); 6] = [
    ("d", 86_400_000.0),
    ("h", 3_600_000.0),
    ("min", 60_000.0),
    ("s", 1_000.0),
    ("ms", 1.0),
    ("us", 0.001),
];

/// The milliseconds `value` (a `SET` value as written: `1000`, `'1.5s'`, `DEFAULT`) sets, 0
/// meaning no limit.
pub fn parse(value: &str) -> Result<u64, PgError> {
    let text = value.trim().trim_matches('\'').trim();
    if text.eq_ignore_ascii_case("default") {
        return Ok(0);
    }
    let invalid = || {
        PgError::new(
            "22023",
            format!("invalid value for parameter \"statement_timeout\": \"{text}\""),
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().map_err(|_| invalid())?;
    let unit = unit.trim();
    let scale = if unit.is_empty() {
        1.0
    } else {
        UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, ms)| *ms)
            .ok_or_else(|| {
                invalid().with_hint(Some(
                    "Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\"."
                        .into(),
                ))
            })?
    };
    let ms = (number * scale).round();
    if !(0.0..=MAX_MS).contains(&ms) {
        return Err(PgError::new(
            "22023",
            format!(
                "{} ms is outside the valid range for parameter \"statement_timeout\" (0 .. 2147483647)",
                ms
            ),
        ));
    }
    Ok(ms as u64)
}

/// `SHOW statement_timeout`: the largest unit that divides the value (`1s`, `1min`, `1500ms`).
pub fn show(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, scale) in UNITS.iter().take(5) {
        let scale = *scale as u64;
        if ms.is_multiple_of(scale) {
            return format!("{}{unit}", ms / scale);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::{parse, show};

    #[test]
    fn parses_as_postgresql() {
        for (value, ms) in [
            ("1000", 1000),
            ("'1s'", 1000),
            ("'1.5s'", 1500),
            ("'10 min'", 600_000),
            ("'2h'", 7_200_000),
            ("'1d'", 86_400_000),
            ("'1500us'", 2),
            ("0", 0),
            ("DEFAULT", 0),
            ("1.4", 1),
        ] {
            assert_eq!(parse(value).ok(), Some(ms), "{value}");
        }
        for value in ["'abc'", "'10x'", "-1", "'1e12'", "''"] {
            let e = parse(value).expect_err(value);
            assert_eq!(e.code, "22023", "{value}");
        }
    }

    #[test]
    fn shows_as_postgresql() {
        assert_eq!(show(0), "0");
        assert_eq!(show(1000), "1s");
        assert_eq!(show(1500), "1500ms");
        assert_eq!(show(60_000), "1min");
        assert_eq!(show(7_200_000), "2h");
        assert_eq!(show(86_400_000), "1d");
    }
}
