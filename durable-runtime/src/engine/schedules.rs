//! The schedule service: starts the runs of stored schedules when their
//! times come, by their overlap and catch-up policies.
//!
//! Every change to a schedule (its progress, the runs it starts, the
//! cancel or terminate requests its overlap policy sends) is one atomic
//! batch, and a run's instance id is derived from its nominal time: after a
//! crash the schedule continues from its last durable progress, and a run
//! is never started twice nor lost.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Engine, InstanceRecord, WorkflowEntry};
use crate::clock::now_ms as clock_ms;
use crate::codec;
use crate::schedule::{
    Overlap, RECENT, Schedule, ScheduleDescription, ScheduleError, ScheduleEvent,
    ScheduleEventKind, SkipReason, Trigger, run_id,
};
use crate::store::{Batch, StoreError, keys};

/// A schedule as stored under `s` + id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleRecord {
    pub(crate) schedule: Schedule,
    pub(crate) workflow: String,
    /// The encoded input every run gets.
    pub(crate) input: Vec<u8>,
    pub(crate) paused: bool,
    pub(crate) note: String,
    /// The next calendar time not yet acted on; `None` once exhausted.
    pub(crate) next_ms: Option<u64>,
    /// Calendar times acted on (started or buffered), for `max_runs`.
    pub(crate) calendar_runs: u64,
    /// Runs started, all triggers.
    pub(crate) runs: u64,
    /// Runs started and not seen ended.
    pub(crate) running: Vec<String>,
    /// Runs waiting for the running ones to end: nominal time and trigger.
    pub(crate) buffered: VecDeque<(u64, Trigger)>,
    pub(crate) recent: VecDeque<ScheduleEvent>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
}

impl ScheduleRecord {
    pub(crate) fn new(schedule: Schedule, workflow: String, input: Vec<u8>, now: u64) -> Self {
        let mut record = ScheduleRecord {
            next_ms: schedule.next_after(now.saturating_sub(1)),
            schedule,
            workflow,
            input,
            paused: false,
            note: String::new(),
            calendar_runs: 0,
            runs: 0,
            running: Vec::new(),
            buffered: VecDeque::new(),
            recent: VecDeque::new(),
            created_ms: now,
            updated_ms: now,
        };
        record.event(now, ScheduleEventKind::Created);
        record
    }

    /// Records an event; consecutive skips for one reason merge.
    pub(crate) fn event(&mut self, at_ms: u64, kind: ScheduleEventKind) {
        self.updated_ms = at_ms;
        if let ScheduleEventKind::Skipped {
            last_ms,
            count,
            reason,
            ..
        } = &kind
            && let Some(ScheduleEvent {
                at_ms: last_at,
                kind:
                    ScheduleEventKind::Skipped {
                        last_ms: prev_last,
                        count: prev_count,
                        reason: prev_reason,
                        ..
                    },
            }) = self.recent.back_mut()
            && prev_reason == reason
        {
            *prev_last = *last_ms;
            *prev_count += count;
            *last_at = at_ms;
            return;
        }
        self.recent.push_back(ScheduleEvent { at_ms, kind });
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    fn skip(&mut self, now: u64, first_ms: u64, last_ms: u64, count: u64, reason: SkipReason) {
        self.event(
            now,
            ScheduleEventKind::Skipped {
                first_ms,
                last_ms,
                count,
                reason,
            },
        );
    }

    /// Skips the calendar times from the next one through `upto` (counted
    /// up to 1,000, then by their bounds), as one event.
    pub(crate) fn skip_through(&mut self, now: u64, upto: u64, reason: SkipReason) {
        let Some(first) = self.next_ms.filter(|t| *t <= upto) else {
            return;
        };
        let (mut last, mut count) = (first, 1);
        while count < 1000 {
            match self.schedule.next_after(last) {
                Some(t) if t <= upto => (last, count) = (t, count + 1),
                _ => break,
            }
        }
        self.skip(now, first, last, count, reason);
        let next = self.following(upto);
        self.set_next(now, next);
    }

    /// Moves on to calendar time `next`; records when none is left.
    pub(crate) fn set_next(&mut self, now: u64, next: Option<u64>) {
        if next.is_none() && self.next_ms.is_some() {
            self.event(now, ScheduleEventKind::Exhausted);
        }
        self.next_ms = next;
    }

    /// The next calendar time after `after`, unless the run limit is reached.
    pub(crate) fn following(&self, after: u64) -> Option<u64> {
        match self.schedule.max_runs {
            Some(max) if self.calendar_runs >= max => None,
            _ => self.schedule.next_after(after),
        }
    }

    pub(crate) fn describe(&self, id: &str, entry: Option<WorkflowEntry>) -> ScheduleDescription {
        let mut next_ms = Vec::new();
        let mut at = self.next_ms;
        let mut left = self
            .schedule
            .max_runs
            .map_or(5, |max| max.saturating_sub(self.calendar_runs).min(5));
        while let Some(t) = at
            && left > 0
        {
            next_ms.push(t);
            left -= 1;
            at = self.schedule.next_after(t);
        }
        ScheduleDescription {
            id: id.to_owned(),
            workflow: self.workflow.clone(),
            input: entry.and_then(|e| (e.input_to_json)(&self.input).ok()),
            spec: self.schedule.describe(),
            schedule: self.schedule.clone(),
            overlap: self.schedule.overlap,
            catchup_window_ms: self.schedule.catchup_window_ms,
            paused: self.paused,
            note: self.note.clone(),
            runs: self.runs,
            running: self.running.clone(),
            buffered_ms: self.buffered.iter().map(|(t, _)| *t).collect(),
            next_ms,
            recent: self.recent.iter().cloned().collect(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        }
    }
}

/// What one pass over a schedule writes and starts.
#[derive(Default)]
struct Pass {
    batch: Batch,
    /// Each with the claim taken before the commit that creates it.
    started: Vec<(String, InstanceRecord, Option<super::tasks::Creating>)>,
    controls: Vec<String>,
    timer: bool,
}

/// A run asked for by hand: trigger now or backfill.
pub(crate) struct RunRequest {
    pub(crate) nominal_ms: u64,
    pub(crate) trigger: Trigger,
    pub(crate) overlap: Overlap,
}

impl Engine {
    pub(crate) async fn schedule_service(self: Arc<Self>) {
        self.serve_due("schedules", &self.schedule_wake, || self.tick_schedules())
            .await;
    }

    /// Brings every schedule up to now; when the next one is due.
    async fn tick_schedules(self: &Arc<Self>) -> Result<Option<u64>, StoreError> {
        let _one_at_a_time = self.schedule_lock.lock().await;
        let mut next: Option<u64> = None;
        for (key, bytes) in self.scan_prefix(&[keys::SCHEDULE]).await? {
            let id = keys::schedule_id(&key);
            let record = match codec::decode::<ScheduleRecord>(&bytes) {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(schedule = %id, error = %e, "schedule does not decode; left alone");
                    continue;
                }
            };
            let due = match self.advance(&id, record, Some(bytes), Vec::new()).await {
                Ok(due) => due,
                // changed meanwhile (another process): look again soon
                Err(ScheduleError::Store(StoreError::Conflict { .. })) => {
                    Some(clock_ms(&*self.clock))
                }
                Err(ScheduleError::NotRegistered { workflow }) => {
                    tracing::warn!(schedule = %id, workflow = %workflow, "schedule waits: its workflow is not registered");
                    None
                }
                Err(ScheduleError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::error!(schedule = %id, error = %e, "schedule pass failed");
                    None
                }
            };
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(next)
    }

    /// Loads schedule `id` (and its stored bytes, for a conditional write).
    pub(crate) async fn load_schedule(
        &self,
        id: &str,
    ) -> Result<(ScheduleRecord, Vec<u8>), ScheduleError> {
        let bytes = self
            .get(&keys::schedule(id))
            .await?
            .ok_or_else(|| ScheduleError::NotFound { id: id.to_owned() })?;
        Ok((codec::decode(&bytes)?, bytes))
    }

    /// Applies `requests`, starts buffered runs whose turn came and calendar
    /// runs that are due, and saves the schedule, all in one batch written
    /// only if the stored schedule is still `old`. When it is due next.
    pub(crate) async fn advance(
        self: &Arc<Self>,
        id: &str,
        mut record: ScheduleRecord,
        old: Option<Vec<u8>>,
        requests: Vec<RunRequest>,
    ) -> Result<Option<u64>, ScheduleError> {
        // a tool without the workflow's code can still pause or delete
        let entry = self.workflows.newest(&record.workflow);
        let now = clock_ms(&*self.clock);
        let mut pass = Pass::default();

        // runs that ended no longer block
        let mut still = Vec::new();
        for run in std::mem::take(&mut record.running) {
            match self.load(&run).await? {
                Some(Ok(r)) if r.status.is_terminal() => {}
                None => {}
                _ => still.push(run),
            }
        }
        record.running = still;

        for request in requests {
            self.act(&mut pass, id, &mut record, entry, &request, now)
                .await?;
        }
        self.start_buffered(&mut pass, id, &mut record, entry, now)
            .await?;

        let window = record.schedule.catchup_window_ms;
        while let Some(nominal) = record.next_ms {
            if nominal.saturating_add(record.schedule.jitter_of(id, nominal)) > now {
                break;
            }
            if record.paused {
                record.skip_through(now, now, SkipReason::Paused);
            } else if now - nominal > window {
                record.skip_through(now, now - window - 1, SkipReason::CatchupWindow);
            } else {
                record.calendar_runs += 1;
                let request = RunRequest {
                    nominal_ms: nominal,
                    trigger: Trigger::Calendar,
                    overlap: record.schedule.overlap,
                };
                self.act(&mut pass, id, &mut record, entry, &request, now)
                    .await?;
                let next = record.following(nominal);
                record.set_next(now, next);
            }
        }

        let bytes = codec::encode(&record)?;
        if old.as_ref() != Some(&bytes) {
            let key = keys::schedule(id);
            pass.batch.expect(key.clone(), old).put(key, bytes);
            self.store.commit(pass.batch).await?;
            if pass.timer {
                self.timers.notify_one();
            }
            for run in pass.controls {
                self.control_requested(&run).await?;
            }
            for (run, r, creating) in pass.started {
                self.metrics.started(self.workflows.label(&r.workflow));
                if r.status.is_terminal() {
                    self.wake(&run);
                    continue;
                }
                self.owned_now(&run);
                if let (Some(entry), Some(creating)) = (entry, creating) {
                    creating.spawn(r, entry);
                }
            }
        }
        Ok(record
            .next_ms
            .filter(|_| !record.paused)
            .map(|t| t.saturating_add(record.schedule.jitter_of(id, t))))
    }

    /// One run due (calendar, trigger or backfill), by the overlap policy.
    async fn act(
        &self,
        pass: &mut Pass,
        id: &str,
        record: &mut ScheduleRecord,
        entry: Option<WorkflowEntry>,
        request: &RunRequest,
        now: u64,
    ) -> Result<(), ScheduleError> {
        let nominal = request.nominal_ms;
        if record.running.is_empty() {
            return self
                .start_run(pass, id, record, entry, nominal, request.trigger, now)
                .await;
        }
        match request.overlap {
            Overlap::AllowAll => {
                return self
                    .start_run(pass, id, record, entry, nominal, request.trigger, now)
                    .await;
            }
            Overlap::Skip => record.skip(now, nominal, nominal, 1, SkipReason::Overlap),
            Overlap::BufferOne if !record.buffered.is_empty() => {
                record.skip(now, nominal, nominal, 1, SkipReason::Overlap);
            }
            Overlap::BufferOne | Overlap::BufferAll => {
                record.buffered.push_back((nominal, request.trigger));
                record.event(
                    now,
                    ScheduleEventKind::Buffered {
                        nominal_ms: nominal,
                    },
                );
            }
            Overlap::CancelOther => {
                for run in record.running.clone() {
                    if !pass.controls.contains(&run) {
                        pass.batch
                            .put(keys::control(keys::CANCEL, &run), Vec::new());
                        pass.controls.push(run.clone());
                        record.event(now, ScheduleEventKind::CancelRequested { workflow_id: run });
                    }
                }
                // only the newest waits for the cancelled one to end
                while let Some((t, _)) = record.buffered.pop_front() {
                    record.skip(now, t, t, 1, SkipReason::Overlap);
                }
                record.buffered.push_back((nominal, request.trigger));
                record.event(
                    now,
                    ScheduleEventKind::Buffered {
                        nominal_ms: nominal,
                    },
                );
            }
            Overlap::TerminateOther => {
                let reason = codec::encode(&format!("schedule `{id}`: a newer run started"))?;
                for run in std::mem::take(&mut record.running) {
                    pass.batch
                        .put(keys::control(keys::TERMINATE, &run), reason.clone());
                    pass.controls.push(run.clone());
                    record.event(
                        now,
                        ScheduleEventKind::TerminateRequested { workflow_id: run },
                    );
                }
                return self
                    .start_run(pass, id, record, entry, nominal, request.trigger, now)
                    .await;
            }
        }
        Ok(())
    }

    /// Starts buffered runs while nothing runs.
    async fn start_buffered(
        &self,
        pass: &mut Pass,
        id: &str,
        record: &mut ScheduleRecord,
        entry: Option<WorkflowEntry>,
        now: u64,
    ) -> Result<(), ScheduleError> {
        while record.running.is_empty() && entry.is_some() {
            let Some((nominal, trigger)) = record.buffered.pop_front() else {
                break;
            };
            self.start_run(pass, id, record, entry, nominal, trigger, now)
                .await?;
        }
        Ok(())
    }

    /// Adds the creation of the run at `nominal` to the pass.
    #[allow(clippy::too_many_arguments)]
    async fn start_run(
        &self,
        pass: &mut Pass,
        id: &str,
        record: &mut ScheduleRecord,
        entry: Option<WorkflowEntry>,
        nominal: u64,
        trigger: Trigger,
        now: u64,
    ) -> Result<(), ScheduleError> {
        let entry = entry.ok_or_else(|| ScheduleError::NotRegistered {
            workflow: record.workflow.clone(),
        })?;
        let run = run_id(id, nominal);
        if pass.started.iter().any(|(r, ..)| *r == run) || self.load(&run).await?.is_some() {
            record.skip(now, nominal, nominal, 1, SkipReason::AlreadyStarted);
            return Ok(());
        }
        let mut instance =
            self.first_record(&record.workflow, entry, &record.input, None, None, None);
        // the run knows its nominal time (`scheduled()`), and lists can
        // find the runs of one schedule by it
        instance.scheduled = Some(crate::schedule::ScheduledBy {
            schedule: id.to_owned(),
            nominal_ms: nominal,
            trigger,
        });
        instance.search_attributes.extend([
            (
                crate::schedule::SCHEDULE_ID.to_owned(),
                crate::SearchValue::Str(id.to_owned()),
            ),
            (
                crate::schedule::SCHEDULED_START_MS.to_owned(),
                crate::SearchValue::Int(i64::try_from(nominal).unwrap_or(i64::MAX)),
            ),
        ]);
        let creating = self.me().map(|me| me.claim_for_create(&run));
        pass.timer |= self
            .stage_create(&run, &mut instance, &mut pass.batch)
            .await?;
        if !instance.status.is_terminal() {
            record.running.push(run.clone());
        }
        record.runs += 1;
        record.event(
            now,
            ScheduleEventKind::Started {
                nominal_ms: nominal,
                workflow_id: run.clone(),
                trigger,
            },
        );
        pass.started.push((run, instance, creating));
        Ok(())
    }
}
