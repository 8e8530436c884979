//! Activity attempts: an activity run in this process (with its retries,
//! timeouts and the interrupt race) or handed to a task queue.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::{AbortOnDrop, Engine, Halt, InstanceRecord, now_ms, panic_message};
use crate::activity::{ActivityContext, ActivityError, Failure};
use crate::codec::CodecError;
use crate::store::StoreError;

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
        seen: impl FnOnce() -> Result<bool, Halt>,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Halt> {
        let interrupt = self.interrupts.listen(id);
        let notified = interrupt.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.has_control(id) || seen()? {
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
    #[allow(clippy::too_many_arguments)] // one call's parts
    pub(super) async fn retry(
        &self,
        vtable: crate::activity::ActivityVTable,
        input: &[u8],
        options: &crate::activity::ActivityOptions,
        key: &str,
        workflow_id: &str,
        first: u32,
        between: &mut dyn Between,
    ) -> Result<Result<LastAttempt, String>, Halt> {
        let mut attempt = first;
        loop {
            let ctx = ActivityContext {
                workflow_id: workflow_id.to_owned(),
                activity: vtable.name,
                attempt,
                idempotency_key: key.to_owned(),
                worker: self.member.as_ref().map(|m| m.name.clone()),
            };
            let started = std::time::Instant::now();
            let attempted = match self.attempt(vtable, input, ctx, options).await {
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
                    }));
                }
                (bytes, Some(failure)) => (bytes, failure),
                (None, None) => {
                    return Ok(Err(
                        "an attempt ended with neither output nor failure".into()
                    ));
                }
            };
            if !options.retry.allows_retry(attempt, &failure) {
                return Ok(last_output(vtable, bytes, &failure)
                    .map(|bytes| LastAttempt {
                        bytes,
                        failure: Some(failure),
                        attempt,
                        took,
                    })
                    .map_err(|e| e.to_string()));
            }
            let retry_at = self.clock.now() + options.retry.backoff(attempt + 1);
            let retry_at_ms = retry_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            between
                .retrying(attempt, &failure, took, retry_at_ms)
                .await?;
            self.clock.sleep_until(retry_at).await;
            attempt += 1;
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
        let mut checkpointed = Checkpointed {
            engine: self,
            id,
            record: &mut *record,
        };
        let retried = async {
            if backoff.is_some() {
                crate::clock::sleep_until_ms(&*self.clock, backoff).await;
            }
            self.retry(vtable, input, options, &key, id, first, &mut checkpointed)
                .await
        };
        let done = self
            .interruptible(id, deadline, || Ok(false), retried)
            .await??;
        let last = match done {
            Ok(last) => last,
            Err(why) => return self.fail(id, record, why).await,
        };
        record
            .new_events
            .push(crate::history::EventKind::ActivityFinished {
                step,
                activity: vtable.name.to_owned(),
                attempt: last.attempt,
                duration_ms: last.took.as_millis() as u64,
                error: last.failure.map(|f| f.text()),
            });
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
        let task = AbortOnDrop(tokio::spawn(AssertUnwindSafe(future).catch_unwind()));
        let joined = match options.start_to_close_timeout {
            Some(limit) => tokio::time::timeout(limit, task).await.ok(),
            None => Some(task.await),
        };
        let panic = |message: String| Failure {
            kind: "panic".into(),
            message,
            retryable: true,
        };
        let outcome = match joined {
            Some(Ok(Ok(Ok((bytes, failure))))) => (Some(bytes), failure),
            Some(Ok(Ok(Err(codec_error)))) => return Err(codec_error.to_string()),
            Some(Ok(Err(payload))) => (None, Some(panic(panic_message(payload.as_ref())))),
            Some(Err(join_error)) => (None, Some(panic(join_error.to_string()))),
            None => (
                None,
                Some(Failure {
                    kind: "timeout".into(),
                    message: format!(
                        "attempt exceeded its start-to-close timeout of {:?}",
                        options.start_to_close_timeout.unwrap_or_default()
                    ),
                    retryable: true,
                }),
            ),
        };
        tracing::debug!(
            activity,
            attempt,
            elapsed_us = started.elapsed().as_micros() as u64,
            "activity attempt"
        );
        let m = &self.metrics;
        m.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.attempt_seconds.since(started);
        if outcome.1.is_some() {
            m.attempt_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
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
        let call = format!("{id}/{}", record.step);
        let remote = self.remote_attempts(queue, &call, id, vtable, input, options);
        let outcome = self
            .interruptible(id, record.next_deadline(), || Ok(false), remote)
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
