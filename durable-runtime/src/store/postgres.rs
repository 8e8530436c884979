//! A store on PostgreSQL (feature `postgres`), for services whose
//! checkpoints should live in a database they already run, back up and
//! replicate.
//!
//! The data model is the sled one, a table of byte keys and byte values
//! (`durable_kv`): the keys already say which table a row belongs to (see
//! `docs/storage-format.md`), so every engine guarantee carries over
//! unchanged. The schema is created and migrated on open; its version is in
//! `durable_schema_version`.
//!
//! # Guarantees
//!
//! - One transaction per group of concurrent [`Batch`]es (group commit): the
//!   keys named by the batches' conditions are locked in key order (a
//!   transaction-level advisory lock for a key required absent, whose row
//!   does not exist to be locked, then `SELECT ... FOR UPDATE`), each
//!   batch's conditions are checked
//!   against the rows and the writes of the batches before it, and the
//!   writes of the batches whose conditions held are applied. A failed
//!   condition fails only its own batch, with [`StoreError::Conflict`]. A
//!   condition holds across processes: two transactions that both require
//!   a key to be absent are serialized, and the second sees the first's row.
//! - A group whose transaction the server refuses for a value (over a
//!   limit, or malformed) is tried again member by member, each in a
//!   transaction of its own, so only the bad member fails, with
//!   [`StoreError::Refused`].
//! - A transaction the server aborts as a deadlock or a serialization
//!   failure applied nothing; it is run again (up to 8 times, apart by a few
//!   milliseconds), so such an abort never reaches a caller as a failed
//!   commit. An error at `COMMIT` itself is never retried: its outcome may
//!   be unknown.
//! - Every connection sets `lock_timeout` (5 s) and `statement_timeout`
//!   (60 s): a row lock held elsewhere fails a commit with an error instead
//!   of stalling the worker.
//! - A commit is acknowledged after `COMMIT` returned with
//!   `synchronous_commit = on` (set on every connection of the store): the
//!   transaction is in the server's flushed WAL.
//! - Readers use other connections, so they see committed data only.
//! - Any number of runtime processes share one database: the store is
//!   [`shared`](Store::shared), so the engine keeps an owner per instance
//!   under a lease, and every transition is conditional on its owner key
//!   (fencing; see `docs/deployment.md`). A batch's messages
//!   ([`Batch::notify`]) are `NOTIFY durable` in its transaction, delivered
//!   to the other processes' `LISTEN` only if it commits.
//!
//! # Threads
//!
//! The store runs its connections on its own small tokio runtime. The
//! [`Store`] read methods are synchronous, as sled's are: they block the
//! calling thread for one round trip to the server.
//!
//! # TLS
//!
//! Connections are plain TCP (or a Unix socket): use a server on the same
//! host or a trusted network. TLS is not supported yet; a URL asking for it
//! (`sslmode=require`) is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use super::{
    Batch, CommitPoint, CommitRequest as Request, KeyValue, Notice, Store, StoreError, StoreStats,
};
use crate::activity::BoxFuture;

/// Commits taken into one transaction at most.
const MAX_GROUP: usize = 1024;

/// How often a transaction the server aborted (deadlock, serialization
/// failure) is run again before its requests fail with the server's error.
const ABORTED_RETRIES: u32 = 8;

/// Connections in the pool (readers and the committer share them).
const POOL_SIZE: usize = 8;

/// Key of the advisory lock held while the schema is migrated, so that
/// processes starting together migrate one after the other (the bytes of
/// `"durable"`).
const MIGRATION_LOCK: i64 = 0x0064_7572_6162_6c65;

/// The channel of [`Batch::notify`] messages.
const CHANNEL: &str = "durable";

/// How long sent data may stay unacknowledged before a connection is
/// dropped (a host cut off from the network): commits fail instead of
/// hanging, and the server releases the row locks of a transaction whose
/// client is gone.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, one step per version; a step runs once, in one transaction
/// with its row in `durable_schema_version`. Never edit a released step:
/// add one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "key/value table",
        "CREATE TABLE durable_kv (key bytea PRIMARY KEY, value bytea NOT NULL)",
    ),
    (
        2,
        "instances get an owner worker (keys L, o, W, u): builds that run one process per database must not open it",
        // the data is unchanged; the version keeps older builds away
        "SELECT 1",
    ),
];

/// The statements of the hot paths, prepared once per connection.
///
/// A key a condition requires to be *absent* is first locked by a
/// transaction-level advisory lock (on one of [`LOCK_SLOTS`] slots chosen by
/// a hash of the key, in sorted order): `FOR UPDATE` locks only rows that
/// exist, so without it two transactions could both find a key absent and
/// both write it. The rows are read after the lock is held, in a statement
/// of their own, so they include what the previous holder committed. A
/// condition on a present value needs no such lock: its row is locked.
const LOCK_KEYS: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k";
const LOCK_ROWS: &str =
    "SELECT key, value FROM durable_kv WHERE key = ANY($1) ORDER BY key FOR UPDATE";
const DELETE_KEYS: &str = "DELETE FROM durable_kv WHERE key = ANY($1)";
const UPSERT: &str = "INSERT INTO durable_kv (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const GET: &str = "SELECT value FROM durable_kv WHERE key = $1";
const SCAN: &str = "SELECT key, value FROM durable_kv \
     WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) ORDER BY key";
const SCAN_LIMIT: &str = "SELECT key, value FROM durable_kv \
     WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) ORDER BY key LIMIT $3";
const NOTIFY: &str = "SELECT pg_notify('durable', m) FROM unnest($1::text[]) AS m";

/// Advisory-lock slots keys are hashed into: a group takes at most this
/// many locks (the server's lock table is shared by every connection), and
/// two keys in one slot only serialize their creators.
const LOCK_SLOTS: u64 = 256;

/// The advisory lock of `key`: a stable hash (FNV-1a) into
/// [`LOCK_SLOTS`], offset so as not to meet the migration lock. Every build
/// and process must agree on it.
fn lock_id(key: &[u8]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    0x6475_7261_0000 + (hash % LOCK_SLOTS) as i64
}

/// Set on every connection of the pool.
const SESSION_SETTINGS: &str = "SET synchronous_commit = on; \
     SET idle_in_transaction_session_timeout = '5s'; \
     SET lock_timeout = '5s'; \
     SET statement_timeout = '60s'";

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

type Hook = Arc<dyn Fn(CommitPoint) + Send + Sync>;

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    transactions: AtomicU64,
}

struct Inner {
    /// The store's own runtime; shut down in the background on drop, so a
    /// store may be dropped inside any async context.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    tx: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Request>>>,
    counters: Arc<Counters>,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    hook: Arc<Mutex<Option<Hook>>>,
    /// Where the store is, without the password, for messages.
    location: String,
    /// For the listening connection, taken by the first subscriber.
    listen: Mutex<Option<tokio_postgres::Config>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A [`Store`] in a PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.inner.location)
            .field("stats", &self.stats())
            .finish()
    }
}

fn db_err(e: impl std::error::Error) -> StoreError {
    // the driver's and the pool's messages name the cause only in their sources
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    StoreError::Backend(format!("postgres: {text}"))
}

/// The full text of a driver error (its `Display` omits the server's message).
/// A value the server refuses (SQLSTATE classes 22, data exception, and 54,
/// over a limit: an index entry or a `NOTIFY` payload too large) is
/// [`StoreError::Refused`]: the batch is at fault, not the connection.
fn pg_err(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code.starts_with("22") || code.starts_with("54") {
            return StoreError::Refused {
                reason: format!("postgres: {code}: {}", db.message()),
            };
        }
    }
    match e.as_db_error() {
        Some(db) => {
            StoreError::Backend(format!("postgres: {}: {}", db.code().code(), db.message()))
        }
        None => db_err(e),
    }
}

/// `url` without its password: `user@host:port/dbname`.
fn location(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{}:{port}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Parses a `postgres://` or `postgresql://` URL (or a `key=value`
/// connection string) and refuses what this store cannot honour.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact(url),
        reason,
    };
    let config: tokio_postgres::Config = url.parse().map_err(|e| bad(format!("{e}")))?;
    if config.get_hosts().is_empty() {
        return Err(bad(
            "no host: write postgres://user@127.0.0.1:5432/db".into()
        ));
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(bad(
            "sslmode=require is not supported yet: connections are plain TCP".into(),
        ));
    }
    Ok(config)
}

/// `url` with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    // postgres://user:password@host/...: mask between the first ':' after
    // the scheme and the '@'
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// `prefix`'s exclusive upper bound: the smallest key greater than every key
/// starting with `prefix` (`None`: no bound, the prefix is all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl PgStore {
    /// Connects to the database at `url` and creates or migrates the schema.
    ///
    /// `url` is a libpq-style URL, `postgres://user:password@host:port/db`
    /// (`postgresql://` too, and libpq's `key=value` form).
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for a URL that does not parse or asks for TLS,
    /// [`StoreError::Unreachable`] when no server answers or it refuses the
    /// login,
    /// [`StoreError::SchemaVersion`] when the database was migrated by a
    /// newer build.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config = parse_url(url)?;
        config
            .tcp_user_timeout(TCP_USER_TIMEOUT)
            .keepalives_idle(Duration::from_secs(5));
        let location = location(&config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("durable-postgres")
            .enable_all()
            .build()
            .map_err(db_err)?;
        let setup = rt.spawn(setup(config.clone(), location.clone()));
        let pool = match setup.await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                rt.shutdown_background();
                return Err(e);
            }
            Err(e) => {
                rt.shutdown_background();
                return Err(db_err(e));
            }
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let hook: Arc<Mutex<Option<Hook>>> = Arc::default();
        let committer = Committer {
            pool: pool.clone(),
            counters: counters.clone(),
            hook: hook.clone(),
        };
        rt.spawn(committer.run(rx));
        Ok(PgStore {
            inner: Arc::new(Inner {
                rt: Some(rt),
                pool,
                tx: Mutex::new(Some(tx)),
                counters,
                hook,
                location,
                listen: Mutex::new(Some(config)),
            }),
        })
    }

    /// Counters of the commit path: `flushes` counts transactions, and so
    /// does `fsyncs` (each `COMMIT` waits for the server's WAL flush).
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        let transactions = c.transactions.load(Ordering::Relaxed);
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            flushes: transactions,
            fsyncs: transactions,
            ..StoreStats::default()
        }
    }

    /// Calls `hook` on the committer before each transaction starts
    /// (`BeforeWrite`), when its writes are made but not committed
    /// (`Applied`) and after `COMMIT` returned (`AfterSync`): crash tests use
    /// it to stop the process at an exact point.
    #[cfg(feature = "testing")]
    pub fn set_commit_hook(&self, hook: impl Fn(CommitPoint) + Send + Sync + 'static) {
        if let Ok(mut slot) = self.inner.hook.lock() {
            *slot = Some(Arc::new(hook));
        }
    }

    /// Runs `query` on the store's runtime and blocks until it answers.
    fn read<T, F>(&self, query: impl FnOnce(Pool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let rt = self.inner.rt.as_ref().ok_or(StoreError::Closed)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let query = query(self.inner.pool.clone());
        rt.spawn(async move {
            let _ = tx.send(query.await);
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }
}

/// Connects, migrates the schema (one process at a time), and builds the
/// pool.
async fn setup(config: tokio_postgres::Config, location: String) -> Result<Pool, StoreError> {
    let unreachable = |e: &tokio_postgres::Error| StoreError::Unreachable {
        url: location.clone(),
        reason: match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    text = format!("{text}: {s}");
                    source = s.source();
                }
                text
            }
        },
    };
    let (mut client, connection) = config.connect(NoTls).await.map_err(|e| unreachable(&e))?;
    let driver = tokio::spawn(connection);
    // the lock ends with the session, so a process dying mid-migration frees it
    client
        .query_one("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| pg_err(&e))?;
    migrate(&mut client).await?;
    warn_if_not_durable(&client).await;
    drop(client);
    let _ = driver.await;

    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                client
                    // a transaction left open by a paused or cut-off process
                    // ends on the server, freeing its row locks for the others
                    // and a row lock held by anyone else (an operator's open
                    // session, say) fails a commit after a while instead of
                    // stalling this worker while its lease stays alive
                    .batch_execute(SESSION_SETTINGS)
                    .await
                    .map_err(deadpool_postgres::HookError::Backend)
            })
        }))
        .build()
        .map_err(db_err)?;
    // fail now rather than at the first commit
    let _first = pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => unreachable(&e),
        other => db_err(other),
    })?;
    Ok(pool)
}

/// Forwards the channel's notifications to `tx` for as long as it is open,
/// reconnecting when the listening connection is lost; after a reconnect it
/// sends [`Notice::Resync`] (what was published meanwhile is not replayed).
async fn listen(config: tokio_postgres::Config, tx: tokio::sync::mpsc::UnboundedSender<Notice>) {
    use futures::StreamExt;
    let mut first = true;
    let mut backoff = Duration::from_millis(100);
    while !tx.is_closed() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (payloads, mut received) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if payloads.send(n.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "postgres: the listening connection failed");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        if !first && tx.send(Notice::Resync).is_err() {
                            driver.abort();
                            return;
                        }
                        while let Some(payload) = received.recv().await {
                            if tx.send(Notice::Message(payload)).is_err() {
                                driver.abort();
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "postgres: LISTEN failed"),
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "postgres: cannot connect to listen; retrying"),
        }
        first = false;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Creates `durable_schema_version` and runs the migrations it does not
/// list yet, each in its own transaction.
async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS durable_schema_version (
                 version integer PRIMARY KEY,
                 description text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(|e| pg_err(&e))?;
    let found: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM durable_schema_version",
            &[],
        )
        .await
        .map_err(|e| pg_err(&e))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let tx = client.transaction().await.map_err(|e| pg_err(&e))?;
        tx.batch_execute(sql).await.map_err(|e| pg_err(&e))?;
        tx.execute(
            "INSERT INTO durable_schema_version (version, description) VALUES ($1, $2)",
            &[version, description],
        )
        .await
        .map_err(|e| pg_err(&e))?;
        tx.commit().await.map_err(|e| pg_err(&e))?;
        tracing::info!(version, description, "postgres: schema migrated");
    }
    Ok(())
}

/// A server with `fsync = off` acknowledges commits that a power cut can
/// undo; the store cannot change that, so it says so.
async fn warn_if_not_durable(client: &tokio_postgres::Client) {
    if let Ok(row) = client.query_one("SHOW fsync", &[]).await
        && row.get::<_, &str>(0) != "on"
    {
        tracing::warn!(
            "postgres: the server runs with fsync = off; commits do not survive a power cut"
        );
    }
}

struct Committer {
    pool: Pool,
    counters: Arc<Counters>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl Committer {
    async fn run(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Request>) {
        let mut index = 0u64;
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.call_hook(CommitPoint::BeforeWrite(index));
            let (checks, result) = self.write(&group, index).await;
            if result.is_ok() {
                self.call_hook(CommitPoint::AfterSync(index));
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
            }
            let refused = matches!(result, Err(StoreError::Refused { .. }));
            let answers: Vec<Result<(), StoreError>> = if refused && group.len() > 1 {
                // one bad member (a key over the server's limits, say) must
                // not fail the others: each is tried once more, alone
                let mut answers = Vec::with_capacity(group.len());
                for request in &group {
                    let (mut check, alone) = self.write(std::slice::from_ref(request), index).await;
                    if alone.is_ok() {
                        self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                    }
                    answers.push(check.pop().unwrap_or(Ok(())).and(alone));
                }
                answers
            } else {
                checks.into_iter().map(|c| c.and(result.clone())).collect()
            };
            // counted before acknowledging, so a caller that was acknowledged sees its commit
            self.counters
                .commits
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            for (request, answer) in group.into_iter().zip(answers) {
                let _ = request.done.send(answer);
            }
            index += 1;
        }
    }

    fn call_hook(&self, point: CommitPoint) {
        let hook = self.hook.lock().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            // a hook may block (crash tests park here); let the runtime's
            // other tasks, readers among them, go on meanwhile
            tokio::task::block_in_place(|| hook(point));
        }
    }

    /// Runs the group in one transaction; per request, whether its
    /// conditions held, and for all, whether the transaction committed.
    ///
    /// A transaction the server aborted as a deadlock or a serialization
    /// failure applied nothing and is run again (PostgreSQL's advice for
    /// these two errors). The rows a group checks are locked in key order;
    /// those it only writes are not (locking them too up front avoided the
    /// deadlock, at 25–40% of the throughput: see `docs/deployment.md`), so
    /// two groups writing the same rows in crossing orders can still
    /// deadlock, and the server's detector (`deadlock_timeout`, 1 s by
    /// default) picks one to run again.
    async fn write(
        &self,
        group: &[Request],
        index: u64,
    ) -> (Vec<Result<(), StoreError>>, Result<(), StoreError>) {
        let mut aborted = 0u32;
        loop {
            match self.write_once(group, index).await {
                Attempt::Done(checks, result) => return (checks, result),
                Attempt::Aborted(e) if aborted < ABORTED_RETRIES => {
                    aborted += 1;
                    tracing::debug!(error = %e, aborted, "postgres: transaction aborted by the server; running it again");
                    // apart from the transaction that won, by a little more each time
                    let jitter = rand::random::<u64>() % 8;
                    tokio::time::sleep(Duration::from_millis(u64::from(aborted) * 5 + jitter))
                        .await;
                }
                Attempt::Aborted(e) => {
                    let n = group.len();
                    return ((0..n).map(|_| Err(e.clone())).collect(), Err(e));
                }
            }
        }
    }

    /// One try of [`write`](Self::write).
    async fn write_once(&self, group: &[Request], index: u64) -> Attempt {
        let n = group.len();
        let fail_all =
            |e: StoreError| Attempt::Done((0..n).map(|_| Err(e.clone())).collect(), Err(e));
        // a statement's error: an abort the transaction may retry, or final
        let failed = |e: &tokio_postgres::Error| match e.code() {
            Some(code)
                if *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                Attempt::Aborted(pg_err(e))
            }
            _ => fail_all(pg_err(e)),
        };
        let mut client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => return fail_all(db_err(e)),
        };
        let tx = match client.transaction().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(pg_err(&e)),
        };
        // lock every row a condition names, in key order (two groups that
        // check the same rows wait for each other in one order)
        let mut watched: Vec<&[u8]> = group
            .iter()
            .flat_map(|r| r.batch.expect.iter().map(|(k, _)| k.as_slice()))
            .collect();
        watched.sort_unstable();
        watched.dedup();
        let mut current: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        if !watched.is_empty() {
            // keys required absent: their rows may not exist yet
            let mut locks: Vec<i64> = group
                .iter()
                .flat_map(|r| r.batch.expect.iter())
                .filter(|(_, expected)| expected.is_none())
                .map(|(k, _)| lock_id(k))
                .collect();
            locks.sort_unstable();
            locks.dedup();
            let rows = match async {
                if !locks.is_empty() {
                    let stmt = tx.prepare_cached(LOCK_KEYS).await?;
                    tx.execute(&stmt, &[&locks]).await?;
                }
                let stmt = tx.prepare_cached(LOCK_ROWS).await?;
                tx.query(&stmt, &[&watched]).await
            }
            .await
            {
                Ok(rows) => rows,
                Err(e) => return failed(&e),
            };
            for key in watched {
                current.insert(key.to_vec(), None);
            }
            for row in rows {
                current.insert(row.get(0), Some(row.get(1)));
            }
        }
        // the group's writes so far, in the order later conditions must see them
        let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut messages: Vec<String> = Vec::new();
        let mut checks = Vec::with_capacity(n);
        for request in group {
            let failed = request.batch.expect.iter().find(|(key, expected)| {
                let now = writes
                    .get(key)
                    .or_else(|| current.get(key))
                    .and_then(|v| v.as_ref());
                now != expected.as_ref()
            });
            if let Some((key, _)) = failed {
                checks.push(Err(StoreError::Conflict {
                    key: super::printable(key),
                }));
                continue;
            }
            for (key, value) in &request.batch.writes {
                writes.insert(key.clone(), value.clone());
            }
            messages.extend(request.batch.notify.iter().cloned());
            checks.push(Ok(()));
        }
        let (deleted, put): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, v)| v.is_none());
        if !deleted.is_empty() {
            let keys: Vec<&[u8]> = deleted.iter().map(|(k, _)| k.as_slice()).collect();
            let deleted = async {
                let stmt = tx.prepare_cached(DELETE_KEYS).await?;
                tx.execute(&stmt, &[&keys]).await
            };
            if let Err(e) = deleted.await {
                return failed(&e);
            }
        }
        if !put.is_empty() {
            let keys: Vec<&[u8]> = put.iter().map(|(k, _)| k.as_slice()).collect();
            let values: Vec<&[u8]> = put.iter().filter_map(|(_, v)| v.as_deref()).collect();
            let upserted = async {
                let stmt = tx.prepare_cached(UPSERT).await?;
                tx.execute(&stmt, &[&keys, &values]).await
            };
            if let Err(e) = upserted.await {
                return failed(&e);
            }
        }
        if !messages.is_empty() {
            messages.sort_unstable();
            messages.dedup();
            let notified = async {
                let stmt = tx.prepare_cached(NOTIFY).await?;
                tx.execute(&stmt, &[&messages]).await
            };
            if let Err(e) = notified.await {
                return failed(&e);
            }
        }
        self.call_hook(CommitPoint::Applied(index));
        match tx.commit().await {
            Ok(()) => Attempt::Done(checks, Ok(())),
            // the commit's outcome may be unknown: never run it again
            Err(e) => fail_all(pg_err(&e)),
        }
    }
}

/// How one try of a group's transaction ended.
enum Attempt {
    /// Per request, whether its conditions held; for all, the outcome.
    Done(Vec<Result<(), StoreError>>, Result<(), StoreError>),
    /// The server aborted the transaction before its commit (deadlock or
    /// serialization failure): nothing was applied.
    Aborted(StoreError),
}

impl Store for PgStore {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        if batch.solo {
            // its own transaction on its own connection, beside the group
            let Some(rt) = self.inner.rt.as_ref() else {
                return Box::pin(async { Err(StoreError::Closed) });
            };
            let alone = Committer {
                pool: self.inner.pool.clone(),
                counters: self.inner.counters.clone(),
                hook: Arc::default(),
            };
            let (done, wait) = tokio::sync::oneshot::channel();
            rt.spawn(async move {
                let group = [Request { batch, done }];
                let (mut checks, result) = alone.write(&group, 0).await;
                if result.is_ok() {
                    alone.counters.transactions.fetch_add(1, Ordering::Relaxed);
                }
                alone.counters.commits.fetch_add(1, Ordering::Relaxed);
                let [request] = group;
                let check = checks.pop().unwrap_or(Ok(()));
                let _ = request.done.send(check.and(result));
            });
            return Box::pin(async move { wait.await.unwrap_or(Err(StoreError::Closed)) });
        }
        super::submit(batch, |request| match self.inner.tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.send(request).is_ok()),
            Err(_) => false,
        })
    }

    fn stats(&self) -> Option<StoreStats> {
        Some(PgStore::stats(self))
    }

    fn shared(&self) -> bool {
        true
    }

    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        let config = self.inner.listen.lock().ok()?.take()?;
        let rt = self.inner.rt.as_ref()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(listen(config, tx));
        Some(rx)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.read(move |pool| async move {
            let client = pool.get().await.map_err(db_err)?;
            let stmt = client.prepare_cached(GET).await.map_err(|e| pg_err(&e))?;
            let row = client
                .query_opt(&stmt, &[&key])
                .await
                .map_err(|e| pg_err(&e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let from = from.max(prefix).to_vec();
        let end = prefix_end(prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |pool| async move {
            let client = pool.get().await.map_err(db_err)?;
            let stmt = client
                .prepare_cached(SCAN_LIMIT)
                .await
                .map_err(|e| pg_err(&e))?;
            let rows = client
                .query(&stmt, &[&from, &end, &limit])
                .await
                .map_err(|e| pg_err(&e))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let from = prefix.to_vec();
        let end = prefix_end(prefix);
        self.read(move |pool| async move {
            let client = pool.get().await.map_err(db_err)?;
            let stmt = client.prepare_cached(SCAN).await.map_err(|e| pg_err(&e))?;
            let rows = client
                .query(&stmt, &[&from, &end])
                .await
                .map_err(|e| pg_err(&e))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"i"), Some(b"j".to_vec()));
        assert_eq!(prefix_end(&[b'g', 0xff]), Some(vec![b'h']));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://ann:s3cret@db:5432/x"),
            "postgres://ann:***@db:5432/x"
        );
        let config = parse_url("postgres://ann:s3cret@db:5433/x").unwrap();
        assert_eq!(location(&config), "postgres://ann@db:5433/x");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for url in [
            "postgres://ann:pw@db:notaport/x",
            "postgres://db/x?sslmode=require",
        ] {
            match parse_url(url) {
                Err(e @ StoreError::BadUrl { .. }) => {
                    assert!(!e.to_string().contains("pw@"), "{e}")
                }
                other => panic!("{url}: expected BadUrl, got {other:?}"),
            }
        }
    }
}
