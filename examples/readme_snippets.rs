//! The README's code, line for line, in a program that runs and ends by
//! itself: `cargo run --example readme_snippets`. The test target
//! `readme_snippets_match` checks that every line of every Rust block of
//! the README appears here in the same order, so the README cannot show
//! code that no longer compiles.
//!
//! What the README leaves out (the order types, the other activities, a
//! fake payment provider) is defined around the README's lines.

use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};

use durable_runtime::Schedule;
use serde::{Deserialize, Serialize};

// ---- README: the quick start ----
use durable_runtime::prelude::*;

#[activity(max_attempts = 10, initial_interval_ms = 10)]
async fn charge(
    order_id: String,
    payment_info: PaymentInfo,
) -> Result<ChargeConfirmation, ActivityError> {
    let payments = dependency::<PaymentClient>()?; // given to the runtime below
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    payments.charge(&order_id, &payment_info, &key).await // the provider deduplicates by key
}

#[workflow]
async fn process_order(order: Order) -> Result<ShipmentConfirmation, WorkflowError> {
    check_fraud(order.order_id.clone(), order.payment_info.clone()).await?;
    prepare_shipment(order.clone()).await?;
    let charge_confirm = charge(order.order_id.clone(), order.payment_info.clone()).await?;
    let shipment_confirmation = ship(order, charge_confirm).await?;
    Ok(shipment_confirmation)
}

// ---- what the quick start leaves out ----

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PaymentInfo {
    card: String,
    cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: String,
    payment_info: PaymentInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChargeConfirmation {
    charge_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShipmentConfirmation {
    tracking: String,
}

/// A payment provider that deduplicates charges by idempotency key (here:
/// counts the charges it took).
struct PaymentClient {
    api_key: String,
    charges: AtomicU32,
}

impl PaymentClient {
    fn new(api_key: String) -> Self {
        PaymentClient {
            api_key,
            charges: AtomicU32::new(0),
        }
    }

    async fn charge(
        &self,
        order_id: &str,
        payment: &PaymentInfo,
        key: &str,
    ) -> Result<ChargeConfirmation, ActivityError> {
        if self.api_key.is_empty() {
            return Err(ActivityError::terminal("no API key").with_kind("config"));
        }
        self.charges.fetch_add(1, Ordering::SeqCst);
        Ok(ChargeConfirmation {
            charge_id: format!("ch-{order_id}-{}-{}", payment.cents, key.len()),
        })
    }
}

#[activity]
async fn check_fraud(order_id: String, payment_info: PaymentInfo) -> Result<(), ActivityError> {
    if payment_info.card.is_empty() {
        return Err(ActivityError::terminal(format!("{order_id}: no card")));
    }
    Ok(())
}

#[activity]
async fn prepare_shipment(order: Order) -> Result<(), ActivityError> {
    let _ = order;
    Ok(())
}

#[activity]
async fn ship(
    order: Order,
    charge: ChargeConfirmation,
) -> Result<ShipmentConfirmation, ActivityError> {
    Ok(ShipmentConfirmation {
        tracking: format!("trk-{}-{}", order.order_id, charge.charge_id),
    })
}

// ---- README: select over a signal and a timer ----
use durable_runtime::command::Either;
use std::time::Duration;

#[workflow]
async fn approval(request: String) -> Result<String, WorkflowError> {
    match select(
        signal::<String>("approve"),
        sleep(Duration::from_secs(3 * 86_400)),
    )
    .await
    {
        Either::Left(by) => Ok(format!("{request} approved by {}", by?)),
        Either::Right(_) => Ok(format!("{request} expired")),
    }
}

// ---- README: a helper ----
#[helper]
async fn pay(order: Order) -> Result<ChargeConfirmation, WorkflowError> {
    check_fraud(order.order_id.clone(), order.payment_info.clone()).await?;
    Ok(charge(order.order_id, order.payment_info).await?)
}

#[workflow]
async fn express_order(order: Order) -> Result<ShipmentConfirmation, WorkflowError> {
    let charge_confirm = pay(order.clone()).await?;
    Ok(ship(order, charge_confirm).await?)
}

// ---- for the README's schedule ----
#[workflow]
async fn nightly_report(region: String) -> Result<String, WorkflowError> {
    Ok(format!("report for {region}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // the README opens "orders-db" where it runs: here, in a fresh directory
    let dir = tempfile::tempdir()?;
    std::env::set_current_dir(dir.path())?;
    let api_key = "sk_test_readme".to_owned();
    let token = "readme-token".to_owned();
    let order = Order {
        order_id: "order-1".into(),
        payment_info: PaymentInfo {
            card: "4242".into(),
            cents: 4_200,
        },
    };

    let express = order.clone();

    // ---- README: the quick start ----
    let runtime = Runtime::builder()
        .workflow::<process_order>()
        .workflow::<approval>()
        .workflow::<nightly_report>()
        .workflow::<express_order>()
        .dependency(PaymentClient::new(api_key)) // a test gives a fake instead
        .open("orders-db")
        .await?;
    let handle = runtime
        .start("order-1", process_order(order), IdPolicy::UseExisting)
        .await?;
    let confirmation = handle.result().await??;
    println!("order-1 shipped: {}", confirmation.tracking);

    // ---- README: a signal, or three days ----
    let expense = runtime
        .start("expense-7", approval("expense-7".into()), IdPolicy::Reject)
        .await?;
    runtime.signal("expense-7", "approve", &"dana").await?; // or let three days pass
    println!("{}", expense.result().await??);

    // ---- README: a helper ----
    let shipped = runtime
        .start("order-2", express_order(express), IdPolicy::Reject)
        .await?
        .result()
        .await??;
    println!("order-2 shipped: {}", shipped.tracking);

    // ---- README: the HTTP API and web UI ----
    // a taken port or a refused address is an error here, not in a spawned task
    let server =
        durable_runtime::http::bind(runtime.clone(), "127.0.0.1:7233", Some(token)).await?;
    tokio::spawn(server.run());

    // ---- README: schedules ----
    let nightly = Schedule::cron("0 2 * * *")?.time_zone("Europe/Berlin")?;
    runtime
        .schedules()
        .create("nightly", nightly, nightly_report("emea".into()))
        .await?;
    println!(
        "schedule nightly: {}",
        runtime.schedules().describe("nightly")?.spec
    );

    runtime.shutdown().await;
    Ok(())
}
