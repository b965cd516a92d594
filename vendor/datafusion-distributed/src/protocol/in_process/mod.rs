mod local_worker_context;
mod worker_client;

pub use local_worker_context::LocalWorkerContext;
pub(crate) use worker_client::InProcessWorkerClient;
