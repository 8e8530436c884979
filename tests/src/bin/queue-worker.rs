//! A worker of another build serving task queue `pricing`, for the test
//! that queued calls cross builds by name (`tests/queues_across_builds.rs`).
//!
//! `queue-worker URL`: joins the database as worker `pricing-b`, serves
//! the queue, prints `OPEN`, and runs until its stdin closes. Its
//! activities have the names of the test's but types edited as a deploy
//! would edit them: `price` takes a `Quote` and returns a `Line` whose
//! fields are reordered; `weigh` returns a `Weight` whose `grams` is
//! wider than the test's build reads.

use std::io::{Read, Write};

use durable_runtime::Runtime;
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The test's `Quote { qty, cents }`, reordered.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Quote {
    cents: u32,
    qty: u32,
}

/// The test's `Line { qty, cents }`, reordered.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Line {
    cents: u32,
    qty: u32,
}

/// The test's `Weight { grams: u32 }`, widened.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Weight {
    grams: u64,
}

#[activity(name = "price", queue = "pricing")]
async fn price(quote: Quote) -> Result<Line, ActivityError> {
    // a fee of one cent per item
    Ok(Line {
        cents: quote.cents + 1,
        qty: quote.qty,
    })
}

#[activity(name = "weigh", queue = "pricing")]
async fn weigh(items: u32) -> Result<Weight, ActivityError> {
    Ok(Weight {
        grams: u64::from(items) * 250,
    })
}

#[tokio::main]
async fn main() {
    durable_tests::log_to_stderr("warn");
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: queue-worker URL");
        std::process::exit(2);
    }
    let rt = Runtime::builder()
        .worker_name("pricing-b")
        .task_queue("pricing")
        .lease(std::time::Duration::from_millis(2000))
        .open_url(&args[1])
        .await
        .expect("join the database");
    println!("OPEN");
    let _ = std::io::stdout().flush();
    // until the test is done with it
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    rt.shutdown().await;
}
