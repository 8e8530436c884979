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
use crate::store::{StoreError, keys};

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
        let now = now_ms(&*self.clock);
        let mut from = vec![keys::TIMER];
        loop {
            let page = self.scan_from(&[keys::TIMER], &from, PAGE).await?;
            let Some((last, _)) = page.last() else {
                return Ok(None);
            };
            from = keys::after(last);
            for (key, _) in &page {
                let Some((at, id)) = keys::parse_timer(key) else {
                    continue;
                };
                if at > now {
                    return Ok(Some(at));
                }
                self.metrics.timer_fired(now - at);
                self.wake_instance(&id).await?;
            }
        }
    }
}
