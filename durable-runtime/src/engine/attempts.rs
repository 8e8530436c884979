//! Activity attempts: an activity run in this process (with its retries,
//! timeouts and the interrupt race) or handed to a task queue.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::{AbortOnDrop, Engine, Halt, InstanceRecord, now_ms, panic_message};
use crate::activity::{ActivityContext, ActivityError, Failure};
use crate::codec::CodecError;
use crate::heartbeat::Beat;
use crate::store::{Batch, StoreError, keys};

/// What happens between the attempts of one activity call that the retry
/// policy retries: a step checkpoints each failed attempt (a crash then
/// does not forget it), the parts of a larger step keep them in memory.
pub(super) trait Between: Send {
    /// Attempt `attempt` failed with `failure` after `took`; it is retried
    /// at `retry_at_ms` (on the runtime's clock).
    fn retrying<'a>(
        &'a mut self,
        attempt: u32,
        failure: &'a Failure,
        took: std::time::Duration,
        retry_at_ms: u64,
    ) -> futures::future::BoxFuture<'a, Result<(), Halt>>;
}

/// Failed attempts kept in memory only (the parts of a larger step).
pub(super) struct InMemory;

impl Between for InMemory {
    fn retrying<'a>(
        &'a mut self,
        _: u32,
        _: &'a Failure,
        _: std::time::Duration,
        _: u64,
    ) -> futures::future::BoxFuture<'a, Result<(), Halt>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Each failed attempt of a step's activity checkpointed with the record,
/// and when the next is due: a restart waits out the rest of the backoff.
struct Checkpointed<'r> {
    engine: &'r Engine,
    id: &'r str,
    record: &'r mut InstanceRecord,
}

impl Between for Checkpointed<'_> {
    fn retrying<'a>(
        &'a mut self,
        attempt: u32,
        failure: &'a Failure,
        took: std::time::Duration,
        retry_at_ms: u64,
    ) -> futures::future::BoxFuture<'a, Result<(), Halt>> {
        Box::pin(async move {
            let error = failure.text();
            let record = &mut *self.record;
            record.failed_attempts = attempt;
            record.retry_at_ms = retry_at_ms;
            record.last_error = Some(error.clone());
            record
                .new_events
                .push(crate::history::EventKind::AttemptFailed {
                    step: record.step,
                    attempt,
                    error,
                    duration_ms: took.as_millis() as u64,
                });
            record.updated_ms = now_ms();
            self.engine.save(self.id, record).await.map_err(Halt::Store)
        })
    }
}

/// The last attempt of an activity call: its output (the activity's own,
/// or for a failure without one an `ActivityError` of its kind), its
/// failure if it failed, its number and how long it took.
pub(super) struct LastAttempt {
    pub(super) bytes: Vec<u8>,
    pub(super) failure: Option<Failure>,
    pub(super) attempt: u32,
    pub(super) took: std::time::Duration,
    /// Heartbeat details of the call may be stored (its key goes with the
    /// call's result).
    pub(super) heartbeats: bool,
}

/// An attempt's task, aborted when dropped; one whose attempt has sent
/// a heartbeat and has a heartbeat timeout is first asked to stop (its
/// next heartbeat answers `cancelled`) and aborted only after that
/// timeout, so it can clean up — unless the runtime is shutting down.
struct Running {
    task: Option<AbortOnDrop<std::thread::Result<crate::activity::Attempt>>>,
    beat: Arc<Beat>,
    grace: Option<std::time::Duration>,
    clock: Arc<dyn crate::clock::Clock>,
    engine: std::sync::Weak<Engine>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.beat.ask_to_stop();
        let (Some(task), Some(grace)) = (self.task.take(), self.grace) else {
            return;
        };
        // a shutdown stops every attempt at once (the store is released)
        let open = self.engine.upgrade().is_some_and(|e| !e.is_closing());
        if !open || !self.beat.has_beaten() || task.0.is_finished() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let clock = self.clock.clone();
        runtime.spawn(async move {
            let until = clock.now() + grace;
            tokio::select! {
                _ = task => {}
                () = clock.sleep_until(until) => {}
            }
        });
    }
}

impl Engine {
    /// Runs `work` (an activity's attempts, a queued call, a race) for
    /// instance `id` unless a cancel or terminate request for it, or its
    /// deadline `deadline_ms`, comes first: then `work` is dropped (an
    /// attempt it runs is aborted) and the instance is `Halt::Interrupted`.
    /// The listener is armed before anything is looked at, so a request
    /// arriving in between is not missed; `seen` then looks for what
    /// arrived before it (`true`: interrupted already).
    pub(super) async fn interruptible<T>(
        &self,
        id: &str,
        deadline_ms: Option<u64>,
        seen: impl std::future::Future<Output = Result<bool, Halt>>,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Halt> {
        let interrupt = self.interrupts.listen(id);
        let notified = interrupt.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.has_control(id) || seen.await? {
            return Err(Halt::Interrupted);
        }
        tokio::select! {
            () = crate::clock::sleep_until_ms(&*self.clock, deadline_ms) => Err(Halt::Interrupted),
            done = work => Ok(done),
            () = &mut notified => Err(Halt::Interrupted),
        }
    }

    /// The retry loop, the one every activity call in this process runs:
    /// attempts numbered from `first`, each with idempotency key `key`,
    /// until one succeeds or the policy allows no more; between two,
    /// `between` hears of the failure, then the policy's backoff passes on
    /// the runtime's clock. `Ok(Err(why))` when the call cannot be carried
    /// out (an input or output that does not encode); `Err` when `between`
    /// halts the instance.
    ///
    /// The call's schedule-to-close timeout counts from `scheduled_ms` (on
    /// the runtime's clock): when it passes, the attempt running is given
    /// up and the call fails (kind `timeout`, not retried); a retry that
    /// would start after it is not made.
    #[allow(clippy::too_many_arguments)] // one call's parts
    pub(super) async fn retry(
        &self,
        vtable: crate::activity::ActivityVTable,
        input: &[u8],
        options: &crate::activity::ActivityOptions,
        key: &str,
        workflow_id: &str,
        (first, scheduled_ms): (u32, u64),
        between: &mut dyn Between,
    ) -> Result<Result<LastAttempt, String>, Halt> {
        let close_at = options
            .schedule_to_close_timeout
            .map(|t| scheduled_ms.saturating_add(t.as_millis() as u64));
        let mut heartbeats = options.heartbeat_timeout.is_some();
        let attempts = async {
            let mut attempt = first;
            // what the previous attempt left (`None`: in the store, if anywhere)
            let mut earlier: Option<Option<Vec<u8>>> = None;
            loop {
                let ctx = ActivityContext {
                    workflow_id: workflow_id.to_owned(),
                    activity: vtable.name,
                    attempt,
                    idempotency_key: key.to_owned(),
                    worker: self.member.as_ref().map(|m| m.name.clone()),
                };
                let beat = Beat::new(
                    (self.clock.clone(), &self.store),
                    self.limits.result_bytes,
                    earlier.take(),
                    // a timeout counts from the attempt's start
                    options
                        .heartbeat_timeout
                        .map_or(0, |_| crate::clock::now_ms(&*self.clock)),
                );
                let started = std::time::Instant::now();
                // boxed: the attempt's future is large, and moving it into
                // this loop's state on every await copied it (measured)
                let attempted =
                    Box::pin(self.attempt(vtable, input, ctx, options, (&beat, workflow_id, key)))
                        .await;
                heartbeats |= beat.stored() || beat.found_earlier();
                earlier = beat.for_next();
                let attempted = match attempted {
                    Ok(attempted) => attempted,
                    Err(why) => return Ok(Err(why)),
                };
                let took = started.elapsed();
                let (bytes, failure) = match attempted {
                    (Some(bytes), None) => {
                        return Ok(Ok(LastAttempt {
                            bytes,
                            failure: None,
                            attempt,
                            took,
                            heartbeats,
                        }));
                    }
                    (bytes, Some(failure)) => (bytes, failure),
                    (None, None) => {
                        return Ok(Err(
                            "an attempt ended with neither output nor failure".into()
                        ));
                    }
                };
                let retry_at = self.clock.now() + options.retry.backoff(attempt + 1);
                let retry_at_ms = crate::clock::to_ms(retry_at);
                let in_time = close_at.is_none_or(|close| retry_at_ms < close);
                if !options.retry.allows_retry(attempt, &failure) || !in_time {
                    return Ok(last_output(vtable, bytes, &failure)
                        .map(|bytes| LastAttempt {
                            bytes,
                            failure: Some(failure),
                            attempt,
                            took,
                            heartbeats,
                        })
                        .map_err(|e| e.to_string()));
                }
                between
                    .retrying(attempt, &failure, took, retry_at_ms)
                    .await?;
                self.clock.sleep_until(retry_at).await;
                attempt += 1;
            }
        };
        let Some(close_at) = close_at else {
            return attempts.await;
        };
        tokio::select! {
            done = attempts => done,
            () = crate::clock::sleep_until_ms(&*self.clock, Some(close_at)) => {
                let failure = Failure {
                    kind: "timeout".into(),
                    message: format!(
                        "the call exceeded its schedule-to-close timeout of {:?}",
                        options.schedule_to_close_timeout.unwrap_or_default()
                    ),
                    retryable: false,
                };
                Ok(last_output(vtable, None, &failure)
                    .map(|bytes| LastAttempt {
                        bytes,
                        failure: Some(failure),
                        attempt: 0,
                        took: std::time::Duration::ZERO,
                        heartbeats: true,
                    })
                    .map_err(|e| e.to_string()))
            }
        }
    }

    /// Stores the latest heartbeat details of `beat` for call `key` of
    /// instance `id`, if any came since the last stored (a failure is
    /// logged: details are a hint, the attempt goes on).
    async fn save_heartbeat(&self, beat: &Beat, (id, key): (&str, &str)) {
        let Some(details) = beat.take_unsaved() else {
            return;
        };
        let at = keys::heartbeat(id, key);
        let mut batch = Batch::default();
        batch.put(at.clone(), details);
        match self.store.commit(batch).await {
            Ok(()) => beat.mark_stored(),
            Err(e) => {
                tracing::warn!(key = %crate::store::printable(&at), error = %e, "heartbeat details could not be stored");
            }
        }
    }

    /// Watches the heartbeats of an attempt of call `key` of instance
    /// `id`: stores their details (the first at once, then at most every
    /// [`Beat::save_every`]) and resolves with a failure when `timeout`
    /// passes without one.
    async fn watch_heartbeats(
        &self,
        beat: &Beat,
        timeout: Option<std::time::Duration>,
        call: (&str, &str),
    ) -> Failure {
        if timeout.is_none() {
            // nothing to watch until the attempt sends one (most never do)
            beat.beaten().await;
        }
        let every = Beat::save_every(timeout).as_millis() as u64;
        let mut saved_ms: Option<u64> = None;
        loop {
            let now = crate::clock::now_ms(&*self.clock);
            if beat.has_unsaved() && saved_ms.is_none_or(|s| now >= s.saturating_add(every)) {
                self.save_heartbeat(beat, call).await;
                saved_ms = Some(now);
            }
            let save_at = beat
                .has_unsaved()
                .then(|| saved_ms.map_or(now, |s| s.saturating_add(every)));
            let dead_at = timeout.map(|t| beat.last_ms().saturating_add(t.as_millis() as u64));
            if dead_at.is_some_and(|dead| now >= dead) {
                return Failure {
                    kind: "timeout".into(),
                    message: format!(
                        "the attempt sent no heartbeat for its heartbeat timeout of {:?}",
                        timeout.unwrap_or_default()
                    ),
                    retryable: true,
                };
            }
            let wake = save_at.into_iter().chain(dead_at).min();
            tokio::select! {
                () = beat.beaten() => {}
                () = crate::clock::sleep_until_ms(&*self.clock, wake) => {}
            }
        }
    }

    /// Runs the activity a step awaits ([`Engine::retry`], each failed
    /// attempt checkpointed); its encoded output. A cancel, a terminate or
    /// the deadline ends it at once, in an attempt or in a backoff (the
    /// attempt is aborted).
    pub(super) async fn run_activity(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        vtable: crate::activity::ActivityVTable,
        input: &[u8],
        options: &crate::activity::ActivityOptions,
    ) -> Result<Vec<u8>, Halt> {
        let key = record.activity_key(id);
        let (first, step, deadline) = (
            record.failed_attempts + 1,
            record.step,
            record.next_deadline(),
        );
        // resumed in a backoff: its rest first
        let backoff = (first > 1 && record.retry_at_ms > 0).then_some(record.retry_at_ms);
        let scheduled_ms = record.scheduled_ms(&*self.clock);
        let mut checkpointed = Checkpointed {
            engine: self,
            id,
            record: &mut *record,
        };
        let retried = async {
            if backoff.is_some() {
                crate::clock::sleep_until_ms(&*self.clock, backoff).await;
            }
            self.retry(
                vtable,
                input,
                options,
                &key,
                id,
                (first, scheduled_ms),
                &mut checkpointed,
            )
            .await
        };
        let done = self
            .interruptible(id, deadline, async { Ok(false) }, retried)
            .await??;
        let last = match done {
            Ok(last) => last,
            Err(why) => return self.fail(id, record, why).await,
        };
        if last.heartbeats {
            self.spend(id, keys::heartbeat(id, &key));
        }
        record
            .new_events
            .push(crate::history::EventKind::ActivityFinished {
                step,
                activity: vtable.name.to_owned(),
                attempt: last.attempt,
                duration_ms: last.took.as_millis() as u64,
                error: last.failure.map(|f| f.text()),
            });
        record
            .new_events
            .push(called(step, None, vtable, input, &last.bytes));
        Ok(last.bytes)
    }

    /// One attempt of an activity in this process, with a slot of
    /// `max_concurrent_activities`: a task of its own, so a panic is caught
    /// and reported rather than propagated, aborted when dropped (a cancel,
    /// a terminate, shutdown), bounded by the start-to-close timeout, and
    /// counted in the metrics. Its output and its failure (a panic or a
    /// timeout has no output); `Err` when the input or output does not
    /// encode. [`Engine::retry`] runs every attempt so.
    pub(super) async fn attempt(
        &self,
        vtable: crate::activity::ActivityVTable,
        input: &[u8],
        ctx: ActivityContext,
        options: &crate::activity::ActivityOptions,
        (beat, id, key): (&Arc<Beat>, &str, &str),
    ) -> Result<(Option<Vec<u8>>, Option<Failure>), String> {
        let started = std::time::Instant::now();
        let (activity, attempt) = (ctx.activity, ctx.attempt);
        let _permit = self
            .activity_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed.to_string())?;
        if let Some(witness) = &self.test_hooks.witness {
            witness(&ctx);
        }
        let dependencies = self.dependencies.clone();
        let limit = self.limits.result_bytes;
        let future = match self.test_hooks.mocks.get(vtable.name) {
            Some(mock) => mock(input, ctx, dependencies, limit),
            None => (vtable.run)(input, ctx, dependencies, limit),
        }
        .map_err(|e| e.to_string())?;
        let task = AbortOnDrop(tokio::spawn(Beat::scope(
            beat.clone(),
            AssertUnwindSafe(future).catch_unwind(),
        )));
        let mut running = Running {
            task: Some(task),
            beat: beat.clone(),
            grace: options.heartbeat_timeout,
            clock: self.clock.clone(),
            engine: self.this.get().cloned().unwrap_or_default(),
        };
        // both timeouts on the runtime's clock (a test clock skips them)
        let closes_at = options
            .start_to_close_timeout
            .map(|t| crate::clock::now_ms(&*self.clock).saturating_add(t.as_millis() as u64));
        let joined = tokio::select! {
            joined = running.task.as_mut().expect("the attempt's task") => Ok(joined),
            () = crate::clock::sleep_until_ms(&*self.clock, closes_at) => Err(Failure {
                kind: "timeout".into(),
                message: format!(
                    "attempt exceeded its start-to-close timeout of {:?}",
                    options.start_to_close_timeout.unwrap_or_default()
                ),
                retryable: true,
            }),
            failure = self.watch_heartbeats(beat, options.heartbeat_timeout, (id, key)) => Err(failure),
        };
        let panic = |message: String| Failure {
            kind: "panic".into(),
            message,
            retryable: true,
        };
        let outcome = match joined {
            Ok(Ok(Ok(Ok((bytes, failure))))) => (Some(bytes), failure),
            Ok(Ok(Ok(Err(codec_error)))) => return Err(codec_error.to_string()),
            Ok(Ok(Err(payload))) => (None, Some(panic(panic_message(payload.as_ref())))),
            Ok(Err(join_error)) => (None, Some(panic(join_error.to_string()))),
            Err(timeout) => {
                // given up: aborted now, no grace (the next attempt may start)
                running.task = None;
                (None, Some(timeout))
            }
        };
        drop(running);
        if outcome.1.is_some() && beat.has_unsaved() {
            // a failed attempt's last details are what the next one reads
            self.save_heartbeat(beat, (id, key)).await;
        }
        tracing::debug!(
            activity,
            attempt,
            elapsed_us = started.elapsed().as_micros() as u64,
            "activity attempt"
        );
        self.metrics
            .attempt(activity, outcome.1.is_some(), started.elapsed());
        Ok(outcome)
    }

    /// Runs an activity of a named task queue on a worker that serves it
    /// (see `queues`): waits for its result as for a local attempt, ended
    /// early by a cancel, a terminate or a deadline.
    pub(super) async fn run_queued(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        queue: &str,
        vtable: crate::activity::ActivityVTable,
        input: &[u8],
        options: &crate::activity::ActivityOptions,
    ) -> Result<Vec<u8>, Halt> {
        let name = vtable.name;
        let started = std::time::Instant::now();
        // `<id>/<incarnation>/<step>`: unique to this run of the id
        let call = record.activity_key(id);
        let scheduled_ms = record.scheduled_ms(&*self.clock);
        let remote = self.remote_attempts(queue, &call, id, vtable, input, options, scheduled_ms);
        let outcome = self
            .interruptible(id, record.next_deadline(), async { Ok(false) }, remote)
            .await??;
        let (outcome, made) = outcome;
        match outcome {
            Ok((bytes, failure)) => {
                record
                    .new_events
                    .push(crate::history::EventKind::ActivityFinished {
                        step: record.step,
                        activity: name.to_owned(),
                        // the worker's count (a result written before it
                        // counted reads as 0: at least one ran)
                        attempt: made.max(1),
                        duration_ms: started.elapsed().as_millis() as u64,
                        error: failure.map(|f| f.text()),
                    });
                record
                    .new_events
                    .push(called(record.step, None, vtable, input, &bytes));
                Ok(bytes)
            }
            Err(why) => self.fail(id, record, why).await,
        }
    }
}

/// What the workflow sees of an activity whose last allowed attempt
/// failed: the activity's own error, or for a panic or a timeout (no
/// output) an `ActivityError` of that kind.
pub(super) fn last_output(
    vtable: crate::activity::ActivityVTable,
    bytes: Option<Vec<u8>>,
    failure: &Failure,
) -> Result<Vec<u8>, CodecError> {
    match bytes {
        Some(bytes) => Ok(bytes),
        None => (vtable.fail)(
            ActivityError::retryable(failure.message.clone()).with_kind(failure.kind.clone()),
        ),
    }
}

/// The history's note of a call of `vtable`'s activity at `step` (part
/// `part` of it): its input and result kept with the layouts that read them
/// (stored at open: [`Engine::store_activity_layouts`]).
pub(super) fn called(
    step: u64,
    part: Option<u32>,
    vtable: crate::activity::ActivityVTable,
    input: &[u8],
    output: &[u8],
) -> crate::history::EventKind {
    use crate::history::KeptValue;
    crate::history::EventKind::ActivityKept {
        step,
        part,
        activity: vtable.name.to_owned(),
        input: KeptValue::of(input, (vtable.input.layout)().hash),
        output: KeptValue::of(output, (vtable.output.layout)().hash),
    }
}

impl Engine {
    /// Stores the layouts of every linked activity's input and output the
    /// store lacks (`v` keys), so the values the history keeps read by
    /// name in any later build. Once at open, before anything runs.
    pub(crate) async fn store_activity_layouts(&self) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        let mut stored = Vec::new();
        for registration in inventory::iter::<crate::activity::Registration> {
            let vtable = (registration.vtable)();
            for reader in [vtable.input, vtable.output] {
                let traced = (reader.layout)();
                if let Ok(layout) = &traced.layout {
                    self.store_value_layout(traced.hash, layout, &mut batch)?;
                    stored.push(traced.hash);
                }
            }
        }
        if !batch.writes.is_empty() {
            self.store.commit(batch).await?;
        }
        for hash in stored {
            self.value_layout_stored(hash);
        }
        Ok(())
    }
}
