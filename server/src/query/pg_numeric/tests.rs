use super::*;

#[test]
fn a_dividend_widens_to_scale_12_within_38_digits() {
    assert_eq!(
        widened(&DataType::Decimal128(2, 1), 0),
        Some(DataType::Decimal128(13, 12))
    );
    // Only as far as Arrow's multiplication by 10^(4 + divisor scale) stays within 38 digits.
    assert_eq!(
        widened(&DataType::Decimal128(21, 1), 6),
        Some(DataType::Decimal128(28, 8))
    );
    assert_eq!(widened(&DataType::Decimal128(33, 2), 2), None);
    assert_eq!(widened(&DataType::Decimal128(38, 4), 0), None);
    assert_eq!(widened(&DataType::Decimal128(20, 12), 0), None);
    assert_eq!(widened(&DataType::Decimal128(5, -120), 0), None);
    assert_eq!(widened(&DataType::Float64, 0), None);
}

#[tokio::test]
async fn numeric_quotients_keep_sixteen_digits() {
    let mut config = datafusion::prelude::SessionConfig::new();
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    let ctx = datafusion::prelude::SessionContext::new_with_config(config);
    ctx.add_analyzer_rule(PgNumericDivision::rule());
    let batches = ctx
        .sql("SELECT 10.0 / 4 AS a, 1.0 / 3 AS b, 7.5 / 2.5 AS c, 1 / 3 AS d, 12345678901234567890.5 / 0.000001 AS e, 2.0 / 3 AS f, -2.0 / 3 AS g, CAST(2.00 AS decimal(38,4)) / CAST(3 AS decimal(38,4)) AS h")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("2.5000000000000000"), "{text}");
    assert!(text.contains("0.3333333333333333"), "{text}");
    assert!(text.contains("3.0000000000000000"), "{text}");
    // A large dividend over a small divisor still fits (the widening leaves it room).
    assert!(text.contains("12345678901234567890500000."), "{text}");
    // Rounded half away from zero, as PostgreSQL rounds (Arrow truncates), also where the
    // dividend has no room to widen (h: 8 digits, as Arrow types it).
    assert!(text.contains("| 0.6666666666666667 "), "{text}");
    assert!(text.contains("| -0.6666666666666667 "), "{text}");
    assert!(text.contains("| 0.66666667 "), "{text}");
    // Integers still divide as integers.
    assert!(text.contains("| 0 "), "{text}");
}
