use super::to_backslash_escapes;

#[test]
fn patterns_keep_their_meaning() {
    assert_eq!(to_backslash_escapes("pg/_%", "/"), "pg\\_%");
    assert_eq!(to_backslash_escapes("a//b", "/"), "a\\/b");
    assert_eq!(to_backslash_escapes("a\\b_", "/"), "a\\\\b_");
    assert_eq!(to_backslash_escapes("100#%", "#"), "100\\%");
}
