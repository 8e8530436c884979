//! Fan-out/fan-in over 1,000 records: one workflow imports them with
//! `join_all(calls).limit(32)`, at most 32 activities at once, and each
//! record's result is checkpointed as it arrives.
//!
//! ```text
//! cargo run --example batch_import -- --db /tmp/import
//! ```
//!
//! Each import appends one line, `<record id> <attempt>`, to
//! `DIR/imported.log` (one `write_all` per line, so concurrent appends never
//! interleave). Kill it mid-way (`kill -9`, or Ctrl-C) and run the same
//! command again: it says how many records the log already had on start,
//! resumes the batch, and imports only the records whose results were not
//! checkpointed yet. It ends with `imported N/1000`. Activities run at
//! least once: a record that was being written at the moment of the kill
//! may appear twice in the log (a real importer would upsert by record id,
//! or use the activity's idempotency key); a finished, checkpointed one is
//! never imported again. Without `--db` it uses a temporary directory.
//! `--latency-ms MS` (default 20) sets each import's simulated latency.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

const RECORDS: usize = 1_000;
const BATCH_ID: &str = "import-2030-01";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    email: String,
}

struct Settings {
    log: PathBuf,
    latency: Duration,
}

#[activity(max_attempts = 10, initial_interval_ms = 10, max_interval_ms = 200)]
async fn import_record(record: Record) -> Result<(), ActivityError> {
    let s = dependency::<Settings>()?;
    let attempt = ActivityContext::current().map_or(1, |c| c.attempt);
    // the "remote system" takes a moment per record
    tokio::time::sleep(s.latency).await;
    if !record.email.contains('@') {
        return Err(ActivityError::terminal(format!("{}: bad email", record.id)));
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log)
        .map_err(|e| ActivityError::retryable(e.to_string()))?;
    let line = format!("{} {attempt}\n", record.id);
    log.write_all(line.as_bytes())
        .map_err(|e| ActivityError::retryable(e.to_string()))
}

#[workflow]
async fn import_batch(records: Vec<Record>) -> Result<usize, WorkflowError> {
    let calls: Vec<_> = records.into_iter().map(import_record).collect();
    let results = join_all(calls).limit(32).await;
    let mut imported = 0;
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(()) => imported += 1,
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(imported)
    } else {
        Err(WorkflowError(format!(
            "{imported} imported, {} failed: {}",
            failed.len(),
            failed.join("; ")
        )))
    }
}

/// (distinct records, lines) in the import log.
fn read_log(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut ids = HashSet::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        if let Some(id) = line.split_whitespace().next() {
            ids.insert(id.to_owned());
        }
    }
    (ids.len(), lines)
}

struct Args {
    db: Option<PathBuf>,
    latency_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: None,
        latency_ms: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => args.db = Some(PathBuf::from(value()?)),
            "--latency-ms" => {
                args.latency_ms = value()?.parse().map_err(|e| format!("--latency-ms: {e}"))?
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; use --db DIR --latency-ms MS"
                ));
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let kept = args.db.is_some();
    let temp;
    let dir = match &args.db {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    println!(
        "Fan-out/fan-in over 1,000 records, 32 at a time, each result checkpointed as it arrives. Press Ctrl-C or `kill -9` it mid-way and run the same command with the same --db again: no record is imported twice."
    );
    println!(
        "  inspect its store: durable --db {} list, durable --db {} history import-2030-01{}",
        dir.join("store").display(),
        dir.join("store").display(),
        if kept {
            ""
        } else {
            " (a temporary directory: run with --db DIR to keep it)"
        }
    );
    let log = dir.join("imported.log");
    let settings = Settings {
        log: log.clone(),
        latency: Duration::from_millis(args.latency_ms),
    };

    let started = Instant::now();
    let (done_on_start, _) = read_log(&log);
    println!(
        "store {}: {done_on_start}/{RECORDS} records already in imported.log on start",
        dir.display()
    );
    let runtime = Runtime::builder()
        .workflow::<import_batch>()
        .dependency(settings)
        .open(dir.join("store"))
        .await?;
    println!("resumed {} unfinished batch", runtime.resumed_on_open());

    let records: Vec<Record> = (0..RECORDS)
        .map(|i| Record {
            id: format!("rec-{i:04}"),
            email: format!("user{i}@example.com"),
        })
        .collect();
    // the batch id exists after the first run: this resumes it, never restarts it
    let handle = runtime
        .start(BATCH_ID, import_batch(records), IdPolicy::UseExisting)
        .await?;

    let result = handle.result();
    tokio::pin!(result);
    let mut progress = tokio::time::interval(Duration::from_millis(500));
    progress.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut result => break outcome,
            _ = progress.tick() => {
                let (done, _) = read_log(&log);
                println!("  {done}/{RECORDS} in imported.log after {:.1}s", started.elapsed().as_secs_f64());
            }
        }
    };
    match outcome? {
        Ok(n) => println!("batch {BATCH_ID}: {n} records imported"),
        Err(e) => println!("batch {BATCH_ID} failed: {e}"),
    }
    let (done, lines) = read_log(&log);
    println!(
        "imported {done}/{RECORDS} ({} new in this run; {} duplicate lines in the log) in {:.2}s",
        done - done_on_start.min(done),
        lines - done,
        started.elapsed().as_secs_f64()
    );
    runtime.shutdown().await;
    Ok(())
}
