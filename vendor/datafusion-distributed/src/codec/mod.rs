mod distributed_codec;
mod physical_plan;
mod user_codec;

pub use distributed_codec::DistributedCodec;
pub(crate) use physical_plan::{
    decode_execution_plan, decode_partitioning, encode_execution_plan, encode_partitioning,
};
pub(crate) use user_codec::{
    get_distributed_user_codecs, set_distributed_user_codec, set_distributed_user_codec_arc,
};
