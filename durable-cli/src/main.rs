//! `durable`: inspect and steer the workflow instances of a store.
//!
//! ```text
//! durable --db DIR list [--status completed] [--workflow process_order] [--limit 50] [--json]
//! durable --db DIR describe ID [--json]
//! durable --db DIR history ID [--json]
//! durable --db DIR stats [--json]
//! durable --db DIR cancel ID
//! durable --db DIR export ID FILE
//! durable --db DIR export --all FILE | --workflow process_order FILE [--status running]
//! durable --db DIR import FILE [--replace]
//! durable --db DIR terminate ID --reason "operator"
//! durable check --manifest FILE (--db DIR | --snapshots DIR_OR_FILE)
//! ```
//!
//! It opens the store without running anything. An embedded sled store is
//! open in one process at a time: stop the service first (a locked store is
//! a clear error, exit code 4). Cancel and terminate requests are stored and
//! carried out when the service opens the store again.
//!
//! `check` needs no code: it compares stored fingerprints with the manifest
//! the new build wrote (`Builder::manifest().write(..)`, see
//! `durable_runtime::check`) and exits 5 if an instance would be parked.
//!
//! Exit codes: 0 done, 1 other error, 2 bad usage, 3 unknown instance,
//! 4 store locked by another process, 5 `check` found instances the new
//! code would park.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use durable_runtime::history::{EventKind, HistoryEvent};
use durable_runtime::{Description, ListFilter, ResultError, Runtime, Status, StoreError};

#[derive(Parser)]
#[command(
    name = "durable",
    version,
    about = "Inspect and steer durable workflow instances"
)]
struct Cli {
    /// The store directory (the one the service opens). Every command but
    /// `check --snapshots` needs it.
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List instances.
    List {
        /// Only this status (running, completed, failed, parked, cancelled, terminated).
        #[arg(long)]
        status: Option<String>,
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only ids after this one (paging).
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one instance.
    Describe {
        /// The instance id.
        id: String,
    },
    /// Show an instance's history.
    History {
        /// The instance id.
        id: String,
    },
    /// Count instances by status.
    Stats,
    /// Ask an instance to cancel (it runs its cleanup).
    Cancel {
        /// The instance id.
        id: String,
    },
    /// Write an instance (`export ID FILE`), or a set (`--all`, `--workflow`,
    /// `--status`; `export --all FILE`), to a snapshot file.
    Export {
        /// `ID FILE`, or `FILE` with `--all` or a filter.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Every instance of the store.
        #[arg(long)]
        all: bool,
        /// Only instances of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only instances with this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Import a snapshot file (one instance or a set, all or nothing); the
    /// instances continue when the service runs.
    Import {
        /// The snapshot file.
        file: PathBuf,
        /// Overwrite an instance with the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Would the build that wrote `--manifest` park any instance of the store
    /// (`--db`) or of a snapshot file or directory (`--snapshots`)? Exit 5 if so.
    Check {
        /// The manifest the new build wrote (`Builder::manifest().write(..)`).
        #[arg(long)]
        manifest: PathBuf,
        /// Snapshot files to check instead of a store: a file or a directory.
        #[arg(long)]
        snapshots: Option<PathBuf>,
    },
    /// Stop an instance now.
    Terminate {
        /// The instance id.
        id: String,
        /// Why, recorded with it.
        #[arg(long, default_value = "terminated from the command line")]
        reason: String,
    },
}

/// A failure with the exit code scripts can rely on.
struct Failure {
    code: u8,
    message: String,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = if matches!(e, StoreError::Locked { .. }) {
            4
        } else {
            1
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<ResultError> for Failure {
    fn from(e: ResultError) -> Self {
        match e {
            ResultError::NotFound { .. } => Failure {
                code: 3,
                message: e.to_string(),
            },
            ResultError::Store(s) => s.into(),
            other => Failure {
                code: 1,
                message: other.to_string(),
            },
        }
    }
}

impl From<durable_runtime::OpenError> for Failure {
    fn from(e: durable_runtime::OpenError) -> Self {
        match e {
            durable_runtime::OpenError::Store(s) => s.into(),
            other => Failure {
                code: 1,
                message: other.to_string(),
            },
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn snapshot_failure(e: durable_runtime::snapshot::SnapshotError) -> Failure {
    use durable_runtime::snapshot::SnapshotError;
    match e {
        SnapshotError::NotFound { .. } => Failure {
            code: 3,
            message: e.to_string(),
        },
        SnapshotError::Store(s) => s.into(),
        other => Failure {
            code: 1,
            message: other.to_string(),
        },
    }
}

fn parse_status(s: &str) -> Result<Status, Failure> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "running" => Status::Running,
        "completed" => Status::Completed,
        "failed" => Status::Failed,
        "parked" => Status::Parked,
        "cancelled" | "canceled" => Status::Cancelled,
        "terminated" => Status::Terminated,
        other => {
            return Err(Failure {
                code: 2,
                message: format!(
                    "unknown status `{other}`: use running, completed, failed, parked, cancelled or terminated"
                ),
            });
        }
    })
}

fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

fn describe_line(d: &Description) -> String {
    format!(
        "{:<32} {:<20} {:>3} {:<11} {:<20} {:>5}  {}",
        d.id,
        d.workflow,
        d.version,
        format!("{:?}", d.status),
        d.variant,
        d.step,
        d.error.as_deref().or(d.last_error.as_deref()).unwrap_or("")
    )
}

fn event_line(e: &HistoryEvent) -> String {
    let what = match &e.kind {
        EventKind::Started {
            workflow,
            run,
            version,
        } => format!("started {workflow} v{version} (run {run})"),
        EventKind::Awaiting {
            step,
            variant,
            command,
        } => format!("step {step}: waits at {variant} for {command}"),
        EventKind::AttemptFailed {
            step,
            attempt,
            error,
            duration_ms,
        } => format!("step {step}: attempt {attempt} failed after {duration_ms} ms: {error}"),
        EventKind::ActivityFinished {
            step,
            activity,
            attempt,
            duration_ms,
            error,
        } => match error {
            None => format!("step {step}: {activity} done on attempt {attempt} ({duration_ms} ms)"),
            Some(e) => format!(
                "step {step}: {activity} gave up on attempt {attempt} ({duration_ms} ms): {e}"
            ),
        },
        EventKind::CancelDelivered { step } => format!("step {step}: cancellation delivered"),
        EventKind::Upgraded { from, to, variant } => {
            format!("upgraded at {variant}: fingerprint {from:016x} -> {to:016x}")
        }
        EventKind::Migrated {
            from,
            to,
            from_variant,
            to_variant,
            ..
        } => format!("migrated v{from} {from_variant} -> v{to} {to_variant}"),
        EventKind::Parked { reason } => format!("parked: {reason}"),
        EventKind::Finished { status, error } => format!(
            "finished {status:?}{}",
            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        other => format!("{other:?}"),
    };
    format!("{:>4}  {:>13}  {what}", e.seq, e.at_ms)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Check {
        manifest,
        snapshots: Some(dir),
    } = &cli.command
    {
        return check_snapshots(manifest, dir, cli.json);
    }
    let Some(db) = &cli.db else {
        return Err(usage("this command needs --db DIR (the store directory)"));
    };
    let rt = Runtime::builder().resume_on_open(false).open(db).await?;
    let result = match cli.command {
        Command::List {
            status,
            workflow,
            after,
            limit,
        } => {
            let filter = ListFilter {
                workflow,
                status: status.as_deref().map(parse_status).transpose()?,
                after,
                limit,
            };
            let list = rt.list(&filter)?;
            if cli.json {
                print_json(&list)
            } else {
                println!(
                    "{:<32} {:<20} {:>3} {:<11} {:<20} {:>5}  error",
                    "id", "workflow", "ver", "status", "at", "step"
                );
                for d in &list {
                    println!("{}", describe_line(d));
                }
                Ok(())
            }
        }
        Command::Describe { id } => {
            let d = rt.describe(&id)?;
            if cli.json {
                print_json(&d)
            } else {
                println!(
                    "id        {}\nworkflow  {} version {} (run {}, fingerprint {:016x})\nstatus    {:?}\nat        {} (step {})",
                    d.id, d.workflow, d.version, d.run, d.fingerprint, d.status, d.variant, d.step
                );
                if let Some(w) = &d.waiting_for {
                    println!("waits for {w}");
                }
                if let Some(e) = &d.error {
                    println!("error     {e}");
                }
                if let Some(e) = &d.last_error {
                    println!("last try  {e} ({} failed attempts)", d.failed_attempts);
                }
                Ok(())
            }
        }
        Command::History { id } => {
            let events = rt.history(&id)?;
            if cli.json {
                print_json(&events)
            } else {
                for e in &events {
                    println!("{}", event_line(e));
                }
                Ok(())
            }
        }
        Command::Stats => {
            let counts = rt.counts()?;
            if cli.json {
                let map: serde_json::Map<String, serde_json::Value> = counts
                    .iter()
                    .map(|(s, n)| (format!("{s:?}").to_lowercase(), (*n).into()))
                    .collect();
                print_json(&map)
            } else {
                for (status, n) in &counts {
                    println!("{:<11} {n}", format!("{status:?}"));
                }
                Ok(())
            }
        }
        Command::Export {
            args,
            all,
            workflow,
            status,
        } => export(&rt, args, all, workflow, status).await,
        Command::Import { file, replace } => {
            let bytes = std::fs::read(&file).map_err(|e| Failure {
                code: 1,
                message: format!("cannot read {}: {e}", file.display()),
            })?;
            let set = durable_runtime::snapshot::SnapshotSet::from_bytes(&bytes)
                .map_err(snapshot_failure)?;
            let n = rt
                .import_set_unchecked(&set, replace)
                .await
                .map_err(snapshot_failure)?;
            for s in &set.snapshots {
                println!("imported {} ({})", s.id, s.workflow);
            }
            println!("{n} instances imported; they continue when the service runs");
            Ok(())
        }
        Command::Check { manifest, .. } => {
            let manifest = read_manifest(&manifest)?;
            let mut report = durable_runtime::check::CheckReport::default();
            for d in rt.list(&ListFilter::default())? {
                report
                    .entries
                    .push(entry("store", &d, manifest.verdict(&d)));
            }
            finish_check(&report, cli.json)
        }
        Command::Cancel { id } => {
            rt.cancel(&id).await?;
            println!("cancel requested for {id}; it takes effect when the service runs");
            Ok(())
        }
        Command::Terminate { id, reason } => {
            rt.terminate(&id, &reason).await?;
            println!("terminate requested for {id}; it takes effect when the service runs");
            Ok(())
        }
    };
    rt.shutdown().await;
    result
}

async fn export(
    rt: &Runtime,
    args: Vec<String>,
    all: bool,
    workflow: Option<String>,
    status: Option<String>,
) -> Result<(), Failure> {
    let write = |file: &str, bytes: Vec<u8>| {
        std::fs::write(file, bytes).map_err(|e| Failure {
            code: 1,
            message: format!("cannot write {file}: {e}"),
        })
    };
    let set = all || workflow.is_some() || status.is_some();
    match (set, args.as_slice()) {
        (false, [id, file]) => {
            let snapshot = rt.export(id).map_err(snapshot_failure)?;
            write(file, snapshot.to_bytes().map_err(snapshot_failure)?)?;
            println!(
                "exported {id} ({} v{}, fingerprint {:016x}) to {file}",
                snapshot.workflow,
                snapshot.description().map_or(0, |d| d.version),
                snapshot.fingerprint,
            );
            Ok(())
        }
        (true, [file]) => {
            let filter = ListFilter {
                workflow,
                status: status.as_deref().map(parse_status).transpose()?,
                ..ListFilter::default()
            };
            let set = rt.export_set(&filter).map_err(snapshot_failure)?;
            write(file, set.to_bytes().map_err(snapshot_failure)?)?;
            println!("exported {} instances to {file}", set.snapshots.len());
            Ok(())
        }
        (false, _) => Err(usage(
            "export takes `ID FILE`, or `--all FILE` / `--workflow NAME FILE`",
        )),
        (true, _) => Err(usage(
            "with --all, --workflow or --status, export takes only the FILE to write",
        )),
    }
}

fn read_manifest(path: &std::path::Path) -> Result<durable_runtime::check::Manifest, Failure> {
    durable_runtime::check::Manifest::read(path).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })
}

fn entry(
    source: &str,
    d: &Description,
    verdict: durable_runtime::Compatibility,
) -> durable_runtime::check::CheckEntry {
    durable_runtime::check::CheckEntry::new(source, d, verdict)
}

/// `check --snapshots`: needs no store.
fn check_snapshots(
    manifest: &std::path::Path,
    path: &std::path::Path,
    json: bool,
) -> Result<(), Failure> {
    let manifest = read_manifest(manifest)?;
    let files = durable_runtime::check::read_snapshots(path).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let mut report = durable_runtime::check::CheckReport::default();
    for (file, set) in files {
        let source = file.display().to_string();
        for snapshot in &set.snapshots {
            let d = snapshot.description().map_err(snapshot_failure)?;
            report
                .entries
                .push(entry(&source, &d, manifest.verdict(&d)));
        }
    }
    finish_check(&report, json)
}

fn finish_check(report: &durable_runtime::check::CheckReport, json: bool) -> Result<(), Failure> {
    if json {
        print_json(report)?;
    } else {
        println!("{report}");
    }
    let parked = report.would_park().len();
    if parked > 0 {
        return Err(Failure {
            code: 5,
            message: format!("{parked} instances would be parked by this build"),
        });
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("durable: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
