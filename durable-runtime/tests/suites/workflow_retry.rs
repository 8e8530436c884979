// Included by `workflow_retry.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// A workflow with a retry policy runs again from its input when a run
// fails, after the policy's backoff on the runtime's clock, until a run
// ends otherwise or the policy allows no more attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::until;
use durable_runtime::clock::TestClock;
use durable_runtime::history::EventKind;
use durable_runtime::prelude::*;
use durable_runtime::{RetryPolicy, Status};

/// Runs of `import` so far, by batch; each of the first `FAILING` fails.
static RUNS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
/// Attempts of `fetch` so far (every run fetches once, then fails or not).
static FETCHES: AtomicU32 = AtomicU32::new(0);
static FAILING: AtomicU32 = AtomicU32::new(2);

#[activity]
async fn fetch(batch: String) -> Result<u32, ActivityError> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    Ok(batch.len() as u32)
}

/// Fetches, then fails while its run is one of the first `FAILING`.
#[workflow]
async fn import(batch: String) -> Result<u32, WorkflowError> {
    let rows = fetch(batch.clone()).await?;
    let run = {
        let mut runs = RUNS.lock().unwrap();
        runs.push(batch.clone());
        runs.iter().filter(|b| **b == batch).count() as u32
    };
    if run <= FAILING.load(Ordering::SeqCst) {
        return Err(WorkflowError(format!(
            "run {run}: the upstream file was truncated"
        )));
    }
    Ok(rows)
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Duration::from_secs(30),
        backoff_coefficient: 2.0,
        maximum_interval: Duration::from_secs(600),
        maximum_attempts: attempts,
        non_retryable_kinds: Vec::new(),
    }
}

/// The failed runs in `id`'s history: (run, attempt, next_at_ms).
fn failed_runs(rt: &Runtime, id: &str) -> Vec<(u32, u32, u64)> {
    rt.history(id)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::RunFailed {
                run,
                attempt,
                next_at_ms,
                ..
            } => Some((run, attempt, next_at_ms)),
            _ => None,
        })
        .collect()
}

async fn open(db: &str, clock: &Arc<TestClock>, attempts: u32) -> Runtime {
    Runtime::builder()
        .clock(clock.clone())
        .workflow_with_retry::<import>(policy(attempts))
        .open_url(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_run_is_run_again_after_its_backoff_until_one_completes() {
    FAILING.store(2, Ordering::SeqCst);
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(db.url(), &clock, 5).await;
    let start = durable_runtime::clock::Clock::now(&*clock)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    rt.start("i-1", import("rows".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("run 1 fails", || failed_runs(&rt, "i-1").len() == 1).await;
    // it waits for the backoff (30 s on the test clock), running nothing
    let d = rt.describe("i-1").unwrap();
    assert_eq!((d.status, d.run), (Status::Running, 1), "{d:?}");
    assert!(
        d.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("truncated"),
        "{d:?}"
    );
    assert_eq!(d.next_attempt_ms, Some(start + 30_000));
    assert!(d.waiting_for.unwrap_or_default().contains("next run"));
    assert_eq!(failed_runs(&rt, "i-1")[0], (1, 1, start + 30_000));
    assert_eq!(FETCHES.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(30));
    until("run 2 fails", || failed_runs(&rt, "i-1").len() == 2).await;
    // the second backoff is twice the first
    let (_, attempt, next) = failed_runs(&rt, "i-1")[1];
    assert_eq!(attempt, 2);
    assert!(next >= start + 30_000 + 60_000, "{next}");
    clock.advance(Duration::from_secs(60));
    let out: Result<u32, WorkflowError> = rt.handle::<import>("i-1").result().await.unwrap();
    assert_eq!(out.unwrap(), 4);
    let d = rt.describe("i-1").unwrap();
    assert_eq!((d.status, d.run), (Status::Completed, 3));
    // each run fetched again, with keys no earlier run used
    assert_eq!(FETCHES.load(Ordering::SeqCst), 3);
    let started = rt
        .history("i-1")
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Started { .. }))
        .count();
    assert_eq!(started, 3);
    rt.shutdown().await;
}

#[tokio::test]
async fn the_last_failure_stands_when_the_policy_allows_no_more_attempts() {
    FAILING.store(10, Ordering::SeqCst);
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(db.url(), &clock, 2).await;
    rt.start("i-2", import("rows".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("run 1 fails", || failed_runs(&rt, "i-2").len() == 1).await;
    clock.advance(Duration::from_secs(30));
    let out = rt.handle::<import>("i-2").result().await;
    assert!(matches!(out, Ok(Err(_))), "{out:?}");
    let d = rt.describe("i-2").unwrap();
    assert_eq!((d.status, d.run), (Status::Failed, 2));
    assert!(
        d.error.as_deref().unwrap_or_default().contains("run 2"),
        "{d:?}"
    );
    assert_eq!(failed_runs(&rt, "i-2").len(), 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_restart_during_the_backoff_waits_out_the_rest_and_a_terminate_ends_it() {
    FAILING.store(1, Ordering::SeqCst);
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(db.url(), &clock, 3).await;
    rt.start("i-3", import("rows".into()), IdPolicy::Reject)
        .await
        .unwrap();
    rt.start("i-4", import("cols".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("both fail once", || {
        failed_runs(&rt, "i-3").len() == 1 && failed_runs(&rt, "i-4").len() == 1
    })
    .await;
    rt.shutdown().await;
    clock.advance(Duration::from_secs(10));
    let rt = open(db.url(), &clock, 3).await;
    // 10 of the 30 s have passed: no second run yet
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rt.describe("i-3").unwrap().run, 1);
    // a terminate during the backoff ends the instance; no second run
    rt.terminate("i-4", "not needed any more").await.unwrap();
    until("i-4 ends", || {
        rt.describe("i-4")
            .is_ok_and(|d| d.status == Status::Terminated)
    })
    .await;
    clock.advance(Duration::from_secs(20));
    let out: Result<u32, WorkflowError> = rt.handle::<import>("i-3").result().await.unwrap();
    assert_eq!(out.unwrap(), 4);
    assert_eq!(rt.describe("i-3").unwrap().run, 2);
    assert_eq!(rt.describe("i-4").unwrap().run, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_instance_waiting_to_run_again_moves_to_another_store_with_its_large_input() {
    FAILING.store(1, Ordering::SeqCst);
    let here = BACKEND.store();
    let there = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = open(here.url(), &clock, 3).await;
    // large enough to be kept apart as the instance's field 0
    let batch = "r".repeat(4096);
    rt.start("i-5", import(batch.clone()), IdPolicy::Reject)
        .await
        .unwrap();
    until("run 1 fails", || failed_runs(&rt, "i-5").len() == 1).await;
    let snapshot = rt.export("i-5").unwrap();
    rt.shutdown().await;
    let rt = open(there.url(), &clock, 3).await;
    rt.import(&snapshot, false).await.unwrap();
    clock.advance(Duration::from_secs(30));
    let out: Result<u32, WorkflowError> = rt.handle::<import>("i-5").result().await.unwrap();
    assert_eq!(out.unwrap(), 4096);
    assert_eq!(rt.describe("i-5").unwrap().run, 2);
    rt.shutdown().await;
}

/// The first build of `job`: its order is `{ qty, cents }`, and it fails.
pub mod job_v1 {
    use durable_runtime::prelude::*;

    /// An order as the first build lays it out.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Order {
        /// How many.
        pub qty: u32,
        /// The price.
        pub cents: u32,
    }

    /// Fails, for a bug the next build fixes.
    #[workflow(name = "job")]
    pub async fn job(order: Order) -> Result<u32, WorkflowError> {
        let _ = super::fetch(format!("{}", order.qty)).await?;
        Err(WorkflowError("a bug".into()))
    }
}

/// The next build of `job`: `{ cents, qty }`, and the bug fixed.
pub mod job_v2 {
    use durable_runtime::prelude::*;

    /// An order as the next build lays it out.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Order {
        /// The price.
        pub cents: u32,
        /// How many.
        pub qty: u32,
    }

    /// Charges the order.
    #[workflow(name = "job", version = 2)]
    pub async fn job(order: Order) -> Result<u32, WorkflowError> {
        let _ = super::fetch(format!("{}", order.qty)).await?;
        Ok(order.cents + order.qty * 1000)
    }
}

/// A run that failed on one build runs again on the next, its input read
/// by name: an order whose fields the next build declares in another
/// order would be misread by position (qty and cents swapped).
#[tokio::test]
async fn the_next_run_after_a_deploy_reads_its_input_by_name() {
    let db = BACKEND.store();
    let clock = Arc::new(TestClock::new());
    let rt = Runtime::builder()
        .clock(clock.clone())
        .workflow_with_retry::<job_v1::job>(policy(3))
        .open_url(db.url())
        .await
        .unwrap();
    let order = job_v1::Order { qty: 3, cents: 250 };
    rt.start("j-1", job_v1::job(order), IdPolicy::Reject)
        .await
        .unwrap();
    until("run 1 fails", || failed_runs(&rt, "j-1").len() == 1).await;
    rt.shutdown().await;
    let rt = Runtime::builder()
        .clock(clock.clone())
        .workflow_with_retry::<job_v2::job>(policy(3))
        .open_url(db.url())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let out: Result<u32, WorkflowError> = rt.handle::<job_v2::job>("j-1").result().await.unwrap();
    assert_eq!(out.unwrap(), 3_250);
    let d = rt.describe("j-1").unwrap();
    assert_eq!((d.run, d.version), (2, 2));
    rt.shutdown().await;
}
