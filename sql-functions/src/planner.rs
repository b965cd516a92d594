//! The shard rebalance planner: a pure function from (nodes, shard groups, options) to an
//! ordered list of copy/move steps plus the NOTICE/WARNING texts Citus would print. No I/O,
//! no clock; the SQL layer turns the result into jobs and tasks.
//!
//! It is a port of Citus's `GetRebalanceSteps` / `RebalancePlacementUpdates` /
//! `FindAndMoveShardCost` (see `shared/reference/citus-rebalancer.md` §4), plus what Shoal adds:
//!
//! 1. **Reference copies.** Every live node that should have shards gets a copy of each
//!    reference shard group it lacks (source: the live placement with the lowest node id).
//! 2. **Balancing states.** Non-reference groups are balanced per colocation group; colocation
//!    groups with fewer placements than allowed nodes are merged into one "unbalanced shards"
//!    state (Citus does this so small colocation groups spread over the cluster together).
//!    Per state and node: cost (1 per group, or bytes + base cost), capacity (0 when the node
//!    may not hold shards), utilization = cost / capacity (+inf at capacity 0).
//!    Nodes are ordered by (utilization asc, capacity desc, node id asc); a node's shards by
//!    (cost desc, group id asc).
//! 3. **Missing replicas.** A group with fewer live placements than its replication factor is
//!    copied to the least-utilized allowed node that lacks it.
//! 4. **Phase 1.** Placements on nodes where they are not allowed (should_have_shards=false, a
//!    per-group disallowed node, or in a drain only the drained node) go, most costly first, to
//!    the first allowed node in ascending order. These moves ignore `max_shard_moves`.
//! 5. **Phase 2** (not with `drain_only`). Per state, repeat the greedy first-improvement
//!    search (fullest source × emptiest target × source's shards) until no move improves the
//!    balance, the ±threshold band is reached, or `max_shard_moves` is used up.
//!
//! Where Shoal deliberately differs from Citus, it is to fix a known Citus problem:
//! - A drain keeps every placement in the state (Citus filters to the drained node), so drain
//!   targets are chosen by real load and never already hold a replica (Citus issue #6948).
//! - Nodes that are not live are never sources or targets; their placements are left alone
//!   (re-replication covers them), and their cost does not count towards the average.
//! - A target must have disk room: incoming bytes ≤ free × (1 − desired_percent/100).
//! - Floats are f64 (exact for byte counts), but the improvement/minimum threshold tests
//!   compare at float4 precision as Citus does, so a threshold given as SQL `real` behaves the
//!   same as the f64 literal.
//!
//! Cost: each phase-2 search skips the source's too-big shards by binary search and treats a
//! run of equal-cost shards as one decision, so 100,000 groups on 100 nodes plan in
//! milliseconds (see `benches/planner.rs`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// Citus's `citus.rebalancer_by_disk_size_base_cost` default (100MB, in bytes).
pub const DEFAULT_BASE_COST_BYTES: u64 = 100 * 1024 * 1024;

/// `citus_rebalance_start`'s move limit.
pub const DEFAULT_MAX_SHARD_MOVES: usize = 10_000_000;

/// A built-in rebalance strategy (the seed rows of Citus's `pg_dist_rebalance_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Every shard group costs 1.
    ByShardCount,
    /// A shard group costs its bytes plus a base cost.
    ByDiskSize,
}

impl Strategy {
    pub const ALL: [Strategy; 2] = [Strategy::ByShardCount, Strategy::ByDiskSize];

    pub fn name(&self) -> &'static str {
        match self {
            Strategy::ByShardCount => "by_shard_count",
            Strategy::ByDiskSize => "by_disk_size",
        }
    }

    pub fn default_threshold(&self) -> f64 {
        match self {
            Strategy::ByShardCount => 0.0,
            Strategy::ByDiskSize => 0.1,
        }
    }

    pub fn minimum_threshold(&self) -> f64 {
        match self {
            Strategy::ByShardCount => 0.0,
            Strategy::ByDiskSize => 0.01,
        }
    }

    pub fn improvement_threshold(&self) -> f64 {
        match self {
            Strategy::ByShardCount => 0.0,
            Strategy::ByDiskSize => 0.5,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| PlanError::UnknownStrategy {
                name: s.to_string(),
            })
    }
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanNode {
    pub node_id: i64,
    pub host: String,
    pub port: u16,
    pub should_have_shards: bool,
    pub is_live: bool,
    /// Relative capacity (Citus's node_capacity_function); 1.0 normally.
    pub capacity: f64,
    /// Free disk space from the last heartbeat; `None` means unknown (no disk check).
    pub disk_free_bytes: Option<u64>,
}

impl PlanNode {
    /// A live node that should have shards, capacity 1, disk unknown.
    pub fn new(node_id: i64, host: impl Into<String>, port: u16) -> Self {
        PlanNode {
            node_id,
            host: host.into(),
            port,
            should_have_shards: true,
            is_live: true,
            capacity: 1.0,
            disk_free_bytes: None,
        }
    }
}

/// A shard group: the shards with the same index in a colocation group, which always move
/// together.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanShardGroup {
    /// Representative shard id (the smallest in the group); steps are reported with it.
    pub group_id: i64,
    /// Balancing happens per colocation group, like Citus's per-relation states.
    pub colocation_id: i64,
    /// Total bytes of the group's files on one placement.
    pub bytes: u64,
    /// Node ids currently holding this group (more than one when replicated).
    pub placements: Vec<i64>,
    /// Desired number of placements (ignored for reference groups).
    pub replication_factor: usize,
    /// Reference table shard: copied to every live node that should have shards, never moved.
    pub is_reference: bool,
    /// Nodes this group may not be placed on (Citus's shard_allowed_on_node_function);
    /// usually empty.
    pub disallowed_nodes: Vec<i64>,
}

impl Default for PlanShardGroup {
    fn default() -> Self {
        PlanShardGroup {
            group_id: 0,
            colocation_id: 0,
            bytes: 0,
            placements: Vec::new(),
            replication_factor: 1,
            is_reference: false,
            disallowed_nodes: Vec::new(),
        }
    }
}

/// Planning options; `None` thresholds mean "the strategy's default".
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    pub strategy: Strategy,
    pub threshold: Option<f64>,
    pub improvement_threshold: Option<f64>,
    /// Only move placements off nodes where they are not allowed (no phase 2).
    pub drain_only: bool,
    /// Drain these nodes: treat them as should_have_shards=false and move only their
    /// placements (none: no drain).
    pub drain_nodes: Vec<i64>,
    pub max_shard_moves: usize,
    /// Added to every group's bytes by `by_disk_size`.
    pub base_cost_bytes: u64,
    /// How many "Ignoring move" notices to emit per colocation state; `usize::MAX` = all
    /// (Citus's -1).
    pub max_logged_ignored_moves: usize,
    /// Share of a target's free disk that must stay free after the planned steps.
    pub desired_percent_disk_free_after_move: f64,
}

impl PlanOptions {
    pub fn new(strategy: Strategy) -> Self {
        PlanOptions {
            strategy,
            threshold: None,
            improvement_threshold: None,
            drain_only: false,
            drain_nodes: Vec::new(),
            max_shard_moves: DEFAULT_MAX_SHARD_MOVES,
            base_cost_bytes: DEFAULT_BASE_COST_BYTES,
            max_logged_ignored_moves: 5,
            desired_percent_disk_free_after_move: 10.0,
        }
    }
}

impl Default for PlanOptions {
    /// `by_disk_size`, the default strategy of both Citus 12+ and Shoal.
    fn default() -> Self {
        PlanOptions::new(Strategy::ByDiskSize)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    Move,
    /// A new placement; the source keeps its copy.
    Copy,
}

/// Why a step is in the plan; the plan lists them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepReason {
    /// A reference group copied to a node that lacks it.
    ReferenceCopy,
    /// A missing replica re-created.
    MissingReplica,
    /// Phase 1: away from a node where the placement is not allowed (or being drained).
    Disallowed,
    /// Phase 2: balancing.
    Balance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    pub kind: StepKind,
    pub reason: StepReason,
    pub group_id: i64,
    pub source_node: i64,
    pub target_node: i64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeLevel {
    Notice,
    Warning,
}

/// A message for the client, worded as Citus words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNotice {
    pub level: NoticeLevel,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// Something that keeps the plan from reaching the desired layout; drains and rebalances
/// refuse to start while there are any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProblem {
    pub group_id: i64,
    pub node_id: Option<i64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// In execution order: copies, then phase-1 moves, then phase-2 moves.
    pub steps: Vec<PlanStep>,
    pub notices: Vec<PlanNotice>,
    pub problems: Vec<PlanProblem>,
}

impl Plan {
    pub fn moves(&self) -> impl Iterator<Item = &PlanStep> + '_ {
        self.steps.iter().filter(|s| s.kind == StepKind::Move)
    }

    pub fn copies(&self) -> impl Iterator<Item = &PlanStep> + '_ {
        self.steps.iter().filter(|s| s.kind == StepKind::Copy)
    }
}

/// Inputs the planner refuses to plan for.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanError {
    /// Some group wants more replicas than there are nodes allowed to hold shards.
    ReplicationFactorTooHigh {
        replication_factor: usize,
        allowed_nodes: usize,
    },
    /// A non-reference group with replication factor 0.
    InvalidReplicationFactor {
        group_id: i64,
    },
    /// `threshold` or `improvement_threshold` is negative, NaN or infinite.
    InvalidThreshold {
        option: &'static str,
        value: f64,
    },
    /// `desired_percent_disk_free_after_move` outside 0..=100.
    InvalidDiskPercent {
        value: f64,
    },
    /// A node capacity that is negative, NaN or infinite.
    InvalidCapacity {
        node_id: i64,
        capacity: f64,
    },
    DuplicateNode {
        node_id: i64,
    },
    DuplicateGroup {
        group_id: i64,
    },
    /// A placement on a node that is not in the node list.
    UnknownPlacementNode {
        group_id: i64,
        node_id: i64,
    },
    /// The same node listed twice in one group's placements.
    DuplicatePlacement {
        group_id: i64,
        node_id: i64,
    },
    UnknownDrainNode {
        node_id: i64,
    },
    UnknownStrategy {
        name: String,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::ReplicationFactorTooHigh {
                replication_factor,
                allowed_nodes,
            } => write!(
                f,
                "Shard replication factor ({replication_factor}) cannot be greater than number \
                 of nodes with should_have_shards=true ({allowed_nodes})."
            ),
            PlanError::InvalidReplicationFactor { group_id } => {
                write!(
                    f,
                    "replication factor of shard group {group_id} must be at least 1"
                )
            }
            PlanError::InvalidThreshold { option, value } => {
                write!(f, "{option} must be a finite number >= 0, got {value}")
            }
            PlanError::InvalidDiskPercent { value } => write!(
                f,
                "desired_percent_disk_free_after_move must be between 0 and 100, got {value}"
            ),
            PlanError::InvalidCapacity { node_id, capacity } => write!(
                f,
                "capacity of node {node_id} must be a finite number >= 0, got {capacity}"
            ),
            PlanError::DuplicateNode { node_id } => write!(f, "node {node_id} is listed twice"),
            PlanError::DuplicateGroup { group_id } => {
                write!(f, "shard group {group_id} is listed twice")
            }
            PlanError::UnknownPlacementNode { group_id, node_id } => {
                write!(
                    f,
                    "shard group {group_id} has a placement on unknown node {node_id}"
                )
            }
            PlanError::DuplicatePlacement { group_id, node_id } => {
                write!(f, "shard group {group_id} lists node {node_id} twice")
            }
            PlanError::UnknownDrainNode { node_id } => write!(f, "node {node_id} not found"),
            PlanError::UnknownStrategy { name } => {
                let valid: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
                write!(
                    f,
                    "could not find rebalance strategy with name {name} (valid names: {})",
                    valid.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// Plans the steps that rebalance (or drain) the cluster; see the module comment.
pub fn plan(
    nodes: &[PlanNode],
    groups: &[PlanShardGroup],
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let base = opts.base_cost_bytes;
    match opts.strategy {
        Strategy::ByShardCount => plan_with_cost(nodes, groups, opts, |_| 1.0),
        Strategy::ByDiskSize => plan_with_cost(nodes, groups, opts, |g| {
            // citus_shard_cost_by_disk_size: size + base cost, and 1 when that is 0.
            match g.bytes.saturating_add(base) {
                0 => 1.0,
                c => c as f64,
            }
        }),
    }
}

/// `plan` with an explicit cost function; the unit tests use it the way Citus's
/// `shard_placement_rebalance_array` injects costs.
fn plan_with_cost(
    nodes: &[PlanNode],
    groups: &[PlanShardGroup],
    opts: &PlanOptions,
    cost: impl Fn(&PlanShardGroup) -> f64,
) -> Result<Plan, PlanError> {
    let mut p = Planner::new(nodes, groups, opts, &cost)?;
    p.copy_reference_groups();
    let mut states = p.build_states();
    p.copy_missing_replicas(&mut states);
    for st in &mut states {
        p.move_off_disallowed(st);
    }
    if !opts.drain_only {
        p.balance(&mut states);
    }
    p.report_ignored(&states);
    Ok(Plan {
        steps: p.steps,
        notices: p.notices,
        problems: p.problems,
    })
}

struct NodeInfo<'a> {
    id: i64,
    host: &'a str,
    port: u16,
    live: bool,
    /// May receive placements: live, should_have_shards and not being drained.
    allowed: bool,
    /// Never a move source: not live, or (in a drain) another node that may not hold shards.
    pinned: bool,
    /// Citus's NodeCapacity: 0 unless allowed.
    capacity: f64,
    /// Most bytes the plan may land on this node, if its free disk is known.
    disk_limit: Option<f64>,
    incoming: u64,
}

struct GroupInfo {
    id: i64,
    bytes: u64,
    cost: f64,
    rf: usize,
    is_reference: bool,
    /// Indices of the nodes holding it; updated as steps are planned.
    nodes: Vec<usize>,
    disallowed: Vec<usize>,
    /// Index into its state's `ranks`.
    rank: u32,
}

/// One balancing state (a colocation group, or the merged small ones).
struct State {
    /// Member groups by (cost desc, group id asc); a shard's position here is its rank.
    ranks: Vec<Ranked>,
    /// For each rank, the first later rank with a different cost.
    run_end: Vec<u32>,
    /// Per node index.
    fills: Vec<Fill>,
    /// Node indices by (utilization asc, capacity desc, node id asc); reversed = descending.
    asc: Vec<usize>,
    total_cost: f64,
    total_capacity: f64,
    ignored: u64,
}

struct Ranked {
    group: usize,
    cost: f64,
}

#[derive(Default)]
struct Fill {
    cost: f64,
    util: f64,
    shards: BTreeSet<u32>,
}

enum Verdict {
    Move,
    Skip,
    Ignore(f64),
}

struct Planner<'a> {
    nodes: Vec<NodeInfo<'a>>,
    /// Node indices in node-id order.
    by_id: Vec<usize>,
    groups: Vec<GroupInfo>,
    /// Group indices in group-id order.
    group_order: Vec<usize>,
    colocation: Vec<i64>,
    /// Indices of the drained nodes (empty: no drain).
    drain: Vec<usize>,
    threshold: f64,
    improvement: f64,
    max_moves: usize,
    max_logged: usize,
    percent_free: f64,
    moves: usize,
    steps: Vec<PlanStep>,
    notices: Vec<PlanNotice>,
    problems: Vec<PlanProblem>,
}

fn utilization(cost: f64, capacity: f64) -> f64 {
    if capacity <= 0.0 {
        f64::INFINITY
    } else {
        cost / capacity
    }
}

fn check_threshold(option: &'static str, value: f64) -> Result<(), PlanError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(PlanError::InvalidThreshold { option, value })
    }
}

impl<'a> Planner<'a> {
    fn new(
        nodes: &'a [PlanNode],
        groups: &[PlanShardGroup],
        opts: &PlanOptions,
        cost: &dyn Fn(&PlanShardGroup) -> f64,
    ) -> Result<Self, PlanError> {
        if let Some(t) = opts.threshold {
            check_threshold("threshold", t)?;
        }
        if let Some(t) = opts.improvement_threshold {
            check_threshold("improvement_threshold", t)?;
        }
        let pct = opts.desired_percent_disk_free_after_move;
        if !(0.0..=100.0).contains(&pct) {
            return Err(PlanError::InvalidDiskPercent { value: pct });
        }

        let mut index: HashMap<i64, usize> = HashMap::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            if index.insert(n.node_id, i).is_some() {
                return Err(PlanError::DuplicateNode { node_id: n.node_id });
            }
            if !(n.capacity.is_finite() && n.capacity >= 0.0) {
                return Err(PlanError::InvalidCapacity {
                    node_id: n.node_id,
                    capacity: n.capacity,
                });
            }
        }
        let drain: Vec<usize> = opts
            .drain_nodes
            .iter()
            .map(|id| {
                index
                    .get(id)
                    .copied()
                    .ok_or(PlanError::UnknownDrainNode { node_id: *id })
            })
            .collect::<Result<_, _>>()?;
        let infos: Vec<NodeInfo<'a>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let drained = drain.contains(&i);
                let allowed = n.is_live && n.should_have_shards && !drained;
                NodeInfo {
                    id: n.node_id,
                    host: &n.host,
                    port: n.port,
                    live: n.is_live,
                    allowed,
                    pinned: !n.is_live || (!drain.is_empty() && !allowed && !drained),
                    capacity: if allowed { n.capacity } else { 0.0 },
                    disk_limit: n
                        .disk_free_bytes
                        .map(|free| free as f64 * (1.0 - pct / 100.0)),
                    incoming: 0,
                }
            })
            .collect();
        let allowed_nodes = infos.iter().filter(|n| n.allowed).count();

        let mut seen = HashSet::with_capacity(groups.len());
        let mut infos_g = Vec::with_capacity(groups.len());
        let mut colocation = Vec::with_capacity(groups.len());
        let mut max_rf = 0;
        for g in groups {
            if !seen.insert(g.group_id) {
                return Err(PlanError::DuplicateGroup {
                    group_id: g.group_id,
                });
            }
            if !g.is_reference {
                if g.replication_factor == 0 {
                    return Err(PlanError::InvalidReplicationFactor {
                        group_id: g.group_id,
                    });
                }
                max_rf = max_rf.max(g.replication_factor);
            }
            let mut on = Vec::with_capacity(g.placements.len() + 1);
            for id in &g.placements {
                let Some(&n) = index.get(id) else {
                    return Err(PlanError::UnknownPlacementNode {
                        group_id: g.group_id,
                        node_id: *id,
                    });
                };
                if on.contains(&n) {
                    return Err(PlanError::DuplicatePlacement {
                        group_id: g.group_id,
                        node_id: *id,
                    });
                }
                on.push(n);
            }
            // Node-id order, so "the lowest node id" and phase-1 tie-breaks are deterministic.
            on.sort_by_key(|&n| infos[n].id);
            let disallowed = g
                .disallowed_nodes
                .iter()
                .filter_map(|id| index.get(id).copied())
                .collect();
            infos_g.push(GroupInfo {
                id: g.group_id,
                bytes: g.bytes,
                cost: cost(g),
                rf: g.replication_factor,
                is_reference: g.is_reference,
                nodes: on,
                disallowed,
                rank: 0,
            });
            colocation.push(g.colocation_id);
        }
        if max_rf > allowed_nodes {
            return Err(PlanError::ReplicationFactorTooHigh {
                replication_factor: max_rf,
                allowed_nodes,
            });
        }

        let mut notices = Vec::new();
        let mut threshold = opts
            .threshold
            .unwrap_or_else(|| opts.strategy.default_threshold());
        let minimum = opts.strategy.minimum_threshold();
        if (threshold as f32) < (minimum as f32) {
            notices.push(PlanNotice {
                level: NoticeLevel::Warning,
                message: "the given threshold is lower than the minimum threshold allowed by the \
                          rebalance strategy, using the minimum allowed threshold instead"
                    .to_string(),
                detail: Some(format!("Using threshold of {minimum:.2}")),
                hint: None,
            });
            threshold = minimum;
        }

        let mut by_id: Vec<usize> = (0..infos.len()).collect();
        by_id.sort_by_key(|&n| infos[n].id);
        let mut group_order: Vec<usize> = (0..infos_g.len()).collect();
        group_order.sort_by_key(|&g| infos_g[g].id);

        Ok(Planner {
            nodes: infos,
            by_id,
            groups: infos_g,
            group_order,
            colocation,
            drain,
            threshold,
            improvement: opts
                .improvement_threshold
                .unwrap_or_else(|| opts.strategy.improvement_threshold()),
            max_moves: opts.max_shard_moves,
            max_logged: opts.max_logged_ignored_moves,
            percent_free: pct,
            moves: 0,
            steps: Vec::new(),
            notices,
            problems: Vec::new(),
        })
    }

    fn statically_allowed(&self, g: usize, n: usize) -> bool {
        self.nodes[n].allowed && !self.groups[g].disallowed.contains(&n)
    }

    fn fits(&self, n: usize, bytes: u64) -> bool {
        match self.nodes[n].disk_limit {
            None => true,
            Some(limit) => self.nodes[n].incoming.saturating_add(bytes) as f64 <= limit,
        }
    }

    /// Can node `n` receive a new placement of group `g`?
    fn can_take(&self, g: usize, n: usize) -> bool {
        self.statically_allowed(g, n)
            && !self.groups[g].nodes.contains(&n)
            && self.fits(n, self.groups[g].bytes)
    }

    fn room(&self, n: usize) -> u64 {
        let node = &self.nodes[n];
        match node.disk_limit {
            None => u64::MAX,
            Some(limit) => (limit - node.incoming as f64).max(0.0) as u64,
        }
    }

    /// When no node can take `g`: `Some(largest room)` if disk space is what is missing.
    fn disk_shortage(&self, g: usize) -> Option<u64> {
        (0..self.nodes.len())
            .filter(|&n| self.statically_allowed(g, n) && !self.groups[g].nodes.contains(&n))
            .map(|n| self.room(n))
            .max()
    }

    fn disk_reason(&self, g: usize, what: &str, room: u64) -> String {
        format!(
            "not enough disk space to {what} shard group {}: it needs {} bytes, but no allowed \
             node has more than {room} bytes free (keeping {}% of its free space free)",
            self.groups[g].id, self.groups[g].bytes, self.percent_free
        )
    }

    fn problem(&mut self, g: usize, node: Option<usize>, reason: String) {
        let node_id = node.map(|n| self.nodes[n].id);
        self.problems.push(PlanProblem {
            group_id: self.groups[g].id,
            node_id,
            reason,
        });
    }

    fn first_live(&self, g: usize) -> Option<usize> {
        self.groups[g]
            .nodes
            .iter()
            .copied()
            .filter(|&n| self.nodes[n].live)
            .min_by_key(|&n| self.nodes[n].id)
    }

    fn record(
        &mut self,
        kind: StepKind,
        reason: StepReason,
        g: usize,
        source: usize,
        target: usize,
    ) {
        let bytes = self.groups[g].bytes;
        self.steps.push(PlanStep {
            kind,
            reason,
            group_id: self.groups[g].id,
            source_node: self.nodes[source].id,
            target_node: self.nodes[target].id,
            bytes,
        });
        let node = &mut self.nodes[target];
        node.incoming = node.incoming.saturating_add(bytes);
        if kind == StepKind::Move {
            self.moves += 1;
        }
    }

    /// In a drain, a group with no placement on a drained node is none of its business: it
    /// neither gets copies nor stops the drain with a problem (a worker down elsewhere must
    /// not block draining this one).
    fn outside_drain(&self, g: usize) -> bool {
        !self.drain.is_empty() && !self.groups[g].nodes.iter().any(|n| self.drain.contains(n))
    }

    /// Reference groups go to every allowed node that lacks them, before anything moves.
    fn copy_reference_groups(&mut self) {
        for gi in 0..self.group_order.len() {
            let g = self.group_order[gi];
            if !self.groups[g].is_reference || self.outside_drain(g) {
                continue;
            }
            let Some(source) = self.first_live(g) else {
                let reason = format!("shard group {} has no live placement", self.groups[g].id);
                self.problem(g, None, reason);
                continue;
            };
            for ni in 0..self.by_id.len() {
                let n = self.by_id[ni];
                if !self.statically_allowed(g, n) || self.groups[g].nodes.contains(&n) {
                    continue;
                }
                if !self.fits(n, self.groups[g].bytes) {
                    let reason = format!(
                        "not enough disk space on {}:{} to copy reference shard group {}: it needs \
                         {} bytes, {} bytes are free (keeping {}% of its free space free)",
                        self.nodes[n].host,
                        self.nodes[n].port,
                        self.groups[g].id,
                        self.groups[g].bytes,
                        self.room(n),
                        self.percent_free
                    );
                    self.problem(g, Some(n), reason);
                    continue;
                }
                self.record(StepKind::Copy, StepReason::ReferenceCopy, g, source, n);
                self.groups[g].nodes.push(n);
            }
        }
    }

    fn live_count(&self, g: usize) -> usize {
        self.groups[g]
            .nodes
            .iter()
            .filter(|&&n| self.nodes[n].live)
            .count()
    }

    /// One state per colocation group, and one merged state for the colocation groups with
    /// fewer placements than allowed nodes (GetRebalanceSteps' "unbalanced shards").
    fn build_states(&mut self) -> Vec<State> {
        let allowed_nodes = self.nodes.iter().filter(|n| n.allowed).count();
        let mut by_colocation: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for &g in &self.group_order {
            if !self.groups[g].is_reference {
                by_colocation.entry(self.colocation[g]).or_default().push(g);
            }
        }
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut unbalanced = Vec::new();
        for (_, gs) in by_colocation {
            let placements: usize = gs
                .iter()
                .map(|&g| {
                    let live = self.live_count(g);
                    let rf = self.groups[g].rf;
                    if live > 0 && live < rf {
                        rf
                    } else {
                        live
                    }
                })
                .sum();
            if placements >= allowed_nodes {
                members.push(gs);
            } else {
                unbalanced.extend(gs);
            }
        }
        if !unbalanced.is_empty() {
            members.push(unbalanced);
        }
        members.into_iter().map(|gs| self.build_state(gs)).collect()
    }

    fn build_state(&mut self, mut gs: Vec<usize>) -> State {
        let groups = &self.groups;
        gs.sort_by(|&a, &b| {
            groups[b]
                .cost
                .total_cmp(&groups[a].cost)
                .then(groups[a].id.cmp(&groups[b].id))
        });
        let mut fills: Vec<Fill> = (0..self.nodes.len()).map(|_| Fill::default()).collect();
        let mut ranks = Vec::with_capacity(gs.len());
        let mut total_cost = 0.0;
        for (r, &g) in gs.iter().enumerate() {
            let group = &mut self.groups[g];
            group.rank = r as u32;
            for &n in &group.nodes {
                fills[n].cost += group.cost;
                fills[n].shards.insert(r as u32);
                if !self.nodes[n].pinned {
                    total_cost += group.cost;
                }
            }
            ranks.push(Ranked {
                group: g,
                cost: group.cost,
            });
        }
        let mut run_end = vec![0u32; ranks.len()];
        for r in (0..ranks.len()).rev() {
            run_end[r] = if r + 1 < ranks.len() && ranks[r + 1].cost == ranks[r].cost {
                run_end[r + 1]
            } else {
                r as u32 + 1
            };
        }
        for (n, fill) in fills.iter_mut().enumerate() {
            fill.util = utilization(fill.cost, self.nodes[n].capacity);
        }
        let mut asc: Vec<usize> = (0..self.nodes.len()).collect();
        asc.sort_by(|&a, &b| self.cmp_nodes(&fills, a, b));
        State {
            ranks,
            run_end,
            fills,
            asc,
            total_cost,
            total_capacity: self.nodes.iter().map(|n| n.capacity).sum(),
            ignored: 0,
        }
    }

    fn cmp_nodes(&self, fills: &[Fill], a: usize, b: usize) -> Ordering {
        fills[a]
            .util
            .total_cmp(&fills[b].util)
            .then(self.nodes[b].capacity.total_cmp(&self.nodes[a].capacity))
            .then(self.nodes[a].id.cmp(&self.nodes[b].id))
    }

    /// Puts node `n` back in order after its utilization changed (Citus re-sorts the list).
    fn reposition(&self, st: &mut State, n: usize) {
        if let Some(pos) = st.asc.iter().position(|&m| m == n) {
            st.asc.remove(pos);
        }
        let at = st
            .asc
            .partition_point(|&m| self.cmp_nodes(&st.fills, m, n) == Ordering::Less);
        st.asc.insert(at, n);
    }

    fn add_to(&self, st: &mut State, r: u32, n: usize, cost: f64) {
        let fill = &mut st.fills[n];
        fill.cost += cost;
        fill.util = utilization(fill.cost, self.nodes[n].capacity);
        fill.shards.insert(r);
        self.reposition(st, n);
    }

    fn remove_from(&self, st: &mut State, r: u32, n: usize, cost: f64) {
        let fill = &mut st.fills[n];
        fill.cost -= cost;
        fill.util = utilization(fill.cost, self.nodes[n].capacity);
        fill.shards.remove(&r);
        self.reposition(st, n);
    }

    fn do_move(
        &mut self,
        st: &mut State,
        r: u32,
        source: usize,
        target: usize,
        reason: StepReason,
    ) {
        let g = st.ranks[r as usize].group;
        let cost = st.ranks[r as usize].cost;
        self.record(StepKind::Move, reason, g, source, target);
        for n in self.groups[g].nodes.iter_mut() {
            if *n == source {
                *n = target;
            }
        }
        self.remove_from(st, r, source, cost);
        self.add_to(st, r, target, cost);
    }

    /// Re-creates missing replicas on the least-utilized allowed nodes lacking them.
    fn copy_missing_replicas(&mut self, states: &mut [State]) {
        let mut state_of = vec![usize::MAX; self.groups.len()];
        for (s, st) in states.iter().enumerate() {
            for ranked in &st.ranks {
                state_of[ranked.group] = s;
            }
        }
        for gi in 0..self.group_order.len() {
            let g = self.group_order[gi];
            if self.outside_drain(g) {
                continue;
            }
            let Some(st) = states.get_mut(state_of[g]) else {
                continue;
            };
            let Some(source) = self.first_live(g) else {
                let reason = format!("shard group {} has no live placement", self.groups[g].id);
                self.problem(g, None, reason);
                continue;
            };
            let live = self.live_count(g);
            for _ in live..self.groups[g].rf {
                let target = st.asc.iter().copied().find(|&n| self.can_take(g, n));
                let Some(target) = target else {
                    let reason = match self.disk_shortage(g) {
                        Some(room) => self.disk_reason(g, "re-create a replica of", room),
                        None => format!(
                            "no node that should have shards can take another replica of shard \
                             group {} ({live} live placements, replication factor {})",
                            self.groups[g].id, self.groups[g].rf
                        ),
                    };
                    self.problem(g, None, reason);
                    break;
                };
                self.record(
                    StepKind::Copy,
                    StepReason::MissingReplica,
                    g,
                    source,
                    target,
                );
                self.groups[g].nodes.push(target);
                let (r, cost) = (self.groups[g].rank, self.groups[g].cost);
                st.total_cost += cost;
                self.add_to(st, r, target, cost);
            }
        }
    }

    /// Phase 1 (MoveShardsAwayFromDisallowedNodes): ignores max_shard_moves.
    fn move_off_disallowed(&mut self, st: &mut State) {
        // Ranks are already (cost desc, group id asc); placements of one group by node id.
        let mut todo: Vec<(u32, usize)> = Vec::new();
        for (r, ranked) in st.ranks.iter().enumerate() {
            for &n in &self.groups[ranked.group].nodes {
                let disallowed = if self.drain.is_empty() {
                    !self.nodes[n].pinned && !self.statically_allowed(ranked.group, n)
                } else {
                    self.drain.contains(&n)
                };
                if disallowed {
                    todo.push((r as u32, n));
                }
            }
        }
        todo.sort_by_key(|&(r, n)| (r, self.nodes[n].id));
        for (r, source) in todo {
            let g = st.ranks[r as usize].group;
            if !self.nodes[source].live {
                let reason = format!(
                    "cannot move shard group {} away from {}:{} because the node is not live",
                    self.groups[g].id, self.nodes[source].host, self.nodes[source].port
                );
                self.problem(g, Some(source), reason);
                continue;
            }
            match st.asc.iter().copied().find(|&n| self.can_take(g, n)) {
                Some(target) => self.do_move(st, r, source, target, StepReason::Disallowed),
                None => {
                    let message = format!(
                        "Not allowed to move shard {} anywhere from {}:{}",
                        self.groups[g].id, self.nodes[source].host, self.nodes[source].port
                    );
                    let reason = match self.disk_shortage(g) {
                        Some(room) => self.disk_reason(g, "move", room),
                        None => message.clone(),
                    };
                    self.notices.push(PlanNotice {
                        level: NoticeLevel::Warning,
                        message,
                        detail: None,
                        hint: None,
                    });
                    self.problem(g, Some(source), reason);
                }
            }
        }
    }

    /// Phase 2 (the `!drain_only` loop of RebalancePlacementUpdates).
    fn balance(&mut self, states: &mut [State]) {
        for st in states.iter_mut() {
            let average = st.total_cost / st.total_capacity;
            let lower = (1.0 - self.threshold) * average;
            let upper = (1.0 + self.threshold) * average;
            let mut more = true;
            while self.moves < self.max_moves && more {
                more = self.find_and_move(st, lower, upper);
            }
            if more {
                self.notices.push(PlanNotice {
                    level: NoticeLevel::Notice,
                    message: "Stopped searching before we were out of moves. Please rerun the \
                              rebalancer after it's finished for a more optimal placement."
                        .to_string(),
                    detail: None,
                    hint: None,
                });
                break;
            }
        }
    }

    /// FindAndMoveShardCost's decision for a shard of cost `c` from `s` to `t`.
    fn verdict(&self, st: &State, s: usize, t: usize, c: f64) -> Verdict {
        let (src, tgt) = (&st.fills[s], &st.fills[t]);
        let new_target = utilization(tgt.cost + c, self.nodes[t].capacity);
        let new_source = utilization(src.cost - c, self.nodes[s].capacity);
        if new_target <= new_source {
            return Verdict::Move;
        }
        if new_target > src.util {
            return Verdict::Skip;
        }
        // Happens with unequal capacities: the maximum stays, the minimum would drop.
        if new_target == src.util && new_source <= tgt.util {
            return Verdict::Skip;
        }
        let improvement = (src.util - new_target).max(new_source - tgt.util);
        let added = (new_target - tgt.util).min(src.util - new_source);
        let ratio = improvement / added;
        if (ratio as f32) < (self.improvement as f32) {
            Verdict::Ignore(ratio)
        } else {
            Verdict::Move
        }
    }

    /// One greedy first-improvement move; false when none is left.
    fn find_and_move(&mut self, st: &mut State, lower: f64, upper: f64) -> bool {
        let n = st.asc.len();
        for si in (0..n).rev() {
            let s = st.asc[si];
            if self.nodes[s].pinned {
                continue;
            }
            let su = st.fills[s].util;
            if su <= lower {
                return false;
            }
            for ti in 0..n {
                let t = st.asc[ti];
                let tu = st.fills[t].util;
                if tu >= upper {
                    break;
                }
                if tu >= lower && su <= upper {
                    break;
                }
                if t == s || !self.nodes[t].allowed {
                    continue;
                }
                if let Some(r) = self.pick_shard(st, s, t) {
                    self.do_move(st, r, s, t, StepReason::Balance);
                    return true;
                }
            }
        }
        false
    }

    /// The first shard of `s` (cost desc) that should go to `t`, counting ignored ones.
    fn pick_shard(&mut self, st: &mut State, s: usize, t: usize) -> Option<u32> {
        let (tc, tcap, su) = (st.fills[t].cost, self.nodes[t].capacity, st.fills[s].util);
        // Shards so big that the target would end above the source's utilization are skipped
        // silently; that predicate is monotone in cost, so binary-search past them.
        let first = st
            .ranks
            .partition_point(|x| utilization(tc + x.cost, tcap) > su) as u32;
        let mut cursor = first;
        while let Some(&r) = st.fills[s].shards.range(cursor..).next() {
            let end = st.run_end[r as usize];
            cursor = end;
            // All shards of a run cost the same, so they share the verdict.
            match self.verdict(st, s, t, st.ranks[r as usize].cost) {
                Verdict::Skip => {}
                Verdict::Move => {
                    let found = st.fills[s]
                        .shards
                        .range(r..end)
                        .copied()
                        .find(|&x| self.can_take(st.ranks[x as usize].group, t));
                    if found.is_some() {
                        return found;
                    }
                }
                Verdict::Ignore(ratio) => {
                    let eligible: Vec<u32> = st.fills[s]
                        .shards
                        .range(r..end)
                        .copied()
                        .filter(|&x| self.can_take(st.ranks[x as usize].group, t))
                        .collect();
                    for x in eligible {
                        st.ignored += 1;
                        if st.ignored <= self.max_logged as u64 {
                            self.notice_ignored(st.ranks[x as usize].group, s, t, ratio);
                        }
                    }
                }
            }
        }
        None
    }

    fn notice_ignored(&mut self, g: usize, s: usize, t: usize, ratio: f64) {
        let (src, tgt) = (&self.nodes[s], &self.nodes[t]);
        self.notices.push(PlanNotice {
            level: NoticeLevel::Notice,
            message: format!(
                "Ignoring move of shard {} from {}:{} to {}:{}, because the move only brings a \
                 small improvement relative to the shard its size",
                self.groups[g].id, src.host, src.port, tgt.host, tgt.port
            ),
            detail: Some(format!(
                "The balance improvement of {} is lower than the improvement_threshold of {}",
                fmt_g(ratio as f32 as f64),
                fmt_g(self.improvement as f32 as f64)
            )),
            hint: None,
        });
    }

    fn report_ignored(&mut self, states: &[State]) {
        let ignored: u64 = states.iter().map(|s| s.ignored).sum();
        if ignored == 0 {
            return;
        }
        let message = if ignored <= self.max_logged as u64 {
            format!("Ignored {ignored} moves, all of which are shown in notices above")
        } else {
            format!(
                "Ignored {ignored} moves, {} of which are shown in notices above",
                self.max_logged
            )
        };
        self.notices.push(PlanNotice {
            level: NoticeLevel::Notice,
            message,
            detail: None,
            hint: Some(format!(
                "If you do want these moves to happen, try changing improvement_threshold to a \
                 lower value than what it is now ({}).",
                fmt_g(self.improvement as f32 as f64)
            )),
        });
    }
}

/// C's `%g` (6 significant digits, trailing zeros removed), which Citus uses in its notices.
fn fmt_g(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_fraction_zeros(mantissa), exp.abs())
    } else {
        strip_fraction_zeros(&format!("{v:.*}", (5 - exp) as usize))
    }
}

fn strip_fraction_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}
