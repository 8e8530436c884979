//! A subscription as a workflow that lives for months: a 14-day trial, then
//! a charge every 30 days for the plan's months, each wait a durable timer.
//! Each billing period is one run: it waits (for the trial or the paid
//! month) or for a `cancel` signal, whichever comes first
//! (`select(signal("cancel"), sleep(..))`), charges, and continues as new
//! with the next period, so the stored state stays the same size forever.
//!
//! ```text
//! cargo run --example subscription
//! ```
//!
//! Time runs on a `TestClock` that `main` advances in steps, so a quarter
//! year passes in well under a second. `alice` has a 3-month plan and runs
//! to its end; `bob` has a 12-month plan and cancels after his second
//! charge. Between steps neither holds a task in memory. Without `--db DIR`
//! it uses a temporary directory (a `--db` must be fresh: the demo's clock
//! starts over on every run).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use durable_runtime::StartError;
use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::command::{Either, select};
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

const DAY: Duration = Duration::from_secs(86_400);
const TRIAL: Duration = Duration::from_secs(14 * 86_400);
const MONTH: Duration = Duration::from_secs(30 * 86_400);

/// Charges made so far (by every instance), so `main` knows when a step is done.
static CHARGES: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    customer: String,
    cents: u64,
    months: u32,
    /// When the subscription began; the charges say which day they fall on.
    since: SystemTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    paid_months: u32,
    status: String,
}

#[activity(max_attempts = 5, initial_interval_ms = 10)]
async fn charge(plan: Plan, month: u32, at: SystemTime) -> Result<String, ActivityError> {
    let day = at.duration_since(plan.since).unwrap_or_default().as_secs() / 86_400;
    // a real payment API would deduplicate by this key
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    println!(
        "  day {day:>3}: charged {} {:.2} EUR for month {month}/{} (key {key})",
        plan.customer,
        plan.cents as f64 / 100.0,
        plan.months
    );
    CHARGES.fetch_add(1, Ordering::SeqCst);
    Ok(format!("ch-{}-{month}", plan.customer))
}

/// One billing period: `paid` months are paid so far (0: in the trial).
#[workflow]
async fn subscription(plan: Plan, paid: u32) -> Result<Summary, WorkflowError> {
    let period = if paid == 0 { TRIAL } else { MONTH };
    let woke = select(signal::<String>("cancel"), sleep(period)).await;
    if let Either::Left(reason) = woke {
        let reason = reason?;
        return Ok(Summary {
            paid_months: paid,
            status: format!("cancelled ({reason})"),
        });
    }
    if paid == plan.months {
        return Ok(Summary {
            paid_months: paid,
            status: "completed".to_owned(),
        });
    }
    let at = now().await;
    charge(plan.clone(), paid + 1, at).await?;
    // the next period is a fresh run of the same instance id
    continue_as_new(subscription(plan, paid + 1)).await
}

fn parse_args() -> Result<Option<PathBuf>, String> {
    let mut db = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--db" => db = Some(PathBuf::from(it.next().ok_or("--db needs a value")?)),
            other => return Err(format!("unknown argument {other}; use --db DIR")),
        }
    }
    Ok(db)
}

/// Polls `done` until it holds (the demo's way to let the runtime catch up).
async fn wait_for(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > give_up {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = parse_args()?;
    let kept = db.is_some();
    let temp;
    let dir = match db {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "A subscription that lives for months: a trial, then a charge every 30 days, or a cancel signal; a test clock makes the months pass in a second."
    );
    println!(
        "  inspect its store: durable --db {} list, durable --db {} history alice{}",
        dir.join("store").display(),
        dir.join("store").display(),
        if kept {
            ""
        } else {
            " (a temporary directory: run with --db DIR to keep it)"
        }
    );
    let clock = Arc::new(TestClock::new());
    let since = clock.now();
    let runtime = Runtime::builder()
        .workflow::<subscription>()
        .clock(clock.clone())
        .open(dir.join("store"))
        .await?;
    println!(
        "store {}: day 0, alice and bob start a 14-day trial",
        dir.display()
    );

    let mut handles = Vec::new();
    for (customer, cents, months) in [("alice", 999, 3), ("bob", 1_999, 12)] {
        let plan = Plan {
            customer: customer.to_owned(),
            cents,
            months,
            since,
        };
        match runtime
            .start(customer, subscription(plan, 0), IdPolicy::Reject)
            .await
        {
            Ok(handle) => handles.push(handle),
            Err(StartError::AlreadyExists { .. }) => {
                return Err(format!(
                    "{} already holds this demo: use a fresh --db",
                    dir.display()
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (alice, bob) = (&handles[0], &handles[1]);
    let idle = || runtime.running_instances() == 0;
    let day = || {
        let elapsed = clock.now().duration_since(since).unwrap_or_default();
        elapsed.as_secs() / 86_400
    };
    wait_for("both trials to start", idle).await?;

    // (time to advance, charges it brings, whether bob cancels afterwards)
    let steps = [(TRIAL, 2, false), (MONTH, 2, true), (MONTH, 1, false)];
    let mut expected = 0;
    for (advance, new_charges, bob_cancels) in steps {
        // a day short first: nothing may be due yet
        clock.advance(advance - DAY);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if CHARGES.load(Ordering::SeqCst) != expected {
            return Err("a charge came before its timer was due".into());
        }
        clock.advance(DAY);
        expected += new_charges;
        wait_for("the charges", || {
            CHARGES.load(Ordering::SeqCst) == expected && idle()
        })
        .await?;
        if bob_cancels {
            println!("  day {:>3}: bob cancels", day());
            runtime
                .signal("bob", "cancel", &"too expensive".to_owned())
                .await?;
            let end = bob.result().await??;
            println!("bob: {} after {} paid months", end.status, end.paid_months);
        }
    }
    clock.advance(MONTH);
    let end = alice.result().await??;
    println!(
        "alice: {} after {} paid months",
        end.status, end.paid_months
    );
    println!("charges in total: {}", CHARGES.load(Ordering::SeqCst));
    runtime.shutdown().await;
    Ok(())
}
