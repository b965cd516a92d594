use super::*;
use std::sync::Arc;

#[test]
fn ranges_cover_the_hash_space_and_index_agrees() {
    for n in [1usize, 2, 3, 7, 32] {
        let mut prev: Option<i32> = None;
        let ranges = ShardRanges::new((0..n).map(|i| shard_range(i, n)));
        for i in 0..n {
            let (lo, hi) = shard_range(i, n);
            match prev {
                None => assert_eq!(lo, i32::MIN),
                Some(p) => assert_eq!(lo as i64, p as i64 + 1),
            }
            assert_eq!(ranges.shard_of(lo), Some(i));
            assert_eq!(ranges.shard_of(hi), Some(i));
            prev = Some(hi);
        }
        assert_eq!(prev, Some(i32::MAX));
    }
}

/// Positions are the caller's order, whatever the order of the ranges; a hash no range
/// holds has no shard.
#[test]
fn shard_ranges_find_the_range_in_any_order_and_report_gaps() {
    let ranges = ShardRanges::new([(0, 99), (i32::MIN, -1), (200, i32::MAX)]);
    assert_eq!(ranges.shard_of(i32::MIN), Some(1));
    assert_eq!(ranges.shard_of(-1), Some(1));
    assert_eq!(ranges.shard_of(0), Some(0));
    assert_eq!(ranges.shard_of(99), Some(0));
    assert_eq!(ranges.shard_of(100), None);
    assert_eq!(ranges.shard_of(199), None);
    assert_eq!(ranges.shard_of(i32::MAX), Some(2));
    assert_eq!(ShardRanges::new([]).shard_of(5), None);
}

#[test]
fn hash_is_stable_and_type_consistent() {
    // An int4 and an int8 of the same value hash alike (the values are pinned below).
    let a: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![5, 6]));
    let b: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![5, 6]));
    assert_eq!(hash_column(&a, "x").unwrap(), hash_column(&b, "x").unwrap());
    let s = hash_scalar(&ScalarValue::Int64(Some(5)), &DataType::Int32, "x").unwrap();
    assert_eq!(s, hash_column(&a, "x").unwrap()[0]);
    let t = hash_scalar(&ScalarValue::Utf8(Some("abc".into())), &DataType::Utf8, "x").unwrap();
    assert_eq!(t, hash_bytes(b"abc"));
    let nulls: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![Some(1), None]));
    assert!(hash_column(&nulls, "x").is_err());
    // spread: 10k sequential ids over 8 shards are roughly even
    let ids: ArrayRef = Arc::new(arrow::array::Int64Array::from(
        (0..10_000i64).collect::<Vec<_>>(),
    ));
    let mut counts = [0usize; 8];
    let ranges = ShardRanges::new((0..8).map(|i| shard_range(i, 8)));
    for h in hash_column(&ids, "id").unwrap() {
        counts[ranges.shard_of(h).unwrap()] += 1;
    }
    assert!(
        counts.iter().all(|c| *c > 1_000 && *c < 1_500),
        "{counts:?}"
    );
}

/// The hash is part of the on-disk format: rows already stored sit in the shard these values
/// chose. The expected values were computed apart from this code (splitmix64's finaliser and
/// FNV-1a, written out in Python from their definitions); a change here moves rows.
#[test]
fn hash_values_are_pinned() {
    for (v, h) in [
        (0i64, -501_176_263),
        (1, -1_861_603_860),
        (-1, -455_511_689),
        (42, -1_109_970_394),
        (i64::MAX, 711_448_405),
        (i64::MIN, 1_209_974_946),
    ] {
        assert_eq!(hash_i64(v), h, "hash of {v}");
    }
    for (s, h) in [
        ("", -1_014_924_287),
        ("abc", 702_753_796),
        ("shoal", 404_930_211),
    ] {
        assert_eq!(hash_bytes(s.as_bytes()), h, "hash of {s:?}");
        let scalar = hash_scalar(&ScalarValue::Utf8(Some(s.into())), &DataType::Utf8, "x");
        assert_eq!(scalar.unwrap(), h, "hash of the scalar {s:?}");
    }
    // An int column hashes its values as bigint: an int4 42 lands where an int8 42 does.
    let ints: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![42]));
    assert_eq!(hash_column(&ints, "x").unwrap(), vec![-1_109_970_394]);
}
