//! Power loss, simulated: the in-memory store keeps what was written apart
//! from what was synced, and a "crash" keeps only the synced part. Sweeping
//! the crash over every commit index proves that nothing acknowledged is
//! lost and no recorded step repeats; the same sweep over a store that
//! acknowledges without syncing must find a loss (the negative control).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use durable_runtime::prelude::*;
use durable_runtime::store::mem::MemStore;
use durable_runtime::{ResultError, Status, WorkflowHandle};

/// (sweep run, idempotency key) of every activity execution.
static EXECUTIONS: LazyLock<Mutex<Vec<(String, String)>>> = LazyLock::new(Default::default);

#[activity(max_attempts = 3, initial_interval_ms = 1)]
async fn work(run: String, n: u32) -> Result<u32, ActivityError> {
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    EXECUTIONS.lock().unwrap().push((run, key));
    Ok(n + 1)
}

/// Three activities; `ballast` is held across them (9,000 letters that do
/// not compress for `w1`, whose state is then stored field by field, the
/// value in two pieces: written once with the input, referred to by every
/// later checkpoint) and counted in the result.
#[workflow]
async fn chain(run: String, start: u32, ballast: String) -> Result<u32, WorkflowError> {
    let a = work(run.clone(), start).await?;
    let b = work(run.clone(), a).await?;
    let c = work(run, b).await?;
    Ok(c + ballast.len() as u32)
}

/// The ballast of workflow `i`.
fn ballast(i: u32) -> String {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let len = if i == 1 { 9000 } else { 0 };
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

const WORKFLOWS: u32 = 3;

/// One crash at commit `k`; `Err` describes the first broken guarantee.
async fn crash_at(k: u64, skip_sync: bool) -> Result<bool, String> {
    let run = format!("{k}-{skip_sync}");
    let store = MemStore::new();
    store.skip_sync(skip_sync);
    store.crash_after(k);
    let opened = Runtime::builder()
        .workflow::<chain>()
        .open_store(store.clone())
        .await;
    let mut acked_starts = Vec::new();
    let mut acked_results = HashMap::new();
    // the open commits too (the activities' layouts): a crash there
    // acknowledged nothing, and the reboot below must still open and run
    let rt = match opened {
        Ok(rt) => rt,
        Err(_) if store.has_crashed() => {
            return after_power_loss(store, run, acked_starts, acked_results, true).await;
        }
        Err(e) => return Err(e.to_string()),
    };
    for i in 0..WORKFLOWS {
        if let Ok(h) = rt
            .start(
                format!("w{i}"),
                chain(run.clone(), i * 10, ballast(i)),
                IdPolicy::UseExisting,
            )
            .await
        {
            acked_starts.push(h);
        }
    }
    for h in &acked_starts {
        // a result is acknowledged only if it was readable while the store lived
        if let Ok(Ok(Ok(v))) = tokio::time::timeout(Duration::from_millis(200), h.result()).await {
            acked_results.insert(h.id().to_owned(), v);
        }
    }
    let crashed = store.has_crashed();
    rt.shutdown().await;
    after_power_loss(store, run, acked_starts, acked_results, crashed).await
}

/// The reboot after a crash at some commit: what was acknowledged
/// (`acked_starts`, `acked_results`) is there, every instance finishes,
/// and no recorded step ran again. `crashed` is returned.
async fn after_power_loss(
    store: MemStore,
    run: String,
    acked_starts: Vec<WorkflowHandle<chain>>,
    acked_results: HashMap<String, u32>,
    crashed: bool,
) -> Result<bool, String> {
    // reboot: only what was synced survives
    let rebooted = store.reboot();
    let inspect = Runtime::builder()
        .workflow::<chain>()
        .resume_on_open(false)
        .open_store(rebooted.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut durable_steps = HashMap::new();
    for h in &acked_starts {
        match inspect.handle::<chain>(h.id()).describe() {
            Ok(d) => {
                if acked_results.contains_key(h.id()) && d.status != Status::Completed {
                    return Err(format!(
                        "{}: result acknowledged but status {:?} after power loss",
                        h.id(),
                        d.status
                    ));
                }
                durable_steps.insert(h.id().to_owned(), d.step);
            }
            Err(ResultError::NotFound { .. }) => {
                return Err(format!(
                    "{}: start acknowledged but lost in the power cut",
                    h.id()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    inspect.shutdown().await;
    let before = EXECUTIONS
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| *r == run)
        .count();

    let rt = Runtime::builder()
        .workflow::<chain>()
        .open_store(rebooted)
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..WORKFLOWS {
        let h = rt
            .start(
                format!("w{i}"),
                chain(run.clone(), i * 10, ballast(i)),
                IdPolicy::UseExisting,
            )
            .await
            .map_err(|e| e.to_string())?;
        let out = h.result().await.map_err(|e| e.to_string())?;
        if out != Ok(i * 10 + 3 + ballast(i).len() as u32) {
            return Err(format!("w{i}: {out:?}"));
        }
    }
    rt.shutdown().await;
    let after: Vec<(String, String)> = EXECUTIONS
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| *r == run)
        .skip(before)
        .cloned()
        .collect();
    for (_, key) in after {
        // `<id>/<incarnation>/<step>`
        let (id, step) = key.split_once('/').ok_or("bad key")?;
        let step: u64 = step
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or("bad step")?;
        if durable_steps.get(id).is_some_and(|d| step < *d) {
            return Err(format!(
                "{id}: activity of step {step} ran again though step {} was durable",
                durable_steps[id]
            ));
        }
    }
    Ok(crashed)
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_at_any_commit() {
    let mut crashes = 0;
    for k in 0.. {
        let crashed = crash_at(k, false)
            .await
            .unwrap_or_else(|e| panic!("crash at commit {k}: {e}"));
        if !crashed {
            break;
        }
        crashes += 1;
    }
    assert!(
        crashes >= (WORKFLOWS * 4) as usize,
        "the sweep must cover every commit, covered {crashes}"
    );
}

#[tokio::test]
async fn the_sweep_catches_a_store_that_skips_its_sync() {
    let mut caught = 0;
    for k in 0..(WORKFLOWS as u64 * 4) {
        if crash_at(k, true).await.is_err() {
            caught += 1;
        }
    }
    assert!(
        caught > 0,
        "acknowledging without a sync must lose something the sweep sees"
    );
}

#[tokio::test]
async fn a_failing_store_stops_the_instance_with_an_error_not_a_hang() {
    let store = MemStore::new();
    let rt = Runtime::builder()
        .workflow::<chain>()
        .open_store(store.clone())
        .await
        .unwrap();
    // the start is acknowledged; the next checkpoint fails (a full disk, say)
    store.crash_after(1);
    let h = rt
        .start(
            "halts",
            chain("halts".into(), 0, ballast(1)),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), h.result()).await {
        Ok(Err(ResultError::Store(durable_runtime::StoreError::Closed))) => {}
        other => panic!("expected a store error, got {other:?}"),
    }
    rt.shutdown().await;
    // the last durable checkpoint stands: after a reboot the instance finishes
    let rt = Runtime::builder()
        .workflow::<chain>()
        .open_store(store.reboot())
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<chain>("halts").result().await.unwrap(),
        Ok(3 + 9000)
    );
}
