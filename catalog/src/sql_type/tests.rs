use super::*;

#[test]
fn canonical_names_round_trip() {
    for t in [
        "smallint",
        "integer",
        "bigint",
        "real",
        "double precision",
        "numeric(12,2)",
        "text",
        "character varying(20)",
        "character varying",
        "character(3)",
        "boolean",
        "date",
        "timestamp without time zone",
        "timestamp with time zone",
        "bytea",
        "uuid",
        "json",
        "jsonb",
        "bigint[]",
        "text[]",
        "double precision[]",
        "boolean[]",
    ] {
        assert_eq!(SqlType::parse(t).unwrap().to_string(), t);
    }
    assert_eq!(SqlType::parse("INT4").unwrap(), SqlType::Integer);
    assert_eq!(
        SqlType::parse("varchar(3)").unwrap(),
        SqlType::Varchar { max_len: Some(3) }
    );
    assert_eq!(SqlType::parse("char").unwrap(), SqlType::Char { len: 1 });
    assert_eq!(
        SqlType::parse("bpchar(4)").unwrap(),
        SqlType::Char { len: 4 }
    );
    assert!(SqlType::parse("bpchar").is_err());
    // Bounds are checked where a statement declares the type; a stored one still reads.
    assert!(SqlType::parse("char(0)").unwrap().check_declared().is_err());
    assert!(SqlType::parse("varchar(0)")
        .unwrap()
        .check_declared()
        .is_err());
    assert!(SqlType::parse("char(10485761)")
        .unwrap()
        .check_declared()
        .is_err());
    assert!(SqlType::parse("char(10485760)")
        .unwrap()
        .check_declared()
        .is_ok());
    assert!(SqlType::parse("point").is_err());
    assert_eq!(
        SqlType::parse("_int4").unwrap(),
        SqlType::Array {
            element: ArrayElement::Integer
        }
    );
    assert!(SqlType::parse("int[][]").is_err());
    assert!(SqlType::parse("jsonb[]").is_err());
    assert!(SqlType::parse("numeric(50,2)").is_err());
}
