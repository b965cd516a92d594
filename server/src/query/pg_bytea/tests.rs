use super::decode;

#[test]
fn decodes_as_byteain() {
    assert_eq!(decode("\\x0102").unwrap(), vec![1, 2]);
    assert_eq!(
        decode("\\xDE AD be ef").unwrap(),
        vec![0xde, 0xad, 0xbe, 0xef]
    );
    assert_eq!(decode("\\x").unwrap(), Vec::<u8>::new());
    assert_eq!(decode("\\x012").unwrap_err().code, "22023");
    assert_eq!(decode("\\x0g").unwrap_err().code, "22023");
    assert_eq!(decode("abc").unwrap(), b"abc".to_vec());
    assert_eq!(decode("a\\\\b").unwrap(), b"a\\b".to_vec());
    assert_eq!(decode("\\001\\377").unwrap(), vec![1, 255]);
    assert_eq!(decode("\\9").unwrap_err().code, "22P02");
    assert_eq!(decode("x\\").unwrap_err().code, "22P02");
}
