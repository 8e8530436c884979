//! Configuring a runtime: [`Builder`], what it registers and where it
//! opens, and [`IdPolicy`].

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::Runtime;
use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, WorkflowEntry};
use crate::error::OpenError;
use crate::store::fs::RealFs;
use crate::store::kind::{self, Kind};
use crate::store::{Store, StoreError};
use crate::workflow::Workflow;

/// What [`Runtime::start`] does when the id is already taken. In JSON (the
/// HTTP API's `id_policy`): `"reject"`, `"use_existing"`,
/// `"new_run_if_ended"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdPolicy {
    /// Fail with [`StartError::AlreadyExists`](crate::StartError::AlreadyExists).
    Reject,
    /// Return a handle to the existing instance (its input is kept; the new
    /// one is ignored). Running the same start twice never runs it twice.
    UseExisting,
    /// Start a new run if the existing instance has ended (completed,
    /// failed, cancelled or terminated): it is replaced, its history,
    /// signals and marks deleted with it, in the new run's creation (one
    /// commit), and the new run's idempotency keys are its own (a new
    /// incarnation). Fail with [`StartError::AlreadyExists`](crate::StartError::AlreadyExists)
    /// while it still runs (or is parked). Temporal's "allow duplicate".
    NewRunIfEnded,
}

/// Configures and opens a [`Runtime`].
pub struct Builder {
    workflows: crate::engine::Registry,
    max_concurrent_activities: usize,
    resume_on_open: bool,
    clock: Arc<dyn Clock>,
    retention: Option<std::time::Duration>,
    reset_points: u64,
    worker_name: Option<String>,
    lease: std::time::Duration,
    task_queues: Vec<String>,
    sled_cache: Option<u64>,
    allow_untraced: bool,
    limits: crate::Limits,
    dependencies: crate::activity::Dependencies,
    activities: crate::activity::Activities,
    updates: std::collections::HashMap<&'static str, crate::update::UpdateType>,
    test_hooks: crate::activity::TestHooks,
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

    /// Registers `W` and gives its failed runs a retry policy (Temporal's
    /// workflow retry policy): when a run fails (it returns `Err` or
    /// panics; not when it is cancelled, terminated or timed out), a new
    /// run of the same id starts from the same input after the policy's
    /// backoff, with the next run number, until a run ends otherwise or
    /// `policy` allows no more attempts (the last failure stands).
    /// `non_retryable_kinds` can name `error` (a returned `Err`) or `panic`.
    /// The history records each failed run (`EventKind::RunFailed`); the
    /// backoff runs on the runtime's clock and a restart waits out the
    /// rest; a cancel or terminate during it ends the instance. Instances
    /// created while `W` had no policy keep failing once (their input was
    /// not kept for a rerun). Activities the failed run completed run
    /// again in the next (their idempotency keys differ).
    pub fn workflow_with_retry<W: Workflow>(mut self, policy: crate::RetryPolicy) -> Self {
        self = self.workflow::<W>();
        self.workflows.set_retry_policy(W::NAME, policy);
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
                source: WorkflowEntry::of::<From>(),
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

    /// Gives the activities `value`, read inside them with
    /// [`dependency::<T>()`](crate::activity::dependency): a database
    /// pool, an HTTP client, a mailer (a trait object, so that a test gives
    /// its runtime a fake). One value per type; registering a type again
    /// replaces it. The activities that recovery resumes while the runtime
    /// opens see them too.
    pub fn dependency<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.dependencies.insert(value);
        self
    }

    /// Names `A` as the activity this runtime runs for a call made by its
    /// name: a saga's compensation and a call on a task queue are stored
    /// by name and found by it when they run. An activity needs no
    /// registration while its name is its own; when two linked activities
    /// share one (two crates that both define `refund`), a call by that
    /// name fails naming both modules unless the runtime was told which it
    /// runs. Registering another activity of the same name replaces it.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    ///
    /// mod billing {
    ///     use durable_runtime::prelude::*;
    ///     #[activity]
    ///     pub async fn refund(_order: String) -> Result<(), ActivityError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// mod shipping {
    ///     use durable_runtime::prelude::*;
    ///     #[activity]
    ///     pub async fn refund(_parcel: String) -> Result<(), ActivityError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// // compensations named `refund` run billing's
    /// let builder = Runtime::builder().activity::<billing::refund>();
    /// # let _ = builder;
    /// ```
    pub fn activity<A: crate::activity::Activity>(mut self) -> Self {
        self.activities.insert::<A>();
        self
    }

    /// Declares update `def` to this runtime with a validator: before an
    /// update of that name is accepted for any instance, `validate` judges
    /// its request in the caller's process, and `Err(reason)` rejects it
    /// ([`UpdateError::Rejected`](crate::UpdateError::Rejected): nothing is
    /// written, nothing is in the history). A declared update can also be
    /// sent as JSON (HTTP, CLI) before its workflow awaits it; an
    /// undeclared one only while awaited (its type is known then).
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use durable_runtime::update::UpdateDef;
    ///
    /// const SET_QUANTITY: UpdateDef<u32, u32> = UpdateDef::new("set_quantity");
    ///
    /// let builder = Runtime::builder().update_validator(SET_QUANTITY, |n: &u32| {
    ///     if (1..=100).contains(n) { Ok(()) } else { Err(format!("{n} is not 1 to 100")) }
    /// });
    /// # drop(builder);
    /// ```
    pub fn update_validator<Req, Resp>(
        mut self,
        def: crate::update::UpdateDef<Req, Resp>,
        validate: impl Fn(&Req) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self
    where
        Req: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        Resp: 'static,
    {
        self.updates
            .insert(def.name(), crate::update::UpdateType::of(def, validate));
        self
    }

    /// Replaces activity `A` in this runtime by `body` (feature `testing`):
    /// every attempt of `A` runs `body` on the activity's input instead of
    /// the activity's own code, with the same retries, checkpoints and
    /// [`ActivityContext`](crate::activity::ActivityContext) (read it inside
    /// `body` to fail the first attempt only, say). A test of a workflow
    /// mocks the activities that would reach the outside world.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use durable_runtime::testing::TestEnv;
    ///
    /// #[activity]
    /// async fn charge(order_id: String, cents: u64) -> Result<String, ActivityError> {
    ///     unimplemented!("calls the payment provider with {order_id} and {cents}")
    /// }
    ///
    /// #[workflow]
    /// async fn checkout(order_id: String, cents: u64) -> Result<String, WorkflowError> {
    ///     match charge(order_id, cents).await {
    ///         Ok(receipt) => Ok(receipt),
    ///         Err(e) => Ok(format!("not charged: {}", e.message())),
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let builder = Runtime::builder()
    ///     .workflow::<checkout>()
    ///     .mock_activity::<charge>(|(order_id, cents)| {
    ///         if cents > 10_000 {
    ///             Err(ActivityError::terminal("card declined"))
    ///         } else {
    ///             Ok(format!("receipt-{order_id}"))
    ///         }
    ///     });
    /// let env = TestEnv::start(builder).await.unwrap();
    /// let big = env.start("o-1", checkout("o-1".into(), 50_000), IdPolicy::Reject).await.unwrap();
    /// assert_eq!(big.result().await.unwrap(), Ok("not charged: card declined".to_string()));
    /// let small = env.start("o-2", checkout("o-2".into(), 500), IdPolicy::Reject).await.unwrap();
    /// assert_eq!(small.result().await.unwrap(), Ok("receipt-o-2".to_string()));
    /// env.shutdown().await;
    /// # }
    /// ```
    #[cfg(feature = "testing")]
    pub fn mock_activity<A: crate::activity::Activity>(
        mut self,
        body: impl Fn(A::Input) -> A::Output + Send + Sync + 'static,
    ) -> Self {
        self.test_hooks
            .mocks
            .insert(A::NAME, crate::activity::mock::<A>(body));
        self
    }

    /// Calls `hook` with the instance id whenever an instance's task has
    /// decided to wait and has not yet given up its claim (tests of the
    /// wake-up race only).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn on_deciding_to_wait(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.test_hooks.deciding_to_wait = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` with the instance id whenever an instance's task has
    /// ended it and has not yet given up its claim (tests of the race of a
    /// reset with the end only).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn on_ending(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.test_hooks.ending = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` with the instance id whenever a loaded instance has
    /// been checked against the code and its unparking, migration or
    /// parking is about to be saved (tests of the race of a reset with that
    /// save only).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn on_settling(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.test_hooks.settling = Some(Arc::new(hook));
        self
    }

    /// Tells `witness` of every activity attempt before it runs (the crash
    /// sweep's record of what ran).
    #[cfg(feature = "testing")]
    pub(crate) fn witness(
        mut self,
        witness: impl Fn(&crate::activity::ActivityContext) + Send + Sync + 'static,
    ) -> Self {
        self.test_hooks.witness = Some(Arc::new(witness));
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

    /// How far back [`Runtime::reset`] can take an instance: to the
    /// states of its last `n` steps ([`reset`](crate::reset)). Default 64;
    /// 0 keeps none (a reset is then refused). Each checkpoint stores the
    /// instance's record after its history events (no key of its own; a
    /// large field is referred to, not copied, and kept while a usable
    /// point refers to it); they go with the history when retention
    /// deletes the instance.
    pub fn reset_points(mut self, n: u64) -> Self {
        self.reset_points = n;
        self
    }

    /// This process's name among the workers sharing a PostgreSQL store
    /// (default: host name and process id). Names must be unique among
    /// live processes; a process that starts under the name of one that
    /// died takes its instances over at once instead of after its lease.
    /// Give each replica a stable name (a StatefulSet pod name, a host name)
    /// for the fastest restart. Ignored by the embedded stores (redb,
    /// sled), whose directory one process has open.
    pub fn worker_name(mut self, name: impl Into<String>) -> Self {
        self.worker_name = Some(name.into());
        self
    }

    /// How long a worker sharing a PostgreSQL store holds its instances
    /// without renewing (default 5 s): when a worker dies, the others take
    /// its instances over after this time (plus up to a quarter of it). A
    /// worker that cannot renew within 4/5 of it stops committing on its
    /// own. Ignored by the embedded stores (redb, sled).
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
    /// once per worker. On an embedded store (redb, sled: one process)
    /// queues are not used: the process runs every activity.
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
            reset_points: self.reset_points,
            worker_name: None,
            lease: self.lease,
            task_queues: Vec::new(),
            sled_cache: self.sled_cache,
            allow_untraced: self.allow_untraced,
            limits: self.limits,
            dependencies: self.dependencies.clone(),
            activities: self.activities.clone(),
            updates: self.updates.clone(),
            test_hooks: self.test_hooks.clone(),
        }
    }

    /// The largest ids, inputs, signal payloads, activity results and
    /// states accepted (see [`Limits`](crate::Limits) for the defaults and
    /// what happens over each).
    pub fn limits(mut self, limits: crate::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Opens even when the [layout](crate::layout) of a registered
    /// version's types cannot be traced (a hand-written `Deserialize` that
    /// refuses the tracer's placeholder values), instead of failing with
    /// [`OpenError::Untraced`]. Such a version's stored states are checked
    /// by fingerprint only: a changed type definition behind an unchanged
    /// name would then be read by position. A warning names each one.
    pub fn allow_untraced_layouts(mut self) -> Self {
        self.allow_untraced = true;
        self
    }

    fn check_registry(&self) -> Result<(), OpenError> {
        if let Some(e) = self.workflows.conflicts.first() {
            return Err(e.clone());
        }
        if self.allow_untraced {
            return Ok(());
        }
        match self
            .workflows
            .entries()
            .find_map(|e| e.layout.layout.as_ref().err().map(|why| (e, why)))
        {
            Some((e, why)) => Err(OpenError::Untraced {
                workflow: e.name.to_owned(),
                version: e.version,
                reason: why.clone(),
            }),
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
        let store_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let engine = Arc::new(Engine {
            reset_points: self.reset_points,
            batch_wake: tokio::sync::Notify::new(),
            limits: self.limits,
            test_hooks: self.test_hooks,
            dependencies: Arc::new(self.dependencies),
            activities: self.activities,
            updates: self.updates,
            member,
            queue_claims: std::sync::atomic::AtomicUsize::new(0),
            activity_limit: self.max_concurrent_activities,
            store: Arc::new(crate::store::Closable::new(store, store_closed.clone())),
            store_closed,
            workflows: self.workflows,
            activity_slots: Semaphore::new(self.max_concurrent_activities),
            waiters: Default::default(),
            tasks: Mutex::default(),
            parked: Mutex::default(),
            layouts: Mutex::default(),
            layouts_stored: std::sync::RwLock::default(),
            value_layouts: Mutex::default(),
            clock: self.clock,
            book: Default::default(),
            this: std::sync::OnceLock::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
            metrics: Default::default(),
            interrupts: Default::default(),
            timers: tokio::sync::Notify::new(),
            signal_seq: std::sync::atomic::AtomicU64::new(0),
            schedule_lock: tokio::sync::Mutex::new(()),
            schedule_wake: tokio::sync::Notify::new(),
            resolve_on_wake: self.resume_on_open,
        });
        let _ = engine.this.set(Arc::downgrade(&engine));
        engine.init_signal_seq().await?;
        engine.warn_untraced();
        if let Some(mut notices) = notices {
            // listening before the instances are read: no message missed
            let first = crate::engine::until_listening(&mut notices).await;
            let listener = engine.clone().notice_service(first, notices);
            engine
                .tasks
                .lock()
                .expect("tasks lock poisoned")
                .spawn(listener);
        }
        let resumed = if self.resume_on_open {
            engine.store_activity_layouts().await?;
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
        let runtime = Runtime {
            engine,
            resumed,
            clones: Arc::new(()),
        };
        if self.resume_on_open {
            let service = runtime.clone().batch_service();
            runtime
                .engine
                .tasks
                .lock()
                .expect("tasks lock poisoned")
                .spawn(service);
        }
        Ok(runtime)
    }
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

impl Runtime {
    /// A [`Builder`] with no workflows and default limits.
    pub fn builder() -> Builder {
        Builder {
            workflows: crate::engine::Registry::default(),
            max_concurrent_activities: 1000,
            resume_on_open: true,
            clock: Arc::new(SystemClock),
            retention: None,
            reset_points: 64,
            worker_name: None,
            lease: std::time::Duration::from_secs(5),
            task_queues: Vec::new(),
            sled_cache: None,
            allow_untraced: false,
            limits: crate::Limits::default(),
            dependencies: crate::activity::Dependencies::default(),
            activities: crate::activity::Activities::default(),
            updates: std::collections::HashMap::new(),
            test_hooks: crate::activity::TestHooks::default(),
        }
    }
}
