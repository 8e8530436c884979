//! Schedules: start a workflow on a cron expression or a fixed interval,
//! reliably, in place of crontab.
//!
//! A schedule is stored in the same store as the instances it starts. Each
//! run's instance id is the schedule id and the run's *nominal* time
//! (`nightly@2026-11-25T02:00:00Z`), and starting it is one atomic batch
//! with the schedule's own progress: a crash between "time reached" and
//! "workflow started" neither loses the run nor starts it twice.
//!
//! ```
//! use std::time::Duration;
//! use durable_runtime::schedule::{Overlap, Schedule};
//!
//! let nightly = Schedule::cron("0 2 * * *")?
//!     .time_zone("Europe/Berlin")?
//!     .overlap(Overlap::BufferOne)
//!     .catchup_window(Duration::from_secs(6 * 3600));
//! let every_5_min = Schedule::interval(Duration::from_secs(300))?
//!     .offset(Duration::from_secs(60))?
//!     .jitter(Duration::from_secs(10));
//! # let _ = (nightly, every_5_min);
//! # Ok::<(), durable_runtime::schedule::ScheduleError>(())
//! ```
//!
//! Cron expressions have 5 fields (minute granularity), 6 (with seconds
//! first) or 7 (with a year last), plus `L`, `W`, `#` and `@daily`-style
//! aliases (the [`croner`] dialect). Times are read in the schedule's time
//! zone (UTC by default), with the daylight-saving rules of Vixie cron: a
//! fixed time that does not exist on the day clocks spring forward runs at
//! the first instant after the gap; a fixed time that happens twice when
//! they fall back runs once; a job that repeats within the hour (`*/15`)
//! keeps its rhythm through both.

use std::str::FromStr;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::to_ms;
use crate::codec::CodecError;
use crate::store::StoreError;

/// How many recent events a schedule keeps.
pub(crate) const RECENT: usize = 50;

/// When a schedule fires, and what it does when a run is still going.
///
/// Built with [`Schedule::cron`] or [`Schedule::interval`] in Rust; as JSON
/// (the HTTP API) it is an object with `cron` (and `time_zone`) or
/// `every_ms` (and `offset_ms`), and optionally `jitter_ms`, `start_ms`,
/// `end_ms` (ms since the epoch), `max_runs`, `overlap` (`skip`,
/// `buffer_one`, `buffer_all`, `cancel_other`, `terminate_other`,
/// `allow_all`) and `catchup_window_ms`, checked as the builder checks them:
///
/// ```
/// let s: durable_runtime::Schedule = serde_json::from_str(
///     r#"{"cron": "0 2 * * *", "time_zone": "Europe/Berlin", "overlap": "buffer_one"}"#,
/// )?;
/// assert_eq!(s.describe(), "cron \"0 2 * * *\" in Europe/Berlin");
/// assert!(serde_json::from_str::<durable_runtime::Schedule>(r#"{"cron": "0 2 * *"}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec", into = "ScheduleSpec")]
pub struct Schedule {
    pub(crate) calendar: Calendar,
    pub(crate) jitter_ms: u64,
    pub(crate) start_ms: Option<u64>,
    pub(crate) end_ms: Option<u64>,
    pub(crate) max_runs: Option<u64>,
    pub(crate) overlap: Overlap,
    pub(crate) catchup_window_ms: u64,
}

/// A [`Schedule`] as data: what it is stored and sent as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ScheduleSpec {
    cron: Option<String>,
    time_zone: Option<String>,
    every_ms: Option<u64>,
    offset_ms: Option<u64>,
    jitter_ms: u64,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    max_runs: Option<u64>,
    overlap: Overlap,
    catchup_window_ms: Option<u64>,
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = ScheduleError;

    fn try_from(spec: ScheduleSpec) -> Result<Self, Self::Error> {
        let mut schedule = match (spec.cron, spec.every_ms) {
            (Some(expr), None) => {
                let schedule = Schedule::cron(&expr)?;
                match (spec.time_zone, spec.offset_ms) {
                    (_, Some(_)) => {
                        return Err(ScheduleError::Invalid(
                            "an offset applies to intervals, not cron schedules".into(),
                        ));
                    }
                    (Some(zone), None) => schedule.time_zone(&zone)?,
                    (None, None) => schedule,
                }
            }
            (None, Some(every)) => {
                if spec.time_zone.is_some() {
                    return Err(ScheduleError::Invalid(
                        "a time zone applies to cron schedules, not intervals".into(),
                    ));
                }
                Schedule::interval(Duration::from_millis(every))?
                    .offset(Duration::from_millis(spec.offset_ms.unwrap_or(0)))?
            }
            _ => {
                return Err(ScheduleError::Invalid(
                    "a schedule needs either `cron` or `every_ms`".into(),
                ));
            }
        };
        schedule.jitter_ms = spec.jitter_ms;
        schedule.start_ms = spec.start_ms;
        schedule.end_ms = spec.end_ms;
        schedule.max_runs = spec.max_runs;
        schedule.overlap = spec.overlap;
        if let Some(window) = spec.catchup_window_ms {
            schedule.catchup_window_ms = window;
        }
        Ok(schedule)
    }
}

impl From<Schedule> for ScheduleSpec {
    fn from(s: Schedule) -> Self {
        let (cron, time_zone, every_ms, offset_ms) = match s.calendar {
            Calendar::Cron { expr, zone } => (Some(expr), Some(zone), None, None),
            Calendar::Interval {
                every_ms,
                offset_ms,
            } => (None, None, Some(every_ms), Some(offset_ms)),
        };
        ScheduleSpec {
            cron,
            time_zone,
            every_ms,
            offset_ms,
            jitter_ms: s.jitter_ms,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            max_runs: s.max_runs,
            overlap: s.overlap,
            catchup_window_ms: Some(s.catchup_window_ms),
        }
    }
}

/// The times a schedule names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Calendar {
    /// A cron expression read in an IANA time zone.
    Cron { expr: String, zone: String },
    /// Every `every_ms`, at `offset_ms` past each multiple since the epoch.
    Interval { every_ms: u64, offset_ms: u64 },
}

/// What a schedule does when a run comes due while an earlier run it
/// started is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not start it (recorded as skipped). The default.
    #[default]
    Skip,
    /// Start it when the running one ends; at most one waits, later ones
    /// are skipped.
    BufferOne,
    /// Start each in turn as the previous one ends.
    BufferAll,
    /// Ask the running one to cancel (it may compensate), and start the new
    /// one once it has ended.
    CancelOther,
    /// Terminate the running one (no cleanup runs) and start the new one now.
    TerminateOther,
    /// Start it anyway: runs may overlap.
    AllowAll,
}

impl FromStr for Overlap {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.replace('-', "_").as_str() {
            "skip" => Overlap::Skip,
            "buffer_one" => Overlap::BufferOne,
            "buffer_all" => Overlap::BufferAll,
            "cancel_other" => Overlap::CancelOther,
            "terminate_other" => Overlap::TerminateOther,
            "allow_all" => Overlap::AllowAll,
            other => {
                return Err(ScheduleError::Invalid(format!(
                    "unknown overlap policy `{other}` (skip, buffer-one, buffer-all, \
                     cancel-other, terminate-other, allow-all)"
                )));
            }
        })
    }
}

impl Schedule {
    /// Runs at the times a cron expression names (5, 6 or 7 fields), in UTC
    /// unless [`Schedule::time_zone`] says otherwise.
    ///
    /// # Errors
    /// [`ScheduleError::Cron`] if the expression does not parse.
    pub fn cron(expr: &str) -> Result<Schedule, ScheduleError> {
        parse_cron(expr)?;
        Ok(Schedule::on(Calendar::Cron {
            expr: expr.trim().to_owned(),
            zone: "UTC".to_owned(),
        }))
    }

    /// Runs every `every`, aligned to the Unix epoch (`every` = 1 h runs on
    /// the hour; add [`Schedule::offset`] to shift it).
    ///
    /// # Errors
    /// [`ScheduleError::Invalid`] for an interval under a millisecond.
    pub fn interval(every: Duration) -> Result<Schedule, ScheduleError> {
        let every_ms = millis(every);
        if every_ms == 0 {
            return Err(ScheduleError::Invalid(
                "an interval must be at least 1 ms".into(),
            ));
        }
        Ok(Schedule::on(Calendar::Interval {
            every_ms,
            offset_ms: 0,
        }))
    }

    fn on(calendar: Calendar) -> Schedule {
        Schedule {
            calendar,
            jitter_ms: 0,
            start_ms: None,
            end_ms: None,
            max_runs: None,
            overlap: Overlap::Skip,
            catchup_window_ms: millis(Duration::from_secs(365 * 86_400)),
        }
    }

    /// Reads a cron expression in an IANA time zone (`Europe/Berlin`),
    /// daylight-saving transitions included.
    ///
    /// # Errors
    /// [`ScheduleError::TimeZone`] for an unknown zone;
    /// [`ScheduleError::Invalid`] on an interval schedule.
    pub fn time_zone(mut self, zone: &str) -> Result<Schedule, ScheduleError> {
        let parsed: chrono_tz::Tz = zone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(zone.to_owned()))?;
        match &mut self.calendar {
            Calendar::Cron { zone, .. } => *zone = parsed.name().to_owned(),
            Calendar::Interval { .. } => {
                return Err(ScheduleError::Invalid(
                    "a time zone applies to cron schedules, not intervals".into(),
                ));
            }
        }
        Ok(self)
    }

    /// Shifts an interval's runs: every hour at 15 minutes past is
    /// `interval(1 h)` with `offset(15 min)`.
    ///
    /// # Errors
    /// [`ScheduleError::Invalid`] on a cron schedule or for an offset not
    /// below the interval.
    pub fn offset(mut self, offset: Duration) -> Result<Schedule, ScheduleError> {
        match &mut self.calendar {
            Calendar::Interval {
                every_ms,
                offset_ms,
            } if millis(offset) < *every_ms => *offset_ms = millis(offset),
            Calendar::Interval { .. } => {
                return Err(ScheduleError::Invalid(
                    "an interval's offset must be below the interval".into(),
                ));
            }
            Calendar::Cron { .. } => {
                return Err(ScheduleError::Invalid(
                    "an offset applies to intervals, not cron schedules".into(),
                ));
            }
        }
        Ok(self)
    }

    /// Delays each run by a random amount below `jitter`, so that many
    /// schedules on the same time do not start at once. The delay of a run
    /// is derived from the schedule id and the run's time: it is the same
    /// after a restart.
    pub fn jitter(mut self, jitter: Duration) -> Schedule {
        self.jitter_ms = millis(jitter);
        self
    }

    /// No run before `start`.
    pub fn starting_at(mut self, start: SystemTime) -> Schedule {
        self.start_ms = Some(to_ms(start));
        self
    }

    /// No run after `end`.
    pub fn ending_at(mut self, end: SystemTime) -> Schedule {
        self.end_ms = Some(to_ms(end));
        self
    }

    /// At most `n` runs from the calendar (manual triggers and backfills are
    /// not counted); then the schedule has no next run.
    pub fn max_runs(mut self, n: u64) -> Schedule {
        self.max_runs = Some(n);
        self
    }

    /// What to do when a run comes due while an earlier one is still going
    /// (default [`Overlap::Skip`]).
    pub fn overlap(mut self, overlap: Overlap) -> Schedule {
        self.overlap = overlap;
        self
    }

    /// How late a run may still start after its time, for runs missed while
    /// the process was down (default one year). Older ones are skipped and
    /// recorded as skipped.
    pub fn catchup_window(mut self, window: Duration) -> Schedule {
        self.catchup_window_ms = millis(window);
        self
    }

    /// In short: `cron "0 2 * * *" in Europe/Berlin`, `every 5m offset 1m`.
    pub fn describe(&self) -> String {
        match &self.calendar {
            Calendar::Cron { expr, zone } => format!("cron \"{expr}\" in {zone}"),
            Calendar::Interval {
                every_ms,
                offset_ms,
            } => {
                let mut text = format!("every {}", human_ms(*every_ms));
                if *offset_ms > 0 {
                    text.push_str(&format!(" offset {}", human_ms(*offset_ms)));
                }
                text
            }
        }
    }

    /// The first calendar time strictly after `after_ms` within the start
    /// and end dates (ms since the epoch), if any.
    pub(crate) fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after_ms = match self.start_ms {
            Some(start) if start > 0 && after_ms < start => start - 1,
            _ => after_ms,
        };
        let next = match &self.calendar {
            Calendar::Cron { expr, zone } => cron_next(expr, zone, after_ms)?,
            Calendar::Interval {
                every_ms,
                offset_ms,
            } => {
                if after_ms < *offset_ms {
                    *offset_ms
                } else {
                    let k = (after_ms - offset_ms) / every_ms + 1;
                    k.checked_mul(*every_ms)?.checked_add(*offset_ms)?
                }
            }
        };
        match self.end_ms {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The delay of the run at `nominal_ms` of schedule `id` (below the
    /// jitter; stable across restarts).
    pub(crate) fn jitter_of(&self, id: &str, nominal_ms: u64) -> u64 {
        if self.jitter_ms == 0 {
            return 0;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(id.as_bytes());
        hasher.update(&nominal_ms.to_be_bytes());
        u64::from(hasher.finalize()) % self.jitter_ms
    }
}

fn parse_cron(expr: &str) -> Result<croner::Cron, ScheduleError> {
    croner::Cron::from_str(expr.trim()).map_err(|e| ScheduleError::Cron {
        expr: expr.to_owned(),
        reason: e.to_string(),
    })
}

/// The next time after `after_ms` that `expr` names in `zone`.
fn cron_next(expr: &str, zone: &str, after_ms: u64) -> Option<u64> {
    let cron = parse_cron(expr).ok()?;
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    // cron has second granularity: search from the whole second
    let from =
        chrono::DateTime::from_timestamp_millis(i64::try_from(after_ms / 1000 * 1000).ok()?)?
            .with_timezone(&tz);
    let next = cron.find_next_occurrence(&from, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// The instance id of the run of schedule `id` at `nominal_ms`.
pub(crate) fn run_id(id: &str, nominal_ms: u64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(i64::try_from(nominal_ms).unwrap_or(i64::MAX))
        .unwrap_or_default();
    format!(
        "{id}@{}",
        at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    )
}

/// Why a schedule operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("[DURABLE-SCHEDULE] invalid cron expression `{expr}`: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// What the parser said.
        reason: String,
    },
    /// Not an IANA time zone name.
    #[error("[DURABLE-SCHEDULE] unknown time zone `{0}` (an IANA name such as Europe/Berlin)")]
    TimeZone(String),
    /// A definition that makes no sense (explained).
    #[error("[DURABLE-SCHEDULE] {0}")]
    Invalid(String),
    /// No schedule with this id.
    #[error("[DURABLE-SCHEDULE] no schedule `{id}`")]
    NotFound {
        /// The id.
        id: String,
    },
    /// A schedule with this id exists.
    #[error("[DURABLE-SCHEDULE] schedule `{id}` exists already")]
    AlreadyExists {
        /// The id.
        id: String,
    },
    /// The workflow is not registered on the builder.
    #[error("[DURABLE-SCHEDULE] workflow `{workflow}` is not registered")]
    NotRegistered {
        /// Its name.
        workflow: String,
    },
    /// The input does not fit the workflow's parameter.
    #[error("[DURABLE-SCHEDULE] input does not fit workflow `{workflow}`: {reason}")]
    Input {
        /// The workflow.
        workflow: String,
        /// Why.
        reason: String,
    },
    /// The stored schedule does not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates, changes and inspects the schedules of a runtime
mod events;
mod run;

pub use events::{ScheduleDescription, ScheduleEvent, ScheduleEventKind, SkipReason};
pub(crate) use run::ScheduledBy;
pub use run::{SCHEDULE_ID, SCHEDULED_START_MS, Scheduled, ScheduledRun, Trigger, scheduled};

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> u64 {
        let t = chrono::DateTime::parse_from_rfc3339(s).expect("test time");
        u64::try_from(t.timestamp_millis()).expect("after 1970")
    }

    fn times(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(next) = schedule.next_after(at) else {
                break;
            };
            out.push(run_id("s", next).trim_start_matches("s@").to_owned());
            at = next;
        }
        out
    }

    #[test]
    fn cron_in_utc_and_with_seconds_and_years() {
        let daily = Schedule::cron("0 2 * * *").unwrap();
        assert_eq!(
            times(&daily, "2026-11-25T02:00:00Z", 2),
            ["2026-11-26T02:00:00Z", "2026-11-27T02:00:00Z"]
        );
        let seconds = Schedule::cron("*/20 * * * * *").unwrap();
        assert_eq!(
            times(&seconds, "2026-11-25T10:00:00.500Z", 3),
            [
                "2026-11-25T10:00:20Z",
                "2026-11-25T10:00:40Z",
                "2026-11-25T10:01:00Z"
            ]
        );
        let once = Schedule::cron("0 0 12 1 1 * 2027").unwrap();
        assert_eq!(
            times(&once, "2026-01-01T00:00:00Z", 3),
            ["2027-01-01T12:00:00Z"]
        );
    }

    #[test]
    fn spring_forward_runs_after_the_gap_and_fall_back_runs_once() {
        // 2026-03-29: Berlin jumps from 02:00 to 03:00 (CET → CEST)
        let berlin = Schedule::cron("30 2 * * *")
            .unwrap()
            .time_zone("Europe/Berlin")
            .unwrap();
        assert_eq!(
            times(&berlin, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ]
        );
        // 2026-10-25: 02:00–03:00 happens twice (CEST, then CET)
        assert_eq!(
            times(&berlin, "2026-10-23T12:00:00Z", 3),
            [
                "2026-10-24T00:30:00Z", // 02:30 CEST
                "2026-10-25T00:30:00Z", // the first 02:30 only
                "2026-10-26T01:30:00Z", // 02:30 CET
            ]
        );
        // a job within the hour keeps its rhythm through the repeated hour
        let quarter = Schedule::cron("*/30 2 * * *")
            .unwrap()
            .time_zone("Europe/Berlin")
            .unwrap();
        assert_eq!(
            times(&quarter, "2026-10-24T23:59:00Z", 4),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:30:00Z",
            ]
        );
    }

    #[test]
    fn intervals_with_offsets_and_bounds() {
        let hourly = Schedule::interval(Duration::from_secs(3600))
            .unwrap()
            .offset(Duration::from_secs(900))
            .unwrap();
        assert_eq!(
            times(&hourly, "2026-11-25T10:20:00Z", 2),
            ["2026-11-25T11:15:00Z", "2026-11-25T12:15:00Z"]
        );
        let bounded = Schedule::interval(Duration::from_secs(60))
            .unwrap()
            .starting_at(chrono_time("2026-11-25T10:05:00Z"))
            .ending_at(chrono_time("2026-11-25T10:07:00Z"));
        assert_eq!(
            times(&bounded, "2026-11-25T10:00:00Z", 9),
            [
                "2026-11-25T10:05:00Z",
                "2026-11-25T10:06:00Z",
                "2026-11-25T10:07:00Z"
            ]
        );
    }

    fn chrono_time(s: &str) -> SystemTime {
        crate::clock::from_ms(utc(s))
    }

    #[test]
    fn bad_definitions_get_clear_errors() {
        let e = Schedule::cron("61 * * * *").unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid cron expression `61 * * * *`")
        );
        assert!(matches!(
            Schedule::cron("* * *").unwrap_err(),
            ScheduleError::Cron { .. }
        ));
        let e = Schedule::cron("0 2 * * *")
            .unwrap()
            .time_zone("Mars/Olympus")
            .unwrap_err();
        assert!(e.to_string().contains("unknown time zone `Mars/Olympus`"));
        assert!(Schedule::interval(Duration::ZERO).is_err());
        assert!(
            Schedule::interval(Duration::from_secs(60))
                .unwrap()
                .offset(Duration::from_secs(60))
                .is_err()
        );
        assert!(
            Schedule::interval(Duration::from_secs(60))
                .unwrap()
                .time_zone("UTC")
                .is_err()
        );
        assert!("sometimes".parse::<Overlap>().is_err());
        assert_eq!("buffer-one".parse::<Overlap>().unwrap(), Overlap::BufferOne);
    }

    #[test]
    fn schedules_round_trip_as_json_and_postcard_and_are_checked_on_the_way_in() {
        let cron = Schedule::cron("0 2 * * *")
            .unwrap()
            .time_zone("Europe/Berlin")
            .unwrap()
            .overlap(Overlap::CancelOther)
            .max_runs(3);
        let every = Schedule::interval(Duration::from_secs(60))
            .unwrap()
            .offset(Duration::from_secs(5))
            .unwrap()
            .jitter(Duration::from_secs(2));
        for s in [cron, every] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(
                serde_json::from_str::<Schedule>(&json).unwrap(),
                s,
                "{json}"
            );
            let bytes = crate::codec::encode(&s).unwrap();
            assert_eq!(crate::codec::decode::<Schedule>(&bytes).unwrap(), s);
        }
        for bad in [
            r#"{}"#,
            r#"{"cron": "0 2 * * *", "every_ms": 60000}"#,
            r#"{"every_ms": 0}"#,
            r#"{"every_ms": 60000, "time_zone": "UTC"}"#,
            r#"{"cron": "0 2 * * *", "time_zone": "Nowhere/Land"}"#,
            r#"{"cron": "0 2 * * *", "overlap": "sometimes"}"#,
            r#"{"cron": "0 2 * * *", "colour": "blue"}"#,
        ] {
            assert!(serde_json::from_str::<Schedule>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jitter_is_below_the_bound_and_stable() {
        let s = Schedule::interval(Duration::from_secs(60))
            .unwrap()
            .jitter(Duration::from_secs(10));
        for n in 0..200 {
            let j = s.jitter_of("nightly", n * 60_000);
            assert!(j < 10_000);
            assert_eq!(j, s.jitter_of("nightly", n * 60_000));
        }
        assert_eq!(
            Schedule::interval(Duration::from_secs(60))
                .unwrap()
                .jitter_of("x", 5),
            0
        );
    }
}
