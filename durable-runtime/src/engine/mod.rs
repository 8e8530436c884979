//! The step loop: advance an instance, checkpoint, carry out its command.
//!
//! Commit protocol: a transition (new state + the command it awaits + the
//! step counter) is one record written in one atomic batch, and the command
//! starts only after that batch is durable. An activity's result is applied
//! to the state and the successor state is checkpointed before anything else
//! happens, so a recorded result is never recomputed. A crash between the
//! activity's end and that checkpoint re-runs the activity (at least once).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

mod cluster;
pub(crate) use cluster::{LeaseRecord, Member};
mod composite;
mod layouts;
mod queues;
mod retention;
mod schedules;
pub(crate) use schedules::{RunRequest, ScheduleRecord};
mod signals;
pub(crate) use signals::decode_signal;
mod attempts;
mod record;
mod recovery;
mod registry;
mod step;
mod timers;
mod versions;
pub use record::Status;
pub(crate) use record::{InstanceRecord, ScheduledBy, now_ms};
pub(crate) use registry::{MigrationEntry, Registry, WorkflowEntry};

use crate::activity::{ActivityContext, ActivityError, Failure};
use crate::clock::{Clock, now_ms as clock_ms};
use crate::codec::{self, CodecError};
use crate::command::{Cancelled, Executor, ParentClose, Request};
use crate::error::ResumeError;
use crate::store::{Batch, Store, StoreError, keys};
use crate::workflow::{Op, Outcome, StepError, VariantInfo};

/// Counters of what the engine did since it opened.
pub(crate) struct Metrics {
    /// Activity attempt durations.
    pub(crate) attempt_seconds: crate::metrics::Histogram,
    /// From a transition's save to its durable acknowledgement.
    pub(crate) checkpoint_seconds: crate::metrics::Histogram,
    pub(crate) transitions: std::sync::atomic::AtomicU64,
    pub(crate) attempts: std::sync::atomic::AtomicU64,
    pub(crate) attempt_failures: std::sync::atomic::AtomicU64,
    pub(crate) attempt_micros: std::sync::atomic::AtomicU64,
    /// Instances this process took over from lapsed workers.
    pub(crate) taken_over: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            attempt_seconds: crate::metrics::Histogram::new(crate::metrics::SECONDS),
            checkpoint_seconds: crate::metrics::Histogram::new(crate::metrics::SECONDS),
            transitions: Default::default(),
            attempts: Default::default(),
            attempt_failures: Default::default(),
            attempt_micros: Default::default(),
            taken_over: Default::default(),
        }
    }
}

/// The engine shared by the runtime and every instance task.
pub(crate) struct Engine {
    /// The size limits (`Builder::limits`).
    pub(crate) limits: crate::Limits,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) workflows: Registry,
    pub(crate) activity_slots: Semaphore,
    pub(crate) waiters: Mutex<HashMap<String, Arc<Notify>>>,
    pub(crate) creating: Mutex<std::collections::HashSet<String>>,
    pub(crate) tasks: Mutex<tokio::task::JoinSet<()>>,
    pub(crate) parked: Mutex<Vec<ResumeError>>,
    /// Layouts read from the store, by hash.
    pub(crate) layouts: Mutex<HashMap<u64, Arc<crate::layout::WorkflowLayout>>>,
    /// Layouts of registered versions known to be in the store.
    pub(crate) layouts_stored: std::sync::RwLock<std::collections::HashSet<u64>>,
    /// Signal payload layouts known to be in the store.
    pub(crate) value_layouts: Mutex<std::collections::HashSet<u64>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Instances with a task in this process; `true`: woken while running,
    /// so look for work again before the task ends.
    pub(crate) running: Mutex<HashMap<String, bool>>,
    /// Wakes the timer service when a transition schedules a timer.
    pub(crate) timers: Notify,
    /// Instances with a cancel or terminate request not yet consumed.
    pub(crate) controls: Mutex<std::collections::HashSet<String>>,
    /// Interrupts a running activity attempt of an instance.
    pub(crate) interrupts: Mutex<HashMap<String, Arc<Notify>>>,
    /// Counters for `/metrics`.
    pub(crate) metrics: Metrics,
    /// Set by `Runtime::shutdown`: no new instance tasks.
    pub(crate) closing: std::sync::atomic::AtomicBool,
    /// A weak reference to this engine, for spawning from `&self`.
    pub(crate) this: std::sync::OnceLock<std::sync::Weak<Engine>>,
    /// Orders buffered signals; starts above every stored one.
    pub(crate) signal_seq: std::sync::atomic::AtomicU64,
    /// Instances stopped in this process because the store failed (disk
    /// full, I/O error): their last durable checkpoint stands, and they
    /// resume on the next open.
    pub(crate) halted: Mutex<HashMap<String, StoreError>>,
    /// Serializes changes to schedules in this process.
    pub(crate) schedule_lock: tokio::sync::Mutex<()>,
    /// Wakes the schedule service: a schedule changed or a run ended.
    pub(crate) schedule_wake: Notify,
    /// This process's membership of the workers sharing the store (a
    /// shared store opened to run instances); `None` otherwise.
    pub(crate) member: Option<Member>,
    /// Tasks of named queues this process has claimed and not finished;
    /// at most `activity_limit`.
    pub(crate) queue_claims: std::sync::atomic::AtomicUsize,
    /// `max_concurrent_activities`.
    pub(crate) activity_limit: usize,
    /// Keys of queued results instances have taken, removed with their
    /// next checkpoint.
    pub(crate) taken_results: Mutex<HashMap<String, Vec<Vec<u8>>>>,
    /// Whether a woken instance is checked against the code (and migrated
    /// or parked) first: set when the runtime resumes instances, since open
    /// leaves sleepers unread. A runtime that resumes nothing (tools) runs
    /// only what fits as stored, and changes nothing else.
    pub(crate) resolve_on_wake: bool,
}

/// Runs generated code, turning a panic into an error message.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Instance records read per page when a store is opened.
const RECOVER_PAGE: usize = 1024;

/// A command's encoded output and the wake-source key it used up.
type Ready = (Vec<u8>, Option<Vec<u8>>);

/// Why an instance stopped running in this process.
enum Halt {
    /// It reached a terminal status (already committed).
    Finished,
    /// It waits for a timer or a signal: no task, no memory until woken.
    Waiting,
    /// A cancel or terminate request arrived during an activity attempt.
    Interrupted,
    /// Storage failed: stop without acknowledging anything more.
    Store(StoreError),
    /// It was parked (already committed): nothing more runs here.
    Parked,
    /// A signal's payload cannot be delivered as the awaited type (its
    /// layout differs in a way it cannot cross): the instance is parked.
    Payload(Vec<String>),
}

impl Engine {
    pub(crate) fn load(
        &self,
        id: &str,
    ) -> Result<Option<Result<InstanceRecord, CodecError>>, StoreError> {
        Ok(self
            .store
            .get(&keys::instance(id))?
            .map(|bytes| InstanceRecord::decode(&bytes)))
    }

    pub(crate) async fn save(
        &self,
        id: &str,
        record: &mut InstanceRecord,
    ) -> Result<(), StoreError> {
        self.save_with(id, record, Batch::default()).await
    }

    /// Appends the record's new history events to `batch`.
    pub(crate) fn history(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        batch: &mut Batch,
    ) -> Result<(), StoreError> {
        let at_ms = clock_ms(&*self.clock);
        let first = record.events + 1;
        let events: Vec<crate::history::HistoryEvent> = record
            .new_events
            .drain(..)
            .zip(first..)
            .map(|(kind, seq)| crate::history::HistoryEvent { seq, at_ms, kind })
            .collect();
        record.events += events.len() as u64;
        // past every stored event of this id: history keys are written only
        // here, with the record's count, in the record's own batch. The
        // events of one checkpoint share one key (fewer keys: less of
        // sled's per-page memory, fewer writes per transition).
        let (key, bytes) = match events.as_slice() {
            [] => return Ok(()),
            [one] => (keys::history(id, first), codec::encode(one)),
            many => (keys::history_batch(id, first), codec::encode(many)),
        };
        let bytes = bytes.map_err(|e| StoreError::Codec(e.to_string()))?;
        batch.put_new(key, bytes);
        Ok(())
    }

    /// Saves `record` together with `extra` writes (and its new history
    /// events), in one atomic batch.
    async fn save_with(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        mut batch: Batch,
    ) -> Result<(), StoreError> {
        self.fence(id, record, &mut batch)?;
        self.drop_taken_results(id, &mut batch);
        if record.status.is_terminal() {
            // an ended instance has no deadline left to enforce: its timer
            // entries go with the save that ends it (they were kept forever)
            for deadline in [record.deadline_ms, record.run_deadline_ms]
                .into_iter()
                .flatten()
            {
                batch.delete(keys::timer(deadline, id));
            }
        }
        self.history(id, record, &mut batch)?;
        record.reindex(id, &mut batch);
        let layout = self.stage_layout(record.layout, &mut batch)?;
        let bytes = codec::encode(&*record).map_err(|e| StoreError::Codec(e.to_string()))?;
        batch.put(keys::instance(id), bytes);
        self.store.commit(batch).await?;
        if layout {
            self.layout_stored(record.layout);
        }
        if record.status.is_terminal()
            && let Some(m) = &self.member
        {
            m.remove(id);
        }
        Ok(())
    }

    /// Saves the first record of an instance, only if the id is still free.
    pub(crate) async fn create(
        &self,
        id: &str,
        record: &mut InstanceRecord,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        let timer = self.stage_create(id, record, &mut batch)?;
        self.store.commit(batch).await?;
        // the batch held the record's layout unless it was known stored
        self.layout_stored(record.layout);
        self.owned_now(id);
        if timer {
            self.timers.notify_one();
        }
        Ok(())
    }

    /// Adds the creation of instance `id` to `batch` (conditional on the id
    /// being free); whether it set a timer.
    pub(crate) fn stage_create(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        batch: &mut Batch,
    ) -> Result<bool, StoreError> {
        self.history(id, record, batch)?;
        record.reindex(id, batch);
        // until a save of it commits, every creation carries the layout
        self.stage_layout(record.layout, batch)?;
        let bytes = codec::encode(&*record).map_err(|e| StoreError::Codec(e.to_string()))?;
        let key = keys::instance(id);
        batch.expect(key.clone(), None).put(key, bytes);
        if !record.status.is_terminal() {
            self.stage_owner(id, batch);
        } else if self.store.shared() {
            batch.notify(format!("w{id}"));
        }
        Ok(Self::schedule(id, record, batch))
    }

    /// Adds the index entry of the timer `record` now waits for, if any, to
    /// the batch that checkpoints it; whether there was one.
    fn schedule(id: &str, record: &InstanceRecord, batch: &mut Batch) -> bool {
        let mut timers = Vec::new();
        if let Some(pending) = &record.pending {
            pending.timer_keys(id, &mut timers);
        }
        if !record.status.is_terminal() {
            for deadline in [record.deadline_ms, record.run_deadline_ms]
                .into_iter()
                .flatten()
            {
                timers.push(keys::timer(deadline, id));
            }
        }
        let any = !timers.is_empty();
        for key in timers {
            batch.put(key, Vec::new());
        }
        any
    }

    pub(crate) fn waiter(&self, id: &str) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().expect("waiters lock poisoned");
        waiters.entry(id.to_owned()).or_default().clone()
    }

    fn wake(&self, id: &str) {
        let notify = self
            .waiters
            .lock()
            .expect("waiters lock poisoned")
            .remove(id);
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// The first record of a new instance of `workflow`: its start segment
    /// run up to the first await (not yet saved).
    pub(crate) fn first_record(
        &self,
        workflow: &str,
        entry: WorkflowEntry,
        input: &[u8],
        parent: Option<String>,
        timeout: Option<std::time::Duration>,
        run_timeout: Option<std::time::Duration>,
    ) -> InstanceRecord {
        let now = now_ms();
        let now_clock = clock_ms(&*self.clock);
        let after = |t: std::time::Duration| now_clock.saturating_add(t.as_millis() as u64);
        let mut record =
            InstanceRecord {
                workflow: workflow.to_owned(),
                fingerprint: entry.fingerprint,
                layout: entry.layout.hash,
                version: entry.version,
                status: Status::Running,
                state: Vec::new(),
                variant: "Start".to_owned(),
                step: 0,
                pending: None,
                failed_attempts: 0,
                partial: Vec::new(),
                parent,
                run: 1,
                children: Vec::new(),
                deadline_ms: timeout.map(after),
                run_timeout_ms: run_timeout.map(|t| t.as_millis() as u64),
                run_deadline_ms: run_timeout.map(after),
                variant_fp: 0,
                events: 0,
                new_events: std::iter::once(crate::history::EventKind::Started {
                    workflow: workflow.to_owned(),
                    run: 1,
                    version: entry.version,
                })
                // an input JSON cannot express (a map with non-string keys) is not shown
                .chain((entry.input_to_json)(input).ok().map(|json| {
                    crate::history::EventKind::Input {
                        json: json.to_string(),
                    }
                }))
                .collect(),
                last_error: None,
                output: None,
                error: None,
                cancel_delivered: false,
                created_ms: now,
                updated_ms: now,
                indexed: Vec::new(),
                search_attributes: Vec::new(),
                scheduled: None,
                incarnation: InstanceRecord::new_incarnation(),
            };
        let outcome = guarded(|| (entry.drive)(Op::Start(input)));
        self.apply(&mut record, outcome, &entry);
        record.variant_fp = entry.variant_fp(&record.variant);
        record
    }

    /// Applies the outcome of the generated code to `record` (not yet saved).
    /// `now` (ms) resolves a relative timer to its due time.
    pub(crate) fn apply(
        &self,
        record: &mut InstanceRecord,
        outcome: Result<Result<Outcome, StepError>, String>,
        entry: &WorkflowEntry,
    ) {
        let now = clock_ms(&*self.clock);
        record.step += 1;
        record.failed_attempts = 0;
        record.partial.clear();
        record.last_error = None;
        record.updated_ms = now_ms();
        match outcome {
            Ok(Ok(Outcome::Await { state, .. })) if state.len() > self.limits.state_bytes => {
                record.status = Status::Failed;
                record.error = Some(crate::limits::over(
                    &format!("state after step {}", record.step),
                    state.len(),
                    self.limits.state_bytes,
                    "state_bytes",
                ));
                record.pending = None;
            }
            Ok(Ok(Outcome::Await {
                state,
                variant,
                mut request,
            })) => {
                request.resolve_timers(now);
                record.state = state;
                record.variant = variant.to_owned();
                record.pending = Some(request);
            }
            Ok(Ok(Outcome::Done(output))) => {
                // a workflow that returns `Err` failed (its typed output is kept)
                let failure = (entry.output_error)(&output);
                record.status = match (&failure, record.cancel_delivered) {
                    (_, true) => Status::Cancelled,
                    (Some(_), false) => Status::Failed,
                    (None, false) => Status::Completed,
                };
                if !record.cancel_delivered {
                    record.error = failure;
                }
                record.output = Some(output);
                record.state.clear();
                record.variant = "Finished".to_owned();
                record.pending = None;
            }
            Ok(Ok(
                Outcome::Executor(_)
                | Outcome::Json(_)
                | Outcome::Checked(_)
                | Outcome::Adopted(_)
                | Outcome::Traced,
            )) => {
                record.status = Status::Failed;
                record.error = Some("generated code answered a step with the wrong outcome".into());
                record.pending = None;
            }
            Ok(Err(e)) => {
                record.status = Status::Failed;
                record.error = Some(e.to_string());
                record.pending = None;
            }
            Err(panic) => {
                record.status = Status::Failed;
                record.error = Some(format!("workflow {panic}"));
                record.pending = None;
            }
        }
        let event = match record.status {
            Status::Running => {
                record
                    .pending
                    .as_ref()
                    .map(|p| crate::history::EventKind::Awaiting {
                        step: record.step,
                        variant: record.variant.clone(),
                        command: crate::history::describe(p),
                    })
            }
            status => Some(crate::history::EventKind::Finished {
                status,
                error: record.error.clone(),
            }),
        };
        record.new_events.extend(event);
    }

    /// Claims instance `id` for a task in this process: `false` if one runs
    /// already (it is told to look for work again) or the runtime is closing.
    fn claim(&self, id: &str) -> bool {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) || !self.runs_here(id) {
            return false;
        }
        let mut running = self.running.lock().expect("running lock poisoned");
        if let Some(rewake) = running.get_mut(id) {
            *rewake = true;
            return false;
        }
        running.insert(id.to_owned(), false);
        true
    }

    /// Spawns the task that drives instance `id` from `record`, unless one
    /// is running already (then that one looks for work again).
    pub(crate) fn spawn(
        self: &Arc<Self>,
        id: String,
        record: InstanceRecord,
        entry: WorkflowEntry,
    ) {
        if !self.claim(&id) {
            return;
        }
        let workflow = record.workflow.clone();
        self.spawn_task(&id, &workflow, self.clone().run(id.clone(), record, entry));
    }

    /// Adds an instance task (claimed by [`Engine::claim`]) to the task set.
    fn spawn_task(
        &self,
        id: &str,
        workflow: &str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut tasks = self.tasks.lock().expect("tasks lock poisoned");
        // reap finished tasks so the set does not grow without bound
        while tasks.try_join_next().is_some() {}
        // one span per instance task: every event inside carries the ids
        let span = tracing::info_span!("instance", id = %id, workflow = %workflow);
        tasks.spawn(tracing::Instrument::instrument(task, span));
    }

    /// The task of a claimed instance: drives it until it finishes, waits
    /// or storage fails, then releases the claim.
    async fn run(self: Arc<Self>, id: String, mut record: InstanceRecord, entry: WorkflowEntry) {
        let engine = self;
        loop {
            let halt = engine.drive(&id, &mut record, entry).await;
            if matches!(halt, Halt::Interrupted) {
                continue;
            }
            if matches!(halt, Halt::Waiting) {
                let mut running = engine.running.lock().expect("running lock poisoned");
                if running.get(&id) == Some(&true) {
                    // woken while deciding to wait: look again
                    running.insert(id.clone(), false);
                    continue;
                }
                running.remove(&id);
                return;
            }
            engine
                .running
                .lock()
                .expect("running lock poisoned")
                .remove(&id);
            match halt {
                Halt::Finished => {
                    engine.wake(&id);
                    // a schedule may wait for this run to end; schedules start
                    // runs as `<schedule>@<nominal time>`
                    // (`schedule::run_id`), so other ids need no look at them
                    if id.contains('@') {
                        engine.schedule_wake.notify_one();
                    }
                    for child in std::mem::take(&mut record.children) {
                        let engine = engine.clone();
                        // parent-close policy: cancel what is still running
                        tokio::spawn(async move {
                            let running = matches!(engine.load(&child), Ok(Some(Ok(r))) if !r.status.is_terminal());
                            if running
                                && let Err(e) = engine
                                    .request_control(&child, keys::CANCEL, Vec::new())
                                    .await
                            {
                                tracing::error!(child = %child, error = %e, "cannot cancel the child");
                            }
                        });
                    }
                    if let Some(parent) = &record.parent
                        && let Err(e) = engine.wake_instance(parent)
                    {
                        tracing::error!(instance = %id, parent = %parent, error = %e, "cannot wake the parent");
                    }
                }
                Halt::Store(e) if cluster::lost_ownership(&e, &id) => {
                    // another worker owns it now (or this one's lease may
                    // have lapsed): it resumes there from the store
                    tracing::info!(instance = %id, "instance no longer owned here");
                    if let Some(m) = &engine.member {
                        m.remove(&id);
                    }
                }
                Halt::Store(e) if engine.member.is_some() => {
                    // the database may come back: look again from the last
                    // checkpoint (an in-doubt commit is read back)
                    tracing::warn!(instance = %id, error = %e, "instance paused: store failed; retrying in 1 s");
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        // until the store answers again: an instance stopped
                        // for good here while the database was out of reach
                        // would answer `result()` with that old error even
                        // after another worker finished it
                        loop {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            if engine.closing.load(std::sync::atomic::Ordering::SeqCst) {
                                break;
                            }
                            match engine.wake_instance(&id) {
                                Ok(_) => break,
                                Err(e) => {
                                    tracing::warn!(instance = %id, error = %e, "instance still paused: store failed; retrying in 1 s");
                                }
                            }
                        }
                    });
                }
                Halt::Store(e) => engine.halt(&id, e),
                Halt::Parked | Halt::Payload(_) => engine.wake(&id),
                Halt::Waiting | Halt::Interrupted => {}
            }
            return;
        }
    }

    /// Stops instance `id` in this process because storage failed (its
    /// claim already released): its last durable checkpoint stands.
    fn halt(&self, id: &str, e: StoreError) {
        tracing::error!(instance = %id, error = %e, "instance stopped: store failed");
        self.halted
            .lock()
            .expect("halted lock poisoned")
            .insert(id.to_owned(), e);
        self.wake(id);
    }

    /// Wakes instance `id` if it waits for something that may have come
    /// (a due timer, a signal): loads it and spawns its task.
    pub(crate) fn wake_instance(self: &Arc<Self>, id: &str) -> Result<(), StoreError> {
        if !self.runs_here(id) {
            // another process runs it; the batch that changed it told that one
            return Ok(());
        }
        if let Some(rewake) = self
            .running
            .lock()
            .expect("running lock poisoned")
            .get_mut(id)
        {
            *rewake = true;
            return Ok(());
        }
        let record = match self.load(id)? {
            None => return Ok(()),
            Some(Ok(record)) => record,
            Some(Err(e)) => {
                // a sleeper is read for the first time when woken (see
                // `recover`): report it as open would have, once
                if self.resolve_on_wake {
                    self.park_report_once(ResumeError::Undecodable {
                        instance: id.to_owned(),
                        reason: e.to_string(),
                    });
                }
                return Ok(());
            }
        };
        if record.status != Status::Running {
            if record.status.is_terminal() {
                // what it waited for no longer matters: drop its timers
                let mut batch = Batch::default();
                for (key, _) in self
                    .store
                    .scan_from(&[keys::TIMER], &[keys::TIMER], usize::MAX)?
                {
                    if keys::parse_timer(&key).is_some_and(|(_, owner)| owner == id) {
                        batch.delete(key);
                    }
                }
                if !batch.writes.is_empty() {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        let _ = store.commit(batch).await;
                    });
                }
            }
            return Ok(());
        }
        if !self.resolve_on_wake {
            // a runtime that resumes nothing (a tool) only runs what fits as stored
            if let Some(entry) =
                self.workflows
                    .exact(&record.workflow, record.fingerprint, record.version)
            {
                self.spawn(id.to_owned(), record, entry);
            }
            return Ok(());
        }
        // sleepers were not checked on open: each load is checked as open
        // checks the others (this costs a state decode)
        let mut moved = record.clone();
        match self.resolve(id, &mut moved) {
            Ok(entry) if moved.new_events.is_empty() => self.spawn(id.to_owned(), moved, entry),
            // a migration, upgrade or parking is written before anything runs
            _ => self.spawn_settling(id, &record.workflow),
        }
        Ok(())
    }

    /// Claims instance `id` and, in its task, loads it again, resolves it
    /// (as [`Engine::recover`] does on open: migration or upgrade written
    /// with its history event, or parked and reported) and drives it.
    fn spawn_settling(self: &Arc<Self>, id: &str, workflow: &str) {
        if !self.claim(id) {
            return;
        }
        let engine = self.clone();
        let owned = id.to_owned();
        self.spawn_task(id, workflow, async move {
            let id = owned;
            // read again under the claim: no other task writes it meanwhile
            let settled = match engine.load(&id) {
                Ok(Some(Ok(record))) if record.status == Status::Running => {
                    engine.settle(&id, record).await
                }
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            };
            match settled {
                Ok(Some((record, entry))) => engine.run(id, record, entry).await,
                Ok(None) => {
                    engine
                        .running
                        .lock()
                        .expect("running lock poisoned")
                        .remove(&id);
                    // a `result()` waiting for it hears that it is parked
                    engine.wake(&id);
                }
                Err(e) => {
                    engine
                        .running
                        .lock()
                        .expect("running lock poisoned")
                        .remove(&id);
                    engine.halt(&id, e);
                }
            }
        });
    }

    /// Steps the instance until it finishes, waits, or storage fails.
    async fn drive(&self, id: &str, record: &mut InstanceRecord, entry: WorkflowEntry) -> Halt {
        loop {
            let Some(request) = record.pending.clone() else {
                return Halt::Finished;
            };
            if let Request::ContinueAsNew { workflow, input } = &request {
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
                    return match self.park(id, record, reason).await {
                        Ok(()) => Halt::Parked,
                        Err(e) => Halt::Store(e),
                    };
                }
                Err(halt) => return halt,
            };
            let state = std::mem::take(&mut record.state);
            let outcome = guarded(|| {
                (entry.drive)(Op::Resume {
                    state: &state,
                    result: &result,
                })
            });
            record.state = state;
            self.apply(record, outcome, &entry);
            record.variant_fp = entry.variant_fp(&record.variant);
            tracing::debug!(instance = %id, step = record.step, variant = %record.variant, "transition");
            // the wake source consumed and the one scheduled change with the state
            let mut batch = Batch::default();
            for key in consumed {
                batch.delete(key);
            }
            let timer = Self::schedule(id, record, &mut batch);
            let saving = std::time::Instant::now();
            let span = tracing::debug_span!("transition", instance = %id, step = record.step, variant = %record.variant);
            let saved =
                tracing::Instrument::instrument(self.save_with(id, record, batch), span).await;
            if let Err(e) = saved {
                return Halt::Store(e);
            }
            self.metrics.checkpoint_seconds.since(saving);
            self.metrics
                .transitions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if timer {
                self.timers.notify_one();
            }
        }
    }
}
