//! Wake-ups by key, held only while someone listens: callers waiting for
//! an instance's end, a running attempt listening for an interrupt, a queue
//! service or a queued call waiting for work. Written once so that no map
//! keeps an entry for every instance that ever ran.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The notifiers of the keys someone listens to.
#[derive(Default)]
pub(crate) struct Listeners(Mutex<HashMap<String, Arc<Notify>>>);

/// One listener of a key: its entry stays while a listener holds it.
pub(crate) struct Listening<'a> {
    of: &'a Listeners,
    key: String,
    /// `None` only while being dropped.
    notify: Option<Arc<Notify>>,
}

impl Listeners {
    /// Listens to `key` from now on: arm [`Listening::notified`] before
    /// looking at what it guards, and a wake-up in between is not missed.
    pub(crate) fn listen(&self, key: &str) -> Listening<'_> {
        let notify = self
            .0
            .lock()
            .expect("listeners lock poisoned")
            .entry(key.to_owned())
            .or_default()
            .clone();
        Listening {
            of: self,
            key: key.to_owned(),
            notify: Some(notify),
        }
    }

    /// Wakes everyone listening to `key` (nobody listens: nothing to do).
    /// Under the lock and without a clone of the notifier: a listener that
    /// leaves meanwhile must see only its fellow listeners' shares, or the
    /// last one would leave the entry behind.
    pub(crate) fn notify(&self, key: &str) {
        if let Some(notify) = self.0.lock().expect("listeners lock poisoned").get(key) {
            // schedules the woken tasks; runs none of them here
            notify.notify_waiters();
        }
    }

    /// Wakes every listener (messages may have been lost).
    pub(crate) fn notify_all(&self) {
        for notify in self.0.lock().expect("listeners lock poisoned").values() {
            notify.notify_waiters();
        }
    }

    /// Keys listened to now.
    #[cfg(feature = "testing")]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().expect("listeners lock poisoned").len()
    }
}

impl Listening<'_> {
    /// Completes at the next [`Listeners::notify`] of the key.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify
            .as_ref()
            .expect("a listener has its notifier until dropped")
            .notified()
    }
}

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        let mut map = self.of.0.lock().expect("listeners lock poisoned");
        // let go of this listener's share under the lock, so two listeners
        // leaving together cannot both see the other still there
        let mine = self.notify.take();
        if let Some(current) = map.get(&self.key)
            && mine.as_ref().is_some_and(|m| Arc::ptr_eq(m, current))
        {
            drop(mine);
            if Arc::strong_count(current) == 1 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_lives_as_long_as_its_last_listener() {
        let listeners = Listeners::default();
        let a = listeners.listen("x");
        let b = listeners.listen("x");
        {
            let woken = a.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            listeners.notify("x");
            woken.await;
        }
        drop(a);
        assert_eq!(listeners.0.lock().unwrap().len(), 1);
        drop(b);
        assert!(listeners.0.lock().unwrap().is_empty());
        // notifying a key nobody listens to leaves nothing behind
        listeners.notify("y");
        assert!(listeners.0.lock().unwrap().is_empty());
    }
}
