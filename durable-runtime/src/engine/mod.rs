//! The engine: the instances of one runtime, their records, tasks and
//! steps (the loop itself is `step.rs`; the tasks that run it `tasks.rs`).
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

use tokio::sync::{Notify, Semaphore};

mod cluster;
pub(crate) use cluster::{LeaseRecord, Member, until_listening};
mod composite;
mod fields;
mod layouts;
mod listeners;
mod values;

pub(crate) use listeners::Listeners;
mod queues;
mod retention;
mod schedules;
mod select;
pub(crate) use schedules::{RunRequest, ScheduleRecord};
mod signals;
pub(crate) use signals::decode_signal;
mod attempts;
mod bookkeeping;
mod record;
mod recovery;
mod registry;
mod rerun;
mod reset;
mod step;
mod tasks;
mod timers;
mod transition;
pub(crate) use transition::timer_writes;
mod versions;
use crate::phase::Status;
pub(crate) use record::{InstanceRecord, now_ms};
pub(crate) use registry::{MigrationEntry, Registry, WorkflowEntry};
pub(crate) use rerun::RETRYING;

use crate::clock::{Clock, now_ms as clock_ms};
use crate::codec::{self, CodecError};
use crate::error::ResumeError;
use crate::store::{self, Batch, Store, StoreError, Wait, keys};
use crate::workflow::{Op, Outcome, StepError};

/// The engine shared by the runtime and every instance task.
pub(crate) struct Engine {
    /// The size limits (`Builder::limits`).
    pub(crate) limits: crate::Limits,
    /// Mocked activities and the attempt witness (tests only).
    pub(crate) test_hooks: crate::activity::TestHooks,
    pub(crate) store: Arc<dyn Store>,
    /// Set at the end of `Runtime::shutdown`: the store then answers
    /// `Closed` to every clone of the runtime.
    pub(crate) store_closed: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) workflows: Registry,
    pub(crate) activity_slots: Semaphore,
    pub(crate) waiters: Listeners,
    pub(crate) tasks: Mutex<tokio::task::JoinSet<()>>,
    pub(crate) parked: Mutex<Vec<ResumeError>>,
    /// Layouts read from the store, by hash.
    pub(crate) layouts: Mutex<HashMap<u64, Arc<crate::layout::WorkflowLayout>>>,
    /// Layouts of registered versions known to be in the store.
    pub(crate) layouts_stored: std::sync::RwLock<std::collections::HashSet<u64>>,
    /// Signal payload layouts known to be in the store.
    pub(crate) value_layouts: Mutex<std::collections::HashSet<u64>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The activities calls by name run first (`Builder::activity`).
    pub(crate) activities: crate::activity::Activities,
    /// What activities read with `activity::dependency`.
    pub(crate) dependencies: Arc<crate::activity::Dependencies>,
    /// The updates declared with a validator, by name.
    pub(crate) updates: HashMap<&'static str, crate::update::UpdateType>,
    /// What this process keeps for each instance: its task's claim, a
    /// start creating it, a waiting cancel or terminate, a store failure
    /// that stopped it, keys it used up.
    pub(crate) book: bookkeeping::Bookkeeping,
    /// Wakes the timer service when a transition schedules a timer.
    pub(crate) timers: Notify,
    /// Interrupts a running activity attempt of an instance.
    pub(crate) interrupts: Listeners,
    /// Counters for `/metrics`.
    pub(crate) metrics: crate::metrics::EngineMetrics,
    /// Set by `Runtime::shutdown`: no new instance tasks, and running ones
    /// stop at their next checkpoint.
    pub(crate) closing: std::sync::atomic::AtomicBool,
    /// A weak reference to this engine, for spawning from `&self`.
    pub(crate) this: std::sync::OnceLock<std::sync::Weak<Engine>>,
    /// Orders buffered signals; starts above every stored one.
    pub(crate) signal_seq: std::sync::atomic::AtomicU64,
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
    /// Whether a woken instance is checked against the code (and migrated
    /// or parked) first: set when the runtime resumes instances, since open
    /// leaves sleepers unread. A runtime that resumes nothing (tools) runs
    /// only what fits as stored, and changes nothing else.
    pub(crate) resolve_on_wake: bool,
    /// How many reset points each instance keeps (`Builder::reset_points`).
    pub(crate) reset_points: u64,
    /// Wakes the batch service: an operation was started here.
    pub(crate) batch_wake: Notify,
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

/// A command's encoded output, the wake-source key it used up, and what a
/// signal carried (kept in the history).
type Ready = (Vec<u8>, Option<Vec<u8>>, Option<crate::history::KeptValue>);

/// Why an instance stopped running in this process.
enum Halt {
    /// It reached a terminal status (already committed).
    Finished,
    /// It waits for a timer or a signal: no task, no memory until woken.
    Waiting,
    /// A cancel or terminate request arrived during an activity attempt.
    Interrupted,
    /// The runtime is shutting down: stopped at its last checkpoint, it
    /// resumes from there when a runtime opens the store again.
    Stopping,
    /// Storage failed: stop without acknowledging anything more.
    Store(StoreError),
    /// It was parked (already committed): nothing more runs here.
    Parked,
    /// A signal's payload cannot be delivered as the awaited type (its
    /// layout differs in a way it cannot cross): the instance is parked.
    Payload(Vec<String>),
}

/// A stored instance record as read: its bytes, and the record they
/// decode to (or why they do not).
pub(crate) type Loaded = (Vec<u8>, Result<InstanceRecord, CodecError>);

impl Engine {
    /// The record of instance `id`, its state whole (see `fields`).
    pub(crate) async fn load(
        &self,
        id: &str,
    ) -> Result<Option<Result<InstanceRecord, CodecError>>, StoreError> {
        Ok(self
            .load_read(id, Wait::Task)
            .await?
            .map(|(_, record)| record))
    }

    /// [`Engine::load`] on the calling thread, for the public API's
    /// blocking calls.
    pub(crate) fn load_now(
        &self,
        id: &str,
    ) -> Result<Option<Result<InstanceRecord, CodecError>>, StoreError> {
        Ok(store::now(self.load_read(id, Wait::Thread))?.map(|(_, record)| record))
    }

    /// The record of instance `id` as stored, its state not put back
    /// together from its stored fields (empty when it is stored by fields):
    /// for what reads the status, position, output or error, never the
    /// state. Never saved.
    pub(crate) async fn peek(
        &self,
        id: &str,
    ) -> Result<Option<Result<InstanceRecord, CodecError>>, StoreError> {
        let Some(bytes) = self.get(&keys::instance(id)).await? else {
            return Ok(None);
        };
        Ok(Some(InstanceRecord::decode(&bytes)))
    }

    /// [`Engine::peek`] on the calling thread, for the public API's
    /// blocking calls.
    pub(crate) fn peek_now(
        &self,
        id: &str,
    ) -> Result<Option<Result<InstanceRecord, CodecError>>, StoreError> {
        let Some(bytes) = self.store.get(&keys::instance(id))? else {
            return Ok(None);
        };
        Ok(Some(InstanceRecord::decode(&bytes)))
    }

    /// [`Engine::load`], with the stored bytes the record was read from (a
    /// save made only if they are still there: [`Engine::settle`]).
    pub(crate) async fn load_read(
        &self,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Loaded>, StoreError> {
        let key = keys::instance(id);
        for _ in 0..8 {
            let Some(bytes) = store::get(&*self.store, &key, wait).await? else {
                return Ok(None);
            };
            let mut record = match InstanceRecord::decode(&bytes) {
                Ok(record) => record,
                Err(e) => return Ok(Some((bytes, Err(e)))),
            };
            if self.assemble(id, &mut record, wait).await? {
                return Ok(Some((bytes, Ok(record))));
            }
            // a checkpoint replaced a field between the two reads: again
        }
        Err(StoreError::Corrupt {
            key: crate::store::printable(&key),
            reason: "a field of its state is not stored".into(),
        })
    }

    /// Reads one key, the task's thread free meanwhile.
    pub(crate) async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get_async(key).await
    }

    /// Reads every key starting with `prefix`, the task's thread free
    /// meanwhile.
    pub(crate) async fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<crate::store::KeyValue>, StoreError> {
        self.store.scan_async(prefix, prefix, usize::MAX).await
    }

    /// Reads at most `limit` keys starting with `prefix` from `from`, the
    /// task's thread free meanwhile.
    pub(crate) async fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<crate::store::KeyValue>, StoreError> {
        self.store.scan_async(prefix, from, limit).await
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
        if let Some((key, bytes)) = self.history_entry(id, record)? {
            batch.put_new(key, bytes);
        }
        Ok(())
    }

    /// The history key and value of the events `record` has to append
    /// (`None`: none), their count added to the record's.
    fn history_entry(
        &self,
        id: &str,
        record: &mut InstanceRecord,
    ) -> Result<Option<crate::store::KeyValue>, StoreError> {
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
            [] => return Ok(None),
            [one] => (keys::history(id, first), codec::encode(one)),
            many => (keys::history_batch(id, first), codec::encode(many)),
        };
        let bytes = bytes.map_err(|e| StoreError::Codec(e.to_string()))?;
        Ok(Some((key, bytes)))
    }

    /// Adds to `batch` what a checkpoint of `record` writes besides its
    /// record key, in every save and creation alike: its new history events
    /// (with its reset point), its index entries, its layout (unless known
    /// stored) and its large fields. The record's bytes, and whether the
    /// layout was added.
    fn stage_record(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        batch: &mut Batch,
    ) -> Result<(Vec<u8>, bool), StoreError> {
        let events = self.history_entry(id, record)?;
        record.reindex(id, batch);
        let layout = self.stage_layout(record.layout, batch)?;
        let bytes = self.encode_record(id, record, batch)?;
        self.put_history(record, events, &bytes, batch);
        Ok((bytes, layout))
    }

    /// Saves `record` together with `extra` writes (and its new history
    /// events), in one atomic batch.
    async fn save_with(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        mut batch: Batch,
    ) -> Result<(), StoreError> {
        let committer = self.committer(id)?;
        let spent = self.book.take_spent(id);
        let transition::AfterCommit { replied, cancels } =
            transition::surrounding_writes(id, record, &committer, spent, &mut batch);
        let (bytes, layout) = self.stage_record(id, record, &mut batch)?;
        batch.put(keys::instance(id), bytes);
        self.store.commit(batch).await?;
        record.committed();
        if replied {
            self.wake(&crate::update::waiter(id));
        }
        if !cancels.is_empty()
            && let Some(me) = self.me()
        {
            for child in cancels {
                if let Err(e) = me.control_requested(&child).await {
                    tracing::error!(child = %child, error = %e, "cannot wake the cancelled child");
                }
            }
        }
        if layout {
            self.layout_stored(record.layout);
        }
        if record.status.is_terminal() {
            self.metrics.ended(
                self.workflows.label(&record.workflow),
                record.status.as_str(),
            );
            if let Some(m) = &self.member {
                m.remove(id);
            }
            // a request that arrived too late to be acted on
            self.clear_control(id);
        }
        Ok(())
    }

    /// Saves the first record of an instance, only if the id is still free
    /// (or still holds `replacing`), with `batch`'s writes in the same
    /// commit.
    pub(crate) async fn create(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        replacing: Option<(Vec<u8>, InstanceRecord)>,
        mut batch: Batch,
    ) -> Result<(), StoreError> {
        let previous = match replacing {
            // an ended run of the id: forgotten in the same commit, and only
            // if it is still what was read
            Some((bytes, old)) => {
                Box::pin(self.stage_forget(id, &old, &mut batch)).await?;
                Some(bytes)
            }
            None => None,
        };
        self.create_over(id, record, previous, batch)
            .await
            .map(drop)
    }

    /// Saves `record` as the record of instance `id`, only if the stored
    /// one is still `previous` (`None`: the id is free), with `batch`'s
    /// writes in the same commit. Whether this process runs it (on a
    /// shared store, a replaced record another worker owns stays that
    /// worker's, told to look again).
    pub(crate) async fn create_over(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        previous: Option<Vec<u8>>,
        mut batch: Batch,
    ) -> Result<bool, StoreError> {
        let (timer, ours) = self
            .stage_create_over(id, record, &mut batch, previous)
            .await?;
        self.store.commit(batch).await?;
        record.committed();
        // the batch held the record's layout unless it was known stored
        self.layout_stored(record.layout);
        if ours {
            self.owned_now(id);
        }
        if timer {
            self.timers.notify_one();
        }
        Ok(ours)
    }

    /// Adds the creation of instance `id` to `batch` (conditional on the id
    /// being free); whether it set a timer.
    pub(crate) async fn stage_create(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        batch: &mut Batch,
    ) -> Result<bool, StoreError> {
        self.stage_create_over(id, record, batch, None)
            .await
            .map(|(timer, _)| timer)
    }

    /// [`Engine::stage_create`] over the stored record `previous` (`None`:
    /// the id must be free).
    async fn stage_create_over(
        &self,
        id: &str,
        record: &mut InstanceRecord,
        batch: &mut Batch,
        previous: Option<Vec<u8>>,
    ) -> Result<(bool, bool), StoreError> {
        // until a save of it commits, every creation carries the layout
        let (bytes, _) = self.stage_record(id, record, batch)?;
        let key = keys::instance(id);
        let replacing = previous.is_some();
        batch.expect(key.clone(), previous).put(key, bytes);
        let mut ours = true;
        if replacing && !record.status.is_terminal() {
            // a parked instance (reset) may still have its owner
            ours = Box::pin(self.stage_replacing_owner(id, batch)).await?;
        } else if !record.status.is_terminal() {
            self.stage_owner(id, batch);
        } else if self.store.shared() {
            batch.notify(format!("w{id}"));
        }
        Ok((transition::timer_writes(id, record, batch), ours))
    }

    /// How many instances each per-instance map or kind of entry holds,
    /// for those that hold any.
    #[cfg(feature = "testing")]
    pub(crate) fn resident(&self) -> Vec<(&'static str, usize)> {
        let mut resident = self.book.resident();
        resident.extend(
            [
                ("waiters", self.waiters.len()),
                ("interrupts", self.interrupts.len()),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0),
        );
        resident
    }

    fn wake(&self, id: &str) {
        self.waiters.notify(id);
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
        let (input_field, kept) = fields::first_fields(input);
        let mut record = InstanceRecord {
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
            retry_at_ms: 0,
            pending_since_ms: 0,
            retiring: Vec::new(),
            rerun: self
                .workflows
                .rerun_of(workflow, input, kept, entry.layout.hash),
            kept_step: None,
            partial: Vec::new(),
            parent,
            run: 1,
            children: Vec::new(),
            deadline_ms: timeout.map(after),
            run_timeout_ms: run_timeout.map(|t| t.as_millis() as u64),
            run_deadline_ms: run_timeout.map(after),
            variant_fp: 0,
            events: 0,
            writes: Vec::new(),
            cancels: Vec::new(),
            new_events: std::iter::once(crate::history::EventKind::Started {
                workflow: workflow.to_owned(),
                run: 1,
                version: entry.version,
            })
            .chain(if kept {
                // a large input is stored once, apart (`fields`)
                Some(crate::history::EventKind::InputKept {
                    bytes: input.len() as u64,
                    layout: entry.layout.hash,
                })
            } else {
                // an input JSON cannot express (a map with non-string keys) is not shown
                (entry.input_to_json)(input)
                    .ok()
                    .map(|json| crate::history::EventKind::Input {
                        json: json.to_string(),
                    })
            })
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
            trace: crate::otel::TraceParent::current(),
            parts: Vec::new(),
            field_seq: 0,
            stored_fields: Some(input_field),
            pending_fields: None,
            held: record::Held::default(),
        };
        let outcome = guarded(|| (entry.drive)(Op::Start(input)));
        self.apply(&mut record, outcome, &entry);
        record
    }

    /// Applies the outcome of the generated code to `record` (not yet
    /// saved): [`transition::next`] at this moment of the runtime's clock.
    pub(crate) fn apply(
        &self,
        record: &mut InstanceRecord,
        outcome: Result<Result<Outcome, StepError>, String>,
        entry: &WorkflowEntry,
    ) {
        let at = transition::Moment {
            now: clock_ms(&*self.clock),
            wall: now_ms(),
            state_limit: self.limits.state_bytes,
            retry: self.workflows.retry_policy(&record.workflow),
        };
        transition::next(record, outcome, entry, &at);
    }
}
