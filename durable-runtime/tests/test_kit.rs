//! The test kit users test their workflows with (feature `testing`):
//! time skipping, activity mocks and the crash sweep, each on workflows
//! like the ones users write.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durable_runtime::prelude::*;
use durable_runtime::testing::{SweepError, TestEnv, crash_sweep};

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(line: String) {
    LOG.lock().unwrap().push(line);
}

#[activity(max_attempts = 1)]
async fn note(what: String) -> Result<String, ActivityError> {
    log(what.clone());
    Ok(what)
}

#[workflow]
async fn later(days: u64, what: String) -> Result<String, WorkflowError> {
    sleep(Duration::from_secs(days * 86_400)).await?;
    Ok(note(what).await?)
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[activity(
    max_attempts = 3,
    initial_interval_ms = 3_600_000,
    backoff = 2.0,
    max_interval_ms = 7_200_000
)]
async fn flaky(n: u64) -> Result<u64, ActivityError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    if attempt < 3 {
        return Err(ActivityError::retryable("not yet"));
    }
    Ok(n * 2)
}

#[workflow]
async fn patient(n: u64) -> Result<u64, WorkflowError> {
    Ok(flaky(n).await?)
}

/// Two instances sleeping three days and one day finish in moments of
/// real time, in the order their timers come due, and the virtual clock
/// has moved at least three days.
#[tokio::test]
async fn timers_of_days_fire_at_once_and_in_their_order() {
    let env = TestEnv::start(Runtime::builder().workflow::<later>())
        .await
        .unwrap();
    // both started before the clock may move (a pause between the starts
    // would be quiet enough to skip to the first one's timer)
    env.set_time_skipping(false);
    let started = env.now();
    let a = env
        .start("a", later(3, "kit-a".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let b = env
        .start("b", later(1, "kit-b".into()), IdPolicy::Reject)
        .await
        .unwrap();
    env.set_time_skipping(true);
    assert_eq!(a.result().await.unwrap(), Ok("kit-a".to_string()));
    assert_eq!(b.result().await.unwrap(), Ok("kit-b".to_string()));
    let order: Vec<String> = LOG
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("kit-"))
        .cloned()
        .collect();
    assert_eq!(order, ["kit-b", "kit-a"]);
    let elapsed = env.now().duration_since(started).unwrap();
    assert!(elapsed >= Duration::from_secs(3 * 86_400), "{elapsed:?}");
    env.shutdown().await;
}

/// Retry backoffs of hours are skipped too: three attempts an hour and
/// two hours apart.
#[tokio::test]
async fn retry_backoffs_are_skipped() {
    let env = TestEnv::start(Runtime::builder().workflow::<patient>())
        .await
        .unwrap();
    let started = env.now();
    let h = env.start("p", patient(21), IdPolicy::Reject).await.unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(42));
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);
    let elapsed = env.now().duration_since(started).unwrap();
    assert!(elapsed >= Duration::from_secs(3 * 3600), "{elapsed:?}");
    env.shutdown().await;
}

/// With skipping off, the clock moves only when the test moves it.
#[tokio::test]
async fn with_skipping_off_the_test_moves_the_clock() {
    let env = TestEnv::start(Runtime::builder().workflow::<later>())
        .await
        .unwrap();
    env.set_time_skipping(false);
    let h = env
        .start("held", later(2, "held".into()), IdPolicy::Reject)
        .await
        .unwrap();
    // given real time to run, the instance still waits: nothing skipped
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        env.describe("held").unwrap().phase,
        durable_runtime::Phase::Sleeping
    );
    env.clock().advance(Duration::from_secs(2 * 86_400));
    assert_eq!(h.result().await.unwrap(), Ok("held".to_string()));
    env.shutdown().await;
}

#[activity(max_attempts = 3, initial_interval_ms = 1)]
async fn quote(item: String) -> Result<u64, ActivityError> {
    panic!("the real quote service was called for {item}")
}

#[workflow]
async fn basket(items: Vec<String>) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for item in items {
        total += quote(item).await?;
    }
    Ok(total)
}

/// A mock replaces the activity for one runtime: the real body never
/// runs, the mock sees each attempt's context (it fails the first), and
/// retries behave as for the real activity.
#[tokio::test]
async fn a_mock_replaces_the_activity_with_its_retries() {
    let builder = Runtime::builder()
        .workflow::<basket>()
        .mock_activity::<quote>(|item| {
            let attempt = ActivityContext::current().map_or(0, |c| c.attempt);
            if attempt == 1 {
                return Err(ActivityError::retryable("first attempts fail"));
            }
            Ok(item.len() as u64)
        });
    let env = TestEnv::start(builder).await.unwrap();
    let h = env
        .start(
            "basket",
            basket(vec!["tea".into(), "scones".into()]),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(9));
    let failed = env
        .history("basket")
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                durable_runtime::history::EventKind::AttemptFailed { .. }
            )
        })
        .count();
    assert_eq!(failed, 2, "one failed attempt per item");
    env.shutdown().await;
}

#[workflow]
async fn errand(who: String) -> Result<String, WorkflowError> {
    let greeting = note(format!("sweep-hello {who}")).await?;
    sleep(Duration::from_secs(3600)).await?;
    let parts = join_all(vec![
        note(format!("sweep-a {who}")),
        note(format!("sweep-b {who}")),
    ])
    .await;
    let mut out = vec![greeting];
    for p in parts {
        out.push(p?);
    }
    let child = later(1, format!("sweep-child {who}")).await??;
    out.push(child);
    Ok(out.join(", "))
}

/// The sweep crashes a workflow with an activity, a timer, `join_all` and
/// a child after each of its checkpoints: every run ends the same.
#[tokio::test]
async fn the_crash_sweep_passes_a_workflow_that_keeps_its_promise() {
    let report = crash_sweep(
        || Runtime::builder().workflow::<errand>().workflow::<later>(),
        "errand",
        || errand("ada".into()),
    )
    .await
    .unwrap();
    assert!(report.checkpoints >= 8, "{report:?}");
    assert_eq!(report.crashes, report.checkpoints);
}

static RUNS_OF_BODY: AtomicU32 = AtomicU32::new(0);

/// Reads a counter of this process in its body (not in an activity): a
/// restart runs the step again and the output changes.
#[workflow]
async fn forgetful(x: u64) -> Result<u64, WorkflowError> {
    let first = note(format!("forgetful {x}")).await?;
    let seen = RUNS_OF_BODY.fetch_add(1, Ordering::SeqCst);
    let second = note(format!("forgetful {seen}")).await?;
    Ok(first.len() as u64 + second.len() as u64 + u64::from(seen))
}

/// Negative control: a workflow whose result depends on what a process
/// did, not on its checkpoints, fails the sweep, naming the checkpoint.
#[tokio::test]
async fn the_crash_sweep_catches_a_workflow_that_depends_on_its_process() {
    let err = crash_sweep(
        || Runtime::builder().workflow::<forgetful>(),
        "forgetful",
        || forgetful(7),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SweepError::Broken { what, .. } if what.contains("output")),
        "{err}"
    );
}

/// A tally whose count is not part of its serialization: a running
/// instance keeps it between steps (its state is held typed), a restart
/// makes it 0.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Tally {
    name: String,
    #[serde(skip)]
    count: u64,
}

#[workflow]
async fn skipping(x: u64) -> Result<u64, WorkflowError> {
    let mut tally = Tally {
        name: format!("tally {x}"),
        count: 0,
    };
    tally.count += 1;
    note(format!("skipping {}", tally.name)).await?;
    tally.count += 1;
    note(format!("skipping {} again", tally.name)).await?;
    Ok(tally.count)
}

/// Negative control of the rule "what a state's serialization leaves out
/// is not state" (`docs/architecture.md` §2.5): a workflow whose output
/// depends on a `#[serde(skip)]` field kept across an await ends otherwise
/// after a crash, and the sweep says so.
#[tokio::test]
async fn the_crash_sweep_catches_a_workflow_that_relies_on_a_field_its_state_does_not_store() {
    let err = crash_sweep(
        || Runtime::builder().workflow::<skipping>(),
        "skipping",
        || skipping(3),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SweepError::Broken { what, .. } if what.contains("output")),
        "{err}"
    );
}

/// Two activities in a loop, in a helper.
#[helper]
async fn greet_twice(who: String) -> Result<Vec<String>, WorkflowError> {
    let mut out = Vec::new();
    for n in 0..2 {
        out.push(note(format!("sweep-helper {who} {n}")).await?);
    }
    Ok(out)
}

/// A helper that calls a helper on each side of a timer.
#[helper]
async fn greet_around_a_timer(who: String) -> Result<Vec<String>, WorkflowError> {
    let mut out = greet_twice(format!("{who} before")).await?;
    sleep(Duration::from_secs(3600)).await?;
    out.extend(greet_twice(format!("{who} after")).await?);
    Ok(out)
}

#[workflow]
async fn helped(who: String) -> Result<String, WorkflowError> {
    let parts = greet_around_a_timer(who.clone()).await?;
    let last = note(format!("sweep-helped {who}")).await?;
    Ok(format!("{} / {last}", parts.join(", ")))
}

/// The sweep crashes a workflow inside helpers nested two deep (their
/// states checkpointed in the workflow's) after each checkpoint: every run
/// ends the same and no recorded activity runs again.
#[tokio::test]
async fn the_crash_sweep_passes_a_workflow_waiting_inside_nested_helpers() {
    let report = crash_sweep(
        || Runtime::builder().workflow::<helped>(),
        "helped",
        || helped("bo".into()),
    )
    .await
    .unwrap();
    // four activities and a timer in the helpers, one in the workflow
    assert!(report.checkpoints >= 6, "{report:?}");
    assert_eq!(report.crashes, report.checkpoints);
}

/// A helper's steps are the caller's: its activities are in the caller's
/// history, and the caller's state while it waits in the helper holds the
/// helper's state, locals by name.
#[tokio::test]
async fn a_helpers_steps_are_in_the_callers_history_and_state() {
    let env = TestEnv::start(Runtime::builder().workflow::<helped>())
        .await
        .unwrap();
    env.set_time_skipping(false);
    let h = env
        .start("h", helped("cy".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let rt = env.runtime();
    let waiting = loop {
        let d = rt.describe("h").unwrap();
        if d.variant == "GreetAroundATimer"
            && d.waiting_for
                .as_deref()
                .is_some_and(|w| w.starts_with("timer"))
        {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(!waiting.status.is_terminal(), "{waiting:?}");
    let state = rt.state_json("h").unwrap().to_string();
    assert!(
        state.contains("\"Sleep\"") && state.contains("cy before"),
        "the helper's variant and locals: {state}"
    );
    env.set_time_skipping(true);
    let out = h.result().await.unwrap().unwrap();
    assert!(out.ends_with("/ sweep-helped cy"), "{out}");
    let history = rt.history("h").unwrap();
    let activities = history
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                durable_runtime::history::EventKind::ActivityFinished { .. }
            )
        })
        .count();
    assert_eq!(activities, 5, "{history:#?}");
    env.shutdown().await;
}

/// A cancel reaches the await the instance is at, inside a helper too:
/// the helper's timer returns the cancellation, its `?` hands it to the
/// workflow's, and the instance ends with it; the activity after the timer
/// never runs.
#[tokio::test]
async fn a_cancel_reaches_the_await_inside_a_helper() {
    let env = TestEnv::start(Runtime::builder().workflow::<helped>())
        .await
        .unwrap();
    env.set_time_skipping(false);
    let h = env
        .start("c", helped("cancelled-dee".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let rt = env.runtime();
    loop {
        let d = rt.describe("c").unwrap();
        if d.waiting_for
            .as_deref()
            .is_some_and(|w| w.starts_with("timer"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.cancel().await.unwrap();
    let out = h.result().await.unwrap();
    let err = out.unwrap_err();
    assert!(err.0.to_lowercase().contains("cancel"), "{err}");
    let after: Vec<String> = LOG
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("cancelled-dee after"))
        .cloned()
        .collect();
    assert!(after.is_empty(), "nothing after the timer ran: {after:?}");
    env.shutdown().await;
}

/// A version 2 of `later` that says where it ran: what a deploy brings.
mod v2 {
    use super::*;

    #[workflow(name = "later", version = 2)]
    pub(super) async fn later(days: u64, what: String) -> Result<String, WorkflowError> {
        sleep(Duration::from_secs(days * 86_400)).await?;
        Ok(note(format!("{what} (v2)")).await?)
    }
}

/// `restart` is a deploy: the runtime stops, the new code opens the same
/// store on the same clock, and an instance asleep across it goes on from
/// its checkpoint: it wakes at its own time, not the new process's, and
/// a new instance runs the new version beside it.
#[tokio::test]
async fn a_restart_keeps_the_store_and_the_clock_and_runs_the_new_code() {
    let env = TestEnv::start(Runtime::builder().workflow::<later>())
        .await
        .unwrap();
    env.set_time_skipping(false);
    let started = env.now();
    env.start("deployed", later(2, "across".into()), IdPolicy::Reject)
        .await
        .unwrap();
    env.clock().advance(Duration::from_secs(86_400));
    let env = env
        .restart(
            Runtime::builder()
                .workflow::<later>()
                .workflow::<v2::later>(),
        )
        .await
        .unwrap();
    assert!(env.now().duration_since(started).unwrap() >= Duration::from_secs(86_400));
    let across = env.handle::<later>("deployed").result().await.unwrap();
    assert_eq!(across, Ok("across".to_string()));
    let woke = env.now().duration_since(started).unwrap();
    assert!(woke >= Duration::from_secs(2 * 86_400), "{woke:?}");
    let fresh = env
        .start("fresh", v2::later(1, "new".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(fresh.result().await.unwrap(), Ok("new (v2)".to_string()));
    env.shutdown().await;
}

static HELD_CALLS: AtomicU32 = AtomicU32::new(0);
static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// The first call waits until released; later calls return at once.
#[activity(max_attempts = 1)]
async fn held_call(what: String) -> Result<String, ActivityError> {
    if HELD_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        RELEASE.notified().await;
    }
    Ok(what)
}

#[workflow]
async fn two_calls(what: String) -> Result<String, WorkflowError> {
    let first = note(format!("{what}-first")).await?;
    let second = held_call(what).await?;
    Ok(format!("{first} {second}"))
}

/// `crash` cuts the power: the checkpoint of the first call, acknowledged,
/// is on the rebooted store and that call does not run again; the second,
/// running when the power went, had no checkpoint and runs again.
#[tokio::test]
async fn a_crash_keeps_what_was_acknowledged_and_reruns_what_was_not() {
    let env = TestEnv::start(Runtime::builder().workflow::<two_calls>())
        .await
        .unwrap();
    env.start("cut", two_calls("crash".into()), IdPolicy::Reject)
        .await
        .unwrap();
    while HELD_CALLS.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let env = env
        .crash(Runtime::builder().workflow::<two_calls>())
        .await
        .unwrap();
    RELEASE.notify_waiters();
    let out = env.handle::<two_calls>("cut").result().await.unwrap();
    assert_eq!(out, Ok("crash-first crash".to_string()));
    let firsts = LOG
        .lock()
        .unwrap()
        .iter()
        .filter(|l| *l == "crash-first")
        .count();
    assert_eq!(firsts, 1, "the acknowledged call ran once");
    assert_eq!(
        HELD_CALLS.load(Ordering::SeqCst),
        2,
        "the unrecorded one ran again"
    );
    env.shutdown().await;
}
