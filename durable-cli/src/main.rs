//! `durable`: inspect and steer the workflow instances of a store.
//!
//! ```text
//! durable (--db DIR | --url URL [--token T]) <command> [--json]
//!
//! list [--status sleeping] [--workflow process_order] [--prefix order-] [--after ID] [--limit 50]
//! describe ID
//! history ID
//! state ID                  (--url only: rendering needs the workflow's code)
//! signal ID NAME [JSON]     (--url only: the payload takes the awaited type)
//! stats
//! cancel ID
//! terminate ID [--reason "operator"]
//! export ID FILE
//! import FILE [--replace]
//! schedule list | describe ID | pause ID [--note N] | unpause ID | update ID TIMING | delete ID
//! schedule create ID --workflow W [--input JSON] TIMING   (--url only)
//! schedule trigger ID | backfill ID FROM TO               (--url only)
//!   TIMING: --cron EXPR [--tz ZONE] | --every 15m [--offset 5m], and
//!           [--jitter 30s] [--start T] [--end T] [--max-runs N]
//!           [--overlap skip|buffer-one|buffer-all|cancel-other|terminate-other|allow-all]
//!           [--catchup 6h]
//! ```
//!
//! With `--db` it opens the store without running anything: a sled
//! directory, or a store URL (`postgres://...`, `sled:DIR`). A store is open
//! in one process at a time, so a store a service has open is a clear error
//! (exit code 4): use `--url` with that service's
//! HTTP API (`durable_runtime::http`) instead, which gives the same output.
//! Cancel and terminate requests written with `--db` are carried out when
//! the service opens the store again. The token may come from
//! `DURABLE_TOKEN` rather than the command line.
//!
//! Exit codes: 0 done, 1 other error, 2 bad usage or input, 3 unknown
//! instance, 4 store locked by another process, 5 service unreachable,
//! 6 token refused.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use durable_runtime::history::{EventKind, HistoryEvent};
use durable_runtime::snapshot::{Snapshot, SnapshotError};
use durable_runtime::{Description, ListFilter, Phase, ResultError, Runtime, StoreError};

mod remote;
mod schedules;

/// Exit code: no instance has the id.
const EXIT_UNKNOWN: u8 = 3;
/// Exit code: another process has the store open.
const EXIT_LOCKED: u8 = 4;
/// Exit code: the service at `--url` does not answer.
const EXIT_UNREACHABLE: u8 = 5;
/// Exit code: the service refused the token.
const EXIT_TOKEN: u8 = 6;

#[derive(Parser)]
#[command(
    name = "durable",
    version,
    about = "Inspect and steer durable workflow instances",
    group(ArgGroup::new("store").required(true).args(["db", "url"]))
)]
struct Cli {
    /// The store (the one the service opens), when no process has it open:
    /// a sled directory, or a URL (`postgres://user@host:5432/db`, `sled:DIR`).
    #[arg(long, value_name = "DIR|URL")]
    db: Option<PathBuf>,
    /// The running service's HTTP API, such as http://127.0.0.1:7233 (for a live store).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The service's bearer token (with --url).
    #[arg(long, env = "DURABLE_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
        /// Only this status: running, sleeping, waiting_for_signal, completed,
        /// failed, cancelled, terminated or parked.
        #[arg(long)]
        status: Option<String>,
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only ids that start with this.
        #[arg(long)]
        prefix: Option<String>,
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
    /// Show an instance's current state as JSON (needs --url).
    State {
        /// The instance id.
        id: String,
    },
    /// Send a signal to an instance that waits for it (needs --url).
    Signal {
        /// The instance id.
        id: String,
        /// The signal's name.
        name: String,
        /// The payload as JSON.
        #[arg(default_value = "null")]
        payload: String,
    },
    /// Count instances by status.
    Stats,
    /// Ask an instance to cancel (it runs its cleanup).
    Cancel {
        /// The instance id.
        id: String,
    },
    /// Write an instance to a snapshot file (to import it into another store).
    Export {
        /// The instance id.
        id: String,
        /// The file to write.
        file: PathBuf,
    },
    /// Import a snapshot file; the instance continues when the service runs.
    Import {
        /// The snapshot file.
        file: PathBuf,
        /// Overwrite an instance with the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Schedules: list, describe, create, update, pause, unpause, trigger, backfill, delete.
    Schedule {
        #[command(subcommand)]
        command: schedules::ScheduleCommand,
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

impl Failure {
    /// Bad usage or input (exit code 2).
    fn usage(message: String) -> Failure {
        Failure { code: 2, message }
    }

    fn other(message: String) -> Failure {
        Failure { code: 1, message }
    }
}

/// Whether `--db` names a store by URL rather than by directory.
fn is_store_url(db: &str) -> bool {
    ["postgres://", "postgresql://", "sled:"]
        .iter()
        .any(|scheme| db.starts_with(scheme))
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::Locked { .. } => EXIT_LOCKED,
            StoreError::BadUrl { .. } => 2,
            _ => 1,
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
                code: EXIT_UNKNOWN,
                message: e.to_string(),
            },
            ResultError::Store(s) => s.into(),
            other => Failure::other(other.to_string()),
        }
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::NotFound { .. } => Failure {
                code: EXIT_UNKNOWN,
                message: e.to_string(),
            },
            SnapshotError::Store(s) => s.into(),
            other => Failure::other(other.to_string()),
        }
    }
}

/// Where the instances are: a store this process opens, or a running
/// service's HTTP API. Both answer with the same types, so every command
/// prints the same way whichever it is.
enum Source {
    Local(Runtime),
    Remote(remote::Client),
}

impl Source {
    async fn open(cli: &Cli) -> Result<Source, Failure> {
        match (&cli.db, &cli.url) {
            (_, Some(url)) => Ok(Source::Remote(remote::Client::new(url, cli.token.clone())?)),
            (Some(db), None) => {
                let builder = Runtime::builder().resume_on_open(false);
                // a store URL (postgres://..., sled:DIR) or a sled directory
                let rt = match db.to_str().filter(|d| is_store_url(d)) {
                    Some(url) => builder.open_url(url).await?,
                    None => builder.open(db).await?,
                };
                Ok(Source::Local(rt))
            }
            (None, None) => Err(Failure::usage("give --db DIR or --url URL".into())),
        }
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<Description>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.list(filter)?),
            Source::Remote(c) => c.list(
                filter.phase,
                filter.workflow.as_deref(),
                filter.id_prefix.as_deref(),
                filter.after.as_deref(),
                filter.limit,
            ),
        }
    }

    fn describe(&self, id: &str) -> Result<Description, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.describe(id)?),
            Source::Remote(c) => c.describe(id),
        }
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEvent>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.history(id)?),
            Source::Remote(c) => c.history(id),
        }
    }

    fn state(&self, id: &str) -> Result<serde_json::Value, Failure> {
        match self {
            Source::Local(rt) => {
                // the id must exist before the missing code is the problem
                rt.describe(id)?;
                Err(Failure::other(format!(
                    "the state of `{id}` can only be rendered by a process with its workflow's code: \
                     run `durable --url <service> state {id}` against the service"
                )))
            }
            Source::Remote(c) => c.state(id),
        }
    }

    async fn signal(
        &self,
        id: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => {
                rt.describe(id)?;
                Err(Failure::other(format!(
                    "a signal's payload is encoded as the type its workflow awaits, which only the \
                     service's code knows: run `durable --url <service> signal {id} {name} ..`"
                )))
            }
            Source::Remote(c) => c.signal(id, name, payload),
        }
    }

    async fn cancel(&self, id: &str) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => Ok(rt.cancel(id).await?),
            Source::Remote(c) => c.cancel(id),
        }
    }

    async fn terminate(&self, id: &str, reason: &str) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => Ok(rt.terminate(id, reason).await?),
            Source::Remote(c) => c.terminate(id, reason),
        }
    }

    fn counts(&self) -> Result<Vec<(Phase, usize)>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.counts_by_phase()?),
            Source::Remote(c) => c.counts(),
        }
    }

    /// The instance as a snapshot file's bytes.
    fn export(&self, id: &str) -> Result<Vec<u8>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.export(id)?.to_bytes()?),
            Source::Remote(c) => c.export(id),
        }
    }

    /// Imports a snapshot: unchecked into a store (this process lacks the
    /// code; the service checks the shape when it opens it), checked by a
    /// running service.
    async fn import(
        &self,
        bytes: &[u8],
        snapshot: &Snapshot,
        replace: bool,
    ) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => Ok(rt.import_unchecked(snapshot, replace).await?),
            Source::Remote(c) => c.import(bytes, replace),
        }
    }

    /// What a steering command's effect waits for.
    fn when(&self) -> &'static str {
        match self {
            Source::Local(_) => "; it takes effect when the service runs",
            Source::Remote(_) => "",
        }
    }

    async fn close(self) {
        if let Source::Local(rt) = self {
            rt.shutdown().await;
        }
    }
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
        "{:<32} {:<20} {:<18} {:<20} {:>5}  {}",
        d.id,
        d.workflow,
        d.phase.as_str(),
        d.variant,
        d.step,
        d.error.as_deref().or(d.last_error.as_deref()).unwrap_or("")
    )
}

fn event_line(e: &HistoryEvent) -> String {
    let what = match &e.kind {
        EventKind::Started { workflow, run } => format!("started {workflow} (run {run})"),
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
        EventKind::Finished { status, error } => format!(
            "finished {status:?}{}",
            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        EventKind::Input { json } => format!("input {json}"),
        other => format!("{other:?}"),
    };
    format!("{:>4}  {:>13}  {what}", e.seq, e.at_ms)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let source = Source::open(&cli).await?;
    let result = execute(&source, cli.command, cli.json).await;
    source.close().await;
    result
}

async fn execute(source: &Source, command: Command, json: bool) -> Result<(), Failure> {
    match command {
        Command::List {
            status,
            workflow,
            prefix,
            after,
            limit,
        } => {
            let phase = status
                .as_deref()
                .map(str::parse::<Phase>)
                .transpose()
                .map_err(|e| Failure::usage(e.to_string()))?;
            let filter = ListFilter {
                workflow,
                status: None,
                phase,
                id_prefix: prefix,
                after,
                limit,
            };
            let list = source.list(&filter)?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<32} {:<20} {:<18} {:<20} {:>5}  error",
                "id", "workflow", "status", "at", "step"
            );
            for d in &list {
                println!("{}", describe_line(d));
            }
        }
        Command::Describe { id } => {
            let d = source.describe(&id)?;
            if json {
                return print_json(&d);
            }
            println!(
                "id        {}\nworkflow  {} (run {})\nstatus    {}\nat        {} (step {})",
                d.id, d.workflow, d.run, d.phase, d.variant, d.step
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
        }
        Command::History { id } => {
            let events = source.history(&id)?;
            if json {
                return print_json(&events);
            }
            for e in &events {
                println!("{}", event_line(e));
            }
        }
        Command::State { id } => {
            // JSON either way: the state is JSON
            print_json(&source.state(&id)?)?;
        }
        Command::Signal { id, name, payload } => {
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| Failure::usage(format!("the payload is not JSON ({e}): {payload}")))?;
            source.signal(&id, &name, &payload).await?;
            println!("signal {name} sent to {id}");
        }
        Command::Stats => {
            let counts = source.counts()?;
            if json {
                let map: serde_json::Map<String, serde_json::Value> = counts
                    .iter()
                    .map(|(p, n)| (p.as_str().to_owned(), (*n).into()))
                    .collect();
                return print_json(&map);
            }
            for (phase, n) in &counts {
                println!("{:<18} {n}", phase.as_str());
            }
        }
        Command::Export { id, file } => {
            let bytes = source.export(&id)?;
            let snapshot = Snapshot::from_bytes(&bytes)?;
            std::fs::write(&file, &bytes)
                .map_err(|e| Failure::other(format!("cannot write {}: {e}", file.display())))?;
            println!(
                "exported {id} ({} at fingerprint {:016x}) to {}",
                snapshot.workflow,
                snapshot.fingerprint,
                file.display()
            );
        }
        Command::Import { file, replace } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Failure::other(format!("cannot read {}: {e}", file.display())))?;
            let snapshot = Snapshot::from_bytes(&bytes)?;
            source.import(&bytes, &snapshot, replace).await?;
            println!(
                "imported {} ({}){}",
                snapshot.id,
                snapshot.workflow,
                match source {
                    Source::Local(_) => "; it continues when the service runs",
                    Source::Remote(_) => "",
                }
            );
        }
        Command::Cancel { id } => {
            source.cancel(&id).await?;
            println!("cancel requested for {id}{}", source.when());
        }
        Command::Schedule { command } => schedules::execute(source, command, json).await?,
        Command::Terminate { id, reason } => {
            source.terminate(&id, &reason).await?;
            println!("terminate requested for {id}{}", source.when());
        }
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
