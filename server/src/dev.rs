//! `shoal dev`: a coordinator and N workers on loopback in one process. The worker ports and
//! the cluster token are kept in `<data-dir>/dev-cluster.json`, so running it again on the
//! same data dir brings back the same cluster with all its data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_shard_store::{serve_worker_with_listener, WorkerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::coordinator::{
    run_coordinator, CoordinatorOptions, MemoryLimit, DEFAULT_WORKER_TIMEOUT,
};
use crate::frontend::wire::Passwords;
use crate::ServerError;

#[derive(Serialize, Deserialize)]
struct DevCluster {
    cluster_token: String,
    worker_ports: Vec<u16>,
}

fn load_or_create(data_dir: &Path, workers: usize) -> Result<DevCluster, ServerError> {
    let path = data_dir.join("dev-cluster.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut c: DevCluster = serde_json::from_str(&text)
            .map_err(|e| ServerError::Startup(format!("{}: {e}", path.display())))?;
        if c.worker_ports.len() < workers {
            // more workers than last time: new ones get new ports
            while c.worker_ports.len() < workers {
                c.worker_ports.push(free_port()?);
            }
            save(&path, &c)?;
        }
        return Ok(c);
    }
    let c = DevCluster {
        cluster_token: uuid::Uuid::new_v4().simple().to_string(),
        worker_ports: (0..workers)
            .map(|_| free_port())
            .collect::<Result<_, _>>()?,
    };
    save(&path, &c)?;
    Ok(c)
}

fn save(path: &Path, c: &DevCluster) -> Result<(), ServerError> {
    let text = serde_json::to_string_pretty(c).map_err(|e| ServerError::Startup(e.to_string()))?;
    std::fs::write(path, text)?;
    Ok(())
}

fn free_port() -> Result<u16, ServerError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub async fn run(
    workers: usize,
    port: u16,
    data_dir: PathBuf,
    password: Option<String>,
    metrics_listen: Option<SocketAddr>,
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&data_dir)?;
    let cluster = load_or_create(&data_dir, workers)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    };

    let mut worker_addrs = Vec::new();
    let mut tasks = Vec::new();
    for (i, wport) in cluster.worker_ports.iter().take(workers).enumerate() {
        let addr: SocketAddr = ([127, 0, 0, 1], *wport).into();
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            ServerError::Startup(format!(
                "worker {} cannot listen on {addr}: {e} (is another `shoal dev` running?)",
                i + 1
            ))
        })?;
        let cfg = WorkerConfig {
            listen: addr,
            data_dir: data_dir.join(format!("worker{}", i + 1)),
            cluster_token: Some(cluster.cluster_token.clone()),
            failpoints: Vec::new(),
            // The workers share the machine with the coordinator: a quarter of it each at most.
            memory_limit: Some(MemoryLimit::HalfOfMemory.bytes()? / 2),
            tls: None,
            task_session: crate::query::distributed::worker_session_hook(),
        };
        worker_addrs.push(addr.to_string());
        tasks.push(tokio::spawn(serve_worker_with_listener(
            cfg,
            listener,
            stopped(),
        )));
    }

    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        ServerError::Startup(format!("cannot listen on {listen}: {e} (use --port)"))
    })?;
    let opts = CoordinatorOptions {
        listen,
        data_dir: data_dir.join("coordinator"),
        workers: worker_addrs.clone(),
        cluster_token: Some(cluster.cluster_token.clone()),
        passwords: password.as_deref().map(|p| Passwords::single("shoal", p)),
        insecure: false,
        tls: None,
        tls_ca: None,
        require_tls: None,
        metrics_listen,
        memory_limit: MemoryLimit::HalfOfMemory,
        worker_timeout: DEFAULT_WORKER_TIMEOUT,
    };
    println!(
        "Shoal dev cluster: coordinator on {listen}, workers on {}",
        worker_addrs.join(", ")
    );
    println!("Data in {}", data_dir.display());
    println!("Connect with:  psql -h 127.0.0.1 -p {port} -U shoal shoal");
    if let Some(addr) = metrics_listen {
        println!("Metrics on:    http://{addr}/metrics");
    }
    println!("Press Ctrl-C to stop.");
    let coordinator = tokio::spawn(run_coordinator(opts, Some(listener), stopped()));

    crate::cli::shutdown_signal().await;
    println!("Stopping...");
    let _ = stop_tx.send(true);
    match coordinator.await {
        Ok(r) => r?,
        Err(e) => {
            return Err(ServerError::Startup(format!(
                "coordinator task failed: {e}"
            )))
        }
    }
    for t in tasks {
        match t.await {
            Ok(r) => r?,
            Err(e) => return Err(ServerError::Startup(format!("worker task failed: {e}"))),
        }
    }
    println!("Stopped.");
    Ok(())
}
