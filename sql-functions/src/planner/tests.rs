//! Planner tests. The `citus_*` tests port Citus's `shard_rebalancer_unit` cases (reference
//! §6 a–j and their neighbours): like Citus's `shard_placement_rebalance_array`, they inject
//! costs directly (`plan_with_cost`, cost = bytes, 0 bytes = cost 1) with threshold 0 and
//! improvement_threshold 0.5. Citus's per-shard `disallowed_shards` become
//! `disallowed_nodes`, and its "capacity 0 + all disallowed" node is should_have_shards=false.

use super::*;
use proptest::prelude::{
    prop, prop_assert, prop_assert_eq, proptest, ProptestConfig, TestCaseError,
};
use proptest::strategy::Strategy as PStrategy;
use std::collections::{BTreeMap, HashMap};

const PORT: u16 = 5432;

fn host(id: i64) -> PlanNode {
    PlanNode::new(id, format!("hostname{id}"), PORT)
}

fn named(id: i64, name: &str) -> PlanNode {
    PlanNode::new(id, name, PORT)
}

fn with_capacity(mut n: PlanNode, capacity: f64) -> PlanNode {
    n.capacity = capacity;
    n
}

fn no_shards(mut n: PlanNode) -> PlanNode {
    n.should_have_shards = false;
    n
}

fn dead(mut n: PlanNode) -> PlanNode {
    n.is_live = false;
    n
}

fn with_disk(mut n: PlanNode, free: u64) -> PlanNode {
    n.disk_free_bytes = Some(free);
    n
}

/// Group `id` of colocation 1 on `node`, costing 1 in the Citus cases.
fn shard(id: i64, node: i64) -> PlanShardGroup {
    PlanShardGroup {
        group_id: id,
        colocation_id: 1,
        placements: vec![node],
        ..Default::default()
    }
}

fn costly(id: i64, node: i64, cost: u64) -> PlanShardGroup {
    PlanShardGroup {
        bytes: cost,
        ..shard(id, node)
    }
}

fn not_on(mut g: PlanShardGroup, nodes: &[i64]) -> PlanShardGroup {
    g.disallowed_nodes = nodes.to_vec();
    g
}

fn colocated(mut g: PlanShardGroup, colocation: i64) -> PlanShardGroup {
    g.colocation_id = colocation;
    g
}

fn replicated(id: i64, colocation: i64, nodes: &[i64]) -> PlanShardGroup {
    PlanShardGroup {
        group_id: id,
        colocation_id: colocation,
        placements: nodes.to_vec(),
        replication_factor: 2,
        ..Default::default()
    }
}

fn reference(id: i64, nodes: &[i64]) -> PlanShardGroup {
    PlanShardGroup {
        group_id: id,
        colocation_id: 0,
        placements: nodes.to_vec(),
        is_reference: true,
        ..Default::default()
    }
}

/// The defaults of Citus's `shard_placement_rebalance_array`.
fn unit_opts() -> PlanOptions {
    PlanOptions {
        threshold: Some(0.0),
        improvement_threshold: Some(0.5),
        max_shard_moves: 1_000_000,
        ..PlanOptions::new(Strategy::ByShardCount)
    }
}

fn unit_plan(nodes: &[PlanNode], groups: &[PlanShardGroup], opts: &PlanOptions) -> Plan {
    plan_with_cost(nodes, groups, opts, |g| {
        if g.bytes == 0 {
            1.0
        } else {
            g.bytes as f64
        }
    })
    .expect("plan")
}

fn citus(nodes: &[PlanNode], groups: &[PlanShardGroup]) -> Plan {
    unit_plan(nodes, groups, &unit_opts())
}

/// (group, source, target) of every move.
fn moves(p: &Plan) -> Vec<(i64, i64, i64)> {
    p.moves()
        .map(|s| (s.group_id, s.source_node, s.target_node))
        .collect()
}

fn copies(p: &Plan) -> Vec<(i64, i64, i64)> {
    p.copies()
        .map(|s| (s.group_id, s.source_node, s.target_node))
        .collect()
}

/// Notices as psql prints them.
fn notices(p: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for n in &p.notices {
        let level = match n.level {
            NoticeLevel::Notice => "NOTICE",
            NoticeLevel::Warning => "WARNING",
        };
        out.push(format!("{level}:  {}", n.message));
        if let Some(d) = &n.detail {
            out.push(format!("DETAIL:  {d}"));
        }
        if let Some(h) = &n.hint {
            out.push(format!("HINT:  {h}"));
        }
    }
    out
}

const STOPPED: &str = "NOTICE:  Stopped searching before we were out of moves. Please rerun the \
                       rebalancer after it's finished for a more optimal placement.";

fn ignoring(shard: i64, from: &str, to: &str, improvement: &str, threshold: &str) -> [String; 2] {
    [
        format!(
            "NOTICE:  Ignoring move of shard {shard} from {from}:5432 to {to}:5432, because the \
             move only brings a small improvement relative to the shard its size"
        ),
        format!(
            "DETAIL:  The balance improvement of {improvement} is lower than the \
             improvement_threshold of {threshold}"
        ),
    ]
}

fn ignored_summary(n: u64, shown: &str, threshold: &str) -> [String; 2] {
    [
        format!("NOTICE:  Ignored {n} moves, {shown} shown in notices above"),
        format!(
            "HINT:  If you do want these moves to happen, try changing improvement_threshold to \
             a lower value than what it is now ({threshold})."
        ),
    ]
}

/// Applies the steps, checking that no placement is lost or doubled on a node.
fn apply(groups: &[PlanShardGroup], steps: &[PlanStep]) -> Result<Vec<PlanShardGroup>, String> {
    let mut out = groups.to_vec();
    let index: HashMap<i64, usize> = out
        .iter()
        .enumerate()
        .map(|(i, g)| (g.group_id, i))
        .collect();
    for s in steps {
        let g = &mut out[*index
            .get(&s.group_id)
            .ok_or(format!("unknown group in {s:?}"))?];
        if !g.placements.contains(&s.source_node) {
            return Err(format!("{s:?}: source does not hold the group"));
        }
        if g.placements.contains(&s.target_node) {
            return Err(format!("{s:?}: target already holds the group"));
        }
        match s.kind {
            StepKind::Move => {
                for n in g.placements.iter_mut() {
                    if *n == s.source_node {
                        *n = s.target_node;
                    }
                }
            }
            StepKind::Copy => g.placements.push(s.target_node),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Citus shard_rebalancer_unit cases (§6)

#[test]
fn citus_a_returns_a_move_without_a_perfect_balance() {
    let p = citus(
        &[host(1), host(2)],
        &[shard(1, 1), shard(2, 1), shard(3, 1)],
    );
    assert_eq!(moves(&p), [(1, 1, 2)]);
    assert!(p.notices.is_empty() && p.problems.is_empty());
}

#[test]
fn citus_b_drains_a_disallowing_node_and_does_not_refill_it() {
    let nodes = [host(1), host(2)];
    let groups: Vec<_> = [(1, 1), (2, 1), (3, 2), (4, 2)]
        .into_iter()
        .map(|(id, node)| not_on(shard(id, node), &[1]))
        .collect();
    let p = citus(&nodes, &groups);
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 2)]);
    assert!(p.steps.iter().all(|s| s.reason == StepReason::Disallowed));

    let after = apply(&groups, &p.steps).unwrap();
    let again = citus(&nodes, &after);
    assert!(again.steps.is_empty() && again.notices.is_empty());
}

#[test]
fn citus_disallowed_shard_moves_even_when_balanced() {
    let nodes = [host(1), host(2), host(3)];
    let layout = [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)];
    let h1_rule: &[i64] = &[1, 2, 3, 5, 6];
    // Shard 4 disallowed on hosts 2 and 3: it ends up on host 1.
    let groups: Vec<_> = layout
        .iter()
        .map(|&(id, node)| {
            if id == 4 {
                not_on(shard(id, node), &[2, 3])
            } else {
                shard(id, node)
            }
        })
        .map(|g| {
            if h1_rule.contains(&g.group_id) {
                not_on(g, &[1])
            } else {
                g
            }
        })
        .collect();
    assert_eq!(
        moves(&citus(&nodes, &groups)),
        [(1, 1, 2), (2, 1, 3), (4, 2, 1)]
    );

    // Only host 1 disallows: shard 4 is still the one that fills it again in phase 2.
    let groups: Vec<_> = layout
        .iter()
        .map(|&(id, node)| {
            if h1_rule.contains(&id) {
                not_on(shard(id, node), &[1])
            } else {
                shard(id, node)
            }
        })
        .collect();
    let p = citus(&nodes, &groups);
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 3), (4, 2, 1)]);
    let reasons: Vec<_> = p.steps.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [
            StepReason::Disallowed,
            StepReason::Disallowed,
            StepReason::Balance
        ]
    );
}

#[test]
fn citus_j_warns_when_a_shard_is_allowed_nowhere() {
    let nodes = [host(1), host(2)];
    let groups = [
        not_on(shard(1, 1), &[2]),
        not_on(shard(2, 1), &[1]),
        shard(3, 2),
        not_on(shard(4, 2), &[1, 2]),
    ];
    let p = citus(&nodes, &groups);
    assert_eq!(moves(&p), [(2, 1, 2), (3, 2, 1)]);
    assert_eq!(
        notices(&p),
        ["WARNING:  Not allowed to move shard 4 anywhere from hostname2:5432"]
    );
    assert_eq!(
        p.problems,
        [PlanProblem {
            group_id: 4,
            node_id: Some(2),
            reason: "Not allowed to move shard 4 anywhere from hostname2:5432".to_string(),
        }]
    );
}

#[test]
fn citus_c_takes_cost_into_account() {
    let p = citus(
        &[host(1), host(2)],
        &[shard(1, 1), shard(2, 1), shard(3, 1), costly(4, 1, 3)],
    );
    assert_eq!(moves(&p), [(4, 1, 2)]);
}

#[test]
fn citus_cost_orders_disallowed_placements() {
    let groups: Vec<_> = [shard(1, 1), shard(2, 1), shard(3, 1), costly(4, 1, 3)]
        .into_iter()
        .map(|g| not_on(g, &[1]))
        .collect();
    let p = citus(&[host(1), host(2), host(3)], &groups);
    assert_eq!(moves(&p), [(4, 1, 2), (1, 1, 3), (2, 1, 3), (3, 1, 3)]);
}

#[test]
fn citus_d_fills_a_bigger_node() {
    let nodes = [host(1), with_capacity(host(2), 3.0)];
    let p = citus(
        &nodes,
        &[shard(1, 1), shard(2, 1), shard(3, 1), shard(4, 1)],
    );
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 2), (3, 1, 2)]);
}

#[test]
fn citus_e_keeps_the_fairer_spread_with_unequal_capacities() {
    let nodes = [host(1), with_capacity(host(2), 3.0)];
    let p = citus(&nodes, &[shard(1, 1), shard(2, 2), shard(3, 2)]);
    assert!(p.steps.is_empty() && p.notices.is_empty());
}

#[test]
fn citus_capacity_cases() {
    let cap = |c| [host(1), with_capacity(host(2), c)];
    // Target utilization stays 1 but the source drops below it: move.
    let p = citus(&cap(3.0), &[shard(1, 2), shard(2, 2), shard(3, 2)]);
    assert_eq!(moves(&p), [(1, 2, 1)]);
    let p = citus(
        &cap(2.0),
        &[
            shard(1, 1),
            shard(2, 2),
            shard(3, 2),
            shard(4, 2),
            shard(5, 2),
        ],
    );
    assert_eq!(moves(&p), [(2, 2, 1)]);
    let p = citus(
        &cap(2.0),
        &[
            shard(1, 1),
            shard(2, 1),
            shard(3, 2),
            shard(4, 2),
            shard(5, 2),
        ],
    );
    assert!(p.steps.is_empty());
    // Everything fits on the big node.
    let p = citus(&cap(4.0), &[shard(1, 1), shard(2, 1), shard(3, 1)]);
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 2), (3, 1, 2)]);
    // Moving to a smaller node when that improves utilization.
    let p = citus(
        &cap(3.0),
        &[shard(1, 2), shard(2, 2), shard(3, 2), shard(4, 2)],
    );
    assert_eq!(moves(&p), [(1, 2, 1)]);
    // Capacity with different costs.
    let p = citus(&cap(3.0), &[shard(1, 2), costly(2, 2, 3)]);
    assert_eq!(moves(&p), [(1, 2, 1)]);
    let p = citus(&cap(3.0), &[shard(1, 1), shard(2, 1), costly(3, 1, 2)]);
    assert_eq!(moves(&p), [(3, 1, 2), (1, 1, 2)]);
}

#[test]
fn citus_f_max_shard_moves_stops_with_a_notice() {
    let nodes = [host(1), with_capacity(host(2), 3.0)];
    let opts = PlanOptions {
        max_shard_moves: 1,
        ..unit_opts()
    };
    let p = unit_plan(&nodes, &[shard(1, 1), shard(2, 1), costly(3, 1, 2)], &opts);
    assert_eq!(moves(&p), [(3, 1, 2)]);
    assert_eq!(notices(&p), [STOPPED]);
}

#[test]
fn citus_capacity_costs_and_disallowed_together() {
    let nodes = [host(1), with_capacity(host(2), 5.0), host(3)];
    let p = citus(
        &nodes,
        &[not_on(shard(1, 3), &[3]), not_on(costly(2, 3, 2), &[3])],
    );
    // Not optimal (shard 1 moves twice), exactly as Citus.
    assert_eq!(moves(&p), [(2, 3, 2), (1, 3, 1), (1, 1, 2)]);
}

fn drain_and_rebalance_cluster() -> (Vec<PlanNode>, Vec<PlanShardGroup>) {
    let nodes = vec![no_shards(host(1)), host(2), host(3)];
    let groups = vec![
        shard(1, 1),
        shard(2, 2),
        shard(3, 2),
        shard(4, 2),
        shard(5, 2),
        shard(6, 2),
    ];
    (nodes, groups)
}

#[test]
fn citus_g_drain_plus_rebalance() {
    let (nodes, groups) = drain_and_rebalance_cluster();
    let p = citus(&nodes, &groups);
    assert_eq!(moves(&p), [(1, 1, 3), (2, 2, 3), (3, 2, 3)]);
    assert!(p.notices.is_empty());

    let p = unit_plan(
        &nodes,
        &groups,
        &PlanOptions {
            drain_only: true,
            ..unit_opts()
        },
    );
    assert_eq!(moves(&p), [(1, 1, 3)]);
    assert!(p.notices.is_empty());

    // Draining ignores max_shard_moves, and the limit is reported.
    let p = unit_plan(
        &nodes,
        &groups,
        &PlanOptions {
            max_shard_moves: 0,
            ..unit_opts()
        },
    );
    assert_eq!(moves(&p), [(1, 1, 3)]);
    assert_eq!(notices(&p), [STOPPED]);

    // Drained moves count towards the limit.
    let p = unit_plan(
        &nodes,
        &groups,
        &PlanOptions {
            max_shard_moves: 2,
            ..unit_opts()
        },
    );
    assert_eq!(moves(&p), [(1, 1, 3), (2, 2, 3)]);
    assert_eq!(notices(&p), [STOPPED]);
}

#[test]
fn citus_drains_all_colocation_groups_before_rebalancing() {
    let nodes = [no_shards(host(1)), host(2), host(3)];
    let mut groups = drain_and_rebalance_cluster().1;
    groups.extend(
        [7, 8, 9, 10, 11, 12].map(|id| colocated(shard(id, if id == 7 { 1 } else { 2 }), 2)),
    );

    let p = citus(&nodes, &groups);
    assert_eq!(
        moves(&p),
        [
            (1, 1, 3),
            (7, 1, 3),
            (2, 2, 3),
            (3, 2, 3),
            (8, 2, 3),
            (9, 2, 3)
        ]
    );

    // The NOTICE comes once although both colocation groups hit the limit.
    let p = unit_plan(
        &nodes,
        &groups,
        &PlanOptions {
            max_shard_moves: 1,
            ..unit_opts()
        },
    );
    assert_eq!(moves(&p), [(1, 1, 3), (7, 1, 3)]);
    assert_eq!(notices(&p), [STOPPED]);

    // Moves of all colocation groups add up towards the limit.
    let p = unit_plan(
        &nodes,
        &groups,
        &PlanOptions {
            max_shard_moves: 5,
            ..unit_opts()
        },
    );
    assert_eq!(
        moves(&p),
        [(1, 1, 3), (7, 1, 3), (2, 2, 3), (3, 2, 3), (8, 2, 3)]
    );
    assert_eq!(notices(&p), [STOPPED]);
}

fn ab() -> [PlanNode; 2] {
    [named(1, "a"), named(2, "b")]
}

#[test]
fn citus_h_skips_a_big_shard_with_small_improvement() {
    let groups = [
        costly(1, 1, 20),
        costly(2, 1, 20),
        costly(3, 2, 100),
        costly(4, 2, 50),
    ];
    let p = citus(&ab(), &groups);
    assert_eq!(moves(&p), [(4, 2, 1)]);
    let expected: Vec<String> = ignoring(3, "b", "a", "0.1", "0.5")
        .into_iter()
        .chain(ignored_summary(1, "all of which are", "0.5"))
        .collect();
    assert_eq!(notices(&p), expected);

    // improvement_threshold can force the big move.
    let p = unit_plan(
        &ab(),
        &groups,
        &PlanOptions {
            improvement_threshold: Some(0.1),
            ..unit_opts()
        },
    );
    assert_eq!(moves(&p), [(3, 2, 1), (1, 1, 2), (2, 1, 2)]);
    assert!(p.notices.is_empty());
}

#[test]
fn citus_i_ignores_both_big_shards() {
    let groups = [
        costly(1, 1, 40),
        costly(2, 1, 40),
        costly(3, 2, 100),
        costly(4, 2, 100),
    ];
    let p = citus(&ab(), &groups);
    assert!(p.steps.is_empty());
    let expected: Vec<String> = ignoring(3, "b", "a", "0.2", "0.5")
        .into_iter()
        .chain(ignoring(4, "b", "a", "0.2", "0.5"))
        .chain(ignored_summary(2, "all of which are", "0.5"))
        .collect();
    assert_eq!(notices(&p), expected);

    // A threshold equal to the improvement lets the move through; given as SQL real too.
    for threshold in [0.2, f64::from(0.2f32)] {
        let opts = PlanOptions {
            improvement_threshold: Some(threshold),
            ..unit_opts()
        };
        let p = unit_plan(&ab(), &groups, &opts);
        assert_eq!(moves(&p), [(3, 2, 1), (1, 1, 2)]);
    }
}

fn seven_nodes() -> (Vec<PlanNode>, Vec<PlanShardGroup>) {
    let nodes = ["a", "b", "c", "d", "e", "f", "g"]
        .iter()
        .enumerate()
        .map(|(i, name)| named(i as i64 + 1, name))
        .collect();
    let mut groups: Vec<_> = (1..=6).map(|id| costly(id, id, 39)).collect();
    groups.extend([costly(7, 7, 40), costly(8, 7, 39)]);
    (nodes, groups)
}

#[test]
fn citus_limits_ignored_move_notices() {
    let (nodes, groups) = seven_nodes();
    for (max_logged, shown) in [(5, 5), (1, 1), (10, 6), (usize::MAX, 6)] {
        let opts = PlanOptions {
            improvement_threshold: Some(0.1),
            max_logged_ignored_moves: max_logged,
            ..unit_opts()
        };
        let p = unit_plan(&nodes, &groups, &opts);
        assert!(p.steps.is_empty());
        let mut expected: Vec<String> = ["a", "b", "c", "d", "e", "f"][..shown]
            .iter()
            .flat_map(|to| ignoring(8, "g", to, "0.025641", "0.1"))
            .collect();
        let summary = if shown == 6 {
            "all of which are".to_string()
        } else {
            format!("{shown} of which are")
        };
        expected.extend(ignored_summary(6, &summary, "0.1"));
        assert_eq!(
            notices(&p),
            expected,
            "max_logged_ignored_moves = {max_logged}"
        );
    }
}

#[test]
fn citus_improvement_threshold_with_capacity() {
    let nodes = [named(1, "a"), with_capacity(named(2, "b"), 2.0)];
    let groups = [
        costly(1, 1, 20),
        costly(2, 1, 10),
        costly(3, 1, 10),
        costly(4, 2, 100),
        costly(5, 2, 50),
        costly(6, 2, 50),
    ];
    let opts = PlanOptions {
        improvement_threshold: Some(0.6),
        ..unit_opts()
    };
    let p = unit_plan(&nodes, &groups, &opts);
    assert_eq!(moves(&p), [(5, 2, 1), (2, 1, 2)]);
    let expected: Vec<String> = ignoring(1, "a", "b", "0.5", "0.6")
        .into_iter()
        .chain(ignored_summary(1, "all of which are", "0.6"))
        .collect();
    assert_eq!(notices(&p), expected);
}

// ---------------------------------------------------------------------------------------------
// GetRebalanceSteps-level behaviour

#[test]
fn small_colocation_groups_are_balanced_together() {
    let nodes = [host(1), host(2), host(3)];
    // Each colocation group alone has one shard and would never move (1/0/0 is stable).
    let small: Vec<_> = [(1, 10), (2, 20), (3, 30)]
        .map(|(id, c)| colocated(shard(id, 1), c))
        .to_vec();
    let p = plan(&nodes, &small, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 3)]);

    // A colocation group with as many placements as nodes is balanced on its own.
    let mut groups = small.clone();
    groups.extend([4, 5, 6].map(|id| colocated(shard(id, 1), 40)));
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    assert_eq!(moves(&p), [(4, 1, 2), (5, 1, 3), (1, 1, 2), (2, 1, 3)]);
}

#[test]
fn threshold_below_the_minimum_warns_and_uses_the_minimum() {
    let nodes = [host(1), host(2)];
    let groups = [shard(1, 1), shard(2, 1)];
    let opts = PlanOptions {
        threshold: Some(0.001),
        ..PlanOptions::new(Strategy::ByDiskSize)
    };
    let p = plan(&nodes, &groups, &opts).unwrap();
    assert_eq!(
        notices(&p),
        [
            "WARNING:  the given threshold is lower than the minimum threshold allowed by the \
             rebalance strategy, using the minimum allowed threshold instead",
            "DETAIL:  Using threshold of 0.01",
        ]
    );
    assert_eq!(moves(&p), [(1, 1, 2)]);

    // The minimum itself, also as a SQL real, is fine.
    for t in [0.01, f64::from(0.01f32)] {
        let opts = PlanOptions {
            threshold: Some(t),
            ..PlanOptions::new(Strategy::ByDiskSize)
        };
        assert!(plan(&nodes, &groups, &opts).unwrap().notices.is_empty());
    }
}

#[test]
fn by_disk_size_adds_the_base_cost() {
    let nodes = [host(1), host(2)];
    let gib = 1024 * 1024 * 1024;
    let groups = [costly(1, 1, gib), costly(2, 1, 0), costly(3, 1, 0)];
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByDiskSize)).unwrap();
    // Costs 1 GiB + 100 MiB, 100 MiB, 100 MiB: the empty groups move, the big one would not
    // improve the balance enough.
    assert_eq!(moves(&p), [(2, 1, 2), (3, 1, 2)]);
    let expected: Vec<String> = ignoring(1, "hostname1", "hostname2", "0.177936", "0.5")
        .into_iter()
        .chain(ignored_summary(1, "all of which are", "0.5"))
        .collect();
    assert_eq!(notices(&p), expected);

    // Without the base cost the empty groups cost 1 each and the big one dominates.
    let opts = PlanOptions {
        base_cost_bytes: 0,
        ..PlanOptions::new(Strategy::ByDiskSize)
    };
    let p = plan(&nodes, &groups, &opts).unwrap();
    assert_eq!(moves(&p), [(2, 1, 2), (3, 1, 2)]);
    assert_eq!(p.steps[0].bytes, 0);
}

// ---------------------------------------------------------------------------------------------
// Drains

fn drain_opts(node: i64) -> PlanOptions {
    PlanOptions {
        drain_nodes: vec![node],
        drain_only: true,
        ..PlanOptions::new(Strategy::ByShardCount)
    }
}

#[test]
fn drain_moves_only_the_drained_nodes_placements_to_the_emptiest_nodes() {
    let nodes = [host(1), host(2), host(3), host(4)];
    let mut groups = vec![shard(1, 1), shard(2, 1), shard(3, 3)];
    groups.extend((10..16).map(|id| shard(id, 2)));
    let p = plan(&nodes, &groups, &drain_opts(1)).unwrap();
    // By real load (Citus would only see the drained node's shards): node 4 is empty.
    assert_eq!(moves(&p), [(1, 1, 4), (2, 1, 3)]);
    assert!(p.steps.iter().all(|s| s.reason == StepReason::Disallowed));
    assert!(p.notices.is_empty() && p.problems.is_empty());

    // Without drain_only the rest is balanced afterwards, never back onto the drained node.
    let opts = PlanOptions {
        drain_only: false,
        ..drain_opts(1)
    };
    let p = plan(&nodes, &groups, &opts).unwrap();
    assert_eq!(&moves(&p)[..2], [(1, 1, 4), (2, 1, 3)]);
    assert!(p.steps[2..]
        .iter()
        .all(|s| s.reason == StepReason::Balance && s.source_node == 2));
    assert!(p.steps.iter().all(|s| s.target_node != 1));
    assert_eq!(moves(&p).len(), 5);
}

#[test]
fn drain_leaves_other_non_shard_nodes_alone() {
    let nodes = [host(1), no_shards(host(2)), host(3)];
    let groups = [shard(1, 1), shard(2, 2)];
    let p = plan(&nodes, &groups, &drain_opts(1)).unwrap();
    assert_eq!(moves(&p), [(1, 1, 3)]);
    // A normal rebalance does move it.
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    assert_eq!(moves(&p), [(2, 2, 3)]);
}

#[test]
fn drain_with_replication_never_targets_a_node_holding_a_replica() {
    // Citus issue #6948.
    let nodes = [host(1), host(2), host(3)];
    let groups = [
        replicated(1, 1, &[1, 2]),
        replicated(2, 1, &[1, 3]),
        replicated(3, 1, &[2, 3]),
    ];
    let p = plan(&nodes, &groups, &drain_opts(1)).unwrap();
    assert_eq!(moves(&p), [(1, 1, 3), (2, 1, 2)]);
    let after = apply(&groups, &p.steps).unwrap();
    for g in &after {
        assert_eq!(g.placements.len(), 2);
        assert!(!g.placements.contains(&1));
    }
}

#[test]
fn drain_below_the_replication_factor_is_an_error() {
    let nodes = [host(1), host(2)];
    let err = plan(&nodes, &[replicated(1, 1, &[1, 2])], &drain_opts(1)).unwrap_err();
    assert_eq!(
        err,
        PlanError::ReplicationFactorTooHigh {
            replication_factor: 2,
            allowed_nodes: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "Shard replication factor (2) cannot be greater than number of nodes with \
         should_have_shards=true (1)."
    );
}

/// A worker down elsewhere (its shard with no live placement, a replica missing) does not
/// concern a drain of another node: it moves that node's groups and reports nothing else.
#[test]
fn a_drain_considers_only_the_groups_on_the_drained_node() {
    let nodes = [host(1), host(2), dead(host(3)), host(4)];
    let groups = [
        shard(1, 1),
        shard(2, 3),
        replicated(3, 1, &[2, 3]),
        replicated(4, 1, &[1, 3]),
    ];
    let p = plan(&nodes, &groups, &drain_opts(1)).unwrap();
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    // Group 4, on the drained node, gets its missing replica back; group 3 does not.
    assert_eq!(copies(&p), [(4, 1, 4)]);
    assert_eq!(moves(&p), [(1, 1, 2), (4, 1, 2)]);
    // Without a drain the same cluster reports the lost group and re-creates the replica.
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    assert!(!p.problems.is_empty());
}

#[test]
fn draining_a_dead_node_reports_what_cannot_move() {
    let nodes = [dead(host(1)), host(2), host(3)];
    let groups = [shard(1, 1), replicated(2, 1, &[1, 2]), shard(3, 2)];
    let p = plan(&nodes, &groups, &drain_opts(1)).unwrap();
    // The replica is re-created from the live copy; nothing moves off the dead node.
    assert_eq!(copies(&p), [(2, 2, 3)]);
    assert!(moves(&p).is_empty());
    let problems: Vec<_> = p
        .problems
        .iter()
        .map(|x| (x.group_id, x.node_id, x.reason.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (1, None, "shard group 1 has no live placement"),
            (
                1,
                Some(1),
                "cannot move shard group 1 away from hostname1:5432 because the node is not live"
            ),
            (
                2,
                Some(1),
                "cannot move shard group 2 away from hostname1:5432 because the node is not live"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Reference tables, replicas, dead nodes, disk

#[test]
fn reference_groups_are_copied_first_and_never_moved() {
    let nodes = [host(1), host(2), host(3), no_shards(host(4)), dead(host(5))];
    let mut groups = vec![reference(100, &[2, 1]), reference(101, &[5])];
    groups.extend((1..=4).map(|id| shard(id, 1)));
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    // Source: the live placement with the lowest node id; not to should_have_shards=false or
    // dead nodes.
    assert_eq!(copies(&p), [(100, 1, 3)]);
    assert_eq!(p.steps[0].reason, StepReason::ReferenceCopy);
    assert_eq!(p.steps[0].kind, StepKind::Copy);
    assert!(p.steps[1..]
        .iter()
        .all(|s| s.kind == StepKind::Move && s.group_id < 100));
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 3)]);
    assert_eq!(
        p.problems,
        [PlanProblem {
            group_id: 101,
            node_id: None,
            reason: "shard group 101 has no live placement".into()
        }]
    );
}

#[test]
fn missing_replica_goes_to_the_least_utilized_node_lacking_it() {
    let nodes = [host(1), host(2), host(3), host(4), dead(host(5))];
    let mut groups = vec![
        PlanShardGroup {
            replication_factor: 2,
            bytes: 7,
            ..shard(10, 1)
        },
        replicated(11, 1, &[5, 4]),
    ];
    groups
        .extend([(12, 1), (13, 2), (14, 2), (15, 2), (16, 4), (17, 3)].map(|(id, n)| shard(id, n)));
    let opts = PlanOptions {
        drain_only: true,
        ..PlanOptions::new(Strategy::ByShardCount)
    };
    let p = plan(&nodes, &groups, &opts).unwrap();
    // Utilization before: node1 2, node2 3, node3 1, node4 2 → group 10 to node 3. Group 11
    // (on node 4 and the dead node 5) is copied from node 4; nodes 1, 3 and 4 now tie at 2
    // and node 4 holds it, so node 1 (lowest id) gets it.
    assert_eq!(copies(&p), [(10, 1, 3), (11, 4, 1)]);
    assert!(p
        .steps
        .iter()
        .all(|s| s.reason == StepReason::MissingReplica));
    assert_eq!(p.steps[0].bytes, 7);
    assert!(p.problems.is_empty());
}

#[test]
fn dead_nodes_are_neither_sources_nor_targets_nor_counted() {
    let nodes = [host(1), host(2), dead(host(3))];
    let mut groups: Vec<_> = (1..=4).map(|id| shard(id, 1)).collect();
    groups.extend((5..=9).map(|id| shard(id, 3)));
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    // The average is 4/2, not 9/2: the dead node's shards do not count.
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 2)]);
    assert!(p
        .steps
        .iter()
        .all(|s| s.source_node != 3 && s.target_node != 3));
    assert_eq!(p.problems.len(), 5);
    assert!(p
        .problems
        .iter()
        .all(|x| x.reason.ends_with("has no live placement")));
}

#[test]
fn a_target_without_disk_room_is_skipped() {
    let nodes = [host(1), with_disk(host(2), 100), host(3)];
    let groups: Vec<_> = (1..=4).map(|id| costly(id, 1, 100)).collect();
    let p = plan(&nodes, &groups, &PlanOptions::new(Strategy::ByShardCount)).unwrap();
    assert_eq!(moves(&p), [(1, 1, 3), (2, 1, 3)]);
    assert!(p.problems.is_empty());

    // 10% of the free space stays free: 100 bytes fit in 112 free bytes, 2×100 do not.
    let nodes = [host(1), with_disk(host(2), 112), with_disk(host(3), 112)];
    let p = plan(&nodes, &groups, &drain_opts(1)).unwrap();
    assert_eq!(moves(&p), [(1, 1, 2), (2, 1, 3)]);
    assert_eq!(p.problems.len(), 2);
    assert_eq!(
        notices(&p),
        [
            "WARNING:  Not allowed to move shard 3 anywhere from hostname1:5432",
            "WARNING:  Not allowed to move shard 4 anywhere from hostname1:5432",
        ]
    );
}

#[test]
fn drain_without_disk_room_names_bytes_needed_and_free() {
    let nodes = [host(1), with_disk(host(2), 500), with_disk(host(3), 1000)];
    let p = plan(&nodes, &[costly(1, 1, 1000)], &drain_opts(1)).unwrap();
    assert!(p.steps.is_empty());
    assert_eq!(
        notices(&p),
        ["WARNING:  Not allowed to move shard 1 anywhere from hostname1:5432"]
    );
    assert_eq!(
        p.problems,
        [PlanProblem {
            group_id: 1,
            node_id: Some(1),
            reason:
                "not enough disk space to move shard group 1: it needs 1000 bytes, but no \
                     allowed node has more than 900 bytes free (keeping 10% of its free space free)"
                    .into(),
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// Errors and small pieces

#[test]
fn invalid_inputs_are_errors() {
    let nodes = [host(1), host(2)];
    let groups = [shard(1, 1)];
    let with = |o: PlanOptions| plan(&nodes, &groups, &o).unwrap_err();
    let base = PlanOptions::new(Strategy::ByShardCount);
    assert!(matches!(
        with(PlanOptions {
            threshold: Some(f64::NAN),
            ..base.clone()
        }),
        PlanError::InvalidThreshold {
            option: "threshold",
            ..
        }
    ));
    assert!(matches!(
        with(PlanOptions {
            threshold: Some(-0.5),
            ..base.clone()
        }),
        PlanError::InvalidThreshold {
            option: "threshold",
            ..
        }
    ));
    assert!(matches!(
        with(PlanOptions {
            improvement_threshold: Some(f64::INFINITY),
            ..base.clone()
        }),
        PlanError::InvalidThreshold {
            option: "improvement_threshold",
            ..
        }
    ));
    assert!(matches!(
        with(PlanOptions {
            desired_percent_disk_free_after_move: 101.0,
            ..base.clone()
        }),
        PlanError::InvalidDiskPercent { .. }
    ));
    assert_eq!(
        with(PlanOptions {
            drain_nodes: vec![9],
            ..base.clone()
        }),
        PlanError::UnknownDrainNode { node_id: 9 }
    );
    assert_eq!(
        plan(&nodes, &[shard(1, 7)], &base).unwrap_err(),
        PlanError::UnknownPlacementNode {
            group_id: 1,
            node_id: 7
        }
    );
    assert_eq!(
        plan(&nodes, &[shard(1, 1), shard(1, 2)], &base).unwrap_err(),
        PlanError::DuplicateGroup { group_id: 1 }
    );
    assert_eq!(
        plan(&[host(1), host(1)], &[], &base).unwrap_err(),
        PlanError::DuplicateNode { node_id: 1 }
    );
    let three = [host(1), host(2), host(3)];
    let rf3 = PlanShardGroup {
        replication_factor: 3,
        ..shard(1, 1)
    };
    assert_eq!(
        plan(&three, &[rf3], &drain_opts(3))
            .unwrap_err()
            .to_string(),
        "Shard replication factor (3) cannot be greater than number of nodes with \
         should_have_shards=true (2)."
    );
}

#[test]
fn strategies_parse_by_name() {
    assert_eq!(
        "by_shard_count".parse::<Strategy>(),
        Ok(Strategy::ByShardCount)
    );
    assert_eq!("by_disk_size".parse::<Strategy>(), Ok(Strategy::ByDiskSize));
    let err = "by_size".parse::<Strategy>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not find rebalance strategy with name by_size (valid names: by_shard_count, \
         by_disk_size)"
    );
    assert_eq!(Strategy::ByDiskSize.to_string(), "by_disk_size");
    let s = Strategy::ByDiskSize;
    assert_eq!(
        (
            s.default_threshold(),
            s.minimum_threshold(),
            s.improvement_threshold()
        ),
        (0.1, 0.01, 0.5)
    );
    let s = Strategy::ByShardCount;
    assert_eq!(
        (
            s.default_threshold(),
            s.minimum_threshold(),
            s.improvement_threshold()
        ),
        (0.0, 0.0, 0.0)
    );
}

#[test]
fn fmt_g_matches_c() {
    let cases = [
        (0.1, "0.1"),
        (1.0 / 39.0, "0.025641"),
        (0.5, "0.5"),
        (0.0, "0"),
        (100.0, "100"),
        (123456.0, "123456"),
        (1234567.0, "1.23457e+06"),
        (999999.5, "1e+06"),
        (0.0001, "0.0001"),
        (0.00001234, "1.234e-05"),
        (f64::from(0.6f32), "0.6"),
    ];
    for (v, want) in cases {
        assert_eq!(fmt_g(v), want, "{v}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties over random clusters

#[derive(Debug, Clone)]
struct Cluster {
    nodes: Vec<PlanNode>,
    groups: Vec<PlanShardGroup>,
}

/// Knobs for the generator: the balance properties need live nodes of capacity 1 and no disk
/// limits; the safety properties take everything.
#[derive(Clone, Copy)]
struct Knobs {
    dead_nodes: bool,
    disk: bool,
    capacities: bool,
}

type NodeSeed = (bool, bool, u8, Option<u64>);
type GroupSeed = (i64, u64, usize, Vec<usize>, bool, bool);

fn build(knobs: Knobs, ns: Vec<NodeSeed>, gs: Vec<GroupSeed>) -> Cluster {
    let nodes: Vec<PlanNode> = ns
        .into_iter()
        .enumerate()
        .map(|(i, (shs, live, cap, disk))| PlanNode {
            should_have_shards: shs,
            is_live: live || !knobs.dead_nodes,
            capacity: if knobs.capacities {
                f64::from(cap)
            } else {
                1.0
            },
            disk_free_bytes: if knobs.disk { disk } else { None },
            ..host(i as i64 + 1)
        })
        .collect();
    let n = nodes.len();
    let groups = gs
        .into_iter()
        .enumerate()
        .map(|(i, (colocation, bytes, rf, picks, is_ref, missing))| {
            let rf = rf.min(n);
            let mut on: Vec<i64> = Vec::new();
            for p in picks.iter().map(|p| p % n).chain(0..n) {
                let id = p as i64 + 1;
                if !on.contains(&id) && on.len() < rf {
                    on.push(id);
                }
            }
            if missing && !is_ref {
                on.pop();
            }
            PlanShardGroup {
                group_id: 1000 + i as i64,
                colocation_id: colocation,
                bytes,
                placements: on,
                replication_factor: rf,
                is_reference: is_ref,
                disallowed_nodes: Vec::new(),
            }
        })
        .collect();
    Cluster { nodes, groups }
}

fn clusters(knobs: Knobs) -> impl PStrategy<Value = Cluster> {
    let node = (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.85),
        1u8..=3,
        prop::option::weighted(0.4, 0u64..4000),
    );
    let group = (
        0i64..6,
        0u64..1000,
        1usize..=2,
        prop::collection::vec(0usize..64, 3),
        prop::bool::weighted(0.05),
        prop::bool::weighted(if knobs.dead_nodes { 0.1 } else { 0.0 }),
    );
    (
        prop::collection::vec(node, 1..=12),
        prop::collection::vec(group, 0..=300),
    )
        .prop_map(move |(ns, gs)| build(knobs, ns, gs))
}

fn allowed_nodes(nodes: &[PlanNode], drain: &[i64]) -> Vec<i64> {
    nodes
        .iter()
        .filter(|n| n.is_live && n.should_have_shards && !drain.contains(&n.node_id))
        .map(|n| n.node_id)
        .collect()
}

/// Ok(None) when the planner rightly refused: some group wants more replicas than nodes.
fn plan_or_refusal(c: &Cluster, opts: &PlanOptions) -> Result<Option<Plan>, TestCaseError> {
    match plan(&c.nodes, &c.groups, opts) {
        Ok(p) => Ok(Some(p)),
        Err(PlanError::ReplicationFactorTooHigh {
            replication_factor,
            allowed_nodes: a,
        }) => {
            prop_assert_eq!(a, allowed_nodes(&c.nodes, &opts.drain_nodes).len());
            prop_assert!(replication_factor > a);
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("unexpected error {e}"))),
    }
}

/// The planner's balancing states, recomputed independently: one per colocation group with at
/// least as many placements (after re-replication) as allowed nodes, plus one for the rest.
fn oracle_states(groups: &[PlanShardGroup], allowed: usize) -> Vec<Vec<i64>> {
    let mut by_colocation: BTreeMap<i64, (usize, Vec<i64>)> = BTreeMap::new();
    for g in groups.iter().filter(|g| !g.is_reference) {
        let entry = by_colocation.entry(g.colocation_id).or_default();
        let live = g.placements.len();
        entry.0 += if live > 0 {
            live.max(g.replication_factor)
        } else {
            0
        };
        entry.1.push(g.group_id);
    }
    let mut states = Vec::new();
    let mut rest = Vec::new();
    for (_, (count, ids)) in by_colocation {
        if count >= allowed {
            states.push(ids)
        } else {
            rest.extend(ids)
        }
    }
    if !rest.is_empty() {
        states.push(rest);
    }
    states
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Safety on any cluster (dead nodes, disk limits, capacities, drains, move limits):
    /// (1) no placement is lost or doubled, (2) nothing lands where it may not, disk limits
    /// hold, (5) phase 2 stays within max_shard_moves.
    #[test]
    fn plans_are_safe(
        c in clusters(Knobs { dead_nodes: true, disk: true, capacities: true }),
        by_disk in prop::bool::ANY,
        drain_picks in prop::collection::vec(0usize..12, 0..3),
        drain_only in prop::bool::ANY,
        max_moves in prop::sample::select(vec![0usize, 1, 3, 10, 1_000_000]),
    ) {
        let mut drain: Vec<i64> =
            drain_picks.iter().map(|i| c.nodes[i % c.nodes.len()].node_id).collect();
        drain.sort_unstable();
        drain.dedup();
        let opts = PlanOptions {
            drain_nodes: drain.clone(),
            drain_only,
            max_shard_moves: max_moves,
            base_cost_bytes: 100,
            ..PlanOptions::new(if by_disk { Strategy::ByDiskSize } else { Strategy::ByShardCount })
        };
        let Some(p) = plan_or_refusal(&c, &opts)? else { return Ok(()) };

        // (1) Applying never loses or doubles a placement; copies are the only additions.
        let after = apply(&c.groups, &p.steps).map_err(TestCaseError::fail)?;
        for (before, now) in c.groups.iter().zip(&after) {
            let added = p.copies().filter(|s| s.group_id == before.group_id).count();
            prop_assert_eq!(now.placements.len(), before.placements.len() + added);
        }

        // (2) Targets are live, should have shards and are not drained; sources are live.
        let node = |id: i64| c.nodes.iter().find(|n| n.node_id == id);
        let mut incoming: HashMap<i64, u64> = HashMap::new();
        for s in &p.steps {
            let (Some(src), Some(tgt)) = (node(s.source_node), node(s.target_node)) else {
                return Err(TestCaseError::fail(format!("unknown node in {s:?}")));
            };
            prop_assert!(tgt.is_live && tgt.should_have_shards && !drain.contains(&tgt.node_id), "{:?}", s);
            prop_assert!(src.is_live, "{:?}", s);
            *incoming.entry(s.target_node).or_default() += s.bytes;
            let is_ref = c.groups.iter().any(|g| g.group_id == s.group_id && g.is_reference);
            prop_assert!(!(is_ref && s.kind == StepKind::Move), "reference group moved: {:?}", s);
            if !drain.is_empty() && s.reason == StepReason::Disallowed {
                prop_assert!(drain.contains(&s.source_node), "a drain moved another node's placement: {:?}", s);
            }
            prop_assert!(!(drain_only && s.reason == StepReason::Balance), "{:?}", s);
        }
        for (id, bytes) in incoming {
            if let Some(free) = node(id).and_then(|n| n.disk_free_bytes) {
                prop_assert!(bytes as f64 <= free as f64 * 0.9, "node {} gets {} of {} free bytes", id, bytes, free);
            }
        }

        // (5) Phase 1 ignores the limit; phase 2 only uses what is left of it.
        let phase1 = p.steps.iter().filter(|s| s.reason == StepReason::Disallowed).count();
        let phase2 = p.steps.iter().filter(|s| s.reason == StepReason::Balance).count();
        prop_assert!(phase2 <= max_moves.saturating_sub(phase1), "{} + {} > {}", phase1, phase2, max_moves);
    }

    /// Balance on live clusters with by_shard_count (threshold 0, improvement 0, capacity 1, no
    /// disk limit, no drain). (3) Per balancing state, with avg = placements / allowed nodes:
    /// for every allowed source s above avg and allowed target t below avg with
    /// count(s) − count(t) ≥ 2 (the only pairs where a move of cost 1 improves the balance),
    /// every shard group on s is already on t; placements left on should_have_shards=false
    /// nodes have a replica on every allowed node. (4) Planning the result again yields no step.
    #[test]
    fn by_shard_count_balances_and_is_stable(
        c in clusters(Knobs { dead_nodes: false, disk: false, capacities: false }),
    ) {
        let opts = PlanOptions::new(Strategy::ByShardCount);
        let Some(p) = plan_or_refusal(&c, &opts)? else { return Ok(()) };
        prop_assert!(!notices(&p).contains(&STOPPED.to_string()));
        let after = apply(&c.groups, &p.steps).map_err(TestCaseError::fail)?;
        let allowed = allowed_nodes(&c.nodes, &[]);

        // (3)
        let by_id: HashMap<i64, &PlanShardGroup> = after.iter().map(|g| (g.group_id, g)).collect();
        for state in oracle_states(&c.groups, allowed.len()) {
            let members: Vec<&PlanShardGroup> = state.iter().map(|id| by_id[id]).collect();
            let total: usize = members.iter().map(|g| g.placements.len()).sum();
            let avg = total as f64 / allowed.len() as f64;
            let count = |n: i64| members.iter().filter(|g| g.placements.contains(&n)).count();
            for &s in &allowed {
                for &t in &allowed {
                    let (cs, ct) = (count(s), count(t));
                    if cs as f64 > avg && (ct as f64) < avg && cs >= ct + 2 {
                        for g in members.iter().filter(|g| g.placements.contains(&s)) {
                            prop_assert!(g.placements.contains(&t),
                                "group {} could still move from node {} ({}) to node {} ({}), avg {}",
                                g.group_id, s, cs, t, ct, avg);
                        }
                    }
                }
            }
            for g in &members {
                if g.placements.iter().any(|n| !allowed.contains(n)) {
                    prop_assert!(allowed.iter().all(|n| g.placements.contains(n)), "{:?}", g);
                }
            }
        }

        // (4)
        let again = plan(&c.nodes, &after, &opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(again.steps.is_empty(), "second plan: {:?}", again.steps);
    }
}
