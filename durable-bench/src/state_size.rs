//! Scenario 8, `state` (`--only state [--state-kib 0,1,4,16,64,256]`): the
//! cost of a transition against the size of the state. The order workflow
//! holds an order carrying a blob of K KiB across its four awaits (the
//! activities take only the id): workflows per second at 1 and 100 in
//! flight, bytes written per transition, disk per finished instance, and
//! memory per running instance. The blob is `x` over and over, as the
//! peers' bench sends it, or random letters that do not compress
//! (`--state-blob x,random`). `STATE_KIB=0,64 bash bench/compare.sh` runs
//! Restate with the same `BLOB_KB` values beside it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use durable_bench::{Blob, CHARGING, HOLD_CHARGE, HeldOrder, TRANSITIONS_PER_ORDER, hold_order};
use durable_runtime::prelude::*;
use serde::Serialize;

use super::{Embedded, delta, dir_bytes, load, shutdown, status_mib};

/// One size at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub(super) struct StateSize {
    pub(super) kib: usize,
    /// What the blob holds.
    pub(super) blob: Blob,
    pub(super) in_flight: usize,
    pub(super) workflows: usize,
    pub(super) workflows_per_s: f64,
    /// Bytes the runtime handed the store per transition (keys and values).
    pub(super) bytes_per_transition: f64,
    /// The store's directory after the run, per finished instance.
    pub(super) disk_bytes_per_instance: f64,
    /// Resident memory per instance held running (at `charge`), KiB.
    pub(super) rss_kib_per_running: f64,
    pub(super) load: f64,
}

/// How many workflows a size runs: `workflows`, fewer for large blobs (at
/// most ~256 MiB of inputs), never under 100.
pub(super) fn count(kib: usize, workflows: usize) -> usize {
    let cap = (256 * 1024 / kib.max(1)).max(100);
    workflows.min(cap)
}

async fn open(dir: &std::path::Path) -> (Arc<Runtime>, Embedded) {
    let store = Embedded::open(dir);
    let rt = Runtime::builder()
        .workflow::<hold_order>()
        .open_store(store.clone())
        .await
        .expect("open runtime");
    (Arc::new(rt), store)
}

/// Runs `n` held orders of `kib` KiB, `in_flight` at once, and checks each
/// one's result (the blob came back whole).
async fn run(rt: &Arc<Runtime>, n: usize, kib: usize, blob: Blob, in_flight: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let rt = rt.clone();
        tasks.spawn(async move {
            let h = rt
                .start(
                    format!("held-{i}"),
                    hold_order(HeldOrder::numbered(i, kib, blob)),
                    IdPolicy::Reject,
                )
                .await
                .expect("start");
            let (shipped, len) = h.result().await.expect("result").expect("workflow ok");
            assert_eq!((shipped, len), (i as u64, (kib * 1024) as u64));
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while let Some(t) = tasks.join_next().await {
        t.expect("task");
    }
}

/// Resident KiB per instance held at `charge`, measured in a fresh
/// process (`--state-rss-child KIB HELD`): in this one, memory the earlier
/// runs freed would hide the growth.
fn rss_per_running(kib: usize, blob: Blob, held: usize) -> f64 {
    let exe = std::env::current_exe().expect("the bench's own path");
    let out = std::process::Command::new(exe)
        .args([
            "--state-rss-child",
            &kib.to_string(),
            &held.to_string(),
            blob.name(),
        ])
        .output()
        .expect("run the RSS child");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RSS_KIB_PER_RUNNING ")?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// The child of [`rss_per_running`]: prints `RSS_KIB_PER_RUNNING <KiB>`.
pub(super) async fn rss_child(kib: usize, held: usize, blob: Blob) {
    println!("RSS_KIB_PER_RUNNING {:.1}", rss_held(kib, held, blob).await);
}

/// Resident KiB per instance held at `charge`: `held` instances are
/// started and left there.
async fn rss_held(kib: usize, held: usize, blob: Blob) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, _store) = open(dir.path()).await;
    HOLD_CHARGE.store(true, Ordering::SeqCst);
    CHARGING.store(0, Ordering::SeqCst);
    let before = status_mib("VmRSS");
    for i in 0..held {
        rt.start(
            format!("held-{i}"),
            hold_order(HeldOrder::numbered(i, kib, blob)),
            IdPolicy::Reject,
        )
        .await
        .expect("start");
    }
    let waited = Instant::now();
    while CHARGING.load(Ordering::SeqCst) < held && waited.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = status_mib("VmRSS");
    HOLD_CHARGE.store(false, Ordering::SeqCst);
    shutdown(rt).await;
    (after - before).max(0.0) * 1024.0 / held as f64
}

/// The scenario at one size and concurrency.
pub(super) async fn state_size(
    kib: usize,
    blob: Blob,
    in_flight: usize,
    workflows: usize,
) -> StateSize {
    let n = count(kib, workflows);
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, store) = open(dir.path()).await;
    let before = store.stats();
    let started = Instant::now();
    run(&rt, n, kib, blob, in_flight).await;
    let seconds = started.elapsed().as_secs_f64();
    let s = delta(store.stats(), before);
    shutdown(rt).await;
    drop(store);
    let (_, disk) = dir_bytes(dir.path());
    let transitions = (n as u64 * TRANSITIONS_PER_ORDER).max(1);
    StateSize {
        kib,
        blob,
        in_flight,
        workflows: n,
        workflows_per_s: n as f64 / seconds,
        bytes_per_transition: s.bytes as f64 / transitions as f64,
        disk_bytes_per_instance: disk as f64 / n as f64,
        rss_kib_per_running: rss_per_running(kib, blob, 100),
        load: load(),
    }
}

/// Prints the table.
pub(super) fn print(rows: &[StateSize]) {
    if rows.is_empty() {
        return;
    }
    println!("\n## 8. State size: the order holds K KiB across its awaits\n");
    println!(
        "| KiB | blob | in flight | workflows | wf/s | bytes written / transition | disk / instance | RSS / running instance | load |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.1} KiB | {:.1} KiB | {:.2} |",
            r.kib,
            r.blob.name(),
            r.in_flight,
            r.workflows,
            r.workflows_per_s,
            r.bytes_per_transition,
            r.disk_bytes_per_instance / 1024.0,
            r.rss_kib_per_running,
            r.load
        );
    }
}
