//! Visibility at scale: lists, counts and attribute lookups served from the
//! store's secondary indexes over many instances.
//!
//! ```text
//! cargo run --release -p durable-bench --bin visibility -- [--instances 1000000] [--json FILE]
//! ```
//!
//! Fills a fresh sled store with N instances (every tenth waits for a
//! signal, the rest complete; each sets a `customer` search attribute, one
//! of 1,000 values), then times the queries a UI or an operator makes. All
//! writes are durable (fsync'd group commits), as in production.

use std::sync::Arc;
use std::time::Instant;

use durable_runtime::prelude::*;
use durable_runtime::{ListFilter, ListOrder, Phase, SearchValue, upsert_search_attributes};
use serde::Serialize;

#[workflow]
async fn account(i: u64) -> Result<u64, WorkflowError> {
    upsert_search_attributes([("customer", SearchValue::from(format!("c{}", i % 1000)))]).await;
    if i % 10 == 0 {
        let _: () = signal("close").await?;
    }
    Ok(i)
}

#[derive(Serialize)]
struct Query {
    query: &'static str,
    results: usize,
    ms: f64,
}

#[derive(Serialize)]
struct Report {
    instances: u64,
    fill_seconds: f64,
    disk_bytes: u64,
    queries: Vec<Query>,
}

/// Runs `f` three times and keeps the best time (the others warm caches).
fn timed(query: &'static str, mut f: impl FnMut() -> usize) -> Query {
    let mut best = f64::MAX;
    let mut results = 0;
    for _ in 0..3 {
        let start = Instant::now();
        results = f();
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    Query {
        query,
        results,
        ms: best,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let n: u64 = arg("--instances").map_or(Ok(100_000), |v| v.parse())?;
    let dir = tempfile::tempdir()?;
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<account>()
            .open(dir.path())
            .await?,
    );

    let started = Instant::now();
    let mut waits = tokio::task::JoinSet::new();
    let in_flight = 1000;
    for i in 0..n {
        let rt = rt.clone();
        waits.spawn(async move {
            let h = rt
                .start(format!("acct-{i:08}"), account(i), IdPolicy::Reject)
                .await?;
            if i % 10 != 0 {
                h.result().await?.map_err(|e| e.to_string())?;
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
        while waits.len() >= in_flight {
            if let Some(done) = waits.join_next().await {
                done??;
            }
        }
    }
    while let Some(done) = waits.join_next().await {
        done??;
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    println!("filled {n} instances in {fill_seconds:.1} s");

    let page = |filter: ListFilter| rt.list(&filter).map(|l| l.len()).unwrap_or(0);
    let newest = |filter: ListFilter| {
        page(ListFilter {
            order: ListOrder::NewestFirst,
            ..filter
        })
    };
    let middle = format!("acct-{:08}", n / 2);
    let queries = vec![
        timed("first page, no filter (100)", || {
            page(ListFilter {
                limit: 100,
                ..ListFilter::default()
            })
        }),
        timed("first page newest first, no filter (100)", || {
            newest(ListFilter {
                limit: 100,
                ..ListFilter::default()
            })
        }),
        timed("first page newest first, waiting_for_signal (100)", || {
            newest(ListFilter {
                phase: Some(Phase::WaitingForSignal),
                limit: 100,
                ..ListFilter::default()
            })
        }),
        timed("page deep newest first (100 after the middle id)", || {
            newest(ListFilter {
                after: Some(middle.clone()),
                limit: 100,
                ..ListFilter::default()
            })
        }),
        timed("newest first, all of one customer", || {
            newest(ListFilter {
                search_attribute: Some(("customer".into(), vec![SearchValue::from("c42")])),
                ..ListFilter::default()
            })
        }),
        timed("first page, waiting_for_signal (100)", || {
            page(ListFilter {
                phase: Some(Phase::WaitingForSignal),
                limit: 100,
                ..ListFilter::default()
            })
        }),
        timed("page deep in completed (100 after the middle id)", || {
            page(ListFilter {
                phase: Some(Phase::Completed),
                after: Some(middle.clone()),
                limit: 100,
                ..ListFilter::default()
            })
        }),
        timed("all of one customer (attribute index)", || {
            page(ListFilter {
                search_attribute: Some(("customer".into(), vec![SearchValue::from("c42")])),
                ..ListFilter::default()
            })
        }),
        timed("counts by phase of one customer (the UI's chips)", || {
            rt.count_matching(
                &ListFilter {
                    search_attribute: Some(("customer".into(), vec![SearchValue::from("c42")])),
                    ..ListFilter::default()
                },
                10_000,
            )
            .map(|c| c.by_phase.iter().map(|(_, n)| n).sum())
            .unwrap_or(0)
        }),
        timed(
            "counts by phase of an id prefix (at most 10,000 read)",
            || {
                rt.count_matching(
                    &ListFilter {
                        id_prefix: Some("acct-000".into()),
                        ..ListFilter::default()
                    },
                    10_000,
                )
                .map(|c| c.by_phase.iter().map(|(_, n)| n).sum())
                .unwrap_or(0)
            },
        ),
        timed("counts by phase (index keys)", || {
            rt.counts_by_phase()
                .map(|c| c.iter().map(|(_, n)| n).sum())
                .unwrap_or(0)
        }),
        timed("describe one", || {
            usize::from(rt.describe("acct-00012345").is_ok())
        }),
    ];
    let report = Report {
        instances: n,
        fill_seconds,
        // apparent size: what the files hold
        disk_bytes: durable_bench::dir_bytes(dir.path()).0,
        queries,
    };
    println!(
        "disk: {:.1} MiB ({:.0} bytes per instance)",
        report.disk_bytes as f64 / 1048576.0,
        report.disk_bytes as f64 / n.max(1) as f64
    );
    println!("{:<50} {:>9} {:>10}", "query", "results", "ms (best of 3)");
    for q in &report.queries {
        println!("{:<50} {:>9} {:>10.2}", q.query, q.results, q.ms);
    }
    if let Some(file) = arg("--json") {
        std::fs::write(file, serde_json::to_string_pretty(&report)?)?;
    }
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown().await;
    }
    Ok(())
}
