//! How results, instances and history events are printed.

use durable_runtime::history::{EventKind, HistoryEvent};
use durable_runtime::{Description, Status};

use crate::failure::{EXIT_NOT_COMPLETED, EXIT_STILL_RUNNING, Failure};
use crate::schedules;

/// A time range from optional RFC 3339 ends, in ms since the epoch.
pub(crate) fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Option<(u64, u64)>, Failure> {
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
pub(crate) fn report(json: bool, value: serde_json::Value, text: impl std::fmt::Display) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub(crate) fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

/// Prints a finished instance's output (JSON) or its error; the exit code
/// says whether it completed, ended otherwise or still runs.
pub(crate) fn show_result(d: &Description, json: bool) -> Result<(), Failure> {
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

pub(crate) fn describe_line(d: &Description) -> String {
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

pub(crate) fn event_line(e: &HistoryEvent) -> String {
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
        EventKind::PartFinished {
            step,
            part,
            activity,
            attempts,
            duration_ms,
            error,
        } => {
            let tries = match attempts {
                0 => String::new(),
                1 => " after 1 attempt".to_owned(),
                n => format!(" after {n} attempts"),
            };
            match error {
                None => {
                    format!("step {step} part {part}: {activity} done{tries} ({duration_ms} ms)")
                }
                Some(e) => format!(
                    "step {step} part {part}: {activity} gave up{tries} ({duration_ms} ms): {e}"
                ),
            }
        }
        EventKind::ActivityCalled {
            step,
            part,
            activity,
            input,
            output,
        } => {
            let part = part.map(|p| format!(" part {p}")).unwrap_or_default();
            format!("step {step}{part}: {activity}({input}) -> {output}")
        }
        EventKind::SignalPayload { step, name, json } => {
            format!("step {step}: signal {name} carried {json}")
        }
        EventKind::UpdateReplied { step, update, json } => {
            format!("step {step}: replied to update {update}: {json}")
        }
        EventKind::Reset {
            from_step,
            to_step,
            run,
            reason,
        } => format!("reset from step {from_step} to step {to_step}: run {run} ({reason})"),
        EventKind::RunFailed {
            run,
            attempt,
            error,
            next_at_ms,
        } => {
            let next = rfc3339(*next_at_ms);
            format!("run {run} (attempt {attempt}) failed: {error}; the next run starts at {next}")
        }
        other => format!("{other:?}"),
    };
    format!("{:>4}  {}  {what}", e.seq, rfc3339(e.at_ms))
}

/// Milliseconds since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}
