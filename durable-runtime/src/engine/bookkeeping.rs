//! What this process keeps for each instance, in one map: the claim of the
//! task that drives it, a start creating it, a cancel or terminate request
//! waiting for it, the store failure that stopped it, the keys it used up.
//! An instance's entry lives while any of these holds and goes with the
//! last of them, so an instance that ended leaves nothing behind.
//!
//! (Those waiting for an instance, `result()` and running attempts, wait
//! in the wait queues of `listeners.rs`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::store::StoreError;

/// This process's entries, one per instance it keeps anything for.
#[derive(Default)]
pub(crate) struct Bookkeeping {
    map: Mutex<Map>,
    /// How many entries hold spent keys, read without the lock on the
    /// checkpoint path.
    spent: AtomicUsize,
    /// How many entries have a waiting cancel or terminate, read without
    /// the lock before each attempt.
    controls: AtomicUsize,
    /// Notified when the last task of this process gives up its claim.
    pub(crate) idle: Notify,
}

#[derive(Default)]
struct Map {
    by_id: HashMap<String, Kept>,
    /// Entries with a task.
    tasks: usize,
}

/// What this process keeps for one instance.
#[derive(Default)]
struct Kept {
    /// `Some`: a task of this process drives it (claimed); `Some(true)`:
    /// it was woken meanwhile, so it looks for work again before it ends.
    task: Option<bool>,
    /// A start of this id is checking and creating it.
    creating: bool,
    /// A cancel or terminate request waits to be consumed.
    control: bool,
    /// Stopped in this process because storage failed: its last durable
    /// checkpoint stands until it runs again.
    halted: Option<StoreError>,
    /// Keys it used up (queued results taken, heartbeat details of ended
    /// calls), removed with its next checkpoint.
    spent: Vec<Vec<u8>>,
}

impl Kept {
    fn is_empty(&self) -> bool {
        self.task.is_none()
            && !self.creating
            && !self.control
            && self.halted.is_none()
            && self.spent.is_empty()
    }
}

impl Map {
    /// Runs `f` on the entry of `id` (a new one if there is none), and
    /// drops the entry if it then keeps nothing.
    fn edit<R>(&mut self, id: &str, f: impl FnOnce(&mut Kept) -> R) -> R {
        let answer;
        if let Some(kept) = self.by_id.get_mut(id) {
            answer = f(kept);
            if kept.is_empty() {
                self.by_id.remove(id);
            }
        } else {
            let mut kept = Kept::default();
            answer = f(&mut kept);
            if !kept.is_empty() {
                self.by_id.insert(id.to_owned(), kept);
            }
        }
        answer
    }

    fn get(&self, id: &str) -> Option<&Kept> {
        self.by_id.get(id)
    }
}

impl Bookkeeping {
    fn lock(&self) -> MutexGuard<'_, Map> {
        self.map.lock().expect("bookkeeping lock poisoned")
    }

    /// Claims instance `id` for a task: `true` if taken. Held by a task
    /// already, it is left to that task, which is told to look for work
    /// again when `rewake` is set.
    pub(crate) fn claim(&self, id: &str, rewake: bool) -> bool {
        let mut map = self.lock();
        let taken = map.edit(id, |kept| match &mut kept.task {
            Some(woken) => {
                *woken |= rewake;
                false
            }
            None => {
                kept.task = Some(false);
                true
            }
        });
        if taken {
            map.tasks += 1;
        }
        taken
    }

    /// Gives up the claim of `id`: whether it was woken while claimed.
    pub(crate) fn release(&self, id: &str) -> bool {
        let mut map = self.lock();
        Self::release_in(&mut map, id, &self.idle)
    }

    fn release_in(map: &mut Map, id: &str, idle: &Notify) -> bool {
        let task = map.edit(id, |kept| kept.task.take());
        if task.is_some() {
            map.tasks -= 1;
            if map.tasks == 0 {
                idle.notify_waiters();
            }
        }
        task == Some(true)
    }

    /// For the task of `id` deciding to wait: `true` if it was woken
    /// meanwhile and must look again (unless `closing`); otherwise calls
    /// `deciding` and gives up the claim, under one lock: a wake-up between
    /// the look and the release would otherwise find the claim, leave the
    /// instance to the task, and be lost as the task ends.
    pub(crate) fn look_again_or_release(
        &self,
        id: &str,
        closing: bool,
        deciding: impl FnOnce(),
    ) -> bool {
        let mut map = self.lock();
        if !closing
            && let Some(kept) = map.by_id.get_mut(id)
            && kept.task == Some(true)
        {
            kept.task = Some(false);
            return true;
        }
        deciding();
        Self::release_in(&mut map, id, &self.idle);
        false
    }

    /// Whether a task of this process drives `id` now.
    pub(crate) fn has_task(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|k| k.task.is_some())
    }

    /// How many instances have a task in this process now.
    pub(crate) fn tasks(&self) -> usize {
        self.lock().tasks
    }

    /// Marks `id` as being created by a start: `false` if another start
    /// of it is under way.
    pub(crate) fn begin_create(&self, id: &str) -> bool {
        self.lock()
            .edit(id, |kept| !std::mem::replace(&mut kept.creating, true))
    }

    /// Ends the mark [`Bookkeeping::begin_create`] set.
    pub(crate) fn end_create(&self, id: &str) {
        self.lock().edit(id, |kept| kept.creating = false);
    }

    /// Notes a cancel or terminate request waiting for `id`.
    pub(crate) fn set_control(&self, id: &str) {
        let mut map = self.lock();
        if map.edit(id, |kept| !std::mem::replace(&mut kept.control, true)) {
            self.controls.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether a cancel or terminate request waits for `id`.
    pub(crate) fn has_control(&self, id: &str) -> bool {
        // no lock before an attempt while no request waits
        self.controls.load(Ordering::SeqCst) > 0 && self.lock().get(id).is_some_and(|k| k.control)
    }

    pub(crate) fn clear_control(&self, id: &str) {
        let mut map = self.lock();
        if map.edit(id, |kept| std::mem::replace(&mut kept.control, false)) {
            self.controls.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Notes that storage failure `e` stopped `id` in this process.
    pub(crate) fn halt(&self, id: &str, e: StoreError) {
        self.lock().edit(id, |kept| kept.halted = Some(e));
    }

    /// The storage failure that stopped `id` in this process, if one did.
    pub(crate) fn halted(&self, id: &str) -> Option<StoreError> {
        self.lock().get(id).and_then(|k| k.halted.clone())
    }

    pub(crate) fn clear_halted(&self, id: &str) {
        self.lock().edit(id, |kept| kept.halted = None);
    }

    /// Notes that `id` used up `key`, for its next checkpoint to delete.
    pub(crate) fn spend(&self, id: &str, key: Vec<u8>) {
        let mut map = self.lock();
        let first = map.edit(id, |kept| {
            kept.spent.push(key);
            kept.spent.len() == 1
        });
        if first {
            self.spent.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The keys `id` used up, taken for its checkpoint to delete.
    pub(crate) fn take_spent(&self, id: &str) -> Vec<Vec<u8>> {
        // no lock on the checkpoint path while no instance has spent any
        if self.spent.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        let mut map = self.lock();
        if map.get(id).is_none_or(|k| k.spent.is_empty()) {
            return Vec::new();
        }
        self.spent.fetch_sub(1, Ordering::SeqCst);
        map.edit(id, |kept| std::mem::take(&mut kept.spent))
    }

    /// How many instances each kind of entry is kept for, for the kinds
    /// kept for any (a test of leaks expects none once every instance
    /// has ended).
    #[cfg(feature = "testing")]
    pub(crate) fn resident(&self) -> Vec<(&'static str, usize)> {
        let map = self.lock();
        let count = |f: fn(&Kept) -> bool| map.by_id.values().filter(|k| f(k)).count();
        [
            ("creating", count(|k| k.creating)),
            ("running", count(|k| k.task.is_some())),
            ("controls", count(|k| k.control)),
            ("halted", count(|k| k.halted.is_some())),
            ("spent", count(|k| !k.spent.is_empty())),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_while_it_keeps_anything_and_goes_with_the_last() {
        let book = Bookkeeping::default();
        assert!(book.claim("a", true));
        book.set_control("a");
        book.spend("a", b"k".to_vec());
        assert!(!book.claim("a", true), "a task holds it");
        assert!(book.release("a"), "woken while claimed");
        assert_eq!(book.tasks(), 0);
        assert!(book.has_control("a"));
        assert_eq!(book.take_spent("a"), vec![b"k".to_vec()]);
        assert!(book.take_spent("a").is_empty());
        book.clear_control("a");
        assert!(!book.has_control("a"));
        book.clear_control("a");
        assert_eq!(book.controls.load(Ordering::SeqCst), 0);
        assert!(book.lock().by_id.is_empty(), "nothing kept, no entry");
    }

    #[test]
    fn a_task_woken_while_deciding_to_wait_looks_again_and_one_not_woken_releases() {
        let book = Bookkeeping::default();
        assert!(book.claim("a", true));
        assert!(!book.claim("a", true));
        assert!(book.look_again_or_release("a", false, || panic!("not deciding")));
        let mut decided = false;
        assert!(!book.look_again_or_release("a", false, || decided = true));
        assert!(decided);
        assert!(!book.has_task("a"));
        assert!(book.lock().by_id.is_empty());
    }

    #[test]
    fn a_second_start_of_an_id_waits_for_the_first() {
        let book = Bookkeeping::default();
        assert!(book.begin_create("a"));
        assert!(!book.begin_create("a"));
        book.end_create("a");
        assert!(book.begin_create("a"));
        book.end_create("a");
        assert!(book.lock().by_id.is_empty());
    }
}
