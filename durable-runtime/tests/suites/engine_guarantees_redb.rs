// Tests of the engine_guarantees suite run on redb only: included after the suite in
// its `redb` module (`common::suite!`).

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

/// A runtime on `store` with instance `id` of [`held_up`] started and
/// waiting for its signal.
async fn waiting_on(store: LateAnswer, id: &str) -> Runtime {
    let rt = Runtime::builder()
        .workflow::<held_up>()
        .open_store(store)
        .await
        .unwrap();
    rt.start(id, held_up(), IdPolicy::Reject).await.unwrap();
    until("the instance waits for its signal", || {
        rt.describe(id)
            .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
    })
    .await;
    rt
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
    /// The next commit writing a key with this prefix is applied at once
    /// and acknowledged only when let go.
    ack_late: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Set once such a commit is applied and its acknowledgement held
    /// (or, for `apply_late`, once it is held before it is applied).
    acking: Arc<std::sync::atomic::AtomicBool>,
    /// The next commit writing a key with this prefix is applied only when
    /// let go.
    apply_late: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl LateAnswer {
    fn new() -> LateAnswer {
        LateAnswer {
            inner: durable_runtime::store::mem::MemStore::default(),
            skip: Arc::new(std::sync::atomic::AtomicIsize::new(-1)),
            let_go: Arc::default(),
            ack_late: Arc::default(),
            acking: Arc::default(),
            apply_late: Arc::default(),
        }
    }
}

impl durable_runtime::store::Store for LateAnswer {
    fn commit(
        &self,
        batch: Batch,
    ) -> durable_runtime::activity::BoxFuture<Result<(), durable_runtime::store::StoreError>> {
        let writes = |prefix: &mut Vec<u8>| batch.writes.iter().any(|(k, _)| k.starts_with(prefix));
        if self.apply_late.lock().unwrap().take_if(writes).is_some() {
            let (inner, let_go, acking) =
                (self.inner.clone(), self.let_go.clone(), self.acking.clone());
            return Box::pin(async move {
                acking.store(true, Ordering::SeqCst);
                while !let_go.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                inner.commit(batch).await
            });
        }
        let held = self.ack_late.lock().unwrap().take_if(writes).is_some();
        let applied = self.inner.commit(batch);
        if !held {
            return applied;
        }
        let (let_go, acking) = (self.let_go.clone(), self.acking.clone());
        Box::pin(async move {
            let answer = applied.await;
            acking.store(true, Ordering::SeqCst);
            while !let_go.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            answer
        })
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
    let rt = waiting_on(store, "late").await;
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

/// A signal, cancel or terminate whose caller stops waiting while its
/// commit is acknowledged still reaches its instance: the commit and the
/// wake-up after it run as a task of the engine. Here the store applies
/// the request's commit and holds back its acknowledgement, and the
/// caller's task is aborted meanwhile. Before, the wake-up went with the
/// caller: the request was stored, but the instance, asleep on its
/// signal, never looked at it until the process started again.
#[tokio::test]
async fn a_request_whose_caller_stops_waiting_during_its_commit_still_reaches_its_instance() {
    for (tag, request, ends) in [
        (b'g', "signal", Status::Completed),
        (b'c', "cancel", Status::Cancelled),
        (b'x', "terminate", Status::Terminated),
    ] {
        let store = LateAnswer::new();
        let (let_go, ack_late, acking) = (
            store.let_go.clone(),
            store.ack_late.clone(),
            store.acking.clone(),
        );
        let rt = waiting_on(store, "late").await;
        *ack_late.lock().unwrap() = Some([&[tag][..], b"late"].concat());
        let caller = tokio::spawn({
            let rt = rt.clone();
            async move {
                match request {
                    "signal" => rt
                        .signal("late", "go", &())
                        .await
                        .map_err(|e| e.to_string()),
                    "cancel" => rt.cancel("late").await.map_err(|e| e.to_string()),
                    _ => rt
                        .terminate("late", "enough")
                        .await
                        .map_err(|e| e.to_string()),
                }
            }
        });
        until("the request's commit is applied", || {
            acking.load(Ordering::SeqCst)
        })
        .await;
        caller.abort();
        let _ = caller.await;
        let_go.store(true, Ordering::SeqCst);
        let _ = rt.handle::<held_up>("late").result().within().await;
        assert_eq!(
            rt.describe("late").unwrap().status,
            ends,
            "after a {request}"
        );
        rt.shutdown().await;
    }
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[activity]
async fn early_step() -> Result<(), ActivityError> {
    EARLY_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[workflow]
async fn steps_then_waits() -> Result<String, WorkflowError> {
    early_step().await?;
    let _go: () = signal("go").await?;
    Ok("went".into())
}

/// An instance woken between its start's commit and the start of its task
/// runs its first step once: the start claims the instance before its
/// commit, so the wake-up leaves it to the start's task. Here the store
/// applies the creation and holds back its acknowledgement, and a signal
/// sent meanwhile wakes the instance. Before, the wake-up ran the first
/// activity, and the start's task, spawned when the acknowledgement came,
/// ran it again from the record the start had written.
#[tokio::test]
async fn an_instance_woken_before_its_start_is_acknowledged_runs_its_first_step_once() {
    let store = LateAnswer::new();
    let (let_go, ack_late, acking) = (
        store.let_go.clone(),
        store.ack_late.clone(),
        store.acking.clone(),
    );
    *ack_late.lock().unwrap() = Some(b"iearly".to_vec());
    let rt = Runtime::builder()
        .workflow::<steps_then_waits>()
        .open_store(store)
        .await
        .unwrap();
    let starting = tokio::spawn({
        let rt = rt.clone();
        async move {
            rt.start("early", steps_then_waits(), IdPolicy::Reject)
                .await
                .map(drop)
        }
    });
    until("the start's commit is applied", || {
        acking.load(Ordering::SeqCst)
    })
    .await;
    rt.signal("early", "poke", &()).await.unwrap();
    // before the fix the wake-up ran the instance meanwhile; with it, the
    // wake-up leaves the instance to the start's task
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        until("the woken instance waits for `go`", || {
            rt.describe("early")
                .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
        }),
    )
    .await;
    let_go.store(true, Ordering::SeqCst);
    starting.await.unwrap().unwrap();
    rt.signal("early", "go", &()).await.unwrap();
    assert_eq!(
        rt.handle::<steps_then_waits>("early")
            .result()
            .within()
            .await
            .unwrap(),
        Ok("went".to_owned())
    );
    assert_eq!(
        EARLY_RUNS.load(Ordering::SeqCst),
        1,
        "the first step ran once"
    );
    rt.shutdown().await;
}

/// A cancel or terminate stored just after its instance ended leaves no
/// request behind: the instance will never consume it, so the request
/// deletes it once it sees the end (only while the ended record is still
/// the stored one). Here the store holds back the cancel's commit while a
/// signal lets the instance finish. Before, the cancel's key stayed in the
/// store for good (retention did not delete it either).
#[tokio::test]
async fn a_cancel_stored_after_its_instance_ended_leaves_no_request_behind() {
    for (tag, request) in [(b'c', "cancel"), (b'x', "terminate")] {
        let store = LateAnswer::new();
        let (let_go, apply_late, acking, kept) = (
            store.let_go.clone(),
            store.apply_late.clone(),
            store.acking.clone(),
            store.inner.clone(),
        );
        let rt = waiting_on(store, "racing").await;
        let key = [&[tag][..], b"racing"].concat();
        *apply_late.lock().unwrap() = Some(key.clone());
        let requesting = tokio::spawn({
            let rt = rt.clone();
            async move {
                match request {
                    "cancel" => rt.cancel("racing").await,
                    _ => rt.terminate("racing", "enough").await,
                }
            }
        });
        until("the request's commit is held", || {
            acking.load(Ordering::SeqCst)
        })
        .await;
        rt.signal("racing", "go", &()).await.unwrap();
        assert_eq!(
            rt.handle::<held_up>("racing")
                .result()
                .within()
                .await
                .unwrap(),
            Ok("went".to_owned())
        );
        let_go.store(true, Ordering::SeqCst);
        requesting.await.unwrap().unwrap();
        use durable_runtime::store::Store;
        assert_eq!(
            kept.get(&key).unwrap(),
            None,
            "the {request} of an ended instance is not kept"
        );
        rt.shutdown().await;
    }
}

#[workflow]
async fn sleeps_an_hour() -> Result<(), WorkflowError> {
    sleep(Duration::from_secs(3600)).await?;
    Ok(())
}

#[workflow]
async fn naps_briefly() -> Result<(), WorkflowError> {
    sleep(Duration::from_millis(20)).await?;
    Ok(())
}

/// An ended instance woken by a timer it left drops its due timers without
/// reading the whole timer index: no read of the index returns more than a
/// page, whatever the number of sleepers. Before, the wake-up read every
/// timer of the store (602 keys here: 600 instances sleeping an hour, the
/// timer left and the nap's) to find those of the ended instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_instance_woken_by_a_timer_it_left_reads_no_more_than_a_page_of_timers() {
    let store = common::SlowReads::new(|_, _| {});
    let rt = Runtime::builder()
        .workflow::<sleeps_an_hour>()
        .workflow::<naps_briefly>()
        .workflow::<three_steps>()
        .open_store(store.clone())
        .await
        .unwrap();
    let sleepers = 600;
    for i in 0..sleepers {
        rt.start(
            format!("sleeper-{i:03}"),
            sleeps_an_hour(),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    }
    until("every sleeper sleeps", || {
        rt.counts_by_phase()
            .unwrap()
            .contains(&(durable_runtime::Phase::Sleeping, sleepers))
    })
    .await;
    let out = rt
        .start("ended", three_steps("ended".into()), IdPolicy::Reject)
        .await
        .unwrap();
    out.result().within().await.unwrap().unwrap();
    // a timer the ended instance left behind (a crash between its end and
    // the removal, a build before the removal), due a second ago
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut left = b"t".to_vec();
    left.extend_from_slice(&(now - 1000).to_be_bytes());
    left.extend_from_slice(b"ended");
    let mut batch = durable_runtime::store::Batch::default();
    batch.put(left.clone(), Vec::new());
    durable_runtime::store::Store::commit(&store.inner, batch)
        .await
        .unwrap();
    store.largest_scan.lock().unwrap().clear();
    // a brief nap wakes the timer pass, which fires the left timer first
    let nap = rt
        .start("nap", naps_briefly(), IdPolicy::Reject)
        .await
        .unwrap();
    nap.result().within().await.unwrap().unwrap();
    until("the left timer is dropped", || {
        durable_runtime::store::Store::get(&store.inner, &left)
            .unwrap()
            .is_none()
    })
    .await;
    let largest = store.largest_scan.lock().unwrap().get(&b't').copied();
    assert!(
        largest.is_some_and(|n| n <= 512),
        "the largest read of the timer index returned {largest:?} keys ({sleepers} sleepers)"
    );
    rt.shutdown().await;
}
