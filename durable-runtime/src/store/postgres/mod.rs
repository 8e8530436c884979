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
//! engine reads through [`Store::get_async`] and [`Store::scan_async`],
//! which await the query there; the synchronous read methods (the public
//! API's queries) block the calling thread for one round trip. Making a
//! connection is bounded (10 s, or the URL's `connect_timeout`, handshake
//! included), and so is the wait for a free pooled connection (30 s).
//!
//! # TLS
//!
//! `sslmode` in the URL asks for TLS (rustls): `require` and `verify-full`
//! verify the server's certificate chain and host name, `verify-ca` the
//! chain only, `prefer` uses TLS when the server offers it (verified);
//! without `sslmode` connections are plain. The trusted roots are the
//! PEM file `sslrootcert` names, or the system's:
//! `postgres://app@db.example.com/orders?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem`.
//!
//! # Pool
//!
//! Readers and the committer share a pool of [`PgOptions::pool_size`]
//! connections (8 by default), plus one that listens for notifications:
//! [`PgStore::connect_with`] sets it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

#[cfg(feature = "testing")]
use super::CommitPoint;
use super::commit::{CommitThread, Counters};
use super::{Batch, CommitRequest as Request, KeyValue, Notice, Store, StoreError, StoreStats};
use crate::future::BoxFuture;

mod commit;
mod reads;
mod tls;

use commit::Transactions;
use tls::Connector;

/// How a [`PgStore`] connects beyond what its URL says.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pool_size: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { pool_size: 8 }
    }
}

impl PgOptions {
    /// Connections in the pool that readers and the committer share (at
    /// least 2, so a read never waits for a whole group commit; 8 by
    /// default). Each process holds this many plus one that listens.
    #[must_use]
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(2);
        self
    }
}

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

/// How long making a connection may take, handshake included (TCP, TLS,
/// startup and login), when the URL sets no `connect_timeout`: a server
/// that accepts and then never answers must not stall an open, a pool or
/// the listener for good. The URL's `connect_timeout` replaces it.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// How long a read or a commit waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The bound on making one connection (see [`CONNECT_WAIT`]).
fn connect_wait(config: &tokio_postgres::Config) -> Duration {
    config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_WAIT)
}

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
    (
        3,
        "counters (Batch::count), started from the phase index they count",
        // a counter is the sum of its slots: each process adds to a slot of
        // its own, so workers do not queue on one row per counter
        "CREATE TABLE durable_counters (name bytea NOT NULL, slot integer NOT NULL, \
             n bigint NOT NULL, PRIMARY KEY (name, slot)); \
         INSERT INTO durable_counters (name, slot, n) \
             SELECT substring(key FROM 1 FOR 2), 0, count(*) FROM durable_kv \
             WHERE key > '\\x70'::bytea AND key < '\\x71'::bytea AND length(key) > 2 \
             GROUP BY 1",
    ),
];

/// Slots a counter is spread over (see migration 3).
const COUNTER_SLOTS: u32 = 64;

/// Set on every connection of the pool.
const SESSION_SETTINGS: &str = "SET synchronous_commit = on; \
     SET idle_in_transaction_session_timeout = '5s'; \
     SET lock_timeout = '5s'; \
     SET statement_timeout = '60s'";

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

struct Inner {
    /// The store's own runtime; shut down in the background on drop, so a
    /// store may be dropped inside any async context.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// The group commit (its transactions run on `rt`).
    commits: CommitThread,
    /// Solo batches' transactions, run beside the group (the same pool,
    /// counters and counter slot as the commit thread's).
    solo: Transactions,
    /// Where the store is, without the password, for messages.
    location: String,
    /// For the listening connection, taken by the first subscriber.
    listen: Mutex<Option<(tokio_postgres::Config, Connector)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // the commit thread's last transaction runs on `rt`: it ends first
        self.commits.close();
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
/// connection string), with the connector for the TLS it asks for, and
/// refuses what this store cannot honour.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, Connector), StoreError> {
    let bad = |reason: String| StoreError::BadUrl {
        url: redact(url),
        reason,
    };
    let (rest, asked) = tls::split(url).map_err(bad)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| bad(format!("{e}")))?;
    if config.get_hosts().is_empty() {
        return Err(bad(
            "no host: write postgres://user@127.0.0.1:5432/db".into()
        ));
    }
    config.ssl_mode(asked.mode.ssl_mode());
    let connector = tls::connector(&asked).map_err(bad)?;
    Ok((config, connector))
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
    /// [`StoreError::BadUrl`] for a URL that does not parse, an `sslmode`
    /// it cannot honour or an `sslrootcert` it cannot read,
    /// [`StoreError::Unreachable`] when no server answers, it refuses the
    /// login or its certificate does not verify,
    /// [`StoreError::SchemaVersion`] when the database was migrated by a
    /// newer build.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(url, PgOptions::default()).await
    }

    /// As [`PgStore::connect`], with `options` (the pool's size).
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use durable_runtime::Runtime;
    /// use durable_runtime::store::postgres::{PgOptions, PgStore};
    ///
    /// let store = PgStore::connect_with(
    ///     "postgres://app@db.example.com/orders?sslmode=verify-full",
    ///     PgOptions::default().pool_size(16),
    /// )
    /// .await?;
    /// let runtime = Runtime::builder().open_store(store).await?;
    /// # runtime.shutdown().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`PgStore::connect`].
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let (mut config, connector) = parse_url(url)?;
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
        let setup = rt.spawn(setup(
            config.clone(),
            connector.clone(),
            location.clone(),
            options.pool_size,
        ));
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
        let counters = Arc::new(Counters::default());
        let transactions = Transactions {
            pool: pool.clone(),
            rt: rt.handle().clone(),
            counters: counters.clone(),
            slot: (rand::random::<u32>() % COUNTER_SLOTS) as i32,
        };
        let solo = transactions.clone();
        let commits = match CommitThread::start(transactions, counters) {
            Ok(commits) => commits,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        Ok(PgStore {
            inner: Arc::new(Inner {
                rt: Some(rt),
                pool,
                commits,
                solo,
                location,
                listen: Mutex::new(Some((config, connector))),
            }),
        })
    }

    /// Counters of the commit path: `flushes` counts transactions, and so
    /// does `fsyncs` (each `COMMIT` waits for the server's WAL flush).
    pub fn stats(&self) -> StoreStats {
        self.inner.commits.stats()
    }

    /// Calls `hook` on the committer before each transaction starts
    /// (`BeforeWrite`), when its writes are made but not committed
    /// (`Applied`) and after `COMMIT` returned (`AfterSync`): crash tests use
    /// it to stop the process at an exact point.
    #[cfg(feature = "testing")]
    pub fn set_commit_hook(&self, hook: impl Fn(CommitPoint) + Send + Sync + 'static) {
        self.inner.commits.set_hook(Arc::new(hook));
    }
}

/// Connects, migrates the schema (one process at a time), and builds the
/// pool.
async fn setup(
    config: tokio_postgres::Config,
    connector: Connector,
    location: String,
    pool_size: usize,
) -> Result<Pool, StoreError> {
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
    let wait = connect_wait(&config);
    let (mut client, connection) = tokio::time::timeout(wait, config.connect(connector.clone()))
        .await
        .map_err(|_| StoreError::Unreachable {
            url: location.clone(),
            reason: format!(
                "no answer within {wait:?} (the server accepted the connection, then said nothing)"
            ),
        })?
        .map_err(|e| unreachable(&e))?;
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
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(wait))
        .wait_timeout(Some(POOL_WAIT))
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
/// reconnecting when the listening connection is lost: once listening it
/// sends [`Notice::Listening`] the first time, [`Notice::Resync`] after a
/// reconnect (what was published meanwhile is not replayed).
async fn listen(
    (config, connector): (tokio_postgres::Config, Connector),
    tx: tokio::sync::mpsc::UnboundedSender<Notice>,
) {
    use futures::StreamExt;
    let mut first = true;
    let mut backoff = Duration::from_millis(100);
    while !tx.is_closed() {
        let wait = connect_wait(&config);
        match tokio::time::timeout(wait, config.connect(connector.clone())).await {
            Err(_) => {
                tracing::warn!("postgres: no answer within {wait:?} to listen; retrying");
            }
            Ok(Ok((client, mut connection))) => {
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
                        let listening = if first {
                            Notice::Listening
                        } else {
                            Notice::Resync
                        };
                        first = false;
                        if tx.send(listening).is_err() {
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
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "postgres: cannot connect to listen; retrying")
            }
        }
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

impl Store for PgStore {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        if batch.solo {
            // its own transaction on its own connection, beside the group
            let Some(rt) = self.inner.rt.as_ref() else {
                return Box::pin(async { Err(StoreError::Closed) });
            };
            let (done, wait) = tokio::sync::oneshot::channel();
            rt.spawn(self.inner.solo.clone().write_alone(Request { batch, done }));
            return Box::pin(async move { wait.await.unwrap_or(Err(StoreError::Closed)) });
        }
        self.inner.commits.commit(batch)
    }

    fn stats(&self) -> Option<StoreStats> {
        Some(PgStore::stats(self))
    }

    fn store_metrics(&self) -> Option<super::StoreMetrics> {
        let pool = self.inner.pool.clone();
        Some(self.inner.commits.metrics().with_pool(move || {
            let s = pool.status();
            super::PoolGauges {
                max_size: s.max_size,
                size: s.size,
                available: s.available,
                waiting: s.waiting,
            }
        }))
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
        self.read(move |pool| reads::get(pool, key))
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let (from, end) = (from.max(prefix).to_vec(), prefix_end(prefix));
        self.read(move |pool| reads::scan(pool, from, end, Some(limit)))
    }

    fn get_async(&self, key: &[u8]) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        let key = key.to_vec();
        self.ask(move |pool| reads::get(pool, key))
    }

    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> BoxFuture<Result<Vec<KeyValue>, StoreError>> {
        let (from, end) = (from.max(prefix).to_vec(), prefix_end(prefix));
        self.ask(move |pool| reads::scan(pool, from, end, Some(limit)))
    }

    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.read(reads::counters)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let (from, end) = (prefix.to_vec(), prefix_end(prefix));
        self.read(move |pool| reads::scan(pool, from, end, None))
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

    proptest::proptest! {
        /// A URL comes from configuration or the command line: any text
        /// gives a connection's settings or a `BadUrl`, never a panic, and
        /// a password never reaches the message.
        #[test]
        fn any_url_parses_or_is_refused_without_a_panic(
            url in "(postgres(ql)?://)?[ -~]{0,60}",
        ) {
            if let Err(e) = parse_url(&url) {
                proptest::prop_assert!(matches!(e, StoreError::BadUrl { .. }), "{e}");
            }
            let _ = redact(&url);
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://ann:s3cret@db:5432/x"),
            "postgres://ann:***@db:5432/x"
        );
        let (config, _) = parse_url("postgres://ann:s3cret@db:5433/x").unwrap();
        assert_eq!(location(&config), "postgres://ann@db:5433/x");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for url in [
            "postgres://ann:pw@db:notaport/x",
            "postgres://ann:pw@db/x?sslmode=allow",
        ] {
            match parse_url(url) {
                Err(e @ StoreError::BadUrl { .. }) => {
                    assert!(!e.to_string().contains("pw@"), "{e}")
                }
                Err(other) => panic!("{url}: expected BadUrl, got {other:?}"),
                Ok((config, _)) => panic!("{url}: expected BadUrl, got {config:?}"),
            }
        }
    }
}
