//! The embedded default store: sled on local disk, with real fsyncs.
//!
//! sled 0.34's `flush()` hands the write to sled's I/O threads and ends in
//! `sync_file_range`, which does not make data durable across power loss
//! (sled issue #1452). This store therefore makes a group of commits durable
//! itself: the group is appended to a write-ahead log of its own
//! (`durable.wal`, layout in `docs/storage-format.md`) and `fdatasync`'d,
//! then applied to sled's tree, before any commit of it is acknowledged. Checkpoints (sled
//! `flush`, `fdatasync` of sled's data file and `fsync` of every new file
//! under `blobs/`) empty the log every few MiB and on close; opening
//! replays what the log holds.
//!
//! Readers see only durable data: while a group is between its first write
//! and the log's fsync, [`Store::get`] answers the keys it writes with their
//! previous values, so nobody observes a state a power cut could still undo.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use super::wal::{self, Wal};
use super::{Batch, CommitRequest as Request, Store, StoreError};
use crate::activity::BoxFuture;

/// Commits taken into one flush at most.
const MAX_GROUP: usize = 4096;

/// A group this large means many writers: the next one waits [`GATHER`]
/// for more of them (a lone writer's commit never waits).
const GATHER_AFTER: usize = 8;

/// A commit thread idle this long checkpoints, so the log is empty while
/// nothing happens.
const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

/// File times move in clock ticks (4 ms at 250 Hz, 10 ms at 100 Hz): a
/// modification time younger than this may hide a later write.
const MTIME_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// sled writes its data file in the background (a log buffer that filled,
/// its flusher every 500 ms); after a group, what it wrote is synced at
/// most this often.
const SLED_SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// How long ago `time` was (zero if it is in the future).
fn age(time: std::time::SystemTime) -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(time)
        .unwrap_or_default()
}

/// How long a busy commit thread lets the next group gather.
const GATHER: std::time::Duration = std::time::Duration::from_micros(100);

/// Counters of the commit path, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches committed.
    pub commits: u64,
    /// Group writes to the log (each covers one or more commits).
    pub flushes: u64,
    /// `fsync`/`fdatasync` calls: one per group write, more per checkpoint.
    pub fsyncs: u64,
    /// Checkpoints: sled flushed and synced, the log emptied.
    pub checkpoints: u64,
    /// Key writes (puts and deletes) in the committed batches.
    pub writes: u64,
    /// Bytes of keys and values in the committed batches (what a benchmark
    /// of the raw store writes to compare like with like).
    pub bytes: u64,
}

/// Where the commit thread is, reported to a [commit hook](SledStore::set_commit_hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPoint {
    /// Group `index` (from 0) is about to be written; nothing of it is on disk.
    BeforeWrite(u64),
    /// Group `index` is written to the log but not yet fsync'd (nor in
    /// sled's tree): readers must not see it yet.
    Applied(u64),
    /// Group `index` is durable and not yet acknowledged.
    AfterSync(u64),
}

type Hook = Arc<dyn Fn(CommitPoint) + Send + Sync>;

/// Keys of the group being made durable, with their previous values.
type Pending = Arc<Mutex<HashMap<sled::IVec, Option<sled::IVec>>>>;

struct Counters {
    commits: AtomicU64,
    flushes: AtomicU64,
    fsyncs: AtomicU64,
    checkpoints: AtomicU64,
    writes: AtomicU64,
    bytes: AtomicU64,
    /// Commits per group flush.
    group_size: crate::metrics::Histogram,
    /// Writing a group: apply, flush and fsync.
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

struct Inner {
    db: sled::Db,
    pending: Pending,
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    hook: Arc<Mutex<Option<Hook>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(handle) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
    }
}

/// A [`Store`] on a sled directory. Cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("stats", &self.stats())
            .finish()
    }
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has it open,
    /// [`StoreError::Io`] for anything else sled reports.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(path, None)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_bytes`
    /// (`None`: sled's default, 1 GiB). See
    /// [`Builder::sled_cache_capacity`](crate::Builder::sled_cache_capacity)
    /// for the trade-off.
    ///
    /// # Errors
    /// As [`SledStore::open`].
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: Option<u64>,
    ) -> Result<SledStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut config = sled::Config::new().path(&path);
        if let Some(bytes) = cache_bytes {
            config = config.cache_capacity(bytes);
        }
        // sled's helper threads release the file lock a moment after the last
        // handle in this process is dropped: a reopen waits that out; another
        // process holding the lock gets `Locked` after the wait
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    attempts += 1;
                    if attempts == 100 {
                        return Err(StoreError::Locked { path });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(io_err(other)),
            }
        };
        let data_file = File::options()
            .read(true)
            .open(path.join("db"))
            .map_err(io_err)?;
        let (wal, contents) = Wal::open(&path)?;
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let hook: Arc<Mutex<Option<Hook>>> = Arc::default();
        let pending: Pending = Arc::default();
        let mut committer = Committer {
            db: db.clone(),
            pending: pending.clone(),
            data_file,
            blobs: path.join("blobs"),
            synced_blobs: HashSet::new(),
            counters: counters.clone(),
            hook: hook.clone(),
            spare: HashMap::new(),
            wal,
            record: wal::Record::default(),
            broken: None,
            synced_mtime: None,
            synced_at: std::time::Instant::now()
                .checked_sub(SLED_SYNC_EVERY)
                .unwrap_or_else(std::time::Instant::now),
        };
        committer.recover(contents.records)?;
        let thread = std::thread::Builder::new()
            .name("durable-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(io_err)?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                pending,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                counters,
                hook,
            }),
        })
    }

    /// Counters of the commit path.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// Calls `hook` on the commit thread before each group is written and
    /// after it is durable: crash tests use it to stop the process at an
    /// exact checkpoint.
    #[cfg(feature = "testing")]
    pub fn set_commit_hook(&self, hook: impl Fn(CommitPoint) + Send + Sync + 'static) {
        if let Ok(mut slot) = self.inner.hook.lock() {
            *slot = Some(Arc::new(hook));
        }
    }
}

struct Committer {
    db: sled::Db,
    pending: Pending,
    data_file: File,
    blobs: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
    counters: Arc<Counters>,
    hook: Arc<Mutex<Option<Hook>>>,
    /// The last group's pending map, kept for its capacity.
    spare: HashMap<sled::IVec, Option<sled::IVec>>,
    /// Where groups become durable.
    wal: Wal,
    /// The group being assembled, as a log record.
    record: wal::Record,
    /// Set by [`Committer::break_off`]: every later group fails until the
    /// store is opened again.
    broken: Option<StoreError>,
    /// sled's data file's modification time when it was last synced, and
    /// whether it was older than a clock tick then (no write can hide
    /// behind it).
    synced_mtime: Option<(std::time::SystemTime, bool)>,
    /// When sled's data file was last synced.
    synced_at: std::time::Instant,
}

impl Committer {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut index = 0u64;
        let mut last_group = 0usize;
        loop {
            let first = match rx.recv_timeout(IDLE_CHECKPOINT) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // quiet: empty the log, so a crash now replays nothing
                    if self.wal.len() > 0 {
                        self.checkpoint_or_log();
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
            let (checks, result) = self.write(&mut group, index);
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
        // closed: what the log holds goes into sled, so a reopen replays nothing
        self.checkpoint_or_log();
    }

    /// Upkeep once a group is answered: a checkpoint when the log is large;
    /// otherwise, if sled wrote to its files and the last sync of them is
    /// [`SLED_SYNC_EVERY`] old, those writes are made durable now. sled
    /// reuses the space of pages it has rewritten once it believes the
    /// rewrites stable, and its belief rests on `sync_file_range`: syncing
    /// soon after sled writes keeps an overwrite of older pages from
    /// reaching the disk ahead of their new copies for long.
    fn after_group(&mut self) {
        if self.broken.is_some() {
            return;
        }
        if self.wal.len() >= wal::CHECKPOINT_BYTES {
            self.checkpoint_or_log();
        } else if self.synced_at.elapsed() >= SLED_SYNC_EVERY
            && self.sled_wrote()
            && let Err(e) = self.sync()
        {
            tracing::error!(error = %e, "syncing sled's files failed; retried after the next group");
        }
        // a group of large values leaves a large buffer: do not keep it
        if self.record.capacity() > wal::CHECKPOINT_BYTES as usize {
            self.record = wal::Record::default();
        }
    }

    /// Whether sled's data file may hold writes not yet synced: its
    /// modification time moved since the last sync, or the last sync saw a
    /// time so recent that a later write in the same clock tick would not
    /// have moved it (then one more sync, once the tick is surely past).
    fn sled_wrote(&mut self) -> bool {
        let Ok(modified) = self.data_file.metadata().and_then(|m| m.modified()) else {
            return true;
        };
        if self.synced_mtime.map(|(time, _)| time) != Some(modified) {
            return true;
        }
        let settled = self.synced_mtime.is_some_and(|(_, settled)| settled);
        !settled && age(modified) >= MTIME_TICK
    }

    /// A checkpoint, its failure logged: the log still holds everything, so
    /// nothing is lost; it is tried again later.
    fn checkpoint_or_log(&mut self) {
        if self.broken.is_none()
            && let Err(e) = self.checkpoint()
        {
            tracing::error!(error = %e, "checkpoint failed; the log keeps the data and it is tried again");
        }
    }

    /// Applies the records the log holds (sled may have lost any part of
    /// them) and checkpoints, before the store serves anything.
    fn recover(&mut self, records: Vec<wal::Writes>) -> Result<(), StoreError> {
        if records.is_empty() && self.wal.len() == 0 {
            return Ok(());
        }
        let n = records.len();
        for writes in records {
            let mut batch = sled::Batch::default();
            for (key, value) in writes {
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
            self.db.apply_batch(batch).map_err(io_err)?;
        }
        self.checkpoint()?;
        tracing::info!(records = n, "replayed the write-ahead log");
        Ok(())
    }

    /// Makes everything applied so far durable in sled's own files, then
    /// empties the log.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.db.flush().map_err(io_err)?;
        self.sync()?;
        self.wal.reset()?;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn call_hook(&self, point: CommitPoint) {
        let hook = self.hook.lock().ok().and_then(|h| h.clone());
        if let Some(hook) = hook {
            hook(point);
        }
    }

    /// Applies the group; per request, whether its conditions held, and for
    /// all, whether the group became durable.
    fn write(
        &mut self,
        group: &mut [Request],
        index: u64,
    ) -> (Vec<Result<(), StoreError>>, Result<(), StoreError>) {
        let n = group.len();
        if let Some(e) = &self.broken {
            return ((0..n).map(|_| Err(e.clone())).collect(), Err(e.clone()));
        }
        let mut checks = Vec::with_capacity(n);
        // the group's writes in order; applied one by one (see `apply`)
        let mut batch: Vec<(sled::IVec, Option<sled::IVec>)> = Vec::new();
        self.record.clear();
        // keys some request of the group makes a condition on: only these need
        // the group's own earlier writes kept for the check
        let conditioned: HashSet<&[u8]> = group
            .iter()
            .flat_map(|r| r.batch.expect.iter().map(|(k, _)| k.as_slice()))
            .collect();
        let mut overlay: HashMap<sled::IVec, Option<sled::IVec>> = HashMap::new();
        // the previous value of every key the group writes, for readers until
        // the group is durable; built without the lock (only this thread
        // changes the tree), handed over before the tree changes
        let mut pending = std::mem::take(&mut self.spare);
        pending.clear();
        for request in group.iter() {
            let mut ok = Ok(());
            if !request
                .batch
                .writes
                .iter()
                .all(|(k, v)| wal::fits(k, v.as_deref()))
            {
                ok = Err(StoreError::Io(
                    "a key or value of 4 GiB or more cannot be stored".into(),
                ));
            }
            for (key, expected) in request.batch.expect.iter().filter(|_| ok.is_ok()) {
                let current = match overlay.get(key.as_slice()) {
                    Some(v) => Ok(v.clone()),
                    None => self.db.get(key).map_err(io_err),
                };
                match current {
                    Ok(current) if current.as_deref() == expected.as_deref() => {}
                    Ok(_) => {
                        ok = Err(StoreError::Conflict {
                            key: super::printable(key),
                        });
                        break;
                    }
                    Err(e) => {
                        ok = Err(e);
                        break;
                    }
                }
            }
            if ok.is_ok() {
                let (writes, bytes) = request.batch.writes.iter().fold((0, 0), |(n, b), (k, v)| {
                    (n + 1, b + k.len() + v.as_ref().map_or(0, Vec::len))
                });
                self.counters.writes.fetch_add(writes, Ordering::Relaxed);
                self.counters
                    .bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                for (i, (key, value)) in request.batch.writes.iter().enumerate() {
                    let key = sled::IVec::from(key.as_slice());
                    if !pending.contains_key(&key) {
                        // a key the writer vouches is new has no previous value to
                        // look up (the tree lookup is a fifth of this thread's work)
                        let fresh = value.is_some() && request.batch.fresh.contains(&i);
                        let previous = if fresh {
                            Ok(None)
                        } else {
                            self.db.get(&key).map_err(io_err)
                        };
                        match previous {
                            Ok(previous) => {
                                pending.insert(key.clone(), previous);
                            }
                            Err(e) => {
                                return ((0..n).map(|_| Err(e.clone())).collect(), Err(e));
                            }
                        }
                    }
                    self.record.push(&key, value.as_deref());
                    // shared (reference-counted), not copied, by the batch and the maps
                    let value = value.as_deref().map(sled::IVec::from);
                    if conditioned.contains(key.as_ref()) {
                        overlay.insert(key.clone(), value.clone());
                    }
                    batch.push((key, value));
                }
            }
            checks.push(ok);
        }
        match self.pending.lock() {
            Ok(mut shared) => *shared = pending,
            Err(_) => {
                return (
                    (0..n).map(|_| Err(StoreError::Closed)).collect(),
                    Err(StoreError::Closed),
                );
            }
        }
        let result = self.apply(batch, index);
        // durable (or failed and never acknowledged): readers may see the new
        // values; the map is kept (cleared outside the lock) for the next group
        if let Ok(mut shared) = self.pending.lock() {
            self.spare = std::mem::take(&mut *shared);
        }
        (checks, result)
    }

    /// Applies the group to sled's tree key by key, not as a sled batch:
    /// sled writes its log buffer out (and `sync_file_range`s it) twice for
    /// every batch, on its I/O threads, while single writes stay in memory
    /// until a buffer fills. The group's atomicity comes from the log: a
    /// crash leaves sled with any part of the groups since the last
    /// checkpoint, and opening replays every one of them in order.
    fn apply(
        &mut self,
        batch: Vec<(sled::IVec, Option<sled::IVec>)>,
        index: u64,
    ) -> Result<(), StoreError> {
        let empty = self.record.is_empty();
        self.record.seal()?;
        // the log first, and durable: sled may write any key it holds to its
        // files at any moment, so every group sled holds a part of must be
        // one the log replays whole
        if !empty && let Err(e) = self.wal.append(self.record.bytes()) {
            return Err(self.break_off(e, "appending to the write-ahead log failed"));
        }
        self.call_hook(CommitPoint::Applied(index));
        if !empty {
            if let Err(e) = self.wal.sync() {
                return Err(self.break_off(e, "syncing the write-ahead log failed"));
            }
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        for (key, value) in batch {
            let applied = match value {
                Some(value) => self.db.insert(key, value),
                None => self.db.remove(key),
            };
            if let Err(e) = applied {
                // durable in the log, partly in sled's memory: later groups
                // must not build on it; opening again replays it
                return Err(self.break_off(io_err(e), "sled failed mid-group"));
            }
        }
        Ok(())
    }

    /// Refuses every later group: after a failed append the log may end in
    /// a torn record (nothing appended after it could be read back), after
    /// a failed sync or apply sled's memory and the log may disagree.
    /// Opening the store again recovers from the log.
    fn break_off(&mut self, e: StoreError, what: &str) -> StoreError {
        tracing::error!(error = %e, "{what}; the store takes no more commits until it is opened again");
        self.broken = Some(e.clone());
        e
    }

    /// Makes what sled's `flush` wrote durable: fdatasync of the data file,
    /// fsync of new blob files and of the blob directory that names them.
    fn sync(&mut self) -> Result<(), StoreError> {
        // read before the sync: a write after it moves the time again
        let modified = self.data_file.metadata().and_then(|m| m.modified()).ok();
        self.data_file.sync_data().map_err(io_err)?;
        self.synced_mtime = modified.map(|time| (time, age(time) >= MTIME_TICK));
        self.synced_at = std::time::Instant::now();
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(e)),
        };
        let mut present = HashSet::new();
        let mut new_files = false;
        for entry in entries {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(entry.path()) {
                    Ok(file) => {
                        file.sync_all().map_err(io_err)?;
                        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                        new_files = true;
                    }
                    // sled may have collected the blob since the listing
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(e)),
                }
            }
            present.insert(name);
        }
        if new_files {
            File::open(&self.blobs)
                .and_then(|dir| dir.sync_all())
                .map_err(io_err)?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.synced_blobs = present;
        Ok(())
    }
}

impl Store for SledStore {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        super::submit(batch, |request| match self.inner.tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.send(request).is_ok()),
            Err(_) => false,
        })
    }

    fn stats(&self) -> Option<StoreStats> {
        Some(SledStore::stats(self))
    }

    fn render_metrics(&self, out: &mut String) {
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
        let c = &self.inner.counters;
        c.group_size.render(
            "durable_store_group_commits",
            "Commits written by one group flush (group-commit batch size).",
            out,
        );
        c.flush_seconds.render(
            "durable_store_flush_seconds",
            "Writing one group: apply, flush and fsync.",
            out,
        );
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // holding the lock while reading keeps a group from being applied in between
        let pending = self.inner.pending.lock().map_err(|_| StoreError::Closed)?;
        if let Some(previous) = pending.get(key) {
            return Ok(previous.as_deref().map(<[u8]>::to_vec));
        }
        Ok(self.inner.db.get(key).map_err(io_err)?.map(|v| v.to_vec()))
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<super::KeyValue>, StoreError> {
        // keys before the prefix are outside the scan, whatever `from` says
        let from = from.max(prefix);
        // as in `get`: the lock keeps a group from being applied mid-scan
        let pending = self.inner.pending.lock().map_err(|_| StoreError::Closed)?;
        // fetch enough to fill `limit` after masking drops pending new keys
        let fetch = limit.saturating_add(pending.len());
        let scanned: Vec<super::KeyValue> = self
            .inner
            .db
            .range(from.to_vec()..)
            .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(fetch)
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io_err))
            .collect::<Result<_, _>>()?;
        // past the last key fetched, restored keys could hide unfetched ones
        let end = (scanned.len() == fetch).then(|| scanned.last().map(|(k, _)| k.clone()));
        let mut items = mask(&pending, scanned, |k| {
            k.starts_with(prefix)
                && k >= from
                && end
                    .as_ref()
                    .is_none_or(|end| end.as_ref().is_none_or(|e| k <= e.as_slice()))
        });
        items.truncate(limit);
        Ok(items)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<super::KeyValue>, StoreError> {
        let pending = self.inner.pending.lock().map_err(|_| StoreError::Closed)?;
        let scanned = self
            .inner
            .db
            .scan_prefix(prefix)
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io_err))
            .collect::<Result<_, _>>()?;
        Ok(mask(&pending, scanned, |k| k.starts_with(prefix)))
    }
}

/// `scanned` as readers may see it: keys written by a group that is not
/// durable yet show their previous value (or are absent if they were new);
/// `in_range` says which pending keys the scan covers.
fn mask(
    pending: &HashMap<sled::IVec, Option<sled::IVec>>,
    scanned: Vec<super::KeyValue>,
    in_range: impl Fn(&[u8]) -> bool,
) -> Vec<super::KeyValue> {
    if pending.is_empty() {
        return scanned;
    }
    let mut items: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = scanned.into_iter().collect();
    for (key, previous) in pending {
        if !in_range(key) {
            continue;
        }
        match previous {
            Some(value) => items.insert(key.to_vec(), value.to_vec()),
            None => items.remove(key.as_ref()),
        };
    }
    items.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_acknowledged_commit_is_fsynced_and_concurrent_commits_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut b = Batch::default();
        b.put(b"a".to_vec(), vec![1]);
        store.commit(b).await.unwrap();
        let s = store.stats();
        assert_eq!((s.commits, s.flushes), (1, 1));
        assert!(
            s.fsyncs >= 1,
            "a commit was acknowledged without an fsync: {s:?}"
        );

        let waits: Vec<_> = (0..200u32)
            .map(|i| {
                let mut b = Batch::default();
                b.put(i.to_be_bytes().to_vec(), vec![0; 16]);
                store.commit(b)
            })
            .collect();
        for w in futures::future::join_all(waits).await {
            w.unwrap();
        }
        let s = store.stats();
        assert_eq!(s.commits, 201);
        assert!(s.flushes < 201, "group commit did not batch: {s:?}");
        assert!(s.fsyncs >= s.flushes, "a flush went without fsync: {s:?}");
        assert_eq!(store.get(b"a").unwrap(), Some(vec![1]));
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn readers_do_not_see_a_group_before_its_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut b = Batch::default();
        b.put(b"ka".to_vec(), vec![1]).put(b"kb".to_vec(), vec![1]);
        store.commit(b).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (reader, log) = (store.clone(), seen.clone());
        store.set_commit_hook(move |point| {
            if let CommitPoint::Applied(_) = point {
                let view = (
                    reader.get(b"ka").unwrap(),
                    reader.scan_prefix(b"k").unwrap(),
                    reader.scan_from(b"k", b"k", 2).unwrap(),
                );
                log.lock().unwrap().push(view);
            }
        });
        // changes one key, deletes one, adds one: none visible before the fsync
        let mut b = Batch::default();
        b.put(b"ka".to_vec(), vec![2])
            .delete(b"kb".to_vec())
            .put(b"k0".to_vec(), vec![2]);
        store.commit(b).await.unwrap();
        let before = vec![(b"ka".to_vec(), vec![1]), (b"kb".to_vec(), vec![1])];
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, [(Some(vec![1]), before.clone(), before)]);
        // and all of it once acknowledged
        assert_eq!(
            store.scan_prefix(b"k").unwrap(),
            [(b"k0".to_vec(), vec![2]), (b"ka".to_vec(), vec![2])]
        );
    }

    #[tokio::test]
    async fn conditions_are_checked_atomically_within_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        // two creates of one key in the same group: exactly one wins
        let create = |v: u8| {
            let mut b = Batch::default();
            b.expect(b"k".to_vec(), None).put(b"k".to_vec(), vec![v]);
            store.commit(b)
        };
        let (a, b) = futures::join!(create(1), create(2));
        assert!(a.is_ok() != b.is_ok(), "one create must win: {a:?} {b:?}");
        let winner = if a.is_ok() { 1 } else { 2 };
        assert_eq!(store.get(b"k").unwrap(), Some(vec![winner]));
        assert!(matches!(
            a.err().or(b.err()),
            Some(StoreError::Conflict { .. })
        ));
        // compare-and-set on the current value
        let mut cas = Batch::default();
        cas.expect(b"k".to_vec(), Some(vec![winner]))
            .put(b"k".to_vec(), vec![9]);
        store.commit(cas).await.unwrap();
        let mut stale = Batch::default();
        stale
            .expect(b"k".to_vec(), Some(vec![winner]))
            .put(b"k".to_vec(), vec![10]);
        assert!(matches!(
            store.commit(stale).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(store.get(b"k").unwrap(), Some(vec![9]));
    }

    #[tokio::test]
    async fn large_values_in_blob_files_are_fsynced_at_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        // each value is durable through the log at once; the second fills
        // the log past its checkpoint size
        for i in 0..2u8 {
            let mut b = Batch::default();
            b.put(vec![b'b', i], vec![7; 4 << 20]);
            store.commit(b).await.unwrap();
        }
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        // the checkpoint follows the answer; the next group waits for it
        let mut b = Batch::default();
        b.put(b"small".to_vec(), vec![1]);
        store.commit(b).await.unwrap();
        let s = store.stats();
        assert_eq!(s.checkpoints, 1, "{s:?}");
        assert!(blobs > 0, "a 4 MiB value should live in a blob file");
        // per group one log fdatasync; the checkpoint: sled's data file, every
        // blob, the blob directory and the emptied log
        assert!(
            s.fsyncs >= s.flushes + 3 + blobs as u64,
            "{s:?}, {blobs} blobs"
        );
        // emptied by the checkpoint, then the small group alone
        let log = std::fs::metadata(dir.path().join(wal::FILE)).unwrap().len();
        assert!(log < 100, "a checkpoint empties the log: {log} bytes");
        assert_eq!(
            store.get(&[b'b', 1]).unwrap().map(|v| v.len()),
            Some(4 << 20)
        );
    }

    #[tokio::test]
    async fn what_sled_writes_between_checkpoints_is_synced_after_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        // more than one of sled's 512 KiB log buffers: sled writes its file
        let mut b = Batch::default();
        for i in 0..2_000u32 {
            b.put(i.to_be_bytes().to_vec(), vec![3; 400]);
        }
        store.commit(b).await.unwrap();
        // the upkeep follows the answer; the next group waits for it
        let mut b = Batch::default();
        b.put(b"small".to_vec(), vec![1]);
        store.commit(b).await.unwrap();
        let s = store.stats();
        assert_eq!((s.flushes, s.checkpoints), (2, 0), "{s:?}");
        assert!(
            s.fsyncs > s.flushes,
            "sled wrote its file and it was not synced: {s:?}"
        );
    }

    #[tokio::test]
    async fn what_only_the_log_holds_is_replayed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.put(b"kept".to_vec(), vec![1])
                .put(b"gone".to_vec(), vec![1]);
            store.commit(b).await.unwrap();
        }
        // as if sled had lost its unflushed tail: two groups only in the log
        let mut log = Vec::new();
        for writes in [
            &[(&b"gone"[..], None), (&b"new"[..], Some(&b"1"[..]))][..],
            &[
                (&b"new"[..], Some(&b"2"[..])),
                (&b"kept"[..], Some(&b"3"[..])),
            ][..],
        ] {
            let mut r = wal::Record::default();
            r.clear();
            for (k, v) in writes {
                r.push(k, *v);
            }
            r.seal().unwrap();
            log.extend_from_slice(r.bytes());
        }
        std::fs::write(dir.path().join(wal::FILE), &log).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.scan_prefix(b"").unwrap(),
            [
                (b"kept".to_vec(), b"3".to_vec()),
                (b"new".to_vec(), b"2".to_vec())
            ]
        );
        // replayed into sled and checkpointed: the log is empty again
        assert_eq!(store.stats().checkpoints, 1);
        assert_eq!(
            std::fs::metadata(dir.path().join(wal::FILE)).unwrap().len(),
            0
        );
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        // sled's lock is per process (fcntl-style via flock on Linux is per open file description)
        match SledStore::open(dir.path()) {
            Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("the same directory opened twice"),
        }
    }
}
