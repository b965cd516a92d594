//! End-to-end tests of the worker: a real Flight service on 127.0.0.1:0 and the real client.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{col, lit};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use shoal_shard_store::{
    serve_worker_with_listener, FileMeta, PartialAggregate, PullFilesReport, PullFilesRequest,
    Result, ScanRequest, ShardFiles, ShardStoreError, StoredFile, WorkerClient, WorkerConfig,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Worker {
    addr: String,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<()>>,
}

impl Worker {
    async fn start(dir: &Path, token: Option<&str>) -> Worker {
        Worker::start_with_failpoints(dir, token, &[]).await
    }

    async fn start_with_failpoints(dir: &Path, token: Option<&str>, failpoints: &[&str]) -> Worker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = WorkerConfig {
            listen,
            data_dir: dir.to_path_buf(),
            cluster_token: token.map(String::from),
            failpoints: failpoints.iter().map(|f| f.to_string()).collect(),
            memory_limit: None,
            tls: None,
            task_session: Default::default(),
        };
        let handle = tokio::spawn(serve_worker_with_listener(cfg, listener, async {
            let _ = stopped.await;
        }));
        Worker {
            addr: listen.to_string(),
            stop,
            handle,
        }
    }

    fn client(&self) -> WorkerClient {
        WorkerClient::new(&self.addr, None).unwrap()
    }

    fn client_with_token(&self, token: &str) -> WorkerClient {
        WorkerClient::new(&self.addr, Some(token.to_string())).unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

fn all_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("dec", DataType::Decimal128(18, 4), true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "tsz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("bin", DataType::Binary, true),
    ]))
}

/// Row `i` of the test table; every column but `id` is NULL on a different residue.
fn null_at(i: i64, column: i64) -> bool {
    (i + column) % 11 == 0
}

fn s_value(i: i64) -> String {
    format!("s{}", i % 13)
}

fn all_types_batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let opt = |c: i64, i: i64| (!null_at(i, c)).then_some(i);
    let ids: Vec<i64> = ids.collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.iter().copied())),
        Arc::new(Int16Array::from_iter(
            ids.iter().map(|&i| opt(1, i).map(|v| (v % 30000) as i16)),
        )),
        Arc::new(Int32Array::from_iter(
            ids.iter().map(|&i| opt(2, i).map(|v| v as i32 - 5000)),
        )),
        Arc::new(Int64Array::from_iter(
            ids.iter().map(|&i| opt(3, i).map(|v| v * 1_000_000_007)),
        )),
        Arc::new(Float32Array::from_iter(
            ids.iter().map(|&i| opt(4, i).map(|v| v as f32 / 3.0)),
        )),
        Arc::new(Float64Array::from_iter(
            ids.iter().map(|&i| opt(5, i).map(|v| v as f64 * 0.25)),
        )),
        Arc::new(
            Decimal128Array::from_iter(
                ids.iter()
                    .map(|&i| opt(6, i).map(|v| v as i128 * 12345 - 7)),
            )
            .with_precision_and_scale(18, 4)
            .unwrap(),
        ),
        Arc::new(StringArray::from_iter(
            ids.iter().map(|&i| opt(7, i).map(s_value)),
        )),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|&i| opt(8, i).map(|v| v % 2 == 0)),
        )),
        Arc::new(Date32Array::from_iter(
            ids.iter().map(|&i| opt(9, i).map(|v| v as i32 - 3650)),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter(ids.iter().map(|&i| {
            opt(10, i).map(|v| 1_700_000_000_000_000 + v * 1_000_001)
        }))),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                ids.iter()
                    .map(|&i| opt(11, i).map(|v| -86_400_000_000 + v * 999)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(BinaryArray::from_iter(
            ids.iter()
                .map(|&i| opt(12, i).map(|v| v.to_le_bytes().to_vec())),
        )),
    ];
    RecordBatch::try_new(all_types_schema(), columns).unwrap()
}

fn batches_stream(batches: Vec<RecordBatch>) -> BoxStream<'static, Result<RecordBatch>> {
    futures::stream::iter(batches.into_iter().map(Ok)).boxed()
}

/// Puts rows `ids` of the all-types table in batches of 1000.
async fn put_rows(
    client: &WorkerClient,
    table: i64,
    shard: i64,
    ids: std::ops::Range<i64>,
) -> FileMeta {
    let batches: Vec<RecordBatch> = ids
        .clone()
        .step_by(1000)
        .map(|start| all_types_batch(start..(start + 1000).min(ids.end)))
        .collect();
    client
        .put_batches(table, shard, all_types_schema(), batches_stream(batches))
        .await
        .unwrap()
}

fn scan_all(table: i64, shard: i64, files: Vec<String>) -> ScanRequest {
    ScanRequest {
        table_id: table,
        shards: vec![ShardFiles {
            shard_id: shard,
            files,
            checks: Default::default(),
        }],
        table_schema: all_types_schema(),
        filters: vec![],
        projection: None,
        aggregate: None,
        limit: None,
    }
}

async fn collect(client: &WorkerClient, req: &ScanRequest) -> (SchemaRef, RecordBatch) {
    let (schema, stream) = client.scan_with_schema(req).await.unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    for b in &batches {
        assert_eq!(b.schema(), schema, "every batch has the announced schema");
    }
    let all = concat_batches(&schema, &batches).unwrap();
    (schema, all)
}

fn sorted_by(batch: &RecordBatch, column: &str) -> RecordBatch {
    let idx = sort_to_indices(batch.column_by_name(column).unwrap(), None, None).unwrap();
    take_record_batch(batch, &idx).unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn put_then_scan_round_trips_all_types() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();

    let meta = put_rows(&client, 7, 3, 0..10_000).await;
    assert_eq!(meta.rows, 10_000);
    assert!(meta.name.ends_with(".parquet"), "{meta:?}");
    let path = dir.path().join("shards/7/3").join(&meta.name);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, meta.bytes);
    assert_eq!(crc32c::crc32c(&bytes), meta.checksum);
    assert_eq!(
        files_under(&dir.path().join("staging")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(files_under(&dir.path().join("shards")), vec![path.clone()]);

    // ZSTD-compressed with statistics.
    let reader =
        parquet::file::reader::SerializedFileReader::new(fs::File::open(&path).unwrap()).unwrap();
    let md = parquet::file::reader::FileReader::metadata(&reader);
    let column = md.row_group(0).column(0);
    assert!(
        matches!(column.compression(), parquet::basic::Compression::ZSTD(_)),
        "{:?}",
        column.compression()
    );
    assert!(column.statistics().is_some());

    let (schema, got) = collect(&client, &scan_all(7, 3, vec![meta.name.clone()])).await;
    assert_eq!(schema, all_types_schema());
    let expected = all_types_batch(0..10_000);
    assert_eq!(sorted_by(&got, "id"), expected);
    assert!(got.column_by_name("s").unwrap().null_count() > 0);
    worker.stop().await;
}

#[tokio::test]
async fn row_groups_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    let batches: Vec<RecordBatch> = (0..30)
        .map(|i| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(
                    i * 10_000..(i + 1) * 10_000,
                ))],
            )
            .unwrap()
        })
        .collect();
    let meta = worker
        .client()
        .put_batches(1, 1, schema, batches_stream(batches))
        .await
        .unwrap();
    assert_eq!(meta.rows, 300_000);
    let file = fs::File::open(dir.path().join("shards/1/1").join(&meta.name)).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let md = parquet::file::reader::FileReader::metadata(&reader);
    assert_eq!(md.num_row_groups(), 3);
    assert!(md.row_groups().iter().all(|rg| rg.num_rows() <= 128 * 1024));
    worker.stop().await;
}

#[tokio::test]
async fn scan_with_filters_projection_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let meta = put_rows(&client, 1, 1, 0..10_000).await;

    let mut req = scan_all(1, 1, vec![meta.name.clone()]);
    req.filters = vec![col("i32").gt(lit(100)).and(col("s").like(lit("s1%")))];
    req.projection = Some(vec!["s".into(), "id".into()]);
    let (schema, got) = collect(&client, &req).await;
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        vec!["s", "id"]
    );
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    let expected: Vec<i64> = (0..10_000i64)
        .filter(|&i| !null_at(i, 2) && i as i32 - 5000 > 100)
        .filter(|&i| !null_at(i, 7) && s_value(i).starts_with("s1"))
        .collect();
    let got = sorted_by(&got, "id");
    let ids = got.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), expected);
    let s = got
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(s.iter().all(|v| v.is_some_and(|v| v.starts_with("s1"))));

    req.limit = Some(5);
    let (_, limited) = collect(&client, &req).await;
    assert_eq!(limited.num_rows(), 5);
    worker.stop().await;
}

#[tokio::test]
async fn scan_with_partial_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let a = put_rows(&client, 1, 1, 0..6_000).await;
    let b = put_rows(&client, 1, 1, 6_000..10_000).await;

    let mut req = scan_all(1, 1, vec![a.name, b.name]);
    req.filters = vec![col("id").lt(lit(9_000i64))];
    let group_by = vec![col("s")];
    let aggr = vec![count(lit(1)), sum(col("i64"))];
    let names: Vec<String> = group_by
        .iter()
        .chain(&aggr)
        .map(|e| e.schema_name().to_string())
        .collect();
    req.aggregate = Some(PartialAggregate { group_by, aggr });
    let (schema, got) = collect(&client, &req).await;
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>(),
        names
    );
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);

    let mut expected: HashMap<Option<String>, (i64, Option<i64>)> = HashMap::new();
    for i in 0..9_000i64 {
        let key = (!null_at(i, 7)).then(|| s_value(i));
        let e = expected.entry(key).or_insert((0, None));
        e.0 += 1;
        if !null_at(i, 3) {
            e.1 = Some(e.1.unwrap_or(0) + i * 1_000_000_007);
        }
    }
    let keys = got
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let counts = got.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    let sums = got.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
    let mut actual = HashMap::new();
    for r in 0..got.num_rows() {
        let key = keys.is_valid(r).then(|| keys.value(r).to_string());
        let sum = sums.is_valid(r).then(|| sums.value(r));
        actual.insert(key, (counts.value(r), sum));
    }
    assert_eq!(actual, expected);
    worker.stop().await;
}

#[tokio::test]
async fn scan_of_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let a = put_rows(&client, 4, 9, 0..3_000).await;
    let b = put_rows(&client, 4, 9, 3_000..5_000).await;
    let c = put_rows(&client, 4, 9, 5_000..5_500).await;
    assert_ne!(a.name, b.name);

    // Only the listed files are read.
    let (_, got) = collect(
        &client,
        &scan_all(4, 9, vec![a.name.clone(), c.name.clone()]),
    )
    .await;
    let got = sorted_by(&got, "id");
    let expected = concat_batches(
        &all_types_schema(),
        &[all_types_batch(0..3_000), all_types_batch(5_000..5_500)],
    )
    .unwrap();
    assert_eq!(got, expected);
    worker.stop().await;
}

/// One request reads several shards of a table: the rows of exactly the listed files of each,
/// aggregated together, and a file missing from one shard names that shard.
#[tokio::test]
async fn scan_of_several_shards_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let a = put_rows(&client, 4, 1, 0..3_000).await;
    let b = put_rows(&client, 4, 2, 3_000..5_000).await;
    let unlisted = put_rows(&client, 4, 2, 5_000..9_000).await;
    let c = put_rows(&client, 4, 3, 9_000..9_100).await;
    let shard = |shard_id: i64, files: Vec<String>| ShardFiles {
        shard_id,
        files,
        checks: Default::default(),
    };

    let mut req = scan_all(4, 1, vec![a.name.clone()]);
    req.shards.push(shard(2, vec![b.name.clone()]));
    req.shards.push(shard(3, vec![c.name.clone()]));
    let (_, got) = collect(&client, &req).await;
    let expected = concat_batches(
        &all_types_schema(),
        &[
            all_types_batch(0..3_000),
            all_types_batch(3_000..5_000),
            all_types_batch(9_000..9_100),
        ],
    )
    .unwrap();
    assert_eq!(sorted_by(&got, "id"), expected);

    req.aggregate = Some(PartialAggregate {
        group_by: vec![],
        aggr: vec![count(lit(1))],
    });
    let (_, got) = collect(&client, &req).await;
    let counts = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((got.num_rows(), counts.value(0)), (1, 5_100));

    // Shard 3 does not hold shard 2's file.
    let mut req = scan_all(4, 2, vec![b.name.clone()]);
    req.shards.push(shard(3, vec![unlisted.name.clone()]));
    let err = client.scan(&req).await.err().unwrap();
    assert!(
        matches!(err, ShardStoreError::FileMissing { shard_id: 3, ref name, .. } if *name == unlisted.name),
        "{err:?}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn files_written_before_add_column_read_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let old_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("a", DataType::Utf8, true),
    ]));
    let old = RecordBatch::try_new(
        Arc::clone(&old_schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
        ],
    )
    .unwrap();
    let old_file = client
        .put_batches(2, 5, old_schema, batches_stream(vec![old]))
        .await
        .unwrap();
    let new_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("a", DataType::Utf8, true),
        Field::new("c", DataType::Decimal128(10, 2), true),
    ]));
    let new = RecordBatch::try_new(
        Arc::clone(&new_schema),
        vec![
            Arc::new(Int64Array::from(vec![4])),
            Arc::new(StringArray::from(vec![Some("w")])),
            Arc::new(
                Decimal128Array::from(vec![Some(1234)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let new_file = client
        .put_batches(2, 5, Arc::clone(&new_schema), batches_stream(vec![new]))
        .await
        .unwrap();

    let req = ScanRequest {
        table_id: 2,
        shards: vec![ShardFiles {
            shard_id: 5,
            files: vec![old_file.name, new_file.name],
            checks: Default::default(),
        }],
        table_schema: Arc::clone(&new_schema),
        filters: vec![],
        projection: Some(vec!["c".into(), "id".into()]),
        aggregate: None,
        limit: None,
    };
    let (schema, got) = collect(&client, &req).await;
    assert_eq!(schema.field(0).data_type(), &DataType::Decimal128(10, 2));
    let got = sorted_by(&got, "id");
    let c = got
        .column(0)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        vec![None, None, None, Some(1234)]
    );

    // A filter on the new column sees NULL in old files.
    let mut req = req;
    req.filters = vec![col("c").is_null()];
    let (_, got) = collect(&client, &req).await;
    assert_eq!(got.num_rows(), 3);
    worker.stop().await;
}

#[tokio::test]
async fn missing_file_is_file_missing() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let meta = put_rows(&client, 1, 2, 0..10).await;
    let gone = "00000000-0000-4000-8000-000000000000.parquet".to_string();
    let err = client
        .scan(&scan_all(1, 2, vec![meta.name.clone(), gone.clone()]))
        .await
        .err()
        .unwrap();
    match err {
        ShardStoreError::FileMissing {
            table_id,
            shard_id,
            name,
        } => assert_eq!((table_id, shard_id, name), (1, 2, gone)),
        other => panic!("expected FileMissing, got {other:?}"),
    }
    // The same file asked of another shard is missing too.
    let err = client
        .scan(&scan_all(1, 3, vec![meta.name]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, ShardStoreError::FileMissing { shard_id: 3, .. }),
        "{err:?}"
    );
    // A name that could escape the shard directory is a protocol error.
    let err = client
        .scan(&scan_all(1, 2, vec!["../../x.parquet".into()]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    worker.stop().await;
}

#[tokio::test]
async fn empty_file_list_gives_schema_and_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let mut req = scan_all(1, 1, vec![]);
    req.projection = Some(vec!["tsz".into(), "s".into()]);
    let (schema, stream) = client.scan_with_schema(&req).await.unwrap();
    assert_eq!(
        schema.as_ref(),
        &all_types_schema().project(&[11, 7]).unwrap()
    );
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);

    // A global aggregate over no files still yields its one row.
    req.aggregate = Some(PartialAggregate {
        group_by: vec![],
        aggr: vec![count(lit(1))],
    });
    let (_, got) = collect(&client, &req).await;
    assert_eq!(got.num_rows(), 1);
    let n = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(n.value(0), 0);
    worker.stop().await;
}

#[tokio::test]
async fn empty_put_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let meta = worker
        .client()
        .put_batches(1, 1, all_types_schema(), batches_stream(vec![]))
        .await
        .unwrap();
    assert_eq!(meta.rows, 0);
    assert_eq!(meta.name, "");
    assert!(files_under(&dir.path().join("shards")).is_empty());
    assert!(files_under(&dir.path().join("staging")).is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn failed_put_input_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let input = futures::stream::iter(vec![
        Ok(all_types_batch(0..1000)),
        Ok(all_types_batch(1000..2000)),
        Err(ShardStoreError::Protocol {
            message: "input broke".into(),
        }),
    ])
    .boxed();
    let err = worker
        .client()
        .put_batches(1, 1, all_types_schema(), input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::Protocol { message } if message == "input broke"),
        "{err:?}"
    );
    // The worker discards the staged file once it sees the stream end without commit.
    for _ in 0..50 {
        if files_under(&dir.path().join("staging")).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(files_under(&dir.path().join("shards")).is_empty());
    assert!(files_under(&dir.path().join("staging")).is_empty());
    worker.stop().await;
}

#[tokio::test]
async fn cluster_token_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), Some("s3cret")).await;
    let none = WorkerClient::new(&worker.addr, None).unwrap();
    let wrong = WorkerClient::new(&worker.addr, Some("guess".into())).unwrap();
    let right = WorkerClient::new(&worker.addr, Some("s3cret".into())).unwrap();

    for client in [&none, &wrong] {
        let err = client.health().await.unwrap_err();
        assert!(
            matches!(&err, ShardStoreError::Unauthenticated { addr } if *addr == worker.addr),
            "{err:?}"
        );
        let err = client.handshake("c1").await.unwrap_err();
        assert!(
            matches!(err, ShardStoreError::Unauthenticated { .. }),
            "{err:?}"
        );
        let err = client.scan(&scan_all(1, 1, vec![])).await.err().unwrap();
        assert!(
            matches!(err, ShardStoreError::Unauthenticated { .. }),
            "{err:?}"
        );
        let err = client
            .put_batches(
                1,
                1,
                all_types_schema(),
                batches_stream(vec![all_types_batch(0..10)]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ShardStoreError::Unauthenticated { .. }),
            "{err:?}"
        );
        let err = client.drop_shards(1, vec![1]).await.unwrap_err();
        assert!(
            matches!(err, ShardStoreError::Unauthenticated { .. }),
            "{err:?}"
        );
    }
    assert!(files_under(&dir.path().join("shards")).is_empty());

    right.health().await.unwrap();
    let meta = put_rows(&right, 1, 1, 0..10).await;
    let (_, got) = collect(&right, &scan_all(1, 1, vec![meta.name])).await;
    assert_eq!(got.num_rows(), 10);
    worker.stop().await;
}

#[tokio::test]
async fn handshake_binds_the_worker_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    assert_eq!(client.health().await.unwrap().cluster_id, None);
    let info = client.handshake("cluster-a").await.unwrap();
    assert_eq!(info.cluster_id.as_deref(), Some("cluster-a"));
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    client.handshake("cluster-a").await.unwrap();
    let err = client.handshake("cluster-b").await.unwrap_err();
    match err {
        ShardStoreError::WrongCluster { expected, actual } => {
            assert_eq!(
                (expected.as_str(), actual.as_str()),
                ("cluster-b", "cluster-a")
            )
        }
        other => panic!("expected WrongCluster, got {other:?}"),
    }
    drop(client);
    worker.stop().await;
    assert_eq!(
        fs::read_to_string(dir.path().join("cluster_id"))
            .unwrap()
            .trim(),
        "cluster-a"
    );

    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let err = client.handshake("cluster-b").await.unwrap_err();
    assert!(
        matches!(err, ShardStoreError::WrongCluster { .. }),
        "{err:?}"
    );
    assert_eq!(
        client.health().await.unwrap().cluster_id.as_deref(),
        Some("cluster-a")
    );
    client.handshake("cluster-a").await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn delete_files_and_drop_shards_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    let a = put_rows(&client, 3, 1, 0..100).await;
    let b = put_rows(&client, 3, 1, 100..200).await;
    let c = put_rows(&client, 3, 2, 0..100).await;
    let shard1 = dir.path().join("shards/3/1");

    let info = client.health().await.unwrap();
    assert_eq!(info.data_bytes, a.bytes + b.bytes + c.bytes);
    assert!(info.disk_free_bytes > 0);

    for _ in 0..2 {
        client
            .delete_files(3, 1, vec![a.name.clone(), "never-there.parquet".into()])
            .await
            .unwrap();
        assert!(!shard1.join(&a.name).exists());
        assert!(shard1.join(&b.name).exists());
    }
    let err = client
        .scan(&scan_all(3, 1, vec![a.name.clone()]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, ShardStoreError::FileMissing { .. }),
        "{err:?}"
    );

    for _ in 0..2 {
        client.drop_shards(3, vec![1, 99]).await.unwrap();
        assert!(!shard1.exists());
        assert!(dir.path().join("shards/3/2").join(&c.name).exists());
    }
    client.drop_shards(42, vec![1]).await.unwrap();
    assert_eq!(client.health().await.unwrap().data_bytes, c.bytes);
    worker.stop().await;
}

#[tokio::test]
async fn list_files_lists_committed_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let client = worker.client();
    assert!(client.list_files().await.unwrap().is_empty());

    let a = put_rows(&client, 3, 1, 0..100).await;
    let b = put_rows(&client, 3, 2, 0..50).await;
    let c = put_rows(&client, 4, 7, 0..10).await;
    // Things that are not `<digits>/<digits>/<valid name>.parquet` are not listed.
    let shards = dir.path().join("shards");
    fs::write(shards.join("3/1/notes.txt"), b"x").unwrap();
    fs::write(shards.join("3/1/.hidden.parquet"), b"x").unwrap();
    fs::create_dir_all(shards.join("3/1/sub.parquet")).unwrap();
    fs::create_dir_all(shards.join("x9/1")).unwrap();
    fs::write(shards.join("x9/1/a.parquet"), b"x").unwrap();
    fs::create_dir_all(shards.join("3/-5")).unwrap();
    fs::write(shards.join("3/-5/a.parquet"), b"x").unwrap();
    fs::write(shards.join("5"), b"a file, not a table directory").unwrap();
    fs::create_dir_all(dir.path().join("staging")).unwrap();
    fs::write(dir.path().join("staging/put-y.parquet.tmp"), b"x").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        shards.join("3/1").join(&a.name),
        shards.join("3/1/link.parquet"),
    )
    .unwrap();

    let mut listed = client.list_files().await.unwrap();
    listed.sort_by_key(|x| (x.table_id, x.shard_id));
    let key = |f: &StoredFile| (f.table_id, f.shard_id, f.name.clone(), f.bytes);
    assert_eq!(
        listed.iter().map(key).collect::<Vec<_>>(),
        vec![
            (3, 1, a.name.clone(), a.bytes),
            (3, 2, b.name.clone(), b.bytes),
            (4, 7, c.name.clone(), c.bytes),
        ]
    );
    for f in &listed {
        assert!(f.age_ms < 60_000, "{f:?}");
    }

    // Age comes from the modification time.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(shards.join("4/7").join(&c.name))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let listed = client.list_files().await.unwrap();
    let aged = listed.iter().find(|f| f.name == c.name).unwrap();
    assert!((7_200_000..7_300_000).contains(&aged.age_ms), "{aged:?}");

    client
        .delete_files(3, 1, vec![a.name.clone()])
        .await
        .unwrap();
    client.drop_shards(4, vec![7]).await.unwrap();
    let names: Vec<String> = client
        .list_files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec![b.name.clone()]);
    worker.stop().await;
}

#[tokio::test]
async fn leftover_tmp_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("staging")).unwrap();
    let tmp = dir.path().join("staging/put-crashed.parquet.tmp");
    fs::write(&tmp, b"half a file").unwrap();
    let worker = Worker::start(dir.path(), None).await;
    worker.client().health().await.unwrap();
    assert!(!tmp.exists());
    assert!(dir.path().join("shards").is_dir());
    worker.stop().await;
}

#[tokio::test]
async fn unreachable_worker_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let client = WorkerClient::new(&addr, None).unwrap();
    assert_eq!(client.addr(), addr);
    let err = client.health().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(matches!(&err, ShardStoreError::Unavailable { addr: a, .. } if *a == addr));
    let err = client.scan(&scan_all(1, 1, vec![])).await.err().unwrap();
    assert!(err.is_unavailable(), "{err:?}");
    let err = client
        .put_batches(
            1,
            1,
            all_types_schema(),
            batches_stream(vec![all_types_batch(0..10)]),
        )
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[test]
fn client_needs_a_runtime() {
    let err = WorkerClient::new("127.0.0.1:1", None).unwrap_err();
    assert!(matches!(err, ShardStoreError::Config { .. }), "{err:?}");
}

/// Needs a directory on a tiny file system, e.g. as root:
/// `mount -t tmpfs -o size=512k tmpfs /tmp/tinyfs && SHOAL_TEST_SMALL_FS=/tmp/tinyfs
/// cargo test -p shoal-shard-store --test worker -- --ignored disk_full`.
#[tokio::test]
#[ignore = "needs SHOAL_TEST_SMALL_FS: a directory on a file system of about 512 KiB"]
async fn put_on_a_full_disk_is_disk_full() {
    let root = PathBuf::from(std::env::var("SHOAL_TEST_SMALL_FS").unwrap());
    let dir = tempfile::tempdir_in(root).unwrap();
    let worker = Worker::start(dir.path(), None).await;
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let batches: Vec<RecordBatch> = (0..40)
        .map(|_| {
            let values = (0..10_000).map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                seed as i64
            });
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(values))],
            )
            .unwrap()
        })
        .collect();
    let err = worker
        .client()
        .put_batches(1, 1, schema, batches_stream(batches))
        .await
        .unwrap_err();
    assert!(matches!(err, ShardStoreError::DiskFull { .. }), "{err:?}");
    assert!(files_under(&dir.path().join("staging")).is_empty());
    assert!(files_under(&dir.path().join("shards")).is_empty());
    worker.stop().await;
}

// ---------------------------------------------------------------------------------------
// Moves: the target pulls files from the source into staging, then adopts them.
// ---------------------------------------------------------------------------------------

const TOKEN: &str = "move-token";

/// A source and a target worker sharing a cluster token, each with its own data directory.
struct Pair {
    source_dir: tempfile::TempDir,
    target_dir: tempfile::TempDir,
    source: Worker,
    target: Worker,
}

impl Pair {
    async fn start() -> Pair {
        Pair::start_with_target_failpoints(&[]).await
    }

    async fn start_with_target_failpoints(failpoints: &[&str]) -> Pair {
        let source_dir = tempfile::tempdir().unwrap();
        let target_dir = tempfile::tempdir().unwrap();
        let source = Worker::start(source_dir.path(), Some(TOKEN)).await;
        let target =
            Worker::start_with_failpoints(target_dir.path(), Some(TOKEN), failpoints).await;
        Pair {
            source_dir,
            target_dir,
            source,
            target,
        }
    }

    fn source_client(&self) -> WorkerClient {
        self.source.client_with_token(TOKEN)
    }

    fn target_client(&self) -> WorkerClient {
        self.target.client_with_token(TOKEN)
    }

    fn request(
        &self,
        task_id: i64,
        table: i64,
        shard: i64,
        files: &[FileMeta],
    ) -> PullFilesRequest {
        PullFilesRequest {
            task_id,
            source_addr: self.source.addr.clone(),
            table_id: table,
            shard_id: shard,
            files: files.to_vec(),
            max_bytes_per_s: None,
        }
    }

    fn staged_dir(&self, task_id: i64, table: i64, shard: i64) -> PathBuf {
        self.target_dir
            .path()
            .join(format!("staging/move-{task_id}/{table}/{shard}"))
    }

    async fn stop(self) {
        self.source.stop().await;
        self.target.stop().await;
    }
}

/// Puts three files of rows into table 5 shard 2 on `client`.
async fn put_three_files(client: &WorkerClient) -> Vec<FileMeta> {
    vec![
        put_rows(client, 5, 2, 0..4_000).await,
        put_rows(client, 5, 2, 4_000..9_000).await,
        put_rows(client, 5, 2, 9_000..9_500).await,
    ]
}

/// Writes `len` pseudo-random bytes as a shard file directly into a worker's data directory
/// (moves copy bytes, they never parse them) and returns the catalog's view of it.
/// `count` files `f<i>.parquet` of table 1, shard 1, `total` bytes in all.
fn raw_shard_files(data_dir: &Path, count: usize, total: usize) -> Vec<FileMeta> {
    (0..count)
        .map(|i| raw_shard_file(data_dir, 1, 1, &format!("f{i}.parquet"), total / count))
        .collect()
}

fn raw_shard_file(data_dir: &Path, table: i64, shard: i64, name: &str, len: usize) -> FileMeta {
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let dir = data_dir.join(format!("shards/{table}/{shard}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), &bytes).unwrap();
    FileMeta {
        name: name.to_string(),
        bytes: len as u64,
        rows: 0,
        checksum: crc32c::crc32c(&bytes),
    }
}

fn names(files: &[FileMeta]) -> Vec<String> {
    files.iter().map(|f| f.name.clone()).collect()
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = files_under(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The complete files staged in `dir`, once the part files of transfers cancelled by a failed
/// call are gone (their writers remove them just after the call returns).
async fn staged_after_cleanup(dir: &Path) -> Vec<String> {
    for _ in 0..100 {
        let names = sorted_names(dir);
        if names.iter().all(|n| !n.ends_with(".part")) {
            return names;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "part files left in {}: {:?}",
        dir.display(),
        sorted_names(dir)
    );
}

#[tokio::test]
async fn pull_then_adopt_moves_a_shard() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let target = pair.target_client();

    let report = target
        .pull_files(&pair.request(11, 5, 2, &files))
        .await
        .unwrap();
    assert_eq!(
        report,
        PullFilesReport {
            files_copied: 3,
            bytes_copied: files.iter().map(|f| f.bytes).sum(),
            files_skipped: 0,
        }
    );
    // Staged, complete and byte-identical; nothing live on the target yet.
    let staged = pair.staged_dir(11, 5, 2);
    let mut expected = names(&files);
    expected.sort();
    assert_eq!(sorted_names(&staged), expected);
    for f in &files {
        let bytes = fs::read(staged.join(&f.name)).unwrap();
        assert_eq!(
            (bytes.len() as u64, crc32c::crc32c(&bytes)),
            (f.bytes, f.checksum)
        );
    }
    assert!(target.list_files().await.unwrap().is_empty());
    assert_eq!(target.list_staging().await.unwrap(), vec![11]);

    target.adopt_staged(11, 5, 2, names(&files)).await.unwrap();
    assert!(sorted_names(&staged).is_empty());
    let live = pair.target_dir.path().join("shards/5/2");
    assert_eq!(sorted_names(&live), expected);

    let req = scan_all(5, 2, names(&files));
    let (_, on_source) = collect(&pair.source_client(), &req).await;
    let (_, on_target) = collect(&target, &req).await;
    assert_eq!(on_target.num_rows(), 9_500);
    assert_eq!(sorted_by(&on_target, "id"), sorted_by(&on_source, "id"));
    assert_eq!(sorted_by(&on_target, "id"), all_types_batch(0..9_500));

    target.discard_staging(11).await.unwrap();
    assert!(target.list_staging().await.unwrap().is_empty());
    pair.stop().await;
}

#[tokio::test]
async fn pull_again_skips_verified_files() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let target = pair.target_client();
    let req = pair.request(3, 5, 2, &files);
    target.pull_files(&req).await.unwrap();

    let again = target.pull_files(&req).await.unwrap();
    assert_eq!(
        again,
        PullFilesReport {
            files_copied: 0,
            bytes_copied: 0,
            files_skipped: 3,
        }
    );

    // A staged file of the right size but damaged content is fetched again.
    let damaged = pair.staged_dir(3, 5, 2).join(&files[1].name);
    let mut bytes = fs::read(&damaged).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&damaged, &bytes).unwrap();
    let repaired = target.pull_files(&req).await.unwrap();
    assert_eq!(
        repaired,
        PullFilesReport {
            files_copied: 1,
            bytes_copied: files[1].bytes,
            files_skipped: 2,
        }
    );
    let bytes = fs::read(&damaged).unwrap();
    assert_eq!(crc32c::crc32c(&bytes), files[1].checksum);

    // The catalog's later files are fetched alongside those already there.
    let more = put_rows(&pair.source_client(), 5, 2, 9_500..9_600).await;
    let mut all = files.clone();
    all.push(more.clone());
    let delta = target
        .pull_files(&pair.request(3, 5, 2, &all))
        .await
        .unwrap();
    assert_eq!((delta.files_copied, delta.files_skipped), (1, 3));
    pair.stop().await;
}

#[tokio::test]
async fn pull_respects_the_rate_limit() {
    let pair = Pair::start().await;
    let file = raw_shard_file(pair.source_dir.path(), 1, 1, "big.parquet", 2_000_000);
    let mut req = pair.request(1, 1, 1, std::slice::from_ref(&file));
    req.max_bytes_per_s = Some(4_000_000);
    let started = std::time::Instant::now();
    let report = pair.target_client().pull_files(&req).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.bytes_copied, 2_000_000);
    // 2 MB at 4 MB/s is half a second; allow for a burst and timer slack.
    assert!(took >= std::time::Duration::from_millis(400), "{took:?}");

    req.max_bytes_per_s = Some(0);
    req.task_id = 2;
    let err = pair.target_client().pull_files(&req).await.unwrap_err();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    pair.stop().await;
}

#[tokio::test]
async fn wrong_catalog_checksum_is_a_checksum_mismatch() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let target = pair.target_client();

    let mut wrong = files.clone();
    wrong[1].checksum ^= 0xdead_beef;
    let err = target
        .pull_files(&pair.request(4, 5, 2, &wrong))
        .await
        .unwrap_err();
    match &err {
        ShardStoreError::ChecksumMismatch {
            name,
            expected_bytes,
            actual_bytes,
            expected_checksum,
            actual_checksum,
        } => {
            assert_eq!(name, &files[1].name);
            assert_eq!(
                (*expected_bytes, *actual_bytes),
                (files[1].bytes, files[1].bytes)
            );
            assert_eq!(*expected_checksum, wrong[1].checksum);
            assert_eq!(*actual_checksum, files[1].checksum);
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "checksum mismatch for file {}: expected ",
            files[1].name
        )) && message.contains(&format!("crc32c {:#010x}", files[1].checksum)),
        "{message}"
    );
    // The bad file left nothing, not even a part file. Files pulled alongside it may be
    // staged (complete and verified) or not, but never half-written.
    let staged = staged_after_cleanup(&pair.staged_dir(4, 5, 2)).await;
    assert!(!staged.contains(&files[1].name), "{staged:?}");

    // A wrong size is caught the same way.
    let mut short = files.clone();
    short[2].bytes -= 1;
    let err = target
        .pull_files(&pair.request(4, 5, 2, &short))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::ChecksumMismatch { actual_bytes, expected_bytes, .. }
            if *actual_bytes == *expected_bytes + 1),
        "{err:?}"
    );
    let staged = staged_after_cleanup(&pair.staged_dir(4, 5, 2)).await;
    assert!(!staged.contains(&files[2].name), "{staged:?}");
    // With the catalog's true metadata the pull completes, keeping what was staged.
    let report = target
        .pull_files(&pair.request(4, 5, 2, &files))
        .await
        .unwrap();
    assert_eq!(report.files_skipped, staged.len());
    assert_eq!(report.files_copied, 3 - staged.len());
    pair.stop().await;
}

#[tokio::test]
async fn pull_needs_the_cluster_token() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let req = pair.request(6, 5, 2, &files);

    // The coordinator must present the token to the target...
    let err = pair
        .target
        .client_with_token("guess")
        .pull_files(&req)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::Unauthenticated { addr } if *addr == pair.target.addr),
        "{err:?}"
    );
    // ...and the source refuses raw file reads without it.
    let err = pair
        .source
        .client()
        .fetch_file_stream(5, 2, &files[0].name, 0)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, ShardStoreError::Unauthenticated { .. }),
        "{err:?}"
    );

    // A target of another cluster (another token) is refused by the source, and the
    // coordinator learns that it was the source that refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Worker::start(other_dir.path(), Some("other-token")).await;
    let err = other
        .client_with_token("other-token")
        .pull_files(&req)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::Unauthenticated { addr } if *addr == pair.source.addr),
        "{err:?}"
    );
    assert!(files_under(&other_dir.path().join("shards")).is_empty());
    assert!(files_under(&other_dir.path().join("staging/move-6"))
        .iter()
        .all(|p| p.is_dir()));
    other.stop().await;
    pair.stop().await;
}

#[tokio::test]
async fn unreachable_source_is_unavailable() {
    let target_dir = tempfile::tempdir().unwrap();
    let target = Worker::start(target_dir.path(), None).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = listener.local_addr().unwrap().to_string();
    drop(listener);
    let req = PullFilesRequest {
        task_id: 9,
        source_addr: gone.clone(),
        table_id: 1,
        shard_id: 1,
        files: vec![FileMeta {
            name: "a.parquet".into(),
            bytes: 10,
            rows: 1,
            checksum: 1,
        }],
        max_bytes_per_s: None,
    };
    let err = target.client().pull_files(&req).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        matches!(&err, ShardStoreError::Unavailable { addr, .. } if *addr == gone),
        "{err:?}"
    );
    assert!(err.to_string().contains(&gone), "{err}");
    assert!(files_under(&target_dir.path().join("staging/move-9"))
        .iter()
        .all(|p| p.is_dir()));
    target.stop().await;
}

#[tokio::test]
async fn file_missing_on_the_source_is_file_missing() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let mut listed = files.clone();
    listed.push(FileMeta {
        name: "00000000-0000-4000-8000-000000000000.parquet".into(),
        bytes: 10,
        rows: 1,
        checksum: 7,
    });
    let err = pair
        .target_client()
        .pull_files(&pair.request(8, 5, 2, &listed))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::FileMissing { table_id: 5, shard_id: 2, name }
            if *name == listed[3].name),
        "{err:?}"
    );
    // Names that could leave the shard directory are refused before anything is fetched.
    let mut escaping = files.clone();
    escaping[0].name = "../../cluster_id".into();
    let err = pair
        .target_client()
        .pull_files(&pair.request(8, 5, 2, &escaping))
        .await
        .unwrap_err();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    pair.stop().await;
}

#[tokio::test]
async fn fetch_file_stream_sends_raw_chunks_in_order() {
    let pair = Pair::start().await;
    let file = raw_shard_file(pair.source_dir.path(), 2, 3, "raw.parquet", 1_000_003);
    let bytes = fs::read(pair.source_dir.path().join("shards/2/3/raw.parquet")).unwrap();
    let client = pair.source_client();
    for offset in [0u64, 1, 262_144, 1_000_003] {
        let chunks: Vec<_> = client
            .fetch_file_stream(2, 3, &file.name, offset)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut next = offset;
        let mut got = Vec::new();
        for chunk in &chunks {
            assert_eq!(chunk.offset, next);
            assert!(!chunk.bytes.is_empty() && chunk.bytes.len() <= 1 << 20);
            next += chunk.bytes.len() as u64;
            got.extend_from_slice(&chunk.bytes);
        }
        assert_eq!(got, bytes[offset as usize..], "offset {offset}");
    }
    let err = client
        .fetch_file_stream(2, 3, &file.name, 1_000_004)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    let err = client
        .fetch_file_stream(2, 3, "nope.parquet", 0)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ShardStoreError::FileMissing { name, .. } if name == "nope.parquet"),
        "{err:?}"
    );
    // Scans on the same worker are unaffected by the second kind of ticket.
    let (_, none) = collect(&client, &scan_all(2, 3, vec![])).await;
    assert_eq!(none.num_rows(), 0);
    pair.stop().await;
}

#[tokio::test]
async fn discard_staging_removes_the_task_directory() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let target = pair.target_client();
    target
        .pull_files(&pair.request(21, 5, 2, &files))
        .await
        .unwrap();
    target
        .pull_files(&pair.request(22, 5, 2, &files[..1]))
        .await
        .unwrap();
    assert_eq!(target.list_staging().await.unwrap(), vec![21, 22]);
    for _ in 0..2 {
        target.discard_staging(21).await.unwrap();
        assert!(!pair.target_dir.path().join("staging/move-21").exists());
        assert_eq!(target.list_staging().await.unwrap(), vec![22]);
    }
    target.discard_staging(12345).await.unwrap();
    // Other directories in staging are not tasks.
    fs::create_dir_all(pair.target_dir.path().join("staging/move-x")).unwrap();
    fs::create_dir_all(pair.target_dir.path().join("staging/move-007")).unwrap();
    fs::write(pair.target_dir.path().join("staging/move-5"), b"a file").unwrap();
    assert_eq!(target.list_staging().await.unwrap(), vec![22]);
    assert!(target.list_files().await.unwrap().is_empty());
    pair.stop().await;
}

#[tokio::test]
async fn adopt_staged_is_idempotent() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    let target = pair.target_client();
    target
        .pull_files(&pair.request(31, 5, 2, &files))
        .await
        .unwrap();
    for _ in 0..2 {
        target.adopt_staged(31, 5, 2, names(&files)).await.unwrap();
    }
    let listed = target.list_files().await.unwrap();
    assert_eq!(listed.len(), 3);
    // Staged again (say, a retried pull after the adopt) and adopted again: still one copy.
    target
        .pull_files(&pair.request(31, 5, 2, &files))
        .await
        .unwrap();
    target.adopt_staged(31, 5, 2, names(&files)).await.unwrap();
    assert!(sorted_names(&pair.staged_dir(31, 5, 2)).is_empty());
    assert_eq!(target.list_files().await.unwrap().len(), 3);

    // Neither staged nor live.
    let err = target
        .adopt_staged(
            31,
            5,
            2,
            vec!["00000000-0000-4000-8000-000000000000.parquet".into()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ShardStoreError::FileMissing {
                table_id: 5,
                shard_id: 2,
                ..
            }
        ),
        "{err:?}"
    );

    // A live file of the same name but another size is never replaced.
    let staged = pair.staged_dir(32, 5, 2);
    fs::create_dir_all(&staged).unwrap();
    fs::write(staged.join(&files[0].name), b"something else").unwrap();
    let err = target
        .adopt_staged(32, 5, 2, vec![files[0].name.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::FileConflict { name, live_bytes, staged_bytes: 14, .. }
            if *name == files[0].name && *live_bytes == files[0].bytes),
        "{err:?}"
    );
    let live = fs::read(
        pair.target_dir
            .path()
            .join("shards/5/2")
            .join(&files[0].name),
    )
    .unwrap();
    assert_eq!(crc32c::crc32c(&live), files[0].checksum);
    let (_, rows) = collect(&target, &scan_all(5, 2, names(&files))).await;
    assert_eq!(rows.num_rows(), 9_500);
    pair.stop().await;
}

#[tokio::test]
async fn restart_removes_part_files_and_keeps_staged_ones() {
    let pair = Pair::start().await;
    let files = put_three_files(&pair.source_client()).await;
    pair.target_client()
        .pull_files(&pair.request(41, 5, 2, &files[..2]))
        .await
        .unwrap();
    let Pair {
        source_dir,
        target_dir,
        source,
        target,
    } = pair;
    target.stop().await;

    // A crash in the middle of receiving the third file left its part file.
    let staged = target_dir.path().join("staging/move-41/5/2");
    let part = staged.join(format!("{}.part", files[2].name));
    fs::write(&part, b"half a file").unwrap();
    // A put's temp file is still removed too; other staging entries stay.
    fs::write(target_dir.path().join("staging/put-x.parquet.tmp"), b"junk").unwrap();

    let target = Worker::start(target_dir.path(), Some(TOKEN)).await;
    // Serving means the start-up clean-up is done.
    target.client_with_token(TOKEN).health().await.unwrap();
    let pair = Pair {
        source_dir,
        target_dir,
        source,
        target,
    };
    let mut expected = names(&files[..2]);
    expected.sort();
    assert_eq!(sorted_names(&staged), expected);
    assert!(!pair
        .target_dir
        .path()
        .join("staging/put-x.parquet.tmp")
        .exists());

    let report = pair
        .target_client()
        .pull_files(&pair.request(41, 5, 2, &files))
        .await
        .unwrap();
    assert_eq!((report.files_copied, report.files_skipped), (1, 2));
    assert_eq!(report.bytes_copied, files[2].bytes);
    pair.stop().await;
}

#[tokio::test]
async fn pull_corrupt_once_failpoint_is_caught_by_the_checksum() {
    let pair = Pair::start_with_target_failpoints(&["pull_corrupt_once"]).await;
    let files = put_three_files(&pair.source_client()).await;
    let target = pair.target_client();
    let req = pair.request(51, 5, 2, &files);

    let err = target.pull_files(&req).await.unwrap_err();
    match &err {
        ShardStoreError::ChecksumMismatch {
            name,
            expected_bytes,
            actual_bytes,
            expected_checksum,
            actual_checksum,
        } => {
            // Whichever file was written first (they are pulled concurrently).
            let file = files.iter().find(|f| f.name == *name).unwrap();
            assert_eq!(expected_bytes, actual_bytes);
            assert_eq!(*expected_checksum, file.checksum);
            assert_ne!(actual_checksum, expected_checksum);
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    let ShardStoreError::ChecksumMismatch {
        name: corrupted, ..
    } = &err
    else {
        unreachable!()
    };
    let staged = staged_after_cleanup(&pair.staged_dir(51, 5, 2)).await;
    assert!(!staged.contains(corrupted), "{staged:?}");

    // One shot: the retry is clean.
    let report = target.pull_files(&req).await.unwrap();
    assert_eq!(
        (report.files_copied, report.files_skipped),
        (3 - staged.len(), staged.len())
    );
    target.adopt_staged(51, 5, 2, names(&files)).await.unwrap();
    let (_, rows) = collect(&target, &scan_all(5, 2, names(&files))).await;
    assert_eq!(sorted_by(&rows, "id"), all_types_batch(0..9_500));
    pair.stop().await;
}

#[test]
fn failpoints_from_env_reads_the_variable_syntax() {
    assert_eq!(
        shoal_shard_store::failpoints::parse("pull_corrupt_once, crash_after:copying"),
        vec!["pull_corrupt_once", "crash_after:copying"]
    );
}

/// Throughput of a move against `cp` between two data directories on the same machine, in
/// alternating rounds (the median of each is reported). Run with
/// `cargo test --release -p shoal-shard-store --test worker -- --ignored --nocapture
/// move_throughput`; `SHOAL_MOVE_BENCH_MB` sets the data size (default 1024) and
/// `SHOAL_MOVE_BENCH_FILES` the number of files it is split into (default 8). Files are pulled
/// in calls of up to 64 MB, as the coordinator does.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn move_throughput_against_cp() {
    const ROUNDS: usize = 3;
    let mb: usize = std::env::var("SHOAL_MOVE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let count: usize = std::env::var("SHOAL_MOVE_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let pair = Pair::start().await;
    let files = raw_shard_files(pair.source_dir.path(), count, mb * 1_000_000);
    let mut calls: Vec<Vec<FileMeta>> = Vec::new();
    for f in &files {
        match calls.last_mut() {
            Some(call) if call.iter().map(|f| f.bytes).sum::<u64>() < 64 << 20 => {
                call.push(f.clone())
            }
            _ => calls.push(vec![f.clone()]),
        }
    }
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let sync = || {
        assert!(std::process::Command::new("sync")
            .status()
            .unwrap()
            .success())
    };
    sync();

    // The network alone: fetch every file and drop the bytes.
    let started = std::time::Instant::now();
    let source = pair.source_client();
    for f in &files {
        let mut chunks = source.fetch_file_stream(1, 1, &f.name, 0).await.unwrap();
        while let Some(chunk) = chunks.next().await {
            chunk.unwrap();
        }
    }
    let fetch_secs = started.elapsed().as_secs_f64();

    let target = pair.target_client();
    let (mut cp_secs, mut move_secs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // cp of the shard directory into the other data directory, made durable.
        let cp_dir = pair.target_dir.path().join("cp");
        fs::create_dir_all(&cp_dir).unwrap();
        let started = std::time::Instant::now();
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(pair.source_dir.path().join("shards/1/1"))
            .arg(&cp_dir)
            .status()
            .unwrap();
        assert!(status.success());
        sync();
        cp_secs.push(started.elapsed().as_secs_f64());
        fs::remove_dir_all(&cp_dir).unwrap();
        sync();

        // The move's copy as the coordinator runs it.
        let task = 100 + round as i64;
        let started = std::time::Instant::now();
        for call in &calls {
            target
                .pull_files(&pair.request(task, 1, 1, call))
                .await
                .unwrap();
        }
        move_secs.push(started.elapsed().as_secs_f64());
        target.discard_staging(task).await.unwrap();
        sync();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate = |secs: f64| total as f64 / secs / 1e6;
    let (cp, moved) = (median(&mut cp_secs), median(&mut move_secs));
    println!(
        "{} MB in {count} files, median of {ROUNDS}: cp + sync {:.0} MB/s, pull_files {:.0} MB/s ({:.2}x cp); \
         network only {:.0} MB/s",
        total / 1_000_000,
        rate(cp),
        rate(moved),
        cp / moved,
        rate(fetch_secs),
    );
    pair.stop().await;
}

/// A file of several MiB and an odd size arrives byte for byte (over the raw file channel,
/// which serves on the same port as Flight), and both workers keep serving Flight calls.
#[tokio::test]
async fn pull_of_a_large_file_is_byte_identical() {
    let pair = Pair::start().await;
    let file = raw_shard_file(pair.source_dir.path(), 3, 4, "large.parquet", 5_000_003);
    let empty = raw_shard_file(pair.source_dir.path(), 3, 4, "empty.parquet", 0);
    let files = vec![file.clone(), empty.clone()];
    let report = pair
        .target_client()
        .pull_files(&pair.request(61, 3, 4, &files))
        .await
        .unwrap();
    assert_eq!((report.files_copied, report.bytes_copied), (2, 5_000_003));
    let staged = pair.staged_dir(61, 3, 4);
    assert_eq!(
        fs::read(staged.join(&file.name)).unwrap(),
        fs::read(pair.source_dir.path().join("shards/3/4/large.parquet")).unwrap()
    );
    assert_eq!(fs::read(staged.join(&empty.name)).unwrap().len(), 0);
    pair.source_client().health().await.unwrap();
    pair.target_client().health().await.unwrap();
    pair.stop().await;
}

/// Latency of point scans on a worker while it receives a move, against the same scans on
/// the idle worker (median and p99 of each). Run with `cargo test --release -p
/// shoal-shard-store --test worker -- --ignored --nocapture point_scans_during_a_move`;
/// `SHOAL_MOVE_BENCH_MB` sets the size of the move (default 1024). A scan every 20 ms, as a
/// reader would send them.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run in release mode"]
async fn point_scans_during_a_move() {
    use std::time::{Duration, Instant};
    let mb: usize = std::env::var("SHOAL_MOVE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let pair = Pair::start().await;
    let target = pair.target_client();
    // The table the scans read lives on the target, the worker that receives the move.
    let table = put_rows(&target, 7, 1, 0..100_000).await;
    let mut req = scan_all(7, 1, vec![table.name.clone()]);
    req.filters = vec![col("id").eq(lit(42_424i64))];
    let point = || async {
        let started = Instant::now();
        let (_, rows) = collect(&target, &req).await;
        assert_eq!(rows.num_rows(), 1);
        started.elapsed()
    };
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        (ms(v[v.len() / 2]), ms(v[v.len() * 99 / 100]), v.len())
    };

    for _ in 0..20 {
        point().await;
    }
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(point().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let count = 8;
    let files = raw_shard_files(pair.source_dir.path(), count, mb * 1_000_000);
    assert!(std::process::Command::new("sync")
        .status()
        .unwrap()
        .success());
    let requests: Vec<PullFilesRequest> = files
        .chunks(1)
        .map(|call| pair.request(200, 1, 1, call))
        .collect();
    let mover = pair.target_client();
    let started = Instant::now();
    let moving = tokio::spawn(async move {
        for req in &requests {
            mover.pull_files(req).await.unwrap();
        }
    });
    let mut busy = Vec::new();
    while !moving.is_finished() {
        busy.push(point().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    moving.await.unwrap();
    let move_secs = started.elapsed().as_secs_f64();
    let (idle_p50, idle_p99, idle_n) = stats(&mut idle);
    let (busy_p50, busy_p99, busy_n) = stats(&mut busy);
    println!(
        "point scans idle ({idle_n}): p50 {idle_p50:.2} ms p99 {idle_p99:.2} ms; during a move of \
         {mb} MB at {:.0} MB/s ({busy_n}): p50 {busy_p50:.2} ms p99 {busy_p99:.2} ms; \
         p50 {:.2}x, p99 {:.2}x",
        (mb as f64) / move_secs,
        busy_p50 / idle_p50,
        busy_p99 / idle_p99,
    );
    pair.target_client().discard_staging(200).await.unwrap();
    pair.stop().await;
}
