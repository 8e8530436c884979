// Included by `activity_timeouts.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::{Within, until};
use durable_runtime::Status;
use durable_runtime::clock::TestClock;
use durable_runtime::prelude::*;
use durable_runtime::store::Store;

/// An attempt's number and the heartbeat details it started from.
type Seen = (u32, Option<u32>);

/// What each attempt of a test's activity saw, by test key.
static SEEN: LazyLock<Mutex<HashMap<String, Vec<Seen>>>> = LazyLock::new(Default::default);
/// Keys whose activity heard "stop" at a heartbeat.
static TOLD_TO_STOP: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);

fn saw(key: &str, from: Option<u32>) {
    let attempt = ActivityContext::current().map_or(0, |c| c.attempt);
    SEEN.lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .push((attempt, from));
}

fn seen(key: &str) -> Vec<Seen> {
    SEEN.lock().unwrap().get(key).cloned().unwrap_or_default()
}

/// Encodes chunks from the one after the last reported; the first attempt
/// fails after chunk `fail_after`.
#[activity(max_attempts = 3, initial_interval_ms = 1)]
async fn encode(key: String, chunks: u32, fail_after: u32) -> Result<Vec<u32>, ActivityError> {
    let from = heartbeat_details::<u32>();
    saw(&key, from);
    let first = from.map_or(0, |done| done + 1);
    let mut done = Vec::new();
    for chunk in first..chunks {
        done.push(chunk);
        heartbeat(&chunk)?;
        let attempt = ActivityContext::current().map_or(0, |c| c.attempt);
        if attempt == 1 && chunk == fail_after {
            return Err(ActivityError::retryable(format!(
                "lost the encoder at chunk {chunk}"
            )));
        }
    }
    Ok(done)
}

#[workflow]
async fn encode_video(
    key: String,
    chunks: u32,
    fail_after: u32,
) -> Result<Vec<u32>, WorkflowError> {
    Ok(encode(key, chunks, fail_after).await?)
}

/// Reports progress 7, then (first attempt) goes silent forever; a later
/// attempt returns the details it started from.
#[activity(
    max_attempts = 2,
    initial_interval_ms = 1_000,
    heartbeat_timeout_ms = 5_000
)]
async fn goes_silent(key: String) -> Result<u32, ActivityError> {
    let from = heartbeat_details::<u32>();
    saw(&key, from);
    if let Some(progress) = from {
        return Ok(progress);
    }
    heartbeat(&7_u32)?;
    std::future::pending::<()>().await;
    Ok(0)
}

#[workflow]
async fn silent(key: String) -> Result<u32, WorkflowError> {
    Ok(goes_silent(key).await?)
}

/// Never ends by itself.
#[activity(max_attempts = 1, timeout_ms = 60_000)]
async fn hangs(key: String) -> Result<u32, ActivityError> {
    saw(&key, None);
    std::future::pending::<()>().await;
    Ok(0)
}

#[workflow]
async fn hung(key: String) -> Result<String, WorkflowError> {
    Ok(match hangs(key).await {
        Ok(n) => n.to_string(),
        Err(e) => format!("{}: {}", e.kind(), e.message()),
    })
}

/// Fails its first attempt, then never ends; retried without limit.
#[activity(max_attempts = 0, initial_interval_ms = 10_000)]
async fn fails_then_hangs(key: String) -> Result<u32, ActivityError> {
    saw(&key, None);
    if ActivityContext::current().is_some_and(|c| c.attempt == 1) {
        return Err(ActivityError::retryable("first attempt fails"));
    }
    std::future::pending::<()>().await;
    Ok(0)
}

/// Fails every attempt; retried without limit, 10 s apart.
#[activity(max_attempts = 0, initial_interval_ms = 10_000, backoff = 1.0)]
async fn always_fails(key: String) -> Result<u32, ActivityError> {
    saw(&key, None);
    Err(ActivityError::retryable("still failing"))
}

#[workflow]
async fn bounded_hang(key: String) -> Result<String, WorkflowError> {
    let call = fails_then_hangs(key).with_schedule_to_close_timeout(Duration::from_secs(30));
    Ok(match call.await {
        Ok(n) => n.to_string(),
        Err(e) => format!("{}: {}", e.kind(), e.message()),
    })
}

#[workflow]
async fn bounded_fail(key: String) -> Result<String, WorkflowError> {
    let call = always_fails(key).with_schedule_to_close_timeout(Duration::from_secs(25));
    Ok(match call.await {
        Ok(n) => n.to_string(),
        Err(e) => format!("{}: {}", e.kind(), e.message()),
    })
}

/// Heartbeats every few ms until told to stop, then cleans up.
#[activity(max_attempts = 1, heartbeat_timeout_ms = 10_000)]
async fn watches(key: String) -> Result<u32, ActivityError> {
    saw(&key, None);
    for n in 0_u32.. {
        if let Err(e) = heartbeat(&n) {
            TOLD_TO_STOP.lock().unwrap().push(key.clone());
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(0)
}

#[workflow]
async fn watching(key: String) -> Result<u32, WorkflowError> {
    Ok(watches(key).await?)
}

static HOLD: AtomicBool = AtomicBool::new(true);

/// Reports progress 41 once, then waits while `HOLD`; returns the details
/// it started from.
#[activity]
async fn long_job(key: String) -> Result<Option<u32>, ActivityError> {
    let from = heartbeat_details::<u32>();
    saw(&key, from);
    if from.is_none() {
        heartbeat(&41_u32)?;
    }
    while HOLD.load(Ordering::SeqCst) && from.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(from)
}

#[workflow]
async fn long(key: String) -> Result<Option<u32>, WorkflowError> {
    Ok(long_job(key).await?)
}

fn builder() -> durable_runtime::Builder {
    Runtime::builder()
        .workflow::<encode_video>()
        .workflow::<silent>()
        .workflow::<hung>()
        .workflow::<bounded_hang>()
        .workflow::<bounded_fail>()
        .workflow::<watching>()
        .workflow::<long>()
}

/// The test's store, which it reads beside the runtime.
async fn store(db: &durable_runtime::testing::backends::TestStore) -> Arc<dyn Store> {
    db.open().await
}

/// The heartbeat details in `store`.
fn heartbeat_keys(store: &Arc<dyn Store>) -> usize {
    store.scan_prefix(b"b").unwrap().len()
}

/// Advances `clock` by `step` until `done` holds.
async fn advance_until(clock: &TestClock, step: Duration, what: &str, done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        clock.advance(step);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_retried_attempt_resumes_from_the_last_heartbeat_and_the_details_go_with_the_result() {
    let db = BACKEND.store();
    let store = store(&db).await;
    let rt = builder().open_store(store.clone()).await.unwrap();
    let h = rt
        .start("enc", encode_video("enc".into(), 8, 3), IdPolicy::Reject)
        .await
        .unwrap();
    // the first attempt did 0..=3 and failed; the second starts at 4
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec![4, 5, 6, 7]
    );
    assert_eq!(seen("enc"), vec![(1, None), (2, Some(3))]);
    rt.shutdown().await;
    assert_eq!(heartbeat_keys(&store), 0, "details outlived their call");
}

#[tokio::test]
async fn an_attempt_silent_past_its_heartbeat_timeout_fails_and_the_next_reads_its_details() {
    let db = BACKEND.store();
    let store = store(&db).await;
    let clock = Arc::new(TestClock::new());
    let rt = builder()
        .clock(clock.clone())
        .open_store(store.clone())
        .await
        .unwrap();
    let h = rt
        .start("silent", silent("silent".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the first attempt to report", || seen("silent").len() == 1).await;
    // 4 s of silence: within the timeout, nothing happens
    clock.advance(Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen("silent").len(), 1);
    advance_until(&clock, Duration::from_secs(1), "the retry", || {
        seen("silent").len() == 2
    })
    .await;
    assert_eq!(h.result().within().await.unwrap().unwrap(), 7);
    assert_eq!(seen("silent"), vec![(1, None), (2, Some(7))]);
    let history = h.history().unwrap();
    let failed = format!("{history:?}");
    assert!(
        failed.contains("sent no heartbeat for its heartbeat timeout of 5s"),
        "{failed}"
    );
    rt.shutdown().await;
    assert_eq!(heartbeat_keys(&store), 0);
}

/// Before, the start-to-close timeout ran on tokio's clock: a test clock
/// could not reach it, and this instance hung.
#[tokio::test]
async fn the_start_to_close_timeout_runs_on_the_runtimes_clock() {
    let db = BACKEND.store();
    let store = store(&db).await;
    let clock = Arc::new(TestClock::new());
    let rt = builder()
        .clock(clock.clone())
        .open_store(store.clone())
        .await
        .unwrap();
    let h = rt
        .start("hung", hung("hung".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the attempt to start", || seen("hung").len() == 1).await;
    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.describe().unwrap().status, Status::Running);
    clock.advance(Duration::from_secs(1));
    let out = h.result().within().await.unwrap().unwrap();
    assert_eq!(
        out,
        "timeout: attempt exceeded its start-to-close timeout of 60s"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn the_schedule_to_close_timeout_bounds_every_attempt_and_backoff() {
    let db = BACKEND.store();
    let store = store(&db).await;
    let clock = Arc::new(TestClock::new());
    let rt = builder()
        .clock(clock.clone())
        .open_store(store.clone())
        .await
        .unwrap();
    // a hanging second attempt is given up when the call's 30 s are over
    let h = rt
        .start(
            "s2c-hang",
            bounded_hang("s2c-hang".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    until("the first attempt", || seen("s2c-hang").len() == 1).await;
    advance_until(&clock, Duration::from_secs(1), "the result", || {
        h.describe().is_ok_and(|d| d.status != Status::Running)
    })
    .await;
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "timeout: the call exceeded its schedule-to-close timeout of 30s"
    );
    assert_eq!(seen("s2c-hang").len(), 2, "one retry within the 30 s");
    // a retry that would start after the 25 s is not made: the last
    // attempt's own error ends the call (attempts at 0, 10 and 20 s)
    let h = rt
        .start(
            "s2c-fail",
            bounded_fail("s2c-fail".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    until("the first attempt", || seen("s2c-fail").len() == 1).await;
    advance_until(&clock, Duration::from_secs(1), "the result", || {
        h.describe().is_ok_and(|d| d.status != Status::Running)
    })
    .await;
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "error: still failing"
    );
    assert_eq!(seen("s2c-fail").len(), 3);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_instances_attempt_hears_it_at_its_next_heartbeat() {
    let db = BACKEND.store();
    let store = store(&db).await;
    let rt = builder().open_store(store.clone()).await.unwrap();
    let h = rt
        .start("watch", watching("watch".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the attempt to start", || seen("watch").len() == 1).await;
    rt.cancel("watch").await.unwrap();
    until("the instance to end", || {
        h.describe().is_ok_and(|d| d.status == Status::Cancelled)
    })
    .await;
    until("the attempt to hear it", || {
        TOLD_TO_STOP.lock().unwrap().contains(&"watch".to_owned())
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test]
async fn details_stored_before_a_restart_are_read_by_the_resumed_attempt() {
    let db = BACKEND.store();
    let store = store(&db).await;
    let rt = builder().open_store(store.clone()).await.unwrap();
    rt.start("long", long("long".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the attempt to report", || seen("long").len() == 1).await;
    // the first heartbeat is stored at once
    until("the details to be stored", || heartbeat_keys(&store) == 1).await;
    rt.shutdown().await;
    let rt = builder().open_store(store.clone()).await.unwrap();
    let out = rt
        .handle::<long>("long")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, Some(41));
    assert_eq!(seen("long"), vec![(1, None), (1, Some(41))]);
    rt.shutdown().await;
    assert_eq!(heartbeat_keys(&store), 0);
}

/// Heartbeats until stopped, with a long heartbeat timeout.
#[activity(max_attempts = 1, heartbeat_timeout_ms = 60_000)]
async fn beats_on(key: String) -> Result<u32, ActivityError> {
    saw(&key, None);
    for n in 0_u32.. {
        heartbeat(&n)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(0)
}

#[workflow]
async fn beating(key: String) -> Result<u32, WorkflowError> {
    Ok(beats_on(key).await?)
}

/// Before, an attempt that had sent a heartbeat was given its heartbeat
/// timeout to clean up even at shutdown, holding the store open: the next
/// open of the same store failed (`Locked`) for that long.
#[tokio::test]
async fn a_shutdown_stops_a_heartbeating_attempt_at_once_and_releases_the_store() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<beating>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("beats", beating("beats".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the attempt to beat", || seen("beats").len() == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    rt.shutdown().await;
    let again = Runtime::builder()
        .workflow::<beating>()
        .open_url(db.url())
        .await
        .expect("the store was released by the shutdown");
    until("the attempt to resume", || seen("beats").len() == 2).await;
    again.shutdown().await;
}
