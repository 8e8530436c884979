// Included by `engine_versions.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// Versions of one workflow name: side by side across restarts, starts by
// name on the newest, typed migrations on open and on import, parking when
// a migration is missing, the upgrade policy's record in history, and the
// CI check over snapshot files.

use common::{Within, until};

use durable_runtime::check::check_snapshots;
use durable_runtime::clock::TestClock;
use durable_runtime::history::EventKind;
use durable_runtime::migration::{Migrated, Migration};
use durable_runtime::prelude::*;
use durable_runtime::snapshot::{Snapshot, SnapshotError, SnapshotSet};
use durable_runtime::{Compatibility, ListFilter, OpenError, ResumeError, Status};

#[activity]
async fn receipt(id: String, cents: u64) -> Result<String, ActivityError> {
    Ok(format!("receipt {id} {cents}"))
}

// v1: paid, then shipped; each waits for a signal
#[workflow(name = "order")]
async fn order_v1(id: String) -> Result<String, WorkflowError> {
    let cents: u64 = signal("pay").await?;
    let note: String = signal("ship").await?;
    Ok(format!("v1 {id} {cents} {note}"))
}

// v2: a receipt step between paying and shipping, kept until the end
#[workflow(name = "order", version = 2)]
async fn order_v2(id: String) -> Result<String, WorkflowError> {
    let cents: u64 = signal("pay").await?;
    let slip: String = receipt(id.clone(), cents).await?;
    let note: String = signal("ship").await?;
    Ok(format!("v2 {id} {cents} {note} [{slip}]"))
}

// same name and version as v1, another shape: a registration mistake
#[workflow(name = "order")]
async fn order_v1_again(id: String) -> Result<String, WorkflowError> {
    let note: String = signal("ship").await?;
    Ok(format!("{id} {note}"))
}

/// v1 at `Signal2` (shipping) holds `(cents, id)` (fields in name order);
/// v2 also keeps the receipt, as `slip`.
fn shipping_v1_to_v2((cents, id): (u64, String)) -> Migrated<order_v2> {
    order_v2::Signal2.state((cents, id, "no receipt (v1)".to_owned()))
}

fn migration() -> Migration<order_v1, order_v2> {
    Migration::new().variant(order_v1::Signal2, shipping_v1_to_v2)
}

/// Starts `id` on v1 and waits until it waits at `variant` (signals sent on the way).
async fn v1_waiting_at(url: &str, id: &str, variant: &str) {
    let rt = Runtime::builder()
        .workflow::<order_v1>()
        .open_url(url)
        .await
        .unwrap();
    let h = rt
        .start(id, order_v1(id.into()), IdPolicy::Reject)
        .await
        .unwrap();
    if variant == "Signal2" {
        rt.signal(id, "pay", &250u64).await.unwrap();
    }
    until(variant, || h.describe().unwrap().variant == variant).await;
    rt.shutdown().await;
}

fn events(rt: &Runtime, id: &str) -> Vec<EventKind> {
    rt.history(id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn versions_side_by_side_across_a_restart_and_starts_by_name_use_the_newest() {
    let dir = BACKEND.store();
    v1_waiting_at(dir.url(), "old", "Signal2").await;

    // registered newest first: the version number, not the order, decides
    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .workflow::<order_v1>()
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    assert_eq!(rt.describe("old").unwrap().version, 1);
    let new = rt
        .start_by_name("new", "order", serde_json::json!("new"), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(new.version, 2, "a start by name runs the newest version");
    assert_eq!(
        rt.list(&ListFilter::default())
            .unwrap()
            .iter()
            .map(|d| (d.id.as_str(), d.version))
            .collect::<Vec<_>>(),
        [("new", 2), ("old", 1)]
    );
    assert!(matches!(
        rt.start_by_name("x", "order", serde_json::json!(7), IdPolicy::Reject)
            .await,
        Err(durable_runtime::StartError::BadInput { .. })
    ));
    assert!(matches!(
        rt.start_by_name("x", "nope", serde_json::json!("x"), IdPolicy::Reject)
            .await,
        Err(durable_runtime::StartError::UnknownWorkflow { .. })
    ));
    rt.signal("old", "ship", &"fast".to_string()).await.unwrap();
    rt.signal("new", "pay", &3u64).await.unwrap();
    rt.signal("new", "ship", &"slow".to_string()).await.unwrap();
    assert_eq!(
        rt.handle::<order_v1>("old")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v1 old 250 fast"
    );
    assert_eq!(
        rt.handle::<order_v2>("new")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v2 new 3 slow [receipt new 3]"
    );
}

#[tokio::test]
async fn one_version_registered_with_two_shapes_fails_to_open() {
    let dir = BACKEND.store();
    let err = Runtime::builder()
        .workflow::<order_v1>()
        .workflow::<order_v1_again>()
        .open_url(dir.url())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenError::DuplicateVersion { workflow, version: 1, .. } if workflow == "order"),
        "{err}"
    );
    assert!(err.to_string().contains("[DURABLE-VERSION]"), "{err}");
}

#[workflow(name = "other")]
async fn other_workflow(id: String) -> Result<String, WorkflowError> {
    let note: String = signal("ship").await?;
    Ok(format!("{id} {note}"))
}

#[tokio::test]
async fn a_migration_between_two_workflow_names_fails_to_open() {
    let dir = BACKEND.store();
    let err = Runtime::builder()
        .workflow::<order_v2>()
        .migration(Migration::<other_workflow, order_v2>::new())
        .open_url(dir.url())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenError::MigrationAcrossWorkflows { from, to } if from == "other" && to == "order"),
        "{err}"
    );
}

#[tokio::test]
async fn a_migration_moves_an_instance_on_open_and_is_in_its_history() {
    let dir = BACKEND.store();
    v1_waiting_at(dir.url(), "m-ship", "Signal2").await;
    v1_waiting_at(dir.url(), "m-pay", "Signal").await;

    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .migration(migration())
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    for id in ["m-ship", "m-pay"] {
        let d = rt.describe(id).unwrap();
        assert_eq!((d.version, d.status), (2, Status::Running), "{id}");
        assert!(
            events(&rt, id)
                .iter()
                .any(|e| matches!(e, EventKind::Migrated { from: 1, to: 2, .. })),
            "{id}: {:?}",
            events(&rt, id)
        );
    }
    // `Signal2` went through the function; `Signal` was carried over as is
    rt.signal("m-ship", "ship", &"now".to_string())
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<order_v2>("m-ship")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v2 m-ship 250 now [no receipt (v1)]"
    );
    rt.signal("m-pay", "pay", &9u64).await.unwrap();
    rt.signal("m-pay", "ship", &"later".to_string())
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<order_v2>("m-pay")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v2 m-pay 9 later [receipt m-pay 9]"
    );
}

#[tokio::test]
async fn a_missing_migration_parks_and_registering_it_unparks_on_the_next_open() {
    let dir = BACKEND.store();
    v1_waiting_at(dir.url(), "late", "Signal2").await;

    // a migration without a function for `Signal2`, whose shape changed
    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .migration(Migration::<order_v1, order_v2>::new())
        .open_url(dir.url())
        .await
        .unwrap();
    let d = rt.describe("late").unwrap();
    assert_eq!((d.status, d.version), (Status::Parked, 1));
    assert!(
        d.error
            .as_deref()
            .unwrap_or("")
            .contains("[DURABLE-MIGRATION]"),
        "{d:?}"
    );
    assert!(matches!(
        rt.parked().as_slice(),
        [ResumeError::MigrationMissing { variant, .. }] if variant == "Signal2"
    ));
    assert!(
        events(&rt, "late")
            .iter()
            .any(|e| matches!(e, EventKind::Parked { .. }))
    );
    rt.shutdown().await;

    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .migration(migration())
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    assert_eq!(rt.describe("late").unwrap().version, 2);
    rt.signal("late", "ship", &"done".to_string())
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<order_v2>("late")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v2 late 250 done [no receipt (v1)]"
    );
}

#[tokio::test]
async fn a_migration_to_a_variant_awaiting_another_command_parks_instead_of_misfeeding() {
    let dir = BACKEND.store();
    v1_waiting_at(dir.url(), "wrong", "Signal2").await;
    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .migration(Migration::<order_v1, order_v2>::new().variant(
            order_v1::Signal2,
            |(cents, id)| {
                // `Receipt` awaits the receipt activity, not the ship signal
                order_v2::Receipt.state((cents, id))
            },
        ))
        .open_url(dir.url())
        .await
        .unwrap();
    let d = rt.describe("wrong").unwrap();
    assert_eq!(
        (d.status, d.version, d.variant.as_str()),
        (Status::Parked, 1, "Signal2")
    );
    assert!(
        matches!(rt.parked().as_slice(), [ResumeError::Migration { reason, .. }] if reason.contains("keeps the command")),
        "{:?}",
        rt.parked()
    );
}

#[tokio::test]
async fn pinning_and_parking_are_recorded_in_the_history() {
    let dir = BACKEND.store();
    v1_waiting_at(dir.url(), "pin", "Signal").await;
    // v2 has `Signal` with the same shape, but upgrades were not allowed
    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(matches!(
        rt.parked().as_slice(),
        [ResumeError::Pinned {
            compatible: 2,
            version: 1,
            ..
        }]
    ));
    assert!(
        events(&rt, "pin")
            .iter()
            .any(|e| matches!(e, EventKind::Parked { reason } if reason.contains("pinned"))),
        "{:?}",
        events(&rt, "pin")
    );
    rt.shutdown().await;
    let rt = Runtime::builder()
        .workflow_upgrading::<order_v2>()
        .open_url(dir.url())
        .await
        .unwrap();
    assert_eq!(rt.describe("pin").unwrap().version, 2);
    assert!(
        events(&rt, "pin")
            .iter()
            .any(|e| matches!(e, EventKind::Upgraded { variant, .. } if variant == "Signal"))
    );
}

#[tokio::test]
async fn importing_an_old_version_migrates_it_in_the_same_write() {
    let a = BACKEND.store();
    v1_waiting_at(a.url(), "moved", "Signal2").await;
    let rt = Runtime::builder()
        .workflow::<order_v1>()
        .resume_on_open(false)
        .open_url(a.url())
        .await
        .unwrap();
    let set = rt.export_set(&ListFilter::default()).unwrap();
    // written one instance at a time (`durable export --all`): the same set
    let mut streamed = std::io::Cursor::new(Vec::new());
    let mut progress = Vec::new();
    let ids = rt
        .export_set_to(&ListFilter::default(), &mut streamed, |done, total| {
            progress.push((done, total))
        })
        .unwrap();
    assert_eq!((ids, progress), (vec!["moved".to_owned()], vec![(1, 1)]));
    // the same but for when each was taken
    let untimed = |snapshots: Vec<Snapshot>| {
        snapshots
            .into_iter()
            .map(|mut s| {
                s.created_ms = 0;
                s
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        untimed(
            SnapshotSet::from_bytes(streamed.get_ref())
                .unwrap()
                .snapshots
        ),
        untimed(set.snapshots.clone())
    );
    rt.shutdown().await;

    let b = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .open_url(b.url())
        .await
        .unwrap();
    assert!(
        matches!(
            rt.import_set(&set, false).await,
            Err(SnapshotError::ShapeMismatch { .. })
        ),
        "without the migration the v1 state is refused"
    );
    assert!(rt.list(&ListFilter::default()).unwrap().is_empty());
    rt.shutdown().await;

    let rt = Runtime::builder()
        .workflow::<order_v2>()
        .migration(migration())
        .open_url(b.url())
        .await
        .unwrap();
    assert_eq!(rt.import_set(&set, false).await.unwrap(), 1);
    assert_eq!(rt.describe("moved").unwrap().version, 2);
    assert!(
        events(&rt, "moved")
            .iter()
            .any(|e| matches!(e, EventKind::Migrated { .. }))
    );
    rt.signal("moved", "ship", &"there".to_string())
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<order_v2>("moved")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v2 moved 250 there [no receipt (v1)]"
    );
}

#[tokio::test]
async fn the_ci_check_says_which_snapshots_resume_migrate_or_would_park() {
    let store = BACKEND.store();
    v1_waiting_at(store.url(), "at-pay", "Signal").await;
    v1_waiting_at(store.url(), "at-ship", "Signal2").await;
    let rt = Runtime::builder()
        .workflow::<order_v1>()
        .resume_on_open(false)
        .open_url(store.url())
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("all.snap"),
        rt.export_set(&ListFilter::default())
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    rt.shutdown().await;

    let verdicts = |r: &durable_runtime::check::CheckReport| {
        r.entries
            .iter()
            .map(|e| (e.id.clone(), e.verdict.clone()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let same = check_snapshots(Runtime::builder().workflow::<order_v1>(), files.path())
        .await
        .unwrap();
    assert!(same.would_park().is_empty(), "{same}");
    assert_eq!(verdicts(&same)["at-ship"], Compatibility::Resumes);

    let only_v2 = check_snapshots(Runtime::builder().workflow::<order_v2>(), files.path())
        .await
        .unwrap();
    assert_eq!(only_v2.would_park().len(), 2, "{only_v2}");

    let migrating = check_snapshots(
        Runtime::builder()
            .workflow::<order_v2>()
            .migration(migration()),
        files.path(),
    )
    .await
    .unwrap();
    assert!(migrating.would_park().is_empty(), "{migrating}");
    assert_eq!(
        verdicts(&migrating)["at-ship"],
        Compatibility::Migrates { from: 1, to: 2 }
    );

    // the code-free check agrees, from the manifest alone
    let manifest = Runtime::builder()
        .workflow::<order_v2>()
        .migration(Migration::<order_v1, order_v2>::new())
        .manifest();
    let set =
        SnapshotSet::from_bytes(&std::fs::read(files.path().join("all.snap")).unwrap()).unwrap();
    let by_manifest: std::collections::HashMap<String, Compatibility> = set
        .snapshots
        .iter()
        .map(|s| (s.id.clone(), manifest.check_snapshot(s).unwrap()))
        .collect();
    assert_eq!(
        by_manifest["at-pay"],
        Compatibility::Migrates { from: 1, to: 2 }
    );
    assert!(
        matches!(
            by_manifest["at-ship"],
            Compatibility::Parked(ResumeError::MigrationMissing { .. })
        ),
        "{by_manifest:?}"
    );

    // a damaged file fails the check instead of passing it
    std::fs::write(files.path().join("bad.snap"), b"DURABLE-SNAPSHOT\x02\x00").unwrap();
    assert!(
        check_snapshots(Runtime::builder().workflow::<order_v1>(), files.path())
            .await
            .is_err()
    );
}

// v1's shape with another body, released as version 3
#[workflow(name = "order", version = 3)]
async fn order_v3_same_shape(id: String) -> Result<String, WorkflowError> {
    let cents: u64 = signal("pay").await?;
    let note: String = signal("ship").await?;
    Ok(format!("v3 {id} {cents} {note}"))
}

#[tokio::test]
async fn a_new_version_with_the_same_shape_takes_over_and_records_it() {
    let dir = BACKEND.store();
    v1_waiting_at(dir.url(), "same", "Signal2").await;
    // both checks foresee it, with and without the code
    let v3 = <order_v3_same_shape as durable_runtime::Workflow>::FINGERPRINT;
    let rt = Runtime::builder()
        .workflow::<order_v3_same_shape>()
        .resume_on_open(false)
        .open_url(dir.url())
        .await
        .unwrap();
    assert_eq!(
        rt.check_compatibility().unwrap(),
        [("same".to_owned(), Compatibility::Upgrades { to: v3 })]
    );
    assert_eq!(
        Runtime::builder()
            .workflow::<order_v3_same_shape>()
            .manifest()
            .check_store(&rt)
            .unwrap(),
        [("same".to_owned(), Compatibility::Upgrades { to: v3 })]
    );
    rt.shutdown().await;
    let rt = Runtime::builder()
        .workflow::<order_v3_same_shape>()
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    assert_eq!(rt.describe("same").unwrap().version, 3);
    assert!(
        events(&rt, "same")
            .iter()
            .any(|e| matches!(e, EventKind::Upgraded { from, to, .. } if from == to))
    );
    assert!(matches!(
        events(&rt, "same").first(),
        Some(EventKind::Started { version: 1, .. })
    ));
    rt.signal("same", "ship", &"on".to_string()).await.unwrap();
    assert_eq!(
        rt.handle::<order_v3_same_shape>("same")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v3 same 250 on"
    );
}

// a nap: v1 holds the id across a day's sleep; v2 holds a count too (another shape)
#[workflow(name = "nap")]
async fn nap_v1(id: String) -> Result<String, WorkflowError> {
    sleep(std::time::Duration::from_secs(86_400)).await?;
    Ok(format!("v1 {id}"))
}

#[workflow(name = "nap", version = 2)]
async fn nap_v2(id: String) -> Result<String, WorkflowError> {
    let count: u64 = id.len() as u64;
    sleep(std::time::Duration::from_secs(86_400)).await?;
    Ok(format!("v2 {id} {count}"))
}

/// v2 at `Sleep` holds `(count, id)` (fields in name order).
fn nap_v1_to_v2((id,): (String,)) -> Migrated<nap_v2> {
    nap_v2::Sleep.state((7, id))
}

/// Puts `ids` to sleep on v1 under `clock` and closes the store.
async fn v1_asleep(url: &str, clock: &std::sync::Arc<TestClock>, ids: &[&str]) {
    let rt = Runtime::builder()
        .workflow::<nap_v1>()
        .clock(clock.clone())
        .open_url(url)
        .await
        .unwrap();
    for id in ids {
        rt.start(*id, nap_v1((*id).into()), IdPolicy::Reject)
            .await
            .unwrap();
    }
    until("asleep", || rt.running_instances() == 0).await;
    rt.shutdown().await;
}

#[tokio::test]
async fn a_sleeper_whose_shape_changed_while_down_is_parked_when_its_timer_fires() {
    let dir = BACKEND.store();
    let clock = std::sync::Arc::new(TestClock::new());
    v1_asleep(dir.url(), &clock, &["nap"]).await;

    // only v2, no migration: open does not read the sleeper
    let rt = Runtime::builder()
        .workflow::<nap_v2>()
        .clock(clock.clone())
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    assert_eq!(rt.resumed_on_open(), 0);
    let d = rt.describe("nap").unwrap();
    assert_eq!((d.status, d.version), (Status::Running, 1));
    // due: loaded, checked, parked; never run with v2's state
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    assert!(matches!(
        rt.handle::<nap_v2>("nap").result().within().await,
        Err(durable_runtime::ResultError::Parked { .. })
    ));
    assert!(
        matches!(rt.parked().as_slice(), [ResumeError::ShapeMismatch { instance, .. }] if instance == "nap"),
        "{:?}",
        rt.parked()
    );
    let d = rt.describe("nap").unwrap();
    assert_eq!(
        (d.status, d.version, d.variant.as_str()),
        (Status::Parked, 1, "Sleep")
    );
    let history = events(&rt, "nap");
    assert!(
        matches!(history.last(), Some(EventKind::Parked { reason }) if reason.contains("[DURABLE-SHAPE]")),
        "{history:?}"
    );
    assert!(
        !history
            .iter()
            .any(|e| matches!(e, EventKind::TimerFired { .. })),
        "{history:?}"
    );
    rt.shutdown().await;

    // v1 deployed again: open reads the parked one, and its due timer fires
    let rt = Runtime::builder()
        .workflow::<nap_v1>()
        .clock(clock.clone())
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    assert_eq!(
        rt.handle::<nap_v1>("nap")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v1 nap"
    );
}

#[tokio::test]
async fn a_sleeper_is_migrated_when_its_timer_fires_or_a_cancel_wakes_it() {
    let dir = BACKEND.store();
    let clock = std::sync::Arc::new(TestClock::new());
    v1_asleep(dir.url(), &clock, &["fired", "cancelled"]).await;

    let rt = Runtime::builder()
        .workflow::<nap_v2>()
        .migration(Migration::<nap_v1, nap_v2>::new().variant(nap_v1::Sleep, nap_v1_to_v2))
        .clock(clock.clone())
        .open_url(dir.url())
        .await
        .unwrap();
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
    assert_eq!(rt.describe("fired").unwrap().version, 1, "not read on open");

    // a cancel wakes one: migrated first, then cancelled on v2
    rt.cancel("cancelled").await.unwrap();
    let out = rt.handle::<nap_v2>("cancelled").result().within().await;
    assert!(
        matches!(out, Ok(Err(ref e)) if e.to_string().contains("cancel")),
        "{out:?}"
    );
    let d = rt.describe("cancelled").unwrap();
    assert_eq!((d.status, d.version), (Status::Cancelled, 2));

    // the other's timer fires: migrated in one write with its event, then run on v2
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(
        rt.handle::<nap_v2>("fired")
            .result()
            .within()
            .await
            .unwrap()
            .unwrap(),
        "v2 fired 7"
    );
    for id in ["fired", "cancelled"] {
        let history = events(&rt, id);
        let migrated = history
            .iter()
            .position(|e| matches!(e, EventKind::Migrated { from: 1, to: 2, .. }));
        let woke = history.iter().position(|e| {
            matches!(
                e,
                EventKind::TimerFired { .. } | EventKind::CancelDelivered { .. }
            )
        });
        assert!(
            matches!((migrated, woke), (Some(m), Some(w)) if m < w),
            "{id}: {history:?}"
        );
    }
    assert!(rt.parked().is_empty(), "{:?}", rt.parked());
}

/// A helper that waits for the payment.
#[helper]
async fn await_payment(id: String) -> Result<u64, WorkflowError> {
    let cents: u64 = signal("pay").await?;
    Ok(cents + id.len() as u64)
}

#[workflow(name = "helped_order")]
async fn helped_order_v1(id: String) -> Result<String, WorkflowError> {
    let cents: u64 = await_payment(id.clone()).await?;
    Ok(format!("v1 {id} {cents}"))
}

#[workflow(name = "helped_order", version = 2)]
async fn helped_order_v2(id: String) -> Result<String, WorkflowError> {
    let cents: u64 = signal("pay").await?;
    Ok(format!("v2 {id} {cents}"))
}

/// A migration function gets the locals of the variant it migrates from;
/// an instance waiting inside a helper there also holds the helper's
/// state, which a migration cannot carry: it parks saying so, rather than
/// failing on the bytes that follow the locals.
#[tokio::test]
async fn a_migration_from_inside_a_helper_parks_saying_why() {
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<helped_order_v1>()
        .open_url(dir.url())
        .await
        .unwrap();
    rt.start(
        "in-helper",
        helped_order_v1("in-helper".into()),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    {
        let rt = &rt;
        until("waiting in the helper", move || {
            rt.describe("in-helper")
                .unwrap()
                .waiting_for
                .is_some_and(|w| w.starts_with("signal"))
        })
        .await;
    }
    rt.shutdown().await;

    let rt = Runtime::builder()
        .workflow::<helped_order_v2>()
        .migration(
            Migration::<helped_order_v1, helped_order_v2>::new()
                .variant(helped_order_v1::AwaitPayment, |(id,): (String,)| {
                    helped_order_v2::Signal.state((id,))
                }),
        )
        .open_url(dir.url())
        .await
        .unwrap();
    let d = rt.describe("in-helper").unwrap();
    assert_eq!((d.status, d.version), (Status::Parked, 1), "{d:?}");
    let why = d.error.unwrap_or_default();
    assert!(
        why.contains("waits inside a #[helper] at `AwaitPayment`"),
        "{why}"
    );
    rt.shutdown().await;
}
