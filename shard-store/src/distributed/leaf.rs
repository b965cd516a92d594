//! [`ShardLeafExec`]: the leaf of a distributed query stage. One task's share of a table's
//! shards at the query's catalog snapshot, read on the worker the task runs on.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::ShardStoreError;
use crate::files::{blocking, FileStore};
use crate::protocol::{ScanRequest, ShardFiles};
use crate::scan::execute_scan;
use crate::transfer::SourceClients;

/// One shard a leaf reads: the files of each placement, in the order to try them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafShard {
    pub shard_id: i64,
    pub placements: Vec<LeafPlacement>,
}

/// A placement of a shard: the worker (`host:port`) and the files it holds at the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafPlacement {
    pub addr: String,
    pub files: ShardFiles,
}

/// Reads `shards` of one table on the worker that runs the task: a shard whose files of some
/// placement are on this worker is read here (one DataFusion plan over all of them, as a
/// Flight scan is), any other from its placements over Flight, the first that answers. A
/// local file gone since the check sends its shard to the other placements; a damaged file
/// (here, or at every placement that did not answer otherwise) fails the task with that
/// damage, which the coordinator records. Rows of a shard come from exactly one placement: a
/// placement is only left before it sent a row.
///
/// Partition `p` reads every `partitions`-th shard from `p`, so a task's shards are read in
/// parallel; every variant of one leaf has the same partition count. The build side of a
/// reference join ([`LeafPartitions::EachWhole`]) instead reads the whole table in every
/// task (and partition), from this worker's copy when it has one.
pub struct ShardLeafExec {
    table_name: String,
    /// The scan without its shards: the table's schema in stored names, filters, projection,
    /// limit; never an aggregate (the stage above aggregates).
    base: ScanRequest,
    shards: Vec<LeafShard>,
    partitions: usize,
    /// The output: `base`'s projection with the plan's column names.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    reads: LeafPartitions,
    /// Shown in EXPLAIN: a colocated join reads this leaf's partitions as shard groups (the
    /// coordinator's plan only; a task does not need to know).
    colocated: bool,
}

/// What each partition of a [`ShardLeafExec`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeafPartitions {
    /// Partition `p` reads every `partitions`-th shard from `p`: together they read each
    /// shard once.
    Split,
    /// Every partition reads every shard: a reference table's copy, read whole by every task
    /// of a reference join. The task runs wherever its other leaves are.
    EachWhole,
}

impl fmt::Debug for ShardLeafExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardLeafExec")
            .field("table", &self.table_name)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl ShardLeafExec {
    pub fn try_new(
        table_name: String,
        base: ScanRequest,
        shards: Vec<LeafShard>,
        partitions: usize,
        reads: LeafPartitions,
        schema: SchemaRef,
    ) -> Result<Self> {
        if base.aggregate.is_some() {
            return Err(DataFusionError::Internal(
                "a shard leaf never aggregates; the stage above does".into(),
            ));
        }
        let partitions = partitions.max(1);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(ShardLeafExec {
            table_name,
            base,
            shards,
            partitions,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
            reads,
            colocated: false,
        })
    }

    /// The leaf marked (in EXPLAIN) as an input of a colocated join.
    pub fn in_colocated_join(mut self) -> Self {
        self.colocated = true;
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    pub(crate) fn base(&self) -> &ScanRequest {
        &self.base
    }

    pub fn shards(&self) -> &[LeafShard] {
        &self.shards
    }

    pub fn partitions(&self) -> usize {
        self.partitions
    }

    pub fn reads(&self) -> LeafPartitions {
        self.reads
    }

    /// The worker that holds the first placement of most of the shards: where the task
    /// should run so that it reads them locally. `None` without shards, and for a leaf
    /// whose every partition reads the whole table (a reference table is on every worker;
    /// the task goes where the other input's shards are).
    pub fn preferred_addr(&self) -> Option<&str> {
        if self.reads == LeafPartitions::EachWhole {
            return None;
        }
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for shard in &self.shards {
            let Some(p) = shard.placements.first() else {
                continue;
            };
            match counts.iter_mut().find(|(a, _)| *a == p.addr) {
                Some((_, n)) => *n += 1,
                None => counts.push((&p.addr, 1)),
            }
        }
        // the first of the most frequent: deterministic for equal counts
        let max = counts.iter().map(|(_, n)| *n).max()?;
        counts.into_iter().find(|(_, n)| *n == max).map(|(a, _)| a)
    }
}

impl DisplayAs for ShardLeafExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let shards: Vec<String> = self.shards.iter().map(|s| s.shard_id.to_string()).collect();
        write!(
            f,
            "ShardLeafExec: table={}, shards=[{}]",
            self.table_name,
            shards.join(", ")
        )?;
        if let Some(addr) = self.preferred_addr() {
            write!(f, ", at={addr}")?;
        }
        if self.colocated {
            write!(f, ", colocated (partition = shard group)")?;
        }
        if self.reads == LeafPartitions::EachWhole {
            write!(f, ", reference join (every task reads its worker's copy)")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ShardLeafExec {
    fn name(&self) -> &'static str {
        "ShardLeafExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return Err(DataFusionError::Internal(
                "ShardLeafExec takes no children".into(),
            ));
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(local) = context.session_config().get_extension::<LeafContext>() else {
            return Err(DataFusionError::Internal(format!(
                "the shard leaf of table \"{}\" runs only on a worker",
                self.table_name
            )));
        };
        let shards: Vec<LeafShard> = match self.reads {
            LeafPartitions::Split => self
                .shards
                .iter()
                .skip(partition)
                .step_by(self.partitions)
                .cloned()
                .collect(),
            LeafPartitions::EachWhole => self.shards.clone(),
        };
        let read = LeafRead {
            local,
            table_name: self.table_name.clone(),
            base: self.base.clone(),
        };
        let schema = Arc::clone(&self.schema);
        let relabel = Arc::clone(&schema);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let stream = futures::stream::once(read.open(shards))
            .try_flatten()
            .map(move |batch| {
                let batch = batch?;
                rows.add(batch.num_rows());
                // Workers read the stored names; the plan names columns as the user does.
                // (with the row count: `count(*)` reads no column)
                RecordBatch::try_new_with_options(
                    Arc::clone(&relabel),
                    batch.columns().to_vec(),
                    &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                )
                .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// What a worker gives its leaves: its files, the session that scans them, and clients of the
/// other workers (with this worker's token and TLS). Set on the session of every task.
pub(crate) struct LeafContext {
    pub(crate) store: Arc<FileStore>,
    pub(crate) scan_ctx: SessionContext,
    pub(crate) clients: Arc<SourceClients>,
}

type BatchStream = BoxStream<'static, Result<RecordBatch>>;

struct LeafRead {
    local: Arc<LeafContext>,
    table_name: String,
    base: ScanRequest,
}

impl LeafRead {
    async fn open(self, shards: Vec<LeafShard>) -> Result<BatchStream> {
        let (mut here, mut elsewhere) = self.split_local(shards).await?;
        let mut streams: Vec<BatchStream> = Vec::new();
        // One plan over the local shards.
        while !here.is_empty() {
            let mut req = self.base.clone();
            req.shards = here.iter().map(|(_, p)| p.files.clone()).collect();
            match execute_scan(&self.local.scan_ctx, &self.local.store, req).await {
                Ok((_, rows)) => {
                    streams.push(rows.map_err(external).boxed());
                    break;
                }
                // Gone since the check (moved away): its other placements have it.
                Err(e @ ShardStoreError::FileMissing { shard_id, .. })
                    if here.iter().any(|(s, _)| s.shard_id == shard_id) =>
                {
                    warn!(table = %self.table_name, shard_id, error = %e,
                        "local shard file gone, reading another placement");
                    if let Some(at) = here.iter().position(|(s, _)| s.shard_id == shard_id) {
                        let (mut shard, used) = here.remove(at);
                        shard.placements.retain(|p| p.addr != used.addr);
                        elsewhere.push(shard);
                    }
                }
                // A damaged file fails the task before any row: the coordinator records the
                // damage and reads the shard from another placement (see the server's
                // distributed execution).
                Err(ShardStoreError::FileDamaged {
                    table_id,
                    shard_id,
                    name,
                    worker: _,
                    damage,
                }) => {
                    let worker = here
                        .iter()
                        .find(|(s, _)| s.shard_id == shard_id)
                        .map(|(_, used)| used.addr.clone())
                        .unwrap_or_default();
                    return Err(external(ShardStoreError::FileDamaged {
                        table_id,
                        shard_id,
                        name,
                        worker,
                        damage,
                    }));
                }
                Err(e) => return Err(external(e)),
            }
        }
        for shard in &elsewhere {
            streams.push(self.open_remote(shard).await?);
        }
        Ok(futures::stream::iter(streams).flatten().boxed())
    }

    /// The shards with a placement whose files are all on this worker (with those files),
    /// and the others.
    async fn split_local(
        &self,
        shards: Vec<LeafShard>,
    ) -> Result<(Vec<(LeafShard, LeafPlacement)>, Vec<LeafShard>)> {
        let store = Arc::clone(&self.local.store);
        let table_id = self.base.table_id;
        blocking(move || {
            let mut here = Vec::new();
            let mut elsewhere = Vec::new();
            for shard in shards {
                let local = shard.placements.iter().find(|p| {
                    store
                        .existing_files(table_id, shard.shard_id, &p.files.files)
                        .is_ok()
                });
                match local.cloned() {
                    Some(placement) => here.push((shard, placement)),
                    None => elsewhere.push(shard),
                }
            }
            Ok((here, elsewhere))
        })
        .await
        .map_err(external)
    }

    /// One shard from the first of its placements that answers.
    async fn open_remote(&self, shard: &LeafShard) -> Result<BatchStream> {
        let mut failures = Vec::new();
        let mut damaged = None;
        for p in &shard.placements {
            let mut req = self.base.clone();
            req.shards = vec![p.files.clone()];
            let attempt = match self.local.clients.get(&p.addr) {
                Ok(client) => client.scan(&req).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(rows) => return Ok(rows.map_err(external).boxed()),
                Err(e) => {
                    warn!(table = %self.table_name, shard_id = shard.shard_id, worker = %p.addr,
                        error = %e, "shard read failed, trying another placement");
                    failures.push(format!("{}: {e}", p.addr));
                    if matches!(e, ShardStoreError::FileDamaged { .. }) && damaged.is_none() {
                        damaged = Some(e);
                    }
                }
            }
        }
        // A damaged file is what the coordinator must hear of (it records it).
        if let Some(damaged) = damaged {
            return Err(external(damaged));
        }
        Err(external(ShardStoreError::Unavailable {
            addr: shard
                .placements
                .iter()
                .map(|p| p.addr.as_str())
                .collect::<Vec<_>>()
                .join("|"),
            message: format!(
                "could not read shard {} of table \"{}\": {}",
                shard.shard_id,
                self.table_name,
                if failures.is_empty() {
                    "no placement holds it".to_string()
                } else {
                    failures.join("; ")
                }
            ),
        }))
    }
}

fn external(e: ShardStoreError) -> DataFusionError {
    e.into_task_error()
}
