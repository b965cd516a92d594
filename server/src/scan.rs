//! `ShardScanExec`: reads a distributed table, one partition per shard, each served by the
//! worker holding it. Projection, filters and limit run on the worker next to the data.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use shoal_catalog::ShardSnapshot;
use shoal_shard_store::{PartialAggregate, ScanRequest};
use shoal_sql_functions::{Cluster, ClusterError, SnapshotGuard};

/// One scan of one table at one catalog snapshot.
pub struct ShardScanExec {
    cluster: Arc<Cluster>,
    table_name: String,
    table_id: i64,
    table_schema: SchemaRef,
    projected_schema: SchemaRef,
    projection: Option<Vec<String>>,
    filters: Vec<Expr>,
    aggregate: Option<PartialAggregate>,
    limit: Option<usize>,
    shards: Vec<ShardSnapshot>,
    /// Shards the catalog had before pruning on the distribution column.
    total_shards: usize,
    properties: Arc<PlanProperties>,
    /// Keeps every file of the snapshot on disk while this plan may still read it.
    _snapshot: Arc<SnapshotGuard>,
}

impl fmt::Debug for ShardScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardScanExec")
            .field("table", &self.table_name)
            .field("shards", &self.shards.len())
            .finish()
    }
}

pub struct ShardScanArgs {
    pub table_name: String,
    pub table_id: i64,
    pub table_schema: SchemaRef,
    pub projection: Option<Vec<usize>>,
    pub filters: Vec<Expr>,
    /// Set when the worker returns a partial aggregate instead of rows; its output schema.
    pub aggregate: Option<(PartialAggregate, SchemaRef)>,
    pub limit: Option<usize>,
    pub shards: Vec<ShardSnapshot>,
    pub total_shards: usize,
    pub snapshot: Arc<SnapshotGuard>,
}

impl ShardScanExec {
    pub fn new(cluster: Arc<Cluster>, args: ShardScanArgs) -> Result<Self> {
        let projected_schema = match (&args.aggregate, &args.projection) {
            (Some((_, schema)), _) => Arc::clone(schema),
            (None, Some(p)) => Arc::new(args.table_schema.project(p)?),
            (None, None) => Arc::clone(&args.table_schema),
        };
        let projection = args.projection.as_ref().map(|p| {
            p.iter()
                .map(|i| args.table_schema.field(*i).name().clone())
                .collect()
        });
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected_schema)),
            Partitioning::UnknownPartitioning(args.shards.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(ShardScanExec {
            cluster,
            table_name: args.table_name,
            table_id: args.table_id,
            table_schema: args.table_schema,
            projected_schema,
            projection,
            filters: args.filters,
            aggregate: args.aggregate.map(|(a, _)| a),
            limit: args.limit,
            shards: args.shards,
            total_shards: args.total_shards,
            properties,
            _snapshot: args.snapshot,
        })
    }
}

impl DisplayAs for ShardScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ShardScanExec: table={}, shards={} of {}",
            self.table_name,
            self.shards.len(),
            self.total_shards
        )?;
        if let Some(p) = &self.projection {
            write!(f, ", projection=[{}]", p.join(", "))?;
        }
        if !self.filters.is_empty() {
            let fs: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, ", worker_filters=[{}]", fs.join(" AND "))?;
        }
        if let Some(a) = &self.aggregate {
            let g: Vec<String> = a.group_by.iter().map(|e| e.to_string()).collect();
            let x: Vec<String> = a.aggr.iter().map(|e| e.to_string()).collect();
            write!(
                f,
                ", worker_partial_aggregate=[group_by=[{}], aggr=[{}]]",
                g.join(", "),
                x.join(", ")
            )?;
        }
        if let Some(l) = self.limit {
            write!(f, ", worker_limit={l}")?;
        }
        if matches!(t, DisplayFormatType::Verbose | DisplayFormatType::Default) {
            let per: Vec<String> = self
                .shards
                .iter()
                .map(|s| {
                    let nodes: Vec<String> = s.placements.iter().map(|p| p.addr()).collect();
                    format!("{}@{}", s.shard_id, nodes.join("|"))
                })
                .collect();
            write!(f, ", sub_plans=[{}]", per.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ShardScanExec {
    fn name(&self) -> &'static str {
        "ShardScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.projected_schema);
        let Some(shard) = self.shards.get(partition).cloned() else {
            // a table with every shard pruned away still has one (empty) partition
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let cluster = Arc::clone(&self.cluster);
        let table_name = self.table_name.clone();
        let mut placements = shard.placements.clone();
        // live placements first; the catalog's order (primary first) otherwise
        placements.sort_by_key(|p| !p.is_live);
        let base = ScanRequest {
            table_id: self.table_id,
            shard_id: shard.shard_id,
            files: vec![],
            table_schema: Arc::clone(&self.table_schema),
            filters: self.filters.clone(),
            projection: self.projection.clone(),
            aggregate: self.aggregate.clone(),
            limit: self.limit,
        };
        let open = async move {
            if shard.state == "lost" || placements.is_empty() {
                return Err(DataFusionError::External(Box::new(
                    ClusterError::ShardUnavailable {
                        message: format!(
                            "shard {} of table \"{table_name}\" is lost: no placement holds it",
                            shard.shard_id
                        ),
                        hint: Some(
                            "Restore the node that held it, or drop and reload the table.".into(),
                        ),
                    },
                )));
            }
            let mut failures: Vec<String> = Vec::new();
            for p in &placements {
                let mut req = base.clone();
                req.files = p.files.iter().map(|f| f.name.clone()).collect();
                let client = cluster
                    .worker(&p.addr())
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                match client.scan(&req).await {
                    Ok(stream) => {
                        return Ok(stream.map_err(|e| DataFusionError::External(Box::new(e))));
                    }
                    Err(e) => {
                        tracing::warn!(shard = shard.shard_id, worker = %p.addr(), error = %e, "shard read failed, trying another placement");
                        failures.push(format!("{}: {e}", p.addr()));
                    }
                }
            }
            Err(DataFusionError::External(Box::new(
                ClusterError::ShardUnavailable {
                    message: format!(
                        "could not read shard {} of table \"{table_name}\" from worker {}",
                        shard.shard_id,
                        failures.join("; ")
                    ),
                    hint: Some(
                        "Check that the worker is running: SELECT * FROM shoal.nodes;".into(),
                    ),
                },
            )))
        };
        // The stream holds the snapshot guard: DataFusion drops the plan as soon as the
        // streams exist, and the files this snapshot names must stay until they are read.
        let guard = Arc::clone(&self._snapshot);
        let stream = futures::stream::once(open).try_flatten().map(move |batch| {
            let _held = &guard;
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
