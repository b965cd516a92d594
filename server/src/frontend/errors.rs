//! The one place where errors become PostgreSQL errors: a SQLSTATE, a message, and a DETAIL
//! or HINT where one helps.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::datafusion_pg_catalog::sql::TOO_DEEP_MESSAGE;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};
use shoal_catalog::CatalogError;
use shoal_shard_store::ShardStoreError;
use shoal_sql_functions::{BadValue, ClusterError};

use crate::query::pg_limits::ValueLimitError;

/// A PostgreSQL-shaped error.
#[derive(Debug, Clone)]
pub struct PgError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
    pub fn into_pgwire(self) -> PgWireError {
        let mut info = ErrorInfo::new("ERROR".to_string(), self.code.to_string(), self.message);
        info.detail = self.detail;
        info.hint = self.hint;
        PgWireError::UserError(Box::new(info))
    }
}

impl From<ClusterError> for PgError {
    fn from(e: ClusterError) -> Self {
        from_cluster(&e)
    }
}

impl From<DataFusionError> for PgError {
    fn from(e: DataFusionError) -> Self {
        from_datafusion(&e)
    }
}

impl From<PgError> for PgWireError {
    fn from(e: PgError) -> Self {
        e.into_pgwire()
    }
}

pub fn from_catalog(e: &CatalogError) -> PgError {
    match e {
        CatalogError::TableNotFound { .. } | CatalogError::SequenceNotFound { .. } => {
            PgError::new("42P01", e.to_string())
        }
        CatalogError::TableExists { .. } => PgError::new("42P07", e.to_string()),
        CatalogError::ColumnExists { .. } => PgError::new("42701", e.to_string()),
        CatalogError::ColumnNotFound { .. } => PgError::new("42703", e.to_string()),
        CatalogError::NullsInNotNullColumn { .. } => PgError::new("23502", e.to_string())
            .with_hint(Some(
            "Add the column without NOT NULL: Shoal cannot fill existing rows with a default."
                .into(),
        )),
        CatalogError::NodeNotFound { .. } => PgError::new("22023", e.to_string()),
        CatalogError::PlacementGone { .. } => PgError::new("40001", e.to_string()).with_hint(Some(
            "A shard moved while the statement ran; run it again.".into(),
        )),
        CatalogError::WriteConflict { .. } => PgError::new("40001", e.to_string()).with_hint(Some(
            "Another transaction changed the same rows (or compaction merged their files) and committed first; retry the transaction.".into(),
        )),
        CatalogError::Invalid { .. }
        | CatalogError::InvalidSetting { .. }
        | CatalogError::TypeModifier { .. } => {
            PgError::new("22023", e.to_string())
        }
        CatalogError::Unsupported { .. } => PgError::new("0A000", e.to_string()).with_hint(Some(
            "Add the column without a DEFAULT, or to a table without rows.".into(),
        )),
        CatalogError::JobRunning { .. } => {
            let mut err = PgError::new("55000", e.to_string()).with_hint(Some(
                "To monitor progress, run: SELECT * FROM rebalance_status();".into(),
            ));
            err.detail = Some("A rebalance was already scheduled as background job".into());
            err
        }
        CatalogError::JobNotFound { .. } => PgError::new("22023", e.to_string()),
        CatalogError::MoveConflict { .. } => PgError::new("40001", e.to_string()).with_hint(Some(
            "The move copies the new files and tries again.".into(),
        )),
        CatalogError::Sqlite(_) | CatalogError::TooNew { .. } => {
            PgError::new("XX000", e.to_string())
        }
    }
}

pub fn from_worker(e: &ShardStoreError) -> PgError {
    match e {
        ShardStoreError::Unavailable { .. } => PgError::new("08006", e.to_string()).with_hint(
            Some("Check that the worker is running: SELECT * FROM shoal.nodes;".into()),
        ),
        ShardStoreError::Unauthenticated { .. } => PgError::new("28000", e.to_string()).with_hint(
            Some("The coordinator and the worker must use the same --cluster-token.".into()),
        ),
        ShardStoreError::FileMissing { .. } => PgError::new("58P01", e.to_string()),
        ShardStoreError::FileDamaged { .. } => {
            PgError::new("XX001", e.to_string()).with_hint(Some(
                "No other placement of the shard could serve it. See SELECT * FROM \
                 shoal.damaged_files; restore the file or reload the shard's rows."
                    .into(),
            ))
        }
        ShardStoreError::DiskFull { .. } => PgError::new("53100", e.to_string()),
        ShardStoreError::Io { .. } => PgError::new("58030", e.to_string()),
        ShardStoreError::WrongCluster { .. } => {
            PgError::new("55000", e.to_string()).with_hint(Some(
                "A worker belongs to one cluster; give it an empty --data-dir to join this one."
                    .into(),
            ))
        }
        ShardStoreError::DataFusion(d) => from_datafusion(d),
        ShardStoreError::Arrow(a) => from_arrow(a),
        _ => PgError::new("XX000", e.to_string()),
    }
}

pub fn from_cluster(e: &ClusterError) -> PgError {
    match e {
        ClusterError::Catalog(c) => from_catalog(c),
        ClusterError::Worker(w) => from_worker(w),
        ClusterError::DataFusion(d) => from_datafusion(d),
        ClusterError::Arrow(a) => from_arrow(a),
        ClusterError::InvalidArgument { message, hint } => {
            PgError::new("22023", message).with_hint(hint.clone())
        }
        ClusterError::NotInState { message, hint }
        | ClusterError::MoveDeferred { message, hint } => {
            PgError::new("55000", message).with_hint(hint.clone())
        }
        ClusterError::NotSupported { message } => PgError::new("0A000", message),
        ClusterError::ReadOnly { message } => PgError::new("25006", message),
        ClusterError::Conflict { message } => {
            PgError::new("40001", message).with_hint(Some("Retry the transaction.".into()))
        }
        ClusterError::UndefinedColumn { message } => PgError::new("42703", message),
        ClusterError::NotNull { message } => PgError::new("23502", message),
        ClusterError::ValueTooLong { message } => PgError::new("22001", message),
        ClusterError::InvalidText {
            sqlstate,
            message,
            detail,
        } => PgError::new(sqlstate, message.clone()).with_detail(detail.clone()),
        ClusterError::BadCopyData { message } => PgError::new("22P04", message),
        ClusterError::BadCopyValue { kind, message } => PgError::new(
            match kind {
                BadValue::BinaryFormat => "22P03",
                BadValue::InsufficientData => "08P01",
                BadValue::Encoding => "22021",
                BadValue::OutOfRange => "22003",
                BadValue::DateTimeOutOfRange => "22008",
            },
            message,
        ),
        ClusterError::NoWorkers { message } => PgError::new("55000", message).with_hint(Some(
            "Add a worker with SELECT add_node('host', port);".into(),
        )),
        ClusterError::ShardUnavailable { message, hint } => {
            PgError::new("08006", message).with_hint(hint.clone())
        }
        ClusterError::Cancelled { message } => PgError::new("57014", message),
        ClusterError::DiskFull { message, hint } => {
            PgError::new("53100", message).with_hint(hint.clone())
        }
        ClusterError::JobFailed {
            message,
            cancelled,
            hint,
        } => PgError::new(if *cancelled { "57014" } else { "55000" }, message)
            .with_hint(hint.clone()),
        ClusterError::UndefinedFunction { message, hint } => {
            PgError::new("42883", message).with_hint(hint.clone())
        }
        ClusterError::NullArgument { message } => PgError::new("22004", message),
        ClusterError::WorkerUnreachable { message, hint } => {
            PgError::new("08006", message).with_hint(hint.clone())
        }
        ClusterError::Internal { message } => {
            PgError::new("XX000", format!("internal error: {message}")).with_hint(Some(
                "This is a bug in Shoal; please report it with the coordinator log.".into(),
            ))
        }
    }
}

fn from_arrow(e: &arrow::error::ArrowError) -> PgError {
    use arrow::error::ArrowError as A;
    match e {
        A::DivideByZero => PgError::new("22012", "division by zero"),
        A::ArithmeticOverflow(m) => PgError::new("22003", m.clone()),
        A::CastError(m) | A::ParseError(m) => PgError::new("22P02", m.clone()),
        A::ComputeError(m) if m.contains("Overflow") || m.contains("overflow") => {
            PgError::new("22003", m.clone())
        }
        A::CsvError(m) => PgError::new("22P04", m.clone()),
        A::ExternalError(inner) => {
            from_external(inner.as_ref()).unwrap_or_else(|| PgError::new("XX000", e.to_string()))
        }
        _ => PgError::new("XX000", e.to_string()),
    }
}

/// The SQLSTATE of an error carried inside a DataFusion or Arrow error, when it is one of
/// the kinds Shoal's code raises.
fn from_external(inner: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<PgError> {
    Some(if let Some(c) = inner.downcast_ref::<ClusterError>() {
        from_cluster(c)
    } else if let Some(c) = inner.downcast_ref::<CatalogError>() {
        from_catalog(c)
    } else if let Some(w) = inner.downcast_ref::<ShardStoreError>() {
        from_worker(w)
    } else if let Some(d) = inner.downcast_ref::<DataFusionError>() {
        from_datafusion(d)
    } else if let Some(a) = inner.downcast_ref::<arrow::error::ArrowError>() {
        from_arrow(a)
    } else if let Some(l) = inner.downcast_ref::<ValueLimitError>() {
        PgError::new("54000", l.to_string())
    } else if let Some(p) = inner.downcast_ref::<PgWireError>() {
        match p {
            PgWireError::UserError(i) => PgError {
                code: known_code(&i.code),
                message: i.message.clone(),
                detail: i.detail.clone(),
                hint: i.hint.clone(),
            },
            _ => PgError::new("XX000", p.to_string()),
        }
    } else if let Some(w) = ShardStoreError::from_task_error(&inner.to_string()) {
        // raised by a task of a distributed query on a worker
        from_worker(&w)
    } else {
        from_task_sql_error(&inner.to_string())?
    })
}

pub fn from_datafusion(e: &DataFusionError) -> PgError {
    match e {
        DataFusionError::Context(_, inner) => from_datafusion(inner),
        DataFusionError::Diagnostic(_, inner) => from_datafusion(inner),
        DataFusionError::Shared(inner) => from_datafusion(inner),
        DataFusionError::Collection(errs) => match errs.first() {
            Some(first) => from_datafusion(first),
            None => PgError::new("XX000", e.to_string()),
        },
        DataFusionError::External(inner) => from_external(inner.as_ref())
            .unwrap_or_else(|| PgError::new("XX000", inner.to_string())),
        DataFusionError::ArrowError(a, _) => from_arrow(a),
        DataFusionError::SQL(p, _) => PgError::new("42601", format!("syntax error: {p}")),
        DataFusionError::NotImplemented(m) => PgError::new("0A000", m.clone()),
        DataFusionError::SchemaError(s, _) => {
            let m = s.to_string();
            if m.contains("No field named") {
                PgError::new("42703", m)
            } else if m.contains("Ambiguous") || m.contains("ambiguous") {
                PgError::new("42702", m)
            } else {
                PgError::new("42P18", m)
            }
        }
        DataFusionError::Plan(m) => plan_error(m),
        DataFusionError::ResourcesExhausted(m) => PgError::new("53200", m.clone()),
        DataFusionError::Execution(m) => {
            if m.contains("Divide by zero") {
                PgError::new("22012", "division by zero")
            } else if m.contains("Cast error")
                || m.contains("Cannot cast")
                || m.contains("invalid input syntax")
            {
                PgError::new("22P02", m.clone())
            } else {
                PgError::new("XX000", m.clone())
            }
        }
        _ => PgError::new("XX000", e.to_string()),
    }
}

fn plan_error(m: &str) -> PgError {
    if let Some(rest) = m
        .strip_prefix("table '")
        .or_else(|| m.split("table '").nth(1))
    {
        if m.contains("not found") {
            let name = rest.split('\'').next().unwrap_or(rest);
            let short = name.rsplit('.').next().unwrap_or(name);
            return PgError::new("42P01", format!("relation \"{short}\" does not exist"));
        }
    }
    if m.contains("Invalid function")
        || m.contains("Unknown function")
        || m.contains("function") && m.contains("not found")
    {
        return PgError::new("42883", m.to_string()).with_hint(Some(
            "No function matches the given name and argument types.".into(),
        ));
    }
    if m.contains("No field named") {
        return PgError::new("42703", m.to_string());
    }
    if m.contains("Cannot infer common") || m.contains("coerc") || m.contains("does not support") {
        return PgError::new("42804", m.to_string());
    }
    PgError::new("42601", m.to_string())
}

/// SQLSTATEs are five ASCII characters from a fixed set; map a foreign one onto ours.
/// A SQLSTATE that arrived as text, as the `'static` code a [`PgError`] carries (`XX000`
/// when it is not five digits or capitals). Codes come from Shoal's and its libraries' own
/// errors, never from clients, so the interned set stays small.
fn known_code(code: &str) -> &'static str {
    static CODES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let valid = code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !valid {
        return "XX000";
    }
    let mut codes = CODES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match codes.get(code) {
        Some(c) => c,
        None => {
            let c: &'static str = Box::leak(code.to_string().into_boxed_str());
            codes.insert(c);
            c
        }
    }
}

/// Rewrites any error on its way to the client (`ErrorHandler`).
/// A statement nested too deep for the recursive passes after parsing is refused as
/// PostgreSQL refuses one too deep for its stack; any other parse failure is a syntax error.
fn from_parser(e: &ParserError) -> PgError {
    let too_deep = match e {
        ParserError::RecursionLimitExceeded => true,
        ParserError::ParserError(m) => m.starts_with(TOO_DEEP_MESSAGE),
        ParserError::TokenizerError(_) => false,
    };
    if too_deep {
        PgError::new("54001", format!("stack depth limit exceeded: {e}")).with_hint(Some(
            "Rewrite the statement with less nesting: a long OR chain of equalities as \
             `col IN (...)`, a long sum as a query over rows."
                .into(),
        ))
    } else {
        PgError::new("42601", e.to_string())
    }
}

pub fn rewrite(error: &mut PgWireError) {
    let mapped = match error {
        PgWireError::ApiError(inner) => {
            if let Some(d) = inner.downcast_ref::<DataFusionError>() {
                Some(from_datafusion(d))
            } else if let Some(c) = inner.downcast_ref::<ClusterError>() {
                Some(from_cluster(c))
            } else if let Some(p) = inner.downcast_ref::<ParserError>() {
                Some(from_parser(p))
            } else {
                let m = inner.to_string();
                Some(
                    if m.contains("sql parser error") || m.contains("Expected") {
                        PgError::new("42601", m)
                    } else {
                        PgError::new("XX000", m)
                    },
                )
            }
        }
        // datafusion-postgres's cursors scan forward only and say so with 42000;
        // PostgreSQL's code for a cursor declared without SCROLL is 55000.
        PgWireError::UserError(info)
            if info.code == "42000" && info.message == "cursor can only scan forward" =>
        {
            Some(
                PgError::new("55000", "cursor can only scan forward").with_hint(Some(
                    "Shoal's cursors scan forward only (no SCROLL).".into(),
                )),
            )
        }
        _ => None,
    };
    if let Some(m) = mapped {
        *error = m.into_pgwire();
    }
}

#[cfg(test)]
mod tests;

/// Prefix of the text of an error a Shoal function raised in a task of a distributed query
/// ([`into_task_sql_error`]).
const TASK_SQL_ERROR_PREFIX: &str = "shoal-task-sqlstate:";

#[derive(serde::Serialize, serde::Deserialize)]
struct TaskSqlErrorText {
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

/// An error as datafusion-distributed carries it out of a worker's task: Shoal's own error
/// kinds (a `PgWireError` with its SQLSTATE, a value over its limit) would cross as their
/// text only, so their text becomes the PostgreSQL error in JSON, which
/// [`from_datafusion`] reads back on the coordinator. DataFusion's and Arrow's own kinds
/// cross intact and stay as they are.
pub fn into_task_sql_error(e: DataFusionError) -> DataFusionError {
    let DataFusionError::External(inner) = e.find_root() else {
        return e;
    };
    let ours = inner.downcast_ref::<PgWireError>().is_some()
        || inner.downcast_ref::<ValueLimitError>().is_some()
        || inner.downcast_ref::<ClusterError>().is_some();
    if !ours {
        return e;
    }
    let pg = from_datafusion(&e);
    let text = TaskSqlErrorText {
        code: pg.code.to_string(),
        message: pg.message,
        detail: pg.detail,
        hint: pg.hint,
    };
    match serde_json::to_string(&text) {
        Ok(json) => DataFusionError::External(Box::new(TaskSqlError(format!(
            "{TASK_SQL_ERROR_PREFIX}{json}"
        )))),
        Err(_) => e,
    }
}

/// The text form of [`into_task_sql_error`].
#[derive(Debug)]
struct TaskSqlError(String);

impl std::fmt::Display for TaskSqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskSqlError {}

fn from_task_sql_error(text: &str) -> Option<PgError> {
    let json = text.strip_prefix(TASK_SQL_ERROR_PREFIX)?;
    let TaskSqlErrorText {
        code,
        message,
        detail,
        hint,
    } = serde_json::from_str(json).ok()?;
    Some(PgError {
        code: known_code(&code),
        message,
        detail,
        hint,
    })
}
