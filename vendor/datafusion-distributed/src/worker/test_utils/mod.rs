pub(crate) mod worker_handles;
