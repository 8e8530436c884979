//! `cargo run --release -p durable-bench -- [--quick] [--json FILE] [--postgres URL]`
//!
//! The order workflow (4 sequential no-op activities) on the default sled
//! store with full durability, at 1, 100 and 10,000 workflows in flight:
//! workflows/s, activity steps/s, checkpoints (transitions)/s, fsyncs/s,
//! transitions per fsync (group-commit size) and CPU time per workflow;
//! then the latency of one workflow at a time against the raw fsync of the
//! same disk. Figures, not assertions: the machine is noisy.
//!
//! With `--postgres URL` (an empty database, or one used only by this
//! benchmark) the throughput table runs on that PostgreSQL store instead,
//! and the sled-only parts are skipped.

use std::sync::Arc;
use std::time::Instant;

use durable_runtime::prelude::*;
use durable_runtime::store::sled::SledStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: String,
    cents: u64,
}

#[activity]
async fn check_fraud(order_id: String, cents: u64) -> Result<(), ActivityError> {
    let _ = (order_id, cents);
    Ok(())
}

#[activity]
async fn prepare_shipment(order: Order) -> Result<(), ActivityError> {
    let _ = order;
    Ok(())
}

#[activity]
async fn charge(order_id: String, cents: u64) -> Result<u64, ActivityError> {
    let _ = order_id;
    Ok(cents)
}

#[activity]
async fn ship(order: Order, charged: u64) -> Result<u64, ActivityError> {
    let _ = order;
    Ok(charged)
}

#[workflow]
async fn process_order(order: Order) -> Result<u64, WorkflowError> {
    check_fraud(order.order_id.clone(), order.cents).await?;
    prepare_shipment(order.clone()).await?;
    let charged = charge(order.order_id.clone(), order.cents).await?;
    let shipped = ship(order, charged).await?;
    Ok(shipped)
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // fields after the command: state is 0, utime is 11, stime is 12
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Serialize)]
struct Throughput {
    in_flight: usize,
    workflows: usize,
    seconds: f64,
    workflows_per_s: f64,
    activity_steps_per_s: f64,
    transitions_per_s: f64,
    fsyncs_per_s: f64,
    transitions_per_flush: f64,
    cpu_ms_per_workflow: f64,
}

/// A store to measure: sled in a temp directory, or PostgreSQL at a URL.
enum BenchStore {
    Sled {
        /// Removed with the store.
        _dir: tempfile::TempDir,
        store: SledStore,
    },
    Postgres(durable_runtime::store::postgres::PgStore),
}

impl BenchStore {
    async fn open(postgres: Option<&str>) -> BenchStore {
        match postgres {
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = SledStore::open(dir.path()).expect("open store");
                BenchStore::Sled { _dir: dir, store }
            }
            Some(url) => BenchStore::Postgres(
                durable_runtime::store::postgres::PgStore::connect(url)
                    .await
                    .expect("open postgres store"),
            ),
        }
    }

    fn stats(&self) -> durable_runtime::store::sled::StoreStats {
        match self {
            BenchStore::Sled { store, .. } => store.stats(),
            BenchStore::Postgres(store) => store.stats(),
        }
    }

    async fn runtime(&self) -> Runtime {
        let builder = Runtime::builder().workflow::<process_order>();
        match self {
            BenchStore::Sled { store, .. } => builder.open_store(store.clone()).await,
            BenchStore::Postgres(store) => builder.open_store(store.clone()).await,
        }
        .expect("open runtime")
    }
}

async fn throughput(in_flight: usize, workflows: usize, postgres: Option<&str>) -> Throughput {
    let store = BenchStore::open(postgres).await;
    let rt = Arc::new(store.runtime().await);
    let before = store.stats();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(workflows);
    for i in 0..workflows {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            // ids unique per row: a PostgreSQL database is shared by the rows
            let id = format!("order-{in_flight}-{i}");
            let order = Order {
                order_id: id.clone(),
                cents: i as u64,
            };
            let h = rt
                .start(id, process_order(order), IdPolicy::Reject)
                .await
                .expect("start");
            let out = h.result().await.expect("result").expect("workflow ok");
            drop(permit);
            out
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let after = store.stats();
    let commits = (after.commits - before.commits) as f64;
    let flushes = (after.flushes - before.flushes).max(1) as f64;
    let fsyncs = (after.fsyncs - before.fsyncs) as f64;
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown().await;
    }
    let w = workflows as f64;
    Throughput {
        in_flight,
        workflows,
        seconds,
        workflows_per_s: w / seconds,
        activity_steps_per_s: 4.0 * w / seconds,
        transitions_per_s: commits / seconds,
        fsyncs_per_s: fsyncs / seconds,
        transitions_per_flush: commits / flushes,
        cpu_ms_per_workflow: cpu * 1000.0 / w,
    }
}

#[derive(Serialize)]
struct Latency {
    workflows: usize,
    p50_ms: f64,
    p99_ms: f64,
    raw_fsync_p50_ms: f64,
    per_step_overhead_ms: f64,
    ratio_step_to_fsync: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// The disk's own fsync latency for a small append, in ms.
fn raw_fsync_ms(samples: usize) -> f64 {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw"))
        .expect("file");
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&[7u8; 128]).expect("write");
            f.sync_data().expect("fsync");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    percentile(&times, 0.5)
}

async fn latency(workflows: usize) -> Latency {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open(dir.path())
        .await
        .expect("open runtime");
    let mut times = Vec::with_capacity(workflows);
    for i in 0..workflows {
        let order = Order {
            order_id: format!("order-{i}"),
            cents: i as u64,
        };
        let t = Instant::now();
        let h = rt
            .start(format!("order-{i}"), process_order(order), IdPolicy::Reject)
            .await
            .expect("start");
        h.result().await.expect("result").expect("ok");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    rt.shutdown().await;
    times.sort_by(f64::total_cmp);
    let raw = raw_fsync_ms(500);
    let p50 = percentile(&times, 0.5);
    // 5 checkpoints per workflow: the start and one per activity
    let per_step = p50 / 5.0;
    Latency {
        workflows,
        p50_ms: p50,
        p99_ms: percentile(&times, 0.99),
        raw_fsync_p50_ms: raw,
        per_step_overhead_ms: per_step - raw,
        ratio_step_to_fsync: per_step / raw.max(1e-9),
    }
}

#[workflow]
async fn sleeper(n: u64) -> Result<u64, WorkflowError> {
    sleep(std::time::Duration::from_secs(30 * 86_400)).await?;
    Ok(n)
}

/// Resident memory of this process, from `/proc/self/status`.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[derive(Serialize)]
struct Sleepers {
    workflows: usize,
    start_seconds: f64,
    rss_mib_before: f64,
    rss_mib_asleep: f64,
    running_tasks_asleep: usize,
    disk_bytes_per_instance: f64,
    reopen_seconds: f64,
    fire_all_seconds: f64,
}

/// `n` workflows asleep on a 30-day durable timer: memory and tasks while
/// they sleep, disk per instance, reopen time, and the time to fire them all
/// when a test clock jumps past their due time.
async fn sleepers(n: usize) -> Sleepers {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(durable_runtime::clock::TestClock::new());
    let rss_mib_before = rss_mib();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<sleeper>()
            .clock(clock.clone())
            .open(dir.path())
            .await
            .expect("open runtime"),
    );
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(1000));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            rt.start(format!("s{i}"), sleeper(i as u64), IdPolicy::Reject)
                .await
                .expect("start");
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let start_seconds = started.elapsed().as_secs_f64();
    while rt.running_instances() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rss_mib_asleep = rss_mib();
    let running_tasks_asleep = rt.running_instances();
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown().await;
    }
    let disk_bytes_per_instance = dir_bytes(dir.path()) as f64 / n as f64;
    let reopened = Instant::now();
    let rt = Runtime::builder()
        .workflow::<sleeper>()
        .clock(clock.clone())
        .open(dir.path())
        .await
        .expect("reopen");
    let reopen_seconds = reopened.elapsed().as_secs_f64();
    let fired = Instant::now();
    clock.advance(std::time::Duration::from_secs(31 * 86_400));
    for i in 0..n {
        rt.handle::<sleeper>(format!("s{i}"))
            .result()
            .await
            .expect("result")
            .expect("ok");
    }
    let fire_all_seconds = fired.elapsed().as_secs_f64();
    rt.shutdown().await;
    Sleepers {
        workflows: n,
        start_seconds,
        rss_mib_before,
        rss_mib_asleep,
        running_tasks_asleep,
        disk_bytes_per_instance,
        reopen_seconds,
        fire_all_seconds,
    }
}

#[derive(Serialize)]
struct Report {
    throughput: Vec<Throughput>,
    latency: Latency,
    sleepers: Sleepers,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let postgres = args
        .iter()
        .position(|a| a == "--postgres")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let scale = if quick { 10 } else { 1 };
    let mut rows = Vec::new();
    for (in_flight, workflows) in [(1, 500), (100, 10_000), (10_000, 20_000)] {
        let n = (workflows / scale).max(in_flight.min(workflows));
        rows.push(throughput(in_flight, n, postgres.as_deref()).await);
    }
    if let Some(url) = &postgres {
        println!(
            "order workflow, 4 activities, PostgreSQL ({url}), one transaction per group commit"
        );
        print_rows(&rows);
        return;
    }
    let lat = latency(if quick { 50 } else { 500 }).await;
    let sleep = sleepers(if quick { 10_000 } else { 100_000 }).await;

    println!("order workflow, 4 activities, sled + fdatasync per group commit");
    print_rows(&rows);
    println!(
        "latency, one at a time ({}): p50 {:.2} ms, p99 {:.2} ms; raw fsync p50 {:.3} ms; per checkpoint {:.3} ms = {:.2}x the raw fsync",
        lat.workflows,
        lat.p50_ms,
        lat.p99_ms,
        lat.raw_fsync_p50_ms,
        lat.p50_ms / 5.0,
        lat.ratio_step_to_fsync
    );
    println!(
        "{} workflows asleep on durable timers: started in {:.1}s; RSS {:.0} MiB before, {:.0} MiB asleep, {} tasks; {:.0} disk bytes each; reopen {:.2}s; all fired and finished in {:.1}s",
        sleep.workflows,
        sleep.start_seconds,
        sleep.rss_mib_before,
        sleep.rss_mib_asleep,
        sleep.running_tasks_asleep,
        sleep.disk_bytes_per_instance,
        sleep.reopen_seconds,
        sleep.fire_all_seconds
    );
    if let Some(path) = json {
        write_json(
            &path,
            Report {
                throughput: rows,
                latency: lat,
                sleepers: sleep,
            },
        );
    }
}

fn write_json(path: &str, report: Report) {
    match serde_json::to_string_pretty(&report) {
        Ok(text) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("cannot write {path}: {e}");
            }
        }
        Err(e) => eprintln!("cannot encode report: {e}"),
    }
}

fn print_rows(rows: &[Throughput]) {
    println!(
        "{:>9} {:>9} {:>10} {:>12} {:>14} {:>10} {:>12} {:>12}",
        "in flight",
        "workflows",
        "wf/s",
        "steps/s",
        "checkpoints/s",
        "fsyncs/s",
        "ckpt/flush",
        "cpu ms/wf"
    );
    for r in rows {
        println!(
            "{:>9} {:>9} {:>10.0} {:>12.0} {:>14.0} {:>10.0} {:>12.1} {:>12.3}",
            r.in_flight,
            r.workflows,
            r.workflows_per_s,
            r.activity_steps_per_s,
            r.transitions_per_s,
            r.fsyncs_per_s,
            r.transitions_per_flush,
            r.cpu_ms_per_workflow
        );
    }
}
