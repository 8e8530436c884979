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
                idempotency_key: format!("{id}/{}", record.step),
                worker: self.member.as_ref().map(|m| m.name.clone()),
            };
            let started = std::time::Instant::now();
            let outcome = {
                let _permit = self
                    .activity_slots
                    .acquire()
                    .await
                    .map_err(|_| Halt::Store(StoreError::Closed))?;
                let future = match (vtable.run)(input, ctx, self.limits.result_bytes) {
                    Ok(future) => future,
                    Err(e) => return self.fail(id, record, e.to_string()).await,
                };
                // a task of its own so that a panic is caught and reported, not
                // propagated; aborted with the instance task (shutdown, terminate)
                let task = AbortOnDrop(tokio::spawn(AssertUnwindSafe(future).catch_unwind()));
                let attempt_run = async {
                    match options.start_to_close_timeout {
                        Some(limit) => tokio::time::timeout(limit, task).await.ok(),
                        None => Some(task.await),
                    }
                };
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
                let joined = tokio::select! {
                    () = deadline => return Err(Halt::Interrupted),
                    joined = attempt_run => joined,
                    // cancel or terminate: drop (abort) the attempt, look at the request
                    () = &mut notified => return Err(Halt::Interrupted),
                };
                match joined {
                    Some(Ok(Ok(Ok((bytes, failure))))) => Ok((bytes, failure)),
                    Some(Ok(Ok(Err(codec_error)))) => {
                        return self.fail(id, record, codec_error.to_string()).await;
                    }
                    Some(Ok(Err(panic))) => Err(Failure {
                        kind: "panic".into(),
                        message: panic_message(panic.as_ref()),
                        retryable: true,
                    }),
                    Some(Err(join_error)) => Err(Failure {
                        kind: "panic".into(),
                        message: join_error.to_string(),
                        retryable: true,
                    }),
                    None => Err(Failure {
                        kind: "timeout".into(),
                        message: format!(
                            "attempt exceeded its start-to-close timeout of {:?}",
                            options.start_to_close_timeout.unwrap_or_default()
                        ),
                        retryable: true,
                    }),
                }
            };
            tracing::debug!(instance = %id, activity = vtable.name, attempt, elapsed_us = started.elapsed().as_micros() as u64, "activity attempt");
            self.metrics
                .attempts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.metrics.attempt_micros.fetch_add(
                started.elapsed().as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.metrics.attempt_seconds.since(started);
            if !matches!(outcome, Ok((_, None))) {
                self.metrics
                    .attempt_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let finished = |error: Option<String>| crate::history::EventKind::ActivityFinished {
                step: record.step,
                activity: vtable.name.to_owned(),
                attempt,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            };
            let (bytes, failure) = match outcome {
                Ok((bytes, None)) => {
                    let event = finished(None);
                    record.new_events.push(event);
                    return Ok(bytes);
                }
                Ok((bytes, Some(failure))) => (Some(bytes), failure),
                Err(failure) => (None, failure),
            };
            if !options.retry.allows_retry(attempt, &failure) {
                let event = finished(Some(format!("{}: {}", failure.kind, failure.message)));
                record.new_events.push(event);
                return match bytes {
                    Some(bytes) => Ok(bytes),
                    None => match (vtable.fail)(
                        ActivityError::retryable(failure.message).with_kind(failure.kind),
                    ) {
                        Ok(bytes) => Ok(bytes),
                        Err(e) => self.fail(id, record, e.to_string()).await,
                    },
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

    /// Runs an activity of a named task queue on a worker that serves it
    /// (see `queues`): waits for its result as for a local attempt, ended
    /// early by a cancel, a terminate or a deadline.
    pub(super) async fn run_queued(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        queue: &str,
        name: &str,
        input: &[u8],
        options: &crate::activity::ActivityOptions,
    ) -> Result<Vec<u8>, Halt> {
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
            done = self.remote_attempts(queue, &call, id, name, input, options) => done.map_err(Halt::Store)?,
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
