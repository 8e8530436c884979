//! The default embedded store: redb on local disk, behind the shared
//! commit path.
//!
//! A group is made durable by the write-ahead log (`store::commit`: one
//! append and one `fdatasync`) and answered; its writes wait in memory
//! (`store::pending`), where every read looks first, until the commit
//! thread applies many groups to redb in one write transaction committed
//! with [`redb::Durability::None`]: atomic for readers, no sync of its own
//! (one transaction a group cost three quarters of a lone step's work,
//! `docs/performance.md`). A checkpoint is an empty redb
//! commit with [`redb::Durability::Immediate`],
//! which makes every earlier transaction durable (redb's copy-on-write
//! B-tree and checksummed commit slots, `docs/design.md` in redb), then
//! the log is emptied. After a crash or a power cut redb opens at its last
//! durable commit and the log replays every group since.
//!
//! Every byte redb writes goes through the store's [`Fs`] seam
//! (`FsBackend` below), so the power-loss and I/O-fault sweeps run
//! against redb's real file format (`docs/reliability.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Durability, ReadableDatabase, TableDefinition};

use super::commit::{CommitThread, Counters};
use super::embedded::{self, Tree, Unsafe};
use super::fs::{Fs, FsFile, RealFs};
use super::pending::{self, Found, Latest, Pending};
use super::{Batch, Store, StoreError, StoreStats};
use crate::future::BoxFuture;

/// redb's file inside the store directory.
pub(crate) const FILE: &str = "durable.redb";

/// The lock file that keeps a second process out.
const LOCK: &str = "durable.lock";

const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("kv");

/// Default page cache: 256 MiB.
const DEFAULT_CACHE: usize = 256 << 20;

struct Inner {
    // dropped in this order: the commit thread checkpoints and stops, then
    // redb closes, then the lock is released
    commits: CommitThread,
    db: Arc<redb::Database>,
    /// Acknowledged writes not yet in `db`: every read looks here first.
    pending: Arc<Pending>,
    _lock: Box<dyn std::any::Any + Send + Sync>,
}

/// A [`Store`] in a directory: redb's file, the write-ahead log and the
/// kind marker. Cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
    /// Its reads on tokio's blocking pool.
    reads: super::OffThread,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("stats", &self.stats())
            .finish()
    }
}

fn redb_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => StoreError::io("redb", io),
        other => StoreError::Backend(format!("redb: {other}")),
    }
}

impl RedbStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has it open,
    /// [`StoreError::WrongKind`] if it holds another kind of store,
    /// [`StoreError::CorruptFile`] if its log is damaged where valid records
    /// follow, [`StoreError::Io`] for a failed read, write or sync.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        RedbStore::open_with_cache(path, None)
    }

    /// [`RedbStore::open`] with redb's page cache bounded to `cache_bytes`
    /// (`None`: 256 MiB).
    ///
    /// # Errors
    /// As [`RedbStore::open`].
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: Option<u64>,
    ) -> Result<RedbStore, StoreError> {
        RedbStore::open_on(Arc::new(RealFs), path.as_ref(), cache_bytes, Unsafe::No)
    }

    /// [`RedbStore::open`] on another file system (a simulated disk that
    /// injects faults or cuts the power), optionally made unsafe: for the
    /// fault sweeps.
    #[cfg(feature = "testing")]
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        path: impl AsRef<Path>,
        unsafe_mode: Unsafe,
    ) -> Result<RedbStore, StoreError> {
        RedbStore::open_on(fs, path.as_ref(), None, unsafe_mode)
    }

    fn open_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        cache_bytes: Option<u64>,
        unsafe_mode: Unsafe,
    ) -> Result<RedbStore, StoreError> {
        let dir = dir.to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(|e| super::fs::at(&dir, "creating", e))?;
        let lock = fs
            .lock(&dir.join(LOCK))
            .map_err(|e| super::fs::at(&dir, "locking", e))?
            .ok_or_else(|| StoreError::Locked { path: dir.clone() })?;
        let existing = super::kind::check(&*fs, &dir, super::kind::Kind::Redb)?;
        let path = dir.join(FILE);
        let existed = fs
            .exists(&path)
            .map_err(|e| super::fs::at(&path, "looking for", e))?;
        let file = fs
            .open(&path, true)
            .map_err(|e| super::fs::at(&path, "opening", e))?;
        if !existing {
            // a creation a crash cut short left at most a partial file that
            // nothing was ever acknowledged from: start it again
            file.set_len(0)
                .map_err(|e| super::fs::at(&path, "creating", e))?;
        }
        if !existed {
            fs.sync_dir(&dir)
                .map_err(|e| super::fs::at(&dir, "syncing", e))?;
        }
        let cache = cache_bytes.map_or(DEFAULT_CACHE, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let db = redb::Builder::new()
            .set_cache_size(cache)
            .create_with_backend(FsBackend { file, path })
            .map_err(redb_err)?;
        // the table exists from the start, so readers never miss it
        let tx = db.begin_write().map_err(redb_err)?;
        tx.open_table(TABLE).map_err(redb_err)?;
        tx.commit().map_err(redb_err)?;
        if !existing {
            // redb's first commit is durable: from now on the directory is a store
            super::kind::mark(&*fs, &dir, super::kind::Kind::Redb)?;
        }
        let db = Arc::new(db);
        let tree = RedbTree { db: db.clone() };
        let pending = Arc::new(Pending::default());
        let commits = embedded::start(tree, &*fs, dir, unsafe_mode, Some(pending.clone()))?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                commits,
                db,
                pending,
                _lock: lock,
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

    /// A read transaction of redb (begun under the pending writes' lock,
    /// see [`Pending::get`]).
    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.inner.db.begin_read().map_err(redb_err)
    }
}

fn open_table(
    tx: &redb::ReadTransaction,
) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError> {
    tx.open_table(TABLE).map_err(redb_err)
}

struct RedbTree {
    db: Arc<redb::Database>,
}

impl Tree for RedbTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(redb_err)?;
        let table = tx.open_table(TABLE).map_err(redb_err)?;
        Ok(table
            .get(key)
            .map_err(redb_err)?
            .map(|v| v.value().to_vec()))
    }

    fn apply(&mut self, batches: &[&Batch]) -> Result<(), StoreError> {
        let writes = batches.iter().flat_map(|b| &b.writes);
        self.write(writes.map(|(k, v)| (k.as_slice(), v.as_deref())))
    }

    fn apply_latest(&mut self, latest: &Latest) -> Result<(), StoreError> {
        self.write(latest.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))
    }

    fn checkpoint(&mut self, counters: &Counters) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(redb_err)?;
        tx.set_durability(Durability::Immediate).map_err(redb_err)?;
        tx.commit().map_err(redb_err)?;
        counters.synced();
        Ok(())
    }
}

impl RedbTree {
    /// Inserts or removes each of `writes`, in order, in one write
    /// transaction without a sync of its own.
    fn write<'w>(
        &mut self,
        writes: impl Iterator<Item = (&'w [u8], Option<&'w [u8]>)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(redb_err)?;
        tx.set_durability(Durability::None).map_err(redb_err)?;
        {
            let mut table = tx.open_table(TABLE).map_err(redb_err)?;
            for (key, value) in writes {
                match value {
                    Some(value) => table.insert(key, value).map_err(redb_err)?,
                    None => table.remove(key).map_err(redb_err)?,
                };
            }
        }
        tx.commit().map_err(redb_err)
    }
}

impl Store for RedbStore {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        self.inner.commits.commit(batch)
    }

    fn stats(&self) -> Option<StoreStats> {
        Some(RedbStore::stats(self))
    }

    fn store_metrics(&self) -> Option<super::StoreMetrics> {
        Some(self.inner.commits.metrics())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.pending.get(key, || self.begin_read())? {
            Found::Pending(value) => Ok(value),
            Found::Tree(tx) => Ok(open_table(&tx)?
                .get(key)
                .map_err(redb_err)?
                .map(|v| v.value().to_vec())),
        }
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<super::KeyValue>, StoreError> {
        // keys before the prefix are outside the scan, whatever `from` says
        let from = from.max(prefix);
        let (pending, tx) = self
            .inner
            .pending
            .range(prefix, from, || self.begin_read())?;
        let table = open_table(&tx)?;
        let tree = table.range(from..).map_err(redb_err)?.map(|item| {
            let (k, v) = item.map_err(redb_err)?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        });
        pending::merge(pending, tree, prefix, limit)
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
        self.scan_from(prefix, prefix, usize::MAX)
    }
}

/// redb's storage under the store's [`Fs`] seam.
#[derive(Debug)]
struct FsBackend {
    file: Arc<dyn FsFile>,
    path: PathBuf,
}

impl redb::StorageBackend for FsBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.file.read_at(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.file.sync_data().map_err(|e| {
            tracing::error!(file = %self.path.display(), error = %e, "syncing redb's file failed");
            e
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.file.write_at(offset, data)
    }
}
