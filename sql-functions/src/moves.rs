//! The shard-move state machine. A move is a sequence of [`Step`]s, each an idempotent
//! function of the move's context that returns the next step (one file per step under
//! `moves/`, whose doc lists its transitions). Only the phases a move recovers from
//! differently are persisted (`tasks.phase`, [`MovePhase`]); the steps within one live in
//! memory:
//!
//! ```text
//! persisted  planned → preparing → copying ─────────────────────────────→ switched → done
//! steps                 prepare  → copy → catch_up ⟲ → fence → switch  →  cleanup
//! any step before the switch ──(error, cancel)──→ rolling_back: roll_back → aborted
//! any step before the switch ──(writers held the group: MoveDeferred)──→ waits in its phase
//! ```
//!
//! After a crash a move resumes at the first step of its persisted phase: `copying` copies
//! what the target does not hold verified yet (the fence died with the process), `switched`
//! cleans up. A deferred move is not rolled back: the task goes back to the scheduler in
//! `copying` (`preparing` when it stopped there, before anything was staged) with its staged
//! copy on the target, and only the files committed meanwhile are copied again. Every other
//! failure before the switch rolls back; the scheduler retries what
//! [`ClusterError::is_retryable`] says can succeed later, and fails the task at once
//! otherwise.
//!
//! A move's context is split as GreptimeDB's procedures split theirs: the persisted part is
//! the catalog's [`Task`] (ids, addresses, phase, byte counts); [`MoveSettings`] are read once
//! per run; [`Volatile`] (the target's client, the set of files known staged, the write
//! fence, round counters) is rebuilt after a crash, because every step first re-reads reality
//! (the catalog's file lists, the target's staging) instead of trusting the last record. The
//! target pulls files from the source (`pull_files`, rate-limited, size and CRC-32C
//! verified); the source's files are deleted only by the deferred cleanup records the switch
//! writes, once no older query runs.

mod catch_up;
mod cleanup;
mod copy;
mod fence;
mod prepare;
mod roll_back;
mod switch;
mod target;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_catalog::{
    FileRecord, GroupShardFiles, MovePhase, Node, Task, TaskKind, TaskState, TransferMode,
};
use shoal_shard_store::{FileMeta, PullFilesRequest, ShardStoreError};
use tracing::{info, warn};

use crate::cluster::{Cluster, SnapshotGuard};
use crate::error::{ClusterError, Result};
use crate::failpoints;
use crate::gate::{gate_key, Fence};

pub(crate) use target::{ConnectTarget, MoveTarget};

/// One step of a move. Several steps share a persisted [`MovePhase`] ([`Step::phase`]): a
/// crash anywhere within it resumes at its first step ([`Step::resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Prepare,
    Copy,
    CatchUp,
    Fence,
    Switch,
    Cleanup,
    RollBack,
    Done,
    Aborted,
}

impl Step {
    #[cfg(test)]
    pub(crate) const ALL: [Step; 9] = [
        Step::Prepare,
        Step::Copy,
        Step::CatchUp,
        Step::Fence,
        Step::Switch,
        Step::Cleanup,
        Step::RollBack,
        Step::Done,
        Step::Aborted,
    ];

    /// The persisted phase this step belongs to.
    pub(crate) fn phase(self) -> MovePhase {
        match self {
            Step::Prepare => MovePhase::Preparing,
            Step::Copy | Step::CatchUp | Step::Fence | Step::Switch => MovePhase::Copying,
            Step::Cleanup => MovePhase::Switched,
            Step::RollBack => MovePhase::RollingBack,
            Step::Done => MovePhase::Done,
            Step::Aborted => MovePhase::Aborted,
        }
    }

    /// Where a move whose persisted phase is `phase` resumes.
    pub(crate) fn resume(phase: MovePhase) -> Step {
        match phase {
            MovePhase::Planned | MovePhase::Preparing => Step::Prepare,
            MovePhase::Copying => Step::Copy,
            MovePhase::Switched => Step::Cleanup,
            MovePhase::Done => Step::Done,
            MovePhase::RollingBack => Step::RollBack,
            MovePhase::Aborted => Step::Aborted,
        }
    }

    /// Before the switch a move can still be undone; after it, only finished.
    pub(crate) fn before_switch(self) -> bool {
        before_switch(self.phase())
    }

    /// The name in logs and in the `crash_before:<step>` failpoint.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Copy => "copy",
            Step::CatchUp => "catch_up",
            Step::Fence => "fence",
            Step::Switch => "switch",
            Step::Cleanup => "cleanup",
            Step::RollBack => "roll_back",
            Step::Done => "done",
            Step::Aborted => "aborted",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Step::Done | Step::Aborted)
    }
}

/// Whether a move in `phase` has not switched yet.
fn before_switch(phase: MovePhase) -> bool {
    matches!(
        phase,
        MovePhase::Planned | MovePhase::Preparing | MovePhase::Copying
    )
}

/// Reads a `shard_transfer_mode` argument (Citus's values).
pub fn parse_transfer_mode(text: &str) -> Result<TransferMode> {
    TransferMode::parse(text).map_err(|_| ClusterError::InvalidArgument {
        message: format!("invalid shard_transfer_mode \"{text}\""),
        hint: Some("Use 'auto', 'force_logical' or 'block_writes'.".into()),
    })
}

/// How one run of a task ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done,
    Cancelled,
    /// Rolled back after this error (or failed after the switch, with nothing to undo); the
    /// scheduler retries it if the error [`is retryable`](ClusterError::is_retryable).
    Failed(ClusterError),
    /// Stopped before the switch for a reason that passes ([`ClusterError::MoveDeferred`]),
    /// not rolled back: its persisted phase is `copying` (`preparing` if it stopped before
    /// copying) and the staged copy waits on the target for the retry.
    Deferred(ClusterError),
}

/// A setting in MB/s as bytes per second; `None` (no limit) for unlimited or not positive.
fn bytes_per_s(mb: Option<f64>) -> Option<u64> {
    mb.filter(|mb| *mb > 0.0)
        .map(|mb| (mb * 1_000_000.0) as u64)
}

/// How often a running `pull_files` call is checked for a cancel and asked for its progress
/// (which is then saved: a progress write neither waits for an fsync nor invalidates cached
/// table snapshots).
const PULL_WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Bytes per `pull_files` call (the files a call staged are verified when it ends).
const PULL_BATCH_BYTES: u64 = 64 << 20;
/// A delta this small may be copied under the fence; larger ones get another catch-up round.
const FENCE_DELTA_BYTES: u64 = 8 << 20;
/// Catch-up rounds before the attempt gives up (writers outpacing the copy); it is retried
/// later with backoff.
const MAX_CATCH_UP_ROUNDS: u32 = 20;
/// Fences that time out (taking it, or the fenced work) before the attempt fails and the task
/// is retried later.
const MAX_FENCE_ATTEMPTS: u32 = 3;

/// What a run of a move reads once when it starts: the job's and the cluster's settings.
pub(crate) struct MoveSettings {
    keep_source: bool,
    mode: TransferMode,
    max_bytes_per_s: Option<u64>,
    /// The limit while clients' statements run (`rebalance.yield_bandwidth_mb`), if lower.
    yield_bytes_per_s: Option<u64>,
    fence_timeout: Duration,
    /// Failed attempts a task may have before it stops retrying (`rebalance.task_retries`).
    task_retries: u64,
    /// The write gate fenced: the shard group's.
    gate_key: i64,
}

impl MoveSettings {
    fn read(cluster: &Cluster, task: &Task) -> Result<MoveSettings> {
        let job = cluster.catalog().job(task.job_id)?;
        let settings = cluster.catalog().cluster_settings()?;
        let bandwidth_mb = job.max_bandwidth_mb.or(settings.max_bandwidth_mb);
        // The gate fenced is the table's: a shard whose table is gone cannot be moved. After
        // the switch no fence is taken, and a table dropped since leaves only the cleanup.
        let table_id = match cluster.catalog().shard_table_id(task.shard_id)? {
            Some(id) => id,
            None if !before_switch(task.phase) => 0,
            None => {
                return Err(ClusterError::NotInState {
                    message: format!("shard {} no longer exists", task.shard_id),
                    hint: None,
                })
            }
        };
        Ok(MoveSettings {
            keep_source: task.kind == TaskKind::Copy,
            mode: job.transfer_mode,
            max_bytes_per_s: bytes_per_s(bandwidth_mb),
            yield_bytes_per_s: bytes_per_s(settings.yield_bandwidth_mb),
            fence_timeout: Duration::from_millis(settings.write_fence_timeout_ms),
            task_retries: settings.task_retries,
            gate_key: gate_key(task.colocation_id, table_id),
        })
    }
}

/// What a running move holds that is not persisted; rebuilt (empty) after a crash.
pub(crate) struct Volatile {
    target: Arc<dyn MoveTarget>,
    fence: Option<Fence>,
    /// Files known to be staged and verified on the target, by shard.
    staged: HashMap<i64, HashSet<String>>,
    /// Bytes copied by this run. A resumed move counts from 0: it lists every file again (the
    /// target skips those it staged and verified before, and they are counted once then).
    bytes_done: u64,
    catch_up_rounds: u32,
    fence_attempts: u32,
    /// The error that sent the move to `rolling_back`, if any.
    failure: Option<ClusterError>,
    /// Held like a query's: files the move reads from the source (listed after it began)
    /// are not deleted by deferred cleanup (compaction, truncate) until the move ends.
    /// Released at `cleanup`, when the move reads nothing more from the source.
    snapshot: Option<SnapshotGuard>,
}

/// One run of a move: its persisted context (the catalog's task), its settings and what it
/// holds in memory.
pub(crate) struct MoveRun {
    cluster: Arc<Cluster>,
    connect: ConnectTarget,
    /// The persisted context, as the catalog holds it (kept in step with it: `phase`,
    /// `bytes_total` and, after a retarget, the target).
    task: Task,
    settings: MoveSettings,
    volatile: Volatile,
}

impl MoveRun {
    pub(crate) fn new(
        cluster: &Arc<Cluster>,
        connect: ConnectTarget,
        task: Task,
    ) -> Result<MoveRun> {
        let settings = MoveSettings::read(cluster, &task)?;
        let volatile = Volatile {
            target: connect(&task.target)?,
            fence: None,
            staged: HashMap::new(),
            bytes_done: 0,
            catch_up_rounds: 0,
            fence_attempts: 0,
            failure: None,
            snapshot: Some(cluster.begin_snapshot()),
        };
        Ok(MoveRun {
            cluster: Arc::clone(cluster),
            connect,
            task,
            settings,
            volatile,
        })
    }

    fn task_id(&self) -> i64 {
        self.task.task_id
    }

    /// The move goes to `node` instead of its planned target (nothing was copied yet).
    fn retarget(&mut self, node: &Node) -> Result<()> {
        self.volatile.target = (self.connect)(&node.addr())?;
        self.task.target_node_id = node.node_id;
        self.task.target = node.addr();
        if let Some(entry) = self.cluster.running_tasks().get_mut(&self.task.task_id) {
            entry.1 = node.node_id;
        }
        Ok(())
    }

    /// The limit for the next `pull_files` call: `max_bytes_per_s`, lowered to
    /// `yield_bytes_per_s` while clients' statements run — on a machine where the transfer
    /// shares CPU and disk with them, a full-speed copy costs every query latency — except
    /// under the write fence, where writers wait for the copy to end.
    fn pull_rate(&self) -> Option<u64> {
        let yielding = self.volatile.fence.is_none() && self.cluster.foreground_active();
        match (
            self.settings.max_bytes_per_s,
            self.settings.yield_bytes_per_s,
        ) {
            (cap, Some(y)) if yielding => Some(cap.map_or(y, |c| c.min(y))),
            (cap, _) => cap,
        }
    }

    /// The largest delta copied under the fence: 8 MiB, and under a bandwidth limit no more
    /// than a quarter of the fence timeout's worth, so the fenced copy fits in the timeout.
    fn fence_delta_bytes(&self) -> u64 {
        match self.settings.max_bytes_per_s {
            Some(rate) => {
                let budget = rate as f64 * self.settings.fence_timeout.as_secs_f64() / 4.0;
                FENCE_DELTA_BYTES.min(budget as u64)
            }
            None => FENCE_DELTA_BYTES,
        }
    }

    /// The group's shards and their files on the source, re-read from the catalog.
    fn group(&self) -> Result<Vec<GroupShardFiles>> {
        Ok(self.cluster.catalog().group_files(
            self.task.colocation_id,
            self.task.shard_index,
            self.task.shard_id,
            self.task.source_node_id,
            self.task.target_node_id,
        )?)
    }

    /// Whether the scheduler will run this task again if this attempt fails.
    fn may_retry(&self) -> bool {
        u64::try_from(self.task.retries).is_ok_and(|r| r < self.settings.task_retries)
    }

    fn cancel_requested(&self) -> Result<bool> {
        Ok(self
            .cluster
            .catalog()
            .task(self.task_id())?
            .is_some_and(|t| t.state == TaskState::Cancelling))
    }

    /// Files of `group` not yet staged on the target, and their bytes.
    fn delta(&self, group: &[GroupShardFiles]) -> (Vec<(i64, i64, FileRecord)>, u64) {
        let mut out = Vec::new();
        let mut bytes = 0;
        for g in group {
            let staged = self.volatile.staged.get(&g.shard_id);
            for f in &g.files {
                if !staged.is_some_and(|s| s.contains(&f.name)) {
                    bytes += f.bytes;
                    out.push((g.table_id, g.shard_id, f.clone()));
                }
            }
        }
        (out, bytes)
    }

    /// Copies `files` to the target's staging: one `pull_files` call per shard and batch of
    /// up to [`PULL_BATCH_BYTES`], so that progress and cancellation are seen between batches
    /// while a call still carries enough to stream at full speed. Returns the bytes copied.
    async fn pull(&mut self, files: Vec<(i64, i64, FileRecord)>) -> Result<u64> {
        let mut batches: Vec<((i64, i64), Vec<FileRecord>, u64)> = Vec::new();
        for (table_id, shard_id, f) in files {
            match batches.last_mut() {
                Some((key, batch, bytes))
                    if *key == (table_id, shard_id) && *bytes < PULL_BATCH_BYTES =>
                {
                    *bytes += f.bytes;
                    batch.push(f);
                }
                _ => batches.push(((table_id, shard_id), vec![f.clone()], f.bytes)),
            }
        }
        let mut copied = 0;
        for ((table_id, shard_id), batch, _) in batches {
            self.check_cancel()?;
            let req = PullFilesRequest {
                task_id: self.task_id(),
                source_addr: self.task.source.clone(),
                table_id,
                shard_id,
                files: batch
                    .iter()
                    .map(|f| FileMeta {
                        name: f.name.clone(),
                        bytes: f.bytes,
                        rows: f.rows,
                        checksum: f.checksum,
                    })
                    .collect(),
                max_bytes_per_s: self.pull_rate(),
            };
            let batch = match self.pull_call(&req).await? {
                Ok(()) => batch,
                Err(ShardStoreError::FileMissing { .. }) => {
                    // A compaction that committed before this move began may have merged
                    // files away: copy what the catalog still lists, once; a file that is
                    // listed and missing is a real error.
                    let listed: HashSet<String> = self
                        .group()?
                        .into_iter()
                        .filter(|g| g.shard_id == shard_id)
                        .flat_map(|g| g.files.into_iter().map(|f| f.name))
                        .collect();
                    let still: Vec<FileRecord> = batch
                        .into_iter()
                        .filter(|f| listed.contains(&f.name))
                        .collect();
                    let mut retry = req;
                    retry.files.retain(|f| listed.contains(&f.name));
                    self.pull_call(&retry).await??;
                    still
                }
                Err(e) => return Err(e.into()),
            };
            let bytes: u64 = batch.iter().map(|f| f.bytes).sum();
            copied += bytes;
            self.volatile.bytes_done += bytes;
            let staged = self.volatile.staged.entry(shard_id).or_default();
            staged.extend(batch.into_iter().map(|f| f.name));
            self.save_progress(0)?;
        }
        Ok(copied)
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel_requested()? {
            return Err(ClusterError::Cancelled {
                message: "the move was cancelled".into(),
            });
        }
        Ok(())
    }

    /// One `pull_files` call, watched while it runs: every [`PULL_WATCH_INTERVAL`] a cancel
    /// ends it (dropping the call stops the transfer on the target, whose receiving threads
    /// remove their part files), and the bytes it has received so far are counted as
    /// progress and in the job's transfer rate. The outer error ends the watch (a cancel, the
    /// catalog), the inner one is the call's.
    async fn pull_call(
        &mut self,
        req: &PullFilesRequest,
    ) -> Result<std::result::Result<(), ShardStoreError>> {
        let meter = Arc::clone(self.cluster.transfer_meter());
        let _activity = meter.pull_started(self.task.job_id);
        let target = Arc::clone(&self.volatile.target);
        let call = target.pull_files(req);
        tokio::pin!(call);
        let mut watch = tokio::time::interval(PULL_WATCH_INTERVAL);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut counted = 0u64;
        loop {
            tokio::select! {
                result = &mut call => {
                    if let Ok(copied) = &result {
                        meter.received(self.task.job_id, copied.saturating_sub(counted));
                    }
                    return Ok(result.map(drop));
                }
                _ = watch.tick() => {
                    // A catalog hiccup here must not abort a transfer: the next look retries.
                    match self.cancel_requested() {
                        Ok(true) => self.check_cancel()?,
                        Ok(false) => {}
                        Err(e) => warn!(task_id = self.task_id(), error = %e, "cancel check failed"),
                    }
                    // A slow answer only delays the next look; the call goes on regardless.
                    let asked = tokio::time::timeout(
                        PULL_WATCH_INTERVAL,
                        target.pull_progress(req.task_id),
                    )
                    .await;
                    if let Ok(Ok(Some(received))) = asked {
                        if received > counted {
                            meter.received(self.task.job_id, received - counted);
                            counted = received;
                            if let Err(e) = self.save_progress(counted) {
                                warn!(task_id = self.task_id(), error = %e, "progress not saved");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Saves the move's progress: `bytes_verified` counts only files the target verified as
    /// it staged them; `bytes_done` adds `in_flight`, the bytes of the running call so far.
    fn save_progress(&self, in_flight: u64) -> Result<()> {
        let done = self.volatile.bytes_done + in_flight;
        self.cluster.catalog().set_task_progress(
            self.task_id(),
            self.task.bytes_total.max(done),
            done,
            self.volatile.bytes_done,
        )?;
        Ok(())
    }

    /// A rollback discards the staged copy: none of its bytes count as done any more.
    fn discard_progress(&mut self) -> Result<()> {
        self.volatile.bytes_done = 0;
        self.volatile.staged.clear();
        self.save_progress(0)
    }

    async fn take_fence(&mut self) -> bool {
        if self.volatile.fence.is_some() {
            return true;
        }
        let started = Instant::now();
        self.volatile.fence = self
            .cluster
            .gates()
            .fence(self.settings.gate_key, self.settings.fence_timeout)
            .await;
        if self.volatile.fence.is_some() {
            info!(
                task_id = self.task_id(),
                wait_ms = started.elapsed().as_millis() as u64,
                "writes fenced"
            );
        }
        self.volatile.fence.is_some()
    }

    fn open_fence(&mut self) {
        if self.volatile.fence.take().is_some() {
            info!(task_id = self.task_id(), "write fence opened");
        }
    }

    /// Runs one step and returns the next.
    async fn step(&mut self, step: Step) -> Result<Step> {
        match step {
            Step::Prepare => prepare::run(self).await,
            Step::Copy => copy::run(self).await,
            Step::CatchUp => catch_up::run(self).await,
            Step::Fence => fence::run(self).await,
            Step::Switch => switch::run(self).await,
            Step::Cleanup => cleanup::run(self).await,
            Step::RollBack => roll_back::run(self).await,
            Step::Done | Step::Aborted => Ok(step),
        }
    }

    /// Records `phase` in the catalog.
    fn persist(&mut self, phase: MovePhase) -> Result<()> {
        self.cluster
            .catalog()
            .set_task_phase(self.task_id(), phase, None)?;
        self.task.phase = phase;
        Ok(())
    }

    /// Persists the rollback; the caller goes on with [`Step::RollBack`].
    fn begin_rollback(&mut self) -> Result<Step> {
        self.open_fence();
        self.persist(MovePhase::RollingBack)?;
        Ok(Step::RollBack)
    }
}

/// Runs (or resumes) one task to its end. Never panics on worker or catalog failures: they
/// roll the move back (before the switch) and come back as [`Outcome::Failed`].
pub(crate) async fn run(cluster: &Arc<Cluster>, task: Task) -> Outcome {
    let workers = Arc::clone(cluster);
    let connect: ConnectTarget =
        Arc::new(move |addr| Ok(Arc::new(workers.worker(addr)?) as Arc<dyn MoveTarget>));
    let mut run = match MoveRun::new(cluster, connect, task) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    let (gate, shard_index) = (run.settings.gate_key, run.task.shard_index);
    run.cluster.set_moving(gate, shard_index, true);
    let outcome = drive(&mut run).await;
    run.cluster.set_moving(gate, shard_index, false);
    outcome
}

/// Runs the steps from the task's persisted phase to `done` or `aborted`, persisting each
/// phase as it is entered.
pub(crate) async fn drive(run: &mut MoveRun) -> Outcome {
    let task_id = run.task_id();
    let mut step = Step::resume(run.task.phase);
    // The phase the loop is in; `run.task.phase` is the catalog's, which the switch
    // transaction moves to `switched` itself (no second write then).
    let mut phase = run.task.phase;
    let mut cancelled = false;
    loop {
        if step.phase() != phase {
            if step.phase() != run.task.phase {
                if let Err(e) = run.persist(step.phase()) {
                    warn!(task_id, error = %e, "could not persist the move's state");
                    run.open_fence();
                    return Outcome::Failed(e);
                }
            }
            phase = step.phase();
            failpoints::crash_after_phase(phase.as_str());
        }
        if step.is_final() {
            break;
        }
        failpoints::crash_before_step(step.as_str());
        if step.before_switch() {
            match run.cancel_requested() {
                Ok(false) => {}
                Ok(true) => {
                    cancelled = true;
                    step = match run.begin_rollback() {
                        Ok(next) => next,
                        Err(e) => return Outcome::Failed(e),
                    };
                    continue;
                }
                Err(e) => return Outcome::Failed(e),
            }
        }
        match run.step(step).await {
            Ok(next) => {
                info!(
                    task_id,
                    from = step.as_str(),
                    to = next.as_str(),
                    "move step"
                );
                step = next;
            }
            Err(ClusterError::Cancelled { .. }) if step.before_switch() => {
                cancelled = true;
                step = match run.begin_rollback() {
                    Ok(next) => next,
                    Err(e) => return Outcome::Failed(e),
                };
            }
            Err(e) if step.before_switch() && e.keeps_staged_copy() && run.may_retry() => {
                // Writers held the group: keep what is staged and let the scheduler run the
                // move again later from its persisted phase (`preparing` may have written the
                // target's on-failure records, so a cancel must roll it back; after it, the
                // copy skips what is staged), unless a cancel came meanwhile.
                run.open_fence();
                match run.cancel_requested() {
                    Ok(false) => {}
                    Ok(true) => {
                        cancelled = true;
                        step = match run.begin_rollback() {
                            Ok(next) => next,
                            Err(e) => return Outcome::Failed(e),
                        };
                        continue;
                    }
                    Err(e) => return Outcome::Failed(e),
                }
                warn!(task_id, step = step.as_str(), phase = run.task.phase.as_str(), error = %e, "move deferred; its staged copy is kept");
                return Outcome::Deferred(e);
            }
            Err(e) if step.before_switch() => {
                warn!(task_id, step = step.as_str(), error = %e, "move step failed; rolling back");
                step = match run.begin_rollback() {
                    Ok(next) => next,
                    // The move could not even record its rollback: it is resumed as it
                    // stands (the first error is in the log above).
                    Err(e2) => return Outcome::Failed(e2),
                };
                run.volatile.failure = Some(e);
            }
            Err(e) => {
                // After the switch the move has happened; what is left (cleanup, rollback of
                // staging) is retried by the scheduler without undoing anything.
                warn!(task_id, step = step.as_str(), error = %e, "move step failed");
                run.open_fence();
                return Outcome::Failed(e);
            }
        }
    }
    run.open_fence();
    match step {
        Step::Done => Outcome::Done,
        _ if cancelled => Outcome::Cancelled,
        _ => match run.volatile.failure.take() {
            Some(e) => Outcome::Failed(e),
            // Resumed in rolling_back after a crash: the reason was the crash, or a cancel.
            None => match run.cancel_requested() {
                Ok(true) => Outcome::Cancelled,
                _ => Outcome::Failed(ClusterError::NotInState {
                    message: "the move was interrupted (coordinator restart) and rolled back"
                        .into(),
                    hint: None,
                }),
            },
        },
    }
}
