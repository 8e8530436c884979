//! Batch operations from the command line (`--url` only: the service runs
//! them): `batch ACTION [filter] [--dry-run]` starts one and draws its
//! progress until it ends, `batches` lists them, `batch-status ID` and
//! `batch-stop ID`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use durable_runtime::batch::{BatchAction, BatchOperation, BatchReset, BatchState};
use durable_runtime::reset::ResetTo;

use crate::failure::Failure;
use crate::filter::FilterArgs;
use crate::remote::{Client, encode};
use crate::show::{print_json, report};

/// What a batch does to each instance.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Verb {
    /// Cancel each (skipped: ended).
    Cancel,
    /// Terminate each, with --reason (skipped: ended).
    Terminate,
    /// Send signal --name with payload --payload (JSON), once each
    /// (skipped: not waiting for it).
    Signal,
    /// Reset each to its latest kept step, its earliest (--earliest) or
    /// --step N (skipped: running, no state kept).
    Reset,
}

#[derive(clap::Args)]
pub(crate) struct BatchArgs {
    /// cancel, terminate, signal or reset.
    verb: Verb,
    /// The signal's name (signal).
    #[arg(long)]
    name: Option<String>,
    /// The signal's payload as JSON (signal; default null).
    #[arg(long, default_value = "null")]
    payload: String,
    /// Recorded with each (terminate, reset).
    #[arg(long, default_value = "batch operation from the command line")]
    reason: String,
    /// Reset to this step (reset; default: each instance's latest kept step).
    #[arg(long, conflicts_with = "earliest")]
    step: Option<u64>,
    /// Reset to each instance's earliest kept step (reset).
    #[arg(long)]
    earliest: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many instances a second.
    #[arg(long)]
    per_second: Option<u32>,
    /// Print the ids it would visit; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print its id and return at once instead of drawing its progress.
    #[arg(long)]
    no_wait: bool,
}

fn action(args: &BatchArgs) -> Result<BatchAction, Failure> {
    Ok(match args.verb {
        Verb::Cancel => BatchAction::Cancel,
        Verb::Terminate => BatchAction::Terminate {
            reason: args.reason.clone(),
        },
        Verb::Signal => BatchAction::Signal {
            name: args
                .name
                .clone()
                .ok_or_else(|| Failure::usage("a batch signal needs --name".into()))?,
            payload: serde_json::from_str(&args.payload).map_err(|e| {
                Failure::usage(format!("the payload is not JSON ({e}): {}", args.payload))
            })?,
        },
        Verb::Reset => BatchAction::Reset {
            to: match (args.step, args.earliest) {
                (Some(step), _) => BatchReset::To(ResetTo::Step(step)),
                (None, true) => BatchReset::Earliest,
                (None, false) => BatchReset::Latest,
            },
            reason: args.reason.clone(),
        },
    })
}

/// `batch`: starts it (or its dry run) and follows it to its end.
pub(crate) fn start(client: &Client, args: BatchArgs, json: bool) -> Result<(), Failure> {
    let action = action(&args)?;
    let filter = args.filter.filter()?;
    let mut body = serde_json::json!({
        "filter": filter,
        "action": action,
        "dry_run": args.dry_run,
    });
    if let Some(n) = args.per_second {
        body["per_second"] = n.into();
    }
    if args.dry_run {
        let preview: serde_json::Value = client.post_json("/api/batches", &body)?;
        if json {
            println!("{preview}");
        } else {
            let ids = preview["ids"].as_array().cloned().unwrap_or_default();
            println!("would {} {} instances:", action.describe(), ids.len());
            for id in ids {
                println!("  {}", id.as_str().unwrap_or_default());
            }
        }
        return Ok(());
    }
    let op: BatchOperation = client.post_json("/api/batches", &body)?;
    if args.no_wait {
        report(
            json,
            serde_json::json!(op),
            format!(
                "batch {} started: {} of {} instances",
                op.id,
                action.describe(),
                op.matched
            ),
        );
        return Ok(());
    }
    follow(client, &op.id, json)
}

/// Draws the progress of batch `id` (on a terminal) until it ends, then
/// prints it; exit 1 if an instance failed.
pub(crate) fn follow(client: &Client, id: &str, json: bool) -> Result<(), Failure> {
    let path = format!("/api/batches/{}", encode(id));
    let draw = std::io::stderr().is_terminal();
    let op = loop {
        let op: BatchOperation = client.get_json(&path)?;
        if draw {
            eprint!("\r{}", bar(&op));
            let _ = std::io::stderr().flush();
        }
        if op.state != BatchState::Running {
            break op;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if draw {
        eprintln!();
    }
    finish(&op, json)
}

/// `[#####-----] 12/30  10 done, 2 skipped, 0 failed`
fn bar(op: &BatchOperation) -> String {
    format!(
        "{}  {} done, {} skipped, {} failed",
        meter(op.visited, op.matched.max(op.visited)),
        op.done,
        op.skipped,
        op.failed
    )
}

/// `[#####-----] 12/30`: a progress bar for a terminal.
pub(crate) fn meter(done: u64, total: u64) -> String {
    let filled = (done * 30 / total.max(1)).min(30) as usize;
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(30 - filled)
    )
}

fn finish(op: &BatchOperation, json: bool) -> Result<(), Failure> {
    if json {
        print_json(op)?;
    } else {
        println!(
            "batch {} {}: {} ({} visited: {} done, {} skipped, {} failed)",
            op.id,
            match op.state {
                BatchState::Running => "running",
                BatchState::Done => "done",
                BatchState::Stopped => "stopped",
            },
            op.action.describe(),
            op.visited,
            op.done,
            op.skipped,
            op.failed
        );
        for (id, error) in &op.errors {
            println!("  {id}: {error}");
        }
    }
    if op.failed > 0 {
        return Err(Failure::other(format!(
            "batch {}: {} instances failed",
            op.id, op.failed
        )));
    }
    Ok(())
}

/// `batches`: every batch operation, newest first.
pub(crate) fn list(client: &Client, json: bool) -> Result<(), Failure> {
    let ops: Vec<BatchOperation> = client.get_json("/api/batches")?;
    if json {
        return print_json(&ops);
    }
    println!(
        "{:<36}  {:<8}  {:>15}  action",
        "id", "state", "visited/matched"
    );
    for op in &ops {
        println!(
            "{:<36}  {:<8}  {:>15}  {}",
            op.id,
            format!("{:?}", op.state).to_lowercase(),
            format!("{}/{}", op.visited, op.matched),
            op.action.describe()
        );
    }
    Ok(())
}

/// `batch-status ID`: as it stands, or (`--wait`) once it has ended.
pub(crate) fn status(client: &Client, id: &str, wait: bool, json: bool) -> Result<(), Failure> {
    if wait {
        return follow(client, id, json);
    }
    let op: BatchOperation = client.get_json(&format!("/api/batches/{}", encode(id)))?;
    if json {
        return print_json(&op);
    }
    println!("{}", bar(&op));
    finish(&op, false)
}

/// `batch-stop ID`.
pub(crate) fn stop(client: &Client, id: &str, json: bool) -> Result<(), Failure> {
    let op: BatchOperation = client.post_json(
        &format!("/api/batches/{}/stop", encode(id)),
        &serde_json::json!({}),
    )?;
    finish(&op, json)
}
