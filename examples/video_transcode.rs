//! A long activity that reports its progress with **heartbeats**: each
//! encoded chunk of a video is reported with `heartbeat(&chunk)`, and an
//! attempt starts after the last chunk an earlier attempt reported
//! (`heartbeat_details()`), so a retry or a restart does not encode the
//! video again from the start.
//!
//! ```text
//! cargo run --example video_transcode
//! ```
//!
//! Two things go wrong on purpose:
//!
//! 1. The encoder freezes on the first video after chunk 3: no heartbeat
//!    comes for the activity's heartbeat timeout (1 s), so the attempt
//!    fails and the next one carries on from chunk 4.
//! 2. The service is restarted (a deploy) while the second video is being
//!    encoded: the activity resumes in the new process from the last
//!    progress it stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use durable_runtime::history::EventKind;
use durable_runtime::prelude::*;

/// The encoder: freezes once, on the chunk it is told to.
struct Encoder {
    freeze_at: Option<(String, u32)>,
    frozen: AtomicBool,
}

/// Encodes `video` in `chunks` chunks, from the one after the last an
/// earlier attempt reported.
#[activity(
    heartbeat_timeout_ms = 1_000,
    max_attempts = 5,
    initial_interval_ms = 100
)]
async fn transcode(video: String, chunks: u32) -> Result<u32, ActivityError> {
    let encoder = dependency::<Arc<Encoder>>()?;
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    let first = match heartbeat_details::<u32>() {
        Some(done) => {
            println!("  {video}: attempt {attempt} carries on after chunk {done}");
            done + 1
        }
        None => 0,
    };
    for chunk in first..chunks {
        if encoder.freeze_at == Some((video.clone(), chunk))
            && !encoder.frozen.swap(true, Ordering::SeqCst)
        {
            println!("  {video}: the encoder froze at chunk {chunk} (no more heartbeats)");
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        heartbeat(&chunk)?;
    }
    Ok(chunks)
}

#[activity]
async fn publish(video: String, chunks: u32) -> Result<String, ActivityError> {
    Ok(format!("{video}: {chunks} chunks published"))
}

#[workflow]
async fn publish_video(video: String, chunks: u32) -> Result<String, WorkflowError> {
    let encoded = transcode(video.clone(), chunks).await?;
    Ok(publish(video, encoded).await?)
}

async fn open(dir: &std::path::Path, encoder: Arc<Encoder>) -> Runtime {
    Runtime::builder()
        .workflow::<publish_video>()
        .dependency(encoder)
        .open(dir)
        .await
        .expect("open the store")
}

/// Prints the failed attempts in `id`'s history.
fn failed_attempts(runtime: &Runtime, id: &str) {
    for event in runtime.history(id).expect("history") {
        if let EventKind::AttemptFailed { attempt, error, .. } = event.kind {
            println!("  history of {id}: attempt {attempt} failed: {error}");
        }
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let encoder = Arc::new(Encoder {
        freeze_at: Some(("holiday.mp4".into(), 4)),
        frozen: AtomicBool::new(false),
    });

    println!("1. The encoder freezes: the heartbeat timeout catches it");
    let runtime = open(dir.path(), encoder.clone()).await;
    let first = runtime
        .start(
            "holiday",
            publish_video("holiday.mp4".into(), 10),
            IdPolicy::Reject,
        )
        .await
        .expect("start");
    println!(
        "  {}",
        first.result().await.expect("result").expect("published")
    );
    failed_attempts(&runtime, "holiday");

    println!("2. The service restarts while a video is being encoded");
    let second = runtime
        .start(
            "wedding",
            publish_video("wedding.mp4".into(), 30),
            IdPolicy::Reject,
        )
        .await
        .expect("start");
    // wait for a few chunks, then stop the service as a deploy would
    while !runtime
        .history("wedding")
        .expect("history")
        .iter()
        .any(|e| matches!(e.kind, EventKind::Awaiting { step: 1, .. }))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    println!("  stopping the service (a deploy)");
    runtime.shutdown().await;
    drop(second);

    let runtime = open(dir.path(), encoder).await;
    println!("  the service is back");
    let out = runtime
        .handle::<publish_video>("wedding")
        .result()
        .await
        .expect("result")
        .expect("published");
    println!("  {out}");
    runtime.shutdown().await;
}
