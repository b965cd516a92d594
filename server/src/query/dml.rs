//! UPDATE and DELETE on immutable files, copy-on-write per shard.
//!
//! The statement reads each shard it may touch whole (shards the WHERE clause pins by the
//! distribution column are the only ones read), numbering its rows; an ordinary DataFusion
//! query over those rows finds the matching ones, so WHERE on any column, `UPDATE ... FROM`,
//! `DELETE ... USING`, subqueries and `RETURNING` plan as any SELECT does. Every shard where
//! a row matched is rewritten: its kept rows and the new row versions become new files on all
//! its placements, and its old files leave the file list in the same catalog commit. A
//! concurrent writer that replaced one of those files first makes the commit fail with 40001.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::ParamValues;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self as sql, AssignmentTarget, FromTable, SelectItem, Statement, TableFactor, TableWithJoins,
    UpdateTableFromKind,
};
use futures::StreamExt;
use shoal_catalog::{FileChanges, NewFile, RemovedFile, ShardSnapshot, TableInfo, TableSnapshot};
use shoal_sql_functions::types::{stored_names, table_schema};
use shoal_sql_functions::{to_record, Cluster, ClusterError};

use crate::frontend::errors::{from_cluster, from_datafusion, PgError};
use crate::frontend::session::{Session, StagedWrite};
use crate::query::provider::{statement_snapshot, DistributedTable};
use crate::query::scan::{ShardScanArgs, ShardScanExec};
use crate::query::sink::staged_files;
use shoal_sql_functions::conform;

/// The hidden columns the target table has while its UPDATE or DELETE is planned.
const SHARD_COL: &str = "__shoal_shard";
const ROW_COL: &str = "__shoal_row";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmlKind {
    Update,
    Delete,
}

impl DmlKind {
    pub fn tag(self) -> &'static str {
        match self {
            DmlKind::Update => "UPDATE",
            DmlKind::Delete => "DELETE",
        }
    }
}

/// An UPDATE or DELETE, taken apart.
#[derive(Clone, Debug)]
pub struct DmlStatement {
    pub kind: DmlKind,
    pub table: String,
    /// The name the statement gives the target (its alias, else its name).
    qualifier: String,
    /// `FROM t AS a`, as SQL.
    target_sql: String,
    /// The other tables of `UPDATE ... FROM` / `DELETE ... USING`, as SQL.
    others: Vec<String>,
    selection: Option<String>,
    /// `SET` assignments: column name and expression SQL.
    assignments: Vec<(String, String)>,
    returning: Option<Vec<SelectItem>>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn target_of(t: &TableWithJoins) -> Result<(String, String, String), PgError> {
    if !t.joins.is_empty() {
        return Err(PgError::new(
            "42601",
            "the target of UPDATE or DELETE must be a single table",
        ));
    }
    let TableFactor::Table { name, alias, .. } = &t.relation else {
        return Err(PgError::new(
            "42601",
            "the target of UPDATE or DELETE must be a table",
        ));
    };
    let table = crate::frontend::hook::object_name(name);
    let qualifier = alias
        .as_ref()
        .map_or(table.clone(), |a| a.name.value.clone());
    let sql = match alias {
        Some(a) => format!("{} AS {}", quote(&table), quote(&a.name.value)),
        None => quote(&table),
    };
    Ok((table, qualifier, sql))
}

impl DmlStatement {
    pub fn parse(stmt: &Statement) -> Option<Result<DmlStatement, PgError>> {
        match stmt {
            Statement::Update(u) => Some(Self::update(u)),
            Statement::Delete(d) => Some(Self::delete(d)),
            _ => None,
        }
    }

    fn update(u: &sql::Update) -> Result<DmlStatement, PgError> {
        if u.limit.is_some() || !u.order_by.is_empty() {
            return Err(PgError::new("42601", "UPDATE takes no ORDER BY or LIMIT"));
        }
        let (table, qualifier, target_sql) = target_of(&u.table)?;
        let others = match &u.from {
            None => vec![],
            Some(UpdateTableFromKind::AfterSet(v) | UpdateTableFromKind::BeforeSet(v)) => {
                v.iter().map(|t| t.to_string()).collect()
            }
        };
        let mut assignments = Vec::new();
        for a in &u.assignments {
            let AssignmentTarget::ColumnName(name) = &a.target else {
                return Err(PgError::new(
                    "0A000",
                    "UPDATE ... SET (a, b) = (...) is not supported",
                )
                .with_hint(Some(
                    "Assign each column on its own: SET a = ..., b = ...".into(),
                )));
            };
            let column = crate::frontend::hook::object_name(name);
            if assignments.iter().any(|(c, _)| *c == column) {
                return Err(PgError::new(
                    "42601",
                    format!("multiple assignments to same column \"{column}\""),
                ));
            }
            assignments.push((column, a.value.to_string()));
        }
        Ok(DmlStatement {
            kind: DmlKind::Update,
            table,
            qualifier,
            target_sql,
            others,
            selection: u.selection.as_ref().map(|e| e.to_string()),
            assignments,
            returning: u.returning.clone(),
        })
    }

    fn delete(d: &sql::Delete) -> Result<DmlStatement, PgError> {
        if d.limit.is_some() || !d.order_by.is_empty() || !d.tables.is_empty() {
            return Err(PgError::new(
                "42601",
                "DELETE takes one table and no ORDER BY or LIMIT",
            ));
        }
        let from = match &d.from {
            FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v,
        };
        let [target] = from.as_slice() else {
            return Err(PgError::new(
                "42601",
                "DELETE FROM takes one table; name the others in USING",
            ));
        };
        let (table, qualifier, target_sql) = target_of(target)?;
        Ok(DmlStatement {
            kind: DmlKind::Delete,
            table,
            qualifier,
            target_sql,
            others: d.using.iter().flatten().map(|t| t.to_string()).collect(),
            selection: d.selection.as_ref().map(|e| e.to_string()),
            assignments: vec![],
            returning: d.returning.clone(),
        })
    }

    fn source_sql(&self) -> String {
        let mut from = vec![self.target_sql.clone()];
        from.extend(self.others.iter().cloned());
        let mut sql = format!(" FROM {}", from.join(", "));
        if let Some(w) = &self.selection {
            sql.push_str(&format!(" WHERE {w}"));
        }
        sql
    }

    /// The RETURNING list as SQL, `*` standing for the target's columns.
    fn returning_sql(&self, columns: &[String], qualify: bool) -> Option<String> {
        let items = self.returning.as_ref()?;
        let q = quote(&self.qualifier);
        let list: Vec<String> = items
            .iter()
            .map(|item| match item {
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => columns
                    .iter()
                    .map(|c| {
                        if qualify {
                            format!("{q}.{}", quote(c))
                        } else {
                            quote(c)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            })
            .collect();
        Some(list.join(", "))
    }

    /// The query that finds the affected rows: their shard and row ids, then (UPDATE) every
    /// column's new value, or (DELETE) the RETURNING list.
    fn find_query(&self, info: &TableInfo) -> Result<String, PgError> {
        let q = quote(&self.qualifier);
        let mut select = vec![format!("{q}.{SHARD_COL}"), format!("{q}.{ROW_COL}")];
        let columns: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        match self.kind {
            DmlKind::Update => {
                for (c, _) in &self.assignments {
                    if !columns.contains(c) {
                        return Err(PgError::new(
                            "42703",
                            format!(
                                "column \"{c}\" of relation \"{}\" does not exist",
                                self.table
                            ),
                        ));
                    }
                }
                for c in &columns {
                    match self.assignments.iter().find(|(a, _)| a == c) {
                        Some((_, e)) => select.push(format!("({e}) AS {}", quote(c))),
                        None => select.push(format!("{q}.{}", quote(c))),
                    }
                }
            }
            DmlKind::Delete => {
                if let Some(r) = self.returning_sql(&columns, true) {
                    select.push(r);
                }
            }
        }
        Ok(format!("SELECT {}{}", select.join(", "), self.source_sql()))
    }

    /// A plan with the statement's parameters and its RETURNING columns (none without
    /// RETURNING), for Parse and Describe: it reads no hidden column.
    pub async fn describe_plan(
        &self,
        ctx: &SessionContext,
        info: &TableInfo,
    ) -> Result<LogicalPlan, PgError> {
        let state = ctx.state();
        let plan = |sql_text: String| {
            let state = &state;
            async move {
                state
                    .create_logical_plan(&sql_text)
                    .await
                    .map_err(|e| from_datafusion(&e))
            }
        };
        let columns: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
        let mut inputs: Vec<String> = self
            .assignments
            .iter()
            .map(|(_, e)| format!("({e})"))
            .collect();
        inputs.push("1".into());
        // Every parameter (SET values and WHERE), under an empty projection: no columns.
        let params = plan(format!("SELECT {}{}", inputs.join(", "), self.source_sql())).await?;
        let params = datafusion::logical_expr::LogicalPlanBuilder::from(params)
            .project(Vec::<Expr>::new())
            .and_then(|b| b.build())
            .map_err(|e| from_datafusion(&e))?;
        let Some(returning) = self.returning_sql(&columns, true) else {
            return Ok(params);
        };
        let shown = plan(format!("SELECT {returning}{}", self.source_sql())).await?;
        datafusion::logical_expr::LogicalPlanBuilder::from(shown)
            .cross_join(params)
            .and_then(|b| b.build())
            .map_err(|e| from_datafusion(&e))
    }
}

/// What an UPDATE or DELETE did.
pub struct DmlOutcome {
    pub count: u64,
    /// The RETURNING rows, if asked for.
    pub returning: Option<Vec<RecordBatch>>,
}

/// The target table of the running UPDATE or DELETE, read with row ids.
pub struct DmlTarget {
    cluster: Arc<Cluster>,
    info: TableInfo,
    read: Mutex<ReadState>,
}

#[derive(Default)]
struct ReadState {
    /// The snapshot every read of the statement comes from.
    snapshot: Option<TableSnapshot>,
    /// Each shard read so far, its rows in row-id order.
    shards: BTreeMap<i64, Vec<RecordBatch>>,
}

impl fmt::Debug for DmlTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmlTarget({})", self.info.name)
    }
}

impl DmlTarget {
    pub fn table_name(&self) -> &str {
        &self.info.name
    }

    pub fn provider(self: &Arc<Self>) -> Arc<dyn TableProvider> {
        let mut fields: Vec<Field> = table_schema(&self.info.columns)
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(SHARD_COL, DataType::Int64, false));
        fields.push(Field::new(ROW_COL, DataType::UInt64, false));
        Arc::new(DmlTable {
            target: Arc::clone(self),
            schema: Arc::new(Schema::new(fields)),
        })
    }

    fn snapshot(&self) -> Result<TableSnapshot, ClusterError> {
        let mut st = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = &st.snapshot {
            return Ok(s.clone());
        }
        let s = statement_snapshot(&self.cluster, &self.info)?;
        st.snapshot = Some(s.clone());
        Ok(s)
    }

    async fn read_shard(
        &self,
        shard: &ShardSnapshot,
        total: usize,
        task: Arc<TaskContext>,
    ) -> Result<Vec<RecordBatch>, ClusterError> {
        if let Some(b) = self
            .read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shards
            .get(&shard.shard_id)
        {
            return Ok(b.clone());
        }
        let schema = table_schema(&self.info.columns);
        let mut batches = Vec::new();
        if shard.placements.iter().any(|p| !p.files.is_empty()) {
            let exec = ShardScanExec::new(
                Arc::clone(&self.cluster),
                ShardScanArgs {
                    table_name: self.info.name.clone(),
                    table_id: self.info.table_id,
                    stored_names: stored_names(&self.info.columns),
                    table_schema: schema,
                    projection: None,
                    filters: vec![],
                    aggregate: None,
                    limit: None,
                    shards: vec![shard.clone()],
                    total_shards: total,
                    snapshot: Arc::new(self.cluster.begin_statement()),
                    distribution_column: None,
                    reference: self.info.kind == shoal_catalog::TableKind::Reference,
                },
            )?;
            let mut stream = exec.execute(0, task)?;
            while let Some(b) = stream.next().await {
                let b = b?;
                if b.num_rows() > 0 {
                    batches.push(b);
                }
            }
        }
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shards
            .insert(shard.shard_id, batches.clone());
        Ok(batches)
    }
}

struct DmlTable {
    target: Arc<DmlTarget>,
    schema: SchemaRef,
}

impl fmt::Debug for DmlTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmlTable({})", self.target.info.name)
    }
}

#[async_trait]
impl TableProvider for DmlTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Seen only to skip shards the distribution column rules out; all are re-checked.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let target = &self.target;
        let snapshot = target.snapshot().map_err(ext)?;
        let total = snapshot.shards.len();
        let table = DistributedTable::new(Arc::clone(&target.cluster), target.info.clone());
        let shards = table.prune(snapshot.shards, filters);
        let task = state.task_ctx();
        let mut out = Vec::new();
        for shard in &shards {
            let batches = target
                .read_shard(shard, total, Arc::clone(&task))
                .await
                .map_err(ext)?;
            let mut row = 0u64;
            for b in batches {
                let n = b.num_rows();
                let mut cols: Vec<ArrayRef> = b.columns().to_vec();
                cols.push(Arc::new(Int64Array::from(vec![shard.shard_id; n])));
                cols.push(Arc::new(UInt64Array::from_iter_values(row..row + n as u64)));
                row += n as u64;
                out.push(RecordBatch::try_new(Arc::clone(&self.schema), cols)?);
            }
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[out],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}

fn ext(e: ClusterError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Clears the session's DML target when the statement ends, however it ends.
struct TargetSet<'a>(&'a Session);

impl Drop for TargetSet<'_> {
    fn drop(&mut self) {
        self.0.set_dml_target(None);
    }
}

/// Runs an UPDATE or DELETE in `session` (staged in its transaction, else committed).
pub async fn run(
    cluster: &Arc<Cluster>,
    ctx: &SessionContext,
    session: &Arc<Session>,
    stmt: &DmlStatement,
    params: &ParamValues,
) -> Result<DmlOutcome, PgError> {
    let cerr = |e: ClusterError| from_cluster(&e);
    let dferr = |e: DataFusionError| from_datafusion(&e);
    let in_txn = session.in_transaction();
    if in_txn {
        session.check_writable(stmt.kind.tag()).map_err(cerr)?;
    }
    let info = cluster.table(&stmt.table).map_err(cerr)?;
    // Placements are read only once admitted (see `write_statement`).
    let _permit = cluster.admit_write(&stmt.table).await.map_err(cerr)?;
    let _statement = cluster.begin_statement();
    let target = Arc::new(DmlTarget {
        cluster: Arc::clone(cluster),
        info: info.clone(),
        read: Mutex::new(ReadState::default()),
    });

    // DELETE of every row: no row needs reading.
    if stmt.kind == DmlKind::Delete
        && stmt.selection.is_none()
        && stmt.others.is_empty()
        && stmt.returning.is_none()
    {
        let snapshot = target.snapshot().map_err(cerr)?;
        let count = snapshot
            .shards
            .iter()
            .map(|s| s.placements.first().map_or(0, |p| p.rows()))
            .sum();
        let shards: Vec<i64> = snapshot.shards.iter().map(|s| s.shard_id).collect();
        publish(cluster, session, &snapshot, &shards, vec![], in_txn).await?;
        return Ok(DmlOutcome {
            count,
            returning: None,
        });
    }

    let query = stmt.find_query(&info)?;
    session.set_dml_target(Some(Arc::clone(&target)));
    let found = {
        let _clear = TargetSet(session);
        let df = ctx.sql(&query).await.map_err(dferr)?;
        let df = df.with_param_values(params.clone()).map_err(dferr)?;
        collect(df).await?
    };

    // The affected rows, each once (a row joined to several others is changed once).
    let mut hits: HashMap<i64, HashSet<u64>> = HashMap::new();
    let mut chosen: Vec<RecordBatch> = Vec::new();
    for batch in &found {
        let shard_ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| PgError::new("XX000", "row ids of UPDATE/DELETE have a bad type"))?;
        let rows = batch
            .column(1)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| PgError::new("XX000", "row ids of UPDATE/DELETE have a bad type"))?;
        let mut pick = Vec::new();
        for i in 0..batch.num_rows() {
            if hits
                .entry(shard_ids.value(i))
                .or_default()
                .insert(rows.value(i))
            {
                pick.push(i as u32);
            }
        }
        let picked = take_record_batch(batch, &UInt32Array::from(pick))
            .map_err(|e| from_datafusion(&e.into()))?;
        chosen.push(
            picked
                .project(&(2..batch.num_columns()).collect::<Vec<_>>())
                .map_err(|e| from_datafusion(&e.into()))?,
        );
    }
    let count: u64 = hits.values().map(|s| s.len() as u64).sum();
    let snapshot = target.snapshot().map_err(cerr)?;
    let touched: Vec<i64> = hits.keys().copied().collect();

    // What the touched shards keep, and (UPDATE) the new row versions.
    let mut rewrite: Vec<RecordBatch> = Vec::new();
    {
        let st = target.read.lock().unwrap_or_else(|e| e.into_inner());
        for shard in &touched {
            let gone = &hits[shard];
            let mut row = 0u64;
            for b in st.shards.get(shard).into_iter().flatten() {
                let keep: arrow::array::BooleanArray = (0..b.num_rows() as u64)
                    .map(|i| Some(!gone.contains(&(row + i))))
                    .collect();
                row += b.num_rows() as u64;
                let kept = filter_record_batch(b, &keep).map_err(|e| from_datafusion(&e.into()))?;
                if kept.num_rows() > 0 {
                    rewrite.push(kept);
                }
            }
        }
    }
    let returning = match stmt.kind {
        DmlKind::Delete => stmt.returning.as_ref().map(|_| chosen.clone()),
        DmlKind::Update => {
            let schema = table_schema(&info.columns);
            // With RETURNING, checked here too (the writer checks every write): RETURNING
            // shows the rows as stored.
            let checks = if stmt.returning.is_some() {
                shoal_sql_functions::value_checks(&info)
            } else {
                Vec::new()
            };
            let mut new_rows = Vec::new();
            for b in &chosen {
                if b.num_rows() > 0 {
                    let row = conform(b, &schema).map_err(cerr)?;
                    new_rows.push(shoal_sql_functions::check_values(row, &checks).map_err(cerr)?);
                }
            }
            let returning = match stmt.returning_sql(
                &info
                    .columns
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
                false,
            ) {
                Some(list) => {
                    let local = SessionContext::new();
                    let table = datafusion::datasource::MemTable::try_new(
                        Arc::clone(&schema),
                        vec![new_rows.clone()],
                    )
                    .map_err(dferr)?;
                    local
                        .register_table(stmt.qualifier.as_str(), Arc::new(table))
                        .map_err(dferr)?;
                    let df = local
                        .sql(&format!("SELECT {list} FROM {}", quote(&stmt.qualifier)))
                        .await
                        .map_err(dferr)?;
                    Some(collect(df).await?)
                }
                None => None,
            };
            rewrite.extend(new_rows);
            returning
        }
    };
    if count > 0 {
        publish(cluster, session, &snapshot, &touched, rewrite, in_txn).await?;
    }
    Ok(DmlOutcome { count, returning })
}

/// Fails with a conflict when a file of `removed` is no longer in the catalog's list (and is
/// not one the transaction staged itself).
fn still_listed(
    cluster: &Cluster,
    snapshot: &TableSnapshot,
    removed: &[RemovedFile],
    staged: &HashSet<(i64, String)>,
) -> Result<(), ClusterError> {
    let now = cluster.catalog().snapshot(&snapshot.table.name)?;
    let listed: HashSet<(i64, &str)> = now
        .shards
        .iter()
        .flat_map(|s| s.placements.iter())
        .flat_map(|p| {
            p.files
                .iter()
                .map(move |f| (p.placement_id, f.name.as_str()))
        })
        .collect();
    for r in removed {
        if !listed.contains(&(r.placement_id, r.name.as_str()))
            && !staged.contains(&(r.placement_id, r.name.clone()))
        {
            return Err(ClusterError::Conflict {
                message: "could not serialize access due to concurrent update".into(),
            });
        }
    }
    Ok(())
}

/// A query's rows; at least one batch, so that even no rows carry the schema.
async fn collect(df: datafusion::dataframe::DataFrame) -> Result<Vec<RecordBatch>, PgError> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut batches = df.collect().await.map_err(|e| from_datafusion(&e))?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Replaces the files of `shards` (all placements) with files holding `rows`, staged in the
/// session's transaction or committed now.
async fn publish(
    cluster: &Cluster,
    session: &Session,
    snapshot: &TableSnapshot,
    shards: &[i64],
    rows: Vec<RecordBatch>,
    in_txn: bool,
) -> Result<(), PgError> {
    let cerr = |e: ClusterError| from_cluster(&e);
    let removed: Vec<RemovedFile> = snapshot
        .shards
        .iter()
        .filter(|s| shards.contains(&s.shard_id))
        .flat_map(|s| s.placements.iter())
        .flat_map(|p| {
            p.files.iter().map(move |f| RemovedFile {
                placement_id: p.placement_id,
                name: f.name.clone(),
            })
        })
        .collect();
    let mut files = Vec::new();
    if !rows.is_empty() {
        let mut writer = cluster.writer_for(snapshot).map_err(cerr)?;
        for b in rows {
            writer.write(b).await.map_err(cerr)?;
        }
        files = writer.finish().await.map_err(cerr)?;
    }
    let added = staged_files(snapshot, &files).map_err(cerr)?;
    if in_txn {
        // Another transaction that already replaced one of these files makes COMMIT fail;
        // fail now instead, as PostgreSQL's REPEATABLE READ does at the UPDATE. (One that
        // commits later is still caught at COMMIT.) Files this transaction wrote itself are
        // not in the catalog's list and need no check.
        let staged_here: HashSet<(i64, String)> = session.staged_names();
        if let Err(e) = still_listed(cluster, snapshot, &removed, &staged_here) {
            crate::frontend::session::delete_staged(cluster, snapshot.table.table_id, &added).await;
            return Err(cerr(e));
        }
        session.stage(StagedWrite {
            table_id: snapshot.table.table_id,
            table_name: snapshot.table.name.clone(),
            added,
            removed,
        });
        return Ok(());
    }
    let changes = FileChanges {
        removed,
        added: files
            .iter()
            .map(|f| NewFile {
                placement_id: f.placement_key,
                file: to_record(f),
            })
            .collect(),
    };
    if let Err(e) = cluster.commit_changes(&changes) {
        crate::frontend::session::delete_staged(cluster, snapshot.table.table_id, &added).await;
        return Err(cerr(e));
    }
    Ok(())
}
