//! What a scheduled run knows about itself: the schedule that started it,
//! its nominal time and its trigger.

use serde::{Deserialize, Serialize};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its time came.
    Calendar,
    /// [`Schedules::trigger`](crate::Schedules::trigger).
    Manual,
    /// [`Schedules::backfill`](crate::Schedules::backfill).
    Backfill,
}

/// The search attribute naming the schedule that started a run (like
/// Temporal's `TemporalScheduledById`): `list` filters a schedule's runs
/// by it.
pub const SCHEDULE_ID: &str = "schedule_id";

/// The search attribute holding a scheduled run's nominal time, ms since
/// the Unix epoch (Temporal's `TemporalScheduledStartTime`).
pub const SCHEDULED_START_MS: &str = "scheduled_start_ms";

/// Which schedule started the running instance, and for which time:
/// `scheduled().await` in a workflow; the value is recorded like
/// [`now`](crate::now).
///
/// A run computes its period from [`ScheduledRun::nominal`], not from
/// `now()`: a backfilled night, a catch-up after downtime and a buffered or
/// jittered run each see the time they stand for.
///
/// ```
/// use durable_runtime::prelude::*;
/// use durable_runtime::schedule::scheduled;
///
/// #[workflow]
/// async fn nightly(team: String) -> Result<String, WorkflowError> {
///     let day = match scheduled().await {
///         Some(run) => run.nominal,
///         None => now().await, // started by hand, not by a schedule
///     };
///     Ok(format!("{team}: report for {day:?}"))
/// }
/// ```
pub fn scheduled() -> Scheduled {
    Scheduled
}

/// The command behind [`scheduled`].
#[derive(Debug, Clone, Copy)]
pub struct Scheduled;

impl crate::command::Command for Scheduled {
    type Output = Option<ScheduledRun>;
    fn into_request(self) -> Result<crate::command::Request, crate::CodecError> {
        Ok(crate::command::Request::Scheduled)
    }
    fn executor() -> crate::command::Executor {
        crate::command::Executor::Builtin
    }
}

impl std::future::IntoFuture for Scheduled {
    type Output = Option<ScheduledRun>;
    type IntoFuture = std::future::Ready<Option<ScheduledRun>>;
    /// Outside a workflow (in `run_inline`), no schedule started it.
    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(None)
    }
}

/// A run started by a schedule (see [`scheduled`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduledRun {
    /// The schedule's id.
    pub schedule: String,
    /// The time the run stands for: its calendar time, the backfilled or
    /// caught-up time, or the moment of a manual trigger.
    pub nominal: std::time::SystemTime,
    /// How it was started.
    pub trigger: Trigger,
}

/// Which schedule started an instance, for which nominal time and how, as
/// its record stores it ([`ScheduledRun`] is what the API shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScheduledBy {
    pub(crate) schedule: String,
    pub(crate) nominal_ms: u64,
    pub(crate) trigger: Trigger,
}

impl From<ScheduledBy> for ScheduledRun {
    fn from(by: ScheduledBy) -> Self {
        ScheduledRun {
            schedule: by.schedule,
            nominal: std::time::UNIX_EPOCH + std::time::Duration::from_millis(by.nominal_ms),
            trigger: by.trigger,
        }
    }
}
