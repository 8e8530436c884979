//! Recovery at open: every unfinished instance resolved to the code
//! that runs it, then resumed, settled or parked.

use std::sync::Arc;

use super::{Engine, InstanceRecord, RECOVER_PAGE, Status, WorkflowEntry};
use crate::command::Request;
use crate::error::ResumeError;
use crate::store::{Batch, StoreError, keys};

impl Engine {
    /// Counts the instances of each phase into the store's counters once,
    /// for a store an earlier build wrote (index entries, no counters);
    /// from then on every batch that moves an instance keeps them
    /// ([`InstanceRecord::reindex`]). Runs at open, before anything else
    /// writes. (PostgreSQL's schema migration 3 does the same in SQL.)
    async fn count_phases_if_uncounted(&self) -> Result<(), StoreError> {
        let counted = self
            .store
            .counters()?
            .iter()
            .any(|(name, _)| name.first() == Some(&keys::PHASE_INDEX));
        let indexed = !self
            .scan_from(&[keys::PHASE_INDEX], &[keys::PHASE_INDEX], 1)
            .await?
            .is_empty();
        if counted || !indexed {
            return Ok(());
        }
        let mut batch = crate::store::Batch::default();
        for phase in crate::phase::Phase::ALL {
            let prefix = keys::phase_index_prefix(phase.tag());
            let n = self.scan_prefix(&prefix).await?.len();
            batch.count(prefix, i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.store.commit(batch).await?;
        tracing::info!("counted the instances of each phase (a store written before counters)");
        Ok(())
    }

    /// Writes the start-time index entry of each instance a build before
    /// that index wrote ([`keys::STARTED_INDEX`]), once: a counter of that
    /// name says it is done. Runs at open, before recovery; on a shared
    /// store several workers may do it at once, which writes the same
    /// entries. Records that do not decode are skipped (they are listed by
    /// `parked`, not by time).
    async fn index_start_times_once(&self) -> Result<(), StoreError> {
        let done = [keys::STARTED_INDEX];
        if self
            .store
            .counters()?
            .iter()
            .any(|(name, n)| name[..] == done && *n > 0)
        {
            return Ok(());
        }
        let prefix = [keys::INSTANCE];
        let mut from = prefix.to_vec();
        let mut indexed = 0usize;
        loop {
            let page = self.scan_from(&prefix, &from, RECOVER_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            from = keys::after(last);
            let mut batch = Batch::default();
            for (key, bytes) in &page {
                if let Ok(record) = InstanceRecord::decode(bytes) {
                    batch.put(record.started_key(&keys::instance_id(key)), Vec::new());
                    indexed += 1;
                }
            }
            self.store.commit(batch).await?;
        }
        let mut batch = Batch::default();
        batch.count(done.to_vec(), 1);
        self.store.commit(batch).await?;
        if indexed > 0 {
            tracing::info!(
                indexed,
                "indexed the start times of the instances an earlier build wrote"
            );
        }
        Ok(())
    }

    /// Resumes the unfinished instances that have something to do now and
    /// parks the ones of those this code cannot run. Returns how many were
    /// resumed.
    ///
    /// Only instances that are not asleep on a timer are read (found by the
    /// phase index: running, waiting for a signal, parked), and sleepers
    /// with a cancel or terminate request. A sleeper is left to the timer
    /// service and checked against the code when it is first loaded
    /// ([`Engine::wake_instance`]): opening a store of a million sleepers
    /// reads none of their records, which would stay in sled's cache.
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        self.index_start_times_once().await?;
        if self.store.shared() {
            // workers share the store: this one runs what it claims
            return self.join().await;
        }
        self.count_phases_if_uncounted().await?;
        let mut resumed = 0;
        let mut controlled = Vec::new();
        for tag in [keys::CANCEL, keys::TERMINATE] {
            for (key, _) in self.scan_prefix(&[tag]).await? {
                let id = keys::instance_id(&key);
                self.book.set_control(&id);
                controlled.push(id);
            }
        }
        let mut runnable = Vec::new();
        // ids read already, so that one whose phase changes as it is
        // recovered (parked, unparked) is not read again under its new tag
        let mut seen = std::collections::HashSet::new();
        let sleeping = keys::phase_index_prefix(crate::phase::Phase::Sleeping.tag());
        for id in controlled {
            let asleep = self
                .get(&keys::index_entry(sleeping.clone(), &id))
                .await?
                .is_some();
            if asleep && seen.insert(id.clone()) {
                resumed += self.recover_one(&id, &mut runnable).await?;
            }
        }
        // parked first: one unparked moves to a tag read later, and is skipped there
        for phase in [
            crate::phase::Phase::Parked,
            crate::phase::Phase::Running,
            crate::phase::Phase::WaitingForSignal,
        ] {
            let prefix = keys::phase_index_prefix(phase.tag());
            // paged, so that a large store is not held in memory at once
            let mut from = prefix.clone();
            loop {
                let page = self.scan_from(&prefix, &from, RECOVER_PAGE).await?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                from = keys::after(last);
                for (key, _) in page {
                    let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                    if seen.insert(id.clone()) {
                        resumed += self.recover_one(&id, &mut runnable).await?;
                    }
                }
            }
        }
        // started once all are read, as before paging: tasks started early
        // would compete with the reading for the CPU (100k in flight: all
        // resumed in 7.6 s instead of 2.9 s)
        for (id, record, entry) in runnable {
            self.spawn(id, record, entry);
        }
        Ok(resumed)
    }

    /// Resumes (or parks) instance `id`: 1 if resumed. One that has work to
    /// do now (not asleep on a timer) is added to `runnable`, to be spawned
    /// by the caller.
    pub(super) async fn recover_one(
        self: &Arc<Self>,
        id: &str,
        runnable: &mut Vec<(String, InstanceRecord, WorkflowEntry)>,
    ) -> Result<usize, StoreError> {
        let (read, record) = match self.load_read(id, crate::store::Wait::Task).await? {
            None => return Ok(0),
            Some((read, Ok(record))) => (read, record),
            Some((_, Err(e))) => {
                // the bytes are left untouched: never drop what cannot be read
                self.park_report(ResumeError::Undecodable {
                    instance: id.to_owned(),
                    reason: e.to_string(),
                });
                return Ok(0);
            }
        };
        if record.status.is_terminal() {
            return Ok(0);
        }
        let Some((record, entry)) = self.settle(id, record, read).await? else {
            return Ok(0);
        };
        let controlled = self.has_control(id);
        if matches!(record.pending, Some(Request::Timer { .. })) && !controlled {
            return Ok(1); // the timer service wakes it when due
        }
        runnable.push((id.to_owned(), record, entry));
        Ok(1)
    }

    /// Checks an unfinished `record` against the registered code before it
    /// runs: the code that runs it, with a migration or upgrade (state,
    /// version and history event) or an unparking written in one batch; or
    /// `None` once it is parked (saved as such, with a `Parked` event, and
    /// reported by `Runtime::parked`).
    ///
    /// `read` are the stored bytes `record` was read from: what it writes
    /// is written only if they are still stored. A reset of a parked
    /// instance commits without its owner (which keeps it, told to look
    /// again); settled from an older read, the owner would write the parked
    /// run back over the reset's. When the record changed, it is settled
    /// again as it is now.
    pub(super) async fn settle(
        &self,
        id: &str,
        mut record: InstanceRecord,
        mut read: Vec<u8>,
    ) -> Result<Option<(InstanceRecord, WorkflowEntry)>, StoreError> {
        let changed_key = crate::store::printable(&keys::instance(id));
        loop {
            match self.settle_read(id, record, &read).await {
                Err(StoreError::Conflict { key }) if key == changed_key => {
                    match self.load_read(id, crate::store::Wait::Task).await? {
                        Some((bytes, Ok(now))) if !now.status.is_terminal() => {
                            record = now;
                            read = bytes;
                        }
                        // ended meanwhile, or now unreadable: nothing to run
                        // (a `wake_instance` of it reports the latter)
                        _ => return Ok(None),
                    }
                }
                settled => return settled,
            }
        }
    }

    /// One pass of [`Engine::settle`] over the record read as `read`.
    async fn settle_read(
        &self,
        id: &str,
        mut record: InstanceRecord,
        read: &[u8],
    ) -> Result<Option<(InstanceRecord, WorkflowEntry)>, StoreError> {
        let mut moved = record.clone();
        let resolved = self.resolve(id, &mut moved);
        if let Some(hook) = &self.test_hooks.settling {
            hook(id);
        }
        match resolved {
            Ok(entry) => {
                let changed = !moved.new_events.is_empty();
                record = moved;
                if record.status == Status::Parked || changed {
                    record.status = Status::Running;
                    record.error = None;
                    let mut batch = Batch::default();
                    batch.expect(keys::instance(id), Some(read.to_vec()));
                    self.save_with(id, &mut record, batch).await?;
                }
                Ok(Some((record, entry)))
            }
            Err(reason) => {
                self.park(id, &mut record, reason, Some(read)).await?;
                Ok(None)
            }
        }
    }

    /// Parks `record`: saved as parked with a `Parked` event (unless it is
    /// parked for this very reason already), and reported; only if the
    /// stored record is still `read`, when given.
    pub(super) async fn park(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        reason: ResumeError,
        read: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let text = reason.to_string();
        if record.status != Status::Parked || record.error.as_deref() != Some(&text) {
            record.status = Status::Parked;
            record.error = Some(text.clone());
            record
                .new_events
                .push(crate::history::EventKind::Parked { reason: text });
            let mut batch = Batch::default();
            if let Some(read) = read {
                batch.expect(keys::instance(id), Some(read.to_vec()));
            }
            self.save_with(id, record, batch).await?;
        }
        self.park_report(reason);
        Ok(())
    }
}
