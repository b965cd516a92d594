//! `shoal recover-catalog`: rebuilds a lost coordinator catalog from the copies of its journal
//! that the workers keep (see `shoal_sql_functions::catalog_journal`).
//!
//! Asks every worker given, and then every worker the newest copy names, where its copy stands;
//! rebuilds from the newest (the latest coordinator run, the most entries). Every write that
//! returned to a client is in the copy of at least one worker; so unless told otherwise
//! (`--ignore-unreachable`), it refuses while a worker cannot be asked. A worker that was
//! down or behind has an older copy, and is only used when none newer can be read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_catalog::{rebuild_catalog, Catalog, RebuildSummary};
use shoal_shard_store::{ClusterTls, JournalStatus, WorkerClient};

use crate::ServerError;

/// How long one worker may take to say where its copy stands.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one worker may take to send its whole copy.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// What to rebuild from, and where.
pub struct RecoverOptions {
    pub data_dir: PathBuf,
    pub workers: Vec<String>,
    pub token: Option<String>,
    pub tls: Option<ClusterTls>,
    /// Rebuild even when some workers could not be asked (one may hold a newer copy).
    pub ignore_unreachable: bool,
}

pub async fn recover_catalog(opts: RecoverOptions) -> Result<(), ServerError> {
    let fail = |m: String| ServerError::Startup(m);
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", opts.data_dir.display())))?;
    let _lock = crate::coordinator::lock_data_dir(&opts.data_dir).map_err(|e| {
        fail(format!(
            "{e}; stop the coordinator before recovering its catalog"
        ))
    })?;
    let target = opts.data_dir.join("catalog.db");
    if target.exists() {
        return Err(fail(format!(
            "{} exists: recover-catalog makes a new catalog only where there is none \
             (move the old one away first)",
            target.display()
        )));
    }
    if opts.workers.is_empty() {
        return Err(fail(
            "name at least one worker with --worker HOST:PORT".into(),
        ));
    }
    let mut asked = BTreeSet::new();
    let mut copies: Vec<(String, JournalStatus)> = Vec::new();
    let mut to_ask: Vec<String> = opts.workers.clone();
    let mut unreachable: Vec<String> = Vec::new();
    // First the workers given, then those the newest copy lists.
    for round in 0..2 {
        for addr in std::mem::take(&mut to_ask) {
            if !asked.insert(addr.clone()) {
                continue;
            }
            match status_of(&addr, &opts).await {
                Ok(Some(status)) => {
                    println!(
                        "worker {addr}: catalog journal of run {}, entries {}..={}",
                        status.epoch, status.base_seq, status.last_seq
                    );
                    copies.push((addr, status));
                }
                Ok(None) => println!("worker {addr}: no catalog journal"),
                Err(e) => {
                    println!("worker {addr}: not asked ({e})");
                    unreachable.push(addr);
                }
            }
        }
        if round == 1 {
            break;
        }
        let Some((addr, _)) = newest(&copies) else {
            break;
        };
        // The nodes of the newest copy: workers not named may hold a newer one.
        let probe = opts.data_dir.join("catalog.db.probe");
        let _ = std::fs::remove_file(&probe);
        let nodes = match rebuild_from(&addr, &probe, &opts).await {
            Ok(_) => tokio::task::spawn_blocking({
                let probe = probe.clone();
                move || Catalog::open(&probe).and_then(|c| c.list_nodes())
            })
            .await
            .map_err(|e| fail(format!("reading the rebuilt catalog failed: {e}")))?
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        remove_catalog_files(&probe);
        match nodes {
            Ok(nodes) => to_ask = nodes.iter().map(|n| n.addr()).collect(),
            Err(e) => {
                println!("worker {addr}: cannot list the cluster's nodes from its copy ({e})")
            }
        }
    }
    if copies.is_empty() {
        return Err(fail(format!(
            "no worker of {} has a catalog journal: nothing to recover from",
            asked.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if !unreachable.is_empty() && !opts.ignore_unreachable {
        // A write returns once one worker holds it: the one not asked may hold the last ones.
        return Err(fail(format!(
            "worker(s) {} could not be asked, and may hold a newer copy than those that \
             answered: start them and run recover-catalog again, or pass \
             --ignore-unreachable to rebuild from the copies that answered (writes only an \
             unreachable worker holds are then lost)",
            unreachable.join(", ")
        )));
    }
    // Newest first; a copy that cannot be read or replayed gives way to the next.
    copies.sort_by(|a, b| (&b.1.epoch, b.1.last_seq).cmp(&(&a.1.epoch, a.1.last_seq)));
    let mut rebuilt = None;
    for (addr, status) in &copies {
        match rebuild_from(addr, &target, &opts).await {
            Ok(summary) => {
                rebuilt = Some((addr.clone(), status.clone(), summary));
                break;
            }
            Err(e) => println!("worker {addr}: its copy cannot be used ({e}); trying the next"),
        }
    }
    let Some((addr, status, summary)) = rebuilt else {
        return Err(fail(
            "no copy of the catalog journal could be rebuilt".into(),
        ));
    };
    if (&status.epoch, status.last_seq) < (&copies[0].1.epoch, copies[0].1.last_seq) {
        println!(
            "warning: rebuilt from an older copy than worker {}'s: writes after entry {} of run {} are not in it",
            copies[0].0, status.last_seq, status.epoch
        );
    }
    println!(
        "catalog rebuilt from worker {addr} (run {}, entry {}): {} tables, {} files, {} nodes, in {}",
        status.epoch,
        summary.seq,
        summary.tables,
        summary.files,
        summary.nodes,
        target.display()
    );
    println!(
        "start the coordinator with --data-dir {}",
        opts.data_dir.display()
    );
    Ok(())
}

/// The copy to rebuild from: the latest run's, with the most entries.
fn newest(copies: &[(String, JournalStatus)]) -> Option<(String, JournalStatus)> {
    copies
        .iter()
        .max_by(|a, b| (&a.1.epoch, a.1.last_seq).cmp(&(&b.1.epoch, b.1.last_seq)))
        .cloned()
}

fn client(addr: &str, opts: &RecoverOptions) -> Result<WorkerClient, ServerError> {
    WorkerClient::connect(addr, opts.token.clone(), opts.tls.as_ref())
        .map_err(|e| ServerError::Startup(format!("worker {addr}: {e}")))
}

async fn status_of(addr: &str, opts: &RecoverOptions) -> Result<Option<JournalStatus>, String> {
    let c = client(addr, opts).map_err(|e| e.to_string())?;
    match tokio::time::timeout(STATUS_TIMEOUT, c.journal_status()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {STATUS_TIMEOUT:?}")),
    }
}

/// Reads the copy of the worker at `addr` and writes the catalog it makes to `target`.
async fn rebuild_from(
    addr: &str,
    target: &Path,
    opts: &RecoverOptions,
) -> Result<RebuildSummary, ServerError> {
    let fail = |m: String| ServerError::Startup(m);
    let c = client(addr, opts)?;
    let copy = match tokio::time::timeout(READ_TIMEOUT, c.journal_read()).await {
        Ok(Ok(Some(copy))) => copy,
        Ok(Ok(None)) => return Err(fail(format!("worker {addr} no longer has a journal"))),
        Ok(Err(e)) => return Err(fail(format!("reading the journal of {addr}: {e}"))),
        Err(_) => {
            return Err(fail(format!(
                "worker {addr} did not send its journal in time"
            )))
        }
    };
    let target = target.to_path_buf();
    tokio::task::spawn_blocking(move || {
        rebuild_catalog(&target, &copy.base, copy.status.base_seq, &copy.entries)
    })
    .await
    .map_err(|e| fail(format!("rebuilding failed: {e}")))?
    .map_err(|e| {
        fail(format!(
            "cannot rebuild the catalog from worker {addr}: {e}"
        ))
    })
}

fn remove_catalog_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}
