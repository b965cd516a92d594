mod common;
mod defaults;
mod desired_task_count;
mod route_tasks;
mod scale_up_leaf_node;
mod worker_plan_rewrite;

pub(crate) use defaults::{
    file_scan_config_desired_task_count, file_scan_config_scale_up_leaf_node, random_routing,
    single_task_child_url_routing, single_task_coordinator_routing,
};
pub(crate) use desired_task_count::DesiredTaskCountHandlers;
pub use desired_task_count::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DesiredTaskCountHandler,
    TaskCountAnnotation,
};
pub(crate) use route_tasks::RouteTasksHandlers;
pub use route_tasks::{RouteTasksEvent, RouteTasksEventResponse, RouteTasksHandler};
pub(crate) use scale_up_leaf_node::ScaleUpLeafNodeHandlers;
pub use scale_up_leaf_node::{
    ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse, ScaleUpLeafNodeHandler,
};
pub(crate) use worker_plan_rewrite::WorkerPlanRewriteHandlers;
pub use worker_plan_rewrite::{
    WorkerPlanRewriteEvent, WorkerPlanRewriteEventResponse, WorkerPlanRewriteHandler,
};
