//! An approval that waits for a human, but not forever: the workflow waits
//! for whichever comes first, an `approve` signal or a durable 3-day timer
//! (`select(signal("approve"), sleep(3 days))`).
//!
//! ```text
//! cargo run --example approval_with_timeout
//! ```
//!
//! Two expense reports run on a `TestClock`, so three days pass in
//! milliseconds: `expense-1` is approved with `runtime.signal`, `expense-2`
//! gets no answer and expires when the clock is advanced past its deadline.
//! While they wait, neither holds a task or memory, only its record on disk;
//! a process restart in between would change nothing. Without `--db DIR` it
//! uses a temporary directory (a `--db` must be fresh: the demo's clock
//! starts over on every run).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use durable_runtime::StartError;
use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::command::{Either, select};
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

const DAY: Duration = Duration::from_secs(86_400);
const DEADLINE: Duration = Duration::from_secs(3 * 86_400);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Expense {
    id: String,
    employee: String,
    cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Outcome {
    Approved { by: String, after_hours: u64 },
    Expired { after_hours: u64 },
}

#[activity(max_attempts = 5, initial_interval_ms = 10)]
async fn ask_manager(expense: Expense) -> Result<(), ActivityError> {
    println!(
        "  {}: asked the manager to approve {} ({:.2} EUR)",
        expense.id,
        expense.employee,
        expense.cents as f64 / 100.0
    );
    Ok(())
}

#[activity(max_attempts = 5, initial_interval_ms = 10)]
async fn notify_employee(expense: Expense, message: String) -> Result<(), ActivityError> {
    println!("  {}: told {}: {message}", expense.id, expense.employee);
    Ok(())
}

fn hours_between(from: SystemTime, to: SystemTime) -> u64 {
    to.duration_since(from).unwrap_or_default().as_secs() / 3600
}

#[workflow]
async fn approval(expense: Expense) -> Result<Outcome, WorkflowError> {
    // the time is recorded in the state: the same value after a restart
    let asked = now().await;
    ask_manager(expense.clone()).await?;
    let answer = select(signal::<String>("approve"), sleep(DEADLINE)).await;
    let decided = now().await;
    let after_hours = hours_between(asked, decided);
    let outcome = match answer {
        Either::Left(by) => Outcome::Approved {
            by: by?,
            after_hours,
        },
        Either::Right(slept) => {
            slept?;
            Outcome::Expired { after_hours }
        }
    };
    let message = match &outcome {
        Outcome::Approved { by, .. } => format!("approved by {by}"),
        Outcome::Expired { .. } => "no answer within 3 days, please resubmit".to_owned(),
    };
    notify_employee(expense, message).await?;
    Ok(outcome)
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

fn print_outcome(id: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Approved { by, after_hours } => {
            println!("{id}: approved by {by} after {after_hours} h")
        }
        Outcome::Expired { after_hours } => println!("{id}: expired after {after_hours} h"),
    }
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
        "An approval that waits for a manager's signal or three days, whichever comes first; a test clock makes the days pass in milliseconds."
    );
    println!(
        "  inspect its store: durable --db {} list, durable --db {} history expense-1{}",
        dir.join("store").display(),
        dir.join("store").display(),
        if kept {
            ""
        } else {
            " (a temporary directory: run with --db DIR to keep it)"
        }
    );
    let clock = Arc::new(TestClock::new());
    let start = clock.now();
    let day = |clock: &TestClock| hours_between(start, clock.now()) as f64 / 24.0;
    let runtime = Runtime::builder()
        .workflow::<approval>()
        .clock(clock.clone())
        .open(dir.join("store"))
        .await?;
    println!("store {}: day {:.1}", dir.display(), day(&clock));

    let mut handles = Vec::new();
    for (id, employee, cents) in [
        ("expense-1", "Grace", 18_950),
        ("expense-2", "Linus", 4_200),
    ] {
        let expense = Expense {
            id: id.to_owned(),
            employee: employee.to_owned(),
            cents,
        };
        match runtime.start(id, approval(expense), IdPolicy::Reject).await {
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
    wait_for("both to wait for an answer", || {
        runtime.running_instances() == 0
    })
    .await?;
    println!(
        "both waiting; tasks held in memory: {}",
        runtime.running_instances()
    );

    clock.advance(DAY);
    println!("day {:.1}: the manager approves expense-1", day(&clock));
    runtime
        .signal("expense-1", "approve", &"Margaret".to_owned())
        .await?;
    print_outcome("expense-1", &handles[0].result().await??);

    clock.advance(DAY + DAY / 2);
    println!(
        "day {:.1}: expense-2 still {:?} at {}",
        day(&clock),
        handles[1].describe()?.status,
        handles[1].describe()?.variant
    );
    clock.advance(DAY / 2);
    println!("day {:.1}: expense-2's deadline", day(&clock));
    print_outcome("expense-2", &handles[1].result().await??);
    runtime.shutdown().await;
    Ok(())
}
