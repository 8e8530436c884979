//! Runs order workflows on a store; the crash supervisor kills it.
//!
//! `crash-worker DIR ORDERS INCARNATION [before|applied|after K]`: the store
//! is `CRASH_STORE_URL` (`redb:PATH`, `sled:PATH` or `postgres://...`;
//! default the redb directory `DIR/store`), the effects log `DIR/effects.log`. With a crash
//! point, the committer prints `CHECKPOINT <phase> <K>` when group commit
//! `K` is about to be written (`before`), is written but not yet durable
//! (`applied`: in the log before its fsync, or in an open PostgreSQL
//! transaction) or is durable (`after`), then blocks until the supervisor's
//! SIGKILL arrives.

use std::io::Write;

use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::store::CommitPoint;
use durable_runtime::store::postgres::PgStore;
use durable_runtime::store::redb::RedbStore;
use durable_runtime::store::sled::SledStore;
use durable_runtime::{IdPolicy, Runtime, SignalError, WorkflowCall};
use durable_runtime::{Overlap, Schedule, ScheduleError};
use durable_tests::{
    EFFECTS, EffectsLog, dossier, guard, held, journey, ledger_migration, ledger_v1, ledger_v2,
    nap_migration, nap_v1, nap_v2, order, process_order, side_trip, tick, tick_run,
};

/// Set when `DONE` is printed; the crash hook and `done` print under it, so
/// the supervisor reads either `CHECKPOINT` before `DONE` or no `CHECKPOINT`.
static FINISHED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// Tells the supervisor the workload is complete.
fn done() {
    let mut finished = FINISHED.lock().unwrap_or_else(|e| e.into_inner());
    *finished = true;
    println!("DONE");
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() {
    // errors the engine logs show in the supervisor's output
    durable_tests::log_to_stderr("error");
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
        .unwrap_or_else(|_| format!("redb:{}", dir.join("store").display()));
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
            {
                let finished = FINISHED.lock().unwrap_or_else(|e| e.into_inner());
                if *finished {
                    // a commit after DONE (shutdown's last writes): the
                    // supervisor no longer reads, so nothing to stop for
                    return;
                }
                println!("CHECKPOINT {phase} {k}");
                let _ = std::io::stdout().flush();
            }
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    };
    let workload = std::env::var("CRASH_WORKLOAD").unwrap_or_default();
    if workload == "ledger_v1" {
        // v1 instances waiting at their signal, then a clean exit
        let rt = open_with_hook(Runtime::builder().workflow::<ledger_v1>(), &url, hook).await;
        for i in 0..orders {
            let h = rt
                .start(
                    format!("ledger-{i}"),
                    ledger_v1(i as u32),
                    IdPolicy::UseExisting,
                )
                .await
                .expect("start");
            while h.describe().expect("describe").variant != "Signal" {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        done();
        rt.shutdown().await;
        return;
    }
    if workload == "ledger_v2" {
        // the migration runs inside open: one commit per instance
        let builder = Runtime::builder()
            .workflow::<ledger_v2>()
            .migration(ledger_migration());
        let rt = open_with_hook(builder, &url, hook).await;
        println!("OPEN resumed={}", rt.resumed_on_open());
        let mut handles = Vec::new();
        for i in 0..orders {
            let id = format!("ledger-{i}");
            let _ = rt.signal(&id, "post", &(i as u64 * 10)).await;
            handles.push(rt.handle::<ledger_v2>(id));
        }
        for h in handles {
            match h.result().await {
                Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
                other => println!("FAILED {} {other:?}", h.id()),
            }
        }
        done();
        rt.shutdown().await;
        return;
    }
    // every incarnation's clock starts at 2030-01-01T00:00:00Z
    let clock = std::sync::Arc::new(TestClock::new());
    if workload == "nap_v1" {
        // v1 instances asleep for a day, then a clean exit
        let builder = Runtime::builder().workflow::<nap_v1>().clock(clock.clone());
        let rt = open_with_hook(builder, &url, hook).await;
        for i in 0..orders {
            rt.start(format!("nap-{i}"), nap_v1(i as u32), IdPolicy::UseExisting)
                .await
                .expect("start");
        }
        while rt.running_instances() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        done();
        rt.shutdown().await;
        return;
    }
    if workload == "nap_v2" {
        // open reads no sleeper; two days on, each is migrated as its timer fires
        let builder = Runtime::builder()
            .workflow::<nap_v2>()
            .migration(nap_migration())
            .clock(clock.clone());
        let rt = open_with_hook(builder, &url, hook).await;
        println!("OPEN resumed={}", rt.resumed_on_open());
        clock.advance(std::time::Duration::from_secs(2 * 86_400));
        for i in 0..orders {
            let h = rt.handle::<nap_v2>(format!("nap-{i}"));
            match h.result().await {
                Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
                other => println!("FAILED {} {other:?}", h.id()),
            }
        }
        done();
        rt.shutdown().await;
        return;
    }
    let mut builder = Runtime::builder()
        .workflow::<process_order>()
        .workflow::<journey>()
        .workflow::<side_trip>()
        .workflow::<guard>()
        .workflow::<tick>()
        .workflow::<held>()
        .workflow::<dossier>();
    if workload == "dossier" {
        // a superseded draft is kept for one reset point, then deleted by a
        // later checkpoint: the sweep kills between the two
        builder = builder.reset_points(1);
    }
    let overlap = std::env::var("CRASH_WORKLOAD")
        .ok()
        .and_then(|w| w.strip_prefix("overlap:").map(str::to_owned));
    if std::env::var("CRASH_WORKLOAD").as_deref() == Ok("schedule") || overlap.is_some() {
        builder = builder.clock(clock.clone());
    }
    let rt = open_with_hook(builder, &url, hook).await;
    println!("OPEN resumed={}", rt.resumed_on_open());
    if let Some(policy) = overlap {
        run_overlap(&rt, &clock, &policy).await;
        rt.shutdown().await;
        return;
    }
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
        done();
        rt.shutdown().await;
        return;
    }
    if std::env::var("CRASH_WORKLOAD").as_deref() == Ok("dossier") {
        run_all(&rt, orders, |i| (format!("dossier-{i}"), dossier(i as u32))).await;
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
        // each journey's update sent with its own id on every run: accepted
        // once, its one reply read by every run
        let updaters: Vec<_> = (0..orders)
            .map(|i| {
                let rt = rt.clone();
                tokio::spawn(async move {
                    let id = format!("journey-{i}");
                    let n = i as u32;
                    match rt
                        .update_as(&id, durable_tests::BUMP, "bump-once", &n)
                        .await
                    {
                        Ok(reply) if reply == 2 * n => {}
                        other => panic!("update of {id}: {other:?}"),
                    }
                })
            })
            .collect();
        // each promise completed once its token is handed out (again on
        // every run: a second completion is refused)
        let completer = {
            let (rt, dir) = (rt.clone(), dir.clone());
            tokio::spawn(async move {
                let mut pending: Vec<usize> = (0..orders).collect();
                while !pending.is_empty() {
                    let mut left = Vec::new();
                    for i in pending {
                        let path = durable_tests::token_path(&dir, &format!("journey-{i}"));
                        match std::fs::read_to_string(&path) {
                            Ok(token) => match rt.complete(&token, &(i as u32)).await {
                                Ok(()) | Err(SignalError::AlreadyCompleted { .. }) => {}
                                Err(e) => panic!("complete {token}: {e}"),
                            },
                            Err(_) => left.push(i),
                        }
                    }
                    pending = left;
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            })
        };
        for h in handles {
            match h.result().await {
                Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
                other => println!("FAILED {} {other:?}", h.id()),
            }
        }
        completer.await.expect("the completer");
        for updater in updaters {
            updater.await.expect("an updater");
        }
        done();
        rt.shutdown().await;
        return;
    }
    run_all(&rt, orders, |i| {
        (format!("order-{i}"), process_order(order(i)))
    })
    .await;
    rt.shutdown().await;
}

/// Starts the instances `call` gives for `0..orders` (each id's
/// existing instance if it has one), prints each result as it finishes
/// (`RESULT id output`, or how it failed), then `DONE`.
async fn run_all<W>(rt: &Runtime, orders: usize, call: impl Fn(usize) -> (String, WorkflowCall<W>))
where
    W: durable_runtime::Workflow<Output = Result<String, durable_runtime::WorkflowError>>,
{
    let mut handles = Vec::new();
    for i in 0..orders {
        let (id, call) = call(i);
        let h = rt
            .start(id, call, IdPolicy::UseExisting)
            .await
            .expect("start");
        handles.push(h);
    }
    report(handles).await;
    done();
}

/// Prints each instance's result as it finishes (`RESULT id output`), or
/// how it failed.
async fn report<W>(handles: Vec<durable_runtime::WorkflowHandle<W>>)
where
    W: durable_runtime::Workflow<Output = Result<String, durable_runtime::WorkflowError>>,
{
    for h in handles {
        match h.result().await {
            Ok(Ok(out)) => println!("RESULT {} {out}", h.id()),
            other => println!("FAILED {} {other:?}", h.id()),
        }
    }
}

/// Creates (once) a schedule that runs `tick` every minute, walks the test
/// clock over `runs` minutes and prints each run's result.
async fn run_schedule(rt: &Runtime, clock: &TestClock, runs: usize) {
    // a run that hangs says where, instead of running into the test's timeout
    let limit = std::time::Duration::from_secs(60);
    if tokio::time::timeout(limit, schedule_runs(rt, clock, runs))
        .await
        .is_err()
    {
        eprintln!(
            "schedule workload stuck: {:?}",
            rt.schedules().describe("tick")
        );
        eprintln!(
            "instances: {:?}",
            rt.list(&durable_runtime::ListFilter::default())
        );
        std::process::exit(4);
    }
}

async fn schedule_runs(rt: &Runtime, clock: &TestClock, runs: usize) {
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
    done();
}

/// Waits until schedule `id` has acted on everything due at the clock's time.
async fn acted(rt: &Runtime, clock: &TestClock, id: &str) {
    let now = clock.now();
    loop {
        let d = rt.schedules().describe(id).expect("describe");
        let due = d
            .next_ms
            .first()
            .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_millis(*t));
        if due.is_none_or(|t| t > now) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Schedule `job` (every minute, `policy`) starts `held` at 00:01 and again
/// at 00:02 while the first still holds; then every run the schedule keeps
/// is let finish. Prints each run's end (`absent` if it never started).
async fn run_overlap(rt: &Runtime, clock: &TestClock, policy: &str) {
    let start = clock.now();
    let schedule = Schedule::interval(std::time::Duration::from_secs(60))
        .expect("interval")
        .starting_at(start + std::time::Duration::from_secs(60))
        .overlap(policy.parse().expect("an overlap policy"));
    match rt.schedules().create("job", schedule, held()).await {
        Ok(_) | Err(ScheduleError::AlreadyExists { .. }) => {}
        Err(e) => panic!("create schedule: {e}"),
    }
    for _ in 0..2 {
        clock.advance(std::time::Duration::from_secs(60));
        acted(rt, clock, "job").await;
    }
    // let every run finish, except one the schedule asked to cancel
    loop {
        let d = rt.schedules().describe("job").expect("describe");
        if d.running.is_empty() && d.buffered_ms.is_empty() {
            break;
        }
        let cancelled: Vec<&str> = d
            .recent
            .iter()
            .filter_map(|e| match &e.kind {
                durable_runtime::schedule::ScheduleEventKind::CancelRequested { workflow_id } => {
                    Some(workflow_id.as_str())
                }
                _ => None,
            })
            .collect();
        for run in d
            .running
            .iter()
            .filter(|r| !cancelled.contains(&r.as_str()))
        {
            let _ = rt.signal(run, "finish", &()).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for minute in 1..=2 {
        let id = format!("job@2030-01-01T00:{minute:02}:00Z");
        let end = match rt.handle::<held>(id.clone()).result().await {
            Ok(Ok(out)) => out,
            Ok(Err(_)) => "cancelled".to_owned(),
            Err(durable_runtime::ResultError::NotFound { .. }) => "absent".to_owned(),
            Err(durable_runtime::ResultError::Terminated { .. }) => "terminated".to_owned(),
            Err(e) => format!("error {e}"),
        };
        println!("RESULT {id} {end}");
    }
    let d = rt.schedules().describe("job").expect("describe");
    let started = d
        .recent
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                durable_runtime::schedule::ScheduleEventKind::Started { .. }
            )
        })
        .count();
    println!("STARTED {started} RUNS {}", d.runs);
    done();
}

/// Opens the store `url` names (`redb:DIR`, `sled:DIR` or `postgres://...`) with the
/// crash hook on its commit path.
async fn open_with_hook(
    builder: durable_runtime::Builder,
    url: &str,
    hook: impl Fn(CommitPoint) + Send + Sync + 'static,
) -> Runtime {
    // a restarted worker takes over what its killed predecessor owned at once
    let builder = builder.worker_name("crash-worker");
    if let Some(path) = url.strip_prefix("redb:") {
        let store = RedbStore::open(path).expect("open store");
        store.set_commit_hook(hook);
        builder.open_store(store).await
    } else if let Some(path) = url.strip_prefix("sled:") {
        let store = SledStore::open(path).expect("open store");
        store.set_commit_hook(hook);
        builder.open_store(store).await
    } else {
        let store = PgStore::connect(url).await.expect("open store");
        store.set_commit_hook(hook);
        builder.open_store(store).await
    }
    .expect("open runtime")
}
