//! Fresh stores on every backend, for suites that must hold on all of them.
//!
//! A suite is written once against a [`Backend`] and instantiated per
//! backend (see `durable-runtime/tests/`). PostgreSQL stores live in a
//! throwaway cluster that this module starts itself on 127.0.0.1 (one per
//! test process, a new database per store) from the server binaries
//! installed on the machine; it stops and is deleted when the process ends,
//! however it ends.
//!
//! # Panics
//!
//! Asking for a PostgreSQL store panics when the server binaries are
//! missing: such a test fails, it never passes silently. Debian's
//! `postgresql` package has them (`bash .ci/run` installs it); set
//! `DURABLE_PG_BINDIR` to use binaries elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::store::Store;
use crate::store::redb::RedbStore;
#[cfg(feature = "sled")]
use crate::store::sled::SledStore;

/// A storage backend the shared suites run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The default embedded store (redb), in a temporary directory.
    Redb,
    /// The embedded sled store (feature `sled`), in a temporary directory.
    Sled,
    /// PostgreSQL, a new database on this process's test cluster.
    Postgres,
}

impl Backend {
    /// A fresh, empty store of this backend, removed when dropped.
    ///
    /// # Panics
    /// For [`Backend::Postgres`], when the cluster cannot be started (see
    /// the module docs).
    pub fn store(self) -> TestStore {
        match self {
            Backend::Redb | Backend::Sled => {
                let name = if self == Backend::Redb {
                    "redb"
                } else {
                    "sled"
                };
                let dir = TempDir::new(&format!("durable-{name}"));
                TestStore {
                    url: format!("{name}:{}", dir.path.display()),
                    backend: self,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let cluster = match PgCluster::shared() {
                    Ok(cluster) => cluster,
                    Err(e) => panic!("{e}"),
                };
                TestStore {
                    url: cluster.create_database().unwrap_or_else(|e| panic!("{e}")),
                    backend: self,
                    _dir: None,
                }
            }
        }
    }
}

/// One empty store for one test: a URL for
/// [`Builder::open_url`](crate::Builder::open_url).
#[derive(Debug)]
pub struct TestStore {
    url: String,
    backend: Backend,
    _dir: Option<TempDir>,
}

impl TestStore {
    /// `redb:DIR`, `sled:DIR` or `postgres://...`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the store itself (not a runtime): to plant records a runtime
    /// would not write, or read what it left.
    ///
    /// # Panics
    /// If the store does not open: this is test set-up.
    pub async fn open(&self) -> Arc<dyn Store> {
        match self.backend {
            Backend::Redb => {
                let dir = self.url.trim_start_matches("redb:").to_owned();
                let store = tokio::task::spawn_blocking(move || RedbStore::open(dir))
                    .await
                    .expect("redb open task");
                Arc::new(store.expect("open the redb test store"))
            }
            #[cfg(feature = "sled")]
            Backend::Sled => {
                let dir = self.url.trim_start_matches("sled:").to_owned();
                let store = tokio::task::spawn_blocking(move || SledStore::open(dir))
                    .await
                    .expect("sled open task");
                Arc::new(store.expect("open the sled test store"))
            }
            #[cfg(not(feature = "sled"))]
            Backend::Sled => panic!("the sled test store needs the `sled` feature"),
            #[cfg(feature = "postgres")]
            Backend::Postgres => Arc::new(
                crate::store::postgres::PgStore::connect(&self.url)
                    .await
                    .expect("open the postgres test store"),
            ),
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => panic!("the postgres test store needs the `postgres` feature"),
        }
    }
}

impl TestStore {
    /// Opens the store with a commit hook (see
    /// [`SledStore::set_commit_hook`]): a test can read the store while a
    /// commit is at a given point.
    ///
    /// # Panics
    /// If the store does not open: this is test set-up.
    pub async fn open_with_commit_hook(
        &self,
        hook: impl Fn(crate::store::CommitPoint) + Send + Sync + 'static,
    ) -> Arc<dyn Store> {
        match self.backend {
            Backend::Redb => {
                let dir = self.url.trim_start_matches("redb:").to_owned();
                let store = tokio::task::spawn_blocking(move || RedbStore::open(dir))
                    .await
                    .expect("redb open task")
                    .expect("open the redb test store");
                store.set_commit_hook(hook);
                Arc::new(store)
            }
            #[cfg(not(feature = "sled"))]
            Backend::Sled => panic!("the sled test store needs the `sled` feature"),
            #[cfg(feature = "sled")]
            Backend::Sled => {
                let dir = self.url.trim_start_matches("sled:").to_owned();
                let store = tokio::task::spawn_blocking(move || SledStore::open(dir))
                    .await
                    .expect("sled open task")
                    .expect("open the sled test store");
                store.set_commit_hook(hook);
                Arc::new(store)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let store = crate::store::postgres::PgStore::connect(&self.url)
                    .await
                    .expect("open the postgres test store");
                store.set_commit_hook(hook);
                Arc::new(store)
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => panic!("the postgres test store needs the `postgres` feature"),
        }
    }
}

/// A directory removed on drop.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{what}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A PostgreSQL cluster for tests: its own data directory, listening on a
/// free port of 127.0.0.1 only, trust authentication for user `durable`.
///
/// The server runs under a small shell that waits on a pipe from this
/// process: when the process exits (or is killed), the pipe closes and the
/// shell stops the server and deletes its directory.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    bindir: PathBuf,
    next_db: AtomicU64,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

/// Why no test cluster could be had.
#[derive(Debug, Clone, thiserror::Error)]
#[error("[DURABLE-TEST-PG] {0}")]
pub struct ClusterError(String);

fn fail(what: impl std::fmt::Display) -> ClusterError {
    ClusterError(what.to_string())
}

impl PgCluster {
    /// The cluster of this test process, started on first use.
    ///
    /// # Errors
    /// When the server binaries are missing or the server does not start;
    /// the message says what to install.
    pub fn shared() -> Result<&'static PgCluster, ClusterError> {
        static CLUSTER: OnceLock<Result<PgCluster, ClusterError>> = OnceLock::new();
        CLUSTER
            .get_or_init(PgCluster::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Starts a new cluster; it stops when dropped or when the process ends.
    ///
    /// # Errors
    /// As [`PgCluster::shared`].
    pub fn start() -> Result<PgCluster, ClusterError> {
        PgCluster::start_with(&[])
    }

    /// Starts a new cluster with these server settings besides the test
    /// defaults (`("ssl", "on")`: each is passed as `-c NAME=VALUE`).
    ///
    /// # Errors
    /// As [`PgCluster::shared`].
    pub fn start_with(settings: &[(&str, &str)]) -> Result<PgCluster, ClusterError> {
        let bindir = find_bindir()?;
        let as_root = is_root();
        let template = template(&bindir, as_root)?;
        let mut last_error = String::new();
        for _ in 0..5 {
            let work = TempDir::new("durable-pg");
            if as_root {
                chown_to_postgres(&work.path)?;
            }
            let data = work.path.join("data");
            run(Command::new("cp").arg("-a").arg(&template).arg(&data))?;
            // from here on the watchdog shell deletes the directory
            let work_path = std::mem::ManuallyDrop::new(work).path.clone();
            let port = free_port()?;
            let mut cmd = server_command(as_root);
            cmd.arg("sh")
                .arg("-c")
                .arg(
                    "bin=$1; data=$2; port=$3; work=$4; shift 4; \
                     \"$bin/postgres\" -D \"$data\" -p \"$port\" -c listen_addresses=127.0.0.1 \
                     -c unix_socket_directories= -c fsync=off -c full_page_writes=off \
                     -c shared_buffers=16MB -c max_connections=300 -c min_wal_size=4MB \
                     -c max_wal_size=64MB \"$@\" >\"$work/server.log\" 2>&1 & \
                     pid=$!; read _; kill -INT $pid; wait $pid; rm -rf \"$work\"",
                )
                .arg("watchdog")
                .arg(&bindir)
                .arg(&data)
                .arg(port.to_string())
                .arg(&work_path)
                .args(
                    settings
                        .iter()
                        .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = cmd
                .spawn()
                .map_err(|e| fail(format!("start postgres: {e}")))?;
            let stdin = child.stdin.take().expect("stdin is piped");
            let cluster = PgCluster {
                port,
                bindir: bindir.clone(),
                next_db: AtomicU64::new(0),
                watchdog: Mutex::new(Some((child, stdin))),
            };
            match cluster.wait_ready(&work_path) {
                Ok(()) => return Ok(cluster),
                // most likely the port was taken meanwhile: try another
                Err(e) => last_error = e.0,
            }
        }
        Err(fail(format!("postgres did not start: {last_error}")))
    }

    /// Polls until the server accepts connections.
    fn wait_ready(&self, work: &Path) -> Result<(), ClusterError> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let ready = Command::new(self.bindir.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map_err(|e| fail(format!("pg_isready: {e}")))?;
            if ready.success() {
                return Ok(());
            }
            let exited = self
                .watchdog
                .lock()
                .ok()
                .and_then(|mut w| w.as_mut().and_then(|(c, _)| c.try_wait().ok().flatten()));
            let log = std::fs::read_to_string(work.join("server.log")).unwrap_or_default();
            if exited.is_some() || log.contains("could not bind") {
                return Err(fail(log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(fail("postgres did not accept connections within 60 s"))
    }

    /// Creates an empty database; its URL.
    ///
    /// # Errors
    /// When `createdb` fails.
    pub fn create_database(&self) -> Result<String, ClusterError> {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        run(Command::new(self.bindir.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "durable",
            ])
            .arg(&name))?;
        Ok(format!("postgres://durable@127.0.0.1:{}/{name}", self.port))
    }

    /// The port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.watchdog.lock().ok().and_then(|mut w| w.take()) {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), ClusterError> {
    let out = cmd
        .output()
        .map_err(|e| fail(format!("{:?}: {e}", cmd.get_program())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(fail(format!(
        "{:?} failed: {}{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// initdb refuses to run as root: the server then runs as user `postgres`.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn server_command(as_root: bool) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]);
        cmd
    } else {
        Command::new("env")
    }
}

fn chown_to_postgres(path: &Path) -> Result<(), ClusterError> {
    run(Command::new("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(path))
    .map_err(|e| {
        fail(format!(
            "running as root, the test cluster runs as user postgres (from Debian's postgresql package): {}",
            e.0
        ))
    })
}

/// `DURABLE_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`, else
/// the directory of `initdb` on `PATH`.
fn find_bindir() -> Result<PathBuf, ClusterError> {
    find_bindir_in(
        std::env::var_os("DURABLE_PG_BINDIR"),
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH"),
    )
}

fn find_bindir_in(
    configured: Option<std::ffi::OsString>,
    debian: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, ClusterError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = configured {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(fail(format!(
                "DURABLE_PG_BINDIR={} has no initdb and postgres",
                dir.display()
            )))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(&path.unwrap_or_default()) {
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    Err(fail(
        "PostgreSQL server binaries (initdb, postgres) not found: the PostgreSQL tests need them. \
         Install Debian's `postgresql` package (`bash .ci/run` installs it), or set \
         DURABLE_PG_BINDIR to the directory that has them",
    ))
}

/// An initdb'd data directory shared by the test processes of this machine
/// (copied per cluster, as initdb costs a second or more each time).
fn template(bindir: &Path, as_root: bool) -> Result<PathBuf, ClusterError> {
    let tag: String = bindir
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let cache = std::env::temp_dir().join(format!("durable-pg-template-v2{tag}"));
    if cache.join("PG_VERSION").is_file() {
        return Ok(cache);
    }
    let build = TempDir::new("durable-pg-initdb");
    if as_root {
        chown_to_postgres(&build.path)?;
    }
    let fresh = build.path.join("data");
    let mut cmd = server_command(as_root);
    cmd.arg(bindir.join("initdb"))
        .arg("-D")
        .arg(&fresh)
        .args(["-A", "trust", "-U", "durable", "-E", "UTF8", "--locale=C"])
        // 1 MiB WAL segments keep the copy per cluster small (about 10 MiB)
        .args(["--no-sync", "--no-instructions", "--wal-segsize=1"]);
    run(&mut cmd)?;
    // another process may have won the race: either copy will do
    if std::fs::rename(&fresh, &cache).is_err() && !cache.join("PG_VERSION").is_file() {
        return Err(fail(format!(
            "could not keep the template cluster at {}",
            cache.display()
        )));
    }
    Ok(cache)
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| fail(format!("find a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| fail(format!("find a free port: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_server_binaries_are_a_clear_failure() {
        let empty = TempDir::new("durable-no-pg");
        let none = Some(empty.path.clone().into_os_string());
        let e = find_bindir_in(None, &empty.path, none.clone()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("postgresql") && text.contains(".ci/run"),
            "{text}"
        );
        let e = find_bindir_in(none.clone(), &empty.path, none).unwrap_err();
        assert!(e.to_string().contains("DURABLE_PG_BINDIR"), "{e}");
    }

    #[test]
    fn the_newest_installed_version_is_chosen() {
        let root = TempDir::new("durable-pg-versions");
        for version in ["9", "15", "13"] {
            let bin = root.path.join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for exe in ["initdb", "postgres"] {
                std::fs::write(bin.join(exe), b"").unwrap();
            }
        }
        let found = find_bindir_in(None, &root.path, None).unwrap();
        assert_eq!(found, root.path.join("15").join("bin"));
    }
}
