//! Damaged shard files: a flipped bit, a truncated file and a zeroed file on a worker. Every
//! read that touches one fails with XX001 naming the file, its shard and its worker, or is
//! served from another placement, and the damaged placement is then repaired from it; the
//! scrubber finds damage no query touched; both show in `shoal.damaged_files` and the
//! `shoal_damaged_files` metric.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_e2e::{err_text, exec, lines, scalar, sqlstate, within, Cluster};
use tokio_postgres::Client;

/// Every committed shard file under a worker's data directory, in a stable order.
fn shard_files(data_dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir.join("shards"), &mut out);
    out.sort();
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `shards/<table>/<shard>/<file>`: the shard id.
fn shard_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn load(client: &Client, table: &str, replication: u32) {
    exec(
        client,
        &format!("CREATE TABLE {table} (id bigint, v bigint)"),
    )
    .await;
    exec(
        client,
        &format!(
            "SELECT create_distributed_table('{table}', 'id', shard_count => 4, \
             replication_factor => {replication})"
        ),
    )
    .await;
    let values: Vec<String> = (1..=400).map(|i| format!("({i}, {i})")).collect();
    exec(
        client,
        &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
    )
    .await;
}

/// `sql` fails with XX001 and a message naming `file`, its shard and `worker`.
async fn refused_as_damaged(client: &Client, sql: &str, file: &Path, worker: &str) -> String {
    let e = match client.simple_query(sql).await {
        Ok(rows) => panic!(
            "{sql} read a damaged file and answered {} messages",
            rows.len()
        ),
        Err(e) => e,
    };
    assert_eq!(
        sqlstate(&e).as_deref(),
        Some("XX001"),
        "{sql}: {}",
        err_text(&e)
    );
    let message = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    for part in [
        file_name(file),
        format!("shard {}", shard_of(file)),
        worker.to_string(),
    ] {
        assert!(
            message.contains(&part),
            "{sql}: message names {part:?}: {message}"
        );
    }
    message
}

/// Polls `shoal.damaged_files` until `done` holds for its `file_name|found_by` lines.
async fn wait_damaged(client: &Client, what: &str, done: impl Fn(&[String]) -> bool) {
    for _ in 0..150 {
        let rows = lines(
            client,
            "SELECT file_name, found_by FROM shoal.damaged_files",
        )
        .await;
        if done(&rows) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = lines(client, "SELECT * FROM shoal.damaged_files").await;
    panic!("shoal.damaged_files never showed {what}: {rows:?}");
}

async fn damaged_reads(cluster: &Cluster) {
    let client = cluster.client().await;
    load(&client, "c", 1).await;
    let sum = "SELECT sum(v) AS s FROM c";
    assert_eq!(scalar(&client, sum).await, "80200");

    let files = shard_files(cluster.worker_data_dir(0));
    assert!(files.len() >= 2, "worker 0 holds files: {files:?}");
    let (victim, bystander) = (&files[0], &files[1]);
    let worker = cluster.worker_addr(0);
    let original = fs::read(victim).expect("read shard file");
    let len = original.len();

    // One flipped bit in the middle of the file (inside a data page).
    let mut flipped = original.clone();
    flipped[len / 2] ^= 0x10;
    fs::write(victim, &flipped).expect("flip a bit");
    let message = refused_as_damaged(&client, sum, victim, &worker).await;
    assert!(message.contains("CRC-32C"), "{message}");
    refused_as_damaged(&client, "SELECT count(*) FROM c", victim, &worker).await;
    refused_as_damaged(&client, "SELECT id, v FROM c WHERE v > 0", victim, &worker).await;
    let victim_name = file_name(victim);
    wait_damaged(&client, "the flipped file", |rows| {
        rows.iter()
            .any(|r| r.starts_with(&format!("{victim_name}|")))
    })
    .await;
    let metrics = cluster.metrics();
    assert!(
        metrics.contains("shoal_damaged_files 1"),
        "metric counts it:\n{metrics}"
    );

    // Restored, the same file reads again (its identity changed, so it is verified anew).
    fs::write(victim, &original).expect("restore");
    assert_eq!(scalar(&client, sum).await, "80200");

    // Truncated to nothing: a zero-length file must not read as an empty shard.
    fs::write(victim, b"").expect("truncate");
    let message = refused_as_damaged(&client, sum, victim, &worker).await;
    assert!(message.contains("0 bytes"), "{message}");
    fs::write(victim, &original).expect("restore");

    // Zeroed in place, same size.
    fs::write(victim, vec![0u8; len]).expect("zero");
    refused_as_damaged(&client, "SELECT count(*) FROM c", victim, &worker).await;
    fs::write(victim, &original).expect("restore");
    assert_eq!(scalar(&client, sum).await, "80200");
    assert_eq!(scalar(&client, "SELECT count(*) FROM c").await, "400");

    // The scrubber clears damage that is gone, and finds damage no query touched.
    exec(
        &client,
        "SELECT set_cluster_setting('scrub.rate_mb', '100')",
    )
    .await;
    wait_damaged(&client, "no damage after the restore", |rows| {
        rows.is_empty()
    })
    .await;
    let clean = fs::read(bystander).expect("read bystander");
    let mut rotten = clean.clone();
    rotten[clean.len() / 3] ^= 0x01;
    fs::write(bystander, &rotten).expect("rot a file");
    let bystander_name = file_name(bystander);
    wait_damaged(&client, "the rotten file found by the scrubber", |rows| {
        rows.contains(&format!("{bystander_name}|scrub"))
    })
    .await;
    let metrics = cluster.metrics();
    assert!(
        metrics.contains("shoal_damaged_files 1"),
        "metric counts it:\n{metrics}"
    );
    fs::write(bystander, &clean).expect("restore");
    wait_damaged(&client, "no damage after the second restore", |rows| {
        rows.is_empty()
    })
    .await;
    assert_eq!(scalar(&client, sum).await, "80200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_refused_and_reported() {
    let cluster = Cluster::start(2).await;
    within(300, "damaged files", damaged_reads(&cluster)).await;
}

async fn replica_serves(cluster: &Cluster) {
    let client = cluster.client().await;
    load(&client, "r", 2).await;
    let sum = "SELECT sum(v) AS s FROM r";
    assert_eq!(scalar(&client, sum).await, "80200");

    // Damage every file of worker 0: each of its shards has a good placement on worker 1.
    let files = shard_files(cluster.worker_data_dir(0));
    assert!(!files.is_empty());
    for f in &files {
        let mut bytes = fs::read(f).expect("read shard file");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x04;
        fs::write(f, &bytes).expect("flip a bit");
    }
    for _ in 0..3 {
        assert_eq!(scalar(&client, sum).await, "80200");
        assert_eq!(scalar(&client, "SELECT count(*) FROM r").await, "400");
        assert_eq!(
            scalar(&client, "SELECT v FROM r WHERE id = 123").await,
            "123"
        );
    }
    // Each damaged placement is repaired from its replica: dropped, then copied back onto
    // worker 0 by a `repair` job, after which the damaged files are gone.
    let damaged: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    let mut repaired = false;
    for _ in 0..300 {
        let jobs = lines(
            &client,
            "SELECT count(*) FILTER (WHERE state = 'finished'), count(*) FROM shoal.jobs \
             WHERE job_type = 'repair'",
        )
        .await;
        let now: Vec<String> = shard_files(cluster.worker_data_dir(0))
            .iter()
            .map(|f| file_name(f))
            .collect();
        let (done, all) = jobs
            .first()
            .and_then(|l| l.split_once('|'))
            .map(|(d, a)| (d.to_string(), a.to_string()))
            .unwrap_or_default();
        let open_damage = lines(&client, "SELECT count(*) FROM shoal.damaged_files").await;
        if all != "0"
            && done == all
            && open_damage == ["0"]
            && !now.is_empty()
            && now.iter().all(|n| !damaged.contains(n))
        {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let jobs = lines(
        &client,
        "SELECT job_type, state, description FROM shoal.jobs",
    )
    .await;
    assert!(repaired, "worker 0 was not repaired: jobs {jobs:?}");
    assert_eq!(
        scalar(
            &client,
            "SELECT count(*) FROM shoal.shards WHERE table_name = 'r'"
        )
        .await,
        "8",
        "every shard has its two placements again"
    );
    // The repaired copies are good: damage worker 1's files, and worker 0 serves every read.
    for f in shard_files(cluster.worker_data_dir(1)) {
        let mut bytes = fs::read(&f).expect("read shard file");
        let at = bytes.len() / 3;
        bytes[at] ^= 0x10;
        fs::write(&f, &bytes).expect("flip a bit");
    }
    for _ in 0..3 {
        assert_eq!(scalar(&client, sum).await, "80200");
        assert_eq!(scalar(&client, "SELECT count(*) FROM r").await, "400");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_placement_is_served_from_its_replica_and_repaired() {
    let cluster = Cluster::start(2).await;
    within(300, "replica of a damaged file", replica_serves(&cluster)).await;
}
