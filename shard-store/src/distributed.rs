//! Distributed execution (datafusion-distributed) on the worker's side: the leaf of a query
//! stage ([`ShardLeafExec`]) and its codec, the channels between nodes ([`ClusterChannels`]),
//! and the worker's task service, served on the same port as the Flight service behind the
//! same cluster-token check.
//!
//! ```text
//! coordinator: DistributedExec ── task plan (stage, with this task's ShardLeafExec) ──► worker
//!                                                          ShardLeafExec: local files of the
//! worker ◄── shuffle/broadcast/coalesce streams ──► worker    snapshot, else Flight scan of a
//!                                                             placement
//! ```

mod channels;
mod codec;
mod leaf;

use std::fmt;
use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_distributed::{DistributedExt, Worker, WorkerQueryContext};

pub use channels::ClusterChannels;
pub use codec::ShardLeafCodec;
pub(crate) use leaf::LeafContext;
pub use leaf::{LeafPartitions, LeafPlacement, LeafShard, ShardLeafExec};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Router;

use crate::files::FileStore;
use crate::service::TokenCheck;
use crate::transfer::SourceClients;

/// What the server adds to the session of every task a worker runs: the functions the
/// coordinator's plans may call. Without it a task has DataFusion's built-in functions only.
#[derive(Clone)]
pub struct WorkerSessionHook(
    pub Arc<dyn Fn(SessionStateBuilder) -> SessionStateBuilder + Send + Sync>,
);

impl Default for WorkerSessionHook {
    fn default() -> Self {
        WorkerSessionHook(Arc::new(|b| b))
    }
}

impl fmt::Debug for WorkerSessionHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerSessionHook")
    }
}

/// Adds the gRPC service that runs the tasks of distributed queries on this worker to
/// `router`, behind `auth`.
pub(crate) fn add_task_service(
    router: Router,
    auth: TokenCheck,
    leaf: LeafContext,
    channels: ClusterChannels,
    hook: WorkerSessionHook,
    runtime: Arc<RuntimeEnv>,
    max_message_bytes: usize,
) -> Router {
    let leaf = Arc::new(leaf);
    let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let leaf = Arc::clone(&leaf);
        let channels = channels.clone();
        let hook = hook.clone();
        async move {
            let builder = ctx
                .builder
                .with_distributed_user_codec(ShardLeafCodec)
                .with_distributed_channel_resolver(channels);
            let mut state = (hook.0)(builder).build();
            state.config_mut().set_extension(leaf);
            Ok(state)
        }
    })
    .with_runtime_env(runtime)
    .with_max_message_size(max_message_bytes);
    router.add_service(InterceptedService::new(worker.into_worker_server(), auth))
}

impl LeafContext {
    pub(crate) fn new(
        store: Arc<FileStore>,
        scan_ctx: SessionContext,
        clients: Arc<SourceClients>,
    ) -> Self {
        LeafContext {
            store,
            scan_ctx,
            clients,
        }
    }
}
