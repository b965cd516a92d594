//! The DataFusion layer's PostgreSQL semantics: functions whose behaviour Shoal takes from
//! PostgreSQL where DataFusion differs.

pub mod pg_aggregates;
pub mod pg_bytea;
pub mod pg_casts;
pub mod pg_interval;
pub mod pg_like;
pub mod pg_limits;
