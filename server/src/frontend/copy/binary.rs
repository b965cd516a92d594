//! COPY's binary format (`FORMAT binary`): PostgreSQL's layout, an 11-byte signature, a
//! flags word and a header extension, then per row a 16-bit field count and each field as a
//! 32-bit length (-1 for NULL) and the value in its type's binary send format, and a field
//! count of -1 as the trailer. asyncpg's `copy_records_to_table` and psycopg's binary copy
//! write it; `COPY ... TO STDOUT (FORMAT binary)` sends it.
//!
//! A binary COPY out row is a DataRow's body (field count, then fields as lengths and
//! values), so rows are encoded by arrow-pg's binary encoders, as binary results are.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use shoal_sql_functions::{BadValue, ClusterError};

/// `PGCOPY\n\377\r\n\0`.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The header of a binary COPY out: the signature, no flags, no extension.
pub fn header() -> Bytes {
    let mut b = BytesMut::with_capacity(19);
    b.put_slice(SIGNATURE);
    b.put_i32(0);
    b.put_i32(0);
    b.freeze()
}

/// One binary COPY row from a DataRow encoded in binary.
pub fn row(field_count: i16, fields: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + fields.len());
    b.put_i16(field_count);
    b.put_slice(fields);
    b.freeze()
}

/// A column's values as they are decoded, in the Arrow type of the table's column.
enum Column {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Text(StringBuilder),
    /// A uuid column: 16 bytes in, the canonical text stored.
    Uuid(StringBuilder),
    /// A jsonb column: a version byte (1) then the text.
    Jsonb(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Numeric(Decimal128Builder, u8, i8),
}

impl Column {
    fn new(field: &Field) -> Result<Column, ClusterError> {
        let marked = field
            .metadata()
            .get(shoal_sql_functions::types::PG_TEXT_TYPE_KEY)
            .map(String::as_str);
        Ok(match field.data_type() {
            DataType::Utf8 if marked == Some("uuid") => Column::Uuid(StringBuilder::new()),
            DataType::Utf8 if marked == Some("jsonb") => Column::Jsonb(StringBuilder::new()),
            DataType::Int16 => Column::Int16(Int16Builder::new()),
            DataType::Int32 => Column::Int32(Int32Builder::new()),
            DataType::Int64 => Column::Int64(Int64Builder::new()),
            DataType::Float32 => Column::Float32(Float32Builder::new()),
            DataType::Float64 => Column::Float64(Float64Builder::new()),
            DataType::Boolean => Column::Boolean(BooleanBuilder::new()),
            DataType::Utf8 => Column::Text(StringBuilder::new()),
            DataType::Binary => Column::Bytea(BinaryBuilder::new()),
            DataType::Date32 => Column::Date(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Column::Timestamp(TimestampMicrosecondBuilder::new(), tz.clone())
            }
            DataType::Decimal128(p, s) => Column::Numeric(Decimal128Builder::new(), *p, *s),
            other => {
                return Err(ClusterError::NotSupported {
                    message: format!("binary COPY of a column of type {other} is not supported"),
                })
            }
        })
    }

    fn append_null(&mut self) {
        match self {
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Boolean(b) => b.append_null(),
            Column::Text(b) | Column::Uuid(b) | Column::Jsonb(b) => b.append_null(),
            Column::Bytea(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Timestamp(b, _) => b.append_null(),
            Column::Numeric(b, ..) => b.append_null(),
        }
    }

    /// Appends one value from its binary form; the error says what was wrong with it.
    fn append(&mut self, v: &[u8]) -> Result<(), (BadValue, String)> {
        match self {
            Column::Int16(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Column::Int32(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Column::Int64(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Column::Float32(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Column::Float64(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Column::Boolean(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Column::Uuid(b) => {
                let bytes: [u8; 16] = fixed(v)?;
                b.append_value(shoal_sql_functions::types::uuid::from_bytes(&bytes))
            }
            Column::Jsonb(b) => {
                let Some((1, text)) = v.split_first() else {
                    return Err((
                        BadValue::BinaryFormat,
                        format!(
                            "unsupported jsonb version number {}",
                            v.first().copied().unwrap_or(0)
                        ),
                    ));
                };
                let s = std::str::from_utf8(text).map_err(|_| {
                    (
                        BadValue::Encoding,
                        "invalid byte sequence for encoding \"UTF8\"".to_string(),
                    )
                })?;
                b.append_value(s)
            }
            Column::Text(b) => {
                let s = std::str::from_utf8(v).map_err(|_| {
                    (
                        BadValue::Encoding,
                        "invalid byte sequence for encoding \"UTF8\"".to_string(),
                    )
                })?;
                if s.contains('\0') {
                    return Err((
                        BadValue::Encoding,
                        "invalid byte sequence for encoding \"UTF8\": 0x00".to_string(),
                    ));
                }
                b.append_value(s)
            }
            Column::Bytea(b) => b.append_value(v),
            Column::Date(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                let days = days
                    .checked_add(PG_EPOCH_DAYS)
                    .filter(|_| days != i32::MAX && days != i32::MIN)
                    .ok_or((
                        BadValue::DateTimeOutOfRange,
                        "date out of range".to_string(),
                    ))?;
                b.append_value(days)
            }
            Column::Timestamp(b, _) => {
                let micros = i64::from_be_bytes(fixed(v)?);
                let micros = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .filter(|_| micros != i64::MAX && micros != i64::MIN)
                    .ok_or((
                        BadValue::DateTimeOutOfRange,
                        "timestamp out of range".to_string(),
                    ))?;
                b.append_value(micros)
            }
            Column::Numeric(b, p, s) => b.append_value(numeric(v, *p, *s)?),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ClusterError> {
        Ok(match self {
            Column::Int16(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float32(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Boolean(b) => Arc::new(b.finish()),
            Column::Text(b) | Column::Uuid(b) | Column::Jsonb(b) => Arc::new(b.finish()),
            Column::Bytea(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Column::Numeric(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
        })
    }

    fn len(&self) -> usize {
        match self {
            Column::Int16(b) => b.len(),
            Column::Int32(b) => b.len(),
            Column::Int64(b) => b.len(),
            Column::Float32(b) => b.len(),
            Column::Float64(b) => b.len(),
            Column::Boolean(b) => b.len(),
            Column::Text(b) | Column::Uuid(b) | Column::Jsonb(b) => b.len(),
            Column::Bytea(b) => b.len(),
            Column::Date(b) => b.len(),
            Column::Timestamp(b, _) => b.len(),
            Column::Numeric(b, ..) => b.len(),
        }
    }
}

/// A fixed-size value, failing as PostgreSQL's receive functions do on a field too short
/// (08P01) or too long (22P03).
fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], (BadValue, String)> {
    match v.len().cmp(&N) {
        std::cmp::Ordering::Less => Err((
            BadValue::InsufficientData,
            "insufficient data left in message".to_string(),
        )),
        std::cmp::Ordering::Greater => Err((
            BadValue::BinaryFormat,
            "incorrect binary data format".to_string(),
        )),
        std::cmp::Ordering::Equal => {
            let mut out = [0; N];
            out.copy_from_slice(v);
            Ok(out)
        }
    }
}

/// A `numeric` in PostgreSQL's binary form (digit count, weight, sign, display scale, then
/// base-10000 digits) as a `Decimal128(precision, scale)` value, rounded half away from zero
/// to `scale` as PostgreSQL rounds input to a column's scale.
fn numeric(v: &[u8], precision: u8, scale: i8) -> Result<i128, (BadValue, String)> {
    let format = || (BadValue::BinaryFormat, "invalid numeric format".to_string());
    let overflow = || {
        (
            BadValue::OutOfRange,
            format!(
                "numeric field overflow: a field with precision {precision}, scale {scale} \
                 must round to an absolute value less than 10^{}",
                precision as i32 - scale as i32
            ),
        )
    };
    let mut buf = v;
    if buf.len() < 8 {
        return Err(format());
    }
    let ndigits = buf.get_i16();
    let weight = buf.get_i16() as i32;
    let sign = buf.get_u16();
    let _dscale = buf.get_u16();
    if ndigits < 0 || buf.len() != ndigits as usize * 2 {
        return Err(format());
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 | 0xD000 | 0xF000 => {
            return Err((
                BadValue::OutOfRange,
                "numeric NaN and Infinity cannot be stored: Shoal's numeric columns hold \
                 finite values only"
                    .to_string(),
            ))
        }
        _ => return Err(format()),
    };
    // The value is the digits read as one integer times 10^exp.
    let mut mantissa: i128 = 0;
    for _ in 0..ndigits {
        let d = buf.get_i16();
        if !(0..10_000).contains(&d) {
            return Err(format());
        }
        mantissa = mantissa
            .checked_mul(10_000)
            .and_then(|m| m.checked_add(d as i128))
            .ok_or_else(overflow)?;
    }
    let exp = 4 * (weight - (ndigits as i32 - 1)) + scale as i32;
    let scaled = if exp >= 0 {
        10i128
            .checked_pow(exp as u32)
            .and_then(|f| mantissa.checked_mul(f))
            .ok_or_else(overflow)?
    } else {
        match 10i128.checked_pow((-exp) as u32) {
            Some(f) => {
                let (q, r) = (mantissa / f, mantissa % f);
                if r * 2 >= f {
                    q + 1
                } else {
                    q
                }
            }
            // More fractional digits than an i128 holds: the value rounds to 0.
            None => 0,
        }
    };
    let limit = 10i128.checked_pow(precision as u32).ok_or_else(overflow)?;
    if scaled >= limit {
        return Err(overflow());
    }
    Ok(if negative { -scaled } else { scaled })
}

/// Where the input is in the file's layout.
enum Expect {
    Header,
    Rows,
    /// The trailer came: nothing may follow.
    End,
}

/// Reads binary COPY input, chunk by chunk, into batches of the COPY's columns.
pub struct BinaryDecoder {
    schema: SchemaRef,
    columns: Vec<Column>,
    buf: BytesMut,
    expect: Expect,
    batch_size: usize,
    /// Rows of earlier batches, to name the line of an error as PostgreSQL does.
    rows_before: usize,
    table: String,
}

impl BinaryDecoder {
    pub fn new(schema: SchemaRef, batch_size: usize, table: &str) -> Result<Self, ClusterError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column::new(f))
            .collect::<Result<_, _>>()?;
        Ok(BinaryDecoder {
            schema,
            columns,
            buf: BytesMut::new(),
            expect: Expect::Header,
            batch_size,
            rows_before: 0,
            table: table.to_string(),
        })
    }

    /// The line (1-based row) the next row would be.
    fn line(&self) -> usize {
        self.rows_before + self.columns.first().map_or(0, Column::len) + 1
    }

    fn bad_format(&self, message: &str) -> ClusterError {
        ClusterError::BadCopyData {
            message: format!("COPY {}, line {}: {message}", self.table, self.line()),
        }
    }

    /// Adds a chunk of input.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ClusterError> {
        if matches!(self.expect, Expect::End) && !chunk.is_empty() {
            return Err(self.bad_format("received copy data after EOF marker"));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Decodes the complete rows buffered; returns a batch once `batch_size` rows are
    /// decoded (call again for more), `None` when the buffer holds no complete row.
    pub fn decode(&mut self) -> Result<Option<RecordBatch>, ClusterError> {
        loop {
            match self.expect {
                Expect::Header => {
                    if self.buf.len() < 19 {
                        if !SIGNATURE.starts_with(&self.buf[..self.buf.len().min(11)]) {
                            return Err(self.bad_format("COPY file signature not recognized"));
                        }
                        return Ok(None);
                    }
                    if &self.buf[..11] != SIGNATURE {
                        return Err(self.bad_format("COPY file signature not recognized"));
                    }
                    let flags = i32::from_be_bytes([
                        self.buf[11],
                        self.buf[12],
                        self.buf[13],
                        self.buf[14],
                    ]);
                    if flags & (1 << 16) != 0 {
                        return Err(self.bad_format("COPY file with OIDs is not supported"));
                    }
                    if flags & !0xFFFF != 0 {
                        return Err(
                            self.bad_format("unrecognized critical flags in COPY file header")
                        );
                    }
                    let ext = i32::from_be_bytes([
                        self.buf[15],
                        self.buf[16],
                        self.buf[17],
                        self.buf[18],
                    ]);
                    if ext < 0 {
                        return Err(self.bad_format("invalid COPY file header (wrong length)"));
                    }
                    let total = 19 + ext as usize;
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    self.buf.advance(total);
                    self.expect = Expect::Rows;
                }
                Expect::End => return Ok(None),
                Expect::Rows => {
                    if self.columns.first().map_or(0, Column::len) >= self.batch_size {
                        return self.flush().map(Some);
                    }
                    if !self.decode_row()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Decodes one row if the buffer holds it whole; false when more input is needed.
    fn decode_row(&mut self) -> Result<bool, ClusterError> {
        let buf = &self.buf[..];
        if buf.len() < 2 {
            return Ok(false);
        }
        let count = i16::from_be_bytes([buf[0], buf[1]]);
        if count == -1 {
            self.buf.advance(2);
            if !self.buf.is_empty() {
                return Err(self.bad_format("received copy data after EOF marker"));
            }
            self.expect = Expect::End;
            return Ok(false);
        }
        if count as usize != self.columns.len() || count < 0 {
            return Err(self.bad_format(&format!(
                "row field count is {count}, expected {}",
                self.columns.len()
            )));
        }
        // Find the row's end before appending anything, so a row is taken whole or not at all.
        let mut at = 2;
        let mut fields = Vec::with_capacity(self.columns.len());
        for _ in 0..count {
            if buf.len() < at + 4 {
                return Ok(false);
            }
            let len = i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            at += 4;
            if len == -1 {
                fields.push(None);
                continue;
            }
            if len < 0 {
                return Err(self.bad_format("invalid field size"));
            }
            let len = len as usize;
            if buf.len() < at + len {
                return Ok(false);
            }
            fields.push(Some(at..at + len));
            at += len;
        }
        let line = self.line();
        let row = self.buf.split_to(at).freeze();
        for (i, field) in fields.into_iter().enumerate() {
            let column = &mut self.columns[i];
            match field {
                None => column.append_null(),
                Some(range) => {
                    if let Err((kind, message)) = column.append(&row[range]) {
                        // Keep the columns the same length: a failed row ends the COPY.
                        return Err(ClusterError::BadCopyValue {
                            kind,
                            message: format!(
                                "COPY {}, line {line}, column {}: {message}",
                                self.table,
                                self.schema.field(i).name()
                            ),
                        });
                    }
                }
            }
        }
        Ok(true)
    }

    /// The rows decoded so far as a batch.
    fn flush(&mut self) -> Result<RecordBatch, ClusterError> {
        let arrays = self
            .columns
            .iter_mut()
            .map(Column::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)?;
        self.rows_before += batch.num_rows();
        Ok(batch)
    }

    /// The input ended: the last rows, if any. Input that stops inside a row (or inside the
    /// header) is an error; a missing trailer is not, as in PostgreSQL.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, ClusterError> {
        if let Some(b) = self.decode()? {
            // A full batch with more input behind it: the caller calls again.
            return Ok(Some(b));
        }
        match self.expect {
            Expect::Header => return Err(self.bad_format("COPY file signature not recognized")),
            Expect::Rows if !self.buf.is_empty() => {
                return Err(self.bad_format("unexpected EOF in COPY data"))
            }
            _ => {}
        }
        if self.columns.first().map_or(0, Column::len) == 0 {
            return Ok(None);
        }
        self.flush().map(Some)
    }
}

#[cfg(test)]
mod tests;
