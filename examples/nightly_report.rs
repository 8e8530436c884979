//! A nightly report that replaces a crontab line: a schedule starts the
//! `nightly_report` workflow at 02:00 Berlin time, every night.
//!
//! ```text
//! cargo run --example nightly_report
//! ```
//!
//! The runtime runs on a `TestClock`, so a week passes in a second: three
//! nights run on time, a pause (with a note) skips two nights and records
//! them as skipped, a manual trigger runs one now, a backfill runs three
//! nights from before the schedule existed, and a "process down overnight"
//! (the runtime shut down while the clock moves on) is caught up on the next
//! open. Each run's workflow id is the schedule id plus the night's nominal
//! time (`nightly@2030-01-02T01:00:00Z`), so no night runs twice, whatever
//! crashes in between; the workflow reads that nominal time with
//! `scheduled()`, so a backfilled or caught-up night reports its own day's
//! figures, and says how it was started.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::prelude::*;
use durable_runtime::schedule::{ScheduleDescription, ScheduleEventKind, Trigger, scheduled};
use durable_runtime::{Overlap, Schedule};

const DAY: Duration = Duration::from_secs(86_400);

#[activity(max_attempts = 5, initial_interval_ms = 10)]
async fn gather_sales(team: String, day: u64) -> Result<u64, ActivityError> {
    // stands in for a query: a figure that depends on the day
    Ok(1_000 + (day % 7) * 125 + team.len() as u64)
}

#[activity(max_attempts = 5, initial_interval_ms = 10)]
async fn email_report(team: String, day: u64, sales: u64) -> Result<String, ActivityError> {
    let ctx = ActivityContext::current().ok_or_else(|| ActivityError::terminal("no context"))?;
    Ok(format!(
        "{team}: day {day}, sales {sales} (sent once, key {})",
        ctx.idempotency_key
    ))
}

#[workflow]
async fn nightly_report(team: String) -> Result<String, WorkflowError> {
    // the night this run stands for: its nominal time, not the time it
    // happens to run (a backfill, a catch-up, a late start); both recorded
    // in the state, the same values after a restart
    let ran = now().await;
    let (night, how): (SystemTime, String) = match scheduled().await {
        Some(run) => {
            let how = match run.trigger {
                Trigger::Backfill => "backfilled",
                Trigger::Manual => "triggered by hand",
                // a calendar run started well after its time was caught up
                Trigger::Calendar if ran > run.nominal + Duration::from_secs(3600) => "caught up",
                Trigger::Calendar => "on time",
            };
            (run.nominal, how.to_owned())
        }
        None => (ran, "started by hand".to_owned()),
    };
    let day = night
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 86_400;
    let sales = gather_sales(team.clone(), day).await?;
    let sent = email_report(team, day, sales).await?;
    Ok(format!("{sent} [{how}]"))
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

/// Prints the result of each run the schedule started since the last call.
async fn runs_done(
    runtime: &Runtime,
    printed: &mut HashSet<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let description = runtime.schedules().describe("nightly")?;
    for event in description.recent {
        if let ScheduleEventKind::Started { workflow_id, .. } = event.kind
            && printed.insert(workflow_id.clone())
        {
            let out = runtime
                .handle::<nightly_report>(workflow_id.clone())
                .result()
                .await??;
            println!("  {workflow_id} -> {out}");
        }
    }
    Ok(())
}

/// Moves the clock on by `step`, lets the schedule act and the runs finish.
async fn pass(
    runtime: &Runtime,
    clock: &TestClock,
    step: Duration,
    printed: &mut HashSet<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    clock.advance(step);
    let now = ms(clock.now());
    wait_for("the schedule to act", || {
        runtime
            .schedules()
            .describe("nightly")
            .is_ok_and(|d| d.next_ms.first().is_none_or(|t| *t > now))
    })
    .await?;
    runs_done(runtime, printed).await
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn print_recent(d: &ScheduleDescription) {
    println!(
        "schedule `{}` ({}), {} runs; recent events:",
        d.id, d.spec, d.runs
    );
    for event in &d.recent {
        let what = match &event.kind {
            ScheduleEventKind::Started {
                workflow_id,
                trigger,
                ..
            } => format!("started {workflow_id} ({trigger:?})"),
            ScheduleEventKind::Skipped { count, reason, .. } => {
                format!("skipped {count} ({reason:?})")
            }
            other => format!("{other:?}"),
        };
        println!("  {what}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "A nightly report on a cron schedule (02:00 Berlin): nights on time, a pause, a catch-up, a backfill and a run by hand; a test clock makes the week pass in a second. It runs to the end by itself in a temporary store (`durable schedule describe nightly` shows the same on a real one)."
    );
    let dir = tempfile::tempdir()?;
    // 2030-01-01 00:00 UTC
    let clock = Arc::new(TestClock::new());
    let open = || {
        Runtime::builder()
            .workflow::<nightly_report>()
            .clock(clock.clone())
            .open(dir.path().join("store"))
    };
    let runtime = open().await?;
    let mut printed = HashSet::new();

    let schedule = Schedule::cron("0 2 * * *")?
        .time_zone("Europe/Berlin")?
        .overlap(Overlap::Skip)
        .catchup_window(Duration::from_secs(12 * 3600));
    let created = runtime
        .schedules()
        .create("nightly", schedule, nightly_report("sales-emea".into()))
        .await?;
    println!(
        "created `nightly`: {}; next runs (ms since epoch) {:?}",
        created.spec,
        &created.next_ms[..3]
    );

    println!("three nights pass:");
    // to 02:00 in Berlin, then night after night
    pass(&runtime, &clock, Duration::from_secs(3600), &mut printed).await?;
    pass(&runtime, &clock, DAY, &mut printed).await?;
    pass(&runtime, &clock, DAY, &mut printed).await?;

    runtime
        .schedules()
        .pause("nightly", "year-end freeze")
        .await?;
    println!("paused for two nights (year-end freeze)");
    clock.advance(2 * DAY);
    runtime
        .schedules()
        .unpause("nightly", "freeze over")
        .await?;

    println!("triggered by hand:");
    runtime.schedules().trigger("nightly").await?;
    runs_done(&runtime, &mut printed).await?;

    println!("backfilled three nights from before the schedule existed:");
    let before = clock.now() - 7 * DAY;
    runtime
        .schedules()
        .backfill("nightly", before, before + 2 * DAY, Overlap::AllowAll)
        .await?;
    runs_done(&runtime, &mut printed).await?;

    println!("the process goes down for a night, then opens again:");
    runtime.shutdown().await;
    // back at 05:00 the next morning: the 02:00 run is 3 h late, within
    // the 12 h catch-up window
    clock.advance(DAY + Duration::from_secs(3 * 3600));
    let runtime = open().await?;
    pass(&runtime, &clock, Duration::ZERO, &mut printed).await?;

    let description = runtime.schedules().describe("nightly")?;
    print_recent(&description);
    // 3 nights + 1 trigger + 3 backfilled + 1 caught up
    if description.runs != 8 {
        return Err(format!("expected 8 runs, found {}", description.runs).into());
    }
    runtime.shutdown().await;
    Ok(())
}
