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
mod timers;

use crate::activity::{ActivityContext, ActivityError, Failure};
use crate::clock::{Clock, now_ms as clock_ms};
use crate::codec::{self, CodecError};
use crate::command::{Cancelled, Executor, ParentClose, Request};
use crate::error::ResumeError;
use crate::store::{Batch, Store, StoreError, keys};
use crate::workflow::{Op, Outcome, StepError, VariantInfo};

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// Running or waiting on a command.
    Running,
    /// Returned; the output is stored.
    Completed,
    /// Panicked or could not be advanced; the message is stored.
    Failed,
    /// Cannot run on this code (changed shape, unregistered, undecodable);
    /// kept intact until code that can run it is deployed.
    Parked,
    /// Returned after a cancellation was delivered to it; the output is stored.
    Cancelled,
    /// Stopped by [`WorkflowHandle::terminate`](crate::WorkflowHandle::terminate); nothing more runs.
    Terminated,
}

impl Status {
    /// Whether the instance will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Cancelled | Status::Terminated
        )
    }
}

/// The stored record of one instance: its latest checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub(crate) workflow: String,
    pub(crate) fingerprint: u64,
    pub(crate) status: Status,
    /// The encoded state enum (emptied on completion; a failed instance keeps its last state).
    pub(crate) state: Vec<u8>,
    pub(crate) variant: String,
    /// Transitions made so far; the step part of idempotency keys.
    pub(crate) step: u64,
    /// The command the state awaits.
    pub(crate) pending: Option<Request>,
    /// Failed attempts of the pending command so far.
    pub(crate) failed_attempts: u32,
    /// Finished parts of a pending `join_all` or saga compensation: a crash
    /// half-way re-runs only the parts still `None`.
    pub(crate) partial: Vec<Option<Vec<u8>>>,
    /// The instance that started this one as a child, to wake when it ends.
    pub(crate) parent: Option<String>,
    /// Runs of this id so far (continue-as-new starts another).
    pub(crate) run: u32,
    /// Children to cancel when this instance ends (parent-close policy).
    pub(crate) children: Vec<String>,
    /// When the whole execution times out (ms since the epoch), across
    /// continue-as-new runs.
    pub(crate) deadline_ms: Option<u64>,
    /// How long one run may take (ms), and when the current run times out.
    pub(crate) run_timeout_ms: Option<u64>,
    pub(crate) run_deadline_ms: Option<u64>,
    pub(crate) last_error: Option<String>,
    /// The encoded output, once completed.
    pub(crate) output: Option<Vec<u8>>,
    /// Why it failed or is parked.
    pub(crate) error: Option<String>,
    /// A cancellation was delivered at an await (the workflow may still run
    /// its compensations).
    pub(crate) cancel_delivered: bool,
    /// The own fingerprint of the current variant (for upgrades).
    pub(crate) variant_fp: u64,
    /// The version (`#[workflow(version = N)]`) that runs it.
    pub(crate) version: u32,
    /// History events recorded so far.
    pub(crate) events: u64,
    /// Events to append with the next save.
    #[serde(skip)]
    pub(crate) new_events: Vec<crate::history::EventKind>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
    /// The index entries written for this instance (phase, workflow), so
    /// a save replaces exactly the stale ones.
    pub(crate) indexed: Vec<Vec<u8>>,
    /// Set by `upsert_search_attributes`; indexed.
    pub(crate) search_attributes: Vec<(String, crate::command::SearchValue)>,
    /// The [layout](crate::layout) hash of the code that wrote `state`;
    /// 0: unknown (written before layouts were recorded). Last, so that a
    /// record written without it decodes with one zero byte appended.
    pub(crate) layout: u64,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl InstanceRecord {
    /// Decodes a stored record, including one written before the `layout`
    /// field existed (it then reads as 0, "unknown").
    pub(crate) fn decode(bytes: &[u8]) -> Result<InstanceRecord, CodecError> {
        codec::decode(bytes).or_else(|err| {
            let mut older = bytes.to_vec();
            older.push(0);
            codec::decode(&older).map_err(|_| err)
        })
    }

    /// The index entries this record should have.
    fn index_keys(&self, id: &str) -> Vec<Vec<u8>> {
        let phase = crate::phase::Phase::of(self.status, self.pending.as_ref());
        let mut want = vec![
            keys::index_entry(keys::phase_index_prefix(phase.tag()), id),
            keys::index_entry(keys::workflow_index_prefix(&self.workflow), id),
        ];
        for (name, value) in &self.search_attributes {
            if let Some(prefix) = keys::attribute_index_prefix(name, value) {
                want.push(keys::index_entry(prefix, id));
            }
        }
        want
    }

    /// Adds to `batch` what brings instance `id`'s index entries in line
    /// with this record (saved in the same batch as the record).
    pub(crate) fn reindex(&mut self, id: &str, batch: &mut Batch) {
        let want = self.index_keys(id);
        for stale in self.indexed.iter().filter(|k| !want.contains(k)) {
            batch.delete(stale.clone());
        }
        for new in want.iter().filter(|k| !self.indexed.contains(k)) {
            batch.put(new.clone(), Vec::new());
        }
        self.indexed = want;
    }

    /// The earliest of the execution and run deadlines.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        match (self.deadline_ms, self.run_deadline_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A registered workflow, type-erased.
#[derive(Clone, Copy)]
pub(crate) struct WorkflowEntry {
    pub(crate) name: &'static str,
    pub(crate) version: u32,
    pub(crate) fingerprint: u64,
    pub(crate) drive: fn(Op<'_>) -> Result<Outcome, StepError>,
    pub(crate) variants: &'static [VariantInfo],
    /// Encodes a JSON input as the workflow's `Input` (starts by name:
    /// schedules, tools).
    pub(crate) input_from_json: fn(serde_json::Value) -> Result<Vec<u8>, String>,
    /// Renders an encoded input as JSON.
    pub(crate) input_to_json: fn(&[u8]) -> Result<serde_json::Value, String>,
    /// The error text of an encoded output that is an `Err` (the instance failed).
    pub(crate) output_error: fn(&[u8]) -> Option<String>,
    /// The layout of what this version stores.
    pub(crate) layout: &'static crate::layout::Traced,
}

impl WorkflowEntry {
    pub(crate) fn of<W: crate::workflow::Workflow>() -> WorkflowEntry {
        WorkflowEntry {
            name: W::NAME,
            version: W::VERSION,
            fingerprint: W::FINGERPRINT,
            drive: W::drive,
            variants: W::VARIANTS,
            input_from_json: |json| {
                let input: W::Input = serde_json::from_value(json).map_err(|e| e.to_string())?;
                codec::encode(&input).map_err(|e| e.to_string())
            },
            output_error: W::output_error,
            layout: crate::layout::of::<W>(),
            input_to_json: |bytes| {
                let input: W::Input = codec::decode(bytes).map_err(|e| e.to_string())?;
                serde_json::to_value(input).map_err(|e| e.to_string())
            },
        }
    }
}

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

/// A registered migration, type-erased.
#[derive(Clone)]
pub(crate) struct MigrationEntry {
    pub(crate) workflow: &'static str,
    pub(crate) from: u64,
    pub(crate) from_version: u32,
    pub(crate) from_variants: &'static [VariantInfo],
    /// The version it migrates to (registered or not: a chain may pass through it).
    pub(crate) target: WorkflowEntry,
    pub(crate) steps: Vec<(&'static str, crate::migration::Step)>,
}

/// The registered workflows: several versions (shapes) of one name can be
/// registered side by side; an instance runs on the version whose
/// fingerprint it was stored with, new starts by name on the newest.
#[derive(Default, Clone)]
pub(crate) struct Registry {
    versions: HashMap<&'static str, Vec<WorkflowEntry>>,
    upgrading: std::collections::HashSet<&'static str>,
    migrations: Vec<MigrationEntry>,
    /// Registration mistakes, reported by `Builder::open`.
    pub(crate) conflicts: Vec<crate::error::OpenError>,
}

impl Registry {
    pub(crate) fn insert(&mut self, entry: WorkflowEntry) {
        let versions = self.versions.entry(entry.name).or_default();
        if let Some(other) = versions
            .iter()
            .find(|v| v.version == entry.version && v.fingerprint != entry.fingerprint)
        {
            self.conflicts
                .push(crate::error::OpenError::DuplicateVersion {
                    workflow: entry.name.to_owned(),
                    version: entry.version,
                    first: other.fingerprint,
                    second: entry.fingerprint,
                });
            return;
        }
        versions.retain(|v| !(v.fingerprint == entry.fingerprint && v.version == entry.version));
        versions.push(entry);
        // newest last; registration order breaks ties
        versions.sort_by_key(|v| v.version);
    }

    pub(crate) fn insert_migration(&mut self, m: MigrationEntry) {
        self.migrations
            .retain(|o| !(o.workflow == m.workflow && o.from == m.from));
        self.migrations.push(m);
    }

    /// The version with exactly this shape (the stored version preferred
    /// when two versions share a shape).
    pub(crate) fn exact(
        &self,
        name: &str,
        fingerprint: u64,
        version: u32,
    ) -> Option<WorkflowEntry> {
        let versions = self.versions.get(name)?;
        let mut same = versions.iter().filter(|v| v.fingerprint == fingerprint);
        let first = same.clone().next_back().copied();
        same.find(|v| v.version == version).copied().or(first)
    }

    /// The version with the highest number (starts by name and children run on it).
    pub(crate) fn newest(&self, name: &str) -> Option<WorkflowEntry> {
        self.versions.get(name)?.last().copied()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.versions.keys()
    }

    /// Every registered version, for manifests.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &WorkflowEntry> {
        self.versions.values().flatten()
    }

    pub(crate) fn migrations(&self) -> &[MigrationEntry] {
        &self.migrations
    }

    pub(crate) fn upgrades_allowed(&self, name: &str) -> bool {
        self.upgrading.contains(name)
    }

    /// Lets instances of other versions of `name` continue on a registered
    /// version when their current variant has the same shape there.
    pub(crate) fn allow_upgrade(&mut self, name: &'static str) {
        self.upgrading.insert(name);
    }

    /// The newest version whose variant `variant` has own fingerprint `fp`,
    /// whether or not upgrades are allowed for `name`.
    pub(crate) fn compatible_version(
        &self,
        name: &str,
        variant: &str,
        fp: u64,
    ) -> Option<WorkflowEntry> {
        if fp == 0 {
            return None;
        }
        self.versions
            .get(name)?
            .iter()
            .rev()
            .find(|e| e.variant_fp(variant) == fp)
            .copied()
    }

    /// The migration that takes shape `from` of `name` elsewhere.
    pub(crate) fn migration_from(&self, name: &str, from: u64) -> Option<&MigrationEntry> {
        self.migrations
            .iter()
            .find(|m| m.workflow == name && m.from == from)
    }
}

impl WorkflowEntry {
    /// The own fingerprint of variant `name` in this version (0 if none).
    pub(crate) fn variant_fp(&self, name: &str) -> u64 {
        self.variant(name).map_or(0, |v| v.fingerprint)
    }

    pub(crate) fn variant(&self, name: &str) -> Option<&'static VariantInfo> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// The engine shared by the runtime and every instance task.
pub(crate) struct Engine {
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
            };
        let outcome = guarded(|| (entry.drive)(Op::Start(input)));
        Engine::apply(&mut record, outcome, clock_ms(&*self.clock), &entry);
        record.variant_fp = entry.variant_fp(&record.variant);
        record
    }

    /// Applies the outcome of the generated code to `record` (not yet saved).
    /// `now` (ms) resolves a relative timer to its due time.
    pub(crate) fn apply(
        record: &mut InstanceRecord,
        outcome: Result<Result<Outcome, StepError>, String>,
        now: u64,
        entry: &WorkflowEntry,
    ) {
        record.step += 1;
        record.failed_attempts = 0;
        record.partial.clear();
        record.last_error = None;
        record.updated_ms = now_ms();
        match outcome {
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
            Self::apply(record, outcome, clock_ms(&*self.clock), &entry);
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

    /// A command that completes without running anything: its output and
    /// the wake-source key it uses up, or `None` if not ready.
    fn ready(
        &self,
        id: &str,
        request: &Request,
        executor: Option<&Executor>,
    ) -> Result<Option<Ready>, Halt> {
        let io = |e: CodecError| Halt::Store(StoreError::Codec(e.to_string()));
        Ok(match request {
            Request::Now => Some((codec::encode(&self.clock.now()).map_err(io)?, None)),
            Request::RandomU64 => Some((codec::encode(&rand::random::<u64>()).map_err(io)?, None)),
            Request::Uuid => Some((codec::encode(&uuid::Uuid::new_v4()).map_err(io)?, None)),
            Request::SetAttributes(_) => Some((codec::encode(&()).map_err(io)?, None)),
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
            Request::Signal { name } => match self.take_signal(id, name).map_err(Halt::Store)? {
                Some((key, payload, layout)) => {
                    let vtable = match executor {
                        Some(Executor::Signal(vtable)) => Some(vtable),
                        _ => None,
                    };
                    let payload = self
                        .payload_for(name, payload, layout, vtable)
                        .map_err(Halt::Payload)?;
                    Some((codec::ok_variant(&payload).map_err(io)?, Some(key)))
                }
                None => None,
            },
            Request::Activity { .. }
            | Request::Select(_)
            | Request::All { .. }
            | Request::Compensate(_)
            | Request::Child { .. }
            | Request::ContinueAsNew { .. } => None,
        })
    }

    /// Records in the history that the timer or signal `request` waited
    /// for has come, or sets the search attributes it names (saved with the
    /// transition it resumes).
    fn note_arrival(record: &mut InstanceRecord, request: &Request) {
        let step = record.step;
        let event = match request {
            Request::Timer { .. } => crate::history::EventKind::TimerFired { step },
            Request::Signal { name } => crate::history::EventKind::SignalReceived {
                step,
                name: name.clone(),
            },
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
    fn peek_signal(&self, id: &str, request: &Request) -> Result<bool, Halt> {
        let Request::Signal { name } = request else {
            return Ok(false);
        };
        // finding it takes nothing: the key is deleted by the transition
        Ok(self.take_signal(id, name).map_err(Halt::Store)?.is_some())
    }

    /// What a command evaluates to when the instance is cancelled at it.
    fn cancelled_output(
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
            (Request::SetAttributes(_), _) => codec::encode(&()),
            (Request::All { requests, .. }, Some(Executor::Each(each))) => {
                let parts = requests
                    .iter()
                    .map(|r| Self::cancelled_output(r, Some(each)))
                    .collect::<Result<Vec<_>, _>>()?;
                codec::seq(&parts)
            }
            (Request::Child { id, .. }, _) => codec::variant(
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
    async fn execute(
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
            record.status = Status::Terminated;
            record.error = Some(format!(
                "[DURABLE-TIMEOUT] the execution timeout ran out at {deadline} ms"
            ));
            record.new_events.push(crate::history::EventKind::Finished {
                status: Status::Terminated,
                error: record.error.clone(),
            });
            record.pending = None;
            record.updated_ms = now_ms();
            let mut batch = Batch::default();
            for t in timers {
                batch.delete(t);
            }
            batch.delete(keys::timer(deadline, id));
            self.save_with(id, record, batch)
                .await
                .map_err(Halt::Store)?;
            return Err(Halt::Finished);
        }
        // cancel and terminate requests are durable keys, consumed here
        if self.has_control(id) {
            if let Some((key, reason)) = self
                .take_control(id, keys::TERMINATE)
                .map_err(Halt::Store)?
            {
                let reason: String = codec::decode(&reason).unwrap_or_else(|_| "terminated".into());
                record.status = Status::Terminated;
                record.error = Some(reason);
                record.new_events.push(crate::history::EventKind::Finished {
                    status: Status::Terminated,
                    error: record.error.clone(),
                });
                record.pending = None;
                record.updated_ms = now_ms();
                let mut batch = Batch::default();
                batch.delete(key);
                for t in timers {
                    batch.delete(t);
                }
                if let Some((cancel, _)) =
                    self.take_control(id, keys::CANCEL).map_err(Halt::Store)?
                {
                    batch.delete(cancel);
                }
                self.save_with(id, record, batch)
                    .await
                    .map_err(Halt::Store)?;
                self.clear_control(id);
                return Err(Halt::Finished);
            }
            // compensations and continue-as-new run on; the cancel waits for the next await
            let cancellable = !matches!(
                request,
                Request::Compensate(_) | Request::ContinueAsNew { .. }
            );
            let cancel = if cancellable {
                self.take_control(id, keys::CANCEL).map_err(Halt::Store)?
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
                self.run_all(id, record, requests, *limit, &each)
                    .await
                    .map(|bytes| Some((bytes, timers)))
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
            } => {
                let cancel_on_close = *parent_close == ParentClose::Cancel;
                let limits = (
                    timeout_ms.map(std::time::Duration::from_millis),
                    run_timeout_ms.map(std::time::Duration::from_millis),
                );
                self.run_child(
                    id,
                    record,
                    workflow,
                    input,
                    child.as_deref(),
                    cancel_on_close,
                    limits,
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
                if let Some(queue) = self.queue_for(vtable.name) {
                    return self
                        .run_queued(id, record, queue, vtable.name, input, options)
                        .await
                        .map(|bytes| Some((bytes, timers)));
                }
                let bytes = self
                    .run_activity(id, record, vtable, input, options)
                    .await?;
                Ok(Some((bytes, timers)))
            }
            Request::Select(branches) => {
                for (i, branch) in branches.iter().enumerate() {
                    let exec = match &executor {
                        Some(Executor::Select(execs)) => execs.get(i),
                        Some(Executor::Each(each)) => Some(&**each),
                        _ => None,
                    };
                    if let Some((bytes, key)) = self.ready(id, branch, exec)? {
                        Self::note_arrival(record, branch);
                        let wrapped = match codec::variant(i as u32, &bytes) {
                            Ok(w) => w,
                            Err(e) => return self.fail(id, record, e.to_string()).await,
                        };
                        timers.extend(key);
                        return Ok(Some((wrapped, timers)));
                    }
                }
                let execs = match executor {
                    Some(Executor::Each(each)) => vec![(*each).clone(); branches.len()],
                    other => other.map_or_else(Vec::new, |e| match e {
                        Executor::Select(execs) => execs,
                        _ => Vec::new(),
                    }),
                };
                let Some(()) = (execs.len() == branches.len()).then_some(()) else {
                    return self
                        .fail(id, record, "select without its executors".into())
                        .await;
                };
                // every activity branch runs at once; the first to finish wins and
                // the others' attempts are dropped (aborted), as is a losing timer
                let step = record.step;
                let mut racers: futures::stream::FuturesUnordered<_> = branches
                    .iter()
                    .zip(&execs)
                    .enumerate()
                    .filter_map(|(i, (b, e))| match (b, e) {
                        (Request::Activity { input, options, .. }, Executor::Activity(v)) => {
                            let key = format!("{id}/{step}/{i}");
                            Some(async move {
                                (
                                    i,
                                    composite::attempts(self, key, id, *v, input, options).await,
                                )
                            })
                        }
                        _ => None,
                    })
                    .collect();
                if racers.is_empty() {
                    return Ok(None);
                }
                let deadline = branches
                    .iter()
                    .enumerate()
                    .filter_map(|(j, b)| match b {
                        Request::Timer {
                            at_ms: Some(at), ..
                        } => Some((*at, j)),
                        _ => None,
                    })
                    .min();
                let timer = async {
                    match deadline {
                        Some((at, _)) => self.clock.sleep_until(crate::clock::from_ms(at)).await,
                        None => std::future::pending().await,
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
                // a signal that came after the first look: look again, now that
                // a later one interrupts the race (see `Runtime::signal`)
                for branch in branches {
                    if matches!(branch, Request::Signal { .. }) && self.peek_signal(id, branch)? {
                        return Err(Halt::Interrupted);
                    }
                }
                let run_deadline = async {
                    match record.next_deadline() {
                        Some(d) => self.clock.sleep_until(crate::clock::from_ms(d)).await,
                        None => std::future::pending().await,
                    }
                };
                let (index, bytes) = tokio::select! {
                    () = run_deadline => return Err(Halt::Interrupted),
                    Some((i, out)) = futures::StreamExt::next(&mut racers) => match out {
                        Ok((bytes, _)) => (i, bytes),
                        Err(why) => return self.fail(id, record, why).await,
                    },
                    () = timer => {
                        let j = deadline.map_or(0, |(_, j)| j);
                        match codec::encode(&Ok::<(), Cancelled>(())) {
                            Ok(b) => (j, b),
                            Err(e) => return self.fail(id, record, e.to_string()).await,
                        }
                    }
                    () = &mut notified => return Err(Halt::Interrupted),
                };
                drop(racers);
                match codec::variant(index as u32, &bytes) {
                    Ok(wrapped) => Ok(Some((wrapped, timers))),
                    Err(e) => self.fail(id, record, e.to_string()).await,
                }
            }
            other => match self.ready(id, other, executor.as_ref())? {
                Some((bytes, key)) => {
                    Self::note_arrival(record, other);
                    timers.extend(key);
                    Ok(Some((bytes, timers)))
                }
                None => Ok(None),
            },
        }
    }

    /// Runs an activity's attempts until one succeeds or the policy allows
    /// no more; its encoded output either way.
    async fn run_activity(
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
                let future = match (vtable.run)(input, ctx) {
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
    async fn run_queued(
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

    /// Records `record` as failed with `why`.
    async fn fail<T>(&self, id: &str, record: &mut InstanceRecord, why: String) -> Result<T, Halt> {
        record.new_events.push(crate::history::EventKind::Finished {
            status: Status::Failed,
            error: Some(why.clone()),
        });
        record.status = Status::Failed;
        record.error = Some(why);
        record.pending = None;
        record.updated_ms = now_ms();
        match self.save(id, record).await {
            Ok(()) => Err(Halt::Finished),
            Err(e) => Err(Halt::Store(e)),
        }
    }

    /// Resumes the unfinished instances that have something to do now and
    /// parks the ones of those this code cannot run. Returns how many were
    /// resumed.
    ///
    /// Only instances that are not asleep on a timer are read (found by the
    /// phase index: running, waiting for a signal, parked), and sleepers
    /// with a cancel or terminate request. A sleeper is left to the timer
    /// service and checked against the code when it is first loaded
    /// ([`Engine::wake_instance`]): opening a store of a million sleepers
    /// reads none of their records, which would stay in sled's cache.
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        if self.store.shared() {
            // workers share the store: this one runs what it claims
            return self.join().await;
        }
        let mut resumed = 0;
        let mut controlled = Vec::new();
        for tag in [keys::CANCEL, keys::TERMINATE] {
            for (key, _) in self.store.scan_prefix(&[tag])? {
                let id = keys::instance_id(&key);
                self.controls
                    .lock()
                    .expect("controls lock poisoned")
                    .insert(id.clone());
                controlled.push(id);
            }
        }
        let mut runnable = Vec::new();
        // ids read already, so that one whose phase changes as it is
        // recovered (parked, unparked) is not read again under its new tag
        let mut seen = std::collections::HashSet::new();
        let sleeping = keys::phase_index_prefix(crate::phase::Phase::Sleeping.tag());
        for id in controlled {
            let asleep = self
                .store
                .get(&keys::index_entry(sleeping.clone(), &id))?
                .is_some();
            if asleep && seen.insert(id.clone()) {
                resumed += self.recover_one(&id, &mut runnable).await?;
            }
        }
        // parked first: one unparked moves to a tag read later, and is skipped there
        for phase in [
            crate::phase::Phase::Parked,
            crate::phase::Phase::Running,
            crate::phase::Phase::WaitingForSignal,
        ] {
            let prefix = keys::phase_index_prefix(phase.tag());
            // paged, so that a large store is not held in memory at once
            let mut from = prefix.clone();
            loop {
                let page = self.store.scan_from(&prefix, &from, RECOVER_PAGE)?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                from = keys::after(last);
                for (key, _) in page {
                    let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                    if seen.insert(id.clone()) {
                        resumed += self.recover_one(&id, &mut runnable).await?;
                    }
                }
            }
        }
        // started once all are read, as before paging: tasks started early
        // would compete with the reading for the CPU (100k in flight: all
        // resumed in 7.6 s instead of 2.9 s)
        for (id, record, entry) in runnable {
            self.spawn(id, record, entry);
        }
        Ok(resumed)
    }

    /// Resumes (or parks) instance `id`: 1 if resumed. One that has work to
    /// do now (not asleep on a timer) is added to `runnable`, to be spawned
    /// by the caller.
    async fn recover_one(
        self: &Arc<Self>,
        id: &str,
        runnable: &mut Vec<(String, InstanceRecord, WorkflowEntry)>,
    ) -> Result<usize, StoreError> {
        let record = match self.load(id)? {
            None => return Ok(0),
            Some(Ok(record)) => record,
            Some(Err(e)) => {
                // the bytes are left untouched: never drop what cannot be read
                self.park_report(ResumeError::Undecodable {
                    instance: id.to_owned(),
                    reason: e.to_string(),
                });
                return Ok(0);
            }
        };
        if record.status.is_terminal() {
            return Ok(0);
        }
        let Some((record, entry)) = self.settle(id, record).await? else {
            return Ok(0);
        };
        let controlled = self.has_control(id);
        if matches!(record.pending, Some(Request::Timer { .. })) && !controlled {
            return Ok(1); // the timer service wakes it when due
        }
        runnable.push((id.to_owned(), record, entry));
        Ok(1)
    }

    /// Checks an unfinished `record` against the registered code before it
    /// runs: the code that runs it, with a migration or upgrade (state,
    /// version and history event) or an unparking written in one batch; or
    /// `None` once it is parked (saved as such, with a `Parked` event, and
    /// reported by `Runtime::parked`).
    async fn settle(
        &self,
        id: &str,
        mut record: InstanceRecord,
    ) -> Result<Option<(InstanceRecord, WorkflowEntry)>, StoreError> {
        let mut moved = record.clone();
        match self.resolve(id, &mut moved) {
            Ok(entry) => {
                let changed = !moved.new_events.is_empty();
                record = moved;
                if record.status == Status::Parked || changed {
                    record.status = Status::Running;
                    record.error = None;
                    self.save(id, &mut record).await?;
                }
                Ok(Some((record, entry)))
            }
            Err(reason) => {
                self.park(id, &mut record, reason).await?;
                Ok(None)
            }
        }
    }

    /// Parks `record`: saved as parked with a `Parked` event (unless it is
    /// parked for this very reason already), and reported.
    async fn park(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        reason: ResumeError,
    ) -> Result<(), StoreError> {
        let text = reason.to_string();
        if record.status != Status::Parked || record.error.as_deref() != Some(&text) {
            record.status = Status::Parked;
            record.error = Some(text.clone());
            record
                .new_events
                .push(crate::history::EventKind::Parked { reason: text });
            self.save(id, record).await?;
        }
        self.park_report(reason);
        Ok(())
    }

    /// Finds the code that runs `record`, moving it to another version when
    /// the registered code asks for it: its exact version; else a migration
    /// from its shape (chained); else, when the workflow allows upgrades, the
    /// newest version whose current variant has the same own shape. Changes
    /// `record` in memory only (state, fingerprint, version, history events):
    /// the caller writes it, or drops it to only look.
    pub(crate) fn resolve(
        &self,
        id: &str,
        record: &mut InstanceRecord,
    ) -> Result<WorkflowEntry, ResumeError> {
        let newest =
            self.workflows
                .newest(&record.workflow)
                .ok_or_else(|| ResumeError::NotRegistered {
                    workflow: record.workflow.clone(),
                    instance: id.to_owned(),
                })?;
        // each migration at most once: a cycle ends here
        for _ in 0..=self.workflows.migrations().len() {
            if let Some(entry) =
                self.workflows
                    .exact(&record.workflow, record.fingerprint, record.version)
            {
                self.align(id, record, entry)?;
                let entry = self.check(id, record, entry)?;
                if entry.version != record.version {
                    // its version is gone but another has the very same
                    // shape: it runs there, and says so
                    record.new_events.push(crate::history::EventKind::Upgraded {
                        from: record.fingerprint,
                        to: entry.fingerprint,
                        variant: record.variant.clone(),
                    });
                    record.version = entry.version;
                }
                return Ok(entry);
            }
            let Some(m) = self
                .workflows
                .migration_from(&record.workflow, record.fingerprint)
            else {
                break;
            };
            self.migrate(id, record, m)?;
        }
        let changes = self.await_changes(record, newest);
        let mismatch = ResumeError::ShapeMismatch {
            workflow: record.workflow.clone(),
            stored: record.fingerprint,
            current: newest.fingerprint,
            instance: id.to_owned(),
            changes: changes.clone(),
        };
        let Some(target) =
            self.workflows
                .compatible_version(&record.workflow, &record.variant, record.variant_fp)
        else {
            return Err(mismatch);
        };
        if !self.workflows.upgrades_allowed(&record.workflow) {
            return Err(ResumeError::Pinned {
                workflow: record.workflow.clone(),
                instance: id.to_owned(),
                stored: record.fingerprint,
                version: record.version,
                variant: record.variant.clone(),
                compatible: target.version,
                changes,
            });
        }
        self.upgrade(id, record, target)?;
        self.align(id, record, target)?;
        self.check(id, record, target)
    }

    /// What [`Engine::resolve`] would do with `record`, done on a copy.
    pub(crate) fn compatibility(
        &self,
        id: &str,
        record: InstanceRecord,
    ) -> crate::runtime::Compatibility {
        use crate::runtime::Compatibility;
        let mut moved = record.clone();
        match self.resolve(id, &mut moved) {
            Err(why) => Compatibility::Parked(why),
            Ok(entry)
                if moved.version != record.version || moved.fingerprint != record.fingerprint =>
            {
                if moved
                    .new_events
                    .iter()
                    .any(|e| matches!(e, crate::history::EventKind::Migrated { .. }))
                {
                    Compatibility::Migrates {
                        from: record.version,
                        to: entry.version,
                    }
                } else {
                    Compatibility::Upgrades {
                        to: entry.fingerprint,
                    }
                }
            }
            Ok(_) => match moved.new_events.iter().find_map(|e| match e {
                crate::history::EventKind::Transcoded { changes, .. } => Some(changes.clone()),
                _ => None,
            }) {
                Some(changes) => Compatibility::Transcodes { changes },
                None => Compatibility::Resumes,
            },
        }
    }

    /// Applies migration `m` to `record` (in memory).
    fn migrate(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        m: &MigrationEntry,
    ) -> Result<(), ResumeError> {
        let failed = |reason: String| ResumeError::Migration {
            workflow: record.workflow.clone(),
            instance: id.to_owned(),
            from: m.from_version,
            to: m.target.version,
            variant: record.variant.clone(),
            reason,
        };
        let target = m.target;
        let fields = variant_fields(&record.state).map_err(&failed)?;
        let (variant, new_fields) = match m.steps.iter().find(|(n, _)| *n == record.variant) {
            Some((_, step)) => match guarded(|| step(fields)) {
                Ok(Ok(done)) => done,
                Ok(Err(e)) => return Err(failed(e)),
                Err(panic) => return Err(failed(panic)),
            },
            // unchanged variants are carried over as they are
            None if record.variant_fp != 0
                && target.variant_fp(&record.variant) == record.variant_fp =>
            {
                let name = target
                    .variant(&record.variant)
                    .map(|v| v.name)
                    .unwrap_or_default();
                (name, fields.to_vec())
            }
            None => {
                return Err(ResumeError::MigrationMissing {
                    workflow: record.workflow.clone(),
                    instance: id.to_owned(),
                    from: m.from_version,
                    to: target.version,
                    variant: record.variant.clone(),
                });
            }
        };
        let old_command = m
            .from_variants
            .iter()
            .find(|v| v.name == record.variant)
            .map(|v| v.command);
        let new_command = target.variant(variant).map(|v| v.command);
        if record.pending.is_some() && old_command != new_command {
            return Err(failed(format!(
                "variant `{variant}` of version {} awaits `{}`, the instance awaits `{}`; a migrated instance keeps the command it waits for",
                target.version,
                new_command.unwrap_or("?"),
                old_command.unwrap_or("?"),
            )));
        }
        let state = adopt(target, variant, &new_fields).map_err(&failed)?;
        record.new_events.push(crate::history::EventKind::Migrated {
            from: m.from_version,
            to: target.version,
            from_fingerprint: record.fingerprint,
            to_fingerprint: target.fingerprint,
            from_variant: record.variant.clone(),
            to_variant: variant.to_owned(),
        });
        record.state = state;
        record.variant = variant.to_owned();
        record.variant_fp = target.variant_fp(variant);
        record.fingerprint = target.fingerprint;
        record.layout = target.layout.hash;
        record.version = target.version;
        Ok(())
    }

    /// Moves `record` onto version `entry`, whose variant at the current
    /// await has the same shape: decodes that variant's fields and encodes
    /// them under the new enum (variant indexes may differ).
    pub(crate) fn upgrade(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        entry: WorkflowEntry,
    ) -> Result<(), ResumeError> {
        let undecodable = |reason: String| ResumeError::Undecodable {
            instance: id.to_owned(),
            reason,
        };
        let fields = variant_fields(&record.state).map_err(undecodable)?;
        let state = adopt(entry, &record.variant, fields).map_err(undecodable)?;
        record.new_events.push(crate::history::EventKind::Upgraded {
            from: record.fingerprint,
            to: entry.fingerprint,
            variant: record.variant.clone(),
        });
        record.state = state;
        record.fingerprint = entry.fingerprint;
        record.layout = entry.layout.hash;
        record.version = entry.version;
        Ok(())
    }

    /// [`Engine::park_report`] unless `reason` was reported already (a
    /// record that does not decode cannot be marked parked, and its due
    /// timer wakes it again on each pass of the timer service).
    fn park_report_once(&self, reason: ResumeError) {
        let known = self
            .parked
            .lock()
            .expect("parked lock poisoned")
            .contains(&reason);
        if !known {
            self.park_report(reason);
        }
    }

    fn park_report(&self, reason: ResumeError) {
        tracing::error!(error = %reason, "instance parked");
        self.parked
            .lock()
            .expect("parked lock poisoned")
            .push(reason);
    }

    /// Whether `entry` (the record's exact shape) can decode its state.
    fn check(
        &self,
        id: &str,
        record: &InstanceRecord,
        entry: WorkflowEntry,
    ) -> Result<WorkflowEntry, ResumeError> {
        // the state must decode under this code, or the instance would fail mid-way
        if record.pending.is_some() {
            match guarded(|| {
                (entry.drive)(Op::Check {
                    state: &record.state,
                })
            }) {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(ResumeError::Step {
                        instance: id.to_owned(),
                        source,
                    });
                }
                Err(panic) => {
                    return Err(ResumeError::Undecodable {
                        instance: id.to_owned(),
                        reason: panic,
                    });
                }
            }
        }
        Ok(entry)
    }
}

/// The fields of an encoded state: without the envelope byte and the
/// variant index (a postcard varint), as `Op::Adopt` takes them.
fn variant_fields(state: &[u8]) -> Result<&[u8], String> {
    let body = state.get(1..).ok_or_else(|| "empty state".to_owned())?;
    let (_, fields) = postcard::take_from_bytes::<u32>(body).map_err(|e| e.to_string())?;
    Ok(fields)
}

/// Has `entry` build its variant `variant` from encoded `fields`.
fn adopt(entry: WorkflowEntry, variant: &str, fields: &[u8]) -> Result<Vec<u8>, String> {
    match guarded(|| (entry.drive)(Op::Adopt { variant, fields })) {
        Ok(Ok(Outcome::Adopted(state))) => Ok(state),
        Ok(Ok(_)) => Err("the new version did not adopt the state".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic),
    }
}
