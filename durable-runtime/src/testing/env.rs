//! A runtime for tests whose clock skips ahead (feature `testing`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::clock::{Clock, TestClock};
use crate::engine::Engine;
use crate::error::OpenError;
use crate::runtime::{Builder, Runtime};
use crate::store::mem::MemStore;

/// Polls of the skipper (1 ms apart) with no attempt running, no new
/// checkpoint and no new attempt before the clock jumps.
const QUIET_POLLS: u32 = 3;

/// A [`Runtime`] for tests: an in-memory store and a virtual clock that
/// skips ahead. Whenever no activity attempt runs and nothing has been
/// checkpointed for a few milliseconds while something sleeps on the
/// clock (a durable timer, a retry backoff, a `select` timeout, a
/// schedule), the clock jumps to the earliest such deadline, as
/// Temporal's test server does. A workflow that sleeps thirty days
/// finishes in milliseconds, and its timers fire in their order.
///
/// Dereferences to the [`Runtime`]; mock activities with
/// [`Builder::mock_activity`].
///
/// ```
/// use std::time::Duration;
/// use durable_runtime::prelude::*;
/// use durable_runtime::testing::TestEnv;
///
/// #[activity]
/// async fn remind(user: String) -> Result<String, ActivityError> {
///     Ok(format!("reminded {user}"))
/// }
///
/// #[workflow]
/// async fn trial(user: String) -> Result<String, WorkflowError> {
///     sleep(Duration::from_secs(30 * 86_400)).await?;
///     Ok(remind(user).await?)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let env = TestEnv::start(Runtime::builder().workflow::<trial>()).await.unwrap();
/// let started = env.now();
/// let h = env.start("t-1", trial("ada".into()), IdPolicy::Reject).await.unwrap();
/// assert_eq!(h.result().await.unwrap(), Ok("reminded ada".to_string()));
/// assert!(env.now().duration_since(started).unwrap() >= Duration::from_secs(30 * 86_400));
/// env.shutdown().await;
/// # }
/// ```
pub struct TestEnv {
    runtime: Runtime,
    store: MemStore,
    clock: Arc<TestClock>,
    skipping: Arc<AtomicBool>,
    skipper: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("now", &self.clock.now())
            .field("skipping", &self.skipping.load(Ordering::SeqCst))
            .finish()
    }
}

impl TestEnv {
    /// Opens `builder`'s runtime on a fresh in-memory store, with the
    /// virtual clock (standing at 2030-01-01 00:00 UTC) skipping ahead.
    pub async fn start(builder: Builder) -> Result<TestEnv, OpenError> {
        TestEnv::open(builder, MemStore::new()).await
    }

    /// As [`TestEnv::start`], on `store` (one a test keeps a clone of, to
    /// look into or to [`reboot`](MemStore::reboot) itself).
    pub async fn open(builder: Builder, store: MemStore) -> Result<TestEnv, OpenError> {
        TestEnv::on_clock(builder, store, Arc::new(TestClock::new())).await
    }

    /// Opens `builder`'s runtime on `store` and `clock`, and starts the skipper.
    async fn on_clock(
        builder: Builder,
        store: MemStore,
        clock: Arc<TestClock>,
    ) -> Result<TestEnv, OpenError> {
        let runtime = builder
            .clock(clock.clone())
            .open_store(store.clone())
            .await?;
        let skipping = Arc::new(AtomicBool::new(true));
        let skipper = tokio::spawn(skip_time(
            Arc::downgrade(&runtime.engine),
            clock.clone(),
            skipping.clone(),
        ));
        Ok(TestEnv {
            runtime,
            store,
            clock,
            skipping,
            skipper,
        })
    }

    /// Stops this runtime as a deploy does ([`Runtime::shutdown`]) and
    /// opens `builder`'s — the same code, or a new version of it — on the
    /// same store and clock: unfinished instances go on from their last
    /// checkpoint, as in a restarted process. Time skipping is on again.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use durable_runtime::testing::TestEnv;
    ///
    /// #[workflow]
    /// async fn approval(request: String) -> Result<String, WorkflowError> {
    ///     let by: String = signal("approve").await?;
    ///     Ok(format!("{request} approved by {by}"))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let builder = || Runtime::builder().workflow::<approval>();
    /// let env = TestEnv::start(builder()).await.unwrap();
    /// env.start("a-1", approval("laptop".into()), IdPolicy::Reject).await.unwrap();
    /// // a deploy while it waits: the signal reaches the new process
    /// let env = env.restart(builder()).await.unwrap();
    /// env.signal("a-1", "approve", &"dana".to_string()).await.unwrap();
    /// let out = env.handle::<approval>("a-1").result().await.unwrap();
    /// assert_eq!(out.unwrap(), "laptop approved by dana");
    /// env.shutdown().await;
    /// # }
    /// ```
    pub async fn restart(self, builder: Builder) -> Result<TestEnv, OpenError> {
        let (runtime, store, clock) = self.stop_skipping();
        runtime.shutdown().await;
        TestEnv::on_clock(builder, store, clock).await
    }

    /// Cuts the power and boots `builder`'s runtime on what was synced:
    /// from this moment the old process acknowledges nothing more (an
    /// activity attempt it was running may still finish, as one that had
    /// started before a real crash did, but its result is lost), and the
    /// new one opens on the store as a reboot finds it, with the same
    /// clock. What it had acknowledged is there; an activity whose result
    /// was not yet checkpointed runs again.
    pub async fn crash(self, builder: Builder) -> Result<TestEnv, OpenError> {
        let (runtime, store, clock) = self.stop_skipping();
        store.crash_after(0);
        let rebooted = store.reboot();
        runtime.shutdown().await;
        TestEnv::on_clock(builder, rebooted, clock).await
    }

    /// Stops the skipper; the runtime, store and clock it leaves.
    fn stop_skipping(self) -> (Runtime, MemStore, Arc<TestClock>) {
        self.skipper.abort();
        (self.runtime, self.store, self.clock)
    }

    /// The in-memory store this runtime runs on.
    pub fn store(&self) -> &MemStore {
        &self.store
    }

    /// The runtime (also reached through `Deref`).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The virtual clock, to move by hand ([`TestClock::advance`]) while
    /// skipping is off.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    /// The virtual time.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Turns time skipping on (the default) or off: off, the clock moves
    /// only when the test advances it, so a test can send a signal before
    /// a timer that would otherwise be skipped to. Start instances whose
    /// timers must race each other with skipping off, then turn it on: a
    /// pause between two starts is quiet enough to skip to the first
    /// one's timer.
    pub fn set_time_skipping(&self, on: bool) {
        self.skipping.store(on, Ordering::SeqCst);
    }

    /// Stops the clock's skipping and the runtime.
    pub async fn shutdown(self) {
        self.skipper.abort();
        self.runtime.shutdown().await;
    }
}

impl std::ops::Deref for TestEnv {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

/// Jumps `clock` to its next deadline whenever the engine is quiet.
async fn skip_time(engine: Weak<Engine>, clock: Arc<TestClock>, on: Arc<AtomicBool>) {
    let mut last = None;
    let mut quiet = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if !on.load(Ordering::SeqCst) || engine.is_closing() {
            quiet = 0;
            continue;
        }
        let attempting = engine.activity_limit - engine.activity_slots.available_permits();
        // every commit (a start, a signal, a transition), every attempt
        let mark = (
            engine.store.stats().map(|s| s.commits),
            engine.metrics.progress(),
            clock.now(),
        );
        if attempting > 0 || last != Some(mark) {
            last = Some(mark);
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet >= QUIET_POLLS
            && let Some(next) = clock.next_deadline()
        {
            clock.advance_to(next);
            quiet = 0;
        }
    }
}
