use std::fmt::Debug;
use std::ops::DerefMut;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::StreamExt;
use postgres_types::FromSqlOwned;
use tokio::sync::Mutex;

use crate::api::Type;
use crate::api::results::QueryResponse;
use crate::error::{PgWireError, PgWireResult};
use crate::messages::data::FORMAT_CODE_BINARY;
use crate::messages::extendedquery::Bind;
use crate::types::FromSqlText;
use crate::types::format::FormatOptions;

use super::DEFAULT_NAME;
use super::results::FieldFormat;
use super::stmt::StoredStatement;

/// SHOAL: the name of the portal an `Execute` runs, put in the session extensions before
/// `do_query` is called, so that a handler that is not given the portal (a query hook) can
/// look up its result formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutingPortal(pub String);

/// Represent a prepared sql statement and its parameters bound by a `Bind`
/// request.
#[non_exhaustive]
#[derive(Debug, Default)]
pub struct Portal<S> {
    pub name: String,
    pub statement: Arc<StoredStatement<S>>,
    pub parameter_format: Format,
    pub parameters: Vec<Option<Bytes>>,
    pub result_column_format: Format,
    pub state: Arc<Mutex<PortalExecutionState>>,
    /// SHOAL: whether `DECLARE` made this portal (a SQL cursor): its fetches are tagged
    /// `FETCH n`, and its row description outlives its rows.
    pub cursor: bool,
    /// SHOAL: the row description of what `start` gave the portal.
    pub row_schema: Arc<std::sync::Mutex<Option<Arc<Vec<super::results::FieldInfo>>>>>,
    /// SHOAL: for a cursor, the result formats its next rows are encoded in. The stream a
    /// cursor is started with encodes each row as it is pulled, in the format this holds
    /// then, so that each FETCH gets its rows in the format it asks for.
    pub cursor_format: CursorFormat,
    /// SHOAL: for a cursor, the text format options (TimeZone, DateStyle) its next rows are
    /// encoded with: the session's at each FETCH, as PostgreSQL formats them then.
    pub cursor_options: CursorOptions,
}

/// SHOAL: the format options a cursor's rows are encoded with (see
/// [`Portal::cursor_options`]); `None` keeps those it was declared with.
pub type CursorOptions = Arc<std::sync::Mutex<Option<Arc<FormatOptions>>>>;

/// SHOAL: the result formats a cursor's rows are encoded in (see [`Portal::cursor_format`]).
pub type CursorFormat = Arc<std::sync::Mutex<Format>>;

/// Execution state of a portal during extended query processing.
#[derive(Default, Debug)]
pub enum PortalExecutionState {
    #[default]
    Initial,
    // tag and data stream
    Suspended(QueryResponse),
    Finished,
}

/// Result of fetching rows from a portal in `Suspended` state.
#[derive(Debug)]
pub struct FetchResult {
    pub response: QueryResponse,
    pub suspended: bool,
}

/// Column format specification for parameters or result columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    UnifiedText,
    UnifiedBinary,
    Individual(Vec<i16>),
}

impl From<i16> for Format {
    fn from(v: i16) -> Format {
        if v == FORMAT_CODE_BINARY {
            Format::UnifiedBinary
        } else {
            Format::UnifiedText
        }
    }
}

impl Format {
    /// Get format code for given index
    pub fn format_for(&self, idx: usize) -> FieldFormat {
        match self {
            Format::UnifiedText => FieldFormat::Text,
            Format::UnifiedBinary => FieldFormat::Binary,
            // SHOAL: no code for a column reads as text, never a panic.
            Format::Individual(fv) => fv.get(idx).copied().map_or(FieldFormat::Text, FieldFormat::from),
        }
    }

    /// Test if `idx` field is text format
    pub fn is_text(&self, idx: usize) -> bool {
        self.format_for(idx) == FieldFormat::Text
    }

    /// Test if `idx` field is binary format
    pub fn is_binary(&self, idx: usize) -> bool {
        self.format_for(idx) == FieldFormat::Binary
    }

    fn from_codes(codes: &[i16]) -> Self {
        if codes.is_empty() {
            Format::UnifiedText
        } else if codes.len() == 1 {
            Format::from(codes[0])
        } else {
            Format::Individual(codes.to_vec())
        }
    }
}

impl<S: Clone> Portal<S> {
    /// Try to create portal from bind command and current client state
    pub fn try_new(bind: &Bind, statement: Arc<StoredStatement<S>>) -> PgWireResult<Self> {
        let portal_name = bind
            .portal_name
            .clone()
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());

        // param format
        let param_format = Format::from_codes(&bind.parameter_format_codes);

        // format
        let result_format = Format::from_codes(&bind.result_column_format_codes);

        Ok(Portal {
            name: portal_name,
            statement,
            parameter_format: param_format,
            parameters: bind.parameters.clone(),
            result_column_format: result_format,
            state: Arc::new(Mutex::new(PortalExecutionState::Initial)),
            cursor: false,
            row_schema: Arc::default(),
            cursor_format: Arc::default(),
            cursor_options: Arc::default(),
        })
    }

    /// Create a cursor-oriented portal with a stored statement.
    ///
    /// The portal starts in `Initial` state. The first call to [`fetch()`](Self::fetch)
    /// after [`start()`](Self::start) will begin returning rows.
    /// Use [`start()`](Self::start) to provide a `QueryResponse` before fetching.
    ///
    /// SHOAL: `format` is the cursor's own result format (binary for `DECLARE ... BINARY`),
    /// which a FETCH that asks for none gets.
    pub fn new_cursor(name: String, statement: Arc<StoredStatement<S>>, format: Format) -> Self {
        Portal {
            name,
            statement,
            parameter_format: Format::UnifiedText,
            parameters: vec![],
            result_column_format: format.clone(),
            state: Arc::new(Mutex::new(PortalExecutionState::Initial)),
            cursor: true,
            row_schema: Arc::default(),
            cursor_format: Arc::new(std::sync::Mutex::new(format)),
            cursor_options: Arc::default(),
        }
    }

    /// SHOAL: the row description of the portal's results in `format`, once started.
    pub fn result_schema_in(&self, format: &Format) -> Option<Arc<Vec<super::results::FieldInfo>>> {
        self.result_schema().map(|fields| in_format(&fields, format))
    }

    /// SHOAL: the row description of the portal's results, once started.
    pub fn result_schema(&self) -> Option<Arc<Vec<super::results::FieldInfo>>> {
        self.row_schema
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Get number of parameters
    pub fn parameter_len(&self) -> usize {
        self.parameters.len()
    }

    /// Attempt to get parameter at given index as type `T`.
    ///
    pub fn parameter<'a, T>(&'a self, idx: usize, pg_type: &Type) -> PgWireResult<Option<T>>
    where
        T: FromSqlOwned + FromSqlText<'a>,
    {
        if !T::accepts(pg_type) {
            return Err(PgWireError::InvalidRustTypeForParameter(
                pg_type.name().to_owned(),
            ));
        }

        let param = self
            .parameters
            .get(idx)
            .ok_or_else(|| PgWireError::ParameterIndexOutOfBound(idx))?;

        let _format = self.parameter_format.format_for(idx);

        if let Some(param) = param {
            if self.parameter_format.is_binary(idx) {
                T::from_sql(pg_type, param)
                    .map(|v| Some(v))
                    .map_err(PgWireError::FailedToParseParameter)
            } else {
                T::from_sql_text(pg_type, param, &FormatOptions::default())
                    .map(|v| Some(v))
                    .map_err(PgWireError::FailedToParseParameter)
            }
        } else {
            // Null
            Ok(None)
        }
    }

    /// Get a handle to the portal's execution state.
    pub fn state(&self) -> Arc<Mutex<PortalExecutionState>> {
        self.state.clone()
    }

    /// Transition the portal from `Initial` to `Suspended` with the given
    /// query response.
    ///
    /// This is called by the query handler after executing the portal's
    /// statement, before calling [`fetch()`](Self::fetch) to retrieve rows.
    pub async fn start(&self, response: QueryResponse) {
        *self.row_schema.lock().unwrap_or_else(|e| e.into_inner()) = Some(response.row_schema());
        let mut state = self.state.lock().await;
        *state = PortalExecutionState::Suspended(response);
    }

    /// Fetch up to `max_rows` from a portal's suspended state.
    ///
    /// Returns a [`FetchResult`] containing the rows, the row schema, and
    /// whether the portal is still suspended (has more rows). When the
    /// underlying stream is exhausted, the portal transitions to `Finished`.
    /// When `max_rows` is 0, all remaining rows are fetched.
    ///
    /// Returns an error if the portal is in `Initial` state (call
    /// [`start()`](Self::start) first) or if the stream yields an error.
    pub async fn fetch(&self, max_rows: usize) -> PgWireResult<FetchResult> {
        self.fetch_in(max_rows, None, None).await
    }

    /// SHOAL: [`fetch`](Self::fetch) of a cursor's rows in `format` (`None`: the cursor's
    /// own format), with the text format `options` of the session now (`None`: as
    /// declared). The rows and their description are in that format.
    pub async fn fetch_in(
        &self,
        max_rows: usize,
        format: Option<&Format>,
        options: Option<Arc<FormatOptions>>,
    ) -> PgWireResult<FetchResult> {
        let mut state = self.state.lock().await;
        let format = format.unwrap_or(&self.result_column_format);
        if self.cursor {
            *self.cursor_format.lock().unwrap_or_else(|e| e.into_inner()) = format.clone();
            if options.is_some() {
                *self.cursor_options.lock().unwrap_or_else(|e| e.into_inner()) = options;
            }
        }
        let described = |schema: Arc<Vec<super::results::FieldInfo>>| {
            if self.cursor {
                in_format(&schema, format)
            } else {
                schema
            }
        };

        match state.deref_mut() {
            PortalExecutionState::Initial => Err(PgWireError::PortalNotStarted),
            PortalExecutionState::Finished => {
                // SHOAL: an exhausted cursor still describes its columns (FETCH answers
                // them with no rows, as PostgreSQL does).
                let schema = described(self.result_schema().unwrap_or_default());
                let mut response = QueryResponse::new(schema, futures::stream::empty());
                if self.cursor {
                    response.set_command_tag("FETCH");
                }
                Ok(FetchResult {
                    response,
                    suspended: false,
                })
            }
            PortalExecutionState::Suspended(response) => {
                let command_tag = if self.cursor {
                    "FETCH".to_owned()
                } else {
                    response.command_tag().to_owned()
                };
                let row_schema = described(response.row_schema());
                let data_rows = response.data_rows();

                let mut rows = Vec::with_capacity(if max_rows == 0 { 256 } else { max_rows });
                let mut suspended = true;
                while max_rows == 0 || rows.len() < max_rows {
                    if let Some(row) = data_rows.next().await {
                        rows.push(row?);
                    } else {
                        suspended = false;
                        break;
                    }
                }

                if !suspended {
                    *state = PortalExecutionState::Finished;
                }

                let result_response = QueryResponse {
                    command_tag,
                    row_schema,
                    data_rows: Box::pin(futures::stream::iter(rows.into_iter().map(Ok))),
                };

                Ok(FetchResult {
                    response: result_response,
                    suspended,
                })
            }
        }
    }
}

/// SHOAL: `fields` encoded in `format`.
pub fn in_format(
    fields: &Arc<Vec<super::results::FieldInfo>>,
    format: &Format,
) -> Arc<Vec<super::results::FieldInfo>> {
    if fields
        .iter()
        .enumerate()
        .all(|(i, f)| f.format() == format.format_for(i))
    {
        return Arc::clone(fields);
    }
    Arc::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| f.clone().with_format(format.format_for(i)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use postgres_types::FromSql;

    use super::*;

    #[test]
    fn test_from_sql() {
        assert_eq!(
            "helloworld",
            String::from_sql(&Type::UNKNOWN, "helloworld".as_bytes()).unwrap()
        )
    }
}
