//! Group commit for the embedded stores, written once: the request queue,
//! gathering a group, checking its conditions, making it durable in the
//! write-ahead log, applying it to the tree, acknowledging, checkpoints,
//! counters and test hooks.
//!
//! A tree (redb, sled) implements only [`Tree`]: read a key, apply a group
//! that the log has already made durable, and make everything applied
//! durable in its own files (a checkpoint). Every durability rule lives
//! here:
//!
//! - a group is acknowledged only after its log record is synced;
//! - the tree sees a group only after that, so no reader ever observes a
//!   write a power cut could still undo;
//! - the log is emptied only after the tree's checkpoint succeeded;
//! - **any failed write or sync (of the log, of the tree's files, of a
//!   directory, of the log's reset) stops the store**: every waiting and
//!   later commit fails with [`StoreError::Failed`] until the store is
//!   opened again, which recovers from what is durable. A failed sync is
//!   never retried: the kernel may have dropped the pages whose write-back
//!   failed and report success the second time.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use super::fs::Fs;
use super::wal::{self, Wal};
use super::{Batch, CommitRequest as Request, StoreError};
use crate::future::BoxFuture;

/// Commits taken into one group at most.
const MAX_GROUP: usize = 4096;

/// A group this large means many writers: the next one waits [`GATHER`]
/// for more of them (a lone writer's commit never waits).
const GATHER_AFTER: usize = 8;

/// How long a busy commit thread lets the next group gather.
const GATHER: std::time::Duration = std::time::Duration::from_micros(100);

/// A commit thread idle this long checkpoints, so the log is empty while
/// nothing happens.
const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

/// What an embedded storage engine provides under the commit path.
pub(crate) trait Tree: Send + 'static {
    /// The value of `key` with every applied group in it.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies the writes of `batches`, in order, without a sync of its
    /// own: the log holds them durably already. Readers may see them once
    /// this returns, never a part of them before.
    fn apply(&mut self, batches: &[&Batch]) -> Result<(), StoreError>;
    /// Makes everything applied so far durable in the tree's own files.
    fn checkpoint(&mut self, counters: &Counters) -> Result<(), StoreError>;
    /// Upkeep after a group (nothing by default).
    fn after_group(&mut self, counters: &Counters) -> Result<(), StoreError> {
        let _ = counters;
        Ok(())
    }
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

pub(crate) type Hook = Arc<dyn Fn(CommitPoint) + Send + Sync>;

/// The commit path's counters and latency histograms.
pub(crate) struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
    fsyncs: AtomicU64,
    checkpoints: AtomicU64,
    writes: AtomicU64,
    bytes: AtomicU64,
    /// Commits per group.
    group_size: crate::metrics::Histogram,
    /// Writing a group: log append and sync, apply.
    flush_seconds: crate::metrics::Histogram,
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
            group_size: crate::metrics::Histogram::new(crate::metrics::COUNTS),
            flush_seconds: crate::metrics::Histogram::new(crate::metrics::SECONDS),
        }
    }
}

impl Counters {
    /// Counts one `fsync`/`fdatasync`.
    pub(crate) fn synced(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
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

    /// Appends the commit path's metrics (Prometheus text) to `out`.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = self.stats();
        for (name, help, value) in [
            (
                "durable_store_commits_total",
                "Batches committed.",
                s.commits,
            ),
            ("durable_store_flushes_total", "Group flushes.", s.flushes),
            (
                "durable_store_fsyncs_total",
                "fsync/fdatasync calls.",
                s.fsyncs,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        self.group_size.render(
            "durable_store_group_commits",
            "Commits written by one group flush (group-commit batch size).",
            out,
        );
        self.flush_seconds.render(
            "durable_store_flush_seconds",
            "Writing one group: log append and sync, apply.",
            out,
        );
    }
}

/// Test-only ways to make the commit path unsafe, so that a fault sweep
/// can show it catches them (negative controls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsafe {
    /// The store is as it should be.
    #[default]
    No,
    /// The log's sync of group `n` (from 0) is skipped: the group is
    /// acknowledged without being durable.
    SkipSync(u64),
    /// A failed sync of the log is tried again and, if that succeeds, the
    /// group acknowledged; any failure is logged and the store goes on (the
    /// "fsyncgate" pattern) instead of refusing later commits.
    RetryAfterFailure,
}

/// The running commit thread of an embedded store, and its handle.
pub(crate) struct CommitThread {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl Drop for CommitThread {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(handle) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
    }
}

impl CommitThread {
    /// Opens the log in `dir`, replays it into `tree` and checkpoints,
    /// then starts the commit thread.
    pub(crate) fn start<T: Tree>(
        tree: T,
        fs: &dyn Fs,
        dir: PathBuf,
        unsafe_mode: Unsafe,
    ) -> Result<CommitThread, StoreError> {
        let (wal, contents) = Wal::open(fs, &dir)?;
        let counters = Arc::new(Counters::default());
        let hook: Arc<Mutex<Option<Hook>>> = Arc::default();
        let mut committer = Committer {
            tree,
            wal,
            record: wal::Record::default(),
            counters: counters.clone(),
            hook: hook.clone(),
            broken: None,
            unsafe_mode,
        };
        committer.recover(contents.records)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("durable-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::io("starting the commit thread", e))?;
        Ok(CommitThread {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            counters,
            hook,
        })
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

    pub(crate) fn render_metrics(&self, out: &mut String) {
        self.counters.render(out);
    }

    /// Calls `hook` on the commit thread at each [`CommitPoint`].
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn set_hook(&self, hook: Hook) {
        if let Ok(mut slot) = self.hook.lock() {
            *slot = Some(hook);
        }
    }
}

struct Committer<T: Tree> {
    tree: T,
    /// Where groups become durable.
    wal: Wal,
    /// The group being assembled, as a log record.
    record: wal::Record,
    counters: Arc<Counters>,
    hook: Arc<Mutex<Option<Hook>>>,
    /// Set by [`Committer::stop`]: every later group fails until the store
    /// is opened again.
    broken: Option<String>,
    unsafe_mode: Unsafe,
}

impl<T: Tree> Committer<T> {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut index = 0u64;
        let mut last_group = 0usize;
        loop {
            let first = match rx.recv_timeout(IDLE_CHECKPOINT) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // quiet: empty the log, so a crash now replays nothing
                    if self.wal.len() > 0 {
                        self.checkpoint();
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
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.call_hook(CommitPoint::BeforeWrite(index));
            let writing = std::time::Instant::now();
            let (checks, result) = self.write(&group, index);
            self.counters.flush_seconds.since(writing);
            self.counters.group_size.observe(group.len() as f64);
            last_group = group.len();
            if result.is_ok() {
                self.call_hook(CommitPoint::AfterSync(index));
            }
            // counted before acknowledging, so a caller that was acknowledged sees its commit
            self.counters
                .commits
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            for (request, check) in group.into_iter().zip(checks) {
                let _ = request.done.send(check.and(result.clone()));
            }
            index += 1;
            self.after_group();
        }
        // closed: what the log holds goes into the tree, so a reopen replays nothing
        if self.wal.len() > 0 {
            self.checkpoint();
        }
    }

    /// Upkeep once a group is answered: a checkpoint when the log is
    /// large, the tree's own upkeep otherwise.
    fn after_group(&mut self) {
        if self.broken.is_some() {
            return;
        }
        if self.wal.len() >= wal::CHECKPOINT_BYTES {
            self.checkpoint();
        } else if let Err(e) = self.tree.after_group(&self.counters) {
            self.stop(e, "the storage engine's upkeep failed");
        }
        // a group of large values leaves a large buffer: do not keep it
        if self.record.capacity() > wal::CHECKPOINT_BYTES as usize {
            self.record = wal::Record::default();
        }
    }

    /// Applies the records the log holds (the tree may have lost any part
    /// of them) and checkpoints, before the store serves anything.
    fn recover(&mut self, records: Vec<wal::Writes>) -> Result<(), StoreError> {
        let n = records.len();
        for writes in records {
            let batch = Batch {
                writes,
                ..Batch::default()
            };
            self.tree.apply(&[&batch])?;
        }
        if n > 0 || self.wal.len() > 0 || self.wal.needs_reset() {
            self.tree.checkpoint(&self.counters)?;
            self.wal.reset()?;
            self.counters.synced();
            if n > 0 {
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                tracing::info!(records = n, "replayed the write-ahead log");
            }
        }
        Ok(())
    }

    /// Makes everything applied durable in the tree, then empties the log.
    /// A failure stops the store: the log still holds every group, and
    /// opening again replays them.
    fn checkpoint(&mut self) {
        if self.broken.is_some() {
            return;
        }
        let done = self
            .tree
            .checkpoint(&self.counters)
            .and_then(|()| self.wal.reset());
        match done {
            Ok(()) => {
                self.counters.synced();
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stop(e, "a checkpoint failed");
            }
        }
    }

    fn call_hook(&self, point: CommitPoint) {
        let hook = self.hook.lock().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            hook(point);
        }
    }

    /// Makes the group durable and applies it; per request, whether its
    /// conditions held, and for all, whether the group became durable.
    fn write(
        &mut self,
        group: &[Request],
        index: u64,
    ) -> (Vec<Result<(), StoreError>>, Result<(), StoreError>) {
        let n = group.len();
        if let Some(cause) = &self.broken {
            let e = StoreError::Failed {
                cause: cause.clone(),
            };
            return ((0..n).map(|_| Err(e.clone())).collect(), Err(e));
        }
        let (checks, accepted) = self.check(group);
        self.record.clear();
        for batch in &accepted {
            for (key, value) in &batch.writes {
                self.record.push(key, value.as_deref());
            }
        }
        let result = self.make_durable(index).and_then(|()| {
            match self.tree.apply(&accepted) {
                Ok(()) => Ok(()),
                // durable in the log, maybe partly in the tree: later groups
                // must not build on it; opening again replays it
                Err(e) => Err(self.stop(e, "the storage engine failed mid-group")),
            }
        });
        (checks, result)
    }

    /// Checks each request's size and conditions, in order, each seeing the
    /// writes of the requests accepted before it in the group.
    fn check<'g>(&self, group: &'g [Request]) -> (Vec<Result<(), StoreError>>, Vec<&'g Batch>) {
        let mut checks = Vec::with_capacity(group.len());
        let mut accepted = Vec::with_capacity(group.len());
        // keys some request makes a condition on: only these need the
        // group's own earlier writes kept for the check
        let conditioned: HashSet<&[u8]> = group
            .iter()
            .flat_map(|r| r.batch.expect.iter().map(|(k, _)| k.as_slice()))
            .collect();
        let mut overlay: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
        for request in group {
            let batch = &request.batch;
            let ok = self.check_one(batch, &overlay);
            if ok.is_ok() {
                let (writes, bytes) = batch.writes.iter().fold((0, 0), |(n, b), (k, v)| {
                    (n + 1, b + k.len() + v.as_ref().map_or(0, Vec::len))
                });
                self.counters.writes.fetch_add(writes, Ordering::Relaxed);
                self.counters
                    .bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                for (key, value) in &batch.writes {
                    if conditioned.contains(key.as_slice()) {
                        overlay.insert(key, value.as_deref());
                    }
                }
                accepted.push(batch);
            }
            checks.push(ok);
        }
        (checks, accepted)
    }

    fn check_one(
        &self,
        batch: &Batch,
        overlay: &HashMap<&[u8], Option<&[u8]>>,
    ) -> Result<(), StoreError> {
        if let Some((key, value)) = batch
            .writes
            .iter()
            .find(|(k, v)| !wal::fits(k, v.as_deref()))
        {
            return Err(StoreError::TooLarge {
                what: format!(
                    "a write of key {}",
                    super::printable(&key[..key.len().min(64)])
                ),
                size: (key.len() + value.as_ref().map_or(0, Vec::len)) as u64,
                limit: u64::from(u32::MAX),
            });
        }
        for (key, expected) in &batch.expect {
            let current = match overlay.get(key.as_slice()) {
                Some(v) => v.map(<[u8]>::to_vec),
                None => self.tree.get(key)?,
            };
            if current.as_deref() != expected.as_deref() {
                return Err(StoreError::Conflict {
                    key: super::printable(key),
                });
            }
        }
        Ok(())
    }

    /// Appends the group's record to the log and syncs it.
    fn make_durable(&mut self, index: u64) -> Result<(), StoreError> {
        if self.record.is_empty() {
            self.call_hook(CommitPoint::Applied(index));
            return Ok(());
        }
        self.record.seal(self.wal.epoch())?;
        if let Err(e) = self.wal.append(self.record.bytes()) {
            return Err(self.stop(e, "appending to the write-ahead log failed"));
        }
        self.call_hook(CommitPoint::Applied(index));
        if self.unsafe_mode != Unsafe::SkipSync(index)
            && let Err(e) = self.wal.sync()
        {
            // the negative control: retried, as the "fsyncgate" pattern does
            let retried = self.unsafe_mode == Unsafe::RetryAfterFailure && self.wal.sync().is_ok();
            if !retried {
                return Err(self.stop(e, "syncing the write-ahead log failed"));
            }
        }
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.counters.synced();
        Ok(())
    }

    /// Refuses every later group: after a failed append the log may end in
    /// a torn record, after a failed sync the kernel may have dropped pages
    /// it will never write again, after a failed apply the tree and the log
    /// may disagree. Opening the store again recovers from the log.
    fn stop(&mut self, e: StoreError, what: &str) -> StoreError {
        if self.unsafe_mode == Unsafe::RetryAfterFailure {
            tracing::error!(error = %e, "{what}; going on (negative control)");
            return e;
        }
        tracing::error!(error = %e, "{what}; the store takes no more commits until it is opened again");
        self.broken = Some(format!("{what}: {e}"));
        e
    }
}
