//! `uuid` values as PostgreSQL reads and prints them. A `uuid` column holds the canonical
//! text (lowercase, hyphenated 8-4-4-4-12), so equal uuids compare equal as text and sort
//! as PostgreSQL sorts them (by bytes).

/// PostgreSQL's `uuid_in`: 32 hex digits, optionally in braces, with a hyphen allowed after
/// any group of four; the canonical text, or `None` when `text` is no uuid.
pub fn canonical(text: &str) -> Option<String> {
    let inner = match text.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}')?,
        None => text,
    };
    let bytes = inner.as_bytes();
    let mut hex = Vec::with_capacity(32);
    let mut i = 0;
    for byte in 0..16 {
        let pair = bytes.get(i..i + 2)?;
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        hex.extend(pair.iter().map(u8::to_ascii_lowercase));
        i += 2;
        if byte % 2 == 1 && byte < 15 && bytes.get(i) == Some(&b'-') {
            i += 1;
        }
    }
    if i != bytes.len() {
        return None;
    }
    let hex = String::from_utf8(hex).ok()?;
    Some(hyphenated(&hex))
}

/// The canonical text of a uuid's 16 bytes (its binary form).
pub fn from_bytes(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hyphenated(&hex)
}

/// 32 lowercase hex digits as 8-4-4-4-12.
fn hyphenated(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The error PostgreSQL gives for text that is no uuid (SQLSTATE 22P02).
pub fn invalid_message(text: &str) -> String {
    format!("invalid input syntax for type uuid: \"{text}\"")
}

#[cfg(test)]
mod tests;
