//! The seed's order-processing program, durable: kill it at any moment and
//! run it again, and it finishes what is left without repeating a
//! checkpointed step.
//!
//! ```text
//! cargo run --release --example order_processing -- --db /tmp/orders --orders 200
//! ```
//!
//! Each activity appends `<activity> <order_id> <attempt>` to
//! `DIR/effects.log`, with a small simulated latency and a failure rate
//! (`--failure-rate`, default 0.1) so retries show. Press Ctrl-C or
//! `kill -9` it mid-way, run the same command again: it resumes, and no
//! checkpointed activity appears twice in the log. Without `--db` it uses a
//! temporary directory.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PaymentInfo {
    card: String,
    cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: String,
    payment_info: PaymentInfo,
    items: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChargeConfirmation {
    charge_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShipmentConfirmation {
    tracking: String,
}

struct Settings {
    effects: PathBuf,
    failure_rate: f64,
    latency: Duration,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The side effect every activity has: a line in the effects log, after a
/// little latency, failing now and then like a real service.
async fn effect(activity: &str, order_id: &str) -> Result<(), ActivityError> {
    let s = SETTINGS
        .get()
        .ok_or_else(|| ActivityError::terminal("settings not set"))?;
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    tokio::time::sleep(s.latency).await;
    if rand::random::<f64>() < s.failure_rate {
        return Err(ActivityError::retryable(format!(
            "{activity} of {order_id}: service unavailable"
        )));
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.effects)
        .map_err(|e| ActivityError::retryable(e.to_string()))?;
    // one write call per line: concurrent appends never interleave
    let line = format!("{activity} {order_id} {attempt}\n");
    log.write_all(line.as_bytes())
        .map_err(|e| ActivityError::retryable(e.to_string()))
}

#[activity(max_attempts = 10, initial_interval_ms = 10, max_interval_ms = 200)]
async fn check_fraud(order_id: String, payment_info: PaymentInfo) -> Result<(), ActivityError> {
    if payment_info.card.is_empty() {
        return Err(ActivityError::terminal(format!("{order_id}: no card")).with_kind("fraud"));
    }
    effect("check_fraud", &order_id).await
}

#[activity(max_attempts = 10, initial_interval_ms = 10, max_interval_ms = 200)]
async fn prepare_shipment(order: Order) -> Result<(), ActivityError> {
    effect("prepare_shipment", &order.order_id).await
}

#[activity(max_attempts = 10, initial_interval_ms = 10, max_interval_ms = 200)]
async fn charge(
    order_id: String,
    payment_info: PaymentInfo,
) -> Result<ChargeConfirmation, ActivityError> {
    // a real payment API would get this key to deduplicate the charge
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    effect("charge", &order_id).await?;
    Ok(ChargeConfirmation {
        charge_id: format!("ch_{}_{}_{key}", payment_info.cents, order_id),
    })
}

#[activity(max_attempts = 10, initial_interval_ms = 10, max_interval_ms = 200)]
async fn ship(
    order: Order,
    charge: ChargeConfirmation,
) -> Result<ShipmentConfirmation, ActivityError> {
    effect("ship", &order.order_id).await?;
    Ok(ShipmentConfirmation {
        tracking: format!("trk-{}-{}", order.order_id, charge.charge_id.len()),
    })
}

#[workflow]
async fn process_order(order: Order) -> Result<ShipmentConfirmation, WorkflowError> {
    check_fraud(order.order_id.clone(), order.payment_info.clone()).await?;
    prepare_shipment(order.clone()).await?;
    let charge_confirm = charge(order.order_id.clone(), order.payment_info.clone()).await?;
    let shipment_confirmation = ship(order, charge_confirm).await?;
    Ok(shipment_confirmation)
}

struct Args {
    db: Option<PathBuf>,
    orders: usize,
    failure_rate: f64,
    latency_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: None,
        orders: 20,
        failure_rate: 0.1,
        latency_ms: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => args.db = Some(PathBuf::from(value()?)),
            "--orders" => args.orders = value()?.parse().map_err(|e| format!("--orders: {e}"))?,
            "--failure-rate" => {
                args.failure_rate = value()?
                    .parse()
                    .map_err(|e| format!("--failure-rate: {e}"))?
            }
            "--latency-ms" => {
                args.latency_ms = value()?.parse().map_err(|e| format!("--latency-ms: {e}"))?
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; use --db DIR --orders N --failure-rate F --latency-ms MS"
                ));
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let temp;
    let dir = match &args.db {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let _ = SETTINGS.set(Settings {
        effects: dir.join("effects.log"),
        failure_rate: args.failure_rate,
        latency: Duration::from_millis(args.latency_ms),
    });

    let started = Instant::now();
    let runtime = Runtime::builder()
        .workflow::<process_order>()
        .open(dir.join("store"))
        .await?;
    println!(
        "store {}: resumed {} unfinished orders",
        dir.display(),
        runtime.resumed_on_open()
    );

    let mut handles = Vec::with_capacity(args.orders);
    for i in 0..args.orders {
        let order = Order {
            order_id: format!("order-{i}"),
            payment_info: PaymentInfo {
                card: format!("4242-{i:04}"),
                cents: 1000 + i as u64,
            },
            items: vec![format!("item-{}", i % 7)],
        };
        // an id that exists is resumed, never started twice
        handles.push(
            runtime
                .start(
                    format!("order-{i}"),
                    process_order(order),
                    IdPolicy::UseExisting,
                )
                .await?,
        );
    }

    let mut completed = 0;
    let mut failures = Vec::new();
    for h in &handles {
        match h.result().await {
            Ok(Ok(_confirmation)) => completed += 1,
            Ok(Err(e)) => failures.push(format!("{}: {e}", h.id())),
            Err(e) => failures.push(format!("{}: {e}", h.id())),
        }
    }
    println!(
        "completed {completed}/{} in {:.2}s",
        args.orders,
        started.elapsed().as_secs_f64()
    );
    for f in &failures {
        println!("failed {f}");
    }
    println!("effects log: {}", dir.join("effects.log").display());
    runtime.shutdown().await;
    Ok(())
}
