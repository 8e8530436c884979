//! Deploys a new version of `process_order` while orders are in flight: v1
//! adds nothing between `charge` and `ship`, v2 sends a receipt there and
//! returns its id. Three orders wait at different steps when the service
//! "restarts" with only v2 and a typed migration; the check says what would
//! happen first, then every order finishes on v2.
//!
//! ```text
//! cargo run --example deploy_new_version
//! ```

use durable_runtime::check::check_snapshots;
use durable_runtime::migration::{Migrated, Migration};
use durable_runtime::prelude::*;
use durable_runtime::{Compatibility, ListFilter};

#[activity]
async fn charge(order: String) -> Result<String, ActivityError> {
    println!("  charge({order})");
    Ok(format!("ch-{order}"))
}

#[activity]
async fn send_receipt(order: String, charge_id: String) -> Result<String, ActivityError> {
    println!("  send_receipt({order}, {charge_id})");
    Ok(format!("rc-{order}"))
}

#[activity]
async fn ship(order: String, charge_id: String) -> Result<String, ActivityError> {
    println!("  ship({order}, {charge_id})");
    Ok(format!("shipped {order}"))
}

#[workflow(name = "process_order")]
async fn process_order_v1(order: String) -> Result<String, WorkflowError> {
    // a human approves the order first (waits for a signal)
    let approver: String = signal("approved").await?;
    // declared, not inferred: a migration can then name the variant holding it
    let charge_id: String = charge(order.clone()).await?;
    // and picks a shipping slot (waits again)
    let slot: String = signal("slot").await?;
    let shipped = ship(order, charge_id).await?;
    Ok(format!("{shipped} in slot {slot} (approved by {approver})"))
}

#[workflow(name = "process_order", version = 2)]
async fn process_order_v2(order: String) -> Result<String, WorkflowError> {
    let approver: String = signal("approved").await?;
    let charge_id: String = charge(order.clone()).await?;
    let receipt: String = send_receipt(order.clone(), charge_id.clone()).await?; // new
    let slot: String = signal("slot").await?;
    let shipped = ship(order, charge_id).await?;
    Ok(format!(
        "{shipped} in slot {slot} (approved by {approver}, receipt {receipt})"
    ))
}

/// A v1 order waiting for its slot was charged before receipts existed.
fn slot_v1_to_v2(
    (approver, charge_id, order): (String, String, String),
) -> Migrated<process_order_v2> {
    process_order_v2::Signal2.state((approver, charge_id, order, "none (v1)".to_owned()))
}

fn migration() -> Migration<process_order_v1, process_order_v2> {
    Migration::new().variant(process_order_v1::Signal2, slot_v1_to_v2)
}

async fn wait_at(rt: &Runtime, id: &str, variant: &str) {
    while rt.describe(id).map(|d| d.variant).ok().as_deref() != Some(variant) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "A new version deployed while orders are in flight: the deploy check says what would happen to each waiting order, then every order finishes on v2 (a typed migration moves those at a changed step). It runs to the end by itself in a temporary store (`durable check --manifest` does the check on a real one)."
    );
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("orders");

    println!("v1 in production:");
    let rt = Runtime::builder()
        .workflow::<process_order_v1>()
        .open(&store)
        .await?;
    for id in ["o-1", "o-2"] {
        rt.start(id, process_order_v1(id.into()), IdPolicy::Reject)
            .await?;
    }
    rt.signal("o-2", "approved", &"ana").await?;
    wait_at(&rt, "o-1", "Signal").await;
    wait_at(&rt, "o-2", "Signal2").await;
    // snapshot everything for the pre-deploy check
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir(&snapshots)?;
    std::fs::write(
        snapshots.join("all.snap"),
        rt.export_set(&ListFilter::default())?.to_bytes()?,
    )?;
    rt.shutdown().await;

    println!("checking the v2 deploy:");
    let v2_only = check_snapshots(
        Runtime::builder().workflow::<process_order_v2>(),
        &snapshots,
    )
    .await?;
    println!(
        "  without a migration: {} would park",
        v2_only.would_park().len()
    );
    let report = check_snapshots(
        Runtime::builder()
            .workflow::<process_order_v2>()
            .migration(migration()),
        &snapshots,
    )
    .await?;
    for e in &report.entries {
        let verdict = match &e.verdict {
            Compatibility::Migrates { from, to } => format!("migrates v{from} -> v{to}"),
            other => format!("{other:?}"),
        };
        println!("  {}: {verdict}", e.id);
    }
    assert!(report.would_park().is_empty(), "{report}");

    println!("v2 deployed:");
    let rt = Runtime::builder()
        .workflow::<process_order_v2>()
        .migration(migration())
        .open(&store)
        .await?;
    rt.start_by_name("o-3", "process_order", "o-3".into(), IdPolicy::Reject)
        .await?;
    for id in ["o-1", "o-3"] {
        rt.signal(id, "approved", &"ben").await?;
    }
    for id in ["o-1", "o-2", "o-3"] {
        if id != "o-2" {
            wait_at(&rt, id, "Signal2").await;
        }
        rt.signal(id, "slot", &"9:00").await?;
    }
    for id in ["o-1", "o-2", "o-3"] {
        let out = rt.handle::<process_order_v2>(id).result().await??;
        let d = rt.describe(id)?;
        println!("  {id} (v{}): {out}", d.version);
    }
    let migrated = rt
        .history("o-2")?
        .into_iter()
        .filter(|e| matches!(e.kind, durable_runtime::history::EventKind::Migrated { .. }))
        .count();
    println!("o-2's history records {migrated} migration");
    rt.shutdown().await;
    Ok(())
}
