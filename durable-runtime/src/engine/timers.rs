//! The timer service: fires durable timers from the due-time index.
//!
//! A sleeping instance has no task and no memory: only its record and one
//! key `t` + due time + id in the store. This service reads the index in
//! due order, wakes what is due, and sleeps until the next one (or until a
//! transition schedules an earlier one). Timers that came due while the
//! process was down fire on the next open.

use std::sync::Arc;

use super::Engine;
use crate::clock::now_ms;
use crate::store::keys;

/// Index entries read per page.
const PAGE: usize = 512;

impl Engine {
    pub(crate) async fn timer_service(self: Arc<Self>) {
        loop {
            let next = match self.fire_due() {
                Ok(next) => next,
                Err(e) => {
                    // a second of real time: a test clock may stand still
                    tracing::error!(error = %e, "timer index unreadable; retrying in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            tokio::select! {
                () = crate::clock::sleep_until_ms(&*self.clock, next) => {}
                () = self.timers.notified() => {}
            }
        }
    }

    /// Wakes every instance whose timer is due; the next due time, if any.
    fn fire_due(self: &Arc<Self>) -> Result<Option<u64>, crate::StoreError> {
        let now = now_ms(&*self.clock);
        let mut from = vec![keys::TIMER];
        loop {
            let page = self.store.scan_from(&[keys::TIMER], &from, PAGE)?;
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
                self.wake_instance(&id)?;
            }
        }
    }
}
