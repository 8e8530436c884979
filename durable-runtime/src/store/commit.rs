//! Group commit, written once for every store: the request queue, the
//! commit thread, gathering a group, the test hooks, counters and
//! acknowledging each request.
//!
//! What makes a group durable is a [`GroupWriter`]: the embedded stores'
//! write-ahead log and tree (`super::embedded`, where their durability
//! rules live) or a PostgreSQL transaction (`super::postgres`). A writer
//! answers each request of the group (its conditions held or not, the
//! group durable or not) and says whether the group became durable; this
//! module does the rest the same way for both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Batch, CommitRequest as Request, StoreError};
use crate::future::BoxFuture;
use crate::metrics::StoreMetrics;

/// A group this large means many writers: the next one waits [`GATHER`]
/// for more of them (a lone writer's commit never waits).
const GATHER_AFTER: usize = 8;

/// How long a busy commit thread lets the next group gather.
const GATHER: Duration = Duration::from_micros(100);

/// A commit thread idle this long tells its writer ([`GroupWriter::idle`]).
const IDLE: Duration = Duration::from_secs(1);

/// A writer with deferred work is told after this long without a commit
/// ([`GroupWriter::quiet`]).
const QUIET: Duration = Duration::from_millis(1);

/// What makes a group of commits durable.
pub(crate) trait GroupWriter: Send + 'static {
    /// Commits taken into one group at most.
    const MAX_GROUP: usize;
    /// Writes `group` (the `index`-th, from 0, for the hooks); per request,
    /// its answer, and whether the group became durable. The writer may
    /// take the batches' writes.
    fn write(
        &mut self,
        group: &mut [Request],
        index: u64,
        hooks: &Hooks,
    ) -> (Vec<Result<(), StoreError>>, bool);
    /// Whether the writer holds work to do when commits pause
    /// ([`quiet`](GroupWriter::quiet)).
    fn deferred(&self) -> bool {
        false
    }
    /// No commit came for [`QUIET`] while the writer held deferred work.
    fn quiet(&mut self) {}
    /// Nothing came for a while (upkeep; nothing by default).
    fn idle(&mut self) {}
    /// A group was answered (upkeep; nothing by default).
    fn after_group(&mut self) {}
    /// The queue closed: the last upkeep before the store is dropped.
    fn close(&mut self) {}
}

/// Counters of the commit path, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches committed.
    pub commits: u64,
    /// Group writes (each covers one or more commits).
    pub flushes: u64,
    /// `fsync`/`fdatasync` calls: one per group write, more per checkpoint.
    pub fsyncs: u64,
    /// Checkpoints: the tree made durable, the log emptied.
    pub checkpoints: u64,
    /// Key writes (puts and deletes) in the committed batches.
    pub writes: u64,
    /// Bytes of keys and values in the committed batches (what a benchmark
    /// of the raw store writes to compare like with like).
    pub bytes: u64,
}

/// Where a commit is, reported to a commit hook (crash tests stop the
/// process at an exact point with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPoint {
    /// Group `index` (from 0) is about to be written; nothing of it is on disk.
    BeforeWrite(u64),
    /// Group `index` is written but not yet durable: readers must not see it.
    Applied(u64),
    /// Group `index` is durable and not yet acknowledged.
    AfterSync(u64),
}

/// The commit path's counters and latency histograms.
pub(crate) struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
    fsyncs: AtomicU64,
    checkpoints: AtomicU64,
    writes: AtomicU64,
    bytes: AtomicU64,
    /// Commits per group, and the time writing each took.
    metrics: StoreMetrics,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            commits: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            metrics: StoreMetrics::default(),
        }
    }
}

impl Counters {
    /// Counts one `fsync`/`fdatasync`.
    pub(crate) fn synced(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one group written durably (a log record synced, a
    /// transaction committed).
    pub(crate) fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one checkpoint (the tree durable, the log emptied).
    pub(crate) fn checkpointed(&self) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` batches answered (outside a commit thread's loop).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn committed(&self, n: u64) {
        self.commits.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts the writes of a batch whose conditions held.
    pub(crate) fn accepted(&self, batch: &Batch) {
        let (writes, bytes) = batch.writes.iter().fold((0u64, 0u64), |(n, b), (k, v)| {
            (n + 1, b + (k.len() + v.as_ref().map_or(0, Vec::len)) as u64)
        });
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

pub(crate) type Hook = Arc<dyn Fn(CommitPoint) + Send + Sync>;

/// The commit hook a test may set (crash tests stop the process at an
/// exact [`CommitPoint`] with it).
#[derive(Default)]
pub(crate) struct Hooks(Mutex<Option<Hook>>);

impl Hooks {
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn set(&self, hook: Hook) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(hook);
        }
    }

    /// Calls the hook, if one is set, on the calling thread (it may block).
    pub(crate) fn call(&self, point: CommitPoint) {
        let hook = self.0.lock().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            hook(point);
        }
    }
}

/// A store's running commit thread, and its handle. Dropping it closes the
/// queue and waits for the thread to answer what it took.
pub(crate) struct CommitThread {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    hooks: Arc<Hooks>,
}

impl Drop for CommitThread {
    fn drop(&mut self) {
        self.close();
    }
}

impl CommitThread {
    /// Starts the commit thread of `writer`, which counts into `counters`.
    pub(crate) fn start<W: GroupWriter>(
        writer: W,
        counters: Arc<Counters>,
    ) -> Result<CommitThread, StoreError> {
        let hooks = Arc::new(Hooks::default());
        let (tx, rx) = mpsc::channel();
        let group_commit = GroupCommit {
            writer,
            counters: counters.clone(),
            hooks: hooks.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("durable-commit".into())
            .spawn(move || group_commit.run(rx))
            .map_err(|e| StoreError::io("starting the commit thread", e))?;
        Ok(CommitThread {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            counters,
            hooks,
        })
    }

    /// Closes the queue (later commits fail with [`StoreError::Closed`])
    /// and waits until the thread has answered every request it took and
    /// done its last upkeep.
    pub(crate) fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(handle) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
    }

    /// Queues `batch`; resolves once it is durable (or refused).
    pub(crate) fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        super::submit(batch, |request| match self.tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.send(request).is_ok()),
            Err(_) => false,
        })
    }

    pub(crate) fn stats(&self) -> StoreStats {
        self.counters.stats()
    }

    pub(crate) fn metrics(&self) -> StoreMetrics {
        self.counters.metrics.clone()
    }

    /// Calls `hook` on the commit thread at each [`CommitPoint`].
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn set_hook(&self, hook: Hook) {
        self.hooks.set(hook);
    }
}

/// The commit thread's loop around a writer.
struct GroupCommit<W> {
    writer: W,
    counters: Arc<Counters>,
    hooks: Arc<Hooks>,
}

impl<W: GroupWriter> GroupCommit<W> {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut index = 0u64;
        let mut last_group = 0usize;
        loop {
            let deferred = self.writer.deferred();
            let first = match rx.recv_timeout(if deferred { QUIET } else { IDLE }) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if deferred {
                        self.writer.quiet();
                    } else {
                        self.writer.idle();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if last_group >= GATHER_AFTER {
                // busy: the commits of the many waiting writers come in a
                // moment later; one larger group costs less than several
                std::thread::sleep(GATHER);
            }
            let mut group = vec![first];
            while group.len() < W::MAX_GROUP {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.hooks.call(CommitPoint::BeforeWrite(index));
            let writing = Instant::now();
            let (answers, durable) = self.writer.write(&mut group, index, &self.hooks);
            self.counters
                .metrics
                .group_written(group.len(), writing.elapsed());
            last_group = group.len();
            if durable {
                self.hooks.call(CommitPoint::AfterSync(index));
            }
            // counted before acknowledging, so a caller that was acknowledged sees its commit
            self.counters
                .commits
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            for (request, answer) in group.into_iter().zip(answers) {
                let _ = request.done.send(answer);
            }
            index += 1;
            self.writer.after_group();
        }
        self.writer.close();
    }
}
