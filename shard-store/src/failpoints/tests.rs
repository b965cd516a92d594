use super::*;

#[test]
fn parse_ignores_blanks() {
    assert_eq!(parse(" a, b ,,c,"), vec!["a", "b", "c"]);
    assert!(parse("").is_empty());
}

#[test]
fn fire_once_fires_once() {
    let set = FailpointSet::new(parse("x"));
    assert!(set.enabled("x"));
    assert!(!set.enabled("y"));
    assert!(set.fire_once("x"));
    assert!(!set.fire_once("x"));
    assert!(!set.fire_once("y"));
}
