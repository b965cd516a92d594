//! The background task scheduler: starts runnable tasks within the concurrency limits,
//! retries failed ones with backoff (the last error stays visible in the task's message),
//! resumes the tasks a previous coordinator was running, and lets callers wait on jobs.
//!
//! Limits: at most `rebalance.max_concurrent_moves` tasks at once (or the job's own
//! `max_concurrent_moves`), and at most `rebalance.max_moves_per_node` running tasks that
//! involve any one node. Backoff after the n-th failure: `rebalance.retry_backoff_ms` × 4ⁿ⁻¹,
//! at most 60 s (5 s, 20 s, 60 s by default, as Citus); after `rebalance.task_retries`
//! failures the task is `error` and its dependents `unscheduled`.

use std::sync::Arc;
use std::time::Duration;

use shoal_catalog::{Job, JobState, Task, TaskState};
use tracing::{info, warn, Instrument};

use crate::cluster::{now_ms, Cluster};
use crate::error::{ClusterError, Result};
use crate::moves::{self, Outcome};

/// How often the scheduler looks for runnable tasks when nothing wakes it (see
/// `Cluster::jobs_changed`): retries whose backoff ran out.
const SCHEDULE_INTERVAL: Duration = Duration::from_millis(200);
/// How often a waiter polls a job's state when nothing wakes it.
const WAIT_INTERVAL: Duration = Duration::from_millis(200);
/// How long a runner that could not record its task's end waits before it lets the task be
/// resumed.
const UNRECORDED_END_BACKOFF: Duration = Duration::from_secs(5);

impl Cluster {
    /// Starts a task on this coordinator in the background.
    fn spawn_task(self: &Arc<Self>, task: Task) {
        let span = tracing::info_span!(
            "move",
            task_id = task.task_id,
            job_id = task.job_id,
            shard_id = task.shard_id,
            source = %task.source,
            target = %task.target
        );
        self.running_tasks()
            .insert(task.task_id, (task.source_node_id, task.target_node_id));
        let cluster = Arc::clone(self);
        tokio::spawn(
            async move {
                let task_id = task.task_id;
                let job_id = task.job_id;
                let retries = task.retries;
                let outcome = moves::run(&cluster, task).await;
                if let Err(e) = cluster.finish_task(task_id, retries, outcome) {
                    warn!(task_id, error = %e, "could not record the end of a task");
                    // It is still marked running: the scheduler resumes it once this runner
                    // leaves the map, not at once (the catalog may be failing).
                    tokio::time::sleep(UNRECORDED_END_BACKOFF).await;
                }
                if cluster
                    .catalog()
                    .job(job_id)
                    .is_ok_and(|job| job.is_terminal())
                {
                    cluster.transfer_meter().forget(job_id);
                }
                cluster.running_tasks().remove(&task_id);
                cluster.jobs_changed();
            }
            .instrument(span),
        );
    }

    fn finish_task(&self, task_id: i64, retries: i64, outcome: Outcome) -> Result<()> {
        let catalog = self.catalog();
        match outcome {
            Outcome::Done => {
                // Keep what went wrong on the way: a retried move says so in shoal.tasks.
                let note = match catalog.task(task_id)? {
                    Some(t) if t.retries > 0 => format!(
                        "done after {} retr{}; last error: {}",
                        t.retries,
                        if t.retries == 1 { "y" } else { "ies" },
                        t.message
                    ),
                    // A note such as where a retargeted move went instead.
                    Some(t) => t.message,
                    None => String::new(),
                };
                catalog.end_task(task_id, TaskState::Done, &note)?;
                info!(task_id, "task done");
            }
            Outcome::Cancelled => {
                catalog.end_task(task_id, TaskState::Cancelled, "cancelled; rolled back")?;
                info!(task_id, "task cancelled");
            }
            Outcome::Failed(error) => {
                let message = error.to_string();
                let cancelling = catalog
                    .task(task_id)?
                    .is_some_and(|t| t.state == TaskState::Cancelling);
                let settings = catalog.cluster_settings()?;
                let max = i64::try_from(settings.task_retries).unwrap_or(i64::MAX);
                if cancelling {
                    catalog.end_task(task_id, TaskState::Cancelled, &message)?;
                } else if !error.is_retryable() {
                    warn!(task_id, error = %message, "task failed; retrying cannot help");
                    catalog.end_task(task_id, TaskState::Error, &message)?;
                } else if retries >= max {
                    warn!(task_id, retries, error = %message, "task failed for good");
                    catalog.end_task(task_id, TaskState::Error, &message)?;
                } else {
                    let backoff = retry_backoff_ms(&settings, retries);
                    warn!(task_id, retry = retries + 1, backoff_ms = backoff, error = %message, "task failed; will retry");
                    catalog.retry_task(task_id, &message, now_ms() + backoff)?;
                }
            }
            Outcome::Deferred(error) => {
                // Its phase and staged copy stay; a cancel that comes before the retry marks
                // it cancelling and `resume_tasks` runs it once more, to roll back.
                let message = error.to_string();
                let backoff = retry_backoff_ms(&catalog.cluster_settings()?, retries);
                warn!(task_id, retry = retries + 1, backoff_ms = backoff, error = %message, "move deferred; will resume");
                catalog.defer_task(task_id, &message, now_ms() + backoff)?;
            }
        }
        Ok(())
    }

    /// Runs the tasks marked running or cancelling that no runner of this coordinator holds:
    /// those a previous coordinator left, a deferred task cancelled while it waited, one
    /// whose runner could not record its end. Each picks up at its persisted phase.
    pub fn resume_tasks(self: &Arc<Self>) -> Result<usize> {
        // Which tasks have a runner is read *before* the catalog: a runner that ends
        // meanwhile has recorded its end by the time it leaves the map, so a task that was
        // running in the catalog read below had its runner in this copy.
        let held: std::collections::HashSet<i64> = self.running_tasks().keys().copied().collect();
        let tasks = self.catalog().unfinished_running_tasks()?;
        let n = tasks.len();
        for t in tasks {
            if held.contains(&t.task_id) || self.running_tasks().contains_key(&t.task_id) {
                continue;
            }
            info!(task_id = t.task_id, phase = %t.phase, "resuming task");
            self.spawn_task(t);
        }
        Ok(n)
    }

    /// One scheduling round; returns how many tasks were started.
    pub fn schedule_tasks_once(self: &Arc<Self>) -> Result<usize> {
        let settings = self.catalog().cluster_settings()?;
        let global_default = i64::try_from(settings.max_concurrent_moves).unwrap_or(i64::MAX);
        let per_node = usize::try_from(settings.max_moves_per_node).unwrap_or(usize::MAX);
        let mut started = 0;
        let mut jobs: std::collections::HashMap<i64, Job> = std::collections::HashMap::new();
        for task in self.catalog().runnable_tasks()? {
            // Its previous runner has recorded its end but not left the map yet: starting it
            // now would let that runner's exit remove the new run's entry.
            if self.running_tasks().contains_key(&task.task_id) {
                continue;
            }
            let job = match jobs.get(&task.job_id) {
                Some(j) => j.clone(),
                None => {
                    let j = self.catalog().job(task.job_id)?;
                    jobs.insert(task.job_id, j.clone());
                    j
                }
            };
            let global = job
                .max_concurrent_moves
                .filter(|n| *n > 0)
                .unwrap_or(global_default) as usize;
            {
                let running = self.running_tasks();
                if running.len() >= global {
                    continue;
                }
                let involving = |node: i64| {
                    running
                        .values()
                        .filter(|(s, t)| *s == node || *t == node)
                        .count()
                };
                if involving(task.source_node_id) >= per_node
                    || involving(task.target_node_id) >= per_node
                {
                    continue;
                }
            }
            if self.catalog().start_task(task.task_id)? {
                started += 1;
                self.spawn_task(task);
            }
        }
        Ok(started)
    }

    /// Waits until the job ends. With `raise`, a job that failed or was cancelled is an
    /// error naming the last task error.
    pub async fn wait_job(&self, job_id: i64, raise: bool) -> Result<Job> {
        loop {
            let changed = self.job_events();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let job = self.catalog().job(job_id)?;
            if job.is_terminal() {
                if raise && job.state != JobState::Finished {
                    return Err(self.job_error(&job)?);
                }
                return Ok(job);
            }
            let _ = tokio::time::timeout(WAIT_INTERVAL, changed).await;
        }
    }

    fn job_error(&self, job: &Job) -> Result<ClusterError> {
        let last = self
            .catalog()
            .tasks(Some(job.job_id))?
            .into_iter()
            .filter(|t| !t.message.is_empty() && t.state != TaskState::Done)
            .max_by_key(|t| t.finished_at_ms.unwrap_or(0));
        let cancelled = job.state == JobState::Cancelled;
        let mut message = format!("job {} ({}) {}", job.job_id, job.job_type, job.state);
        if let Some(error) = &job.error {
            message.push_str(&format!(": {error}"));
        } else if let Some(t) = &last {
            message.push_str(&format!(
                ": task {} (shard {} from {} to {}) {}",
                t.task_id, t.shard_id, t.source, t.target, t.message
            ));
        }
        Ok(ClusterError::JobFailed {
            message,
            cancelled,
            hint: Some(
                "See SELECT * FROM shoal.tasks WHERE job_id = <id>; the moves that finished stay done, and a rerun continues from there."
                    .replace("<id>", &job.job_id.to_string()),
            ),
        })
    }

    /// Cancels a job; running moves roll back. Returns once nothing of it runs any more.
    pub async fn cancel_job(&self, job_id: i64) -> Result<Job> {
        self.catalog().cancel_job(job_id)?;
        self.jobs_changed();
        self.wait_job(job_id, false).await
    }
}

/// The scheduler loop of a coordinator: resumes interrupted tasks, then starts runnable ones.
pub async fn run_scheduler(cluster: Arc<Cluster>) {
    loop {
        let changed = cluster.job_events();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Err(e) = cluster.resume_tasks() {
            warn!(error = %e, "could not resume tasks");
        }
        if let Err(e) = cluster.start_queued_job().await {
            warn!(error = %e, "could not start a queued job");
        }
        if let Err(e) = cluster.schedule_tasks_once() {
            warn!(error = %e, "task scheduling failed");
        }
        let _ = tokio::time::timeout(SCHEDULE_INTERVAL, changed).await;
    }
}

/// The wait before retry `retries + 1`: `rebalance.retry_backoff_ms`, four times longer for
/// each retry before, at most a minute (or the setting, if longer).
fn retry_backoff_ms(settings: &shoal_catalog::ClusterSettings, retries: i64) -> i64 {
    let base = i64::try_from(settings.retry_backoff_ms).unwrap_or(i64::MAX);
    base.saturating_mul(4_i64.saturating_pow(retries.clamp(0, 10) as u32))
        .min(60_000.max(base))
}
