mod complexity;
mod complexity_cpu;
mod complexity_memory;
mod complexity_network;
mod cost;
mod default_bytes_for_datatype;
mod plan_statistics;

#[allow(unused)] // will be used in a follow-up PR.
pub(crate) use cost::calculate_cost;
