use super::*;

use std::path::Path;

use crate::protocol::{FileMeta, PullFilesRequest};
use crate::service::{serve, WorkerConfig};
use crate::tls::tests::{files, make_certs};
use crate::transfer::{pull_files, PullProgress, SourceClients, TaskLocks};
use crate::WorkerClient;

const TOKEN: &str = "raw-token";

/// A worker serving on 127.0.0.1 until dropped (or stopped).
struct Worker {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<()>>,
}

impl Worker {
    /// A worker with the raw channel, or (`raw_channel` false) one as before it.
    async fn start(dir: &Path, raw_channel: bool) -> Worker {
        Self::start_with(dir, raw_channel, None).await
    }

    /// A worker with the raw channel and node-to-node TLS.
    async fn start_tls(dir: &Path, tls: ClusterTls) -> Worker {
        Self::start_with(dir, true, Some(tls)).await
    }

    async fn start_with(dir: &Path, raw_channel: bool, tls: Option<ClusterTls>) -> Worker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let cfg = WorkerConfig {
            listen,
            data_dir: dir.to_path_buf(),
            cluster_token: Some(TOKEN.into()),
            failpoints: Vec::new(),
            memory_limit: None,
            tls,
            task_session: Default::default(),
        };
        let shutdown = async {
            let _ = stopped.await;
        };
        let handle = tokio::spawn(serve(cfg, listener, shutdown, raw_channel));
        Worker {
            addr: listen.to_string(),
            stop: Some(stop),
            handle,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.unwrap().unwrap();
    }
}

/// Writes `len` pseudo-random bytes as shard file `name` of table 1 shard 2.
fn shard_file(data_dir: &Path, name: &str, len: usize) -> FileMeta {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let dir = data_dir.join("shards/1/2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), &bytes).unwrap();
    FileMeta {
        name: name.into(),
        bytes: len as u64,
        rows: 0,
        checksum: crc32c::crc32c(&bytes),
    }
}

fn ticket(name: &str, offset: u64) -> FileTicket {
    FileTicket {
        table_id: 1,
        shard_id: 2,
        name: name.into(),
        offset,
    }
}

fn bearer() -> Option<&'static str> {
    Some("Bearer raw-token")
}

/// Everything the source sends after its answer.
async fn read_all(mut socket: RawSocket) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        socket.read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap()
}

/// A target's side of `pull_files`, run in this process against the worker at `source`.
struct Target {
    dir: tempfile::TempDir,
    store: Arc<FileStore>,
    sources: SourceClients,
    failpoints: Arc<FailpointSet>,
    locks: TaskLocks,
    progress: Arc<PullProgress>,
}

impl Target {
    fn new(failpoints: &[&str]) -> Target {
        Self::with_tls(failpoints, None)
    }

    fn with_tls(failpoints: &[&str], tls: Option<ClusterTls>) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileStore::open(dir.path()).unwrap());
        Target {
            dir,
            store,
            sources: SourceClients::new(Some(TOKEN.into()), tls),
            failpoints: Arc::new(FailpointSet::new(failpoints.iter().map(|f| f.to_string()))),
            locks: TaskLocks::default(),
            progress: Arc::default(),
        }
    }

    async fn pull(&self, source: &str, task_id: i64, files: &[FileMeta]) -> Result<u64> {
        let req = PullFilesRequest {
            task_id,
            source_addr: source.to_string(),
            table_id: 1,
            shard_id: 2,
            files: files.to_vec(),
            max_bytes_per_s: None,
        };
        let guard = self.locks.lock(task_id).await;
        pull_files(
            &self.store,
            &self.sources,
            &self.failpoints,
            &self.progress,
            guard,
            req,
        )
        .await
        .map(|report| report.bytes_copied)
    }

    fn staged(&self, task_id: i64, name: &str) -> Vec<u8> {
        std::fs::read(
            self.dir
                .path()
                .join(format!("staging/move-{task_id}/1/2/{name}")),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn raw_transfer_is_byte_identical_and_flight_shares_the_port() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    let meta = shard_file(source_dir.path(), "a.parquet", 3 * 1024 * 1024 + 17);
    let bytes = std::fs::read(source_dir.path().join("shards/1/2/a.parquet")).unwrap();

    for offset in [0u64, 1, 1_048_576, meta.bytes] {
        let opened = open(&source.addr, bearer(), None, &ticket("a.parquet", offset))
            .await
            .unwrap();
        let Opened::Sending { socket, bytes: len } = opened else {
            panic!("the raw channel is not served");
        };
        assert_eq!(len, meta.bytes - offset);
        assert_eq!(
            read_all(socket).await,
            bytes[offset as usize..],
            "offset {offset}"
        );
    }
    // `http://host:port` is the same address.
    let opened = open(
        &format!("http://{}", source.addr),
        bearer(),
        None,
        &ticket("a.parquet", 0),
    )
    .await
    .unwrap();
    assert!(matches!(opened, Opened::Sending { .. }));

    // Flight on the same port.
    let client = WorkerClient::new(&source.addr, Some(TOKEN.into())).unwrap();
    client.health().await.unwrap();
    let chunks: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        client
            .fetch_file_stream(1, 2, "a.parquet", 0)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let fetched: Vec<u8> = chunks.iter().flat_map(|c| c.bytes.to_vec()).collect();
    assert_eq!(fetched, bytes);
    source.stop().await;
}

#[tokio::test]
async fn pull_uses_the_raw_channel() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    let files = vec![
        shard_file(source_dir.path(), "empty.parquet", 0),
        shard_file(source_dir.path(), "small.parquet", 1),
        shard_file(source_dir.path(), "big.parquet", 9 * 1024 * 1024 + 3),
    ];
    let target = Target::new(&[]);
    let copied = target.pull(&source.addr, 7, &files).await.unwrap();
    assert_eq!(copied, files.iter().map(|f| f.bytes).sum::<u64>());
    assert_eq!(target.sources.files_received(), (3, 0));
    for f in &files {
        let staged = target.staged(7, &f.name);
        assert_eq!(
            (staged.len() as u64, crc32c::crc32c(&staged)),
            (f.bytes, f.checksum)
        );
    }
    source.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_token_is_refused() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    shard_file(source_dir.path(), "a.parquet", 100);
    for authorization in [Some("Bearer guess"), Some("raw-token"), None] {
        let err = open(&source.addr, authorization, None, &ticket("a.parquet", 0))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, ShardStoreError::Unauthenticated { addr } if *addr == source.addr),
            "{authorization:?}: {err:?}"
        );
    }
    // A target with another token pulls nothing, and learns that the source refused it.
    let target = Target {
        sources: SourceClients::new(Some("other".into()), None),
        ..Target::new(&[])
    };
    let meta = shard_file(source_dir.path(), "b.parquet", 100);
    let err = target.pull(&source.addr, 1, &[meta]).await.unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::Unauthenticated { addr } if *addr == source.addr),
        "{err:?}"
    );
    source.stop().await;
}

#[tokio::test]
async fn names_outside_the_shard_directory_are_refused() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    shard_file(source_dir.path(), "a.parquet", 100);
    std::fs::write(source_dir.path().join("shards/secret.parquet"), b"secret").unwrap();
    for name in [
        "../../cluster_id",
        "../secret.parquet",
        "../../2/a.parquet",
        "/etc/passwd",
        ".hidden.parquet",
        "a.parquet/",
        "",
    ] {
        let err = open(&source.addr, bearer(), None, &ticket(name, 0))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, ShardStoreError::Protocol { .. }),
            "{name:?}: {err:?}"
        );
    }
    let err = open(&source.addr, bearer(), None, &ticket("nope.parquet", 0))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ShardStoreError::FileMissing { name, .. } if name == "nope.parquet"),
        "{err:?}"
    );
    let err = open(&source.addr, bearer(), None, &ticket("a.parquet", 101))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ShardStoreError::Protocol { .. }), "{err:?}");
    source.stop().await;
}

#[tokio::test]
async fn garbage_after_the_first_byte_is_dropped() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    for garbage in [
        &b"SHOALRAW9xxxxxxxxxxxxxxxxxx"[..],
        b"SHOALRAW1\xff\xff\xff\xff",
    ] {
        let mut stream = TcpStream::connect(&source.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        // Closed without an answer: a FIN, or a reset if request bytes were left unread.
        let read = timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))) && answer.is_empty(),
            "{garbage:?}: {read:?} {answer:?}"
        );
    }
    // The worker still serves.
    let client = WorkerClient::new(&source.addr, Some(TOKEN.into())).unwrap();
    client.health().await.unwrap();
    source.stop().await;
}

#[tokio::test]
async fn corrupted_raw_transfer_is_caught_by_the_checksum() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    let meta = shard_file(source_dir.path(), "a.parquet", 2 * 1024 * 1024 + 5);
    let target = Target::new(&[FAILPOINT_PULL_CORRUPT_ONCE]);
    let err = target
        .pull(&source.addr, 3, std::slice::from_ref(&meta))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ShardStoreError::ChecksumMismatch { name, expected_bytes, actual_bytes, .. }
            if *name == meta.name && expected_bytes == actual_bytes),
        "{err:?}"
    );
    assert_eq!(target.sources.files_received(), (1, 0));
    let staged = target.dir.path().join("staging/move-3/1/2");
    assert_eq!(std::fs::read_dir(&staged).unwrap().count(), 0);

    // One shot: the retry is clean.
    target
        .pull(&source.addr, 3, std::slice::from_ref(&meta))
        .await
        .unwrap();
    assert_eq!(
        crc32c::crc32c(&target.staged(3, "a.parquet")),
        meta.checksum
    );
    assert_eq!(target.sources.files_received(), (2, 0));
    source.stop().await;
}

#[tokio::test]
async fn an_older_source_is_pulled_over_flight() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), false).await;
    let files = vec![
        shard_file(source_dir.path(), "a.parquet", 1000),
        shard_file(source_dir.path(), "b.parquet", 2 * 1024 * 1024),
    ];
    let opened = open(&source.addr, bearer(), None, &ticket("a.parquet", 0))
        .await
        .unwrap();
    assert!(
        matches!(opened, Opened::Unavailable { older: true, .. }),
        "the old server answered the raw request"
    );
    let target = Target::new(&[]);
    target.pull(&source.addr, 5, &files).await.unwrap();
    assert_eq!(target.sources.files_received(), (0, 2));
    for f in &files {
        assert_eq!(crc32c::crc32c(&target.staged(5, &f.name)), f.checksum);
    }
    source.stop().await;
}

/// While a call streams, the worker reports the bytes received so far (the coordinator's
/// progress); once it ends, no call of the task runs.
#[tokio::test]
async fn a_cancelled_pull_leaves_no_part_file() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start(source_dir.path(), true).await;
    let meta = shard_file(source_dir.path(), "a.parquet", 4 * 1024 * 1024);
    let target = Target::new(&[]);
    let req = PullFilesRequest {
        task_id: 9,
        source_addr: source.addr.clone(),
        table_id: 1,
        shard_id: 2,
        files: vec![meta],
        // Slow enough to be cancelled in the middle.
        max_bytes_per_s: Some(1024 * 1024),
    };
    let guard = target.locks.lock(9).await;
    let pull = pull_files(
        &target.store,
        &target.sources,
        &target.failpoints,
        &target.progress,
        guard,
        req,
    );
    let watch = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        target.progress.received(9)
    };
    let (pulled, received) = tokio::join!(timeout(Duration::from_millis(1000), pull), watch);
    assert!(pulled.is_err());
    // At 1 MiB/s, some of the 4 MiB arrived after 0.7 s, and far from all of it.
    let received = received.unwrap();
    assert!(
        received > 0 && received < 3 * 1024 * 1024,
        "received {received} bytes"
    );
    assert_eq!(target.progress.received(9), None);
    // The receiving thread holds the task lock until it has removed its part file.
    let _again = timeout(Duration::from_secs(5), target.locks.lock(9))
        .await
        .unwrap();
    let staged = target.dir.path().join("staging/move-9/1/2");
    assert_eq!(std::fs::read_dir(&staged).unwrap().count(), 0);
    source.stop().await;
}

/// Node-to-node TLS on one worker port: Flight and the raw channel both need a certificate
/// from the cluster CA and the token; plaintext, another CA and no client certificate are
/// refused; a move's pull goes over the raw channel, encrypted, byte-identical.
#[tokio::test]
async fn tls_port_serves_only_cluster_peers_and_moves_files_over_raw() {
    let certs = tempfile::tempdir().unwrap();
    let strangers = tempfile::tempdir().unwrap();
    if make_certs(certs.path(), &["127.0.0.1"]).is_none()
        || make_certs(strangers.path(), &["127.0.0.1"]).is_none()
    {
        return;
    }
    let tls = ClusterTls::load(&files(certs.path(), "127.0.0.1")).unwrap();
    let stranger = ClusterTls::load(&files(strangers.path(), "127.0.0.1")).unwrap();
    let source_dir = tempfile::tempdir().unwrap();
    let source = Worker::start_tls(source_dir.path(), tls.clone()).await;
    let meta = shard_file(source_dir.path(), "a.parquet", 2 * 1024 * 1024 + 5);

    // Flight: a peer with the cluster's certificate and token is served.
    let peer = WorkerClient::connect(&source.addr, Some(TOKEN.into()), Some(&tls)).unwrap();
    peer.health().await.unwrap();
    // Plaintext, another cluster's CA, and a peer without the token are refused.
    let plain = WorkerClient::new(&source.addr, Some(TOKEN.into())).unwrap();
    let err = plain.health().await.unwrap_err();
    assert!(err.is_unavailable(), "plaintext Flight: {err:?}");
    let foreign = WorkerClient::connect(&source.addr, Some(TOKEN.into()), Some(&stranger)).unwrap();
    let err = foreign.health().await.unwrap_err();
    assert!(err.is_unavailable(), "another CA: {err:?}");
    let tokenless = WorkerClient::connect(&source.addr, None, Some(&tls)).unwrap();
    let err = tokenless.health().await.unwrap_err();
    assert!(
        matches!(err, ShardStoreError::Unauthenticated { .. }),
        "no token: {err:?}"
    );

    // Raw channel: plaintext gets no answer in the raw protocol; over TLS, the token is
    // still required; a peer of another cluster cannot open it.
    let opened = open(&source.addr, bearer(), None, &ticket("a.parquet", 0))
        .await
        .unwrap();
    assert!(
        matches!(opened, Opened::Unavailable { .. }),
        "plaintext raw request was answered"
    );
    let err = open(&source.addr, None, Some(&tls), &ticket("a.parquet", 0))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, ShardStoreError::Unauthenticated { .. }),
        "{err:?}"
    );
    let opened = open(
        &source.addr,
        bearer(),
        Some(&stranger),
        &ticket("a.parquet", 0),
    )
    .await
    .unwrap();
    assert!(
        matches!(opened, Opened::Unavailable { .. }),
        "another CA opened a raw transfer"
    );

    // A client that trusts the CA but has no certificate of its own: the handshake may
    // complete on its side (TLS 1.3), but the worker answers nothing.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut io::BufReader::new(
        std::fs::read(certs.path().join("ca.pem"))
            .unwrap()
            .as_slice(),
    )) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut anonymous = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    anonymous.alpn_protocols = vec![ALPN_RAW.to_vec()];
    let tcp = TcpStream::connect(&source.addr).await.unwrap();
    let name = crate::tls::server_name(&source.addr).unwrap();
    let answered = async {
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(anonymous))
            .connect(name, tcp)
            .await?;
        let request = RawRequest {
            authorization: bearer().map(String::from),
            file: ticket("a.parquet", 0),
        };
        write_frame(&mut stream, &request).await?;
        let mut magic = [0u8; RAW_MAGIC.len()];
        stream.read_exact(&mut magic).await?;
        Ok::<_, io::Error>(magic)
    };
    assert!(
        answered.await.is_err(),
        "a peer without a certificate was answered"
    );

    // A move's pull over TLS: the raw channel, byte-identical.
    let target = Target::with_tls(&[], Some(tls.clone()));
    let copied = target
        .pull(&source.addr, 7, std::slice::from_ref(&meta))
        .await
        .unwrap();
    assert_eq!(copied, meta.bytes);
    assert_eq!(
        target.staged(7, "a.parquet"),
        std::fs::read(source_dir.path().join("shards/1/2/a.parquet")).unwrap()
    );
    assert_eq!(
        target.sources.files_received(),
        (1, 0),
        "(raw, flight) files"
    );
    // A target without TLS cannot pull from it at all.
    let plain_target = Target::new(&[]);
    let err = plain_target
        .pull(&source.addr, 8, &[meta])
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    source.stop().await;
}
