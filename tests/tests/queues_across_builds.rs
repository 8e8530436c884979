//! A queued activity call crosses builds by name: during a rolling deploy
//! the instance that awaits a task and the worker that runs it can be two
//! builds whose types differ. This process is build A; `queue-worker` is
//! build B, serving queue `pricing` with the same activities, their types
//! edited (fields reordered, an integer widened). The worker reads the
//! task's input by the layout A wrote it with, and A reads the result by
//! the layout B wrote it with: rebuilt by name, or the instance is parked
//! naming the edit. Never read by position.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use durable_runtime::prelude::*;
use durable_runtime::testing::backends::Backend;
use durable_runtime::{Runtime, Status};
use serde::{Deserialize, Serialize};

const WORKER: &str = env!("CARGO_BIN_EXE_queue-worker");

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Quote {
    qty: u32,
    cents: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Line {
    qty: u32,
    cents: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Weight {
    grams: u32,
}

// run by the worker (build B); this build only enqueues them
#[activity(name = "price", queue = "pricing")]
async fn price(quote: Quote) -> Result<Line, ActivityError> {
    unreachable!("run by the worker of queue `pricing`: {quote:?}")
}

#[activity(name = "weigh", queue = "pricing")]
async fn weigh(items: u32) -> Result<Weight, ActivityError> {
    unreachable!("run by the worker of queue `pricing`: {items}")
}

#[workflow]
async fn quote_one(quote: Quote) -> Result<String, WorkflowError> {
    let line = price(quote).await?;
    Ok(format!("{} x {}", line.qty, line.cents))
}

#[workflow]
async fn quote_two(quotes: Vec<Quote>) -> Result<String, WorkflowError> {
    let lines = join_all(quotes.into_iter().map(price).collect::<Vec<_>>()).await;
    let mut shown = Vec::new();
    for line in lines {
        let line = line?;
        shown.push(format!("{} x {}", line.qty, line.cents));
    }
    Ok(shown.join(", "))
}

#[workflow]
async fn weight_of(items: u32) -> Result<u32, WorkflowError> {
    Ok(weigh(items).await?.grams)
}

/// Build B's worker process, stopped when dropped.
struct Worker(Child);

impl Worker {
    fn start(url: &str) -> Worker {
        let mut child = Command::new(WORKER)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn queue-worker");
        let out = child.stdout.take().expect("piped stdout");
        let first = BufReader::new(out).lines().next();
        assert!(
            matches!(first, Some(Ok(ref l)) if l == "OPEN"),
            "the worker did not open: {first:?}"
        );
        Worker(child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // closing stdin lets it shut down; a stuck one is killed
        drop(self.0.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn build_a(url: &str) -> Runtime {
    Runtime::builder()
        .workflow::<quote_one>()
        .workflow::<quote_two>()
        .workflow::<weight_of>()
        .worker_name("owner-a")
        .lease(Duration::from_millis(2000))
        .open_url(url)
        .await
        .expect("open build A")
}

/// Waits until instance `id` completes or parks.
async fn settled(rt: &Runtime, id: &str) -> durable_runtime::Description {
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let d = rt.describe(id).expect("describe");
            if matches!(
                d.status,
                Status::Completed | Status::Parked | Status::Failed
            ) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the instance settles within two minutes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_calls_input_and_result_cross_builds_by_name_or_park_naming_the_field() {
    let store = Backend::Postgres.store();
    let url = store.url().to_owned();
    let a = build_a(&url).await;
    let _b = Worker::start(&url);

    // input reordered on the worker's side, result reordered on ours: read
    // by position, the input gives "1999 x 4", the result "2000 x 3", both
    // "4 x 1999"
    a.start(
        "one",
        quote_one(Quote {
            qty: 3,
            cents: 1999,
        }),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    let d = settled(&a, "one").await;
    assert_eq!(d.status, Status::Completed, "{d:?}");
    let out = a.handle::<quote_one>("one").result().await.unwrap();
    assert_eq!(out.unwrap(), "3 x 2000");

    // parts of a join_all take the same road
    a.start(
        "two",
        quote_two(vec![
            Quote {
                qty: 3,
                cents: 1999,
            },
            Quote { qty: 5, cents: 99 },
        ]),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    let d = settled(&a, "two").await;
    assert_eq!(d.status, Status::Completed, "{d:?}");
    let out = a.handle::<quote_two>("two").result().await.unwrap();
    assert_eq!(out.unwrap(), "3 x 2000, 5 x 100");

    // a result this build would read narrowed (u64 as u32) parks the
    // instance, naming the field, even though this value would fit
    a.start("w", weight_of(4), IdPolicy::Reject).await.unwrap();
    let d = settled(&a, "w").await;
    assert_eq!(d.status, Status::Parked, "{d:?}");
    let why = d.error.unwrap_or_default();
    assert!(why.contains("grams") && why.contains("weigh"), "{why}");
    a.shutdown().await;
}
