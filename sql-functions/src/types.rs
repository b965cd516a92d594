//! How a declared column type is stored in Arrow (and so in Parquet), and the text forms
//! PostgreSQL gives the types Shoal stores as text (`json`/`jsonb`, `uuid`).

pub mod array;
pub mod json;
pub mod uuid;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use shoal_catalog::{ArrayElement, ColumnDef, SqlType};

/// The Arrow type a column of this SQL type holds. Strings stay `Utf8` (not views) so that
/// batches from workers, COPY and INSERT all agree on one schema.
pub fn arrow_type(t: &SqlType) -> DataType {
    match t {
        SqlType::SmallInt => DataType::Int16,
        SqlType::Integer => DataType::Int32,
        SqlType::BigInt => DataType::Int64,
        SqlType::Real => DataType::Float32,
        SqlType::Double => DataType::Float64,
        SqlType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
        SqlType::Text
        | SqlType::Varchar { .. }
        | SqlType::Char { .. }
        | SqlType::Uuid
        | SqlType::Json
        | SqlType::Jsonb => DataType::Utf8,
        SqlType::Boolean => DataType::Boolean,
        SqlType::Date => DataType::Date32,
        SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        SqlType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        SqlType::Bytea => DataType::Binary,
        SqlType::Array { element } => DataType::List(Arc::new(Field::new_list_field(
            arrow_type(&element.sql_type()),
            true,
        ))),
    }
}

/// The SQL type a query's column is stored as (`CREATE TABLE ... AS`): by its Arrow type,
/// or the type its [`PG_TEXT_TYPE_KEY`] names; `None` for a type no Shoal column holds.
pub fn sql_type_of(field: &Field) -> Option<SqlType> {
    let marked = field.metadata().get(PG_TEXT_TYPE_KEY).map(String::as_str);
    Some(match (field.data_type(), marked) {
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Some("uuid")) => SqlType::Uuid,
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Some("json")) => SqlType::Json,
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Some("jsonb")) => {
            SqlType::Jsonb
        }
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Some("bpchar")) => {
            match char_length(field) {
                Some(len) => SqlType::Char { len },
                None => SqlType::Text,
            }
        }
        (t, _) => return sql_type_of_arrow(t),
    })
}

fn sql_type_of_arrow(t: &DataType) -> Option<SqlType> {
    Some(match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => SqlType::SmallInt,
        DataType::Int32 | DataType::UInt16 => SqlType::Integer,
        DataType::Int64 | DataType::UInt32 => SqlType::BigInt,
        DataType::Float16 | DataType::Float32 => SqlType::Real,
        DataType::Float64 => SqlType::Double,
        DataType::Decimal128(p, s) if *p <= 38 => SqlType::Numeric {
            precision: *p,
            scale: *s,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::Text,
        DataType::Boolean => SqlType::Boolean,
        DataType::Date32 => SqlType::Date,
        DataType::Timestamp(_, None) => SqlType::Timestamp,
        DataType::Timestamp(_, Some(_)) => SqlType::TimestampTz,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytea,
        DataType::List(f) | DataType::LargeList(f) => SqlType::Array {
            element: ArrayElement::of(sql_type_of_arrow(f.data_type())?)?,
        },
        _ => return None,
    })
}

/// What `pg_attribute` tells of a column beyond its Arrow type: NOT NULL, the PostgreSQL
/// type where the Arrow type alone would say text (varchar, uuid, jsonb), and the declared
/// modifier (`atttypmod` of `varchar(n)`, `numeric(p,s)`; -1 otherwise).
pub fn pg_attributes(c: &ColumnDef) -> (bool, Option<i32>, i32) {
    let (type_oid, typmod) = match &c.sql_type {
        SqlType::Varchar { max_len } => (
            Some(1043),
            max_len.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX - 4) + 4),
        ),
        SqlType::Numeric { precision, scale } => (
            None,
            ((i32::from(*precision) << 16) | i32::from(*scale as u8)) + 4,
        ),
        SqlType::Char { len } => (Some(1042), char_typmod(*len)),
        SqlType::Uuid => (Some(2950), -1),
        SqlType::Array { element } => (
            Some(match element {
                ArrayElement::SmallInt => 1005,
                ArrayElement::Integer => 1007,
                ArrayElement::BigInt => 1016,
                ArrayElement::Real => 1021,
                ArrayElement::Double => 1022,
                ArrayElement::Text => 1009,
                ArrayElement::Boolean => 1000,
            }),
            -1,
        ),
        SqlType::Json => (Some(114), -1),
        SqlType::Jsonb => (Some(3802), -1),
        _ => (None, -1),
    };
    (c.not_null, type_oid, typmod)
}

/// The schema of a table's files: [`table_schema`] with each column's stored name. Every
/// request to a worker (scans, writes) speaks in these names.
pub fn stored_schema(columns: &[ColumnDef]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.stored_name, arrow_type(&c.sql_type), true))
            .collect::<Vec<_>>(),
    ))
}

/// Each column's stored name, in declaration order.
pub fn stored_names(columns: &[ColumnDef]) -> Vec<String> {
    columns.iter().map(|c| c.stored_name.clone()).collect()
}

/// The Arrow schema of a table: every column nullable, in declaration order.
pub fn table_schema(columns: &[ColumnDef]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| {
                Field::new(&c.name, arrow_type(&c.sql_type), true).with_metadata(marks(&c.sql_type))
            })
            .collect::<Vec<_>>(),
    ))
}

/// The field metadata key naming the PostgreSQL type of a text column that holds a uuid,
/// json or jsonb; arrow-pg reads it (as `PG_TEXT_TYPE_KEY`) to describe and encode the
/// column as that type.
pub const PG_TEXT_TYPE_KEY: &str = "pg.text_type";

/// The field metadata key holding the `atttypmod` of a marked `bpchar` column (its length
/// plus 4); arrow-pg reads it (as `PG_TYPMOD_KEY`) to describe the column and to pad its
/// values to that length.
pub const PG_TYPMOD_KEY: &str = "pg.typmod";

/// The PostgreSQL name of a type Shoal holds as marked text.
pub fn text_type_name(t: &SqlType) -> Option<&'static str> {
    match t {
        SqlType::Uuid => Some("uuid"),
        SqlType::Json => Some("json"),
        SqlType::Jsonb => Some("jsonb"),
        SqlType::Char { .. } => Some("bpchar"),
        _ => None,
    }
}

/// The field metadata that tells arrow-pg (and `sql_type_of`) the PostgreSQL type of a
/// column held as text: its [`text_type_name`], and a `char(n)`'s typmod.
pub fn marks(t: &SqlType) -> std::collections::HashMap<String, String> {
    let mut marks = std::collections::HashMap::new();
    if let Some(name) = text_type_name(t) {
        marks.insert(PG_TEXT_TYPE_KEY.to_string(), name.to_string());
    }
    if let SqlType::Char { len } = t {
        marks.insert(PG_TYPMOD_KEY.to_string(), char_typmod(*len).to_string());
    }
    marks
}

/// The `atttypmod` of `char(len)`.
pub fn char_typmod(len: u32) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX - 4).saturating_add(4)
}

/// The length of a field marked `bpchar`, from its typmod; `None` when it has none.
pub fn char_length(field: &Field) -> Option<u32> {
    let typmod: i64 = field.metadata().get(PG_TYPMOD_KEY)?.parse().ok()?;
    u32::try_from(typmod - 4).ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests;
