//! The instances' tasks: claimed for this process, spawned, run until
//! they finish, wait or fail, woken again, and stopped when a store
//! failure halts them.

use std::sync::Arc;

use super::timers::DueTimers;
use super::{Engine, Halt, InstanceRecord, Status, WorkflowEntry, cluster};
use crate::error::ResumeError;
use crate::otel::TraceParent;
use crate::store::{Batch, StoreError, Wait, keys};

/// The longest wait between two looks of an instance paused by a store
/// failure on a shared store (the first is after 1 s, then twice longer
/// each time): thousands of paused instances must not hammer a database
/// that is coming back.
const PAUSED_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl Engine {
    /// Claims instance `id` for a task in this process: `false` if one runs
    /// already (it is told to look for work again) or the runtime is closing.
    pub(super) fn claim(&self, id: &str) -> bool {
        if self.is_closing() || !self.runs_here(id) {
            return false;
        }
        self.book.claim(id, true)
    }

    /// Claims instance `id`, which this process is about to create or
    /// replace, before the commit that writes it: a wake-up that comes
    /// between the commit and the task's start (a signal sent at once, a
    /// due timer) finds the claim and leaves the instance to the task,
    /// which starts from the record written. Unclaimed when a task of this
    /// process holds it already (it is told to look again once the record
    /// is written), or when this process runs no instances.
    pub(crate) fn claim_for_create(self: &Arc<Self>, id: &str) -> Creating {
        let runs = !self.store.shared() || self.member.is_some();
        let held = runs && !self.is_closing() && self.book.claim(id, false);
        Creating {
            engine: self.clone(),
            id: id.to_owned(),
            held,
        }
    }

    /// Spawns the task that drives instance `id` from `record`, unless one
    /// is running already (then that one looks for work again).
    pub(crate) fn spawn(
        self: &Arc<Self>,
        id: String,
        record: InstanceRecord,
        entry: WorkflowEntry,
    ) {
        if self.claim(&id) {
            self.spawn_claimed(id, record, entry);
        }
    }

    /// Spawns the task that drives instance `id` from `record`, its claim
    /// taken already ([`Engine::claim`]).
    pub(super) fn spawn_claimed(
        self: &Arc<Self>,
        id: String,
        record: InstanceRecord,
        entry: WorkflowEntry,
    ) {
        let workflow = record.workflow.clone();
        let trace = record.trace;
        self.spawn_task(
            &id,
            &workflow,
            trace,
            self.clone().run(id.clone(), record, entry),
        );
    }

    /// Adds an instance task (claimed by [`Engine::claim`]) to the task set.
    fn spawn_task(
        &self,
        id: &str,
        workflow: &str,
        trace: Option<TraceParent>,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.add_task(tracing::Instrument::instrument(
            task,
            instance_span(id, workflow, trace),
        ));
    }

    /// Adds `task` to the engine's task set, which `shutdown` stops and joins.
    pub(super) fn add_task(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().expect("tasks lock poisoned");
        // reap finished tasks so the set does not grow without bound
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Runs `work` as a task of the engine's set and returns its answer.
    /// The work goes on when its caller stops waiting (a request's commit
    /// and the wake-up that must follow it: a caller's timeout must not
    /// leave a stored signal unseen), and `shutdown` stops and joins it
    /// with the instances' tasks ([`StoreError::Closed`] then).
    pub(crate) async fn carried<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.add_task(tracing::Instrument::in_current_span(async move {
            // a caller that stopped waiting no longer hears the answer
            let _ = answer.send(work.await);
        }));
        answered.await.map_err(|_| StoreError::Closed)
    }

    /// The task of a claimed instance: drives it until it finishes, waits
    /// or storage fails, then releases the claim.
    async fn run(self: Arc<Self>, id: String, mut record: InstanceRecord, entry: WorkflowEntry) {
        let engine = self;
        loop {
            // the step loop's future is large (every command's runner):
            // boxed, the task's own future stays small to spawn and move
            let halt = Box::pin(engine.drive(&id, &mut record, entry)).await;
            if matches!(halt, Halt::Interrupted) {
                continue;
            }
            if matches!(halt, Halt::Waiting) {
                // woken while deciding to wait: look again; otherwise the
                // claim is given up (under the same lock as the look)
                let look_again =
                    engine
                        .book
                        .look_again_or_release(&id, engine.is_closing(), || {
                            if let Some(hook) = &engine.test_hooks.deciding_to_wait {
                                hook(&id);
                            }
                        });
                if look_again {
                    continue;
                }
                return;
            }
            if let (Halt::Finished, Some(hook)) = (&halt, &engine.test_hooks.ending) {
                hook(&id);
            }
            // a reset or a new run of the id that came meanwhile found this
            // task's claim and left the instance to it
            let rewoken = engine.release(&id);
            match halt {
                Halt::Finished => {
                    if rewoken {
                        Box::pin(engine.resume_if_started_again(&id)).await;
                    }
                    engine.wake(&id);
                    // a schedule may wait for this run to end; schedules start
                    // runs as `<schedule>@<nominal time>`
                    // (`schedule::run_id`), so other ids need no look at them
                    if id.contains('@') {
                        engine.schedule_wake.notify_one();
                    }
                    for child in std::mem::take(&mut record.children) {
                        let cancelling = engine.clone();
                        // parent-close policy: cancel what is still running
                        engine.add_task(async move {
                            let engine = cancelling;
                            let running = matches!(engine.load(&child).await, Ok(Some(Ok(r))) if !r.status.is_terminal());
                            if running
                                && let Err(e) = engine
                                    .request_control(&child, keys::CANCEL, Vec::new())
                                    .await
                            {
                                tracing::error!(child = %child, error = %e, "cannot cancel the child");
                            }
                        });
                    }
                    // a parent racing this child in a select looks at once
                    if let Some(parent) = &record.parent {
                        // boxed, as every rare await of this task: the task's
                        // future is moved whole when it is spawned
                        let woken = Box::pin(async {
                            engine.interrupt_if_a_branch_came(parent).await?;
                            engine.wake_instance(parent).await
                        })
                        .await;
                        if let Err(e) = woken {
                            tracing::error!(instance = %id, parent = %parent, error = %e, "cannot wake the parent");
                        }
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
                Halt::Store(e) if engine.member.is_some() && !e.refuses_the_batch() => {
                    // the database may come back: look again from the last
                    // checkpoint (an in-doubt commit is read back), less
                    // often the longer it stays away
                    tracing::warn!(instance = %id, error = %e, "instance paused: store failed; retrying in 1 s");
                    let retrying = engine.clone();
                    engine.add_task(async move {
                        let engine = retrying;
                        // until the store answers again: an instance stopped
                        // for good here while the database was out of reach
                        // would answer `result()` with that old error even
                        // after another worker finished it
                        let mut wait = std::time::Duration::from_secs(1);
                        loop {
                            tokio::time::sleep(wait).await;
                            if engine.is_closing() {
                                break;
                            }
                            match engine.wake_instance(&id).await {
                                Ok(_) => break,
                                Err(e) => {
                                    wait = (wait * 2).min(PAUSED_RETRY_MAX);
                                    tracing::warn!(instance = %id, error = %e, retry_in = ?wait, "instance still paused: store failed");
                                }
                            }
                        }
                    });
                }
                // refused for what it writes (the same batch would be
                // refused again: running the step again would only repeat
                // its activity), or on a store of this process alone
                Halt::Store(e) => engine.halt(&id, e),
                Halt::Parked | Halt::Payload(_) => {
                    if rewoken {
                        Box::pin(engine.resume_if_started_again(&id)).await;
                    }
                    engine.wake(&id);
                }
                Halt::Waiting | Halt::Interrupted | Halt::Stopping => {}
            }
            return;
        }
    }

    /// Whether the runtime is shutting down: no new task, step, attempt or
    /// part starts (see `Runtime::shutdown_timeout`).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Releases the claim of instance `id`'s task (it ends): whether it
    /// was woken meanwhile.
    pub(super) fn release(&self, id: &str) -> bool {
        self.book.release(id)
    }

    /// Runs instance `id` again if its stored record runs: a reset or a new
    /// run of the id made while this process's task was ending it.
    async fn resume_if_started_again(self: &Arc<Self>, id: &str) {
        if self.is_closing() {
            return;
        }
        if matches!(self.load(id).await, Ok(Some(Ok(r))) if r.status == Status::Running)
            && let Err(e) = self.wake_instance(id).await
        {
            tracing::error!(instance = %id, error = %e, "cannot resume the instance started again");
        }
    }

    /// Stops instance `id` in this process because storage failed (its
    /// claim already released): its last durable checkpoint stands.
    fn halt(&self, id: &str, e: StoreError) {
        tracing::error!(instance = %id, error = %e, "instance stopped: store failed");
        self.book.halt(id, e);
        self.wake(id);
    }

    /// Wakes instance `id` if it waits for something that may have come
    /// (a due timer, a signal): loads it and spawns its task.
    ///
    /// The wake-up runs as a task of its own: a caller that stops waiting
    /// for it (a `signal()` whose future is dropped once the signal is
    /// stored) neither loses the wake-up nor leaves the instance claimed
    /// by a look that never ends.
    pub(crate) async fn wake_instance(self: &Arc<Self>, id: &str) -> Result<(), StoreError> {
        let (engine, id) = (self.clone(), id.to_owned());
        self.carried(async move { engine.wake_now(&id).await })
            .await?
    }

    /// Wakes instance `id` after `delay`, in a task of the engine's set: a
    /// look that cannot be made now (the store failed, or a wake-up came
    /// while another look held the claim).
    pub(super) fn wake_later(self: &Arc<Self>, id: &str, delay: std::time::Duration) {
        let (engine, id) = (self.clone(), id.to_owned());
        self.add_task(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = engine.wake_instance(&id).await {
                tracing::error!(instance = %id, error = %e, "cannot wake the instance");
            }
        });
    }

    /// [`Engine::wake_instance`]'s work, in its task.
    async fn wake_now(self: &Arc<Self>, id: &str) -> Result<(), StoreError> {
        if !self.runs_here(id) {
            // another process runs it; the batch that changed it told that one
            return Ok(());
        }
        loop {
            // claimed before it is read: under the claim no task of this
            // process writes the record, so the task starts from the latest
            // one (a record read first could be older than what a task that
            // ran meanwhile wrote, and would run its steps again)
            if !self.claim(id) {
                // a task runs it (and looks again), or the runtime closes
                return Ok(());
            }
            match self.look_at_woken(id).await {
                // its task runs, holding the claim
                Ok(true) => return Ok(()),
                // nothing to run; a wake that came during the look is looked at again
                Ok(false) if self.release(id) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    let _ = self.release(id);
                    return Err(e);
                }
            }
        }
    }

    /// The deletion of ended instance `id`'s due timers (what woke it). The
    /// due timers come first in the index: it is read in pages up to the
    /// first one not due, never whole (its size grows with every sleeper
    /// of the store); one not due yet is deleted when it comes due.
    async fn due_timers_of(&self, id: &str) -> Result<Batch, StoreError> {
        let mut due = DueTimers::at(crate::clock::now_ms(&*self.clock), 64);
        let mut batch = Batch::default();
        while let Some((key, _, owner)) = due.next(self).await? {
            if owner == id {
                batch.delete(key);
            }
        }
        Ok(batch)
    }

    /// [`Engine::wake_instance`]'s look at instance `id`, under its claim:
    /// whether a task was spawned to drive it (the claim goes to the task).
    async fn look_at_woken(self: &Arc<Self>, id: &str) -> Result<bool, StoreError> {
        let record = match self.load(id).await? {
            None => return Ok(false),
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
                return Ok(false);
            }
        };
        if record.status != Status::Running {
            if record.status.is_terminal() {
                // what it waited for no longer matters: drop its due timers
                let batch = self.due_timers_of(id).await?;
                if !batch.writes.is_empty() {
                    let store = self.store.clone();
                    self.add_task(async move {
                        let _ = store.commit(batch).await;
                    });
                }
            }
            return Ok(false);
        }
        if !self.resolve_on_wake {
            // a runtime that resumes nothing (a tool) only runs what fits as stored
            let Some(entry) =
                self.workflows
                    .exact(&record.workflow, record.fingerprint, record.version)
            else {
                return Ok(false);
            };
            self.spawn_claimed(id.to_owned(), record, entry);
            return Ok(true);
        }
        // sleepers were not checked on open: each load is checked as open
        // checks the others (this costs a state decode)
        let mut moved = record.clone();
        match self.resolve(id, &mut moved) {
            Ok(entry) if moved.new_events.is_empty() => {
                self.spawn_claimed(id.to_owned(), moved, entry);
            }
            // a migration, upgrade or parking is written before anything runs
            _ => self.settle_claimed(id, &record.workflow, record.trace),
        }
        Ok(true)
    }

    /// In a task of claimed instance `id`: loads it again, resolves it (as
    /// [`Engine::recover`] does on open: migration or upgrade written with
    /// its history event, or parked and reported) and drives it.
    fn settle_claimed(self: &Arc<Self>, id: &str, workflow: &str, trace: Option<TraceParent>) {
        let engine = self.clone();
        let owned = id.to_owned();
        self.spawn_task(id, workflow, trace, async move {
            let id = owned;
            // read again under the claim: no other task writes it meanwhile
            let settled = match engine.load_read(&id, Wait::Task).await {
                Ok(Some((read, Ok(record)))) if record.status == Status::Running => {
                    engine.settle(&id, record, read).await
                }
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            };
            match settled {
                Ok(Some((record, entry))) => engine.run(id, record, entry).await,
                Ok(None) => {
                    // parked: a reset made meanwhile found this claim
                    if engine.release(&id) {
                        Box::pin(engine.resume_if_started_again(&id)).await;
                    }
                    // a `result()` waiting for it hears that it is parked
                    engine.wake(&id);
                }
                Err(e) => {
                    let _ = engine.release(&id);
                    engine.halt(&id, e);
                }
            }
        });
    }
}

/// The claim [`Engine::claim_for_create`] takes: handed to the instance's
/// task by [`Creating::spawn`] once the record is written, or given back
/// when dropped (the commit failed, or another worker runs the instance),
/// and then a wake-up that came meanwhile looks again.
pub(crate) struct Creating {
    engine: Arc<Engine>,
    id: String,
    held: bool,
}

impl Creating {
    /// Starts the task of the instance from `record`, the record just
    /// written (see [`Engine::spawn`] when the claim was not taken).
    pub(crate) fn spawn(mut self, record: InstanceRecord, entry: WorkflowEntry) {
        let id = self.id.clone();
        if std::mem::take(&mut self.held) {
            self.engine.spawn_claimed(id, record, entry);
        } else {
            self.engine.spawn(id, record, entry);
        }
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        if self.held && self.engine.release(&self.id) {
            self.engine.wake_later(&self.id, std::time::Duration::ZERO);
        }
    }
}

/// The span of one task running instance `id`: every event inside carries
/// the ids, and (feature `otel`) it belongs to the instance's trace. A root
/// span: the task outlives whatever span spawned it (a request, another
/// instance's task), and is not part of it.
fn instance_span(id: &str, workflow: &str, trace: Option<TraceParent>) -> tracing::Span {
    let span = tracing::info_span!(parent: None, "instance", id = %id, workflow = %workflow);
    TraceParent::adopt(trace, &span);
    span
}
