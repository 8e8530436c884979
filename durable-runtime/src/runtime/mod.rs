//! The public face: [`Builder`] → [`Runtime`] → [`WorkflowHandle`].
//!
//! `builder` configures and opens, `inspect` reads what is stored,
//! `transfer` exports and imports instances, `handle` is one typed instance;
//! starting, signalling, cancelling and shutting down are here.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::codec;
use crate::command::{Executor, Request};
use crate::engine::{Engine, InstanceRecord, WorkflowEntry, now_ms};
use crate::error::{ResultError, ResumeError, SignalError, StartError};
use crate::store::StoreError;
use crate::workflow::{Workflow, WorkflowCall};

mod builder;
mod handle;
mod inspect;
mod promises;
mod schedules;
mod transfer;
mod updates;

pub use builder::{Builder, IdPolicy, WorkerInfo};
pub use handle::WorkflowHandle;
pub use inspect::{Description, ListFilter};
pub use schedules::Schedules;

/// The durable-execution runtime embedded in your tokio service.
///
/// Opening it resumes every unfinished workflow instance it finds; starting
/// a workflow returns once its first checkpoint is durable. Clones are
/// cheap and share everything (hand one to each handler, to
/// [`http::router`](crate::http::router)...); [`Runtime::shutdown`] of any
/// clone stops them all.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Arc<Engine>,
    resumed: usize,
    /// One per clone: the engine references that are clones of this
    /// runtime rather than helpers still finishing (see `shutdown`).
    clones: Arc<()>,
}

/// The runtime an `Arc` holds (a clone of it: they share everything).
impl From<Arc<Runtime>> for Runtime {
    fn from(runtime: Arc<Runtime>) -> Runtime {
        (*runtime).clone()
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("resumed", &self.resumed)
            .finish()
    }
}

impl Runtime {
    /// How many unfinished instances were read and resumed when the runtime
    /// opened: those with something to do now (running, waiting for a
    /// signal or a child, unparked, asleep with a cancel or terminate
    /// request). Instances asleep on a timer are not read on open and not
    /// counted: each is loaded, and checked against the code, when its
    /// timer fires or something else wakes it.
    pub fn resumed_on_open(&self) -> usize {
        self.resumed
    }

    /// The workers sharing this store (PostgreSQL), as their leases say,
    /// with how many unfinished instances each owns; empty on sled.
    pub fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        use crate::store::keys;
        let this = self.engine.member.as_ref().map(|m| m.name.as_str());
        let now = now_ms();
        let mut workers = Vec::new();
        for (key, bytes) in self.engine.store.scan_prefix(&[keys::LEASE])? {
            let name = keys::instance_id(&key);
            let lease: crate::engine::LeaseRecord =
                codec::decode(&bytes).map_err(|e| StoreError::Corrupt {
                    key: name.clone(),
                    reason: e.to_string(),
                })?;
            let instances = self
                .engine
                .store
                .scan_prefix(&keys::owned_prefix(&name))?
                .len();
            workers.push(WorkerInfo {
                this_process: this == Some(name.as_str()),
                name,
                incarnation: lease.incarnation,
                started_ms: lease.started_ms,
                lease_expires_ms: lease.expires_ms,
                lapsed: lease.expires_ms < now,
                instances,
                queues: lease.queues,
            });
        }
        Ok(workers)
    }

    /// Instances that have a task in this process now. Instances sleeping on
    /// a timer or waiting for a signal have none: they cost disk, not RAM.
    pub fn running_instances(&self) -> usize {
        self.engine
            .running
            .lock()
            .expect("running lock poisoned")
            .len()
    }

    /// The per-instance bookkeeping this process holds, by map, for the
    /// maps that hold any: what a test of leaks reads once every instance
    /// has ended (each should then be empty).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn resident(&self) -> Vec<(&'static str, usize)> {
        self.engine.resident()
    }

    /// Instances this code cannot run, with the reason for each, in the
    /// order found: on open (those read then, see
    /// [`Runtime::resumed_on_open`]), then sleepers as they are woken. They
    /// are kept in the store, marked [`Status::Parked`](crate::Status::Parked). A sleeper whose
    /// code changed shows up here only when its timer fires (or a signal,
    /// cancel or terminate wakes it); to know beforehand, ask
    /// [`Runtime::check_compatibility`], which reads every record.
    pub fn parked(&self) -> Vec<ResumeError> {
        self.engine
            .parked
            .lock()
            .expect("parked lock poisoned")
            .clone()
    }

    /// Starts instance `id` of the workflow called in `call`
    /// (`process_order(order)`), returning once its first checkpoint is durable.
    ///
    /// # Errors
    /// [`StartError::AlreadyExists`] if `id` exists and `policy` is
    /// [`IdPolicy::Reject`]; [`StartError::NotRegistered`] if `W` was not
    /// registered on the builder.
    pub async fn start<W: Workflow>(
        &self,
        id: impl Into<String>,
        call: WorkflowCall<W>,
        policy: IdPolicy,
    ) -> Result<WorkflowHandle<W>, StartError> {
        let entry = self
            .engine
            .workflows
            .exact(W::NAME, W::FINGERPRINT, W::VERSION)
            .ok_or(StartError::NotRegistered { workflow: W::NAME })?;
        let input = codec::encode(&call.input)?;
        let id = self
            .start_entry(
                id.into(),
                entry,
                input,
                call.timeout,
                call.run_timeout,
                policy,
            )
            .await?;
        Ok(self.handle(id))
    }

    /// Starts instance `id` of the workflow named `workflow`, on its newest
    /// registered version, with `input` as JSON (for tools, HTTP handlers
    /// and schedules that know the workflow by name). Returns the new
    /// instance's description (its `version` says which version runs it).
    ///
    /// # Errors
    /// [`StartError::UnknownWorkflow`] if no version is registered,
    /// [`StartError::BadInput`] if `input` is not the workflow's input type,
    /// and the errors of [`Runtime::start`].
    pub async fn start_by_name(
        &self,
        id: impl Into<String>,
        workflow: &str,
        input: serde_json::Value,
        policy: IdPolicy,
    ) -> Result<Description, StartError> {
        let entry =
            self.engine
                .workflows
                .newest(workflow)
                .ok_or_else(|| StartError::UnknownWorkflow {
                    workflow: workflow.to_owned(),
                })?;
        let input = (entry.input_from_json)(input).map_err(|reason| StartError::BadInput {
            workflow: workflow.to_owned(),
            reason,
        })?;
        let id = self
            .start_entry(id.into(), entry, input, None, None, policy)
            .await?;
        // the instance exists now (created, or kept by `UseExisting`)
        match self.engine.load(&id)? {
            Some(Ok(record)) => Ok(Description::of(&id, record)),
            Some(Err(e)) => Err(StartError::Codec(e)),
            None => Err(StartError::Store(StoreError::Corrupt {
                key: id,
                reason: "the instance vanished right after its start".into(),
            })),
        }
    }

    pub(super) async fn start_entry(
        &self,
        id: String,
        entry: WorkflowEntry,
        input: Vec<u8>,
        timeout: Option<std::time::Duration>,
        run_timeout: Option<std::time::Duration>,
        policy: IdPolicy,
    ) -> Result<String, StartError> {
        if id.is_empty() || id.contains('\0') {
            return Err(StartError::InvalidId { id });
        }
        let limits = &self.engine.limits;
        if id.len() > limits.id() {
            return Err(StartError::IdTooLong {
                prefix: id.chars().take(64).collect(),
                len: id.len(),
                limit: limits.id(),
            });
        }
        if input.len() > limits.input_bytes {
            return Err(StartError::TooLarge {
                size: input.len(),
                limit: limits.input_bytes,
            });
        }
        let name = entry.name;
        let _claim = Claim::take(&self.engine, &id).await;
        let mut replacing = None;
        if let Some(existing) = self.engine.load(&id)? {
            let ended = existing.as_ref().is_ok_and(|r| r.status.is_terminal());
            let workflow = existing
                .map(|r| r.workflow)
                .unwrap_or_else(|_| "<undecodable>".to_owned());
            match policy {
                IdPolicy::UseExisting if workflow == name => return Ok(id),
                IdPolicy::UseExisting => {
                    return Err(StartError::WrongWorkflow {
                        id,
                        expected: name,
                        found: workflow,
                    });
                }
                IdPolicy::NewRunIfEnded if ended => {
                    // the stored bytes: the new run replaces them only if unchanged
                    let key = crate::store::keys::instance(&id);
                    if let Some(bytes) = self.engine.store.get(&key)?
                        && let Ok(old) = crate::engine::InstanceRecord::decode(&bytes)
                    {
                        replacing = Some((bytes, old));
                    }
                }
                IdPolicy::Reject | IdPolicy::NewRunIfEnded => {
                    return Err(StartError::AlreadyExists { id, workflow });
                }
            }
        }
        let mut record = self
            .engine
            .first_record(name, entry, &input, None, timeout, run_timeout);
        match self.engine.create(&id, &mut record, replacing).await {
            Ok(()) => {}
            // created (or started again) meanwhile by another process
            Err(StoreError::Conflict { .. }) => {
                return match policy {
                    IdPolicy::UseExisting => Ok(id),
                    IdPolicy::Reject | IdPolicy::NewRunIfEnded => Err(StartError::AlreadyExists {
                        id,
                        workflow: name.to_owned(),
                    }),
                };
            }
            Err(e) => return Err(e.into()),
        }
        if record.status.is_terminal() {
            self.engine.waiters.notify(&id);
        } else {
            self.engine.spawn(id.clone(), record, entry);
        }
        Ok(id)
    }

    /// The schedules: workflows started on a cron expression or an interval.
    pub fn schedules(&self) -> Schedules<'_> {
        Schedules {
            engine: &self.engine,
        }
    }

    /// Sends signal `name` to instance `id` with a JSON payload, for tools
    /// (the HTTP API, the web UI) that have no Rust type for it. The JSON
    /// is converted to the type of the instance's pending `signal(name)`
    /// await, so the instance must be waiting for that signal now; from
    /// Rust, [`Runtime::signal`] has no such limit.
    ///
    /// # Errors
    /// [`SignalError::NotWaiting`] if the instance does not wait for
    /// `name` now (or this runtime lacks its workflow's code),
    /// [`SignalError::Payload`] if the JSON does not fit the type, and the
    /// errors of [`Runtime::signal`].
    pub async fn signal_json(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<(), SignalError> {
        self.send_json(id, name, payload, None).await
    }

    /// [`Runtime::signal_json`], with a promise's `mark` (see [`Runtime::send`]).
    pub(super) async fn send_json(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
        mark: Option<(Vec<u8>, &str)>,
    ) -> Result<(), SignalError> {
        let record = self.receiver(id)?;
        let not_waiting = || SignalError::NotWaiting {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        let entry = self
            .engine
            .workflows
            .exact(&record.workflow, record.fingerprint, record.version)
            .ok_or_else(not_waiting)?;
        let (Some(pending), Ok(executor)) =
            (record.pending.as_ref(), Engine::executor_of(&record, entry))
        else {
            return Err(not_waiting());
        };
        let vtable = signal_vtable(pending, &executor, name).ok_or_else(not_waiting)?;
        let bytes = (vtable.from_json)(payload).map_err(|reason| SignalError::Payload {
            id: id.to_owned(),
            name: name.to_owned(),
            reason,
        })?;
        let awaited = (vtable.payload.layout)();
        let layout = awaited.layout.as_ref().ok().map(|l| (awaited.hash, l));
        self.signal_encoded(id, name, bytes, layout, mark).await
    }

    /// Cancels instance `id` (see [`WorkflowHandle::cancel`]).
    pub async fn cancel(&self, id: &str) -> Result<(), ResultError> {
        let d = self.describe(id)?;
        if d.status.is_terminal() {
            return Err(ResultError::Finished {
                id: id.to_owned(),
                status: d.status,
            });
        }
        self.engine
            .request_control(id, crate::store::keys::CANCEL, Vec::new())
            .await?;
        Ok(())
    }

    /// Terminates instance `id` (see [`WorkflowHandle::terminate`]).
    pub async fn terminate(&self, id: &str, reason: &str) -> Result<(), ResultError> {
        let d = self.describe(id)?;
        if d.status.is_terminal() {
            return Err(ResultError::Finished {
                id: id.to_owned(),
                status: d.status,
            });
        }
        let value = codec::encode(&reason.to_owned())?;
        self.engine
            .request_control(id, crate::store::keys::TERMINATE, value)
            .await?;
        Ok(())
    }

    /// Sends signal `name` with `payload` to instance `id`. Returns once the
    /// signal is durable; it is delivered, in the order sent, to the
    /// instance's next `signal(name)` await (buffered until then).
    ///
    /// # Errors
    /// [`SignalError::NotFound`] for an unknown id, [`SignalError::Finished`]
    /// if the instance has ended.
    pub async fn signal<T: serde::Serialize>(
        &self,
        id: &str,
        name: &str,
        payload: &T,
    ) -> Result<(), SignalError> {
        self.send(id, name, payload, None).await
    }

    /// [`Runtime::signal`], and with `mark` (a promise's completion) the
    /// key that must not exist yet and is written with it.
    pub(super) async fn send<T: serde::Serialize>(
        &self,
        id: &str,
        name: &str,
        payload: &T,
        mark: Option<(Vec<u8>, &str)>,
    ) -> Result<(), SignalError> {
        let bytes = codec::encode(payload)?;
        self.check_signal_size(&bytes)?;
        let record = self.receiver(id)?;
        // the payload's layout as sent: read by name if the awaited type is
        // laid out otherwise (a value serde cannot describe goes without)
        let layout = match crate::layout::of_value(payload) {
            Ok(layout) => Some(layout),
            Err(why) => {
                tracing::warn!(instance = %id, signal = %name, "the payload's layout cannot be recorded ({why}): it will be read by position");
                None
            }
        };
        if let Some(layout) = &layout {
            self.refuse_misfit(id, name, &record, layout, std::any::type_name::<T>())?;
        }
        let layout = layout.map(|l| (l.hash(), l));
        self.signal_encoded(id, name, bytes, layout.as_ref().map(|(h, l)| (*h, l)), mark)
            .await
    }

    /// The record of instance `id`, which a signal is sent to: it must
    /// exist, decode and not have ended.
    fn receiver(&self, id: &str) -> Result<InstanceRecord, SignalError> {
        let record = match self.engine.load(id)? {
            None => return Err(SignalError::NotFound { id: id.to_owned() }),
            Some(Err(e)) => return Err(SignalError::Codec(e)),
            Some(Ok(record)) => record,
        };
        if record.status.is_terminal() {
            return Err(SignalError::Finished {
                id: id.to_owned(),
                status: record.status,
            });
        }
        Ok(record)
    }

    /// Refuses a payload over [`Limits::signal_bytes`](crate::Limits).
    fn check_signal_size(&self, payload: &[u8]) -> Result<(), SignalError> {
        let limit = self.engine.limits.signal_bytes;
        if payload.len() > limit {
            return Err(SignalError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Refuses a payload laid out as `sent` when instance `id` waits for
    /// signal `name` now and awaits a type whose layout the payload cannot
    /// cross by name: it would never be delivered as a misread (at delivery
    /// it would park the instance), so the sender hears of it now.
    pub(super) fn refuse_misfit(
        &self,
        id: &str,
        name: &str,
        record: &InstanceRecord,
        sent: &crate::layout::ValueLayout,
        type_name: &str,
    ) -> Result<(), SignalError> {
        let Some(entry) =
            self.engine
                .workflows
                .exact(&record.workflow, record.fingerprint, record.version)
        else {
            return Ok(());
        };
        let (Some(pending), Ok(executor)) =
            (record.pending.as_ref(), Engine::executor_of(record, entry))
        else {
            return Ok(());
        };
        let Some(vtable) = signal_vtable(pending, &executor, name) else {
            return Ok(());
        };
        let Ok(awaited) = &(vtable.payload.layout)().layout else {
            return Ok(());
        };
        let edits =
            crate::layout::diff::shapes(&sent.shape, &sent.types, &awaited.shape, &awaited.types);
        if crate::layout::diff::compatible(&edits) {
            return Ok(());
        }
        Err(SignalError::Payload {
            id: id.to_owned(),
            name: name.to_owned(),
            reason: format!(
                "the payload is a `{type_name}`, laid out otherwise than the awaited `{}`: {}",
                vtable.type_name,
                edits
                    .iter()
                    .filter(|e| !e.compatible)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        })
    }

    /// Stores signal `name` with its encoded payload (and the payload's
    /// layout, once per store) and wakes the instance.
    pub(super) async fn signal_encoded(
        &self,
        id: &str,
        name: &str,
        payload: Vec<u8>,
        layout: Option<(u64, &crate::layout::ValueLayout)>,
        mark: Option<(Vec<u8>, &str)>,
    ) -> Result<(), SignalError> {
        self.check_signal_size(&payload)?;
        let value = codec::encode(&(name, payload, layout.map_or(0, |(hash, _)| hash)))?;
        let shared = self.engine.store.shared();
        let mut tries = 0;
        loop {
            let seq = if shared {
                // senders in several processes: ordered by the time sent
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let seq = &self.engine.signal_seq;
                seq.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            } else {
                self.engine
                    .signal_seq
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            };
            let key = crate::store::keys::signal(id, seq);
            let mut batch = crate::store::Batch::default();
            if let Some((hash, layout)) = layout {
                self.engine.store_value_layout(hash, layout, &mut batch)?;
            }
            batch.put(key.clone(), value.clone());
            if let Some((mark, _)) = &mark {
                // exactly once: the second completion finds the mark
                batch
                    .expect(mark.clone(), None)
                    .put(mark.clone(), Vec::new());
            }
            if shared {
                // another process may have used the same number; the owner
                // elsewhere hears of it
                batch.expect(key, None).notify(format!("w{id}"));
            }
            match self.engine.store.commit(batch).await {
                Err(StoreError::Conflict { key })
                    if mark
                        .as_ref()
                        .is_some_and(|(m, _)| key == crate::store::printable(m)) =>
                {
                    return Err(SignalError::AlreadyCompleted {
                        token: mark.map(|(_, t)| t.to_owned()).unwrap_or_default(),
                    });
                }
                Err(StoreError::Conflict { .. }) if tries < 3 => tries += 1,
                other => break other?,
            }
        }
        if let Some((hash, _)) = layout {
            self.engine.value_layout_stored(hash);
        }
        // a select racing activities against this signal is interrupted now,
        // not when its running attempt ends
        let racing = self
            .engine
            .running
            .lock()
            .expect("running lock poisoned")
            .contains_key(id);
        if racing
            && let Ok(Some(Ok(record))) = self.engine.load(id)
            && let Some(crate::command::Request::Select(branches)) = &record.pending
            && branches
                .iter()
                .any(|b| matches!(b, crate::command::Request::Signal { name: n } if n == name))
        {
            self.engine.interrupts.notify(id);
        }
        self.engine.wake_instance(id)?;
        Ok(())
    }

    /// Starts instance `id` if it does not exist (keeping it if it does),
    /// then sends it the signal: "signal with start".
    pub async fn signal_with_start<W: Workflow, T: serde::Serialize>(
        &self,
        id: impl Into<String>,
        call: WorkflowCall<W>,
        name: &str,
        payload: &T,
    ) -> Result<WorkflowHandle<W>, SignalError> {
        let handle = self.start(id, call, IdPolicy::UseExisting).await?;
        self.signal(handle.id(), name, payload).await?;
        Ok(handle)
    }

    /// Whether the runtime can serve: open (not shut down) and its store
    /// answering a read. What a readiness probe asks (`GET /readyz`).
    ///
    /// # Errors
    /// [`StoreError::Closed`] after shutdown; the store's error otherwise.
    pub fn ready(&self) -> Result<(), StoreError> {
        if self
            .engine
            .closing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::Closed);
        }
        self.engine
            .store
            .get(&crate::store::keys::instance("\u{1}ready"))
            .map(drop)
    }

    /// A handle to instance `id` of workflow `W` (whether or not it exists).
    pub fn handle<W: Workflow>(&self, id: impl Into<String>) -> WorkflowHandle<W> {
        WorkflowHandle {
            id: id.into(),
            engine: Arc::downgrade(&self.engine),
            _workflow: PhantomData,
        }
    }

    /// Stops every instance task at once and closes the store, for every
    /// clone of this runtime (the store's file is released when the last
    /// clone is dropped). Instances not finished resume when a runtime
    /// opens the store again; an activity attempt cut off here runs again
    /// then (use [`Runtime::shutdown_timeout`] to let attempts finish).
    /// Handles and clones answer [`StoreError::Closed`] afterwards.
    pub async fn shutdown(self) {
        self.engine
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stop().await;
    }

    /// A graceful [`shutdown`](Runtime::shutdown): from the moment it is
    /// called no instance starts a new step, activity attempt or `join_all`
    /// part; the attempts running may finish within `grace`, and each
    /// instance stops at the checkpoint of what it finished, so nothing
    /// that ended is run again when the store opens next. What is still
    /// running after `grace` is stopped as by `shutdown`. A deploy calls
    /// this on SIGTERM with a grace below the orchestrator's own.
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn run(runtime: durable_runtime::Runtime) {
    /// tokio::signal::ctrl_c().await.ok();
    /// runtime
    ///     .shutdown_timeout(std::time::Duration::from_secs(20))
    ///     .await;
    /// # }
    /// ```
    pub fn shutdown_timeout(
        self,
        grace: std::time::Duration,
    ) -> impl std::future::Future<Output = ()> + Send {
        // at the call, not at the first poll: nothing starts after it
        self.engine
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        async move {
            let engine = self.engine.clone();
            let drained = async {
                loop {
                    let idle = engine.idle.notified();
                    tokio::pin!(idle);
                    idle.as_mut().enable();
                    if engine
                        .running
                        .lock()
                        .expect("running lock poisoned")
                        .is_empty()
                    {
                        return;
                    }
                    idle.await;
                }
            };
            if tokio::time::timeout(grace, drained).await.is_err() {
                tracing::warn!(
                    still_running = self.running_instances(),
                    "shutdown: instances still running after the grace period are stopped; their attempts run again when the store opens next"
                );
            }
            self.stop().await;
        }
    }

    /// Aborts the tasks left, hands instances over and closes the store.
    async fn stop(self) {
        // tasks may spawn tasks while they stop: repeat until none is left
        loop {
            let mut tasks =
                std::mem::take(&mut *self.engine.tasks.lock().expect("tasks lock poisoned"));
            if tasks.is_empty() {
                break;
            }
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // a worker sharing the store hands its instances to the others now
        // rather than after its lease
        if let Err(e) = self.engine.leave().await {
            tracing::warn!(error = %e, "could not hand instances over; they are taken over when the lease lapses");
        }
        // short-lived helpers (a child's cancel, a stale timer's removal) hold
        // the engine for a moment; the store closes when the last one ends
        for _ in 0..1000 {
            if Arc::strong_count(&self.engine) <= Arc::strong_count(&self.clones) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.engine
            .store_closed
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// The payload codec of the `signal(name)` await in `request`, found by
/// walking the request beside the executor the workflow's code gave for it.
fn signal_vtable<'e>(
    request: &Request,
    executor: &'e Executor,
    name: &str,
) -> Option<&'e crate::command::SignalVTable> {
    match (request, executor) {
        (Request::Signal { name: n }, Executor::Signal(vtable)) if n == name => Some(vtable),
        (Request::Select(branches), Executor::Select(execs)) => branches
            .iter()
            .zip(execs)
            .find_map(|(b, e)| signal_vtable(b, e, name)),
        (Request::Select(branches), Executor::Each(each)) => {
            branches.iter().find_map(|b| signal_vtable(b, each, name))
        }
        _ => None,
    }
}

/// Keeps two concurrent starts of one id from both creating it.
struct Claim<'a> {
    engine: &'a Engine,
    id: String,
}

impl<'a> Claim<'a> {
    async fn take(engine: &'a Engine, id: &str) -> Claim<'a> {
        loop {
            if engine
                .creating
                .lock()
                .expect("creating lock poisoned")
                .insert(id.to_owned())
            {
                return Claim {
                    engine,
                    id: id.to_owned(),
                };
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut creating) = self.engine.creating.lock() {
            creating.remove(&self.id);
        }
    }
}
