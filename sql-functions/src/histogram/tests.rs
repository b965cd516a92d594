use super::{Histogram, HistogramSnapshot};

#[test]
fn observations_land_in_cumulative_buckets() {
    static BOUNDS: &[u64] = &[1, 5, 10];
    let h = Histogram::new(BOUNDS);
    for v in [0, 1, 2, 5, 6, 10, 11, 1000] {
        h.observe(v);
    }
    assert_eq!(
        h.snapshot(),
        HistogramSnapshot {
            buckets: vec![(1, 2), (5, 4), (10, 6)],
            count: 8,
            sum: 1035,
        }
    );
}
