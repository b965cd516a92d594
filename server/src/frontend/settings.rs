//! Each session's run-time parameters, as PostgreSQL 15 keeps its configuration settings:
//! `SET [SESSION | LOCAL]`, `RESET`, `SHOW`, `SHOW ALL`, `current_setting()` and
//! `set_config()` read and write them, and they belong to the transaction that changed them
//! (ROLLBACK and ROLLBACK TO undo a change; a `SET LOCAL` ends with the transaction).
//!
//! Only parameters whose effect Shoal really gives can be changed, and only to values it
//! honours: `statement_timeout` cancels, `DateStyle`, `IntervalStyle`, `bytea_output` and
//! `extra_float_digits` shape the text Shoal sends. A parameter PostgreSQL has that Shoal
//! does not honour fails with 0A000 rather than being accepted and ignored; an unknown one
//! with 42704, as in PostgreSQL. A name with a dot (`myapp.tenant`) is a custom parameter:
//! any text, kept for the session.

use std::collections::BTreeMap;

use crate::frontend::errors::PgError;
use crate::frontend::statement_timeout;

/// What a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Any text.
    Text,
    /// An integer within bounds.
    Int { min: i64, max: i64 },
    /// Milliseconds, written with or without a unit and shown as PostgreSQL shows them.
    Millis,
    /// A timeout Shoal does not enforce: only 0 (disabled), in any spelling of `Millis`.
    DisabledMillis,
    /// One of these values (any case); shown as written here. Values PostgreSQL has that
    /// Shoal does not honour are in `refused`.
    Choice {
        values: &'static [&'static str],
        refused: &'static [&'static str],
    },
    /// `on`/`off` (also true/false, yes/no, 1/0); `refused` as for `Choice`.
    Bool { refused: Option<bool> },
    /// `DateStyle`: an output style and a field order.
    DateStyle,
    /// `TimeZone`: UTC's names and IANA zone names.
    TimeZone,
    /// `client_encoding`: Shoal sends UTF-8 only.
    Encoding,
    /// `search_path`: Shoal's tables are all in `public`, so the path must lead there.
    SearchPath,
    /// Shown, never set (a server property, or one the session itself decides).
    ReadOnly,
}

/// A parameter Shoal knows.
struct Param {
    /// The name as PostgreSQL spells it (SHOW ALL, ParameterStatus).
    name: &'static str,
    default: &'static str,
    kind: Kind,
    /// Whether PostgreSQL reports it to the client (`GUC_REPORT`) when it changes.
    report: bool,
    description: &'static str,
}

/// The server version Shoal reports: PostgreSQL 15's protocol and SQL surface.
pub const SERVER_VERSION: &str = concat!("15.0 (Shoal ", env!("CARGO_PKG_VERSION"), ")");

/// What `version()` answers; drivers (SQLAlchemy, pgjdbc) parse the number after
/// `PostgreSQL `.
pub const VERSION: &str = concat!(
    "PostgreSQL 15.0 (Shoal ",
    env!("CARGO_PKG_VERSION"),
    ") on x86_64-pc-linux-gnu, compiled by rustc, 64-bit"
);

const UTC_NAMES: &[&str] = &[
    "UTC",
    "Etc/UTC",
    "GMT",
    "Etc/GMT",
    "UCT",
    "Etc/UCT",
    "Universal",
    "Etc/Universal",
    "Zulu",
    "Etc/Zulu",
    "Z",
    "+00",
    "-00",
    "+00:00",
    "00:00",
    "0",
];

/// Parameters Shoal knows, by name in lower case (sorted: SHOW ALL lists them in order).
const PARAMS: &[Param] = &[
    Param {
        name: "application_name",
        default: "",
        kind: Kind::Text,
        report: true,
        description: "Sets the application name to be reported in statistics and logs.",
    },
    Param {
        name: "bytea_output",
        default: "hex",
        kind: Kind::Choice {
            values: &["hex", "escape"],
            refused: &[],
        },
        report: false,
        description: "Sets the output format for bytea.",
    },
    Param {
        name: "client_encoding",
        default: "UTF8",
        kind: Kind::Encoding,
        report: true,
        description: "Sets the client's character set encoding.",
    },
    Param {
        name: "DateStyle",
        default: "ISO, MDY",
        kind: Kind::DateStyle,
        report: true,
        description: "Sets the display format for date and time values.",
    },
    Param {
        name: "default_table_access_method",
        // Shoal's tables are its own columnar files; `heap` is what clients compare with
        // (SQLAlchemy's table reflection) and the only method there is to choose.
        default: "heap",
        kind: Kind::Choice {
            values: &["heap"],
            refused: &[],
        },
        report: false,
        description: "Sets the default table access method for new tables.",
    },
    Param {
        name: "default_transaction_isolation",
        default: "read committed",
        kind: Kind::Choice {
            values: &["read uncommitted", "read committed", "repeatable read"],
            refused: &["serializable"],
        },
        report: false,
        description: "Sets the transaction isolation level of each new transaction.",
    },
    Param {
        name: "default_transaction_read_only",
        default: "off",
        kind: Kind::Bool {
            refused: Some(true),
        },
        report: true,
        description: "Sets the default read-only status of new transactions.",
    },
    Param {
        name: "extra_float_digits",
        default: "1",
        kind: Kind::Int { min: -15, max: 3 },
        report: false,
        description: "Sets the number of digits displayed for floating-point values.",
    },
    Param {
        name: "idle_in_transaction_session_timeout",
        default: "0",
        kind: Kind::DisabledMillis,
        report: false,
        description: "Sets the maximum allowed idle time between queries, when in a transaction.",
    },
    Param {
        name: "in_hot_standby",
        default: "off",
        kind: Kind::ReadOnly,
        report: true,
        description: "Shows whether hot standby is currently active.",
    },
    Param {
        name: "integer_datetimes",
        default: "on",
        kind: Kind::ReadOnly,
        report: true,
        description: "Shows whether datetimes are integer based.",
    },
    Param {
        name: "IntervalStyle",
        default: "postgres",
        kind: Kind::Choice {
            values: &["postgres", "postgres_verbose", "sql_standard", "iso_8601"],
            refused: &[],
        },
        report: true,
        description: "Sets the display format for interval values.",
    },
    Param {
        name: "is_superuser",
        default: "on",
        kind: Kind::ReadOnly,
        report: true,
        description: "Shows whether the current user is a superuser.",
    },
    Param {
        name: "jit",
        // Shoal compiles no query to machine code: `off` is the truth, `on` is refused.
        default: "off",
        kind: Kind::Bool {
            refused: Some(true),
        },
        report: false,
        description: "Allow JIT compilation.",
    },
    Param {
        name: "lock_timeout",
        // Shoal never waits for a lock (a conflicting commit fails at once with 40001), so
        // every value is honoured.
        default: "0",
        kind: Kind::Millis,
        report: false,
        description: "Sets the maximum allowed duration of any wait for a lock.",
    },
    Param {
        name: "max_identifier_length",
        default: "63",
        kind: Kind::ReadOnly,
        report: false,
        description: "Shows the maximum identifier length.",
    },
    Param {
        name: "row_security",
        // Shoal has no row security policies, so both values read every row.
        default: "on",
        kind: Kind::Bool { refused: None },
        report: false,
        description: "Enable row security.",
    },
    Param {
        name: "search_path",
        default: "\"$user\", public",
        kind: Kind::SearchPath,
        report: false,
        description: "Sets the schema search order for names that are not schema-qualified.",
    },
    Param {
        name: "server_encoding",
        default: "UTF8",
        kind: Kind::ReadOnly,
        report: true,
        description: "Shows the server (database) character set encoding.",
    },
    Param {
        name: "server_version",
        default: SERVER_VERSION,
        kind: Kind::ReadOnly,
        report: true,
        description: "Shows the server version.",
    },
    Param {
        name: "server_version_num",
        default: "150000",
        kind: Kind::ReadOnly,
        report: false,
        description: "Shows the server version as an integer.",
    },
    Param {
        name: "session_authorization",
        default: "",
        kind: Kind::ReadOnly,
        report: true,
        description: "Sets the session user name.",
    },
    Param {
        name: "shoal.distributed_execution",
        // Joins, aggregates and sorts over distributed tables run in stages on the workers
        // (datafusion-distributed); `off` runs them on the coordinator over the scanned rows.
        default: "on",
        kind: Kind::Bool { refused: None },
        report: false,
        description: "Runs joins and aggregates of distributed tables on the workers.",
    },
    Param {
        name: "standard_conforming_strings",
        default: "on",
        kind: Kind::Bool {
            refused: Some(false),
        },
        report: true,
        description: "Causes '...' strings to treat backslashes literally.",
    },
    Param {
        name: "statement_timeout",
        default: "0",
        kind: Kind::Millis,
        report: false,
        description: "Sets the maximum allowed duration of any statement.",
    },
    Param {
        name: "synchronize_seqscans",
        // Shoal's scans do not join one another's: `off` is the truth, `on` is refused.
        default: "off",
        kind: Kind::Bool {
            refused: Some(true),
        },
        report: false,
        description: "Enable synchronized sequential scans.",
    },
    Param {
        name: "TimeZone",
        default: "Etc/UTC",
        kind: Kind::TimeZone,
        report: true,
        description: "Sets the time zone for displaying and interpreting time stamps.",
    },
    Param {
        name: "transaction_isolation",
        default: "repeatable read",
        kind: Kind::ReadOnly,
        report: false,
        description: "Sets the current transaction's isolation level.",
    },
    Param {
        name: "transaction_read_only",
        default: "off",
        kind: Kind::ReadOnly,
        report: false,
        description: "Sets the current transaction's read-only status.",
    },
];

/// Parameters PostgreSQL has whose effect Shoal does not give: setting one fails with
/// 0A000 (reading one too), not 42704 as an unknown name would.
const UNSUPPORTED: &[&str] = &[
    "client_min_messages",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "work_mem",
    "maintenance_work_mem",
    "row_security",
    "synchronous_commit",
    "enable_seqscan",
    "enable_indexscan",
    "enable_hashjoin",
    "enable_mergejoin",
    "enable_nestloop",
    "random_page_cost",
    "temp_buffers",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "default_transaction_deferrable",
    "transaction_deferrable",
    "session_replication_role",
    "xmloption",
    "escape_string_warning",
    "backslash_quote",
    "array_nulls",
    "check_function_bodies",
    "default_tablespace",
    "temp_tablespaces",
    "timezone_abbreviations",
    "vacuum_freeze_min_age",
    "log_statement",
    "log_min_duration_statement",
    "max_parallel_workers_per_gather",
];

fn param(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

fn unrecognized(name: &str) -> PgError {
    PgError::new(
        "42704",
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

fn unsupported(name: &str) -> PgError {
    PgError::new(
        "0A000",
        format!("configuration parameter \"{name}\" is not supported"),
    )
    .with_hint(Some(
        "Shoal does not give this parameter's effect, so it does not take a value for it; \
         SHOW ALL lists the parameters Shoal honours."
            .into(),
    ))
}

fn invalid(name: &str, value: &str) -> PgError {
    PgError::new(
        "22023",
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
}

fn not_honoured(name: &str, value: &str, why: &str) -> PgError {
    PgError::new("0A000", format!("{name} = '{value}' is not supported"))
        .with_hint(Some(why.into()))
}

/// Whether a custom (`prefix.name`) parameter.
fn is_custom(name: &str) -> bool {
    let mut parts = name.split('.');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty())
}

/// The IANA time zone `name` names (case-insensitively), in its canonical spelling.
fn named_zone(name: &str) -> Option<String> {
    zone_named(name).map(|tz| tz.name().to_string())
}

/// The IANA time zone `name` names, case-insensitively.
pub fn zone_named(name: &str) -> Option<chrono_tz::Tz> {
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .copied()
}

/// Whether `zone` (a `TimeZone` value) is UTC under one of its names.
pub fn is_utc(zone: &str) -> bool {
    zone.is_empty() || UTC_NAMES.iter().any(|n| n.eq_ignore_ascii_case(zone))
}

/// The canonical form of `value` for the parameter, or why it is refused.
fn canonical(p: &Param, value: &str) -> Result<String, PgError> {
    let lower = value.trim().to_ascii_lowercase();
    match p.kind {
        Kind::Text => Ok(value.to_string()),
        Kind::ReadOnly => Err(PgError::new(
            "55P02",
            format!("parameter \"{}\" cannot be changed", p.name),
        )),
        Kind::Int { min, max } => {
            let n: i64 = lower.parse().map_err(|_| {
                PgError::new(
                    "22023",
                    format!("invalid value for parameter \"{}\": \"{value}\"", p.name),
                )
            })?;
            if n < min || n > max {
                return Err(PgError::new(
                    "22023",
                    format!(
                        "{n} is outside the valid range for parameter \"{}\" ({min} .. {max})",
                        p.name
                    ),
                ));
            }
            Ok(n.to_string())
        }
        Kind::Millis => {
            let ms = statement_timeout::parse(value).map_err(|_| invalid(p.name, value))?;
            Ok(statement_timeout::show(ms))
        }
        Kind::DisabledMillis => {
            let ms = statement_timeout::parse(value).map_err(|_| invalid(p.name, value))?;
            if ms != 0 {
                return Err(not_honoured(
                    p.name,
                    value.trim(),
                    "Shoal does not enforce this timeout; only 0 (disabled) is taken.",
                ));
            }
            Ok(statement_timeout::show(ms))
        }
        Kind::Choice { values, refused } => {
            if let Some(v) = values.iter().find(|v| **v == lower) {
                return Ok((*v).to_string());
            }
            if refused.contains(&lower.as_str()) {
                return Err(not_honoured(
                    p.name,
                    &lower,
                    &format!("Shoal takes: {}.", values.join(", ")),
                ));
            }
            Err(invalid(p.name, value)
                .with_hint(Some(format!("Available values: {}.", values.join(", ")))))
        }
        Kind::Bool { refused } => {
            let b = match lower.as_str() {
                "on" | "true" | "yes" | "1" | "t" | "y" => true,
                "off" | "false" | "no" | "0" | "f" | "n" => false,
                _ => {
                    return Err(PgError::new(
                        "22023",
                        format!("parameter \"{}\" requires a Boolean value", p.name),
                    ))
                }
            };
            if refused == Some(b) {
                return Err(not_honoured(
                    p.name,
                    if b { "on" } else { "off" },
                    "Shoal does not give this behaviour.",
                ));
            }
            Ok(if b { "on" } else { "off" }.to_string())
        }
        Kind::DateStyle => date_style(&lower, value, p.default),
        Kind::TimeZone => {
            let v = value.trim();
            if lower == "default" || lower == "local" {
                // SET TIME ZONE DEFAULT / LOCAL: the default zone.
                Ok(p.default.to_string())
            } else if UTC_NAMES.iter().any(|n| n.eq_ignore_ascii_case(v)) {
                Ok(v.to_string())
            } else if let Some(zone) = named_zone(v) {
                Ok(zone)
            } else if v.chars().any(|c| c.is_ascii_digit()) {
                // PostgreSQL reads '+05' as POSIX does (five hours *west*); Shoal takes zone
                // names only rather than guess which sign was meant.
                Err(not_honoured(
                    "TimeZone",
                    v,
                    "Shoal takes time zone names (America/New_York, Europe/Berlin, UTC); \
                     name the zone instead of an offset.",
                ))
            } else {
                Err(PgError::new(
                    "22023",
                    format!("invalid value for parameter \"TimeZone\": \"{v}\""),
                ))
            }
        }
        Kind::SearchPath => {
            // `$user` names no schema here and pg_catalog is searched first anyway; what
            // is left must be `public` alone, the only schema unqualified names resolve in.
            let rest: Vec<String> = value
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty() && s != "$user" && !s.eq_ignore_ascii_case("pg_catalog"))
                .collect();
            // An empty path (what pg_dump sets, qualifying every name it sends) leaves
            // unqualified names in public too.
            if rest.is_empty() || (rest.len() == 1 && rest[0] == "public") {
                Ok(value.trim().to_string())
            } else {
                Err(not_honoured(
                    "search_path",
                    value.trim(),
                    "Unqualified names resolve in schema public only: keep public on the \
                     path and qualify other schemas' names (shoal.nodes).",
                ))
            }
        }
        Kind::Encoding => match lower.replace(['-', '_'], "").as_str() {
            "utf8" | "unicode" => Ok("UTF8".into()),
            _ => Err(not_honoured(
                "client_encoding",
                value.trim(),
                "Shoal sends and reads UTF8 only.",
            )),
        },
    }
}

/// `DateStyle` as PostgreSQL normalises it: `<output style>, <field order>`; what `value`
/// does not name stays as in `current` (German alone also means DMY).
fn date_style(lower: &str, value: &str, current: &str) -> Result<String, PgError> {
    let mut style = None;
    let mut order = None;
    for part in lower.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match part {
            "iso" => style = Some("ISO"),
            "sql" => style = Some("SQL"),
            "postgres" => style = Some("Postgres"),
            "german" => style = Some("German"),
            "dmy" | "euro" | "european" => order = Some("DMY"),
            "mdy" | "us" | "noneuro" | "noneuropean" => order = Some("MDY"),
            "ymd" => order = Some("YMD"),
            "default" => {
                style = style.or(Some("ISO"));
                order = order.or(Some("MDY"));
            }
            _ => {
                return Err(invalid("DateStyle", value)
                    .with_detail(Some(format!("Unrecognized key word: \"{part}\"."))))
            }
        }
    }
    let (current_style, current_order) = current.split_once(", ").unwrap_or(("ISO", "MDY"));
    if style == Some("German") && order.is_none() {
        order = Some("DMY");
    }
    Ok(format!(
        "{}, {}",
        style.unwrap_or(current_style),
        order.unwrap_or(current_order)
    ))
}

/// The values a session has set, by lower-case name.
pub type Values = BTreeMap<String, String>;

/// One session's parameters.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The logged-in user (`session_authorization`).
    user: String,
    /// Session-level values that differ from the default (custom parameters included).
    session: Values,
    /// What the startup packet set: RESET goes back to these, as in PostgreSQL.
    startup: Values,
    /// `SET LOCAL` values, until the transaction ends.
    local: Values,
    /// Custom parameters the session has set: once set, one exists (RESET makes it empty).
    custom: std::collections::BTreeSet<String>,
}

impl Settings {
    /// A session's settings, seeded from the startup packet's parameters (`options` and the
    /// like are not settings; values Shoal cannot honour are left at their defaults, so the
    /// first ParameterStatus tells the client what it got).
    pub fn from_startup<'a>(
        user: &str,
        startup: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let mut s = Settings {
            user: user.to_string(),
            ..Settings::default()
        };
        for (name, value) in startup {
            if let Some(p) = param(name) {
                if p.kind != Kind::ReadOnly {
                    if let Ok(v) = canonical(p, value) {
                        s.startup.insert(p.name.to_ascii_lowercase(), v);
                    }
                }
            }
        }
        s.session = s.startup.clone();
        s
    }

    /// The current value of `name`; `None` for an unset custom parameter.
    pub fn get(&self, name: &str) -> Result<Option<String>, PgError> {
        let key = name.to_ascii_lowercase();
        if let Some(v) = self.local.get(&key).or_else(|| self.session.get(&key)) {
            return Ok(Some(v.clone()));
        }
        if key == "session_authorization" {
            return Ok(Some(self.user.clone()));
        }
        if let Some(p) = param(name) {
            return Ok(Some(p.default.to_string()));
        }
        if UNSUPPORTED.contains(&key.as_str()) {
            return Err(unsupported(&key));
        }
        if is_custom(&key) {
            return Ok(self.custom.contains(&key).then(String::new));
        }
        Err(unrecognized(name))
    }

    /// `SET [LOCAL] name = value` (`None`: `DEFAULT`, which is also `RESET`).
    pub fn set(&mut self, name: &str, value: Option<&str>, local: bool) -> Result<(), PgError> {
        let key = name.to_ascii_lowercase();
        let value = match param(name) {
            Some(p) if p.kind == Kind::ReadOnly => {
                return Err(PgError::new(
                    "55P02",
                    format!("parameter \"{}\" cannot be changed", p.name),
                ))
            }
            Some(p) => match value {
                None => None,
                Some(v) if p.kind == Kind::DateStyle => {
                    let current = self.get(p.name)?.unwrap_or_default();
                    Some(date_style(&v.trim().to_ascii_lowercase(), v, &current)?)
                }
                Some(v) => Some(canonical(p, v)?),
            },
            None if UNSUPPORTED.contains(&key.as_str()) => return Err(unsupported(&key)),
            None if key.starts_with("datafusion.") => {
                return Err(PgError::new(
                    "0A000",
                    format!("parameter \"{name}\" cannot be set by a session"),
                )
                .with_hint(Some(
                    "DataFusion's settings are the coordinator's, shared by every session.".into(),
                )))
            }
            None if is_custom(&key) => {
                self.custom.insert(key.clone());
                value.map(str::to_string)
            }
            None => return Err(unrecognized(name)),
        };
        let value = value.or_else(|| self.startup.get(&key).cloned());
        let target = if local {
            &mut self.local
        } else {
            &mut self.session
        };
        match value {
            Some(v) => {
                target.insert(key.clone(), v);
            }
            None => {
                target.remove(&key);
            }
        }
        if !local {
            // A session-level SET replaces a SET LOCAL of the same transaction, as in
            // PostgreSQL.
            self.local.remove(&key);
        }
        Ok(())
    }

    /// `RESET ALL`: every settable parameter back to its default.
    pub fn reset_all(&mut self) {
        self.session = self.startup.clone();
        self.local.clear();
    }

    /// The transaction ended: `SET LOCAL` values end with it.
    pub fn end_local(&mut self) {
        self.local.clear();
    }

    /// `SHOW ALL`: every parameter Shoal knows with its value and description.
    pub fn all(&self) -> Vec<(&'static str, String, &'static str)> {
        PARAMS
            .iter()
            .map(|p| {
                let v = self
                    .get(p.name)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| p.default.to_string());
                (p.name, v, p.description)
            })
            .collect()
    }

    /// The reported parameters' current values (ParameterStatus), by PostgreSQL's name.
    pub fn reported(&self) -> Vec<(&'static str, String)> {
        PARAMS
            .iter()
            .filter(|p| p.report)
            .filter_map(|p| Some((p.name, self.get(p.name).ok().flatten()?)))
            .collect()
    }
}

/// PostgreSQL's name for a parameter (`datestyle` → `DateStyle`), or the name as given.
pub fn display_name(name: &str) -> String {
    param(name)
        .map(|p| p.name.to_string())
        .unwrap_or_else(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
