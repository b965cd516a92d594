//! End-to-end test harness for Shoal (package `shoal-e2e`, directory `tests/`).
//!
//! This crate owns the tests that show Shoal working as a whole: it starts real `shoal worker`
//! and `shoal coordinator` processes on free loopback ports (each with its own data directory
//! and log file), talks to them with real clients — tokio-postgres, the `psql` binary and
//! psycopg 3 — and starts a scratch PostgreSQL 15 server used as the correctness oracle.
//! Nothing is mocked. The tests themselves are in `tests/tests/*.rs`; the oracle queries are
//! in `tests/sql/pg_oracle.sql`.
//!
//! Environment knobs:
//! - `SHOAL_BIN`: the `shoal` executable to run (default: built on demand with `cargo build
//!   --workspace --bins --tests` into the same target directory as the test binary).
//! - `CI=true`: a missing client (psql, psycopg, PostgreSQL) fails the test instead of
//!   skipping it.
//! - `SHOAL_E2E_KEEP=1`: keep the temporary data directories and logs after the test.
//! - `SHOAL_E2E_START_TIMEOUT` (seconds, default 60): how long a cluster may take to start.
//! - `SHOAL_E2E_RUST_LOG` (default `info`): `RUST_LOG` for the shoal processes.
//! - `SHOAL_E2E_PG_BIN`: directory holding PostgreSQL's `initdb` and `pg_ctl` (default
//!   `/usr/lib/postgresql/15/bin`).

pub mod data;
pub mod slt;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Default bound for one psql invocation or other external command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Environment, tools, skipping
// ---------------------------------------------------------------------------------------------

/// True when running under CI (`CI=true`): there a skipped test is a failed test.
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").map(|v| v.to_ascii_lowercase()),
        Ok(v) if v == "true" || v == "1" || v == "yes"
    )
}

/// Report that a test cannot run here. Prints `skipped: <why>` and returns false, or panics
/// under `CI=true` (a skip is a failure in CI).
pub fn skip(why: &str) -> bool {
    if in_ci() {
        panic!("CI=true and a required tool is missing: {why} (.ci/run should have installed it)");
    }
    eprintln!("skipped: {why}");
    false
}

/// Find an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The Python virtual environment `.ci/run` fills with the drivers the tests use
/// (`$SHOAL_VENV`, else `~/.cache/shoal-venv`).
pub fn venv_dir() -> PathBuf {
    std::env::var_os("SHOAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/shoal-venv")
        })
}

/// A Python interpreter that can `import <module>`: the test venv's first, then `python3` on
/// `PATH`, then Debian's (`python3-psycopg` is only visible to `/usr/bin/python3`).
pub fn python_with(module: &str) -> Option<PathBuf> {
    static FOUND: OnceLock<Mutex<std::collections::HashMap<String, Option<PathBuf>>>> =
        OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry(module.to_string())
        .or_insert_with(|| {
            let venv = venv_dir().join("bin/python");
            [
                venv.to_string_lossy().into_owned(),
                "python3".into(),
                "/usr/bin/python3".into(),
                "/usr/local/bin/python3".into(),
            ]
            .iter()
            .filter_map(|c| which(c))
            .find(|py| {
                Command::new(py)
                    .args(["-c", &format!("import {module}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            })
        })
        .clone()
}

/// A Python interpreter that can `import psycopg` (psycopg 3).
pub fn python_with_psycopg() -> Option<PathBuf> {
    python_with("psycopg")
}

/// PostgreSQL's JDBC driver: `$PGJDBC_JAR`, else Debian's `libpostgresql-jdbc-java`.
pub fn pgjdbc_jar() -> Option<PathBuf> {
    let jar = std::env::var_os("PGJDBC_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/postgresql.jar"));
    jar.is_file().then_some(jar)
}

/// True when the named client or server is available. When it is missing this prints
/// `skipped: <why>` and returns false — or panics under `CI=true`.
///
/// Known names: `psql`, `psycopg` (a python3 that imports psycopg 3), `asyncpg`,
/// `sqlalchemy`, `pandas` (Python modules, found as [`python_with`] finds them), `pgjdbc`
/// (`java` and PostgreSQL's JDBC driver), `postgresql` (the PostgreSQL server binaries);
/// anything else is looked up on `PATH`.
pub fn require_tool(name: &str) -> bool {
    let (ok, why) = match name {
        "psycopg" | "python3-psycopg" | "python" | "python3" => (
            python_with_psycopg().is_some(),
            "no python3 with psycopg 3 (apt-get install python3-psycopg, or pip install \"psycopg[binary]\")"
                .to_string(),
        ),
        "asyncpg" | "sqlalchemy" | "pandas" => (
            python_with(name).is_some(),
            format!(
                "no python3 with {name} (.ci/run installs it: python3 -m venv {venv} && \
                 {venv}/bin/pip install {name})",
                venv = venv_dir().display()
            ),
        ),
        "pgjdbc" => (
            which("java").is_some() && pgjdbc_jar().is_some(),
            "java or PostgreSQL's JDBC driver missing (apt-get install default-jdk-headless \
             libpostgresql-jdbc-java)"
                .to_string(),
        ),
        "postgresql" | "postgres" | "initdb" => (
            pg_bin_dir().is_some(),
            "PostgreSQL server binaries not found (apt-get install postgresql-15)".to_string(),
        ),
        "psql" => (
            which("psql").is_some(),
            "psql not found (apt-get install postgresql-client)".to_string(),
        ),
        other => (which(other).is_some(), format!("{other} not found on PATH")),
    };
    if ok {
        true
    } else {
        skip(&why)
    }
}

/// Runs `docker/make-certs.sh --out DIR NAME...` (the script operators use): a cluster CA in
/// DIR and a certificate per name. False (after [`skip`]) without openssl.
pub fn make_certs(dir: &Path, names: &[&str]) -> bool {
    if !require_tool("openssl") {
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/make-certs.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("--out")
        .arg(dir)
        .args(names)
        .output()
        .expect("run docker/make-certs.sh");
    assert!(
        out.status.success(),
        "make-certs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

// ---------------------------------------------------------------------------------------------
// The shoal binary
// ---------------------------------------------------------------------------------------------

/// The `shoal` executable: `$SHOAL_BIN` if set, else `<target>/<profile>/shoal` next to the
/// test binary's parent directory. `cargo test --workspace` does not build another package's
/// binary for an integration test, so the first call in each test binary runs `cargo build
/// --workspace --bins --tests` (a no-op when up to date) into the same target directory and
/// profile. `SHOAL_E2E_NO_BUILD=1` skips that and uses whatever binary is there.
pub fn shoal_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SHOAL_BIN") {
            let bin = PathBuf::from(bin);
            assert!(
                is_executable(&bin),
                "SHOAL_BIN={} is not an executable",
                bin.display()
            );
            return bin;
        }
        let exe = std::env::current_exe().expect("current_exe");
        // <target>/<profile>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in <target>/<profile>/deps");
        let bin = profile_dir.join("shoal");
        if std::env::var_os("SHOAL_E2E_NO_BUILD").is_none() {
            build_shoal(profile_dir);
        }
        assert!(
            is_executable(&bin),
            "the shoal binary is not at {}; run `cargo build` or set SHOAL_BIN",
            bin.display()
        );
        bin
    })
    .clone()
}

fn build_shoal(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("Cargo.toml");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let target_dir = profile_dir.parent().expect("target dir");
    let mut cmd = Command::new(cargo);
    // The test process carries the variables cargo sets for running this crate's tests
    // (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). Build scripts such as ring's declare
    // `rerun-if-env-changed` on some of them, so passing them on would make the nested build
    // recompile those crates (and everything above them) with a different fingerprint.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_for_crates = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_CFG_")
            || matches!(
                key,
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_by_cargo_for_crates {
            cmd.env_remove(key);
        }
    }
    // `--workspace --bins --tests` resolves features exactly as `cargo test --workspace` (the
    // README's test command) does, so the binary links the dependencies that command already
    // compiled; `-p shoal` alone would resolve them differently and recompile DataFusion.
    cmd.arg("build")
        .arg("--workspace")
        .arg("--bins")
        .arg("--tests")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.arg("--profile").arg(other);
        }
    }
    eprintln!("[e2e] building the shoal binary: {cmd:?}");
    let started = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .expect("failed to run cargo to build the shoal binary");
    assert!(
        status.success(),
        "building the shoal binary failed: {status}"
    );
    eprintln!("[e2e] shoal binary ready in {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Ports, processes, commands
// ---------------------------------------------------------------------------------------------

/// A free loopback TCP port, never handed out twice in this process. Ports come from
/// 20000..32000, below Linux's ephemeral range, so outgoing connections do not take them.
pub fn free_port() -> u16 {
    static USED: OnceLock<Mutex<(HashSet<u16>, u32)>> = OnceLock::new();
    let state = USED.get_or_init(|| {
        let seed = std::process::id()
            ^ SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        Mutex::new((HashSet::new(), seed))
    });
    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..20_000 {
        guard.1 = guard.1.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let port = 20_000 + ((guard.1 >> 8) % 12_000) as u16;
        if guard.0.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            guard.0.insert(port);
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// Run a command with a time limit, capturing stdout and stderr. On timeout the process is
/// killed and `[e2e] timed out` is appended to stderr.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait after kill");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let stdout = out_thread.join().unwrap_or_default();
    let mut stderr = err_thread.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(
            format!("\n[e2e] timed out after {timeout:?}: {cmd:?}\n").as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Stdout of a finished command as a string.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a finished command as a string.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Last `n` lines of a file (for logs).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Await `fut`, panicking with `what` if it takes longer than `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s: {what}"),
    }
}

async fn wait_for_tcp(addr: SocketAddr, deadline: Instant, node: &mut Node) {
    loop {
        if let Err(e) = node.check_alive() {
            panic!("{e}");
        }
        if let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "nothing listens on {addr} after the start timeout; log:\n{}",
                tail(&node.log, 60)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_timeout() -> Duration {
    Duration::from_secs(
        std::env::var("SHOAL_E2E_START_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

/// One `shoal` process (a worker or the coordinator) that can be killed and started again on
/// the same port and data directory.
struct Node {
    name: String,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    /// Extra environment variables (failpoints).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        fs::create_dir_all(&self.data_dir).expect("create data dir");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let _ = writeln!(
            log,
            "=== [e2e] starting {}: shoal {} ===",
            self.name,
            self.args.join(" ")
        );
        let rust_log = std::env::var("SHOAL_E2E_RUST_LOG").unwrap_or_else(|_| "info".into());
        let child = Command::new(shoal_bin())
            .args(&self.args)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit: how long it took, `None` if it did not
    /// exit (then it is killed).
    fn terminate(&mut self, timeout: Duration) -> Option<Duration> {
        let mut child = self.child.take()?;
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.as_mut() {
            None => Err(format!("{} is not running", self.name)),
            Some(child) => match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!(
                    "{} exited early ({status}); log {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 60)
                )),
                Err(e) => Err(format!("{}: {e}", self.name)),
            },
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

// ---------------------------------------------------------------------------------------------
// psql
// ---------------------------------------------------------------------------------------------

/// Where `psql` connects.
#[derive(Clone, Debug)]
pub struct PsqlTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl PsqlTarget {
    fn command(&self) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.host)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(&self.user)
            .arg(&self.dbname)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGTZ", "UTC")
            .env_remove("PGOPTIONS")
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE");
        cmd
    }

    /// `psql -X -A -t -v ON_ERROR_STOP=1 ... -c sql`.
    pub fn run(&self, sql: &str) -> Output {
        run_with_timeout(self.command().arg("-c").arg(sql), None, COMMAND_TIMEOUT)
    }

    /// `psql ... -f file`.
    pub fn run_file(&self, file: &Path) -> Output {
        run_with_timeout(self.command().arg("-f").arg(file), None, COMMAND_TIMEOUT)
    }

    /// `psql ...` with extra arguments and optional stdin.
    pub fn run_args(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_with_timeout(self.command().args(args), stdin, COMMAND_TIMEOUT)
    }

    /// Run `sql`, panic with psql's stderr if it fails, return stdout.
    pub fn ok(&self, sql: &str) -> String {
        let out = self.run(sql);
        assert!(
            out.status.success(),
            "psql on port {} failed ({}) for:\n{sql}\nstderr:\n{}",
            self.port,
            out.status,
            stderr_of(&out)
        );
        stdout_of(&out)
    }
}

// ---------------------------------------------------------------------------------------------
// Shoal cluster
// ---------------------------------------------------------------------------------------------

/// A real Shoal cluster: one coordinator and `n` workers, each a `shoal` process on its own
/// loopback port with its own data directory and log. Dropping it kills every process (and
/// prints the log tails when the test is panicking).
pub struct Cluster {
    token: String,
    /// Where the coordinator serves `/metrics`.
    metrics_port: u16,
    root: Option<tempfile::TempDir>,
    root_path: PathBuf,
    coordinator: Node,
    workers: Vec<Node>,
    /// Workers the coordinator was started with (the rest are spares).
    registered: usize,
}

impl Cluster {
    /// Start `workers` workers and a coordinator that knows them, and wait (bounded) until the
    /// coordinator accepts connections and `citus_get_active_worker_nodes()` lists every
    /// worker.
    pub async fn start(workers: usize) -> Cluster {
        Self::start_with(workers, 0).await
    }

    /// Like [`Self::start`], plus `spare` more workers that run but are not registered with
    /// the coordinator (for `add_node` in scale-out tests). Spare workers come after the
    /// registered ones in the worker index order.
    pub async fn start_with(workers: usize, spare: usize) -> Cluster {
        Self::start_inner(workers, spare, None).await
    }

    /// Like [`Self::start_with`], with node-to-node TLS: every node gets `--tls-ca
    /// DIR/ca.pem --tls-cert DIR/127.0.0.1.pem --tls-key DIR/127.0.0.1-key.pem`, as made by
    /// [`make_certs`]`(DIR, &["127.0.0.1"])` (the coordinator's clients may still connect
    /// without TLS: it listens on loopback).
    pub async fn start_tls(workers: usize, spare: usize, certs: &Path) -> Cluster {
        Self::start_inner(workers, spare, Some(certs)).await
    }

    async fn start_inner(workers: usize, spare: usize, certs: Option<&Path>) -> Cluster {
        let tls_args: Vec<String> = match certs {
            Some(dir) => vec![
                "--tls-ca".into(),
                dir.join("ca.pem").display().to_string(),
                "--tls-cert".into(),
                dir.join("127.0.0.1.pem").display().to_string(),
                "--tls-key".into(),
                dir.join("127.0.0.1-key.pem").display().to_string(),
            ],
            None => Vec::new(),
        };
        let registered = workers;
        let workers = workers + spare;
        let bin = tokio::task::spawn_blocking(shoal_bin)
            .await
            .expect("build shoal");
        let root = tempfile::Builder::new()
            .prefix("shoal-e2e-")
            .tempdir()
            .expect("temp dir");
        let root_path = root.path().to_path_buf();
        let token = format!(
            "e2e-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let mut nodes = Vec::new();
        for i in 0..workers {
            let port = free_port();
            let dir = root_path.join(format!("worker{i}"));
            let mut args = vec![
                "worker".to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--data-dir".into(),
                dir.display().to_string(),
                "--cluster-token".into(),
                token.clone(),
            ];
            args.extend(tls_args.iter().cloned());
            nodes.push(Node {
                name: format!("worker{i} (127.0.0.1:{port})"),
                port,
                log: root_path.join(format!("worker{i}.log")),
                data_dir: dir,
                args,
                env: Vec::new(),
                child: None,
            });
        }
        let cport = free_port();
        let metrics_port = free_port();
        let cdir = root_path.join("coordinator");
        let mut cargs = vec![
            "coordinator".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{cport}"),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--data-dir".into(),
            cdir.display().to_string(),
            "--cluster-token".into(),
            token.clone(),
        ];
        cargs.extend(tls_args.iter().cloned());
        for w in nodes.iter().take(registered) {
            cargs.push("--worker".into());
            cargs.push(format!("127.0.0.1:{}", w.port));
        }
        let coordinator = Node {
            name: format!("coordinator (127.0.0.1:{cport})"),
            port: cport,
            log: root_path.join("coordinator.log"),
            data_dir: cdir,
            args: cargs,
            env: Vec::new(),
            child: None,
        };
        let mut cluster = Cluster {
            token,
            metrics_port,
            root: Some(root),
            root_path,
            coordinator,
            workers: nodes,
            registered: workers,
        };
        eprintln!(
            "[e2e] starting cluster: {} ({} workers), logs in {}",
            bin.display(),
            workers,
            cluster.root_path.display()
        );
        cluster.registered = registered;
        let deadline = Instant::now() + start_timeout();
        for w in &mut cluster.workers {
            w.spawn();
        }
        for w in &mut cluster.workers {
            let addr = w.addr();
            wait_for_tcp(addr, deadline, w).await;
        }
        cluster.coordinator.spawn();
        cluster.wait_ready(deadline).await;
        eprintln!(
            "[e2e] cluster ready: coordinator port {}, workers {:?}",
            cluster.port(),
            cluster.worker_ports()
        );
        cluster
    }

    async fn wait_ready(&mut self, deadline: Instant) {
        let want = format!("at least {}", self.registered);
        let mut last;
        loop {
            if let Err(e) = self.coordinator.check_alive() {
                panic!("{e}");
            }
            match tokio::time::timeout(Duration::from_secs(10), self.try_client("shoal")).await {
                Ok(Ok(client)) => {
                    match tokio::time::timeout(
                        Duration::from_secs(10),
                        client.simple_query("SELECT count(*) FROM citus_get_active_worker_nodes()"),
                    )
                    .await
                    {
                        Ok(Ok(msgs)) => {
                            let got = first_value(&msgs).unwrap_or_default();
                            // At least the workers it was started with (more once add_node ran).
                            if got.parse::<usize>().unwrap_or(0) >= self.registered {
                                return;
                            }
                            last = format!(
                                "citus_get_active_worker_nodes() counts {got}, want {want}"
                            );
                        }
                        Ok(Err(e)) => last = format!("readiness query failed: {}", err_text(&e)),
                        Err(_) => last = "readiness query timed out".into(),
                    }
                }
                Ok(Err(e)) => last = format!("connect failed: {}", err_text(&e)),
                Err(_) => last = "connect timed out".into(),
            }
            if Instant::now() >= deadline {
                panic!(
                    "cluster not ready within {:?}: {last}\n{}",
                    start_timeout(),
                    self.log_tails(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The coordinator's client port.
    pub fn port(&self) -> u16 {
        self.coordinator.port
    }

    /// A libpq-style connection string for the coordinator.
    pub fn pg_url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=shoal dbname=shoal",
            self.port()
        )
    }

    /// `postgresql://` URL for the coordinator.
    pub fn pg_uri(&self) -> String {
        format!("postgresql://shoal@127.0.0.1:{}/shoal", self.port())
    }

    /// The coordinator's `/metrics` text (Prometheus), fetched with a plain HTTP/1.1 GET.
    pub fn metrics(&self) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port))
            .unwrap_or_else(|e| panic!("cannot connect to /metrics: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the answer");
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
    }

    /// The value of the sample `name` (with its labels, if any) in [`Self::metrics`].
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                (key == name).then(|| value.parse().ok())?
            })
    }

    /// The cluster token every node was started with.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The cluster's root temp directory (holds each node's data dir and log).
    pub fn root(&self) -> &Path {
        &self.root_path
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub fn worker_port(&self, i: usize) -> u16 {
        self.workers[i].port
    }

    pub fn worker_ports(&self) -> Vec<u16> {
        self.workers.iter().map(|w| w.port).collect()
    }

    /// `127.0.0.1:PORT` of worker `i`.
    pub fn worker_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.workers[i].port)
    }

    pub fn worker_data_dir(&self, i: usize) -> &Path {
        &self.workers[i].data_dir
    }

    pub fn coordinator_data_dir(&self) -> &Path {
        &self.coordinator.data_dir
    }

    /// Connect to database `dbname` as user `shoal`.
    pub async fn try_client(&self, dbname: &str) -> Result<Client, tokio_postgres::Error> {
        connect("127.0.0.1", self.port(), "shoal", dbname).await
    }

    /// A tokio-postgres client connected to the coordinator (panics on failure).
    pub async fn client(&self) -> Client {
        match self.try_client("shoal").await {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot connect to the coordinator: {}\n{}",
                err_text(&e),
                self.log_tails(40)
            ),
        }
    }

    /// SIGKILL worker `i`.
    pub fn kill_worker(&mut self, i: usize) {
        eprintln!("[e2e] kill -9 {}", self.workers[i].name);
        self.workers[i].kill();
    }

    /// Start worker `i` again on the same port and data directory; returns when its port
    /// accepts connections.
    pub async fn restart_worker(&mut self, i: usize) {
        eprintln!("[e2e] restarting {}", self.workers[i].name);
        self.workers[i].kill();
        self.workers[i].spawn();
        let deadline = Instant::now() + start_timeout();
        let addr = self.workers[i].addr();
        wait_for_tcp(addr, deadline, &mut self.workers[i]).await;
    }

    /// Environment variables for the coordinator's next start (e.g. `SHOAL_FAILPOINTS`);
    /// replaces the previous set.
    pub fn set_coordinator_env(&mut self, env: &[(&str, &str)]) {
        self.coordinator.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Environment variables for worker `i`'s next start; replaces the previous set.
    pub fn set_worker_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.workers[i].env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Whether the coordinator process has exited (e.g. at a crash failpoint).
    pub fn coordinator_exited(&mut self) -> bool {
        self.coordinator.check_alive().is_err()
    }

    /// Start the coordinator again without waiting for all workers (nodes added later with
    /// `add_node` are registered from the catalog), and wait until it accepts queries.
    pub async fn restart_coordinator_any(&mut self) {
        eprintln!("[e2e] restarting {}", self.coordinator.name);
        self.coordinator.kill();
        self.coordinator.spawn();
        let deadline = Instant::now() + start_timeout();
        loop {
            if let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(5), self.try_client("shoal")).await
            {
                if c.simple_query("SELECT 1").await.is_ok() {
                    return;
                }
            }
            if let Err(e) = self.coordinator.check_alive() {
                panic!("{e}");
            }
            if Instant::now() >= deadline {
                panic!(
                    "coordinator not ready after restart\n{}",
                    self.log_tails(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM the coordinator and wait up to `timeout` for it to exit: how long it took.
    /// Worker `i`'s process id, while it runs.
    pub fn worker_pid(&self, i: usize) -> Option<u32> {
        self.workers[i].child.as_ref().map(Child::id)
    }

    /// The coordinator's process id, while it runs.
    pub fn coordinator_pid(&self) -> Option<u32> {
        self.coordinator.child.as_ref().map(Child::id)
    }

    pub fn terminate_coordinator(&mut self, timeout: Duration) -> Option<Duration> {
        eprintln!("[e2e] kill -TERM {}", self.coordinator.name);
        self.coordinator.terminate(timeout)
    }

    /// SIGKILL the coordinator.
    pub fn kill_coordinator(&mut self) {
        eprintln!("[e2e] kill -9 {}", self.coordinator.name);
        self.coordinator.kill();
    }

    /// Start the coordinator again (same port, data directory and `--worker` list) and wait
    /// until it is ready.
    pub async fn restart_coordinator(&mut self) {
        eprintln!("[e2e] restarting {}", self.coordinator.name);
        self.coordinator.kill();
        self.coordinator.spawn();
        let deadline = Instant::now() + start_timeout();
        self.wait_ready(deadline).await;
    }

    /// Where psql connects for this cluster.
    /// The coordinator's disk is lost: kill -9 it and delete its data directory.
    pub fn lose_coordinator_disk(&mut self) {
        self.kill_coordinator();
        let dir = self.coordinator.data_dir.clone();
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot delete {}: {e}", dir.display()));
    }

    /// Runs `shoal recover-catalog` into the coordinator's data directory, naming the workers
    /// `workers` (indexes) and passing the cluster token and `extra` arguments.
    pub fn recover_catalog(&self, workers: &[usize], extra: &[&std::ffi::OsStr]) -> Output {
        let mut cmd = Command::new(shoal_bin());
        cmd.args(["recover-catalog", "--data-dir"])
            .arg(&self.coordinator.data_dir)
            .args(["--cluster-token", &self.token]);
        for i in workers {
            cmd.args(["--worker", &self.worker_addr(*i)]);
        }
        cmd.args(extra).output().expect("run shoal recover-catalog")
    }

    pub fn psql_target(&self) -> PsqlTarget {
        PsqlTarget {
            host: "127.0.0.1".into(),
            port: self.port(),
            user: "shoal".into(),
            dbname: "shoal".into(),
        }
    }

    /// Run the real `psql -X -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p P -U shoal shoal -c sql`.
    pub fn psql(&self, sql: &str) -> Output {
        self.psql_target().run(sql)
    }

    /// `psql ... -f file`.
    pub fn psql_file(&self, file: &Path) -> Output {
        self.psql_target().run_file(file)
    }

    /// Run `sql` through psql; panic with stderr and the log tails if it fails.
    pub fn psql_ok(&self, sql: &str) -> String {
        let out = self.psql(sql);
        if !out.status.success() {
            panic!(
                "psql failed ({}) for:\n{sql}\nstderr:\n{}\n{}",
                out.status,
                stderr_of(&out),
                self.log_tails(30)
            );
        }
        stdout_of(&out)
    }

    /// The last `n` lines of every node's log.
    pub fn log_tails(&self, n: usize) -> String {
        let mut s = String::new();
        let nodes = std::iter::once(&self.coordinator).chain(self.workers.iter());
        for node in nodes {
            let _ = writeln!(
                s,
                "----- {} log ({}), last {n} lines -----\n{}",
                node.name,
                node.log.display(),
                tail(&node.log, n)
            );
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.coordinator.kill();
        for w in &mut self.workers {
            w.kill();
        }
        let keep = std::env::var_os("SHOAL_E2E_KEEP").is_some();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
        if keep {
            if let Some(root) = self.root.take() {
                let p = root.keep();
                eprintln!("[e2e] kept cluster files in {}", p.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch PostgreSQL (the oracle)
// ---------------------------------------------------------------------------------------------

/// The directory holding PostgreSQL's `initdb` and `pg_ctl`: `$SHOAL_E2E_PG_BIN`, else
/// `/usr/lib/postgresql/15/bin`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> Option<PathBuf> {
    let ok = |d: &Path| is_executable(&d.join("initdb")) && is_executable(&d.join("pg_ctl"));
    if let Some(d) = std::env::var_os("SHOAL_E2E_PG_BIN") {
        let d = PathBuf::from(d);
        return ok(&d).then_some(d);
    }
    let d15 = PathBuf::from("/usr/lib/postgresql/15/bin");
    if ok(&d15) {
        return Some(d15);
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let d = e.path().join("bin");
            ok(&d).then_some((v, d))
        })
        .collect();
    found.sort();
    found.pop().map(|(v, d)| {
        eprintln!(
            "[e2e] PostgreSQL 15 not found, using version {v} at {}",
            d.display()
        );
        d
    })
}

/// The effective uid of this process (from /proc; no libc needed).
fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn user_exists(name: &str) -> bool {
    fs::read_to_string("/etc/passwd")
        .map(|p| p.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

/// A throw-away PostgreSQL server (Debian's postgresql-15) on a free loopback port, trust
/// authentication, `fsync=off`, C collation, UTC. Stopped and deleted on drop.
pub struct PgServer {
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgServer {
    /// Start the server, or return None after printing `skipped: ...` when PostgreSQL is not
    /// installed (panics instead under `CI=true`).
    pub fn start() -> Option<PgServer> {
        let Some(bin) = pg_bin_dir() else {
            skip("PostgreSQL server binaries not found (apt-get install postgresql-15)");
            return None;
        };
        if !require_tool("psql") {
            return None;
        }
        // PostgreSQL refuses to run as root: then run it as Debian's `postgres` user.
        let as_postgres = euid() == Some(0);
        if as_postgres && !(user_exists("postgres") && which("runuser").is_some()) {
            skip(
                "running as root but there is no `postgres` user or no runuser to start PostgreSQL",
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("shoal-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir under /tmp");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        fs::create_dir(&sock).expect("mkdir sock");
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).expect("chmod");
        let port = free_port();
        let server = PgServer {
            dir: Some(dir),
            data: data.clone(),
            bin,
            port,
            as_postgres,
        };
        let out = server.pg_command(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}",
            stdout_of(&out),
            stderr_of(&out)
        );
        let opts = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c TimeZone=UTC \
             -c jit=off -c max_connections=50",
            sock.display()
        );
        let log = server.dir_path().join("postgres.log");
        let out = server.pg_command(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}\nlog:\n{}",
            stdout_of(&out),
            stderr_of(&out),
            tail(&log, 40)
        );
        eprintln!("[e2e] scratch PostgreSQL on 127.0.0.1:{port}");
        Some(server)
    }

    fn dir_path(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    fn pg_command(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir("/tmp").env("LC_ALL", "C");
        run_with_timeout(&mut cmd, None, Duration::from_secs(120))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn psql_target(&self) -> PsqlTarget {
        PsqlTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            dbname: "postgres".into(),
        }
    }

    /// `psql -X -A -t -v ON_ERROR_STOP=1 ... -c sql` against this server.
    pub fn psql(&self, sql: &str) -> Output {
        self.psql_target().run(sql)
    }

    /// Run `sql`, panic on failure, return stdout.
    pub fn psql_ok(&self, sql: &str) -> String {
        self.psql_target().ok(sql)
    }

    /// `psql ... -f file`.
    pub fn psql_file(&self, file: &Path) -> Output {
        self.psql_target().run_file(file)
    }

    /// A tokio-postgres client (user and database `postgres`).
    pub async fn client(&self) -> Client {
        connect("127.0.0.1", self.port, "postgres", "postgres")
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to the scratch PostgreSQL: {}", err_text(&e))
            })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.pg_command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        if std::thread::panicking() {
            eprintln!(
                "----- scratch PostgreSQL log -----\n{}",
                tail(&self.dir_path().join("postgres.log"), 30)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Query helpers
// ---------------------------------------------------------------------------------------------

/// Connect with tokio-postgres (no TLS, 10 s connect timeout) and drive the connection on a
/// background task.
pub async fn connect(
    host: &str,
    port: u16,
    user: &str,
    dbname: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(user)
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Rows of a simple-query result as text (NULL as None).
pub fn simple_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The first column of the first row of a simple-query result.
pub fn first_value(msgs: &[SimpleQueryMessage]) -> Option<String> {
    simple_rows(msgs)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
}

/// Rows of a simple query rendered like `psql -A -t`: columns joined by `|`, NULL as empty.
pub async fn query_lines(client: &Client, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    Ok(simple_rows(&msgs)
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.unwrap_or_default())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect())
}

/// Like [`query_lines`] but panics (with the full error) on failure.
pub async fn lines(client: &Client, sql: &str) -> Vec<String> {
    match query_lines(client, sql).await {
        Ok(v) => v,
        Err(e) => panic!("query failed: {sql}\n  {}", err_text(&e)),
    }
}

/// The single value a simple query returns (panics otherwise).
pub async fn scalar(client: &Client, sql: &str) -> String {
    let rows = lines(client, sql).await;
    assert_eq!(rows.len(), 1, "expected one row from {sql}, got {rows:?}");
    rows.into_iter().next().unwrap_or_default()
}

/// `COPY ... FROM STDIN` of `data`, sent in 64 KB CopyData messages; the server's row count.
pub async fn copy_in(
    client: &Client,
    sql: &str,
    data: Vec<u8>,
) -> Result<u64, tokio_postgres::Error> {
    use futures::SinkExt;
    let sink = client.copy_in(sql).await?;
    let mut sink = Box::pin(sink);
    for chunk in data.chunks(64 * 1024) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    sink.as_mut().finish().await
}

/// Execute statements through the simple protocol (panics on failure).
pub async fn exec(client: &Client, sql: &str) {
    if let Err(e) = client.simple_query(sql).await {
        panic!("statement failed: {sql}\n  {}", err_text(&e));
    }
}

/// [`exec`] that retries a statement failing with 40001 (another transaction or a compaction
/// committed first), as a client must (panics on any other failure, or after 20 tries).
pub async fn exec_retrying(client: &Client, sql: &str) {
    for _ in 0..20 {
        match client.simple_query(sql).await {
            Ok(_) => return,
            Err(e) if sqlstate(&e).as_deref() == Some("40001") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("statement failed: {sql}\n  {}", err_text(&e)),
        }
    }
    panic!("statement failed 20 times with 40001: {sql}");
}

/// The SQLSTATE of a server error, if the error came from the server.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_string())
}

/// Everything an error says: SQLSTATE, severity, message, detail, hint, context.
pub fn err_text(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                let _ = write!(s, "\nDETAIL: {d}");
            }
            if let Some(h) = db.hint() {
                let _ = write!(s, "\nHINT: {h}");
            }
            if let Some(w) = db.where_() {
                let _ = write!(s, "\nCONTEXT: {w}");
            }
            s
        }
        None => {
            let mut s = err.to_string();
            let mut src = std::error::Error::source(err);
            while let Some(e) = src {
                let _ = write!(s, ": {e}");
                src = e.source();
            }
            s
        }
    }
}

/// A PostgreSQL `numeric` read in binary format, rendered as PostgreSQL prints it (e.g.
/// `-12.50`). tokio-postgres has no numeric type without extra crates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgNumeric(pub String);

impl<'a> FromSql<'a> for PgNumeric {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if raw.len() < 8 {
            return Err("numeric: short buffer".into());
        }
        let u16_at = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
        let ndigits = u16_at(0) as usize;
        let weight = u16_at(2) as i16 as i32;
        let sign = u16_at(4);
        let dscale = u16_at(6) as usize;
        if raw.len() < 8 + 2 * ndigits {
            return Err("numeric: short digits".into());
        }
        let digits: Vec<u16> = (0..ndigits).map(|i| u16_at(8 + 2 * i)).collect();
        match sign {
            0xC000 => return Ok(PgNumeric("NaN".into())),
            0xD000 => return Ok(PgNumeric("Infinity".into())),
            0xF000 => return Ok(PgNumeric("-Infinity".into())),
            _ => {}
        }
        let digit = |j: i32| -> u16 {
            if j >= 0 && (j as usize) < digits.len() {
                digits[j as usize]
            } else {
                0
            }
        };
        let mut s = String::new();
        if sign == 0x4000 {
            s.push('-');
        }
        if weight < 0 {
            s.push('0');
        } else {
            for j in 0..=weight {
                if j == 0 {
                    let _ = write!(s, "{}", digit(j));
                } else {
                    let _ = write!(s, "{:04}", digit(j));
                }
            }
        }
        if dscale > 0 {
            let mut frac = String::new();
            let groups = dscale.div_ceil(4) as i32;
            for k in 1..=groups {
                let _ = write!(frac, "{:04}", digit(weight + k));
            }
            frac.truncate(dscale);
            s.push('.');
            s.push_str(&frac);
        }
        Ok(PgNumeric(s))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Write `contents` to a new file in `dir` and return its path.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = File::create(&p).expect("create file");
    f.write_all(contents).expect("write file");
    p
}

/// `scenario(target, shoal)` as two tests, on a Shoal cluster of `workers` workers and on the
/// scratch PostgreSQL, each within `secs` seconds: PostgreSQL checks the expectations.
#[macro_export]
macro_rules! on_shoal_and_postgresql {
    ($shoal_test:ident, $pg_test:ident, $workers:expr, $secs:expr, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $shoal_test() {
            let cluster = $crate::Cluster::start($workers).await;
            let target = cluster.psql_target();
            $crate::within($secs, stringify!($scenario), $scenario(&target, true)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $pg_test() {
            let Some(pg) = $crate::PgServer::start() else {
                return;
            };
            let target = pg.psql_target();
            $crate::within($secs, stringify!($scenario), $scenario(&target, false)).await;
        }
    };
}

/// Runs a single-file Java program (`file_name`, holding `source`) with pgjdbc on its class
/// path against the target, as [`run_client`]; `None` when Java or pgjdbc is missing and the
/// scenario is skipped (a failure under `CI=true`, see [`require_tool`]).
pub fn run_java(file_name: &str, source: &[u8], target: &PsqlTarget) -> Option<String> {
    if !require_tool("pgjdbc") {
        return None;
    }
    let jar = pgjdbc_jar().expect("pgjdbc jar");
    let java = which("java").expect("java");
    let dir = tempfile::tempdir().expect("tempdir");
    let source = write_file(dir.path(), file_name, source);
    let class_path = jar.to_string_lossy().into_owned();
    Some(run_client(
        &java,
        &["-cp", &class_path, source.to_string_lossy().as_ref()],
        target,
    ))
}

/// Runs a client program with the target's host, port, user and database as its last four
/// arguments (a driver scenario); returns what it printed, failing the test when it fails.
pub fn run_client(program: &Path, args: &[&str], target: &PsqlTarget) -> String {
    let port = target.port.to_string();
    let out = tokio::task::block_in_place(|| {
        run_with_timeout(
            Command::new(program).args(args).args([
                target.host.as_str(),
                port.as_str(),
                target.user.as_str(),
                target.dbname.as_str(),
            ]),
            None,
            Duration::from_secs(180),
        )
    });
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}\n{}",
        program.display(),
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// A tokio-postgres client of `target` (panics when it cannot connect).
pub async fn client_of(target: &PsqlTarget) -> Client {
    connect(&target.host, target.port, &target.user, &target.dbname)
        .await
        .unwrap_or_else(|e| panic!("connect: {}", err_text(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    fn decode(b: &[u8]) -> String {
        PgNumeric::from_sql(&Type::NUMERIC, b).expect("decode").0
    }

    #[test]
    fn numeric_binary_decoding() {
        assert_eq!(decode(&numeric_bytes(0, 0, 2, &[12, 5000])), "12.50");
        assert_eq!(
            decode(&numeric_bytes(0, 0x4000, 2, &[1234, 500])),
            "-1234.05"
        );
        assert_eq!(decode(&numeric_bytes(0, 0, 0, &[])), "0");
        assert_eq!(decode(&numeric_bytes(0, 0, 3, &[])), "0.000");
        assert_eq!(decode(&numeric_bytes(-1, 0, 4, &[1])), "0.0001");
        assert_eq!(decode(&numeric_bytes(-2, 0, 6, &[1200])), "0.000012");
        assert_eq!(decode(&numeric_bytes(2, 0, 0, &[1, 0, 0])), "100000000");
        assert_eq!(decode(&numeric_bytes(1, 0, 0, &[1])), "10000");
        assert_eq!(decode(&numeric_bytes(0, 0xC000, 0, &[])), "NaN");
    }

    #[test]
    fn generated_data_is_deterministic() {
        let a = data::events_csv(2000, 7);
        assert_eq!(a, data::events_csv(2000, 7));
        assert_ne!(a, data::events_csv(2000, 8));
        assert_eq!(a.lines().count(), 2000);
        assert!(a
            .lines()
            .all(|l| l.starts_with(|c: char| c == '-' || c.is_ascii_digit())));
        assert!(a.contains(",,"), "some NULLs");
        assert!(a.contains(",\"\"\n"), "some empty strings");
        assert!(a.contains("\"\"hi\"\""), "some quoted quotes");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports: HashSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)));
    }
}
