//! An in-memory store that models power loss, for crash tests.
//!
//! It keeps two images: what has been written and what has been *synced*.
//! [`MemStore::reboot`] keeps only the synced part, as a power cut would,
//! so a test can check that nothing acknowledged is lost at any crash point.
//! Setting [`MemStore::skip_sync`] makes the store acknowledge without
//! syncing: the negative control that such a test must catch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Batch, Store, StoreError};
use crate::future::BoxFuture;

type Image = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
struct State {
    written: Image,
    synced: Image,
    /// `written` holds writes that `synced` lacks (commits made with
    /// [`MemStore::skip_sync`]); otherwise the two images are equal.
    unsynced: bool,
}

/// A [`Store`] in memory with separate written and synced images.
#[derive(Clone, Default)]
pub struct MemStore {
    state: Arc<Mutex<State>>,
    commits: Arc<AtomicU64>,
    crash_after: Arc<Mutex<Option<u64>>>,
    crashed: Arc<AtomicBool>,
    skip_sync: Arc<AtomicBool>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("commits", &self.commits())
            .finish()
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Commits acknowledged so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// After `n` more acknowledged commits the store "loses power": later
    /// commits are written but never synced nor acknowledged.
    pub fn crash_after(&self, n: u64) {
        *self.crash_after.lock().expect("mem store lock poisoned") = Some(self.commits() + n);
    }

    /// Whether the simulated power cut happened.
    pub fn has_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Acknowledge commits without syncing them (a store with a missing fsync).
    pub fn skip_sync(&self, skip: bool) {
        self.skip_sync.store(skip, Ordering::SeqCst);
    }

    /// The store as it is after a power cut and reboot: only synced data.
    pub fn reboot(&self) -> MemStore {
        let synced = self
            .state
            .lock()
            .expect("mem store lock poisoned")
            .synced
            .clone();
        MemStore {
            state: Arc::new(Mutex::new(State {
                written: synced.clone(),
                synced,
                unsynced: false,
            })),
            ..MemStore::default()
        }
    }
}

impl Store for MemStore {
    fn stats(&self) -> Option<super::StoreStats> {
        Some(super::StoreStats {
            commits: self.commits(),
            ..super::StoreStats::default()
        })
    }

    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        let result = (|| {
            let mut state = self.state.lock().map_err(|_| StoreError::Closed)?;
            if self.crashed.load(Ordering::SeqCst) {
                return Err(StoreError::Closed);
            }
            for (key, expected) in &batch.expect {
                if state.written.get(key) != expected.as_ref() {
                    return Err(StoreError::Conflict {
                        key: super::printable(key),
                    });
                }
            }
            let state = &mut *state;
            let limit = *self.crash_after.lock().map_err(|_| StoreError::Closed)?;
            // the power cut: this commit is written, never synced nor acknowledged
            let cut = limit.is_some_and(|limit| self.commits() >= limit);
            let sync = !cut && !self.skip_sync.load(Ordering::SeqCst);
            // applied to the synced image too when the two are equal: the same
            // result as copying the written image after the writes, without an
            // O(store) copy per commit
            let both = sync && !state.unsynced;
            let mut writes = batch.writes;
            // counters are keys here, as in the embedded stores
            for (name, delta) in batch.counts {
                let key = super::keys::counter(&name);
                let now = match state.written.get(&key) {
                    Some(value) => super::keys::counter_value(&key, value)?,
                    None => 0,
                };
                writes.push((key, Some(now.saturating_add(delta).to_be_bytes().to_vec())));
            }
            for (key, value) in writes {
                match value {
                    Some(v) => {
                        if both {
                            state.synced.insert(key.clone(), v.clone());
                        }
                        state.written.insert(key, v)
                    }
                    None => {
                        if both {
                            state.synced.remove(&key);
                        }
                        state.written.remove(&key)
                    }
                };
            }
            if cut {
                state.unsynced = true;
                self.crashed.store(true, Ordering::SeqCst);
                return Err(StoreError::Closed);
            }
            if sync && state.unsynced {
                state.synced = state.written.clone();
                state.unsynced = false;
            } else if !sync {
                state.unsynced = true;
            }
            self.commits.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })();
        Box::pin(async move { result })
    }

    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        super::counters_in_keys(self)
    }

    // readers see durable data only, as SledStore's readers do
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Closed)?;
        Ok(state.synced.get(key).cloned())
    }

    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<super::KeyValue>, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Closed)?;
        Ok(state
            .synced
            .range(from.max(prefix).to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<super::KeyValue>, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Closed)?;
        Ok(state
            .synced
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
