//! SHOAL: a process-wide observer of the errors the server sends, for metrics (errors by
//! SQLSTATE class). Errors reach the client from several places (a failed message, a failed
//! statement of a simple-query batch, a failed Execute); each calls [`error_sent`].

use std::sync::OnceLock;

static ERROR_OBSERVER: OnceLock<fn(&str)> = OnceLock::new();

/// Sets the function called with the SQLSTATE of every ErrorResponse sent; the first call wins.
pub fn set_error_observer(observer: fn(&str)) {
    let _ = ERROR_OBSERVER.set(observer);
}

pub(crate) fn error_sent(code: &str) {
    if let Some(observer) = ERROR_OBSERVER.get() {
        observer(code);
    }
}
