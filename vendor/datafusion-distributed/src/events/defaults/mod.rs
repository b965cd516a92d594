mod file_scan_config;
mod routing;

pub(crate) use file_scan_config::{
    file_scan_config_desired_task_count, file_scan_config_scale_up_leaf_node,
};
pub(crate) use routing::{
    random_routing, single_task_child_url_routing, single_task_coordinator_routing,
};
