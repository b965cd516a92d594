mod impl_coordinator_channel;
mod impl_execute_task;
mod session_builder;
mod single_write_multi_read;
mod task_data;
#[cfg(any(test, feature = "integration"))]
pub(crate) mod test_utils;
mod worker_connection_pool;
mod worker_service;

pub(crate) use single_write_multi_read::SingleWriteMultiRead;
pub(crate) use worker_connection_pool::WorkerConnectionPool;

pub use session_builder::{
    DefaultSessionBuilder, MappedWorkerSessionBuilder, MappedWorkerSessionBuilderExt,
    WorkerQueryContext, WorkerSessionBuilder,
};
pub use task_data::TaskData;
pub use worker_service::Worker;
