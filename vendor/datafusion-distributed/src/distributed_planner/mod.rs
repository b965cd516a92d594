mod distributed_config;
mod distributed_query_planner;
mod inject_network_boundaries;
mod insert_broadcast;
mod insert_children_isolator_union;
mod network_boundary;
mod normalize_collect_joins;
mod partial_reduce_below_network_shuffles;
mod prepare_network_boundaries;
mod push_fetch_into_network_coalesce;
mod replicated_input;
mod session_state_builder_ext;
mod statistics;

pub use distributed_config::DistributedConfig;
pub(crate) use inject_network_boundaries::{
    InjectNetworkBoundaryContext, NetworkBoundaryBuilderResult, inject_network_boundaries,
};
pub use network_boundary::{NetworkBoundary, NetworkBoundaryExt, ProducerHead};
pub use replicated_input::ReplicatedInputCheck;
pub(crate) use replicated_input::is_replicated_input;
pub use session_state_builder_ext::SessionStateBuilderExt;
pub(crate) use statistics::calculate_cost;
