mod distributed;
mod latency_metric;
mod metrics_store;
mod prepare_dynamic_plan;
mod prepare_static_plan;
mod query_coordinator;

pub use distributed::DistributedExec;
pub(crate) use metrics_store::MetricsStore;
