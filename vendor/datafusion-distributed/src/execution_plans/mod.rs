mod broadcast;
mod children_isolator_union;
mod common;
mod distributed_leaf;
mod metrics;
mod network_broadcast;
mod network_coalesce;
mod network_shuffle;
mod sampler;

#[cfg(any(test, feature = "integration"))]
pub mod benchmarks;

pub use broadcast::BroadcastExec;
pub(crate) use children_isolator_union::ChildWeight;
pub use children_isolator_union::ChildrenIsolatorUnionExec;
pub use distributed_leaf::DistributedLeafExec;
pub(crate) use metrics::MetricsWrapperExec;
pub use network_broadcast::NetworkBroadcastExec;
pub use network_coalesce::NetworkCoalesceExec;
pub use network_shuffle::NetworkShuffleExec;
pub use sampler::SamplerExec;
