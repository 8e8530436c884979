// Included by `engine_composition.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.

use common::{Within, until};

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use durable_runtime::prelude::*;
use durable_runtime::{ChildError, Status};

static LOG: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);
static GATES: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Notify>>>> =
    LazyLock::new(Default::default);

fn log(line: String) {
    LOG.lock().unwrap().push(line);
}

fn count(prefix: &str) -> usize {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

fn lines(prefix: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .cloned()
        .collect()
}

fn gate(key: &str) -> Arc<tokio::sync::Notify> {
    GATES
        .lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .clone()
}

#[activity(max_attempts = 3, initial_interval_ms = 1)]
async fn import(batch: String, item: u32) -> Result<u32, ActivityError> {
    log(format!("import {batch} {item}"));
    if item % 10 == 9 {
        // every tenth item waits until the test lets it go
        gate(&format!("{batch}/{item}")).notified().await;
    }
    Ok(item * 2)
}

#[workflow]
async fn batch_import(batch: String, items: u32) -> Result<u32, WorkflowError> {
    let calls: Vec<_> = (0..items).map(|i| import(batch.clone(), i)).collect();
    let results = join_all(calls).limit(4).await;
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(total)
}

#[activity]
async fn book(trip: String, what: String) -> Result<String, ActivityError> {
    log(format!("book {trip} {what}"));
    if what == "car" {
        return Err(ActivityError::terminal(format!("no {what} for {trip}")));
    }
    Ok(format!("{what}-{trip}"))
}

/// A compensation, found by name when the saga runs it: the suite is
/// linked once per backend (`common::suite!`), so the runtimes that run
/// sagas name this module's `unbook` (and `slow_undo`) as theirs with
/// `Builder::activity`.
#[activity]
async fn unbook(trip: String, booking: String) -> Result<(), ActivityError> {
    log(format!("unbook {trip} {booking}"));
    Ok(())
}

#[workflow]
async fn trip(trip: String) -> Result<String, WorkflowError> {
    let mut saga = Saga::new();
    let mut booked = Vec::new();
    for what in ["flight", "hotel", "car"].map(String::from) {
        match book(trip.clone(), what).await {
            Ok(b) => {
                saga.add(unbook(trip.clone(), b.clone()));
                booked.push(b);
            }
            Err(e) => {
                let undone = saga.compensate().await;
                assert!(undone.iter().all(Option::is_none));
                return Err(WorkflowError(format!("{e}; compensated {}", undone.len())));
            }
        }
    }
    Ok(booked.join(","))
}

#[workflow]
async fn child(n: u32) -> Result<u32, WorkflowError> {
    let doubled = import("child".into(), n).await?;
    Ok(doubled + 1)
}

#[workflow]
async fn parent(n: u32) -> Result<u32, WorkflowError> {
    let a = child(n).await??;
    let b = child(n + 1).with_id(format!("named-child-{n}")).await??;
    Ok(a + b)
}

#[workflow]
async fn countdown(n: u32, seen: Vec<u32>) -> Result<Vec<u32>, WorkflowError> {
    let mut seen = seen;
    seen.push(n);
    if n == 0 {
        return Ok(seen);
    }
    sleep(Duration::from_millis(1)).await?;
    // keep only the last three: constant-size state across runs
    let keep = seen.split_off(seen.len().saturating_sub(3));
    continue_as_new(countdown(n - 1, keep)).await
}

#[tokio::test]
async fn join_all_runs_in_parallel_with_a_bound_and_keeps_partial_results_across_restarts() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<batch_import>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("b1", batch_import("b1".into(), 20), IdPolicy::Reject)
        .await
        .unwrap();
    // items 9 and 19 block; the other 18 finish and are checkpointed
    until("18 items done", || count("import b1 ") >= 20).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    rt.shutdown().await;
    let before = count("import b1 ");
    let rt = Runtime::builder()
        .workflow::<batch_import>()
        .open_url(db.url())
        .await
        .unwrap();
    until("re-dispatched", || count("import b1 ") >= before + 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rerun: Vec<String> = lines("import b1 ").into_iter().skip(before).collect();
    assert_eq!(
        rerun.len(),
        2,
        "only the two unfinished items run again: {rerun:?}"
    );
    gate("b1/9").notify_one();
    gate("b1/19").notify_one();
    let total = rt
        .handle::<batch_import>("b1")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total, (0..20).map(|i| i * 2).sum::<u32>());
}

#[tokio::test]
async fn a_failed_saga_compensates_in_reverse_order() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<trip>()
        .activity::<unbook>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("t1", trip("t1".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let err = h.result().within().await.unwrap().unwrap_err();
    assert_eq!(err.0, "error: no car for t1; compensated 2");
    assert_eq!(
        lines("unbook t1"),
        vec!["unbook t1 hotel-t1", "unbook t1 flight-t1"]
    );
}

static TRIES: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

/// Fails its first `failures` attempts (per `key`), then answers how many it took.
#[activity(max_attempts = 3, initial_interval_ms = 1)]
async fn flaky(key: String, failures: u32) -> Result<u32, ActivityError> {
    let mut tries = TRIES.lock().unwrap();
    let n = tries.entry(key.clone()).or_insert(0);
    *n += 1;
    if *n <= failures {
        return Err(ActivityError::retryable(format!("{key} try {n}")));
    }
    Ok(*n)
}

#[workflow]
async fn flaky_parts(run: String) -> Result<u32, WorkflowError> {
    let calls = vec![
        flaky(format!("{run}/0"), 0),
        flaky(format!("{run}/1"), 2),
        flaky(format!("{run}/2"), 5),
    ];
    let results = join_all(calls).await;
    Ok(results.iter().filter(|r| r.is_ok()).count() as u32)
}

/// The parts' `PartFinished` events of instance `id`: (step, part,
/// activity, attempts, error).
fn parts_of(rt: &Runtime, id: &str) -> Vec<(u64, u32, String, u32, Option<String>)> {
    let mut parts: Vec<_> = rt
        .history(id)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            durable_runtime::history::EventKind::PartFinished {
                step,
                part,
                activity,
                attempts,
                error,
                ..
            } => Some((step, part, activity, attempts, error)),
            _ => None,
        })
        .collect();
    parts.sort_by_key(|p| p.1);
    parts
}

/// Each part of a `join_all`, and each compensation of a saga, leaves one
/// history event with its attempts, duration and error. Before, the parts'
/// attempts (retried in memory, side by side) left no trace in the history.
#[tokio::test]
async fn every_part_of_a_join_all_and_of_a_compensation_is_in_the_history() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<flaky_parts>()
        .workflow::<trip>()
        .activity::<unbook>()
        .open_url(db.url())
        .await
        .unwrap();
    let run = format!("fp-{BACKEND:?}");
    let h = rt
        .start(&run, flaky_parts(run.clone()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), 2);
    let parts = parts_of(&rt, &run);
    let step = parts.first().map(|p| p.0).expect("no part in the history");
    assert_eq!(
        parts,
        vec![
            (step, 0, "flaky".to_owned(), 1, None),
            (step, 1, "flaky".to_owned(), 3, None),
            (
                step,
                2,
                "flaky".to_owned(),
                3,
                Some(format!("error: {run}/2 try 3"))
            ),
        ]
    );

    // what each part was called with and returned (the one that gave up:
    // the error its workflow saw)
    let called: Vec<(Option<u32>, String, String)> = rt
        .history(&run)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            durable_runtime::history::EventKind::ActivityCalled {
                step: s,
                part,
                input,
                output,
                ..
            } if s == step => Some((part, input, output)),
            _ => None,
        })
        .collect();
    let mut called = called;
    called.sort();
    assert_eq!(called.len(), 3, "{called:?}");
    assert_eq!(
        called[..2],
        [
            (
                Some(0),
                format!(r#"["{run}/0",0]"#),
                r#"{"Ok":1}"#.to_owned()
            ),
            (
                Some(1),
                format!(r#"["{run}/1",2]"#),
                r#"{"Ok":3}"#.to_owned()
            ),
        ]
    );
    assert_eq!(called[2].0, Some(2));
    assert!(
        called[2].2.starts_with(r#"{"Err""#) && called[2].2.contains(&format!("{run}/2 try 3")),
        "{called:?}"
    );

    let h = rt
        .start("t-parts", trip("t-parts".into()), IdPolicy::Reject)
        .await
        .unwrap();
    h.result().within().await.unwrap().unwrap_err();
    let undone = parts_of(&rt, "t-parts");
    assert_eq!(
        undone
            .iter()
            .map(|(_, part, activity, attempts, error)| (
                *part,
                activity.as_str(),
                *attempts,
                error.clone()
            ))
            .collect::<Vec<_>>(),
        vec![(0, "unbook", 1, None), (1, "unbook", 1, None)]
    );
    let unbooked = rt
        .history("t-parts")
        .unwrap()
        .into_iter()
        .filter(|e| {
            matches!(&e.kind, durable_runtime::history::EventKind::ActivityCalled {
                part: Some(_),
                activity,
                output,
                ..
            } if activity == "unbook" && output.starts_with(r#"{"Ok""#))
        })
        .count();
    assert_eq!(unbooked, 2, "each compensation with its values");
}

#[tokio::test]
async fn a_parent_awaits_its_child_workflows() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<parent>()
        .workflow::<child>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt.start("p", parent(3), IdPolicy::Reject).await.unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        (3 * 2 + 1) + (4 * 2 + 1)
    );
    assert_eq!(
        rt.handle::<child>("p/1").describe().unwrap().status,
        Status::Completed
    );
    assert_eq!(
        rt.handle::<child>("named-child-3")
            .result()
            .await
            .unwrap()
            .unwrap(),
        9
    );
    let _unused: Option<ChildError> = None;
}

#[tokio::test]
async fn continue_as_new_keeps_the_state_small() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<countdown>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("cd", countdown(10, Vec::new()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec![3, 2, 1, 0]
    );
}

#[activity]
async fn slow_undo(trip: String) -> Result<(), ActivityError> {
    log(format!("slow_undo {trip}"));
    gate(&format!("undo/{trip}")).notified().await;
    log(format!("slow_undo done {trip}"));
    Ok(())
}

#[workflow]
async fn compensating(trip: String) -> Result<String, WorkflowError> {
    let mut saga = Saga::new();
    let flight = book(trip.clone(), "flight".to_string()).await?;
    saga.add(unbook(trip.clone(), flight));
    saga.add(slow_undo(trip.clone()));
    let undone = saga.compensate().await;
    // the cancellation waits for the compensation, then arrives here
    match sleep(Duration::from_secs(3600)).await {
        Ok(()) => Ok(format!("compensated {} without a cancel", undone.len())),
        Err(_) => Ok(format!("compensated {} then saw the cancel", undone.len())),
    }
}

#[tokio::test]
async fn a_cancel_during_compensation_lets_the_compensation_finish() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<compensating>()
        .activity::<unbook>()
        .activity::<slow_undo>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("cdc", compensating("cdc".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("compensation running", || count("slow_undo cdc") == 1).await;
    h.cancel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        count("unbook cdc"),
        0,
        "compensations run last first; the first waits"
    );
    gate("undo/cdc").notify_one();
    let out = h.result().within().await.unwrap().unwrap();
    assert_eq!(out, "compensated 2 then saw the cancel");
    assert_eq!(lines("unbook cdc").len(), 1);
    assert_eq!(h.describe().unwrap().status, Status::Cancelled);
}

#[activity(max_attempts = 1)]
async fn provider(name: String, wait_ms: u64) -> Result<String, ActivityError> {
    log(format!("provider start {name}"));
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    log(format!("provider done {name}"));
    Ok(name)
}

#[workflow]
async fn hedged(key: String) -> Result<String, WorkflowError> {
    let calls = vec![
        provider(format!("{key}-slow"), 5_000),
        provider(format!("{key}-fast"), 1),
    ];
    let (index, answer) = first_of(calls).await;
    Ok(format!("{index}:{}", answer?))
}

#[tokio::test]
async fn first_of_takes_the_fastest_and_drops_the_rest() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<hedged>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("h", hedged("h".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), "1:h-fast");
    assert_eq!(count("provider start h-slow"), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        count("provider done h-slow"),
        0,
        "the slow attempt was aborted"
    );
}

#[workflow]
async fn refuses(amount: u32) -> Result<u32, WorkflowError> {
    if amount > 100 {
        return Err(WorkflowError(format!("{amount} is over the limit")));
    }
    Ok(amount)
}

#[workflow]
async fn asks_child(amount: u32) -> Result<String, WorkflowError> {
    let answer = refuses(amount).await;
    Ok(match answer {
        Ok(Ok(n)) => format!("child allowed {n}"),
        Ok(Err(e)) => format!("child refused: {e}"),
        Err(e) => format!("child broke: {e}"),
    })
}

#[tokio::test]
async fn a_workflow_that_returns_err_has_failed_and_keeps_its_typed_error() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<refuses>()
        .workflow::<asks_child>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("big", refuses(500), IdPolicy::Reject)
        .await
        .unwrap();
    let out = h.result().await.unwrap();
    assert_eq!(out.unwrap_err().to_string(), "500 is over the limit");
    let d = h.describe().unwrap();
    assert_eq!(d.status, Status::Failed);
    assert_eq!(d.error.as_deref(), Some("500 is over the limit"));
    let ok = rt
        .start("small", refuses(5), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(ok.result().await.unwrap().unwrap(), 5);
    assert_eq!(ok.describe().unwrap().status, Status::Completed);
    // a parent gets its child's typed error, not a broken child
    let parent = rt
        .start("parent", asks_child(700), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        parent.result().await.unwrap().unwrap(),
        "child refused: 700 is over the limit"
    );
    assert_eq!(rt.describe("parent/1").unwrap().status, Status::Failed);
    assert_eq!(parent.describe().unwrap().status, Status::Completed);
}

#[activity]
async fn slow_lookup(key: String) -> Result<String, ActivityError> {
    log(format!("lookup-start {key}"));
    gate(&key).notified().await;
    Ok(format!("looked up {key}"))
}

#[workflow]
async fn lookup_or_override(key: String) -> Result<String, WorkflowError> {
    use durable_runtime::command::Either;
    let won = durable_runtime::select(slow_lookup(key), signal::<String>("override")).await;
    Ok(match won {
        Either::Left(found) => found?,
        Either::Right(given) => format!("overridden with {}", given?),
    })
}

#[tokio::test]
async fn a_signal_wins_a_select_while_the_raced_activity_is_still_running() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<lookup_or_override>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("lo", lookup_or_override("lo-key".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the lookup runs", || count("lookup-start lo-key") == 1).await;
    rt.signal("lo", "override", &"42".to_owned()).await.unwrap();
    // the lookup is never let through: only the signal can end the select
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "overridden with 42"
    );
}

/// A child raced against a signal: whichever comes first; then waits for
/// `end` (so that a losing child is not cancelled by the parent's end).
#[workflow]
async fn errand_or_stop(n: u32) -> Result<String, WorkflowError> {
    let won = match select(errand(n), signal::<()>("stop")).await {
        durable_runtime::command::Either::Left(done) => format!("child: {}", done??),
        durable_runtime::command::Either::Right(_) => "stopped".to_owned(),
    };
    let _: () = signal("end").await?;
    Ok(won)
}

#[tokio::test]
async fn a_child_raced_in_a_select_wins_when_it_ends_first_even_across_a_restart() {
    let db = BACKEND.store();
    let open = || {
        Runtime::builder()
            .workflow::<errand_or_stop>()
            .workflow::<errand>()
            .open_url(db.url())
    };
    let rt = open().await.unwrap();
    rt.start("race-win", errand_or_stop(3), IdPolicy::Reject)
        .await
        .unwrap();
    // the select started the child (branch 0 of the await at step 1)
    until("the child waits for go", || {
        rt.describe("race-win/1/0")
            .is_ok_and(|d| d.status == Status::Running && d.step == 1)
    })
    .await;
    rt.shutdown().await;
    let rt = open().await.unwrap();
    rt.signal("race-win/1/0", "go", &()).await.unwrap();
    rt.signal("race-win", "end", &()).await.unwrap();
    let out = rt
        .handle::<errand_or_stop>("race-win")
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(out.unwrap(), "child: errand 3 done");
    // started once: the restart found it by its id
    let started = rt
        .list(&durable_runtime::ListFilter::default())
        .unwrap()
        .into_iter()
        .filter(|d| d.id.starts_with("race-win/"))
        .count();
    assert_eq!(started, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_child_losing_a_select_is_cancelled() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<errand_or_stop>()
        .workflow::<errand>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("race-lose", errand_or_stop(4), IdPolicy::Reject)
        .await
        .unwrap();
    until("the child waits for go", || {
        rt.describe("race-lose/1/0").is_ok_and(|d| d.step == 1)
    })
    .await;
    rt.signal("race-lose", "stop", &()).await.unwrap();
    // cancelled as it lost, while its parent goes on
    let child = rt.handle::<errand>("race-lose/1/0");
    let out = child.result().within().await.unwrap();
    assert_eq!(
        child.describe().unwrap().status,
        Status::Cancelled,
        "{out:?}"
    );
    assert_eq!(h.describe().unwrap().status, Status::Running);
    rt.signal("race-lose", "end", &()).await.unwrap();
    assert_eq!(h.result().within().await.unwrap().unwrap(), "stopped");
    rt.shutdown().await;
}

/// Two children: the first to end; then waits for `end`.
#[workflow]
async fn first_errand(n: u32) -> Result<String, WorkflowError> {
    let (index, done) = first_of(vec![errand(n), errand(n + 1)]).await;
    let won = format!("{index}: {}", done??);
    let _: () = signal("end").await?;
    Ok(won)
}

#[tokio::test]
async fn first_of_children_takes_the_first_to_end_and_cancels_the_rest() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<first_errand>()
        .workflow::<errand>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("fo", first_errand(10), IdPolicy::Reject)
        .await
        .unwrap();
    until("both children wait for go", || {
        ["fo/1/0", "fo/1/1"]
            .iter()
            .all(|c| rt.describe(c).is_ok_and(|d| d.step == 1))
    })
    .await;
    rt.signal("fo/1/1", "go", &()).await.unwrap();
    let loser = rt.handle::<errand>("fo/1/0");
    let out = loser.result().within().await.unwrap();
    assert_eq!(
        loser.describe().unwrap().status,
        Status::Cancelled,
        "{out:?}"
    );
    assert_eq!(h.describe().unwrap().status, Status::Running);
    rt.signal("fo", "end", &()).await.unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "1: errand 11 done"
    );
    rt.shutdown().await;
}

/// A child raced against a running activity.
#[workflow]
async fn lookup_or_errand(key: String) -> Result<String, WorkflowError> {
    use durable_runtime::command::Either;
    Ok(match select(slow_lookup(key), errand(7)).await {
        Either::Left(found) => found?,
        Either::Right(done) => format!("child first: {}", done??),
    })
}

#[tokio::test]
async fn a_child_that_ends_wins_a_select_while_the_raced_activity_is_still_running() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<lookup_or_errand>()
        .workflow::<errand>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("le", lookup_or_errand("le-key".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the lookup runs", || count("lookup-start le-key") == 1).await;
    until("the child waits for go", || {
        rt.describe("le/1/1").is_ok_and(|d| d.step == 1)
    })
    .await;
    rt.signal("le/1/1", "go", &()).await.unwrap();
    // the lookup is never let through: only the child can end the select
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        "child first: errand 7 done"
    );
    rt.shutdown().await;
}

/// `n` errands, two at a time.
#[workflow]
async fn errands(n: u32) -> Result<Vec<String>, WorkflowError> {
    let calls: Vec<_> = (0..n).map(errand).collect();
    let results = join_all(calls).limit(2).await;
    let mut out = Vec::new();
    for done in results {
        out.push(done??);
    }
    Ok(out)
}

#[tokio::test]
async fn join_all_over_children_runs_them_a_few_at_a_time_across_a_restart() {
    let db = BACKEND.store();
    let open = || {
        Runtime::builder()
            .workflow::<errands>()
            .workflow::<errand>()
            .open_url(db.url())
    };
    let rt = open().await.unwrap();
    rt.start("ja", errands(3), IdPolicy::Reject).await.unwrap();
    until("two children wait for go", || {
        ["ja/1/0", "ja/1/1"]
            .iter()
            .all(|c| rt.describe(c).is_ok_and(|d| d.step == 1))
    })
    .await;
    // the third waits for a place
    assert!(rt.describe("ja/1/2").is_err());
    rt.shutdown().await;
    let rt = open().await.unwrap();
    assert!(rt.describe("ja/1/2").is_err());
    rt.signal("ja/1/1", "go", &()).await.unwrap();
    until("the third child waits for go", || {
        rt.describe("ja/1/2").is_ok_and(|d| d.step == 1)
    })
    .await;
    rt.signal("ja/1/2", "go", &()).await.unwrap();
    rt.signal("ja/1/0", "go", &()).await.unwrap();
    let out = rt
        .handle::<errands>("ja")
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, ["errand 0 done", "errand 1 done", "errand 2 done"]);
    // each started once: the restart found them by their ids
    let started = rt
        .list(&durable_runtime::ListFilter::default())
        .unwrap()
        .into_iter()
        .filter(|d| d.id.starts_with("ja/"))
        .count();
    assert_eq!(started, 3);
    rt.shutdown().await;
}

/// Waits for `go`, then says which child it was.
#[workflow]
async fn errand(n: u32) -> Result<String, WorkflowError> {
    let _: () = signal("go").await?;
    Ok(format!("errand {n} done"))
}

/// Starts two errands without waiting: one to be cancelled with it, one
/// left to run on; ends at once.
#[workflow]
async fn dispatcher(n: u32) -> Result<Vec<String>, WorkflowError> {
    let bound = errand(n).start().await?;
    let free = errand(n + 1)
        .with_id(format!("free-errand-{n}"))
        .with_parent_close(durable_runtime::command::ParentClose::Abandon)
        .start()
        .await?;
    Ok(vec![bound, free])
}

#[tokio::test]
async fn a_child_started_without_waiting_runs_on_by_the_parents_close_policy() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<dispatcher>()
        .workflow::<errand>()
        .open_url(db.url())
        .await
        .unwrap();
    let h = rt
        .start("dispatch", dispatcher(1), IdPolicy::Reject)
        .await
        .unwrap();
    let ids = h.result().within().await.unwrap().unwrap();
    assert_eq!(
        ids,
        vec!["dispatch/1".to_owned(), "free-errand-1".to_owned()]
    );
    // the parent ended first: the default policy cancelled its child, the
    // abandoned one waits on
    let bound = rt.handle::<errand>("dispatch/1");
    let out = bound.result().within().await.unwrap();
    assert_eq!(
        bound.describe().unwrap().status,
        Status::Cancelled,
        "{out:?}"
    );
    let free = rt.handle::<errand>("free-errand-1");
    assert_eq!(free.describe().unwrap().status, Status::Running);
    rt.signal("free-errand-1", "go", &()).await.unwrap();
    assert_eq!(
        free.result().within().await.unwrap().unwrap(),
        "errand 2 done"
    );
    rt.shutdown().await;
}
