//! The DDL statements the hook answers itself: tables, views, indexes and keys, columns.

use super::*;

/// A CREATE whose relation exists already: with IF NOT EXISTS a NOTICE and the command's tag,
/// as PostgreSQL; else 42P07.
async fn relation_exists(
    client: &mut dyn HookClient,
    name: &str,
    if_not_exists: bool,
    command: &str,
) -> PgWireResult<Response> {
    if if_not_exists {
        notice(
            client,
            "NOTICE",
            &format!("relation \"{name}\" already exists, skipping"),
        )
        .await?;
        return tag(command);
    }
    Err(PgError::new("42P07", format!("relation \"{name}\" already exists")).into_pgwire())
}

impl ShoalHook {
    /// `ALTER TABLE ... ADD PRIMARY KEY | UNIQUE`: recorded as an index (not enforced, with a NOTICE); a primary key makes its columns NOT NULL, refused if rows hold NULLs there.
    pub(super) async fn add_key(
        &self,
        table: String,
        key: KeyRequest,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        let columns = &key.columns;
        let primary = key.constraint == KeyConstraint::PrimaryKey;
        if let Some(c) = columns
            .iter()
            .find(|c| !info.columns.iter().any(|ic| &ic.name == *c))
        {
            return Err(PgError::new(
                "42703",
                format!("column \"{c}\" of relation \"{table}\" does not exist"),
            )
            .into_pgwire());
        }
        if primary
            && visible_indexes(cluster, None)?.iter().any(|i| {
                i.table_id == info.table_id && i.constraint == Some(KeyConstraint::PrimaryKey)
            })
        {
            return Err(PgError::new(
                "42P16",
                format!("multiple primary keys for table \"{table}\" are not allowed"),
            )
            .into_pgwire());
        }
        let names = key_index_names(cluster, None, &table, std::slice::from_ref(&key))?;
        if primary {
            let added = cluster
                .require_not_null(&table, columns)
                .await
                .map_err(|e| pg(&e))?;
            // As in PostgreSQL, rows already holding a NULL there refuse the key.
            for c in &added {
                let sql = format!(
                    "SELECT count(*) FROM {} WHERE {} IS NULL",
                    quote_ident(&table),
                    quote_ident(c)
                );
                let nulls = async {
                    let batches = ctx.sql(&sql).await?.collect().await?;
                    let n = batches
                        .first()
                        .and_then(|b| {
                            arrow::array::AsArray::as_primitive_opt::<arrow::datatypes::Int64Type>(
                                b.column(0),
                            )
                        })
                        .map_or(0, |a| a.value(0));
                    Ok::<i64, datafusion::error::DataFusionError>(n)
                }
                .await;
                let failed = match nulls {
                    Ok(0) => None,
                    Ok(_) => Some(PgError::new(
                        "23502",
                        format!("column \"{c}\" of relation \"{table}\" contains null values"),
                    )),
                    Err(e) => Some(from_datafusion(&e)),
                };
                if let Some(e) = failed {
                    cluster.allow_null(&table, &added).map_err(|e| pg(&e))?;
                    return Err(e.into_pgwire());
                }
            }
        }
        record_key_indexes(cluster, None, &info, &names)?;
        notice(client, "NOTICE", KEYS_NOT_ENFORCED).await?;
        tag("ALTER TABLE")
    }

    /// `ALTER TABLE ... DROP CONSTRAINT [IF EXISTS]` of a key.
    pub(super) async fn drop_constraint(
        &self,
        table: String,
        name: String,
        if_exists: bool,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        let found = visible_indexes(cluster, None)?
            .into_iter()
            .any(|i| i.table_id == info.table_id && i.name == name && i.constraint.is_some());
        if found {
            cluster
                .catalog()
                .drop_index(&name)
                .map_err(|e| pg(&e.into()))?;
        } else if if_exists {
            notice(
                client,
                "NOTICE",
                &format!("constraint \"{name}\" of relation \"{table}\" does not exist, skipping"),
            )
            .await?;
        } else {
            return Err(PgError::new(
                "42704",
                format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
            )
            .into_pgwire());
        }
        tag("ALTER TABLE")
    }

    /// `CREATE TABLE [IF NOT EXISTS]`, with its keys.
    pub(super) async fn create_table(
        &self,
        name: String,
        columns: Vec<ColumnDef>,
        if_not_exists: bool,
        keys: Vec<KeyRequest>,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        if if_not_exists
            && cluster
                .catalog()
                .table_by_name(&name)
                .map_err(|e| pg(&e.into()))?
                .is_some()
        {
            notice(
                client,
                "NOTICE",
                &format!("relation \"{name}\" already exists, skipping"),
            )
            .await?;
            return tag("CREATE TABLE");
        }
        for c in &columns {
            if let Some(ColumnDefault::Expr(sql)) = &c.default {
                crate::query::column_defaults::check_default(ctx, sql, &c.sql_type)
                    .await
                    .map_err(PgError::into_pgwire)?;
            }
        }
        let session = crate::frontend::session::current().filter(|s| s.in_transaction());
        let key_names = key_index_names(cluster, session.as_deref(), &name, &keys)?;
        let info = create_table(cluster, &name, columns)?;
        record_key_indexes(cluster, session.as_deref(), &info, &key_names)?;
        if !keys.is_empty() {
            notice(client, "NOTICE", KEYS_NOT_ENFORCED).await?;
        }
        tag("CREATE TABLE")
    }

    /// `CREATE [OR REPLACE] VIEW`.
    pub(super) async fn create_view(
        &self,
        name: String,
        query: Box<sql::Query>,
        or_replace: bool,
        if_not_exists: bool,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let exists = cluster
            .catalog()
            .view_query(&name)
            .map_err(|e| pg(&e.into()))?
            .is_some();
        if exists && if_not_exists {
            notice(
                client,
                "NOTICE",
                &format!("relation \"{name}\" already exists, skipping"),
            )
            .await?;
            return tag("CREATE VIEW");
        }
        let mut self_reference = false;
        let _ = sql::visit_relations(query.as_ref(), |r| {
            if object_name(r) == name {
                self_reference = true;
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        if self_reference {
            return Err(PgError::new(
                "42P17",
                format!("infinite recursion detected in rules for relation \"{name}\""),
            )
            .into_pgwire());
        }
        let text = query.to_string();
        // Checked now: a view that cannot be planned is refused, not stored.
        ctx.state()
            .create_logical_plan(&text)
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        cluster
            .catalog()
            .create_view(&name, &text, or_replace)
            .map_err(|e| pg(&e.into()))?;
        tag("CREATE VIEW")
    }

    /// `CREATE [UNIQUE] INDEX`: recorded only (queries never use it).
    pub(super) async fn create_index(
        &self,
        request: Box<crate::frontend::indexes::IndexRequest>,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let Some(info) = cluster
            .catalog()
            .table_by_name(&request.table)
            .map_err(|e| pg(&e.into()))?
        else {
            return Err(PgError::new(
                "42P01",
                format!("relation \"{}\" does not exist", request.table),
            )
            .into_pgwire());
        };
        // The keys and the predicate are checked as a query over the table would be.
        ctx.state()
            .create_logical_plan(&request.check_query())
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let session = crate::frontend::session::current().filter(|s| s.in_transaction());
        let indexes: std::collections::HashSet<String> =
            visible_indexes(cluster, session.as_deref())?
                .into_iter()
                .map(|i| i.name)
                .collect();
        let catalog = cluster.catalog();
        let relation_taken = |n: &str| {
            indexes.contains(n)
                || catalog.table_by_name(n).ok().flatten().is_some()
                || catalog.view_query(n).ok().flatten().is_some()
        };
        let name = match &request.name {
            Some(n) => n.clone(),
            None => request.default_name(relation_taken),
        };
        if relation_taken(&name) {
            return relation_exists(client, &name, request.if_not_exists, "CREATE INDEX").await;
        }
        let index = shoal_catalog::IndexDef {
            name: name.clone(),
            table_id: info.table_id,
            unique: request.unique,
            definition: request.definition(&name),
            constraint: None,
        };
        match &session {
            // Recorded at COMMIT, with the transaction's tables.
            Some(s) => s.change_index(shoal_catalog::IndexChange::Created(index)),
            None => catalog.create_index(&index).map_err(|e| pg(&e.into()))?,
        }
        notice(
            client,
            "NOTICE",
            &crate::frontend::indexes::not_used_notice(&name, request.unique),
        )
        .await?;
        tag("CREATE INDEX")
    }

    /// `DROP INDEX [IF EXISTS]`.
    pub(super) async fn drop_index(
        &self,
        names: Vec<String>,
        if_exists: bool,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let session = crate::frontend::session::current().filter(|s| s.in_transaction());
        for n in &names {
            let visible = visible_indexes(cluster, session.as_deref())?;
            let found = visible.iter().find(|i| &i.name == n);
            if let Some(i) = found.filter(|i| i.constraint.is_some()) {
                let table = cluster
                    .catalog()
                    .table_names()
                    .map_err(|e| pg(&e.into()))?
                    .into_iter()
                    .find(|t| {
                        cluster
                            .catalog()
                            .table_by_name(t)
                            .ok()
                            .flatten()
                            .is_some_and(|info| info.table_id == i.table_id)
                    })
                    .unwrap_or_default();
                return Err(PgError::new(
                    "2BP01",
                    format!(
                        "cannot drop index {n} because constraint {n} on table {table} \
                         requires it"
                    ),
                )
                .with_hint(Some(format!(
                    "You can drop constraint {n} on table {table} instead."
                )))
                .into_pgwire());
            }
            if found.is_none() {
                if !if_exists {
                    return Err(
                        PgError::new("42704", format!("index \"{n}\" does not exist"))
                            .into_pgwire(),
                    );
                }
                notice(
                    client,
                    "NOTICE",
                    &format!("index \"{n}\" does not exist, skipping"),
                )
                .await?;
                continue;
            }
            match &session {
                Some(s) => s.change_index(shoal_catalog::IndexChange::Dropped(n.clone())),
                None => {
                    cluster.catalog().drop_index(n).map_err(|e| pg(&e.into()))?;
                }
            }
        }
        tag("DROP INDEX")
    }

    /// `DROP VIEW [IF EXISTS]`.
    pub(super) async fn drop_view(
        &self,
        names: Vec<String>,
        if_exists: bool,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        for n in &names {
            if !cluster.catalog().drop_view(n).map_err(|e| pg(&e.into()))? {
                if !if_exists {
                    return Err(
                        PgError::new("42P01", format!("view \"{n}\" does not exist")).into_pgwire(),
                    );
                }
                notice(
                    client,
                    "NOTICE",
                    &format!("view \"{n}\" does not exist, skipping"),
                )
                .await?;
            }
        }
        tag("DROP VIEW")
    }

    /// `CREATE TABLE ... AS SELECT`.
    pub(super) async fn create_table_as(
        &self,
        name: String,
        query: Box<sql::Query>,
        if_not_exists: bool,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        if cluster
            .catalog()
            .table_by_name(&name)
            .map_err(|e| pg(&e.into()))?
            .is_some()
        {
            return relation_exists(client, &name, if_not_exists, "CREATE TABLE AS").await;
        }
        let df = ctx
            .sql(&query.to_string())
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?
            .with_param_values(params.clone())
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let mut columns: Vec<ColumnDef> = Vec::new();
        for f in df.schema().fields() {
            let Some(sql_type) = shoal_sql_functions::types::sql_type_of(f) else {
                return Err(PgError::new(
                    "0A000",
                    format!(
                        "column \"{}\" has type {}, which no Shoal column holds",
                        f.name(),
                        f.data_type()
                    ),
                )
                .with_hint(Some("Cast it in the query, e.g. to text.".into()))
                .into_pgwire());
            };
            if columns.iter().any(|c| c.name == *f.name()) {
                return Err(PgError::new(
                    "42701",
                    format!("column \"{}\" specified more than once", f.name()),
                )
                .into_pgwire());
            }
            columns.push(ColumnDef::new(f.name().clone(), sql_type, false));
        }
        // In a transaction the table is pending and its rows staged: a failure
        // fails the transaction, whose end drops both.
        let session = crate::frontend::session::current().filter(|s| s.in_transaction());
        create_table(cluster, &name, columns)?;
        let stream = match df.execute_stream().await {
            Ok(s) => s
                .map(|b| b.map_err(shoal_sql_functions::ClusterError::from))
                .boxed(),
            Err(e) => {
                if session.is_none() {
                    let _ = cluster.drop_table(&name, true);
                }
                return Err(PgWireErrorOf::df(&e));
            }
        };
        match crate::query::sink::write_statement(cluster, &name, stream, session.as_ref()).await {
            Ok(rows) => Ok(Response::Execution(
                Tag::new("SELECT").with_rows(rows as usize),
            )),
            Err(e) if session.is_some() => Err(pg(&e)),
            Err(e) => {
                // All or nothing: the table goes with its rows.
                if let Err(d) = cluster.drop_table(&name, true) {
                    tracing::warn!(table = %name, error = %d, "CREATE TABLE AS failed and its table stays");
                }
                Err(pg(&e))
            }
        }
    }

    /// `DROP TABLE [IF EXISTS]`.
    pub(super) async fn drop_tables(
        &self,
        names: Vec<String>,
        if_exists: bool,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let session = crate::frontend::session::current().filter(|s| s.in_transaction());
        if let Some(session) = &session {
            session.check_writable("DROP TABLE").map_err(|e| pg(&e))?;
            // Every name is checked before any is dropped, as in one statement.
            let mut found = Vec::new();
            for n in &names {
                match cluster
                    .catalog()
                    .table_by_name(n)
                    .map_err(|e| pg(&e.into()))?
                {
                    Some(info) => found.push(info),
                    None if if_exists => {
                        notice(
                            client,
                            "NOTICE",
                            &format!("table \"{n}\" does not exist, skipping"),
                        )
                        .await?
                    }
                    None => {
                        return Err(pg(&shoal_catalog::CatalogError::TableNotFound {
                            name: n.clone(),
                        }
                        .into()))
                    }
                }
            }
            for info in found {
                session.drop_table(info.table_id, &info.name);
            }
            return tag("DROP TABLE");
        }
        for n in &names {
            if !cluster.drop_table(n, if_exists).map_err(|e| pg(&e))? {
                notice(
                    client,
                    "NOTICE",
                    &format!("table \"{n}\" does not exist, skipping"),
                )
                .await?;
            }
        }
        tag("DROP TABLE")
    }

    /// `TRUNCATE`.
    pub(super) async fn truncate_tables(&self, names: Vec<String>) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        match crate::frontend::session::current().filter(|s| s.in_transaction()) {
            // Staged like a DELETE of every row, published at COMMIT.
            Some(session) => {
                session
                    .check_writable("TRUNCATE TABLE")
                    .map_err(|e| pg(&e))?;
                for n in &names {
                    let info = cluster.table(n).map_err(|e| pg(&e))?;
                    let view = crate::query::provider::statement_snapshot(cluster, &info)
                        .map_err(|e| pg(&e))?;
                    let removed = view
                        .shards
                        .iter()
                        .flat_map(|s| s.placements.iter())
                        .flat_map(|p| {
                            p.files.iter().map(move |f| shoal_catalog::RemovedFile {
                                placement_id: p.placement_id,
                                name: f.name.clone(),
                            })
                        })
                        .collect();
                    session.stage(crate::frontend::session::StagedWrite {
                        table_id: info.table_id,
                        table_name: info.name.clone(),
                        added: vec![],
                        removed,
                    });
                }
            }
            None => {
                for n in &names {
                    cluster.truncate(n).map_err(|e| pg(&e))?;
                }
            }
        }
        tag("TRUNCATE TABLE")
    }

    /// `ALTER TABLE ... RENAME COLUMN`.
    pub(super) async fn rename_column(
        &self,
        table: String,
        old: String,
        new: String,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        let indexes = crate::frontend::indexes::after_rename_column(
            &visible_indexes(cluster, None)?,
            info.table_id,
            &old,
            &new,
        );
        cluster
            .catalog()
            .rename_column(info.table_id, &old, &new, &indexes)
            .map_err(|e| pg(&e.into()))?;
        tag("ALTER TABLE")
    }

    /// `ALTER TABLE ... DROP COLUMN [IF EXISTS]`.
    pub(super) async fn drop_columns(
        &self,
        table: String,
        columns: Vec<String>,
        if_exists: bool,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        for c in &columns {
            if info.distribution_column.as_deref() == Some(c.as_str()) {
                return Err(PgError::new(
                    "0A000",
                    format!(
                        "cannot drop column \"{c}\": it is the distribution column of \"{table}\""
                    ),
                )
                .with_hint(Some(
                    "Create a table distributed on another column and copy the rows into it."
                        .into(),
                ))
                .into_pgwire());
            }
        }
        let kept = info
            .columns
            .iter()
            .filter(|c| !columns.contains(&c.name))
            .count();
        if kept == 0 {
            return Err(
                PgError::new("0A000", "a Shoal table must keep at least one column").into_pgwire(),
            );
        }
        for c in &columns {
            if !info.columns.iter().any(|d| d.name == *c) {
                if if_exists {
                    notice(
                        client,
                        "NOTICE",
                        &format!("column \"{c}\" of relation \"{table}\" does not exist, skipping"),
                    )
                    .await?;
                    continue;
                }
                return Err(PgError::new(
                    "42703",
                    format!("column \"{c}\" of relation \"{table}\" does not exist"),
                )
                .into_pgwire());
            }
        }
        for c in &columns {
            if info.columns.iter().any(|d| d.name == *c) {
                let indexes = crate::frontend::indexes::after_drop_column(
                    &visible_indexes(cluster, None)?,
                    info.table_id,
                    c,
                );
                cluster
                    .catalog()
                    .drop_column(info.table_id, c, &indexes)
                    .map_err(|e| pg(&e.into()))?;
            }
        }
        tag("ALTER TABLE")
    }

    /// `ALTER TABLE ... RENAME TO`.
    pub(super) async fn rename_table(
        &self,
        table: String,
        new_name: String,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        let indexes = crate::frontend::indexes::after_rename_table(
            &visible_indexes(cluster, None)?,
            info.table_id,
            &new_name,
        );
        cluster
            .rename_table(&table, &new_name, &indexes)
            .map_err(|e| pg(&e))?;
        tag("ALTER TABLE")
    }

    /// `ALTER TABLE ... ADD COLUMN [IF NOT EXISTS]`.
    pub(super) async fn add_column(
        &self,
        table: String,
        column: ColumnDef,
        if_not_exists: bool,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        if if_not_exists && info.columns.iter().any(|c| c.name == column.name) {
            notice(
                client,
                "NOTICE",
                &format!(
                    "column \"{}\" of relation \"{table}\" already exists, skipping",
                    column.name
                ),
            )
            .await?;
            return tag("ALTER TABLE");
        }
        if let Some(ColumnDefault::Expr(sql)) = &column.default {
            crate::query::column_defaults::check_default(ctx, sql, &column.sql_type)
                .await
                .map_err(PgError::into_pgwire)?;
        }
        cluster.add_column(&table, column).map_err(|e| pg(&e))?;
        tag("ALTER TABLE")
    }
}
