use super::*;

#[test]
fn sets_shows_and_refuses_as_postgresql() {
    let mut s = Settings::default();
    assert_eq!(s.get("DATESTYLE").unwrap().as_deref(), Some("ISO, MDY"));
    s.set("datestyle", Some("german"), false).unwrap();
    assert_eq!(s.get("DateStyle").unwrap().as_deref(), Some("German, DMY"));
    s.set("datestyle", Some("iso"), false).unwrap();
    assert_eq!(s.get("DateStyle").unwrap().as_deref(), Some("ISO, DMY"));
    s.set("DateStyle", Some("sql, dmy"), false).unwrap();
    assert_eq!(s.get("datestyle").unwrap().as_deref(), Some("SQL, DMY"));
    assert_eq!(
        s.set("datestyle", Some("nope"), false).unwrap_err().code,
        "22023"
    );
    s.set("statement_timeout", Some("1500"), true).unwrap();
    assert_eq!(
        s.get("statement_timeout").unwrap().as_deref(),
        Some("1500ms")
    );
    s.end_local();
    assert_eq!(s.get("statement_timeout").unwrap().as_deref(), Some("0"));
    assert_eq!(
        s.set("server_version", Some("16"), false).unwrap_err().code,
        "55P02"
    );
    assert_eq!(
        s.set("no_such_thing", Some("1"), false).unwrap_err().code,
        "42704"
    );
    assert_eq!(
        s.set("work_mem", Some("1MB"), false).unwrap_err().code,
        "0A000"
    );
    // Zone names are taken (and spelled canonically); an offset is refused rather than
    // read with POSIX's inverted sign; an unknown name is an invalid value.
    s.set("TimeZone", Some("europe/berlin"), false).unwrap();
    assert_eq!(s.get("TimeZone").unwrap().as_deref(), Some("Europe/Berlin"));
    assert_eq!(
        s.set("TimeZone", Some("+05"), false).unwrap_err().code,
        "0A000"
    );
    assert_eq!(
        s.set("TimeZone", Some("Mars/Olympus"), false)
            .unwrap_err()
            .code,
        "22023"
    );
    s.set("TimeZone", Some("UTC"), false).unwrap();
    assert_eq!(s.get("timezone").unwrap().as_deref(), Some("UTC"));
    assert_eq!(
        s.set("extra_float_digits", Some("4"), false)
            .unwrap_err()
            .code,
        "22023"
    );
    assert_eq!(
        s.set("standard_conforming_strings", Some("off"), false)
            .unwrap_err()
            .code,
        "0A000"
    );
    s.set("myapp.tenant", Some("42"), false).unwrap();
    assert_eq!(s.get("MYAPP.TENANT").unwrap().as_deref(), Some("42"));
    assert_eq!(s.get("myapp.other").unwrap(), None);
    s.reset_all();
    assert_eq!(s.get("myapp.tenant").unwrap().as_deref(), Some(""));
    assert_eq!(s.get("TimeZone").unwrap().as_deref(), Some("Etc/UTC"));
}

#[test]
fn startup_parameters_seed_the_session() {
    let startup: Vec<(String, String)> = vec![
        ("application_name".into(), "etl".into()),
        ("DateStyle".into(), "ISO".into()),
        ("TimeZone".into(), "Europe/Paris".into()),
        ("user".into(), "shoal".into()),
    ];
    let s = Settings::from_startup("alice", startup.iter().map(|(a, b)| (a, b)));
    assert_eq!(
        s.get("session_authorization").unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(s.get("application_name").unwrap().as_deref(), Some("etl"));
    assert_eq!(s.get("DateStyle").unwrap().as_deref(), Some("ISO, MDY"));
    let mut s2 = s.clone();
    s2.set("application_name", Some("other"), false).unwrap();
    s2.set("application_name", None, false).unwrap();
    assert_eq!(s2.get("application_name").unwrap().as_deref(), Some("etl"));
    s2.set("application_name", Some("other"), false).unwrap();
    s2.reset_all();
    assert_eq!(s2.get("application_name").unwrap().as_deref(), Some("etl"));
    assert_eq!(s.get("TimeZone").unwrap().as_deref(), Some("Europe/Paris"));
    // A zone asked for at startup that Shoal does not take is left at the default, which
    // ParameterStatus reports.
    let odd = [("TimeZone".to_string(), "<+03>-3".to_string())];
    let s3 = Settings::from_startup("alice", odd.iter().map(|(a, b)| (a, b)));
    assert_eq!(s3.get("TimeZone").unwrap().as_deref(), Some("Etc/UTC"));
}
