//! `ShardScanExec`: reads a distributed table, one partition per worker, each reading all the
//! shards that worker serves in one sub-plan. Projection, filters, partial aggregates and
//! limit run on the worker next to the data.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use shoal_catalog::ShardSnapshot;
use shoal_shard_store::{
    LeafPartitions, LeafPlacement, LeafShard, PartialAggregate, ScanRequest, ShardLeafExec,
    ShardStoreError,
};
use shoal_sql_functions::integrity::{DamageSource, DamagedFileReport};
use shoal_sql_functions::{scan_files, Cluster, ClusterError, SnapshotGuard};

/// One scan of one table at one catalog snapshot.
pub struct ShardScanExec {
    cluster: Arc<Cluster>,
    table_name: String,
    table_id: i64,
    /// The table's schema with the stored names, as workers read the files.
    worker_schema: SchemaRef,
    projected_schema: SchemaRef,
    /// Stored names.
    projection: Option<Vec<String>>,
    filters: Vec<Expr>,
    aggregate: Option<PartialAggregate>,
    limit: Option<usize>,
    shards: Vec<ShardSnapshot>,
    /// The partitions: the shards grouped by the worker that serves them.
    groups: Vec<ScanGroup>,
    /// Shards the catalog had before pruning on the distribution column.
    total_shards: usize,
    distribution_column: Option<String>,
    /// Set when a colocated join relies on partition `p` being shard group `p` (see
    /// [`Self::partitioned_by_shard_group`]).
    shard_group_partitioned: bool,
    /// A reference table's (one copy on every worker).
    reference: bool,
    /// Set when a reference join's every task reads the whole table (see
    /// [`Self::whole_in_every_task`]).
    whole_in_every_task: bool,
    properties: Arc<PlanProperties>,
    /// Rows and bytes received from the workers, per partition (EXPLAIN ANALYZE).
    metrics: ExecutionPlanMetricsSet,
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
    /// Each column's name in the files, in `table_schema`'s order: what workers are asked
    /// for (see `ColumnDef::stored_name`).
    pub stored_names: Vec<String>,
    pub projection: Option<Vec<usize>>,
    pub filters: Vec<Expr>,
    /// Set when the worker returns a partial aggregate instead of rows; its output schema.
    pub aggregate: Option<(PartialAggregate, SchemaRef)>,
    pub limit: Option<usize>,
    pub shards: Vec<ShardSnapshot>,
    pub total_shards: usize,
    pub snapshot: Arc<SnapshotGuard>,
    /// The distribution column of a hash-distributed table (its name in `table_schema`);
    /// `None` for reference and single-shard tables.
    pub distribution_column: Option<String>,
    /// Whether the table is a reference table.
    pub reference: bool,
}

impl ShardScanExec {
    pub fn new(cluster: Arc<Cluster>, args: ShardScanArgs) -> Result<Self> {
        let projected_schema: SchemaRef = match (&args.aggregate, &args.projection) {
            (Some((_, schema)), _) => Arc::clone(schema),
            (None, Some(p)) => Arc::new(args.table_schema.project(p)?),
            (None, None) => Arc::clone(&args.table_schema),
        };
        let stored = StoredNames::new(&args.table_schema, &args.stored_names)?;
        let projection = args.projection.as_ref().map(|p| {
            p.iter()
                .map(|i| stored.of(args.table_schema.field(*i).name()))
                .collect()
        });
        let filters = args
            .filters
            .iter()
            .map(|f| stored.rewrite(f, None))
            .collect::<Result<Vec<_>>>()?;
        let aggregate = match args.aggregate {
            Some((a, schema)) => Some((
                PartialAggregate {
                    group_by: a
                        .group_by
                        .iter()
                        .map(|e| stored.rewrite(e, Some(e.schema_name().to_string())))
                        .collect::<Result<_>>()?,
                    aggr: a
                        .aggr
                        .iter()
                        .map(|e| stored.rewrite(e, Some(e.schema_name().to_string())))
                        .collect::<Result<_>>()?,
                },
                schema,
            )),
            None => None,
        };
        let worker_schema = stored.schema(&args.table_schema)?;
        let groups = group_by_worker(&args.shards);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&projected_schema)),
            Partitioning::UnknownPartitioning(groups.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(ShardScanExec {
            cluster,
            table_name: args.table_name,
            table_id: args.table_id,
            worker_schema,
            projected_schema,
            projection,
            filters,
            aggregate: aggregate.map(|(a, _)| a),
            limit: args.limit,
            shards: args.shards,
            groups,
            total_shards: args.total_shards,
            distribution_column: args.distribution_column,
            shard_group_partitioned: false,
            reference: args.reference,
            whole_in_every_task: false,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
            _snapshot: args.snapshot,
        })
    }
}

impl ShardScanExec {
    /// The workers that serve the scan's shards (its partitions): the tasks a distributed
    /// stage reading it wants.
    pub fn worker_groups(&self) -> usize {
        self.groups.len().max(1)
    }

    /// Whether a shard has no placement on a node the heartbeat finds live (or is lost): a
    /// read of it fails, at once on the coordinator's path.
    pub fn has_unreachable_shard(&self) -> bool {
        self.shards.iter().any(|s| {
            s.state == shoal_catalog::ShardState::Lost || !s.placements.iter().any(|p| p.is_live)
        })
    }

    /// Whether the workers return a partial aggregate instead of rows.
    pub fn pushes_aggregate(&self) -> bool {
        self.aggregate.is_some()
    }

    /// The scan split into `tasks` leaves of a distributed stage: task `i` reads the shards of
    /// worker groups `i`, `i + tasks`, ... (each group's shards have their first live
    /// placement on one worker, where the task is routed), each with `partitions` partitions.
    pub fn leaf_variants(
        &self,
        tasks: usize,
        partitions: usize,
    ) -> Result<Vec<Arc<dyn ExecutionPlan>>> {
        let tasks = tasks.max(1);
        let mut per_task: Vec<Vec<LeafShard>> = vec![Vec::new(); tasks];
        if self.whole_in_every_task {
            // every task reads the whole table, from the copy of the worker it runs on
            let all: Vec<LeafShard> = self.shards.iter().map(|s| leaf_shard(s, None)).collect();
            per_task.fill(all);
        } else {
            for (i, group) in self.groups.iter().enumerate() {
                per_task[i % tasks]
                    .extend(group.shards.iter().map(|shard| leaf_shard(shard, None)));
            }
        }
        let reads = if self.whole_in_every_task {
            LeafPartitions::EachWhole
        } else {
            LeafPartitions::Split
        };
        per_task
            .into_iter()
            .map(|shards| self.leaf(shards, partitions, reads))
            .collect()
    }

    /// A leaf reading `shards` with this scan's filters and projection.
    fn leaf(
        &self,
        shards: Vec<LeafShard>,
        partitions: usize,
        reads: LeafPartitions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.aggregate.is_some() {
            return Err(DataFusionError::Internal(
                "a scan with a worker aggregate is not split into leaves".into(),
            ));
        }
        let base = ScanRequest {
            table_id: self.table_id,
            shards: vec![],
            table_schema: Arc::clone(&self.worker_schema),
            filters: self.filters.clone(),
            projection: self.projection.clone(),
            aggregate: None,
            limit: self.limit,
        };
        let leaf = ShardLeafExec::try_new(
            self.table_name.clone(),
            base,
            shards,
            partitions,
            reads,
            Arc::clone(&self.projected_schema),
        )?;
        Ok(Arc::new(if self.shard_group_partitioned {
            leaf.in_colocated_join()
        } else {
            leaf
        }))
    }

    /// The distribution column of a hash-distributed table, by its name in the scan's output.
    pub fn distribution_column(&self) -> Option<&str> {
        self.distribution_column.as_deref()
    }

    /// Whether the partitions of this scan and `other` read the same shard groups: partition
    /// `p` of each is served by the same worker and holds shards of the same hash ranges, in
    /// the same order (and so does every leaf task and partition made of them). True of
    /// colocated tables whose shard groups are not split by a move in progress; then rows
    /// with equal distribution values (of one type) are in equal partitions.
    pub fn shard_groups_align(&self, other: &ShardScanExec) -> bool {
        let ranges = |g: &ScanGroup| -> Vec<(i64, i32, i32)> {
            g.shards
                .iter()
                .map(|s| (s.shard_index, s.hash_min, s.hash_max))
                .collect()
        };
        self.aggregate.is_none()
            && other.aggregate.is_none()
            && self.distribution_column.is_some()
            && other.distribution_column.is_some()
            && self.groups.len() == other.groups.len()
            && self
                .groups
                .iter()
                .zip(&other.groups)
                .all(|(a, b)| a.worker.is_some() && a.worker == b.worker && ranges(a) == ranges(b))
    }

    /// This scan declaring that its partitions are its shard groups, hash partitioned by its
    /// distribution column (output column `column`): what a colocated join needs of both of
    /// its inputs. Only the colocated join rule asks for it, once DataFusion's own rules have
    /// placed every repartition (they would take a shard group for a hash partition of
    /// theirs).
    pub fn partitioned_by_shard_group(&self, column: usize) -> Result<ShardScanExec> {
        let name = self
            .projected_schema
            .fields()
            .get(column)
            .map(|f| f.name().clone())
            .filter(|n| self.distribution_column.as_ref() == Some(n))
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "column {column} of the scan of {} is not its distribution column",
                    self.table_name
                ))
            })?;
        let partitioning = Partitioning::Hash(
            vec![Arc::new(Column::new(&name, column))],
            self.groups.len().max(1),
        );
        Ok(ShardScanExec {
            shard_group_partitioned: true,
            ..self.with_partitioning(partitioning)
        })
    }

    /// Whether a colocated join relies on this scan's partitions being its shard groups.
    pub fn is_shard_group_partitioned(&self) -> bool {
        self.shard_group_partitioned
    }

    /// Whether the table is a reference table (one shard), read without a worker aggregate.
    pub fn is_reference(&self) -> bool {
        self.reference && self.aggregate.is_none() && self.groups.len() <= 1
    }

    /// Whether the scan reads only the rows its pushed filters keep.
    pub fn is_filtered(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Whether two reads of the scan give the same rows: no limit, no volatile filter.
    pub fn reads_the_same_rows_each_time(&self) -> bool {
        self.limit.is_none() && !self.filters.iter().any(Expr::is_volatile)
    }

    /// Whether every task reads the whole table (see [`Self::whole_in_every_task`]).
    pub fn read_whole_by_every_task(&self) -> bool {
        self.whole_in_every_task
    }

    /// This reference table's scan as one partition that every task of a stage reads whole
    /// (on a worker, from its own copy): the build side of a reference join.
    pub fn whole_in_every_task(&self) -> Result<ShardScanExec> {
        if !self.is_reference() {
            return Err(DataFusionError::Internal(format!(
                "{} is not a reference table read whole",
                self.table_name
            )));
        }
        Ok(ShardScanExec {
            whole_in_every_task: true,
            ..self.with_partitioning(Partitioning::UnknownPartitioning(1))
        })
    }

    /// A copy of this scan declaring `partitioning`, with fresh metrics.
    fn with_partitioning(&self, partitioning: Partitioning) -> ShardScanExec {
        ShardScanExec {
            cluster: Arc::clone(&self.cluster),
            table_name: self.table_name.clone(),
            table_id: self.table_id,
            worker_schema: Arc::clone(&self.worker_schema),
            projected_schema: Arc::clone(&self.projected_schema),
            projection: self.projection.clone(),
            filters: self.filters.clone(),
            aggregate: self.aggregate.clone(),
            limit: self.limit,
            shards: self.shards.clone(),
            groups: self.groups.clone(),
            total_shards: self.total_shards,
            distribution_column: self.distribution_column.clone(),
            shard_group_partitioned: self.shard_group_partitioned,
            reference: self.reference,
            whole_in_every_task: self.whole_in_every_task,
            properties: Arc::new(
                self.properties
                    .as_ref()
                    .clone()
                    .with_partitioning(partitioning),
            ),
            metrics: ExecutionPlanMetricsSet::new(),
            _snapshot: Arc::clone(&self._snapshot),
        }
    }

    /// The rows the catalog counts in the files the scan reads (each shard's first placement),
    /// at most its limit: before its filters, which workers apply. `None` for a worker
    /// aggregate. Not given to DataFusion as statistics (see `collect_join`'s doc).
    pub fn catalog_rows(&self) -> Option<usize> {
        if self.aggregate.is_some() {
            return None;
        }
        let rows: u64 = self
            .shards
            .iter()
            .map(|shard| shard.placements.first().map_or(0, |p| p.rows()))
            .sum();
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        Some(self.limit.map_or(rows, |limit| rows.min(limit)))
    }

    /// How many shards the scan reads (after pruning by the distribution column).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The workers with a live placement of every shard the scan reads, in the order of the
    /// first shard's live placements (the catalog's: primary first).
    pub fn live_holders(&self) -> Vec<String> {
        let live = |shard: &ShardSnapshot| -> Vec<String> {
            if shard.state == shoal_catalog::ShardState::Lost {
                return Vec::new();
            }
            shard
                .placements
                .iter()
                .filter(|p| p.is_live)
                .map(|p| p.addr())
                .collect()
        };
        let mut shards = self.groups.iter().flat_map(|g| &g.shards);
        let Some(first) = shards.next() else {
            return Vec::new();
        };
        let mut holders = live(first);
        for shard in shards {
            let theirs = live(shard);
            holders.retain(|a| theirs.contains(a));
        }
        holders
    }

    /// The scan as the only leaf of a one-task stage on `worker` (router execution): every
    /// shard's placement on `worker` is read first, so the task is routed there (a reference
    /// table read whole by every task too: this is the only task).
    pub fn router_leaf(&self, worker: &str, partitions: usize) -> Result<Arc<dyn ExecutionPlan>> {
        let shards = self
            .groups
            .iter()
            .flat_map(|g| &g.shards)
            .map(|shard| leaf_shard(shard, Some(worker)))
            .collect();
        self.leaf(shards, partitions, LeafPartitions::Split)
    }
}

/// What a leaf reads of `shard`: each placement's snapshot files, the placement on `first`
/// (if any) before the others.
fn leaf_shard(shard: &ShardSnapshot, first: Option<&str>) -> LeafShard {
    LeafShard {
        shard_id: shard.shard_id,
        // a lost shard has no placement to read: its leaf fails naming it
        placements: match shard.state {
            shoal_catalog::ShardState::Lost => vec![],
            _ => {
                let mut placements: Vec<LeafPlacement> = shard
                    .placements
                    .iter()
                    .map(|p| LeafPlacement {
                        addr: p.addr(),
                        files: scan_files(shard.shard_id, &p.files),
                    })
                    .collect();
                if let Some(first) = first {
                    placements.sort_by_key(|p| p.addr != first);
                }
                placements
            }
        },
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
        if self.shard_group_partitioned {
            write!(f, ", colocated (partition = shard group)")?;
        }
        if self.whole_in_every_task {
            write!(f, ", reference join (every task reads the whole table)")?;
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

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
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
        let Some(group) = self.groups.get(partition).cloned() else {
            // a table with every shard pruned away still has one (empty) partition
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let read = ShardRead {
            cluster: Arc::clone(&self.cluster),
            table_name: self.table_name.clone(),
            base: ScanRequest {
                table_id: self.table_id,
                shards: vec![],
                table_schema: Arc::clone(&self.worker_schema),
                filters: self.filters.clone(),
                projection: self.projection.clone(),
                aggregate: self.aggregate.clone(),
                limit: self.limit,
            },
        };
        // The stream holds the snapshot guard: DataFusion drops the plan as soon as the
        // streams exist, and the files this snapshot names must stay until they are read.
        let guard = Arc::clone(&self._snapshot);
        let relabel = Arc::clone(&schema);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let stream = futures::stream::once(async move { read.open(group).await })
            .try_flatten()
            .map(move |batch| {
                let _held = &guard;
                if let Ok(b) = &batch {
                    let size = b.get_array_memory_size();
                    rows.add(b.num_rows());
                    bytes.add(size);
                    crate::metrics::scan_received(b.num_rows(), size);
                }
                // Workers name columns as the files do; the plan names them as the user.
                match batch {
                    Ok(b)
                        if b.schema()
                            .fields()
                            .iter()
                            .zip(relabel.fields())
                            .any(|(a, b)| a.name() != b.name()) =>
                    {
                        RecordBatch::try_new(Arc::clone(&relabel), b.columns().to_vec())
                            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
                    }
                    other => other,
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// A table's SQL column names and their stored names.
struct StoredNames(std::collections::HashMap<String, String>);

impl StoredNames {
    fn new(table_schema: &SchemaRef, stored: &[String]) -> Result<Self> {
        if stored.len() != table_schema.fields().len() {
            return Err(DataFusionError::Internal(format!(
                "{} stored names for {} columns",
                stored.len(),
                table_schema.fields().len()
            )));
        }
        Ok(StoredNames(
            table_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .zip(stored.iter().cloned())
                .collect(),
        ))
    }

    fn of(&self, name: &str) -> String {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    fn schema(&self, table_schema: &SchemaRef) -> Result<SchemaRef> {
        let fields: Vec<arrow::datatypes::Field> = table_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_name(self.of(f.name())))
            .collect();
        Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
    }

    /// `e` over stored names; named `alias` when given (so a worker's aggregate output keeps
    /// the names the coordinator's plan expects).
    fn rewrite(&self, e: &Expr, alias: Option<String>) -> Result<Expr> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        if self.0.iter().all(|(k, v)| k == v) {
            return Ok(e.clone());
        }
        let out = e
            .clone()
            .transform(|x| {
                Ok(match x {
                    Expr::Column(c) => Transformed::yes(Expr::Column(
                        datafusion::common::Column::new(c.relation.clone(), self.of(&c.name)),
                    )),
                    other => Transformed::no(other),
                })
            })?
            .data;
        Ok(match (alias, &out) {
            (_, Expr::Alias(_)) | (None, _) => out,
            (Some(a), _) => out.alias(a),
        })
    }
}

/// The shards one partition of a scan reads, all from one worker when they are healthy.
#[derive(Clone, Debug)]
struct ScanGroup {
    /// The worker asked first for every shard of the group: each shard's first live placement
    /// is there. `None` for a shard without any placement (lost), read alone to fail.
    worker: Option<String>,
    /// Placements of each shard, live ones first.
    shards: Vec<ShardSnapshot>,
}

/// Groups shards by the worker that serves them: one sub-plan, one round trip and one
/// partial aggregate per worker instead of per shard (32 shards on 3 workers are 3 requests).
fn group_by_worker(shards: &[ShardSnapshot]) -> Vec<ScanGroup> {
    let mut groups: Vec<ScanGroup> = Vec::new();
    for shard in shards {
        let mut shard = shard.clone();
        // live placements first; the catalog's order (primary first) otherwise
        shard.placements.sort_by_key(|p| !p.is_live);
        let worker = match shard.placements.first() {
            Some(p) if shard.state != shoal_catalog::ShardState::Lost => Some(p.addr()),
            _ => None,
        };
        match groups
            .iter_mut()
            .find(|g| worker.is_some() && g.worker == worker)
        {
            Some(group) => group.shards.push(shard),
            None => groups.push(ScanGroup {
                worker,
                shards: vec![shard],
            }),
        }
    }
    groups
}

type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

/// Opens the worker streams of one scan partition.
struct ShardRead {
    cluster: Arc<Cluster>,
    table_name: String,
    /// The request without its shards.
    base: ScanRequest,
}

impl ShardRead {
    async fn open(self, group: ScanGroup) -> Result<BatchStream> {
        let Some(worker) = group.worker.clone() else {
            let shard_id = group.shards.first().map_or(0, |s| s.shard_id);
            return Err(external(ClusterError::ShardUnavailable {
                message: format!(
                    "shard {shard_id} of table \"{}\" is lost: no placement holds it",
                    self.table_name
                ),
                hint: Some("Restore the node that held it, or drop and reload the table.".into()),
            }));
        };
        let mut streams = Vec::new();
        let mut remaining = group.shards;
        // A damaged file takes its shard to another placement; the group's other shards are
        // asked again on the same worker.
        while !remaining.is_empty() {
            let mut req = self.base.clone();
            req.shards = remaining
                .iter()
                .filter_map(|s| {
                    let p = s.placements.iter().find(|p| p.addr() == worker)?;
                    Some(scan_files(s.shard_id, &p.files))
                })
                .collect();
            let attempt = match self.cluster.worker(&worker) {
                Ok(client) => client.scan(&req).await.map_err(ClusterError::from),
                Err(e) => Err(e),
            };
            let failure = match attempt {
                Ok(stream) => {
                    streams.push(stream.map_err(external).boxed());
                    break;
                }
                Err(e) => e,
            };
            if let ClusterError::Worker(ShardStoreError::FileDamaged { shard_id, .. }) = &failure {
                self.report_damage(&failure);
                let shard_id = *shard_id;
                let Some(at) = remaining.iter().position(|s| s.shard_id == shard_id) else {
                    return Err(external(failure));
                };
                let damaged = remaining.remove(at);
                let text = failure.to_string();
                streams.push(
                    self.open_elsewhere(&damaged, &worker, &text, Some(failure))
                        .await?,
                );
                continue;
            }
            tracing::warn!(table = %self.table_name, worker = %worker, error = %failure,
                shards = remaining.len(), "shard read failed, trying other placements");
            // Shard by shard, each from its other placements; the rows of one shard come from
            // exactly one placement.
            let failure = failure.to_string();
            for shard in &remaining {
                streams.push(self.open_elsewhere(shard, &worker, &failure, None).await?);
            }
            break;
        }
        Ok(futures::stream::iter(streams).flatten().boxed())
    }

    /// Records a damaged file a worker refused to read.
    fn report_damage(&self, failure: &ClusterError) {
        if let ClusterError::Worker(ShardStoreError::FileDamaged {
            table_id,
            shard_id,
            name,
            worker,
            damage,
        }) = failure
        {
            self.cluster.record_damage(DamagedFileReport::found_now(
                worker,
                *table_id,
                *shard_id,
                name.clone(),
                damage.clone(),
                DamageSource::Query,
            ));
        }
    }

    /// One shard from the first of its placements other than `failed_worker` (which failed
    /// with `failure`) that answers. When none does and `damaged` is the damaged file that
    /// failed the first read, that is the error (XX001).
    async fn open_elsewhere(
        &self,
        shard: &ShardSnapshot,
        failed_worker: &str,
        failure: &str,
        damaged: Option<ClusterError>,
    ) -> Result<BatchStream> {
        let mut failures = vec![format!("{failed_worker}: {failure}")];
        for p in shard
            .placements
            .iter()
            .filter(|p| p.addr() != failed_worker)
        {
            let mut req = self.base.clone();
            req.shards = vec![scan_files(shard.shard_id, &p.files)];
            let client = self.cluster.worker(&p.addr()).map_err(external)?;
            match client.scan(&req).await {
                Ok(stream) => return Ok(stream.map_err(external).boxed()),
                Err(e) => {
                    let e = ClusterError::from(e);
                    self.report_damage(&e);
                    tracing::warn!(shard = shard.shard_id, worker = %p.addr(), error = %e, "shard read failed, trying another placement");
                    failures.push(format!("{}: {e}", p.addr()));
                }
            }
        }
        if let Some(damaged) = damaged {
            return Err(external(damaged));
        }
        Err(external(ClusterError::ShardUnavailable {
            message: format!(
                "could not read shard {} of table \"{}\" from worker {}",
                shard.shard_id,
                self.table_name,
                failures.join("; ")
            ),
            hint: Some("Check that the worker is running: SELECT * FROM shoal.nodes;".into()),
        }))
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}
