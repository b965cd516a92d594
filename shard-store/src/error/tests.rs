use super::*;

fn round_trip(e: ShardStoreError) -> ShardStoreError {
    ShardStoreError::from_status("w1:7400", e.to_status())
}

#[test]
fn typed_variants_survive_the_wire() {
    let e = round_trip(ShardStoreError::FileMissing {
        table_id: 3,
        shard_id: 7,
        name: "a.parquet".into(),
    });
    assert!(
        matches!(&e, ShardStoreError::FileMissing { table_id: 3, shard_id: 7, name } if name == "a.parquet"),
        "{e:?}"
    );
    let e = round_trip(ShardStoreError::WrongCluster {
        expected: "a".into(),
        actual: "b".into(),
    });
    assert!(
        matches!(&e, ShardStoreError::WrongCluster { expected, actual } if expected == "a" && actual == "b"),
        "{e:?}"
    );
    let e = round_trip(ShardStoreError::DiskFull {
        message: "x".into(),
    });
    assert!(matches!(e, ShardStoreError::DiskFull { .. }), "{e:?}");
    let e = round_trip(ShardStoreError::protocol("bad"));
    assert!(matches!(e, ShardStoreError::Protocol { .. }), "{e:?}");
}

#[test]
fn status_codes() {
    let s = ShardStoreError::FileMissing {
        table_id: 1,
        shard_id: 1,
        name: "n".into(),
    }
    .to_status();
    assert_eq!(s.code(), Code::NotFound);
    let s = ShardStoreError::DiskFull {
        message: String::new(),
    }
    .to_status();
    assert_eq!(s.code(), Code::ResourceExhausted);
    let s = ShardStoreError::WrongCluster {
        expected: String::new(),
        actual: String::new(),
    }
    .to_status();
    assert_eq!(s.code(), Code::FailedPrecondition);
}

#[test]
fn untagged_statuses() {
    let e = ShardStoreError::from_status("w:1", Status::unauthenticated("no"));
    assert!(matches!(&e, ShardStoreError::Unauthenticated { addr } if addr == "w:1"));
    let e = ShardStoreError::from_status("w:1", Status::unavailable("conn refused"));
    assert!(e.is_unavailable());
    let e = ShardStoreError::from_status("w:1", Status::internal("boom"));
    assert!(
        matches!(&e, ShardStoreError::Remote { code, message } if code == "Internal" && message == "boom"),
        "{e:?}"
    );
    let e = ShardStoreError::internal("x").to_status();
    assert_eq!(e.code(), Code::Internal);
}

#[test]
fn enospc_is_disk_full() {
    let e = ShardStoreError::io("/x", std::io::Error::from_raw_os_error(28));
    assert!(matches!(e, ShardStoreError::DiskFull { .. }), "{e:?}");
    let pe = parquet::errors::ParquetError::from(std::io::Error::from_raw_os_error(28));
    let e = ShardStoreError::parquet_write("/x", pe);
    assert!(matches!(e, ShardStoreError::DiskFull { .. }), "{e:?}");
    let e = ShardStoreError::io("/x", std::io::Error::from_raw_os_error(2));
    assert!(matches!(e, ShardStoreError::Io { .. }), "{e:?}");
}

#[test]
fn move_errors_survive_the_wire() {
    let e = round_trip(ShardStoreError::ChecksumMismatch {
        name: "a.parquet".into(),
        expected_bytes: 10,
        actual_bytes: 9,
        expected_checksum: 0xdead_beef,
        actual_checksum: 0x1,
    });
    assert!(
        matches!(&e, ShardStoreError::ChecksumMismatch { name, expected_bytes: 10, actual_bytes: 9, expected_checksum: 0xdead_beef, actual_checksum: 1 } if name == "a.parquet"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "checksum mismatch for file a.parquet: expected 10 bytes crc32c 0xdeadbeef, got 9 bytes \
         crc32c 0x00000001"
    );
    let e = round_trip(ShardStoreError::FileConflict {
        table_id: 1,
        shard_id: 2,
        name: "a.parquet".into(),
        live_bytes: 5,
        staged_bytes: 6,
    });
    assert!(
        matches!(
            &e,
            ShardStoreError::FileConflict {
                table_id: 1,
                shard_id: 2,
                live_bytes: 5,
                staged_bytes: 6,
                ..
            }
        ),
        "{e:?}"
    );
    // A worker relays the refusal of another worker (the source of a move) with its address.
    let e = round_trip(ShardStoreError::Unauthenticated {
        addr: "source:7400".into(),
    });
    assert!(
        matches!(&e, ShardStoreError::Unauthenticated { addr } if addr == "source:7400"),
        "{e:?}"
    );
    let e = round_trip(ShardStoreError::Unavailable {
        addr: "source:7400".into(),
        message: "refused".into(),
    });
    assert!(
        e.is_unavailable() && e.to_string().contains("source:7400"),
        "{e:?}"
    );
    let s = ShardStoreError::ChecksumMismatch {
        name: String::new(),
        expected_bytes: 0,
        actual_bytes: 0,
        expected_checksum: 0,
        actual_checksum: 0,
    }
    .to_status();
    assert_eq!(s.code(), Code::DataLoss);
}
