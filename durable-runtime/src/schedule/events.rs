//! What a schedule looks like from outside: its description, its events,
//! why a run was skipped ([`Schedules`](crate::Schedules) gives them).

use serde::{Deserialize, Serialize};

use super::{Overlap, Schedule, Trigger};

/// Why a run did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// An earlier run was still going (overlap policy).
    Overlap,
    /// The schedule was paused.
    Paused,
    /// Its time was further back than the catch-up window when the
    /// schedule got to it (the process was down).
    CatchupWindow,
    /// An instance with its id exists already (a backfill over a run that
    /// happened).
    AlreadyStarted,
}

/// Something that happened to a schedule: its recent ones are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEvent {
    /// When (ms since the epoch, on the runtime's clock).
    pub at_ms: u64,
    /// What.
    pub kind: ScheduleEventKind,
}

/// What happened to a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScheduleEventKind {
    /// Created.
    Created,
    /// Its timing or policies were replaced.
    Updated,
    /// A run started.
    Started {
        /// The run's nominal time.
        nominal_ms: u64,
        /// The instance it started.
        workflow_id: String,
        /// Why.
        trigger: Trigger,
    },
    /// Runs did not start; consecutive skips for one reason are counted in
    /// one event.
    Skipped {
        /// The first skipped nominal time.
        first_ms: u64,
        /// The last skipped nominal time.
        last_ms: u64,
        /// How many (at least: a long outage is counted by its bounds).
        count: u64,
        /// Why.
        reason: SkipReason,
    },
    /// A run waits for the running one to end.
    Buffered {
        /// Its nominal time.
        nominal_ms: u64,
    },
    /// A running run was asked to cancel (overlap policy).
    CancelRequested {
        /// The instance.
        workflow_id: String,
    },
    /// A running run was terminated (overlap policy).
    TerminateRequested {
        /// The instance.
        workflow_id: String,
    },
    /// Paused.
    Paused {
        /// Why (free text).
        note: String,
    },
    /// Unpaused: runs due from now on start again.
    Unpaused {
        /// Why (free text).
        note: String,
    },
    /// No calendar time is left (end date or run limit reached).
    Exhausted,
}

/// A schedule as stored: its definition and progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleDescription {
    /// The schedule id.
    pub id: String,
    /// The workflow it starts.
    pub workflow: String,
    /// The input each run gets, as JSON (`None` if the workflow is not
    /// registered in this process, so its input cannot be rendered).
    pub input: Option<serde_json::Value>,
    /// Its timing in short ([`Schedule::describe`]).
    pub spec: String,
    /// Its whole definition (to edit and [update](crate::Schedules::update)).
    pub schedule: Schedule,
    /// The overlap policy.
    pub overlap: Overlap,
    /// The catch-up window, ms.
    pub catchup_window_ms: u64,
    /// Whether it is paused, and the note given.
    pub paused: bool,
    /// The note of the last pause or unpause.
    pub note: String,
    /// Runs started so far (all triggers).
    pub runs: u64,
    /// Runs it started that have not ended (as far as the schedule knows).
    pub running: Vec<String>,
    /// Nominal times of runs waiting for the running one to end.
    pub buffered_ms: Vec<u64>,
    /// The next calendar times (up to 5), without jitter.
    pub next_ms: Vec<u64>,
    /// Recent events, oldest first.
    pub recent: Vec<ScheduleEvent>,
    /// When it was created, ms since the epoch.
    pub created_ms: u64,
    /// When it last changed, ms since the epoch.
    pub updated_ms: u64,
}
