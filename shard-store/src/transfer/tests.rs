use super::*;

#[test]
fn token_bucket_keeps_the_average_rate() {
    let mut bucket = TokenBucket::new(1000);
    let start = bucket.last;
    // Starts empty: the first 500 bytes wait half a second.
    assert_eq!(bucket.debit(500, start), Some(Duration::from_millis(500)));
    // Half a second later the debt is paid; the next 1000 bytes wait a second.
    let at = start + Duration::from_millis(500);
    assert_eq!(bucket.debit(1000, at), Some(Duration::from_secs(1)));
}

#[test]
fn token_bucket_bursts_are_bounded() {
    let mut bucket = TokenBucket::new(1000);
    let start = bucket.last;
    // A minute idle banks only the burst (100 ms = 100 bytes).
    let later = start + Duration::from_secs(60);
    assert_eq!(bucket.debit(100, later), None);
    assert_eq!(bucket.debit(100, later), Some(Duration::from_millis(100)));
}

#[test]
fn flipping_changes_only_the_first_byte() {
    let original = Bytes::from_static(b"\x01\x02\x03");
    assert_eq!(flip_first_byte(&original).as_ref(), b"\xfe\x02\x03");
    assert!(flip_first_byte(&Bytes::new()).is_empty());
}
