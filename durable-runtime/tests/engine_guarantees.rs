//! The runtime's guarantees and error paths.
//!
//! On the default store (redb); the suite is `suites/engine_guarantees.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/engine_guarantees.rs");

/// The engine's own reads (a start's look for the id, a signal's receiver,
/// a woken instance's load and its signal, `result()`) wait for the store
/// as tasks: on a runtime with one thread, while the store keeps one
/// instance's reads waiting, another instance starts, runs its activities
/// and finishes. Before, a read held the thread, so nothing else ran until
/// the store answered (a thread of the test lets the held reads go after
/// 10 s at the latest: the test then fails rather than hangs).
#[tokio::test(flavor = "current_thread")]
async fn a_read_the_store_keeps_waiting_holds_up_only_its_own_instance() {
    use std::sync::atomic::AtomicBool;
    let held = Arc::new(AtomicBool::new(false));
    // reads of keys naming `slow` wait while `held` is set, holding their thread
    let store = common::SlowReads::new({
        let held = held.clone();
        move |_, key| {
            if key.windows(4).any(|w| w == b"slow") {
                while held.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    });
    let rt = Runtime::builder()
        .workflow::<held_up>()
        .workflow::<three_steps>()
        .open_store(store)
        .await
        .unwrap();
    rt.start("slow", held_up(), IdPolicy::Reject).await.unwrap();
    until("`slow` waits for its signal", || {
        rt.describe("slow")
            .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
    })
    .await;

    held.store(true, Ordering::SeqCst);
    let let_go_by_the_watchdog = Arc::new(AtomicBool::new(false));
    std::thread::spawn({
        let (held, by_watchdog) = (held.clone(), let_go_by_the_watchdog.clone());
        move || {
            std::thread::sleep(Duration::from_secs(10));
            if held.swap(false, Ordering::SeqCst) {
                by_watchdog.store(true, Ordering::SeqCst);
            }
        }
    });
    // the signal reads `slow`'s record, then wakes it: its load and its
    // look for the signal wait on the store
    let signalling = tokio::spawn({
        let rt = rt.clone();
        async move { rt.signal("slow", "go", &()).await }
    });
    tokio::task::yield_now().await;
    let fast = rt
        .start("fast", three_steps("held-fast".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(fast.result().await.unwrap(), Ok(60));
    assert!(
        held.load(Ordering::SeqCst) && !let_go_by_the_watchdog.load(Ordering::SeqCst),
        "another instance ran only once the held reads were let go"
    );

    held.store(false, Ordering::SeqCst);
    signalling.await.unwrap().unwrap();
    assert_eq!(
        rt.handle::<held_up>("slow").result().await.unwrap(),
        Ok("went".to_owned())
    );
    rt.shutdown().await;
}

#[workflow]
async fn held_up() -> Result<String, WorkflowError> {
    let _go: () = signal("go").await?;
    Ok("went".into())
}

/// A store that, once armed, holds back the answer of one read of the
/// record of instance `late`: the read is made at once, its answer
/// delivered only when let go (a slow disk or network returning what was
/// there when it was asked).
#[derive(Clone)]
struct LateAnswer {
    inner: durable_runtime::store::mem::MemStore,
    /// Reads of the record to let through before the one held back.
    skip: Arc<std::sync::atomic::AtomicIsize>,
    let_go: Arc<std::sync::atomic::AtomicBool>,
}

impl LateAnswer {
    fn new() -> LateAnswer {
        LateAnswer {
            inner: durable_runtime::store::mem::MemStore::default(),
            skip: Arc::new(std::sync::atomic::AtomicIsize::new(-1)),
            let_go: Arc::default(),
        }
    }
}

impl durable_runtime::store::Store for LateAnswer {
    fn commit(
        &self,
        batch: Batch,
    ) -> durable_runtime::activity::BoxFuture<Result<(), durable_runtime::store::StoreError>> {
        self.inner.commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, durable_runtime::store::StoreError> {
        self.inner.get(key)
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, durable_runtime::store::StoreError> {
        self.inner.counters()
    }
    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::store::StoreError> {
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::store::StoreError> {
        self.inner.scan_from(prefix, from, limit)
    }
    fn get_async(
        &self,
        key: &[u8],
    ) -> durable_runtime::activity::BoxFuture<
        Result<Option<Vec<u8>>, durable_runtime::store::StoreError>,
    > {
        let answer = self.inner.get(key);
        let held = key == b"ilate" && self.skip.fetch_sub(1, Ordering::SeqCst) == 0;
        let let_go = self.let_go.clone();
        Box::pin(async move {
            while held && !let_go.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            answer
        })
    }
}

/// A wake-up whose read of the record is answered late never runs the
/// instance from that older record. Here a signal's wake-up reads the
/// record of an instance asleep on a timer, and its answer is held back;
/// meanwhile the timer fires, and the instance runs its activity and waits
/// for a signal. Before, the late answer (the instance still asleep, its
/// timer due) was then run as well: the timer fired again and the activity
/// ran a second time. Now a wake-up claims the instance before it reads
/// it, so the timer's wake-up leaves the instance to it.
#[tokio::test]
async fn a_wake_up_answered_late_never_runs_an_instance_from_an_older_record() {
    let clock = Arc::new(durable_runtime::clock::TestClock::new());
    let store = LateAnswer::new();
    let (skip, let_go) = (store.skip.clone(), store.let_go.clone());
    let rt = Runtime::builder()
        .workflow::<naps_then_steps>()
        .clock(clock.clone())
        .open_store(store)
        .await
        .unwrap();
    rt.start(
        "late",
        naps_then_steps("late-wake".into()),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    until("`late` sleeps", || {
        rt.describe("late")
            .is_ok_and(|d| d.phase == durable_runtime::Phase::Sleeping)
    })
    .await;
    // the signal's receiver reads the record, then its wake-up: that
    // second answer is held back
    skip.store(1, Ordering::SeqCst);
    let signalling = tokio::spawn({
        let rt = rt.clone();
        async move { rt.signal("late", "other", &()).await }
    });
    until("the wake-up has read the record", || {
        skip.load(Ordering::SeqCst) < 0
    })
    .await;
    clock.advance(Duration::from_secs(120));
    let_go.store(true, Ordering::SeqCst);
    signalling.await.unwrap().unwrap();
    until("`late` ran its step and waits for its signal", || {
        rt.describe("late")
            .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
            && rt.running_instances() == 0
    })
    .await;
    rt.signal("late", "end", &()).await.unwrap();
    assert_eq!(
        rt.handle::<naps_then_steps>("late").result().await.unwrap(),
        Ok(10)
    );
    assert_eq!(
        runs("step", "late-wake/1").len(),
        1,
        "the activity ran again from the record read before it ran"
    );
    rt.shutdown().await;
}

#[workflow]
async fn naps_then_steps(key: String) -> Result<u32, WorkflowError> {
    sleep(Duration::from_secs(60)).await?;
    let n = step(key, 1).await?;
    let _end: () = signal("end").await?;
    Ok(n)
}

/// A signal whose caller stops waiting once the signal is stored still
/// wakes its instance: the wake-up runs as a task of its own. Here the
/// caller's task is aborted while the wake-up's read of the record is
/// answered late; before, the wake-up went with it, and the instance,
/// claimed by a look that never ended, waited forever.
#[tokio::test]
async fn a_signal_whose_caller_stops_waiting_still_wakes_its_instance() {
    let store = LateAnswer::new();
    let (skip, let_go) = (store.skip.clone(), store.let_go.clone());
    let rt = Runtime::builder()
        .workflow::<held_up>()
        .open_store(store)
        .await
        .unwrap();
    rt.start("late", held_up(), IdPolicy::Reject).await.unwrap();
    until("`late` waits for its signal", || {
        rt.describe("late")
            .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
    })
    .await;
    // the signal's receiver reads the record, then its wake-up: that
    // second answer is held back, and the caller gives up meanwhile
    skip.store(1, Ordering::SeqCst);
    let signalling = tokio::spawn({
        let rt = rt.clone();
        async move { rt.signal("late", "go", &()).await }
    });
    until("the wake-up has read the record", || {
        skip.load(Ordering::SeqCst) < 0
    })
    .await;
    signalling.abort();
    let _ = signalling.await;
    let_go.store(true, Ordering::SeqCst);
    assert_eq!(
        rt.handle::<held_up>("late")
            .result()
            .within()
            .await
            .unwrap(),
        Ok("went".to_owned())
    );
    rt.shutdown().await;
}
