use super::*;

fn worker_down() -> ShardStoreError {
    ShardStoreError::Unavailable {
        addr: "w1:7400".into(),
        message: "connection refused".into(),
    }
}

/// What the scheduler retries: failures that pass by themselves, through every wrapping.
#[test]
fn retryable_errors_are_the_ones_that_pass() {
    let retryable = [
        ClusterError::Worker(worker_down()),
        ClusterError::Worker(ShardStoreError::ChecksumMismatch {
            name: "f".into(),
            expected_bytes: 1,
            actual_bytes: 2,
            expected_checksum: 1,
            actual_checksum: 2,
        }),
        ClusterError::DataFusion(datafusion::error::DataFusionError::External(Box::new(
            worker_down(),
        ))),
        ClusterError::Catalog(CatalogError::PlacementGone { placement_id: 1 }),
        ClusterError::DiskFull {
            message: "full".into(),
            hint: None,
        },
        ClusterError::MoveDeferred {
            message: "fence".into(),
            hint: None,
        },
    ];
    for e in &retryable {
        assert!(e.is_retryable(), "{e:?}");
    }
    let permanent = [
        ClusterError::Worker(ShardStoreError::Unauthenticated {
            addr: "w1:7400".into(),
        }),
        ClusterError::Worker(ShardStoreError::WrongCluster {
            expected: "a".into(),
            actual: "b".into(),
        }),
        ClusterError::Catalog(CatalogError::Invalid {
            message: "unknown task state".into(),
        }),
        ClusterError::invalid("bad argument"),
        ClusterError::Internal {
            message: "bug".into(),
        },
        ClusterError::Cancelled {
            message: "cancelled".into(),
        },
    ];
    for e in &permanent {
        assert!(!e.is_retryable(), "{e:?}");
    }
}

#[test]
fn only_a_deferred_move_keeps_its_staged_copy() {
    assert!(ClusterError::MoveDeferred {
        message: "m".into(),
        hint: None
    }
    .keeps_staged_copy());
    assert!(!ClusterError::Worker(worker_down()).keeps_staged_copy());
    assert!(!ClusterError::NotInState {
        message: "m".into(),
        hint: None
    }
    .keeps_staged_copy());
}
