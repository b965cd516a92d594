//! Table providers: the `public` schema backed by the catalog (every Shoal table is a
//! [`DistributedTable`]), and [`LiveTable`] for views computed from the catalog at scan time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::Serializeable;
use shoal_catalog::{ShardSnapshot, TableInfo, TableKind};
use shoal_sql_functions::types::{arrow_type, table_schema};
use shoal_sql_functions::{routing, Cluster, ClusterError};

use crate::query::scan::{ShardScanArgs, ShardScanExec};
use crate::query::sink::InsertSink;

pub fn external(e: impl Into<ClusterError>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

/// A view's rows, computed when a query scans it.
pub type ViewFn = Arc<dyn Fn() -> std::result::Result<RecordBatch, ClusterError> + Send + Sync>;

/// A read-only table whose rows are computed from the catalog at scan time.
pub struct LiveTable {
    schema: SchemaRef,
    fetch: ViewFn,
}

impl LiveTable {
    pub fn new(schema: SchemaRef, fetch: ViewFn) -> Arc<Self> {
        Arc::new(LiveTable { schema, fetch })
    }
}

impl fmt::Debug for LiveTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveTable").finish()
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.fetch)().map_err(external)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}

/// The `public` schema: every table in the catalog, plus the Citus compatibility views.
pub struct ShoalSchemaProvider {
    cluster: Arc<Cluster>,
    views: HashMap<String, Arc<dyn TableProvider>>,
    /// Plans the users' views (`CREATE VIEW`, kept in the catalog as SQL); set once the
    /// session that holds this schema is complete.
    planner: Arc<std::sync::OnceLock<datafusion::execution::SessionState>>,
}

impl ShoalSchemaProvider {
    pub fn new(
        cluster: Arc<Cluster>,
        views: HashMap<String, Arc<dyn TableProvider>>,
        planner: Arc<std::sync::OnceLock<datafusion::execution::SessionState>>,
    ) -> Self {
        ShoalSchemaProvider {
            cluster,
            views,
            planner,
        }
    }
}

impl fmt::Debug for ShoalSchemaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShoalSchemaProvider").finish()
    }
}

#[async_trait]
impl SchemaProvider for ShoalSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.cluster.catalog().table_names().unwrap_or_else(|e| {
            tracing::error!(error = %e, "catalog read failed while listing tables");
            vec![]
        });
        names.extend(self.views.keys().cloned());
        names.extend(self.cluster.catalog().view_names().unwrap_or_default());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(v) = self.views.get(name) {
            return Ok(Some(Arc::clone(v)));
        }
        if let Some(target) = crate::frontend::session::current().and_then(|s| s.dml_target(name)) {
            return Ok(Some(target.provider()));
        }
        if let Some(query) = self.cluster.catalog().view_query(name).map_err(external)? {
            let Some(state) = self.planner.get() else {
                return Err(DataFusionError::Plan(format!(
                    "view \"{name}\" read before the session was ready"
                )));
            };
            let plan = state.create_logical_plan(&query).await?;
            return Ok(Some(Arc::new(datafusion::catalog::view::ViewTable::new(
                plan,
                Some(query),
            ))));
        }
        let info = self
            .cluster
            .catalog()
            .table_by_name(name)
            .map_err(external)?;
        let Some(info) = info else {
            return Ok(None);
        };
        let mut table = DistributedTable::new(Arc::clone(&self.cluster), info);
        if table.info.columns.iter().any(|c| c.default.is_some()) {
            let Some(state) = self.planner.get() else {
                return Err(DataFusionError::Plan(format!(
                    "table \"{name}\" read before the session was ready"
                )));
            };
            table.defaults = crate::query::column_defaults::default_exprs(state, &table.info)?;
        }
        Ok(Some(Arc::new(table) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.views.contains_key(name)
            || matches!(self.cluster.catalog().table_by_name(name), Ok(Some(_)))
            || matches!(self.cluster.catalog().view_query(name), Ok(Some(_)))
    }
}

/// A Shoal table (distributed, reference or single-shard) as DataFusion sees it.
pub struct DistributedTable {
    cluster: Arc<Cluster>,
    pub(crate) info: TableInfo,
    schema: SchemaRef,
    /// The default expression of each column that has one (for INSERTs that omit it).
    defaults: HashMap<String, Expr>,
}

impl fmt::Debug for DistributedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedTable")
            .field("name", &self.info.name)
            .finish()
    }
}

impl DistributedTable {
    pub fn new(cluster: Arc<Cluster>, info: TableInfo) -> Self {
        let schema = table_schema(&info.columns);
        DistributedTable {
            cluster,
            info,
            schema,
            defaults: Default::default(),
        }
    }

    pub fn cluster(&self) -> Arc<Cluster> {
        Arc::clone(&self.cluster)
    }

    pub fn clone_handle(&self) -> DistributedTable {
        DistributedTable {
            cluster: Arc::clone(&self.cluster),
            info: self.info.clone(),
            schema: Arc::clone(&self.schema),
            defaults: self.defaults.clone(),
        }
    }

    /// Values the filters pin the distribution column to, if they do.
    fn pinned_values(&self, filters: &[Expr]) -> Option<Vec<ScalarValue>> {
        let col = self.info.distribution_column.as_deref()?;
        let is_dist = |e: &Expr| matches!(e, Expr::Column(c) if c.name == col);
        for f in filters {
            match f {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) => match (left.as_ref(), right.as_ref()) {
                    (l, Expr::Literal(v, _)) if is_dist(l) => return Some(vec![v.clone()]),
                    (Expr::Literal(v, _), r) if is_dist(r) => return Some(vec![v.clone()]),
                    _ => {}
                },
                Expr::InList(il) if !il.negated && is_dist(&il.expr) => {
                    let mut vals = Vec::new();
                    for e in &il.list {
                        match e {
                            Expr::Literal(v, _) => vals.push(v.clone()),
                            _ => return None,
                        }
                    }
                    return Some(vals);
                }
                _ => {}
            }
        }
        None
    }

    pub fn prune(&self, shards: Vec<ShardSnapshot>, filters: &[Expr]) -> Vec<ShardSnapshot> {
        if self.info.kind != TableKind::Distributed {
            return shards;
        }
        let Some(values) = self.pinned_values(filters) else {
            return shards;
        };
        let Some(col) = self.info.distribution_column.as_deref() else {
            return shards;
        };
        let Some(def) = self.info.columns.iter().find(|c| c.name == col) else {
            return shards;
        };
        let ty = arrow_type(&def.sql_type);
        let mut hashes = Vec::new();
        for v in &values {
            if v.is_null() {
                continue; // `col = NULL` matches nothing
            }
            match routing::hash_scalar(v, &ty, col) {
                Ok(h) => hashes.push(h),
                Err(_) => return shards, // cannot tell: read everything
            }
        }
        let ranges = routing::ShardRanges::new(shards.iter().map(|s| (s.hash_min, s.hash_max)));
        let wanted: std::collections::HashSet<usize> =
            hashes.iter().filter_map(|h| ranges.shard_of(*h)).collect();
        shards
            .into_iter()
            .enumerate()
            .filter(|(i, _)| wanted.contains(i))
            .map(|(_, s)| s)
            .collect()
    }
}

/// The table as the running statement reads it: inside a transaction its view (its snapshot
/// and its own writes), else the catalog's latest.
pub fn statement_snapshot(
    cluster: &Cluster,
    info: &TableInfo,
) -> std::result::Result<shoal_catalog::TableSnapshot, ClusterError> {
    if let Some(session) = crate::frontend::session::current() {
        if let Some(view) = session.view(&info.name)? {
            if view.table.table_id != info.table_id {
                return Err(ClusterError::Conflict {
                    message: format!(
                        "table \"{}\" was dropped and created again while this transaction ran",
                        info.name
                    ),
                });
            }
            return Ok(view);
        }
    }
    Ok(cluster.catalog().snapshot(&info.name)?)
}

/// Filters sent to workers name columns without the table qualifier.
pub fn unqualify(e: &Expr) -> Option<Expr> {
    let e = e
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    // Only what a worker can decode is sent; the coordinator re-checks every filter anyway.
    // A worker knows DataFusion's own functions, not those the coordinator adds
    // (`jsonb_contains`, `shoal_*`, pg_catalog's).
    let mut coordinator_only = false;
    e.apply(|e| {
        if let Expr::ScalarFunction(f) = e {
            if !worker_functions().contains(f.name()) {
                coordinator_only = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    if coordinator_only {
        return None;
    }
    e.to_bytes().ok()?;
    Some(e)
}

/// The scalar functions a worker's session has: DataFusion's defaults.
fn worker_functions() -> &'static std::collections::HashSet<String> {
    static NAMES: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        datafusion::prelude::SessionContext::new()
            .state()
            .scalar_functions()
            .keys()
            .cloned()
            .collect()
    })
}

#[async_trait]
impl TableProvider for DistributedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: workers filter next to the data, and the coordinator filters again, so a
        // filter a worker cannot evaluate is never a wrong answer.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The snapshot guard is taken before the catalog read: files replaced after this point
        // stay on disk until the plan is dropped.
        let guard = Arc::new(self.cluster.begin_statement());
        let snapshot = statement_snapshot(&self.cluster, &self.info).map_err(external)?;
        let total = snapshot.shards.len();
        // The snapshot's schema may be newer than the one this provider was built with.
        let schema = table_schema(&snapshot.table.columns);
        if schema.fields().len() != self.schema.fields().len() {
            return Err(DataFusionError::Plan(format!(
                "table \"{}\" changed while the query was planned; retry",
                self.info.name
            )));
        }
        let shards = self.prune(snapshot.shards, filters);
        let worker_filters: Vec<Expr> = filters.iter().filter_map(unqualify).collect();
        Ok(Arc::new(ShardScanExec::new(
            Arc::clone(&self.cluster),
            ShardScanArgs {
                table_name: self.info.name.clone(),
                table_id: self.info.table_id,
                stored_names: shoal_sql_functions::types::stored_names(&snapshot.table.columns),
                table_schema: schema,
                projection: projection.cloned(),
                filters: worker_filters,
                aggregate: None,
                limit,
                shards,
                total_shards: total,
                snapshot: guard,
                distribution_column: match snapshot.table.kind {
                    TableKind::Distributed => snapshot.table.distribution_column.clone(),
                    _ => None,
                },
                reference: snapshot.table.kind == TableKind::Reference,
            },
        )?))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} is not supported"
            )));
        }
        let sink = InsertSink::new(
            Arc::clone(&self.cluster),
            self.info.name.clone(),
            Arc::clone(&self.schema),
            crate::frontend::session::current(),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}
