//! The runtime's clock, injectable so tests (yours too) can skip time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::future::BoxFuture;

/// Where the runtime reads the time and waits for it: timers, retry
/// backoff and [`now()`](crate::now) all go through it.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Resolves once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<()>;
}

/// Milliseconds since the Unix epoch of a clock's current time.
pub(crate) fn now_ms(clock: &dyn Clock) -> u64 {
    to_ms(clock.now())
}

pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Resolves once `clock` has reached `at_ms` (ms since the Unix epoch);
/// never when there is no such time.
pub(crate) async fn sleep_until_ms(clock: &dyn Clock, at_ms: Option<u64>) {
    match at_ms {
        Some(at) => clock.sleep_until(from_ms(at)).await,
        None => std::future::pending().await,
    }
}

/// The real time of the machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<()> {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to: durable timers of days or months
/// fire as soon as the test advances past them.
///
/// ```
/// use std::time::Duration;
/// use durable_runtime::clock::{Clock, TestClock};
///
/// let clock = TestClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(30 * 86_400));
/// assert_eq!(clock.now().duration_since(start).unwrap(), Duration::from_secs(30 * 86_400));
/// ```
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<SystemTime>,
    moved: watch::Sender<SystemTime>,
    /// The deadline of every sleep in progress, with how many wait for it
    /// (what time skipping jumps to).
    sleeping: Arc<Mutex<BTreeMap<SystemTime, usize>>>,
}

/// One sleep's place in [`TestClock::sleeping`], given up when the sleep
/// ends or is dropped.
struct Sleeping {
    deadline: SystemTime,
    sleeping: Arc<Mutex<BTreeMap<SystemTime, usize>>>,
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        let mut sleeping = self.sleeping.lock().expect("test clock lock poisoned");
        if let Some(n) = sleeping.get_mut(&self.deadline) {
            *n -= 1;
            if *n == 0 {
                sleeping.remove(&self.deadline);
            }
        }
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl TestClock {
    /// A clock standing at 2030-01-01 00:00 UTC.
    pub fn new() -> TestClock {
        TestClock::starting_at(UNIX_EPOCH + Duration::from_secs(1_893_456_000))
    }

    /// A clock standing at `t`.
    pub fn starting_at(t: SystemTime) -> TestClock {
        TestClock {
            now: Mutex::new(t),
            moved: watch::channel(t).0,
            sleeping: Arc::default(),
        }
    }

    /// Moves the clock forward by `d`, firing what came due.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("test clock lock poisoned");
        *now += d;
        self.moved.send_replace(*now);
    }

    /// The earliest deadline a sleep on this clock waits for that is still
    /// ahead of it.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let now = self.now();
        let sleeping = self.sleeping.lock().expect("test clock lock poisoned");
        sleeping
            .range(now..)
            .find(|(t, _)| **t > now)
            .map(|(t, _)| *t)
    }

    /// Moves the clock forward to `t` (never back), firing what came due.
    pub fn advance_to(&self, t: SystemTime) {
        let mut now = self.now.lock().expect("test clock lock poisoned");
        if t > *now {
            *now = t;
            self.moved.send_replace(t);
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().expect("test clock lock poisoned")
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<()> {
        let mut moved = self.moved.subscribe();
        *self
            .sleeping
            .lock()
            .expect("test clock lock poisoned")
            .entry(deadline)
            .or_insert(0) += 1;
        let sleeping = Sleeping {
            deadline,
            sleeping: self.sleeping.clone(),
        };
        Box::pin(async move {
            let _sleeping = sleeping;
            while *moved.borrow_and_update() < deadline {
                if moved.changed().await.is_err() {
                    // the clock is gone: nothing will ever come due
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<()> {
        (**self).sleep_until(deadline)
    }
}
