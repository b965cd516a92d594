//! The vendored arrow-pg's `numeric` encoding (vendor/arrow-pg/src/numeric.rs), tested here
//! because vendored crates are not workspace members.

use arrow_pg::numeric::PgNumeric;
use bytes::BytesMut;
use rust_decimal::Decimal;

fn n(value: i128, scale: u32) -> PgNumeric {
    PgNumeric { value, scale }
}

#[test]
fn text() {
    assert_eq!(n(12345, 2).to_text(), "123.45");
    assert_eq!(n(-5, 3).to_text(), "-0.005");
    assert_eq!(n(0, 16).to_text(), "0.0000000000000000");
    assert_eq!(n(7, 0).to_text(), "7");
    assert_eq!(
        n(i128::MAX, 16).to_text(),
        "17014118346046923173168.7303715884105727"
    );
}

/// The binary form decodes (with rust_decimal, as a client would) to the same value, for
/// every value rust_decimal can hold; PostgreSQL's own trailing-zero stripping is kept.
#[test]
fn binary_decodes_to_the_value() {
    use postgres_types::{FromSql, Type};
    for (v, s) in [
        (12345i128, 2u32),
        (-5, 3),
        (1, 4),
        (100000000, 0),
        (15, 1),
        (123456789012345678, 9),
        (-1, 16),
        (79228162514264337593543950335, 0),
        (-7922816251426433759354395033, 16),
    ] {
        let mut ours = BytesMut::new();
        n(v, s).to_binary(&mut ours);
        let decoded = Decimal::from_sql(&Type::NUMERIC, &ours).map_err(|e| e.to_string());
        assert_eq!(
            decoded,
            Ok(Decimal::from_i128_with_scale(v, s)),
            "{v} scale {s}"
        );
    }
    // 10^8 as PostgreSQL sends it: one base-10000 digit, weight 2.
    let mut ours = BytesMut::new();
    n(100_000_000, 0).to_binary(&mut ours);
    assert_eq!(ours.as_ref(), &[0, 1, 0, 2, 0, 0, 0, 0, 0, 1]);
}

/// Zero keeps its display scale, as PostgreSQL's `numeric_send` writes it (rust_decimal
/// drops it): no digits, weight 0, positive, dscale 4.
#[test]
fn zero_keeps_its_scale() {
    let mut ours = BytesMut::new();
    n(0, 4).to_binary(&mut ours);
    assert_eq!(ours.as_ref(), &[0, 0, 0, 0, 0, 0, 0, 4]);
}
