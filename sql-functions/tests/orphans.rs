//! Orphan collection end to end: a real worker on 127.0.0.1:0, an in-memory catalog and a
//! `Cluster`, without the coordinator.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use shoal_catalog::{Catalog, ColumnDef, SqlType};
use shoal_shard_store::{
    serve_worker_with_listener, FileMeta, StoredFile, WorkerClient, WorkerConfig,
};
use shoal_sql_functions::types::table_schema;
use shoal_sql_functions::{Cluster, ClusterConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Worker {
    port: u16,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<shoal_shard_store::Result<()>>,
}

impl Worker {
    async fn start(dir: &Path) -> Worker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = WorkerConfig {
            listen,
            data_dir: dir.to_path_buf(),
            cluster_token: None,
            failpoints: Vec::new(),
            memory_limit: None,
            tls: None,
            task_session: Default::default(),
        };
        let handle = tokio::spawn(serve_worker_with_listener(cfg, listener, async {
            let _ = stopped.await;
        }));
        Worker {
            port: listen.port(),
            stop,
            handle,
        }
    }

    fn client(&self) -> WorkerClient {
        WorkerClient::new(&format!("127.0.0.1:{}", self.port), None).unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap().unwrap();
    }
}

fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new("id", SqlType::BigInt, false),
        ColumnDef::new("v", SqlType::Text, false),
    ]
}

fn batch(schema: &SchemaRef, ids: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter_values(ids.map(|i| format!("v{i}")))),
        ],
    )
    .unwrap()
}

/// Writes rows `ids` into `table` as one statement and commits it.
async fn insert(cluster: &Cluster, table: &str, ids: std::ops::Range<i64>) {
    let snapshot = cluster.catalog().snapshot(table).unwrap();
    let mut writer = cluster.writer_for(&snapshot).unwrap();
    let schema = Arc::clone(writer.schema());
    writer.write(batch(&schema, ids)).await.unwrap();
    let files = writer.finish().await.unwrap();
    cluster.commit(&files).unwrap();
}

/// The ids of every committed row of a single-shard table.
async fn read_ids(cluster: &Cluster, table: &str) -> Vec<i64> {
    let snapshot = cluster.catalog().snapshot(table).unwrap();
    let schema = table_schema(&snapshot.table.columns);
    let shard_id = snapshot.shards[0].shard_id;
    let _guard = cluster.begin_snapshot();
    let stream = cluster
        .scan_shard(&snapshot, shard_id, &schema)
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            col.values().to_vec()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// A file written straight to the worker, as a statement that crashed before its commit
/// would leave it.
async fn put_orphan(
    client: &WorkerClient,
    schema: &SchemaRef,
    table_id: i64,
    shard_id: i64,
) -> FileMeta {
    let rows = futures::stream::iter([Ok(batch(schema, 1000..1010))]).boxed();
    client
        .put_batches(table_id, shard_id, Arc::clone(schema), rows)
        .await
        .unwrap()
}

fn sorted(files: Vec<StoredFile>) -> Vec<(i64, i64, String)> {
    let mut out: Vec<(i64, i64, String)> = files
        .into_iter()
        .map(|f| (f.table_id, f.shard_id, f.name))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn orphans_are_collected_and_committed_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path()).await;
    let client = worker.client();
    let catalog = Arc::new(Catalog::open_in_memory().unwrap());
    let cluster = Cluster::new(Arc::clone(&catalog), ClusterConfig::default());
    let node_id = cluster.add_node("127.0.0.1", worker.port).await.unwrap();

    let t = cluster.create_table("events", columns(), None).unwrap();
    let gone = cluster.create_table("gone", columns(), None).unwrap();
    insert(&cluster, "events", 0..100).await;
    insert(&cluster, "gone", 0..5).await;
    // Truncate makes `gone`'s file a cleanup record: the cleanup loop's job, not ours.
    cluster.truncate("gone").unwrap();

    let schema = table_schema(&t.columns);
    let snapshot = catalog.snapshot("events").unwrap();
    let shard_id = snapshot.shards[0].shard_id;
    let committed = snapshot.shards[0].placements[0].files[0].name.clone();
    let gone_shard = catalog.snapshot("gone").unwrap().shards[0].shard_id;
    let gone_file = catalog.node_cleanup_names(node_id).unwrap()[0]
        .2
        .clone()
        .unwrap();

    // Orphans: one next to the committed file, one of a table the catalog never heard of.
    let orphan = put_orphan(&client, &schema, t.table_id, shard_id).await;
    let stray = put_orphan(&client, &schema, 999_999, 5).await;
    assert_eq!(client.list_files().await.unwrap().len(), 4);
    // The orphan is invisible.
    assert_eq!(
        read_ids(&cluster, "events").await,
        (0..100).collect::<Vec<_>>()
    );

    // Everything is younger than an hour: nothing is deleted.
    assert_eq!(cluster.collect_orphans(3_600_000).await.unwrap(), 0);
    assert_eq!(client.list_files().await.unwrap().len(), 4);

    // A node marked dead is skipped; a node that is live in the catalog but unreachable is
    // skipped with a warning: neither fails the round.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    catalog.add_node("127.0.0.1", dead_port).unwrap();

    assert_eq!(cluster.collect_orphans(0).await.unwrap(), 2);
    let mut expected = vec![
        (t.table_id, shard_id, committed.clone()),
        (gone.table_id, gone_shard, gone_file),
    ];
    expected.sort();
    assert_eq!(sorted(client.list_files().await.unwrap()), expected);
    let shard_dir = dir.path().join(format!("shards/{}/{shard_id}", t.table_id));
    assert!(!shard_dir.join(&orphan.name).exists());
    assert!(!dir
        .path()
        .join("shards/999999/5")
        .join(&stray.name)
        .exists());
    assert!(shard_dir.join(&committed).exists());
    assert_eq!(
        read_ids(&cluster, "events").await,
        (0..100).collect::<Vec<_>>()
    );

    // Idempotent: nothing left to collect.
    assert_eq!(cluster.collect_orphans(0).await.unwrap(), 0);

    // The cleanup loop then removes the truncated file; orphan collection never saw it.
    assert_eq!(cluster.cleanup_once().await.unwrap(), 1);
    assert_eq!(
        sorted(client.list_files().await.unwrap()),
        vec![(t.table_id, shard_id, committed)]
    );
    assert_eq!(cluster.collect_orphans(0).await.unwrap(), 0);
    assert_eq!(
        read_ids(&cluster, "events").await,
        (0..100).collect::<Vec<_>>()
    );

    worker.stop().await;
}
