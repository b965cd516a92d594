//! The writes the hook answers itself: INSERT with defaults or RETURNING, UPDATE/DELETE, COPY.

use super::*;

impl ShoalHook {
    /// `INSERT` into a table with column defaults: the defaults filled in, then written.
    pub(super) async fn insert_defaults(
        &self,
        insert: Box<Statement>,
        table: String,
        ctx: &SessionContext,
        params: &ParamValues,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let insert = with_defaults(cluster, &table, *insert).map_err(PgError::into_pgwire)?;
        let batches = ctx
            .sql(&insert.to_string())
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?
            .with_param_values(params.clone())
            .map_err(|e| PgWireErrorOf::df(&e))?
            .collect()
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let rows = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        Ok(Response::Execution(
            Tag::new("INSERT").with_oid(0).with_rows(rows as usize),
        ))
    }

    /// `INSERT ... RETURNING`: the rows as stored are returned.
    pub(super) async fn insert_returning(
        &self,
        (insert, returning, table): (Box<Statement>, Vec<SelectItem>, String),
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let info = cluster.table(&table).map_err(|e| pg(&e))?;
        let insert =
            Box::new(with_defaults(cluster, &table, *insert).map_err(PgError::into_pgwire)?);
        let plan = ctx
            .state()
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(insert))
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let plan = plan
            .replace_params_with_values(params)
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(PgError::new("XX000", "INSERT did not plan as an insert").into_pgwire());
        };
        let rows = ctx
            .execute_logical_plan(dml.input.as_ref().clone())
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?
            .collect()
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let schema = shoal_sql_functions::types::table_schema(&info.columns);
        // RETURNING shows the rows as stored (a uuid or jsonb in its canonical text).
        let checks = shoal_sql_functions::value_checks(&info);
        let rows = rows
            .iter()
            .map(|b| {
                shoal_sql_functions::check_values(
                    shoal_sql_functions::conform(b, &schema)?,
                    &checks,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pg(&e))?;
        let session = crate::frontend::session::current();
        let stream = futures::stream::iter(rows.clone().into_iter().map(Ok)).boxed();
        crate::query::sink::write_statement(cluster, &table, stream, session.as_ref())
            .await
            .map_err(|e| pg(&e))?;
        let local = SessionContext::new();
        let mem = datafusion::datasource::MemTable::try_new(Arc::clone(&schema), vec![rows])
            .map_err(|e| PgWireErrorOf::df(&e))?;
        local
            .register_table(table.as_str(), Arc::new(mem))
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let list = returning_list(&returning, &info);
        let df = local
            .sql(&format!(
                "SELECT {list} FROM \"{}\"",
                table.replace('"', "\"\"")
            ))
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let opts = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let mut resp = arrow_pg::datatypes::df::encode_dataframe(df, format, Some(opts)).await?;
        resp.set_command_tag("INSERT 0");
        Ok(Response::Query(resp))
    }

    /// `UPDATE` / `DELETE`: the shards' files rewritten.
    pub(super) async fn update_or_delete(
        &self,
        stmt: Box<crate::query::dml::DmlStatement>,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let session = crate::frontend::session::current().unwrap_or_else(|| {
            Arc::new(crate::frontend::session::Session::new(
                Arc::clone(cluster),
                client.metadata(),
            ))
        });
        let outcome = crate::query::dml::run(cluster, ctx, &session, &stmt, params)
            .await
            .map_err(PgError::into_pgwire)?;
        match outcome.returning {
            None => Ok(Response::Execution(
                Tag::new(stmt.kind.tag()).with_rows(outcome.count as usize),
            )),
            Some(batches) => {
                let schema = match batches.first() {
                    Some(b) => b.schema(),
                    None => Arc::new(Schema::empty()),
                };
                let df = ctx
                    .read_batches(batches)
                    .or_else(|_| ctx.read_batch(RecordBatch::new_empty(schema)))
                    .map_err(|e| PgWireErrorOf::df(&e))?;
                let opts = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                let mut resp =
                    arrow_pg::datatypes::df::encode_dataframe(df, format, Some(opts)).await?;
                resp.set_command_tag(stmt.kind.tag());
                Ok(Response::Query(resp))
            }
        }
    }

    /// `COPY ... FROM STDIN`.
    pub(super) async fn copy_in(
        &self,
        table: String,
        columns: Vec<String>,
        options: CopyOptions,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        let resp = start_copy_in(
            Arc::clone(cluster),
            &ctx.state(),
            &*client,
            &table,
            &columns,
            options,
        )?;
        Ok(Response::CopyIn(resp))
    }

    /// `COPY ... TO STDOUT`.
    pub(super) async fn copy_out(
        &self,
        query: String,
        options: CopyOptions,
        ctx: &SessionContext,
    ) -> PgWireResult<Response> {
        let df = ctx.sql(&query).await.map_err(|e| PgWireErrorOf::df(&e))?;
        Ok(Response::CopyOut(copy_out(df, options).await?))
    }
}
