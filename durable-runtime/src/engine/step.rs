//! The step loop and one step of an instance: `drive` steps until the
//! instance finishes, waits or fails; `execute` carries out the command its
//! state awaits, read top to bottom; the readiness checks, the signal
//! bookkeeping and the output of a cancelled instance beside it.

use super::{Engine, Halt, InstanceRecord, Ready, Status, WorkflowEntry, guarded, now_ms};
use crate::activity::ActivityError;
use crate::clock::now_ms as clock_ms;
use crate::codec::{self, CodecError};
use crate::command::{Cancelled, Executor, ParentClose, Request};
use crate::error::ResumeError;
use crate::store::{Batch, StoreError, keys};
use crate::workflow::{Op, Outcome};

impl Engine {
    /// Steps the instance until it finishes, waits, or storage fails.
    pub(super) async fn drive(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: WorkflowEntry,
    ) -> Halt {
        loop {
            let Some(request) = record.pending.clone() else {
                return Halt::Finished;
            };
            if self.is_closing() {
                return Halt::Stopping;
            }
            if let Request::ContinueAsNew { workflow, input } = &request {
                // a failed run's successor waits out the policy's backoff
                if let Err(halt) = self.await_rerun(id, record).await {
                    return halt;
                }
                if let Err(halt) = self
                    .continue_as_new(id, record, entry, workflow, input)
                    .await
                {
                    return halt;
                }
                continue;
            }
            let (result, consumed) = match self.execute(id, record, &request, entry).await {
                Ok(Some(done)) => done,
                Ok(None) => return Halt::Waiting,
                Err(Halt::Payload(changes)) => {
                    let reason = ResumeError::LayoutChanged {
                        workflow: record.workflow.clone(),
                        instance: id.to_owned(),
                        variant: record.variant.clone(),
                        changes,
                    };
                    return match self.park(id, record, reason, None).await {
                        Ok(()) => Halt::Parked,
                        Err(e) => Halt::Store(e),
                    };
                }
                Err(halt) => return halt,
            };
            // the state the last step left, typed, if it still is this
            // record's: not decoded again
            let typed = record.held.take_for(record.step, record.layout);
            let state = std::mem::take(&mut record.state);
            let outcome = guarded(|| match typed {
                Some(held) => (entry.drive)(Op::ResumeHeld {
                    held,
                    state: &state,
                    result: &result,
                }),
                None => (entry.drive)(Op::Resume {
                    state: &state,
                    result: &result,
                }),
            });
            record.state = state;
            self.apply(record, outcome, &entry);
            tracing::debug!(instance = %id, step = record.step, variant = %record.variant, "transition");
            // the wake source consumed and the one scheduled change with the state
            let mut batch = Batch::default();
            for key in consumed {
                batch.delete(key);
            }
            let timer = super::transition::timer_writes(id, record, &mut batch);
            let saving = std::time::Instant::now();
            let span = tracing::debug_span!("transition", instance = %id, step = record.step, variant = %record.variant);
            let saved =
                tracing::Instrument::instrument(self.save_with(id, record, batch), span).await;
            if let Err(e) = saved {
                return Halt::Store(e);
            }
            self.metrics.transition(entry.name, saving.elapsed());
            if timer {
                self.timers.notify_one();
            }
        }
    }

    /// The executor of the command `record` waits for.
    pub(crate) fn executor_of(
        record: &InstanceRecord,
        entry: WorkflowEntry,
    ) -> Result<Executor, String> {
        match guarded(|| {
            (entry.drive)(Op::Executor {
                state: &record.state,
            })
        }) {
            Ok(Ok(Outcome::Executor(executor))) => Ok(executor),
            Ok(Ok(_)) => Err(format!("state `{}` answered no executor", record.variant)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(panic),
        }
    }

    /// A command that completes without running anything: its output, the
    /// wake-source key it uses up and what a signal carried, or `None` if
    /// not ready.
    pub(super) async fn ready(
        &self,
        id: &str,
        request: &Request,
        executor: Option<&Executor>,
    ) -> Result<Option<Ready>, Halt> {
        let io = |e: CodecError| Halt::Store(StoreError::Codec(e.to_string()));
        let mut carried = None;
        let done = match request {
            Request::Now => Some((codec::encode(&self.clock.now()).map_err(io)?, None)),
            Request::RandomU64 => Some((codec::encode(&rand::random::<u64>()).map_err(io)?, None)),
            Request::Uuid => Some((codec::encode(&uuid::Uuid::new_v4()).map_err(io)?, None)),
            Request::Promise => Some((
                codec::encode(&crate::promise::new_token(id)).map_err(io)?,
                None,
            )),
            Request::SetAttributes(_) | Request::Reply { .. } => {
                Some((codec::encode(&()).map_err(io)?, None))
            }
            // answered from the record by `execute`: awaited on its own
            Request::Scheduled => None,
            Request::Timer { at_ms, .. } => {
                let at = at_ms.unwrap_or(0);
                if clock_ms(&*self.clock) < at {
                    None
                } else {
                    Some((
                        codec::encode(&Ok::<(), Cancelled>(())).map_err(io)?,
                        Some(keys::timer(at, id)),
                    ))
                }
            }
            Request::Signal { name } => {
                match self.take_signal(id, name).await.map_err(Halt::Store)? {
                    Some((key, payload, layout)) => {
                        let vtable = match executor {
                            Some(Executor::Signal(vtable)) => Some(vtable),
                            _ => None,
                        };
                        // for the history: as its sender wrote it, with the
                        // sender's layout (stored with the signal); an update's
                        // request is shown by its own events
                        if !name.starts_with("update/") {
                            carried = Some(crate::history::KeptValue::of(&payload, layout));
                        }
                        let payload = self
                            .payload_for(name, payload, layout, vtable)
                            .map_err(Halt::Payload)?;
                        Some((codec::ok_variant(&payload).map_err(io)?, Some(key)))
                    }
                    None => None,
                }
            }
            Request::Activity { .. }
            | Request::Select(_)
            | Request::All { .. }
            | Request::Compensate(_)
            | Request::Child { .. }
            | Request::StartChild { .. }
            | Request::ContinueAsNew { .. } => None,
        };
        Ok(done.map(|(output, consumed)| (output, consumed, carried)))
    }

    /// Records in the history that the timer or signal `request` waited
    /// for has come (a signal with what it `carried`), sets the search
    /// attributes it names, or stages the update reply it makes (saved with
    /// the transition it resumes).
    pub(super) fn note_arrival(
        id: &str,
        record: &mut InstanceRecord,
        request: &Request,
        carried: Option<crate::history::KeptValue>,
    ) {
        let step = record.step;
        let event = match request {
            Request::Reply { update, reply } => {
                record
                    .writes
                    .push((keys::update(id, update), reply.clone()));
                crate::history::EventKind::UpdateReplied {
                    step,
                    update: update.clone(),
                    json: codec::decode::<crate::update::Stored>(reply)
                        .map(|r| r.json)
                        .unwrap_or_default(),
                }
            }
            Request::Timer { .. } => crate::history::EventKind::TimerFired { step },
            Request::Signal { name } => {
                record
                    .new_events
                    .push(crate::history::EventKind::SignalReceived {
                        step,
                        name: name.clone(),
                    });
                match carried {
                    Some(value) => crate::history::EventKind::SignalKept {
                        step,
                        name: name.clone(),
                        value,
                    },
                    None => return,
                }
            }
            Request::SetAttributes(attrs) => {
                for (name, value) in attrs {
                    match record.search_attributes.iter_mut().find(|(n, _)| n == name) {
                        Some((_, v)) => *v = value.clone(),
                        None => record.search_attributes.push((name.clone(), value.clone())),
                    }
                }
                return;
            }
            _ => return,
        };
        record.new_events.push(event);
    }

    /// Whether a buffered signal answers `request` (a `Signal`), without
    /// taking it.
    pub(super) async fn peek_signal(&self, id: &str, request: &Request) -> Result<bool, Halt> {
        let Request::Signal { name } = request else {
            return Ok(false);
        };
        // finding it takes nothing: the key is deleted by the transition
        Ok(self
            .take_signal(id, name)
            .await
            .map_err(Halt::Store)?
            .is_some())
    }

    /// What a command evaluates to when the instance is cancelled at it.
    pub(super) fn cancelled_output(
        request: &Request,
        executor: Option<&Executor>,
    ) -> Result<Vec<u8>, CodecError> {
        match (request, executor) {
            (Request::Activity { .. }, Some(Executor::Activity(vtable))) => {
                (vtable.fail)(ActivityError::cancelled())
            }
            (Request::Select(reqs), Some(Executor::Each(each))) => match reqs.first() {
                Some(first) => codec::variant(0, &Self::cancelled_output(first, Some(each))?),
                None => codec::encode(&()),
            },
            (Request::Select(reqs), Some(Executor::Select(execs))) => {
                match (reqs.first(), execs.first()) {
                    (Some(first), first_exec) => {
                        codec::variant(0, &Self::cancelled_output(first, first_exec)?)
                    }
                    (None, _) => codec::encode(&()),
                }
            }
            (Request::Timer { .. } | Request::Signal { .. }, _) => {
                codec::encode(&Err::<(), Cancelled>(Cancelled))
            }
            (Request::Now, _) => codec::encode(&std::time::SystemTime::now()),
            (Request::RandomU64, _) => codec::encode(&rand::random::<u64>()),
            (Request::Uuid, _) => codec::encode(&uuid::Uuid::new_v4()),
            // a token that names no instance: nothing can complete it
            (Request::Promise, _) => codec::encode(&crate::promise::new_token("")),
            (Request::SetAttributes(_) | Request::Reply { .. }, _) => codec::encode(&()),
            (Request::Scheduled, _) => codec::encode(&None::<crate::schedule::ScheduledRun>),
            (Request::All { requests, .. }, Some(Executor::Each(each))) => {
                let parts = requests
                    .iter()
                    .map(|r| Self::cancelled_output(r, Some(each)))
                    .collect::<Result<Vec<_>, _>>()?;
                codec::seq(&parts)
            }
            (Request::Child { id, .. } | Request::StartChild { id, .. }, _) => codec::variant(
                1,
                &codec::encode(&crate::ChildError {
                    id: id.clone().unwrap_or_default(),
                    reason: "the parent was cancelled".into(),
                })?,
            ),
            (Request::Compensate(_) | Request::ContinueAsNew { .. }, _) => {
                Err(CodecError::Encode {
                    type_name: "command output",
                    reason: "not cancellable".into(),
                })
            }
            (Request::Activity { .. } | Request::Select(_) | Request::All { .. }, _) => {
                Err(CodecError::Encode {
                    type_name: "command output",
                    reason: "no executor for the command".into(),
                })
            }
        }
    }

    /// Carries out `request`: the encoded output of its command and the keys
    /// of the wake sources it used up, or `None` if it must wait.
    pub(super) async fn execute(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        request: &Request,
        entry: WorkflowEntry,
    ) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, Halt> {
        let mut timers = Vec::new();
        request.timer_keys(id, &mut timers);
        let needs_executor = matches!(
            request,
            Request::Activity { .. }
                | Request::Select(_)
                | Request::All { .. }
                // the awaited payload type, to read a signal sent as another
                | Request::Signal { .. }
        );
        let executor = if needs_executor {
            match Self::executor_of(record, entry) {
                Ok(e) => Some(e),
                Err(why) => return self.fail(id, record, why).await,
            }
        } else {
            None
        };
        if let Some(deadline) = record.next_deadline()
            && clock_ms(&*self.clock) >= deadline
        {
            // the deadline's own timer goes with the end (`save_with`)
            let why = format!("[DURABLE-TIMEOUT] the execution timeout ran out at {deadline} ms");
            return self.end(id, record, Status::Terminated, why, timers).await;
        }
        // cancel and terminate requests are durable keys, consumed here
        if self.has_control(id) {
            if let Some((key, reason)) = self
                .take_control(id, keys::TERMINATE)
                .await
                .map_err(Halt::Store)?
            {
                let reason: String = codec::decode(&reason).unwrap_or_else(|_| "terminated".into());
                timers.push(key);
                if let Some((cancel, _)) = self
                    .take_control(id, keys::CANCEL)
                    .await
                    .map_err(Halt::Store)?
                {
                    timers.push(cancel);
                }
                return self
                    .end(id, record, Status::Terminated, reason, timers)
                    .await;
            }
            // compensations, continue-as-new and a reply run on; the cancel
            // waits for the next await
            let cancellable = !matches!(
                request,
                Request::Compensate(_) | Request::ContinueAsNew { .. } | Request::Reply { .. }
            );
            let cancel = if cancellable {
                self.take_control(id, keys::CANCEL)
                    .await
                    .map_err(Halt::Store)?
            } else {
                None
            };
            if let Some((key, _)) = cancel {
                self.clear_control(id);
                if !record.cancel_delivered {
                    // delivered once, at the await the workflow is at
                    record.cancel_delivered = true;
                    record
                        .new_events
                        .push(crate::history::EventKind::CancelDelivered { step: record.step });
                    timers.push(key);
                    return match Self::cancelled_output(request, executor.as_ref()) {
                        Ok(bytes) => Ok(Some((bytes, timers))),
                        Err(e) => self.fail(id, record, e.to_string()).await,
                    };
                }
                self.store
                    .commit({
                        let mut b = Batch::default();
                        b.delete(key);
                        b
                    })
                    .await
                    .map_err(Halt::Store)?;
            } else if cancellable {
                // the flag outlived its key (a repeated cancel, consumed with the
                // first one): nothing is pending, so stop looking
                self.clear_control(id);
            }
        }
        match request {
            Request::All { requests, limit } => {
                let Some(Executor::Each(each)) = executor else {
                    return self
                        .fail(id, record, "join_all without its executor".into())
                        .await;
                };
                self.run_all(id, record, (requests, *limit), &each, &entry)
                    .await
                    .map(|done| done.map(|bytes| (bytes, timers)))
            }
            Request::Compensate(steps) => self
                .run_compensations(id, record, steps)
                .await
                .map(|bytes| Some((bytes, timers))),
            Request::Child {
                workflow,
                input,
                id: child,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            }
            | Request::StartChild {
                workflow,
                input,
                id: child,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            } => {
                let cancel_on_close = *parent_close == ParentClose::Cancel;
                let limits = (
                    timeout_ms.map(std::time::Duration::from_millis),
                    run_timeout_ms.map(std::time::Duration::from_millis),
                );
                // started and left running: the await goes on with its id
                let wait = matches!(request, Request::Child { .. });
                self.run_child(
                    id,
                    record,
                    &entry,
                    (workflow, input, child.as_deref()),
                    (cancel_on_close, wait),
                    limits,
                    None,
                )
                .await
            }
            Request::Activity {
                name,
                input,
                options,
            } => {
                let vtable = match executor {
                    Some(Executor::Activity(v)) if v.name == name => v,
                    _ => {
                        return self
                            .fail(
                                id,
                                record,
                                format!(
                                    "state `{}` does not await activity `{name}`",
                                    record.variant
                                ),
                            )
                            .await;
                    }
                };
                if let Some(queue) = self.queue_for(&vtable) {
                    return self
                        .run_queued(id, record, queue, vtable, input, options)
                        .await
                        .map(|bytes| Some((bytes, timers)));
                }
                let bytes = self
                    .run_activity(id, record, vtable, input, options)
                    .await?;
                Ok(Some((bytes, timers)))
            }
            Request::Select(branches) => {
                self.run_select(id, record, branches, entry, executor, timers)
                    .await
            }
            Request::Scheduled => {
                let run = record
                    .scheduled
                    .clone()
                    .map(crate::schedule::ScheduledRun::from);
                match codec::encode(&run) {
                    Ok(bytes) => Ok(Some((bytes, timers))),
                    Err(e) => self.fail(id, record, e.to_string()).await,
                }
            }
            other => {
                if let Some(why) = self.oversized_attribute(other) {
                    return self.fail(id, record, why).await;
                }
                match self.ready(id, other, executor.as_ref()).await? {
                    Some((bytes, key, carried)) => {
                        Self::note_arrival(id, record, other, carried);
                        timers.extend(key);
                        Ok(Some((bytes, timers)))
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// Why a `SetAttributes` request cannot be kept: an attribute over the
    /// limit (none for any other request).
    fn oversized_attribute(&self, request: &Request) -> Option<String> {
        let Request::SetAttributes(attrs) = request else {
            return None;
        };
        let (name, size) = attrs
            .iter()
            .map(|(name, value)| (name, name.len() + value.size()))
            .find(|(_, size)| *size > self.limits.attribute())?;
        let what = format!("search attribute `{name}` (name and value)");
        Some(crate::limits::over(
            &what,
            size,
            self.limits.attribute(),
            "attribute_bytes",
        ))
    }

    /// Records `record` as failed with `why`.
    pub(super) async fn fail<T>(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        why: String,
    ) -> Result<T, Halt> {
        self.end(id, record, Status::Failed, why, Vec::new()).await
    }

    /// Ends instance `id` from outside its code, the one way every such end
    /// is written (a failure the engine found, the execution timeout, a
    /// terminate): `status` with `why`, its `Finished` event, nothing
    /// pending, the keys in `used` (wake sources, control requests)
    /// deleted in the same save. Its deadline timers and a control request
    /// that came too late go with any terminal save (`save_with`).
    pub(super) async fn end<T>(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        status: Status,
        why: String,
        used: Vec<Vec<u8>>,
    ) -> Result<T, Halt> {
        super::transition::finish(record, status, Some(why));
        record.updated_ms = now_ms();
        let mut batch = Batch::default();
        for key in used {
            batch.delete(key);
        }
        self.save_with(id, record, batch)
            .await
            .map_err(Halt::Store)?;
        Err(Halt::Finished)
    }
}
