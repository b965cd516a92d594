use super::super::Catalog;
use crate::error::CatalogError;
use crate::model::*;
use crate::sql_type::SqlType;
use crate::states::*;

fn file(name: &str) -> FileRecord {
    FileRecord {
        name: name.into(),
        bytes: 100,
        rows: 10,
        checksum: 7,
    }
}

/// Two nodes and a one-shard table on the first, with two files.
fn setup() -> (Catalog, i64, i64, i64) {
    let c = Catalog::open_in_memory().unwrap();
    let (n1, _) = c.add_node("w1", 7400).unwrap();
    let (n2, _) = c.add_node("w2", 7400).unwrap();
    c.create_table(&NewTable {
        name: "t".into(),
        kind: TableKind::SingleShard,
        distribution_column: None,
        colocation_id: None,
        columns: vec![ColumnDef::new("id", SqlType::BigInt, false)],
        shards: vec![NewShard {
            shard_id: 5,
            shard_index: 0,
            hash_min: i32::MIN,
            hash_max: i32::MAX,
            placements: vec![(n1, vec![file("a.parquet"), file("b.parquet")])],
        }],
        pending_txn: None,
    })
    .unwrap();
    (c, n1, n2, 5)
}

fn move_task(shard: i64, from: i64, to: i64, depends_on: Vec<usize>) -> NewTask {
    NewTask {
        kind: TaskKind::Move,
        shard_id: shard,
        colocation_id: None,
        shard_index: 0,
        source_node_id: from,
        target_node_id: to,
        source: "w1:7400".into(),
        target: "w2:7400".into(),
        bytes_total: 200,
        depends_on,
    }
}

fn job(tasks: Vec<NewTask>) -> NewJob {
    NewJob {
        job_type: JobType::Rebalance,
        description: "test".into(),
        transfer_mode: TransferMode::Auto,
        max_bandwidth_mb: None,
        max_concurrent_moves: None,
        tasks,
    }
}

#[test]
fn job_state_follows_its_tasks_as_citus_derives_it() {
    let (c, n1, n2, s) = setup();
    let id = c
        .create_job(
            &job(vec![
                move_task(s, n1, n2, vec![]),
                move_task(s, n2, n1, vec![0]),
            ]),
            &[JobType::Rebalance],
        )
        .unwrap();
    assert_eq!(c.job(id).unwrap().state, JobState::Scheduled);
    // Only the first is runnable; the second waits for it.
    let runnable = c.runnable_tasks().unwrap();
    assert_eq!(runnable.len(), 1);
    let (t1, t2) = (runnable[0].task_id, runnable[0].task_id + 1);
    assert_eq!(c.task(t2).unwrap().unwrap().state, TaskState::Blocked);
    // A second rebalance is refused while this one is active.
    assert!(matches!(
        c.create_job(&job(vec![]), &[JobType::Rebalance, JobType::Drain]),
        Err(CatalogError::JobRunning { job_id }) if job_id == id
    ));
    assert!(c.start_task(t1).unwrap());
    assert!(
        !c.start_task(t1).unwrap(),
        "a running task cannot start twice"
    );
    let j = c.job(id).unwrap();
    assert_eq!(j.state, JobState::Running);
    assert!(j.started_at_ms.is_some());
    // A retry keeps the error and resets the state machine.
    c.set_task_phase(t1, MovePhase::Copying, None).unwrap();
    c.retry_task(t1, "boom", 0).unwrap();
    let t = c.task(t1).unwrap().unwrap();
    assert_eq!(
        (
            t.state.as_str(),
            t.phase.as_str(),
            t.retries,
            t.message.as_str()
        ),
        ("runnable", "planned", 1, "boom")
    );
    assert!(c.start_task(t1).unwrap());
    c.end_task(t1, TaskState::Done, "").unwrap();
    assert_eq!(
        c.task(t2).unwrap().unwrap().state,
        TaskState::Runnable,
        "its dependent is unblocked"
    );
    assert!(c.start_task(t2).unwrap());
    c.end_task(t2, TaskState::Error, "gave up").unwrap();
    let j = c.job(id).unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.is_terminal() && j.finished_at_ms.is_some());
}

#[test]
fn a_failed_task_unschedules_its_dependents_and_the_job_is_failing_then_failed() {
    let (c, n1, n2, s) = setup();
    let id = c
        .create_job(
            &job(vec![
                move_task(s, n1, n2, vec![]),
                move_task(s, n2, n1, vec![0]),
                move_task(s, n1, n2, vec![1]),
                move_task(s, n1, n2, vec![]),
            ]),
            &[],
        )
        .unwrap();
    let tasks = c.tasks(Some(id)).unwrap();
    assert_eq!(
        c.unfinished_tasks().unwrap().len(),
        4,
        "runnable and blocked ones"
    );
    c.start_task(tasks[0].task_id).unwrap();
    c.start_task(tasks[3].task_id).unwrap();
    c.end_task(tasks[0].task_id, TaskState::Error, "x").unwrap();
    let states: Vec<&str> = c
        .tasks(Some(id))
        .unwrap()
        .into_iter()
        .map(|t| t.state.as_str())
        .collect();
    assert_eq!(states, ["error", "unscheduled", "unscheduled", "running"]);
    let unfinished = |c: &Catalog| -> Vec<i64> {
        c.unfinished_tasks()
            .unwrap()
            .iter()
            .map(|t| t.task_id)
            .collect()
    };
    assert_eq!(unfinished(&c), [tasks[3].task_id]);
    assert_eq!(c.job(id).unwrap().state, JobState::Failing);
    c.end_task(tasks[3].task_id, TaskState::Done, "").unwrap();
    assert_eq!(c.job(id).unwrap().state, JobState::Failed);
    assert!(unfinished(&c).is_empty());
    let totals = c.task_totals().unwrap();
    assert_eq!(totals.len(), 3, "{totals:?}");
    assert_eq!(totals[&TaskState::Error], (1, 200));
    assert_eq!(totals[&TaskState::Unscheduled], (2, 400));
    assert_eq!(totals[&TaskState::Done], (1, 200));
}

#[test]
fn cancel_marks_waiting_tasks_cancelled_and_running_ones_cancelling() {
    let (c, n1, n2, s) = setup();
    let id = c
        .create_job(
            &job(vec![
                move_task(s, n1, n2, vec![]),
                move_task(s, n2, n1, vec![0]),
            ]),
            &[],
        )
        .unwrap();
    let tasks = c.tasks(Some(id)).unwrap();
    c.start_task(tasks[0].task_id).unwrap();
    assert_eq!(c.cancel_job(id).unwrap(), 1);
    assert_eq!(c.job(id).unwrap().state, JobState::Cancelling);
    assert_eq!(c.unfinished_running_tasks().unwrap().len(), 1);
    c.end_task(tasks[0].task_id, TaskState::Cancelled, "rolled back")
        .unwrap();
    assert_eq!(c.job(id).unwrap().state, JobState::Cancelled);
    assert!(matches!(
        c.cancel_job(999),
        Err(CatalogError::JobNotFound { job_id: 999 })
    ));
}

#[test]
fn switch_moves_the_placement_and_defers_the_source_files() {
    let (c, n1, n2, s) = setup();
    let id = c
        .create_job(&job(vec![move_task(s, n1, n2, vec![])]), &[])
        .unwrap();
    let task = c.tasks(Some(id)).unwrap()[0].task_id;
    c.add_move_target_records(task, n2, &[(1, s)]).unwrap();
    c.add_move_target_records(task, n2, &[(1, s)]).unwrap();
    assert_eq!(c.move_target_records(task).unwrap().len(), 1, "idempotent");
    assert!(
        c.due_cleanup().unwrap().is_empty(),
        "on-failure records are never due by time"
    );
    let group = c.group_files(None, 0, s, n1, n2).unwrap();
    assert_eq!(group.len(), 1);
    assert_eq!(group[0].files.len(), 2);
    // A file committed after the copy makes the switch refuse.
    let mut stale = group.clone();
    stale[0].files.pop();
    assert!(matches!(
        c.switch_placements(task, false, n1, n2, &stale),
        Err(CatalogError::MoveConflict { .. })
    ));
    c.switch_placements(task, false, n1, n2, &group).unwrap();
    let snap = c.snapshot("t").unwrap();
    let placements: Vec<i64> = snap.shards[0]
        .placements
        .iter()
        .map(|p| p.node_id)
        .collect();
    assert_eq!(placements, vec![n2], "exactly one placement, on the target");
    assert_eq!(snap.shards[0].placements[0].files.len(), 2);
    assert_eq!(c.task(task).unwrap().unwrap().phase, MovePhase::Switched);
    assert!(c.move_target_records(task).unwrap().is_empty());
    let deferred = c.node_cleanup_names(n1).unwrap();
    assert_eq!(
        deferred.len(),
        2,
        "the source's files are deferred deletes: {deferred:?}"
    );
    // Idempotent: a second switch after a crash changes nothing.
    c.switch_placements(task, false, n1, n2, &group).unwrap();
    assert_eq!(c.snapshot("t").unwrap().shards[0].placements.len(), 1);
    // Moving back must first wait for those deletes.
    assert_eq!(c.pending_cleanup_for(n1, &[s]).unwrap().len(), 2);
}

#[test]
fn force_remove_marks_unreplicated_shards_lost() {
    let (c, n1, _n2, s) = setup();
    let lost = c.force_remove_node(n1).unwrap();
    assert_eq!(lost, vec![("t".to_string(), s)]);
    let snap = c.snapshot("t").unwrap();
    assert_eq!(snap.shards[0].state, ShardState::Lost);
    assert!(snap.shards[0].placements.is_empty());
    assert!(c.list_nodes().unwrap().iter().all(|n| n.node_id != n1));
}

/// A drain asked for while a job runs waits behind it; later drains join the waiting one;
/// it gets its tasks only once nothing is ahead of it, and a cancelled one never starts.
#[test]
fn drains_queue_behind_the_running_job_and_merge_while_waiting() {
    let (c, n1, n2, s) = setup();
    let (n3, _) = c.add_node("w3", 7400).unwrap();
    let types = [JobType::Rebalance, JobType::Drain];
    let drain = |n: i64| {
        c.queue_drain(
            &NewJob {
                job_type: JobType::Drain,
                ..job(vec![])
            },
            &[n],
            Some("by_shard_count"),
            &types,
        )
        .unwrap()
    };
    assert_eq!(drain(n2), DrainQueued::NothingAhead);
    assert!(
        c.jobs().unwrap().is_empty(),
        "nothing ahead: nothing written"
    );

    let running = c
        .create_job(&job(vec![move_task(s, n1, n2, vec![])]), &types)
        .unwrap();
    let DrainQueued::Queued {
        job_id: queued,
        behind,
    } = drain(n2)
    else {
        panic!("not queued");
    };
    assert_eq!(behind, running);
    assert_eq!(drain(n3), DrainQueued::Merged { job_id: queued });
    assert_eq!(drain(n3), DrainQueued::Merged { job_id: queued });
    let q = c.job(queued).unwrap();
    assert_eq!(q.state, JobState::Scheduled);
    assert_eq!(q.description, "Drain nodes w2:7400, w3:7400");
    assert_eq!(
        q.queued,
        Some(QueuedDrain {
            node_ids: vec![n2, n3],
            strategy: Some("by_shard_count".into()),
        })
    );
    assert_eq!(
        c.active_job(&types).unwrap().unwrap().job_id,
        running,
        "the job that moves comes before the queued one"
    );
    assert_eq!(c.latest_job(&types).unwrap().unwrap().job_id, running);
    assert_eq!(
        c.due_queued_job(&types).unwrap(),
        None,
        "job ahead still runs"
    );

    let t = c.runnable_tasks().unwrap()[0].task_id;
    assert!(c.start_task(t).unwrap());
    c.end_task(t, TaskState::Done, "").unwrap();
    assert_eq!(c.due_queued_job(&types).unwrap().unwrap().job_id, queued);
    let planned = NewJob {
        job_type: JobType::Drain,
        description: "Drain nodes w2:7400, w3:7400".into(),
        ..job(vec![move_task(s, n2, n1, vec![])])
    };
    assert!(
        !c.plan_queued_job(queued, &[n2], &planned).unwrap(),
        "a plan for fewer nodes than the job lists now is refused"
    );
    assert!(c.plan_queued_job(queued, &[n2, n3], &planned).unwrap());
    assert!(
        !c.plan_queued_job(queued, &[n2, n3], &planned).unwrap(),
        "planned once"
    );
    let q = c.job(queued).unwrap();
    assert_eq!((q.state.as_str(), q.queued.is_none()), ("scheduled", true));
    assert_eq!(c.tasks(Some(queued)).unwrap().len(), 1);
    assert_eq!(c.due_queued_job(&types).unwrap(), None);

    // Queued behind that one, then cancelled: it ends without tasks.
    let DrainQueued::Queued { job_id: later, .. } = drain(n1) else {
        panic!("not queued");
    };
    assert_eq!(c.cancel_job(later).unwrap(), 0);
    let l = c.job(later).unwrap();
    assert_eq!((l.state.as_str(), l.queued.is_none()), ("cancelled", true));
    assert!(l.finished_at_ms.is_some());

    // Once nothing runs, a drain is planned at once; one whose plan is refused when it
    // comes to start fails with the reason.
    let t = c.runnable_tasks().unwrap()[0].task_id;
    assert!(c.start_task(t).unwrap());
    c.end_task(t, TaskState::Done, "").unwrap();
    assert_eq!(drain(n1), DrainQueued::NothingAhead);
    c.create_job(&job(vec![move_task(s, n1, n2, vec![])]), &types)
        .unwrap();
    let DrainQueued::Queued {
        job_id: refused, ..
    } = drain(n1)
    else {
        panic!("not queued");
    };
    c.fail_queued_job(refused, "nowhere to go").unwrap();
    let r = c.job(refused).unwrap();
    assert_eq!(
        (r.state.as_str(), r.error.as_deref()),
        ("failed", Some("nowhere to go"))
    );
}

/// A job's state from its tasks' states, in Citus's order.
#[test]
fn job_state_from_task_counts_in_citus_order() {
    use super::job_state_from_tasks;
    let of = |tasks: &[TaskState]| {
        job_state_from_tasks(|s| tasks.iter().filter(|t| **t == s).count() as i64)
    };
    assert_eq!(of(&[]), JobState::Finished);
    assert_eq!(
        of(&[TaskState::Runnable, TaskState::Blocked]),
        JobState::Scheduled
    );
    assert_eq!(
        of(&[TaskState::Done, TaskState::Blocked]),
        JobState::Running
    );
    assert_eq!(of(&[TaskState::Done, TaskState::Done]), JobState::Finished);
    assert_eq!(
        of(&[TaskState::Error, TaskState::Running]),
        JobState::Failing
    );
    assert_eq!(
        of(&[TaskState::Error, TaskState::Unscheduled]),
        JobState::Failed
    );
    assert_eq!(
        of(&[TaskState::Cancelling, TaskState::Error]),
        JobState::Cancelling
    );
    assert_eq!(
        of(&[TaskState::Cancelled, TaskState::Done]),
        JobState::Cancelled
    );
}

/// A task state this version does not know is refused when read, not reinterpreted.
#[test]
fn an_unknown_task_state_in_the_catalog_is_refused() {
    let (c, n1, n2, s) = setup();
    let id = c
        .create_job(&job(vec![move_task(s, n1, n2, vec![])]), &[])
        .unwrap();
    c.write(|tx| {
        tx.execute("UPDATE tasks SET phase = 'merging' WHERE job_id = ?1", [id])?;
        Ok(())
    })
    .unwrap();
    let err = c.tasks(Some(id)).unwrap_err().to_string();
    assert!(err.contains("move phase \"merging\""), "{err}");
}

/// A deferred move keeps its phase and context; cancelled while it waits, it is handed back
/// for a rollback instead of being dropped with its staged copy on the target.
#[test]
fn a_deferred_task_keeps_its_phase_and_is_rolled_back_when_cancelled() {
    let (c, n1, n2, s) = setup();
    let id = c
        .create_job(
            &job(vec![
                move_task(s, n1, n2, vec![]),
                move_task(s, n2, n1, vec![]),
            ]),
            &[],
        )
        .unwrap();
    let tasks = c.tasks(Some(id)).unwrap();
    let (deferred, fresh) = (tasks[0].task_id, tasks[1].task_id);
    assert!(c.start_task(deferred).unwrap());
    c.set_task_phase(deferred, MovePhase::Copying, Some(r#"{"k":1}"#))
        .unwrap();
    c.defer_task(deferred, "writers held the group", 0).unwrap();
    let t = c.task(deferred).unwrap().unwrap();
    assert_eq!(
        (t.state, t.phase, t.retries, t.context.as_str()),
        (TaskState::Runnable, MovePhase::Copying, 1, r#"{"k":1}"#)
    );
    assert_eq!(
        c.cancel_job(id).unwrap(),
        1,
        "the deferred one is to roll back"
    );
    assert_eq!(
        c.task(deferred).unwrap().unwrap().state,
        TaskState::Cancelling
    );
    assert_eq!(c.task(fresh).unwrap().unwrap().state, TaskState::Cancelled);
    assert_eq!(
        c.unfinished_running_tasks()
            .unwrap()
            .iter()
            .map(|t| t.task_id)
            .collect::<Vec<_>>(),
        [deferred]
    );
    assert_eq!(c.job(id).unwrap().state, JobState::Cancelling);
}
