//! Named task queues: activities that only some workers run.
//!
//! An activity declared `#[activity(queue = "gpu")]`, awaited by an
//! instance on a store shared by workers, is not run by the instance's
//! owner but written as a task (`q` + queue + key) in a transaction
//! conditional on the owner key (fencing). Every worker that declared the
//! queue (`Builder::task_queue`) claims tasks with a conditional write (one
//! claim wins; a worker claims only while it has a free activity slot, so
//! `max_concurrent_activities` bounds what it runs), runs the attempts with
//! the activity's retry policy, and writes the result (`r` + id + key) in
//! the transaction that removes the task. The owner, waiting for it, takes
//! the result into its next checkpoint. A task claimed by a worker whose
//! lease lapsed is claimed again. Workers hear of new tasks and results by
//! `q` + queue and `r` + key messages, and look again every quarter lease.
//!
//! On a store of one process (the embedded redb or sled store) the queue is
//! not used: the process runs every activity itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Engine, Halt};
use crate::activity::{ActivityOptions, ActivityVTable, Failure, LaterTimeouts};
use crate::codec;
use crate::store::{Batch, StoreError, keys};

/// A queued activity call, the value of its task key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskRecord {
    workflow_id: String,
    activity: String,
    input: Vec<u8>,
    options: ActivityOptions,
    /// The token of the worker running it, if claimed.
    claimed: Option<String>,
    /// The value layout the input was written with (0: unknown, a task
    /// queued before layouts were recorded): the worker may be another
    /// build, and reads it by name.
    input_layout: u64,
    /// The timeouts of `options` its encoding leaves out (all none in a
    /// task of a build before them).
    later: LaterTimeouts,
    /// When the call was scheduled (ms on the instance's clock; 0: not
    /// known): its schedule-to-close and schedule-to-start timeouts count
    /// from it.
    scheduled_ms: u64,
}

/// Trailing fields a task of an earlier build may lack (`later`: three
/// numbers, `scheduled_ms`, `input_layout`), each written as one zero byte.
const TASK_TRAILING: usize = 5;

/// What the attempts of a queued call came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResultRecord {
    outcome: Result<(Vec<u8>, Option<Failure>), String>,
    worker: String,
    duration_ms: u64,
    /// The value layout the output was written with (0: unknown); the
    /// instance may be another build, and reads it by name.
    layout: u64,
    /// Why the worker could not read the input by name (the call did not
    /// run): the instance is parked with these reasons.
    refused: Vec<String>,
    /// The attempts the worker made (0: not known, a result written before
    /// this field existed).
    attempts: u32,
}

/// Decodes a stored task or result, one written before some of its last
/// `trailing` fields existed included (each missing one reads as 0 or
/// empty: postcard writes both as one zero byte).
fn decode_tolerant<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    trailing: usize,
) -> Result<T, crate::CodecError> {
    codec::decode(bytes).or_else(|err| {
        (1..=trailing)
            .find_map(|missing| {
                let mut older = bytes.to_vec();
                older.extend(std::iter::repeat_n(0, missing));
                codec::decode(&older).ok()
            })
            .ok_or(err)
    })
}

/// A queued call's outcome, as the local attempts give it.
pub(crate) type Remote = Result<(Vec<u8>, Option<Failure>), String>;

/// Tasks looked at per pass.
const PAGE: usize = 256;

impl Engine {
    /// The task queue that runs activity `vtable` here: its declared queue on
    /// a shared store; `None` (run it locally) otherwise.
    pub(crate) fn queue_for(&self, vtable: &ActivityVTable) -> Option<&'static str> {
        if !self.store.shared() {
            return None;
        }
        vtable.queue
    }

    /// Notes that instance `id` has used up `key` (a queued result it
    /// took, the heartbeat details of a call that ended): its next
    /// checkpoint deletes it (kept until then: a restart before it finds
    /// the key again).
    pub(crate) fn spend(&self, id: &str, key: Vec<u8>) {
        self.book.spend(id, key);
    }

    /// How often waiters and queue services look again without a message.
    fn poll_interval(&self) -> Duration {
        self.member
            .as_ref()
            .map_or(Duration::from_secs(1), |m| m.lease / 4)
    }

    /// Runs activity `vtable` of instance `id` through `queue`: enqueues it
    /// (once: a task or result already there is reused, after a restart
    /// too) and waits for its result, read by name when the worker that ran
    /// it was another build; a result that cannot be read so parks the
    /// instance (`Halt::Payload`).
    ///
    /// A call no worker has claimed within its schedule-to-start timeout
    /// (from `scheduled_ms`) is taken back and fails (kind `timeout`, not
    /// retried).
    #[allow(clippy::too_many_arguments)] // one call's parts
    pub(super) async fn remote_attempts(
        &self,
        queue: &str,
        key: &str,
        id: &str,
        vtable: ActivityVTable,
        input: &[u8],
        options: &ActivityOptions,
        scheduled_ms: u64,
    ) -> Result<(Remote, u32), Halt> {
        let result_key = keys::result(id, key);
        let task_key = keys::task(queue, key);
        let take = |bytes: &[u8]| -> Result<(Remote, u32), Halt> {
            let r: ResultRecord = decode_tolerant(bytes, 3).map_err(|e| {
                Halt::Store(StoreError::Corrupt {
                    key: crate::store::printable(&result_key),
                    reason: e.to_string(),
                })
            })?;
            self.spend(id, result_key.clone());
            if !r.refused.is_empty() {
                return Err(Halt::Payload(r.refused));
            }
            let (bytes, failure) = match r.outcome {
                Ok(outcome) => outcome,
                Err(why) => return Ok((Err(why), r.attempts)),
            };
            let what = format!(
                "the result of activity `{}` (run by worker `{}`)",
                vtable.name, r.worker
            );
            let bytes = self
                .cross(&what, bytes, r.layout, &vtable.output)
                .map_err(Halt::Payload)?;
            Ok((Ok((bytes, failure)), r.attempts))
        };
        if let Some(bytes) = self.get(&result_key).await.map_err(Halt::Store)? {
            return take(&bytes);
        }
        if self.get(&task_key).await.map_err(Halt::Store)?.is_none() {
            let traced = (vtable.input.layout)();
            let task = TaskRecord {
                workflow_id: id.to_owned(),
                activity: vtable.name.to_owned(),
                input: input.to_vec(),
                options: options.clone(),
                claimed: None,
                input_layout: traced.hash,
                later: LaterTimeouts::of(options),
                scheduled_ms,
            };
            let mut batch = Batch::default();
            self.owner_condition(id, &mut batch).map_err(Halt::Store)?;
            if let Ok(layout) = &traced.layout {
                self.store_value_layout(traced.hash, layout, &mut batch)
                    .map_err(Halt::Store)?;
            }
            let task =
                codec::encode(&task).map_err(|e| Halt::Store(StoreError::Codec(e.to_string())))?;
            batch
                .put(task_key.clone(), task)
                .notify(format!("q{queue}"));
            self.store.commit(batch).await.map_err(Halt::Store)?;
            self.value_layout_stored(traced.hash);
        }
        let waiter = format!("\0r{key}");
        let mut start_by = options
            .schedule_to_start_timeout
            .map(|t| scheduled_ms.saturating_add(t.as_millis() as u64));
        loop {
            let notify = self.waiters.listen(&waiter);
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(bytes) = self.get(&result_key).await.map_err(Halt::Store)? {
                return take(&bytes);
            }
            if start_by.is_some_and(|by| crate::clock::now_ms(&*self.clock) >= by) {
                match self.take_back_unclaimed(id, &task_key).await? {
                    true => {
                        let failure = Failure {
                            kind: "timeout".into(),
                            message: format!(
                                "no worker of queue `{queue}` claimed the call within its schedule-to-start timeout of {:?}",
                                options.schedule_to_start_timeout.unwrap_or_default()
                            ),
                            retryable: false,
                        };
                        let bytes = super::attempts::last_output(vtable, None, &failure)
                            .map_err(|e| Halt::Store(StoreError::Codec(e.to_string())))?;
                        return Ok((Ok((bytes, Some(failure))), 0));
                    }
                    // claimed (or done) in time: the result is awaited
                    false => start_by = None,
                }
            }
            tokio::select! {
                _ = tokio::time::timeout(self.poll_interval(), notified) => {}
                () = crate::clock::sleep_until_ms(&*self.clock, start_by) => {}
            }
        }
    }

    /// Removes the task at `task_key` if no worker has claimed it (in one
    /// conditional commit, fenced by instance `id`'s owner): `true` if it
    /// was removed, `false` if it is claimed or gone.
    async fn take_back_unclaimed(&self, id: &str, task_key: &[u8]) -> Result<bool, Halt> {
        let Some(bytes) = self.get(task_key).await.map_err(Halt::Store)? else {
            return Ok(false);
        };
        let unclaimed = decode_tolerant::<TaskRecord>(&bytes, TASK_TRAILING)
            .is_ok_and(|task| task.claimed.is_none());
        if !unclaimed {
            return Ok(false);
        }
        let mut batch = Batch::default();
        self.owner_condition(id, &mut batch).map_err(Halt::Store)?;
        batch
            .expect(task_key.to_vec(), Some(bytes))
            .delete(task_key.to_vec());
        match self.store.commit(batch).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { key }) if key == crate::store::printable(task_key) => {
                Ok(false)
            }
            Err(e) => Err(Halt::Store(e)),
        }
    }

    /// Adds "instance `id` is still this worker's" to `batch` (nothing on a
    /// store of one process).
    fn owner_condition(&self, id: &str, batch: &mut Batch) -> Result<(), StoreError> {
        if let Some(m) = &self.member {
            if m.check_lease() {
                return Err(StoreError::Conflict {
                    key: crate::store::printable(&keys::owner(id)),
                });
            }
            batch.expect(keys::owner(id), Some(m.token().into_bytes()));
        }
        Ok(())
    }

    /// Claims and runs the tasks of `queue` while this worker has free
    /// activity slots; runs until the runtime stops.
    pub(crate) async fn queue_service(self: Arc<Self>, queue: String) {
        let waiter = format!("\0q{queue}");
        loop {
            let notify = self.waiters.listen(&waiter);
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Err(e) = self.claim_tasks(&queue).await {
                tracing::warn!(queue = %queue, error = %e, "claiming tasks failed");
            }
            let _ = tokio::time::timeout(self.poll_interval(), notified).await;
        }
    }

    /// One pass over `queue`'s tasks: claims those nobody live runs.
    async fn claim_tasks(self: &Arc<Self>, queue: &str) -> Result<(), StoreError> {
        let Some(m) = &self.member else {
            return Ok(());
        };
        let prefix = keys::task_prefix(queue);
        let mut alive = std::collections::HashMap::new();
        let mut from = prefix.clone();
        loop {
            let page = self.scan_from(&prefix, &from, PAGE).await?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            from = keys::after(last);
            for (key, bytes) in page {
                let claims = self.queue_claims.load(Ordering::SeqCst);
                if claims >= self.activity_limit
                    || self.activity_slots.available_permits() == 0
                    || m.is_fenced()
                {
                    return Ok(());
                }
                let Ok(mut task) = decode_tolerant::<TaskRecord>(&bytes, TASK_TRAILING) else {
                    tracing::error!(key = %crate::store::printable(&key), "a task does not decode; left alone");
                    continue;
                };
                if let Some(token) = &task.claimed {
                    let live = match alive.get(token) {
                        Some(live) => *live,
                        None => {
                            let live = self.lease_alive(token).await?;
                            alive.insert(token.clone(), live);
                            live
                        }
                    };
                    if live {
                        continue;
                    }
                }
                // the call's instance ended meanwhile (cancelled): the task goes
                let unfinished = matches!(self.load(&task.workflow_id).await?, Some(Ok(r)) if !r.status.is_terminal());
                if !unfinished {
                    let mut batch = Batch::default();
                    batch.expect(key.clone(), Some(bytes)).delete(key);
                    let _ = self.store.commit(batch).await;
                    continue;
                }
                let vtable = match self.activities.named(&task.activity) {
                    Ok(vtable) => vtable,
                    Err(why) => {
                        tracing::error!(activity = %task.activity, queue = %queue, "this worker serves the queue but cannot run the activity ({why}); left to others");
                        continue;
                    }
                };
                task.claimed = Some(m.token());
                let claimed = codec::encode(&task).map_err(|e| StoreError::Codec(e.to_string()))?;
                // beside the group: a lock another worker holds delays only this
                let mut batch = Batch {
                    solo: true,
                    ..Batch::default()
                };
                batch
                    .expect(key.clone(), Some(bytes))
                    .put(key.clone(), claimed.clone());
                match self.store.commit(batch).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
                self.queue_claims.fetch_add(1, Ordering::SeqCst);
                let engine = self.clone();
                let call = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let queue_name = queue.to_owned();
                let run = async move {
                    let started = std::time::Instant::now();
                    let worker = engine
                        .member
                        .as_ref()
                        .map_or_else(String::new, |m| m.name.clone());
                    let output = (vtable.output.layout)();
                    let mut batch = Batch::default();
                    // the instance may be another build: the input is read
                    // by the layout it was queued with, the result carries its own
                    let what = format!(
                        "the input of activity `{}` (queued by another build; worker `{worker}`)",
                        task.activity
                    );
                    let ((outcome, attempts), refused) = match engine.cross(
                        &what,
                        std::mem::take(&mut task.input),
                        task.input_layout,
                        &vtable.input,
                    ) {
                        Ok(input) => {
                            let mut options = task.options.clone();
                            task.later.apply(&mut options);
                            let scheduled_ms = match task.scheduled_ms {
                                0 => crate::clock::now_ms(&*engine.clock),
                                at => at,
                            };
                            let (outcome, made, heartbeats) = super::composite::local_attempts(
                                &engine,
                                call.clone(),
                                &task.workflow_id,
                                vtable,
                                &input,
                                &options,
                                scheduled_ms,
                            )
                            .await;
                            if heartbeats {
                                // with the result: the call has ended
                                batch.delete(keys::heartbeat(&task.workflow_id, &call));
                            }
                            ((outcome, made), Vec::new())
                        }
                        Err(refused) => ((Err(refused.join("; ")), 0), refused),
                    };
                    if let Ok(layout) = &output.layout
                        && let Err(e) = engine.store_value_layout(output.hash, layout, &mut batch)
                    {
                        tracing::warn!(call = %call, error = %e, "a task's result was not kept; it runs again");
                        engine.queue_claims.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    let result = ResultRecord {
                        outcome,
                        worker,
                        duration_ms: started.elapsed().as_millis() as u64,
                        layout: output.hash,
                        refused,
                        attempts,
                    };
                    let bytes = match codec::encode(&result) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a task's result");
                            return;
                        }
                    };
                    // only while the claim stands: a task taken back (this
                    // worker lapsed) or dropped (its instance ended) keeps nothing
                    batch
                        .expect(key.clone(), Some(claimed))
                        .delete(key)
                        .put(keys::result(&task.workflow_id, &call), bytes)
                        .notify(format!("r{call}"));
                    match engine.store.commit(batch).await {
                        Ok(()) => engine.value_layout_stored(output.hash),
                        Err(e) => {
                            tracing::warn!(call = %call, error = %e, "a task's result was not kept; it runs again");
                        }
                    }
                    engine.queue_claims.fetch_sub(1, Ordering::SeqCst);
                    // a slot is free: look for more
                    engine.wake(&format!("\0q{queue_name}"));
                };
                self.tasks.lock().expect("tasks lock poisoned").spawn(
                    tracing::Instrument::instrument(
                        run,
                        tracing::info_span!("task", queue = %queue),
                    ),
                );
            }
        }
    }

    /// Whether the worker whose token is `token` holds a live lease.
    async fn lease_alive(&self, token: &str) -> Result<bool, StoreError> {
        let Some((name, _)) = token.rsplit_once('#') else {
            return Ok(false);
        };
        Ok(match self.get(&keys::lease(name)).await? {
            Some(bytes) => codec::decode::<super::LeaseRecord>(&bytes)
                .is_ok_and(|l| l.token == token && l.expires_ms > super::cluster::wall_ms()),
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result as builds before `attempts` (and before `layout` and
    /// `refused`) wrote it.
    #[derive(serde::Serialize)]
    struct Before {
        outcome: Result<(Vec<u8>, Option<Failure>), String>,
        worker: String,
        duration_ms: u64,
        layout: u64,
        refused: Vec<String>,
    }

    #[derive(serde::Serialize)]
    struct Oldest {
        outcome: Result<(Vec<u8>, Option<Failure>), String>,
        worker: String,
        duration_ms: u64,
    }

    #[test]
    fn results_of_earlier_builds_read_with_their_missing_fields_empty() {
        let before = codec::encode(&Before {
            outcome: Ok((vec![1, 2], None)),
            worker: "w".into(),
            duration_ms: 5,
            layout: 9,
            refused: Vec::new(),
        })
        .unwrap();
        let r: ResultRecord = decode_tolerant(&before, 3).unwrap();
        assert_eq!((r.layout, r.attempts, r.duration_ms), (9, 0, 5));
        let oldest = codec::encode(&Oldest {
            outcome: Err("gone".into()),
            worker: "w".into(),
            duration_ms: 7,
        })
        .unwrap();
        let r: ResultRecord = decode_tolerant(&oldest, 3).unwrap();
        assert_eq!((r.layout, r.attempts, r.refused.len()), (0, 0, 0));
        assert_eq!(r.outcome, Err("gone".to_owned()));
    }
}
