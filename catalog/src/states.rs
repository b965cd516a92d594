//! The catalog's domain states as enums: each has one spelling on disk (`as_str`) and one
//! parser (`parse`) that refuses an unknown value, so a catalog written by a newer Shoal is
//! refused with a clear message instead of being reinterpreted (a task phase read as
//! `planned` would restart a move that had switched).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A stored value that no variant spells.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the catalog holds {what} \"{value}\", which this version of Shoal does not know \
     (was the catalog written by a newer version?)"
)]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

macro_rules! catalog_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's spelling in the catalog and in Shoal's views.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// Reads a stored spelling; an unknown one is an error, never a default.
            pub fn parse(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownValue { what: $what, value: text.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                $name::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

catalog_enum! {
    /// A node's registration state (`shoal.nodes`); a drain is shown from its job, not stored.
    NodeState, "node state" {
        Active => "active",
        Draining => "draining",
    }
}

catalog_enum! {
    /// A shard's state: `lost` when no placement holds its files any more.
    ShardState, "shard state" {
        Active => "active",
        Lost => "lost",
    }
}

catalog_enum! {
    /// What a background job does.
    JobType, "job type" {
        Rebalance => "rebalance",
        Drain => "drain",
        /// One `move_shard_placement` / `copy_shard_placement` call.
        Move => "move",
        /// Re-creating reference-table copies on nodes that lack one.
        Repair => "repair",
    }
}

catalog_enum! {
    /// A background job's state, derived from its tasks as Citus derives it.
    JobState, "job state" {
        Scheduled => "scheduled",
        Running => "running",
        Cancelling => "cancelling",
        Cancelled => "cancelled",
        Finished => "finished",
        Failing => "failing",
        Failed => "failed",
    }
}

impl JobState {
    /// Finished, cancelled and failed jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Cancelled | JobState::Failed
        )
    }
}

catalog_enum! {
    /// What a task does to its shard group's placement.
    TaskKind, "task kind" {
        Move => "move",
        /// A copy keeps the source placement.
        Copy => "copy",
    }
}

catalog_enum! {
    /// A task's scheduling state, as Citus's background tasks.
    TaskState, "task state" {
        /// Waits for the tasks it depends on.
        Blocked => "blocked",
        Runnable => "runnable",
        Running => "running",
        Done => "done",
        Cancelling => "cancelling",
        Error => "error",
        /// A task it depends on failed: it will never run.
        Unscheduled => "unscheduled",
        Cancelled => "cancelled",
    }
}

impl TaskState {
    /// Not yet ended: waiting, running or being cancelled.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            TaskState::Blocked | TaskState::Runnable | TaskState::Running
        )
    }
}

catalog_enum! {
    /// The move state machine's persisted state (a task's `phase`): only the states a move
    /// recovers from differently after a crash. The steps within one (the catch-up rounds, the
    /// fence and the final copy within `copying`) live in the coordinator's memory.
    MovePhase, "move phase" {
        /// Nothing done yet.
        Planned => "planned",
        /// The target's on-failure records may exist: resumed by checking again, and a cancel
        /// rolls it back.
        Preparing => "preparing",
        /// Files may be staged (and adopted) on the target: resumed by copying what the target
        /// does not hold verified yet, then fencing and switching.
        Copying => "copying",
        /// The catalog names the target (written by the switch transaction itself): only the
        /// cleanup of the source is left.
        Switched => "switched",
        Done => "done",
        /// Resumed by undoing the target's copies again.
        RollingBack => "rolling_back",
        Aborted => "aborted",
    }
}

catalog_enum! {
    /// How a move keeps writes flowing (Citus's `shard_transfer_mode`).
    TransferMode, "transfer mode" {
        /// Copy while writes continue; fence only the final catch-up and the switch.
        Auto => "auto",
        /// Citus's logical replication; Shoal's copy already is, so it moves as `auto`.
        ForceLogical => "force_logical",
        /// Fence writes to the group for the whole copy.
        BlockWrites => "block_writes",
    }
}

impl TransferMode {
    /// Whether writes to the group wait for the whole copy.
    pub fn blocks_writes(self) -> bool {
        self == TransferMode::BlockWrites
    }
}

#[cfg(test)]
mod tests;
