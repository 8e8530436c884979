//! The default store (redb + the write-ahead log) on a simulated disk
//! (`store::faults::SimFs`): an I/O fault (EIO, ENOSPC, a torn write) or a
//! power cut at **every call index** of a workload, then a power cut that
//! drops every unsynced byte, then a reboot. Each point must keep every
//! acknowledged start and result, re-run no activity whose completion was
//! durable, and finish every instance after the reboot. The same sweep
//! over a store made unsafe (a skipped sync, a retried failed sync) must
//! find a loss: the negative controls.
//!
//! Two workloads: `chain` (three activities in a row) and `journey` (an
//! activity, a timer, a signal, a select a timer wins, a child workflow, a
//! `join_all`, a `#[helper]` running two activities and a saga
//! compensation).
//!
//! CI sweeps every call index of the fault kinds marked `every` below and
//! every few indexes of the others; `DURABLE_FULL_SWEEP=1` sweeps every
//! index of every kind (figures in `docs/reliability.md`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use durable_runtime::command::Either;
use durable_runtime::prelude::*;
use durable_runtime::store::faults::{Fault, Loss, SimFs};
use durable_runtime::store::fs::{Fs, FsFile, RealFs};
use durable_runtime::store::redb::RedbStore;
use durable_runtime::store::sled::SledStore;
use durable_runtime::store::{Batch, Store, StoreError, Unsafe};
use durable_runtime::testing::key_step;
use durable_runtime::{ListFilter, ResultError, Status};

/// (sweep run, idempotency key) of every activity execution.
static EXECUTIONS: LazyLock<Mutex<Vec<(String, String)>>> = LazyLock::new(Default::default);

#[activity(max_attempts = 2, initial_interval_ms = 1)]
async fn work(run: String, n: u32) -> Result<u32, ActivityError> {
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    EXECUTIONS.lock().unwrap().push((run, key));
    Ok(n + 1)
}

#[workflow]
async fn chain(run: String, start: u32) -> Result<u32, WorkflowError> {
    let a = work(run.clone(), start).await?;
    let b = work(run.clone(), a).await?;
    let c = work(run, b).await?;
    Ok(c)
}

#[workflow]
async fn side(run: String) -> Result<u32, WorkflowError> {
    Ok(work(run, 100).await?)
}

/// Two activities in a loop, in a helper: its state nested in the
/// journey's checkpoints.
#[helper]
async fn twice(run: String, from: u32) -> Result<u32, WorkflowError> {
    let mut n = from;
    for _ in 0..2 {
        n = work(run.clone(), n).await?;
    }
    Ok(n)
}

#[workflow]
async fn journey(run: String, i: u32) -> Result<String, WorkflowError> {
    let first = work(run.clone(), i).await?;
    sleep(Duration::from_millis(2)).await?;
    let go: u32 = signal("go").await?;
    // nobody sends "never": the timer wins
    let waited = match select(signal::<u32>("never"), sleep(Duration::from_millis(2))).await {
        Either::Left(_) => 1000,
        Either::Right(_) => 0,
    };
    let side = side(run.clone()).await??;
    let calls: Vec<_> = (0..3).map(|n| work(run.clone(), n)).collect();
    let parts = join_all(calls).limit(2).await;
    let mut total = first + go + waited + side;
    for part in parts {
        total += part?;
    }
    total += twice(run.clone(), 10).await?;
    let mut saga = Saga::new();
    saga.add(work(run, 7));
    let undone = saga.compensate().await;
    Ok(format!("{total} undone {}", undone.len()))
}

/// What the sweep runs: instances `w0`, `w1`, `w2` of one workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// `chain`: three activities in a row.
    Chain,
    /// `journey`: every kind of await, a child and parts.
    Journey,
}

impl Workload {
    /// Starts instance `w{i}` (or finds it).
    async fn start(self, rt: &Runtime, run: &str, i: u32) -> Result<String, String> {
        let id = format!("w{i}");
        let started = match self {
            Workload::Chain => rt
                .start(&id, chain(run.to_owned(), i * 10), IdPolicy::UseExisting)
                .await
                .map(|h| h.id().to_owned()),
            Workload::Journey => rt
                .start(&id, journey(run.to_owned(), i), IdPolicy::UseExisting)
                .await
                .map(|h| h.id().to_owned()),
        };
        started.map_err(|e| e.to_string())
    }

    /// What a started instance needs from outside: the journey's signal
    /// (sent again after the reboot: a second one is never awaited).
    async fn drive(self, rt: &Runtime, id: &str, i: u32) {
        if self == Workload::Journey {
            let _ = rt.signal(id, "go", &i).await;
        }
    }

    /// Instance `id`'s output, as text.
    async fn result(self, rt: &Runtime, id: &str) -> Result<String, String> {
        match self {
            Workload::Chain => match rt.handle::<chain>(id).result().await {
                Ok(Ok(v)) => Ok(v.to_string()),
                other => Err(format!("{other:?}")),
            },
            Workload::Journey => match rt.handle::<journey>(id).result().await {
                Ok(Ok(v)) => Ok(v),
                other => Err(format!("{other:?}")),
            },
        }
    }

    /// What an unfaulted run of `w{i}` returns.
    fn expected(self, i: u32) -> String {
        match self {
            Workload::Chain => (i * 10 + 3).to_string(),
            // first (i + 1) + go (i) + the timer won (0) + side (101) + parts
            // (1 + 2 + 3) + the helper (10 + 1 + 1)
            Workload::Journey => format!("{} undone 1", (i + 1) + i + 101 + 6 + 12),
        }
    }
}

const WORKFLOWS: u32 = 3;
const DIR: &str = "/sim/store";

/// After a fault, the power is cut this many calls later.
const CUT_AFTER: u64 = 4;

/// What one point of the sweep found.
struct Point {
    /// Whether the planned fault fired (past the end of the workload's
    /// calls it does not).
    fired: bool,
    /// Calls the run made.
    calls: u64,
}

async fn open_runtime(fs: &SimFs, unsafe_mode: Unsafe, resume: bool) -> Result<Runtime, String> {
    let fs: Arc<dyn Fs> = Arc::new(fs.clone());
    let store = tokio::task::spawn_blocking(move || RedbStore::open_with_fs(fs, DIR, unsafe_mode))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Runtime::builder()
        .workflow::<chain>()
        .workflow::<journey>()
        .workflow::<side>()
        .resume_on_open(resume)
        .open_store(store)
        .await
        .map_err(|e| e.to_string())
}

/// One fault at call `index` of `workload`, then a power cut with `loss`,
/// a reboot and a run to completion; `Err` names the first broken
/// guarantee.
async fn fault_at(
    workload: Workload,
    index: u64,
    fault: Fault,
    loss: Loss,
    unsafe_mode: Unsafe,
) -> Result<Point, String> {
    let run = format!("{workload:?}-{index}-{fault:?}-{loss:?}-{unsafe_mode:?}");
    let fs = SimFs::new();
    fs.plan(index, fault);
    if fault != Fault::PowerCut {
        // the power goes out a few calls later, before any checkpoint at
        // close could cover up what the fault did
        fs.plan(index + CUT_AFTER, Fault::PowerCut);
    }
    let mut acked_starts = Vec::new();
    let mut acked_results = HashMap::new();
    if let Ok(rt) = open_runtime(&fs, unsafe_mode, true).await {
        for i in 0..WORKFLOWS {
            if let Ok(id) = workload.start(&rt, &run, i).await {
                acked_starts.push((id, i));
            }
        }
        for (id, i) in &acked_starts {
            workload.drive(&rt, id, *i).await;
        }
        for (id, _) in &acked_starts {
            // a result is acknowledged only if it was readable while the store lived
            if let Ok(Ok(v)) =
                tokio::time::timeout(Duration::from_secs(2), workload.result(&rt, id)).await
            {
                acked_results.insert(id.clone(), v);
            }
        }
        rt.shutdown().await;
    }
    let point = Point {
        fired: fs.fired(),
        calls: fs.calls(),
    };

    // the power goes out: only what a sync covered survives
    let rebooted = fs.after_power_cut(loss);
    let inspect = open_runtime(&rebooted, Unsafe::No, false)
        .await
        .map_err(|e| format!("reopening after the power cut: {e}"))?;
    for (id, _) in &acked_starts {
        match inspect.describe(id) {
            Ok(d) => {
                if acked_results.contains_key(id) && d.status != Status::Completed {
                    return Err(format!(
                        "{id}: result acknowledged but status {:?} after the power cut",
                        d.status
                    ));
                }
            }
            Err(ResultError::NotFound { .. }) => {
                return Err(format!(
                    "{id}: start acknowledged but lost in the power cut"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    // what was durable of every instance, children included: its step,
    // and which parts of the step it awaits had finished
    let durable: HashMap<String, (u64, Vec<bool>)> = inspect
        .list(&ListFilter::default())
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|d| (d.id, (d.step, d.parts_done)))
        .collect();
    inspect.shutdown().await;
    let before = executions_of(&run).len();

    let rt = open_runtime(&rebooted.after_restart(), Unsafe::No, true)
        .await
        .map_err(|e| format!("reopening to finish: {e}"))?;
    for i in 0..WORKFLOWS {
        let id = workload.start(&rt, &run, i).await?;
        workload.drive(&rt, &id, i).await;
        let out = tokio::time::timeout(Duration::from_secs(20), workload.result(&rt, &id))
            .await
            .map_err(|_| format!("{id} did not finish after the reboot"))??;
        if out != workload.expected(i) {
            return Err(format!("{id}: {out}, expected {}", workload.expected(i)));
        }
    }
    rt.shutdown().await;
    for key in executions_of(&run).into_iter().skip(before) {
        let (id, step, part) = key_step(&key).ok_or_else(|| format!("bad key {key}"))?;
        let Some((durable_step, parts_done)) = durable.get(&id) else {
            continue;
        };
        if step < *durable_step {
            return Err(format!(
                "{id}: activity of step {step} ran again though step {durable_step} was durable"
            ));
        }
        if step == *durable_step && part.is_some_and(|p| parts_done.get(p) == Some(&true)) {
            return Err(format!(
                "{id}: part {part:?} of step {step} ran again though its result was durable"
            ));
        }
    }
    Ok(point)
}

fn executions_of(run: &str) -> Vec<String> {
    EXECUTIONS
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == run)
        .map(|(_, k)| k.clone())
        .collect()
}

fn full_sweep() -> bool {
    std::env::var("DURABLE_FULL_SWEEP").is_ok_and(|v| v == "1")
}

/// Sweeps `fault` over every `stride`-th call index until the fault no
/// longer fires; panics at the first broken guarantee. Returns the points.
async fn sweep(workload: Workload, fault: Fault, loss: impl Fn(u64) -> Loss, stride: u64) -> u64 {
    let stride = if full_sweep() { 1 } else { stride };
    let mut points = 0;
    let mut index = 0;
    loop {
        let point = fault_at(workload, index, fault, loss(index), Unsafe::No)
            .await
            .unwrap_or_else(|e| panic!("{workload:?}, {fault:?} at call {index}: {e}"));
        if !point.fired {
            println!(
                "{workload:?}, {fault:?}: {points} points swept, {} calls in a run",
                point.calls
            );
            return points;
        }
        points += 1;
        index += stride;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_at_every_call_loses_nothing_acknowledged() {
    // every call; each unsynced write lost whole
    let points = sweep(Workload::Chain, Fault::PowerCut, |_| Loss::All, 1).await;
    assert!(
        points > 50,
        "the sweep must cover the workload, covered {points}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_that_tears_unsynced_writes_loses_nothing_acknowledged() {
    // unsynced writes each kept, lost or torn, unsynced names kept or lost
    let points = sweep(Workload::Chain, Fault::PowerCut, Loss::Some, 2).await;
    assert!(points > 25, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eio_at_every_call_loses_nothing_acknowledged() {
    let points = sweep(Workload::Chain, Fault::Eio, |_| Loss::All, 1).await;
    assert!(points > 50, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_any_call_loses_nothing_acknowledged() {
    let points = sweep(Workload::Chain, Fault::Enospc, |_| Loss::All, 3).await;
    assert!(points > 15, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_write_at_any_call_loses_nothing_acknowledged() {
    let points = sweep(Workload::Chain, Fault::TornWrite, Loss::Some, 3).await;
    assert!(points > 15, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_loses_nothing_acknowledged_at_a_power_cut_at_any_call() {
    let points = sweep(Workload::Journey, Fault::PowerCut, |_| Loss::All, 2).await;
    assert!(points > 40, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_loses_nothing_acknowledged_at_a_torn_power_cut_at_any_call() {
    let points = sweep(Workload::Journey, Fault::PowerCut, Loss::Some, 5).await;
    assert!(points > 15, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_loses_nothing_acknowledged_at_an_io_error_at_any_call() {
    let points = sweep(Workload::Journey, Fault::Eio, |_| Loss::All, 4).await;
    assert!(points > 20, "covered {points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_loses_nothing_acknowledged_at_a_full_disk_or_a_torn_write() {
    let full = sweep(Workload::Journey, Fault::Enospc, |_| Loss::All, 9).await;
    let torn = sweep(Workload::Journey, Fault::TornWrite, Loss::Some, 9).await;
    assert!(full > 9 && torn > 9, "covered {full} and {torn}");
}

/// The negative controls: the same checks over an unsafe store must fail
/// somewhere, or the sweep proves nothing. Whether a point of `indexes`
/// fails them (the sweep stops at the first).
async fn caught(
    workload: Workload,
    fault: Fault,
    unsafe_mode: Unsafe,
    indexes: impl Iterator<Item = u64>,
) -> bool {
    // one point where the check fails is what a negative control needs:
    // the sweep stops there (going on only made a slow machine time out)
    for index in indexes {
        if fault_at(workload, index, fault, Loss::All, unsafe_mode)
            .await
            .is_err()
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_catches_a_store_that_skips_one_sync() {
    let mut found = false;
    for group in 2..8 {
        found = caught(
            Workload::Chain,
            Fault::PowerCut,
            Unsafe::SkipSync(group),
            0..200,
        )
        .await;
        if found {
            break;
        }
    }
    assert!(
        found,
        "acknowledging without a sync must lose something the sweep sees"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_sweep_catches_a_store_that_skips_one_sync() {
    let mut found = false;
    // which groups hold an activity's result (whose loss a re-run shows)
    // depends on how the commits were gathered, which depends on timing:
    // a wide range, searched until the first catch
    for group in 1..14 {
        found = caught(
            Workload::Journey,
            Fault::PowerCut,
            Unsafe::SkipSync(group),
            // every index: only a cut right after the skipped group's
            // acknowledgement, before a later sync covers its bytes, loses it
            0..160,
        )
        .await;
        if found {
            break;
        }
    }
    assert!(
        found,
        "acknowledging without a sync must lose something the journey's sweep sees"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_catches_a_store_that_empties_its_log_before_applying_what_waits_in_memory() {
    let found = caught(
        Workload::Chain,
        Fault::PowerCut,
        Unsafe::CheckpointBeforeApply,
        0..200,
    )
    .await;
    assert!(
        found,
        "a checkpoint that leaves acknowledged groups only in memory must lose something the sweep sees"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_catches_a_store_that_retries_a_failed_sync() {
    let found = caught(
        Workload::Chain,
        Fault::Eio,
        Unsafe::RetryAfterFailure,
        0..200,
    )
    .await;
    assert!(
        found,
        "retrying a failed fsync must lose something the sweep sees"
    );
}

/// The real file system, except that syncs of files named `name` fail
/// with EIO once `armed`.
#[derive(Debug, Clone)]
struct FailingSync {
    name: &'static str,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct FailingFile {
    inner: Arc<dyn FsFile>,
    fails: bool,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl FsFile for FailingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, out)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if self.fails && self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        self.inner.sync_data()
    }
}

impl Fs for FailingSync {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(FailingFile {
            inner: RealFs.open(path, create)?,
            fails: path.file_name().is_some_and(|n| n == self.name),
            armed: self.armed.clone(),
        }))
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        RealFs.exists(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        RealFs.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        RealFs.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        RealFs.lock(path)
    }
}

async fn put(store: &dyn Store, key: &[u8]) -> Result<(), StoreError> {
    let mut b = Batch::default();
    b.put(key.to_vec(), vec![1; 64]);
    store.commit(b).await
}

/// After a failed sync of sled's data file (in the upkeep after a group,
/// or in a checkpoint), no later commit is accepted: Linux reports a
/// write-back error once, so a retried sync would succeed and the next
/// checkpoint would empty the log of groups only those pages held.
async fn sled_after_a_failed_data_sync(unsafe_mode: Unsafe) -> Vec<Result<(), StoreError>> {
    let dir = tempfile::tempdir().unwrap();
    let fs = FailingSync {
        name: "db",
        armed: Arc::default(),
    };
    let store = SledStore::open_with_fs(Arc::new(fs.clone()), dir.path(), unsafe_mode).unwrap();
    put(&store, b"before").await.unwrap();
    // past the upkeep's 10 ms between syncs
    tokio::time::sleep(Duration::from_millis(30)).await;
    fs.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    // more than sled's 512 KiB buffer, so sled writes its file and the
    // upkeep after the group syncs it; the sync fails
    let mut big = Batch::default();
    for i in 0..2_000u32 {
        big.put(i.to_be_bytes().to_vec(), vec![3; 400]);
    }
    let mut results = vec![store.commit(big).await];
    tokio::time::sleep(Duration::from_millis(20)).await;
    fs.armed.store(false, std::sync::atomic::Ordering::SeqCst);
    for i in 0..3u8 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        results.push(put(&store, &[b'a', i]).await);
    }
    results
}

#[tokio::test]
async fn sled_refuses_every_commit_after_a_failed_sync_of_its_data_file() {
    let results = sled_after_a_failed_data_sync(Unsafe::No).await;
    // the group itself was durable in the log before the upkeep ran
    assert!(results[0].is_ok(), "{results:?}");
    for r in &results[1..] {
        match r {
            Err(e @ StoreError::Failed { cause }) => {
                assert!(cause.contains("upkeep"), "{e}");
                assert!(e.to_string().contains("open the store again"), "{e}");
            }
            other => panic!("expected the store to refuse, got {other:?}"),
        }
    }
    // the negative control: retrying, the commits go on (what the test catches)
    let unsafe_results = sled_after_a_failed_data_sync(Unsafe::RetryAfterFailure).await;
    assert!(
        unsafe_results.iter().all(Result::is_ok),
        "{unsafe_results:?}"
    );
}

#[tokio::test]
async fn a_failed_log_sync_refuses_later_commits_and_a_reopen_recovers() {
    let fs = SimFs::new();
    let store = RedbStore::open_with_fs(Arc::new(fs.clone()), DIR, Unsafe::No).unwrap();
    put(&store, b"a").await.unwrap();
    // the next call is the log's append, the one after it its sync
    fs.plan(1, Fault::Eio);
    let failed = put(&store, b"b").await.unwrap_err();
    assert!(matches!(failed, StoreError::Io { .. }), "{failed}");
    assert_eq!(failed.raw_os_error(), Some(5));
    let refused = put(&store, b"c").await.unwrap_err();
    assert!(matches!(refused, StoreError::Failed { .. }), "{refused}");
    drop(store);
    let store =
        RedbStore::open_with_fs(Arc::new(fs.after_power_cut(Loss::All)), DIR, Unsafe::No).unwrap();
    assert!(store.get(b"a").unwrap().is_some());
    assert_eq!(store.get(b"c").unwrap(), None);
    put(&store, b"d").await.unwrap();
}

#[tokio::test]
async fn a_directory_of_another_store_kind_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    match RedbStore::open(dir.path()) {
        Err(e @ StoreError::WrongKind { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("holds a sled store") && text.contains("sled:"),
                "{text}"
            );
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
    // and the other way round; the runtime opens each with its own kind
    let other = tempfile::tempdir().unwrap();
    drop(RedbStore::open(other.path()).unwrap());
    assert!(matches!(
        SledStore::open(other.path()),
        Err(StoreError::WrongKind { .. })
    ));
    let rt = Runtime::builder().open(dir.path()).await.unwrap();
    rt.shutdown().await;
}

#[tokio::test]
async fn a_damaged_log_record_with_valid_records_after_it_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("durable.wal");
    {
        let store = RedbStore::open(dir.path()).unwrap();
        put(&store, b"a").await.unwrap();
        put(&store, b"b").await.unwrap();
        // keep the log's records: copy it before the close checkpoints
        std::fs::copy(&log, dir.path().join("saved")).unwrap();
    }
    std::fs::rename(dir.path().join("saved"), &log).unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    // the first record's payload, past the file header (24) and its header (16)
    bytes[24 + 16 + 2] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    match RedbStore::open(dir.path()) {
        Err(e @ StoreError::CorruptFile { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("durable.wal") && text.contains("offset 24"),
                "{text}"
            );
        }
        other => panic!("expected CorruptFile, got {other:?}"),
    }
    // a torn last record (nothing valid after it) is dropped, not refused
    bytes[24 + 16 + 2] ^= 0xff;
    let cut = bytes.len() - 3;
    std::fs::write(&log, &bytes[..cut]).unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    assert!(store.get(b"a").unwrap().is_some());
}

#[tokio::test]
async fn a_store_path_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match RedbStore::open(&file) {
        Err(e @ StoreError::Io { .. }) => assert!(e.to_string().contains("not-a-dir"), "{e}"),
        other => panic!("expected an I/O error naming the path, got {other:?}"),
    }
}

/// `durable export` writes its file with `write_durably`: the file and its
/// name survive a power cut right after it returns. A plain write (what
/// export did before) does not: the negative control.
#[test]
fn an_exported_file_survives_a_power_cut_right_after_it_is_written() {
    use durable_runtime::store::fs::write_durably;
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/out")).unwrap();
    write_durably(&fs, Path::new("/out/order.snapshot"), b"snapshot bytes").unwrap();
    let rebooted = fs.after_power_cut(Loss::All);
    assert_eq!(
        rebooted.read(Path::new("/out/order.snapshot")).unwrap(),
        b"snapshot bytes"
    );

    let careless = SimFs::new();
    careless.create_dir_all(Path::new("/out")).unwrap();
    let file = careless
        .open(Path::new("/out/order.snapshot"), true)
        .unwrap();
    file.write_at(0, b"snapshot bytes").unwrap();
    let rebooted = careless.after_power_cut(Loss::All);
    assert!(rebooted.read(Path::new("/out/order.snapshot")).is_err());
}
