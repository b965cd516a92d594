//! The node functions and their policies: `add_node` (and the automatic rebalance it may
//! start), `remove_node` (refused while the node holds shard placements other than
//! reference-table copies that other nodes also hold; forced only for a node that is gone, or
//! with `drop_data` as a second, explicit yes), and `set_node_property`. An argument is read
//! only where the policy needs it, so a NULL `force` does not matter for an empty node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use shoal_catalog::Node;

use super::args::Args;
use super::{jobs, notice, warning, Notice, NoticeLevel};
use crate::cluster::Cluster;
use crate::error::{ClusterError, Result};

/// The node at `host:port`, or the contract's "does not exist" error.
pub(super) fn node_at(cluster: &Cluster, host: &str, port: u16) -> Result<Node> {
    cluster
        .catalog()
        .node_by_addr(host, port)?
        .ok_or_else(|| ClusterError::invalid(format!("node \"{host}:{port}\" does not exist")))
}

/// Registers a worker (idempotent: an existing node keeps its id) and, for a new one with
/// `auto_rebalance` on, starts a rebalance. Returns the node id.
pub(super) async fn add_node(
    cluster: &Arc<Cluster>,
    host: &str,
    port: u16,
    notices: &mut Vec<Notice>,
) -> Result<i64> {
    let existed = cluster.catalog().node_by_addr(host, port)?.is_some();
    let id = cluster.add_node(host, port).await.map_err(|e| match e {
        ClusterError::Worker(w) if w.is_unavailable() => ClusterError::WorkerUnreachable {
            message: format!("could not connect to worker {host}:{port}: {w}"),
            hint: Some(
                "Start the worker first, and check the host name and port. With \
                 node-to-node TLS, the worker needs --tls-ca, --tls-cert and --tls-key \
                 from the cluster's CA, its certificate naming this host."
                    .into(),
            ),
        },
        other => other,
    })?;
    if !existed {
        jobs::after_add_node(cluster, notices).await?;
    }
    Ok(id)
}

/// Removes a node. One that holds shard placements (beyond reference-table copies other
/// nodes hold) is refused unless `force`; a forced removal of a node that still answers also
/// needs `drop_data`, and then deletes its files once the queries that may read them end.
pub(super) async fn remove_node(
    cluster: &Arc<Cluster>,
    a: &Args,
    notices: &mut Vec<Notice>,
) -> Result<()> {
    let (host, port) = (a.text("host")?, a.port()?);
    let node = node_at(cluster, &host, port)?;
    let n = cluster
        .catalog()
        .placements_blocking_removal(node.node_id)?;
    if n == 0 {
        // Only reference-table copies that other nodes hold are left: drop them with it.
        cluster.force_remove_node(node.node_id)?;
        return Ok(());
    }
    if !a.bool("force")? {
        return Err(ClusterError::NotInState {
            message: format!("cannot remove node {host}:{port} because it holds {n} shard placements"),
            hint: Some(format!(
                "Run SELECT drain_node('{host}', {port}) first, or pass force => true to drop its placements."
            )),
        });
    }
    // force is for a node that is gone; dropping a live node's data needs a second, explicit
    // yes.
    let live = cluster.worker_answers(&node.addr()).await;
    if live && !a.bool("drop_data")? {
        let at_risk = cluster.placements_at_risk(node.node_id)?;
        let only = at_risk.iter().filter(|p| p.other_placements == 0).count();
        return Err(ClusterError::NotInState {
            message: format!(
                "node {host}:{port} is running and holds {} shard placements, {only} of them the only copy of their shard; force => true is for a node that is gone",
                at_risk.len()
            ),
            hint: Some(format!(
                "Drain it first: SELECT drain_node('{host}', {port}); SELECT * FROM remove_node_plan('{host}', {port}) lists what removing it would drop. To drop that data, pass drop_data => true as well."
            )),
        });
    }
    // Its files, to delete from it once the catalog forgets them.
    let mut files: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    if live {
        for (table_id, shard_id, _) in cluster.catalog().node_file_names(node.node_id)? {
            files.entry(table_id).or_default().insert(shard_id);
        }
    }
    let removed_at = crate::cluster::now_ms();
    let lost = cluster.force_remove_node(node.node_id)?;
    if live {
        drop_removed_node_files(cluster, &node.addr(), removed_at, files, notices).await?;
    }
    if lost.is_empty() {
        notices.push(notice(format!(
            "removed node {host}:{port}; every shard it held has a replica elsewhere, the next rebalance re-creates the missing replicas"
        )));
    } else {
        let list: Vec<String> = lost.iter().map(|(t, s)| format!("{t} shard {s}")).collect();
        notices.push(Notice {
            level: NoticeLevel::Warning,
            message: format!(
                "removed node {host}:{port}; {} shard(s) lost their only placement: {}",
                lost.len(),
                list.join(", ")
            ),
            detail: Some(
                "Queries and writes that touch a lost shard fail until the table is recreated or the shard restored.".into(),
            ),
            hint: None,
        });
    }
    Ok(())
}

/// `set_node_property(host, port, 'should_have_shards', value)`.
pub(super) fn set_node_property(cluster: &Cluster, a: &Args) -> Result<()> {
    let (host, port, property) = (a.text("host")?, a.port()?, a.text("property")?);
    if !matches!(property.as_str(), "should_have_shards" | "shouldhaveshards") {
        return Err(ClusterError::InvalidArgument {
            message: format!("unrecognized node property \"{property}\""),
            hint: Some("The only node property is should_have_shards.".into()),
        });
    }
    let node = node_at(cluster, &host, port)?;
    cluster
        .catalog()
        .set_should_have_shards(node.node_id, a.bool("value")?)?;
    Ok(())
}

/// Deletes the shard directories a live node held once a forced `remove_node` took them out
/// of the catalog: after the queries that began before (`removed_at`) have ended, and not
/// while `cleanup.retain_deleted_ms` keeps replaced files for catalog backups. What is not
/// deleted is said in a warning: the node is removed either way, and its files are garbage.
async fn drop_removed_node_files(
    cluster: &Arc<Cluster>,
    addr: &str,
    removed_at: i64,
    files: BTreeMap<i64, BTreeSet<i64>>,
    notices: &mut Vec<Notice>,
) -> Result<()> {
    if cluster.catalog().cluster_settings()?.retain_deleted_ms > 0 {
        notices.push(warning(format!(
            "the files of the removed node {addr} are left in place: cleanup.retain_deleted_ms keeps replaced files for catalog backups; delete the worker's data directory once no backup needs them"
        )));
        return Ok(());
    }
    if !cluster
        .wait_for_queries_before(removed_at, Duration::from_secs(30))
        .await
    {
        notices.push(warning(format!(
            "the files of the removed node {addr} are left in place: queries that began before the removal still read them; delete the worker's data directory later"
        )));
        return Ok(());
    }
    let client = match cluster.worker(addr) {
        Ok(c) => c,
        Err(e) => {
            notices.push(warning(format!(
                "the files of the removed node {addr} were not deleted: {e}"
            )));
            return Ok(());
        }
    };
    for (table_id, shards) in files {
        if let Err(e) = client
            .drop_shards(table_id, shards.into_iter().collect())
            .await
        {
            notices.push(warning(format!(
                "the files of the removed node {addr} were not all deleted: {e}"
            )));
            return Ok(());
        }
    }
    Ok(())
}
