//! Resetting an instance to an earlier step.
//!
//! Each checkpoint of a running instance keeps the state it stored as a
//! **reset point** (the last [`Builder::reset_points`](crate::Builder::reset_points)
//! of each instance; 64 by default). [`Runtime::reset`](crate::Runtime::reset)
//! takes an ended or parked instance back to one of them: a new run starts
//! from that state and carries out again the command it awaited there,
//! with idempotency keys no earlier run used, so the activities from that
//! step on run again (those before it do not). The history goes on: the
//! earlier run's events stay readable, followed by an
//! [`EventKind::Reset`](crate::history::EventKind::Reset) naming both steps
//! and the new run.
//!
//! The point is chosen by step ([`ResetTo::Step`]) or by an event of the
//! history ([`ResetTo::Event`]: the step it belongs to). A reset is refused
//! with a clear [`ResetError`](crate::error::ResetError) — and writes
//! nothing — when the instance still runs, when no state is kept for that
//! step, or when the kept state cannot run on the registered code (its
//! layout changed and no migration or transcoding by name reads it: never
//! read by position).
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # use durable_runtime::{Runtime, reset::ResetTo};
//! # async fn fix(runtime: &Runtime) -> Result<(), durable_runtime::Error> {
//! // the charge failed for a bug since fixed: run it again from its await
//! let points = runtime.reset_points("order-7")?;
//! let charge = points.iter().find(|p| p.awaiting == "activity charge").unwrap();
//! let reset = runtime
//!     .reset("order-7", ResetTo::Step(charge.step), "charge bug fixed in 1.4.2")
//!     .await?;
//! println!("run {} goes on from step {}", reset.run, reset.step);
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

/// Where [`Runtime::reset`](crate::Runtime::reset) takes an instance back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetTo {
    /// The await of this step (as [`ResetPoint::step`] and the history's
    /// `Awaiting` events number them): its command runs again.
    Step(u64),
    /// The step the history event of this number belongs to (an
    /// `Awaiting`, `ActivityFinished`, `AttemptFailed`, `TimerFired`,
    /// `SignalReceived`... event; see
    /// [`EventKind::step`](crate::history::EventKind::step)).
    Event(u64),
}

/// A state an instance keeps, that it can be reset to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetPoint {
    /// The step.
    pub step: u64,
    /// The state variant it was in.
    pub variant: String,
    /// The command it awaited, in short (as the history's `Awaiting`
    /// events say it: `activity charge`, `timer for 60000 ms`...).
    pub awaiting: String,
    /// When the checkpoint was made (ms since the Unix epoch).
    pub at_ms: u64,
}

/// What a reset started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// The new run's number.
    pub run: u32,
    /// The step it goes on from.
    pub step: u64,
    /// The step the earlier run had reached.
    pub from_step: u64,
}
