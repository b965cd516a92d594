use super::*;
use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};

fn batch(n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn put_without_commit_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.blocking_send(PutMsg::Batch(batch(100))).unwrap();
    drop(tx);
    let err = store.write_shard_file(1, 2, None, rx).unwrap_err();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn commit_writes_a_checksummed_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.blocking_send(PutMsg::Batch(batch(100))).unwrap();
    tx.blocking_send(PutMsg::Batch(batch(0))).unwrap();
    tx.blocking_send(PutMsg::Commit).unwrap();
    let meta = store.write_shard_file(1, 2, None, rx).unwrap();
    assert_eq!(meta.rows, 100);
    let bytes = fs::read(dir.path().join("shards/1/2").join(&meta.name)).unwrap();
    assert_eq!(bytes.len() as u64, meta.bytes);
    assert_eq!(crc32c::crc32c(&bytes), meta.checksum);
    assert_eq!(files_in(dir.path()).len(), 1);
}

#[test]
fn empty_put_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.blocking_send(PutMsg::Batch(batch(0))).unwrap();
    tx.blocking_send(PutMsg::Commit).unwrap();
    let meta = store.write_shard_file(1, 2, None, rx).unwrap();
    assert_eq!((meta.name.as_str(), meta.rows), ("", 0));
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn enospc_while_writing_is_disk_full() {
    // /dev/full fails every write with ENOSPC.
    let Ok(full) = fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let b = batch(1000);
    let mut w = ArrowWriter::try_new(
        ChecksumWriter::new(full),
        b.schema(),
        Some(writer_properties(&b.schema()).unwrap()),
    )
    .unwrap();
    let err = w
        .write(&b)
        .and_then(|_| w.finish().map(|_| ()))
        .map_err(|e| ShardStoreError::parquet_write("/dev/full", e))
        .unwrap_err();
    assert!(matches!(err, ShardStoreError::DiskFull { .. }), "{err:?}");
}

#[test]
fn file_names_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    for bad in [
        "../x.parquet",
        "a/b.parquet",
        ".parquet",
        "x.txt",
        "",
        "..parquet",
    ] {
        assert!(store.file_path(1, 1, bad).is_err(), "{bad}");
    }
    assert!(store
        .file_path(1, 1, "0b8c1d6e-2f7a-4d0b-9a8e-1c2d3e4f5a6b.parquet")
        .is_ok());
}

#[test]
fn open_removes_tmp_files_and_keeps_others() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("staging/task-1")).unwrap();
    fs::write(dir.path().join("staging/put-x.parquet.tmp"), b"junk").unwrap();
    fs::write(dir.path().join("staging/task-1/a.parquet.tmp"), b"junk").unwrap();
    fs::write(dir.path().join("staging/task-1/b.parquet"), b"keep").unwrap();
    FileStore::open(dir.path()).unwrap();
    let left = files_in(&dir.path().join("staging"));
    assert_eq!(left, vec![dir.path().join("staging/task-1/b.parquet")]);
}

#[test]
fn data_dir_must_be_usable_by_scans() {
    let dir = tempfile::tempdir().unwrap();
    let err = FileStore::open(&dir.path().join("data[1]")).unwrap_err();
    assert!(matches!(err, ShardStoreError::Config { .. }), "{err:?}");
}

fn meta_of(name: &str, bytes: &[u8]) -> FileMeta {
    FileMeta {
        name: name.into(),
        bytes: bytes.len() as u64,
        rows: 0,
        checksum: crc32c::crc32c(bytes),
    }
}

/// Runs `receive_staged_file` with `chunks` then `Done` (or no `Done`).
fn receive(
    store: &FileStore,
    dir: &Path,
    meta: &FileMeta,
    chunks: &[&[u8]],
    done: bool,
) -> Result<u64> {
    let (tx, rx) = mpsc::channel(chunks.len() + 1);
    for c in chunks {
        tx.blocking_send(PullMsg::Chunk(Bytes::copy_from_slice(c)))
            .unwrap();
    }
    if done {
        tx.blocking_send(PullMsg::Done).unwrap();
    }
    drop(tx);
    store.receive_staged_file(dir, meta, rx)
}

#[test]
fn received_files_are_verified_before_they_are_staged() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let good = meta_of("a.parquet", b"hello world");
    let (staged, todo) = store
        .prepare_pull(7, 1, 2, std::slice::from_ref(&good))
        .unwrap();
    assert_eq!(staged, dir.path().join("staging/move-7/1/2"));
    assert_eq!(todo, vec![good.clone()]);

    assert_eq!(
        receive(&store, &staged, &good, &[b"hello ", b"world"], true).unwrap(),
        11
    );
    assert_eq!(fs::read(staged.join("a.parquet")).unwrap(), b"hello world");
    // Staged and verified: nothing left to fetch.
    assert!(store
        .prepare_pull(7, 1, 2, std::slice::from_ref(&good))
        .unwrap()
        .1
        .is_empty());

    // Wrong content, or an interrupted stream: no file, no part file.
    let other = meta_of("b.parquet", b"hello world");
    let err = receive(&store, &staged, &other, &[b"hello there"], true).unwrap_err();
    assert!(
        matches!(err, ShardStoreError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    let err = receive(&store, &staged, &other, &[b"hello "], false).unwrap_err();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    assert_eq!(files_in(&staged), vec![staged.join("a.parquet")]);
}

#[test]
fn adopt_moves_staged_files_into_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let meta = meta_of("a.parquet", b"bytes");
    let (staged, _) = store
        .prepare_pull(3, 4, 5, std::slice::from_ref(&meta))
        .unwrap();
    receive(&store, &staged, &meta, &[b"bytes"], true).unwrap();
    let names = vec!["a.parquet".to_string()];
    store.adopt_staged(3, 4, 5, &names).unwrap();
    store.adopt_staged(3, 4, 5, &names).unwrap();
    assert_eq!(
        files_in(dir.path()),
        vec![dir.path().join("shards/4/5/a.parquet")]
    );
    let err = store
        .adopt_staged(3, 4, 5, &["../x.parquet".to_string()])
        .unwrap_err();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    assert_eq!(store.list_staging().unwrap(), vec![3]);
    store.discard_staging(3).unwrap();
    store.discard_staging(3).unwrap();
    assert!(store.list_staging().unwrap().is_empty());
}

#[test]
fn open_removes_part_files_of_moves_only() {
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("staging/move-9/1/1");
    fs::create_dir_all(&shard).unwrap();
    fs::write(shard.join("a.parquet.part"), b"half").unwrap();
    fs::write(shard.join("b.parquet"), b"whole").unwrap();
    fs::write(dir.path().join("staging/other.part"), b"not ours").unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let mut left = files_in(&dir.path().join("staging"));
    left.sort();
    assert_eq!(
        left,
        vec![
            dir.path().join("staging/move-9/1/1/b.parquet"),
            dir.path().join("staging/other.part"),
        ]
    );
    assert_eq!(store.list_staging().unwrap(), vec![9]);
}

/// A clustered put sorts each row group by the column (and keeps every row): one value's
/// rows then sit in one page range, which the page index lets a filter find.
#[test]
fn clustered_put_sorts_each_row_group() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("tenant", DataType::Int64, true),
        Field::new("seq", DataType::Int64, false),
    ]));
    // 300k rows in batches of 10k: two full row groups and a partial one
    let total = 300_000i64;
    let (tx, rx) = mpsc::channel(64);
    let meta = std::thread::scope(|scope| {
        let writer = scope.spawn(|| store.write_shard_file(1, 2, Some("tenant"), rx));
        for start in (0..total).step_by(10_000) {
            let seq: Vec<i64> = (start..start + 10_000).collect();
            let tenant: Vec<Option<i64>> = seq
                .iter()
                .map(|s| (s % 7 != 0).then_some((s * 7919) % 1000))
                .collect();
            let b = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(tenant)),
                    Arc::new(Int64Array::from(seq)),
                ],
            )
            .unwrap();
            tx.blocking_send(PutMsg::Batch(b)).unwrap();
        }
        tx.blocking_send(PutMsg::Commit).unwrap();
        writer.join().unwrap().unwrap()
    });
    assert_eq!(meta.rows, total as u64);

    let path = dir.path().join("shards/1/2").join(&meta.name);
    let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(
        groups,
        vec![
            ROW_GROUP_ROWS as i64,
            ROW_GROUP_ROWS as i64,
            total - 2 * ROW_GROUP_ROWS as i64
        ]
    );
    let file = File::open(&path).unwrap();
    let batches = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(ROW_GROUP_ROWS)
        .build()
        .unwrap()
        .collect::<std::result::Result<Vec<_>, _>>()
        .unwrap();
    // one batch per row group (they are exactly that long)
    assert_eq!(batches.len(), 3);
    let mut seen = vec![false; total as usize];
    for b in &batches {
        let tenant = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let seq = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            // nulls first, then ascending
            if i > 0 && tenant.is_valid(i - 1) {
                assert!(
                    tenant.is_valid(i) && tenant.value(i - 1) <= tenant.value(i),
                    "row {i} of a row group not sorted"
                );
            }
            let s = seq.value(i) as usize;
            assert!(!seen[s], "row {s} written twice");
            seen[s] = true;
        }
    }
    assert!(seen.iter().all(|s| *s), "rows lost");
}
