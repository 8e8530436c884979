//! `durable schedule ...`: the schedules of a store or a running service.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use durable_runtime::schedule::{ScheduleDescription, ScheduleError, ScheduleEventKind};
use durable_runtime::{Overlap, Schedule, Schedules};

use crate::failure::{EXIT_UNKNOWN, Failure};
use crate::remote::Client;
use crate::show::print_json;
use crate::source::Source;

/// What to do with schedules.
#[derive(Subcommand)]
pub(crate) enum ScheduleCommand {
    /// List schedules.
    List,
    /// Show a schedule: definition, next and recent runs.
    Describe {
        /// The schedule id.
        id: String,
    },
    /// Create a schedule (needs --url: the service has the workflow's code).
    Create {
        /// The schedule id; runs are `<id>@<time>`.
        id: String,
        /// The workflow to start.
        #[arg(long)]
        workflow: String,
        /// Its input as JSON.
        #[arg(long, default_value = "null")]
        input: String,
        #[command(flatten)]
        timing: Timing,
    },
    /// Replace a schedule's timing and policies (workflow and input stay).
    Update {
        /// The schedule id.
        id: String,
        #[command(flatten)]
        timing: Timing,
    },
    /// Pause: times that pass are skipped (and recorded).
    Pause {
        /// The schedule id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Unpause: the next time after now runs.
    Unpause {
        /// The schedule id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Start a run now (needs --url).
    Trigger {
        /// The schedule id.
        id: String,
    },
    /// Run every scheduled time in FROM..=TO, RFC 3339 (needs --url).
    Backfill {
        /// The schedule id.
        id: String,
        /// First time, such as 2026-11-01T00:00:00Z.
        from: String,
        /// Last time.
        to: String,
        /// Overlap policy among the backfilled runs.
        #[arg(long, default_value = "allow-all")]
        overlap: String,
    },
    /// Delete a schedule (runs it started go on).
    Delete {
        /// The schedule id.
        id: String,
    },
}

/// When a schedule runs, as flags.
#[derive(Args)]
pub(crate) struct Timing {
    /// A cron expression (5, 6 or 7 fields), such as "0 2 * * *".
    #[arg(long, conflicts_with = "every", required_unless_present = "every")]
    cron: Option<String>,
    /// The cron expression's IANA time zone (default UTC).
    #[arg(long, requires = "cron")]
    tz: Option<String>,
    /// A fixed interval instead: 90s, 15m, 6h, 1d.
    #[arg(long)]
    every: Option<String>,
    /// Shifts the interval's runs (hourly at :15 = --every 1h --offset 15m).
    #[arg(long, requires = "every")]
    offset: Option<String>,
    /// Random delay below this per run.
    #[arg(long)]
    jitter: Option<String>,
    /// No run before this time (RFC 3339).
    #[arg(long)]
    start: Option<String>,
    /// No run after this time (RFC 3339).
    #[arg(long)]
    end: Option<String>,
    /// At most this many calendar runs.
    #[arg(long)]
    max_runs: Option<u64>,
    /// skip, buffer-one, buffer-all, cancel-other, terminate-other or allow-all.
    #[arg(long, default_value = "skip")]
    overlap: String,
    /// How late a missed run may still start (default a year).
    #[arg(long)]
    catchup: Option<String>,
}

impl Timing {
    fn schedule(&self) -> Result<Schedule, Failure> {
        let mut s = match (&self.cron, &self.every) {
            (Some(expr), _) => {
                let s = Schedule::cron(expr)?;
                match &self.tz {
                    Some(zone) => s.time_zone(zone)?,
                    None => s,
                }
            }
            (None, Some(every)) => {
                let s = Schedule::interval(duration(every)?)?;
                match &self.offset {
                    Some(offset) => s.offset(duration(offset)?)?,
                    None => s,
                }
            }
            (None, None) => return Err(Failure::usage("give --cron or --every".into())),
        };
        if let Some(j) = &self.jitter {
            s = s.jitter(duration(j)?);
        }
        if let Some(t) = &self.start {
            s = s.starting_at(time(t)?);
        }
        if let Some(t) = &self.end {
            s = s.ending_at(time(t)?);
        }
        if let Some(n) = self.max_runs {
            s = s.max_runs(n);
        }
        if let Some(w) = &self.catchup {
            s = s.catchup_window(duration(w)?);
        }
        Ok(s.overlap(self.overlap.parse()?))
    }
}

/// `90s`, `15m`, `6h`, `1d`, `250ms`.
fn duration(text: &str) -> Result<Duration, Failure> {
    let bad = || {
        Failure::usage(format!(
            "`{text}` is not a duration such as 90s, 15m, 1h30m or 1d"
        ))
    };
    // one or more `<number><unit>` parts, largest unit first: 1h30m, 2d12h
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..split].parse().map_err(|_| bad())?;
        let unit_len = rest[split..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - split);
        let unit = match &rest[split..split + unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        if unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
        rest = &rest[split + unit_len..];
    }
    if last_unit == u64::MAX {
        return Err(bad());
    }
    Ok(Duration::from_millis(total))
}

/// An RFC 3339 time, in ms since the epoch.
pub(crate) fn time_ms(text: &str) -> Result<u64, Failure> {
    Ok(time(text)?
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

/// An RFC 3339 time.
pub(crate) fn time(text: &str) -> Result<SystemTime, Failure> {
    let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        Failure::usage(format!(
            "`{text}` is not an RFC 3339 time such as 2026-11-01T02:00:00Z ({e})"
        ))
    })?;
    let ms = u64::try_from(t.timestamp_millis())
        .map_err(|_| Failure::usage(format!("`{text}` is before 1970")))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX)).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

impl From<ScheduleError> for Failure {
    fn from(e: ScheduleError) -> Self {
        let code = match &e {
            ScheduleError::NotFound { .. } => EXIT_UNKNOWN,
            ScheduleError::Cron { .. }
            | ScheduleError::TimeZone(_)
            | ScheduleError::Invalid(_)
            | ScheduleError::Input { .. } => 2,
            ScheduleError::Store(s) => return s.clone().into(),
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// Operations that start runs need the workflow's code: a service's.
fn needs_service(what: &str) -> Failure {
    Failure::other(format!(
        "{what} starts workflow runs, which needs the workflow's code: run it against the \
         service with `durable --url <service> schedule ...`"
    ))
}

impl Source {
    async fn schedule(&self, command: ScheduleCommand) -> Result<Output, Failure> {
        match self {
            Source::Local(rt) => local(&rt.schedules(), command).await,
            Source::Remote(c) => remote(c, command),
        }
    }
}

/// On a store this process opened: everything but what starts runs.
async fn local(s: &Schedules<'_>, command: ScheduleCommand) -> Result<Output, Failure> {
    let one = match command {
        ScheduleCommand::List => return Ok(Output::Many(s.list()?)),
        ScheduleCommand::Describe { id } => s.describe(&id)?,
        ScheduleCommand::Update { id, timing } => s.update(&id, timing.schedule()?).await?,
        ScheduleCommand::Pause { id, note } => s.pause(&id, &note).await?,
        ScheduleCommand::Unpause { id, note } => s.unpause(&id, &note).await?,
        ScheduleCommand::Delete { id } => {
            s.delete(&id).await?;
            return Ok(Output::Deleted(id));
        }
        ScheduleCommand::Create { .. } => return Err(needs_service("create")),
        ScheduleCommand::Trigger { .. } => return Err(needs_service("trigger")),
        ScheduleCommand::Backfill { .. } => return Err(needs_service("backfill")),
    };
    Ok(Output::One(Box::new(one)))
}

/// Through a running service's HTTP API.
fn remote(c: &Client, command: ScheduleCommand) -> Result<Output, Failure> {
    let one = match command {
        ScheduleCommand::List => return Ok(Output::Many(c.get_json("/api/schedules")?)),
        ScheduleCommand::Describe { id } => c.get_json(&path(&id, ""))?,
        ScheduleCommand::Create {
            id,
            workflow,
            input,
            timing,
        } => {
            let input: serde_json::Value = serde_json::from_str(&input)
                .map_err(|e| Failure::usage(format!("the input is not JSON ({e}): {input}")))?;
            let body = serde_json::json!({
                "id": id, "workflow": workflow, "input": input, "schedule": timing.schedule()?,
            });
            c.post_json("/api/schedules", &body)?
        }
        ScheduleCommand::Update { id, timing } => c.post_json(
            &path(&id, "/update"),
            &serde_json::json!({ "schedule": timing.schedule()? }),
        )?,
        ScheduleCommand::Pause { id, note } => {
            c.post_json(&path(&id, "/pause"), &serde_json::json!({ "note": note }))?
        }
        ScheduleCommand::Unpause { id, note } => {
            c.post_json(&path(&id, "/unpause"), &serde_json::json!({ "note": note }))?
        }
        ScheduleCommand::Trigger { id } => {
            c.post_json(&path(&id, "/trigger"), &serde_json::json!({}))?
        }
        ScheduleCommand::Backfill {
            id,
            from,
            to,
            overlap,
        } => {
            let overlap: Overlap = overlap.parse()?;
            let body = serde_json::json!({
                "from_ms": time_ms(&from)?, "to_ms": time_ms(&to)?, "overlap": overlap,
            });
            c.post_json(&path(&id, "/backfill"), &body)?
        }
        ScheduleCommand::Delete { id } => {
            c.delete(&path(&id, ""))?;
            return Ok(Output::Deleted(id));
        }
    };
    Ok(Output::One(Box::new(one)))
}

fn path(id: &str, rest: &str) -> String {
    format!("/api/schedules/{}{rest}", crate::remote::encode(id))
}

/// What a schedule command prints.
enum Output {
    Many(Vec<ScheduleDescription>),
    One(Box<ScheduleDescription>),
    Deleted(String),
}

/// Runs `command` and prints its answer (a table, or JSON with `--json`).
pub(crate) async fn execute(
    source: &Source,
    command: ScheduleCommand,
    json: bool,
) -> Result<(), Failure> {
    match source.schedule(command).await? {
        Output::Many(list) if json => print_json(&list),
        Output::One(d) if json => print_json(&d),
        Output::Deleted(id) if json => print_json(&serde_json::json!({ "deleted": id })),
        Output::Many(list) => {
            println!(
                "{:<24} {:<20} {:<40} {:<7} {:>5}  next",
                "id", "workflow", "when", "paused", "runs"
            );
            for d in &list {
                println!(
                    "{:<24} {:<20} {:<40} {:<7} {:>5}  {}",
                    d.id,
                    d.workflow,
                    d.spec,
                    if d.paused { "yes" } else { "no" },
                    d.runs,
                    d.next_ms
                        .first()
                        .map_or_else(|| "-".into(), |t| rfc3339(*t))
                );
            }
            Ok(())
        }
        Output::One(d) => {
            print_description(&d);
            Ok(())
        }
        Output::Deleted(id) => {
            println!("deleted schedule {id}");
            Ok(())
        }
    }
}

fn print_description(d: &ScheduleDescription) {
    println!("id        {}\nworkflow  {}", d.id, d.workflow);
    if let Some(input) = &d.input {
        println!("input     {input}");
    }
    println!(
        "when      {}\noverlap   {:?}, catch-up window {} s",
        d.spec,
        d.overlap,
        d.catchup_window_ms / 1000
    );
    if d.paused {
        println!("paused    {}", d.note);
    }
    println!("runs      {}", d.runs);
    for id in &d.running {
        println!("running   {id}");
    }
    for t in &d.buffered_ms {
        println!("buffered  {}", rfc3339(*t));
    }
    for t in &d.next_ms {
        println!("next      {}", rfc3339(*t));
    }
    for e in &d.recent {
        let what = match &e.kind {
            ScheduleEventKind::Started {
                workflow_id,
                trigger,
                ..
            } => format!("started {workflow_id} ({trigger:?})"),
            ScheduleEventKind::Skipped {
                first_ms,
                last_ms,
                count,
                reason,
            } => format!(
                "skipped {count} ({reason:?}) {}..{}",
                rfc3339(*first_ms),
                rfc3339(*last_ms)
            ),
            other => format!("{other:?}"),
        };
        println!("{}  {what}", rfc3339(e.at_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse_or_explain() {
        assert_eq!(duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(duration("15m").ok(), Some(Duration::from_secs(900)));
        assert_eq!(duration("1d").ok(), Some(Duration::from_secs(86_400)));
        assert_eq!(duration("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(duration("1h30m").ok(), Some(Duration::from_secs(5_400)));
        assert_eq!(duration("2d12h5s").ok(), Some(Duration::from_secs(216_005)));
        for bad in [
            "",
            "m",
            "5",
            "5w",
            "-5m",
            "99999999999999999999d",
            "30m1h",
            "1h1h",
            "1h30",
        ] {
            let e = duration(bad).err().map(|f| (f.code, f.message));
            assert!(
                matches!(&e, Some((2, m)) if m.contains("not a duration")),
                "{bad}: {e:?}"
            );
        }
        assert!(time("2026-11-01T02:00:00+01:00").is_ok());
        assert!(time("yesterday").is_err());
    }
}
