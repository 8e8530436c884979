//! The public face: [`Builder`] → [`Runtime`] → [`WorkflowHandle`].
//!
//! `builder` configures and opens, `inspect` reads what is stored,
//! `transfer` exports and imports instances, `handle` is one typed
//! instance, `signals` and `updates` send to instances, `promises`
//! completes them; starting, cancelling and shutting down are here.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::codec;
use crate::engine::{Engine, WorkflowEntry};
use crate::error::{ResetError, ResultError, ResumeError, StartError};
use crate::store::StoreError;
use crate::workflow::{Workflow, WorkflowCall};

mod batch;
mod builder;
mod handle;
mod inspect;
mod listing;
mod metrics;
mod promises;
mod schedules;
mod signals;
mod transfer;
mod updates;
mod workers;

pub use builder::{Builder, IdPolicy};
pub use handle::WorkflowHandle;
pub use inspect::Description;
pub use listing::MatchedCounts;
pub use metrics::Metrics;
pub use schedules::Schedules;
pub use workers::WorkerInfo;

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

    /// Instances that have a task in this process now. Instances sleeping on
    /// a timer or waiting for a signal have none: they cost disk, not RAM.
    pub fn running_instances(&self) -> usize {
        self.engine.book.tasks()
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

    /// Resets ended or parked instance `id` to an earlier step: a new run
    /// goes on from the state its checkpoint of that step stored, running
    /// again the command it awaited there (with new idempotency keys); the
    /// history goes on with an `EventKind::Reset`. See [`reset`](crate::reset).
    ///
    /// # Errors
    /// [`ResetError::Active`] while it runs or waits (cancel or terminate
    /// it first); [`ResetError::PointGone`] when no state is kept for that
    /// step (the error lists those kept); [`ResetError::LayoutChanged`]
    /// when the kept state cannot run on the registered code;
    /// [`ResetError::Unknown`], [`ResetError::Event`],
    /// [`ResetError::Conflict`]. Nothing is written then.
    pub async fn reset(
        &self,
        id: &str,
        to: crate::reset::ResetTo,
        reason: &str,
    ) -> Result<crate::reset::Reset, ResetError> {
        self.engine.reset(id, to, reason, None).await
    }

    /// The states instance `id` keeps that [`Runtime::reset`] can take it
    /// back to, oldest first ([`Builder::reset_points`] of them).
    pub fn reset_points(&self, id: &str) -> Result<Vec<crate::reset::ResetPoint>, ResetError> {
        crate::store::blocking(|| crate::store::now(self.engine.reset_points_of(id)))
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
        let (id, _) = self
            .start_with(id.into(), call, policy, crate::store::Batch::default())
            .await?;
        Ok(self.handle(id))
    }

    /// [`Runtime::start`], with `with` committed in the creation's batch
    /// (dropped if the id exists): the id and whether it was created.
    pub(super) async fn start_with<W: Workflow>(
        &self,
        id: String,
        call: WorkflowCall<W>,
        policy: IdPolicy,
        with: crate::store::Batch,
    ) -> Result<(String, bool), StartError> {
        let entry = self
            .engine
            .workflows
            .exact(W::NAME, W::FINGERPRINT, W::VERSION)
            .ok_or(StartError::NotRegistered { workflow: W::NAME })?;
        let input = codec::encode(&call.input)?;
        self.start_entry(
            id,
            entry,
            input,
            (call.timeout, call.run_timeout),
            policy,
            with,
        )
        .await
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
        let (id, _) = self
            .start_entry(
                id.into(),
                entry,
                input,
                (None, None),
                policy,
                crate::store::Batch::default(),
            )
            .await?;
        // the instance exists now (created, or kept by `UseExisting`)
        match self.engine.load(&id).await? {
            Some(Ok(record)) => Ok(Description::of(&id, record)),
            Some(Err(e)) => Err(StartError::Codec(e)),
            None => Err(StartError::Store(StoreError::Corrupt {
                key: id,
                reason: "the instance vanished right after its start".into(),
            })),
        }
    }

    /// Starts instance `id` of `entry` with `input`, within `timeouts`
    /// (execution, run), per `policy`, with `with` in the creation's batch:
    /// the id and whether this call created it.
    pub(super) async fn start_entry(
        &self,
        id: String,
        entry: WorkflowEntry,
        input: Vec<u8>,
        (timeout, run_timeout): (Option<std::time::Duration>, Option<std::time::Duration>),
        policy: IdPolicy,
        with: crate::store::Batch,
    ) -> Result<(String, bool), StartError> {
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
        // `Reject` needs no look first: the creation is conditional on the
        // id being free, and a conflict reads what holds it (a round trip
        // less per start on PostgreSQL)
        let existing = match policy {
            IdPolicy::Reject => None,
            IdPolicy::UseExisting | IdPolicy::NewRunIfEnded => self.engine.load(&id).await?,
        };
        if let Some(existing) = existing {
            let ended = existing.as_ref().is_ok_and(|r| r.status.is_terminal());
            let workflow = existing
                .map(|r| r.workflow)
                .unwrap_or_else(|_| "<undecodable>".to_owned());
            match policy {
                IdPolicy::UseExisting if workflow == name => return Ok((id, false)),
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
                    if let Some(bytes) = self.engine.get(&key).await?
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
        let creating = self.engine.claim_for_create(&id);
        match self.engine.create(&id, &mut record, replacing, with).await {
            Ok(()) => {}
            // the id is taken (created, or started again, meanwhile by
            // another process)
            Err(StoreError::Conflict { .. }) => {
                return match policy {
                    IdPolicy::UseExisting => Ok((id, false)),
                    IdPolicy::Reject | IdPolicy::NewRunIfEnded => {
                        let workflow = match self.engine.load(&id).await {
                            Ok(Some(Ok(r))) => r.workflow,
                            Ok(Some(Err(_))) => "<undecodable>".to_owned(),
                            Ok(None) | Err(_) => name.to_owned(),
                        };
                        Err(StartError::AlreadyExists { id, workflow })
                    }
                };
            }
            Err(e) => return Err(e.into()),
        }
        self.engine.metrics.started(entry.name);
        if record.status.is_terminal() {
            self.engine.waiters.notify(&id);
        } else {
            creating.spawn(record, entry);
        }
        Ok((id, true))
    }

    /// The schedules: workflows started on a cron expression or an interval.
    pub fn schedules(&self) -> Schedules<'_> {
        Schedules {
            engine: &self.engine,
        }
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

    /// Whether the runtime can serve: open (not shut down) and its store
    /// answering a read. What a readiness probe asks (`GET /readyz`).
    ///
    /// # Errors
    /// [`StoreError::Closed`] after shutdown; the store's error otherwise.
    pub fn ready(&self) -> Result<(), StoreError> {
        crate::store::blocking(|| {
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
        })
    }

    /// A typed handle to instance `id` of workflow `W`: the same
    /// [`WorkflowHandle`] that [`Runtime::start`] returns, for code that
    /// has only the id (another request, another task, a process started
    /// after a restart). [`WorkflowHandle::result`] waits for the instance
    /// to end and returns its output as `W::Output`.
    ///
    /// Nothing is read here: the handle is made whether or not the
    /// instance exists. Its methods answer [`ResultError::NotFound`] for an
    /// unknown id and [`ResultError::WrongWorkflow`] for an instance of
    /// another workflow. A handle does not keep the runtime open: after
    /// [`shutdown`](Runtime::shutdown) it answers [`StoreError::Closed`]
    /// (in [`ResultError::Store`]). Callers without the workflow's types
    /// use [`Runtime::result_json`].
    ///
    /// ```no_run
    /// use durable_runtime::prelude::*;
    ///
    /// #[activity]
    /// async fn send_welcome(email: String) -> Result<String, ActivityError> {
    ///     Ok(format!("welcome mail sent to {email}"))
    /// }
    ///
    /// #[workflow]
    /// async fn onboarding(email: String) -> Result<String, WorkflowError> {
    ///     let receipt = send_welcome(email).await?;
    ///     Ok(receipt)
    /// }
    ///
    /// // in another request than the one that started instance `id`
    /// async fn receipt(
    ///     runtime: &Runtime,
    ///     id: &str,
    /// ) -> Result<String, Box<dyn std::error::Error>> {
    ///     let handle = runtime.handle::<onboarding>(id);
    ///     // outer error: the result could not be had (`ResultError`);
    ///     // inner: the workflow returned `Err`
    ///     Ok(handle.result().await??)
    /// }
    /// # let _ = receipt;
    /// ```
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
                    let idle = engine.book.idle.notified();
                    tokio::pin!(idle);
                    idle.as_mut().enable();
                    if engine.book.tasks() == 0 {
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
        // a read on the store's thread pool holds the store until it ends,
        // even when the task that awaited it was stopped
        for _ in 0..1000 {
            if self.engine.store.reads_running() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.engine
            .store_closed
            .store(true, std::sync::atomic::Ordering::Release);
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
            if engine.book.begin_create(id) {
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
        self.engine.book.end_create(&self.id);
    }
}
