//! [`Status`], where an instance is in its life, and [`Phase`]: its status
//! with "running" split by what it waits for, so operators can list the
//! sleeping or the signal-waiting ones.

use serde::{Deserialize, Serialize};

use crate::command::Request;
use crate::store::{Store, StoreError, keys};

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// Running or waiting on a command.
    Running,
    /// Returned; the output is stored.
    Completed,
    /// Panicked or could not be advanced; the message is stored.
    Failed,
    /// Cannot run on this code (changed shape, unregistered, undecodable);
    /// kept intact until code that can run it is deployed.
    Parked,
    /// Returned after a cancellation was delivered to it; the output is stored.
    Cancelled,
    /// Stopped by [`WorkflowHandle::terminate`](crate::WorkflowHandle::terminate); nothing more runs.
    Terminated,
}

impl Status {
    /// Whether the instance has ended (completed, failed, cancelled or
    /// terminated): it takes no further step by itself. An ended instance
    /// can still run again on request:
    /// [`Runtime::reset`](crate::Runtime::reset) takes it back to an
    /// earlier step as a new run, and a start with
    /// [`IdPolicy::NewRunIfEnded`](crate::IdPolicy::NewRunIfEnded)
    /// replaces it by a new run of the same id. [`Status::Parked`] is not
    /// terminal.
    #[doc(alias = "is_finished")]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Cancelled | Status::Terminated
        )
    }

    /// Its name in lower case, as the HTTP API and `/metrics` write it
    /// (`completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Parked => "parked",
            Status::Cancelled => "cancelled",
            Status::Terminated => "terminated",
        }
    }
}

/// Where an instance is in its life, as lists and counts show it: a
/// [`Status`], with [`Status::Running`] split into [`Phase::Running`],
/// [`Phase::Sleeping`] and [`Phase::WaitingForSignal`].
///
/// Written in snake case (`waiting_for_signal`) in JSON, on the command
/// line and in the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Has work in progress: an activity, a child workflow, a `join_all`,
    /// a compensation (or is between steps).
    Running,
    /// Waits for a timer only.
    Sleeping,
    /// Waits for a signal (perhaps with a timer as its timeout).
    WaitingForSignal,
    /// Returned; the output is stored.
    Completed,
    /// Panicked or could not be advanced.
    Failed,
    /// Returned after a cancellation.
    Cancelled,
    /// Stopped by terminate.
    Terminated,
    /// Cannot run on the registered code; kept intact.
    Parked,
}

impl Phase {
    /// This phase's byte in the phase index (stored: never renumber).
    pub(crate) fn tag(self) -> u8 {
        match self {
            Phase::Running => b'r',
            Phase::Sleeping => b's',
            Phase::WaitingForSignal => b'w',
            Phase::Completed => b'c',
            Phase::Failed => b'f',
            Phase::Cancelled => b'x',
            Phase::Terminated => b't',
            Phase::Parked => b'p',
        }
    }

    /// Every phase, in the order lists and counts show them.
    pub const ALL: [Phase; 8] = [
        Phase::Running,
        Phase::Sleeping,
        Phase::WaitingForSignal,
        Phase::Completed,
        Phase::Failed,
        Phase::Cancelled,
        Phase::Terminated,
        Phase::Parked,
    ];

    /// The phase of an instance with `status` that waits for `pending`.
    pub(crate) fn of(status: Status, pending: Option<&Request>) -> Phase {
        match status {
            Status::Running => match pending.map(Waits::of) {
                Some(Waits::Signal) => Phase::WaitingForSignal,
                Some(Waits::Timer) => Phase::Sleeping,
                Some(Waits::Work) | None => Phase::Running,
            },
            Status::Completed => Phase::Completed,
            Status::Failed => Phase::Failed,
            Status::Cancelled => Phase::Cancelled,
            Status::Terminated => Phase::Terminated,
            Status::Parked => Phase::Parked,
        }
    }

    /// The stored status this phase belongs to.
    pub fn status(self) -> Status {
        match self {
            Phase::Running | Phase::Sleeping | Phase::WaitingForSignal => Status::Running,
            Phase::Completed => Status::Completed,
            Phase::Failed => Status::Failed,
            Phase::Cancelled => Status::Cancelled,
            Phase::Terminated => Status::Terminated,
            Phase::Parked => Status::Parked,
        }
    }

    /// How many instances are in each phase, every phase listed (zeros
    /// too) in the order of [`Phase::ALL`], read from the counters every
    /// batch moving an instance between phases keeps.
    pub(crate) fn counts(store: &dyn Store) -> Result<Vec<(Phase, usize)>, StoreError> {
        let counters = store.counters()?;
        Ok(Phase::ALL
            .into_iter()
            .map(|p| {
                let name = keys::phase_index_prefix(p.tag());
                let n = counters
                    .iter()
                    .find(|(counter, _)| *counter == name)
                    .map_or(0, |(_, n)| *n);
                (p, usize::try_from(n).unwrap_or(0))
            })
            .collect())
    }

    /// Its name as written in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Sleeping => "sleeping",
            Phase::WaitingForSignal => "waiting_for_signal",
            Phase::Completed => "completed",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
            Phase::Terminated => "terminated",
            Phase::Parked => "parked",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase name that is not one of [`Phase::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status `{0}`: use running, sleeping, waiting_for_signal, completed, failed, cancelled, terminated or parked"
)]
pub struct UnknownPhase(pub String);

impl std::str::FromStr for Phase {
    type Err = UnknownPhase;

    /// Accepts the snake-case names, with `-` for `_`, any case, and the
    /// spellings `canceled` and `waiting`.
    fn from_str(s: &str) -> Result<Phase, UnknownPhase> {
        let name = s.trim().to_ascii_lowercase().replace('-', "_");
        match name.as_str() {
            "canceled" => return Ok(Phase::Cancelled),
            "waiting" => return Ok(Phase::WaitingForSignal),
            _ => {}
        }
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownPhase(s.to_owned()))
    }
}

/// What a pending request waits for, most active first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Waits {
    Timer,
    Signal,
    Work,
}

impl Waits {
    /// A select waits like its most active branch: an activity raced with a
    /// timer is running, a signal raced with a timer is waiting for a signal.
    fn of(request: &Request) -> Waits {
        match request {
            Request::Timer { .. } => Waits::Timer,
            Request::Signal { .. } => Waits::Signal,
            Request::Select(branches) => {
                branches.iter().map(Waits::of).max().unwrap_or(Waits::Work)
            }
            _ => Waits::Work,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer() -> Request {
        Request::Timer {
            after_ms: 5,
            at_ms: Some(10),
        }
    }

    fn signal() -> Request {
        Request::Signal { name: "go".into() }
    }

    fn activity() -> Request {
        Request::Activity {
            name: "charge".into(),
            input: Vec::new(),
            options: Default::default(),
        }
    }

    #[test]
    fn running_splits_by_what_the_instance_waits_for() {
        let running = |r: Request| Phase::of(Status::Running, Some(&r));
        assert_eq!(running(timer()), Phase::Sleeping);
        assert_eq!(running(signal()), Phase::WaitingForSignal);
        assert_eq!(running(activity()), Phase::Running);
        assert_eq!(
            running(Request::Select(vec![signal(), timer()])),
            Phase::WaitingForSignal
        );
        assert_eq!(
            running(Request::Select(vec![timer(), activity()])),
            Phase::Running
        );
        assert_eq!(Phase::of(Status::Running, None), Phase::Running);
        assert_eq!(
            Phase::of(Status::Completed, Some(&timer())),
            Phase::Completed
        );
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::Value::String(phase.as_str().into())
            );
        }
        assert_eq!("Waiting-For-Signal".parse(), Ok(Phase::WaitingForSignal));
        assert_eq!("canceled".parse(), Ok(Phase::Cancelled));
        assert!("sleepy".parse::<Phase>().is_err());
    }
}
