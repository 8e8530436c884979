//! `cargo run --release -p durable-bench -- [--quick] [--json FILE] [--only LIST] [--postgres URL] [sizes]`
//!
//! The scenarios of issue #8, on the default embedded store (redb; `--store
//! sled` for sled) with full durability
//! (every transition fdatasync'd before it is acknowledged):
//!
//! 1. `throughput`: the order workflow (4 no-op activities) with 1, 100 and
//!    1,000 in flight;
//! 2. `latency`: one workflow at a time against the raw fsync of the disk;
//! 3. `limit`: the raw sled store (batch + flush + fdatasync, no runtime)
//!    writing the same bytes with the same group-commit sizes as scenario 1;
//! 4. `recovery`: a child process with many workflows in flight is SIGKILLed,
//!    then the time to reopen (all resumed) and to finish them all;
//! 5. `sleepers`: workflows asleep on durable timers: memory, disk, open time
//!    (in a fresh process) and the time to fire many timers due at once;
//! 6. `storage`: bytes per completed instance with its history, and the disk
//!    after retention deleted them;
//! 7. `compiler`: encoded size and encode/decode time of the state enum;
//! 8. `state` (only with `--only state`): the order holding a blob of
//!    `--state-kib` KiB across its awaits, `x` repeated or random letters
//!    (`--state-blob`; see `state_size`);
//! 9. `soak` (only with `--only soak`; with `--postgres URL` on it):
//!    `--soak N` orders in ten waves on
//!    one runtime; memory, bookkeeping left, count and timer-pass times per
//!    wave (see `soak`).
//!
//! Figures, not assertions: the machine is shared and noisy, so every figure
//! is printed with the load average at the time.
//!
//! With `--postgres URL` (an empty database, or one used only by this
//! benchmark) scenario 1 runs on that PostgreSQL store instead, and the
//! sled-only scenarios are skipped; `--only cluster` then runs the orders
//! on 1, 2 and 4 worker processes sharing the database
//! (`--cluster-workers 1,2,4`).

/// `--features mimalloc`: the runtime and the raw replays on mimalloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cluster;
mod soak;
mod state_size;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_bench::{
    HOLD_CHARGE, Order, ProcessOrderState, TRANSITIONS_PER_ORDER, cpu_seconds, dir_bytes, median,
    percentile, process_order, sleeper, status_mib,
};
use durable_runtime::ListFilter;
use durable_runtime::activity::BoxFuture;
use durable_runtime::clock::TestClock;
use durable_runtime::prelude::*;
use durable_runtime::store::StoreStats;
use durable_runtime::store::redb::RedbStore;
use durable_runtime::store::sled::SledStore;

/// The embedded store the runs measure (`--store redb|sled`; default redb).
static STORE_KIND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn store_kind() -> &'static str {
    STORE_KIND.get().map_or("redb", String::as_str)
}

/// An embedded store of the kind under measurement.
#[derive(Clone)]
enum Embedded {
    Redb(RedbStore),
    Sled(SledStore),
}

impl Embedded {
    fn open(dir: &std::path::Path) -> Embedded {
        match store_kind() {
            "sled" => Embedded::Sled(SledStore::open(dir).expect("open sled store")),
            _ => Embedded::Redb(RedbStore::open(dir).expect("open redb store")),
        }
    }

    fn stats(&self) -> StoreStats {
        match self {
            Embedded::Redb(s) => s.stats(),
            Embedded::Sled(s) => s.stats(),
        }
    }

    fn store(&self) -> &dyn Store {
        match self {
            Embedded::Redb(s) => s,
            Embedded::Sled(s) => s,
        }
    }
}

impl Store for Embedded {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        self.store().commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store().get(key)
    }
    fn stats(&self) -> Option<StoreStats> {
        Some(Embedded::stats(self))
    }
    fn store_metrics(&self) -> Option<durable_runtime::store::StoreMetrics> {
        self.store().store_metrics()
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.store().counters()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.store().scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.store().scan_from(prefix, from, limit)
    }
}
use durable_runtime::store::{Batch, KeyValue, Store, StoreError};
use serde::Serialize;

/// Sizes of every scenario, from the defaults, `--quick` and the flags.
#[derive(Debug, Clone, Serialize)]
struct Sizes {
    workflows: usize,
    in_flight: Vec<usize>,
    latency: usize,
    recovery: usize,
    sleepers: usize,
    fire: usize,
    /// sled's cache for the process that opens the sleepers (MiB; `None`: sled's default).
    sleeper_cache_mib: Option<u64>,
    storage: usize,
    codec_iterations: usize,
    repeat: usize,
    /// The blob sizes of scenario 8 (KiB).
    state_kib: Vec<usize>,
    state_blob: Vec<durable_bench::Blob>,
    /// Orders of scenario 9, and its page cache (MiB).
    soak: usize,
    soak_cache_mib: u64,
}

struct Args {
    sizes: Sizes,
    json: Option<String>,
    only: Option<Vec<String>>,
    quick: bool,
    /// Scenario 1 on this PostgreSQL database instead of the embedded store.
    postgres: Option<String>,
    /// The embedded store: `redb` (the default) or `sled`.
    store: String,
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn number(args: &[String], name: &str, default: usize) -> usize {
    match flag(args, name) {
        Some(v) => v.replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("{name} takes a number, not {v:?}");
            std::process::exit(2)
        }),
        None => default,
    }
}

fn parse_args(args: &[String]) -> Args {
    let quick = args.iter().any(|a| a == "--quick");
    let d = |full: usize, small: usize| if quick { small } else { full };
    let sizes = Sizes {
        workflows: number(args, "--workflows", d(10_000, 300)),
        in_flight: flag(args, "--in-flight")
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 100, 1000]),
        latency: number(args, "--latency", d(500, 30)),
        recovery: number(args, "--recovery", d(100_000, 1_000)),
        sleepers: number(args, "--sleepers", d(100_000, 1_000)),
        fire: number(args, "--fire", d(100_000, 500)),
        sleeper_cache_mib: flag(args, "--sleeper-cache-mib")
            .map(|_| number(args, "--sleeper-cache-mib", 0) as u64),
        storage: number(args, "--storage", d(10_000, 200)),
        codec_iterations: d(200_000, 2_000),
        repeat: number(args, "--repeat", 1).max(1),
        state_kib: flag(args, "--state-kib")
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![0, 1, 4, 16, 64, 256]),
        state_blob: flag(args, "--state-blob")
            .map(|v| {
                v.split(',')
                    .filter_map(|b| match b.trim() {
                        "x" => Some(durable_bench::Blob::Repeated),
                        "random" => Some(durable_bench::Blob::Random),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![durable_bench::Blob::Repeated, durable_bench::Blob::Random]),
        soak: number(args, "--soak", d(200_000, 5_000)),
        soak_cache_mib: number(args, "--soak-cache-mib", 32) as u64,
    };
    Args {
        sizes,
        json: flag(args, "--json"),
        only: flag(args, "--only").map(|v| v.split(',').map(str::to_owned).collect()),
        postgres: flag(args, "--postgres"),
        store: flag(args, "--store").unwrap_or_else(|| "redb".into()),
        quick,
    }
}

/// The 1-minute load average, to print beside each figure.
fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn delta(after: StoreStats, before: StoreStats) -> StoreStats {
    StoreStats {
        commits: after.commits - before.commits,
        flushes: after.flushes - before.flushes,
        fsyncs: after.fsyncs - before.fsyncs,
        checkpoints: after.checkpoints - before.checkpoints,
        writes: after.writes - before.writes,
        bytes: after.bytes - before.bytes,
    }
}

// ---------------------------------------------------------------- 1. throughput

#[derive(Debug, Clone, Serialize)]
struct Throughput {
    in_flight: usize,
    workflows: usize,
    seconds: f64,
    workflows_per_s: f64,
    activity_steps_per_s: f64,
    transitions_per_s: f64,
    fsyncs_per_s: f64,
    transitions_per_fsync: f64,
    cpu_ms_per_workflow: f64,
    /// Commit-path counters of the run, what scenario 3 replays.
    commits: u64,
    flushes: u64,
    writes: u64,
    bytes: u64,
    load: f64,
    /// Every commit's writes (sled runs), for scenario 3 to replay.
    #[serde(skip)]
    recorded: Vec<Writes>,
}

/// One commit's writes: keys set (`Some`) or removed (`None`).
type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The writes of each commit, in commit order, as the runtime sent them.
type Recorded = Arc<std::sync::Mutex<Vec<Writes>>>;

/// sled, with every commit's writes kept aside so scenario 3 can replay the
/// very keys and values of scenario 1's run (the copy is made on the
/// runtime's side: it counts against the runtime, never for it).
#[derive(Clone)]
struct Recorder {
    inner: Embedded,
    log: Recorded,
}

impl Store for Recorder {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        if let Ok(mut log) = self.log.lock() {
            log.push(batch.writes.clone());
        }
        self.inner.commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn stats(&self) -> Option<StoreStats> {
        Some(self.inner.stats())
    }
    fn store_metrics(&self) -> Option<durable_runtime::store::StoreMetrics> {
        self.inner.store_metrics()
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.inner.counters()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan_from(prefix, from, limit)
    }
}

async fn open_orders(dir: &std::path::Path) -> (Arc<Runtime>, Embedded) {
    let store = Embedded::open(dir);
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open_store(store.clone())
        .await
        .expect("open runtime");
    (Arc::new(rt), store)
}

/// Runs orders `first..first + n` with at most `in_flight` at once.
async fn run_orders(rt: &Arc<Runtime>, first: usize, n: usize, in_flight: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in first..first + n {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let rt = rt.clone();
        tasks.spawn(async move {
            let h = rt
                .start(
                    format!("order-{i}"),
                    process_order(Order::numbered(i)),
                    IdPolicy::Reject,
                )
                .await
                .expect("start");
            h.result().await.expect("result").expect("workflow ok");
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while let Some(t) = tasks.join_next().await {
        t.expect("task");
    }
}

async fn shutdown(rt: Arc<Runtime>) {
    match Arc::try_unwrap(rt) {
        Ok(rt) => rt.shutdown().await,
        Err(_) => eprintln!("runtime still shared at shutdown"),
    }
}

/// The store scenario 1 measures: sled in a temp directory, or PostgreSQL.
enum BenchStore {
    Sled(Embedded),
    Postgres(durable_runtime::store::postgres::PgStore),
}

impl BenchStore {
    fn stats(&self) -> StoreStats {
        match self {
            BenchStore::Sled(s) => s.stats(),
            BenchStore::Postgres(s) => s.stats(),
        }
    }
}

async fn throughput(in_flight: usize, workflows: usize, postgres: Option<&str>) -> Throughput {
    let dir = tempfile::tempdir().expect("temp dir");
    let recorded: Recorded = Arc::default();
    let (rt, store) = match postgres {
        None => {
            let store = Embedded::open(dir.path());
            let recorder = Recorder {
                inner: store.clone(),
                log: recorded.clone(),
            };
            let rt = Runtime::builder()
                .workflow::<process_order>()
                .open_store(recorder)
                .await
                .expect("open runtime");
            (Arc::new(rt), BenchStore::Sled(store))
        }
        Some(url) => {
            let store = durable_runtime::store::postgres::PgStore::connect(url)
                .await
                .expect("open postgres store");
            let rt = Runtime::builder()
                .workflow::<process_order>()
                .open_store(store.clone())
                .await
                .expect("open runtime");
            (Arc::new(rt), BenchStore::Postgres(store))
        }
    };
    let before = store.stats();
    // what opening wrote is not part of the run
    recorded.lock().expect("recorder").clear();
    let cpu = cpu_seconds();
    let started = Instant::now();
    run_orders(&rt, 0, workflows, in_flight).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    let s = delta(store.stats(), before);
    let recorded = std::mem::take(&mut *recorded.lock().expect("recorder"));
    shutdown(rt).await;
    let w = workflows as f64;
    Throughput {
        in_flight,
        workflows,
        seconds,
        workflows_per_s: w / seconds,
        activity_steps_per_s: 4.0 * w / seconds,
        transitions_per_s: s.commits as f64 / seconds,
        fsyncs_per_s: s.fsyncs as f64 / seconds,
        transitions_per_fsync: s.commits as f64 / s.fsyncs.max(1) as f64,
        cpu_ms_per_workflow: cpu * 1000.0 / w,
        commits: s.commits,
        flushes: s.flushes,
        writes: s.writes,
        bytes: s.bytes,
        load: load(),
        recorded,
    }
}

// ---------------------------------------------------------------- 2. latency

#[derive(Debug, Clone, Serialize)]
struct Latency {
    workflows: usize,
    p50_ms: f64,
    p99_ms: f64,
    raw_fsync_p50_ms: f64,
    /// The same small write and `fdatasync` inside a file already that
    /// long (what the log's appends are, in the zeros it is extended by
    /// ahead of its records): no new file size to write.
    raw_overwrite_fsync_p50_ms: f64,
    per_step_ms: f64,
    per_step_overhead_ms: f64,
    /// The step's time above the overwrite's fsync.
    per_step_overhead_over_overwrite_ms: f64,
    ratio_step_to_fsync: f64,
    load: f64,
}

/// The disk's own fsync latency for a small append (median, ms).
fn raw_fsync_ms(dir: &std::path::Path, samples: usize) -> f64 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw-fsync"))
        .expect("file");
    let times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&[7u8; 256]).expect("write");
            f.sync_data().expect("fsync");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(&times)
}

/// The disk's own fsync latency for a small write inside a file
/// (median, ms): the file's size does not change.
fn raw_overwrite_fsync_ms(dir: &std::path::Path, samples: usize) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = dir.join("raw-overwrite-fsync");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .expect("file");
    const SPACE: u64 = 1 << 20;
    if f.metadata().expect("metadata").len() < SPACE {
        f.write_all_at(&vec![0; SPACE as usize], 0).expect("write");
        f.sync_all().expect("fsync");
    }
    let times: Vec<f64> = (0..samples as u64)
        .map(|i| {
            let t = Instant::now();
            f.write_all_at(&[7u8; 256], (i * 256) % (SPACE - 256))
                .expect("write");
            f.sync_data().expect("fsync");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(&times)
}

async fn latency(workflows: usize) -> Latency {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, _store) = open_orders(&dir.path().join("db")).await;
    let mut times = Vec::with_capacity(workflows);
    let (mut raw, mut overwrite) = (Vec::new(), Vec::new());
    // the raw fsync is sampled between workflows, so both see the same disk and load
    for i in 0..workflows {
        let t = Instant::now();
        let h = rt
            .start(
                format!("order-{i}"),
                process_order(Order::numbered(i)),
                IdPolicy::Reject,
            )
            .await
            .expect("start");
        h.result().await.expect("result").expect("ok");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if i % 10 == 0 {
            raw.push(raw_fsync_ms(dir.path(), 10));
            overwrite.push(raw_overwrite_fsync_ms(dir.path(), 10));
        }
    }
    shutdown(rt).await;
    times.sort_by(f64::total_cmp);
    let raw = median(&raw);
    let overwrite = median(&overwrite);
    let p50 = percentile(&times, 0.5);
    let per_step = p50 / TRANSITIONS_PER_ORDER as f64;
    Latency {
        workflows,
        p50_ms: p50,
        p99_ms: percentile(&times, 0.99),
        raw_fsync_p50_ms: raw,
        raw_overwrite_fsync_p50_ms: overwrite,
        per_step_ms: per_step,
        per_step_overhead_ms: per_step - raw,
        per_step_overhead_over_overwrite_ms: per_step - overwrite,
        ratio_step_to_fsync: per_step / raw.max(1e-9),
        load: load(),
    }
}

// ---------------------------------------------------------------- 3. the limit

#[derive(Debug, Clone, Serialize)]
struct Limit {
    in_flight: usize,
    commits: u64,
    commits_per_flush: f64,
    writes_per_commit: f64,
    bytes_per_write: f64,
    raw_seconds: f64,
    raw_commits_per_s: f64,
    /// sled replaying the run's own commits (its keys, values and order)
    /// in groups of the same size: what sled does for exactly this work.
    same_keys_commits_per_s: f64,
    runtime_transitions_per_s: f64,
    runtime_pct_of_raw: f64,
    runtime_pct_of_same_keys: f64,
    load: f64,
}

/// A fresh sled store and a second handle of its data file, for fdatasync.
fn raw_sled() -> (tempfile::TempDir, sled::Db, std::fs::File) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .open()
        .expect("open sled");
    let data = std::fs::File::options()
        .read(true)
        .open(dir.path().join("db"))
        .expect("sled data file");
    (dir, db, data)
}

/// Applies `batch`, then makes it durable as the store's commit thread does.
fn raw_commit(db: &sled::Db, data: &std::fs::File, batch: sled::Batch) {
    db.apply_batch(batch).expect("apply");
    db.flush().expect("flush");
    data.sync_data().expect("fdatasync");
}

/// sled alone replaying run `t`'s commits as they were sent, `group` per
/// `apply_batch`: commits per second.
fn replay_run(t: &Throughput, group: usize) -> f64 {
    let (_dir, db, data) = raw_sled();
    let started = Instant::now();
    for commits in t.recorded.chunks(group.max(1)) {
        let mut batch = sled::Batch::default();
        for (key, value) in commits.iter().flatten() {
            match value {
                Some(v) => batch.insert(key.as_slice(), v.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        raw_commit(&db, &data, batch);
    }
    t.recorded.len() as f64 / started.elapsed().as_secs_f64()
}

/// sled alone, as the store's commit thread drives it but without the
/// runtime: the same number of commits, writes and bytes as run `t`, in
/// groups of the same mean size; each group one `apply_batch`, `flush` and
/// `fdatasync`. A commit's first write overwrites its workflow's record key
/// (5 commits per workflow), the others add new keys (history events).
fn raw_limit(t: &Throughput) -> Limit {
    let (_dir, db, data) = raw_sled();
    let commits = t.commits.max(1);
    let group = (t.commits as f64 / t.flushes.max(1) as f64)
        .round()
        .max(1.0) as u64;
    let per_commit = t.writes as f64 / commits as f64;
    let per_write = t.bytes as f64 / t.writes.max(1) as f64;
    let started = Instant::now();
    let mut c = 0u64;
    let mut seq = 0u64;
    while c < commits {
        let mut batch = sled::Batch::default();
        let end = (c + group).min(commits);
        for commit in c..end {
            let wf = commit / TRANSITIONS_PER_ORDER;
            let key = format!("i{wf:012}").into_bytes();
            let value = vec![0x5a; (per_write as usize).saturating_sub(key.len()).max(1)];
            batch.insert(key, value);
            // the writes spread over the commits as evenly as the run's were
            let writes = ((commit + 1) as f64 * per_commit).round() as u64
                - (commit as f64 * per_commit).round() as u64;
            for _ in 1..writes.max(1) {
                seq += 1;
                let key = format!("h{wf:012}{seq:016}").into_bytes();
                let value = vec![0xa5; (per_write as usize).saturating_sub(key.len()).max(1)];
                batch.insert(key, value);
            }
        }
        raw_commit(&db, &data, batch);
        c = end;
    }
    let raw_seconds = started.elapsed().as_secs_f64();
    let raw = commits as f64 / raw_seconds;
    let same_keys = replay_run(t, group as usize);
    Limit {
        in_flight: t.in_flight,
        commits,
        commits_per_flush: group as f64,
        writes_per_commit: per_commit,
        bytes_per_write: per_write,
        raw_seconds,
        raw_commits_per_s: raw,
        runtime_transitions_per_s: t.transitions_per_s,
        same_keys_commits_per_s: same_keys,
        runtime_pct_of_raw: 100.0 * t.transitions_per_s / raw,
        runtime_pct_of_same_keys: 100.0 * t.transitions_per_s / same_keys,
        load: load(),
    }
}

// ---------------------------------------------------------------- 4. recovery

#[derive(Debug, Clone, Serialize)]
struct Recovery {
    workflows: usize,
    child_start_seconds: f64,
    resumed: usize,
    open_seconds: f64,
    all_completed_seconds: f64,
    rss_mib_after_open: f64,
    load: f64,
}

/// The child: starts `n` orders that stop in `charge`, says so, and waits
/// for its SIGKILL.
async fn recovery_child(dir: &str, n: usize) {
    HOLD_CHARGE.store(true, std::sync::atomic::Ordering::SeqCst);
    let (rt, _store) = open_orders(std::path::Path::new(dir)).await;
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(1000));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let rt = rt.clone();
        tasks.spawn(async move {
            rt.start(
                format!("order-{i}"),
                process_order(Order::numbered(i)),
                IdPolicy::Reject,
            )
            .await
            .expect("start");
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // a moment for some to reach later steps
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("READY {}", started.elapsed().as_secs_f64());
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

async fn recovery(n: usize) -> Recovery {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("own path");
    let mut child = std::process::Command::new(exe)
        .arg("--recovery-child")
        .arg(dir.path())
        .arg(n.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let mut child_start_seconds = f64::NAN;
    let out = child.stdout.take().expect("child stdout");
    for line in BufReader::new(out).lines() {
        let line = line.expect("child output");
        if let Some(s) = line.strip_prefix("READY ") {
            child_start_seconds = s.parse().unwrap_or(f64::NAN);
            break;
        }
    }
    child.kill().expect("SIGKILL the child"); // std's kill is SIGKILL
    child.wait().expect("reap the child");
    let opened = Instant::now();
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open(dir.path())
        .await
        .expect("reopen");
    let open_seconds = opened.elapsed().as_secs_f64();
    let rss_mib_after_open = status_mib("VmRSS");
    let resumed = rt.resumed_on_open();
    for i in 0..n {
        rt.handle::<process_order>(format!("order-{i}"))
            .result()
            .await
            .expect("result")
            .expect("ok");
    }
    let all_completed_seconds = opened.elapsed().as_secs_f64();
    rt.shutdown().await;
    Recovery {
        workflows: n,
        child_start_seconds,
        resumed,
        open_seconds,
        all_completed_seconds,
        rss_mib_after_open,
        load: load(),
    }
}

// ---------------------------------------------------------------- 5. sleepers

#[derive(Debug, Clone, Serialize)]
struct Sleepers {
    workflows: usize,
    fired: usize,
    start_seconds: f64,
    tasks_while_asleep: usize,
    rss_mib_creator: f64,
    disk_bytes_per_instance: f64,
    /// Measured in a fresh process that opens the store.
    open_seconds: f64,
    rss_mib_after_open: f64,
    peak_rss_mib: f64,
    fire_seconds: f64,
    rss_mib_after_fire: f64,
    cache_mib: Option<u64>,
    load: f64,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct OpenReport {
    open_seconds: f64,
    rss_mib_after_open: f64,
    peak_rss_mib: f64,
    fire_seconds: f64,
    rss_mib_after_fire: f64,
}

fn sleeper_clock() -> Arc<TestClock> {
    Arc::new(TestClock::new())
}

/// The child: opens a store of sleepers (with sled's cache bounded to
/// `cache_mib`, if given), then fires the first `fire`.
async fn sleepers_child(dir: &str, fire: usize, cache_mib: Option<u64>) {
    let clock = sleeper_clock();
    let opened = Instant::now();
    let mut builder = Runtime::builder()
        .workflow::<sleeper>()
        .clock(clock.clone());
    if let Some(mib) = cache_mib {
        builder = builder.cache_capacity(mib << 20);
    }
    let rt = builder.open(dir).await.expect("open");
    let open_seconds = opened.elapsed().as_secs_f64();
    let rss_mib_after_open = status_mib("VmRSS");
    let fired = Instant::now();
    clock.advance(Duration::from_secs(31 * 86_400));
    for i in 0..fire {
        rt.handle::<sleeper>(format!("s{i}"))
            .result()
            .await
            .expect("result")
            .expect("ok");
    }
    let fire_seconds = fired.elapsed().as_secs_f64();
    let report = OpenReport {
        open_seconds,
        rss_mib_after_open,
        peak_rss_mib: status_mib("VmHWM"),
        fire_seconds,
        rss_mib_after_fire: status_mib("VmRSS"),
    };
    println!(
        "{}",
        serde_json::to_string(&report).expect("encode the report")
    );
    rt.shutdown().await;
}

/// Creates `n` sleepers in `dir`, the first `fire` due in 30 days, the
/// others in 60: the creation time, the tasks left running once all are
/// asleep, and this process's RSS then.
async fn create_sleepers(dir: &std::path::Path, n: usize, fire: usize) -> (f64, usize, f64) {
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<sleeper>()
            .clock(sleeper_clock())
            .open(dir)
            .await
            .expect("open runtime"),
    );
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(1000));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let rt = rt.clone();
        // the first `fire` sleep 30 days, the others 60: a 31-day jump fires `fire`
        let days = if i < fire { 30 } else { 60 };
        tasks.spawn(async move {
            rt.start(format!("s{i}"), sleeper(i as u64, days), IdPolicy::Reject)
                .await
                .expect("start");
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let start_seconds = started.elapsed().as_secs_f64();
    while rt.running_instances() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tasks_while_asleep = rt.running_instances();
    let rss_mib_creator = status_mib("VmRSS");
    shutdown(rt).await;
    (start_seconds, tasks_while_asleep, rss_mib_creator)
}

async fn sleepers(n: usize, fire: usize, cache_mib: Option<u64>) -> Sleepers {
    let fire = fire.min(n);
    let dir = tempfile::tempdir().expect("temp dir");
    let (start_seconds, tasks_while_asleep, rss_mib_creator) =
        create_sleepers(dir.path(), n, fire).await;
    let (apparent, _) = dir_bytes(dir.path());
    let exe = std::env::current_exe().expect("own path");
    let mut child = std::process::Command::new(exe);
    child
        .arg("--sleepers-child")
        .arg(dir.path())
        .arg(fire.to_string());
    if let Some(mib) = cache_mib {
        child.arg(mib.to_string());
    }
    let out = child.output().expect("run the child");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: OpenReport = text
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "the child reported nothing: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    Sleepers {
        workflows: n,
        fired: fire,
        start_seconds,
        tasks_while_asleep,
        rss_mib_creator,
        disk_bytes_per_instance: apparent as f64 / n as f64,
        open_seconds: report.open_seconds,
        rss_mib_after_open: report.rss_mib_after_open,
        peak_rss_mib: report.peak_rss_mib,
        fire_seconds: report.fire_seconds,
        rss_mib_after_fire: report.rss_mib_after_fire,
        cache_mib,
        load: load(),
    }
}

// ---------------------------------------------------------------- 6. storage

#[derive(Debug, Clone, Serialize)]
struct Storage {
    workflows: usize,
    history_events_per_instance: f64,
    bytes_written_per_instance: f64,
    disk_empty: (u64, u64),
    disk_after_run: (u64, u64),
    disk_bytes_per_instance: f64,
    deleted_by_retention: usize,
    retention_seconds: f64,
    disk_after_retention: (u64, u64),
    disk_after_reopen: (u64, u64),
    disk_after_second_run: (u64, u64),
    load: f64,
}

async fn storage(n: usize) -> Storage {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, store) = open_orders(dir.path()).await;
    let disk_empty = dir_bytes(dir.path());
    let before = store.stats();
    run_orders(&rt, 0, n, 100).await;
    let s = delta(store.stats(), before);
    let events = rt
        .history("order-0")
        .map(|h| h.len() as f64)
        .unwrap_or(f64::NAN);
    shutdown(rt).await;
    drop(store);
    let disk_after_run = dir_bytes(dir.path());
    // retention with nothing kept: every completed instance goes, with its history
    let pruned = Instant::now();
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .retention(Duration::ZERO)
        .open(dir.path())
        .await
        .expect("reopen with retention");
    let deleted = loop {
        let left = rt.list(&ListFilter::default()).expect("list").len();
        if left == 0 || pruned.elapsed() > Duration::from_secs(600) {
            break n - left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let retention_seconds = pruned.elapsed().as_secs_f64();
    rt.shutdown().await;
    let disk_after_retention = dir_bytes(dir.path());
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .open(dir.path())
        .await
        .expect("reopen");
    rt.shutdown().await;
    let disk_after_reopen = dir_bytes(dir.path());
    // the same number again: is the freed space reused?
    let (rt, _store) = open_orders(dir.path()).await;
    run_orders(&rt, n, n, 100).await;
    shutdown(rt).await;
    let disk_after_second_run = dir_bytes(dir.path());
    Storage {
        workflows: n,
        history_events_per_instance: events,
        bytes_written_per_instance: s.bytes as f64 / n as f64,
        disk_empty,
        disk_after_run,
        disk_bytes_per_instance: disk_after_run.0.saturating_sub(disk_empty.0) as f64 / n as f64,
        deleted_by_retention: deleted,
        retention_seconds,
        disk_after_retention,
        disk_after_reopen,
        disk_after_second_run,
        load: load(),
    }
}

// ---------------------------------------------------------------- 7. compiler cost

#[derive(Debug, Clone, Serialize)]
struct Compiler {
    variant: &'static str,
    postcard_bytes: usize,
    json_bytes: usize,
    encode_ns: f64,
    decode_ns: f64,
}

/// The state enum as the driver stores it (markers store nothing, so the
/// command types do not change the bytes).
/// What each variant awaits, for a state built by hand: a command marker
/// (stores nothing).
type Awaits = durable_runtime::__private::Marker<durable_runtime::command::Now>;
type State = ProcessOrderState<Awaits, Awaits, Awaits, Awaits>;

fn compiler(iterations: usize) -> Vec<Compiler> {
    use durable_runtime::codec;
    let order = Order::numbered(123_456);
    let states: Vec<(&'static str, State)> = vec![
        (
            "Start",
            ProcessOrderState::Start {
                order: order.clone(),
            },
        ),
        (
            "CheckFraud",
            ProcessOrderState::CheckFraud {
                order: order.clone(),
                __await: Default::default(),
            },
        ),
        (
            "Charge",
            ProcessOrderState::Charge {
                order,
                __await: Default::default(),
            },
        ),
        (
            "Ship",
            ProcessOrderState::Ship {
                __await: Default::default(),
            },
        ),
    ];
    states
        .into_iter()
        .map(|(variant, state)| {
            let bytes = codec::encode(&state).expect("encode");
            let json_bytes = serde_json::to_vec(&state).expect("json").len();
            let t = Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(codec::encode(std::hint::black_box(&state)).expect("encode"));
            }
            let encode_ns = t.elapsed().as_nanos() as f64 / iterations as f64;
            let t = Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(
                    codec::decode::<State>(std::hint::black_box(&bytes)).expect("decode"),
                );
            }
            let decode_ns = t.elapsed().as_nanos() as f64 / iterations as f64;
            Compiler {
                variant,
                postcard_bytes: bytes.len(),
                json_bytes,
                encode_ns,
                decode_ns,
            }
        })
        .collect()
}

// ---------------------------------------------------------------- report

#[derive(Debug, Default, Serialize)]
struct Report {
    machine: Machine,
    sizes: Option<Sizes>,
    throughput: Vec<Throughput>,
    latency: Vec<Latency>,
    limit: Vec<Limit>,
    recovery: Option<Recovery>,
    sleepers: Option<Sleepers>,
    storage: Option<Storage>,
    compiler: Vec<Compiler>,
    cluster: Vec<cluster::ClusterRun>,
    state: Vec<state_size::StateSize>,
    soak: Vec<soak::Wave>,
}

#[derive(Debug, Default, Serialize)]
struct Machine {
    cpus: usize,
    kernel: String,
    mem_total_mib: f64,
    load_at_start: f64,
    load_at_end: f64,
    /// The process's allocator: `system` (glibc) or `mimalloc`.
    allocator: &'static str,
}

fn machine() -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        mem_total_mib: mem_kib / 1024.0,
        load_at_start: load(),
        load_at_end: 0.0,
        allocator: if cfg!(feature = "mimalloc") {
            "mimalloc"
        } else {
            "system"
        },
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn print_report(r: &Report) {
    let m = &r.machine;
    println!(
        "machine: {} cpus, {:.1} GiB, Linux {}; {} allocator; load average {:.2} at start, {:.2} at end",
        m.cpus,
        m.mem_total_mib / 1024.0,
        m.kernel,
        m.allocator,
        m.load_at_start,
        m.load_at_end
    );
    if !r.throughput.is_empty() {
        println!(
            "\n1. throughput: order workflow (4 no-op activities), {} store, one log fdatasync per group commit",
            store_kind()
        );
        println!(
            "{:>9} {:>9} {:>9} {:>10} {:>13} {:>9} {:>11} {:>10} {:>5}",
            "in flight",
            "workflows",
            "wf/s",
            "steps/s",
            "transitions/s",
            "fsyncs/s",
            "trans/fsync",
            "cpu ms/wf",
            "load"
        );
        for t in &r.throughput {
            println!(
                "{:>9} {:>9} {:>9.0} {:>10.0} {:>13.0} {:>9.0} {:>11.1} {:>10.3} {:>5.2}",
                t.in_flight,
                t.workflows,
                t.workflows_per_s,
                t.activity_steps_per_s,
                t.transitions_per_s,
                t.fsyncs_per_s,
                t.transitions_per_fsync,
                t.cpu_ms_per_workflow,
                t.load
            );
        }
    }
    for l in &r.latency {
        println!(
            "\n2. latency, {} workflows one at a time: p50 {:.2} ms, p99 {:.2} ms; per transition {:.3} ms; raw fsync p50 {:.3} ms (same run); overhead {:.3} ms per step = {:.2}x the raw fsync; raw fsync inside the file {:.3} ms, overhead above it {:.3} ms (load {:.2})",
            l.workflows,
            l.p50_ms,
            l.p99_ms,
            l.per_step_ms,
            l.raw_fsync_p50_ms,
            l.per_step_overhead_ms,
            l.ratio_step_to_fsync,
            l.raw_overwrite_fsync_p50_ms,
            l.per_step_overhead_over_overwrite_ms,
            l.load
        );
    }
    if !r.limit.is_empty() {
        println!(
            "\n3. the limit: raw sled (apply_batch + flush + fdatasync, no runtime), same commits, writes, bytes and group sizes"
        );
        println!(
            "   appending: synthetic keys that only ever append (sled's cheapest case); same keys: the run's own commits replayed"
        );
        println!(
            "{:>9} {:>10} {:>11} {:>10} {:>11} {:>14} {:>15} {:>13} {:>12} {:>12} {:>5}",
            "in flight",
            "commits",
            "per flush",
            "writes/c",
            "bytes/write",
            "appending c/s",
            "same keys c/s",
            "runtime tr/s",
            "% appending",
            "% same keys",
            "load"
        );
        for l in &r.limit {
            println!(
                "{:>9} {:>10} {:>11.1} {:>10.1} {:>11.0} {:>14.0} {:>15.0} {:>13.0} {:>11.1}% {:>11.1}% {:>5.2}",
                l.in_flight,
                l.commits,
                l.commits_per_flush,
                l.writes_per_commit,
                l.bytes_per_write,
                l.raw_commits_per_s,
                l.same_keys_commits_per_s,
                l.runtime_transitions_per_s,
                l.runtime_pct_of_raw,
                l.runtime_pct_of_same_keys,
                l.load
            );
        }
    }
    if let Some(x) = &r.recovery {
        println!(
            "\n4. recovery: {} in flight (started by the child in {:.1} s), SIGKILL; reopen resumed {} in {:.2} s; all completed {:.2} s after open; RSS after open {:.0} MiB (load {:.2})",
            x.workflows,
            x.child_start_seconds,
            x.resumed,
            x.open_seconds,
            x.all_completed_seconds,
            x.rss_mib_after_open,
            x.load
        );
    }
    if let Some(s) = &r.sleepers {
        println!(
            "\n5. idle: {} asleep on durable timers (started in {:.1} s, {} tasks while asleep, creator RSS {:.0} MiB); {:.0} disk bytes each; fresh process (sled cache {}): open {:.2} s, RSS {:.0} MiB after open, peak {:.0} MiB; {} timers due at once fired and finished in {:.2} s, RSS {:.0} MiB then (load {:.2})",
            s.workflows,
            s.start_seconds,
            s.tasks_while_asleep,
            s.rss_mib_creator,
            s.disk_bytes_per_instance,
            s.cache_mib
                .map_or_else(|| "default".to_owned(), |m| format!("{m} MiB")),
            s.open_seconds,
            s.rss_mib_after_open,
            s.peak_rss_mib,
            s.fired,
            s.fire_seconds,
            s.rss_mib_after_fire,
            s.load
        );
    }
    if let Some(s) = &r.storage {
        println!(
            "\n6. storage: {} completed orders, {:.0} history events each, {:.0} bytes written each (keys + values, all checkpoints)",
            s.workflows, s.history_events_per_instance, s.bytes_written_per_instance
        );
        println!(
            "   disk (apparent / allocated MiB): empty {:.1} / {:.1}; after the run {:.1} / {:.1} = {:.0} bytes per instance",
            mib(s.disk_empty.0),
            mib(s.disk_empty.1),
            mib(s.disk_after_run.0),
            mib(s.disk_after_run.1),
            s.disk_bytes_per_instance
        );
        println!(
            "   retention deleted {} in {:.2} s; after it {:.1} / {:.1}; after a reopen {:.1} / {:.1}; after {} more orders {:.1} / {:.1} (load {:.2})",
            s.deleted_by_retention,
            s.retention_seconds,
            mib(s.disk_after_retention.0),
            mib(s.disk_after_retention.1),
            mib(s.disk_after_reopen.0),
            mib(s.disk_after_reopen.1),
            s.workflows,
            mib(s.disk_after_second_run.0),
            mib(s.disk_after_second_run.1),
            s.load
        );
    }
    if !r.compiler.is_empty() {
        println!("\n7. compiler cost: process_order's state enum (codec envelope + postcard)");
        println!(
            "{:>11} {:>7} {:>10} {:>10} {:>10}",
            "variant", "bytes", "json bytes", "encode ns", "decode ns"
        );
        for c in &r.compiler {
            println!(
                "{:>11} {:>7} {:>10} {:>10.0} {:>10.0}",
                c.variant, c.postcard_bytes, c.json_bytes, c.encode_ns, c.decode_ns
            );
        }
    }
    cluster::print(&r.cluster);
    state_size::print(&r.state);
    soak::print(&r.soak);
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--recovery-child") {
        let dir = argv.get(i + 1).expect("DIR");
        let n = argv.get(i + 2).and_then(|n| n.parse().ok()).expect("N");
        recovery_child(dir, n).await;
        return;
    }
    if let Some(i) = argv.iter().position(|a| a == "--cluster-worker") {
        let arg = |k: usize| argv.get(i + k).cloned().expect("URL NAME RUN N");
        let n = arg(4).parse().expect("N");
        cluster::worker(&arg(1), &arg(2), &arg(3), n).await;
        return;
    }
    if let Some(i) = argv.iter().position(|a| a == "--state-rss-child") {
        let arg = |k: usize| {
            argv.get(i + k)
                .and_then(|n| n.parse().ok())
                .expect("KIB HELD")
        };
        let blob = match argv.get(i + 3).map(String::as_str) {
            Some("random") => durable_bench::Blob::Random,
            _ => durable_bench::Blob::Repeated,
        };
        state_size::rss_child(arg(1), arg(2), blob).await;
        return;
    }
    if let Some(i) = argv.iter().position(|a| a == "--sleepers-child") {
        let dir = argv.get(i + 1).expect("DIR");
        let fire = argv.get(i + 2).and_then(|n| n.parse().ok()).expect("FIRE");
        let cache_mib = argv.get(i + 3).and_then(|n| n.parse().ok());
        sleepers_child(dir, fire, cache_mib).await;
        return;
    }
    if let Some(i) = argv.iter().position(|a| a == "--sleepers-create") {
        // a store of sleepers kept for repeated `--sleepers-child` runs
        let dir = argv.get(i + 1).expect("DIR");
        let n = argv.get(i + 2).and_then(|n| n.parse().ok()).expect("N");
        let fire = argv.get(i + 3).and_then(|n| n.parse().ok()).expect("FIRE");
        let (secs, _, rss) = create_sleepers(std::path::Path::new(dir), n, fire).await;
        println!("created {n} sleepers in {secs:.1} s (RSS {rss:.0} MiB)");
        return;
    }
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "durable-bench [--quick] [--json FILE] [--store redb|sled] [--postgres URL] [--only throughput,latency,limit,recovery,sleepers,storage,compiler,state,soak]\n  [--workflows N] [--in-flight 1,100,1000] [--latency N] [--recovery N] [--sleepers N] [--fire N] [--sleeper-cache-mib MIB] [--storage N] [--repeat R] [--state-kib 0,1,4,16,64,256] [--state-blob x,random] [--soak N] [--soak-cache-mib M]\n  --sleepers-create DIR N FIRE | --sleepers-child DIR FIRE [CACHE_MIB]: keep a store of sleepers and time its opening"
        );
        return;
    }
    let args = parse_args(&argv);
    let _ = STORE_KIND.set(args.store.clone());
    println!("embedded store: {}", store_kind());
    let sz = args.sizes.clone();
    let wanted = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == name))
    };
    let mut report = Report {
        machine: machine(),
        sizes: Some(sz.clone()),
        ..Report::default()
    };
    if args.quick {
        eprintln!("--quick: small sizes, a smoke run; the figures mean little");
    }
    if let (Some(url), true) = (
        &args.postgres,
        args.only
            .as_ref()
            .is_some_and(|o| o.iter().any(|s| s == "cluster")),
    ) {
        let counts: Vec<usize> = flag(&argv, "--cluster-workers")
            .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 2, 4]);
        for _ in 0..sz.repeat {
            for &k in &counts {
                eprintln!(
                    "cluster: {} workflows on {k} worker processes",
                    sz.workflows
                );
                report
                    .cluster
                    .push(cluster::run(url, sz.workflows, k, load));
            }
        }
    }
    for _ in 0..sz.repeat {
        if args.postgres.is_some() && !wanted("throughput") {
            continue;
        }
        if args.postgres.is_some() {
            // on PostgreSQL: the throughput table only (the rest is sled's)
            for &k in &sz.in_flight {
                eprintln!(
                    "throughput on PostgreSQL: {} workflows, {k} in flight",
                    sz.workflows
                );
                let t = throughput(k, sz.workflows, args.postgres.as_deref()).await;
                report.throughput.push(t);
            }
            continue;
        }
        if wanted("throughput") || wanted("limit") {
            for &k in &sz.in_flight {
                eprintln!("throughput: {} workflows, {k} in flight", sz.workflows);
                let t = throughput(k, sz.workflows, args.postgres.as_deref()).await;
                if wanted("limit") {
                    report.limit.push(raw_limit(&t));
                }
                report.throughput.push(t);
            }
        }
        if wanted("latency") {
            eprintln!("latency: {} workflows one at a time", sz.latency);
            report.latency.push(latency(sz.latency).await);
        }
    }
    if wanted("recovery") {
        eprintln!("recovery: {} in flight, SIGKILL, reopen", sz.recovery);
        report.recovery = Some(recovery(sz.recovery).await);
    }
    if wanted("sleepers") {
        eprintln!("sleepers: {} asleep, {} fired", sz.sleepers, sz.fire);
        report.sleepers = Some(sleepers(sz.sleepers, sz.fire, sz.sleeper_cache_mib).await);
    }
    if wanted("storage") {
        eprintln!("storage: {} orders, then retention", sz.storage);
        report.storage = Some(storage(sz.storage).await);
    }
    if wanted("compiler") {
        report.compiler = compiler(sz.codec_iterations);
    }
    // opt-in: large blobs take a while
    if args
        .only
        .as_ref()
        .is_some_and(|o| o.iter().any(|s| s == "state"))
    {
        for _ in 0..sz.repeat {
            for &kib in &sz.state_kib {
                for &blob in &sz.state_blob {
                    for &k in &sz.in_flight {
                        let n = state_size::count(kib, sz.workflows);
                        eprintln!(
                            "state: {n} orders holding {kib} KiB ({}), {k} in flight",
                            blob.name()
                        );
                        report
                            .state
                            .push(state_size::state_size(kib, blob, k, sz.workflows).await);
                    }
                }
            }
        }
    }
    if args
        .only
        .as_ref()
        .is_some_and(|o| o.iter().any(|s| s == "soak"))
    {
        eprintln!("soak: {} orders in ten waves", sz.soak);
        report.soak = soak::soak(sz.soak, sz.soak_cache_mib, args.postgres.as_deref()).await;
    }
    report.machine.load_at_end = load();
    print_report(&report);
    if let Some(path) = &args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("cannot write {path}: {e}");
                    std::process::exit(1);
                }
            }
            Err(e) => eprintln!("cannot encode the report: {e}"),
        }
    }
}
