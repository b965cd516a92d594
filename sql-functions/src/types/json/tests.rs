use super::{jsonb_text, parse, validate, Json};

#[test]
fn jsonb_prints_as_postgresql() {
    for (input, want) in [
        (
            r#"{"b": 1, "a": [1, 2,3], "aa": {"x": null}}"#,
            r#"{"a": [1, 2, 3], "b": 1, "aa": {"x": null}}"#,
        ),
        (r#"{"a":1, "a":2}"#, r#"{"a": 2}"#),
        ("1.50", "1.50"),
        ("1e3", "1000"),
        ("1.5e1", "15"),
        ("1.25e-1", "0.125"),
        ("-0", "0"),
        ("-0.0", "0.0"),
        ("0.001", "0.001"),
        ("12E+2", "1200"),
        ("-12.5", "-12.5"),
        (r#""\u00e9""#, r#""é""#),
        (r#""a\"b\\c\/d\n\u0001""#, r#""a\"b\\c/d\n\u0001""#),
        ("  [ ]  ", "[]"),
        ("{}", "{}"),
        ("true", "true"),
        (r#""\ud83d\ude00""#, "\"\u{1F600}\""),
    ] {
        assert_eq!(jsonb_text(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn bad_json_fails_with_postgresqls_detail() {
    for (input, detail) in [
        ("{bad", "Token \"bad\" is invalid."),
        ("", "The input string ended unexpectedly."),
        ("[1,", "The input string ended unexpectedly."),
        ("{\"a\" 1}", "Expected \":\", but found \"1\"."),
        ("[1 2]", "Expected \",\" or \"]\", but found \"2\"."),
        (
            "{\"a\":1 \"b\"}",
            "Expected \",\" or \"}\", but found \"\"\".",
        ),
        ("1 2", "Expected end of input, but found \"2\"."),
        ("01", "Token \"01\" is invalid."),
        ("1.", "Token \"1.\" is invalid."),
        ("[}", "Expected JSON value, but found \"}\"."),
        ("{1:2}", "Expected string, but found \"1\"."),
        ("\"a\\qb\"", "Escape sequence \"\\q\" is invalid."),
        ("\"a\nb\"", "Character with value 0x0a must be escaped."),
    ] {
        let err = jsonb_text(input).unwrap_err();
        assert_eq!(
            (err.sqlstate, err.detail.as_str()),
            ("22P02", detail),
            "{input:?}"
        );
        assert_eq!(validate(input).unwrap_err().detail, detail, "{input:?}");
    }
    assert_eq!(jsonb_text(r#""\u0000""#).unwrap_err().sqlstate, "22P05");
    assert!(validate(r#""\u0000""#).is_ok());
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let deep = "[".repeat(100_000);
    assert_eq!(parse(&deep).unwrap_err().sqlstate, "54001");
    let ok = format!("{}{}", "[".repeat(256), "]".repeat(256));
    assert!(parse(&ok).is_ok());
}

fn j(text: &str) -> Json {
    parse(text).unwrap()
}

#[test]
fn containment_and_keys_as_postgresql() {
    let cases = [
        (r#"{"a":1,"b":[1,2,{"c":3}]}"#, r#"{"b":[{"c":3}]}"#, true),
        (r#"{"a":1}"#, r#"{"a":1.0}"#, true),
        (r#"{"a":1}"#, r#"{"a":2}"#, false),
        ("[1,2,3]", "[3,1]", true),
        ("[1,2,3]", "[1,1]", true),
        ("[1,2,3]", "1", true),
        ("[[1,2]]", "[1]", false),
        ("[[1,2]]", "[[1]]", true),
        (r#"{"a":[1,2]}"#, r#"{"a":1}"#, false),
        ("1", "[1]", false),
        (r#""a""#, r#""a""#, true),
        ("{}", "{}", true),
        ("[]", "{}", false),
    ];
    for (a, b, want) in cases {
        assert_eq!(j(a).contains(&j(b)), want, "{a} @> {b}");
    }
    assert!(j(r#"{"a":1}"#).has_key("a"));
    assert!(j(r#"["a","b"]"#).has_key("b"));
    assert!(!j(r#"[["a"]]"#).has_key("a"));
    assert!(j(r#""a""#).has_key("a"));
    let v = j(r#"{"a":[10,20,{"b":"x"}]}"#);
    assert_eq!(
        v.get_key("a").and_then(|a| a.get_index(-1)),
        Some(&j(r#"{"b":"x"}"#))
    );
    assert_eq!(
        v.get_path(&["a", "2", "b"]).and_then(Json::to_text),
        Some("x".into())
    );
    assert_eq!(v.get_path(&["a", "9"]), None);
    assert_eq!(j("null").to_text(), None);
    assert_eq!(j("2").get_index(-1), Some(&j("2")));
    assert_eq!(j("2").get_index(1), None);
    assert_eq!(j("2").get_path(&["0"]), None);
}

#[test]
fn concat_and_delete_as_postgresql() {
    let cat = |a: &str, b: &str| j(a).concat(j(b)).to_jsonb_text();
    assert_eq!(
        cat(r#"{"a":1,"b":2}"#, r#"{"b":3,"c":4}"#),
        r#"{"a": 1, "b": 3, "c": 4}"#
    );
    assert_eq!(cat("[1,2]", "[3]"), "[1, 2, 3]");
    assert_eq!(cat("[1]", r#"{"a":1}"#), r#"[1, {"a": 1}]"#);
    assert_eq!(cat(r#"{"a":1}"#, "1"), r#"[{"a": 1}, 1]"#);
    assert_eq!(cat("1", "2"), "[1, 2]");
    let del = |a: &str, k: &str| j(a).delete_key(k).map(|v| v.to_jsonb_text());
    assert_eq!(del(r#"{"a":1,"b":2}"#, "a").as_deref(), Ok(r#"{"b": 2}"#));
    assert_eq!(del(r#"["a","b","a"]"#, "a").as_deref(), Ok(r#"["b"]"#));
    assert!(del("1", "a").is_err());
    assert_eq!(
        j("[1,2,3]")
            .delete_index(-1)
            .map(|v| v.to_jsonb_text())
            .as_deref(),
        Ok("[1, 2]")
    );
    assert_eq!(
        j("[1,2,3]")
            .delete_index(5)
            .map(|v| v.to_jsonb_text())
            .as_deref(),
        Ok("[1, 2, 3]")
    );
    assert!(j(r#"{"a":1}"#).delete_index(0).is_err());
}

#[test]
fn set_strip_and_pretty_as_postgresql() {
    let set = |a: &str, path: &[&str], v: &str, create: bool| {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        j(a).set_path(&path, j(v), create)
            .map(|v| v.to_jsonb_text())
    };
    assert_eq!(
        set(r#"{"a":{"b":1}}"#, &["a", "b"], "2", true).as_deref(),
        Ok(r#"{"a": {"b": 2}}"#)
    );
    assert_eq!(
        set(r#"{"a":1}"#, &["z"], "[1]", true).as_deref(),
        Ok(r#"{"a": 1, "z": [1]}"#)
    );
    assert_eq!(
        set(r#"{"a":1}"#, &["z"], "[1]", false).as_deref(),
        Ok(r#"{"a": 1}"#)
    );
    assert_eq!(
        set(r#"{"a":1}"#, &["x", "y"], "1", true).as_deref(),
        Ok(r#"{"a": 1}"#)
    );
    assert_eq!(
        set("[1,2,3]", &["-1"], "9", true).as_deref(),
        Ok("[1, 2, 9]")
    );
    assert_eq!(
        set("[1,2,3]", &["10"], "9", true).as_deref(),
        Ok("[1, 2, 3, 9]")
    );
    assert_eq!(
        set("[1,2,3]", &["-10"], "9", true).as_deref(),
        Ok("[9, 1, 2, 3]")
    );
    assert!(set("1", &["a"], "2", true).is_err());
    assert_eq!(
        j(r#"{"a":null,"b":[null,{"c":null}]}"#)
            .strip_nulls()
            .to_jsonb_text(),
        r#"{"b": [null, {}]}"#
    );
    assert_eq!(
        j(r#"{"a":[1,{"b":[]}],"c":{}}"#).pretty(),
        "{\n    \"a\": [\n        1,\n        {\n            \"b\": [\n            ]\n        }\n    ],\n    \"c\": {\n    }\n}"
    );
    assert_eq!(j("[]").pretty(), "[\n]");
}
