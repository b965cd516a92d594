use super::*;

fn iv(months: i32, days: i32, micros: i64) -> IntervalMonthDayNano {
    IntervalMonthDayNano::new(months, days, micros * 1000)
}

#[test]
fn multiplies_as_postgresql() {
    // 2 * '1 hour' = '02:00:00'
    assert_eq!(
        multiply(iv(0, 0, 3_600_000_000), 2.0),
        Some(iv(0, 0, 7_200_000_000))
    );
    // '1 month' * 1.5 = '1 mon 15 days'
    assert_eq!(multiply(iv(1, 0, 0), 1.5), Some(iv(1, 15, 0)));
    // '1 day' * 0.5 = '12:00:00'
    assert_eq!(multiply(iv(0, 1, 0), 0.5), Some(iv(0, 0, 43_200_000_000)));
    // '1 day' / 3 = '08:00:00'
    assert_eq!(
        multiply(iv(0, 1, 0), 1.0 / 3.0),
        Some(iv(0, 0, 28_800_000_000))
    );
    assert_eq!(multiply(iv(0, 1, 0), f64::INFINITY), None);
}
