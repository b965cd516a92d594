//! Rebalance, drain and move_shard as cluster operations: the planner's input read from the
//! catalog, the up-front safety checks (a job that cannot complete fails before anything
//! moves), scheduling a job's tasks with Citus's dependencies, and a job's status.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use shoal_catalog::{
    CatalogError, DrainQueued, Job, JobState, JobType, NewJob, NewTask, Node, NodeState, TableKind,
    Task, TaskKind, TaskState, TransferMode,
};
use tracing::{info, warn};

use crate::cluster::{now_ms, Cluster};
use crate::error::{ClusterError, Result};
use crate::gate::gate_key;
use crate::planner::{
    self, NoticeLevel, Plan, PlanNode, PlanNotice, PlanOptions, PlanShardGroup, StepKind,
    StepReason, Strategy,
};

/// How long a job's planning waits for a node that takes part to answer its health check
/// before refusing the job (08006): long enough for a worker restarting under its supervisor.
const HEALTH_WAIT: Duration = Duration::from_secs(10);

/// Job types that exclude each other: one rebalance or drain at a time.
pub(crate) const REBALANCE_JOB_TYPES: &[JobType] = &[JobType::Rebalance, JobType::Drain];

/// What `rebalance_start`, `rebalance_plan` and `drain_node` ask for.
#[derive(Clone, Debug)]
pub struct RebalanceRequest {
    pub strategy: Option<String>,
    pub drain_only: bool,
    pub threshold: Option<f64>,
    pub improvement_threshold: Option<f64>,
    pub transfer_mode: TransferMode,
    pub max_bandwidth_mb: Option<f64>,
    pub max_concurrent_moves: Option<i64>,
    /// Drained nodes: treated as taking no shards, and with `drain_only` only their
    /// placements move (a drain job); without it the rest is balanced too (a simulation).
    pub drain_nodes: Vec<i64>,
    /// Nodes that do not exist, added to the plan's input (`rebalance_simulate`).
    pub hypothetical_nodes: usize,
}

impl Default for RebalanceRequest {
    fn default() -> Self {
        RebalanceRequest {
            strategy: None,
            drain_only: false,
            threshold: None,
            improvement_threshold: None,
            transfer_mode: TransferMode::Auto,
            max_bandwidth_mb: None,
            max_concurrent_moves: None,
            drain_nodes: Vec::new(),
            hypothetical_nodes: 0,
        }
    }
}

/// One row of `rebalance_plan`: one per colocated shard of each planned step.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRow {
    pub table_name: String,
    pub shard_id: i64,
    pub shard_size: u64,
    pub source_host: String,
    pub source_port: u16,
    pub target_host: String,
    pub target_port: u16,
}

/// The result of starting a job: its id (none when there was nothing to do) and the notices
/// for the client.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub job_id: Option<i64>,
    /// What the plan says (and a queued drain's place in line).
    pub notices: Vec<PlanNotice>,
    /// "Scheduled N moves as job J", when a job was created: a call that waits for the job
    /// does not send it.
    pub scheduled: Option<PlanNotice>,
}

impl Scheduled {
    /// Every notice, the scheduling one last.
    pub fn all_notices(&self) -> impl Iterator<Item = &PlanNotice> {
        self.notices.iter().chain(self.scheduled.iter())
    }
}

/// A job with what its status functions report.
#[derive(Clone, Debug)]
pub struct JobStatus {
    pub job: Job,
    pub tasks: Vec<Task>,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Measured over the job's last seconds of actual transfer (see `transfer_rate`), or
    /// over its running time when this coordinator has not seen it transfer (it restarted);
    /// `None` before any byte moved.
    pub rate_bytes_per_s: Option<f64>,
    /// The bytes left in the tasks still to run or running, over that rate.
    pub eta_seconds: Option<f64>,
    pub last_error: Option<String>,
}

impl JobStatus {
    /// `bytes_done / bytes_total` in [0, 1]; a finished job is 1.
    pub fn progress(&self) -> f64 {
        if self.job.state == JobState::Finished {
            return 1.0;
        }
        if self.bytes_total == 0 {
            return 0.0;
        }
        (self.bytes_done as f64 / self.bytes_total as f64).clamp(0.0, 1.0)
    }
}

/// The `i`-th (from 1) node of a simulation that does not exist: id `-i`, host `new-<i>`.
fn hypothetical_node(i: usize) -> Node {
    Node {
        node_id: -(i as i64),
        host: format!("new-{i}"),
        port: 0,
        should_have_shards: true,
        state: NodeState::Active,
        is_live: true,
        disk_free_bytes: None,
        data_bytes: None,
        last_heartbeat_ms: None,
    }
}

/// One node in a `rebalance_simulate` answer: its load before and after the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedNode {
    /// `host:port`, or `new-<i>` for a node the simulation adds.
    pub node: String,
    pub shards_before: u64,
    pub shards_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub moves_in: u64,
    pub moves_out: u64,
}

/// What a plan would do, before doing it.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    pub nodes: Vec<SimulatedNode>,
    pub moves: usize,
    pub bytes_to_move: u64,
    /// Bytes per second the last finished moves reached (`None`: nothing measured yet and no
    /// bandwidth limit set).
    pub rate_bytes_per_s: Option<f64>,
    pub notices: Vec<PlanNotice>,
}

/// A placement on a node about to be removed: what removing the node would drop.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementAtRisk {
    pub table_name: String,
    pub shard_id: i64,
    pub rows: u64,
    pub bytes: u64,
    /// Placements of the shard on other nodes; 0: removing the node loses the shard.
    pub other_placements: usize,
}

/// A plan checked and turned into tasks, not scheduled yet.
struct PreparedJob {
    job_type: JobType,
    description: String,
    /// Empty when there is nothing to move.
    tasks: Vec<NewTask>,
    /// Moves among the tasks (reference-table copies are not counted).
    moves: usize,
    notices: Vec<PlanNotice>,
}

/// A shard group as the catalog has it, with what a task needs to find its members again.
struct GroupInfo {
    colocation_id: Option<i64>,
    shard_index: i64,
    is_reference: bool,
    /// (table name, shard id, bytes) of every member.
    members: Vec<(String, i64, u64)>,
}

/// Shard groups by their representative shard id.
type GroupInfos = HashMap<i64, GroupInfo>;
/// The nodes, the planner's groups and what each group is, read in one go.
type PlanInputs = (Vec<Node>, Vec<PlanShardGroup>, GroupInfos);

fn notice(level: NoticeLevel, message: String) -> PlanNotice {
    PlanNotice {
        level,
        message,
        detail: None,
        hint: None,
    }
}

fn plan_error(e: planner::PlanError) -> ClusterError {
    ClusterError::InvalidArgument {
        message: e.to_string(),
        hint: None,
    }
}

impl Cluster {
    /// The planner's view of the cluster, read from one catalog snapshot.
    fn plan_inputs(&self) -> Result<PlanInputs> {
        let nodes = self.catalog().list_nodes()?;
        let mut groups: BTreeMap<(i64, i64), (PlanShardGroup, GroupInfo)> = BTreeMap::new();
        for snap in self.catalog().snapshot_all()? {
            let t = &snap.table;
            let key = gate_key(t.colocation_id, t.table_id);
            for s in &snap.shards {
                let bytes: u64 = s
                    .placements
                    .first()
                    .map(|p| p.files.iter().map(|f| f.bytes).sum())
                    .unwrap_or(0);
                let entry = groups.entry((key, s.shard_index)).or_insert_with(|| {
                    (
                        PlanShardGroup {
                            group_id: s.shard_id,
                            colocation_id: key,
                            bytes: 0,
                            placements: s.placements.iter().map(|p| p.node_id).collect(),
                            replication_factor: t.replication_factor.max(1) as usize,
                            is_reference: t.kind == TableKind::Reference,
                            disallowed_nodes: Vec::new(),
                        },
                        GroupInfo {
                            colocation_id: t.colocation_id,
                            shard_index: s.shard_index,
                            is_reference: t.kind == TableKind::Reference,
                            members: Vec::new(),
                        },
                    )
                });
                entry.0.bytes += bytes;
                if s.shard_id < entry.0.group_id {
                    entry.0.group_id = s.shard_id;
                    entry.0.placements = s.placements.iter().map(|p| p.node_id).collect();
                }
                entry.1.members.push((t.name.clone(), s.shard_id, bytes));
            }
        }
        let mut plan_groups = Vec::with_capacity(groups.len());
        let mut info = HashMap::with_capacity(groups.len());
        for (_, (g, i)) in groups {
            info.insert(g.group_id, i);
            plan_groups.push(g);
        }
        Ok((nodes, plan_groups, info))
    }

    fn make_plan(
        &self,
        req: &RebalanceRequest,
    ) -> Result<(Plan, Vec<Node>, HashMap<i64, GroupInfo>)> {
        self.plan_from(req, self.plan_inputs()?)
    }

    /// [`Self::make_plan`] on inputs already read.
    fn plan_from(
        &self,
        req: &RebalanceRequest,
        (nodes, all_groups, info): PlanInputs,
    ) -> Result<(Plan, Vec<Node>, HashMap<i64, GroupInfo>)> {
        let strategy: Strategy = req
            .strategy
            .as_deref()
            .unwrap_or("by_disk_size")
            .parse()
            .map_err(|e: planner::PlanError| ClusterError::InvalidArgument {
                message: e.to_string(),
                hint: Some("Strategies: by_shard_count, by_disk_size.".into()),
            })?;
        // A lost shard (no placement left) cannot be planned for; say so and plan the rest.
        let (lost, groups): (Vec<PlanShardGroup>, Vec<PlanShardGroup>) = all_groups
            .into_iter()
            .partition(|g| g.placements.is_empty());
        let lost_notices: Vec<PlanNotice> = lost
            .iter()
            .map(|g| {
                notice(
                    NoticeLevel::Warning,
                    format!(
                        "shard {} is lost (no placement left) and is skipped",
                        g.group_id
                    ),
                )
            })
            .collect();
        let mut plan_nodes: Vec<PlanNode> = nodes
            .iter()
            .map(|n| PlanNode {
                node_id: n.node_id,
                host: n.host.clone(),
                port: n.port,
                should_have_shards: n.should_have_shards,
                is_live: n.is_live,
                capacity: 1.0,
                disk_free_bytes: n.disk_free_bytes,
            })
            .collect();
        let mut nodes = nodes;
        for i in 1..=req.hypothetical_nodes {
            let node = hypothetical_node(i);
            plan_nodes.push(PlanNode {
                node_id: node.node_id,
                host: node.host.clone(),
                port: node.port,
                should_have_shards: true,
                is_live: true,
                capacity: 1.0,
                disk_free_bytes: None,
            });
            nodes.push(node);
        }
        let mut opts = PlanOptions::new(strategy);
        opts.threshold = req.threshold;
        opts.improvement_threshold = req.improvement_threshold;
        opts.drain_only = req.drain_only;
        opts.drain_nodes = req.drain_nodes.clone();
        let mut plan = planner::plan(&plan_nodes, &groups, &opts).map_err(plan_error)?;
        plan.notices.splice(0..0, lost_notices);
        Ok((plan, nodes, info))
    }

    /// `rebalance_simulate`: the plan for the cluster with `req.hypothetical_nodes` more
    /// nodes and `req.drain_nodes` drained, applied to the placements on paper: per node, its
    /// shards and bytes before and after; the moves, their bytes, and the rate to expect.
    pub fn simulate(&self, req: &RebalanceRequest) -> Result<Simulation> {
        // One catalog read: the plan and the loads before it come from the same state.
        let inputs = self.plan_inputs()?;
        let groups = inputs.1.clone();
        let (plan, nodes, _) = self.plan_from(req, inputs)?;
        let mut rows: Vec<SimulatedNode> = nodes
            .iter()
            .map(|n| SimulatedNode {
                node: if n.node_id < 0 {
                    n.host.clone()
                } else {
                    n.addr()
                },
                shards_before: 0,
                shards_after: 0,
                bytes_before: 0,
                bytes_after: 0,
                moves_in: 0,
                moves_out: 0,
            })
            .collect();
        let index: HashMap<i64, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node_id, i))
            .collect();
        let bytes_of: HashMap<i64, u64> = groups.iter().map(|g| (g.group_id, g.bytes)).collect();
        for g in &groups {
            for node in &g.placements {
                if let Some(r) = index.get(node).and_then(|i| rows.get_mut(*i)) {
                    r.shards_before += 1;
                    r.bytes_before += g.bytes;
                    r.shards_after += 1;
                    r.bytes_after += g.bytes;
                }
            }
        }
        let mut bytes_to_move = 0;
        for step in &plan.steps {
            let bytes = bytes_of.get(&step.group_id).copied().unwrap_or(step.bytes);
            bytes_to_move += bytes;
            if let Some(t) = index.get(&step.target_node).and_then(|i| rows.get_mut(*i)) {
                t.shards_after += 1;
                t.bytes_after += bytes;
                t.moves_in += 1;
            }
            if step.kind == StepKind::Move {
                if let Some(s) = index.get(&step.source_node).and_then(|i| rows.get_mut(*i)) {
                    s.shards_after = s.shards_after.saturating_sub(1);
                    s.bytes_after = s.bytes_after.saturating_sub(bytes);
                    s.moves_out += 1;
                }
            }
        }
        let mut notices = plan.notices.clone();
        for p in &plan.problems {
            notices.push(notice(
                NoticeLevel::Warning,
                format!(
                    "shard group {} could not be placed: {}",
                    p.group_id, p.reason
                ),
            ));
        }
        let rate = self.measured_move_rate()?.or(self
            .catalog()
            .cluster_settings()?
            .max_bandwidth_mb
            .map(|mb| mb * 1e6));
        Ok(Simulation {
            nodes: rows,
            moves: plan.steps.len(),
            bytes_to_move,
            rate_bytes_per_s: rate,
            notices,
        })
    }

    /// The rate the most recent job with finished moves reached (a rebalance, a drain or a
    /// `move_shard`): their bytes over the time from the first move's start to the last
    /// one's end.
    fn measured_move_rate(&self) -> Result<Option<f64>> {
        for job in self.catalog().jobs()?.iter().rev().take(10) {
            let tasks = self.catalog().tasks(Some(job.job_id))?;
            let done: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.state == TaskState::Done)
                .collect();
            let start = done.iter().filter_map(|t| t.started_at_ms).min();
            let end = done.iter().filter_map(|t| t.finished_at_ms).max();
            let bytes: u64 = done.iter().map(|t| t.bytes_total.max(t.bytes_done)).sum();
            if let (Some(start), Some(end)) = (start, end) {
                if end > start && bytes > 0 {
                    return Ok(Some(bytes as f64 * 1000.0 / (end - start) as f64));
                }
            }
        }
        Ok(None)
    }

    /// `rebalance_plan`: the rows of the moves `rebalance_start` would schedule, in order.
    pub fn rebalance_plan(
        &self,
        req: &RebalanceRequest,
    ) -> Result<(Vec<PlanRow>, Vec<PlanNotice>)> {
        let (plan, nodes, info) = self.make_plan(req)?;
        let node = |id: i64| nodes.iter().find(|n| n.node_id == id);
        let mut rows = Vec::new();
        for step in &plan.steps {
            let (Some(src), Some(dst)) = (node(step.source_node), node(step.target_node)) else {
                continue;
            };
            for (table, shard_id, bytes) in info
                .get(&step.group_id)
                .map(|g| g.members.as_slice())
                .unwrap_or_default()
            {
                rows.push(PlanRow {
                    table_name: table.clone(),
                    shard_id: *shard_id,
                    shard_size: *bytes,
                    source_host: src.host.clone(),
                    source_port: src.port,
                    target_host: dst.host.clone(),
                    target_port: dst.port,
                });
            }
        }
        Ok((rows, plan.notices))
    }

    /// `rebalance_start` (job type `rebalance`) and `drain_node` (job type `drain`): plans,
    /// checks that the plan can complete, and schedules it as one background job. A drain
    /// asked for while another rebalance or drain runs is not refused: once the plan shows
    /// it could complete now, it waits behind that job (joining a drain already waiting
    /// there) and is planned anew when it starts.
    pub async fn start_rebalance(
        self: &Arc<Self>,
        req: &RebalanceRequest,
        job_type: JobType,
    ) -> Result<Scheduled> {
        if let Some(j) = self.catalog().active_job(REBALANCE_JOB_TYPES)? {
            if job_type != JobType::Drain || req.drain_nodes.is_empty() {
                return Err(CatalogError::JobRunning { job_id: j.job_id }.into());
            }
            // Refused now if it could not complete now (nowhere to go, a node down).
            let prepared = self.prepare_job(req, job_type).await?;
            let job = NewJob {
                job_type,
                description: prepared.description.clone(),
                transfer_mode: req.transfer_mode,
                max_bandwidth_mb: req.max_bandwidth_mb,
                max_concurrent_moves: req.max_concurrent_moves,
                tasks: Vec::new(),
            };
            let queued = self.catalog().queue_drain(
                &job,
                &req.drain_nodes,
                req.strategy.as_deref(),
                REBALANCE_JOB_TYPES,
            )?;
            let (job_id, message) = match queued {
                DrainQueued::Queued { job_id, behind } => (
                    job_id,
                    format!("The drain waits for job {behind} to end, as job {job_id}"),
                ),
                DrainQueued::Merged { job_id } => (
                    job_id,
                    format!("The drain joins job {job_id}, which waits for the running job to end"),
                ),
                // The job ahead ended meanwhile, after the plan above: plan again.
                DrainQueued::NothingAhead => {
                    let prepared = self.prepare_job(req, job_type).await?;
                    return self.schedule_prepared(prepared, req);
                }
            };
            self.jobs_changed();
            info!(job_id, nodes = ?req.drain_nodes, "drain queued");
            return Ok(Scheduled {
                job_id: Some(job_id),
                scheduled: None,
                notices: vec![PlanNotice {
                    level: NoticeLevel::Notice,
                    message,
                    detail: Some(
                        "Drain queued as background job; it is planned when it starts".into(),
                    ),
                    hint: Some("To monitor progress, run: SELECT * FROM shoal.jobs;".into()),
                }],
            });
        }
        let prepared = self.prepare_job(req, job_type).await?;
        self.schedule_prepared(prepared, req)
    }

    /// `drain_node`: the nodes take no new shards from now on, and a drain job moves every
    /// placement off them (queued behind a running rebalance or drain). A drain that is
    /// refused (nowhere to put the shards, a node down) changes nothing, as Citus's does,
    /// whose transaction rolls the flag back; once the job exists the flag stays, also if
    /// the job fails later.
    pub async fn drain_nodes(
        self: &Arc<Self>,
        nodes: &[Node],
        mut req: RebalanceRequest,
    ) -> Result<Scheduled> {
        for node in nodes {
            self.catalog().set_should_have_shards(node.node_id, false)?;
        }
        req.drain_nodes = nodes.iter().map(|n| n.node_id).collect();
        req.drain_only = true;
        let result = self.start_rebalance(&req, JobType::Drain).await;
        if result.is_err() {
            for node in nodes.iter().filter(|n| n.should_have_shards) {
                if let Err(restore) = self.catalog().set_should_have_shards(node.node_id, true) {
                    tracing::error!(node = node.node_id, error = %restore,
                        "could not restore should_have_shards after a refused drain");
                }
            }
        }
        result
    }

    /// Creates the job of a prepared plan (or says there is nothing to move).
    fn schedule_prepared(
        self: &Arc<Self>,
        prepared: PreparedJob,
        req: &RebalanceRequest,
    ) -> Result<Scheduled> {
        let PreparedJob {
            job_type,
            description,
            tasks,
            moves,
            mut notices,
        } = prepared;
        if tasks.is_empty() {
            notices.push(notice(
                NoticeLevel::Notice,
                "No moves available for rebalancing".into(),
            ));
            return Ok(Scheduled {
                job_id: None,
                notices,
                scheduled: None,
            });
        }
        let job_id = self.catalog().create_job(
            &NewJob {
                job_type,
                description,
                transfer_mode: req.transfer_mode,
                max_bandwidth_mb: req.max_bandwidth_mb,
                max_concurrent_moves: req.max_concurrent_moves,
                tasks,
            },
            REBALANCE_JOB_TYPES,
        )?;
        self.jobs_changed();
        info!(job_id, moves, %job_type, "job scheduled");
        let scheduled = PlanNotice {
            level: NoticeLevel::Notice,
            message: format!("Scheduled {moves} moves as job {job_id}"),
            detail: Some(format!(
                "{} scheduled as background job",
                if job_type == JobType::Drain {
                    "Drain"
                } else {
                    "Rebalance"
                }
            )),
            hint: Some("To monitor progress, run: SELECT * FROM rebalance_status();".into()),
        };
        Ok(Scheduled {
            job_id: Some(job_id),
            notices,
            scheduled: Some(scheduled),
        })
    }

    /// Plans a job and checks that the plan can complete: every group has somewhere to go
    /// and every node that takes part answers now, not halfway through.
    async fn prepare_job(&self, req: &RebalanceRequest, job_type: JobType) -> Result<PreparedJob> {
        let (plan, nodes, info) = self.make_plan(req)?;
        let notices = plan.notices.clone();
        let node = |id: i64| nodes.iter().find(|n| n.node_id == id);
        if !plan.problems.is_empty() {
            let lines: Vec<String> = plan
                .problems
                .iter()
                .map(|p| {
                    let at = p
                        .node_id
                        .and_then(node)
                        .map(|n| format!(" on {}", n.addr()))
                        .unwrap_or_default();
                    format!("shard {}{}: {}", p.group_id, at, p.reason)
                })
                .collect();
            let disk = plan.problems.iter().any(|p| p.reason.contains("disk"));
            let verb = if job_type == JobType::Drain {
                "drain"
            } else {
                "rebalance"
            };
            let message = format!(
                "cannot {verb}: {} shard group(s) have nowhere to go; nothing was moved\n{}",
                plan.problems.len(),
                lines.join("\n")
            );
            return Err(if disk {
                ClusterError::DiskFull {
                    message,
                    hint: Some(
                        "Free disk space on the other workers or add a worker (SELECT add_node(...)), then retry."
                            .into(),
                    ),
                }
            } else {
                ClusterError::NotInState {
                    message,
                    hint: Some(
                        "Add a worker (SELECT add_node(...)) or set should_have_shards = true on one, then retry."
                            .into(),
                    ),
                }
            });
        }
        let drained: Vec<String> = req
            .drain_nodes
            .iter()
            .filter_map(|id| node(*id))
            .map(|n| n.addr())
            .collect();
        let description = match (job_type, drained.len()) {
            (JobType::Drain, 1) => format!("Drain node {}", drained[0]),
            (JobType::Drain, _) => format!("Drain nodes {}", drained.join(", ")),
            _ => "Rebalance all colocation groups".to_string(),
        };
        let mut prepared = PreparedJob {
            job_type,
            description,
            tasks: Vec::new(),
            moves: 0,
            notices,
        };
        if plan.steps.is_empty() {
            return Ok(prepared);
        }
        let mut involved: Vec<i64> = plan
            .steps
            .iter()
            .flat_map(|s| [s.source_node, s.target_node])
            .collect();
        involved.sort_unstable();
        involved.dedup();
        for id in involved {
            let n = node(id).ok_or_else(|| ClusterError::Internal {
                message: format!("planned node {id} is unknown"),
            })?;
            let client = self.worker(&n.addr())?;
            // A worker restarting (killed and started again before a heartbeat marked it
            // unreachable) still counts as live and is planned as a target; it answers
            // within seconds, so it is asked again for a while before the job is refused.
            let deadline = tokio::time::Instant::now() + HEALTH_WAIT;
            let mut fail_once = crate::failpoints::enabled("job_health_check_fails_once");
            let answered = loop {
                let checked = tokio::time::timeout(Duration::from_secs(3), client.health()).await;
                // (the failpoint discards the first answer)
                if matches!(checked, Ok(Ok(_))) && !std::mem::take(&mut fail_once) {
                    break true;
                }
                if tokio::time::Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            if !answered {
                return Err(ClusterError::ShardUnavailable {
                    message: format!("node {} is not reachable; nothing was moved", n.addr()),
                    hint: Some(
                        "Start the worker, or remove it with SELECT remove_node(host, port, force => true) if it is gone for good."
                            .into(),
                    ),
                });
            }
        }
        prepared.tasks = self.tasks_for(&plan, &nodes, &info)?;
        prepared.moves = plan
            .steps
            .iter()
            .filter(|s| s.reason != StepReason::ReferenceCopy)
            .count();
        Ok(prepared)
    }

    /// Every placement on `node_id`, by table name and shard id, with its rows and bytes and
    /// how many other placements its shard has (`remove_node_plan`, and what a forced
    /// `remove_node` drops).
    pub fn placements_at_risk(&self, node_id: i64) -> Result<Vec<PlacementAtRisk>> {
        let mut out = Vec::new();
        for snap in self.catalog().snapshot_all()? {
            for shard in &snap.shards {
                let Some(here) = shard.placements.iter().find(|p| p.node_id == node_id) else {
                    continue;
                };
                out.push(PlacementAtRisk {
                    table_name: snap.table.name.clone(),
                    shard_id: shard.shard_id,
                    rows: here.rows(),
                    bytes: here.bytes(),
                    other_placements: shard.placements.len() - 1,
                });
            }
        }
        out.sort_by(|a, b| (&a.table_name, a.shard_id).cmp(&(&b.table_name, b.shard_id)));
        Ok(out)
    }

    /// Whether the worker at `addr` answers a health check now (within 2 s). The catalog's
    /// liveness lags a stop by up to the worker timeout; removing a node by force asks this.
    pub async fn worker_answers(&self, addr: &str) -> bool {
        let Ok(client) = self.worker(addr) else {
            return false;
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), client.health()).await,
            Ok(Ok(_))
        )
    }

    /// Where a planned move goes when its target no longer takes shards (drained,
    /// disallowed or down since the plan): the live node that takes shards, holds no
    /// placement of the group, has room for it, and holds the fewest bytes counting those
    /// that unfinished moves bring it (a greedy pick, not a new plan). `None` if no node
    /// qualifies.
    pub(crate) fn replacement_target(&self, task: &Task) -> Result<Option<Node>> {
        let (nodes, groups, _) = self.plan_inputs()?;
        let Some(group) = groups.iter().find(|g| g.group_id == task.shard_id) else {
            return Ok(None);
        };
        let mut load: HashMap<i64, u64> = HashMap::new();
        for g in &groups {
            for node in &g.placements {
                *load.entry(*node).or_default() += g.bytes;
            }
        }
        // And what moves still bring them: retargeted moves must not all pile onto one node.
        for t in self.catalog().unfinished_tasks()? {
            if t.task_id != task.task_id {
                *load.entry(t.target_node_id).or_default() += t.bytes_total;
            }
        }
        Ok(nodes
            .into_iter()
            .filter(|n| {
                n.is_live
                    && n.should_have_shards
                    && n.node_id != task.source_node_id
                    && n.node_id != task.target_node_id
                    && !group.placements.contains(&n.node_id)
                    // As the planner: 10% of the free disk stays free.
                    && n.disk_free_bytes.is_none_or(|free| {
                        group.bytes as f64 <= free as f64 * 0.9
                    })
            })
            .min_by_key(|n| (load.get(&n.node_id).copied().unwrap_or(0), n.node_id)))
    }

    /// Plans the oldest queued drain once the jobs ahead of it have ended: it gets its tasks
    /// (all its nodes drained by one plan), or fails with the reason its plan was refused.
    /// Returns the job planned, if any.
    pub(crate) async fn start_queued_job(self: &Arc<Self>) -> Result<Option<i64>> {
        let Some(job) = self.catalog().due_queued_job(REBALANCE_JOB_TYPES)? else {
            return Ok(None);
        };
        let Some(queued) = job.queued.clone() else {
            return Ok(None);
        };
        let req = RebalanceRequest {
            strategy: queued.strategy.clone(),
            transfer_mode: job.transfer_mode,
            max_bandwidth_mb: job.max_bandwidth_mb,
            max_concurrent_moves: job.max_concurrent_moves,
            drain_nodes: queued.node_ids.clone(),
            drain_only: true,
            ..RebalanceRequest::default()
        };
        match self.prepare_job(&req, job.job_type).await {
            Ok(prepared) => {
                let planned = NewJob {
                    job_type: job.job_type,
                    description: prepared.description,
                    transfer_mode: job.transfer_mode,
                    max_bandwidth_mb: job.max_bandwidth_mb,
                    max_concurrent_moves: job.max_concurrent_moves,
                    tasks: prepared.tasks,
                };
                if self
                    .catalog()
                    .plan_queued_job(job.job_id, &queued.node_ids, &planned)?
                {
                    info!(
                        job_id = job.job_id,
                        moves = prepared.moves,
                        "queued drain planned"
                    );
                } else {
                    info!(
                        job_id = job.job_id,
                        "queued drain changed while it was planned; planning again"
                    );
                }
            }
            Err(e) => {
                warn!(job_id = job.job_id, error = %e, "queued drain refused");
                self.catalog().fail_queued_job(job.job_id, &e.to_string())?;
            }
        }
        self.jobs_changed();
        Ok(Some(job.job_id))
    }

    /// Tasks for a plan, with Citus's dependencies: a move waits for the previous move of its
    /// colocation group and for earlier moves *off* its target (they free space); moves with
    /// neither wait for the reference-table copies.
    fn tasks_for(
        &self,
        plan: &Plan,
        nodes: &[Node],
        info: &HashMap<i64, GroupInfo>,
    ) -> Result<Vec<NewTask>> {
        // A task names the nodes it moves between: a plan step on a node the catalog does
        // not list is refused, never scheduled towards an empty address.
        let addr = |id: i64| -> Result<String> {
            nodes
                .iter()
                .find(|n| n.node_id == id)
                .map(|n| n.addr())
                .ok_or_else(|| ClusterError::Internal {
                    message: format!("planned node {id} is unknown"),
                })
        };
        let mut tasks: Vec<NewTask> = Vec::with_capacity(plan.steps.len());
        let mut last_in_colocation: HashMap<i64, usize> = HashMap::new();
        let mut reference_tasks: Vec<usize> = Vec::new();
        for step in &plan.steps {
            let g = info
                .get(&step.group_id)
                .ok_or_else(|| ClusterError::Internal {
                    message: format!("planned shard group {} is unknown", step.group_id),
                })?;
            let coloc = g.colocation_id.unwrap_or(-step.group_id);
            let mut depends_on = Vec::new();
            if step.reason == StepReason::ReferenceCopy || g.is_reference {
                reference_tasks.push(tasks.len());
            } else {
                if let Some(i) = last_in_colocation.get(&coloc) {
                    depends_on.push(*i);
                }
                for (i, t) in tasks.iter().enumerate() {
                    if t.kind == TaskKind::Move && t.source_node_id == step.target_node {
                        depends_on.push(i);
                    }
                }
                if depends_on.is_empty() {
                    depends_on.extend(reference_tasks.iter().copied());
                }
                depends_on.sort_unstable();
                depends_on.dedup();
                last_in_colocation.insert(coloc, tasks.len());
            }
            tasks.push(NewTask {
                kind: match step.kind {
                    StepKind::Move => TaskKind::Move,
                    StepKind::Copy => TaskKind::Copy,
                },
                shard_id: step.group_id,
                colocation_id: g.colocation_id,
                shard_index: g.shard_index,
                source_node_id: step.source_node,
                target_node_id: step.target_node,
                source: addr(step.source_node)?,
                target: addr(step.target_node)?,
                bytes_total: step.bytes,
                depends_on,
            });
        }
        Ok(tasks)
    }

    /// `move_shard`: moves the group of `shard_id` to the target as a one-task job and waits
    /// for it. `Ok(None)` with a warning when the group is already there.
    pub async fn move_shard(
        self: &Arc<Self>,
        shard_id: i64,
        target_host: &str,
        target_port: u16,
        transfer_mode: TransferMode,
    ) -> Result<(Option<i64>, Vec<PlanNotice>)> {
        let target_addr = format!("{target_host}:{target_port}");
        let target = self
            .catalog()
            .node_by_addr(target_host, target_port)?
            .ok_or_else(|| ClusterError::InvalidArgument {
                message: "Moving shards to a non-existing node is not supported".into(),
                hint: Some(format!(
                    "Add the target node via SELECT add_node('{target_host}', {target_port});"
                )),
            })?;
        if !target.is_live {
            return Err(ClusterError::NotInState {
                message: "Moving shards to a non-active node is not supported".into(),
                hint: Some(format!("Start the worker at {target_addr} first.")),
            });
        }
        if !target.should_have_shards {
            return Err(ClusterError::NotInState {
                message: "Moving shards to a node that shouldn't have a shard is not supported"
                    .into(),
                hint: Some(format!(
                    "Allow it via SELECT set_node_property('{target_host}', {target_port}, 'should_have_shards', true);"
                )),
            });
        }
        let (nodes, groups, info) = self.plan_inputs()?;
        let (group, gi) = groups
            .iter()
            .find_map(|g| {
                let i = info.get(&g.group_id)?;
                i.members
                    .iter()
                    .any(|(_, id, _)| *id == shard_id)
                    .then_some((g, i))
            })
            .ok_or_else(|| ClusterError::InvalidArgument {
                message: format!("shard {shard_id} does not exist"),
                hint: Some("See SELECT * FROM shoal.shards;".into()),
            })?;
        if gi.is_reference {
            return Err(ClusterError::NotSupported {
                message: "shards of reference tables cannot be moved; they have a placement on every node".into(),
            });
        }
        if group.placements.contains(&target.node_id) {
            return Ok((
                None,
                vec![PlanNotice {
                    level: NoticeLevel::Warning,
                    message: format!("shard is already present on node {target_addr}"),
                    detail: Some("Move may have already completed.".into()),
                    hint: None,
                }],
            ));
        }
        let source_id =
            *group
                .placements
                .first()
                .ok_or_else(|| ClusterError::ShardUnavailable {
                    message: format!("shard {shard_id} is lost: it has no placement to move"),
                    hint: None,
                })?;
        let source = nodes
            .iter()
            .find(|n| n.node_id == source_id)
            .ok_or_else(|| ClusterError::Internal {
                message: format!("node {source_id} is unknown"),
            })?;
        if let Some(free) = target.disk_free_bytes {
            if group.bytes.saturating_add(free / 10) > free {
                return Err(ClusterError::DiskFull {
                    message: format!(
                        "not enough empty space on node {target_addr} for shard {shard_id}: {} bytes needed, {free} bytes free (10% must stay free)",
                        group.bytes
                    ),
                    hint: Some("Free disk space on the target or choose another one.".into()),
                });
            }
        }
        // A move of this group may not run twice at once.
        let busy = self.catalog().unfinished_tasks()?.into_iter().any(|t| {
            t.colocation_id == gi.colocation_id
                && t.shard_index == gi.shard_index
                && (gi.colocation_id.is_some() || t.shard_id == group.group_id)
        });
        if busy {
            return Err(ClusterError::NotInState {
                message: format!("could not acquire the lock required to move shard {shard_id}"),
                hint: Some("A rebalance or another move of this shard group is running; wait for it (SELECT rebalance_wait();) and retry.".into()),
            });
        }
        let job_id = self.catalog().create_job(
            &NewJob {
                job_type: JobType::Move,
                description: format!(
                    "Move shard {shard_id} from {} to {target_addr}",
                    source.addr()
                ),
                transfer_mode,
                max_bandwidth_mb: None,
                max_concurrent_moves: None,
                tasks: vec![NewTask {
                    kind: TaskKind::Move,
                    shard_id: group.group_id,
                    colocation_id: gi.colocation_id,
                    shard_index: gi.shard_index,
                    source_node_id: source.node_id,
                    target_node_id: target.node_id,
                    source: source.addr(),
                    target: target_addr,
                    bytes_total: group.bytes,
                    depends_on: vec![],
                }],
            },
            &[],
        )?;
        self.schedule_tasks_once()?;
        self.wait_job(job_id, true).await?;
        Ok((Some(job_id), Vec::new()))
    }

    /// Starts a repair for each damaged placement (a file a query or the scrubber found
    /// damaged) that has a good replica: in one catalog transaction the damaged placements of
    /// the shard group on that worker are dropped (their files deleted once no query reads
    /// them) and a `repair` job is created whose copy task makes new placements there from the
    /// good replica, with a move's protocol (verified pull, write fence, switch). Placements
    /// without a good replica, or whose group is being moved, are left for a later round;
    /// reads of them fail with XX001 meanwhile. Returns the jobs started.
    pub fn repair_damaged_placements(self: &Arc<Self>) -> Result<usize> {
        if self.damaged_files().is_empty() {
            return Ok(0);
        }
        // Reports of files no placement names any more (a scrub of an old listing, a placement
        // dropped or repaired since) must not start a repair of what is now a good copy.
        self.forget_stale_damage(&self.file_listing()?);
        let damaged = self.damaged_files();
        // (worker address, shard) pairs with damage.
        let bad: BTreeSet<(String, i64)> = damaged
            .iter()
            .map(|r| (r.worker.clone(), r.shard_id))
            .collect();
        let (nodes, groups, info) = self.plan_inputs()?;
        let unfinished = self.catalog().unfinished_tasks()?;
        let mut started = 0;
        let mut handled: BTreeSet<(i64, i64)> = BTreeSet::new();
        for (worker, shard_id) in &bad {
            let Some(node) = nodes.iter().find(|n| &n.addr() == worker) else {
                continue;
            };
            let Some((group, gi)) = groups.iter().find_map(|g| {
                let i = info.get(&g.group_id)?;
                i.members
                    .iter()
                    .any(|(_, id, _)| id == shard_id)
                    .then_some((g, i))
            }) else {
                continue;
            };
            if !group.placements.contains(&node.node_id)
                || !handled.insert((group.group_id, node.node_id))
            {
                continue;
            }
            let busy = unfinished.iter().any(|t| {
                t.colocation_id == gi.colocation_id
                    && t.shard_index == gi.shard_index
                    && (gi.colocation_id.is_some() || t.shard_id == group.group_id)
            });
            if busy {
                continue;
            }
            let damaged_on = |n: &Node| {
                gi.members
                    .iter()
                    .any(|(_, id, _)| bad.contains(&(n.addr(), *id)))
            };
            let Some(source) = group.placements.iter().find_map(|id| {
                nodes.iter().find(|n| {
                    n.node_id == *id && *id != node.node_id && n.is_live && !damaged_on(n)
                })
            }) else {
                continue;
            };
            let shard_ids: Vec<i64> = gi
                .members
                .iter()
                .map(|(_, id, _)| *id)
                .filter(|id| bad.contains(&(node.addr(), *id)))
                .collect();
            let job = NewJob {
                job_type: JobType::Repair,
                description: format!(
                    "Repair shard {shard_id} on {} from {}",
                    node.addr(),
                    source.addr()
                ),
                transfer_mode: TransferMode::Auto,
                max_bandwidth_mb: None,
                max_concurrent_moves: None,
                tasks: vec![NewTask {
                    kind: TaskKind::Copy,
                    shard_id: group.group_id,
                    colocation_id: gi.colocation_id,
                    shard_index: gi.shard_index,
                    source_node_id: source.node_id,
                    target_node_id: node.node_id,
                    source: source.addr(),
                    target: node.addr(),
                    bytes_total: group.bytes,
                    depends_on: vec![],
                }],
            };
            match self
                .catalog()
                .create_repair_job(&shard_ids, node.node_id, &job)
            {
                Ok(job_id) => {
                    self.forget_damage(&node.addr(), &shard_ids);
                    warn!(job_id, shard_id, node = %node.addr(), source = %source.addr(),
                        "repairing a damaged placement from its replica");
                    started += 1;
                }
                Err(e) => warn!(shard_id, node = %node.addr(), error = %e,
                    "could not start the repair of a damaged placement"),
            }
        }
        if started > 0 {
            self.schedule_tasks_once()?;
        }
        Ok(started)
    }

    /// Removes a node with its placements (`remove_node`, forced or with only replicated
    /// reference copies left); returns the shards (table name, shard id) that lost their only
    /// placement. Refused while a job moves shards to or from the node.
    pub fn force_remove_node(&self, node_id: i64) -> Result<Vec<(String, i64)>> {
        // Moves to or from the node cannot finish; stop them first so nothing is half done.
        // Every job's (a drain may be queued behind the one that moves).
        if let Some(t) = self
            .catalog()
            .unfinished_tasks()?
            .into_iter()
            .find(|t| t.source_node_id == node_id || t.target_node_id == node_id)
        {
            return Err(ClusterError::NotInState {
                message: format!("job {} moves shards to or from this node", t.job_id),
                hint: Some("Stop it first: SELECT rebalance_stop();".into()),
            });
        }
        let lost = self.catalog().force_remove_node(node_id)?;
        info!(node_id, lost = lost.len(), "node removed by force");
        Ok(lost)
    }

    /// Whether the node at `host:port` holds a placement of `shard_id`.
    pub fn shard_on_node(&self, shard_id: i64, host: &str, port: i64) -> Result<bool> {
        let Ok(port) = u16::try_from(port) else {
            return Ok(false);
        };
        let Some(node) = self.catalog().node_by_addr(host, port)? else {
            return Ok(false);
        };
        Ok(self
            .catalog()
            .group_files(None, 0, shard_id, node.node_id, node.node_id)?
            .iter()
            .any(|g| g.source_placement.is_some()))
    }

    /// The status of a job: bytes from the catalog (a cancelled or rolled-back task's bytes
    /// were discarded and count for nothing), the rate from this coordinator's meter.
    pub fn job_status(&self, job: Job) -> Result<JobStatus> {
        let tasks = self.catalog().tasks(Some(job.job_id))?;
        let bytes_total: u64 = tasks
            .iter()
            .filter(|t| t.state != TaskState::Cancelled || t.bytes_done > 0)
            .map(|t| t.bytes_total.max(t.bytes_done))
            .sum();
        // What is left to copy: tasks that will still run (not ended, not being cancelled).
        let bytes_left: u64 = tasks
            .iter()
            .filter(|t| t.state.is_pending())
            .map(|t| t.bytes_total.saturating_sub(t.bytes_done))
            .sum();
        let bytes_done: u64 = tasks
            .iter()
            .map(|t| {
                if t.state == TaskState::Done {
                    t.bytes_total.max(t.bytes_done)
                } else {
                    t.bytes_done
                }
            })
            .sum();
        let elapsed_ms = job
            .started_at_ms
            .map(|s| job.finished_at_ms.unwrap_or_else(now_ms) - s)
            .unwrap_or(0);
        let rate = self.transfer_meter().rate(job.job_id).or_else(|| {
            (bytes_done > 0 && elapsed_ms > 0)
                .then(|| bytes_done as f64 * 1000.0 / elapsed_ms as f64)
        });
        let eta = if job.is_terminal() {
            Some(0.0)
        } else {
            rate.filter(|r| *r > 0.0).map(|r| bytes_left as f64 / r)
        };
        let last_error = tasks
            .iter()
            .filter(|t| {
                !t.message.is_empty()
                    && (t.state == TaskState::Error
                        || (t.retries > 0 && t.state != TaskState::Done))
            })
            .max_by_key(|t| (t.finished_at_ms.unwrap_or(0), t.task_id))
            .map(|t| t.message.clone())
            .or_else(|| job.error.clone());
        Ok(JobStatus {
            job,
            tasks,
            bytes_total,
            bytes_done,
            rate_bytes_per_s: rate,
            eta_seconds: eta,
            last_error,
        })
    }
}
