//! SET/SHOW, LOCK TABLE, and cluster-function calls (routed to `shoal_sql_functions::functions`).

use super::*;

impl ShoalHook {
    /// `LOCK TABLE ... IN ACCESS SHARE MODE`: only checked (reads never block).
    pub(super) async fn lock_shared(&self, tables: Vec<String>) -> PgWireResult<Response> {
        let cluster = &self.cluster;
        if !current_session()?.in_transaction() {
            return Err(
                PgError::new("25P01", "LOCK TABLE can only be used in transaction blocks")
                    .into_pgwire(),
            );
        }
        for t in &tables {
            cluster.table(t).map_err(|e| pg(&e))?;
        }
        tag("LOCK TABLE")
    }

    /// `SET [LOCAL]` (`SET LOCAL` outside a transaction block is checked, then warned about).
    pub(super) async fn set_setting(
        &self,
        name: String,
        value: Option<String>,
        local: bool,
        command: &'static str,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let session = current_session()?;
        if local && !session.in_transaction() {
            // As PostgreSQL: checked, then without effect outside a transaction.
            session
                .check_setting(&name, value.as_deref())
                .map_err(PgError::into_pgwire)?;
            warn_code(
                client,
                "25P01",
                "SET LOCAL can only be used in transaction blocks",
            )
            .await?;
        } else {
            session
                .set_setting(&name, value.as_deref(), local)
                .map_err(PgError::into_pgwire)?;
        }
        tag(command)
    }

    /// `SHOW name`.
    pub(super) async fn show_setting(
        &self,
        name: String,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        format: &Format,
    ) -> PgWireResult<Response> {
        let session = current_session()?;
        let value = session
            .setting(&name)
            .map_err(PgError::into_pgwire)?
            .ok_or_else(|| {
                PgError::new(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )
                .into_pgwire()
            })?;
        let column = settings::display_name(&name);
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec![value]))],
        )
        .map_err(|e| PgWireErrorOf::df(&e.into()))?;
        rows_response(ctx, batch, client, format).await
    }

    /// `SHOW ALL`.
    pub(super) async fn show_all_settings(
        &self,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        format: &Format,
    ) -> PgWireResult<Response> {
        let rows = current_session()?.all_settings();
        let batch = RecordBatch::try_new(
            show_all_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .map_err(|e| PgWireErrorOf::df(&e.into()))?;
        rows_response(ctx, batch, client, format).await
    }

    /// `SELECT f(...)` or `CALL f(...)` of a cluster function: its notices, then its rows.
    pub(super) async fn call_function(
        &self,
        call: FunctionCall,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response> {
        let batch = self.run_function(&call, ctx, client, params).await?;
        rows_response(ctx, batch, client, format).await
    }

    /// Runs a cluster function: its notices go to the client first (also when it then
    /// fails), then its rows or its error.
    async fn run_function(
        &self,
        call: &FunctionCall,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
    ) -> PgWireResult<RecordBatch> {
        let mut notices: Vec<Notice> = Vec::new();
        let result = functions::call(&self.cluster, ctx, call, params, &mut notices).await;
        for n in &notices {
            send_notice(client, n).await?;
        }
        result.map_err(|e| PgError::from(e).into_pgwire())
    }

    /// A query over a cluster function's rows (`SELECT ... FROM f(...)`).
    pub(super) async fn call_function_from(
        &self,
        call: FunctionCall,
        query: Box<Statement>,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
        params: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response> {
        let batch = self.run_function(&call, ctx, client, params).await?;
        let local = SessionContext::new();
        local
            .register_batch("fn_result", batch)
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let df = local
            .sql(&query.to_string())
            .await
            .map_err(|e| PgWireErrorOf::df(&e))?;
        let opts = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let resp = arrow_pg::datatypes::df::encode_dataframe(df, format, Some(opts)).await?;
        Ok(Response::Query(resp))
    }
}
