//! `durable`: inspect and steer the workflow instances of a store.
//!
//! ```text
//! durable (--db DIR | --url URL [--token T]) <command> [--json]
//!
//! list [--status sleeping] [--workflow process_order] [--prefix order-] [--attr customer=acme]
//!      [--started-after T] [--started-before T] [--closed-after T] [--closed-before T]
//!      [--order newest|id] [--after ID] [--limit 50]
//! describe ID
//! history ID
//! state ID                  (with --db rendered by the layout stored with the state)
//! signal ID NAME [JSON]     (--url only: the payload takes the awaited type)
//! complete TOKEN [JSON]     (--url only: completes a promise once; again is an error)
//! update ID NAME [JSON] [--update-id U] [--wait 30]   (--url only: prints the reply)
//! stats
//! cancel ID
//! terminate ID [--reason "operator"]
//! reset-points ID
//! reset ID (--step N | --event N) [--reason R]   (--url only: the service's code checks the state)
//! batch cancel|terminate|signal|reset [FILTER] [--name N --payload JSON] [--reason R]
//!       [--step N | --earliest] [--per-second N] [--dry-run] [--no-wait]   (--url only)
//! batches | batch-status ID [--wait] | batch-stop ID                     (--url only)
//! export ID FILE | export --all FILE | export --workflow NAME [--status S] FILE
//! import FILE [--replace]   (a single snapshot or a set)
//! check --manifest FILE [--snapshots DIR_OR_FILE]   (--db, --url, or snapshots alone)
//! schedule list | describe ID | pause ID [--note N] | unpause ID | update ID TIMING | delete ID
//! schedule create ID --workflow W [--input JSON] TIMING   (--url only)
//! schedule trigger ID | backfill ID FROM TO               (--url only)
//! completions bash|zsh|fish|elvish|powershell             (a shell's completion script)
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

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};
use durable_runtime::snapshot::{Snapshot, SnapshotSet};
use durable_runtime::{ListFilter, ListOrder, Phase};

mod batches;
mod checks;
mod failure;
mod filter;
mod remote;
mod schedules;
mod show;
mod source;

use checks::{check_service, check_snapshots, entry, finish_check, read_manifest};
use failure::Failure;
use filter::FilterArgs;
use show::{describe_line, event_line, print_json, report, show_result};
use source::Source;

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

/// The order of `durable list`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Order {
    /// Newest start first (instances started in the same millisecond by id).
    Newest,
    /// By id.
    Id,
}

#[derive(Subcommand)]
enum Command {
    /// List instances.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Newest start first, or by id.
        #[arg(long, value_enum, default_value_t = Order::Newest)]
        order: Order,
        /// Only instances after this one in the order (paging: the last id
        /// of the previous page).
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
    /// Send an update to an instance and print its reply (--url only: the
    /// request takes the type declared or awaited). Again with the same
    /// --update-id re-attaches: the update is not accepted twice.
    Update {
        /// The instance id.
        id: String,
        /// The update's name.
        name: String,
        /// The request as JSON.
        #[arg(default_value = "null")]
        request: String,
        /// The update id (drawn when absent; printed either way).
        #[arg(long)]
        update_id: Option<String>,
        /// Seconds to wait for the reply (exit 10 if it has not come).
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Count instances by status.
    Stats,
    /// The workers sharing a PostgreSQL store: lease, instances owned.
    Workers,
    /// Signal, cancel, terminate or reset every instance the filter
    /// matches, drawing its progress until it ends (--url only: the service
    /// runs it; --dry-run lists what it would visit).
    Batch(batches::BatchArgs),
    /// The batch operations, newest first (--url only).
    Batches,
    /// A batch operation's progress (--url only); --wait follows it to its end.
    BatchStatus {
        /// The operation's id.
        id: String,
        /// Follow it until it ends.
        #[arg(long)]
        wait: bool,
    },
    /// Stop a batch operation before its next instance (--url only).
    BatchStop {
        /// The operation's id.
        id: String,
    },
    /// The steps an ended or parked instance can be reset to, oldest
    /// first: step, variant, the command it awaited there.
    ResetPoints {
        /// The instance id.
        id: String,
    },
    /// Reset an ended or parked instance to an earlier step: a new run goes
    /// on from the state kept for that step (`reset-points` lists them),
    /// running its awaited command again (--url only: the service's code
    /// checks it can read the kept state).
    #[command(group(ArgGroup::new("to").args(["step", "event"]).required(true)))]
    Reset {
        /// The instance id.
        id: String,
        /// The step to go back to.
        #[arg(long)]
        step: Option<u64>,
        /// An event of its history (`history` numbers them): back to its step.
        #[arg(long)]
        event: Option<u64>,
        /// Why, recorded in its history.
        #[arg(long, default_value = "reset from the command line")]
        reason: String,
    },
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
    /// Print a completion script for a shell (needs neither --db nor
    /// --url): `durable completions bash > /etc/bash_completion.d/durable`,
    /// `durable completions zsh > "${fpath[1]}/_durable"`, or for fish
    /// `durable completions fish > ~/.config/fish/completions/durable.fish`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = cli.command {
        return completions(shell);
    }
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

/// Prints the completion script of `shell`, from the argument definitions.
fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "durable", &mut std::io::stdout());
    Ok(())
}

async fn execute(source: &Source, command: Command, json: bool) -> Result<(), Failure> {
    match command {
        Command::Completions { shell } => return completions(shell),
        Command::List {
            filter,
            order,
            after,
            limit,
        } => {
            let attr = filter.attr.clone();
            let filter = ListFilter {
                order: match order {
                    Order::Newest => ListOrder::NewestFirst,
                    Order::Id => ListOrder::Id,
                },
                after,
                limit,
                ..filter.filter()?
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
            if let Some(next) = d.next_attempt_ms {
                println!("next try  {}", show::rfc3339(next));
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
        Command::Update {
            id,
            name,
            request,
            update_id,
            wait,
        } => {
            let request: serde_json::Value = serde_json::from_str(&request)
                .map_err(|e| Failure::usage(format!("the request is not JSON ({e}): {request}")))?;
            let Source::Remote(client) = source else {
                return Err(Failure::usage(
                    "an update's request is encoded as the type its workflow declares, which only \
                     the service's code knows: run `durable --url <service> update ID NAME JSON`"
                        .into(),
                ));
            };
            let (update_id, reply) = client.update(
                &id,
                &name,
                update_id.as_deref(),
                &request,
                std::time::Duration::from_secs(wait),
            )?;
            let Some(reply) = reply else {
                return Err(Failure {
                    code: crate::failure::EXIT_STILL_RUNNING,
                    message: format!(
                        "update {update_id} of {id} was accepted and has no reply after {wait} s; \
                         wait again with `durable update {id} {name} --update-id {update_id}`"
                    ),
                });
            };
            if json {
                print_json(&serde_json::json!({ "update_id": update_id, "reply": reply }))?;
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reply).unwrap_or_default()
                );
            }
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
        Command::Batch(args) => batches::start(remote_only(source, "batch")?, args, json)?,
        Command::Batches => batches::list(remote_only(source, "batches")?, json)?,
        Command::BatchStatus { id, wait } => {
            batches::status(remote_only(source, "batch-status")?, &id, wait, json)?;
        }
        Command::BatchStop { id } => batches::stop(remote_only(source, "batch-stop")?, &id, json)?,
        Command::ResetPoints { id } => {
            let points = source.reset_points(&id)?;
            if json {
                print_json(&points)?;
            } else if points.is_empty() {
                println!("{id} keeps no state to reset to");
            } else {
                println!("{:>6}  {:<24}  AWAITING", "STEP", "VARIANT");
                for p in points {
                    println!("{:>6}  {:<24}  {}", p.step, p.variant, p.awaiting);
                }
            }
        }
        Command::Reset {
            id,
            step,
            event,
            reason,
        } => {
            let to = match (step, event) {
                (Some(step), _) => durable_runtime::reset::ResetTo::Step(step),
                (None, Some(event)) => durable_runtime::reset::ResetTo::Event(event),
                (None, None) => return Err(Failure::usage("give --step or --event".into())),
            };
            let Source::Remote(client) = source else {
                return Err(Failure::usage(
                    "a reset checks the kept state against the workflow's code, which only the \
                     service has: run `durable --url <service> reset ID --step N`"
                        .into(),
                ));
            };
            let reset = client.reset(&id, to, &reason)?;
            report(
                json,
                serde_json::json!(reset),
                format!(
                    "{id} reset from step {} to step {}: run {} started",
                    reset.from_step, reset.step, reset.run
                ),
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

/// The service's client, for a command only a running service can carry out.
fn remote_only<'a>(source: &'a Source, command: &str) -> Result<&'a remote::Client, Failure> {
    match source {
        Source::Remote(client) => Ok(client),
        Source::Local(_) => Err(Failure::usage(format!(
            "batch operations run in the service: `durable --url <service> {command} ..`"
        ))),
    }
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
            // one instance in memory at a time, the progress on a terminal;
            // written beside the file and renamed over it once complete and
            // synced (with its directory), so a failure leaves no half set
            let cannot = |e: std::io::Error| Failure::other(format!("cannot write {file}: {e}"));
            let partial = format!("{file}.partial");
            let mut out = std::fs::File::create(&partial).map_err(cannot)?;
            let draw = !json && std::io::stderr().is_terminal();
            let exported = rt.export_set_to(&filter, &mut out, |done, total| {
                if draw {
                    eprint!("\r{} exported", batches::meter(done as u64, total as u64));
                    let _ = std::io::stderr().flush();
                }
            });
            if draw {
                eprintln!();
            }
            let written = exported
                .map_err(Failure::from)
                .and_then(|ids| out.sync_all().map(|()| ids).map_err(cannot));
            drop(out);
            let ids = match written {
                Ok(ids) => ids,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            };
            std::fs::rename(&partial, file).map_err(cannot)?;
            durable_runtime::store::fs::sync_parent(
                &durable_runtime::store::fs::RealFs,
                std::path::Path::new(file),
            )
            .map_err(cannot)?;
            report(
                json,
                serde_json::json!({ "exported": ids, "file": file }),
                format!("exported {} instances to {file}", ids.len()),
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
