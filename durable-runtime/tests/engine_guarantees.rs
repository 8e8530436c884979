//! The runtime's guarantees and error paths.
//!
//! On the default store (redb); the suite is `suites/engine_guarantees.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/engine_guarantees.rs");

/// A store whose reads of keys naming `slow` wait while `held` is set.
/// Its blocking reads hold their thread meanwhile; its async reads wait on
/// tokio's blocking pool, as the embedded stores' do.
#[derive(Clone)]
struct HeldReads {
    inner: durable_runtime::store::mem::MemStore,
    held: Arc<std::sync::atomic::AtomicBool>,
}

impl HeldReads {
    fn wait_if_held(&self, key: &[u8]) {
        if key.windows(4).any(|w| w == b"slow") {
            while self.held.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl durable_runtime::store::Store for HeldReads {
    fn commit(
        &self,
        batch: Batch,
    ) -> durable_runtime::activity::BoxFuture<Result<(), durable_runtime::store::StoreError>> {
        self.inner.commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, durable_runtime::store::StoreError> {
        self.wait_if_held(key);
        self.inner.get(key)
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, durable_runtime::store::StoreError> {
        self.inner.counters()
    }
    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::store::StoreError> {
        self.wait_if_held(prefix);
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::store::StoreError> {
        self.wait_if_held(prefix);
        self.inner.scan_from(prefix, from, limit)
    }
    fn get_async(
        &self,
        key: &[u8],
    ) -> durable_runtime::activity::BoxFuture<
        Result<Option<Vec<u8>>, durable_runtime::store::StoreError>,
    > {
        let (store, key) = (self.clone(), key.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.get(&key))
                .await
                .expect("the read ran")
        })
    }
    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> durable_runtime::activity::BoxFuture<
        Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::store::StoreError>,
    > {
        let (store, prefix, from) = (self.clone(), prefix.to_vec(), from.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.scan_from(&prefix, &from, limit))
                .await
                .expect("the read ran")
        })
    }
}

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
    let rt = Runtime::builder()
        .workflow::<held_up>()
        .workflow::<three_steps>()
        .open_store(HeldReads {
            inner: durable_runtime::store::mem::MemStore::default(),
            held: held.clone(),
        })
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
