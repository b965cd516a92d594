//! Sends a [`ShardLeafExec`] to the worker that runs its task: a JSON head (table, shards
//! with their placements' files, partitions), the output schema as Arrow IPC, then the scan
//! as a Flight scan ticket (schema, filters as datafusion-proto bytes).

use std::sync::Arc;

use arrow_flight::Ticket;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::leaf::{LeafPartitions, LeafShard, ShardLeafExec};
use crate::error::ShardStoreError;
use crate::protocol::{
    json_bytes, push_section, schema_from_ipc, schema_to_ipc, ScanRequest, Sections,
};

/// Magic prefix; the digit is the format version.
const LEAF_MAGIC: &[u8] = b"SHOALLEAF2";

#[derive(Serialize, Deserialize)]
struct LeafHeader {
    table_name: String,
    shards: Vec<LeafShard>,
    partitions: usize,
    reads: LeafPartitions,
}

/// The codec of Shoal's plan nodes that cross the network in a distributed query.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardLeafCodec;

impl PhysicalExtensionCodec for ShardLeafCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return Err(DataFusionError::Internal(
                "a shard leaf has no inputs".into(),
            ));
        }
        Ok(Arc::new(decode(buf, ctx).map_err(to_df)?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(leaf) = node.downcast_ref::<ShardLeafExec>() else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} cannot run on a worker",
                node.name()
            )));
        };
        encode(leaf, buf).map_err(to_df)
    }
}

fn encode(leaf: &ShardLeafExec, buf: &mut Vec<u8>) -> crate::Result<()> {
    let header = LeafHeader {
        table_name: leaf.table_name().to_string(),
        shards: leaf.shards().to_vec(),
        partitions: leaf.partitions(),
        reads: leaf.reads(),
    };
    buf.extend_from_slice(LEAF_MAGIC);
    push_section(buf, &json_bytes(&header)?)?;
    push_section(buf, &schema_to_ipc(&leaf.schema())?)?;
    push_section(buf, &leaf.base().to_ticket()?.ticket)?;
    Ok(())
}

fn decode(buf: &[u8], ctx: &TaskContext) -> crate::Result<ShardLeafExec> {
    let rest = buf
        .strip_prefix(LEAF_MAGIC)
        .ok_or_else(|| ShardStoreError::protocol("not a shoal shard leaf (bad magic)"))?;
    let mut sections = Sections { rest };
    let header: LeafHeader = serde_json::from_slice(sections.next()?)
        .map_err(|e| ShardStoreError::protocol(format!("bad shard leaf header: {e}")))?;
    let schema = Arc::new(schema_from_ipc(sections.next()?)?);
    let ticket = Ticket::new(bytes::Bytes::copy_from_slice(sections.next()?));
    if !sections.rest.is_empty() {
        return Err(ShardStoreError::protocol(
            "shard leaf has trailing bytes after its last section",
        ));
    }
    let base = ScanRequest::from_ticket_with_ctx(&ticket, ctx)?;
    ShardLeafExec::try_new(
        header.table_name,
        base,
        header.shards,
        header.partitions,
        header.reads,
        schema,
    )
    .map_err(ShardStoreError::DataFusion)
}

fn to_df(e: ShardStoreError) -> DataFusionError {
    match e {
        ShardStoreError::DataFusion(e) => e,
        other => DataFusionError::External(Box::new(other)),
    }
}
