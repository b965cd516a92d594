use super::*;

#[test]
fn elements_as_postgresql_reads_them() {
    let s = |v: &str| Some(v.to_string());
    assert_eq!(elements("{}").unwrap(), vec![]);
    assert_eq!(
        elements("{1, 2 ,NULL}").unwrap(),
        vec![s("1"), s("2"), None]
    );
    assert_eq!(
        elements(r#"{"a b","c\"d",null,"NULL",e\,f}"#).unwrap(),
        vec![s("a b"), s("c\"d"), None, s("NULL"), s("e,f")]
    );
    assert_eq!(elements("{{1},{2}}").unwrap_err().sqlstate, "0A000");
    assert_eq!(elements("1,2").unwrap_err().sqlstate, "22P02");
    assert_eq!(elements("{1,,2}").unwrap_err().sqlstate, "22P02");
    assert_eq!(elements("{\"a}").unwrap_err().sqlstate, "22P02");
}

#[test]
fn list_columns_of_typed_elements() {
    let col = list_column(
        vec![Some("{1,2}"), None, Some("{}"), Some("{NULL,3}")].into_iter(),
        &DataType::Int64,
    )
    .unwrap();
    assert_eq!(col.len(), 4);
    assert!(col.is_null(1));
    let bad = list_column(vec![Some("{x}")].into_iter(), &DataType::Int64).unwrap_err();
    assert_eq!(bad.sqlstate, "22P02");
    let flags = list_column(vec![Some("{t,false}")].into_iter(), &DataType::Boolean).unwrap();
    assert_eq!(flags.len(), 1);
}
