//! The embedded stores' durability, written once: a group becomes durable
//! in the write-ahead log, and only then goes into the tree.
//!
//! A tree (redb, sled) implements only [`Tree`]: read a key, apply a group
//! that the log has already made durable, and make everything applied
//! durable in its own files (a checkpoint). Every durability rule lives
//! here:
//!
//! - a group is acknowledged only after its log record is synced;
//! - the tree sees a group only after that, so no reader ever observes a
//!   write a power cut could still undo;
//! - a store that defers (redb) answers a group once its log record is
//!   synced and keeps its writes in memory ([`super::pending`]), where every
//!   read looks first, until many groups go into the tree in one
//!   transaction (when enough wait, when the queue is quiet, and always
//!   before a checkpoint);
//! - the log is emptied only after the tree's checkpoint succeeded, and the
//!   checkpoint follows the application of every pending group;
//! - **any failed write or sync (of the log, of the tree's files, of a
//!   directory, of the log's reset) stops the store**: every waiting and
//!   later commit fails with [`StoreError::Failed`] until the store is
//!   opened again, which recovers from what is durable. A failed sync is
//!   never retried: the kernel may have dropped the pages whose write-back
//!   failed and report success the second time.
//!
//! The queue, gathering a group, the hooks and the counters are the
//! commit thread's ([`super::commit`]), the same for every store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::commit::{CommitPoint, CommitThread, Counters, GroupWriter, Hooks};
use super::fs::Fs;
use super::keys;
use super::pending::{Latest, Pending};
use super::wal::{self, Wal};
use super::{Batch, CommitRequest as Request, StoreError};

/// What an embedded storage engine provides under the commit path.
pub(crate) trait Tree: Send + 'static {
    /// The value of `key` with every applied group in it.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies the writes of `batches`, in order, without a sync of its
    /// own: the log holds them durably already. Readers may see them once
    /// this returns, never a part of them before.
    fn apply(&mut self, batches: &[&Batch]) -> Result<(), StoreError>;
    /// Applies the newest value of each key that groups answered from the
    /// log wrote (see [`start`]'s `pending`), as [`Tree::apply`] does.
    fn apply_latest(&mut self, latest: &Latest) -> Result<(), StoreError> {
        let batch = Batch {
            writes: latest.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..Batch::default()
        };
        self.apply(&[&batch])
    }
    /// Makes everything applied so far durable in the tree's own files.
    fn checkpoint(&mut self, counters: &Counters) -> Result<(), StoreError>;
    /// Upkeep after a group (nothing by default).
    fn after_group(&mut self, counters: &Counters) -> Result<(), StoreError> {
        let _ = counters;
        Ok(())
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
    /// A checkpoint empties the log without first applying the groups
    /// that wait in memory for the tree: they are then nowhere on disk.
    CheckpointBeforeApply,
}

/// Pending groups are applied to the tree once this many wait...
const APPLY_GROUPS: usize = 32;

/// ...or once their writes hold this many bytes.
const APPLY_BYTES: usize = 4 << 20;

/// Opens the log in `dir`, replays it into `tree` and checkpoints, then
/// starts the commit thread.
///
/// With `pending`, a group is answered once its log record is synced and
/// its writes wait in `pending` until they are applied to the tree with
/// others; the store's reads must then look there first
/// ([`Pending::get`], [`Pending::range`]). Without, each group is applied
/// before it is answered.
pub(crate) fn start<T: Tree>(
    tree: T,
    fs: &dyn Fs,
    dir: PathBuf,
    unsafe_mode: Unsafe,
    pending: Option<Arc<Pending>>,
) -> Result<CommitThread, StoreError> {
    let (wal, contents) = Wal::open(fs, &dir)?;
    let counters = Arc::new(Counters::default());
    let mut logged = Logged {
        tree,
        wal,
        record: wal::Record::default(),
        counters: counters.clone(),
        counter_values: HashMap::new(),
        broken: None,
        unsafe_mode,
        pending,
        pending_groups: 0,
        pending_bytes: 0,
    };
    logged.recover(contents.records)?;
    CommitThread::start(logged, counters)
}

impl<T: Tree> GroupWriter for Logged<T> {
    const MAX_GROUP: usize = 4096;

    fn write(
        &mut self,
        group: &mut [Request],
        index: u64,
        hooks: &Hooks,
    ) -> (Vec<Result<(), StoreError>>, bool) {
        let (checks, result) = self.write_group(group, index, hooks);
        let durable = result.is_ok();
        let answers = checks.into_iter().map(|c| c.and(result.clone())).collect();
        (answers, durable)
    }

    fn deferred(&self) -> bool {
        self.pending_groups > 0 && self.broken.is_none()
    }

    /// A moment without commits: the pending groups go into the tree.
    fn quiet(&mut self) {
        self.apply_pending();
    }

    /// Nothing for a while: empty the log, so a crash now replays nothing.
    fn idle(&mut self) {
        if self.wal.len() > 0 {
            self.checkpoint();
        }
    }

    /// Pending groups into the tree when many wait; a checkpoint when the
    /// log is large, the tree's own upkeep otherwise.
    fn after_group(&mut self) {
        if self.broken.is_some() {
            return;
        }
        if self.pending_groups >= APPLY_GROUPS || self.pending_bytes >= APPLY_BYTES {
            self.apply_pending();
        }
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

    /// Closed: what the log holds goes into the tree, so a reopen replays
    /// nothing.
    fn close(&mut self) {
        self.idle();
    }
}

/// The embedded stores' [`GroupWriter`]: a group becomes durable in the
/// log, then goes into the tree.
struct Logged<T: Tree> {
    tree: T,
    /// Where groups become durable.
    wal: Wal,
    /// The group being assembled, as a log record.
    record: wal::Record,
    counters: Arc<Counters>,
    /// The counters' values as the tree holds them, by name, once read (the
    /// commit thread is their only writer): a group reads none of them.
    counter_values: HashMap<Vec<u8>, i64>,
    /// Set by [`Logged::stop`]: every later group fails until the store
    /// is opened again.
    broken: Option<String>,
    unsafe_mode: Unsafe,
    /// Where durable groups wait for the tree, if the store defers.
    pending: Option<Arc<Pending>>,
    /// Groups and bytes in `pending`.
    pending_groups: usize,
    pending_bytes: usize,
}

impl<T: Tree> Logged<T> {
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
                self.counters.checkpointed();
                tracing::info!(records = n, "replayed the write-ahead log");
            }
        }
        Ok(())
    }

    /// Applies the pending groups to the tree, in one transaction. A
    /// failure stops the store; reads go on seeing the pending writes,
    /// and opening again replays them from the log.
    fn apply_pending(&mut self) {
        let Some(pending) = self.pending.clone() else {
            return;
        };
        if self.broken.is_some() || self.pending_groups == 0 {
            return;
        }
        match pending.apply(|latest| self.tree.apply_latest(latest)) {
            Ok(()) => {
                self.pending_groups = 0;
                self.pending_bytes = 0;
            }
            Err(e) => {
                self.stop(
                    e,
                    "applying acknowledged groups to the storage engine failed",
                );
            }
        }
    }

    /// Applies every pending group, makes everything applied durable in the
    /// tree, then empties the log. A failure stops the store: the log
    /// still holds every group, and opening again replays them.
    fn checkpoint(&mut self) {
        if self.unsafe_mode != Unsafe::CheckpointBeforeApply {
            self.apply_pending();
        }
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
                self.counters.checkpointed();
            }
            Err(e) => {
                self.stop(e, "a checkpoint failed");
            }
        }
    }

    /// Makes the group durable, then applies it to the tree or (a store
    /// that defers) leaves its writes pending; per request, whether its
    /// conditions held, and for all, whether the group became durable.
    fn write_group(
        &mut self,
        group: &mut [Request],
        index: u64,
        hooks: &Hooks,
    ) -> (Vec<Result<(), StoreError>>, Result<(), StoreError>) {
        let n = group.len();
        if let Some(cause) = &self.broken {
            let e = StoreError::Failed {
                cause: cause.clone(),
            };
            return ((0..n).map(|_| Err(e.clone())).collect(), Err(e));
        }
        let (checks, mut accepted) = self.check(group);
        // the counters' new values: written with the group, as keys
        let counted = match self.counted(&accepted) {
            Ok(counted) => counted,
            Err(e) => return ((0..n).map(|_| Err(e.clone())).collect(), Err(e)),
        };
        if !counted.writes.is_empty() {
            accepted.push(&counted);
        }
        self.record.clear();
        for batch in &accepted {
            for (key, value) in &batch.writes {
                self.record.push(key, value.as_deref());
            }
        }
        if let Err(e) = self.make_durable(index, hooks) {
            return (checks, Err(e));
        }
        match self.pending.clone() {
            None => {
                if let Err(e) = self.tree.apply(&accepted) {
                    // durable in the log, maybe partly in the tree: later
                    // groups must not build on it; opening again replays it
                    let e = self.stop(e, "the storage engine failed mid-group");
                    return (checks, Err(e));
                }
            }
            Some(pending) if !self.record.is_empty() => {
                // the writes move: their writers are answered from the log
                let writes = group
                    .iter_mut()
                    .zip(&checks)
                    .filter(|(_, check)| check.is_ok())
                    .flat_map(|(r, _)| std::mem::take(&mut r.batch.writes))
                    .chain(counted.writes.iter().cloned());
                self.pending_bytes += pending.add(writes);
                self.pending_groups += 1;
            }
            Some(_) => {}
        }
        for (key, value) in &counted.writes {
            if let Some(value) = value {
                let value = keys::counter_value(key, value).unwrap_or(0);
                self.counter_values.insert(key[1..].to_vec(), value);
            }
        }
        (checks, Ok(()))
    }

    /// The writes that add the deltas of `accepted` to the counters they
    /// name (the commit thread is their only writer, and every earlier
    /// group is in the tree or pending).
    fn counted(&self, accepted: &[&Batch]) -> Result<Batch, StoreError> {
        let mut sums: BTreeMap<&[u8], i64> = BTreeMap::new();
        for (name, delta) in accepted.iter().flat_map(|b| &b.counts) {
            *sums.entry(name).or_default() += delta;
        }
        let mut counted = Batch::default();
        for (name, delta) in sums {
            let key = keys::counter(name);
            let stored = match self.counter_values.get(name) {
                Some(&value) => Some(value),
                None => match self.current(&key)? {
                    Some(value) => Some(keys::counter_value(&key, &value)?),
                    None => None,
                },
            };
            if delta != 0 || stored.is_none() {
                let now = stored.unwrap_or(0).saturating_add(delta);
                counted.put(key, now.to_be_bytes().to_vec());
            }
        }
        Ok(counted)
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
                self.counters.accepted(batch);
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
                None => self.current(key)?,
            };
            if current.as_deref() != expected.as_deref() {
                return Err(StoreError::Conflict {
                    key: super::printable(key),
                });
            }
        }
        Ok(())
    }

    /// `key`'s value with every durable group in it, pending or applied.
    fn current(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.as_ref().and_then(|p| p.lookup(key)) {
            Some(value) => Ok(value),
            None => self.tree.get(key),
        }
    }

    /// Appends the group's record to the log and syncs it.
    fn make_durable(&mut self, index: u64, hooks: &Hooks) -> Result<(), StoreError> {
        if self.record.is_empty() {
            hooks.call(CommitPoint::Applied(index));
            return Ok(());
        }
        self.record.seal(self.wal.epoch())?;
        if let Err(e) = self.wal.append(self.record.bytes()) {
            return Err(self.stop(e, "appending to the write-ahead log failed"));
        }
        hooks.call(CommitPoint::Applied(index));
        if self.unsafe_mode != Unsafe::SkipSync(index)
            && let Err(e) = self.wal.sync()
        {
            // the negative control: retried, as the "fsyncgate" pattern does
            let retried = self.unsafe_mode == Unsafe::RetryAfterFailure && self.wal.sync().is_ok();
            if !retried {
                return Err(self.stop(e, "syncing the write-ahead log failed"));
            }
        }
        self.counters.flushed();
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
