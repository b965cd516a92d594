//! `json` and `jsonb` values as PostgreSQL reads, stores and prints them.
//!
//! A `jsonb` column holds [`Json::to_jsonb_text`] of the value: object keys ordered by length
//! then bytes with the last of duplicate keys kept, numbers as PostgreSQL's `numeric` prints
//! them (`1e3` is `1000`, `1.50` stays `1.50`), `", "` and `": "` between items. Two equal
//! jsonb values therefore hold the same text (numbers aside: `1.0` and `1` print apart, as
//! in PostgreSQL, but [`Json::contains`] and [`Json::equals`] compare them as numbers). A
//! `json` column keeps the text it was given, checked by [`validate`].

use std::cmp::Ordering;
use std::fmt::Write;

/// A parsed JSON value. Objects keep their members in input order until [`Json::into_jsonb`]
/// orders them.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number as `numeric` prints it.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Why text is not JSON, worded as PostgreSQL's DETAIL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// PostgreSQL's SQLSTATE: 22P02 for bad syntax, 22P05 for `\u0000` in jsonb.
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: String,
}

/// Values nested deeper than this are refused (PostgreSQL stops at its stack depth limit);
/// the parser recurses, and no input may take the server down.
const MAX_DEPTH: usize = 256;

fn syntax(detail: String) -> JsonError {
    JsonError {
        sqlstate: "22P02",
        message: "invalid input syntax for type json".into(),
        detail,
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// jsonb refuses `\u0000`; json keeps its text and only checks it.
    for_jsonb: bool,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        self.pos += rest.len() - trimmed.len();
    }

    /// The token at the cursor as PostgreSQL's lexer would cut it, for an error message.
    fn token(&self) -> String {
        let rest = self.rest();
        let first = rest.chars().next().unwrap_or(' ');
        if "{}[],:\"".contains(first) {
            return first.to_string();
        }
        rest.chars()
            .take_while(|c| !" \t\n\r{}[],:\"".contains(*c))
            .collect()
    }

    fn unexpected(&self, expected: &str) -> JsonError {
        if self.rest().is_empty() {
            return syntax("The input string ended unexpectedly.".into());
        }
        let token = self.token();
        let first = token.chars().next().unwrap_or(' ');
        let lexically_valid = "{}[],:\"".contains(first)
            || matches!(token.as_str(), "true" | "false" | "null")
            || number_text(&token).is_some();
        if lexically_valid {
            syntax(format!("Expected {expected}, but found \"{token}\"."))
        } else {
            syntax(format!("Token \"{token}\" is invalid."))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError {
                sqlstate: "54001",
                message: "stack depth limit exceeded".into(),
                detail: format!("JSON values may nest at most {MAX_DEPTH} levels."),
            });
        }
        self.skip_ws();
        let rest = self.rest();
        match rest.as_bytes().first() {
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.rest().starts_with('}') {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_ws();
                    if !self.rest().starts_with('"') {
                        return Err(self.unexpected("string"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.rest().starts_with(':') {
                        return Err(self.unexpected("\":\""));
                    }
                    self.pos += 1;
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.skip_ws();
                    match self.rest().as_bytes().first() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(self.unexpected("\",\" or \"}\"")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.rest().starts_with(']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.rest().as_bytes().first() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.unexpected("\",\" or \"]\"")),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            None => Err(self.unexpected("JSON value")),
            Some(_) => {
                let token = self.token();
                let value = match token.as_str() {
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    "null" => Json::Null,
                    t => match number_text(t) {
                        Some(n) => Json::Number(n),
                        None => return Err(self.unexpected("JSON value")),
                    },
                };
                self.pos += token.len();
                Ok(value)
            }
        }
    }

    /// A string at the cursor (which is at its opening quote), unescaped.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let code = four_hex(&mut chars)?;
                            let code = if (0xD800..0xDC00).contains(&code) {
                                let low_follows = matches!(chars.next(), Some((_, '\\')))
                                    && matches!(chars.next(), Some((_, 'u')));
                                let low = if low_follows {
                                    four_hex(&mut chars)?
                                } else {
                                    0
                                };
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(syntax(
                                        "Unicode high surrogate must not follow a high surrogate."
                                            .into(),
                                    ));
                                }
                                0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&code) {
                                return Err(syntax(
                                    "Unicode low surrogate must follow a high surrogate.".into(),
                                ));
                            } else {
                                code
                            };
                            if code == 0 && self.for_jsonb {
                                return Err(JsonError {
                                    sqlstate: "22P05",
                                    message: "unsupported Unicode escape sequence".into(),
                                    detail: "\\u0000 cannot be converted to text.".into(),
                                });
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        other => {
                            return Err(syntax(format!(
                                "Escape sequence \"\\{other}\" is invalid."
                            )))
                        }
                    }
                }
                c if (c as u32) < 0x20 => {
                    return Err(syntax(format!(
                        "Character with value 0x{:02x} must be escaped.",
                        c as u32
                    )))
                }
                c => out.push(c),
            }
        }
        self.pos = self.text.len();
        Err(syntax("The input string ended unexpectedly.".into()))
    }
}

/// The four hex digits after `\u`.
fn four_hex(chars: &mut std::str::CharIndices<'_>) -> Result<u32, JsonError> {
    let digits: String = chars.take(4).map(|(_, c)| c).collect();
    u32::from_str_radix(&digits, 16)
        .ok()
        .filter(|_| digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| syntax("\"\\u\" must be followed by four hexadecimal digits.".into()))
}

/// JSON number text (`-?int(.frac)?([eE][+-]?digits)?`, no leading zeros) as PostgreSQL's
/// `numeric` prints it; `None` when `t` is not a JSON number.
fn number_text(t: &str) -> Option<String> {
    let (negative, unsigned) = match t.strip_prefix('-') {
        Some(u) => (true, u),
        None => (false, t),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    if frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let exp: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(digits) || digits.len() > 6 {
                return None;
            }
            e.parse().ok()?
        }
    };
    let frac = frac.unwrap_or("");
    // The value is `digits` × 10^-scale.
    let digits = format!("{int}{frac}");
    let scale = frac.len() as i64 - exp;
    let mut out = String::new();
    if scale <= 0 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (-scale) as usize));
    } else {
        let scale = scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (i, f) = padded.split_at(padded.len() - scale);
        out.push_str(i);
        out.push('.');
        out.push_str(f);
    }
    let trimmed = out.trim_start_matches('0');
    let mut out = if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("0{trimmed}")
    } else {
        trimmed.to_string()
    };
    if negative && out.bytes().any(|b| matches!(b, b'1'..=b'9')) {
        out.insert(0, '-');
    }
    Some(out)
}

fn parse_with(text: &str, for_jsonb: bool) -> Result<Json, JsonError> {
    let mut p = Parser {
        text,
        pos: 0,
        for_jsonb,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if !p.rest().is_empty() {
        return Err(p.unexpected("end of input"));
    }
    Ok(value)
}

/// Reads `text` as a `jsonb` value (PostgreSQL's `jsonb_in`).
pub fn parse(text: &str) -> Result<Json, JsonError> {
    parse_with(text, true).map(Json::into_jsonb)
}

/// Checks `text` as PostgreSQL's `json_in` does; the `json` type keeps the text itself.
pub fn validate(text: &str) -> Result<(), JsonError> {
    parse_with(text, false).map(|_| ())
}

/// `text` as a `jsonb` column stores it.
pub fn jsonb_text(text: &str) -> Result<String, JsonError> {
    parse(text).map(|v| v.to_jsonb_text())
}

fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Compares two `numeric` texts by value.
fn number_cmp(a: &str, b: &str) -> Ordering {
    let parse = |s: &str| -> (bool, String, String) {
        let (neg, u) = match s.strip_prefix('-') {
            Some(u) => (true, u),
            None => (false, s),
        };
        let (i, f) = u.split_once('.').unwrap_or((u, ""));
        let i = i.trim_start_matches('0').to_string();
        let f = f.trim_end_matches('0').to_string();
        (neg && !(i.is_empty() && f.is_empty()), i, f)
    };
    let (na, ia, fa) = parse(a);
    let (nb, ib, fb) = parse(b);
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(&ib))
        .then_with(|| fa.cmp(&fb));
    match (na, nb) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// Appends `s` as a JSON string literal, escaped as PostgreSQL's `escape_json`.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Json {
    /// The value with every object's keys in jsonb order, the last of duplicates kept.
    pub fn into_jsonb(self) -> Json {
        match self {
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_jsonb).collect()),
            Json::Object(members) => {
                let mut sorted: Vec<(String, Json)> = Vec::with_capacity(members.len());
                // A stable sort keeps duplicates in input order; the last one wins.
                let mut members: Vec<(String, Json)> = members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_jsonb()))
                    .collect();
                members.sort_by(|a, b| key_order(&a.0, &b.0));
                for (k, v) in members {
                    match sorted.last_mut() {
                        Some(last) if last.0 == k => last.1 = v,
                        _ => sorted.push((k, v)),
                    }
                }
                Json::Object(sorted)
            }
            scalar => scalar,
        }
    }

    /// The value as `jsonb` prints it.
    pub fn to_jsonb_text(&self) -> String {
        let mut out = String::new();
        self.write_jsonb(&mut out);
        out
    }

    fn write_jsonb(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_jsonb(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_string(out, k);
                    out.push_str(": ");
                    v.write_jsonb(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as `->>` gives it: a string unquoted, JSON null as SQL NULL, anything else
    /// as jsonb prints it.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_jsonb_text()),
        }
    }

    /// `jsonb_typeof`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// `->` with a key: the member's value; `None` when this is no object or lacks the key.
    pub fn get_key(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    /// `->` with an index: the element, counting from the end when negative. As in
    /// PostgreSQL, a scalar is an array of itself here (`'2'::jsonb -> 0` is `2`).
    pub fn get_index(&self, index: i64) -> Option<&Json> {
        match self {
            Json::Array(items) => {
                let len = items.len() as i64;
                let i = if index < 0 { len + index } else { index };
                usize::try_from(i).ok().and_then(|i| items.get(i))
            }
            Json::Object(_) => None,
            scalar => matches!(index, 0 | -1).then_some(scalar),
        }
    }

    /// `#>` with a path: each step a key, or an index into an array.
    pub fn get_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Json> {
        let mut at = self;
        for step in path {
            let step = step.as_ref();
            at = match at {
                Json::Object(_) => at.get_key(step)?,
                Json::Array(_) => at.get_index(step.trim().parse().ok()?)?,
                // A path does not step into a scalar (unlike `->`).
                _ => return None,
            };
        }
        Some(at)
    }

    /// `?`: a top-level key, or a string element of an array, or the string itself.
    pub fn has_key(&self, key: &str) -> bool {
        match self {
            Json::Object(members) => members.iter().any(|(k, _)| k == key),
            Json::Array(items) => items
                .iter()
                .any(|v| matches!(v, Json::String(s) if s == key)),
            Json::String(s) => s == key,
            _ => false,
        }
    }

    /// `||`: two objects merge (the right one's keys win); anything else concatenates as
    /// arrays, a non-array taken as an array of itself.
    pub fn concat(self, right: Json) -> Json {
        match (self, right) {
            (Json::Object(mut a), Json::Object(b)) => {
                a.extend(b);
                Json::Object(a).into_jsonb()
            }
            (a, b) => {
                let items = |v: Json| match v {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                let mut out = items(a);
                out.extend(items(b));
                Json::Array(out)
            }
        }
    }

    /// `- 'key'`: an object without the key, an array without the strings equal to it.
    pub fn delete_key(self, key: &str) -> Result<Json, &'static str> {
        match self {
            Json::Object(members) => Ok(Json::Object(
                members.into_iter().filter(|(k, _)| k != key).collect(),
            )),
            Json::Array(items) => Ok(Json::Array(
                items
                    .into_iter()
                    .filter(|v| !matches!(v, Json::String(s) if s == key))
                    .collect(),
            )),
            _ => Err("cannot delete from scalar"),
        }
    }

    /// `- n`: an array without its element `n` (from the end when negative).
    pub fn delete_index(self, index: i64) -> Result<Json, &'static str> {
        match self {
            Json::Array(mut items) => {
                let len = items.len() as i64;
                let i = if index < 0 { len + index } else { index };
                if (0..len).contains(&i) {
                    items.remove(i as usize);
                }
                Ok(Json::Array(items))
            }
            Json::Object(_) => Err("cannot delete from object using integer index"),
            _ => Err("cannot delete from scalar"),
        }
    }

    /// `jsonb_set`: the value with the element at `path` replaced by `new` (or added, when
    /// `create` and only the last step is missing: a key to an object, an element before
    /// the start or after the end of an array); unchanged when an earlier step is missing.
    pub fn set_path(self, path: &[String], new: Json, create: bool) -> Result<Json, &'static str> {
        if !matches!(self, Json::Object(_) | Json::Array(_)) {
            return Err("cannot set path in scalar");
        }
        Ok(self.set_at(path, new, create))
    }

    fn set_at(self, path: &[String], new: Json, create: bool) -> Json {
        let Some((step, rest)) = path.split_first() else {
            return new;
        };
        match self {
            Json::Object(mut members) => {
                match members.iter().position(|(k, _)| k == step) {
                    Some(i) => {
                        let old = std::mem::replace(&mut members[i].1, Json::Null);
                        members[i].1 = old.set_at(rest, new, create);
                    }
                    None if rest.is_empty() && create => {
                        members.push((step.clone(), new));
                        return Json::Object(members).into_jsonb();
                    }
                    None => {}
                }
                Json::Object(members)
            }
            Json::Array(mut items) => {
                let Ok(index) = step.trim().parse::<i64>() else {
                    return Json::Array(items);
                };
                let len = items.len() as i64;
                let i = if index < 0 { len + index } else { index };
                if (0..len).contains(&i) {
                    let old = std::mem::replace(&mut items[i as usize], Json::Null);
                    items[i as usize] = old.set_at(rest, new, create);
                } else if rest.is_empty() && create {
                    if i < 0 {
                        items.insert(0, new);
                    } else {
                        items.push(new);
                    }
                }
                Json::Array(items)
            }
            scalar => scalar,
        }
    }

    /// `jsonb_strip_nulls`: object members whose value is null removed, at every depth.
    pub fn strip_nulls(self) -> Json {
        match self {
            Json::Object(members) => Json::Object(
                members
                    .into_iter()
                    .filter(|(_, v)| *v != Json::Null)
                    .map(|(k, v)| (k, v.strip_nulls()))
                    .collect(),
            ),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::strip_nulls).collect()),
            scalar => scalar,
        }
    }

    /// `jsonb_pretty`: one member or element per line, indented by four spaces.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write_pretty(&mut out, 0);
        out
    }

    fn write_pretty(&self, out: &mut String, depth: usize) {
        let indent = |out: &mut String, d: usize| out.push_str(&"    ".repeat(d));
        // As PostgreSQL's: even an empty container spans two lines (`[` and `]`).
        let (open, close, items): (char, char, Vec<(Option<&String>, &Json)>) = match self {
            Json::Array(items) => ('[', ']', items.iter().map(|v| (None, v)).collect()),
            Json::Object(members) => (
                '{',
                '}',
                members.iter().map(|(k, v)| (Some(k), v)).collect(),
            ),
            other => return other.write_jsonb(out),
        };
        out.push(open);
        out.push('\n');
        for (i, (key, v)) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            indent(out, depth + 1);
            if let Some(k) = key {
                write_string(out, k);
                out.push_str(": ");
            }
            v.write_pretty(out, depth + 1);
        }
        if !items.is_empty() {
            out.push('\n');
        }
        indent(out, depth);
        out.push(close);
    }

    /// jsonb equality: as the texts, with numbers compared by value.
    pub fn equals(&self, other: &Json) -> bool {
        match (self, other) {
            (Json::Number(a), Json::Number(b)) => number_cmp(a, b) == Ordering::Equal,
            (Json::Array(a), Json::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Json::Object(a), Json::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.equals(vb))
            }
            (a, b) => a == b,
        }
    }

    /// `@>`, PostgreSQL's containment: an object contains an object whose every key it has
    /// with a containing value; an array contains an array whose every element some element
    /// contains, and at the top level a scalar it holds; scalars contain equal scalars.
    pub fn contains(&self, other: &Json) -> bool {
        self.contains_at(other, true)
    }

    fn contains_at(&self, other: &Json, top: bool) -> bool {
        match (self, other) {
            (Json::Object(_), Json::Object(want)) => want.iter().all(|(k, v)| {
                self.get_key(k)
                    .is_some_and(|mine| mine.contains_at(v, false))
            }),
            (Json::Array(items), Json::Array(want)) => want.iter().all(|w| {
                items.iter().any(|mine| match (mine, w) {
                    (Json::Array(_), Json::Array(_)) | (Json::Object(_), Json::Object(_)) => {
                        mine.contains_at(w, false)
                    }
                    _ => mine.equals(w),
                })
            }),
            (Json::Array(items), scalar) if top && !matches!(scalar, Json::Object(_)) => {
                items.iter().any(|mine| mine.equals(scalar))
            }
            (Json::Array(_) | Json::Object(_), _) | (_, Json::Array(_) | Json::Object(_)) => false,
            (a, b) => a.equals(b),
        }
    }
}

#[cfg(test)]
mod tests;
