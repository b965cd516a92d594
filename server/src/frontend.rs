//! The PostgreSQL surface: what a session is and how it behaves as PostgreSQL's does.
//! (The wire handlers, sessions and COPY move in here with the layout work; new frontend code
//! starts here.)

pub mod column_names;
pub mod indexes;
pub mod information_schema;
pub mod maintenance;
pub mod pg_catalog_context;
pub mod pg_functions;
pub mod prepared;
pub mod session_functions;
pub mod settings;
