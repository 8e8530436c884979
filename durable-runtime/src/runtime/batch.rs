//! Batch operations ([`crate::batch`]): started and stored (`B` + id),
//! run a page at a time by the batch service of a runtime that resumes
//! instances, their progress stored with each page, taken over from a
//! process that stopped renewing its lease.

use std::time::Duration;

use super::Runtime;
use crate::ListFilter;
use crate::batch::{BatchAction, BatchError, BatchOperation, BatchReset, BatchState};
use crate::engine::now_ms;
use crate::error::{ResetError, ResultError, SignalError};
use crate::reset::ResetTo;
use crate::store::{Batch, StoreError, keys};

/// Instances a page visits (and at most `per_second`: a page is about a
/// second's work when the operation is rate-limited).
const PAGE: usize = 100;

/// How long a runner's claim lasts without being renewed (each page
/// renews it).
const LEASE_MS: u64 = 30_000;

/// How long a runner goes without storing its progress (and renewing its
/// lease) within a page.
const RENEW_MS: u64 = 5_000;

/// How often the service looks for operations to run or take over.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// The errors an operation keeps.
const MAX_ERRORS: usize = 20;

/// A stored operation: JSON (an action's payload is JSON; small, rare
/// writes, read by people's tools too).
fn encode(op: &BatchOperation) -> Result<Vec<u8>, BatchError> {
    serde_json::to_vec(op).map_err(|e| {
        BatchError::Codec(crate::CodecError::Encode {
            type_name: "BatchOperation",
            reason: e.to_string(),
        })
    })
}

fn decode(bytes: &[u8]) -> Result<BatchOperation, BatchError> {
    serde_json::from_slice(bytes).map_err(|e| {
        BatchError::Codec(crate::CodecError::Decode {
            type_name: "BatchOperation",
            reason: e.to_string(),
        })
    })
}

/// What one instance's visit came to.
enum Visit {
    Done,
    Skipped,
    Failed(String),
}

impl Runtime {
    /// Starts a batch operation: `action` on every instance `filter`
    /// matches (its `after` and `limit` are ignored), at most `per_second`
    /// a second. Returns once it is stored, with its id and the number of
    /// instances matched now (`matched`); a runtime that resumes instances
    /// runs it in the background (this one, or another process of the
    /// store). See [`batch`](crate::batch).
    ///
    /// # Errors
    /// [`BatchError::Store`] when it cannot be stored.
    pub async fn batch(
        &self,
        filter: ListFilter,
        action: BatchAction,
        per_second: Option<u32>,
    ) -> Result<BatchOperation, BatchError> {
        // visited in id order: the cursor is the last id visited
        let filter = ListFilter {
            order: crate::ListOrder::Id,
            after: None,
            after_started_ms: None,
            limit: 0,
            ..filter
        };
        let matched = self.batch_preview(&filter)?.len() as u64;
        let now = now_ms();
        let op = BatchOperation {
            id: uuid::Uuid::new_v4().to_string(),
            action,
            filter,
            per_second: per_second.filter(|n| *n > 0),
            state: BatchState::Running,
            matched,
            visited: 0,
            done: 0,
            skipped: 0,
            failed: 0,
            errors: Vec::new(),
            cursor: None,
            created_ms: now,
            updated_ms: now,
            runner: None,
        };
        let key = keys::batch(&op.id);
        let mut batch = Batch::default();
        batch.expect(key.clone(), None).put(key, encode(&op)?);
        self.engine.store.commit(batch).await?;
        self.engine.batch_wake.notify_one();
        tracing::info!(batch = %op.id, action = %op.action.describe(), matched, "batch operation started");
        Ok(op)
    }

    /// The dry run of a batch operation: the ids `filter` matches now, in
    /// the order an operation would visit them, touching nothing.
    pub fn batch_preview(&self, filter: &ListFilter) -> Result<Vec<String>, StoreError> {
        crate::store::blocking(|| {
            let mut ids = Vec::new();
            let mut page = ListFilter {
                order: crate::ListOrder::Id,
                after: None,
                after_started_ms: None,
                limit: PAGE,
                ..filter.clone()
            };
            loop {
                let found = self.list(&page)?;
                let last = found.len() < PAGE;
                page.after = found.last().map(|d| d.id.clone());
                ids.extend(found.into_iter().map(|d| d.id));
                if last {
                    return Ok(ids);
                }
            }
        })
    }

    /// A batch operation and its progress, as last stored.
    ///
    /// # Errors
    /// [`BatchError::NotFound`] for an unknown id.
    pub fn batch_status(&self, id: &str) -> Result<BatchOperation, BatchError> {
        crate::store::blocking(|| {
            let bytes = self
                .engine
                .store
                .get(&keys::batch(id))?
                .ok_or_else(|| BatchError::NotFound { id: id.to_owned() })?;
            decode(&bytes)
        })
    }

    /// Every batch operation stored (running and ended), newest first.
    pub fn batches(&self) -> Result<Vec<BatchOperation>, BatchError> {
        crate::store::blocking(|| {
            let mut ops = self
                .engine
                .store
                .scan_prefix(&[keys::BATCH])?
                .into_iter()
                .map(|(_, bytes)| decode(&bytes))
                .collect::<Result<Vec<_>, _>>()?;
            ops.sort_by_key(|op| std::cmp::Reverse(op.created_ms));
            Ok(ops)
        })
    }

    /// Waits until batch operation `id` has ended (done or stopped), and
    /// returns it (read from the store every 100 ms).
    pub async fn batch_wait(&self, id: &str) -> Result<BatchOperation, BatchError> {
        loop {
            let op = self.batch_status(id)?;
            if op.state != BatchState::Running {
                return Ok(op);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops batch operation `id` (its runner stops before its next
    /// instance); a stopped or finished one is returned as it is.
    pub async fn stop_batch(&self, id: &str) -> Result<BatchOperation, BatchError> {
        let key = keys::batch(id);
        loop {
            let bytes = self
                .engine
                .store
                .get(&key)?
                .ok_or_else(|| BatchError::NotFound { id: id.to_owned() })?;
            let mut op = decode(&bytes)?;
            if op.state != BatchState::Running {
                return Ok(op);
            }
            op.state = BatchState::Stopped;
            op.updated_ms = now_ms();
            op.runner = None;
            let mut batch = Batch::default();
            batch
                .expect(key.clone(), Some(bytes))
                .put(key.clone(), encode(&op)?);
            match self.engine.store.commit(batch).await {
                Ok(()) => return Ok(op),
                // its runner stored a page meanwhile: again
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The batch service of a runtime that resumes instances: runs the
    /// operations stored as running that no live process runs, one at a
    /// time, looking again when one is started here and every few seconds.
    pub(super) async fn batch_service(self) {
        let name = self
            .engine
            .member
            .as_ref()
            .map_or("local", |m| m.name.as_str());
        let me = format!("{name}#{:016x}", rand::random::<u64>());
        loop {
            let wake = self.engine.batch_wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            loop {
                if self.engine.is_closing() {
                    return;
                }
                match self.take_batch(&me).await {
                    Ok(Some((op, bytes))) => {
                        let id = op.id.clone();
                        if let Err(e) = self.run_batch(&me, op, bytes).await {
                            tracing::warn!(batch = %id, error = %e, "batch operation paused: it goes on from its last stored page");
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the batch operations");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    }

    /// Claims a running operation no live runner holds (on a store only
    /// this process opens, any: its runner was this process before it
    /// stopped; on a shared one, one whose lease lapsed or whose runner had
    /// this worker's name), renewed with each of its pages.
    async fn take_batch(&self, me: &str) -> Result<Option<(BatchOperation, Vec<u8>)>, BatchError> {
        let now = now_ms();
        let shared = self.engine.store.shared();
        for (key, bytes) in self.engine.scan_prefix(&[keys::BATCH]).await? {
            let mut op = match decode(&bytes) {
                Ok(op) => op,
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&key), error = %e, "a stored batch operation does not decode; left alone");
                    continue;
                }
            };
            // a runner of this worker's name is this worker before a
            // restart (as instances are taken over at once from it)
            let name_of = |runner: &str| runner.rsplit_once('#').map(|(name, _)| name.to_owned());
            let free = match &op.runner {
                None => true,
                Some((runner, until)) => !shared || *until < now || name_of(runner) == name_of(me),
            };
            if op.state != BatchState::Running || !free {
                continue;
            }
            op.runner = Some((me.to_owned(), now + LEASE_MS));
            let claimed = encode(&op)?;
            let mut batch = Batch::default();
            batch
                .expect(key.clone(), Some(bytes))
                .put(key, claimed.clone());
            match self.engine.store.commit(batch).await {
                Ok(()) => return Ok(Some((op, claimed))),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Runs claimed operation `op` (stored as `stored`) page by page until
    /// it is done, stopped, taken over or the runtime closes.
    async fn run_batch(
        &self,
        me: &str,
        mut op: BatchOperation,
        mut stored: Vec<u8>,
    ) -> Result<(), BatchError> {
        let key = keys::batch(&op.id);
        let page_size = op.per_second.map_or(PAGE, |n| (n as usize).clamp(1, PAGE));
        let pause = op
            .per_second
            .map(|n| Duration::from_secs_f64(1.0 / f64::from(n)));
        loop {
            let page = self.list(&ListFilter {
                order: crate::ListOrder::Id,
                after: op.cursor.clone(),
                after_started_ms: None,
                limit: page_size,
                ..op.filter.clone()
            })?;
            let last_page = page.len() < page_size;
            for instance in &page {
                // stopped or taken over meanwhile: this runner stops
                if self.engine.is_closing()
                    || self.engine.get(&key).await?.as_ref() != Some(&stored)
                {
                    return Ok(());
                }
                match self.visit(&op, &instance.id).await {
                    Visit::Done => op.done += 1,
                    Visit::Skipped => op.skipped += 1,
                    Visit::Failed(e) => {
                        op.failed += 1;
                        if op.errors.len() == MAX_ERRORS {
                            op.errors.remove(0);
                        }
                        op.errors.push((instance.id.clone(), e));
                    }
                }
                op.visited += 1;
                op.cursor = Some(instance.id.clone());
                // a slow page renews the lease (and stores its progress)
                // well before it lapses
                if now_ms().saturating_sub(op.updated_ms) > RENEW_MS
                    && !self.store_progress(me, &mut op, &mut stored, false).await?
                {
                    return Ok(());
                }
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            if !self
                .store_progress(me, &mut op, &mut stored, last_page)
                .await?
            {
                return Ok(());
            }
            if op.state == BatchState::Done {
                tracing::info!(batch = %op.id, done = op.done, skipped = op.skipped, failed = op.failed, "batch operation done");
                return Ok(());
            }
        }
    }

    /// Stores `op`'s progress (done: its end) over `stored`, renewing this
    /// runner's lease: `false` when it was stopped or taken over meanwhile
    /// (the visits since its last store are repeated by whoever goes on:
    /// each is safe to repeat).
    async fn store_progress(
        &self,
        me: &str,
        op: &mut BatchOperation,
        stored: &mut Vec<u8>,
        done: bool,
    ) -> Result<bool, BatchError> {
        let now = now_ms();
        op.updated_ms = now;
        if done {
            op.state = BatchState::Done;
            op.runner = None;
        } else {
            op.runner = Some((me.to_owned(), now + LEASE_MS));
        }
        let key = keys::batch(&op.id);
        let bytes = encode(op)?;
        let mut batch = Batch::default();
        batch
            .expect(key.clone(), Some(std::mem::take(stored)))
            .put(key, bytes.clone());
        match self.engine.store.commit(batch).await {
            Ok(()) => {
                *stored = bytes;
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Carries out `op`'s action on instance `id`.
    async fn visit(&self, op: &BatchOperation, id: &str) -> Visit {
        let failed = |e: &dyn std::fmt::Display| Visit::Failed(e.to_string());
        match &op.action {
            BatchAction::Signal { name, payload } => {
                // once per instance and operation, however often visited
                let mark = keys::completed(id, &format!("batch/{}", op.id));
                match self.send_json(id, name, payload, Some((mark, ""))).await {
                    Ok(()) => Visit::Done,
                    Err(
                        SignalError::AlreadyCompleted { .. }
                        | SignalError::NotFound { .. }
                        | SignalError::Finished { .. }
                        | SignalError::NotWaiting { .. },
                    ) => Visit::Skipped,
                    Err(e) => failed(&e),
                }
            }
            BatchAction::Cancel => ended_skipped(self.cancel(id).await),
            BatchAction::Terminate { reason } => ended_skipped(self.terminate(id, reason).await),
            BatchAction::Reset { to, reason } => {
                let to = match to {
                    BatchReset::To(to) => *to,
                    BatchReset::Latest | BatchReset::Earliest => {
                        let points = match self.reset_points(id) {
                            Ok(points) => points,
                            Err(ResetError::Unknown { .. }) => return Visit::Skipped,
                            Err(e) => return failed(&e),
                        };
                        let point = match to {
                            BatchReset::Latest => points.last(),
                            _ => points.first(),
                        };
                        match point {
                            Some(p) => ResetTo::Step(p.step),
                            None => return Visit::Skipped,
                        }
                    }
                };
                // once per instance and operation, however often visited
                let mark = keys::completed(id, &format!("batch/{}", op.id));
                match self.engine.get(&mark).await {
                    Ok(Some(_)) => return Visit::Skipped,
                    Ok(None) => {}
                    Err(e) => return failed(&e),
                }
                match self.engine.reset(id, to, reason, Some(mark)).await {
                    Ok(_) => Visit::Done,
                    Err(
                        ResetError::Active { .. }
                        | ResetError::Unknown { .. }
                        | ResetError::PointGone { .. }
                        | ResetError::Event { .. }
                        | ResetError::Conflict { .. },
                    ) => Visit::Skipped,
                    Err(e) => failed(&e),
                }
            }
        }
    }
}

/// A cancel's or terminate's outcome: an ended or unknown instance is skipped.
fn ended_skipped(result: Result<(), ResultError>) -> Visit {
    match result {
        Ok(()) => Visit::Done,
        Err(ResultError::Finished { .. } | ResultError::NotFound { .. }) => Visit::Skipped,
        Err(e) => Visit::Failed(e.to_string()),
    }
}
