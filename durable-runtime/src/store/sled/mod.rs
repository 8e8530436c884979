//! The sled store (feature `sled`): the design's original embedded store,
//! kept for directories it wrote. The default embedded store is redb
//! ([`RedbStore`](super::redb::RedbStore)); `docs/reliability.md` says why.
//!
//! Groups are made durable by the shared commit path (`store::commit`):
//! appended to the write-ahead log and `fdatasync`'d, then applied to
//! sled's tree in memory key by key. Checkpoints (sled `flush`, `fdatasync`
//! of sled's data file and `fsync` of every new file under `blobs/`) empty
//! the log every few MiB and on close; opening replays what the log holds.
//!
//! sled 0.34 (unmaintained since 2021) decides it may reuse the space of
//! rewritten pages on the strength of `sync_file_range`, which is not
//! durable across power loss; this store syncs sled's data file at most
//! 10 ms after sled wrote it and at every checkpoint, which bounds but does
//! not close the window in which a power cut (not a crash) could find a
//! reused page whose new copy had not reached the disk. sled's own I/O
//! cannot be put under the fault-injection layer; only the syncs this
//! store makes can (and a failed one stops the store like any other).
//!
//! Readers see only whole groups: while a group is being applied key by
//! key, [`Store::get`] answers the keys it writes with their previous
//! values. Scans take no lock while they read sled (a long listing must not
//! stall the commit thread): they mask what they read with the previous
//! values of every group applied while they ran, which gives the tree as
//! it was before the first of those groups (see `Groups`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::commit::{CommitThread, Counters};
use super::embedded::{self, Tree, Unsafe};
use super::fs::{Fs, FsFile, RealFs};
use super::{Batch, Store, StoreError, StoreStats};
use crate::future::BoxFuture;

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

/// A group's keys, each with its value before the group.
type Previous = HashMap<sled::IVec, Option<sled::IVec>>;

/// What the commit thread tells readers about the groups it applies.
///
/// Groups are numbered from 1. A scan registers the first group it may see
/// part of (the one being applied as it starts, else the next) and reads
/// sled without the lock. Until the scan ends, the previous values of that
/// group and of every later one are kept. Every key they write shows, in
/// what the scan returns, the value recorded by the earliest of them that
/// wrote it: the value before that first group. Keys none of them wrote did
/// not change while the scan ran. So the scan returns the tree exactly as it
/// was before its first group: each group whole or absent.
///
/// With no scan running, nothing is kept: the commit thread's work per
/// group is what it was with one map under the lock.
#[derive(Default)]
struct Groups {
    /// The number of the last group published.
    last: u64,
    /// The group being applied now (number `last`), if any.
    applying: Option<Arc<Previous>>,
    /// The groups applied since the oldest running scan started, oldest
    /// first; empty when no scan runs.
    kept: VecDeque<(u64, Arc<Previous>)>,
    /// The first group of each running scan.
    scans: Vec<u64>,
}

type Shared = Arc<Mutex<Groups>>;

#[cfg(test)]
type ScanHook = (usize, Box<dyn FnOnce() + Send>);

struct Inner {
    db: sled::Db,
    groups: Shared,
    commits: CommitThread,
    /// Called once by the next scan when it has read this many keys.
    #[cfg(test)]
    scan_hook: Mutex<Option<ScanHook>>,
}

/// A [`Store`] on a sled directory. Cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
    /// Its reads on tokio's blocking pool.
    reads: super::OffThread,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("stats", &self.stats())
            .finish()
    }
}

fn sled_err(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::io("sled", io),
        other => StoreError::Backend(format!("sled: {other}")),
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has it open,
    /// [`StoreError::WrongKind`] if it holds another kind of store,
    /// [`StoreError::Io`] for anything else sled reports.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(path, None)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_bytes`
    /// (`None`: sled's default, 1 GiB). See
    /// [`Builder::cache_capacity`](crate::Builder::cache_capacity)
    /// for the trade-off.
    ///
    /// # Errors
    /// As [`SledStore::open`].
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: Option<u64>,
    ) -> Result<SledStore, StoreError> {
        SledStore::open_on(Arc::new(RealFs), path.as_ref(), cache_bytes, Unsafe::No)
    }

    /// [`SledStore::open`] with the syncs this store makes itself going
    /// through `fs` (sled's own I/O does not), and optionally made unsafe:
    /// for fault tests.
    #[cfg(feature = "testing")]
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        path: impl AsRef<Path>,
        unsafe_mode: Unsafe,
    ) -> Result<SledStore, StoreError> {
        SledStore::open_on(fs, path.as_ref(), None, unsafe_mode)
    }

    fn open_on(
        fs: Arc<dyn Fs>,
        path: &Path,
        cache_bytes: Option<u64>,
        unsafe_mode: Unsafe,
    ) -> Result<SledStore, StoreError> {
        let path = path.to_path_buf();
        super::kind::check(&*fs, &path, super::kind::Kind::Sled)?;
        super::kind::mark(&*fs, &path, super::kind::Kind::Sled)?;
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
                Err(other) => return Err(sled_err(other)),
            }
        };
        let data_path = path.join("db");
        let data_file = fs
            .open(&data_path, false)
            .map_err(|e| super::fs::at(&data_path, "opening", e))?;
        let groups: Shared = Arc::default();
        let tree = SledTree {
            db: db.clone(),
            groups: groups.clone(),
            fs: fs.clone(),
            data_file,
            data_path,
            blobs: path.join("blobs"),
            synced_blobs: HashSet::new(),
            synced_mtime: None,
            synced_at: std::time::Instant::now()
                .checked_sub(SLED_SYNC_EVERY)
                .unwrap_or_else(std::time::Instant::now),
            spare: None,
        };
        let commits = embedded::start(tree, &*fs, path, unsafe_mode, None)?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                groups,
                commits,
                #[cfg(test)]
                scan_hook: Mutex::default(),
            }),
            reads: super::OffThread::default(),
        })
    }

    /// Counters of the commit path.
    pub fn stats(&self) -> StoreStats {
        self.inner.commits.stats()
    }

    /// Calls `hook` on the commit thread before each group is written and
    /// after it is durable: crash tests use it to stop the process at an
    /// exact checkpoint.
    #[cfg(feature = "testing")]
    pub fn set_commit_hook(&self, hook: impl Fn(super::CommitPoint) + Send + Sync + 'static) {
        self.inner.commits.set_hook(Arc::new(hook));
    }
}

struct SledTree {
    db: sled::Db,
    groups: Shared,
    fs: Arc<dyn Fs>,
    data_file: Arc<dyn FsFile>,
    data_path: PathBuf,
    blobs: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
    /// sled's data file's modification time when it was last synced, and
    /// whether it was older than a clock tick then (no write can hide
    /// behind it).
    synced_mtime: Option<(std::time::SystemTime, bool)>,
    /// When sled's data file was last synced.
    synced_at: std::time::Instant,
    /// The last group's map, kept for its capacity (none if scans kept it).
    spare: Option<Arc<Previous>>,
}

impl Tree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }

    /// Applies the group key by key, not as a sled batch: sled writes its
    /// log buffer out (and `sync_file_range`s it) twice for every batch, on
    /// its I/O threads, while single writes stay in memory until a buffer
    /// fills. Readers are shown the previous values of the group's keys
    /// until the last one is in.
    fn apply(&mut self, batches: &[&Batch]) -> Result<(), StoreError> {
        // the previous value of every key the group writes, built without
        // the lock (only this thread changes the tree), in the last group's
        // map unless a scan still holds it (so `make_mut` copies nothing)
        let mut shared = (self.spare.take())
            .filter(|map| Arc::strong_count(map) == 1)
            .unwrap_or_default();
        let pending = Arc::make_mut(&mut shared);
        pending.clear();
        for batch in batches {
            for (i, (key, value)) in batch.writes.iter().enumerate() {
                let key = sled::IVec::from(key.as_slice());
                if pending.contains_key(&key) {
                    continue;
                }
                // a key the writer vouches is new has no previous value to
                // look up (the tree lookup is a fifth of this thread's work)
                let previous = if value.is_some() && batch.fresh.contains(&i) {
                    None
                } else {
                    self.db.get(&key).map_err(sled_err)?
                };
                pending.insert(key, previous);
            }
        }
        match self.groups.lock() {
            Ok(mut groups) => {
                groups.last += 1;
                groups.applying = Some(shared);
            }
            Err(_) => return Err(StoreError::Closed),
        }
        let applied = self.insert_all(batches);
        if let Ok(mut groups) = self.groups.lock() {
            let map = groups.applying.take();
            if groups.scans.is_empty() {
                self.spare = map;
            } else if let Some(map) = map {
                // every running scan started at or before this group
                let number = groups.last;
                groups.kept.push_back((number, map));
            }
        }
        applied
    }

    fn checkpoint(&mut self, counters: &Counters) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err)?;
        self.sync(counters)
    }

    /// If sled wrote to its files and the last sync of them is
    /// [`SLED_SYNC_EVERY`] old, those writes are made durable now. sled
    /// reuses the space of pages it has rewritten once it believes the
    /// rewrites stable, and its belief rests on `sync_file_range`: syncing
    /// soon after sled writes keeps an overwrite of older pages from
    /// reaching the disk ahead of their new copies for long.
    fn after_group(&mut self, counters: &Counters) -> Result<(), StoreError> {
        if self.synced_at.elapsed() >= SLED_SYNC_EVERY && self.sled_wrote() {
            self.sync(counters)?;
        }
        Ok(())
    }
}

impl SledTree {
    fn insert_all(&self, batches: &[&Batch]) -> Result<(), StoreError> {
        for batch in batches {
            for (key, value) in &batch.writes {
                match value {
                    Some(value) => self.db.insert(key.as_slice(), value.as_slice()),
                    None => self.db.remove(key.as_slice()),
                }
                .map_err(sled_err)?;
            }
        }
        Ok(())
    }

    /// Whether sled's data file may hold writes not yet synced: its
    /// modification time moved since the last sync, or the last sync saw a
    /// time so recent that a later write in the same clock tick would not
    /// have moved it (then one more sync, once the tick is surely past).
    fn sled_wrote(&mut self) -> bool {
        let Ok(modified) = std::fs::metadata(&self.data_path).and_then(|m| m.modified()) else {
            return true;
        };
        if self.synced_mtime.map(|(time, _)| time) != Some(modified) {
            return true;
        }
        let settled = self.synced_mtime.is_some_and(|(_, settled)| settled);
        !settled && age(modified) >= MTIME_TICK
    }

    /// Makes what sled wrote durable: fdatasync of the data file, fsync of
    /// new blob files and of the blob directory that names them.
    fn sync(&mut self, counters: &Counters) -> Result<(), StoreError> {
        // read before the sync: a write after it moves the time again
        let modified = std::fs::metadata(&self.data_path)
            .and_then(|m| m.modified())
            .ok();
        self.data_file
            .sync_data()
            .map_err(|e| super::fs::at(&self.data_path, "syncing sled's data file", e))?;
        counters.synced();
        self.synced_mtime = modified.map(|time| (time, age(time) >= MTIME_TICK));
        self.synced_at = std::time::Instant::now();
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(super::fs::at(&self.blobs, "listing", e)),
        };
        let mut present = HashSet::new();
        let mut new_files = false;
        for entry in entries {
            let entry = entry.map_err(|e| super::fs::at(&self.blobs, "listing", e))?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                let path = entry.path();
                match self.fs.open(&path, false) {
                    Ok(file) => {
                        file.sync_data()
                            .map_err(|e| super::fs::at(&path, "syncing", e))?;
                        counters.synced();
                        new_files = true;
                    }
                    // sled may have collected the blob since the listing
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(super::fs::at(&path, "opening", e)),
                }
            }
            present.insert(name);
        }
        if new_files {
            self.fs
                .sync_dir(&self.blobs)
                .map_err(|e| super::fs::at(&self.blobs, "syncing", e))?;
            counters.synced();
        }
        self.synced_blobs = present;
        Ok(())
    }
}

#[cfg(test)]
impl SledStore {
    fn scan_read(&self, keys: usize) {
        let mut hook = self.inner.scan_hook.lock().unwrap();
        if hook.as_ref().is_some_and(|(at, _)| *at == keys) {
            let (_, hook) = hook.take().unwrap();
            hook();
        }
    }
}

impl Store for SledStore {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        self.inner.commits.commit(batch)
    }

    fn stats(&self) -> Option<StoreStats> {
        Some(SledStore::stats(self))
    }

    fn store_metrics(&self) -> Option<super::StoreMetrics> {
        Some(self.inner.commits.metrics())
    }

    /// One lookup: holding the lock for it costs the commit thread little,
    /// and keeps one reader's successive gets in group order (a get that
    /// saw a group's new value is never followed by one that misses it).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let groups = self.inner.groups.lock().map_err(|_| StoreError::Closed)?;
        if let Some(previous) = groups.applying.as_ref().and_then(|map| map.get(key)) {
            return Ok(previous.as_deref().map(<[u8]>::to_vec));
        }
        Ok(self
            .inner
            .db
            .get(key)
            .map_err(sled_err)?
            .map(|v| v.to_vec()))
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<super::KeyValue>, StoreError> {
        self.scan(prefix, from, limit)
    }

    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        super::counters_in_keys(self)
    }

    fn get_async(&self, key: &[u8]) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        self.reads.get(self, key)
    }

    fn reads_running(&self) -> usize {
        self.reads.running()
    }

    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> BoxFuture<Result<Vec<super::KeyValue>, StoreError>> {
        self.reads.scan(self, prefix, from, limit)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<super::KeyValue>, StoreError> {
        self.scan(prefix, prefix, usize::MAX)
    }
}

impl SledStore {
    /// The first `limit` keys with `prefix` from `from` on, as they were
    /// before the first group the scan may have seen part of (see
    /// [`Groups`]); sled is read without the lock.
    fn scan(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<super::KeyValue>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // keys before the prefix are outside the scan, whatever `from` says
        let from = from.max(prefix);
        let scan = Registered::new(&self.inner.groups)?;
        let mut keys = self.inner.db.range(from.to_vec()..);
        let (mut scanned, mut exhausted, mut want) = (Vec::new(), false, limit);
        let groups = loop {
            while !exhausted && scanned.len() < want {
                #[cfg(test)]
                self.scan_read(scanned.len());
                match keys.next().transpose().map_err(sled_err)? {
                    Some((k, v)) if k.starts_with(prefix) => {
                        scanned.push((k.to_vec(), v.to_vec()));
                    }
                    _ => exhausted = true,
                }
            }
            let groups = scan.groups()?;
            // masking drops at most one scanned key per key written: with
            // this many, `limit` remain among the keys scanned
            let needed = groups.iter().map(|map| map.len()).sum::<usize>();
            let needed = limit.saturating_add(needed);
            if exhausted || scanned.len() >= needed {
                break groups;
            }
            want = needed;
        };
        drop(scan);
        // past the last key scanned, restored keys could hide unscanned ones
        // (`needed` already puts the first `limit` at or before it: this
        // second guard keeps them out even so). Not exhausted: `want` >=
        // `limit` > 0 keys were scanned.
        let end = if exhausted {
            None
        } else {
            scanned.last().map(|(k, _)| k.clone())
        };
        let mut items = mask(&groups, scanned, |k| {
            k.starts_with(prefix) && k >= from && end.as_deref().is_none_or(|e| k <= e)
        });
        items.truncate(limit);
        Ok(items)
    }
}

/// A running scan: until it is dropped, the groups from `first` on are kept.
struct Registered<'a> {
    shared: &'a Mutex<Groups>,
    first: u64,
}

impl<'a> Registered<'a> {
    fn new(shared: &'a Mutex<Groups>) -> Result<Registered<'a>, StoreError> {
        let mut groups = shared.lock().map_err(|_| StoreError::Closed)?;
        // the group being applied, or else the next one
        let first = groups.last + u64::from(groups.applying.is_none());
        groups.scans.push(first);
        Ok(Registered { shared, first })
    }

    /// The groups published since the scan started, oldest first.
    fn groups(&self) -> Result<Vec<Arc<Previous>>, StoreError> {
        let groups = self.shared.lock().map_err(|_| StoreError::Closed)?;
        let kept = groups.kept.iter().filter(|(n, _)| *n >= self.first);
        Ok((kept.map(|(_, map)| map.clone()))
            .chain(groups.applying.clone())
            .collect())
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let Ok(mut groups) = self.shared.lock() else {
            return;
        };
        if let Some(i) = groups.scans.iter().position(|&n| n == self.first) {
            groups.scans.swap_remove(i);
        }
        // keep only what the oldest scan still running needs
        let oldest = groups.scans.iter().min().copied().unwrap_or(u64::MAX);
        while groups.kept.front().is_some_and(|(n, _)| *n < oldest) {
            groups.kept.pop_front();
        }
    }
}

/// `scanned` as it was before the first of `groups` (oldest first): each
/// key they wrote shows the value recorded by the earliest that wrote it
/// (or is absent if it was new); `in_range` says which of their keys the
/// scan covers.
fn mask(
    groups: &[Arc<Previous>],
    scanned: Vec<super::KeyValue>,
    in_range: impl Fn(&[u8]) -> bool,
) -> Vec<super::KeyValue> {
    if groups.iter().all(|map| map.is_empty()) {
        return scanned;
    }
    let mut items: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = scanned.into_iter().collect();
    // newest first: an earlier group's previous value overrides a later one's
    for (key, previous) in groups.iter().rev().flat_map(|map| map.iter()) {
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
mod tests;
