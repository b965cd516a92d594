//! sqllogictest files (`tests/slt/*.slt`, and on Shoal `tests/slt/shoal/*.slt`) run through tokio-postgres's simple-query protocol,
//! each on a connection of its own, against Shoal and against the scratch PostgreSQL.
//!
//! Values arrive as PostgreSQL's text (NULL as `NULL`, an empty string as `(empty)`); an
//! error reads `<SQLSTATE> <message>`,
//! so `statement error 22023` or `statement error 0A000 .*not supported` match it. Files may
//! mark what differs on purpose with `onlyif shoal` / `skipif shoal` (and `postgresql`).

use std::path::{Path, PathBuf};

use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::{connect, err_text, PsqlTarget};

/// A statement's failure as the `.slt` files match it.
#[derive(Debug)]
pub struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

impl From<tokio_postgres::Error> for SltError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SltError(format!("{} {}", db.code().code(), db.message())),
            None => SltError(err_text(&e)),
        }
    }
}

/// One connection the runner drives.
pub struct SltConnection {
    client: Client,
}

#[async_trait::async_trait]
impl AsyncDB for SltConnection {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(row) => {
                    columns.get_or_insert(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "postgres-wire"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// The `.slt` files `engine` runs, in name order: those under `tests/slt` (on Shoal and on
/// PostgreSQL), and on Shoal also those under `tests/slt/shoal` (Shoal's own contract:
/// cluster functions, settings and views PostgreSQL does not have).
pub fn slt_files(engine: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut dirs = vec![root.clone()];
    if engine == "shoal" {
        dirs.push(root.join("shoal"));
    }
    let mut files = Vec::new();
    for dir in dirs {
        let mut in_dir: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "slt"))
            .collect();
        in_dir.sort();
        files.extend(in_dir);
    }
    files
}

/// Runs every `.slt` file against `target` (`engine`: `shoal` or `postgresql`, the label
/// `onlyif`/`skipif` name); panics listing each file that failed and why.
pub async fn run_slt_files(target: &PsqlTarget, engine: &str) {
    let mut failures = Vec::new();
    for file in slt_files(engine) {
        let t = target.clone();
        let mut runner = Runner::new(move || {
            let t = t.clone();
            async move {
                let client = connect(&t.host, t.port, &t.user, &t.dbname).await?;
                Ok::<_, SltError>(SltConnection { client })
            }
        });
        runner.add_label(engine);
        if let Err(e) = runner.run_file_async(&file).await {
            failures.push(format!("{}:\n{}", file.display(), e.display(false)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} .slt file(s) failed on {engine}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
