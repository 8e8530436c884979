//! The schedules of a runtime as its users see them: the handle that
//! creates, changes and inspects them ([`Runtime::schedules`](crate::Runtime::schedules)).

use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::{now_ms as clock_ms, to_ms};
use crate::engine::{Engine, RunRequest, ScheduleRecord};
use crate::schedule::{
    Overlap, Schedule, ScheduleDescription, ScheduleError, ScheduleEventKind, SkipReason, Trigger,
};
use crate::store::{Batch, StoreError, keys};
use crate::workflow::{Workflow, WorkflowCall};

/// ([`Runtime::schedules`](crate::Runtime::schedules)).
///
/// Every change is durable when the call returns; runs that came due are
/// started by the same atomic write.
pub struct Schedules<'a> {
    pub(crate) engine: &'a Arc<Engine>,
}

impl std::fmt::Debug for Schedules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedules").finish_non_exhaustive()
    }
}

impl Schedules<'_> {
    /// Creates schedule `id`, which starts `call` (the workflow and its
    /// input) at the times `schedule` names. Runs get the instance id
    /// `<id>@<nominal time, RFC 3339 UTC>`.
    ///
    /// # Errors
    /// [`ScheduleError::AlreadyExists`] if `id` is taken;
    /// [`ScheduleError::NotRegistered`] if `W` is not registered.
    pub async fn create<W: Workflow>(
        &self,
        id: &str,
        schedule: Schedule,
        call: WorkflowCall<W>,
    ) -> Result<ScheduleDescription, ScheduleError> {
        if self
            .engine
            .workflows
            .exact(W::NAME, W::FINGERPRINT, W::VERSION)
            .is_none()
        {
            return Err(ScheduleError::NotRegistered {
                workflow: W::NAME.to_owned(),
            });
        }
        let input = crate::codec::encode(&call.input)?;
        self.create_encoded(id, schedule, W::NAME, input).await
    }

    /// Creates schedule `id` for a workflow named at run time with a JSON
    /// input (what the CLI and the HTTP API use); runs start on the newest
    /// registered version.
    ///
    /// # Errors
    /// As [`Schedules::create`], and [`ScheduleError::Input`] if `input`
    /// does not fit the workflow's parameter.
    pub async fn create_json(
        &self,
        id: &str,
        schedule: Schedule,
        workflow: &str,
        input: serde_json::Value,
    ) -> Result<ScheduleDescription, ScheduleError> {
        let entry =
            self.engine
                .workflows
                .newest(workflow)
                .ok_or_else(|| ScheduleError::NotRegistered {
                    workflow: workflow.to_owned(),
                })?;
        let input = (entry.input_from_json)(input).map_err(|reason| ScheduleError::Input {
            workflow: workflow.to_owned(),
            reason,
        })?;
        self.create_encoded(id, schedule, workflow, input).await
    }

    async fn create_encoded(
        &self,
        id: &str,
        schedule: Schedule,
        workflow: &str,
        input: Vec<u8>,
    ) -> Result<ScheduleDescription, ScheduleError> {
        if id.is_empty() || id.contains('\0') {
            return Err(ScheduleError::Invalid(format!(
                "schedule id `{}` must be non-empty and free of NUL bytes",
                id.escape_debug()
            )));
        }
        let _guard = self.engine.schedule_lock.lock().await;
        if self.engine.get(&keys::schedule(id)).await?.is_some() {
            return Err(ScheduleError::AlreadyExists { id: id.to_owned() });
        }
        let now = clock_ms(&*self.engine.clock);
        let record = ScheduleRecord::new(schedule, workflow.to_owned(), input, now);
        self.save(id, record, None, Vec::new()).await
    }

    /// Replaces the timing and policies of schedule `id` (its workflow and
    /// input stay); the next run is computed from now.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id.
    pub async fn update(
        &self,
        id: &str,
        schedule: Schedule,
    ) -> Result<ScheduleDescription, ScheduleError> {
        self.change(id, Vec::new(), |record, now| {
            record.schedule = schedule;
            let next = record.following(now.saturating_sub(1));
            record.set_next(now, next);
            record.event(now, ScheduleEventKind::Updated);
        })
        .await
    }

    /// Pauses schedule `id`: calendar times that pass while it is paused
    /// are skipped (and recorded as skipped). Runs already started go on.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id.
    pub async fn pause(&self, id: &str, note: &str) -> Result<ScheduleDescription, ScheduleError> {
        let note = note.to_owned();
        self.change(id, Vec::new(), move |record, now| {
            record.paused = true;
            record.note.clone_from(&note);
            record.event(now, ScheduleEventKind::Paused { note });
        })
        .await
    }

    /// Unpauses schedule `id`: the next calendar time after now runs.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id.
    pub async fn unpause(
        &self,
        id: &str,
        note: &str,
    ) -> Result<ScheduleDescription, ScheduleError> {
        let note = note.to_owned();
        self.change(id, Vec::new(), move |record, now| {
            if record.paused {
                record.skip_through(now, now, SkipReason::Paused);
            }
            record.paused = false;
            record.note.clone_from(&note);
            record.event(now, ScheduleEventKind::Unpaused { note });
        })
        .await
    }

    /// Starts a run now (nominal time = now), by the schedule's overlap
    /// policy; works while paused too.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id.
    pub async fn trigger(&self, id: &str) -> Result<ScheduleDescription, ScheduleError> {
        let now = clock_ms(&*self.engine.clock);
        let (record, _) = self.engine.load_schedule(id).await?;
        let request = RunRequest {
            nominal_ms: now,
            trigger: Trigger::Manual,
            overlap: record.schedule.overlap,
        };
        self.change(id, vec![request], |_, _| {}).await
    }

    /// Runs every calendar time in `from..=to` (at most 10,000), by
    /// `overlap` (`Overlap::AllowAll` starts them all at once,
    /// `Overlap::BufferAll` one after another). Times that already ran are
    /// skipped, so a backfill can be repeated after a crash.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id;
    /// [`ScheduleError::Invalid`] for an empty or too large range.
    pub async fn backfill(
        &self,
        id: &str,
        from: SystemTime,
        to: SystemTime,
        overlap: Overlap,
    ) -> Result<ScheduleDescription, ScheduleError> {
        let (from, to) = (to_ms(from), to_ms(to));
        if from > to {
            return Err(ScheduleError::Invalid(
                "a backfill range must not end before it starts".into(),
            ));
        }
        let (record, _) = self.engine.load_schedule(id).await?;
        let mut requests = Vec::new();
        let mut at = record.schedule.next_after(from.saturating_sub(1));
        while let Some(t) = at.filter(|t| *t <= to) {
            if requests.len() == 10_000 {
                return Err(ScheduleError::Invalid(
                    "a backfill may cover at most 10,000 runs; split the range".into(),
                ));
            }
            requests.push(RunRequest {
                nominal_ms: t,
                trigger: Trigger::Backfill,
                overlap,
            });
            at = record.schedule.next_after(t);
        }
        self.change(id, requests, |_, _| {}).await
    }

    /// Deletes schedule `id`; runs it started go on.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id.
    pub async fn delete(&self, id: &str) -> Result<(), ScheduleError> {
        let _guard = self.engine.schedule_lock.lock().await;
        let (_, old) = self.engine.load_schedule(id).await?;
        let key = keys::schedule(id);
        let mut batch = Batch::default();
        batch.expect(key.clone(), Some(old)).delete(key);
        self.engine.store.commit(batch).await?;
        self.engine.schedule_wake.notify_one();
        Ok(())
    }

    /// Schedule `id`: definition, progress, next and recent runs.
    ///
    /// # Errors
    /// [`ScheduleError::NotFound`] for an unknown id.
    pub fn describe(&self, id: &str) -> Result<ScheduleDescription, ScheduleError> {
        crate::store::blocking(|| {
            let (record, _) = crate::store::now(self.engine.load_schedule(id))?;
            Ok(record.describe(id, self.engine.workflows.newest(&record.workflow)))
        })
    }

    /// Every schedule, by id.
    ///
    /// # Errors
    /// [`ScheduleError::Store`] if the store fails, [`ScheduleError::Codec`]
    /// if a stored schedule does not decode.
    pub fn list(&self) -> Result<Vec<ScheduleDescription>, ScheduleError> {
        crate::store::blocking(|| {
            let mut out = Vec::new();
            for (key, bytes) in self.engine.store.scan_prefix(&[keys::SCHEDULE])? {
                let record: ScheduleRecord = crate::codec::decode(&bytes)?;
                let id = keys::schedule_id(&key);
                out.push(record.describe(&id, self.engine.workflows.newest(&record.workflow)));
            }
            Ok(out)
        })
    }

    /// Loads `id`, applies `edit`, then the requests and whatever came due,
    /// and saves it all in one batch.
    async fn change(
        &self,
        id: &str,
        requests: Vec<RunRequest>,
        edit: impl FnOnce(&mut ScheduleRecord, u64),
    ) -> Result<ScheduleDescription, ScheduleError> {
        let _guard = self.engine.schedule_lock.lock().await;
        let (mut record, old) = self.engine.load_schedule(id).await?;
        edit(&mut record, clock_ms(&*self.engine.clock));
        self.save(id, record, Some(old), requests).await
    }

    async fn save(
        &self,
        id: &str,
        record: ScheduleRecord,
        old: Option<Vec<u8>>,
        requests: Vec<RunRequest>,
    ) -> Result<ScheduleDescription, ScheduleError> {
        let created = old.is_none();
        match self.engine.advance(id, record, old, requests).await {
            Err(ScheduleError::Store(StoreError::Conflict { .. })) if created => {
                return Err(ScheduleError::AlreadyExists { id: id.to_owned() });
            }
            other => {
                other?;
            }
        }
        // the service recomputes when the next schedule is due
        self.engine.schedule_wake.notify_one();
        let (record, _) = self.engine.load_schedule(id).await?;
        Ok(record.describe(id, self.engine.workflows.newest(&record.workflow)))
    }
}
