mod children_helpers;
mod maybe_encoded;
mod once_lock;
mod recursion;
mod task_context_helpers;
mod time;
mod uuid;
mod vec;

pub(crate) use children_helpers::require_one_child;
pub use maybe_encoded::MaybeEncoded;
pub(crate) use once_lock::OnceLockResult;
pub(crate) use recursion::TreeNodeExt;
pub(crate) use task_context_helpers::task_ctx_with_extension;
pub(crate) use time::now_ns;
pub(crate) use uuid::{deserialize_uuid, serialize_uuid};
pub(crate) use vec::{element_wise_sum, vec_avg_reduce, vec_cast, vec_div, vec_mul};
