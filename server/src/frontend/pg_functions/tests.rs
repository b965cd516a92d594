use super::*;

#[test]
fn sizes_print_as_postgresql() {
    for (bytes, shown) in [
        (0, "0 bytes"),
        (10239, "10239 bytes"),
        (10240, "10 kB"),
        (123_456_789, "118 MB"),
        (-10240, "-10 kB"),
        (1_099_511_627_776, "1024 GB"),
        (i64::MAX, "8192 PB"),
    ] {
        assert_eq!(size_pretty(bytes), shown, "{bytes}");
    }
}

#[test]
fn regtypes_are_postgresqls() {
    assert_eq!(regtype("int4"), Some(23));
    assert_eq!(regtype("Integer"), Some(23));
    assert_eq!(regtype("pg_catalog.text"), Some(25));
    assert_eq!(regtype("double precision"), Some(701));
    assert_eq!(regtype("int4[]"), Some(1007));
    assert_eq!(regtype("hstore"), None);
}
