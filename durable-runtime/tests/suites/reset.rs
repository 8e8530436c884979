// Included by `reset.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// A reset takes an ended or parked instance back to the state one of its
// checkpoints kept: a new run goes on from there, runs the awaited command
// again under new idempotency keys (never the steps before), the history
// goes on, and a reset that cannot be made is refused with nothing written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::until;
use durable_runtime::history::EventKind;
use durable_runtime::prelude::*;
use durable_runtime::reset::ResetTo;
use durable_runtime::store::Store;
use durable_runtime::{ResetError, Status};

/// Set while `charge` has its bug.
static BROKEN: AtomicBool = AtomicBool::new(true);

/// Every activity attempt: (activity, idempotency key).
static CALLS: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

fn called(activity: &'static str) {
    let key = ActivityContext::current().map_or_else(String::new, |c| c.idempotency_key);
    CALLS.lock().unwrap().push((activity, key));
}

/// The idempotency keys `activity` ran with, in order.
fn calls(activity: &str) -> Vec<String> {
    CALLS
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, _)| *a == activity)
        .map(|(_, k)| k.clone())
        .collect()
}

#[activity]
async fn reserve(order: String) -> Result<u32, ActivityError> {
    called("reserve");
    Ok(order.len() as u32)
}

#[activity(max_attempts = 1)]
async fn charge(cents: u32) -> Result<u32, ActivityError> {
    called("charge");
    if BROKEN.load(Ordering::SeqCst) {
        return Err(ActivityError::terminal(
            "card service rejected the currency",
        ));
    }
    Ok(cents)
}

#[activity]
async fn ship(order: String) -> Result<(), ActivityError> {
    called("ship");
    let _ = order;
    Ok(())
}

/// Reserves, charges (failing while `BROKEN`), ships.
#[workflow]
async fn order(id: String) -> Result<String, WorkflowError> {
    let reserved = reserve(id.clone()).await?;
    let charged = charge(reserved * 100).await?;
    ship(id.clone()).await?;
    Ok(format!("{id}: {charged}"))
}

/// Waits for a signal, then completes.
#[workflow]
async fn parcel(id: String) -> Result<String, WorkflowError> {
    let to: String = signal("address").await?;
    Ok(format!("{id} to {to}"))
}

/// Builds a large log from four signals (each stored as a field of its
/// own: it changes at every step), then publishes it (failing while
/// `BROKEN`).
#[workflow]
async fn draft(id: String) -> Result<String, WorkflowError> {
    let mut log = String::new();
    for _ in 0..4 {
        let part: String = signal("part").await?;
        log.push_str(&part.repeat(1200));
    }
    let _ = charge(log.len() as u32).await?;
    let letters: String = log.chars().step_by(1200).collect();
    Ok(format!("{id}: {letters}"))
}

fn builder() -> durable_runtime::Builder {
    Runtime::builder()
        .workflow::<order>()
        .workflow::<parcel>()
        .workflow::<draft>()
}

async fn ended(rt: &Runtime, id: &str) -> Status {
    until(&format!("{id} ends"), || {
        rt.describe(id).is_ok_and(|d| d.status.is_terminal())
    })
    .await;
    rt.describe(id).unwrap().status
}

/// The reset events of `id`'s history: (event number, from, to, run, reason).
fn resets(rt: &Runtime, id: &str) -> Vec<(u64, u64, u64, u32, String)> {
    rt.history(id)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Reset {
                from_step,
                to_step,
                run,
                reason,
            } => Some((e.seq, from_step, to_step, run, reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_failed_instance_reset_to_its_failed_step_runs_that_step_again_and_none_before() {
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("o-1", order("o-1".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(ended(&rt, "o-1").await, Status::Failed);
    assert_eq!(calls("charge").len(), 1);
    // the bug is fixed; the operator resets to the await of the charge
    BROKEN.store(false, Ordering::SeqCst);
    let points = rt.reset_points("o-1").unwrap();
    let awaiting: Vec<&str> = points.iter().map(|p| p.awaiting.as_str()).collect();
    assert_eq!(
        awaiting,
        ["activity reserve", "activity charge"],
        "{points:?}"
    );
    let at = points[1].step;
    let before = rt.history("o-1").unwrap().len();
    let reset = rt
        .reset("o-1", ResetTo::Step(at), "currency bug fixed")
        .await
        .unwrap();
    assert_eq!((reset.run, reset.step), (2, at));
    assert_eq!(ended(&rt, "o-1").await, Status::Completed);
    let output: Result<String, WorkflowError> = rt.handle::<order>("o-1").result().await.unwrap();
    assert_eq!(output.unwrap(), "o-1: 300");
    // the reservation before the reset point ran once; the charge again,
    // under a key the failed attempt did not use
    assert_eq!(calls("reserve").len(), 1);
    let charges = calls("charge");
    assert_eq!(charges.len(), 2);
    assert_ne!(charges[0], charges[1]);
    assert_eq!(calls("ship").len(), 1);
    // the earlier run's events stay, the reset links the runs
    let history = rt.history("o-1").unwrap();
    assert!(history[..before].iter().any(|e| matches!(
        &e.kind,
        EventKind::Finished {
            status: Status::Failed,
            ..
        }
    )));
    let r = resets(&rt, "o-1");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, before as u64 + 1);
    assert_eq!(
        (r[0].1, r[0].2, r[0].3, r[0].4.as_str()),
        (reset.from_step, at, 2, "currency bug fixed")
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_completed_instance_reset_by_event_runs_on_from_that_events_step() {
    BROKEN.store(false, Ordering::SeqCst);
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    rt.start("o-2", order("o-2".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(ended(&rt, "o-2").await, Status::Completed);
    // the event that says the reservation finished names its step
    let event = rt
        .history("o-2")
        .unwrap()
        .into_iter()
        .find(|e| matches!(&e.kind, EventKind::ActivityFinished { activity, .. } if activity == "reserve"))
        .unwrap();
    let reset = rt
        .reset("o-2", ResetTo::Event(event.seq), "re-reserve")
        .await
        .unwrap();
    assert_eq!(Some(reset.step), event.kind.step());
    assert_eq!(ended(&rt, "o-2").await, Status::Completed);
    assert_eq!(calls("reserve").len(), 2);
    assert_eq!(calls("charge").len(), 2);
    assert_eq!(rt.describe("o-2").unwrap().status, Status::Completed);
    // reset again, after a restart: the runs number on
    rt.shutdown().await;
    let rt = builder().open_url(db.url()).await.unwrap();
    let points = rt.reset_points("o-2").unwrap();
    let again = rt
        .reset(
            "o-2",
            ResetTo::Step(points.last().unwrap().step),
            "ship again",
        )
        .await
        .unwrap();
    assert_eq!(again.run, 3);
    assert_eq!(ended(&rt, "o-2").await, Status::Completed);
    assert_eq!(calls("ship").len(), 3);
    assert_eq!(calls("reserve").len(), 2);
    assert_eq!(resets(&rt, "o-2").len(), 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_reset_that_cannot_be_made_is_refused_and_writes_nothing() {
    BROKEN.store(false, Ordering::SeqCst);
    let db = BACKEND.store();
    let rt = builder().open_url(db.url()).await.unwrap();
    let unknown = rt.reset("nobody", ResetTo::Step(1), "x").await.unwrap_err();
    assert!(matches!(unknown, ResetError::Unknown { .. }), "{unknown}");
    // a waiting instance: cancel or terminate it first
    rt.start("p-1", parcel("p-1".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("p-1 waits", || {
        rt.reset_points("p-1").is_ok_and(|p| !p.is_empty())
    })
    .await;
    let active = rt.reset("p-1", ResetTo::Step(1), "x").await.unwrap_err();
    assert!(matches!(active, ResetError::Active { .. }), "{active}");
    assert!(active.to_string().contains("cancel or terminate it first"));
    rt.signal("p-1", "address", &"Lyon".to_owned())
        .await
        .unwrap();
    assert_eq!(ended(&rt, "p-1").await, Status::Completed);
    let history = rt.history("p-1").unwrap();
    // a step it never kept: the error lists those it keeps
    let gone = rt.reset("p-1", ResetTo::Step(9), "x").await.unwrap_err();
    match &gone {
        ResetError::PointGone { step, kept, .. } => {
            assert_eq!((*step, kept.as_slice()), (9, &[1][..]))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        gone.to_string().contains("steps it can be reset to: 1"),
        "{gone}"
    );
    // an event past the history, and one of no step (the start)
    let past = rt.reset("p-1", ResetTo::Event(999), "x").await.unwrap_err();
    assert!(
        matches!(past, ResetError::Event { event: 999, .. }),
        "{past}"
    );
    let start = rt.reset("p-1", ResetTo::Event(1), "x").await.unwrap_err();
    assert!(start.to_string().contains("belongs to no step"), "{start}");
    assert_eq!(rt.history("p-1").unwrap(), history);
    assert_eq!(rt.describe("p-1").unwrap().status, Status::Completed);
    rt.shutdown().await;
    // a runtime that keeps no reset points refuses every reset
    let rt = builder().reset_points(0).open_url(db.url()).await.unwrap();
    rt.start("p-2", parcel("p-2".into()), IdPolicy::Reject)
        .await
        .unwrap();
    rt.signal("p-2", "address", &"Oslo".to_owned())
        .await
        .unwrap();
    assert_eq!(ended(&rt, "p-2").await, Status::Completed);
    let none = rt.reset("p-2", ResetTo::Step(1), "x").await.unwrap_err();
    assert!(
        matches!(&none, ResetError::PointGone { kept, .. } if kept.is_empty()),
        "{none}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn only_the_last_reset_points_are_kept_and_a_reset_reads_large_fields_as_they_were_then() {
    BROKEN.store(true, Ordering::SeqCst);
    let db = BACKEND.store();
    let store: Arc<dyn Store> = db.open().await;
    let rt = builder()
        .reset_points(3)
        .open_store(store.clone())
        .await
        .unwrap();
    rt.start("d-1", draft("d-1".into()), IdPolicy::Reject)
        .await
        .unwrap();
    for part in ["a", "b", "c", "d"] {
        rt.signal("d-1", "part", &part.to_owned()).await.unwrap();
    }
    assert_eq!(ended(&rt, "d-1").await, Status::Failed);
    // five awaits (four signals, the charge); the last three are kept
    let points = rt.reset_points("d-1").unwrap();
    let steps: Vec<u64> = points.iter().map(|p| p.step).collect();
    assert_eq!(steps, [3, 4, 5], "{points:?}");
    // step 3 waits for the third part: its log holds "a" and "b" only,
    // though later steps stored other values of that field
    BROKEN.store(false, Ordering::SeqCst);
    rt.reset("d-1", ResetTo::Step(3), "redo the last parts")
        .await
        .unwrap();
    rt.signal("d-1", "part", &"x".to_owned()).await.unwrap();
    rt.signal("d-1", "part", &"y".to_owned()).await.unwrap();
    assert_eq!(ended(&rt, "d-1").await, Status::Completed);
    let out: Result<String, WorkflowError> = rt.handle::<draft>("d-1").result().await.unwrap();
    assert_eq!(out.unwrap(), "d-1: abxy");
    // the values no kept point refers to are deleted as the window moves:
    // what is stored is what the state and the kept points refer to
    let fields = store.scan_prefix(b"fd-1\0").unwrap().len();
    assert!(fields <= 4, "{fields} field values stored");
    let points = rt.reset_points("d-1").unwrap();
    let steps: Vec<u64> = points.iter().map(|p| p.step).collect();
    assert_eq!(steps, [3, 4, 5], "{points:?}");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_kept_state_the_code_can_no_longer_read_is_refused_not_read_by_position() {
    BROKEN.store(true, Ordering::SeqCst);
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<before::tally>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("t-1", before::tally(7), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(ended(&rt, "t-1").await, Status::Failed);
    rt.shutdown().await;
    // the next build changed the type of the count held across the charge
    let rt = Runtime::builder()
        .workflow::<after::tally>()
        .open_url(db.url())
        .await
        .unwrap();
    let history = rt.history("t-1").unwrap();
    let refused = rt.reset("t-1", ResetTo::Step(1), "x").await.unwrap_err();
    match &refused {
        ResetError::LayoutChanged { step, reason, .. } => {
            assert_eq!(*step, 1);
            assert!(reason.contains("count"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rt.history("t-1").unwrap(), history);
    assert_eq!(rt.describe("t-1").unwrap().status, Status::Failed);
    rt.shutdown().await;
}

/// The first build of `tally`.
pub mod before {
    use durable_runtime::prelude::*;

    /// Holds a count across a charge that fails while `BROKEN`.
    #[workflow(name = "tally")]
    pub async fn tally(count: u32) -> Result<u32, WorkflowError> {
        let charged = super::charge(count).await?;
        Ok(count + charged)
    }
}

/// The next build of `tally`.
pub mod after {
    use durable_runtime::prelude::*;

    /// The count became a text.
    #[workflow(name = "tally")]
    pub async fn tally(count: String) -> Result<u32, WorkflowError> {
        let charged = super::charge(count.len() as u32).await?;
        Ok(charged + count.len() as u32)
    }
}

#[tokio::test]
async fn a_parked_instance_reset_to_a_step_the_new_code_reads_runs_on_the_new_code() {
    let db = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<notes_v1::notes>()
        .open_url(db.url())
        .await
        .unwrap();
    rt.start("n-1", notes_v1::notes(7), IdPolicy::Reject)
        .await
        .unwrap();
    rt.signal("n-1", "a", &"x".to_owned()).await.unwrap();
    until("n-1 waits for b", || {
        rt.describe("n-1").is_ok_and(|d| d.step == 2)
    })
    .await;
    rt.shutdown().await;
    // the deploy changed the note's type: the instance, which holds one, parks
    let rt = Runtime::builder()
        .workflow::<notes_v2::notes>()
        .open_url(db.url())
        .await
        .unwrap();
    assert_eq!(rt.describe("n-1").unwrap().status, Status::Parked);
    assert_eq!(rt.parked().len(), 1);
    let refused = rt.reset("n-1", ResetTo::Step(2), "x").await.unwrap_err();
    assert!(
        matches!(refused, ResetError::LayoutChanged { step: 2, .. }),
        "{refused}"
    );
    // step 1 held only the count, which the new code reads as it was
    let reset = rt
        .reset("n-1", ResetTo::Step(1), "note type changed in 2.0")
        .await
        .unwrap();
    assert_eq!((reset.from_step, reset.step, reset.run), (2, 1, 2));
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    rt.signal("n-1", "a", &"yz".to_owned()).await.unwrap();
    rt.signal("n-1", "b", &"!".to_owned()).await.unwrap();
    assert_eq!(ended(&rt, "n-1").await, Status::Completed);
    let out: Result<String, WorkflowError> =
        rt.handle::<notes_v2::notes>("n-1").result().await.unwrap();
    assert_eq!(out.unwrap(), "9!");
    rt.shutdown().await;
}

/// The first build of `notes`: the note is text.
pub mod notes_v1 {
    use durable_runtime::prelude::*;

    /// Takes `a`, keeps a note of it, takes `b`.
    #[workflow(name = "notes")]
    pub async fn notes(count: u32) -> Result<String, WorkflowError> {
        let a: String = signal("a").await?;
        let note = format!("{a}{count}");
        let b: String = signal("b").await?;
        Ok(format!("{note}{b}"))
    }
}

/// The next build of `notes`: the note is a number.
pub mod notes_v2 {
    use durable_runtime::prelude::*;

    /// Takes `a`, keeps a number of it, takes `b`.
    #[workflow(name = "notes")]
    pub async fn notes(count: u32) -> Result<String, WorkflowError> {
        let a: String = signal("a").await?;
        let note = a.len() as u64 + u64::from(count);
        let b: String = signal("b").await?;
        Ok(format!("{note}{b}"))
    }
}

/// A reset made as its instance's task ends it (the ended record written,
/// the task's claim not yet given up) runs the new run. It once found the
/// claim, left the instance to the ending task, which let it go: the new
/// run waited, never started, until something else woke it. The test holds
/// the task in that window while the reset is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_made_as_its_instance_ends_runs_the_new_run() {
    BROKEN.store(false, Ordering::SeqCst);
    let db = BACKEND.store();
    let resetter: Arc<std::sync::OnceLock<Runtime>> = Arc::default();
    let armed = Arc::new(AtomicBool::new(true));
    let hook_resetter = resetter.clone();
    let rt = builder()
        .on_ending(move |id| {
            if id != "o-race" || !armed.swap(false, Ordering::SeqCst) {
                return;
            }
            // from another thread (a task spawned from here would wait in
            // this worker's own slot)
            let rt = hook_resetter.get().expect("the runtime").clone();
            let runtime = tokio::runtime::Handle::current();
            let reset = std::thread::spawn(move || {
                runtime
                    .block_on(rt.reset("o-race", ResetTo::Step(1), "as it ends"))
                    .unwrap();
            });
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while !reset.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
        .open_url(db.url())
        .await
        .unwrap();
    let _ = resetter.set(rt.clone());
    rt.start("o-race", order("o-race".into()), IdPolicy::Reject)
        .await
        .unwrap();
    until("the reset run ends", || {
        rt.describe("o-race")
            .is_ok_and(|d| d.run == 2 && d.status == Status::Completed)
    })
    .await;
    assert_eq!(calls("reserve").len(), 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_instance_moved_to_another_store_keeps_no_reset_points_there() {
    BROKEN.store(true, Ordering::SeqCst);
    let here = BACKEND.store();
    let there = BACKEND.store();
    let rt = builder().open_url(here.url()).await.unwrap();
    rt.start("o-moved", order("o-moved".into()), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(ended(&rt, "o-moved").await, Status::Failed);
    assert_eq!(rt.reset_points("o-moved").unwrap().len(), 2);
    let snapshot = rt.export("o-moved").unwrap();
    rt.shutdown().await;
    let rt = builder().open_url(there.url()).await.unwrap();
    rt.import(&snapshot, false).await.unwrap();
    // its history reads as it did; the points stayed in the store they refer into
    assert!(rt.history("o-moved").unwrap().len() >= 4);
    assert!(rt.reset_points("o-moved").unwrap().is_empty());
    let refused = rt
        .reset("o-moved", ResetTo::Step(2), "x")
        .await
        .unwrap_err();
    assert!(matches!(refused, ResetError::PointGone { .. }), "{refused}");
    rt.shutdown().await;
}
