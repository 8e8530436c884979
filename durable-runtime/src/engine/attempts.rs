//! Activity attempts: an activity run in this process (with its retries,
//! timeouts and the interrupt race) or handed to a task queue.

use super::*;

impl Engine {
    /// Runs an activity's attempts until one succeeds or the policy allows
    /// no more; its encoded output either way.
    pub(super) async fn run_activity(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        vtable: crate::activity::ActivityVTable,
        input: &[u8],
        options: &crate::activity::ActivityOptions,
    ) -> Result<Vec<u8>, Halt> {
        loop {
            let attempt = record.failed_attempts + 1;
            let ctx = ActivityContext {
                workflow_id: id.to_owned(),
                activity: vtable.name,
                attempt,
                idempotency_key: record.activity_key(id),
                worker: self.member.as_ref().map(|m| m.name.clone()),
            };
            let started = std::time::Instant::now();
            // listen before looking, so a request arriving in between is not missed
            let interrupt = self.interrupt(id);
            let notified = interrupt.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_control(id) {
                return Err(Halt::Interrupted);
            }
            let deadline = async {
                match record.next_deadline() {
                    Some(d) => self.clock.sleep_until(crate::clock::from_ms(d)).await,
                    None => std::future::pending().await,
                }
            };
            // a cancel, a terminate or the deadline drops (aborts) the attempt
            let attempted = tokio::select! {
                () = deadline => return Err(Halt::Interrupted),
                attempted = self.attempt(vtable, input, ctx, options) => attempted,
                () = &mut notified => return Err(Halt::Interrupted),
            };
            let finished = |error: Option<String>| crate::history::EventKind::ActivityFinished {
                step: record.step,
                activity: vtable.name.to_owned(),
                attempt,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            };
            let (bytes, failure) = match attempted {
                Ok((Some(bytes), None)) => {
                    record.new_events.push(finished(None));
                    return Ok(bytes);
                }
                Ok((bytes, Some(failure))) => (bytes, failure),
                Ok((None, None)) => {
                    let why = "an attempt ended with neither output nor failure";
                    return self.fail(id, record, why.into()).await;
                }
                Err(codec_error) => return self.fail(id, record, codec_error).await,
            };
            if !options.retry.allows_retry(attempt, &failure) {
                let event = finished(Some(format!("{}: {}", failure.kind, failure.message)));
                record.new_events.push(event);
                return match last_output(vtable, bytes, &failure) {
                    Ok(bytes) => Ok(bytes),
                    Err(e) => self.fail(id, record, e.to_string()).await,
                };
            }
            record.failed_attempts = attempt;
            record.last_error = Some(format!("{}: {}", failure.kind, failure.message));
            record
                .new_events
                .push(crate::history::EventKind::AttemptFailed {
                    step: record.step,
                    attempt,
                    error: format!("{}: {}", failure.kind, failure.message),
                    duration_ms: started.elapsed().as_millis() as u64,
                });
            record.updated_ms = now_ms();
            self.save(id, record).await.map_err(Halt::Store)?;
            let backoff = options.retry.backoff(attempt + 1);
            self.clock.sleep_until(self.clock.now() + backoff).await;
        }
    }

    /// One attempt of an activity in this process, with a slot of
    /// `max_concurrent_activities`: a task of its own, so a panic is caught
    /// and reported rather than propagated, aborted when dropped (a cancel,
    /// a terminate, shutdown), bounded by the start-to-close timeout, and
    /// counted in the metrics. Its output and its failure (a panic or a
    /// timeout has no output); `Err` when the input or output does not
    /// encode. The retry loops of a step ([`Engine::run_activity`]) and of
    /// a step's parts (`composite::local_attempts`) both run attempts so.
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
        let future =
            (vtable.run)(input, ctx, self.limits.result_bytes).map_err(|e| e.to_string())?;
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
        m.attempt_micros.fetch_add(
            started.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
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
        let interrupt = self.interrupt(id);
        let notified = interrupt.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.has_control(id) {
            return Err(Halt::Interrupted);
        }
        let deadline = async {
            match record.next_deadline() {
                Some(d) => self.clock.sleep_until(crate::clock::from_ms(d)).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            done = self.remote_attempts(queue, &call, id, vtable, input, options) => done?,
            () = deadline => return Err(Halt::Interrupted),
            () = &mut notified => return Err(Halt::Interrupted),
        };
        match outcome {
            Ok((bytes, failure)) => {
                record
                    .new_events
                    .push(crate::history::EventKind::ActivityFinished {
                        step: record.step,
                        activity: name.to_owned(),
                        attempt: 1,
                        duration_ms: started.elapsed().as_millis() as u64,
                        error: failure.map(|f| format!("{}: {}", f.kind, f.message)),
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
