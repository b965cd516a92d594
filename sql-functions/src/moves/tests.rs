//! Each step of the move state machine against a real (in-memory) catalog and a fake target
//! worker that keeps its staging and live files in memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_catalog::*;
use shoal_shard_store::{PullFilesRequest, ShardStoreError};

use super::target::Call;
use super::*;
use crate::cluster::ClusterConfig;

const SOURCE: &str = "w1:7400";
const TARGET: &str = "w2:7400";

/// The target worker's state as the fake keeps it.
#[derive(Default)]
struct TargetState {
    /// Files staged by each move, as (shard, name).
    staged: HashMap<i64, BTreeSet<(i64, String)>>,
    /// Live files, as (shard, name).
    live: BTreeSet<(i64, String)>,
    /// Names asked for by each `pull_files` call.
    pulls: Vec<Vec<String>>,
    /// Shards whose live directories were dropped.
    dropped: Vec<i64>,
    disk_free_bytes: u64,
    /// The next `pull_files` call fails with a damaged file.
    corrupt_next_pull: bool,
    /// Every call fails as a stopped worker's would.
    down: bool,
}

#[derive(Default)]
struct FakeTarget {
    state: Mutex<TargetState>,
}

impl FakeTarget {
    fn new() -> Arc<FakeTarget> {
        let fake = FakeTarget::default();
        fake.with(|s| s.disk_free_bytes = 1 << 30);
        Arc::new(fake)
    }

    fn with<T>(&self, f: impl FnOnce(&mut TargetState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn check_up(&self) -> std::result::Result<(), ShardStoreError> {
        if self.with(|s| s.down) {
            return Err(ShardStoreError::Unavailable {
                addr: TARGET.into(),
                message: "connection refused".into(),
            });
        }
        Ok(())
    }

    fn staged_names(&self, task_id: i64) -> Vec<String> {
        self.with(|s| {
            s.staged
                .get(&task_id)
                .map(|f| f.iter().map(|(_, n)| n.clone()).collect())
                .unwrap_or_default()
        })
    }

    fn live_names(&self) -> Vec<String> {
        self.with(|s| s.live.iter().map(|(_, n)| n.clone()).collect())
    }
}

impl MoveTarget for FakeTarget {
    fn pull_files<'a>(&'a self, req: &'a PullFilesRequest) -> Call<'a, u64> {
        Box::pin(async move {
            self.check_up()?;
            self.with(|s| {
                s.pulls
                    .push(req.files.iter().map(|f| f.name.clone()).collect());
                if std::mem::take(&mut s.corrupt_next_pull) {
                    return Err(ShardStoreError::ChecksumMismatch {
                        name: req.files[0].name.clone(),
                        expected_bytes: req.files[0].bytes,
                        actual_bytes: req.files[0].bytes,
                        expected_checksum: req.files[0].checksum,
                        actual_checksum: 0,
                    });
                }
                let staged = s.staged.entry(req.task_id).or_default();
                let mut copied = 0;
                for f in &req.files {
                    if staged.insert((req.shard_id, f.name.clone())) {
                        copied += f.bytes;
                    }
                }
                Ok(copied)
            })
        })
    }

    fn pull_progress(&self, _task_id: i64) -> Call<'_, Option<u64>> {
        Box::pin(async { Ok(None) })
    }

    fn adopt_staged(
        &self,
        task_id: i64,
        _table_id: i64,
        shard_id: i64,
        names: Vec<String>,
    ) -> Call<'_, ()> {
        Box::pin(async move {
            self.check_up()?;
            self.with(|s| {
                let staged = s.staged.entry(task_id).or_default();
                for n in names {
                    staged.remove(&(shard_id, n.clone()));
                    s.live.insert((shard_id, n));
                }
            });
            Ok(())
        })
    }

    fn drop_shards(&self, _table_id: i64, shard_ids: Vec<i64>) -> Call<'_, ()> {
        Box::pin(async move {
            self.check_up()?;
            self.with(|s| {
                s.live.retain(|(shard, _)| !shard_ids.contains(shard));
                s.dropped.extend(shard_ids);
            });
            Ok(())
        })
    }

    fn discard_staging(&self, task_id: i64) -> Call<'_, ()> {
        Box::pin(async move {
            self.check_up()?;
            self.with(|s| s.staged.remove(&task_id));
            Ok(())
        })
    }

    fn disk_free_bytes(&self) -> Call<'_, u64> {
        Box::pin(async move {
            self.check_up()?;
            Ok(self.with(|s| s.disk_free_bytes))
        })
    }
}

fn file(name: &str, bytes: u64) -> FileRecord {
    FileRecord {
        name: name.into(),
        bytes,
        rows: 10,
        checksum: 7,
    }
}

/// A cluster of two nodes, a one-shard table on the first with two files, and a move of that
/// shard to the second (started, in `planned`), driven against `target`.
struct Fixture {
    cluster: Arc<Cluster>,
    target: Arc<FakeTarget>,
    task_id: i64,
    shard_id: i64,
    source_node: i64,
    target_node: i64,
}

impl Fixture {
    fn new(mode: TransferMode) -> Fixture {
        let catalog = Catalog::open_in_memory().unwrap();
        let (source_node, _) = catalog.add_node("w1", 7400).unwrap();
        let (target_node, _) = catalog.add_node("w2", 7400).unwrap();
        let shard_id = 5;
        catalog
            .create_table(&NewTable {
                name: "t".into(),
                kind: TableKind::SingleShard,
                distribution_column: None,
                colocation_id: None,
                columns: vec![ColumnDef::new("id", SqlType::BigInt, false)],
                shards: vec![NewShard {
                    shard_id,
                    shard_index: 0,
                    hash_min: i32::MIN,
                    hash_max: i32::MAX,
                    placements: vec![(
                        source_node,
                        vec![file("a.parquet", 100), file("b.parquet", 100)],
                    )],
                }],
                pending_txn: None,
            })
            .unwrap();
        catalog
            .set_setting("rebalance.write_fence_timeout_ms", "100")
            .unwrap();
        let job_id = catalog
            .create_job(
                &NewJob {
                    job_type: JobType::Move,
                    description: "test".into(),
                    transfer_mode: mode,
                    max_bandwidth_mb: None,
                    max_concurrent_moves: None,
                    tasks: vec![NewTask {
                        kind: TaskKind::Move,
                        shard_id,
                        colocation_id: None,
                        shard_index: 0,
                        source_node_id: source_node,
                        target_node_id: target_node,
                        source: SOURCE.into(),
                        target: TARGET.into(),
                        bytes_total: 200,
                        depends_on: vec![],
                    }],
                },
                &[],
            )
            .unwrap();
        let task_id = catalog.tasks(Some(job_id)).unwrap()[0].task_id;
        assert!(catalog.start_task(task_id).unwrap());
        Fixture {
            cluster: Cluster::new(Arc::new(catalog), ClusterConfig::default()),
            target: FakeTarget::new(),
            task_id,
            shard_id,
            source_node,
            target_node,
        }
    }

    fn catalog(&self) -> &Catalog {
        self.cluster.catalog()
    }

    fn task(&self) -> Task {
        self.catalog().task(self.task_id).unwrap().unwrap()
    }

    /// A run of the task as the catalog holds it now (a fresh process would build this one).
    fn run(&self) -> MoveRun {
        let target = Arc::clone(&self.target);
        let connect: ConnectTarget =
            Arc::new(move |_| Ok(Arc::clone(&target) as Arc<dyn MoveTarget>));
        MoveRun::new(&self.cluster, connect, self.task()).unwrap()
    }

    fn group(&self) -> Vec<GroupShardFiles> {
        self.catalog()
            .group_files(None, 0, self.shard_id, self.source_node, self.target_node)
            .unwrap()
    }

    /// A writer commits another file to the source placement.
    fn commit_file(&self, name: &str, bytes: u64) {
        let placement_id = self.group()[0].source_placement.unwrap();
        self.catalog()
            .commit_files(&[NewFile {
                placement_id,
                file: file(name, bytes),
            }])
            .unwrap();
    }

    /// A run that copied every file in `copying` and then died with its process: nothing of
    /// it is left in memory; the target's staging and the catalog's phase stay.
    async fn crash_after_copy(&self) {
        let mut run = self.run();
        steps(&mut run, Step::Prepare, Step::Copy).await;
        run.persist(MovePhase::Copying).unwrap();
        run.step(Step::Copy).await.unwrap();
    }

    /// Holds the group's write gate as a writing statement does.
    async fn writer(&self, run: &MoveRun) -> crate::gate::WritePermit {
        self.cluster.gates().admit(run.settings.gate_key).await
    }

    /// Whether a writer is admitted at once (no fence closed).
    async fn writes_flow(&self, run: &MoveRun) -> bool {
        tokio::time::timeout(Duration::from_millis(50), self.writer(run))
            .await
            .is_ok()
    }
}

/// Runs steps from `from` until `until` is next, as `drive` would (without persisting).
async fn steps(run: &mut MoveRun, mut step: Step, until: Step) {
    while step != until {
        step = run.step(step).await.unwrap();
    }
}

#[test]
fn every_step_belongs_to_one_persisted_phase_and_a_phase_resumes_at_its_first_step() {
    for step in Step::ALL {
        let first = Step::resume(step.phase());
        assert_eq!(first.phase(), step.phase(), "{step:?}");
        assert_eq!(first.before_switch(), step.before_switch(), "{step:?}");
    }
    for phase in MovePhase::ALL {
        let step = Step::resume(*phase);
        if *phase == MovePhase::Planned {
            assert_eq!(step, Step::Prepare);
        } else {
            assert_eq!(step.phase(), *phase);
        }
    }
    let resumed: Vec<Step> = [
        MovePhase::Preparing,
        MovePhase::Copying,
        MovePhase::Switched,
        MovePhase::RollingBack,
    ]
    .into_iter()
    .map(Step::resume)
    .collect();
    assert_eq!(
        resumed,
        [Step::Prepare, Step::Copy, Step::Cleanup, Step::RollBack]
    );
}

#[tokio::test]
async fn prepare_records_how_to_undo_the_move_before_anything_is_copied() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    assert_eq!(run.step(Step::Prepare).await.unwrap(), Step::Copy);
    let records = f.catalog().move_target_records(f.task_id).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].node_id, records[0].shard_id),
        (f.target_node, f.shard_id)
    );
    assert_eq!(f.task().bytes_total, 200);
    assert!(f.target.with(|s| s.pulls.is_empty()));
    // Running it twice is harmless.
    assert_eq!(run.step(Step::Prepare).await.unwrap(), Step::Copy);
    assert_eq!(f.catalog().move_target_records(f.task_id).unwrap().len(), 1);
    assert!(f.writes_flow(&run).await, "auto mode does not fence yet");
}

#[tokio::test]
async fn prepare_refuses_a_target_without_room_for_the_group() {
    let f = Fixture::new(TransferMode::Auto);
    // 200 bytes needed; 10% of the free space must stay free.
    f.target.with(|s| s.disk_free_bytes = 210);
    let mut run = f.run();
    let err = run.step(Step::Prepare).await.unwrap_err();
    assert!(matches!(err, ClusterError::DiskFull { .. }), "{err}");
}

#[tokio::test]
async fn prepare_in_block_writes_mode_fences_writes_for_the_whole_copy() {
    let f = Fixture::new(TransferMode::BlockWrites);
    let mut run = f.run();
    assert_eq!(run.step(Step::Prepare).await.unwrap(), Step::Copy);
    assert!(!f.writes_flow(&run).await);
    steps(&mut run, Step::Copy, Step::Switch).await;
    assert!(!f.writes_flow(&run).await, "still fenced before the switch");
    assert_eq!(run.step(Step::Switch).await.unwrap(), Step::Cleanup);
    assert!(f.writes_flow(&run).await, "the switch opens the fence");
}

#[tokio::test]
async fn prepare_of_a_move_switched_by_a_lost_run_goes_to_cleanup() {
    let f = Fixture::new(TransferMode::Auto);
    let group = f.group();
    f.catalog()
        .switch_placements(f.task_id, false, f.source_node, f.target_node, &group)
        .unwrap();
    let mut run = f.run();
    assert_eq!(run.step(Step::Prepare).await.unwrap(), Step::Cleanup);
}

#[tokio::test]
async fn copy_stages_every_listed_file_and_counts_it_as_progress() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::Copy).await;
    assert_eq!(run.step(Step::Copy).await.unwrap(), Step::CatchUp);
    assert_eq!(f.target.staged_names(f.task_id), ["a.parquet", "b.parquet"]);
    let t = f.task();
    assert_eq!((t.bytes_done, t.bytes_verified), (200, 200));
    assert!(
        f.target.live_names().is_empty(),
        "nothing is live before the switch"
    );
}

#[tokio::test]
async fn copy_fails_on_a_damaged_file_and_the_move_rolls_back() {
    let f = Fixture::new(TransferMode::Auto);
    f.target.with(|s| s.corrupt_next_pull = true);
    let mut run = f.run();
    assert!(matches!(drive(&mut run).await, Outcome::Failed(_)));
    let t = f.task();
    assert_eq!((t.phase, t.bytes_done), (MovePhase::Aborted, 0));
    assert!(f.target.staged_names(f.task_id).is_empty());
    let g = &f.group()[0];
    assert!(g.source_placement.is_some() && !g.on_target);
}

#[tokio::test]
async fn catch_up_copies_what_writers_committed_until_the_delta_fits_under_the_fence() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::CatchUp).await;
    // A large commit (as the catalog records it) needs another round without the fence.
    f.commit_file("c.parquet", 16 << 20);
    assert_eq!(run.step(Step::CatchUp).await.unwrap(), Step::CatchUp);
    assert_eq!(
        f.target.with(|s| s.pulls.last().cloned()).unwrap(),
        ["c.parquet"]
    );
    // A small one is left for the fenced final copy.
    f.commit_file("d.parquet", 100);
    assert_eq!(run.step(Step::CatchUp).await.unwrap(), Step::Fence);
    assert!(!f
        .target
        .staged_names(f.task_id)
        .contains(&"d.parquet".to_string()));
}

#[tokio::test]
async fn catch_up_defers_the_move_when_writers_keep_outpacing_the_copy() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::CatchUp).await;
    run.volatile.catch_up_rounds = MAX_CATCH_UP_ROUNDS;
    f.commit_file("c.parquet", 16 << 20);
    let err = run.step(Step::CatchUp).await.unwrap_err();
    assert!(err.keeps_staged_copy(), "{err}");
}

#[tokio::test]
async fn fence_waits_for_writers_at_most_the_timeout_then_catches_up_and_finally_defers() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::Fence).await;
    let writer = f.writer(&run).await;
    for _ in 1..MAX_FENCE_ATTEMPTS {
        assert_eq!(run.step(Step::Fence).await.unwrap(), Step::CatchUp);
    }
    let err = run.step(Step::Fence).await.unwrap_err();
    assert!(err.keeps_staged_copy(), "{err}");
    drop(writer);
    assert_eq!(run.step(Step::Fence).await.unwrap(), Step::Switch);
    assert!(!f.writes_flow(&run).await, "the fence holds writers");
}

#[tokio::test]
async fn switch_copies_the_last_delta_adopts_and_names_the_target() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::Fence).await;
    f.commit_file("c.parquet", 100);
    assert_eq!(run.step(Step::Fence).await.unwrap(), Step::Switch);
    assert_eq!(run.step(Step::Switch).await.unwrap(), Step::Cleanup);
    assert_eq!(
        f.target.live_names(),
        ["a.parquet", "b.parquet", "c.parquet"]
    );
    let g = &f.group()[0];
    assert!(g.on_target && g.source_placement.is_none());
    assert_eq!(f.task().phase, MovePhase::Switched);
    assert!(f.writes_flow(&run).await);
    // The source's files wait for the queries that may read them.
    assert_eq!(
        f.catalog()
            .pending_cleanup_for(f.source_node, &[f.shard_id])
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn switch_without_the_fence_takes_it_first() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::Switch).await;
    run.open_fence();
    assert_eq!(run.step(Step::Switch).await.unwrap(), Step::Fence);
    assert!(f.target.live_names().is_empty());
}

#[tokio::test]
async fn cleanup_ends_the_move_and_removes_the_targets_staging_in_the_background() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::Cleanup).await;
    f.target.with(|s| {
        s.staged
            .entry(f.task_id)
            .or_default()
            .insert((5, "x".into()))
    });
    assert_eq!(run.step(Step::Cleanup).await.unwrap(), Step::Done);
    assert!(run.volatile.snapshot.is_none(), "the snapshot is released");
    for _ in 0..100 {
        if f.target.staged_names(f.task_id).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the staging directory was not discarded");
}

#[tokio::test]
async fn roll_back_removes_the_targets_copies_and_its_records() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::CatchUp).await;
    assert_eq!(run.step(Step::RollBack).await.unwrap(), Step::Aborted);
    assert_eq!(f.target.with(|s| s.dropped.clone()), [f.shard_id]);
    assert!(f.target.staged_names(f.task_id).is_empty());
    assert!(f
        .catalog()
        .move_target_records(f.task_id)
        .unwrap()
        .is_empty());
    assert_eq!(f.task().bytes_done, 0);
}

#[tokio::test]
async fn roll_back_with_the_target_down_leaves_its_copies_to_the_cleanup_loop() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    steps(&mut run, Step::Prepare, Step::CatchUp).await;
    f.target.with(|s| s.down = true);
    assert_eq!(run.step(Step::RollBack).await.unwrap(), Step::Aborted);
    // The records stay, due now: the cleanup loop drops the copies once the target answers.
    let due = f
        .catalog()
        .pending_cleanup_for(f.target_node, &[f.shard_id])
        .unwrap();
    assert_eq!(due.len(), 1);
}

#[tokio::test]
async fn a_move_persists_only_its_recovery_phases_on_the_way_to_done() {
    let f = Fixture::new(TransferMode::Auto);
    let mut run = f.run();
    assert!(matches!(drive(&mut run).await, Outcome::Done));
    let t = f.task();
    assert_eq!((t.phase, t.bytes_verified), (MovePhase::Done, 200));
    let g = &f.group()[0];
    assert!(g.on_target && g.source_placement.is_none());
}

#[tokio::test]
async fn a_move_resumed_in_copying_copies_only_what_the_target_lacks() {
    let f = Fixture::new(TransferMode::Auto);
    f.crash_after_copy().await;
    f.commit_file("c.parquet", 100);
    let mut resumed = f.run();
    assert!(matches!(drive(&mut resumed).await, Outcome::Done));
    // The resumed copy asked for every file; the target skipped those it held.
    let t = f.task();
    assert_eq!((t.phase, t.bytes_verified), (MovePhase::Done, 300));
    assert_eq!(
        f.target.live_names(),
        ["a.parquet", "b.parquet", "c.parquet"]
    );
}

#[tokio::test]
async fn a_move_held_off_by_writers_is_deferred_in_copying_with_its_staged_copy() {
    let f = Fixture::new(TransferMode::Auto);
    let run0 = f.run();
    let writer = f.writer(&run0).await;
    drop(run0);
    let mut run = f.run();
    assert!(matches!(drive(&mut run).await, Outcome::Deferred(_)));
    assert_eq!(f.task().phase, MovePhase::Copying);
    assert_eq!(f.target.staged_names(f.task_id), ["a.parquet", "b.parquet"]);
    assert_eq!(f.catalog().move_target_records(f.task_id).unwrap().len(), 1);
    drop(writer);
    let mut resumed = f.run();
    assert!(matches!(drive(&mut resumed).await, Outcome::Done));
}

#[tokio::test]
async fn a_cancelled_move_rolls_back_from_wherever_it_was() {
    let f = Fixture::new(TransferMode::Auto);
    f.crash_after_copy().await;
    f.catalog().cancel_job(f.task().job_id).unwrap();
    let mut resumed = f.run();
    assert!(matches!(drive(&mut resumed).await, Outcome::Cancelled));
    assert_eq!(f.task().phase, MovePhase::Aborted);
    assert!(f.target.staged_names(f.task_id).is_empty());
    let g = &f.group()[0];
    assert!(g.source_placement.is_some() && !g.on_target);
}
