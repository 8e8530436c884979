//! Runs order workflows on a store; the crash supervisor kills it.
//!
//! `crash-worker DIR ORDERS INCARNATION [before|applied|after K]`: the store
//! is `CRASH_STORE_URL` (`sled:PATH` or `postgres://...`; default the sled
//! directory `DIR/store`), the effects log `DIR/effects.log`. With a crash
//! point, the committer prints `CHECKPOINT <phase> <K>` when group commit
//! `K` is about to be written (`before`), is written but not yet durable
//! (`applied`: in sled's tree before the fsync, or in an open PostgreSQL
//! transaction) or is durable (`after`), then blocks until the supervisor's
//! SIGKILL arrives.

use std::io::Write;

use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::store::postgres::PgStore;
use durable_runtime::store::sled::{CommitPoint, SledStore};
use durable_runtime::{IdPolicy, Runtime};
use durable_runtime::{Overlap, Schedule, ScheduleError};
use durable_tests::{
    EFFECTS, EffectsLog, guard, journey, order, process_order, side_trip, tick, tick_run,
};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: crash-worker DIR ORDERS INCARNATION [before|applied|after K]");
        std::process::exit(2);
    }
    let dir = std::path::PathBuf::from(&args[1]);
    let orders: usize = args[2].parse().expect("ORDERS is a number");
    let incarnation: u32 = args[3].parse().expect("INCARNATION is a number");
    let crash = args
        .get(4)
        .zip(args.get(5))
        .map(|(phase, k)| (phase.clone(), k.parse::<u64>().expect("K is a number")));

    let _ = EFFECTS.set(EffectsLog {
        path: dir.join("effects.log"),
        incarnation,
    });
    let url = std::env::var("CRASH_STORE_URL")
        .unwrap_or_else(|_| format!("sled:{}", dir.join("store").display()));
    let hook = move |point| {
        let Some((phase, k)) = &crash else {
            return;
        };
        let hit = match point {
            CommitPoint::BeforeWrite(i) => phase == "before" && i == *k,
            CommitPoint::Applied(i) => phase == "applied" && i == *k,
            CommitPoint::AfterSync(i) => phase == "after" && i == *k,
        };
        if hit {
            println!("CHECKPOINT {phase} {k}");
            let _ = std::io::stdout().flush();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    };
    // every incarnation's clock starts at 2030-01-01T00:00:00Z
    let clock = std::sync::Arc::new(TestClock::new());
    let mut builder = Runtime::builder()
        .workflow::<process_order>()
        .workflow::<journey>()
        .workflow::<side_trip>()
        .workflow::<guard>()
        .workflow::<tick>();
    if std::env::var("CRASH_WORKLOAD").as_deref() == Ok("schedule") {
        builder = builder.clock(clock.clone());
    }
    let rt = match url.strip_prefix("sled:") {
        Some(path) => {
            let store = SledStore::open(path).expect("open store");
            store.set_commit_hook(hook);
            builder.open_store(store).await
        }
        None => {
            let store = PgStore::connect(&url).await.expect("open store");
            store.set_commit_hook(hook);
            builder.open_store(store).await
        }
    }
    .expect("open runtime");
    println!("OPEN resumed={}", rt.resumed_on_open());
    if std::env::var("CRASH_WORKLOAD").as_deref() == Ok("schedule") {
        run_schedule(&rt, &clock, orders).await;
        rt.shutdown().await;
        return;
    }
    if matches!(
        std::env::var("CRASH_WORKLOAD").as_deref(),
        Ok("guard" | "halt")
    ) {
        let mut handles = Vec::new();
        for i in 0..orders {
            let id = format!("guard-{i}");
            let h = rt
                .start(id.clone(), guard(i as u32), IdPolicy::UseExisting)
                .await
                .expect("start");
            // asked again on every run: a finished instance refuses it
            if std::env::var("CRASH_WORKLOAD").as_deref() == Ok("halt") {
                let _ = rt.terminate(&id, "halted by the crash test").await;
            } else {
                let _ = rt.cancel(&id).await;
            }
            handles.push(h);
        }
        for h in handles {
            match h.result().await {
                Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
                Err(durable_runtime::ResultError::Terminated { reason, .. }) => {
                    println!("RESULT {} terminated: {reason}", h.id())
                }
                other => println!("FAILED {} {other:?}", h.id()),
            }
        }
        println!("DONE");
        let _ = std::io::stdout().flush();
        rt.shutdown().await;
        return;
    }
    if std::env::var("CRASH_WORKLOAD").as_deref() == Ok("journey") {
        let mut handles = Vec::new();
        for i in 0..orders {
            let id = format!("journey-{i}");
            let h = rt
                .start(id.clone(), journey(i as u32), IdPolicy::UseExisting)
                .await
                .expect("start");
            // resent on every run: a finished instance refuses it, an extra one stays buffered
            let _ = rt.signal(&id, "go", &(i as u32)).await;
            handles.push(h);
        }
        for h in handles {
            match h.result().await {
                Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
                other => println!("FAILED {} {other:?}", h.id()),
            }
        }
        println!("DONE");
        let _ = std::io::stdout().flush();
        rt.shutdown().await;
        return;
    }
    let mut handles = Vec::new();
    for i in 0..orders {
        let h = rt
            .start(
                format!("order-{i}"),
                process_order(order(i)),
                IdPolicy::UseExisting,
            )
            .await
            .expect("start");
        handles.push(h);
    }
    for h in handles {
        match h.result().await {
            Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
            other => println!("FAILED {} {other:?}", h.id()),
        }
    }
    println!("DONE");
    let _ = std::io::stdout().flush();
    rt.shutdown().await;
}

/// Creates (once) a schedule that runs `tick` every minute, walks the test
/// clock over `runs` minutes and prints each run's result.
async fn run_schedule(rt: &Runtime, clock: &TestClock, runs: usize) {
    let start = clock.now();
    let schedule = Schedule::interval(std::time::Duration::from_secs(60))
        .expect("interval")
        .starting_at(start + std::time::Duration::from_secs(60))
        .max_runs(runs as u64)
        .overlap(Overlap::BufferAll);
    match rt.schedules().create("tick", schedule, tick()).await {
        Ok(_) | Err(ScheduleError::AlreadyExists { .. }) => {}
        Err(e) => panic!("create schedule: {e}"),
    }
    for _ in 0..runs {
        clock.advance(std::time::Duration::from_secs(60));
        let now = clock.now();
        // the schedule has acted on this minute
        loop {
            let d = rt.schedules().describe("tick").expect("describe");
            let due = d
                .next_ms
                .first()
                .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_millis(*t));
            if due.is_none_or(|t| t > now) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    for i in 0..runs {
        let h = rt.handle::<tick>(tick_run(i));
        // a buffered run starts when the one before it ends
        let out = loop {
            match h.result().await {
                Err(durable_runtime::ResultError::NotFound { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                other => break other,
            }
        };
        match out {
            Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
            other => println!("FAILED {} {other:?}", h.id()),
        }
    }
    let d = rt.schedules().describe("tick").expect("describe");
    if d.runs != runs as u64 {
        eprintln!("schedule started {} runs, expected {runs}: {d:?}", d.runs);
        std::process::exit(3);
    }
    println!("DONE");
    let _ = std::io::stdout().flush();
}
