//! The public face: [`Builder`] → [`Runtime`] → [`WorkflowHandle`].

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Semaphore;

use crate::clock::{Clock, SystemClock};
use crate::codec;
use crate::command::{Executor, Request};
use crate::engine::{Engine, InstanceRecord, Status, WorkflowEntry, guarded, now_ms};
use crate::error::{ResultError, ResumeError, SignalError, StartError};
use crate::phase::Phase;
use crate::store::sled::SledStore;
use crate::store::{Store, StoreError};
use crate::workflow::{Op, Outcome, Workflow, WorkflowCall};

/// What [`Runtime::start`] does when the id is already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPolicy {
    /// Fail with [`StartError::AlreadyExists`].
    Reject,
    /// Return a handle to the existing instance (its input is kept; the new
    /// one is ignored). Running the same start twice never runs it twice.
    UseExisting,
}

/// Configures and opens a [`Runtime`].
pub struct Builder {
    workflows: crate::engine::Registry,
    max_concurrent_activities: usize,
    resume_on_open: bool,
    clock: Arc<dyn Clock>,
    retention: Option<std::time::Duration>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workflows", &self.workflows.names().collect::<Vec<_>>())
            .field("max_concurrent_activities", &self.max_concurrent_activities)
            .field("resume_on_open", &self.resume_on_open)
            .finish()
    }
}

fn input_from_json<W: Workflow>(json: serde_json::Value) -> Result<Vec<u8>, String> {
    let input: W::Input = serde_json::from_value(json).map_err(|e| e.to_string())?;
    codec::encode(&input).map_err(|e| e.to_string())
}

fn input_to_json<W: Workflow>(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let input: W::Input = codec::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_value(input).map_err(|e| e.to_string())
}

impl Builder {
    /// Registers a workflow, so it can be started and its unfinished
    /// instances are resumed on open. Its activities need no registration:
    /// the workflow's code knows them.
    pub fn workflow<W: Workflow>(mut self) -> Self {
        self.workflows.insert(
            W::NAME,
            WorkflowEntry {
                fingerprint: W::FINGERPRINT,
                drive: W::drive,
                variants: W::VARIANTS,
                input_from_json: input_from_json::<W>,
                input_to_json: input_to_json::<W>,
            },
        );
        self
    }

    /// Registers `W` and lets instances of other versions of the same
    /// workflow name continue on `W` when the variant they wait at has the
    /// same own fingerprint in `W` (an edit elsewhere in the function, such as
    /// a step added after it). The move is recorded in the history. Without
    /// it such instances are parked (the default: pinned to their version).
    pub fn workflow_upgrading<W: Workflow>(mut self) -> Self {
        self = self.workflow::<W>();
        self.workflows.allow_upgrade(W::NAME);
        self
    }

    /// Activity attempts allowed to run at once (default 1,000).
    pub fn max_concurrent_activities(mut self, n: usize) -> Self {
        self.max_concurrent_activities = n.max(1);
        self
    }

    /// The clock for timers, retry backoff and [`now()`](crate::now)
    /// (default: the system clock). Tests pass a
    /// [`TestClock`](crate::clock::TestClock) to skip time.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Deletes finished instances (completed, failed, cancelled, terminated)
    /// whose last change is older than `keep`, with their history: checked at
    /// open and then hourly (by the runtime's clock). Running, waiting and
    /// parked instances are never touched. Default: keep everything.
    pub fn retention(mut self, keep: std::time::Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// Whether opening resumes unfinished instances (default `true`). Turn it
    /// off to inspect a store (tools, tests) without running anything.
    pub fn resume_on_open(mut self, resume: bool) -> Self {
        self.resume_on_open = resume;
        self
    }

    /// Opens the sled store in `dir` (created if missing) and resumes every
    /// unfinished instance in it.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has `dir` open.
    pub async fn open(self, dir: impl AsRef<Path>) -> Result<Runtime, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let store = tokio::task::spawn_blocking(move || SledStore::open(dir))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))??;
        self.open_store(store).await
    }

    /// Opens the store that `url` names and resumes every unfinished
    /// instance in it: the backend is one line of configuration.
    ///
    /// - `sled:DIR` (or `sled://DIR`): the sled store in directory `DIR`,
    ///   as [`open`](Self::open).
    /// - `postgres://user:password@host:port/db` (or `postgresql://`): a
    ///   PostgreSQL database (feature `postgres`), see
    ///   [`PgStore`](crate::store::postgres::PgStore). One runtime process
    ///   per database.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for another scheme, or `postgres://` in a
    /// build without the `postgres` feature; otherwise those of the store.
    pub async fn open_url(self, url: &str) -> Result<Runtime, StoreError> {
        match Backend::of(url)? {
            Backend::Sled(dir) => self.open(dir).await,
            Backend::Postgres => {
                #[cfg(feature = "postgres")]
                {
                    let store = crate::store::postgres::PgStore::connect(url).await?;
                    self.open_store(store).await
                }
                #[cfg(not(feature = "postgres"))]
                Err(StoreError::BadUrl {
                    url: url.split('@').next_back().unwrap_or_default().to_owned(),
                    reason: "this build has no PostgreSQL store: enable durable-runtime's `postgres` feature".into(),
                })
            }
        }
    }

    /// Opens the runtime on any [`Store`] and resumes every unfinished
    /// instance in it.
    pub async fn open_store(self, store: impl Store) -> Result<Runtime, StoreError> {
        let engine = Arc::new(Engine {
            store: Arc::new(store),
            workflows: self.workflows,
            activity_slots: Semaphore::new(self.max_concurrent_activities),
            waiters: Mutex::default(),
            creating: Mutex::default(),
            tasks: Mutex::default(),
            parked: Mutex::default(),
            halted: Mutex::default(),
            clock: self.clock,
            running: Mutex::default(),
            controls: Mutex::default(),
            this: std::sync::OnceLock::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
            metrics: crate::engine::Metrics::default(),
            interrupts: Mutex::default(),
            timers: tokio::sync::Notify::new(),
            signal_seq: std::sync::atomic::AtomicU64::new(0),
            schedule_lock: tokio::sync::Mutex::new(()),
            schedule_wake: tokio::sync::Notify::new(),
        });
        let _ = engine.this.set(Arc::downgrade(&engine));
        engine.init_signal_seq()?;
        let resumed = if self.resume_on_open {
            let resumed = engine.recover().await?;
            if let Some(keep) = self.retention {
                let pruner = engine.clone().retention_service(keep);
                engine
                    .tasks
                    .lock()
                    .expect("tasks lock poisoned")
                    .spawn(pruner);
            }
            let schedules = engine.clone().schedule_service();
            engine
                .tasks
                .lock()
                .expect("tasks lock poisoned")
                .spawn(schedules);
            let timers = engine.clone().timer_service();
            engine
                .tasks
                .lock()
                .expect("tasks lock poisoned")
                .spawn(timers);
            resumed
        } else {
            0
        };
        tracing::info!(resumed, "runtime open");
        Ok(Runtime { engine, resumed })
    }
}

/// The backend a store URL names.
enum Backend<'a> {
    Sled(&'a str),
    Postgres,
}

impl<'a> Backend<'a> {
    fn of(url: &'a str) -> Result<Backend<'a>, StoreError> {
        if let Some(dir) = url
            .strip_prefix("sled://")
            .or_else(|| url.strip_prefix("sled:"))
        {
            if dir.is_empty() {
                return Err(StoreError::BadUrl {
                    url: url.to_owned(),
                    reason: "no directory: write sled:/var/lib/my-service/durable".into(),
                });
            }
            return Ok(Backend::Sled(dir));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres);
        }
        let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
        Err(StoreError::BadUrl {
            url: if scheme == "(none)" {
                url.to_owned()
            } else {
                format!("{scheme}:...")
            },
            reason: format!(
                "unknown scheme {scheme}: use sled:DIR or postgres://user@host:port/db"
            ),
        })
    }
}

/// The durable-execution runtime embedded in your tokio service.
///
/// Opening it resumes every unfinished workflow instance it finds; starting
/// a workflow returns once its first checkpoint is durable.
pub struct Runtime {
    pub(crate) engine: Arc<Engine>,
    resumed: usize,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("resumed", &self.resumed)
            .finish()
    }
}

impl Runtime {
    /// A [`Builder`] with no workflows and default limits.
    pub fn builder() -> Builder {
        Builder {
            workflows: crate::engine::Registry::default(),
            max_concurrent_activities: 1000,
            resume_on_open: true,
            clock: Arc::new(SystemClock),
            retention: None,
        }
    }

    /// How many unfinished instances were resumed when the runtime opened.
    pub fn resumed_on_open(&self) -> usize {
        self.resumed
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

    /// Instances found on open that this code cannot run, with the reason
    /// for each. They are kept in the store, marked [`Status::Parked`].
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
        let id = id.into();
        if id.is_empty() || id.contains('\0') {
            return Err(StartError::InvalidId { id });
        }
        let entry = self
            .engine
            .workflows
            .exact(W::NAME, W::FINGERPRINT)
            .ok_or(StartError::NotRegistered { workflow: W::NAME })?;
        let input = codec::encode(&call.input)?;
        let _claim = Claim::take(&self.engine, &id).await;
        if let Some(existing) = self.engine.load(&id)? {
            let workflow = existing
                .map(|r| r.workflow)
                .unwrap_or_else(|_| "<undecodable>".to_owned());
            return match policy {
                IdPolicy::UseExisting if workflow == W::NAME => Ok(self.handle(id)),
                IdPolicy::UseExisting => Err(StartError::WrongWorkflow {
                    id,
                    expected: W::NAME,
                    found: workflow,
                }),
                IdPolicy::Reject => Err(StartError::AlreadyExists { id, workflow }),
            };
        }
        let mut record =
            self.engine
                .first_record(W::NAME, entry, &input, None, call.timeout, call.run_timeout);
        match self.engine.create(&id, &mut record).await {
            Ok(()) => {}
            // created meanwhile by another process sharing the store
            Err(StoreError::Conflict { .. }) => {
                return match policy {
                    IdPolicy::UseExisting => Ok(self.handle(id)),
                    IdPolicy::Reject => Err(StartError::AlreadyExists {
                        id,
                        workflow: W::NAME.to_owned(),
                    }),
                };
            }
            Err(e) => return Err(e.into()),
        }
        if record.status.is_terminal() {
            self.engine.waiter(&id).notify_waiters();
        } else {
            self.engine.spawn(id.clone(), record, entry);
        }
        Ok(self.handle(id))
    }

    /// The schedules: workflows started on a cron expression or an interval.
    pub fn schedules(&self) -> crate::schedule::Schedules<'_> {
        crate::schedule::Schedules {
            engine: &self.engine,
        }
    }

    /// The stored status and position of instance `id`, whatever its workflow.
    pub fn describe(&self, id: &str) -> Result<Description, ResultError> {
        match self.engine.load(id)? {
            None => Err(ResultError::NotFound { id: id.to_owned() }),
            Some(Err(e)) => Err(ResultError::Codec(e)),
            Some(Ok(r)) => Ok(Description::of(id, r)),
        }
    }

    /// The history of instance `id`, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<crate::history::HistoryEvent>, ResultError> {
        self.describe(id)?;
        history_of(&self.engine, id)
    }

    /// Instances in id order, filtered; page with [`ListFilter::after`].
    /// Records that do not decode are skipped here and reported by
    /// [`Runtime::parked`]. An id prefix narrows the scan to that key range;
    /// the other filters scan it all (secondary indexes by status and
    /// workflow are future work).
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
        use crate::store::keys;
        let prefix = keys::instance(filter.id_prefix.as_deref().unwrap_or(""));
        let mut from = match &filter.after {
            Some(after) => keys::after(&keys::instance(after)).max(prefix.clone()),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        loop {
            let page = self.engine.store.scan_from(&prefix, &from, 1024)?;
            let Some((last, _)) = page.last() else { break };
            from = keys::after(last);
            for (key, bytes) in page {
                let Ok(r) = codec::decode::<InstanceRecord>(&bytes) else {
                    continue;
                };
                if filter.workflow.as_ref().is_some_and(|w| *w != r.workflow)
                    || filter.status.is_some_and(|s| s != r.status)
                    || filter
                        .phase
                        .is_some_and(|p| p != Phase::of(r.status, r.pending.as_ref()))
                {
                    continue;
                }
                out.push(Description::of(&keys::instance_id(&key), r));
                if filter.limit > 0 && out.len() >= filter.limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// How many instances have each status.
    pub fn counts(&self) -> Result<Vec<(Status, usize)>, StoreError> {
        let mut counts: Vec<(Status, usize)> = Vec::new();
        for d in self.list(&ListFilter::default())? {
            match counts.iter_mut().find(|(s, _)| *s == d.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((d.status, 1)),
            }
        }
        Ok(counts)
    }

    /// How many instances are in each [`Phase`], every phase listed (zeros
    /// too) in the order of [`Phase::ALL`]: what a dashboard shows.
    pub fn counts_by_phase(&self) -> Result<Vec<(Phase, usize)>, StoreError> {
        let mut counts: Vec<(Phase, usize)> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        for d in self.list(&ListFilter::default())? {
            if let Some((_, n)) = counts.iter_mut().find(|(p, _)| *p == d.phase) {
                *n += 1;
            }
        }
        Ok(counts)
    }

    /// The current state enum of instance `id` as JSON (`null` once it has
    /// ended), whatever its workflow: what tools show. Rendering needs the
    /// workflow's code, so the version the instance runs must be registered.
    ///
    /// # Errors
    /// [`ResultError::NotFound`] for an unknown id,
    /// [`ResultError::NotRegistered`] if this runtime lacks the workflow's
    /// code for that version.
    pub fn state_json(&self, id: &str) -> Result<serde_json::Value, ResultError> {
        let r = self.load_decoded(id)?;
        if r.state.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        let entry = self.entry_for(id, &r)?;
        render_state(id, entry, &r.state)
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
        let not_waiting = || SignalError::NotWaiting {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        let entry = self
            .engine
            .workflows
            .exact(&record.workflow, record.fingerprint)
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
        self.signal_encoded(id, name, bytes).await
    }

    /// The stored record of `id`, decoded.
    fn load_decoded(&self, id: &str) -> Result<InstanceRecord, ResultError> {
        match self.engine.load(id)? {
            None => Err(ResultError::NotFound { id: id.to_owned() }),
            Some(Err(e)) => Err(ResultError::Codec(e)),
            Some(Ok(r)) => Ok(r),
        }
    }

    /// The registered code that runs `record`'s version.
    fn entry_for(&self, id: &str, record: &InstanceRecord) -> Result<WorkflowEntry, ResultError> {
        self.engine
            .workflows
            .exact(&record.workflow, record.fingerprint)
            .ok_or_else(|| ResultError::NotRegistered {
                id: id.to_owned(),
                workflow: record.workflow.clone(),
                fingerprint: record.fingerprint,
            })
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

    /// For every stored instance, whether the registered code can run it:
    /// run it in CI against a copy of production data (or imported
    /// snapshots) before deploying new workflow code. Writes nothing.
    pub fn check_compatibility(&self) -> Result<Vec<(String, Compatibility)>, StoreError> {
        let mut out = Vec::new();
        for (key, bytes) in self
            .engine
            .store
            .scan_prefix(&[crate::store::keys::INSTANCE])?
        {
            let id = crate::store::keys::instance_id(&key);
            let verdict = match codec::decode::<InstanceRecord>(&bytes) {
                Err(e) => Compatibility::Parked(ResumeError::Undecodable {
                    instance: id.clone(),
                    reason: e.to_string(),
                }),
                Ok(r) if r.status.is_terminal() => Compatibility::Finished,
                Ok(mut r) => match self.engine.check(&id, &r) {
                    Ok(_) => Compatibility::Resumes,
                    Err(reason) => match self.engine.workflows.upgrade_target(
                        &r.workflow,
                        &r.variant,
                        r.variant_fp,
                    ) {
                        // the same adoption the open would do, on a copy
                        Some(_) => match self.engine.upgrade(&id, &mut r) {
                            Ok(entry) => Compatibility::Upgrades {
                                to: entry.fingerprint,
                            },
                            Err(why) => Compatibility::Parked(why),
                        },
                        None => Compatibility::Parked(reason),
                    },
                },
            };
            out.push((id, verdict));
        }
        Ok(out)
    }

    /// Exports instance `id` (state, pending command, buffered signals,
    /// pending cancel/terminate requests, history) as a portable snapshot.
    /// The instance stays here too: terminate it (or drop the store) if it
    /// moves for good. Export an instance while it waits (a timer, a signal)
    /// or the store is not running it, so the copy is of one checkpoint.
    pub fn export(
        &self,
        id: &str,
    ) -> Result<crate::snapshot::Snapshot, crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        use crate::store::keys;
        let store = &self.engine.store;
        let record_bytes = store
            .get(&keys::instance(id))?
            .ok_or_else(|| SnapshotError::NotFound { id: id.to_owned() })?;
        let record: InstanceRecord =
            codec::decode(&record_bytes).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        let mut controls = Vec::new();
        for tag in [keys::CANCEL, keys::TERMINATE] {
            let key = keys::control(tag, id);
            if let Some(v) = store.get(&key)? {
                controls.push((key, v));
            }
        }
        Ok(crate::snapshot::Snapshot {
            id: id.to_owned(),
            workflow: record.workflow,
            fingerprint: record.fingerprint,
            created_ms: now_ms(),
            record: record_bytes,
            signals: store.scan_prefix(&keys::signals(id))?,
            controls,
            history: store.scan_prefix(&keys::history_prefix(id))?,
        })
    }

    /// Imports a snapshot: the instance continues here. The workflow must be
    /// registered with the same shape fingerprint. An existing instance of
    /// that id is refused unless `replace`. Nothing is written on error.
    pub async fn import(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        let newest = self
            .engine
            .workflows
            .newest(&snapshot.workflow)
            .ok_or_else(|| SnapshotError::UnknownWorkflow {
                workflow: snapshot.workflow.clone(),
            })?;
        if self
            .engine
            .workflows
            .exact(&snapshot.workflow, snapshot.fingerprint)
            .is_none()
        {
            return Err(SnapshotError::ShapeMismatch {
                workflow: snapshot.workflow.clone(),
                stored: snapshot.fingerprint,
                current: newest.fingerprint,
            });
        }
        self.import_unchecked(snapshot, replace).await
    }

    /// [`Runtime::import`] for tools that do not have the workflow's code
    /// (the `durable` CLI): the shape is checked when a runtime with the code
    /// opens the store, which parks the instance if it does not match.
    pub async fn import_unchecked(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        use crate::store::keys;
        let mut record: InstanceRecord = codec::decode(&snapshot.record)
            .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        if record.workflow != snapshot.workflow || record.fingerprint != snapshot.fingerprint {
            return Err(SnapshotError::Undecodable(
                "the header does not match the record".into(),
            ));
        }
        let id = snapshot.id.as_str();
        if id.is_empty() || id.contains('\0') {
            return Err(SnapshotError::Undecodable(format!(
                "invalid instance id {id:?}"
            )));
        }
        // every key must belong to this instance: a snapshot cannot write elsewhere
        let owns =
            |key: &[u8], prefix: &[u8]| key.starts_with(prefix) && key.len() == prefix.len() + 8;
        let signals = keys::signals(id);
        let history = keys::history_prefix(id);
        let controls = [
            keys::control(keys::CANCEL, id),
            keys::control(keys::TERMINATE, id),
        ];
        if !snapshot.signals.iter().all(|(k, _)| owns(k, &signals))
            || !snapshot.history.iter().all(|(k, _)| owns(k, &history))
            || !snapshot.controls.iter().all(|(k, _)| controls.contains(k))
        {
            return Err(SnapshotError::Undecodable(
                "a key does not belong to the instance".into(),
            ));
        }
        let store = &self.engine.store;
        let key = keys::instance(id);
        let mut batch = crate::store::Batch::default();
        match store.get(&key)? {
            Some(_) if !replace => return Err(SnapshotError::AlreadyExists { id: id.to_owned() }),
            Some(existing) => {
                batch.expect(key.clone(), Some(existing));
                for (k, _) in store
                    .scan_prefix(&signals)?
                    .into_iter()
                    .chain(store.scan_prefix(&history)?)
                {
                    batch.delete(k);
                }
                for k in &controls {
                    batch.delete(k.clone());
                }
            }
            None => {
                batch.expect(key.clone(), None);
            }
        }
        for (k, v) in snapshot
            .signals
            .iter()
            .chain(&snapshot.history)
            .chain(&snapshot.controls)
        {
            batch.put(k.clone(), v.clone());
        }
        let mut timers = Vec::new();
        if let Some(pending) = &record.pending {
            pending.timer_keys(id, &mut timers);
        }
        timers.extend(
            [record.deadline_ms, record.run_deadline_ms]
                .into_iter()
                .flatten()
                .map(|d| keys::timer(d, id)),
        );
        for t in timers {
            batch.put(t, Vec::new());
        }
        record.new_events.clear();
        batch.put(key, snapshot.record.clone());
        match store.commit(batch).await {
            Ok(()) => {}
            Err(crate::StoreError::Conflict { .. }) => {
                return Err(SnapshotError::AlreadyExists { id: id.to_owned() });
            }
            Err(e) => return Err(e.into()),
        }
        if !snapshot.controls.is_empty() {
            self.engine
                .controls
                .lock()
                .expect("controls lock poisoned")
                .insert(id.to_owned());
        }
        self.engine.timers.notify_one();
        self.engine.wake_instance(id)?;
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
        self.signal_encoded(id, name, codec::encode(payload)?).await
    }

    /// Stores signal `name` with its encoded payload and wakes the instance.
    async fn signal_encoded(
        &self,
        id: &str,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<(), SignalError> {
        let value = codec::encode(&(name, payload))?;
        let seq = self
            .engine
            .signal_seq
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut batch = crate::store::Batch::default();
        batch.put(crate::store::keys::signal(id, seq), value);
        self.engine.store.commit(batch).await?;
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

    /// A handle to instance `id` of workflow `W` (whether or not it exists).
    pub fn handle<W: Workflow>(&self, id: impl Into<String>) -> WorkflowHandle<W> {
        WorkflowHandle {
            id: id.into(),
            engine: Arc::downgrade(&self.engine),
            _workflow: PhantomData,
        }
    }

    /// Stops every instance task and closes the store. Instances not finished
    /// resume when a runtime opens the store again. Handles of this runtime
    /// answer [`StoreError::Closed`] afterwards.
    pub async fn shutdown(self) {
        self.engine
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
        // short-lived helpers (a child's cancel, a stale timer's removal) hold
        // the engine for a moment; the store closes when the last one ends
        for _ in 0..1000 {
            if Arc::strong_count(&self.engine) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

fn history_of(engine: &Engine, id: &str) -> Result<Vec<crate::history::HistoryEvent>, ResultError> {
    engine
        .store
        .scan_prefix(&crate::store::keys::history_prefix(id))?
        .into_iter()
        .map(|(_, bytes)| codec::decode(&bytes).map_err(ResultError::Codec))
        .collect()
}

/// Renders an encoded state of `entry`'s workflow as JSON.
fn render_state(
    id: &str,
    entry: WorkflowEntry,
    state: &[u8],
) -> Result<serde_json::Value, ResultError> {
    match guarded(|| (entry.drive)(Op::Json { state })) {
        Ok(Ok(Outcome::Json(json))) => Ok(json),
        Ok(Ok(_)) => Err(ResultError::Failed {
            id: id.to_owned(),
            message: "generated code did not render JSON".into(),
        }),
        Ok(Err(e)) => Err(ResultError::Failed {
            id: id.to_owned(),
            message: e.to_string(),
        }),
        Err(panic) => Err(ResultError::Failed {
            id: id.to_owned(),
            message: panic,
        }),
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

/// A stored instance as seen from outside (also what the HTTP API sends,
/// so remote tools read it back as the same type).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Description {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Where it is in its life.
    pub status: Status,
    /// The status with "running" split by what it waits for (sleeping,
    /// waiting for a signal).
    pub phase: Phase,
    /// The state enum's current variant (`Finished` once done).
    pub variant: String,
    /// Transitions made so far.
    pub step: u64,
    /// Failed attempts of the pending activity, and the last error.
    pub failed_attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// Why it failed or is parked.
    pub error: Option<String>,
    /// For a pending `join_all` or saga compensation: which parts are
    /// finished and checkpointed (they will not run again).
    pub parts_done: Vec<bool>,
    /// What it waits for now, in short (`activity charge`, `timer until …`,
    /// `signal approve`); `None` once it has ended.
    pub waiting_for: Option<String>,
    /// The run number (continue-as-new starts the next).
    pub run: u32,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed, ms since the Unix epoch.
    pub updated_ms: u64,
}

impl Description {
    fn of(id: &str, r: InstanceRecord) -> Description {
        Description {
            id: id.to_owned(),
            phase: Phase::of(r.status, r.pending.as_ref()),
            parts_done: r.partial.iter().map(Option::is_some).collect(),
            waiting_for: r
                .pending
                .as_ref()
                .filter(|_| !r.status.is_terminal())
                .map(crate::history::describe),
            workflow: r.workflow,
            status: r.status,
            variant: r.variant,
            step: r.step,
            failed_attempts: r.failed_attempts,
            last_error: r.last_error,
            error: r.error,
            run: r.run,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
        }
    }
}

/// Whether the code registered on a runtime can run a stored instance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compatibility {
    /// A registered version has its exact shape: it resumes as it is.
    Resumes,
    /// It would continue on a newer version (`Builder::workflow_upgrading`):
    /// the variant it waits at has the same shape there and decodes.
    Upgrades {
        /// The fingerprint it would move to.
        to: u64,
    },
    /// It has ended; nothing will run.
    Finished,
    /// This code cannot run it: it would be parked.
    Parked(ResumeError),
}

/// Which instances [`Runtime::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this stored status ([`Status::Running`] includes sleeping and
    /// signal-waiting instances).
    pub status: Option<Status>,
    /// Only this phase (finer than `status`: `Phase::Sleeping` only).
    pub phase: Option<Phase>,
    /// Only ids that start with this (a key-range scan, so cheap).
    pub id_prefix: Option<String>,
    /// Only ids after this one (paging: pass the last id of the previous page).
    pub after: Option<String>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

/// A handle to one workflow instance.
pub struct WorkflowHandle<W: Workflow> {
    id: String,
    // weak: a handle does not keep a shut-down runtime's store open
    engine: Weak<Engine>,
    _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> std::fmt::Debug for WorkflowHandle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkflowHandle({}, {})", W::NAME, self.id)
    }
}

impl<W: Workflow> Clone for WorkflowHandle<W> {
    fn clone(&self) -> Self {
        WorkflowHandle {
            id: self.id.clone(),
            engine: self.engine.clone(),
            _workflow: PhantomData,
        }
    }
}

impl<W: Workflow> WorkflowHandle<W> {
    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn engine(&self) -> Result<Arc<Engine>, ResultError> {
        self.engine
            .upgrade()
            .ok_or(ResultError::Store(StoreError::Closed))
    }

    fn record(&self) -> Result<InstanceRecord, ResultError> {
        let record = self
            .engine()?
            .load(&self.id)?
            .ok_or_else(|| ResultError::NotFound {
                id: self.id.clone(),
            })?
            .map_err(|e| ResultError::Parked {
                id: self.id.clone(),
                reason: ResumeError::Undecodable {
                    instance: self.id.clone(),
                    reason: e.to_string(),
                }
                .to_string(),
            })?;
        if record.workflow != W::NAME {
            return Err(ResultError::WrongWorkflow {
                id: self.id.clone(),
                expected: W::NAME,
                found: record.workflow,
            });
        }
        Ok(record)
    }

    /// The instance's stored status and position.
    pub fn describe(&self) -> Result<Description, ResultError> {
        Ok(Description::of(&self.id, self.record()?))
    }

    /// The instance's history, oldest first.
    pub fn history(&self) -> Result<Vec<crate::history::HistoryEvent>, ResultError> {
        self.record()?;
        history_of(&*self.engine()?, &self.id)
    }

    /// Cancels the instance: the workflow sees a cancellation at the await it
    /// is at (an activity's `Err` of kind `cancelled`, or [`Cancelled`](crate::Cancelled)
    /// from a timer or signal), once, and can run cleanup steps before it
    /// returns. Returns once the request is durable.
    pub async fn cancel(&self) -> Result<(), ResultError> {
        let r = self.record()?;
        if r.status.is_terminal() {
            return Err(ResultError::Finished {
                id: self.id.clone(),
                status: r.status,
            });
        }
        self.engine()?
            .request_control(&self.id, crate::store::keys::CANCEL, Vec::new())
            .await?;
        Ok(())
    }

    /// Terminates the instance now: no more steps, no cleanup; a running
    /// activity attempt is aborted. Recorded with `reason`.
    pub async fn terminate(&self, reason: &str) -> Result<(), ResultError> {
        let r = self.record()?;
        if r.status.is_terminal() {
            return Err(ResultError::Finished {
                id: self.id.clone(),
                status: r.status,
            });
        }
        let value = codec::encode(&reason.to_owned())?;
        self.engine()?
            .request_control(&self.id, crate::store::keys::TERMINATE, value)
            .await?;
        Ok(())
    }

    /// Reads the instance's state as JSON and answers a question about it,
    /// without disturbing the instance.
    pub fn query<R>(
        &self,
        question: impl FnOnce(&serde_json::Value) -> R,
    ) -> Result<R, ResultError> {
        Ok(question(&self.state_json()?))
    }

    /// The current state enum as JSON (`null` once finished).
    pub fn state_json(&self) -> Result<serde_json::Value, ResultError> {
        let r = self.record()?;
        if r.state.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        match W::drive(Op::Json { state: &r.state }) {
            Ok(Outcome::Json(json)) => Ok(json),
            Ok(_) => Err(ResultError::Failed {
                id: self.id.clone(),
                message: "generated code did not render JSON".into(),
            }),
            Err(e) => Err(ResultError::Failed {
                id: self.id.clone(),
                message: e.to_string(),
            }),
        }
    }

    /// Waits for the instance to finish and returns its output.
    ///
    /// # Errors
    /// [`ResultError::Failed`] if the workflow panicked or could not be
    /// advanced, [`ResultError::Parked`] if it cannot run on this code,
    /// [`ResultError::NotFound`] for an unknown id.
    pub async fn result(&self) -> Result<W::Output, ResultError> {
        loop {
            let notify = self.engine()?.waiter(&self.id);
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self
                .engine()?
                .halted
                .lock()
                .expect("halted lock poisoned")
                .get(&self.id)
            {
                return Err(ResultError::Store(e.clone()));
            }
            let record = self.record()?;
            match record.status {
                Status::Completed | Status::Cancelled => {
                    let bytes = record.output.unwrap_or_default();
                    return Ok(codec::decode(&bytes)?);
                }
                Status::Terminated => {
                    return Err(ResultError::Terminated {
                        id: self.id.clone(),
                        reason: record.error.unwrap_or_default(),
                    });
                }
                Status::Failed => {
                    return Err(ResultError::Failed {
                        id: self.id.clone(),
                        message: record.error.unwrap_or_default(),
                    });
                }
                Status::Parked => {
                    return Err(ResultError::Parked {
                        id: self.id.clone(),
                        reason: record.error.unwrap_or_default(),
                    });
                }
                Status::Running => notified.await,
            }
        }
    }
}
