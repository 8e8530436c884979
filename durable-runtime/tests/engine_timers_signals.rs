//! Durable timers (with a test clock that skips time) and signals.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use durable_runtime::clock::TestClock;
use durable_runtime::prelude::*;
use durable_runtime::{SignalError, Status};

static RUNS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

fn runs(key: &str) -> u32 {
    RUNS.lock().unwrap().get(key).copied().unwrap_or(0)
}

#[activity]
async fn remind(key: String) -> Result<String, ActivityError> {
    *RUNS.lock().unwrap().entry(key.clone()).or_default() += 1;
    Ok(format!("reminded {key}"))
}

#[workflow]
async fn monthly(key: String) -> Result<String, WorkflowError> {
    sleep(Duration::from_secs(30 * 86_400)).await?;
    let done = remind(key).await?;
    Ok(done)
}

#[workflow]
async fn collect(n: u32) -> Result<Vec<String>, WorkflowError> {
    let mut got = Vec::new();
    while (got.len() as u32) < n {
        let next: String = signal("item").await?;
        got.push(next);
    }
    Ok(got)
}

#[workflow]
async fn approval(key: String) -> Result<String, WorkflowError> {
    let who: String = signal("approve").await?;
    let note = remind(key).await?;
    Ok(format!("approved by {who}; {note}"))
}

/// Fails a test that would otherwise hang.
trait Within: std::future::Future + Sized {
    async fn within(self) -> Self::Output {
        tokio::time::timeout(Duration::from_secs(30), self)
            .await
            .expect("timed out after 30 s")
    }
}

impl<F: std::future::Future> Within for F {}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..4000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_month_long_timer_fires_when_the_test_clock_gets_there() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock::new());
    let rt = Runtime::builder()
        .workflow::<monthly>()
        .clock(clock.clone())
        .open(dir.path())
        .await
        .unwrap();
    let h = rt
        .start("m", monthly("month".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the instance to go to sleep", || {
        rt.running_instances() == 0
    })
    .await;
    assert_eq!(h.describe().unwrap().variant, "Sleep");
    clock.advance(Duration::from_secs(29 * 86_400));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runs("month"), 0, "not due yet");
    assert_eq!(h.describe().unwrap().status, Status::Running);
    clock.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "reminded month"
    );
    assert_eq!(runs("month"), 1);
}

#[tokio::test]
async fn a_timer_due_while_the_process_was_down_fires_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock::new());
    let rt = Runtime::builder()
        .workflow::<monthly>()
        .clock(clock.clone())
        .open(dir.path())
        .await
        .unwrap();
    rt.start("down", monthly("downtime".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("sleep", || rt.running_instances() == 0).await;
    rt.shutdown().await;
    clock.advance(Duration::from_secs(40 * 86_400)); // "down" for 40 days
    let rt = Runtime::builder()
        .workflow::<monthly>()
        .clock(clock.clone())
        .open(dir.path())
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<monthly>("down")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "reminded downtime"
    );
}

#[tokio::test]
async fn many_sleeping_workflows_hold_no_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock::new());
    let rt = Runtime::builder()
        .workflow::<monthly>()
        .clock(clock.clone())
        .open(dir.path())
        .await
        .unwrap();
    for i in 0..300 {
        rt.start(
            format!("s{i}"),
            monthly(format!("many-{i}")),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    }
    until("all asleep", || rt.running_instances() == 0).await;
    clock.advance(Duration::from_secs(31 * 86_400));
    for i in 0..300 {
        assert_eq!(
            rt.handle::<monthly>(format!("s{i}"))
                .result()
                .within()
                .await
                .unwrap()
                .unwrap(),
            format!("reminded many-{i}")
        );
    }
}

#[tokio::test]
async fn signals_are_buffered_and_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<collect>()
        .open(dir.path())
        .await
        .unwrap();
    let h = rt.start("c", collect(3), IdPolicy::Reject).await.unwrap();
    for item in ["a", "b", "c", "extra"] {
        rt.signal("c", "item", &item.to_string()).await.unwrap();
    }
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec!["a", "b", "c"]
    );
    match rt.signal("c", "item", &"late".to_string()).await {
        Err(SignalError::Finished { id, status }) => {
            assert_eq!((id.as_str(), status), ("c", Status::Completed))
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    assert!(matches!(
        rt.signal("nobody", "item", &1).await,
        Err(SignalError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_signal_sent_before_a_restart_is_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<approval>()
        .open(dir.path())
        .await
        .unwrap();
    rt.start("ap", approval("restart-signal".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting", || rt.running_instances() == 0).await;
    rt.shutdown().await;
    // a second runtime, not running the workflow yet, takes the signal durably
    let rt = Runtime::builder()
        .workflow::<approval>()
        .resume_on_open(false)
        .open(dir.path())
        .await
        .unwrap();
    rt.signal("ap", "approve", &"ada".to_string())
        .await
        .unwrap();
    rt.shutdown().await;
    let rt = Runtime::builder()
        .workflow::<approval>()
        .open(dir.path())
        .await
        .unwrap();
    let out = rt
        .handle::<approval>("ap")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "approved by ada; reminded restart-signal");
}

#[tokio::test]
async fn signal_with_start_creates_then_signals() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<approval>()
        .open(dir.path())
        .await
        .unwrap();
    let h = rt
        .signal_with_start(
            "sws",
            approval("sws".into()),
            "approve",
            &"grace".to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "approved by grace; reminded sws"
    );
    // again: the instance exists and has ended
    assert!(matches!(
        rt.signal_with_start("sws", approval("sws".into()), "approve", &"x".to_string())
            .await,
        Err(SignalError::Finished { .. })
    ));
}
