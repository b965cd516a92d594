//! Background jobs and tasks (Citus-shaped), and the catalog side of shard moves: reading a
//! shard group's files, the target's on-failure cleanup record, and the switch — the one
//! transaction that hands a shard group from its source to its target.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::{cleanup_from_row, insert_file, now_ms, Catalog};
use crate::error::{CatalogError, Result};
use crate::model::{
    CleanupRecord, DrainQueued, FileRecord, GroupShardFiles, Job, NewJob, QueuedDrain, Task,
};
use crate::states::{JobState, JobType, MovePhase, TaskState};

const JOB_COLUMNS: &str = "job_id, job_type, state, description, transfer_mode, max_bandwidth_mb, max_concurrent_moves, created_at_ms, started_at_ms, finished_at_ms, queued_drain, queued_strategy, error";
const TASK_COLUMNS: &str = "task_id, job_id, kind, state, phase, shard_id, colocation_id, shard_index, source_node_id, target_node_id, source, target, bytes_total, bytes_done, bytes_verified, retries, not_before_ms, message, started_at_ms, finished_at_ms, context";

/// Reason of the cleanup record a move writes for its target before copying anything: on
/// failure the target's copies of the group are dropped.
pub(crate) fn move_target_reason(task_id: i64) -> String {
    format!("move-target:{task_id}")
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        job_id: r.get(0)?,
        job_type: r.get(1)?,
        state: r.get(2)?,
        description: r.get(3)?,
        transfer_mode: r.get(4)?,
        max_bandwidth_mb: r.get(5)?,
        max_concurrent_moves: r.get(6)?,
        created_at_ms: r.get(7)?,
        started_at_ms: r.get(8)?,
        finished_at_ms: r.get(9)?,
        queued: match r.get::<_, Option<String>>(10)? {
            Some(ids) => Some(QueuedDrain {
                node_ids: parse_node_ids(&ids).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        10,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?,
                strategy: r.get(11)?,
            }),
            None => None,
        },
        error: r.get(12)?,
    })
}

/// `jobs.queued_drain`: node ids, comma-separated; anything else is a damaged catalog.
fn parse_node_ids(text: &str) -> std::result::Result<Vec<i64>, String> {
    text.split(',')
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| format!("jobs.queued_drain holds {text:?}, not node ids"))
        })
        .collect()
}

fn node_ids_text(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// "Drain node h:p" or "Drain nodes h:p, h2:p2", from the nodes table.
fn drain_description(tx: &Transaction<'_>, node_ids: &[i64]) -> Result<String> {
    let mut addrs = Vec::with_capacity(node_ids.len());
    for id in node_ids {
        let addr: Option<String> = tx
            .query_row(
                "SELECT host || ':' || port FROM nodes WHERE node_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        addrs.push(addr.unwrap_or_else(|| format!("#{id}")));
    }
    Ok(format!(
        "Drain node{} {}",
        if addrs.len() == 1 { "" } else { "s" },
        addrs.join(", ")
    ))
}

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        task_id: r.get(0)?,
        job_id: r.get(1)?,
        kind: r.get(2)?,
        state: r.get(3)?,
        phase: r.get(4)?,
        shard_id: r.get(5)?,
        colocation_id: r.get(6)?,
        shard_index: r.get(7)?,
        source_node_id: r.get(8)?,
        target_node_id: r.get(9)?,
        source: r.get(10)?,
        target: r.get(11)?,
        bytes_total: r.get::<_, i64>(12)?.max(0) as u64,
        bytes_done: r.get::<_, i64>(13)?.max(0) as u64,
        bytes_verified: r.get::<_, i64>(14)?.max(0) as u64,
        retries: r.get(15)?,
        not_before_ms: r.get(16)?,
        message: r.get(17)?,
        started_at_ms: r.get(18)?,
        finished_at_ms: r.get(19)?,
        context: r.get(20)?,
    })
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn active_job_tx(tx: &Transaction<'_>, types: &[JobType]) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('scheduled', 'running', 'cancelling', 'failing') AND job_type IN ({}) ORDER BY queued_drain IS NOT NULL, job_id DESC LIMIT 1",
        placeholders(types.len())
    );
    Ok(tx
        .query_row(&sql, rusqlite::params_from_iter(types), job_from_row)
        .optional()?)
}

/// A job's state from how many of its tasks are in each state, in Citus's order
/// (`UpdateBackgroundJob`).
pub(crate) fn job_state_from_tasks(count: impl Fn(TaskState) -> i64) -> JobState {
    let pending =
        count(TaskState::Blocked) + count(TaskState::Runnable) + count(TaskState::Running);
    let failed = count(TaskState::Error) + count(TaskState::Unscheduled);
    if count(TaskState::Cancelling) > 0 {
        JobState::Cancelling
    } else if count(TaskState::Cancelled) > 0 {
        JobState::Cancelled
    } else if pending + failed == 0 {
        JobState::Finished
    } else if failed > 0 {
        if pending > 0 {
            JobState::Failing
        } else {
            JobState::Failed
        }
    } else if count(TaskState::Running) > 0 || count(TaskState::Done) > 0 {
        JobState::Running
    } else {
        JobState::Scheduled
    }
}

/// Recomputes a job's state from its tasks.
fn refresh_job_state(tx: &Transaction<'_>, job_id: i64) -> Result<()> {
    let mut counts = HashMap::<TaskState, i64>::new();
    {
        let mut stmt =
            tx.prepare("SELECT state, count(*) FROM tasks WHERE job_id = ?1 GROUP BY state")?;
        let rows = stmt.query_map([job_id], |r| Ok((r.get::<_, TaskState>(0)?, r.get(1)?)))?;
        for row in rows {
            let (s, n) = row?;
            counts.insert(s, n);
        }
    }
    let state = job_state_from_tasks(|s| counts.get(&s).copied().unwrap_or(0));
    let now = now_ms();
    tx.execute(
        "UPDATE jobs SET state = ?2,
            started_at_ms = CASE WHEN started_at_ms IS NULL AND ?5 THEN ?3 ELSE started_at_ms END,
            finished_at_ms = CASE WHEN finished_at_ms IS NULL AND ?4 THEN ?3 ELSE finished_at_ms END
         WHERE job_id = ?1",
        params![
            job_id,
            state,
            now,
            state.is_terminal(),
            state != JobState::Scheduled
        ],
    )?;
    Ok(())
}

/// Marks every task that (transitively) depends on `task_id` as unscheduled.
fn unschedule_dependents(tx: &Transaction<'_>, task_id: i64) -> Result<()> {
    tx.execute(
        "WITH RECURSIVE dependents(id) AS (
             SELECT task_id FROM task_depends WHERE depends_on = ?1
             UNION SELECT d.task_id FROM task_depends d JOIN dependents ON d.depends_on = dependents.id)
         UPDATE tasks SET state = 'unscheduled'
         WHERE task_id IN (SELECT id FROM dependents) AND state IN ('blocked', 'runnable')",
        [task_id],
    )?;
    Ok(())
}

impl Catalog {
    /// Creates a job with its tasks in one transaction. When `exclusive_types` is not empty
    /// and a job of one of those types is active, nothing is created and the error names it.
    pub fn create_job(&self, job: &NewJob, exclusive_types: &[JobType]) -> Result<i64> {
        self.write(|tx| {
            if !exclusive_types.is_empty() {
                if let Some(j) = active_job_tx(tx, exclusive_types)? {
                    return Err(CatalogError::JobRunning { job_id: j.job_id });
                }
            }
            insert_job(tx, job)
        })
    }

    /// Starts the repair of damaged placements, in one transaction: drops the placements of
    /// `shard_ids` on `damaged_node` (their files are deleted by cleanup once no older query
    /// reads them) and creates `job`, whose copy task makes new placements there from a good
    /// replica. Refused when a shard has no other placement: its only copy is not dropped.
    pub fn create_repair_job(
        &self,
        shard_ids: &[i64],
        damaged_node: i64,
        job: &NewJob,
    ) -> Result<i64> {
        self.write(|tx| {
            let at = now_ms();
            for shard_id in shard_ids {
                let placement: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT p.placement_id, s.table_id FROM placements p JOIN shards s USING (shard_id)
                         WHERE p.shard_id = ?1 AND p.node_id = ?2",
                        params![shard_id, damaged_node],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((placement_id, table_id)) = placement else {
                    return Err(CatalogError::MoveConflict {
                        shard_id: *shard_id,
                        message: format!("no placement on node {damaged_node} to repair"),
                    });
                };
                let others: i64 = tx.query_row(
                    "SELECT count(*) FROM placements WHERE shard_id = ?1 AND node_id <> ?2",
                    params![shard_id, damaged_node],
                    |r| r.get(0),
                )?;
                if others == 0 {
                    return Err(CatalogError::MoveConflict {
                        shard_id: *shard_id,
                        message: "its only placement is damaged; there is nothing to repair it from".into(),
                    });
                }
                tx.execute(
                    "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason)
                     SELECT ?1, ?2, ?3, name, ?4, ?5 FROM files WHERE placement_id = ?6",
                    params![
                        damaged_node,
                        table_id,
                        shard_id,
                        at,
                        format!("repair:{shard_id}"),
                        placement_id
                    ],
                )?;
                tx.execute("DELETE FROM files WHERE placement_id = ?1", [placement_id])?;
                tx.execute("DELETE FROM placements WHERE placement_id = ?1", [placement_id])?;
            }
            insert_job(tx, job)
        })
    }

    /// Queues a drain of `node_ids` behind the active job of `types`, in one transaction: it
    /// joins a drain job already waiting there (one plan drains all its nodes), or becomes
    /// a new job (with `job`'s settings and no tasks) that the scheduler plans when the jobs
    /// ahead of it have ended. With no active job, nothing is written.
    pub fn queue_drain(
        &self,
        job: &NewJob,
        node_ids: &[i64],
        strategy: Option<&str>,
        types: &[JobType],
    ) -> Result<DrainQueued> {
        self.write(|tx| {
            let waiting = tx
                .query_row(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE queued_drain IS NOT NULL AND state = 'scheduled' ORDER BY job_id LIMIT 1"
                    ),
                    [],
                    job_from_row,
                )
                .optional()?;
            if let Some(waiting) = waiting {
                let mut ids = waiting.queued.map(|q| q.node_ids).unwrap_or_default();
                for id in node_ids {
                    if !ids.contains(id) {
                        ids.push(*id);
                    }
                }
                tx.execute(
                    "UPDATE jobs SET queued_drain = ?2, description = ?3 WHERE job_id = ?1",
                    params![waiting.job_id, node_ids_text(&ids), drain_description(tx, &ids)?],
                )?;
                return Ok(DrainQueued::Merged {
                    job_id: waiting.job_id,
                });
            }
            let Some(ahead) = active_job_tx(tx, types)? else {
                return Ok(DrainQueued::NothingAhead);
            };
            tx.execute(
                "INSERT INTO jobs (job_type, description, transfer_mode, max_bandwidth_mb, max_concurrent_moves, created_at_ms, queued_drain, queued_strategy) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    job.job_type,
                    drain_description(tx, node_ids)?,
                    job.transfer_mode,
                    job.max_bandwidth_mb,
                    job.max_concurrent_moves,
                    now_ms(),
                    node_ids_text(node_ids),
                    strategy
                ],
            )?;
            Ok(DrainQueued::Queued {
                job_id: tx.last_insert_rowid(),
                behind: ahead.job_id,
            })
        })
    }

    /// The oldest queued drain, once no job of `types` that has its tasks is still active.
    pub fn due_queued_job(&self, types: &[JobType]) -> Result<Option<Job>> {
        self.read(|tx| {
            let sql = format!(
                "SELECT count(*) FROM jobs WHERE state IN ('scheduled', 'running', 'cancelling', 'failing') AND queued_drain IS NULL AND job_type IN ({})",
                placeholders(types.len())
            );
            let ahead: i64 = tx.query_row(&sql, rusqlite::params_from_iter(types), |r| r.get(0))?;
            if ahead > 0 {
                return Ok(None);
            }
            Ok(tx
                .query_row(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE queued_drain IS NOT NULL AND state = 'scheduled' ORDER BY job_id LIMIT 1"
                    ),
                    [],
                    job_from_row,
                )
                .optional()?)
        })
    }

    /// Gives a queued job its tasks, planned for `planned_for` (the nodes it listed when the
    /// plan was made): it runs from here like any other job, and with no tasks it is
    /// finished. False if it is no longer queued for exactly those nodes (cancelled, or
    /// another drain joined it meanwhile: plan it again).
    pub fn plan_queued_job(&self, job_id: i64, planned_for: &[i64], job: &NewJob) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE jobs SET queued_drain = NULL, queued_strategy = NULL, description = ?2
                 WHERE job_id = ?1 AND queued_drain = ?3 AND state = 'scheduled'",
                params![job_id, job.description, node_ids_text(planned_for)],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_tasks(tx, job_id, job)?;
            Ok(true)
        })
    }

    /// A queued job whose plan was refused when it came to start: failed, with the reason.
    pub fn fail_queued_job(&self, job_id: i64, error: &str) -> Result<()> {
        self.write(|tx| {
            let now = now_ms();
            tx.execute(
                "UPDATE jobs SET state = 'failed', queued_drain = NULL, queued_strategy = NULL, error = ?2,
                     started_at_ms = coalesce(started_at_ms, ?3), finished_at_ms = ?3
                 WHERE job_id = ?1 AND queued_drain IS NOT NULL AND state = 'scheduled'",
                params![job_id, error, now],
            )?;
            Ok(())
        })
    }

    /// The newest job of these types that has not ended; one that has its tasks comes before a
    /// drain queued behind it (which moves nothing yet).
    pub fn active_job(&self, types: &[JobType]) -> Result<Option<Job>> {
        self.read(|tx| active_job_tx(tx, types))
    }

    /// The newest job of these types, whatever its state; a drain still queued comes after
    /// the job it waits for (whose progress is what moves).
    pub fn latest_job(&self, types: &[JobType]) -> Result<Option<Job>> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE job_type IN ({}) ORDER BY queued_drain IS NOT NULL, job_id DESC LIMIT 1",
                placeholders(types.len())
            );
            Ok(tx
                .query_row(&sql, rusqlite::params_from_iter(types), job_from_row)
                .optional()?)
        })
    }

    pub fn job(&self, job_id: i64) -> Result<Job> {
        self.read(|tx| {
            tx.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1"),
                [job_id],
                job_from_row,
            )
            .optional()?
            .ok_or(CatalogError::JobNotFound { job_id })
        })
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY job_id"))?;
            let rows = stmt.query_map([], job_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// The tasks of one job, or of every job, in task order.
    pub fn tasks(&self, job_id: Option<i64>) -> Result<Vec<Task>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE ?1 IS NULL OR job_id = ?1 ORDER BY task_id"
            ))?;
            let rows = stmt.query_map([job_id], task_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    pub fn task(&self, task_id: i64) -> Result<Option<Task>> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1"),
                    [task_id],
                    task_from_row,
                )
                .optional()?)
        })
    }

    /// Tasks that may start now: runnable, past their backoff, every dependency done.
    pub fn runnable_tasks(&self) -> Result<Vec<Task>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks t WHERE state = 'runnable'
                   AND (not_before_ms IS NULL OR not_before_ms <= ?1)
                   AND NOT EXISTS (SELECT 1 FROM task_depends d JOIN tasks o ON o.task_id = d.depends_on
                                   WHERE d.task_id = t.task_id AND o.state <> 'done')
                 ORDER BY task_id"
            ))?;
            let rows = stmt.query_map([now_ms()], task_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Tasks by state, with the sum of their `bytes_total`, in one pass over the table (for
    /// `/metrics`, which must not read every task a cluster keeps as history on each scrape).
    pub fn task_totals(&self) -> Result<HashMap<TaskState, (u64, u64)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT state, count(*), coalesce(sum(bytes_total), 0) FROM tasks GROUP BY state",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, TaskState>(0)?,
                    (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64),
                ))
            })?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Tasks that are not finished: blocked, runnable, running or cancelling.
    pub fn unfinished_tasks(&self) -> Result<Vec<Task>> {
        self.tasks_in_states(&[
            TaskState::Blocked,
            TaskState::Runnable,
            TaskState::Running,
            TaskState::Cancelling,
        ])
    }

    /// Tasks a coordinator was running (or cancelling) when it stopped.
    pub fn unfinished_running_tasks(&self) -> Result<Vec<Task>> {
        self.tasks_in_states(&[TaskState::Running, TaskState::Cancelling])
    }

    /// Tasks in any of `states`, by id (through the `tasks_by_state` index).
    fn tasks_in_states(&self, states: &[TaskState]) -> Result<Vec<Task>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ({}) ORDER BY task_id",
                placeholders(states.len())
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(states), task_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// runnable → running. False if the task is no longer runnable (cancelled meanwhile).
    pub fn start_task(&self, task_id: i64) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE tasks SET state = 'running', started_at_ms = coalesce(started_at_ms, ?2)
                 WHERE task_id = ?1 AND state = 'runnable'",
                params![task_id, now_ms()],
            )?;
            if n == 1 {
                let job_id: i64 = tx.query_row(
                    "SELECT job_id FROM tasks WHERE task_id = ?1",
                    [task_id],
                    |r| r.get(0),
                )?;
                refresh_job_state(tx, job_id)?;
            }
            Ok(n == 1)
        })
    }

    /// Persists the move state machine's state (and context, when given). A progress record
    /// (see `WriteKind::Progress`), not synced on its own: every side effect of a move is
    /// authorised by a synced record (the target's cleanup records, the switch), and a state
    /// lost with the machine resumes the move from an earlier one.
    pub fn set_task_phase(
        &self,
        task_id: i64,
        phase: MovePhase,
        context: Option<&str>,
    ) -> Result<()> {
        self.write_progress(|tx| {
            tx.execute(
                "UPDATE tasks SET phase = ?2, context = coalesce(?3, context) WHERE task_id = ?1",
                params![task_id, phase, context],
            )?;
            Ok(())
        })
    }

    /// Points a move that has not begun copying at another target (its planned one no longer
    /// takes shards). False if the task has gone past `preparing`.
    pub fn retarget_task(&self, task_id: i64, node_id: i64, addr: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE tasks SET target_node_id = ?2, target = ?3
                 WHERE task_id = ?1 AND phase IN ('planned', 'preparing')",
                params![task_id, node_id, addr],
            )?;
            Ok(n == 1)
        })
    }

    /// Records a task's byte counts: a progress record, as [`Self::set_task_phase`].
    pub fn set_task_progress(
        &self,
        task_id: i64,
        bytes_total: u64,
        bytes_done: u64,
        bytes_verified: u64,
    ) -> Result<()> {
        self.write_progress(|tx| {
            tx.execute(
                "UPDATE tasks SET bytes_total = ?2, bytes_done = ?3, bytes_verified = ?4 WHERE task_id = ?1",
                params![task_id, bytes_total as i64, bytes_done as i64, bytes_verified as i64],
            )?;
            Ok(())
        })
    }

    /// Sets a task's message without changing its state (a note shown in `shoal.tasks`).
    pub fn set_task_message(&self, task_id: i64, message: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE tasks SET message = ?2 WHERE task_id = ?1",
                params![task_id, message],
            )?;
            Ok(())
        })
    }

    /// A task ends: `done`, `cancelled` (after a clean rollback) or `error` (gave up; its
    /// dependents become unscheduled). Blocked dependents of a done task become runnable.
    pub fn end_task(&self, task_id: i64, state: TaskState, message: &str) -> Result<()> {
        if !matches!(
            state,
            TaskState::Done | TaskState::Cancelled | TaskState::Error
        ) {
            return Err(CatalogError::Invalid {
                message: format!("a task cannot end as {state}"),
            });
        }
        self.write(|tx| {
            let job_id: i64 = tx
                .query_row("SELECT job_id FROM tasks WHERE task_id = ?1", [task_id], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or_else(|| CatalogError::Invalid {
                    message: format!("task {task_id} does not exist"),
                })?;
            tx.execute(
                "UPDATE tasks SET state = ?2, message = ?3, finished_at_ms = ?4, not_before_ms = NULL WHERE task_id = ?1",
                params![task_id, state, message, now_ms()],
            )?;
            match state {
                TaskState::Done => {
                    tx.execute(
                        "UPDATE tasks SET state = 'runnable'
                         WHERE state = 'blocked' AND task_id IN (SELECT task_id FROM task_depends WHERE depends_on = ?1)
                           AND NOT EXISTS (SELECT 1 FROM task_depends d JOIN tasks o ON o.task_id = d.depends_on
                                           WHERE d.task_id = tasks.task_id AND o.state <> 'done')",
                        [task_id],
                    )?;
                }
                TaskState::Error => unschedule_dependents(tx, task_id)?,
                _ => {}
            }
            refresh_job_state(tx, job_id)?;
            Ok(())
        })
    }

    /// A failed attempt that will be retried: back to runnable after `not_before_ms`, with the
    /// error kept as the task's message and its state machine reset.
    pub fn retry_task(&self, task_id: i64, message: &str, not_before_ms: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE tasks SET state = 'runnable', phase = 'planned', retries = retries + 1,
                        message = ?2, not_before_ms = ?3, context = '{}'
                 WHERE task_id = ?1 AND state = 'running'",
                params![task_id, message, not_before_ms],
            )?;
            Ok(())
        })
    }

    /// A move stopped before its switch for a reason that passes (writers held its group):
    /// back to runnable after `not_before_ms` like [`Self::retry_task`], but its phase,
    /// context and the target's staged copy stay, so the retry resumes where it stopped.
    pub fn defer_task(&self, task_id: i64, message: &str, not_before_ms: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE tasks SET state = 'runnable', retries = retries + 1,
                        message = ?2, not_before_ms = ?3
                 WHERE task_id = ?1 AND state = 'running'",
                params![task_id, message, not_before_ms],
            )?;
            Ok(())
        })
    }

    /// Cancels a job: tasks not started become cancelled, running ones cancelling (their
    /// runner rolls back, then marks them cancelled), and so do waiting ones that hold a
    /// staged copy from an earlier attempt ([`Self::defer_task`]: the scheduler runs them
    /// once more to roll back). Returns how many are still to roll back.
    pub fn cancel_job(&self, job_id: i64) -> Result<usize> {
        self.write(|tx| {
            let exists: Option<i64> = tx
                .query_row("SELECT job_id FROM jobs WHERE job_id = ?1", [job_id], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_none() {
                return Err(CatalogError::JobNotFound { job_id });
            }
            // A queued drain has no tasks yet: it just never starts.
            let queued = tx.execute(
                "UPDATE jobs SET state = 'cancelled', queued_drain = NULL, queued_strategy = NULL, finished_at_ms = ?2
                 WHERE job_id = ?1 AND queued_drain IS NOT NULL AND state = 'scheduled'",
                params![job_id, now_ms()],
            )?;
            if queued > 0 {
                return Ok(0);
            }
            let running = tx.execute(
                "UPDATE tasks SET state = 'cancelling'
                 WHERE job_id = ?1 AND (state = 'running' OR (state = 'runnable' AND phase <> 'planned'))",
                [job_id],
            )?;
            tx.execute(
                "UPDATE tasks SET state = 'cancelled', finished_at_ms = ?2
                 WHERE job_id = ?1 AND state IN ('blocked', 'runnable')",
                params![job_id, now_ms()],
            )?;
            refresh_job_state(tx, job_id)?;
            Ok(running)
        })
    }

    // ---- moves -------------------------------------------------------------------------

    /// The shards of one shard group — every shard with `shard_index` in the tables of
    /// `colocation_id`, or just `shard_id` when the table is in no colocation group — with the
    /// files of their placement on `source_node`, read in one transaction.
    pub fn group_files(
        &self,
        colocation_id: Option<i64>,
        shard_index: i64,
        shard_id: i64,
        source_node: i64,
        target_node: i64,
    ) -> Result<Vec<GroupShardFiles>> {
        self.read(|tx| {
            let mut shards: Vec<(i64, String, i64)> = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT t.table_id, t.name, s.shard_id FROM shards s JOIN tables t USING (table_id)
                     WHERE (?1 IS NOT NULL AND t.colocation_id = ?1 AND s.shard_index = ?2)
                        OR (?1 IS NULL AND s.shard_id = ?3)
                     ORDER BY s.shard_id",
                )?;
                let rows = stmt.query_map(params![colocation_id, shard_index, shard_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
                for row in rows {
                    shards.push(row?);
                }
            }
            let mut out = Vec::with_capacity(shards.len());
            for (table_id, table_name, shard_id) in shards {
                let source_placement: Option<i64> = tx
                    .query_row(
                        "SELECT placement_id FROM placements WHERE shard_id = ?1 AND node_id = ?2",
                        params![shard_id, source_node],
                        |r| r.get(0),
                    )
                    .optional()?;
                let on_target: Option<i64> = tx
                    .query_row(
                        "SELECT placement_id FROM placements WHERE shard_id = ?1 AND node_id = ?2",
                        params![shard_id, target_node],
                        |r| r.get(0),
                    )
                    .optional()?;
                let mut files = Vec::new();
                if let Some(pid) = source_placement {
                    let mut stmt = tx.prepare(
                        "SELECT name, bytes, rows, checksum FROM files WHERE placement_id = ?1 ORDER BY file_id",
                    )?;
                    let rows = stmt.query_map([pid], |r| {
                        Ok(FileRecord {
                            name: r.get(0)?,
                            bytes: r.get::<_, i64>(1)?.max(0) as u64,
                            rows: r.get::<_, i64>(2)?.max(0) as u64,
                            checksum: r.get::<_, i64>(3)? as u32,
                        })
                    })?;
                    for f in rows {
                        files.push(f?);
                    }
                }
                out.push(GroupShardFiles {
                    table_id,
                    table_name,
                    shard_id,
                    source_placement,
                    on_target: on_target.is_some(),
                    files,
                });
            }
            Ok(out)
        })
    }

    /// Cleanup records (due or deferred, move-target records excluded) that would delete files
    /// of these shards on `node_id`. A move must not land there before they ran: the files it
    /// copies keep their names, and the old deferred delete would remove the new copy.
    pub fn pending_cleanup_for(
        &self,
        node_id: i64,
        shard_ids: &[i64],
    ) -> Result<Vec<CleanupRecord>> {
        self.read(|tx| {
            let mut out = Vec::new();
            let mut stmt = tx.prepare(
                "SELECT cleanup_id, node_id, table_id, shard_id, file_name, not_before_ms FROM cleanup
                 WHERE node_id = ?1 AND shard_id = ?2 AND reason NOT LIKE 'move-target:%' ORDER BY cleanup_id",
            )?;
            for s in shard_ids {
                let rows = stmt.query_map(params![node_id, s], cleanup_from_row)?;
                for rec in rows {
                    out.push(rec?);
                }
            }
            Ok(out)
        })
    }

    /// Writes (idempotently) the records that say "on failure, drop these shards' directories
    /// on the target". They are never due by time: a rollback runs them, the switch deletes
    /// them. While they exist, orphan collection leaves the target's copies alone.
    pub fn add_move_target_records(
        &self,
        task_id: i64,
        node_id: i64,
        shards: &[(i64, i64)],
    ) -> Result<()> {
        let reason = move_target_reason(task_id);
        self.write(|tx| {
            for (table_id, shard_id) in shards {
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT cleanup_id FROM cleanup WHERE reason = ?1 AND node_id = ?2 AND shard_id = ?3",
                        params![reason, node_id, shard_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_none() {
                    tx.execute(
                        "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason) VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
                        params![node_id, table_id, shard_id, i64::MAX, reason],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// The on-failure records of a move (see [`Self::add_move_target_records`]).
    pub fn move_target_records(&self, task_id: i64) -> Result<Vec<CleanupRecord>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT cleanup_id, node_id, table_id, shard_id, file_name, not_before_ms FROM cleanup WHERE reason = ?1 ORDER BY cleanup_id",
            )?;
            let rows = stmt.query_map([move_target_reason(task_id)], cleanup_from_row)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Makes a rolled-back move's on-failure records due now, for the cleanup loop to run
    /// once the target answers (the rollback could not reach it).
    pub fn release_move_target_records(&self, task_id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE cleanup SET not_before_ms = ?2, reason = ?3 WHERE reason = ?1",
                params![
                    move_target_reason(task_id),
                    now_ms(),
                    format!("move-rollback:{task_id}")
                ],
            )?;
            Ok(())
        })
    }

    /// The table a shard belongs to, if the shard still exists.
    pub fn shard_table_id(&self, shard_id: i64) -> Result<Option<i64>> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT table_id FROM shards WHERE shard_id = ?1",
                    [shard_id],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    /// The switch of a move, in one transaction: checks that every source placement still
    /// holds exactly the files that were copied, creates the target placements with those
    /// files, and — for a move, not a copy — deletes the source placements and turns their
    /// files into cleanup records due once every older query has ended. The target's
    /// on-failure records go, and the task's phase becomes `switched`. Idempotent: a group
    /// already on the target (and gone from the source) is left as it is.
    pub fn switch_placements(
        &self,
        task_id: i64,
        keep_source: bool,
        source_node: i64,
        target_node: i64,
        copied: &[GroupShardFiles],
    ) -> Result<()> {
        self.write(|tx| {
            let at = now_ms();
            for g in copied {
                let on_target: Option<i64> = tx
                    .query_row(
                        "SELECT placement_id FROM placements WHERE shard_id = ?1 AND node_id = ?2",
                        params![g.shard_id, target_node],
                        |r| r.get(0),
                    )
                    .optional()?;
                let on_source: Option<i64> = tx
                    .query_row(
                        "SELECT placement_id FROM placements WHERE shard_id = ?1 AND node_id = ?2",
                        params![g.shard_id, source_node],
                        |r| r.get(0),
                    )
                    .optional()?;
                if on_target.is_some() {
                    if keep_source || on_source.is_none() {
                        continue; // switched before
                    }
                    return Err(CatalogError::MoveConflict {
                        shard_id: g.shard_id,
                        message: "the target already holds a placement".into(),
                    });
                }
                let Some(source_pid) = on_source else {
                    // The table was dropped meanwhile: nothing to hand over.
                    let shard_exists: Option<i64> = tx
                        .query_row(
                            "SELECT shard_id FROM shards WHERE shard_id = ?1",
                            [g.shard_id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if shard_exists.is_none() {
                        continue;
                    }
                    return Err(CatalogError::MoveConflict {
                        shard_id: g.shard_id,
                        message: "the source placement is gone".into(),
                    });
                };
                let mut current: Vec<String> = {
                    let mut stmt =
                        tx.prepare("SELECT name FROM files WHERE placement_id = ?1 ORDER BY name")?;
                    let rows = stmt.query_map([source_pid], |r| r.get(0))?;
                    rows.collect::<std::result::Result<_, _>>()?
                };
                current.sort();
                let mut expected: Vec<String> = g.files.iter().map(|f| f.name.clone()).collect();
                expected.sort();
                if current != expected {
                    return Err(CatalogError::MoveConflict {
                        shard_id: g.shard_id,
                        message: format!(
                            "the source lists {} files, {} were copied",
                            current.len(),
                            expected.len()
                        ),
                    });
                }
                tx.execute(
                    "INSERT INTO placements (shard_id, node_id) VALUES (?1, ?2)",
                    params![g.shard_id, target_node],
                )?;
                let target_pid = tx.last_insert_rowid();
                for f in &g.files {
                    insert_file(tx, target_pid, f, at)?;
                }
                if !keep_source {
                    tx.execute(
                        "INSERT INTO cleanup (node_id, table_id, shard_id, file_name, not_before_ms, reason)
                         SELECT ?1, ?2, ?3, name, ?4, ?5 FROM files WHERE placement_id = ?6",
                        params![
                            source_node,
                            g.table_id,
                            g.shard_id,
                            at,
                            format!("move-source:{task_id}"),
                            source_pid
                        ],
                    )?;
                    tx.execute("DELETE FROM placements WHERE placement_id = ?1", [source_pid])?;
                }
                tx.execute(
                    "UPDATE shards SET state = 'active' WHERE shard_id = ?1",
                    [g.shard_id],
                )?;
            }
            tx.execute(
                "DELETE FROM cleanup WHERE reason = ?1",
                [move_target_reason(task_id)],
            )?;
            tx.execute(
                "UPDATE tasks SET phase = 'switched' WHERE task_id = ?1",
                [task_id],
            )?;
            Ok(())
        })
    }

    /// Placements that keep a node from being removed: all of them except reference-table
    /// placements that another node also holds (those are simply dropped with the node, as
    /// Citus does).
    pub fn placements_blocking_removal(&self, node_id: i64) -> Result<i64> {
        self.read(|tx| {
            Ok(tx.query_row(
                "SELECT count(*) FROM placements p JOIN shards s USING (shard_id) JOIN tables t USING (table_id)
                 WHERE p.node_id = ?1
                   AND NOT (t.kind = 'reference'
                            AND EXISTS (SELECT 1 FROM placements o WHERE o.shard_id = p.shard_id AND o.node_id <> ?1))",
                [node_id],
                |r| r.get(0),
            )?)
        })
    }

    /// `remove_node(..., force => true)`: drops the node's placements and the node. Shards
    /// left without any placement become `lost`; their ids are returned (with table names).
    pub fn force_remove_node(&self, node_id: i64) -> Result<Vec<(String, i64)>> {
        self.write(|tx| {
            let mut lost: Vec<(String, i64)> = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT t.name, s.shard_id FROM placements p JOIN shards s USING (shard_id) JOIN tables t USING (table_id)
                     WHERE p.node_id = ?1
                       AND NOT EXISTS (SELECT 1 FROM placements o WHERE o.shard_id = p.shard_id AND o.node_id <> ?1)
                     ORDER BY s.shard_id",
                )?;
                let rows = stmt.query_map([node_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                for row in rows {
                    lost.push(row?);
                }
            }
            for (_, shard_id) in &lost {
                tx.execute("UPDATE shards SET state = 'lost' WHERE shard_id = ?1", [shard_id])?;
            }
            tx.execute("DELETE FROM placements WHERE node_id = ?1", [node_id])?;
            // Nothing can be deleted on a removed node; its records would block later moves.
            tx.execute("DELETE FROM cleanup WHERE node_id = ?1", [node_id])?;
            tx.execute("DELETE FROM nodes WHERE node_id = ?1", [node_id])?;
            Ok(lost)
        })
    }
}

/// Inserts a job and its tasks (runnable, or blocked on earlier tasks of the same job).
fn insert_job(tx: &Transaction<'_>, job: &NewJob) -> Result<i64> {
    tx.execute(
        "INSERT INTO jobs (job_type, description, transfer_mode, max_bandwidth_mb, max_concurrent_moves, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            job.job_type,
            job.description,
            job.transfer_mode,
            job.max_bandwidth_mb,
            job.max_concurrent_moves,
            now_ms()
        ],
    )?;
    let job_id = tx.last_insert_rowid();
    insert_tasks(tx, job_id, job)?;
    Ok(job_id)
}

/// Inserts `job`'s tasks into job `job_id` and sets the job's state from them.
fn insert_tasks(tx: &Transaction<'_>, job_id: i64, job: &NewJob) -> Result<()> {
    let mut ids: Vec<i64> = Vec::with_capacity(job.tasks.len());
    for t in &job.tasks {
        let state = if t.depends_on.is_empty() {
            TaskState::Runnable
        } else {
            TaskState::Blocked
        };
        tx.execute(
            "INSERT INTO tasks (job_id, kind, state, shard_id, colocation_id, shard_index, source_node_id, target_node_id, source, target, bytes_total) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                job_id,
                t.kind,
                state,
                t.shard_id,
                t.colocation_id,
                t.shard_index,
                t.source_node_id,
                t.target_node_id,
                t.source,
                t.target,
                t.bytes_total as i64
            ],
        )?;
        let task_id = tx.last_insert_rowid();
        for dep in &t.depends_on {
            let on = ids
                .get(*dep)
                .copied()
                .ok_or_else(|| CatalogError::Invalid {
                    message: format!("task depends on task #{dep}, which comes later"),
                })?;
            tx.execute(
                "INSERT OR IGNORE INTO task_depends (task_id, depends_on) VALUES (?1, ?2)",
                params![task_id, on],
            )?;
        }
        ids.push(task_id);
    }
    refresh_job_state(tx, job_id)
}

#[cfg(test)]
mod tests;
