use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser;
use datafusion::sql::sqlparser::ast::{CloseCursor, DeclareType, FetchDirection};
use pgwire::api::ClientInfo;
use pgwire::api::portal::{ExecutingPortal, Format, Portal};
use pgwire::api::DEFAULT_NAME;
use pgwire::types::format::FormatOptions;
use pgwire::api::results::{Response, Tag};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::error::{PgWireError, PgWireResult};

use super::{HookClient, QueryHook};
use crate::arrow_pg::datatypes::df;

pub(crate) type DfStatement = (String, Option<(sqlparser::ast::Statement, LogicalPlan)>);

/// Hook for processing cursor-related statements (DECLARE/FETCH/CLOSE)
#[derive(Debug)]
pub struct CursorStatementHook;

#[async_trait]
impl QueryHook for CursorStatementHook {
    async fn handle_simple_query(
        &self,
        statement: &sqlparser::ast::Statement,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let store = client.portal_store();

        match statement {
            sqlparser::ast::Statement::Declare { stmts } => {
                Some(handle_declare(store, stmts, session_context, Arc::clone(&options)).await)
            }
            // SHOAL: as in PostgreSQL's simple protocol, a FETCH gets the cursor's own
            // format (binary for a BINARY cursor).
            sqlparser::ast::Statement::Fetch {
                name, direction, ..
            } => Some(handle_fetch(store, name, direction, None, options).await),
            sqlparser::ast::Statement::Close { cursor } => Some(handle_close(store, cursor)),
            _ => None,
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &sqlparser::ast::Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match statement {
            sqlparser::ast::Statement::Declare { .. }
            | sqlparser::ast::Statement::Fetch { .. }
            | sqlparser::ast::Statement::Close { .. } => Some(Ok(LogicalPlan::EmptyRelation(
                datafusion::logical_expr::EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(datafusion::common::DFSchema::empty()),
                },
            ))),
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &sqlparser::ast::Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let format = executing_portal_format(client);
        let store = client.portal_store();

        match statement {
            sqlparser::ast::Statement::Declare { stmts } => {
                Some(handle_declare(store, stmts, session_context, Arc::clone(&options)).await)
            }
            // SHOAL: as in PostgreSQL's extended protocol, a FETCH's rows come in the
            // formats its own Bind asked for, whatever the cursor was declared with.
            sqlparser::ast::Statement::Fetch {
                name, direction, ..
            } => Some(handle_fetch(store, name, direction, Some(&format), options).await),
            sqlparser::ast::Statement::Close { cursor } => Some(handle_close(store, cursor)),
            _ => None,
        }
    }
}

/// SHOAL: the result formats the client bound the portal being executed with (pgwire names
/// it in the session extensions; the unnamed portal is `DEFAULT_NAME`).
fn executing_portal_format(client: &dyn HookClient) -> Format {
    let executing = client.session_extensions().get::<ExecutingPortal>();
    let name = executing.as_ref().map_or(DEFAULT_NAME, |p| p.0.as_str());
    client
        .portal_store()
        .get_portal(name)
        .and_then(|entry| entry.value().map(|p| p.result_column_format.clone()))
        .unwrap_or(Format::UnifiedText)
}

async fn handle_declare(
    store: &MemPortalStore<DfStatement>,
    stmts: &[datafusion::sql::sqlparser::ast::Declare],
    session_context: &SessionContext,
    options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    for declare in stmts {
        if declare.declare_type != Some(DeclareType::Cursor) {
            return Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new(
                    "ERROR".to_string(),
                    "42601".to_string(),
                    format!("unsupported DECLARE type: {:?}", declare.declare_type),
                ),
            )));
        }

        let cursor_name = match declare.names.first() {
            Some(name) => name.value.clone(),
            None => {
                return Err(PgWireError::UserError(Box::new(
                    pgwire::error::ErrorInfo::new(
                        "ERROR".to_string(),
                        "42601".to_string(),
                        "cursor name is required".to_string(),
                    ),
                )));
            }
        };

        let for_query = match &declare.for_query {
            Some(q) => q.to_string(),
            None => {
                return Err(PgWireError::UserError(Box::new(
                    pgwire::error::ErrorInfo::new(
                        "ERROR".to_string(),
                        "42601".to_string(),
                        "DECLARE CURSOR requires a FOR query".to_string(),
                    ),
                )));
            }
        };

        let df = session_context
            .sql(&for_query)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;

        let stored_stmt = Arc::new(StoredStatement::new(
            cursor_name.clone(),
            (for_query, None),
            vec![],
        ));

        // SHOAL: rows are encoded as they are fetched, in the session's text formats (time
        // zone, DateStyle) and in the format each FETCH asks for; BINARY makes binary the
        // cursor's own.
        let format = if declare.binary == Some(true) {
            Format::UnifiedBinary
        } else {
            Format::UnifiedText
        };
        let portal = Portal::new_cursor(cursor_name.clone(), stored_stmt, format);
        let query_response = df::encode_cursor(
            df,
            Arc::clone(&portal.cursor_format),
            Arc::clone(&portal.cursor_options),
            Some(Arc::clone(&options)),
        )
        .await?;

        portal.start(query_response).await;

        store.put_portal(Arc::new(portal));
    }

    Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
}

async fn handle_fetch(
    store: &MemPortalStore<DfStatement>,
    name: &datafusion::sql::sqlparser::ast::Ident,
    direction: &FetchDirection,
    format: Option<&Format>,
    options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    let cursor_name = &name.value;

    let max_rows = match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
        FetchDirection::Forward { limit: Some(v) } | FetchDirection::Count { limit: v } => {
            parse_value_as_usize(v)
        }
        FetchDirection::ForwardAll | FetchDirection::All => None,
        FetchDirection::Prior | FetchDirection::Backward { .. } | FetchDirection::BackwardAll => {
            return Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new(
                    "ERROR".to_string(),
                    "42000".to_string(),
                    "cursor can only scan forward".to_string(),
                ),
            )));
        }
        FetchDirection::First
        | FetchDirection::Last
        | FetchDirection::Absolute { .. }
        | FetchDirection::Relative { .. } => {
            return Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new(
                    "ERROR".to_string(),
                    "42000".to_string(),
                    "cursor can only scan forward".to_string(),
                ),
            )));
        }
    };

    // Like PostgreSQL's PerformPortalFetch: a missing portal is 34000
    // "cursor does not exist"; a portal bound from an empty query exists but
    // has no fetchable strategy and fails with XX000 "unsupported portal
    // strategy" (PortalRunFetch's default branch).
    let portal = match store.get_portal(cursor_name) {
        Some(entry) => match entry.value() {
            Some(portal) => Arc::clone(portal),
            None => {
                return Err(PgWireError::UserError(Box::new(
                    pgwire::error::ErrorInfo::new(
                        "ERROR".to_string(),
                        "XX000".to_string(),
                        "unsupported portal strategy".to_string(),
                    ),
                )));
            }
        },
        None => {
            return Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new(
                    "ERROR".to_string(),
                    "34000".to_string(),
                    format!("cursor \"{cursor_name}\" does not exist"),
                ),
            )));
        }
    };

    // SHOAL: `fetch_in` reads 0 as "every row"; PostgreSQL's FETCH 0 is the current row
    // again, which a forward-only cursor does not keep.
    if max_rows == Some(0) {
        return Err(PgWireError::UserError(Box::new(
            pgwire::error::ErrorInfo::new(
                "ERROR".to_string(),
                "0A000".to_string(),
                "FETCH 0 and MOVE 0 (the current row) are not supported".to_string(),
            ),
        )));
    }
    let fetch_result = portal
        .fetch_in(max_rows.unwrap_or(0), format, Some(options))
        .await?;

    Ok(Response::Query(fetch_result.response))
}

fn handle_close(
    store: &MemPortalStore<DfStatement>,
    cursor: &CloseCursor,
) -> PgWireResult<Response> {
    match cursor {
        CloseCursor::All => {
            store.clear_portals();
        }
        CloseCursor::Specific { name } => {
            store.rm_portal(&name.value);
        }
    }
    Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
}

fn parse_value_as_usize(value: &datafusion::sql::sqlparser::ast::Value) -> Option<usize> {
    match value {
        datafusion::sql::sqlparser::ast::Value::Number(s, _) => s.parse().ok(),
        _ => None,
    }
}
