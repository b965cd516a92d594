use super::*;

/// Every variant reads back from its own spelling, and the spellings are the ones catalogs
/// already hold (changing one would strand every catalog written before).
#[test]
fn spellings_are_pinned_and_read_back() {
    fn check<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Result<T, UnknownValue>,
        pinned: &[&str],
    ) {
        let spelled: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
        assert_eq!(spelled, pinned);
        for v in all {
            assert_eq!(parse(as_str(*v)), Ok(*v));
        }
    }
    check(
        NodeState::ALL,
        NodeState::as_str,
        NodeState::parse,
        &["active", "draining"],
    );
    check(
        ShardState::ALL,
        ShardState::as_str,
        ShardState::parse,
        &["active", "lost"],
    );
    check(
        JobType::ALL,
        JobType::as_str,
        JobType::parse,
        &["rebalance", "drain", "move", "repair"],
    );
    check(
        JobState::ALL,
        JobState::as_str,
        JobState::parse,
        &[
            "scheduled",
            "running",
            "cancelling",
            "cancelled",
            "finished",
            "failing",
            "failed",
        ],
    );
    check(
        TaskKind::ALL,
        TaskKind::as_str,
        TaskKind::parse,
        &["move", "copy"],
    );
    check(
        TaskState::ALL,
        TaskState::as_str,
        TaskState::parse,
        &[
            "blocked",
            "runnable",
            "running",
            "done",
            "cancelling",
            "error",
            "unscheduled",
            "cancelled",
        ],
    );
    check(
        MovePhase::ALL,
        MovePhase::as_str,
        MovePhase::parse,
        &[
            "planned",
            "preparing",
            "copying",
            "switched",
            "done",
            "rolling_back",
            "aborted",
        ],
    );
    check(
        TransferMode::ALL,
        TransferMode::as_str,
        TransferMode::parse,
        &["auto", "force_logical", "block_writes"],
    );
}

#[test]
fn an_unknown_value_is_refused_naming_what_it_is() {
    let err = MovePhase::parse("merging").unwrap_err();
    assert_eq!(err.what, "move phase");
    let text = err.to_string();
    assert!(text.contains("move phase \"merging\""), "{text}");
    assert!(text.contains("newer version"), "{text}");
    // Case matters: the catalog holds exactly one spelling.
    assert!(TaskState::parse("Done").is_err());
    assert!(JobState::parse("").is_err());
}

#[test]
fn sqlite_columns_read_and_write_the_spelling() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE t (s TEXT NOT NULL)")
        .unwrap();
    db.execute("INSERT INTO t VALUES (?1)", [TaskState::Cancelling])
        .unwrap();
    let stored: String = db.query_row("SELECT s FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, "cancelling");
    let read: TaskState = db.query_row("SELECT s FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(read, TaskState::Cancelling);
    db.execute("UPDATE t SET s = 'paused'", []).unwrap();
    let err = db
        .query_row("SELECT s FROM t", [], |r| r.get::<_, TaskState>(0))
        .unwrap_err();
    assert!(err.to_string().contains("task state \"paused\""), "{err}");
    // Reading it again cannot help: the scheduler does not retry on it.
    assert!(!crate::CatalogError::Sqlite(err).is_retryable());
}
