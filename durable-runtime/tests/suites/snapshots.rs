// Included by `snapshots.rs` once per backend (`common::suite!`): from a
// redb store to one of `BACKEND`.

/// The store instances are exported from.
const FROM: Backend = Backend::Redb;
/// The store they are imported into.
const TO: Backend = BACKEND;

use common::until;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use durable_runtime::prelude::*;
use durable_runtime::snapshot::{Snapshot, SnapshotError};

static RUNS: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);
static HOLD: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Notify>>>> =
    LazyLock::new(Default::default);

/// The idempotency key of every run: (`<order> <activity>`, key).
static KEYS: LazyLock<Mutex<Vec<(String, String)>>> = LazyLock::new(Default::default);

/// Activities block while the test holds `<order>/<activity>`.
async fn effect(order: &str, activity: &str) {
    RUNS.lock().unwrap().push(format!("{order} {activity}"));
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    KEYS.lock()
        .unwrap()
        .push((format!("{order} {activity}"), key));
    let gate = HOLD
        .lock()
        .unwrap()
        .get(&format!("{order}/{activity}"))
        .cloned();
    if let Some(gate) = gate {
        gate.notified().await;
    }
}

fn runs(order: &str) -> Vec<String> {
    RUNS.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(&format!("{order} ")))
        .cloned()
        .collect()
}

#[activity]
async fn check_fraud(order: String) -> Result<(), ActivityError> {
    effect(&order, "check_fraud").await;
    Ok(())
}

#[activity]
async fn prepare_shipment(order: String) -> Result<(), ActivityError> {
    effect(&order, "prepare_shipment").await;
    Ok(())
}

#[activity]
async fn charge(order: String) -> Result<String, ActivityError> {
    effect(&order, "charge").await;
    Ok(format!("ch-{order}"))
}

#[activity]
async fn ship(order: String, charge_id: String) -> Result<String, ActivityError> {
    effect(&order, "ship").await;
    Ok(format!("shipped {order} ({charge_id})"))
}

#[workflow]
async fn process_order(order: String) -> Result<String, WorkflowError> {
    check_fraud(order.clone()).await?;
    prepare_shipment(order.clone()).await?;
    let charge_id = charge(order.clone()).await?;
    let confirmation = ship(order, charge_id).await?;
    Ok(confirmation)
}

const STEPS: [&str; 4] = ["check_fraud", "prepare_shipment", "charge", "ship"];

#[tokio::test]
async fn an_instance_exported_at_each_await_finishes_in_another_store() {
    for (k, held) in STEPS.iter().enumerate() {
        let order = format!("o{k}");
        let gate = Arc::new(tokio::sync::Notify::new());
        HOLD.lock()
            .unwrap()
            .insert(format!("{order}/{held}"), gate.clone());
        let a = FROM.store();
        let rt = Runtime::builder()
            .workflow::<process_order>()
            .open_url(a.url())
            .await
            .unwrap();
        rt.start(
            order.clone(),
            process_order(order.clone()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
        until("the held step", || runs(&order).len() == k + 1).await;
        let file = rt.export(&order).unwrap().to_bytes().unwrap();
        rt.shutdown().await;
        HOLD.lock().unwrap().remove(&format!("{order}/{held}"));

        let b = TO.store();
        let rt = Runtime::builder()
            .workflow::<process_order>()
            .open_url(b.url())
            .await
            .unwrap();
        let snapshot = Snapshot::from_bytes(&file).unwrap();
        assert_eq!(
            (snapshot.workflow.as_str(), snapshot.id.as_str()),
            ("process_order", order.as_str())
        );
        rt.import(&snapshot, false).await.unwrap();
        let out = rt
            .handle::<process_order>(&order)
            .result()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, format!("shipped {order} (ch-{order})"));
        // the held step ran again in store B (it never completed in A); the earlier ones did not
        let ran: Vec<String> = runs(&order);
        let expected: Vec<String> = STEPS[..k]
            .iter()
            .chain(STEPS[k..].iter().take(1))
            .chain(STEPS[k..].iter())
            .map(|s| format!("{order} {s}"))
            .collect();
        assert_eq!(ran, expected, "step {k}");
        // importing again is refused unless replacing
        assert!(matches!(
            rt.import(&snapshot, false).await,
            Err(SnapshotError::AlreadyExists { .. })
        ));
        let history = rt.handle::<process_order>(&order).history().unwrap();
        assert!(
            history.len() >= 6,
            "the history came along and went on: {history:?}"
        );
        rt.shutdown().await;
        let _ = gate;
    }
}

/// The keys the runs of `<order> <activity>` were given, in order.
fn keys_of(order: &str, activity: &str) -> Vec<String> {
    let run = format!("{order} {activity}");
    KEYS.lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| *r == run)
        .map(|(_, k)| k.clone())
        .collect()
}

/// Starts `order` on a runtime of `store` whose `held` activity waits (on
/// the gate returned) until the test lets it go.
async fn run_held_at(
    store: &durable_runtime::testing::backends::TestStore,
    order: &str,
    held: &str,
) -> (Runtime, Arc<tokio::sync::Notify>) {
    let gate = Arc::new(tokio::sync::Notify::new());
    HOLD.lock()
        .unwrap()
        .insert(format!("{order}/{held}"), gate.clone());
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open_url(store.url())
        .await
        .unwrap();
    rt.start(order, process_order(order.to_owned()), IdPolicy::Reject)
        .await
        .unwrap();
    (rt, gate)
}

/// An instance replaced by the import of another run of its id (another
/// incarnation: the same id started elsewhere) gives its calls that run's
/// idempotency keys, never the replaced run's: an external service must
/// not drop the new run's charge as a duplicate of the old one. (An import
/// of the same run keeps its keys: it is the same execution, moved.)
#[tokio::test]
async fn an_instance_replaced_by_another_runs_snapshot_never_repeats_its_keys() {
    let order = "replaced".to_owned();
    // the run that will be replaced: it charged, then waits in `ship`
    let b = TO.store();
    let (rt_b, gate) = run_held_at(&b, &order, "ship").await;
    until("the first run waits in ship", || runs(&order).len() == 4).await;
    // another run of the id, elsewhere, exported before its charge
    let a = FROM.store();
    let (rt_a, _charging) = run_held_at(&a, &order, "charge").await;
    until("the other run waits in charge", || runs(&order).len() == 7).await;
    let snapshot = rt_a.export(&order).unwrap();
    rt_a.shutdown().await;
    HOLD.lock().unwrap().remove(&format!("{order}/charge"));
    HOLD.lock().unwrap().remove(&format!("{order}/ship"));
    // replaced in B while the first run's `ship` attempt is still held
    rt_b.terminate(&order, "replaced by the other run")
        .await
        .unwrap();
    until("the first run ended", || {
        rt_b.describe(&order)
            .is_ok_and(|d| d.status == durable_runtime::Status::Terminated)
    })
    .await;
    rt_b.import(&snapshot, true).await.unwrap();
    let out = rt_b
        .handle::<process_order>(&order)
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, format!("shipped {order} (ch-{order})"));
    let charges = keys_of(&order, "charge");
    assert_eq!(
        charges.len(),
        3,
        "charged by the first run, then twice by the other (held, then run again in B): {charges:?}"
    );
    assert_ne!(
        charges[0], charges[2],
        "the replacing run reused the replaced run's charge key"
    );
    assert_eq!(charges[1], charges[2], "the moved run keeps its own key");
    gate.notify_waiters();
    rt_b.shutdown().await;
}

#[tokio::test]
async fn bad_snapshots_are_refused_and_change_nothing() {
    let a = FROM.store();
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open_url(a.url())
        .await
        .unwrap();
    rt.start("good", process_order("good".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    let file = rt.export("good").unwrap().to_bytes().unwrap();
    assert!(matches!(
        rt.export("missing"),
        Err(SnapshotError::NotFound { .. })
    ));
    rt.shutdown().await;

    let b = TO.store();
    let rt = Runtime::builder().open_url(b.url()).await.unwrap();
    // a store without the workflow registered refuses it
    let snapshot = Snapshot::from_bytes(&file).unwrap();
    assert!(matches!(
        rt.import(&snapshot, false).await,
        Err(SnapshotError::UnknownWorkflow { .. })
    ));
    // damaged files never decode
    assert!(matches!(
        Snapshot::from_bytes(&file[..file.len() / 2]),
        Err(SnapshotError::Truncated(_))
    ));
    let mut flipped = file.clone();
    let mid = file.len() / 2;
    flipped[mid] ^= 1;
    assert!(matches!(
        Snapshot::from_bytes(&flipped),
        Err(SnapshotError::Corrupt { .. })
    ));
    // a changed fingerprint is refused
    let mut other = snapshot.clone();
    other.fingerprint ^= 1;
    rt.shutdown().await;
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open_url(b.url())
        .await
        .unwrap();
    assert!(matches!(
        rt.import(&other, false).await,
        Err(SnapshotError::ShapeMismatch { .. })
    ));
    assert!(
        rt.list(&durable_runtime::ListFilter::default())
            .unwrap()
            .is_empty(),
        "nothing was written"
    );
    rt.import(&snapshot, false).await.unwrap();
    assert_eq!(
        rt.handle::<process_order>("good")
            .result()
            .await
            .unwrap()
            .unwrap(),
        "shipped good (ch-good)"
    );
}

#[workflow]
async fn holds_a_note(note: String) -> Result<String, WorkflowError> {
    let _go: () = signal("go").await?;
    Ok(note)
}

/// An import is held to the importing runtime's limits, as a start and a
/// checkpoint are: an id or a state over them is refused with an error
/// naming the limit, and nothing is written. Before, an import wrote any
/// id and any state a snapshot held.
#[tokio::test]
async fn an_import_over_the_limits_is_refused_naming_the_limit() {
    let a = FROM.store();
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .workflow::<holds_a_note>()
        .open_url(a.url())
        .await
        .unwrap();
    let long_id = "o".repeat(200);
    rt.start(&long_id, process_order("long".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    // waiting for its signal, its state holds the note
    rt.start("noted", holds_a_note("n".repeat(1_000)), IdPolicy::Reject)
        .await
        .unwrap();
    until("`noted` waits for its signal", || {
        rt.describe("noted")
            .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
    })
    .await;
    let (long, noted) = (rt.export(&long_id).unwrap(), rt.export("noted").unwrap());
    rt.shutdown().await;

    let b = TO.store();
    let mut short_ids = durable_runtime::Limits::default();
    short_ids.id_bytes = 100;
    let mut small_states = durable_runtime::Limits::default();
    small_states.state_bytes = 500;
    for (limits, snapshot, what, setting) in [
        (short_ids, &long, "instance id", "id_bytes"),
        (small_states, &noted, "state", "state_bytes"),
    ] {
        let rt = Runtime::builder()
            .workflow::<process_order>()
            .workflow::<holds_a_note>()
            .limits(limits)
            .open_url(b.url())
            .await
            .unwrap();
        match rt.import(snapshot, false).await {
            Err(e @ SnapshotError::TooLarge { .. }) => {
                let SnapshotError::TooLarge {
                    what: w,
                    setting: s,
                    ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((*w, *s), (what, setting));
                assert!(e.to_string().contains(setting), "{e}");
            }
            other => panic!("expected TooLarge ({what}), got {other:?}"),
        }
        assert!(
            rt.list(&durable_runtime::ListFilter::default())
                .unwrap()
                .is_empty(),
            "nothing was imported"
        );
        rt.shutdown().await;
    }
}
