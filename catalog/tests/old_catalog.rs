//! A catalog written by an older Shoal must still open and read the same. The fixture
//! (`fixtures/catalog-v4.db`) was written by the catalog crate of commit a40c9be (schema
//! version 4, 2026-11-26): two nodes (the second not taking shards), a distributed table of two
//! shards and a reference table with their files, two settings, and a drain job whose first
//! move failed in `catching_up` (its dependent unscheduled). Opening migrates it in place;
//! every value below is what that version wrote, but for that phase, which version 12 made
//! `copying`.

use shoal_catalog::*;

fn open_copy() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog-v4.db");
    std::fs::copy(&fixture, &path).unwrap();
    let c = Catalog::open(&path).unwrap();
    (dir, c)
}

#[test]
fn a_version_4_catalog_opens_and_reads_as_it_was_written() {
    let (dir, c) = open_copy();

    let nodes = c.list_nodes().unwrap();
    let seen: Vec<(String, u16, bool, NodeState)> = nodes
        .iter()
        .map(|n| (n.addr(), n.port, n.should_have_shards, n.state))
        .collect();
    assert_eq!(
        seen,
        [
            ("w1:7400".to_string(), 7400, true, NodeState::Active),
            ("w2:7401".to_string(), 7401, false, NodeState::Active),
        ]
    );

    let events = c.snapshot("events").unwrap();
    assert_eq!(events.table.kind, TableKind::Distributed);
    assert_eq!(events.table.distribution_column.as_deref(), Some("id"));
    let columns: Vec<(&str, &str, String, bool)> = events
        .table
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.stored_name.as_str(),
                c.sql_type.to_string(),
                c.not_null,
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "id", "bigint".to_string(), true),
            ("kind", "kind", "character varying(20)".to_string(), false),
            ("amount", "amount", "numeric(10,2)".to_string(), false),
        ]
    );
    let shards: Vec<(i64, i32, i32, ShardState, Vec<String>)> = events
        .shards
        .iter()
        .map(|s| {
            (
                s.shard_index,
                s.hash_min,
                s.hash_max,
                s.state,
                s.placements
                    .iter()
                    .flat_map(|p| {
                        p.files
                            .iter()
                            .map(|f| format!("{}:{}:{}", f.name, f.rows, f.checksum))
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shards,
        [
            (
                0,
                i32::MIN,
                -1,
                ShardState::Active,
                vec![format!("a.parquet:10:{}", 0xDEAD_BEEFu32)]
            ),
            (
                1,
                0,
                i32::MAX,
                ShardState::Active,
                vec![
                    format!("b.parquet:20:{}", 0xDEAD_BEEFu32),
                    format!("c.parquet:5:{}", 0xDEAD_BEEFu32)
                ]
            ),
        ]
    );
    assert_eq!(events.row_count(), 35);
    let kinds = c.snapshot("kinds").unwrap();
    assert_eq!(kinds.table.kind, TableKind::Reference);
    assert_eq!(kinds.shards[0].placements.len(), 2);

    let settings = c.cluster_settings().unwrap();
    assert_eq!(settings.max_bandwidth_mb, Some(40.0));
    assert!(settings.auto_rebalance);
    assert_eq!(settings.write_fence_timeout_ms, 5000);

    let jobs = c.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        (
            job.job_type,
            job.state,
            job.transfer_mode,
            job.max_bandwidth_mb
        ),
        (
            JobType::Drain,
            JobState::Failed,
            TransferMode::BlockWrites,
            Some(12.5)
        )
    );
    assert!(job.queued.is_none() && job.error.is_none());
    let tasks: Vec<(TaskKind, TaskState, MovePhase, String)> = c
        .tasks(Some(job.job_id))
        .unwrap()
        .into_iter()
        .map(|t| (t.kind, t.state, t.phase, t.message))
        .collect();
    assert_eq!(
        tasks,
        [
            (
                TaskKind::Move,
                TaskState::Error,
                // Written as `catching_up`; since schema version 12 the catch-up is a step
                // within the persisted `copying`.
                MovePhase::Copying,
                "worker w1:7400 is unavailable".to_string()
            ),
            (
                TaskKind::Move,
                TaskState::Unscheduled,
                MovePhase::Planned,
                String::new()
            ),
        ]
    );

    // Migrated in place: it opens again at today's version, and takes new writes.
    drop(c);
    let again = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    again.add_node("w3", 7402).unwrap();
    assert_eq!(again.list_nodes().unwrap().len(), 3);
}
