//! The text form of a one-dimensional PostgreSQL array (`{1,2,NULL}`, `{"a b","c\"d"}`), as
//! COPY and array literals give it, read into an Arrow list of the column's element type.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, GenericListArray, StringBuilder};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};

/// Why an array's text is refused, as PostgreSQL says it (22P02, or 0A000 for what Shoal
/// does not store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayTextError {
    pub sqlstate: &'static str,
    pub message: String,
}

fn malformed(text: &str, detail: &str) -> ArrayTextError {
    ArrayTextError {
        sqlstate: "22P02",
        message: format!("malformed array literal: \"{text}\" ({detail})"),
    }
}

/// The elements of one array's text; `None` is an unquoted NULL.
pub fn elements(text: &str) -> Result<Vec<Option<String>>, ArrayTextError> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| {
            malformed(
                text,
                "Array value must start with \"{\" or dimension information.",
            )
        })?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            if out.is_empty() {
                return Ok(out);
            }
            return Err(malformed(text, "Unexpected end of input."));
        };
        if first == '{' {
            return Err(ArrayTextError {
                sqlstate: "0A000",
                message: "multidimensional arrays are not supported".into(),
            });
        }
        let mut value = String::new();
        let quoted = first == '"';
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(malformed(text, "Unexpected end of input.")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(malformed(text, "Unexpected end of input.")),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return Err(malformed(text, "Unexpected array element."));
                }
                chars.next();
                if c == '\\' {
                    match chars.next() {
                        Some(e) => value.push(e),
                        None => return Err(malformed(text, "Unexpected end of input.")),
                    }
                } else {
                    value.push(c);
                }
            }
            value = value.trim_end().to_string();
            if value.is_empty() {
                return Err(malformed(text, "Unexpected \",\" character."));
            }
        }
        out.push(if !quoted && value.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(value)
        });
        match chars.next() {
            None => return Ok(out),
            Some(',') => {}
            Some(_) => return Err(malformed(text, "Unexpected array element.")),
        }
    }
}

/// PostgreSQL's name of an element type, as its input errors say it.
fn pg_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Boolean => "boolean",
        _ => "text",
    }
}

/// Arrays' texts (one per row; `None` is a NULL array) as a list column of `element`s.
pub fn list_column<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    element: &DataType,
) -> Result<ArrayRef, ArrayTextError> {
    let mut items = StringBuilder::new();
    let mut offsets = vec![0i32];
    let mut nulls = Vec::new();
    let mut count = 0i32;
    for v in values {
        match v {
            None => nulls.push(false),
            Some(text) => {
                for e in elements(text)? {
                    items.append_option(e);
                    count += 1;
                }
                nulls.push(true);
            }
        }
        offsets.push(count);
    }
    let items = items.finish();
    let typed = arrow::compute::cast(&items, element).map_err(|e| ArrayTextError {
        sqlstate: "22P02",
        message: e.to_string(),
    })?;
    // An element the cast could not read is NULL where its text is not: PostgreSQL's error.
    if let Some(i) = (0..items.len()).find(|&i| !items.is_null(i) && typed.is_null(i)) {
        return Err(ArrayTextError {
            sqlstate: "22P02",
            message: format!(
                "invalid input syntax for type {}: \"{}\"",
                pg_name(element),
                items.value(i)
            ),
        });
    }
    let list = GenericListArray::<i32>::try_new(
        Arc::new(Field::new_list_field(element.clone(), true)),
        OffsetBuffer::new(offsets.into()),
        typed,
        Some(nulls.into()),
    )
    .map_err(|e| ArrayTextError {
        sqlstate: "XX000",
        message: e.to_string(),
    })?;
    debug_assert_eq!(list.len(), list.offsets().len() - 1);
    Ok(Arc::new(list))
}

#[cfg(test)]
mod tests;
