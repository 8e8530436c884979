//! The timer service: fires durable timers from the due-time index.
//!
//! A sleeping instance has no task and no memory: only its record and one
//! key `t` + due time + id in the store. This service reads the index in
//! due order, wakes what is due, and sleeps until the next one (or until a
//! transition schedules an earlier one). Timers that came due while the
//! process was down fire on the next open.

use std::sync::Arc;

use tokio::sync::Notify;

use super::Engine;
use crate::clock::now_ms;
use crate::store::{KeyValue, StoreError, keys};

/// Index entries read per page.
const PAGE: usize = 512;

impl Engine {
    pub(crate) async fn timer_service(self: Arc<Self>) {
        self.serve_due("timer index", &self.timers, || self.fire_due())
            .await;
    }

    /// Runs `pass`, then again when the time it returned comes or `wake` is
    /// notified, for as long as the task runs: the loop of the timer and
    /// schedule services, written once. A pass the store fails (`what`
    /// unreadable) is tried again a second later, of real time: a test
    /// clock may stand still until the pass has acted.
    pub(crate) async fn serve_due<F, Fut>(&self, what: &str, wake: &Notify, mut pass: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<u64>, StoreError>>,
    {
        loop {
            let next = match pass().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "{what} unreadable; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            tokio::select! {
                () = crate::clock::sleep_until_ms(&*self.clock, next) => {}
                () = wake.notified() => {}
            }
        }
    }

    /// Wakes every instance whose timer is due; the next due time, if any.
    async fn fire_due(self: &Arc<Self>) -> Result<Option<u64>, StoreError> {
        let mut due = DueTimers::at(now_ms(&*self.clock), PAGE);
        while let Some((_, at, id)) = due.next(self).await? {
            self.metrics.timer_fired(due.now - at);
            self.wake_instance(&id).await?;
        }
        Ok(due.upcoming)
    }
}

/// The timer index read in due order, a page at a time, up to the first
/// timer not yet due: what the timer pass fires and what an ended
/// instance's wake-up drops, read one way.
pub(super) struct DueTimers {
    /// What counts as due.
    now: u64,
    page_size: usize,
    /// Where the next page starts; `None` once the due timers are read.
    from: Option<Vec<u8>>,
    page: std::vec::IntoIter<KeyValue>,
    /// The first timer not yet due, once reached.
    upcoming: Option<u64>,
}

impl DueTimers {
    /// The timers due at `now`, read `page_size` index entries at a time.
    pub(super) fn at(now: u64, page_size: usize) -> DueTimers {
        DueTimers {
            now,
            page_size,
            from: Some(vec![keys::TIMER]),
            page: Vec::new().into_iter(),
            upcoming: None,
        }
    }

    /// The next due timer: its key, due time and instance; `None` once
    /// every due timer is read.
    pub(super) async fn next(
        &mut self,
        engine: &Engine,
    ) -> Result<Option<(Vec<u8>, u64, String)>, StoreError> {
        loop {
            if let Some((key, _)) = self.page.next() {
                let Some((at, id)) = keys::parse_timer(&key) else {
                    continue;
                };
                if at > self.now {
                    (self.upcoming, self.from) = (Some(at), None);
                    return Ok(None);
                }
                return Ok(Some((key, at, id)));
            }
            let Some(from) = &self.from else {
                return Ok(None);
            };
            let page = engine
                .scan_from(&[keys::TIMER], from, self.page_size)
                .await?;
            self.from = page.last().map(|(last, _)| keys::after(last));
            self.page = page.into_iter();
        }
    }
}
