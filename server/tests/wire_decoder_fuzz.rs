//! Property tests for the frontend message decoder (the vendored pgwire): whatever bytes a
//! client sends, decoding returns a message, "need more bytes" or an error, and never
//! panics. Bounded: a fixed number of cases per property, so CI time is fixed.

use bytes::{BufMut, BytesMut};
use datafusion_postgres::pgwire::messages::{
    DecodeContext, PgWireFrontendMessage, ProtocolVersion,
};
use proptest::prelude::*;

/// Decoder state after a completed startup: every message is a typed frontend message.
fn after_startup() -> DecodeContext {
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    ctx.awaiting_frontend_startup = false;
    ctx
}

/// Decodes `bytes` message by message until it needs more input or fails, moving through the
/// connection's states as the server's codec does; `fresh`: from a new connection's first
/// byte, else after startup.
fn decode_all(bytes: &[u8], fresh: bool) -> usize {
    let mut ctx = after_startup();
    ctx.awaiting_frontend_ssl = fresh;
    ctx.awaiting_frontend_startup = fresh;
    let mut buf = BytesMut::from(bytes);
    let mut messages = 0;
    loop {
        let before = buf.len();
        match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(PgWireFrontendMessage::SslNegotiation(_))) if buf.len() == before => {
                // Decided from a peek at the first bytes: the startup message reads them next.
                ctx.awaiting_frontend_ssl = false;
            }
            Ok(Some(m)) => {
                messages += 1;
                if ctx.awaiting_frontend_ssl {
                    ctx.awaiting_frontend_ssl = false;
                } else if matches!(m, PgWireFrontendMessage::Startup(_)) {
                    ctx.awaiting_frontend_startup = false;
                }
                // A decoded message consumed bytes: no endless loop on the same input.
                assert!(buf.len() < before, "a message consumed nothing");
            }
            Ok(None) | Err(_) => return messages,
        }
    }
}

/// A message with a correct length header around `body`.
fn framed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = BytesMut::new();
    m.put_u8(tag);
    m.put_i32(body.len() as i32 + 4);
    m.put_slice(body);
    m.to_vec()
}

const TAGS: &[u8] = b"BPEDCQSHFXdcfp";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes, at any point of a connection.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes, false);
        decode_all(&bytes, true);
    }

    /// Well-framed messages of every frontend type with arbitrary bodies: the length is
    /// right, the contents are not.
    #[test]
    fn framed_garbage_never_panics(
        tag in proptest::sample::select(TAGS),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = framed(tag, &body);
        // Followed by a valid Sync, which must still decode after a message that did.
        bytes.extend(framed(b'S', &[]));
        decode_all(&bytes, false);
    }

    /// A well-formed Bind, its counts and lengths then damaged at one offset.
    #[test]
    fn damaged_bind_never_panics(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..6),
        formats in proptest::collection::vec(0i16..2, 0..4),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut body = BytesMut::new();
        body.put_slice(b"\0\0");
        body.put_u16(formats.len() as u16);
        for f in &formats {
            body.put_i16(*f);
        }
        body.put_u16(values.len() as u16);
        for v in &values {
            body.put_i32(v.len() as i32);
            body.put_slice(v);
        }
        body.put_u16(formats.len() as u16);
        for f in &formats {
            body.put_i16(*f);
        }
        let mut body = body.to_vec();
        let intact = decode_all(&framed(b'B', &body), false);
        prop_assert_eq!(intact, 1);
        let i = at.index(body.len());
        body[i] = byte;
        decode_all(&framed(b'B', &body), false);
        // Cut short, with the length header telling the truth about the shorter body.
        decode_all(&framed(b'B', &body[..i]), false);
    }
}
