//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`.
//!
//! COPY FROM streams: each CopyData chunk goes through a bounded channel to a task that parses
//! it (text and CSV with arrow-csv, binary with [`binary::BinaryDecoder`]) and feeds the shard
//! writer, so memory stays flat however large the input. The statement's files commit in one
//! catalog transaction when the client sends CopyDone.

mod binary;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::dataframe::DataFrame;
use datafusion_postgres::pgwire::api::copy::CopyHandler;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{CopyResponse, Tag};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use futures::{Sink, SinkExt, StreamExt};
use shoal_sql_functions::{first_null, not_null_columns, not_null_message, Cluster, ClusterError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::frontend::errors::{from_cluster, PgError};
use crate::query::sink::write_statement;

/// COPY's data formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// COPY options as PostgreSQL defines them.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub header: bool,
    pub delimiter: u8,
    pub null: String,
    pub quote: u8,
    pub escape: Option<u8>,
    /// The session's `TimeZone` (`None`: UTC): the zone of a timestamptz without an offset
    /// read in, and the one a timestamptz is written in.
    pub time_zone: Option<String>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            format: CopyFormat::Text,
            header: false,
            delimiter: b'\t',
            null: "\\N".into(),
            quote: b'"',
            escape: None,
            time_zone: crate::frontend::session::current().and_then(|s| s.time_zone()),
        }
    }
}

impl CopyOptions {
    pub fn from_sql(
        options: &[datafusion::sql::sqlparser::ast::CopyOption],
        legacy: &[datafusion::sql::sqlparser::ast::CopyLegacyOption],
    ) -> Result<Self, PgError> {
        use datafusion::sql::sqlparser::ast::{CopyLegacyOption as L, CopyOption as O};
        let mut o = CopyOptions::default();
        let mut delimiter: Option<u8> = None;
        let mut null: Option<String> = None;
        let mut quote_set = false;
        for opt in options {
            match opt {
                O::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                    "csv" => o.format = CopyFormat::Csv,
                    "text" => o.format = CopyFormat::Text,
                    "binary" => o.format = CopyFormat::Binary,
                    other => {
                        return Err(PgError::new(
                            "0A000",
                            format!("COPY format \"{other}\" is not supported"),
                        ))
                    }
                },
                O::Header(h) => o.header = *h,
                O::Delimiter(c) => delimiter = Some(ascii(*c)?),
                O::Null(s) => null = Some(s.clone()),
                O::Quote(c) => {
                    quote_set = true;
                    o.quote = ascii(*c)?
                }
                O::Escape(c) => o.escape = Some(ascii(*c)?),
                // What a table created or truncated in the transaction may skip in
                // PostgreSQL (pgbench -i sends it); Shoal's new files are visible to
                // everyone who may see them from their commit on, so there is nothing to
                // skip.
                O::Freeze(_) => {}
                O::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => {
                    return Err(PgError::new(
                        "0A000",
                        format!("COPY option {other} is not supported"),
                    ))
                }
            }
        }
        for opt in legacy {
            match opt {
                L::Csv(_) => o.format = CopyFormat::Csv,
                L::Binary => o.format = CopyFormat::Binary,
                L::Header => o.header = true,
                L::Delimiter(c) => delimiter = Some(ascii(*c)?),
                L::Null(s) => null = Some(s.clone()),
                other => {
                    return Err(PgError::new(
                        "0A000",
                        format!("COPY option {other} is not supported"),
                    ))
                }
            }
        }
        if o.format == CopyFormat::Binary {
            // PostgreSQL's refusals, word for word (42601).
            let refuse = |what: &str| {
                Err(PgError::new(
                    "42601",
                    format!("cannot specify {what} in BINARY mode"),
                ))
            };
            if delimiter.is_some() {
                return refuse("DELIMITER");
            }
            if null.is_some() {
                return refuse("NULL");
            }
            if o.header {
                return refuse("HEADER");
            }
            if quote_set || o.escape.is_some() {
                return Err(PgError::new(
                    "0A000",
                    "COPY quote available only in CSV mode",
                ));
            }
        }
        if o.header && o.format != CopyFormat::Csv {
            return Err(PgError::new(
                "0A000",
                "COPY HEADER available only in CSV mode",
            ));
        }
        let csv = o.format == CopyFormat::Csv;
        o.delimiter = delimiter.unwrap_or(if csv { b',' } else { b'\t' });
        o.null = null.unwrap_or(if csv { String::new() } else { "\\N".into() });
        Ok(o)
    }
}

/// A COPY statement with its boolean options spelled as sqlparser reads them: PostgreSQL
/// takes `on`/`off`/`1`/`0` as well as `true`/`false` (pgbench sends `FREEZE ON`), sqlparser
/// only the latter. Other statements come back unchanged.
pub fn normalize_boolean_options(sql: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    use std::sync::LazyLock;
    static COPY: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"(?i)^\s*copy\b").ok());
    static OPTION: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"(?i)\b(freeze|header)\s+(on|off|1|0)\b").ok());
    let (Some(copy), Some(option)) = (COPY.as_ref(), OPTION.as_ref()) else {
        return Cow::Borrowed(sql);
    };
    if !copy.is_match(sql) {
        return Cow::Borrowed(sql);
    }
    option.replace_all(sql, |c: &regex::Captures| {
        let value = match c[2].to_ascii_lowercase().as_str() {
            "on" | "1" => "TRUE",
            _ => "FALSE",
        };
        format!("{} {value}", &c[1])
    })
}

fn ascii(c: char) -> Result<u8, PgError> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(PgError::new(
            "0A000",
            "COPY delimiter must be a single one-byte character",
        ))
    }
}

/// Whether a CSV byte stream is inside a quoted field, kept across chunks.
struct CsvQuoting {
    quote: u8,
    escape: u8,
    in_quotes: bool,
    skip_next: bool,
}

impl CsvQuoting {
    fn new(o: &CopyOptions) -> Self {
        CsvQuoting {
            quote: o.quote,
            escape: o.escape.unwrap_or(o.quote),
            in_quotes: false,
            skip_next: false,
        }
    }

    /// Steps over `b`: true if it lies inside a quoted field (its closing quote included),
    /// so it is neither a delimiter nor a line end. An opening quote returns false.
    fn inside(&mut self, b: u8) -> bool {
        if !self.in_quotes {
            self.in_quotes = b == self.quote;
            return false;
        }
        if self.skip_next {
            self.skip_next = false;
        } else if self.escape != self.quote && b == self.escape {
            self.skip_next = true;
        } else if b == self.quote {
            self.in_quotes = false;
        }
        true
    }
}

/// In CSV, PostgreSQL reads an unquoted empty field as NULL and a quoted one (`""`) as an
/// empty string; arrow-csv sees both as empty. This pass marks unquoted empty fields with a
/// byte that cannot appear in text (0x01), which the decoder's null pattern then matches. It
/// keeps its state across chunks, so fields may span CopyData messages.
struct CsvNullMarker {
    delimiter: u8,
    quoting: CsvQuoting,
    field_empty: bool,
    line_empty: bool,
    prev: u8,
}

const NULL_MARK: u8 = 0x01;

impl CsvNullMarker {
    fn new(o: &CopyOptions) -> Self {
        CsvNullMarker {
            delimiter: o.delimiter,
            quoting: CsvQuoting::new(o),
            field_empty: true,
            line_empty: true,
            prev: 0,
        }
    }

    fn process(&mut self, input: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(input.len() + 16);
        for &b in input {
            if self.quoting.inside(b) {
                // part of a quoted field: neither a delimiter nor a line end
            } else if b == self.delimiter || b == b'\n' || b == b'\r' {
                let crlf = b == b'\n' && self.prev == b'\r';
                let blank_line = b != self.delimiter && self.line_empty;
                if self.field_empty && !crlf && !blank_line {
                    out.push(NULL_MARK);
                }
                self.field_empty = true;
                self.line_empty = b != self.delimiter;
            } else {
                self.field_empty = false;
                self.line_empty = false;
            }
            out.push(b);
            self.prev = b;
        }
        Bytes::from(out)
    }

    /// At the end of input: a last line without a newline may end in an empty field.
    fn finish(&mut self) -> Option<Bytes> {
        if self.field_empty && !self.line_empty {
            self.line_empty = true;
            return Some(Bytes::from_static(&[NULL_MARK]));
        }
        None
    }
}

/// How the input ended, for what arrow-csv's decoder cannot say: whether the last line lacks
/// its newline (the decoder keeps such a record pending forever; PostgreSQL stores it) and
/// whether a CSV quoted field is still open (PostgreSQL fails the COPY).
struct InputEnd {
    /// `None` in text format, which has no quoting.
    quoting: Option<CsvQuoting>,
    last: Option<u8>,
    /// CSV lines ended so far, for the unterminated-quote error's line number.
    lines: usize,
}

impl InputEnd {
    fn new(o: &CopyOptions) -> Self {
        InputEnd {
            quoting: (o.format == CopyFormat::Csv).then(|| CsvQuoting::new(o)),
            last: None,
            lines: 0,
        }
    }

    fn observe(&mut self, input: &[u8]) {
        self.last = input.last().copied().or(self.last);
        // Text format has no quoting: the last byte is all there is to know.
        let Some(quoting) = self.quoting.as_mut() else {
            return;
        };
        for &b in input {
            if !quoting.inside(b) && b == b'\n' {
                self.lines += 1;
            }
        }
    }

    /// At the end of input: an error for an open quoted field, else whether a newline must
    /// be fed to finish the last line.
    fn finish(&self, table: &str) -> Result<bool, ClusterError> {
        if self.quoting.as_ref().is_some_and(|q| q.in_quotes) {
            return Err(ClusterError::BadCopyData {
                message: format!(
                    "COPY {table}: unterminated CSV quoted field at line {}",
                    self.lines + 1
                ),
            });
        }
        Ok(self.last.is_some_and(|b| b != b'\n' && b != b'\r'))
    }
}

/// The COPY FROM in progress on one connection.
struct ActiveCopy {
    table: String,
    sender: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<Result<u64, ClusterError>>,
}

/// Per-connection slot for the COPY in progress (kept in pgwire's session extensions).
#[derive(Default)]
pub struct CopySlot(Mutex<Option<ActiveCopy>>);

impl CopySlot {
    fn take(&self) -> Option<ActiveCopy> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
    fn sender(&self) -> Option<mpsc::Sender<Bytes>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|a| a.sender.clone())
    }
}

/// Starts `COPY table [(columns)] FROM STDIN`: returns the CopyIn response; rows arrive
/// through [`ShoalCopyHandler`].
/// Parsed batches (8192 rows each) that may wait for the writer.
const PARSED_AHEAD: usize = 4;

pub fn start_copy_in(
    cluster: Arc<Cluster>,
    state: &datafusion::execution::SessionState,
    client: &dyn ClientInfo,
    table: &str,
    columns: &[String],
    options: CopyOptions,
) -> Result<CopyResponse, PgError> {
    let info = cluster.table(table).map_err(|e| from_cluster(&e))?;
    let table_schema = shoal_sql_functions::types::table_schema(&info.columns);
    let input_fields: Vec<Field> = if columns.is_empty() {
        table_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect()
    } else {
        let mut v = Vec::new();
        for c in columns {
            let f = table_schema.field_with_name(c).map_err(|_| {
                PgError::new(
                    "42703",
                    format!("column \"{c}\" of relation \"{table}\" does not exist"),
                )
            })?;
            v.push(f.clone());
        }
        v
    };
    // Columns left out of the COPY that have a default take it, as in PostgreSQL.
    let omitted_defaults = info
        .columns
        .iter()
        .any(|c| c.default.is_some() && !columns.is_empty() && !columns.contains(&c.name));
    let defaults = if omitted_defaults {
        crate::query::column_defaults::physical_defaults(state, &info)
            .map_err(|e| crate::frontend::errors::from_datafusion(&e))?
    } else {
        HashMap::new()
    };
    let input_schema = Arc::new(Schema::new(input_fields));
    let not_null = not_null_columns(&info);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let ncols = input_schema.fields().len();
    let format = options.format;
    let table_name = table.to_string();
    // A COPY inside a transaction block stages its rows there.
    let session = crate::frontend::session::current()
        .filter(|s| s.mode() == crate::frontend::session::TxnMode::Block);
    let task = tokio::spawn(async move {
        let mut parsed = if format == CopyFormat::Binary {
            parse_binary_stream(
                rx,
                input_schema,
                table_schema,
                not_null,
                defaults,
                table_name.clone(),
            )
        } else {
            parse_stream(
                rx,
                input_schema,
                table_schema,
                not_null,
                defaults,
                options,
                table_name.clone(),
            )
        };
        // Parsing runs in its own task a few batches ahead of routing and sending, so that
        // on a multi-core coordinator the two overlap instead of taking turns. It stops when
        // the input ends, at its first error, or when the writer has gone.
        let (batch_tx, batch_rx) = mpsc::channel(PARSED_AHEAD);
        let parser = tokio::spawn(async move {
            while let Some(item) = parsed.next().await {
                let failed = item.is_err();
                if batch_tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        let batches = tokio_stream::wrappers::ReceiverStream::new(batch_rx).boxed();
        let write = write_statement(&cluster, &table_name, batches, session.as_ref());
        // A table the transaction created resolves only in its scope.
        let result = match &session {
            Some(s) => s.scope(write).await,
            None => write.await,
        };
        parser.abort();
        result
    });
    let slot = client
        .session_extensions()
        .get_or_insert_with(CopySlot::default);
    let mut guard = slot.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = guard.take() {
        old.task.abort();
    }
    *guard = Some(ActiveCopy {
        table: table.to_string(),
        sender: Some(tx),
        task,
    });
    let format_code = if format == CopyFormat::Binary { 1 } else { 0 };
    Ok(CopyResponse::new(
        format_code,
        ncols,
        futures::stream::empty(),
    ))
}

/// Parses binary COPY input into batches of the table's schema.
fn parse_binary_stream(
    rx: mpsc::Receiver<Bytes>,
    input_schema: SchemaRef,
    table_schema: SchemaRef,
    not_null: Vec<usize>,
    defaults: ColumnDefaults,
    table: String,
) -> futures::stream::BoxStream<'static, Result<RecordBatch, ClusterError>> {
    let not_null: Arc<[usize]> = not_null.into();
    let defaults = Arc::new(defaults);
    struct State {
        rx: mpsc::Receiver<Bytes>,
        decoder: binary::BinaryDecoder,
        /// Rows before the next batch, for error messages.
        line: usize,
        input_ended: bool,
    }
    let decoder = match binary::BinaryDecoder::new(Arc::clone(&input_schema), 8192, &table) {
        Ok(d) => d,
        Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
    };
    let state = State {
        rx,
        decoder,
        line: 0,
        input_ended: false,
    };
    let stream = futures::stream::try_unfold(state, move |mut st| {
        let input_schema = Arc::clone(&input_schema);
        let table_schema = Arc::clone(&table_schema);
        let not_null = Arc::clone(&not_null);
        let defaults = Arc::clone(&defaults);
        let table = table.clone();
        async move {
            loop {
                let batch = if st.input_ended {
                    st.decoder.finish()?
                } else {
                    st.decoder.decode()?
                };
                if let Some(b) = batch {
                    let first = st.line;
                    st.line += b.num_rows();
                    let b = widen(
                        b,
                        &input_schema,
                        &table_schema,
                        &not_null,
                        &defaults,
                        false,
                        &table,
                        first,
                        None,
                    )?;
                    return Ok(Some((b, st)));
                }
                if st.input_ended {
                    return Ok(None);
                }
                match st.rx.recv().await {
                    Some(chunk) => st.decoder.push(&chunk)?,
                    None => st.input_ended = true,
                }
            }
        }
    });
    stream.boxed()
}

/// Parses COPY bytes into batches of the table's schema.
fn parse_stream(
    rx: mpsc::Receiver<Bytes>,
    input_schema: SchemaRef,
    table_schema: SchemaRef,
    not_null: Vec<usize>,
    defaults: ColumnDefaults,
    options: CopyOptions,
    table: String,
) -> futures::stream::BoxStream<'static, Result<RecordBatch, ClusterError>> {
    let not_null: Arc<[usize]> = not_null.into();
    let defaults = Arc::new(defaults);
    // Booleans (t/f/yes/no/on/off) and bytea (\x hex) are spelled the PostgreSQL way; read
    // them as text and convert.
    let decode_schema = Arc::new(Schema::new(
        input_schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Boolean | DataType::Binary | DataType::List(_) => {
                    Field::new(f.name(), DataType::Utf8, true)
                }
                // A timestamptz without an offset is a local time in the session's zone.
                DataType::Timestamp(_, Some(_)) if options.time_zone.is_some() => {
                    Field::new(f.name(), DataType::Utf8, true)
                }
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let mut builder = arrow_csv::ReaderBuilder::new(decode_schema)
        .with_header(options.header)
        .with_delimiter(options.delimiter)
        .with_batch_size(8192);
    let csv = options.format == CopyFormat::Csv;
    if csv {
        builder = builder.with_quote(options.quote);
        if let Some(e) = options.escape {
            builder = builder.with_escape(e);
        }
    } else {
        // text format has no quoting; NUL never appears in text input
        builder = builder.with_quote(0);
    }
    let mut marker = (csv && options.null.is_empty()).then(|| CsvNullMarker::new(&options));
    let null_pattern = if marker.is_some() {
        "^\\x01$".to_string()
    } else {
        format!("^{}$", regex::escape(&options.null))
    };
    if !options.null.is_empty() || marker.is_some() {
        if let Ok(re) = regex::Regex::new(&null_pattern) {
            builder = builder.with_null_regex(re);
        }
    }
    let decoder = builder.build_decoder();
    let text_mode = !csv;
    let time_zone = options.time_zone.clone();
    struct State {
        rx: mpsc::Receiver<Bytes>,
        decoder: arrow_csv::reader::Decoder,
        pending: Bytes,
        done: bool,
        /// Lines before the current batch (header included), for error messages.
        lines_before: usize,
        marker: Option<CsvNullMarker>,
        end: InputEnd,
        /// The newline that finishes a last line without one has been fed.
        end_fed: bool,
        /// The chunk in `pending` began at the start of a line.
        at_line_start: bool,
    }
    let header_lines = usize::from(options.header);
    let state = State {
        rx,
        decoder,
        pending: Bytes::new(),
        done: false,
        lines_before: header_lines,
        marker: marker.take(),
        end: InputEnd::new(&options),
        end_fed: false,
        at_line_start: true,
    };
    let stream = futures::stream::try_unfold(state, move |mut st| {
        let input_schema = Arc::clone(&input_schema);
        let table_schema = Arc::clone(&table_schema);
        let table = table.clone();
        let not_null = Arc::clone(&not_null);
        let defaults = Arc::clone(&defaults);
        let time_zone = time_zone.clone();
        async move {
            let widen = |b: RecordBatch, first_line: usize| {
                widen(
                    b,
                    &input_schema,
                    &table_schema,
                    &not_null,
                    &defaults,
                    text_mode,
                    &table,
                    first_line,
                    time_zone.as_deref(),
                )
            };
            loop {
                if st.done {
                    return Ok(None);
                }
                if st.pending.is_empty() {
                    match st.rx.recv().await {
                        Some(chunk) => {
                            // A chunk may begin mid-line: `\.` is the end-of-data line only
                            // at the start of one (`\N\t\` + `\.\n` is a value `\.`).
                            st.at_line_start = st.end.last.is_none_or(|b| b == b'\n');
                            st.end.observe(&chunk);
                            // The end-of-data line `\.` may close a chunk of rows as well
                            // as come alone (psql sends both ways).
                            let chunk = if text_mode {
                                strip_end_of_data(chunk)
                            } else {
                                chunk
                            };
                            st.pending = match st.marker.as_mut() {
                                Some(m) => m.process(&chunk),
                                None => chunk,
                            }
                        }
                        None if st.marker.as_mut().and_then(|m| m.finish()).is_some() => {
                            st.pending = Bytes::from_static(&[NULL_MARK]);
                        }
                        None if !st.end_fed && st.end.finish(&table)? => {
                            st.end_fed = true;
                            st.pending = Bytes::from_static(b"\n");
                        }
                        None => {
                            st.done = true;
                            let last = st.decoder.flush().map_err(|e| copy_error(&table, e))?;
                            return match last {
                                Some(b) => {
                                    let at = st.lines_before;
                                    st.lines_before += b.num_rows();
                                    Ok(Some((widen(b, at)?, st)))
                                }
                                None => Ok(None),
                            };
                        }
                    }
                    if text_mode && st.at_line_start && st.pending.as_ref() == b"\\.\n" {
                        st.pending = Bytes::new();
                        continue;
                    }
                }
                let used = st
                    .decoder
                    .decode(&st.pending)
                    .map_err(|e| copy_error(&table, e))?;
                st.pending = st.pending.slice(used..);
                if st.decoder.capacity() == 0 {
                    if let Some(b) = st.decoder.flush().map_err(|e| copy_error(&table, e))? {
                        let at = st.lines_before;
                        st.lines_before += b.num_rows();
                        return Ok(Some((widen(b, at)?, st)));
                    }
                }
            }
        }
    });
    stream.boxed()
}

/// arrow-csv counts lines from 0 in value errors ("at line 4", header included) and from 1 in
/// field-count errors ("for line 5"); PostgreSQL reports the 1-based line of the input.
fn copy_error(table: &str, e: arrow::error::ArrowError) -> ClusterError {
    let msg = match &e {
        arrow::error::ArrowError::ParseError(m) | arrow::error::ArrowError::CsvError(m) => {
            m.clone()
        }
        other => other.to_string(),
    };
    let msg = match regex::Regex::new(r"at line (\d+)") {
        Ok(re) => re
            .replace_all(&msg, |c: &regex::Captures| {
                let n: usize = c[1].parse().unwrap_or(0);
                format!("at line {}", n + 1)
            })
            .into_owned(),
        Err(_) => msg,
    };
    ClusterError::BadCopyData {
        message: format!("COPY {table}: {msg}"),
    }
}

/// A text-format chunk without the `\.` end-of-data line that ends it.
fn strip_end_of_data(chunk: Bytes) -> Bytes {
    for end in [&b"\n\\.\n"[..], &b"\n\\.\r\n"[..]] {
        if chunk.ends_with(end) {
            return chunk.slice(..chunk.len() - end.len() + 1);
        }
    }
    chunk
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "y" | "on" | "1" => Some(true),
        "f" | "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_bytea(v: &str) -> Option<Vec<u8>> {
    let hex = v.strip_prefix("\\x").or_else(|| v.strip_prefix("\\X"))?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Converts a text column read for a Boolean or Binary column.
fn convert_text(
    col: &ArrayRef,
    to: &DataType,
    table: &str,
    column: &str,
    first_line: usize,
    time_zone: Option<&str>,
) -> Result<ArrayRef, ClusterError> {
    let s = col.as_string::<i32>();
    let bad = |i: usize, v: &str, ty: &str| ClusterError::BadCopyData {
        message: format!(
            "COPY {table}, line {}, column {column}: invalid input syntax for type {ty}: \"{v}\"",
            first_line + i + 1
        ),
    };
    match to {
        DataType::Boolean => {
            let mut out = Vec::with_capacity(s.len());
            for (i, v) in s.iter().enumerate() {
                out.push(match v {
                    None => None,
                    Some(v) => Some(parse_bool(v).ok_or_else(|| bad(i, v, "boolean"))?),
                });
            }
            Ok(Arc::new(arrow::array::BooleanArray::from(out)))
        }
        DataType::Binary => {
            let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(s.len());
            for (i, v) in s.iter().enumerate() {
                out.push(match v {
                    None => None,
                    Some(v) => Some(parse_bytea(v).ok_or_else(|| bad(i, v, "bytea"))?),
                });
            }
            Ok(Arc::new(arrow::array::BinaryArray::from_iter(out)))
        }
        // An array's text (`{1,2}`), read as PostgreSQL reads it.
        DataType::List(f) => {
            shoal_sql_functions::types::array::list_column(s.iter(), f.data_type()).map_err(|e| {
                ClusterError::BadCopyData {
                    message: format!(
                        "COPY {table}, line {}, column {column}: {}",
                        first_line + 1,
                        e.message
                    ),
                }
            })
        }
        DataType::Timestamp(_, Some(_)) => {
            let zone: chrono_tz::Tz = match time_zone.map(str::parse) {
                Some(Ok(z)) => z,
                _ => return Ok(Arc::clone(col)),
            };
            let instants =
                crate::query::pg_time_zone::text_to_instants(col, &zone).map_err(|e| {
                    ClusterError::BadCopyData {
                        message: format!(
                            "COPY {table}, line {}, column {column}: {e}",
                            first_line + 1
                        ),
                    }
                })?;
            Ok(Arc::new(instants.with_timezone("UTC")))
        }
        _ => Ok(Arc::clone(col)),
    }
}

/// Adds NULL columns the COPY did not name, and undoes text-format backslash escapes.
/// `n` values of a column's default, of the column's type.
fn default_values(
    default: &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    ty: &DataType,
    n: usize,
) -> Result<ArrayRef, ClusterError> {
    let rows = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )?;
    let values = default.evaluate(&rows)?.into_array(n)?;
    Ok(arrow::compute::cast(&values, ty)?)
}

/// The default of each column that has one, by name, ready to compute for a batch.
type ColumnDefaults = HashMap<String, Arc<dyn datafusion::physical_expr::PhysicalExpr>>;

/// Puts a parsed batch into the table's schema (columns not in the COPY list take their
/// default, or NULL) and checks its NOT NULL columns, naming the input line of the first NULL
/// there.
#[allow(clippy::too_many_arguments)]
fn widen(
    batch: RecordBatch,
    input: &SchemaRef,
    table: &SchemaRef,
    not_null: &[usize],
    defaults: &ColumnDefaults,
    text_mode: bool,
    table_name: &str,
    first_line: usize,
    time_zone: Option<&str>,
) -> Result<RecordBatch, ClusterError> {
    let n = batch.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
    for f in table.fields() {
        cols.push(match input.index_of(f.name()) {
            Ok(i) => {
                let mut c = Arc::clone(batch.column(i));
                if text_mode && matches!(c.data_type(), DataType::Utf8) {
                    c = unescape_text(&c);
                }
                if c.data_type() != f.data_type() {
                    c = convert_text(
                        &c,
                        f.data_type(),
                        table_name,
                        f.name(),
                        first_line,
                        time_zone,
                    )?;
                    if c.data_type() != f.data_type() {
                        c = arrow::compute::cast(&c, f.data_type())?;
                    }
                }
                c
            }
            Err(_) => match defaults.get(f.name()) {
                Some(default) => default_values(default, f.data_type(), n)?,
                None => new_null_array(f.data_type(), n),
            },
        });
    }
    let batch = RecordBatch::try_new(Arc::clone(table), cols)?;
    if let Some((column, row)) = first_null(&batch, not_null) {
        return Err(ClusterError::NotNull {
            message: format!(
                "COPY {table_name}, line {}: {}",
                first_line + row + 1,
                not_null_message(table_name, table.field(column).name())
            ),
        });
    }
    Ok(batch)
}

fn unescape_text(col: &ArrayRef) -> ArrayRef {
    let s = col.as_string::<i32>();
    if !s.iter().flatten().any(|v| v.contains('\\')) {
        return Arc::clone(col);
    }
    let out: StringArray = s
        .iter()
        .map(|v| {
            v.map(|v| {
                let mut o = String::with_capacity(v.len());
                let mut chars = v.chars();
                while let Some(c) = chars.next() {
                    if c != '\\' {
                        o.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('t') => o.push('\t'),
                        Some('n') => o.push('\n'),
                        Some('r') => o.push('\r'),
                        Some('b') => o.push('\u{8}'),
                        Some('f') => o.push('\u{c}'),
                        Some('v') => o.push('\u{b}'),
                        Some(other) => o.push(other),
                        None => o.push('\\'),
                    }
                }
                o
            })
        })
        .collect();
    Arc::new(out)
}

/// Receives CopyData/CopyDone/CopyFail for the COPY in progress.
pub struct ShoalCopyHandler;

#[async_trait]
impl CopyHandler for ShoalCopyHandler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sender = client
            .session_extensions()
            .get::<CopySlot>()
            .and_then(|s| s.sender());
        if let Some(tx) = sender {
            // A closed channel means parsing failed; the error is reported at CopyDone.
            let _ = tx.send(Bytes::from(copy_data.data.to_vec())).await;
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let active = client
            .session_extensions()
            .get::<CopySlot>()
            .and_then(|s| s.take());
        let Some(mut active) = active else {
            return Err(
                PgError::new("08P01", "CopyDone received without a COPY in progress").into(),
            );
        };
        active.sender.take();
        let result = match (&mut active.task).await {
            Ok(r) => r,
            Err(e) => Err(ClusterError::Internal {
                message: format!("COPY task failed: {e}"),
            }),
        };
        match result {
            Ok(rows) => {
                tracing::info!(table = %active.table, rows, "COPY committed");
                client
                    .send(PgWireBackendMessage::CommandComplete(
                        Tag::new("COPY").with_rows(rows as usize).into(),
                    ))
                    .await?;
                Ok(())
            }
            Err(e) => Err(from_cluster(&e).into()),
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(active) = client
            .session_extensions()
            .get::<CopySlot>()
            .and_then(|s| s.take())
        {
            active.task.abort();
        }
        PgError::new("57014", format!("COPY from stdin failed: {}", fail.message)).into()
    }
}

/// `COPY ... TO STDOUT`: runs the query and sends each row in text, CSV or binary format.
pub async fn copy_out(df: DataFrame, options: CopyOptions) -> PgWireResult<CopyResponse> {
    let schema = df.schema().as_arrow().clone();
    let ncols = schema.fields().len();
    let binary = options.format == CopyFormat::Binary;
    let format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    // Values are written as the session would receive them (DateStyle, TimeZone).
    let fields = Arc::new(arrow_pg::datatypes::arrow_schema_to_pg_fields(
        &schema,
        &format,
        Some(Arc::new(crate::query::pg_text_out::session_format_options())),
    )?);
    let stream = df
        .execute_stream()
        .await
        .map_err(|e| PgWireError::from(crate::frontend::errors::from_datafusion(&e)))?;
    let header = if binary {
        Some(CopyData::new(binary::header()))
    } else if options.header {
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| quote_csv(f.name(), &options))
            .collect();
        let mut line = names.join(&(options.delimiter as char).to_string());
        line.push('\n');
        Some(CopyData::new(Bytes::from(line)))
    } else {
        None
    };
    let rows = stream.flat_map(move |batch| {
        let out: Vec<PgWireResult<CopyData>> = match batch {
            Err(e) => vec![Err(crate::frontend::errors::from_datafusion(&e).into())],
            Ok(b) if binary => arrow_pg::datatypes::encode_recordbatch(Arc::clone(&fields), b)
                .map(|row| row.map(|r| CopyData::new(binary::row(r.field_count, &r.data))))
                .collect(),
            Ok(b) => encode_rows(&fields, b, &options),
        };
        futures::stream::iter(out)
    });
    // The binary format's trailer is added by CopyResponse.
    let response = CopyResponse::new(if binary { 1 } else { 0 }, ncols, rows);
    Ok(match header {
        Some(h) => response.with_header(h),
        None => response,
    })
}

fn encode_rows(
    fields: &Arc<Vec<datafusion_postgres::pgwire::api::results::FieldInfo>>,
    batch: RecordBatch,
    options: &CopyOptions,
) -> Vec<PgWireResult<CopyData>> {
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in arrow_pg::datatypes::encode_recordbatch(Arc::clone(fields), batch) {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let mut line = String::new();
        let mut buf = &row.data[..];
        for i in 0..row.field_count {
            if i > 0 {
                line.push(options.delimiter as char);
            }
            if buf.len() < 4 {
                break;
            }
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            buf = &buf[4..];
            if len < 0 {
                line.push_str(&options.null);
                continue;
            }
            let len = (len as usize).min(buf.len());
            let value = String::from_utf8_lossy(&buf[..len]);
            buf = &buf[len..];
            if options.format == CopyFormat::Csv {
                line.push_str(&quote_csv(&value, options));
            } else {
                escape_text(&value, options.delimiter, &mut line);
            }
        }
        line.push('\n');
        out.push(Ok(CopyData::new(Bytes::from(line))));
    }
    out
}

fn quote_csv(v: &str, o: &CopyOptions) -> String {
    let q = o.quote as char;
    if v.is_empty()
        || v.contains(o.delimiter as char)
        || v.contains(q)
        || v.contains('\n')
        || v.contains('\r')
        || v == o.null
    {
        format!("{q}{}{q}", v.replace(q, &format!("{q}{q}")))
    } else {
        v.to_string()
    }
}

fn escape_text(v: &str, delimiter: u8, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' if delimiter == b'\t' => out.push_str("\\t"),
            c if c as u32 == delimiter as u32 => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Property tests for the COPY parser: arbitrary input in any chunking never panics, and rows
/// written the way PostgreSQL writes them (text escapes, CSV quoting) read back unchanged
/// however the bytes are split into CopyData messages. Bounded: a fixed number of cases.
#[cfg(test)]
mod fuzz {
    use super::*;
    use futures::TryStreamExt;
    use proptest::prelude::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    fn csv_options() -> CopyOptions {
        CopyOptions {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: String::new(),
            ..CopyOptions::default()
        }
    }

    /// `bytes` cut at `cuts` (offsets, any order), as the CopyData messages of one COPY.
    fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.sort_unstable();
        at.dedup();
        let mut out = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([bytes.len()]) {
            if to > from {
                out.push(Bytes::copy_from_slice(&bytes[from..to]));
                from = to;
            }
        }
        out
    }

    type Row = (Option<i64>, Option<String>);

    fn parse(input: Vec<Bytes>, options: CopyOptions) -> Result<Vec<Row>, ClusterError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Internal {
                message: e.to_string(),
            })?;
        rt.block_on(async move {
            let (tx, rx) = mpsc::channel(input.len().max(1));
            for chunk in input {
                let _ = tx.send(chunk).await;
            }
            drop(tx);
            let batches: Vec<RecordBatch> = parse_stream(
                rx,
                schema(),
                schema(),
                vec![],
                HashMap::new(),
                options,
                "t".into(),
            )
            .try_collect()
            .await?;
            let mut rows = Vec::new();
            for b in batches {
                let ids = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
                let s = b.column(1).as_string::<i32>();
                for i in 0..b.num_rows() {
                    rows.push((
                        ids.is_valid(i).then(|| ids.value(i)),
                        s.is_valid(i).then(|| s.value(i).to_string()),
                    ));
                }
            }
            Ok(rows)
        })
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        proptest::collection::vec(
            (
                proptest::option::of(any::<i64>()),
                proptest::option::of("[a-z \t\n\r\\\\,\"'.é]{0,10}"),
            ),
            0..20,
        )
    }

    fn cuts() -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(any::<usize>(), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn arbitrary_input_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in cuts(),
            csv in any::<bool>(),
        ) {
            let options = if csv { csv_options() } else { CopyOptions::default() };
            let _ = parse(chunks(&bytes, &cuts), options);
        }

        #[test]
        fn text_rows_read_back(rows in rows(), cuts in cuts(), final_newline in any::<bool>()) {
            let mut text = String::new();
            for (id, s) in &rows {
                match id {
                    Some(v) => text.push_str(&v.to_string()),
                    None => text.push_str("\\N"),
                }
                text.push('\t');
                match s {
                    Some(v) => escape_text(v, b'\t', &mut text),
                    None => text.push_str("\\N"),
                }
                text.push('\n');
            }
            if !final_newline && text.ends_with('\n') {
                text.pop();
            }
            let parsed = parse(chunks(text.as_bytes(), &cuts), CopyOptions::default());
            prop_assert_eq!(parsed.map_err(|e| e.to_string()), Ok(rows));
        }

        #[test]
        fn csv_rows_read_back(rows in rows(), cuts in cuts(), final_newline in any::<bool>()) {
            let options = csv_options();
            let mut text = String::new();
            for (id, s) in &rows {
                if let Some(v) = id {
                    text.push_str(&v.to_string());
                }
                text.push(',');
                if let Some(v) = s {
                    text.push_str(&quote_csv(v, &options));
                }
                text.push('\n');
            }
            if !final_newline && text.ends_with('\n') {
                text.pop();
            }
            let parsed = parse(chunks(text.as_bytes(), &cuts), options);
            prop_assert_eq!(parsed.map_err(|e| e.to_string()), Ok(rows));
        }
    }
}
