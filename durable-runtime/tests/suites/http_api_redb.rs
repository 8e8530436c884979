// Tests of the http_api suite run on redb only: included after the suite in
// its `redb` module (`common::suite!`).

/// A runtime on a store in memory whose scans take 300 ms once the flag
/// returned with it is set.
async fn slow_scans() -> (Runtime, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = common::SlowReads::new({
        let slow = slow.clone();
        move |reading, _| {
            if reading == common::Reading::Scan && slow.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        }
    });
    let rt = Runtime::builder().open_store(store).await.unwrap();
    (rt, slow)
}

/// A task that counts the milliseconds it sees pass, and its count.
fn ticker() -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (ticks, task)
}

/// A list or a count served over HTTP reads on tokio's blocking pool: on a
/// runtime with one thread, another task runs while a slow list is read
/// (before, the read held the thread, so nothing else ran until it ended).
#[tokio::test(flavor = "current_thread")]
async fn a_slow_list_or_count_over_http_leaves_the_runtimes_thread_free() {
    use std::sync::atomic::Ordering;
    let (rt, slow) = slow_scans().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = durable_runtime::http::router(rt.clone(), Some("t".into()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (ticks, ticker) = ticker();
    slow.store(true, Ordering::SeqCst);
    for path in ["/api/instances", "/api/counts?prefix=a"] {
        let before = ticks.load(Ordering::SeqCst);
        let (code, body) = call(addr, "GET", path, Some("t"), "").await;
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            ticks.load(Ordering::SeqCst) > before,
            "{path}: nothing else ran on the runtime's thread while it was read"
        );
    }
    ticker.abort();
    server.abort();
    slow.store(false, Ordering::SeqCst);
    rt.shutdown().await;
}

/// A blocking query of the public API (`list`) called from a task on a
/// worker of a multi-threaded runtime hands the worker's other tasks to
/// another thread while it reads: on a runtime with one worker, another
/// task runs while a slow list is read (before, the read held the worker,
/// so nothing else ran until it ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_blocking_query_on_a_tokio_worker_leaves_the_workers_other_tasks_running() {
    use std::sync::atomic::Ordering;
    let (rt, slow) = slow_scans().await;
    let (ticks, ticker) = ticker();
    // the ticker has run once: it is in the runtime's queue
    while ticks.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    slow.store(true, Ordering::SeqCst);
    // on the worker (the test's own body runs on the test's thread)
    let ticked_meanwhile = tokio::spawn({
        let (rt, ticks) = (rt.clone(), ticks.clone());
        async move {
            let before = ticks.load(Ordering::SeqCst);
            rt.list(&durable_runtime::ListFilter::default()).unwrap();
            ticks.load(Ordering::SeqCst) > before
        }
    })
    .await
    .unwrap();
    assert!(
        ticked_meanwhile,
        "nothing else ran on the runtime's worker while the list was read"
    );
    ticker.abort();
    slow.store(false, Ordering::SeqCst);
    rt.shutdown().await;
}
