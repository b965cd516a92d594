//! The running statement's session reaches the tasks DataFusion spawns for it.
//!
//! The session travels in task-locals ([`crate::frontend::session::current`], and the catalog's view
//! of the session's transaction), which a spawned task does not inherit. DataFusion spawns
//! every task of a plan through its `SpawnedTask`/`JoinSet`, which hand each future to one
//! global tracer at spawn time, in the spawning task: there the session is read and the
//! future wrapped in its scope. Without this, a table a transaction created was missing from
//! `pg_class` and `information_schema` when their scan ran in a spawned task.

use std::any::Any;

use datafusion::common::runtime::{set_join_set_tracer, JoinSetTracer};
use futures::future::BoxFuture;
use futures::FutureExt;

struct StatementScope;

impl JoinSetTracer for StatementScope {
    fn trace_future(
        &self,
        fut: BoxFuture<'static, Box<dyn Any + Send>>,
    ) -> BoxFuture<'static, Box<dyn Any + Send>> {
        match crate::frontend::session::current() {
            Some(session) => async move { session.scope(fut).await }.boxed(),
            None => fut,
        }
    }

    fn trace_block(
        &self,
        f: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>,
    ) -> Box<dyn FnOnce() -> Box<dyn Any + Send> + Send> {
        // Blocking tasks (spill files) resolve no names.
        f
    }
}

static TRACER: StatementScope = StatementScope;

/// Installs the tracer; once per process (a second call finds it installed).
pub fn install() {
    let _ = set_join_set_tracer(&TRACER);
}
