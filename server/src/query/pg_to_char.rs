//! `to_char(timestamp, pattern)` with PostgreSQL's patterns. DataFusion's `to_char` takes
//! chrono's `strftime` formats, so `to_char(ts, 'YYYY-MM-DD')` answered `YYYY-MM-DD`.
//! [`PgToChar`], an analyzer rule, translates a constant PostgreSQL pattern into chrono's
//! format; a pattern it cannot translate (`Q`, `J`, a padded `Month`, ...) fails with 0A000
//! instead of giving other text than PostgreSQL's.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::optimizer::AnalyzerRule;

/// PostgreSQL's template patterns Shoal translates, longest first, each with its chrono
/// format and (after `FM`) its unpadded one.
const PATTERNS: &[(&str, &str, &str)] = &[
    ("HH24", "%H", "%-H"),
    ("HH12", "%I", "%-I"),
    ("YYYY", "%Y", "%Y"),
    ("IYYY", "%G", "%G"),
    ("Month", "", "%B"),
    ("month", "", "%B"),
    ("Day", "", "%A"),
    ("day", "", "%A"),
    ("DDD", "%j", "%-j"),
    ("Mon", "%b", "%b"),
    ("Dy", "%a", "%a"),
    ("A.M.", "", ""),
    ("P.M.", "", ""),
    ("HH", "%I", "%-I"),
    ("MI", "%M", "%-M"),
    ("SS", "%S", "%-S"),
    ("MS", "%3f", "%3f"),
    ("US", "%6f", "%6f"),
    ("AM", "%p", "%p"),
    ("PM", "%p", "%p"),
    ("am", "%P", "%P"),
    ("pm", "%P", "%P"),
    ("YY", "%y", "%y"),
    ("MM", "%m", "%-m"),
    ("DD", "%d", "%-d"),
    ("IW", "%V", "%-V"),
    ("TZ", "%Z", "%Z"),
];

/// Letters that start a PostgreSQL pattern Shoal does not translate.
const UNSUPPORTED_START: &[&str] = &[
    "MONTH", "MON", "DAY", "DY", "Q", "J", "WW", "W", "D", "CC", "RM", "rm", "Y,YYY", "YYY", "IYY",
    "IY", "I", "SSSS", "OF", "TH", "th", "BC", "AD", "B.C.", "A.D.", "tz", "FF",
];

/// A PostgreSQL `to_char` pattern as a chrono format, or the part it cannot translate.
pub fn translate(pattern: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            // Literal text; `\"` is a quote inside it.
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            push_literal(&mut out, next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    other => push_literal(&mut out, other),
                }
            }
            rest = &quoted[end.min(quoted.len())..];
            continue;
        }
        let (fill_mode, body) = match rest.strip_prefix("FM") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        if let Some((token, padded, unpadded)) =
            PATTERNS.iter().find(|(t, _, _)| body.starts_with(t))
        {
            let format = if fill_mode { unpadded } else { padded };
            if format.is_empty() {
                return Err(if fill_mode {
                    format!("FM{token}")
                } else {
                    (*token).to_string()
                });
            }
            out.push_str(format);
            rest = &body[token.len()..];
            continue;
        }
        if let Some(token) = UNSUPPORTED_START.iter().find(|t| body.starts_with(*t)) {
            return Err((*token).to_string());
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            push_literal(&mut out, c);
        }
        rest = chars.as_str();
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[derive(Debug, Default)]
pub struct PgToChar;

impl PgToChar {
    pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
        Arc::new(PgToChar)
    }
}

/// DataFusion's `to_char` under another name, given a translated format: a plan analyzed
/// twice is translated once.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TranslatedToChar {
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for TranslatedToChar {
    fn name(&self) -> &str {
        "shoal_to_char"
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }
}

fn not_supported(token: &str) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "to_char pattern \"{token}\" is not supported (Shoal translates YYYY, YY, MM, DD, DDD, \
         HH24, HH12, HH, MI, SS, MS, US, AM/PM, Mon, Dy, FMMonth, FMDay, IYYY, IW and TZ)"
    ))
}

impl AnalyzerRule for PgToChar {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            p.map_expressions(|e| {
                e.transform_up(|e| {
                    let Expr::ScalarFunction(ScalarFunction { func, args }) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    if func.name() != "to_char" || args.len() != 2 {
                        return Ok(Transformed::no(e));
                    }
                    let pattern = match &args[1] {
                        Expr::Literal(
                            ScalarValue::Utf8(Some(p))
                            | ScalarValue::LargeUtf8(Some(p))
                            | ScalarValue::Utf8View(Some(p)),
                            _,
                        ) => p,
                        _ => return Ok(Transformed::no(e)),
                    };
                    let format = translate(pattern).map_err(|t| not_supported(&t))?;
                    let translated = ScalarUDF::new_from_impl(TranslatedToChar {
                        inner: Arc::clone(func),
                    });
                    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                        func: Arc::new(translated),
                        args: vec![args[0].clone(), lit(format)],
                    })))
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_to_char"
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn patterns_translate_to_chrono_formats() {
        assert_eq!(
            translate("YYYY-MM-DD HH24:MI:SS").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(translate("FMDD FMMonth YYYY").unwrap(), "%-d %B %Y");
        assert_eq!(translate("HH12:MI AM \"at\" Dy").unwrap(), "%I:%M %p at %a");
        assert_eq!(translate("100% MS").unwrap(), "100%% %3f");
        assert_eq!(translate("Q").unwrap_err(), "Q");
        assert_eq!(translate("Month").unwrap_err(), "Month");
    }
}
