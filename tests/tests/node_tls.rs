//! Node-to-node TLS (issue 16, point 5) with real processes: certificates made by
//! `docker/make-certs.sh`, a cluster whose every node runs with `--tls-ca/--tls-cert/--tls-key`,
//! a scale-out and rebalance over it, the worker port refusing plaintext on both of its
//! protocols, a worker of another CA refused by `add_node`, and bad certificates refused at
//! start-up by every kind of process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shoal_e2e::{
    err_text, exec, free_port, make_certs, scalar, shoal_bin, sqlstate, stderr_of, Cluster,
};

/// Rows of the test table, and what they sum to.
const ROWS: i64 = 6_000;

/// A row per id, with a payload large enough that each shard has a real file to move.
fn insert_rows(from: i64, to: i64) -> String {
    let values: Vec<String> = (from..=to)
        .map(|id| format!("({id}, repeat(md5({id}::text), 8))"))
        .collect();
    format!("INSERT INTO events VALUES {}", values.join(", "))
}

/// Shards of `events` on the worker at 127.0.0.1:`port`.
async fn shards_on(client: &tokio_postgres::Client, port: u16) -> i64 {
    scalar(
        client,
        &format!("SELECT count(*) FROM shoal.shards WHERE table_name = 'events' AND port = {port}"),
    )
    .await
    .parse()
    .expect("count")
}

/// Sends `bytes` to 127.0.0.1:`port` in clear and returns what came back before the
/// connection closed (or nothing arrived for 10 s).
fn plaintext_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(bytes).expect("write");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// A scale-out over TLS: add a worker, rebalance, every row still there and each worker
/// holding shards; meanwhile the worker ports answer nothing in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_over_tls_and_plaintext_refused_on_every_channel() {
    let certs = tempfile::tempdir().expect("tempdir");
    if !make_certs(certs.path(), &["127.0.0.1"]) {
        return;
    }
    let mut cluster = Cluster::start_tls(2, 1, certs.path()).await;
    let client = cluster.client().await;
    exec(
        &client,
        "CREATE TABLE events (id bigint, payload text);
         SELECT create_distributed_table('events', 'id', shard_count => 6);",
    )
    .await;
    exec(&client, &insert_rows(1, ROWS / 2)).await;
    exec(&client, &insert_rows(ROWS / 2 + 1, ROWS)).await;
    let ports = cluster.worker_ports();
    let spare = ports[2];
    exec(&client, &format!("SELECT add_node('127.0.0.1', {spare})")).await;
    exec(&client, "SELECT rebalance_start()").await;
    exec(&client, "SELECT rebalance_wait()").await;
    for port in &ports {
        assert!(
            shards_on(&client, *port).await > 0,
            "worker {port} holds no shard after the rebalance"
        );
    }
    assert_eq!(
        scalar(&client, "SELECT count(*) || '/' || sum(id) FROM events").await,
        format!("{ROWS}/{}", ROWS * (ROWS + 1) / 2)
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT count(*) FROM shoal.tasks WHERE state <> 'done'"
        )
        .await,
        "0"
    );

    // The raw file channel's request in clear: no answer in its protocol (the TLS handshake
    // fails and the worker closes the connection).
    let mut raw = b"SHOALRAW1".to_vec();
    let body =
        br#"{"authorization":null,"file":{"table_id":1,"shard_id":1,"name":"x","offset":0}}"#;
    raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
    raw.extend_from_slice(body);
    let got = plaintext_exchange(spare, &raw);
    assert!(
        !got.starts_with(b"SHOALRAW1"),
        "a raw request in clear was answered"
    );
    // HTTP/2 in clear (what a Flight client without TLS sends): no HTTP/2 answer either.
    let got = plaintext_exchange(
        spare,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    );
    assert!(
        got.len() < 9 || got[3] != 0x04,
        "plaintext HTTP/2 got a SETTINGS frame"
    );

    // The coordinator's heartbeats go over TLS too: a worker killed and started again is
    // live again, and its shards answer.
    cluster.kill_worker(1);
    cluster.restart_worker(1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = scalar(&client, "SELECT count(*) FROM shoal.nodes WHERE is_live").await;
        if live == "3" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{live} of 3 workers live after a restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM events").await,
        ROWS.to_string()
    );

    // The catalog journal went over TLS too: with the coordinator's disk gone, the catalog
    // comes back from the workers, asked over TLS.
    drop(client);
    cluster.lose_coordinator_disk();
    let (ca, cert, key) = (
        certs.path().join("ca.pem"),
        certs.path().join("127.0.0.1.pem"),
        certs.path().join("127.0.0.1-key.pem"),
    );
    let out = cluster.recover_catalog(
        &[0],
        &[
            "--tls-ca".as_ref(),
            ca.as_os_str(),
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "recover-catalog over TLS: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    cluster.restart_coordinator().await;
    let client = cluster.client().await;
    assert_eq!(
        scalar(&client, "SELECT count(*) || '/' || sum(id) FROM events").await,
        format!("{ROWS}/{}", ROWS * (ROWS + 1) / 2)
    );
}

/// A worker with a certificate of another CA cannot join: `add_node` fails saying why, and
/// the cluster is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_refuses_a_worker_of_another_ca() {
    let certs = tempfile::tempdir().expect("tempdir");
    let strangers = tempfile::tempdir().expect("tempdir");
    if !make_certs(certs.path(), &["127.0.0.1"]) || !make_certs(strangers.path(), &["127.0.0.1"]) {
        return;
    }
    let cluster = Cluster::start_tls(1, 0, certs.path()).await;
    let client = cluster.client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, ca_dir, tls) in [
        ("another CA", strangers.path(), true),
        ("no TLS", strangers.path(), false),
    ] {
        let port = free_port();
        let mut worker = spawn_worker(port, dir.path(), cluster.token(), tls.then_some(ca_dir));
        wait_listening(port);
        let e = client
            .simple_query(&format!("SELECT add_node('127.0.0.1', {port})"))
            .await
            .expect_err(what);
        let _ = worker.kill();
        let _ = worker.wait();
        assert_eq!(
            sqlstate(&e).as_deref(),
            Some("08006"),
            "{what}: {}",
            err_text(&e)
        );
        assert!(
            err_text(&e).contains(&format!("127.0.0.1:{port}")),
            "{what}: {}",
            err_text(&e)
        );
        assert_eq!(
            scalar(&client, "SELECT count(*) FROM shoal.nodes").await,
            "1"
        );
    }
}

fn spawn_worker(port: u16, dir: &Path, token: &str, certs: Option<&Path>) -> std::process::Child {
    let mut cmd = Command::new(shoal_bin());
    cmd.args(["worker", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join(format!("w{port}")))
        .args(["--cluster-token", token]);
    if let Some(certs) = certs {
        cmd.arg("--tls-ca")
            .arg(certs.join("ca.pem"))
            .arg("--tls-cert")
            .arg(certs.join("127.0.0.1.pem"))
            .arg("--tls-key")
            .arg(certs.join("127.0.0.1-key.pem"));
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a worker")
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the worker did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `shoal <args>` run to its end (these all fail at start-up).
fn run_shoal(args: &[&str]) -> Output {
    let mut child = Command::new(shoal_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shoal {args:?} did not exit: it started despite bad TLS material");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A certificate that cannot be used stops every process at start-up with a message naming
/// the file, instead of a failure at the first call.
#[tokio::test]
async fn bad_certificates_stop_every_process_at_start() {
    let certs = tempfile::tempdir().expect("tempdir");
    let strangers = tempfile::tempdir().expect("tempdir");
    if !make_certs(certs.path(), &["127.0.0.1", "other"])
        || !make_certs(strangers.path(), &["127.0.0.1"])
    {
        return;
    }
    let p = |dir: &Path, name: &str| dir.join(name).display().to_string();
    let (ca, cert, key) = (
        p(certs.path(), "ca.pem"),
        p(certs.path(), "127.0.0.1.pem"),
        p(certs.path(), "127.0.0.1-key.pem"),
    );
    let other_key = p(certs.path(), "other-key.pem");
    let foreign_cert = p(strangers.path(), "127.0.0.1.pem");
    let foreign_key = p(strangers.path(), "127.0.0.1-key.pem");
    let data = tempfile::tempdir().expect("tempdir");
    let data = data.path().display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    // (command, what, TLS flags, what stderr must say). The coordinator checks the same
    // material as a worker (and its client-facing certificate).
    let cases: Vec<(&str, &str, Vec<&str>, &str)> = vec![
        (
            "worker",
            "missing certificate file",
            vec![
                "--tls-ca",
                &ca,
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                &key,
            ],
            "--tls-cert /nonexistent.pem",
        ),
        (
            "worker",
            "certificate without the CA",
            vec!["--tls-cert", &cert, "--tls-key", &key],
            "needs all of --tls-ca, --tls-cert and --tls-key",
        ),
        (
            "worker",
            "the key of another certificate",
            vec![
                "--tls-ca",
                &ca,
                "--tls-cert",
                &cert,
                "--tls-key",
                &other_key,
            ],
            "does not fit --tls-cert",
        ),
        (
            "worker",
            "a certificate the cluster CA did not sign",
            vec![
                "--tls-ca",
                &ca,
                "--tls-cert",
                &foreign_cert,
                "--tls-key",
                &foreign_key,
            ],
            "is not accepted by the cluster CA",
        ),
        (
            "coordinator",
            "missing CA file",
            vec![
                "--tls-ca",
                "/nonexistent-ca.pem",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ],
            "--tls-ca /nonexistent-ca.pem",
        ),
        (
            "coordinator",
            "a certificate the cluster CA did not sign",
            vec![
                "--tls-ca",
                &ca,
                "--tls-cert",
                &foreign_cert,
                "--tls-key",
                &foreign_key,
            ],
            "is not accepted by the cluster CA",
        ),
    ];
    for (command, what, tls, expect) in &cases {
        let mut args = vec![*command, "--listen", &listen, "--data-dir", &data];
        args.extend(tls.iter().copied());
        let out = run_shoal(&args);
        assert!(!out.status.success(), "{command}, {what}: started");
        assert!(
            stderr_of(&out).contains(expect),
            "{command}, {what}: {}",
            stderr_of(&out)
        );
    }
}
