//! The column types Shoal stores, named as PostgreSQL names them.

use std::fmt;

use crate::error::{CatalogError, Result};

/// A column type as the user declared it. Stored in the catalog by its canonical name
/// (`Display`), so the persisted form never depends on Rust type names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Numeric {
        precision: u8,
        scale: i8,
    },
    Text,
    Varchar {
        max_len: Option<u32>,
    },
    /// `character(n)` (`char(n)`, `bpchar(n)`): held without its trailing spaces, so that
    /// comparisons ignore them as PostgreSQL's do, and padded to `len` characters on output.
    Char {
        len: u32,
    },
    Boolean,
    Date,
    Timestamp,
    TimestampTz,
    Bytea,
    Uuid,
    /// `json`: the text as given, checked to be JSON.
    Json,
    /// `jsonb`: the value in PostgreSQL's jsonb text form (see `types::json` in sql-functions).
    Jsonb,
    /// A one-dimensional array (`bigint[]`, `text[]`, ...).
    Array {
        element: ArrayElement,
    },
}

/// The element type of an array column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayElement {
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Text,
    Boolean,
}

impl ArrayElement {
    /// The element's SQL type.
    pub fn sql_type(self) -> SqlType {
        match self {
            ArrayElement::SmallInt => SqlType::SmallInt,
            ArrayElement::Integer => SqlType::Integer,
            ArrayElement::BigInt => SqlType::BigInt,
            ArrayElement::Real => SqlType::Real,
            ArrayElement::Double => SqlType::Double,
            ArrayElement::Text => SqlType::Text,
            ArrayElement::Boolean => SqlType::Boolean,
        }
    }

    /// The element type an array of `t` has, if Shoal stores such arrays.
    pub fn of(t: SqlType) -> Option<ArrayElement> {
        Some(match t {
            SqlType::SmallInt => ArrayElement::SmallInt,
            SqlType::Integer => ArrayElement::Integer,
            SqlType::BigInt => ArrayElement::BigInt,
            SqlType::Real => ArrayElement::Real,
            SqlType::Double => ArrayElement::Double,
            SqlType::Text => ArrayElement::Text,
            SqlType::Boolean => ArrayElement::Boolean,
            _ => return None,
        })
    }
}

impl SqlType {
    /// Parses a canonical or common PostgreSQL spelling (`int4`, `character varying(20)`, ...).
    pub fn parse(text: &str) -> Result<SqlType> {
        let t = text.trim().to_ascii_lowercase();
        // `bigint[]` (also `_int8`, PostgreSQL's name of the array type).
        let element = t
            .strip_suffix("[]")
            .or_else(|| t.strip_prefix('_').filter(|e| !e.contains('(')));
        if let Some(element) = element {
            let unsupported = || CatalogError::Invalid {
                message: format!("type \"{text}\" is not supported"),
            };
            if element.ends_with("[]") {
                return Err(unsupported());
            }
            return SqlType::parse(element)
                .ok()
                .and_then(ArrayElement::of)
                .map(|element| SqlType::Array { element })
                .ok_or_else(unsupported);
        }
        let (base, args) = match t.find('(') {
            Some(i) => {
                let inner = t[i + 1..].trim_end_matches(')').to_string();
                (t[..i].trim().to_string(), Some(inner))
            }
            None => (t.clone(), None),
        };
        let nums: Vec<i64> = match &args {
            Some(a) => a
                .split(',')
                .map(|s| s.trim().parse::<i64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| CatalogError::Invalid {
                    message: format!("bad type modifier in \"{text}\""),
                })?,
            None => vec![],
        };
        let ty = match base.as_str() {
            "smallint" | "int2" => SqlType::SmallInt,
            "integer" | "int" | "int4" => SqlType::Integer,
            "bigint" | "int8" => SqlType::BigInt,
            "real" | "float4" => SqlType::Real,
            "double precision" | "double" | "float8" => SqlType::Double,
            // float(p) as PostgreSQL: p binary digits, real up to 24, double up to 53.
            "float" => match nums.first() {
                None => SqlType::Double,
                Some(1..=24) => SqlType::Real,
                Some(25..=53) => SqlType::Double,
                Some(p) => {
                    return Err(CatalogError::TypeModifier {
                        message: format!(
                            "precision for type float must be between 1 and 53 bits, not {p}"
                        ),
                    })
                }
            },
            "numeric" | "decimal" => {
                let precision = nums.first().copied().unwrap_or(38);
                let scale = nums
                    .get(1)
                    .copied()
                    .unwrap_or(if nums.is_empty() { 10 } else { 0 });
                if !(1..=38).contains(&precision) || scale < 0 || scale > precision {
                    return Err(CatalogError::TypeModifier {
                        message: format!("NUMERIC precision {precision} must be between 1 and 38 and scale {scale} between 0 and precision"),
                    });
                }
                SqlType::Numeric {
                    precision: precision as u8,
                    scale: scale as i8,
                }
            }
            "text" => SqlType::Text,
            "varchar" | "character varying" => SqlType::Varchar {
                max_len: nums.first().map(|n| length(text, *n)).transpose()?,
            },
            // `char` alone is char(1), as in PostgreSQL.
            "char" | "character" => SqlType::Char {
                len: length(text, nums.first().copied().unwrap_or(1))?,
            },
            "bpchar" => match nums.first() {
                Some(n) => SqlType::Char {
                    len: length(text, *n)?,
                },
                None => {
                    return Err(CatalogError::Invalid {
                        message:
                            "type bpchar without a length is not supported: use char(n) or text"
                                .into(),
                    })
                }
            },
            "boolean" | "bool" => SqlType::Boolean,
            "date" => SqlType::Date,
            "timestamp" | "timestamp without time zone" => SqlType::Timestamp,
            "timestamptz" | "timestamp with time zone" => SqlType::TimestampTz,
            "bytea" => SqlType::Bytea,
            "uuid" => SqlType::Uuid,
            "jsonb" => SqlType::Jsonb,
            "json" => SqlType::Json,
            _ => {
                return Err(CatalogError::Invalid {
                    message: format!("type \"{text}\" is not supported"),
                })
            }
        };
        Ok(ty)
    }
}

/// A `varchar(n)` or `char(n)` length as a number (its bounds are `check_declared`'s, so
/// that a catalog an older version wrote still reads).
fn length(text: &str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| CatalogError::TypeModifier {
        message: format!("bad type modifier in \"{text}\""),
    })
}

/// PostgreSQL's bound of a `varchar(n)` or `char(n)` length.
const MAX_CHAR_LENGTH: u32 = 10 * 1024 * 1024;

impl SqlType {
    /// Checks a type a statement declares (a column, a cast) as PostgreSQL does: a
    /// `varchar(n)` or `char(n)` length is between 1 and 10485760 (22023 otherwise).
    pub fn check_declared(&self) -> Result<()> {
        let (name, n) = match self {
            SqlType::Varchar { max_len: Some(n) } => ("varchar", *n),
            SqlType::Char { len } => ("char", *len),
            _ => return Ok(()),
        };
        if n < 1 {
            return Err(CatalogError::TypeModifier {
                message: format!("length for type {name} must be at least 1"),
            });
        }
        if n > MAX_CHAR_LENGTH {
            return Err(CatalogError::TypeModifier {
                message: format!("length for type {name} cannot exceed {MAX_CHAR_LENGTH}"),
            });
        }
        Ok(())
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::SmallInt => write!(f, "smallint"),
            SqlType::Integer => write!(f, "integer"),
            SqlType::BigInt => write!(f, "bigint"),
            SqlType::Real => write!(f, "real"),
            SqlType::Double => write!(f, "double precision"),
            SqlType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            SqlType::Text => write!(f, "text"),
            SqlType::Varchar { max_len: Some(n) } => write!(f, "character varying({n})"),
            SqlType::Varchar { max_len: None } => write!(f, "character varying"),
            SqlType::Char { len } => write!(f, "character({len})"),
            SqlType::Boolean => write!(f, "boolean"),
            SqlType::Date => write!(f, "date"),
            SqlType::Timestamp => write!(f, "timestamp without time zone"),
            SqlType::TimestampTz => write!(f, "timestamp with time zone"),
            SqlType::Bytea => write!(f, "bytea"),
            SqlType::Uuid => write!(f, "uuid"),
            SqlType::Json => write!(f, "json"),
            SqlType::Jsonb => write!(f, "jsonb"),
            SqlType::Array { element } => write!(f, "{}[]", element.sql_type()),
        }
    }
}

#[cfg(test)]
mod tests;
