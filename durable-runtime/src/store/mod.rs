//! Where checkpoints live: the [`Store`] trait, its embedded implementations
//! (redb, the default; sled, feature `sled`) and (feature `postgres`) its
//! PostgreSQL one.
//!
//! The engine speaks to storage through one narrow seam: read a key, scan a
//! prefix, and commit a [`Batch`] of writes atomically *and durably* (the
//! future resolves only after the bytes reached the disk). Concurrent commits
//! share one flush (group commit, written once for every store in the
//! `commit` module; the embedded stores' log and checkpoints in `embedded`). Key layout is described in `docs/storage-format.md`.

mod commit;
mod embedded;
#[cfg(feature = "testing")]
pub mod faults;
pub mod fs;
pub(crate) mod keys;
pub(crate) mod kind;
pub mod mem;
mod pending;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redb;
#[cfg(feature = "sled")]
pub mod sled;
mod wal;

pub use crate::metrics::{PoolGauges, StoreMetrics};
pub use commit::{CommitPoint, StoreStats};
pub use embedded::Unsafe;

use std::path::PathBuf;

use crate::future::BoxFuture;

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A set of writes applied all together or not at all, optionally
/// conditional on the current values of some keys.
///
/// Conditions are the seam for stores shared by several processes: creating
/// an instance only if its key is absent, and (with PostgreSQL) committing a
/// transition only while the writer's lease token is still the stored one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Keys to set (`Some`) or remove (`None`), applied in order.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Keys that must hold exactly these values (`None`: absent) when the
    /// batch is applied; otherwise nothing is written and the commit fails
    /// with [`StoreError::Conflict`].
    pub expect: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Indexes into `writes` of puts whose key the writer knows to be absent
    /// before this batch (a history event's key: its sequence number is past
    /// every stored one). A store may skip reading such a key's previous
    /// value; nothing written or made durable changes.
    pub fresh: Vec<usize>,
    /// Messages for the other processes sharing the store, published once
    /// the batch is durable and only if it is applied (see
    /// [`Store::subscribe`]); a store used by one process drops them.
    pub notify: Vec<String>,
    /// Commit this batch in a transaction of its own rather than in a group
    /// (lease renewals and takeovers on a store shared by processes: a row
    /// lock another process holds must not hold up the others' commits, nor
    /// theirs this one). A store of one process may ignore it.
    pub solo: bool,
    /// Amounts to add to the store's counters (name, delta), applied with
    /// the writes and only if they are (see [`Store::counters`]).
    pub counts: Vec<(Vec<u8>, i64)>,
}

impl Batch {
    /// Applies the batch only if `key` holds `value` (`None`: is absent).
    pub fn expect(&mut self, key: impl Into<Vec<u8>>, value: Option<Vec<u8>>) -> &mut Self {
        self.expect.push((key.into(), value));
        self
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) -> &mut Self {
        self.writes.push((key.into(), Some(value)));
        self
    }

    /// Sets `key`, which the caller knows to be absent before this batch
    /// (see [`Batch::fresh`]).
    pub fn put_new(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) -> &mut Self {
        self.fresh.push(self.writes.len());
        self.put(key, value)
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.writes.push((key.into(), None));
        self
    }

    /// Adds `delta` to the store's counter `name` if, and when, the batch
    /// is applied (see [`Store::counters`]).
    pub fn count(&mut self, name: impl Into<Vec<u8>>, delta: i64) -> &mut Self {
        self.counts.push((name.into(), delta));
        self
    }

    /// Publishes `message` to the processes sharing the store once the
    /// batch is durable (see [`Batch::notify`]).
    pub fn notify(&mut self, message: impl Into<String>) -> &mut Self {
        self.notify.push(message.into());
        self
    }
}

/// What a process sharing a store hears from the others (see
/// [`Store::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A message another process's applied batch published.
    Message(String),
    /// Messages may have been missed (the listening connection was lost and
    /// is back): look again at everything they could have announced.
    Resync,
    /// The subscription is in place: every message published from now on
    /// is delivered. Sent once, first; what was published before it is
    /// not (a runtime opening waits for it before it reads its instances).
    Listening,
}

impl StoreError {
    /// Whether the store refused the batch for what it holds (a value over
    /// a limit, one that cannot be encoded): the same batch would be
    /// refused again, unlike after an outage or a lost connection.
    pub(crate) fn refuses_the_batch(&self) -> bool {
        matches!(
            self,
            StoreError::Refused { .. } | StoreError::TooLarge { .. } | StoreError::Codec(_)
        )
    }
}

/// A key for messages: printable when it is text.
pub(crate) fn printable(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Durable, ordered key-value storage with atomic batches.
///
/// redb ([`RedbStore`](self::redb::RedbStore)) is the embedded default. A
/// store shared by several processes (PostgreSQL) adds instance ownership on
/// top of this seam; a single-process store owns every instance.
pub trait Store: Send + Sync + 'static {
    /// Applies `batch` atomically; resolves once it is durable (fsync'd).
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>>;
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Commit-path counters, if the store keeps them (for `/metrics`).
    fn stats(&self) -> Option<StoreStats> {
        None
    }
    /// The commit path's histograms, if the store keeps them (shown at
    /// `/metrics` beside [`stats`](Store::stats)' counters).
    fn store_metrics(&self) -> Option<StoreMetrics> {
        None
    }
    /// Whether several runtime processes may use the store at once. The
    /// engine then keeps an owner per instance, leases and fencing (see
    /// `docs/deployment.md`); a store for one process (sled) answers `false`.
    fn shared(&self) -> bool {
        false
    }
    /// The messages that other processes' batches publish ([`Batch::notify`]),
    /// for a [`shared`](Store::shared) store; `None` otherwise, or when
    /// taken already (one subscriber per store). The first notice is
    /// [`Notice::Listening`]; a gap after it is announced by
    /// [`Notice::Resync`], so nothing published is lost unannounced.
    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        None
    }
    /// Every counter an applied batch added to ([`Batch::count`]), with the
    /// sum of all the deltas applied to it, in name order: what the engine
    /// keeps the number of instances in each phase in, so that counting
    /// them does not read a million index entries.
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError>;
    /// Reads every key starting with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
    /// Reads at most `limit` keys starting with `prefix` that are `>= from`,
    /// in key order (pages through large indexes such as the timers).
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;
    /// [`get`](Store::get) for a task of an async runtime: the engine reads
    /// through this, so a read that waits (on a disk, on a network) never
    /// holds the thread other instances run on.
    ///
    /// The default reads on the calling thread, which suits a store in
    /// memory. The embedded stores read on tokio's blocking pool; PostgreSQL
    /// awaits its query.
    fn get_async(&self, key: &[u8]) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(std::future::ready(self.get(key)))
    }
    /// [`scan_from`](Store::scan_from) for a task of an async runtime, as
    /// [`get_async`](Store::get_async) is to `get`.
    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> BoxFuture<Result<Vec<KeyValue>, StoreError>> {
        Box::pin(std::future::ready(self.scan_from(prefix, from, limit)))
    }
    /// How many reads begun by [`get_async`](Store::get_async) or
    /// [`scan_async`](Store::scan_async) still run apart from their futures
    /// (on a thread pool, where a dropped future does not stop them). A
    /// runtime's shutdown waits until none does, so that the store is
    /// closed when it returns. The default: none ever does.
    fn reads_running(&self) -> usize {
        0
    }
}

/// How a read waits for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// On the calling thread: a blocking call of the public API
    /// ([`Store::get`]); the read's future is ready when first polled.
    Thread,
    /// As an async task, its thread free meanwhile ([`Store::get_async`]):
    /// the engine's tasks.
    Task,
}

/// Reads `key` of `store`, waiting as `wait` says.
pub(crate) async fn get(
    store: &dyn Store,
    key: &[u8],
    wait: Wait,
) -> Result<Option<Vec<u8>>, StoreError> {
    match wait {
        Wait::Thread => store.get(key),
        Wait::Task => store.get_async(key).await,
    }
}

/// Runs `read` (a blocking call of the public API that reads the store) so
/// that it holds up no other task: called on a worker of a multi-threaded
/// tokio runtime, the worker's other tasks move to another thread
/// meanwhile (`block_in_place`); elsewhere (a plain thread, the blocking
/// pool, a current-thread runtime, which cannot hand its tasks off) it
/// runs as it is.
pub(crate) fn blocking<T>(read: impl FnOnce() -> T) -> T {
    let on_a_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_a_worker {
        tokio::task::block_in_place(read)
    } else {
        read()
    }
}

/// Runs `read`, a future of [`Wait::Thread`] reads, on the calling thread.
pub(crate) fn now<T>(read: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(read)
}

/// The reads a store runs on tokio's blocking pool, counted: a future
/// dropped while its read runs does not stop the read, which holds the
/// store until it ends, so a runtime's shutdown waits for them
/// ([`Store::reads_running`]) and the store is closed when it returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct OffThread(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl OffThread {
    /// Runs `read` (a store's blocking read) on tokio's blocking pool when
    /// called within a tokio runtime, and on the calling thread otherwise.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<Result<T, StoreError>> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Box::pin(std::future::ready(read()));
        };
        let running = self.0.clone();
        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let reading = rt.spawn_blocking(move || {
            // what `read` holds (a clone of the store) is dropped with it
            let answer = read();
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            answer
        });
        Box::pin(async move {
            reading.await.unwrap_or_else(|e| {
                Err(StoreError::Backend(format!(
                    "a read of the store stopped: {e}"
                )))
            })
        })
    }

    /// `store.get(key)`, run as [`run`](Self::run) runs a read.
    pub(crate) fn get<S: Store + Clone>(
        &self,
        store: &S,
        key: &[u8],
    ) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        let (store, key) = (store.clone(), key.to_vec());
        self.run(move || store.get(&key))
    }

    /// `store.scan_from(prefix, from, limit)`, run as [`run`](Self::run)
    /// runs a read.
    pub(crate) fn scan<S: Store + Clone>(
        &self,
        store: &S,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> BoxFuture<Result<Vec<KeyValue>, StoreError>> {
        let (store, prefix, from) = (store.clone(), prefix.to_vec(), from.to_vec());
        self.run(move || store.scan_from(&prefix, &from, limit))
    }

    /// How many reads are running or waiting for a thread.
    pub(crate) fn running(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A shared store is a store: a runtime can be opened on a clone
/// ([`Builder::open_store`](crate::Builder::open_store)) while the caller
/// keeps another to read what the runtime wrote (a test, a tool in the
/// same process).
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        (**self).commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn stats(&self) -> Option<StoreStats> {
        (**self).stats()
    }
    fn store_metrics(&self) -> Option<StoreMetrics> {
        (**self).store_metrics()
    }
    fn shared(&self) -> bool {
        (**self).shared()
    }
    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        (**self).subscribe()
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        (**self).counters()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        (**self).scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        (**self).scan_from(prefix, from, limit)
    }
    fn get_async(&self, key: &[u8]) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        (**self).get_async(key)
    }
    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> BoxFuture<Result<Vec<KeyValue>, StoreError>> {
        (**self).scan_async(prefix, from, limit)
    }
    fn reads_running(&self) -> usize {
        (**self).reads_running()
    }
}

/// The store a runtime uses, closed by its `shutdown`: from then on every
/// operation of every clone of the runtime answers [`StoreError::Closed`]
/// (the store itself is released when the last clone is dropped).
pub(crate) struct Closable<S> {
    inner: S,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<S: Store> Closable<S> {
    /// `inner`, open until `closed` is set.
    pub(crate) fn new(inner: S, closed: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        Closable { inner, closed }
    }

    fn open(&self) -> Result<(), StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

impl<S: Store> Store for Closable<S> {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        match self.open() {
            Ok(()) => self.inner.commit(batch),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.open()?;
        self.inner.get(key)
    }
    fn stats(&self) -> Option<StoreStats> {
        self.inner.stats()
    }
    fn store_metrics(&self) -> Option<StoreMetrics> {
        self.inner.store_metrics()
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        self.inner.subscribe()
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.open()?;
        self.inner.counters()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.open()?;
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.open()?;
        self.inner.scan_from(prefix, from, limit)
    }
    fn get_async(&self, key: &[u8]) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        match self.open() {
            Ok(()) => self.inner.get_async(key),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> BoxFuture<Result<Vec<KeyValue>, StoreError>> {
        match self.open() {
            Ok(()) => self.inner.scan_async(prefix, from, limit),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
    fn reads_running(&self) -> usize {
        self.inner.reads_running()
    }
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process has the store open.
    #[error(
        "[DURABLE-LOCKED] the store at {path} is open in another process; stop it or use its HTTP API"
    )]
    Locked {
        /// The store's directory, or its URL without the password.
        path: PathBuf,
    },
    /// A store URL that does not parse or asks for something unsupported.
    #[error("[DURABLE-URL] bad store URL {url}: {reason}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database server did not answer or refused the login.
    #[error(
        "[DURABLE-CONNECT] cannot connect to {url}: {reason}; is the server running and the URL right?"
    )]
    Unreachable {
        /// The server, without the password.
        url: String,
        /// The driver's or the server's reason.
        reason: String,
    },
    /// The database was migrated by a newer build; this one would misread it.
    #[error(
        "[DURABLE-SCHEMA] the database schema is version {found}, this build knows versions up to {supported}; upgrade durable-runtime or use another database"
    )]
    SchemaVersion {
        /// The version in the database.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// An I/O error (disk full, permissions, ...). Nothing was acknowledged.
    #[error("[DURABLE-IO] store I/O failed: {context}: {source}")]
    Io {
        /// What the store was doing, and on which file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// The storage engine (sled, redb, the PostgreSQL server) reported an
    /// error that is not an operating-system one.
    #[error("[DURABLE-BACKEND] the storage engine failed: {0}")]
    Backend(String),
    /// A value could not be encoded or decoded; nothing was written.
    #[error("[DURABLE-CODEC] {0}")]
    Codec(String),
    /// An earlier write or sync failed, so the store takes no more commits:
    /// what that failure left on disk is unknown until the store is opened
    /// again, which recovers from what is durable. Nothing was written.
    #[error(
        "[DURABLE-FAILED] the store takes no more commits after an earlier failure ({cause}); nothing was written; open the store again to recover from what is durable"
    )]
    Failed {
        /// The failure that stopped the store.
        cause: String,
    },
    /// The database refused this batch for one of its values (over a limit
    /// of the server, or malformed); other batches are not affected.
    #[error("[DURABLE-REFUSED] the database refused the batch: {reason}")]
    Refused {
        /// The server's reason.
        reason: String,
    },
    /// A value or a group of writes over a size the store can hold.
    #[error("[DURABLE-TOO-LARGE] {what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A store file is damaged where valid data follows: refused rather than
    /// truncated, so nothing acknowledged is dropped silently.
    #[error("[DURABLE-CORRUPT] {path} is damaged at offset {offset}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The directory holds a store of another kind than the one asked for.
    #[error(
        "[DURABLE-STORE-KIND] {path} holds a {found} store, not a {expected} one; open it as {found} (URL `{found}:DIR`) or use another directory"
    )]
    WrongKind {
        /// The store's directory.
        path: PathBuf,
        /// The kind the directory holds.
        found: String,
        /// The kind asked for.
        expected: String,
    },
    /// A record could not be read.
    #[error("[DURABLE-CORRUPT] corrupt record {key}: {reason}")]
    Corrupt {
        /// The record's key, printable.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A condition of the batch did not hold; nothing was written.
    #[error(
        "[DURABLE-CONFLICT] key {key} does not hold the expected value; the batch was not applied"
    )]
    Conflict {
        /// The key, printable.
        key: String,
    },
    /// The store was shut down.
    #[error("[DURABLE-CLOSED] the store is closed")]
    Closed,
}

impl StoreError {
    /// An I/O error while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source: std::sync::Arc::new(source),
        }
    }

    /// The operating system's error code behind this error, if any (`EIO`,
    /// `ENOSPC`, ...).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            StoreError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The counters of a store that keeps them as keys (`keys::COUNTER` +
/// name, the value an `i64` big-endian): the embedded stores and the
/// in-memory one.
pub(crate) fn counters_in_keys(store: &dyn Store) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
    store
        .scan_prefix(&[keys::COUNTER])?
        .into_iter()
        .map(|(key, value)| Ok((key[1..].to_vec(), keys::counter_value(&key, &value)?)))
        .collect()
}

/// A batch on its way to a store's commit loop, and where to report once
/// it is durable (or refused).
pub(crate) struct CommitRequest {
    pub(crate) batch: Batch,
    pub(crate) done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// Hands `batch` to a commit loop through `send` (`false`: the loop has
/// stopped); resolves when the loop reports.
pub(crate) fn submit(
    batch: Batch,
    send: impl FnOnce(CommitRequest) -> bool,
) -> crate::future::BoxFuture<Result<(), StoreError>> {
    let (done, wait) = tokio::sync::oneshot::channel();
    let sent = send(CommitRequest { batch, done });
    Box::pin(async move {
        if !sent {
            return Err(StoreError::Closed);
        }
        wait.await.unwrap_or(Err(StoreError::Closed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read run off the thread of the task that awaits it (the embedded
    /// stores' `get_async`): the task's thread goes on meanwhile, and the
    /// read is counted until it has ended, even when its future was
    /// dropped (a runtime's shutdown waits for it).
    #[tokio::test(flavor = "current_thread")]
    async fn an_off_thread_read_leaves_the_task_thread_free_and_is_counted_until_it_ends() {
        let reads = OffThread::default();
        let caller = std::thread::current().id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let read = reads.run(move || {
            rx.recv().ok();
            Ok(std::thread::current().id())
        });
        assert_eq!(reads.running(), 1);
        // the read waits for this task, which runs on meanwhile
        tx.send(()).unwrap();
        let ran_on = read.await.unwrap();
        assert_ne!(ran_on, caller, "the read ran on the task's thread");
        assert_eq!(reads.running(), 0);

        let (tx, rx) = std::sync::mpsc::channel::<()>();
        drop(reads.run(move || {
            rx.recv().ok();
            Ok(())
        }));
        assert_eq!(reads.running(), 1, "a dropped read still runs");
        tx.send(()).unwrap();
        for _ in 0..10_000 {
            if reads.running() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the read never ended");
    }
}
