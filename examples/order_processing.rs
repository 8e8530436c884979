//! The seed's order-processing program, durable: kill it at any moment and
//! run it again, and it finishes what is left without repeating a
//! checkpointed step.
//!
//! ```text
//! cargo run --release --example order_processing -- --db /tmp/orders --orders 200
//! ```
//!
//! It takes about ten seconds: each activity waits 50-150 ms like a real
//! service call, ten run at once, and one call in ten fails and is retried.
//! A progress bar shows orders completed, activities run and retries. Press
//! Ctrl-C or `kill -9` it at any moment and run the same command again: it
//! says how many orders it found unfinished and at which step, finishes
//! them, and checks `DIR/effects.log` itself: every order's four activities
//! are there, and an activity ran again only if it was in flight when the
//! process died (its completion not yet checkpointed), never once its
//! completion was. `--fast` runs without the simulated latency (CI,
//! benchmarks). Without `--db` it uses a temporary directory.
//!
//! Inspect the store while it runs or after: `durable --db /tmp/orders/store
//! list`, `durable --db /tmp/orders/store history order-7`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ShipmentConfirmation {
    tracking: String,
}

/// What the activities are given by the runtime (`Builder::dependency`):
/// where their effects go and how the simulated service behaves. A real
/// service registers its database pool or HTTP client the same way.
struct Settings {
    effects: PathBuf,
    failure_rate: f64,
    /// Each call waits between these (ms).
    latency: (u64, u64),
}

/// Activity executions that succeeded, and failed attempts (retried).
static RUN: AtomicU64 = AtomicU64::new(0);
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// The activities of an order, in the order the workflow awaits them.
const STEPS: [&str; 4] = ["check_fraud", "prepare_shipment", "charge", "ship"];

/// The side effect every activity has: a line in the effects log, after a
/// little latency, failing now and then like a real service.
async fn effect(activity: &str, order_id: &str) -> Result<(), ActivityError> {
    let s = dependency::<Settings>()?;
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    let (low, high) = s.latency;
    if high > 0 {
        tokio::time::sleep(Duration::from_millis(rand::random_range(low..=high))).await;
    }
    if rand::random::<f64>() < s.failure_rate {
        RETRIES.fetch_add(1, Ordering::Relaxed);
        return Err(ActivityError::retryable(format!(
            "{activity} of {order_id}: service unavailable"
        )));
    }
    RUN.fetch_add(1, Ordering::Relaxed);
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
    fast: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: None,
        orders: 200,
        failure_rate: 0.1,
        fast: false,
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
            "--fast" => args.fast = true,
            other => {
                return Err(format!(
                    "unknown argument {other}; use --db DIR --orders N --failure-rate F --fast"
                ));
            }
        }
    }
    Ok(args)
}

/// The effects log's lines: (activity, order id).
fn effects(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// How many of an order's activities are checkpointed as done, from what
/// it waits for (`activity charge` means the two before it are done).
fn steps_done(d: &durable_runtime::Description) -> usize {
    if d.status.is_terminal() {
        return STEPS.len();
    }
    d.waiting_for
        .as_deref()
        .and_then(|w| w.strip_prefix("activity "))
        .and_then(|name| STEPS.iter().position(|s| *s == name))
        .unwrap_or(0)
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
    let effects_path = dir.join("effects.log");
    let settings = Settings {
        effects: effects_path.clone(),
        failure_rate: args.failure_rate,
        latency: if args.fast { (0, 0) } else { (50, 150) },
    };
    // what ran before this run: an activity run again now must not be one
    // whose completion was checkpointed then
    let before = effects(&effects_path);

    let started = Instant::now();
    // the activities resumed while it opens read the settings too
    let mut builder = Runtime::builder()
        .workflow::<process_order>()
        .dependency(settings);
    if !args.fast {
        // ten calls at once: a real service's rate limit, and a run long
        // enough to interrupt
        builder = builder.max_concurrent_activities(10);
    }
    let runtime = builder.open(dir.join("store")).await?;
    // where each order stood when this run began (all checkpointed steps)
    let mut done_at_start: HashMap<String, usize> = HashMap::new();
    let mut unfinished: BTreeMap<&str, usize> = BTreeMap::new();
    for d in runtime.list(&durable_runtime::ListFilter::default())? {
        let done = steps_done(&d);
        if done < STEPS.len() {
            *unfinished.entry(STEPS[done]).or_default() += 1;
        }
        done_at_start.insert(d.id.clone(), done);
    }
    if done_at_start.is_empty() {
        println!(
            "store {}: new; {} orders to process. Press Ctrl-C or `kill -9 {}` at any moment, then run the same command again.",
            dir.display(),
            args.orders,
            std::process::id()
        );
    } else {
        let waiting: Vec<String> = STEPS
            .iter()
            .filter_map(|step| unfinished.get(step).map(|n| format!("{n} at {step}")))
            .collect();
        println!(
            "store {}: found {} orders, {} unfinished ({}); resuming them from their last checkpoint",
            dir.display(),
            done_at_start.len(),
            unfinished.values().sum::<usize>(),
            if waiting.is_empty() {
                "none".into()
            } else {
                waiting.join(", ")
            },
        );
    }

    let bar = indicatif::ProgressBar::new(args.orders as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} orders  {msg}  (kill me any time)",
        )
        .map_err(|e| e.to_string())?,
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

    let mut waits = tokio::task::JoinSet::new();
    for h in handles {
        waits.spawn(async move {
            let out = h.result().await;
            (h.id().to_owned(), out)
        });
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut completed = 0;
    let mut failures = Vec::new();
    loop {
        tokio::select! {
            next = waits.join_next() => match next {
                Some(Ok((id, out))) => {
                    match out {
                        Ok(Ok(_confirmation)) => completed += 1,
                        Ok(Err(e)) => failures.push(format!("{id}: {e}")),
                        Err(e) => failures.push(format!("{id}: {e}")),
                    }
                    bar.inc(1);
                }
                Some(Err(e)) => failures.push(format!("a result task failed: {e}")),
                None => break,
            },
            _ = ticker.tick() => bar.set_message(format!(
                "{} activities run, {} retries",
                RUN.load(Ordering::Relaxed),
                RETRIES.load(Ordering::Relaxed)
            )),
        }
    }
    bar.finish_and_clear();
    println!(
        "completed {completed}/{} in {:.2}s ({} activities run, {} retried attempts)",
        args.orders,
        started.elapsed().as_secs_f64(),
        RUN.load(Ordering::Relaxed),
        RETRIES.load(Ordering::Relaxed)
    );
    for f in &failures {
        println!("failed {f}");
    }
    runtime.shutdown().await;

    // the self-check: every order's four activities are in the log, and
    // nothing checkpointed ran again
    let all = effects(&effects_path);
    let mut missing = 0;
    for i in 0..args.orders {
        let id = format!("order-{i}");
        if !STEPS
            .iter()
            .all(|step| all.iter().any(|(a, o)| a == step && *o == id))
        {
            missing += 1;
        }
    }
    let mut repeated = 0;
    let mut rerun_checkpointed = Vec::new();
    for (activity, order) in &all[before.len().min(all.len())..] {
        let step = STEPS.iter().position(|s| s == activity).unwrap_or(0);
        if before.iter().any(|(a, o)| a == activity && o == order) {
            repeated += 1;
        }
        if done_at_start.get(order).is_some_and(|done| step < *done) {
            rerun_checkpointed.push(format!("{activity} {order}"));
        }
    }
    println!(
        "self-check of {}: {}/{} orders have all four activities; {} executions repeated (in flight when the last run died: done, but their completion not yet checkpointed); {} checkpointed activities ran again",
        effects_path.display(),
        args.orders - missing,
        args.orders,
        repeated,
        rerun_checkpointed.len(),
    );
    if !rerun_checkpointed.is_empty() || missing > 0 || !failures.is_empty() {
        return Err(format!("self-check failed: ran again {rerun_checkpointed:?}").into());
    }
    Ok(())
}

/// The workflow's own tests, written only with the test kit
/// (`durable_runtime::testing`, feature `testing`; see `docs/testing.md`):
/// `cargo test -p examples --test order_processing_tests`.
#[cfg(test)]
mod tests {
    use super::*;
    use durable_runtime::testing::{TestEnv, crash_sweep};

    fn order(id: &str, card: &str) -> Order {
        Order {
            order_id: id.into(),
            payment_info: PaymentInfo {
                card: card.into(),
                cents: 1999,
            },
            items: vec!["tea".into()],
        }
    }

    /// The activities' settings: effects into `dir`, one call in five
    /// failing (and retried), no latency.
    fn settings(dir: &Path) -> Settings {
        Settings {
            effects: dir.join("effects.log"),
            failure_rate: 0.2,
            latency: (0, 0),
        }
    }

    /// Crashed after every checkpoint (what was not synced lost) and
    /// rebooted, the order ships the same, and no activity whose
    /// completion was checkpointed runs again.
    #[tokio::test]
    async fn an_order_ships_the_same_when_crashed_at_every_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let report = crash_sweep(
            || {
                Runtime::builder()
                    .workflow::<process_order>()
                    .dependency(settings(dir.path()))
            },
            "order-1",
            || process_order(order("order-1", "4242")),
        )
        .await
        .unwrap();
        assert!(report.checkpoints >= 5, "{report:?}");
        assert_eq!(report.crashes, report.checkpoints);
    }

    /// A declined card (the payment provider mocked) fails the order
    /// before anything ships.
    #[tokio::test]
    async fn a_declined_card_fails_the_order_and_nothing_ships() {
        let dir = tempfile::tempdir().unwrap();
        let builder = Runtime::builder()
            .workflow::<process_order>()
            .dependency(settings(dir.path()))
            .mock_activity::<charge>(|(order_id, _)| {
                Err(ActivityError::terminal(format!(
                    "{order_id}: card declined"
                )))
            })
            .mock_activity::<ship>(|(order, _)| panic!("{} must not ship", order.order_id));
        let env = TestEnv::start(builder).await.unwrap();
        let h = env
            .start(
                "order-2",
                process_order(order("order-2", "4000")),
                IdPolicy::Reject,
            )
            .await
            .unwrap();
        let out = h.result().await.unwrap();
        assert!(
            out.as_ref().is_err_and(|e| e.0.contains("card declined")),
            "{out:?}"
        );
        env.shutdown().await;
    }

    /// An order without a card is stopped by the fraud check (a terminal
    /// failure: not retried).
    #[tokio::test]
    async fn an_order_without_a_card_is_stopped_by_the_fraud_check() {
        let dir = tempfile::tempdir().unwrap();
        let env = TestEnv::start(
            Runtime::builder()
                .workflow::<process_order>()
                .dependency(settings(dir.path())),
        )
        .await
        .unwrap();
        let h = env
            .start(
                "order-3",
                process_order(order("order-3", "")),
                IdPolicy::Reject,
            )
            .await
            .unwrap();
        let out = h.result().await.unwrap();
        assert!(
            out.as_ref().is_err_and(|e| e.0.contains("no card")),
            "{out:?}"
        );
        env.shutdown().await;
    }
}
