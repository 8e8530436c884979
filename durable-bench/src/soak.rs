//! Scenario 9, `soak` (`--only soak [--soak N] [--soak-cache-mib M]
//! [--postgres URL]`): one runtime runs N short orders (four activities
//! each) in ten waves of N/10, 100 in flight, on redb with its page cache
//! bounded to M MiB (32 by default; the store's own default is 256 MiB,
//! which a growing file fills first) or on PostgreSQL, and after each wave
//! prints what
//! must stay flat as finished instances pile up: the wave's throughput,
//! the process's resident memory, the per-instance bookkeeping left in
//! memory (it must be none), the time of one count by phase (what every
//! `/metrics` scrape and UI refresh does) and of one pass over the due
//! timers' index.

use std::sync::Arc;
use std::time::Instant;

use durable_bench::process_order;
use durable_runtime::prelude::*;
use serde::Serialize;

use std::path::Path;

use durable_runtime::store::Store;
use durable_runtime::store::postgres::PgStore;
use durable_runtime::store::redb::RedbStore;

use super::{dir_bytes, load, run_orders, shutdown, status_mib};

/// One wave.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Wave {
    /// Instances finished so far.
    pub(super) finished: usize,
    pub(super) workflows_per_s: f64,
    pub(super) rss_mib: f64,
    /// The store's directory.
    pub(super) disk_mib: f64,
    /// Entries of per-instance bookkeeping left (0 when nothing leaks).
    pub(super) resident: usize,
    /// One `counts_by_phase`, ms.
    pub(super) count_ms: f64,
    /// One pass over the due-timer index (`t` keys), ms, and its keys.
    pub(super) timer_pass_ms: f64,
    pub(super) timer_keys: usize,
    pub(super) load: f64,
}

/// Runs `total` orders in ten waves, on redb or (`postgres`) on the
/// database at that URL; a row per wave.
pub(super) async fn soak(total: usize, cache_mib: u64, postgres: Option<&str>) -> Vec<Wave> {
    let dir = tempfile::tempdir().expect("temp dir");
    match postgres {
        None => {
            let store =
                RedbStore::open_with_cache(dir.path(), Some(cache_mib << 20)).expect("open redb");
            waves(total, store, Some(dir.path())).await
        }
        Some(url) => {
            let store = PgStore::connect(url).await.expect("open postgres store");
            waves(total, store, None).await
        }
    }
}

/// The waves of [`soak`] on `store` (its files in `dir`, if any).
async fn waves<S: Store + Clone>(total: usize, store: S, dir: Option<&Path>) -> Vec<Wave> {
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<process_order>()
            .open_store(store.clone())
            .await
            .expect("open runtime"),
    );
    let wave = (total / 10).max(1);
    let mut rows = Vec::new();
    let mut finished = 0;
    while finished < total {
        let n = wave.min(total - finished);
        let started = Instant::now();
        run_orders(&rt, finished, n, 100).await;
        let seconds = started.elapsed().as_secs_f64();
        finished += n;
        let counted = Instant::now();
        rt.counts_by_phase().expect("counts");
        let count_ms = counted.elapsed().as_secs_f64() * 1e3;
        let passed = Instant::now();
        let timer_keys = Store::scan_prefix(&store, b"t").expect("timer index").len();
        let timer_pass_ms = passed.elapsed().as_secs_f64() * 1e3;
        rows.push(Wave {
            finished,
            workflows_per_s: n as f64 / seconds,
            rss_mib: status_mib("VmRSS"),
            // the database's files are the server's (not measured here)
            disk_mib: dir.map_or(f64::NAN, |d| dir_bytes(d).1 as f64 / f64::from(1 << 20)),
            resident: rt.resident().iter().map(|(_, n)| n).sum(),
            count_ms,
            timer_pass_ms,
            timer_keys,
            load: load(),
        });
    }
    shutdown(rt).await;
    rows
}

/// Prints the table.
pub(super) fn print(rows: &[Wave]) {
    if rows.is_empty() {
        return;
    }
    println!("\n## 9. Soak: finished instances pile up, what the process holds stays flat\n");
    println!(
        "| finished | wave wf/s | RSS MiB | disk MiB | bookkeeping left | count by phase ms | timer pass ms (keys) | load |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let disk = if r.disk_mib.is_nan() {
            "–".to_owned()
        } else {
            format!("{:.1}", r.disk_mib)
        };
        println!(
            "| {} | {:.0} | {:.1} | {} | {} | {:.2} | {:.3} ({}) | {:.2} |",
            r.finished,
            r.workflows_per_s,
            r.rss_mib,
            disk,
            r.resident,
            r.count_ms,
            r.timer_pass_ms,
            r.timer_keys,
            r.load
        );
    }
}
