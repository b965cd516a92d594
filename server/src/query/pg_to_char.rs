//! `to_char(timestamp, pattern)` with PostgreSQL's patterns. DataFusion's `to_char` takes
//! chrono's `strftime` formats, so `to_char(ts, 'YYYY-MM-DD')` answered `YYYY-MM-DD`.
//! [`PgToChar`], an analyzer rule, translates a constant PostgreSQL pattern into chrono's
//! format; a pattern it cannot translate (`Q`, `J`, a padded `Month`, ...) fails with 0A000
//! instead of giving other text than PostgreSQL's.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::optimizer::AnalyzerRule;

/// PostgreSQL's numeric template patterns Shoal translates (in any case, as PostgreSQL reads
/// them), each with its chrono format and (after `FM`) its unpadded one.
const NUMERIC: &[(&str, &str, &str)] = &[
    ("HH24", "%H", "%-H"),
    ("HH12", "%I", "%-I"),
    ("IYYY", "%G", "%G"),
    ("YYYY", "%Y", "%Y"),
    ("DDD", "%j", "%-j"),
    ("HH", "%I", "%-I"),
    ("MI", "%M", "%-M"),
    ("SS", "%S", "%-S"),
    ("MS", "%3f", "%3f"),
    ("US", "%6f", "%6f"),
    ("YY", "%y", "%y"),
    ("MM", "%m", "%-m"),
    ("DD", "%d", "%-d"),
    ("IW", "%V", "%-V"),
];

/// Name patterns Shoal translates, in the one case whose output chrono writes (`Mon` is
/// `Mar`; `MON` and `mon` are not). An empty format: only after `FM` (PostgreSQL pads
/// `Month` and `Day` to nine characters).
const NAMES: &[(&str, &str, &str)] = &[
    ("Month", "", "%B"),
    ("Day", "", "%A"),
    ("Mon", "%b", "%b"),
    ("Dy", "%a", "%a"),
    ("AM", "%p", "%p"),
    ("PM", "%p", "%p"),
    ("am", "%P", "%P"),
    ("pm", "%P", "%P"),
    ("TZ", "%Z", "%Z"),
];

/// PostgreSQL patterns Shoal does not translate (in any case).
const UNSUPPORTED: &[&str] = &[
    "Y,YYY", "SSSSS", "MONTH", "SSSS", "IDDD", "A.M.", "P.M.", "B.C.", "A.D.", "DAY", "MON", "TZH",
    "TZM", "YYY", "IYY", "FF1", "FF2", "FF3", "FF4", "FF5", "FF6", "DY", "ID", "IY", "WW", "CC",
    "RM", "OF", "TH", "BC", "AD", "AM", "PM", "TZ", "Q", "J", "W", "D", "I", "Y",
];

/// The pattern `body` starts with: the longest of those PostgreSQL knows, with its length and
/// its formats (`None` for one Shoal does not translate).
fn pattern_at(body: &str) -> Option<(usize, Option<(&'static str, &'static str)>)> {
    let starts = |t: &str, any_case: bool| {
        body.get(..t.len()).is_some_and(|b| {
            if any_case {
                b.eq_ignore_ascii_case(t)
            } else {
                b == t
            }
        })
    };
    let supported = NUMERIC
        .iter()
        .filter(|(t, _, _)| starts(t, true))
        .chain(NAMES.iter().filter(|(t, _, _)| starts(t, false)))
        .max_by_key(|(t, _, _)| t.len());
    let unsupported = UNSUPPORTED
        .iter()
        .filter(|t| starts(t, true))
        .max_by_key(|t| t.len());
    match (supported, unsupported) {
        (Some((t, padded, unpadded)), u) if u.is_none_or(|u| u.len() <= t.len()) => {
            Some((t.len(), Some((*padded, *unpadded))))
        }
        (_, Some(u)) => Some((u.len(), None)),
        _ => None,
    }
}

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
        match pattern_at(body) {
            Some((len, Some((padded, unpadded)))) => {
                let format = if fill_mode { unpadded } else { padded };
                if format.is_empty() {
                    return Err(rest[..len + if fill_mode { 2 } else { 0 }].to_string());
                }
                out.push_str(format);
                rest = &body[len..];
            }
            Some((len, None)) => return Err(body[..len].to_string()),
            None => {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    push_literal(&mut out, c);
                }
                rest = chars.as_str();
            }
        }
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
         HH24, HH12, HH, MI, SS, MS, US, IYYY, IW in any case, and AM/PM, am/pm, Mon, Dy, \
         FMMonth, FMDay and TZ as written here)"
    ))
}

impl AnalyzerRule for PgToChar {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::rewrite_plan_expressions(plan, |e, _, _| {
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
    }

    fn name(&self) -> &str {
        "pg_to_char"
    }
}

#[cfg(test)]
mod tests;
