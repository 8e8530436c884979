// Tests of the visibility suite run on redb only: included after the suite in
// its `redb` module (`common::suite!`).

/// A store an earlier build wrote has its phase index and no counters: it
/// is counted once at open, and the counts are right from the first call.
#[tokio::test]
async fn a_store_written_before_counters_is_counted_at_open() {
    use durable_runtime::store::{Batch, Store, redb::RedbStore};
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .open(dir.path())
        .await
        .unwrap();
    for i in 0..5 {
        rt.start(format!("g-{i}"), gate(i), IdPolicy::Reject)
            .await
            .unwrap();
        rt.start(format!("q-{i}"), quick(i), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .within()
            .await
            .unwrap()
            .unwrap();
    }
    until("the gates wait", || {
        count(&rt, Phase::WaitingForSignal) == 5
    })
    .await;
    rt.shutdown().await;
    // as an earlier build left it: no counters
    {
        let store = RedbStore::open(dir.path()).unwrap();
        assert!(!store.counters().unwrap().is_empty());
        let mut forget = Batch::default();
        for (key, _) in store.scan_prefix(b"n").unwrap() {
            forget.delete(key);
        }
        store.commit(forget).await.unwrap();
        assert!(store.counters().unwrap().is_empty());
    }
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .open(dir.path())
        .await
        .unwrap();
    assert_eq!(count(&rt, Phase::WaitingForSignal), 5);
    assert_eq!(count(&rt, Phase::Completed), 5);
    assert_eq!(rt.counts_by_phase().unwrap(), indexed(&rt));
    rt.shutdown().await;
}

/// A store that counts the scans of the phase index (tag `p`) made through it.
struct Watched {
    inner: durable_runtime::store::mem::MemStore,
    phase_scans: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl durable_runtime::store::Store for Watched {
    fn commit(
        &self,
        batch: durable_runtime::store::Batch,
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
        if prefix.first() == Some(&b'p') {
            self.phase_scans
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::store::StoreError> {
        if prefix.first() == Some(&b'p') {
            self.phase_scans
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.scan_from(prefix, from, limit)
    }
}

/// Counting the instances of each phase (every UI refresh, every metrics
/// scrape) reads counters, not the phase index: before, each call scanned
/// every phase's index entries, about half a second at a million
/// instances, and held up commits meanwhile.
#[tokio::test]
async fn counting_by_phase_reads_no_index_entry() {
    let phase_scans = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rt = Runtime::builder()
        .workflow::<quick>()
        .workflow::<gate>()
        .open_store(Watched {
            inner: durable_runtime::store::mem::MemStore::default(),
            phase_scans: phase_scans.clone(),
        })
        .await
        .unwrap();
    for i in 0..20 {
        rt.start(format!("g-{i}"), gate(i), IdPolicy::Reject)
            .await
            .unwrap();
        rt.start(format!("q-{i}"), quick(i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    until("everything settles", || {
        count(&rt, Phase::WaitingForSignal) == 20 && count(&rt, Phase::Completed) == 20
    })
    .await;
    phase_scans.store(0, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..10 {
        rt.counts_by_phase().unwrap();
        rt.counts().unwrap();
    }
    assert_eq!(
        phase_scans.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "counting scanned the phase index"
    );
    assert_eq!(rt.counts_by_phase().unwrap(), indexed(&rt));
    rt.shutdown().await;
}
