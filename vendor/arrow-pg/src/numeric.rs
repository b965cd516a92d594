//! SHOAL: PostgreSQL `numeric` from an Arrow decimal's `i128` and scale, in text and binary.
//!
//! Upstream converted through `rust_decimal`, whose 96-bit mantissa holds 28 digits: a
//! `Decimal128(38, s)` value with more significant digits (an `avg(bigint)` of large values at
//! 16 fractional digits, a `sum(bigint)` beyond 7.9e28) failed with "Numeric value conversion
//! failed" instead of being sent. Every `Decimal128` value fits here.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{to_sql_checked, IsNull, ToSql, Type};

/// A decimal value: `value * 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgNumeric {
    pub value: i128,
    pub scale: u32,
}

impl PgNumeric {
    /// A `Decimal128` value at its Arrow scale. A negative scale (the literal `1e3` is 1 at
    /// scale -3) is multiplied out to scale 0, as PostgreSQL shows `1000`; `None` when that
    /// value does not fit in an `i128`. (A scale taken `as u32` from a negative `i8` asked
    /// the formatter for billions of digits and panicked.)
    pub fn from_decimal128(value: i128, scale: i8) -> Option<PgNumeric> {
        if scale >= 0 {
            return Some(PgNumeric {
                value,
                scale: u32::from(scale.unsigned_abs()),
            });
        }
        let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs()))?;
        Some(PgNumeric {
            value: value.checked_mul(factor)?,
            scale: 0,
        })
    }

    /// The digits of `|value|` split at the decimal point (the fraction `scale` digits long).
    fn parts(&self) -> (String, String) {
        let digits = self.value.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return (digits, String::new());
        }
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        (int.to_string(), frac.to_string())
    }

    /// PostgreSQL's text form: `-12.3400` (all `scale` fractional digits).
    pub fn to_text(&self) -> String {
        let (int, frac) = self.parts();
        let sign = if self.value < 0 { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }

    /// PostgreSQL's binary form: base-10000 digits with their weight, sign and display scale.
    pub fn to_binary(&self, out: &mut BytesMut) {
        let (int, frac) = self.parts();
        let int = int.trim_start_matches('0');
        // Integer digits grouped by 4 from the decimal point leftwards, fraction rightwards.
        let int_pad = (4 - int.len() % 4) % 4;
        let int = format!("{}{int}", "0".repeat(int_pad));
        let frac_pad = (4 - frac.len() % 4) % 4;
        let frac = format!("{frac}{}", "0".repeat(frac_pad));
        let group = |s: &[u8]| -> i16 {
            s.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'))
        };
        let int_groups: Vec<i16> = int.as_bytes().chunks(4).map(group).collect();
        let frac_groups: Vec<i16> = frac.as_bytes().chunks(4).map(group).collect();
        let mut weight = int_groups.len() as i16 - 1;
        let mut groups: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= leading as i16;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        out.put_i16(groups.len() as i16);
        out.put_i16(weight);
        out.put_u16(if self.value < 0 { 0x4000 } else { 0 });
        out.put_u16(self.scale as u16);
        for g in groups {
            out.put_i16(g);
        }
    }
}

impl ToSql for PgNumeric {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.to_binary(out);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

impl ToSqlText for PgNumeric {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.to_text().as_bytes());
        Ok(IsNull::No)
    }
}
