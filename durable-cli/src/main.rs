//! `durable`: inspect and steer the workflow instances of a store.
//!
//! ```text
//! durable (--db DIR | --url URL [--token T]) <command> [--json]
//!
//! list [--status sleeping] [--workflow process_order] [--prefix order-] [--attr customer=acme]
//!      [--started-after T] [--started-before T] [--closed-after T] [--closed-before T]
//!      [--after ID] [--limit 50]
//! describe ID
//! history ID
//! state ID                  (--url only: rendering needs the workflow's code)
//! signal ID NAME [JSON]     (--url only: the payload takes the awaited type)
//! complete TOKEN [JSON]     (--url only: completes a promise once; again is an error)
//! stats
//! cancel ID
//! terminate ID [--reason "operator"]
//! export ID FILE | export --all FILE | export --workflow NAME [--status S] FILE
//! import FILE [--replace]   (a single snapshot or a set)
//! check --manifest FILE [--snapshots DIR_OR_FILE]   (--db, --url, or snapshots alone)
//! schedule list | describe ID | pause ID [--note N] | unpause ID | update ID TIMING | delete ID
//! schedule create ID --workflow W [--input JSON] TIMING   (--url only)
//! schedule trigger ID | backfill ID FROM TO               (--url only)
//!   TIMING: --cron EXPR [--tz ZONE] | --every 15m [--offset 5m], and
//!           [--jitter 30s] [--start T] [--end T] [--max-runs N]
//!           [--overlap skip|buffer-one|buffer-all|cancel-other|terminate-other|allow-all]
//!           [--catchup 6h]
//! ```
//!
//! With `--db` it opens the store without running anything: a store
//! directory, or a store URL (`postgres://...`, `redb:DIR`, `sled:DIR`). A store is open
//! in one process at a time, so a store a service has open is a clear error
//! (exit code 4): use `--url` with that service's
//! HTTP API (`durable_runtime::http`) instead, which gives the same output.
//! Cancel and terminate requests written with `--db` are carried out when
//! the service opens the store again. The token may come from
//! `DURABLE_TOKEN`, the store from `DURABLE_DB` (a PostgreSQL password then
//! stays out of the process list) and the service from `DURABLE_URL`,
//! rather than the command line. Durations take one or more parts, largest
//! first: `90s`, `15m`, `1h30m`, `2d12h`. History times are RFC 3339, UTC.
//!
//! `check` needs no workflow code: it compares stored fingerprints with the
//! manifest the new build wrote (`Builder::manifest().write(..)`, see
//! `durable_runtime::check`) and exits 7 if an instance would be parked.
//! With `--url` it checks a running service's unfinished instances (running,
//! sleeping, waiting, parked: a build cannot park a finished one), each
//! exported through the HTTP API and read by its stored layouts.
//!
//! Exit codes: 0 done, 1 other error, 2 bad usage or input, 3 unknown
//! instance, 4 store locked by another process, 5 service unreachable,
//! 6 token refused (or read-only for a command that changes something), 7
//! `check` found instances the new code would park,
//! 8 `--db` names no store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use durable_runtime::history::{EventKind, HistoryEvent};
use durable_runtime::snapshot::{Snapshot, SnapshotError, SnapshotSet};
use durable_runtime::{Description, ListFilter, Phase, ResultError, Runtime, Status, StoreError};

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
/// Exit code: `check` found instances the new build would park.
const EXIT_WOULD_PARK: u8 = 7;
/// Exit code: `--db` names no store.
const EXIT_NO_STORE: u8 = 8;
/// Exit code: `result` found the instance ended without completing
/// (failed, cancelled, terminated; the error is printed).
const EXIT_NOT_COMPLETED: u8 = 9;
/// Exit code: `result --wait` waited and the instance still runs.
const EXIT_STILL_RUNNING: u8 = 10;

#[derive(Parser)]
#[command(
    name = "durable",
    version,
    about = "Inspect and steer durable workflow instances",
    group(ArgGroup::new("store").args(["db", "url"]))
)]
struct Cli {
    /// The store (the one the service opens), when no process has it open:
    /// a store directory, or a URL (`postgres://user@host:5432/db`, `redb:DIR`, `sled:DIR`).
    /// From `DURABLE_DB` when not given (keeps a PostgreSQL password out of
    /// the process list).
    #[arg(
        long,
        value_name = "DIR|URL",
        env = "DURABLE_DB",
        hide_env_values = true
    )]
    db: Option<PathBuf>,
    /// The running service's HTTP API, such as http://127.0.0.1:7233 (for a
    /// live store); from `DURABLE_URL` when not given.
    #[arg(long, value_name = "URL", env = "DURABLE_URL")]
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
        /// Only instances with this search attribute: NAME=VALUE (the
        /// value matches as text, and as the number or flag it spells).
        #[arg(long, value_name = "NAME=VALUE")]
        attr: Option<String>,
        /// Only instances started at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        started_after: Option<String>,
        /// Only instances started at or before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        started_before: Option<String>,
        /// Only instances that ended at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        closed_after: Option<String>,
        /// Only instances that ended at or before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        closed_before: Option<String>,
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
    /// Show a finished instance's output (or error), waiting for it to end
    /// with --wait.
    Result {
        /// The instance id.
        id: String,
        /// Seconds to wait for the instance to end (0: look once).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Start a workflow by name on the newest version (needs --url: the
    /// service has the workflow's code).
    Start {
        /// The workflow's name.
        workflow: String,
        /// The new instance's id.
        id: String,
        /// The input as JSON.
        #[arg(long, default_value = "null")]
        input: String,
        /// An instance with this id already: return it instead of failing
        /// (`--id-policy use_existing`).
        #[arg(long, conflicts_with = "id_policy")]
        use_existing: bool,
        /// When the id is taken: `reject` (fail; the default),
        /// `use_existing` (return it) or `new_run_if_ended` (a new run of an
        /// id whose instance has ended).
        #[arg(long, value_parser = ["reject", "use_existing", "new_run_if_ended"])]
        id_policy: Option<String>,
        /// Seconds to wait for it to end, then show its output.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Show an instance's current state as JSON.
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
    /// Complete a promise (`durable_runtime::promise`) once, as a webhook
    /// would (--url only: the value takes the awaited type).
    Complete {
        /// The promise's token (`<instance id>#<uuid>`).
        token: String,
        /// The value as JSON.
        #[arg(default_value = "null")]
        value: String,
    },
    /// Count instances by status.
    Stats,
    /// The workers sharing a PostgreSQL store: lease, instances owned.
    Workers,
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
    /// Schedules: list, describe, create, update, pause, unpause, trigger, backfill, delete.
    Schedule {
        #[command(subcommand)]
        command: schedules::ScheduleCommand,
    },
    /// Would the build that wrote `--manifest` park any instance of the store
    /// (`--db`), of a running service (`--url`: its unfinished instances) or
    /// of a snapshot file or directory (`--snapshots`)? Exit 7 if so.
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
    ["postgres://", "postgresql://", "sled:", "redb:"]
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

impl Source {
    async fn open(cli: &Cli) -> Result<Source, Failure> {
        match (&cli.db, &cli.url) {
            (_, Some(url)) => Ok(Source::Remote(remote::Client::new(url, cli.token.clone())?)),
            (Some(db), None) => {
                let builder = Runtime::builder().resume_on_open(false);
                // a store URL (postgres://..., redb:DIR, sled:DIR) or a store directory
                let rt = match db.to_str().filter(|d| is_store_url(d)) {
                    Some(url) => builder.open_url(url).await?,
                    None => {
                        // opening would create a store: only `import` may (to fill a
                        // new one), not a command given a mistyped path
                        // a store's kind marker, or sled's own files (directories it
                        // wrote before the marker existed)
                        let is_store = db.join("durable.store").is_file()
                            || (db.join("conf").is_file() && db.join("db").is_file());
                        let creates = matches!(cli.command, Command::Import { .. }) && !db.exists();
                        if !is_store && !creates {
                            return Err(Failure {
                                code: EXIT_NO_STORE,
                                message: format!(
                                    "{} is not a durable store (no `durable.store` file there)",
                                    db.display()
                                ),
                            });
                        }
                        builder.open(db).await?
                    }
                };
                Ok(Source::Local(rt))
            }
            (None, None) => Err(Failure::usage("give --db DIR or --url URL".into())),
        }
    }

    /// `attr` is the search-attribute filter as typed (`NAME=VALUE`).
    fn list(&self, filter: &ListFilter, attr: Option<&str>) -> Result<Vec<Description>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.list(filter)?),
            Source::Remote(c) => c.list(filter, attr),
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
            // by the layout stored with it: no workflow code needed
            Source::Local(rt) => Ok(rt.state_json(id)?),
            Source::Remote(c) => c.state(id),
        }
    }

    async fn result(&self, id: &str, wait: std::time::Duration) -> Result<Description, Failure> {
        match self {
            Source::Local(rt) => Ok(match rt.result_json(id, wait).await? {
                Some(ended) => ended,
                None => rt.describe(id)?,
            }),
            Source::Remote(c) => c.result(id, wait),
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

    fn workers(&self) -> Result<Vec<durable_runtime::WorkerInfo>, Failure> {
        match self {
            Source::Local(rt) => Ok(rt.workers()?),
            Source::Remote(c) => c.get_json("/api/workers"),
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
    async fn import(&self, bytes: &[u8], set: &SnapshotSet, replace: bool) -> Result<(), Failure> {
        match self {
            Source::Local(rt) => {
                rt.import_set_unchecked(set, replace).await?;
                Ok(())
            }
            Source::Remote(c) => match set.snapshots.as_slice() {
                [one] if Snapshot::from_bytes(bytes).is_ok() => c.import(bytes, replace),
                [one] => c.import(&one.to_bytes()?, replace),
                many => Err(Failure::usage(format!(
                    "a set of {} instances is imported all or nothing through the store \
                     (--db DIR with the service stopped); through --url, one snapshot at a time",
                    many.len()
                ))),
            },
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

/// A time range from optional RFC 3339 ends, in ms since the epoch.
fn time_range(from: Option<&str>, to: Option<&str>) -> Result<Option<(u64, u64)>, Failure> {
    Ok(match (from, to) {
        (None, None) => None,
        (a, b) => Some((
            a.map(schedules::time_ms).transpose()?.unwrap_or(0),
            b.map(schedules::time_ms).transpose()?.unwrap_or(u64::MAX),
        )),
    })
}

/// What a command that changes something did: `text` for a person, or
/// with `--json` the object `value` (one line a script parses).
fn report(json: bool, value: serde_json::Value, text: impl std::fmt::Display) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
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

/// Prints a finished instance's output (JSON) or its error; the exit code
/// says whether it completed, ended otherwise or still runs.
fn show_result(d: &Description, json: bool) -> Result<(), Failure> {
    if json {
        print_json(d)?;
    } else if let Some(output) = &d.output {
        println!(
            "{}",
            serde_json::to_string_pretty(output).map_err(|e| Failure::other(e.to_string()))?
        );
    }
    match d.status {
        Status::Completed => Ok(()),
        status if status.is_terminal() => Err(Failure {
            code: EXIT_NOT_COMPLETED,
            message: format!(
                "{} {}: {}",
                d.id,
                d.phase,
                d.error.as_deref().unwrap_or("(no error recorded)")
            ),
        }),
        _ => Err(Failure {
            code: EXIT_STILL_RUNNING,
            message: format!(
                "{} is still {} at {} (step {})",
                d.id, d.phase, d.variant, d.step
            ),
        }),
    }
}

fn describe_line(d: &Description) -> String {
    format!(
        "{:<32} {:<20} {:>3} {:<18} {:<20} {:>5}  {}",
        d.id,
        d.workflow,
        d.version,
        d.phase.as_str(),
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
        EventKind::Input { json } => format!("input {json}"),
        EventKind::TimerFired { step } => format!("step {step}: timer fired"),
        EventKind::SignalReceived { step, name } => {
            format!("step {step}: signal {name} received")
        }
        other => format!("{other:?}"),
    };
    let at = chrono::DateTime::from_timestamp_millis(e.at_ms as i64).map_or_else(
        || e.at_ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    format!("{:>4}  {at}  {what}", e.seq)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Check {
        manifest,
        snapshots: Some(path),
    } = &cli.command
    {
        return check_snapshots(manifest, path, cli.json);
    }
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
            attr,
            started_after,
            started_before,
            closed_after,
            closed_before,
            after,
            limit,
        } => {
            let phase = status
                .as_deref()
                .map(str::parse::<Phase>)
                .transpose()
                .map_err(|e| Failure::usage(e.to_string()))?;
            let search_attribute = match &attr {
                Some(text) => {
                    let (name, value) = text.split_once('=').ok_or_else(|| {
                        Failure::usage(format!("--attr takes NAME=VALUE, not `{text}`"))
                    })?;
                    Some((
                        name.to_owned(),
                        durable_runtime::SearchValue::parse_all(value),
                    ))
                }
                None => None,
            };
            let filter = ListFilter {
                workflow,
                status: None,
                phase,
                id_prefix: prefix,
                after,
                limit,
                search_attribute,
                started: time_range(started_after.as_deref(), started_before.as_deref())?,
                closed: time_range(closed_after.as_deref(), closed_before.as_deref())?,
            };
            let list = source.list(&filter, attr.as_deref())?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<32} {:<20} {:>3} {:<18} {:<20} {:>5}  error",
                "id", "workflow", "ver", "status", "at", "step"
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
                "id        {}\nworkflow  {} version {} (run {}, fingerprint {:016x})\nstatus    {}\nat        {} (step {})",
                d.id, d.workflow, d.version, d.run, d.fingerprint, d.phase, d.variant, d.step
            );
            if let Some(w) = &d.waiting_for {
                println!("waits for {w}");
            }
            let attr = |name: &str| d.search_attributes.get(name);
            if let (Some(schedule), Some(nominal)) = (
                attr(durable_runtime::schedule::SCHEDULE_ID).and_then(|v| v.as_str()),
                attr(durable_runtime::schedule::SCHEDULED_START_MS).and_then(|v| v.as_u64()),
            ) {
                println!(
                    "scheduled by `{schedule}` for {}",
                    schedules::rfc3339(nominal)
                );
            }
            if !d.search_attributes.is_empty() {
                let attrs: Vec<String> = d
                    .search_attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!("attrs     {}", attrs.join(", "));
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
        Command::Result { id, wait } => {
            let d = source
                .result(&id, std::time::Duration::from_secs(wait))
                .await?;
            return show_result(&d, json);
        }
        Command::Start {
            workflow,
            id,
            input,
            use_existing,
            id_policy,
            wait,
        } => {
            let id_policy = match (id_policy, use_existing) {
                (Some(policy), _) => policy,
                (None, true) => "use_existing".to_owned(),
                (None, false) => "reject".to_owned(),
            };
            let input: serde_json::Value = serde_json::from_str(&input)
                .map_err(|e| Failure::usage(format!("the input is not JSON ({e}): {input}")))?;
            let Source::Remote(client) = &source else {
                return Err(Failure::usage(format!(
                    "an input is encoded as the type `{workflow}` takes, which only the service's \
                     code knows: run `durable --url <service> start {workflow} {id} ..`"
                )));
            };
            let started = client.start(&id, &workflow, &input, &id_policy)?;
            let Some(wait) = wait else {
                if json {
                    return print_json(&started);
                }
                println!(
                    "started {} ({}, {})",
                    started.id, started.workflow, started.phase
                );
                return Ok(());
            };
            let d = client.result(&id, std::time::Duration::from_secs(wait))?;
            return show_result(&d, json);
        }
        Command::State { id } => {
            // JSON either way: the state is JSON
            print_json(&source.state(&id)?)?;
        }
        Command::Signal { id, name, payload } => {
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| Failure::usage(format!("the payload is not JSON ({e}): {payload}")))?;
            source.signal(&id, &name, &payload).await?;
            report(
                json,
                serde_json::json!({ "signalled": id, "name": name }),
                format!("signal {name} sent to {id}"),
            );
        }
        Command::Complete { token, value } => {
            let value: serde_json::Value = serde_json::from_str(&value)
                .map_err(|e| Failure::usage(format!("the value is not JSON ({e}): {value}")))?;
            let Source::Remote(client) = source else {
                return Err(Failure::usage(
                    "a promise's value is encoded as the type its workflow awaits, which only the \
                     service's code knows: run `durable --url <service> complete TOKEN VALUE`"
                        .into(),
                ));
            };
            client.complete(&token, &value)?;
            report(
                json,
                serde_json::json!({ "completed": token }),
                format!("promise {token} completed"),
            );
        }
        Command::Workers => {
            let workers = source.workers()?;
            if json {
                return print_json(&workers);
            }
            if workers.is_empty() {
                println!("no worker holds a lease (a sled store, or no worker runs)");
            }
            for w in &workers {
                let queues = if w.queues.is_empty() {
                    String::new()
                } else {
                    format!("  queues {}", w.queues.join(","))
                };
                println!(
                    "{:<24} #{:<4} {:>8} instances  lease {} {}{queues}",
                    w.name,
                    w.incarnation,
                    w.instances,
                    if w.lapsed { "lapsed" } else { "until" },
                    schedules::rfc3339(w.lease_expires_ms)
                );
            }
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
        Command::Export {
            args,
            all,
            workflow,
            status,
        } => export(source, args, all, workflow, status, json)?,
        Command::Import { file, replace } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Failure::other(format!("cannot read {}: {e}", file.display())))?;
            let set = SnapshotSet::from_bytes(&bytes)?;
            source.import(&bytes, &set, replace).await?;
            if json {
                let ids: Vec<&str> = set.snapshots.iter().map(|s| s.id.as_str()).collect();
                report(true, serde_json::json!({ "imported": ids }), "");
                return Ok(());
            }
            for s in &set.snapshots {
                println!("imported {} ({})", s.id, s.workflow);
            }
            println!(
                "{} instances imported{}",
                set.snapshots.len(),
                match source {
                    Source::Local(_) => "; they continue when the service runs",
                    Source::Remote(_) => "",
                }
            );
        }
        Command::Check { manifest, .. } => {
            let manifest = read_manifest(&manifest)?;
            let mut report = durable_runtime::check::CheckReport::default();
            match source {
                Source::Local(rt) => {
                    for (id, verdict) in manifest.check_store(rt)? {
                        let d = rt.describe(&id)?;
                        report.entries.push(entry("store", &d, verdict));
                    }
                }
                Source::Remote(client) => check_service(&manifest, client, &mut report)?,
            }
            finish_check(&report, json)?;
        }
        Command::Cancel { id } => {
            source.cancel(&id).await?;
            report(
                json,
                serde_json::json!({ "cancel_requested": id }),
                format!("cancel requested for {id}{}", source.when()),
            );
        }
        Command::Schedule { command } => schedules::execute(source, command, json).await?,
        Command::Terminate { id, reason } => {
            source.terminate(&id, &reason).await?;
            report(
                json,
                serde_json::json!({ "terminate_requested": id, "reason": reason }),
                format!("terminate requested for {id}{}", source.when()),
            );
        }
    }
    Ok(())
}

fn export(
    source: &Source,
    args: Vec<String>,
    all: bool,
    workflow: Option<String>,
    status: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    // durable before success is reported: moving an instance by export
    // then terminate must not lose it in a power cut
    let write = |file: &str, bytes: &[u8]| {
        durable_runtime::store::fs::write_durably(
            &durable_runtime::store::fs::RealFs,
            std::path::Path::new(file),
            bytes,
        )
        .map_err(|e| Failure::other(format!("cannot write {file}: {e}")))
    };
    let set = all || workflow.is_some() || status.is_some();
    match (set, args.as_slice()) {
        (false, [id, file]) => {
            let bytes = source.export(id)?;
            let snapshot = Snapshot::from_bytes(&bytes)?;
            write(file, &bytes)?;
            report(
                json,
                serde_json::json!({ "exported": [id], "file": file }),
                format!(
                    "exported {id} ({} v{}, fingerprint {:016x}) to {file}",
                    snapshot.workflow,
                    snapshot.description().map_or(0, |d| d.version),
                    snapshot.fingerprint,
                ),
            );
            Ok(())
        }
        (true, [file]) => {
            let Source::Local(rt) = source else {
                return Err(Failure::usage(
                    "exporting a set goes through the store (--db DIR with the service stopped); \
                     through --url, export one instance at a time"
                        .into(),
                ));
            };
            let filter = ListFilter {
                workflow,
                phase: status
                    .as_deref()
                    .map(str::parse::<Phase>)
                    .transpose()
                    .map_err(|e| Failure::usage(e.to_string()))?,
                limit: usize::MAX,
                ..ListFilter::default()
            };
            let set = rt.export_set(&filter)?;
            write(file, &set.to_bytes()?)?;
            let ids: Vec<&str> = set.snapshots.iter().map(|s| s.id.as_str()).collect();
            report(
                json,
                serde_json::json!({ "exported": ids, "file": file }),
                format!("exported {} instances to {file}", set.snapshots.len()),
            );
            Ok(())
        }
        (false, _) => Err(Failure::usage(
            "export takes `ID FILE`, or `--all FILE` / `--workflow NAME FILE`".into(),
        )),
        (true, _) => Err(Failure::usage(
            "with --all, --workflow or --status, export takes only the FILE to write".into(),
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
            let verdict = manifest
                .check_snapshot(snapshot)
                .map_err(snapshot_failure)?;
            report.entries.push(entry(&source, &d, verdict));
        }
    }
    finish_check(&report, json)
}

/// `check --url`: the service's unfinished instances, page by page, each
/// exported (its record with its layouts) and checked like a snapshot. An
/// instance that ends between the listing and its export is skipped.
fn check_service(
    manifest: &durable_runtime::check::Manifest,
    client: &remote::Client,
    report: &mut durable_runtime::check::CheckReport,
) -> Result<(), Failure> {
    const PAGE: usize = 500;
    let unfinished = [
        Phase::Running,
        Phase::Sleeping,
        Phase::WaitingForSignal,
        Phase::Parked,
    ];
    for phase in unfinished {
        let mut after = None;
        loop {
            let filter = ListFilter {
                phase: Some(phase),
                after: after.take(),
                limit: PAGE,
                ..ListFilter::default()
            };
            let page = client.list(&filter, None)?;
            for d in &page {
                let bytes = match client.export(&d.id) {
                    Ok(bytes) => bytes,
                    Err(e) if e.code == EXIT_UNKNOWN => continue,
                    Err(e) => return Err(e),
                };
                let snapshot = Snapshot::from_bytes(&bytes).map_err(snapshot_failure)?;
                let verdict = manifest
                    .check_snapshot(&snapshot)
                    .map_err(snapshot_failure)?;
                report.entries.push(entry("service", d, verdict));
            }
            if page.len() < PAGE {
                break;
            }
            after = page.last().map(|d| d.id.clone());
        }
    }
    Ok(())
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
            code: EXIT_WOULD_PARK,
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
