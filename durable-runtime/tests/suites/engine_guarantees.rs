// Included by `engine_guarantees.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::{Within, until};
use durable_runtime::prelude::*;
use durable_runtime::store::Batch;
use durable_runtime::{ResultError, ResumeError, StartError, Status};
use tokio::sync::Notify;

/// Executions per `name:key`, shared by all tests (keys are unique per test).
static RUNS: LazyLock<Mutex<HashMap<String, Vec<ActivityContext>>>> =
    LazyLock::new(Default::default);
static GATES: LazyLock<Mutex<HashMap<String, Arc<Notify>>>> = LazyLock::new(Default::default);

fn ran(name: &str, key: &str) {
    let ctx = ActivityContext::current().expect("activities run with a context");
    RUNS.lock()
        .unwrap()
        .entry(format!("{name}:{key}"))
        .or_default()
        .push(ctx);
}

fn runs(name: &str, key: &str) -> Vec<ActivityContext> {
    RUNS.lock()
        .unwrap()
        .get(&format!("{name}:{key}"))
        .cloned()
        .unwrap_or_default()
}

fn gate(key: &str) -> Arc<Notify> {
    GATES
        .lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .clone()
}

#[activity]
async fn step(key: String, n: u32) -> Result<u32, ActivityError> {
    ran("step", &format!("{key}/{n}"));
    Ok(n * 10)
}

#[activity]
async fn blocked(key: String) -> Result<String, ActivityError> {
    ran("blocked", &key);
    gate(&key).notified().await;
    Ok(format!("released {key}"))
}

#[activity(max_attempts = 4, initial_interval_ms = 1, backoff = 2.0)]
async fn flaky(key: String, fail_times: u32) -> Result<u32, ActivityError> {
    ran("flaky", &key);
    let attempt = ActivityContext::current().map_or(0, |c| c.attempt);
    if attempt <= fail_times {
        return Err(
            ActivityError::retryable(format!("attempt {attempt} failed")).with_kind("flaky"),
        );
    }
    Ok(attempt)
}

#[activity(max_attempts = 5, initial_interval_ms = 1, non_retryable = ["declined"])]
async fn declined(key: String) -> Result<u32, ActivityError> {
    ran("declined", &key);
    Err(ActivityError::retryable("card declined").with_kind("declined"))
}

#[activity(max_attempts = 3, initial_interval_ms = 1)]
async fn panics(key: String) -> Result<u32, ActivityError> {
    ran("panics", &key);
    panic!("boom in {key}");
}

#[activity(max_attempts = 2, initial_interval_ms = 1, timeout_ms = 20)]
async fn slow(key: String) -> Result<u32, ActivityError> {
    ran("slow", &key);
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(0)
}

#[workflow]
async fn three_steps(key: String) -> Result<u32, WorkflowError> {
    let a = step(key.clone(), 1).await?;
    let b = step(key.clone(), 2).await?;
    let c = step(key, 3).await?;
    Ok(a + b + c)
}

#[workflow]
async fn waits_on_gate(key: String) -> Result<String, WorkflowError> {
    let first = step(key.clone(), 1).await?;
    let released = blocked(key.clone()).await?;
    let last = step(key, 2).await?;
    Ok(format!("{first}/{released}/{last}"))
}

#[workflow]
async fn retrying(key: String, fail_times: u32) -> Result<String, WorkflowError> {
    match flaky(key, fail_times).await {
        Ok(attempt) => Ok(format!("succeeded on attempt {attempt}")),
        Err(e) => Ok(format!("gave up: {}", e.message())),
    }
}

#[workflow]
async fn not_retried(key: String) -> Result<u32, WorkflowError> {
    let n = declined(key).await?;
    Ok(n)
}

#[workflow]
async fn activity_panics(key: String) -> Result<u32, WorkflowError> {
    let n = panics(key).await?;
    Ok(n)
}

#[workflow]
async fn activity_times_out(key: String) -> Result<u32, WorkflowError> {
    let n = slow(key).await?;
    Ok(n)
}

#[workflow]
async fn workflow_panics(key: String) -> Result<u32, WorkflowError> {
    let n = step(key, 1).await?;
    if n == 10 {
        panic!("workflow bug");
    }
    Ok(n)
}

#[workflow]
async fn recorded_values(key: String) -> Result<(u64, u64), WorkflowError> {
    let r = random_u64().await;
    let t = now().await;
    let _ = blocked(key).await?;
    let since = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok((r, since))
}

// Two shapes under one name: the second stands for a redeploy that changed the code.
#[workflow(name = "versioned")]
async fn versioned_v1(key: String) -> Result<String, WorkflowError> {
    let released = blocked(key).await?;
    Ok(released)
}

#[workflow(name = "versioned", version = 2)]
async fn versioned_v2(key: String) -> Result<String, WorkflowError> {
    let first = step(key.clone(), 1).await?;
    let released = blocked(key).await?;
    Ok(format!("{first} {released}"))
}

/// One activity raced alone.
#[workflow]
async fn raced_step(key: String) -> Result<u32, WorkflowError> {
    let (_, n) = first_of(vec![step(key, 1)]).await;
    Ok(n?)
}

fn builder() -> durable_runtime::Builder {
    Runtime::builder()
        .workflow::<raced_step>()
        .workflow::<three_steps>()
        .workflow::<waits_on_gate>()
        .workflow::<retrying>()
        .workflow::<not_retried>()
        .workflow::<activity_panics>()
        .workflow::<activity_times_out>()
        .workflow::<workflow_panics>()
        .workflow::<recorded_values>()
}

async fn wait_for_runs(name: &str, key: &str, n: usize) {
    for _ in 0..2000 {
        if runs(name, key).len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{name}:{key} did not run {n} times");
}

/// An id over the limit is refused at the API, before anything is written:
/// before the limit, a 3 KB random id failed every checkpoint grouped with
/// it on PostgreSQL, and an 8 KB compressible one was created and then
/// failed its final `NOTIFY` forever.
#[tokio::test]
async fn an_over_long_id_is_refused_with_the_limit_and_others_are_unharmed() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let long: String = (0..durable_runtime::MAX_ID_BYTES + 1)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    match rt
        .start(
            long.clone(),
            three_steps("long-id".into()),
            IdPolicy::Reject,
        )
        .await
    {
        Err(e @ StartError::IdTooLong { len, limit, .. }) => {
            assert_eq!((len, limit), (long.len(), durable_runtime::MAX_ID_BYTES));
            let text = e.to_string();
            assert!(text.contains("DURABLE-ID") && text.len() < 400, "{text}");
        }
        other => panic!("expected IdTooLong, got {other:?}"),
    }
    // at the limit it is fine, and so is everything beside it
    let at_limit = &long[..durable_runtime::MAX_ID_BYTES];
    let h = rt
        .start(at_limit, three_steps("at-limit".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(60));
    rt.shutdown().await;
}

#[activity(max_attempts = 5, initial_interval_ms = 1)]
async fn sized(key: String, bytes: usize) -> Result<Vec<u8>, ActivityError> {
    ran("sized", &key);
    Ok(vec![7; bytes])
}

/// Returns the length of a result of `bytes` bytes, or the error the
/// workflow saw; then waits for a signal holding a state of `keep` bytes.
#[workflow]
async fn sizes(key: String, bytes: usize, keep: usize) -> Result<String, WorkflowError> {
    let seen = match sized(key.clone(), bytes).await {
        Ok(v) => format!("got {}", v.len()),
        Err(e) => format!("refused: {e}"),
    };
    let held = vec![1u8; keep];
    let _go: () = signal("go").await?;
    Ok(format!("{seen}; held {}", held.len()))
}

/// Values over the limits are refused where they enter, naming the limit
/// and the size: an input or a signal at the API, an activity result as a
/// failure the workflow sees (not retried), a state by failing that
/// instance only. Before, each was simply written.
#[tokio::test]
async fn values_over_the_limits_are_refused_naming_the_limit_and_others_are_unharmed() {
    let db = BACKEND.store();
    let mut limits = durable_runtime::Limits::default();
    limits.input_bytes = 2_000;
    limits.signal_bytes = 1_000;
    limits.result_bytes = 3_000;
    limits.state_bytes = 6_000;
    let rt = builder()
        .workflow::<sizes>()
        .limits(limits)
        .open_url(db.url())
        .await
        .unwrap();
    let limit_text = |e: &dyn std::fmt::Display, field: &str| {
        let text = e.to_string();
        assert!(
            text.contains("[DURABLE-LIMIT]") && text.contains(field),
            "{text}"
        );
    };
    // an input over the limit: refused, nothing written
    let big = "x".repeat(2_500);
    match rt.start("in", sizes(big, 1, 1), IdPolicy::Reject).await {
        Err(e @ StartError::TooLarge { size, limit: 2_000 }) => {
            assert!(size > 2_500, "{size}");
            limit_text(&e, "Limits::input_bytes");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(rt.describe("in").is_err(), "nothing was written");

    // a result over the limit: one attempt, an error the workflow sees
    let h = rt
        .start("res", sizes("res".into(), 4_000, 10), IdPolicy::Reject)
        .await
        .unwrap();
    let fine = rt
        .start("ok", sizes("ok".into(), 2_000, 10), IdPolicy::Reject)
        .await
        .unwrap();
    until_waiting(&rt, "res").await;
    until_waiting(&rt, "ok").await;
    assert_eq!(runs("sized", "res").len(), 1, "not retried");

    // a signal over the limit: refused, the instance still waits
    let err = rt.signal("res", "go", &vec![0u8; 1_500]).await.unwrap_err();
    assert!(
        matches!(
            err,
            durable_runtime::SignalError::TooLarge { limit: 1_000, .. }
        ),
        "{err:?}"
    );
    limit_text(&err, "Limits::signal_bytes");
    rt.signal("res", "go", &()).await.unwrap();
    rt.signal("ok", "go", &()).await.unwrap();
    let out = h.result().await.unwrap().unwrap();
    assert!(
        out.starts_with("refused: ")
            && out.contains("Limits::result_bytes")
            && out.ends_with("held 10"),
        "{out}"
    );
    assert_eq!(fine.result().await.unwrap(), Ok("got 2000; held 10".into()));

    // a state over the limit fails that instance at that step
    let h = rt
        .start("state", sizes("state".into(), 1, 7_000), IdPolicy::Reject)
        .await
        .unwrap();
    let message = failure(h.result().await);
    assert!(
        message.contains("Limits::state_bytes") && message.contains("state after step"),
        "{message}"
    );
    assert_eq!(rt.describe("state").unwrap().status, Status::Failed);
    rt.shutdown().await;
}

#[workflow]
async fn echo_len(text: String) -> Result<usize, WorkflowError> {
    Ok(text.len())
}

/// Starts a child whose input is `n` bytes of text; what the parent saw.
#[workflow]
async fn parent_of_sized(n: usize) -> Result<String, WorkflowError> {
    Ok(match echo_len("c".repeat(n)).await {
        Ok(Ok(len)) => format!("child saw {len}"),
        Ok(Err(e)) => format!("child failed: {e}"),
        Err(e) => format!("refused: {e}"),
    })
}

/// Sets a search attribute of `n` bytes of text that does not compress.
#[workflow]
async fn tagged(n: usize) -> Result<String, WorkflowError> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
    let note: String = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    durable_runtime::upsert_search_attributes([("note", durable_runtime::SearchValue::from(note))])
        .await;
    Ok("tagged".into())
}

/// A child's input (started by a workflow, not at the API) and a search
/// attribute (an index key: PostgreSQL refuses one over ~2.7 KB) are held
/// to the limits too. Before, a child's input was not checked at all, and
/// a long attribute value was written into an index key as it was.
#[tokio::test]
async fn a_childs_input_and_a_search_attribute_over_the_limits_are_refused() {
    let db = BACKEND.store();
    let mut limits = durable_runtime::Limits::default();
    limits.input_bytes = 2_000;
    let rt = builder()
        .workflow::<echo_len>()
        .workflow::<parent_of_sized>()
        .workflow::<tagged>()
        .limits(limits)
        .open_url(db.url())
        .await
        .unwrap();
    let out = rt
        .start("big-child", parent_of_sized(2_500), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with("refused: ") && out.contains("Limits::input_bytes"),
        "{out}"
    );
    let out = rt
        .start("small-child", parent_of_sized(100), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "child saw 100");

    let long = rt
        .start("long-tag", tagged(3_000), IdPolicy::Reject)
        .await
        .unwrap();
    let message = failure(long.result().await);
    assert!(
        message.contains("[DURABLE-LIMIT]") && message.contains("Limits::attribute_bytes"),
        "{message}"
    );
    let short = rt
        .start("short-tag", tagged(200), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(short.result().await.unwrap(), Ok("tagged".into()));
    assert!(
        rt.describe("short-tag")
            .unwrap()
            .search_attributes
            .iter()
            .any(|(name, _)| name == "note")
    );
    rt.shutdown().await;
}

/// The message of an instance that failed; panics on any other outcome.
fn failure<T: std::fmt::Debug>(result: Result<T, ResultError>) -> String {
    match result {
        Err(ResultError::Failed { message, .. }) => message,
        other => panic!("expected the instance to fail, got {other:?}"),
    }
}

async fn until_waiting(rt: &Runtime, id: &str) {
    for _ in 0..2000 {
        if rt.describe(id).is_ok_and(|d| d.variant == "Signal") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id} never waited for its signal");
}

#[tokio::test]
async fn completed_result_survives_reopen() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt
        .start("w1", three_steps("survive".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(60));
    rt.shutdown().await;

    let rt = builder().open_url(db.url()).await.unwrap();
    assert_eq!(rt.resumed_on_open(), 0);
    let h = rt.handle::<three_steps>("w1");
    assert_eq!(h.result().await.unwrap(), Ok(60));
    assert_eq!(h.describe().unwrap().status, Status::Completed);
    for n in 1..=3 {
        assert_eq!(
            runs("step", &format!("survive/{n}")).len(),
            1,
            "each step ran exactly once"
        );
    }
}

#[tokio::test]
async fn duplicate_id_is_rejected_or_returns_the_existing_instance() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("dup", three_steps("dup".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    match rt
        .start("dup", three_steps("dup-again".into()), IdPolicy::Reject)
        .await
    {
        Err(StartError::AlreadyExists { id, workflow }) => {
            assert_eq!((id.as_str(), workflow.as_str()), ("dup", "three_steps"))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // the creation is refused by its condition, and the error names the
    // workflow that holds the id, not the one asked for
    match rt
        .start("dup", retrying("x".into(), 0), IdPolicy::Reject)
        .await
    {
        Err(StartError::AlreadyExists { id, workflow }) => {
            assert_eq!((id.as_str(), workflow.as_str()), ("dup", "three_steps"))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let h = rt
        .start(
            "dup",
            three_steps("dup-again".into()),
            IdPolicy::UseExisting,
        )
        .await
        .unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(60));
    assert!(
        runs("step", "dup-again/1").is_empty(),
        "the second start must not run anything"
    );
    assert!(matches!(
        rt.start("dup", retrying("x".into(), 0), IdPolicy::UseExisting)
            .await,
        Err(StartError::WrongWorkflow { .. })
    ));
    assert!(matches!(
        rt.handle::<three_steps>("nobody").result().await,
        Err(ResultError::NotFound { .. })
    ));
}

#[tokio::test]
async fn unregistered_workflow_cannot_start() {
    let db = BACKEND.store();
    let rt = Runtime::builder().open_url(db.url()).await.unwrap();
    assert!(matches!(
        rt.start("x", three_steps("x".into()), IdPolicy::Reject)
            .await,
        Err(StartError::NotRegistered {
            workflow: "three_steps"
        })
    ));
}

#[tokio::test]
async fn unfinished_instance_resumes_after_restart_without_rerunning_recorded_steps() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("gate", waits_on_gate("restart".into()), IdPolicy::Reject)
        .await
        .unwrap();
    wait_for_runs("blocked", "restart", 1).await;
    rt.shutdown().await; // the blocked activity is abandoned mid-flight

    let rt = builder().open_url(db.url()).await.unwrap();
    assert_eq!(rt.resumed_on_open(), 1);
    wait_for_runs("blocked", "restart", 2).await; // re-dispatched: at least once
    gate("restart").notify_waiters();
    let out = rt
        .handle::<waits_on_gate>("gate")
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "10/released restart/20");
    assert_eq!(
        runs("step", "restart/1").len(),
        1,
        "a checkpointed activity never runs again"
    );
    assert_eq!(runs("step", "restart/2").len(), 1);
    let keys: Vec<_> = runs("blocked", "restart")
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(
        keys[0], keys[1],
        "the idempotency key is stable across restarts"
    );
    // <instance id>/<incarnation>/<step>: `blocked` is the second step
    let parts: Vec<&str> = keys[0].split('/').collect();
    assert_eq!(parts.len(), 3, "{}", keys[0]);
    assert_eq!((parts[0], parts[2]), ("gate", "2"), "{}", keys[0]);
    assert!(
        parts[1].len() == 16 && parts[1].chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        keys[0]
    );
}

#[tokio::test]
async fn retries_follow_the_policy_and_exhaustion_reaches_the_workflow_as_err() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let ok = rt
        .start("r-ok", retrying("r-ok".into(), 2), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        ok.result().await.unwrap().unwrap(),
        "succeeded on attempt 3"
    );
    let attempts: Vec<u32> = runs("flaky", "r-ok").iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    let keys: std::collections::HashSet<_> = runs("flaky", "r-ok")
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 1, "retries share one idempotency key");

    let gave_up = rt
        .start("r-no", retrying("r-no".into(), 100), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        gave_up.result().await.unwrap().unwrap(),
        "gave up: attempt 4 failed"
    );
    assert_eq!(runs("flaky", "r-no").len(), 4, "max_attempts = 4");

    let h = rt
        .start("nr", not_retried("nr".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        h.result().await.unwrap(),
        Err(WorkflowError("declined: card declined".into()))
    );
    assert_eq!(
        runs("declined", "nr").len(),
        1,
        "a non-retryable kind is not retried"
    );
}

#[tokio::test]
async fn panics_and_timeouts_are_failed_attempts_and_a_workflow_panic_fails_the_instance() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt
        .start("p", activity_panics("p".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let err = h.result().await.unwrap().unwrap_err();
    assert!(
        err.0.contains("panic") && err.0.contains("boom in p"),
        "{err}"
    );
    assert_eq!(runs("panics", "p").len(), 3);

    let h = rt
        .start("t", activity_times_out("t".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let err = h.result().await.unwrap().unwrap_err();
    assert!(err.0.contains("timeout"), "{err}");
    assert_eq!(runs("slow", "t").len(), 2);

    let h = rt
        .start("wp", workflow_panics("wp".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let message = failure(h.result().await);
    assert!(message.contains("workflow bug"), "{message}");
    assert_eq!(h.describe().unwrap().status, Status::Failed);
    // the runtime keeps serving others
    let ok = rt
        .start("after", three_steps("after-panic".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(ok.result().await.unwrap(), Ok(60));
}

#[tokio::test]
async fn time_and_randomness_are_recorded_and_survive_restart() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt
        .start("rv", recorded_values("rv".into()), IdPolicy::Reject)
        .await
        .unwrap();
    wait_for_runs("blocked", "rv", 1).await;
    let before = h.state_json().unwrap();
    rt.shutdown().await;
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt.handle::<recorded_values>("rv");
    assert_eq!(
        h.state_json().unwrap(),
        before,
        "the state is what was checkpointed"
    );
    wait_for_runs("blocked", "rv", 2).await;
    gate("rv").notify_waiters();
    let (r, t) = h.result().await.unwrap().unwrap();
    let json = before.to_string();
    assert!(
        json.contains(&r.to_string()) && json.contains("Blocked"),
        "recorded random value in state: {json}"
    );
    assert!(t > 1_700_000_000);
}

#[tokio::test]
async fn changed_shape_parks_the_instance_and_keeps_it() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<versioned_v1>()
        .workflow::<three_steps>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("old", versioned_v1("park".into()), IdPolicy::Reject)
        .await
        .unwrap();
    wait_for_runs("blocked", "park", 1).await;
    rt.shutdown().await;

    // redeployed with code of another shape under the same name
    let rt = Runtime::builder()
        .workflow::<versioned_v2>()
        .workflow::<three_steps>()
        .open_url(db.url())
        .await
        .unwrap();
    let parked = rt.parked();
    assert_eq!(parked.len(), 1);
    match &parked[0] {
        ResumeError::ShapeMismatch {
            workflow,
            stored,
            current,
            instance,
            ..
        } => {
            assert_eq!((workflow.as_str(), instance.as_str()), ("versioned", "old"));
            assert_ne!(stored, current);
            let text = parked[0].to_string();
            assert!(
                text.contains("[DURABLE-SHAPE]") && text.contains(&format!("{stored:016x}")),
                "{text}"
            );
        }
        other => panic!("expected ShapeMismatch, got {other}"),
    }
    let h = rt.handle::<versioned_v2>("old");
    assert_eq!(h.describe().unwrap().status, Status::Parked);
    assert!(matches!(h.result().await, Err(ResultError::Parked { .. })));
    // the others still run
    let ok = rt
        .start(
            "other",
            three_steps("parked-neighbour".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    assert_eq!(ok.result().await.unwrap(), Ok(60));
    rt.shutdown().await;

    // the old code deployed again: the parked instance resumes and finishes
    let rt = Runtime::builder()
        .workflow::<versioned_v1>()
        .open_url(db.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty());
    wait_for_runs("blocked", "park", 2).await;
    gate("park").notify_waiters();
    assert_eq!(
        rt.handle::<versioned_v1>("old")
            .result()
            .await
            .unwrap()
            .unwrap(),
        "released park"
    );
}

#[tokio::test]
async fn corrupt_record_is_parked_reported_and_left_intact() {
    let db = BACKEND.store();
    {
        let store = db.open().await;
        let mut b = Batch::default();
        // damaged records keep the index entries written with them: one of
        // a running instance (`p` `r` id), one of a sleeper (`p` `s` id)
        // whose timer (`t` + due ms + id) is long due
        b.put(b"igarbage".to_vec(), vec![1, 0xff, 0xff, 0xff]);
        b.put(b"prgarbage".to_vec(), Vec::new());
        b.put(b"igarbage-asleep".to_vec(), vec![1, 0xff, 0xff, 0xff]);
        b.put(b"psgarbage-asleep".to_vec(), Vec::new());
        let mut timer = vec![b't'];
        timer.extend_from_slice(&1u64.to_be_bytes());
        timer.extend_from_slice(b"garbage-asleep");
        b.put(timer, Vec::new());
        store.commit(b).await.unwrap();
    }
    let rt = builder().open_url(db.url()).await.unwrap();
    let reported = |rt: &Runtime| -> Vec<String> {
        rt.parked()
            .into_iter()
            .map(|e| match e {
                ResumeError::Undecodable { instance, .. } => instance,
                other => panic!("expected Undecodable, got {other}"),
            })
            .collect()
    };
    // open reads the running one; the sleeper is read when its timer fires
    assert!(reported(&rt).contains(&"garbage".to_owned()));
    for _ in 0..4000 {
        if reported(&rt).contains(&"garbage-asleep".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        reported(&rt).contains(&"garbage-asleep".to_owned()),
        "the sleeper is reported when its timer fires"
    );
    let ok = rt
        .start(
            "fine",
            three_steps("beside-corrupt".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    assert_eq!(ok.result().await.unwrap(), Ok(60));
    assert!(matches!(
        rt.handle::<three_steps>("garbage").result().await,
        Err(ResultError::Parked { .. })
    ));
    // once each, however often the timer service passes by
    let mut ids = reported(&rt);
    ids.sort();
    assert_eq!(ids, ["garbage", "garbage-asleep"]);
    rt.shutdown().await;
    let store = db.open().await;
    for key in [&b"igarbage"[..], b"igarbage-asleep"] {
        assert_eq!(
            store.get(key).unwrap(),
            Some(vec![1, 0xff, 0xff, 0xff]),
            "never dropped"
        );
    }
}

#[tokio::test]
async fn activity_concurrency_is_bounded() {
    static NOW: AtomicUsize = AtomicUsize::new(0);
    static MAX: AtomicUsize = AtomicUsize::new(0);
    #[activity]
    async fn counted(n: u32) -> Result<u32, ActivityError> {
        let now = NOW.fetch_add(1, Ordering::SeqCst) + 1;
        MAX.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        NOW.fetch_sub(1, Ordering::SeqCst);
        Ok(n)
    }
    #[workflow]
    async fn fan(n: u32) -> Result<u32, WorkflowError> {
        let a = counted(n).await?;
        Ok(a)
    }
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<fan>()
        .max_concurrent_activities(2)
        .open_url(db.url())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..12 {
        handles.push(
            rt.start(format!("fan-{i}"), fan(i), IdPolicy::Reject)
                .await
                .unwrap(),
        );
    }
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.result().await.unwrap(), Ok(i as u32));
    }
    assert!(
        MAX.load(Ordering::SeqCst) <= 2,
        "at most 2 activities at once, saw {}",
        MAX.load(Ordering::SeqCst)
    );
}

#[workflow]
async fn overridden(key: String) -> Result<String, WorkflowError> {
    // the attribute allows 4 attempts; this call allows 2, with its own timeout
    let policy = RetryPolicy {
        maximum_attempts: 2,
        initial_interval: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let outcome = flaky(key, 100)
        .with_retry(policy)
        .with_timeout(Duration::from_secs(5))
        .await;
    Ok(match outcome {
        Ok(n) => format!("ok {n}"),
        Err(e) => format!("gave up: {}", e.message()),
    })
}

#[tokio::test]
async fn a_call_can_override_the_retry_policy() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<overridden>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("ov", overridden("ov".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        h.result().await.unwrap().unwrap(),
        "gave up: attempt 2 failed"
    );
    assert_eq!(runs("flaky", "ov").len(), 2);
}

#[tokio::test]
async fn a_uuid_is_recorded_like_time_and_randomness() {
    #[workflow]
    async fn with_uuid(key: String) -> Result<String, WorkflowError> {
        let id = uuid().await;
        let _ = blocked(key).await?;
        Ok(id.to_string())
    }
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<with_uuid>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("u", with_uuid("uuid".into()), IdPolicy::Reject)
        .await
        .unwrap();
    wait_for_runs("blocked", "uuid", 1).await;
    let state = h.state_json().unwrap().to_string();
    rt.shutdown().await;
    let rt = Runtime::builder()
        .workflow::<with_uuid>()
        .open_url(db.url())
        .await
        .unwrap();
    wait_for_runs("blocked", "uuid", 2).await;
    gate("uuid").notify_waiters();
    let id = rt.handle::<with_uuid>("u").result().await.unwrap().unwrap();
    assert!(
        state.contains(&id),
        "the uuid drawn before the restart is the one returned: {state} vs {id}"
    );
}

#[tokio::test]
async fn history_records_every_transition_and_failed_attempt_and_list_filters() {
    use durable_runtime::ListFilter;
    use durable_runtime::history::EventKind;
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let h = rt
        .start("hist", retrying("hist".into(), 1), IdPolicy::Reject)
        .await
        .unwrap();
    h.result().await.unwrap().unwrap();
    let events: Vec<EventKind> = h.history().unwrap().into_iter().map(|e| e.kind).collect();
    assert!(
        matches!(&events[0], EventKind::Started { workflow, run: 1, version: 1 } if workflow == "retrying"),
        "{events:?}"
    );
    assert!(
        matches!(&events[1], EventKind::Input { json } if json == r#"["hist",1]"#),
        "the input is recorded as JSON: {events:?}"
    );
    assert!(
        matches!(&events[2], EventKind::Awaiting { step: 1, command, .. } if command == "activity flaky"),
        "{events:?}"
    );
    assert!(
        matches!(&events[3], EventKind::AttemptFailed { step: 1, attempt: 1, error, .. } if error.contains("attempt 1 failed")),
        "{events:?}"
    );
    assert!(
        matches!(
            &events[4],
            EventKind::ActivityFinished {
                step: 1,
                attempt: 2,
                error: None,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(
            &events[5],
            EventKind::ActivityCalled { step: 1, part: None, activity, input, output }
                if activity == "flaky" && input.contains("hist") && output.starts_with(r#"{"Ok""#)
        ),
        "the call's input and result: {events:?}"
    );
    assert!(
        matches!(
            &events[6],
            EventKind::Finished {
                status: Status::Completed,
                error: None
            }
        ),
        "{events:?}"
    );
    assert_eq!(events.len(), 7);
    let seqs: Vec<u64> = h.history().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7]);

    rt.start("hist-2", three_steps("hist-2".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    let all = rt.list(&ListFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec!["hist", "hist-2"]
    );
    let only = rt
        .list(&ListFilter {
            workflow: Some("three_steps".into()),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(only.len(), 1);
    let page = rt
        .list(&ListFilter {
            after: Some("hist".into()),
            limit: 1,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(page[0].id, "hist-2");
    assert_eq!(rt.counts().unwrap(), vec![(Status::Completed, 2)]);
    assert_eq!(rt.describe("hist-2").unwrap().workflow, "three_steps");
}

#[tokio::test]
async fn versions_run_side_by_side_each_instance_on_its_own() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<versioned_v1>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start(
        "v1-instance",
        versioned_v1("side-v1".into()),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    wait_for_runs("blocked", "side-v1", 1).await;
    rt.shutdown().await;

    // deploy v2 beside v1: the old instance keeps running on v1, new ones start on v2
    let rt = Runtime::builder()
        .workflow::<versioned_v1>()
        .workflow::<versioned_v2>()
        .open_url(db.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    let v2 = rt
        .start(
            "v2-instance",
            versioned_v2("side-v2".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    wait_for_runs("blocked", "side-v1", 2).await;
    wait_for_runs("blocked", "side-v2", 1).await;
    gate("side-v1").notify_waiters();
    gate("side-v2").notify_waiters();
    assert_eq!(
        rt.handle::<versioned_v1>("v1-instance")
            .result()
            .await
            .unwrap()
            .unwrap(),
        "released side-v1"
    );
    assert_eq!(v2.result().await.unwrap().unwrap(), "10 released side-v2");
}

#[tokio::test]
async fn retention_deletes_finished_instances_and_their_history_but_never_running_ones() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start(
        "done",
        three_steps("retention-done".into()),
        IdPolicy::Reject,
    )
    .await
    .unwrap()
    .result()
    .await
    .unwrap()
    .unwrap();
    rt.start(
        "live",
        waits_on_gate("retention-live".into()),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    wait_for_runs("blocked", "retention-live", 1).await;
    rt.shutdown().await;

    // keep nothing that has finished
    let rt = builder()
        .retention(Duration::ZERO)
        .open_url(db.url())
        .await
        .unwrap();
    for _ in 0..2000 {
        if matches!(rt.describe("done"), Err(ResultError::NotFound { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        matches!(rt.describe("done"), Err(ResultError::NotFound { .. })),
        "the finished instance is gone"
    );
    assert!(matches!(
        rt.history("done"),
        Err(ResultError::NotFound { .. })
    ));
    // the id started again is a new incarnation: an external service
    // deduplicating by key must not take its calls for the first one's
    // (retention may delete it again as soon as it ends: its activities tell)
    rt.start(
        "done",
        three_steps("retention-again".into()),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    wait_for_runs("step", "retention-again/3", 1).await;
    for n in 1..=3 {
        let first = runs("step", &format!("retention-done/{n}"));
        let again = runs("step", &format!("retention-again/{n}"));
        assert_eq!((first.len(), again.len()), (1, 1), "step {n}");
        assert_ne!(
            first[0].idempotency_key, again[0].idempotency_key,
            "an id started again after retention reused an idempotency key"
        );
    }
    assert_eq!(
        rt.describe("live").unwrap().status,
        Status::Running,
        "a running instance is kept"
    );
    wait_for_runs("blocked", "retention-live", 2).await;
    gate("retention-live").notify_waiters();
    assert_eq!(
        rt.handle::<waits_on_gate>("live")
            .result()
            .await
            .unwrap()
            .unwrap(),
        "10/released retention-live/20"
    );
}

#[workflow(name = "upgradable")]
async fn upgradable_v1(key: String) -> Result<String, WorkflowError> {
    let a = step(key.clone(), 1).await?;
    let go: String = signal("go").await?;
    let b = step(key, 2).await?;
    Ok(format!("{a} {go} {b}"))
}

// a step added after the signal: the variant the v1 instance waits at is unchanged
#[workflow(name = "upgradable", version = 2)]
async fn upgradable_v2(key: String) -> Result<String, WorkflowError> {
    let a = step(key.clone(), 1).await?;
    let go: String = signal("go").await?;
    let b = step(key.clone(), 2).await?;
    let c = step(key, 3).await?;
    Ok(format!("{a} {go} {b} +{c}"))
}

#[tokio::test]
async fn an_instance_continues_on_new_code_when_its_await_point_is_unchanged_if_allowed() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<upgradable_v1>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("up", upgradable_v1("upgrade".into()), IdPolicy::Reject)
        .await
        .unwrap();
    for _ in 0..2000 {
        if h.describe().unwrap().variant == "Signal" && rt.running_instances() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rt.shutdown().await;

    // only v2, pinned (the default): parked, not misread
    let rt = Runtime::builder()
        .workflow::<upgradable_v2>()
        .open_url(db.url())
        .await
        .unwrap();
    assert_eq!(rt.parked().len(), 1);
    rt.shutdown().await;

    // only v2, upgrades allowed: it continues on v2 and runs the new step
    let rt = Runtime::builder()
        .workflow_upgrading::<upgradable_v2>()
        .open_url(db.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    rt.signal("up", "go", &"now".to_string()).await.unwrap();
    let out = rt
        .handle::<upgradable_v2>("up")
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "10 now 20 +30");
    assert_eq!(
        runs("step", "upgrade/1").len(),
        1,
        "the step before the upgrade did not run again"
    );
    let upgraded = rt
        .history("up")
        .unwrap()
        .into_iter()
        .any(|e| matches!(e.kind, durable_runtime::history::EventKind::Upgraded { ref variant, .. } if variant == "Signal"));
    assert!(upgraded, "the move is in the history");
}

#[tokio::test]
async fn a_compatibility_check_says_which_instances_new_code_can_run() {
    use durable_runtime::Compatibility;
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<upgradable_v1>()
        .workflow::<three_steps>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("c-up", upgradable_v1("check".into()), IdPolicy::Reject)
        .await
        .unwrap();
    rt.start("c-done", three_steps("check-done".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    for _ in 0..2000 {
        if h.describe().unwrap().variant == "Signal" && rt.running_instances() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rt.shutdown().await;

    let verdicts = |b: durable_runtime::Builder| {
        let url = db.url().to_owned();
        async move {
            let rt = b.resume_on_open(false).open_url(&url).await.unwrap();
            let v: std::collections::HashMap<String, Compatibility> =
                rt.check_compatibility().unwrap().into_iter().collect();
            rt.shutdown().await;
            v
        }
    };
    let same = verdicts(Runtime::builder().workflow::<upgradable_v1>()).await;
    assert_eq!(same["c-up"], Compatibility::Resumes);
    assert_eq!(same["c-done"], Compatibility::Finished);
    let pinned = verdicts(Runtime::builder().workflow::<upgradable_v2>()).await;
    assert!(
        matches!(
            pinned["c-up"],
            Compatibility::Parked(ResumeError::Pinned { .. })
        ),
        "{pinned:?}"
    );
    let upgrading = verdicts(Runtime::builder().workflow_upgrading::<upgradable_v2>()).await;
    assert!(
        matches!(upgrading["c-up"], Compatibility::Upgrades { to } if to == <upgradable_v2 as durable_runtime::Workflow>::FINGERPRINT),
        "{upgrading:?}"
    );
    // checking wrote nothing: the instance still resumes on v1 as it was
    let rt = Runtime::builder()
        .workflow::<upgradable_v1>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.signal("c-up", "go", &"ok".to_string()).await.unwrap();
    assert_eq!(
        rt.handle::<upgradable_v1>("c-up")
            .result()
            .await
            .unwrap()
            .unwrap(),
        "10 ok 20"
    );
}

// ---- dependencies: what activities are given by their runtime ----

/// What prices an order: the real service in production, a fake in tests.
trait Pricing: Send + Sync {
    fn price(&self, sku: &str) -> Result<u64, String>;
}

struct Catalog;

impl Pricing for Catalog {
    fn price(&self, sku: &str) -> Result<u64, String> {
        Ok(sku.len() as u64 * 100)
    }
}

/// A fake that is down until the test says otherwise.
struct Flaky(bool);

impl Pricing for Flaky {
    fn price(&self, _: &str) -> Result<u64, String> {
        if self.0 {
            Ok(7)
        } else {
            Err("pricing is down".into())
        }
    }
}

#[activity(max_attempts = 5, initial_interval_ms = 3_600_000)]
async fn price_of(sku: String) -> Result<u64, ActivityError> {
    ran("price_of", &sku);
    let pricing = dependency::<Arc<dyn Pricing>>()?;
    pricing.price(&sku).map_err(ActivityError::retryable)
}

#[workflow]
async fn quote(sku: String) -> Result<u64, WorkflowError> {
    Ok(price_of(sku).await?)
}

#[tokio::test]
async fn activities_read_the_dependencies_their_runtime_was_given() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quote>()
        .dependency::<Arc<dyn Pricing>>(Arc::new(Catalog))
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("dep-real", quote("book".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), 400);
    rt.shutdown().await;
    // a test gives its runtime a fake instead
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quote>()
        .dependency::<Arc<dyn Pricing>>(Arc::new(Flaky(true)))
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("dep-fake", quote("book".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), 7);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_activity_without_its_dependency_fails_at_once_naming_the_type() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<quote>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("dep-missing", quote("pen".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let err = h.result().within().await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("dyn") && text.contains("Pricing") && text.contains("Builder::dependency"),
        "{text}"
    );
    // terminal: not retried for an hour's backoff
    assert_eq!(runs("price_of", "pen").len(), 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_activity_resumed_while_the_runtime_opens_reads_its_dependencies() {
    let db = BACKEND.store();
    let clock = Arc::new(durable_runtime::clock::TestClock::new());
    let rt = Runtime::builder()
        .workflow::<quote>()
        .clock(clock.clone())
        .dependency::<Arc<dyn Pricing>>(Arc::new(Flaky(false)))
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("dep-resume", quote("lamp".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the failed attempt recorded", || {
        h.describe().is_ok_and(|d| d.failed_attempts == 1)
    })
    .await;
    rt.shutdown().await;
    // the process was down for the hour's backoff: the next one resumes the
    // call during open, with its own dependency
    clock.advance(Duration::from_secs(3_600));
    let rt = Runtime::builder()
        .workflow::<quote>()
        .clock(clock.clone())
        .dependency::<Arc<dyn Pricing>>(Arc::new(Flaky(true)))
        .open_url(db.url())
        .await
        .unwrap();
    let out = rt.handle::<quote>("dep-resume").result().within().await;
    assert_eq!(out.unwrap().unwrap(), 7);
    assert_eq!(runs("price_of", "lamp").len(), 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_new_run_of_an_ended_id_replaces_it_with_its_own_keys_and_history() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<three_steps>()
        .workflow::<waits_on_gate>()
        .open_url(db.url())
        .await
        .unwrap();
    let first = rt
        .start("rerun", three_steps("rerun".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(first.result().within().await.unwrap().unwrap(), 60);
    let first_key = runs("step", "rerun/1")[0].idempotency_key.clone();
    // the other policies keep the ended instance
    assert!(matches!(
        rt.start("rerun", three_steps("rerun".into()), IdPolicy::Reject)
            .await,
        Err(StartError::AlreadyExists { .. })
    ));
    rt.start("rerun", three_steps("rerun".into()), IdPolicy::UseExisting)
        .await
        .unwrap();
    assert_eq!(runs("step", "rerun/1").len(), 1);

    let second = rt
        .start(
            "rerun",
            three_steps("rerun".into()),
            IdPolicy::NewRunIfEnded,
        )
        .await
        .unwrap();
    assert_eq!(second.result().within().await.unwrap().unwrap(), 60);
    let ran = runs("step", "rerun/1");
    assert_eq!(ran.len(), 2, "the new run runs its activities");
    // its own idempotency keys (a new incarnation) and its own history
    assert_ne!(ran[1].idempotency_key, first_key);
    let history = second.history().unwrap();
    let started = history
        .iter()
        .filter(|e| matches!(e.kind, durable_runtime::history::EventKind::Started { .. }))
        .count();
    assert_eq!(started, 1, "{history:?}");
    let listed = rt
        .list(&durable_runtime::ListFilter {
            id_prefix: Some("rerun".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 1, "one instance, not two: {listed:?}");

    // a run that has not ended is not replaced
    let running = rt
        .start(
            "rerun-live",
            waits_on_gate("rerun-live".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    wait_for_runs("blocked", "rerun-live", 1).await;
    assert!(matches!(
        rt.start(
            "rerun-live",
            waits_on_gate("rerun-live".into()),
            IdPolicy::NewRunIfEnded
        )
        .await,
        Err(StartError::AlreadyExists { .. })
    ));
    gate("rerun-live").notify_one();
    running.result().within().await.unwrap().unwrap();
    rt.shutdown().await;
}

/// An id started again is a new incarnation: the activities of its selects
/// run with keys its earlier run's never had (they were
/// `<id>/<step>/<branch>`, the same for both, and an external service
/// deduplicating by key took the second call for the first).
#[tokio::test]
async fn an_id_started_again_gives_its_raced_calls_new_idempotency_keys() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    for key in ["raced-first", "raced-again"] {
        let out = rt
            .start("raced", raced_step(key.into()), IdPolicy::NewRunIfEnded)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, 10);
    }
    let first = runs("step", "raced-first/1");
    let again = runs("step", "raced-again/1");
    assert_eq!((first.len(), again.len()), (1, 1));
    assert_ne!(
        first[0].idempotency_key, again[0].idempotency_key,
        "the second run reused the first one's key"
    );
    rt.shutdown().await;
}
