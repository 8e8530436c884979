//! The public face: [`Builder`] → [`Runtime`] → [`WorkflowHandle`].

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Semaphore;

use crate::clock::{Clock, SystemClock};
use crate::codec;
use crate::command::{Executor, Request};
use crate::engine::{Engine, InstanceRecord, Status, WorkflowEntry, guarded, now_ms};
use crate::error::{OpenError, ResultError, ResumeError, SignalError, StartError};
use crate::phase::Phase;
use crate::store::fs::RealFs;
use crate::store::kind::{self, Kind};
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
    worker_name: Option<String>,
    lease: std::time::Duration,
    task_queues: Vec<String>,
    sled_cache: Option<u64>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workflows", &self.workflows.names().collect::<Vec<_>>())
            .field("max_concurrent_activities", &self.max_concurrent_activities)
            .field("resume_on_open", &self.resume_on_open)
            .field("sled_cache", &self.sled_cache)
            .finish()
    }
}

impl Builder {
    /// Registers a workflow, so it can be started and its unfinished
    /// instances are resumed on open. Its activities need no registration:
    /// the workflow's code knows them.
    ///
    /// Several versions of one workflow name (`#[workflow(name = "..",
    /// version = N)]`) can be registered: each instance runs on the version
    /// it was stored with, and starts by name use the highest. Registering
    /// two shapes under the same name and version makes [`Builder::open`]
    /// fail with [`OpenError::DuplicateVersion`].
    pub fn workflow<W: Workflow>(mut self) -> Self {
        self.workflows.insert(WorkflowEntry::of::<W>());
        self
    }

    /// Registers `W` and sets the upgrade policy of its workflow name to
    /// *allow*: an instance whose version is not registered, but whose
    /// current variant has the same own fingerprint in a registered version
    /// (an edit elsewhere in the function, such as a step added after the
    /// await it waits at), continues on the newest such version, recorded in
    /// its history as `Upgraded`. The default policy (registering with
    /// [`Builder::workflow`] only) *pins* instances to their version: they
    /// are parked, with `Parked` and the reason in their history, until
    /// their version is registered again.
    pub fn workflow_upgrading<W: Workflow>(mut self) -> Self {
        self = self.workflow::<W>();
        self.workflows.allow_upgrade(W::NAME);
        self
    }

    /// Registers a typed migration from version `From` to version `To` of
    /// one workflow (see [`crate::migration`]): instances stored with
    /// `From`'s shape are moved to `To` when they are loaded, if `From`
    /// itself is not registered. Registers neither version: register `To`
    /// (or a later version a further migration leads to) to run them.
    pub fn migration<From: Workflow, To: Workflow>(
        mut self,
        migration: crate::migration::Migration<From, To>,
    ) -> Self {
        if From::NAME != To::NAME {
            self.workflows
                .conflicts
                .push(OpenError::MigrationAcrossWorkflows {
                    from: From::NAME.to_owned(),
                    to: To::NAME.to_owned(),
                });
            return self;
        }
        self.workflows
            .insert_migration(crate::engine::MigrationEntry {
                workflow: From::NAME,
                from: From::FINGERPRINT,
                from_version: From::VERSION,
                from_variants: From::VARIANTS,
                target: WorkflowEntry::of::<To>(),
                steps: migration.steps,
            });
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

    /// This process's name among the workers sharing a PostgreSQL store
    /// (default: host name and process id). Names must be unique among
    /// live processes; a process that starts under the name of one that
    /// died takes its instances over at once instead of after its lease.
    /// Give each replica a stable name (a StatefulSet pod name, a host name)
    /// for the fastest restart. Ignored by sled, which one process owns.
    pub fn worker_name(mut self, name: impl Into<String>) -> Self {
        self.worker_name = Some(name.into());
        self
    }

    /// How long a worker sharing a PostgreSQL store holds its instances
    /// without renewing (default 5 s): when a worker dies, the others take
    /// its instances over after this time (plus up to a quarter of it). A
    /// worker that cannot renew within 4/5 of it stops committing on its
    /// own. Ignored by sled.
    pub fn lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease.max(std::time::Duration::from_millis(200));
        self
    }

    /// Runs the activities of named task queue `queue`
    /// (`#[activity(queue = "..")]`) on this worker, besides its own
    /// instances' other activities; call once per queue. On a store shared
    /// by workers (PostgreSQL), such an activity runs only on workers that
    /// declared its queue, whichever worker owns the instance, at most
    /// [`max_concurrent_activities`](Self::max_concurrent_activities) at
    /// once per worker. On sled (one process) queues are not used: the
    /// process runs every activity.
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        let queue = queue.into();
        if !self.task_queues.contains(&queue) {
            self.task_queues.push(queue);
        }
        self
    }

    /// Whether opening resumes unfinished instances (default `true`). Turn it
    /// off to inspect a store (tools, tests) without running anything.
    pub fn resume_on_open(mut self, resume: bool) -> Self {
        self.resume_on_open = resume;
        self
    }

    /// Bounds the embedded store's page cache to `bytes` for stores opened
    /// by [`Builder::open`] (and `redb:`/`sled:` URLs); PostgreSQL ignores
    /// it. Default: 256 MiB for redb, sled's own 1 GiB for sled. The cache
    /// keeps pages read or written up to this size, so a large store grows
    /// the process by up to that much: a smaller cache caps the RSS, and
    /// costs disk reads when instances are loaded again, so firing or
    /// resuming many instances at once gets slower. `docs/performance.md`
    /// has figures.
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.sled_cache = Some(bytes);
        self
    }

    /// Opens the embedded store in `dir` (created if missing) and resumes
    /// every unfinished instance in it (sleepers when their timers fire,
    /// see [`Runtime::resumed_on_open`]). A new directory gets the default
    /// store, redb ([`RedbStore`](crate::store::redb::RedbStore)); a
    /// directory is opened with the kind it holds (a sled directory needs
    /// the `sled` feature).
    ///
    /// # Errors
    /// [`StoreError::Locked`] (in [`OpenError::Store`]) if another process
    /// has `dir` open; [`OpenError::DuplicateVersion`] for two shapes
    /// registered as one version (checked before the store is touched).
    pub async fn open(self, dir: impl AsRef<Path>) -> Result<Runtime, OpenError> {
        self.open_dir(dir.as_ref(), None).await
    }

    async fn open_dir(self, dir: &Path, kind: Option<Kind>) -> Result<Runtime, OpenError> {
        self.check_registry()?;
        let dir = dir.to_path_buf();
        let cache = self.sled_cache;
        let joined = |e: tokio::task::JoinError| {
            StoreError::Backend(format!("the task opening the store failed: {e}"))
        };
        let detected = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || kind::detect(&RealFs, &dir))
                .await
                .map_err(joined)??
        };
        match kind.or(detected).unwrap_or(Kind::Redb) {
            Kind::Redb => {
                let store = tokio::task::spawn_blocking(move || {
                    crate::store::redb::RedbStore::open_with_cache(dir, cache)
                })
                .await
                .map_err(joined)??;
                self.open_store(store).await
            }
            #[cfg(feature = "sled")]
            Kind::Sled => {
                let store = tokio::task::spawn_blocking(move || {
                    crate::store::sled::SledStore::open_with_cache(dir, cache)
                })
                .await
                .map_err(joined)??;
                self.open_store(store).await
            }
            #[cfg(not(feature = "sled"))]
            Kind::Sled => Err(StoreError::BadUrl {
                url: format!("sled:{}", dir.display()),
                reason: "this directory holds a sled store and this build has no `sled` feature: \
                         enable durable-runtime's `sled` feature to open it"
                    .into(),
            }
            .into()),
        }
    }

    /// A copy for a scratch runtime (`check::check_snapshots`).
    pub(crate) fn scratch(&self) -> Builder {
        Builder {
            workflows: self.workflows.clone(),
            max_concurrent_activities: self.max_concurrent_activities,
            resume_on_open: self.resume_on_open,
            clock: self.clock.clone(),
            retention: None,
            worker_name: None,
            lease: self.lease,
            task_queues: Vec::new(),
            sled_cache: self.sled_cache,
        }
    }

    fn check_registry(&self) -> Result<(), OpenError> {
        match self.workflows.conflicts.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The registered versions and migrations, for `durable check` (see
    /// [`crate::check::Manifest`]).
    pub fn manifest(&self) -> crate::check::Manifest {
        crate::check::Manifest::of(&self.workflows)
    }

    /// Opens the store that `url` names and resumes every unfinished
    /// instance in it: the backend is one line of configuration.
    ///
    /// - `redb:DIR` (or `redb://DIR`): the default embedded store in
    ///   directory `DIR`; `sled:DIR`: the sled store (feature `sled`);
    ///   each refuses a directory that holds the other kind,
    ///   as [`open`](Self::open).
    /// - `postgres://user:password@host:port/db` (or `postgresql://`): a
    ///   PostgreSQL database (feature `postgres`), see
    ///   [`PgStore`](crate::store::postgres::PgStore). Any number of
    ///   processes share one database as workers (see
    ///   [`Builder::worker_name`] and [`Builder::lease`]).
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] (in [`OpenError::Store`]) for another scheme, or `postgres://` in a
    /// build without the `postgres` feature; otherwise those of the store.
    pub async fn open_url(self, url: &str) -> Result<Runtime, OpenError> {
        match Backend::of(url)? {
            Backend::Dir(dir, kind) => self.open_dir(Path::new(dir), Some(kind)).await,
            Backend::Postgres => {
                #[cfg(feature = "postgres")]
                {
                    let store = crate::store::postgres::PgStore::connect(url).await?;
                    self.open_store(store).await
                }
                #[cfg(not(feature = "postgres"))]
                Err(OpenError::Store(StoreError::BadUrl {
                    url: url.split('@').next_back().unwrap_or_default().to_owned(),
                    reason: "this build has no PostgreSQL store: enable durable-runtime's `postgres` feature".into(),
                }))
            }
        }
    }

    /// Opens the runtime on any [`Store`] and resumes every unfinished
    /// instance in it.
    ///
    /// # Errors
    /// As [`Builder::open`].
    pub async fn open_store(self, store: impl Store) -> Result<Runtime, OpenError> {
        self.check_registry()?;
        let member = if store.shared() && self.resume_on_open {
            let name = match self.worker_name {
                Some(name) => name,
                None => default_worker_name(),
            };
            if name.is_empty() || name.contains('\0') || name.contains('#') {
                return Err(OpenError::Store(StoreError::BadUrl {
                    url: name,
                    reason: "a worker name must be non-empty, without NUL or '#'".into(),
                }));
            }
            Some(crate::engine::Member::new(
                name,
                self.lease,
                self.task_queues.clone(),
            ))
        } else {
            None
        };
        let notices = store.subscribe();
        let engine = Arc::new(Engine {
            member,
            taken_results: Mutex::default(),
            queue_claims: std::sync::atomic::AtomicUsize::new(0),
            activity_limit: self.max_concurrent_activities,
            store: Arc::new(store),
            workflows: self.workflows,
            activity_slots: Semaphore::new(self.max_concurrent_activities),
            waiters: Mutex::default(),
            creating: Mutex::default(),
            tasks: Mutex::default(),
            parked: Mutex::default(),
            layouts: Mutex::default(),
            layouts_stored: std::sync::RwLock::default(),
            value_layouts: Mutex::default(),
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
            resolve_on_wake: self.resume_on_open,
        });
        let _ = engine.this.set(Arc::downgrade(&engine));
        engine.init_signal_seq()?;
        engine.warn_untraced();
        if let Some(notices) = notices {
            let listener = engine.clone().notice_service(notices);
            engine
                .tasks
                .lock()
                .expect("tasks lock poisoned")
                .spawn(listener);
        }
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
            if engine.member.is_some() {
                let member = engine.clone().member_service();
                let mut tasks = engine.tasks.lock().expect("tasks lock poisoned");
                tasks.spawn(member);
                for queue in &self.task_queues {
                    tasks.spawn(engine.clone().queue_service(queue.clone()));
                }
            }
            resumed
        } else {
            0
        };
        tracing::info!(resumed, "runtime open");
        Ok(Runtime { engine, resumed })
    }
}

/// A worker process sharing a PostgreSQL store ([`Runtime::workers`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its name ([`Builder::worker_name`]).
    pub name: String,
    /// How many processes have started under this name.
    pub incarnation: u64,
    /// When this incarnation started (Unix ms).
    pub started_ms: u64,
    /// When the others may take its instances over, unless it renews
    /// (Unix ms, by its clock).
    pub lease_expires_ms: u64,
    /// Whether the lease has lapsed (by this process's clock): its
    /// instances are being taken over.
    pub lapsed: bool,
    /// Unfinished instances it owns.
    pub instances: usize,
    /// The named task queues it runs ([`Builder::task_queue`]).
    pub queues: Vec<String>,
    /// Whether it is this process.
    pub this_process: bool,
}

/// `host:pid`, unique among the live processes of a cluster.
fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

/// The backend a store URL names.
enum Backend<'a> {
    Dir(&'a str, Kind),
    Postgres,
}

impl<'a> Backend<'a> {
    fn of(url: &'a str) -> Result<Backend<'a>, StoreError> {
        for kind in [Kind::Redb, Kind::Sled] {
            let name = kind.name();
            let Some(dir) = url
                .strip_prefix(&format!("{name}://"))
                .or_else(|| url.strip_prefix(&format!("{name}:")))
            else {
                continue;
            };
            if dir.is_empty() {
                return Err(StoreError::BadUrl {
                    url: url.to_owned(),
                    reason: format!("no directory: write {name}:/var/lib/my-service/durable"),
                });
            }
            return Ok(Backend::Dir(dir, kind));
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
                "unknown scheme {scheme}: use redb:DIR, sled:DIR or postgres://user@host:port/db"
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
            worker_name: None,
            lease: std::time::Duration::from_secs(5),
            task_queues: Vec::new(),
            sled_cache: None,
        }
    }

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

    /// Instances this code cannot run, with the reason for each, in the
    /// order found: on open (those read then, see
    /// [`Runtime::resumed_on_open`]), then sleepers as they are woken. They
    /// are kept in the store, marked [`Status::Parked`]. A sleeper whose
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

    async fn start_entry(
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
        if id.len() > crate::MAX_ID_BYTES {
            return Err(StartError::IdTooLong {
                prefix: id.chars().take(64).collect(),
                len: id.len(),
                limit: crate::MAX_ID_BYTES,
            });
        }
        let name = entry.name;
        let _claim = Claim::take(&self.engine, &id).await;
        if let Some(existing) = self.engine.load(&id)? {
            let workflow = existing
                .map(|r| r.workflow)
                .unwrap_or_else(|_| "<undecodable>".to_owned());
            return match policy {
                IdPolicy::UseExisting if workflow == name => Ok(id),
                IdPolicy::UseExisting => Err(StartError::WrongWorkflow {
                    id,
                    expected: name,
                    found: workflow,
                }),
                IdPolicy::Reject => Err(StartError::AlreadyExists { id, workflow }),
            };
        }
        let mut record = self
            .engine
            .first_record(name, entry, &input, None, timeout, run_timeout);
        match self.engine.create(&id, &mut record).await {
            Ok(()) => {}
            // created meanwhile by another process sharing the store
            Err(StoreError::Conflict { .. }) => {
                return match policy {
                    IdPolicy::UseExisting => Ok(id),
                    IdPolicy::Reject => Err(StartError::AlreadyExists {
                        id,
                        workflow: name.to_owned(),
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
        Ok(id)
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
        // the narrowest index that answers the filter; records are read by id
        let phases: Vec<Phase> = match (filter.phase, filter.status) {
            (Some(p), _) => vec![p],
            (None, Some(status)) => Phase::ALL
                .into_iter()
                .filter(|p| p.status() == status)
                .collect(),
            (None, None) => Vec::new(),
        };
        let sources: Vec<Vec<u8>> = match (&filter.search_attribute, &phases[..], &filter.workflow)
        {
            (Some((name, values)), _, _) => values
                .iter()
                .filter_map(|v| keys::attribute_index_prefix(name, v))
                .collect(),
            (None, [], None) => return self.list_scan(filter),
            (None, [], Some(workflow)) => vec![keys::workflow_index_prefix(workflow)],
            (None, phases, _) => phases
                .iter()
                .map(|p| keys::phase_index_prefix(p.tag()))
                .collect(),
        };
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit
        };
        let id_prefix = filter.id_prefix.as_deref().unwrap_or("");
        let mut matched: Vec<Description> = Vec::new();
        for source in &sources {
            // from the id prefix, or after the last id of the previous page
            let start = keys::index_entry(source.clone(), id_prefix);
            let mut from = match &filter.after {
                Some(after) => {
                    keys::after(&keys::index_entry(source.clone(), after)).max(start.clone())
                }
                None => start.clone(),
            };
            let mut found = 0;
            'pages: loop {
                let page = self.engine.store.scan_from(&start, &from, 1024)?;
                let Some((last, _)) = page.last() else { break };
                from = keys::after(last);
                for (key, _) in page {
                    let id = String::from_utf8_lossy(&key[source.len()..]).into_owned();
                    let Some(Ok(r)) = self.engine.load(&id)? else {
                        continue;
                    };
                    // an entry is current when its record agrees (same batch)
                    let phase = Phase::of(r.status, r.pending.as_ref());
                    if !r.indexed.contains(&key)
                        || !filter.in_time(&r)
                        || filter.workflow.as_ref().is_some_and(|w| *w != r.workflow)
                        || !phases.is_empty() && !phases.contains(&phase)
                    {
                        continue;
                    }
                    matched.push(Description::of(&id, r));
                    found += 1;
                    if found >= limit {
                        break 'pages;
                    }
                }
            }
        }
        // several sources (the phases of one status) merge in id order
        matched.sort_by(|a, b| a.id.cmp(&b.id));
        matched.dedup_by(|a, b| a.id == b.id);
        matched.truncate(limit);
        Ok(matched)
    }

    /// `list` without a status or workflow filter: a scan of the records in id order.
    fn list_scan(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
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
                let Ok(r) = InstanceRecord::decode(&bytes) else {
                    continue;
                };
                if !filter.in_time(&r) {
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
        for (phase, n) in self.counts_by_phase()? {
            match counts.iter_mut().find(|(s, _)| *s == phase.status()) {
                Some((_, total)) => *total += n,
                None if n > 0 => counts.push((phase.status(), n)),
                None => {}
            }
        }
        Ok(counts)
    }

    /// How many instances are in each [`Phase`], every phase listed (zeros
    /// too) in the order of [`Phase::ALL`]: what a dashboard shows.
    pub fn counts_by_phase(&self) -> Result<Vec<(Phase, usize)>, StoreError> {
        // counted from the phase index: keys only, no record decoded
        Phase::ALL
            .into_iter()
            .map(|p| {
                let prefix = crate::store::keys::phase_index_prefix(p.tag());
                Ok((p, self.engine.store.scan_prefix(&prefix)?.len()))
            })
            .collect()
    }

    /// The current state enum of instance `id` as JSON (`null` once it has
    /// ended), whatever its workflow: what tools show. A state is rendered
    /// by the [layout](crate::layout) that wrote it, stored with it, so the
    /// workflow's code is not needed (`durable --db DIR state ID`); a record
    /// written before layouts were stored needs its version registered.
    ///
    /// # Errors
    /// [`ResultError::NotFound`] for an unknown id,
    /// [`ResultError::NotRegistered`] if neither the layout nor the
    /// workflow's code for that version is at hand.
    pub fn state_json(&self, id: &str) -> Result<serde_json::Value, ResultError> {
        let r = self.load_decoded(id)?;
        if r.state.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        let entry = self.entry_for(id, &r);
        if let Ok(entry) = entry
            && (r.layout == 0 || r.layout == entry.layout.hash)
        {
            return render_state(id, entry, &r.state);
        }
        // another build's layout (or no code at all): by the stored layout,
        // never by this code's positions
        match self.engine.stored_layout(r.layout)? {
            Some(layout) => crate::layout::value::read(&r.state, &layout.state, &layout.types)
                .map(|v| v.to_json())
                .map_err(|e| ResultError::Failed {
                    id: id.to_owned(),
                    message: e.to_string(),
                }),
            None => entry.and_then(|entry| render_state(id, entry, &r.state)),
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
        let awaited = (vtable.layout)();
        let layout = awaited.layout.as_ref().ok().map(|l| (awaited.hash, l));
        self.signal_encoded(id, name, bytes, layout).await
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
            .exact(&record.workflow, record.fingerprint, record.version)
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
    /// as it is, after an upgrade or a migration (each tried on a copy, with
    /// the migration functions really running), or not at all. Run it in CI
    /// against a copy of production data before deploying new workflow code,
    /// or use [`check::check_snapshots`](crate::check::check_snapshots) on
    /// exported snapshot files. Writes nothing.
    pub fn check_compatibility(&self) -> Result<Vec<(String, Compatibility)>, StoreError> {
        let mut out = Vec::new();
        for (key, bytes) in self
            .engine
            .store
            .scan_prefix(&[crate::store::keys::INSTANCE])?
        {
            let id = crate::store::keys::instance_id(&key);
            let verdict = match InstanceRecord::decode(&bytes) {
                Err(e) => Compatibility::Parked(ResumeError::Undecodable {
                    instance: id.clone(),
                    reason: e.to_string(),
                }),
                Ok(r) if r.status.is_terminal() => Compatibility::Finished,
                Ok(r) => self.engine.compatibility(&id, r),
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
        let record = InstanceRecord::decode(&record_bytes)
            .map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
        let mut controls = Vec::new();
        for tag in [keys::CANCEL, keys::TERMINATE] {
            let key = keys::control(tag, id);
            if let Some(v) = store.get(&key)? {
                controls.push((key, v));
            }
        }
        let signals = store.scan_prefix(&keys::signals(id))?;
        // the layouts that read the state and the signals, so the store that
        // imports it can read them by name
        let mut layout_keys = vec![keys::layout(record.layout)];
        for (_, value) in &signals {
            if let Ok((_, _, hash)) = crate::engine::decode_signal(value) {
                layout_keys.push(keys::value_layout(hash));
            }
        }
        layout_keys.sort();
        layout_keys.dedup();
        let mut layouts = Vec::new();
        for key in layout_keys {
            if let Some(v) = store.get(&key)? {
                layouts.push((key, v));
            }
        }
        Ok(crate::snapshot::Snapshot {
            id: id.to_owned(),
            workflow: record.workflow,
            fingerprint: record.fingerprint,
            created_ms: now_ms(),
            record: record_bytes,
            signals,
            controls,
            history: store.scan_prefix(&keys::history_prefix(id))?,
            layouts,
        })
    }

    /// Exports every instance [`Runtime::list`] returns for `filter` (all of
    /// them with `ListFilter::default()`) into one snapshot set. The
    /// instances stay here too. Records that do not decode are skipped (they
    /// are reported by [`Runtime::parked`]).
    pub fn export_set(
        &self,
        filter: &ListFilter,
    ) -> Result<crate::snapshot::SnapshotSet, crate::snapshot::SnapshotError> {
        let mut snapshots = Vec::new();
        for d in self.list(filter)? {
            snapshots.push(self.export(&d.id)?);
        }
        Ok(crate::snapshot::SnapshotSet {
            created_ms: now_ms(),
            snapshots,
        })
    }

    /// Imports a snapshot: the instance continues here. Its workflow must be
    /// registered, and an unfinished instance must be runnable by the
    /// registered code: its exact version, a registered migration from its
    /// version (applied now, recorded in its history, written in the same
    /// batch), or an upgrade the workflow allows. An existing instance of
    /// that id is refused unless `replace`. Nothing is written on error.
    pub async fn import(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        let mut batch = crate::store::Batch::default();
        let imported = self.prepare_import(snapshot, replace, true, &mut batch)?;
        self.commit_import(batch, &[imported]).await
    }

    /// Imports every snapshot of a set, all or nothing: each is checked as
    /// [`Runtime::import`] does, then all are written in one atomic batch.
    /// One refused snapshot (unknown workflow, shape the code cannot run, an
    /// existing id without `replace`, an id twice in the set) refuses the
    /// whole set and writes nothing. Returns how many were imported.
    pub async fn import_set(
        &self,
        set: &crate::snapshot::SnapshotSet,
        replace: bool,
    ) -> Result<usize, crate::snapshot::SnapshotError> {
        self.import_many(set, replace, true).await
    }

    /// [`Runtime::import_set`] without the code check, as
    /// [`Runtime::import_unchecked`].
    pub async fn import_set_unchecked(
        &self,
        set: &crate::snapshot::SnapshotSet,
        replace: bool,
    ) -> Result<usize, crate::snapshot::SnapshotError> {
        self.import_many(set, replace, false).await
    }

    async fn import_many(
        &self,
        set: &crate::snapshot::SnapshotSet,
        replace: bool,
        checked: bool,
    ) -> Result<usize, crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = set.snapshots.iter().find(|s| !seen.insert(s.id.as_str())) {
            return Err(SnapshotError::Undecodable(format!(
                "instance `{}` is in the set twice",
                dup.id
            )));
        }
        let mut batch = crate::store::Batch::default();
        let mut imported = Vec::new();
        for snapshot in &set.snapshots {
            imported.push(self.prepare_import(snapshot, replace, checked, &mut batch)?);
        }
        self.commit_import(batch, &imported).await?;
        Ok(imported.len())
    }

    /// [`Runtime::import`] for tools that do not have the workflow's code
    /// (the `durable` CLI): the shape is checked when a runtime with the code
    /// loads the instance (on open, or for a sleeper when it is woken), which
    /// parks it if it does not match (or migrates it, when a migration is
    /// registered there).
    pub async fn import_unchecked(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        let mut batch = crate::store::Batch::default();
        let imported = self.prepare_import(snapshot, replace, false, &mut batch)?;
        self.commit_import(batch, &[imported]).await
    }

    /// Checks one snapshot and adds its writes to `batch`. With `checked`,
    /// the registered code must be able to run it, and a migration or
    /// upgrade it needs is applied to the written record.
    fn prepare_import(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        replace: bool,
        checked: bool,
        batch: &mut crate::store::Batch,
    ) -> Result<(String, bool), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        use crate::store::keys;
        let workflows = &self.engine.workflows;
        let newest = workflows.newest(&snapshot.workflow);
        if checked {
            let newest = newest.ok_or_else(|| SnapshotError::UnknownWorkflow {
                workflow: snapshot.workflow.clone(),
            })?;
            let known = workflows
                .entries()
                .any(|e| e.name == snapshot.workflow && e.fingerprint == snapshot.fingerprint)
                || workflows
                    .migration_from(&snapshot.workflow, snapshot.fingerprint)
                    .is_some();
            if !known && !workflows.upgrades_allowed(&snapshot.workflow) {
                return Err(SnapshotError::ShapeMismatch {
                    workflow: snapshot.workflow.clone(),
                    stored: snapshot.fingerprint,
                    current: newest.fingerprint,
                });
            }
        }
        // its layouts first: resolving it may read its state by name
        for (key, value) in &snapshot.layouts {
            self.engine
                .learn_layout(key, value)
                .map_err(SnapshotError::Undecodable)?;
            batch.put(key.clone(), value.clone());
        }
        let mut record = InstanceRecord::decode(&snapshot.record)
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
        let mut rewrite = false;
        // a finished instance needs no code; an unfinished one, code that runs it
        if let (true, Some(newest)) = (checked && !record.status.is_terminal(), newest) {
            match self.engine.resolve(id, &mut record) {
                Ok(_) => rewrite = record.status == Status::Parked || !record.new_events.is_empty(),
                Err(ResumeError::ShapeMismatch { .. }) => {
                    return Err(SnapshotError::ShapeMismatch {
                        workflow: snapshot.workflow.clone(),
                        stored: snapshot.fingerprint,
                        current: newest.fingerprint,
                    });
                }
                Err(other) => return Err(SnapshotError::CannotRun(other)),
            }
        }
        // every key must belong to this instance: a snapshot cannot write elsewhere
        let owns =
            |key: &[u8], prefix: &[u8]| key.starts_with(prefix) && key.len() == prefix.len() + 8;
        // an event's key, or one checkpoint's events' (one byte longer)
        let owns_history = |key: &[u8], prefix: &[u8]| {
            owns(key, prefix)
                || (key.starts_with(prefix)
                    && key.len() == prefix.len() + 9
                    && key.last() == Some(&keys::HISTORY_BATCH))
        };
        let signals = keys::signals(id);
        let history = keys::history_prefix(id);
        let controls = [
            keys::control(keys::CANCEL, id),
            keys::control(keys::TERMINATE, id),
        ];
        if !snapshot.signals.iter().all(|(k, _)| owns(k, &signals))
            || !snapshot
                .history
                .iter()
                .all(|(k, _)| owns_history(k, &history))
            || !snapshot.controls.iter().all(|(k, _)| controls.contains(k))
        {
            return Err(SnapshotError::Undecodable(
                "a key does not belong to the instance".into(),
            ));
        }
        let store = &self.engine.store;
        let key = keys::instance(id);
        match store.get(&key)? {
            Some(_) if !replace => return Err(SnapshotError::AlreadyExists { id: id.to_owned() }),
            Some(existing) => {
                // the replaced instance's index entries go with it
                if let Ok(old) = InstanceRecord::decode(&existing) {
                    for entry in old.indexed {
                        batch.delete(entry);
                    }
                }
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
        if rewrite {
            // unparked, migrated or upgraded on the way in: the new state and its
            // history event go in the same batch as the rest
            record.status = Status::Running;
            record.error = None;
            self.engine.history(id, &mut record, batch)?;
        }
        self.engine
            .stage_import_owner(id, !record.status.is_terminal(), batch)?;
        // index entries are this store's: written anew
        record.indexed.clear();
        record.reindex(id, batch);
        let record_bytes =
            codec::encode(&record).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
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
        batch.put(key, record_bytes);
        Ok((id.to_owned(), !snapshot.controls.is_empty()))
    }

    /// Commits an import's batch and wakes what it brought in.
    async fn commit_import(
        &self,
        batch: crate::store::Batch,
        imported: &[(String, bool)],
    ) -> Result<(), crate::snapshot::SnapshotError> {
        use crate::snapshot::SnapshotError;
        match self.engine.store.commit(batch).await {
            Ok(()) => {}
            Err(crate::StoreError::Conflict { key }) => {
                // an instance key (`i` + id) changed or appeared meanwhile
                let id = key.get(1..).unwrap_or_default().to_owned();
                return Err(SnapshotError::AlreadyExists { id });
            }
            Err(e) => return Err(e.into()),
        }
        for (id, controls) in imported {
            if *controls {
                self.engine
                    .controls
                    .lock()
                    .expect("controls lock poisoned")
                    .insert(id.clone());
            }
        }
        self.engine.timers.notify_one();
        for (id, _) in imported {
            if self
                .engine
                .load(id)?
                .is_some_and(|r| r.is_ok_and(|r| !r.status.is_terminal()))
            {
                self.engine.owned_now(id);
            }
            self.engine.wake_instance(id)?;
        }
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
        self.signal_encoded(
            id,
            name,
            codec::encode(payload)?,
            layout.as_ref().map(|(h, l)| (*h, l)),
        )
        .await
    }

    /// Refuses a payload laid out as `sent` when instance `id` waits for
    /// signal `name` now and awaits a type whose layout the payload cannot
    /// cross by name: it would never be delivered as a misread (at delivery
    /// it would park the instance), so the sender hears of it now.
    fn refuse_misfit(
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
        let Ok(awaited) = &(vtable.layout)().layout else {
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
    async fn signal_encoded(
        &self,
        id: &str,
        name: &str,
        payload: Vec<u8>,
        layout: Option<(u64, &crate::layout::ValueLayout)>,
    ) -> Result<(), SignalError> {
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
            if shared {
                // another process may have used the same number; the owner
                // elsewhere hears of it
                batch.expect(key, None).notify(format!("w{id}"));
            }
            match self.engine.store.commit(batch).await {
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
            self.engine.interrupt(id).notify_waiters();
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
        // a worker sharing the store hands its instances to the others now
        // rather than after its lease
        if let Err(e) = self.engine.leave().await {
            tracing::warn!(error = %e, "could not hand instances over; they are taken over when the lease lapses");
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
    let prefix = crate::store::keys::history_prefix(id);
    let mut events = Vec::new();
    for (key, bytes) in engine.store.scan_prefix(&prefix)? {
        events.extend(crate::history::decode_stored(prefix.len(), &key, &bytes)?);
    }
    Ok(events)
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
    /// The version of the workflow that runs it (`#[workflow(version = N)]`).
    pub version: u32,
    /// The shape fingerprint of its state.
    pub fingerprint: u64,
    /// The own fingerprint of its current variant (0 when none).
    pub variant_fingerprint: u64,
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
    /// Its search attributes, as JSON values.
    #[serde(default)]
    pub search_attributes: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Description {
    pub(crate) fn of(id: &str, r: InstanceRecord) -> Description {
        Description {
            search_attributes: r
                .search_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            id: id.to_owned(),
            phase: Phase::of(r.status, r.pending.as_ref()),
            parts_done: r.partial.iter().map(Option::is_some).collect(),
            waiting_for: r
                .pending
                .as_ref()
                .filter(|_| !r.status.is_terminal())
                .map(crate::history::describe),
            workflow: r.workflow,
            version: r.version,
            fingerprint: r.fingerprint,
            variant_fingerprint: r.variant_fp,
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// A registered migration would move it to another version (tried on a
    /// copy: the migration functions ran and the result decodes).
    Migrates {
        /// The version it is stored with.
        from: u32,
        /// The version it would run on.
        to: u32,
    },
    /// Its state was written by code whose types were laid out otherwise
    /// (fields reordered, added with a default, an integer widened...): it
    /// would be read by the stored layout and rebuilt by name.
    Transcodes {
        /// The edits it crosses, in the user's terms.
        changes: Vec<String>,
    },
    /// It has ended; nothing will run.
    Finished,
    /// This code cannot run it: it would be parked.
    Parked(#[serde(serialize_with = "as_text")] ResumeError),
}

fn as_text<S: serde::Serializer>(e: &ResumeError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

impl Compatibility {
    /// Whether the instance would be parked: what a CI check fails on.
    pub fn would_park(&self) -> bool {
        matches!(self, Compatibility::Parked(_))
    }
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
    /// Only instances whose search attribute `.0` has one of the values
    /// `.1` (set by [`upsert_search_attributes`](crate::upsert_search_attributes)).
    pub search_attribute: Option<(String, Vec<crate::SearchValue>)>,
    /// Only instances started in this range (ms since the epoch, both ends
    /// included).
    pub started: Option<(u64, u64)>,
    /// Only instances that ended in this range (ms since the epoch, both
    /// ends included); a running instance has not ended.
    pub closed: Option<(u64, u64)>,
}

impl ListFilter {
    /// Whether `r` is within the time ranges (the other filters are the
    /// indexes' or checked by `list`).
    fn in_time(&self, r: &InstanceRecord) -> bool {
        let within =
            |range: Option<(u64, u64)>, t: u64| range.is_none_or(|(a, b)| a <= t && t <= b);
        within(self.started, r.created_ms)
            && (self.closed.is_none()
                || r.status.is_terminal() && within(self.closed, r.updated_ms))
    }
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
            let record = self.record()?;
            // stopped here by a store failure: only while the stored record
            // does not show it ended (elsewhere, or before the failure)
            if !record.status.is_terminal()
                && let Some(e) = self
                    .engine()?
                    .halted
                    .lock()
                    .expect("halted lock poisoned")
                    .get(&self.id)
            {
                return Err(ResultError::Store(e.clone()));
            }
            match record.status {
                // a failure the workflow returned (`Err`) comes back typed
                Status::Completed | Status::Cancelled => {
                    let bytes = record.output.unwrap_or_default();
                    return Ok(codec::decode(&bytes)?);
                }
                Status::Failed if record.output.is_some() => {
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
                // on a shared store the finish is announced by a message;
                // a lost one delays this by at most a second
                Status::Running if self.engine()?.store.shared() => {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), notified).await;
                }
                Status::Running => notified.await,
            }
        }
    }
}
