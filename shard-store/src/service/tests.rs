use super::*;

#[test]
fn token_comparison() {
    assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
    assert!(!constant_time_eq(b"Bearer abc", b"Bearer abd"));
    assert!(!constant_time_eq(b"Bearer abc", b"Bearer ab"));
}

#[test]
fn token_check() {
    let mut check = TokenCheck::new(Some("s3cret")).unwrap();
    assert_eq!(
        check.call(Request::new(())).unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let mut ok = Request::new(());
    ok.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert!(check.call(ok).is_ok());
    let mut open = TokenCheck::new(None).unwrap();
    assert!(open.call(Request::new(())).is_ok());
    assert!(TokenCheck::new(Some("bad\ntoken")).is_err());
}
