//! The PostgreSQL surface: the wire handlers (`wire`), sessions and their transactions,
//! settings and prepared statements (`session`, `settings`, `prepared`), the statements Shoal
//! answers itself (`hook`: DDL, COPY, cursors, cluster functions, routed to `shoal_sql_functions::functions`), COPY
//! (`copy`), the pg_catalog and information_schema answers, and the one mapping of errors to
//! SQLSTATEs (`errors`).

pub mod column_names;
pub mod copy;
pub mod errors;
pub mod hook;
pub mod indexes;
pub mod information_schema;
pub mod maintenance;
pub mod pg_catalog_context;
pub mod pg_functions;
pub mod prepared;
pub mod session;
pub mod session_functions;
pub mod settings;
pub mod statement_timeout;
pub mod wire;
