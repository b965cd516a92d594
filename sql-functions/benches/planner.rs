//! Rebalance planner benchmark: 100,000 shard groups on 100 nodes, the layouts a real cluster
//! meets (a node added, a node drained, everything on one node). Plain `fn main` so it needs
//! no bench framework: `cargo bench -p shoal-sql-functions --bench planner`.
//! Prints a markdown table of wall times (best of 3 runs); the target is < 1 s per plan.

use shoal_sql_functions::planner::{plan, PlanNode, PlanOptions, PlanShardGroup, Strategy};
use std::hint::black_box;
use std::time::{Duration, Instant};

const GROUPS: usize = 100_000;
const NODES: usize = 100;
const RUNS: usize = 3;

/// Deterministic sizes (xorshift64), so runs are comparable.
struct Sizes(u64);

impl Sizes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % (2 << 30)
    }
}

fn nodes() -> Vec<PlanNode> {
    (1..=NODES as i64)
        .map(|id| PlanNode::new(id, format!("worker-{id}"), 5432))
        .collect()
}

/// `GROUPS` groups in colocation groups of `per_colocation` shards, replica k of shard i on
/// node `(i + k) % on_nodes + 1` (round robin over the first `on_nodes` nodes).
fn groups(per_colocation: usize, on_nodes: usize, replicas: usize) -> Vec<PlanShardGroup> {
    let mut sizes = Sizes(0x9e37_79b9_7f4a_7c15);
    (0..GROUPS)
        .map(|i| PlanShardGroup {
            group_id: i as i64 + 1,
            colocation_id: (i / per_colocation) as i64,
            bytes: sizes.next(),
            placements: (0..replicas)
                .map(|k| ((i + k) % on_nodes) as i64 + 1)
                .collect(),
            replication_factor: replicas,
            ..Default::default()
        })
        .collect()
}

struct Case {
    name: &'static str,
    groups: Vec<PlanShardGroup>,
    opts: PlanOptions,
}

fn cases() -> Vec<Case> {
    let add = |s| PlanOptions::new(s);
    let drain = |s| PlanOptions {
        drain_nodes: vec![1],
        drain_only: true,
        ..PlanOptions::new(s)
    };
    let mut out = Vec::new();
    for strategy in Strategy::ALL {
        out.push(Case {
            name: "add 1 node, 1 colocation × 100k",
            groups: groups(GROUPS, NODES - 1, 1),
            opts: add(strategy),
        });
        out.push(Case {
            name: "add 1 node, 1,000 colocations × 100",
            groups: groups(100, NODES - 1, 1),
            opts: add(strategy),
        });
        out.push(Case {
            name: "add 1 node, rf 2, 1 colocation",
            groups: groups(GROUPS, NODES - 1, 2),
            opts: add(strategy),
        });
        out.push(Case {
            name: "drain 1 node, 1 colocation × 100k",
            groups: groups(GROUPS, NODES, 1),
            opts: drain(strategy),
        });
        out.push(Case {
            name: "drain 1 node, 1,000 colocations × 100",
            groups: groups(100, NODES, 1),
            opts: drain(strategy),
        });
        out.push(Case {
            name: "all on 1 node, 99 empty",
            groups: groups(GROUPS, 1, 1),
            opts: add(strategy),
        });
    }
    out
}

fn main() {
    let nodes = nodes();
    println!("| case | strategy | steps | notices | best of {RUNS} | worst |");
    println!("|---|---|---:|---:|---:|---:|");
    for case in cases() {
        let mut times = Vec::with_capacity(RUNS);
        let mut summary = (0, 0);
        for _ in 0..RUNS {
            let start = Instant::now();
            match plan(
                black_box(&nodes),
                black_box(&case.groups),
                black_box(&case.opts),
            ) {
                Ok(p) => summary = (p.steps.len(), p.notices.len()),
                Err(e) => {
                    eprintln!("{}: {e}", case.name);
                    std::process::exit(1);
                }
            }
            times.push(start.elapsed());
        }
        let best = times.iter().min().copied().unwrap_or_default();
        let worst = times.iter().max().copied().unwrap_or_default();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            case.name,
            case.opts.strategy,
            summary.0,
            summary.1,
            ms(best),
            ms(worst)
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
