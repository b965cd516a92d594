//! The rebalancing, move and job functions: `rebalance_start`, `rebalance_plan`,
//! `rebalance_status`, `rebalance_stop`, `rebalance_wait`, `drain_node`, `move_shard`,
//! `job_wait`, `job_cancel` and their Citus aliases.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use shoal_catalog::{JobType, Node, TransferMode};

use super::args::Args;
use super::nodes::node_at;
use super::registry::Function;
use super::rows::{self, pretty};
use super::{bigint, notice, void, warning, Notice};
use crate::cluster::Cluster;
use crate::error::{ClusterError, Result};
use crate::moves::parse_transfer_mode;
use crate::rebalance::RebalanceRequest;

/// Job types `rebalance_status`, `rebalance_stop` and `rebalance_wait` look at.
const REBALANCE_TYPES: &[JobType] = &[JobType::Rebalance, JobType::Drain];

/// `add_node` registered a new worker: with `auto_rebalance` on, start a rebalance.
pub(super) async fn after_add_node(
    cluster: &Arc<Cluster>,
    notices: &mut Vec<Notice>,
) -> Result<()> {
    let settings = cluster.catalog().cluster_settings()?;
    if !settings.auto_rebalance {
        return Ok(());
    }
    match cluster
        .start_rebalance(&RebalanceRequest::default(), JobType::Rebalance)
        .await
    {
        Ok(s) => notices.extend(s.all_notices().cloned()),
        // The node is added either way; say why no rebalance started.
        Err(e) => notices.push(warning(format!(
            "auto_rebalance: no rebalance was started: {e}"
        ))),
    }
    Ok(())
}

/// The `shard_transfer_mode` argument (default `auto`).
fn transfer_mode(a: &Args) -> Result<TransferMode> {
    match a.opt_text("shard_transfer_mode") {
        Some(text) => parse_transfer_mode(&text),
        None => Ok(TransferMode::Auto),
    }
}

fn request(a: &Args) -> Result<RebalanceRequest> {
    Ok(RebalanceRequest {
        strategy: a.opt_text("rebalance_strategy"),
        drain_only: a.bool("drain_only").unwrap_or(false),
        threshold: a.opt_real("threshold"),
        improvement_threshold: a.opt_real("improvement_threshold"),
        transfer_mode: transfer_mode(a)?,
        max_bandwidth_mb: a.opt_real("max_bandwidth_mb"),
        max_concurrent_moves: a.opt_int("max_concurrent_moves"),
        drain_nodes: Vec::new(),
        hypothetical_nodes: 0,
    })
}

pub(super) async fn call(
    cluster: &Arc<Cluster>,
    function: Function,
    name: &str,
    a: &Args,
    notices: &mut Vec<Notice>,
) -> Result<RecordBatch> {
    match function {
        Function::RebalanceStart => {
            if let Some(n) = a.opt_int("max_concurrent_moves") {
                if n < 1 {
                    return Err(ClusterError::invalid(
                        "max_concurrent_moves must be at least 1",
                    ));
                }
            }
            let s = cluster
                .start_rebalance(&request(a)?, JobType::Rebalance)
                .await?;
            notices.extend(s.all_notices().map(Clone::clone));
            bigint(name, s.job_id)
        }
        Function::RebalanceSimulate => {
            let add = a.opt_int("add_nodes").unwrap_or(0);
            if !(0..=1000).contains(&add) {
                return Err(ClusterError::invalid(format!(
                    "add_nodes must be between 0 and 1000, not {add}"
                )));
            }
            let mut req = request(a)?;
            req.hypothetical_nodes = add as usize;
            for addr in a
                .opt_text("drain")
                .iter()
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let (host, port) = parse_addr(addr)?;
                req.drain_nodes.push(node_at(cluster, host, port)?.node_id);
            }
            let sim = cluster.simulate(&req)?;
            notices.extend(sim.notices.iter().cloned());
            let eta = match sim.rate_bytes_per_s {
                Some(rate) if rate > 0.0 => format!(
                    "about {:.0} s at {:.1} MB/s (the last moves' rate, or rebalance.max_bandwidth_mb)",
                    sim.bytes_to_move as f64 / rate,
                    rate / 1e6
                ),
                _ => "no move has been measured yet to estimate the time".into(),
            };
            notices.push(notice(format!(
                "{} moves of {}; {eta}",
                sim.moves,
                pretty(sim.bytes_to_move)
            )));
            Ok(rows::rebalance_simulate_batch(&sim)?)
        }
        Function::RebalancePlan | Function::GetRebalanceTableShardsPlan => {
            let (rows, plan_notices) = cluster.rebalance_plan(&request(a)?)?;
            notices.extend(plan_notices);
            rows::plan_batch(function == Function::GetRebalanceTableShardsPlan, &rows)
        }
        Function::RebalanceStatus | Function::CitusRebalanceStatus => {
            let latest = cluster.catalog().latest_job(REBALANCE_TYPES)?;
            let status = match latest {
                Some(j) => Some(cluster.job_status(j)?),
                None => None,
            };
            rows::status_batch(function == Function::CitusRebalanceStatus, status.as_ref())
        }
        Function::RebalanceStop => {
            // The newest first: a drain queued behind the running job must not start when
            // that one is cancelled.
            let mut stopped = 0;
            while let Some(job) = cluster.catalog().active_job(REBALANCE_TYPES)? {
                let ended = cluster.cancel_job(job.job_id).await?;
                notices.push(notice(format!(
                    "job {} is {}; finished moves stay, the running ones were rolled back",
                    ended.job_id, ended.state
                )));
                stopped += 1;
            }
            if stopped == 0 {
                return Err(ClusterError::not_in_state(
                    "no ongoing rebalance that can be stopped",
                ));
            }
            void(name)
        }
        Function::RebalanceWait => {
            let Some(job) = cluster.catalog().active_job(REBALANCE_TYPES)? else {
                notices.push(warning("no ongoing rebalance that can be waited on"));
                return void(name);
            };
            cluster.wait_job(job.job_id, true).await?;
            void(name)
        }
        Function::DrainNode | Function::CitusDrainNode | Function::DrainNodes => {
            let nodes = if function == Function::DrainNodes {
                let list = a.text("nodes")?;
                let mut nodes = Vec::new();
                for addr in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (host, port) = parse_addr(addr)?;
                    let node = node_at(cluster, host, port)?;
                    if !nodes.iter().any(|n: &Node| n.node_id == node.node_id) {
                        nodes.push(node);
                    }
                }
                if nodes.is_empty() {
                    return Err(ClusterError::invalid("drain_nodes needs at least one node")
                        .with_hint(Some(
                            "Name them as 'host:port', separated by commas.".into(),
                        )));
                }
                nodes
            } else {
                vec![node_at(cluster, &a.text("host")?, a.port()?)?]
            };
            let names: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
            let s = cluster.drain_nodes(&nodes, request(a)?).await?;
            let Some(job_id) = s.job_id else {
                notices.push(notice(format!(
                    "{} {} no shards to move",
                    if names.len() == 1 { "node" } else { "nodes" },
                    if names.len() == 1 {
                        format!("{} holds", names[0])
                    } else {
                        format!("{} hold", names.join(", "))
                    }
                )));
                return if function == Function::CitusDrainNode {
                    void(name)
                } else {
                    bigint(name, None)
                };
            };
            notices.extend(s.notices.iter().cloned());
            if a.bool("wait").unwrap_or(true) {
                cluster.wait_job(job_id, true).await?;
            } else {
                notices.extend(s.scheduled.iter().cloned());
            }
            if function == Function::CitusDrainNode {
                void(name)
            } else {
                bigint(name, Some(job_id))
            }
        }
        Function::MoveShard | Function::CitusMoveShardPlacement => {
            let shard_id = a.int("shard_id")?;
            let host = a.text("target_host")?;
            let port = u16::try_from(a.int("target_port")?)
                .map_err(|_| ClusterError::invalid("target_port is out of range"))?;
            if function == Function::CitusMoveShardPlacement {
                let src_host = a.text("source_node_name")?;
                let src_port = a.int("source_node_port")?;
                if src_host == host && src_port == i64::from(port) {
                    return Err(ClusterError::invalid("cannot move shard to the same node"));
                }
                let held = cluster.shard_on_node(shard_id, &src_host, src_port)?;
                let already = cluster.shard_on_node(shard_id, &host, i64::from(port))?;
                if !held && !already {
                    return Err(ClusterError::invalid(format!(
                        "could not find placement matching \"{src_host}:{src_port}\""
                    ))
                    .with_hint(Some(
                        "Confirm the placement still exists and try again.".into(),
                    )));
                }
            }
            let mode = transfer_mode(a)?;
            let (_, plan_notices) = cluster.move_shard(shard_id, &host, port, mode).await?;
            notices.extend(plan_notices.iter().cloned());
            void(name)
        }
        Function::JobWait => {
            let job_id = a.int("job_id")?;
            let desired = a.opt_text("desired_status");
            let job = cluster.wait_job(job_id, desired.is_none()).await?;
            if let Some(d) = desired {
                if job.state.as_str() != d {
                    return Err(ClusterError::not_in_state(format!(
                        "Job reached terminal state \"{}\" instead of desired state \"{d}\"",
                        job.state
                    )));
                }
            }
            void(name)
        }
        Function::JobCancel => {
            cluster.cancel_job(a.int("job_id")?).await?;
            void(name)
        }
        other => Err(ClusterError::Internal {
            message: format!("{other:?} is not a job function"),
        }),
    }
}

/// `host:port` of a node list (`drain_nodes`, `rebalance_simulate(drain => ...)`).
fn parse_addr(addr: &str) -> Result<(&str, u16)> {
    addr.rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            ClusterError::invalid(format!("\"{addr}\" is not host:port")).with_hint(Some(
                "Name the nodes as 'host:port', separated by commas.".into(),
            ))
        })
}
