//! Named task queues on PostgreSQL: an activity declared
//! `#[activity(queue = "gpu")]` runs only on workers that declared the
//! queue, whichever worker owns the instance; at most
//! `max_concurrent_activities` at once per worker; a task whose worker
//! stopped is run by another. On sled the one process runs it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Within, until};
use durable_runtime::Status;
use durable_runtime::prelude::*;
use durable_runtime::testing::backends::Backend;

/// The worker running the current attempt, or `local` (sled).
fn worker() -> String {
    ActivityContext::current()
        .and_then(|c| c.worker)
        .unwrap_or_else(|| "local".into())
}

#[activity]
async fn prepare(n: u32) -> Result<String, ActivityError> {
    let _ = n;
    Ok(worker())
}

/// The idempotency keys `render` ran with, by its input.
static RENDER_KEYS: std::sync::Mutex<Vec<(u32, String)>> = std::sync::Mutex::new(Vec::new());

#[activity(queue = "gpu")]
async fn render(n: u32) -> Result<String, ActivityError> {
    if let Some(ctx) = ActivityContext::current() {
        RENDER_KEYS.lock().unwrap().push((n, ctx.idempotency_key));
    }
    Ok(worker())
}

#[activity]
async fn publish(n: u32) -> Result<String, ActivityError> {
    let _ = n;
    Ok(worker())
}

#[workflow]
async fn render_job(n: u32) -> Result<Vec<String>, WorkflowError> {
    let a = prepare(n).await?;
    let b = render(n).await?;
    let c = publish(n).await?;
    Ok(vec![a, b, c])
}

#[workflow]
async fn render_all(n: u32) -> Result<Vec<String>, WorkflowError> {
    let parts: Vec<_> = (0..3).map(|i| render(n + i)).collect();
    let results = join_all(parts).await;
    let mut ran = Vec::new();
    for part in results {
        ran.push(part?);
    }
    Ok(ran)
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST: AtomicUsize = AtomicUsize::new(0);
static GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Holds while `GATE` is shut; counts how many run at once.
#[activity(queue = "slow")]
async fn transcode(n: u32) -> Result<u32, ActivityError> {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    while !GATE.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(n * 2)
}

#[workflow]
async fn transcode_job(n: u32) -> Result<u32, WorkflowError> {
    Ok(transcode(n).await?)
}

async fn worker_rt(url: &str, name: &str, queues: &[&str]) -> Runtime {
    let mut builder = Runtime::builder()
        .workflow::<render_job>()
        .workflow::<render_all>()
        .workflow::<transcode_job>()
        .worker_name(name)
        .lease(Duration::from_millis(600));
    for q in queues {
        builder = builder.task_queue(*q);
    }
    builder.open_url(url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_activity_runs_only_on_a_worker_of_its_queue() {
    let db = Backend::Postgres.store();
    let plain = worker_rt(db.url(), "plain", &[]).await;
    let h = plain
        .start("job-1", render_job(1), IdPolicy::Reject)
        .await
        .unwrap();
    // nobody serves `gpu` yet: the call waits as a task, the instance with it
    until("waiting at render", || {
        h.describe()
            .is_ok_and(|d| d.variant.contains("Render") || d.step == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.describe().unwrap().status, Status::Running);
    let gpu = worker_rt(db.url(), "gpu-box", &["gpu"]).await;
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec!["plain", "gpu-box", "plain"]
    );
    let history = h.history().unwrap();
    assert!(history.iter().any(|e| matches!(
        &e.kind,
        durable_runtime::history::EventKind::ActivityFinished { activity, .. } if activity == "render"
    )));
    // parts of a join_all go through the queue too
    let all = plain
        .start("job-2", render_all(10), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        all.result().within().await.unwrap().unwrap(),
        vec!["gpu-box"; 3]
    );
    let workers = plain.workers().unwrap();
    assert!(
        workers
            .iter()
            .any(|w| w.name == "gpu-box" && w.queues == ["gpu"])
    );
    gpu.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_at_most_its_limit_and_a_stopped_workers_tasks_run_elsewhere() {
    let db = Backend::Postgres.store();
    let owner = worker_rt(db.url(), "owner", &[]).await;
    let first = Runtime::builder()
        .workflow::<transcode_job>()
        .worker_name("slow-1")
        .task_queue("slow")
        .max_concurrent_activities(2)
        .open_url(db.url())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..6 {
        handles.push(
            owner
                .start(format!("t{i}"), transcode_job(i), IdPolicy::Reject)
                .await
                .unwrap(),
        );
    }
    until("two running", || RUNNING.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(MOST.load(Ordering::SeqCst), 2, "at most the worker's limit");
    // the worker stops with two attempts running: another worker of the
    // queue runs every task, those two again (their results were never kept)
    first.shutdown().await;
    RUNNING.store(0, Ordering::SeqCst);
    GATE.store(true, Ordering::SeqCst);
    let second = Runtime::builder()
        .workflow::<transcode_job>()
        .worker_name("slow-2")
        .task_queue("slow")
        .open_url(db.url())
        .await
        .unwrap();
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.result().within().await.unwrap().unwrap(), i as u32 * 2);
    }
    second.shutdown().await;
    owner.shutdown().await;
}

/// An id started again is a new incarnation: its queued calls have keys
/// its earlier run's never had (they were `<id>/<step>`, the same for
/// both, and an external service deduplicating by key took the second
/// call for the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_started_again_gives_its_queued_calls_new_idempotency_keys() {
    let db = Backend::Postgres.store();
    let gpu = worker_rt(db.url(), "gpu-keys", &["gpu"]).await;
    for n in [501, 502] {
        let out = gpu
            .start("job-again", render_job(n), IdPolicy::NewRunIfEnded)
            .await
            .unwrap()
            .result()
            .within()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, vec!["gpu-keys"; 3]);
    }
    let keys: Vec<String> = RENDER_KEYS
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n == 501 || *n == 502)
        .map(|(_, key)| key.clone())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(
        keys[0], keys[1],
        "the second run reused the first one's key"
    );
    gpu.shutdown().await;
}

#[tokio::test]
async fn on_sled_the_one_process_runs_a_queued_activity() {
    let db = Backend::Redb.store();
    let rt = Runtime::builder()
        .workflow::<render_job>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("job", render_job(3), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec!["local", "local", "local"]
    );
}

/// On a queue no worker serves.
#[activity(queue = "nobody", schedule_to_start_ms = 5_000)]
async fn unserved(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn unserved_job(n: u32) -> Result<String, WorkflowError> {
    Ok(match unserved(n).await {
        Ok(n) => n.to_string(),
        Err(e) => format!("{}: {}", e.kind(), e.message()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_no_worker_claims_in_time_fails_and_its_task_is_taken_back() {
    use durable_runtime::store::Store;
    let db = Backend::Postgres.store();
    let store: std::sync::Arc<dyn Store> = db.open().await;
    let clock = std::sync::Arc::new(durable_runtime::clock::TestClock::new());
    let rt = Runtime::builder()
        .workflow::<unserved_job>()
        .worker_name("owner")
        .clock(clock.clone())
        .open_store(store.clone())
        .await
        .unwrap();
    let h = rt
        .start("unserved", unserved_job(3), IdPolicy::Reject)
        .await
        .unwrap();
    until("the task to be queued", || {
        store.scan_prefix(b"qnobody").unwrap().len() == 1
    })
    .await;
    clock.advance(Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.describe().unwrap().status, Status::Running, "not yet");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "timeout: no worker of queue `nobody` claimed the call within its schedule-to-start timeout of 5s"
    );
    assert!(
        store.scan_prefix(b"qnobody").unwrap().is_empty(),
        "the task stayed"
    );
    rt.shutdown().await;
}

/// Reports its progress; the first attempt then fails.
#[activity(queue = "beats", max_attempts = 2, initial_interval_ms = 1)]
async fn resumable(n: u32) -> Result<(Option<u32>, String), ActivityError> {
    let from = heartbeat_details::<u32>();
    if from.is_none() {
        heartbeat(&(n * 10))?;
        return Err(ActivityError::retryable("lost the worker's GPU"));
    }
    Ok((from, worker()))
}

#[workflow]
async fn resumable_job(n: u32) -> Result<(Option<u32>, String), WorkflowError> {
    Ok(resumable(n).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_calls_heartbeat_details_reach_its_next_attempt_and_go_with_the_result() {
    use durable_runtime::store::Store;
    let db = Backend::Postgres.store();
    let store: std::sync::Arc<dyn Store> = db.open().await;
    let owner = Runtime::builder()
        .workflow::<resumable_job>()
        .worker_name("owner")
        .open_store(store.clone())
        .await
        .unwrap();
    let gpu = Runtime::builder()
        .workflow::<resumable_job>()
        .worker_name("gpu")
        .task_queue("beats")
        .open_url(db.url())
        .await
        .unwrap();
    let h = owner
        .start("resumable", resumable_job(4), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        (Some(40), "gpu".to_owned())
    );
    assert!(
        store.scan_prefix(b"b").unwrap().is_empty(),
        "the details outlived the call"
    );
    gpu.shutdown().await;
    owner.shutdown().await;
}
