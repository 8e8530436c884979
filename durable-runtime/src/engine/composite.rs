//! Commands made of other steps: parallel activities, saga compensations,
//! child workflows and continue-as-new.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::attempts::called;
use super::queues::Remote;
use super::{Engine, Halt, InstanceRecord, Status, WorkflowEntry, guarded, now_ms};
use crate::activity::{ActivityOptions, ActivityVTable};
use crate::clock::now_ms as clock_ms;
use crate::codec;
use crate::command::{ChildError, Executor, ParentClose, Request};
use crate::store::{Batch, StoreError};
use crate::workflow::Op;

/// Runs one activity until it succeeds or its policy allows no more
/// attempts, without checkpointing the failures (parts of a larger step):
/// its output and last failure, or why it could not run (which fails the
/// instance); a halt when the store fails or a queued result must park it.
/// Its schedule-to-close timeout counts from `scheduled_ms`.
pub(super) async fn attempts(
    engine: &Engine,
    key: String,
    workflow_id: &str,
    (vtable, input, options): (ActivityVTable, &[u8], &ActivityOptions),
    scheduled_ms: u64,
) -> Result<(Remote, u32), Halt> {
    if let Some(queue) = engine.queue_for(&vtable) {
        // a part of a select or join_all on a named queue: run there
        return engine
            .remote_attempts(
                queue,
                &key,
                workflow_id,
                vtable,
                input,
                options,
                scheduled_ms,
            )
            .await;
    }
    let heartbeat = crate::store::keys::heartbeat(workflow_id, &key);
    let (done, made, heartbeats) = local_attempts(
        engine,
        key,
        workflow_id,
        vtable,
        input,
        options,
        scheduled_ms,
    )
    .await;
    if heartbeats {
        // with the checkpoint of this part's result
        engine.spend(workflow_id, heartbeat);
    }
    Ok((done, made))
}

/// Part `i`'s index as the history holds it.
fn part(i: usize) -> Option<u32> {
    Some(u32::try_from(i).unwrap_or(u32::MAX))
}

/// The history event of part `part` of step `step`, whose attempts
/// (`made`, started at `started`) ended with `done`.
fn part_finished(
    step: u64,
    part: usize,
    activity: &str,
    made: u32,
    started: std::time::Instant,
    done: &Remote,
) -> crate::history::EventKind {
    crate::history::EventKind::PartFinished {
        step,
        part: u32::try_from(part).unwrap_or(u32::MAX),
        activity: activity.to_owned(),
        attempts: made,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: match done {
            Ok((_, None)) => None,
            Ok((_, Some(failure))) => Some(failure.text()),
            Err(why) => Some(why.clone()),
        },
    }
}

/// [`attempts`] in this process, whatever the activity's queue (the queue
/// service runs its tasks so): [`Engine::retry`], failed attempts kept in
/// memory. Also whether heartbeat details of the call may be stored (the
/// caller deletes them with the result).
pub(super) async fn local_attempts(
    engine: &Engine,
    key: String,
    workflow_id: &str,
    vtable: ActivityVTable,
    input: &[u8],
    options: &ActivityOptions,
    scheduled_ms: u64,
) -> (Remote, u32, bool) {
    let mut between = super::attempts::InMemory;
    match engine
        .retry(
            vtable,
            input,
            options,
            &key,
            workflow_id,
            (1, scheduled_ms),
            &mut between,
        )
        .await
    {
        Ok(Ok(last)) => (
            Ok((last.bytes, last.failure)),
            last.attempt,
            last.heartbeats,
        ),
        Ok(Err(why)) => (Err(why), 0, true),
        // kept in memory: nothing between the attempts halts
        Err(_) => (Err("the attempts were stopped".into()), 0, true),
    }
}

impl Engine {
    /// `join_all`: runs the unfinished parts, at most `limit` at once, and
    /// checkpoints each result as it arrives; `None` while child parts run.
    pub(super) async fn run_all(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        (requests, limit): (&[Request], u32),
        each: &Executor,
        entry: &WorkflowEntry,
    ) -> Result<Option<Vec<u8>>, Halt> {
        if requests.iter().any(|r| matches!(r, Request::Child { .. })) {
            return self
                .join_children(id, record, (requests, limit), entry)
                .await;
        }
        if record.partial.len() != requests.len() {
            record.partial = vec![None; requests.len()];
        }
        let key = record.activity_key(id);
        let todo: Vec<usize> = (0..requests.len())
            .filter(|i| record.partial[*i].is_none())
            .collect();
        let mut queue = todo.into_iter();
        let mut running = FuturesUnordered::new();
        let step = record.step;
        let scheduled_ms = record.scheduled_ms(&*self.clock);
        let start_one = |i: usize| {
            let request = requests[i].clone();
            let each = each.clone();
            let key = format!("{key}/{i}");
            async move {
                let started = std::time::Instant::now();
                let out = match (&request, &each) {
                    (Request::Activity { input, options, .. }, Executor::Activity(vtable)) => {
                        attempts(self, key, id, (*vtable, input, options), scheduled_ms)
                            .await
                            .map(|(done, made)| {
                                let mut events =
                                    vec![part_finished(step, i, vtable.name, made, started, &done)];
                                if let Ok((bytes, _)) = &done {
                                    events.push(called(step, part(i), *vtable, input, bytes));
                                }
                                (done.map(|(b, _)| b), events)
                            })
                    }
                    (other, exec) => match self.ready(id, other, Some(exec)).await {
                        Ok(Some((bytes, None, _))) => Ok((Ok(bytes), Vec::new())),
                        _ => Ok((
                            Err("join_all takes activities, child workflows, and clock or random reads".to_owned()),
                            Vec::new(),
                        )),
                    },
                };
                (i, out)
            }
        };
        for i in queue.by_ref().take(limit.max(1) as usize) {
            running.push(start_one(i));
        }
        while let Some(first) = running.next().await {
            // take every part that is already done, then checkpoint them in one write
            let mut done = vec![first];
            while let Some(Some(more)) = futures::FutureExt::now_or_never(running.next()) {
                done.push(more);
            }
            for (i, out) in done {
                let (out, event) = out?;
                record.new_events.extend(event);
                let bytes = match out {
                    Ok(bytes) => bytes,
                    Err(why) => return self.fail(id, record, why).await,
                };
                record.partial[i] = Some(bytes);
            }
            record.updated_ms = now_ms();
            self.save(id, record).await.map_err(Halt::Store)?;
            // shutting down: the parts running finish, no other starts
            while running.len() < limit.max(1) as usize && !self.is_closing() {
                let Some(next) = queue.next() else { break };
                running.push(start_one(next));
            }
        }
        if record.partial.iter().any(Option::is_none) {
            return Err(Halt::Stopping);
        }
        let parts: Vec<Vec<u8>> = record
            .partial
            .iter()
            .map(|p| p.clone().unwrap_or_default())
            .collect();
        match codec::seq(&parts) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => self.fail(id, record, e.to_string()).await,
        }
    }

    /// `join_all` over child workflows: each part started as an awaited
    /// child is (id `<parent>/<step>/<part>` unless named), at most `limit`
    /// running at once (a part waits for a place, in order); every output
    /// in order once all have ended, `None` until then (the end of each
    /// wakes the parent, which starts the next). The outputs are read from
    /// the children's records, so nothing is checkpointed meanwhile.
    async fn join_children(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        (requests, limit): (&[Request], u32),
        entry: &WorkflowEntry,
    ) -> Result<Option<Vec<u8>>, Halt> {
        let mut outputs = Vec::with_capacity(requests.len());
        let mut running = 0;
        for (i, request) in requests.iter().enumerate() {
            let Request::Child { id: named, .. } = request else {
                let why = format!("join_all over child workflows and other commands: {request:?}");
                return self.fail(id, record, why).await;
            };
            if running >= limit.max(1) {
                let child = child_id(id, record.step, Some(i), named.as_deref());
                if self.load(&child).await.map_err(Halt::Store)?.is_none() {
                    continue; // not started yet: no place for it
                }
            }
            match self.child_part(id, record, entry, request, i).await? {
                Some((bytes, _)) => outputs.push(bytes),
                None => running += 1,
            }
        }
        if outputs.len() < requests.len() {
            return Ok(None);
        }
        match codec::seq(&outputs) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => self.fail(id, record, e.to_string()).await,
        }
    }

    /// Part `branch` of the select or `join_all` instance `id` awaits, a
    /// child: started if it is not yet (as an awaited child is), and its
    /// output once it has ended; `None` while it runs.
    pub(super) async fn child_part(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: &WorkflowEntry,
        request: &Request,
        branch: usize,
    ) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, Halt> {
        let Request::Child {
            workflow,
            input,
            id: named,
            parent_close,
            timeout_ms,
            run_timeout_ms,
        } = request
        else {
            return Ok(None);
        };
        self.run_child(
            id,
            record,
            entry,
            (workflow, input, named.as_deref()),
            (*parent_close == ParentClose::Cancel, true),
            (
                timeout_ms.map(std::time::Duration::from_millis),
                run_timeout_ms.map(std::time::Duration::from_millis),
            ),
            Some(branch),
        )
        .await
    }

    /// Saga compensation: last first, each to its end, each checkpointed.
    pub(super) async fn run_compensations(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        steps: &[Request],
    ) -> Result<Vec<u8>, Halt> {
        if record.partial.len() != steps.len() {
            record.partial = vec![None; steps.len()];
        }
        let key = record.activity_key(id);
        for i in (0..steps.len()).rev() {
            if record.partial[i].is_some() {
                continue;
            }
            if self.is_closing() {
                return Err(Halt::Stopping);
            }
            let outcome: Option<String> = match &steps[i] {
                Request::Activity {
                    name,
                    input,
                    options,
                } => match self.activities.named(name) {
                    Ok(vtable) => {
                        let started = std::time::Instant::now();
                        let (done, made) = attempts(
                            self,
                            format!("{key}/{i}"),
                            id,
                            (vtable, input, options),
                            record.scheduled_ms(&*self.clock),
                        )
                        .await?;
                        record.new_events.push(part_finished(
                            record.step,
                            i,
                            vtable.name,
                            made,
                            started,
                            &done,
                        ));
                        if let Ok((bytes, _)) = &done {
                            record.new_events.push(called(
                                record.step,
                                part(i),
                                vtable,
                                input,
                                bytes,
                            ));
                        }
                        match done {
                            Ok((_, None)) => None,
                            Ok((_, Some(f))) => Some(f.text()),
                            Err(why) => Some(why),
                        }
                    }
                    Err(why) => Some(why),
                },
                other => Some(format!("not an activity: {other:?}")),
            };
            let encoded = codec::encode(&outcome)
                .map_err(|e| Halt::Store(StoreError::Codec(e.to_string())))?;
            record.partial[i] = Some(encoded);
            record.updated_ms = now_ms();
            self.save(id, record).await.map_err(Halt::Store)?;
        }
        let parts: Vec<Vec<u8>> = record
            .partial
            .iter()
            .map(|p| p.clone().unwrap_or_default())
            .collect();
        codec::seq(&parts).map_err(|e| Halt::Store(StoreError::Codec(e.to_string())))
    }

    /// A child workflow: created on first execution, then awaited (its end
    /// wakes this instance); or, without `wait`, created and left running,
    /// the await's output its id. `branch`: the child is that branch of
    /// the select the instance awaits.
    #[allow(clippy::too_many_arguments)] // one call's parts
    pub(super) async fn run_child(
        self: &Engine,
        id: &str,
        record: &mut InstanceRecord,
        entry: &WorkflowEntry,
        (workflow, input, child): (&str, &[u8], Option<&str>),
        (cancel_on_close, wait): (bool, bool),
        (timeout, run_timeout): (Option<std::time::Duration>, Option<std::time::Duration>),
        branch: Option<usize>,
    ) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, Halt> {
        let child_id = child_id(id, record.step, branch, child);
        let existing = self.load(&child_id).await.map_err(Halt::Store)?;
        let child_record = match existing {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                return self
                    .fail(
                        id,
                        record,
                        format!("child `{child_id}` cannot be decoded: {e}"),
                    )
                    .await;
            }
            None => {
                // held to the limits a start at the API is: not created,
                // and the parent's await says why
                let limits = &self.limits;
                let over = if child_id.len() > limits.id() {
                    Some(crate::limits::over(
                        &format!("id of child `{child_id:.40}…`"),
                        child_id.len(),
                        limits.id(),
                        "id_bytes",
                    ))
                } else if input.len() > limits.input_bytes {
                    Some(crate::limits::over(
                        &format!("input of child `{child_id}`"),
                        input.len(),
                        limits.input_bytes,
                        "input_bytes",
                    ))
                } else {
                    None
                };
                if let Some(reason) = over {
                    let refused = codec::encode(&ChildError {
                        id: child_id.clone(),
                        reason,
                    })
                    .and_then(|e| codec::variant(1, &e));
                    return match refused {
                        Ok(bytes) => Ok(Some((bytes, Vec::new()))),
                        Err(e) => self.fail(id, record, e.to_string()).await,
                    };
                }
                let Some(entry) = self.workflows.newest(workflow) else {
                    return self
                        .fail(
                            id,
                            record,
                            format!("child workflow `{workflow}` is not registered"),
                        )
                        .await;
                };
                let mut r = self.first_record(
                    workflow,
                    entry,
                    input,
                    Some(id.to_owned()),
                    timeout,
                    run_timeout,
                );
                // the child and the parent's list of children it must cancel
                // are one batch: a crash cannot leave a child its parent forgot
                let mut batch = Batch::default();
                let creating = self.me().map(|me| me.claim_for_create(&child_id));
                let timer = self
                    .stage_create(&child_id, &mut r, &mut batch)
                    .await
                    .map_err(Halt::Store)?;
                if cancel_on_close && !record.children.contains(&child_id) {
                    record.children.push(child_id.clone());
                    self.save_with(id, record, batch).await
                } else {
                    self.store.commit(batch).await
                }
                // a conflict means another process created it: this one stops
                // and resumes from the store
                .map_err(Halt::Store)?;
                r.committed();
                self.metrics.started(entry.name);
                if !r.status.is_terminal() {
                    self.owned_now(&child_id);
                }
                if timer {
                    self.timers.notify_one();
                }
                if !r.status.is_terminal()
                    && let Some(creating) = creating
                {
                    creating.spawn(r.clone(), entry);
                }
                r
            }
        };
        if !wait {
            // started (now, or before a restart): the await has its id
            return match codec::encode(&child_id).and_then(|id| codec::ok_variant(&id)) {
                Ok(bytes) => Ok(Some((bytes, Vec::new()))),
                Err(e) => self.fail(id, record, e.to_string()).await,
            };
        }
        let output = |child: &InstanceRecord| {
            self.child_output(entry, (&record.variant, branch), &child_id, child)
                .map_err(Halt::Payload)
        };
        let result = match child_record.status {
            Status::Completed | Status::Cancelled => codec::ok_variant(&output(&child_record)?),
            // a child that returned `Err` failed, and its typed output says why
            Status::Failed if child_record.output.is_some() => {
                codec::ok_variant(&output(&child_record)?)
            }
            Status::Failed | Status::Terminated => codec::encode(&ChildError {
                id: child_id.clone(),
                reason: child_record
                    .error
                    .unwrap_or_else(|| format!("{:?}", child_record.status)),
            })
            .and_then(|e| codec::variant(1, &e)),
            Status::Running | Status::Parked => return Ok(None),
        };
        match result {
            Ok(bytes) => Ok(Some((bytes, Vec::new()))),
            Err(e) => self.fail(id, record, e.to_string()).await,
        }
    }

    /// Ends this run and starts the next with `input`, same id.
    pub(super) async fn continue_as_new(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: WorkflowEntry,
        workflow: &str,
        input: &[u8],
    ) -> Result<(), Halt> {
        if workflow != record.workflow {
            let why = format!(
                "continue_as_new of `{workflow}` from `{}`: a run can only continue as the same workflow",
                record.workflow
            );
            return self.fail(id, record, why).await;
        }
        // after a failed run (`rerun.rs`): its timer entry goes, and a
        // kept input is read back; a continue-as-new starts its attempts anew
        let rerun_timer =
            (record.retry_at_ms > 0).then(|| crate::store::keys::timer(record.retry_at_ms, id));
        let kept;
        let input = if record.variant == super::rerun::RETRYING {
            // the input as the record keeps it (an import brings it whole)
            let inline = record
                .rerun
                .as_ref()
                .map(|r| r.input.clone())
                .unwrap_or_default();
            let written = if !inline.is_empty() {
                inline
            } else if !input.is_empty() {
                input.to_vec()
            } else {
                self.kept_input(id, crate::store::Wait::Task)
                    .await
                    .map_err(Halt::Store)?
            };
            let written_by = record.rerun.as_ref().map_or(0, |r| r.layout);
            kept = match self.input_for(&written, written_by, &entry) {
                Ok(input) => input,
                Err(why) => return self.fail(id, record, why).await,
            };
            &kept[..]
        } else {
            if let Some(rerun) = record.rerun.as_mut() {
                *rerun = super::rerun::Rerun {
                    attempt: 1,
                    input: input.to_vec(),
                    layout: entry.layout.hash,
                };
            }
            input
        };
        let outcome = guarded(|| (entry.drive)(Op::Start(input)));
        record.run += 1;
        record.cancel_delivered = false;
        record.new_events.push(crate::history::EventKind::Started {
            workflow: record.workflow.clone(),
            run: record.run,
            version: record.version,
        });
        let old_deadline = record.run_deadline_ms;
        record.run_deadline_ms = record
            .run_timeout_ms
            .map(|t| clock_ms(&*self.clock).saturating_add(t));
        self.apply(record, outcome, &entry);
        let mut batch = Batch::default();
        if let Some(timer) = rerun_timer {
            batch.delete(timer);
        }
        if let Some(old) = old_deadline {
            // the old run's deadline leaves the timer index with it
            batch.delete(crate::store::keys::timer(old, id));
        }
        let timer = super::transition::timer_writes(id, record, &mut batch);
        self.save_with(id, record, batch)
            .await
            .map_err(Halt::Store)?;
        if timer {
            self.timers.notify_one();
        }
        Ok(())
    }

    /// This engine as an `Arc`, for spawning from a borrowed engine.
    pub(super) fn me(&self) -> Option<Arc<Engine>> {
        self.this.get().and_then(std::sync::Weak::upgrade)
    }
}

/// The id of the child a workflow awaits at `step` (as branch `branch` of
/// a select): the one its call names, else `<parent>/<step>` (a select's
/// branch: `<parent>/<step>/<branch>`).
pub(super) fn child_id(id: &str, step: u64, branch: Option<usize>, named: Option<&str>) -> String {
    match (named, branch) {
        (Some(named), _) => named.to_owned(),
        (None, None) => format!("{id}/{step}"),
        (None, Some(i)) => format!("{id}/{step}/{i}"),
    }
}
