//! The soak, sized for CI: short workflows finish wave after wave, and
//! what the process holds stays flat as they pile up in the store.
//!
//! After each wave (every instance ended, no task left) it reads the bytes
//! the process has allocated and not freed (an allocator that counts them,
//! this binary's only), the per-instance bookkeeping left in the engine
//! (`Runtime::resident`) and the keys of the due-timer index (what every
//! timer pass walks). The heap may grow while caches and pools reach their
//! working size (the first waves); past them it must not grow with the
//! instances finished. The full-size runs (`durable-bench --only soak`,
//! 200,000 orders on redb and 100,000 on PostgreSQL) and their figures are
//! in `docs/performance.md` and `docs/deployment.md`.
//!
//! One test runs everything in order, on redb then PostgreSQL, with the
//! negative control between: the allocator counts the whole process, so
//! nothing else may run beside it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use durable_runtime::Phase;
use durable_runtime::prelude::*;
use durable_runtime::store::Store;
use durable_runtime::store::postgres::{PgOptions, PgStore};
use durable_runtime::store::redb::RedbStore;
use durable_runtime::testing::backends::Backend;

#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Waves of each run, and instances per wave.
const WAVES: usize = 12;
const PER_WAVE: usize = 200;
/// Waves that may grow the heap: caches and pools filling up. The pools
/// are kept small so that they fill within it: redb's page cache (64 KiB),
/// tokio's blocking threads (redb's reads run there; each thread holds a
/// little heap), PostgreSQL's connections (each prepares its statements
/// once).
const WARM_UP: usize = 3;
/// What the heap may grow by per instance finished after the warm-up.
/// An entry left per instance (its id in a map) is several times this.
const BUDGET_PER_INSTANCE: f64 = 32.0;
/// What the negative control leaks per instance (an id-sized string in a
/// list): what a forgotten map entry costs.
const LEAK_BYTES: usize = 96;

/// Set for the negative control: every order leaves `LEAK_BYTES` behind.
static LEAKING: AtomicBool = AtomicBool::new(false);
static LEAKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[activity]
async fn check(id: u64) -> Result<u64, ActivityError> {
    if LEAKING.load(Ordering::SeqCst) {
        LEAKED
            .lock()
            .expect("leak list")
            .push("x".repeat(LEAK_BYTES));
    }
    Ok(id)
}

#[activity]
async fn reserve(id: u64) -> Result<u64, ActivityError> {
    Ok(id + 1)
}

#[activity]
async fn charge(id: u64) -> Result<u64, ActivityError> {
    Ok(id * 2)
}

#[activity]
async fn ship(charged: u64) -> Result<u64, ActivityError> {
    Ok(charged + 1)
}

/// The order workflow's shape: four activities one after the other.
#[workflow]
async fn short_order(id: u64) -> Result<u64, WorkflowError> {
    let id = check(id).await?;
    let reserved = reserve(id).await?;
    let charged = charge(reserved).await?;
    Ok(ship(charged).await?)
}

/// What one wave left.
#[derive(Debug)]
struct Wave {
    finished: usize,
    heap_bytes: usize,
    resident: usize,
    timer_keys: usize,
}

/// Runs `WAVES` waves of short orders, 50 in flight, on `store`.
async fn waves(store: Arc<dyn Store>) -> Vec<Wave> {
    let rt = Runtime::builder()
        .workflow::<short_order>()
        .open_store(store.clone())
        .await
        .expect("open the runtime");
    let mut rows = Vec::new();
    for wave in 0..WAVES {
        let first = wave * PER_WAVE;
        let slots = Arc::new(tokio::sync::Semaphore::new(50));
        let mut tasks = tokio::task::JoinSet::new();
        for i in first..first + PER_WAVE {
            let permit = slots.clone().acquire_owned().await.expect("slot");
            let rt = rt.clone();
            tasks.spawn(async move {
                let id = format!("soak-{i}");
                let handle = rt
                    .start(&id, short_order(i as u64), IdPolicy::Reject)
                    .await
                    .expect("start");
                let out = tokio::time::timeout(std::time::Duration::from_secs(60), handle.result())
                    .await
                    .expect("an order finishes within a minute")
                    .expect("result")
                    .expect("the order succeeds");
                assert_eq!(out, (i as u64 + 1) * 2 + 1);
                drop(permit);
            });
        }
        while let Some(task) = tasks.join_next().await {
            task.expect("order task");
        }
        // every task gone (they end just after their result is stored)
        for _ in 0..5000 {
            if rt.running_instances() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(
            rt.running_instances(),
            0,
            "instance tasks left after wave {wave}"
        );
        // a quiet moment: redb applies the writes that wait in memory for
        // its tree (up to 32 groups) after 1 ms without commits
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let counts = rt.counts_by_phase().expect("counts by phase");
        let completed: usize = counts
            .iter()
            .filter(|(phase, _)| *phase == Phase::Completed)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            completed,
            first + PER_WAVE,
            "counts after wave {wave}: {counts:?}"
        );
        rows.push(Wave {
            finished: first + PER_WAVE,
            heap_bytes: HEAP.allocated(),
            resident: rt.resident().iter().map(|(_, n)| n).sum(),
            timer_keys: store.scan_prefix(b"t").expect("timer index").len(),
        });
    }
    rt.shutdown().await;
    rows
}

/// Whether the waves stayed flat: no bookkeeping and no timer key left
/// after any wave, and past the warm-up the heap's growth from one wave to
/// the next, per instance, at most `BUDGET_PER_INSTANCE` in the median
/// wave. A leak grows the heap in every wave; a buffer or a pool reaching a
/// new high-water mark (the largest group of checkpoints so far) grows it
/// in a few, which the median passes over.
fn flat(rows: &[Wave]) -> Result<(), String> {
    for row in rows {
        if row.resident != 0 || row.timer_keys != 0 {
            return Err(format!(
                "left behind after {} instances: {row:?}",
                row.finished
            ));
        }
    }
    let mut growth: Vec<f64> = rows[WARM_UP - 1..]
        .windows(2)
        .map(|w| (w[1].heap_bytes as f64 - w[0].heap_bytes as f64) / PER_WAVE as f64)
        .collect();
    growth.sort_by(f64::total_cmp);
    let median = growth[growth.len() / 2];
    if median > BUDGET_PER_INSTANCE {
        return Err(format!(
            "the heap grew {median:.1} bytes per instance finished in the median wave (budget {BUDGET_PER_INSTANCE}): {rows:#?}"
        ));
    }
    Ok(())
}

fn print(what: &str, rows: &[Wave]) {
    eprintln!("{what}: finished / heap KiB / bookkeeping left / timer keys");
    for r in rows {
        eprintln!(
            "  {:>6} {:>10.1} {:>3} {:>3}",
            r.finished,
            r.heap_bytes as f64 / 1024.0,
            r.resident,
            r.timer_keys
        );
    }
}

/// redb with its page cache bounded (the store's own default, 256 MiB,
/// fills as the file grows: a cache, not a leak).
async fn redb_store(dir: &std::path::Path) -> Arc<dyn Store> {
    let dir = dir.to_owned();
    let store =
        tokio::task::spawn_blocking(move || RedbStore::open_with_cache(dir, Some(64 << 10)))
            .await
            .expect("open task")
            .expect("open redb");
    Arc::new(store)
}

#[test]
fn finished_instances_pile_up_while_memory_and_the_timer_index_stay_flat() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(soak());
}

async fn soak() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rows = waves(redb_store(&dir.path().join("flat")).await).await;
    print("redb", &rows);
    flat(&rows).expect("redb: flat");

    // negative control: an order that leaves a little behind is caught
    LEAKING.store(true, Ordering::SeqCst);
    let rows = waves(redb_store(&dir.path().join("leaking")).await).await;
    LEAKING.store(false, Ordering::SeqCst);
    print("redb, each order leaking", &rows);
    let caught = flat(&rows).expect_err("a leak of one small string per instance is caught");
    assert!(caught.contains("bytes per instance"), "{caught}");
    LEAKED.lock().expect("leak list").clear();

    let db = Backend::Postgres.store();
    let store = PgStore::connect_with(db.url(), PgOptions::default().pool_size(2))
        .await
        .expect("open postgres");
    let rows = waves(Arc::new(store)).await;
    print("postgres", &rows);
    flat(&rows).expect("postgres: flat");
}
