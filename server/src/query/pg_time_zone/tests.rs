use super::resolve_local;
use chrono::NaiveDate;

fn at(d: u32, m: u32, h: u32, min: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, m, d)
        .and_then(|x| x.and_hms_opt(h, min, 0))
        .unwrap()
}

#[test]
fn local_times_resolve_as_postgresql_resolves_them() {
    let ny = chrono_tz::America::New_York;
    let utc = |d, m, h, min| at(d, m, h, min).and_utc().timestamp_micros();
    // An ordinary winter time: UTC-5.
    assert_eq!(resolve_local(&ny, at(15, 1, 9, 0)), utc(15, 1, 14, 0));
    // 02:30 on 10 March does not exist: read with the offset before the change (-5).
    assert_eq!(resolve_local(&ny, at(10, 3, 2, 30)), utc(10, 3, 7, 30));
    // 01:30 on 3 November happens twice: the later one (-5).
    assert_eq!(resolve_local(&ny, at(3, 11, 1, 30)), utc(3, 11, 6, 30));
}
