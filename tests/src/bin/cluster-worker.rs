//! One of several worker processes on one PostgreSQL database.
//!
//! `cluster-worker URL DIR NAME INDEX ORDERS STARTS`: joins the database
//! as worker `NAME` (lease `CLUSTER_LEASE_MS`, default 2,000 ms), logs
//! activity executions to `DIR/effects.log` as incarnation `INDEX`, starts
//! the orders `i < ORDERS` with `i % STARTS == INDEX` (none when
//! `INDEX >= STARTS`; every one of them with `CLUSTER_START_ALL=1`, so
//! that the workers start the same ids at once), then waits until all `ORDERS` orders have finished,
//! wherever they ran, and prints `RESULT <id> <output>` for each, then
//! `DONE`. It prints `OPEN` once joined and `STARTED` once its orders exist.
//!
//! With `CLUSTER_SIGNALS=K` it is one of `STARTS` clients and workers at
//! once, on the same ids: it starts `tally-<i>` and `held-<i>` for every
//! `i < ORDERS` (as every other process does), sends each `tally-<i>` its
//! `K` items `(INDEX, 0..K)` one after the other, cancels every `held-<i>`,
//! then prints `RESULT tally-<i> <output>` and `CANCELLED held-<i>` as each
//! ends, and `DONE`.

use std::io::Write;

use std::sync::Arc;

use durable_runtime::{IdPolicy, Runtime};
use durable_tests::{EFFECTS, EffectsLog, held, order, process_order, tally};

#[tokio::main]
async fn main() {
    // RUST_LOG=durable_runtime=info shows joins and takeovers
    durable_tests::log_to_stderr("warn");
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: cluster-worker URL DIR NAME INDEX ORDERS STARTS");
        std::process::exit(2);
    }
    let (url, dir, name) = (&args[1], std::path::PathBuf::from(&args[2]), &args[3]);
    let number = |i: usize| -> usize { args[i].parse().expect("a number") };
    let (index, orders, starts) = (number(4), number(5), number(6));
    let lease = std::env::var("CLUSTER_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let _ = EFFECTS.set(EffectsLog {
        path: dir.join("effects.log"),
        incarnation: index as u32,
    });
    let rt = Runtime::builder()
        .workflow::<process_order>()
        .workflow::<tally>()
        .workflow::<held>()
        .worker_name(name.clone())
        .lease(std::time::Duration::from_millis(lease))
        .open_url(url)
        .await
        .expect("join the cluster");
    println!("OPEN {name} resumed={}", rt.resumed_on_open());
    let _ = std::io::stdout().flush();
    // all at once, so that many are in flight when a worker is killed
    let rt = Arc::new(rt);
    if let Some(k) = std::env::var("CLUSTER_SIGNALS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        signal_and_cancel(&rt, index as u32, orders, starts as u32, k).await;
        if let Ok(rt) = Arc::try_unwrap(rt) {
            rt.shutdown().await;
        }
        return;
    }
    let all = std::env::var("CLUSTER_START_ALL").is_ok_and(|v| v == "1");
    let mut starting = tokio::task::JoinSet::new();
    for i in (0..orders).filter(|i| all || (index < starts && i % starts == index)) {
        let rt = rt.clone();
        starting.spawn(async move {
            rt.start(
                format!("order-{i}"),
                process_order(order(i)),
                IdPolicy::UseExisting,
            )
            .await
            .map(|_| ())
        });
    }
    while let Some(started) = starting.join_next().await {
        started.expect("start task").expect("start");
    }
    println!("STARTED");
    let _ = std::io::stdout().flush();
    for i in 0..orders {
        let handle = rt.handle::<process_order>(format!("order-{i}"));
        // started by another worker, perhaps not yet; the database may be
        // out of reach for a while (a worker cut off from the network)
        let out = loop {
            match handle.result().await {
                Err(
                    durable_runtime::ResultError::NotFound { .. }
                    | durable_runtime::ResultError::Store(_),
                ) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => break other,
            }
        };
        match out {
            Ok(Ok(out)) => println!("RESULT {} {out}", handle.id()),
            other => println!("FAILED {} {other:?}", handle.id()),
        }
    }
    println!("DONE");
    let _ = std::io::stdout().flush();
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown().await;
    }
}

/// `CLUSTER_SIGNALS`: see the module's docs.
async fn signal_and_cancel(rt: &Arc<Runtime>, index: u32, ids: usize, senders: u32, k: u32) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ids {
        let rt = rt.clone();
        tasks.spawn(async move {
            let id = format!("tally-{i}");
            rt.start(&id, tally(senders * k), IdPolicy::UseExisting)
                .await
                .expect("start tally");
            rt.start(format!("held-{i}"), held(), IdPolicy::UseExisting)
                .await
                .expect("start held");
            // one after the other: each is durable before the next is sent
            for n in 0..k {
                rt.signal(&id, "item", &(index, n)).await.expect("signal");
            }
            match rt.cancel(&format!("held-{i}")).await {
                // another process's cancel ended it first
                Ok(()) | Err(durable_runtime::ResultError::Finished { .. }) => {}
                Err(e) => panic!("cancel held-{i}: {e}"),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a client task");
    }
    println!("STARTED");
    let _ = std::io::stdout().flush();
    for i in 0..ids {
        let out = rt.handle::<tally>(format!("tally-{i}")).result().await;
        match out {
            Ok(Ok(out)) => println!("RESULT tally-{i} {out}"),
            other => println!("FAILED tally-{i} {other:?}"),
        }
        let held = rt.handle::<held>(format!("held-{i}"));
        let _ = held.result().await;
        match held.describe() {
            Ok(d) if d.status == durable_runtime::Status::Cancelled => {
                println!("CANCELLED held-{i}");
            }
            other => println!("FAILED held-{i} {other:?}"),
        }
    }
    println!("DONE");
    let _ = std::io::stdout().flush();
}
