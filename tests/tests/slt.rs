//! The `.slt` files under `tests/slt` (settings, and more areas as they come), each run on
//! Shoal and on the scratch PostgreSQL 15: the same expected results on both, but where a
//! file marks a difference with `onlyif`/`skipif shoal`.

use shoal_e2e::slt::run_slt_files;
use shoal_e2e::{within, Cluster, PgServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass_on_shoal() {
    let cluster = Cluster::start(2).await;
    let target = cluster.psql_target();
    within(300, "slt files on shoal", run_slt_files(&target, "shoal")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass_on_postgresql() {
    let Some(pg) = PgServer::start() else {
        return;
    };
    let target = pg.psql_target();
    within(
        300,
        "slt files on postgresql",
        run_slt_files(&target, "postgresql"),
    )
    .await;
}
