//! Batch operations: signal, cancel, terminate or reset every instance a
//! [`ListFilter`](crate::ListFilter) matches.
//!
//! [`Runtime::batch`](crate::Runtime::batch) stores the operation and
//! runs it in the background, in id order, a page at a time, at most
//! `per_second` instances a second; its progress (matched, done, skipped,
//! failed, the last errors) is stored with each page, so
//! [`Runtime::batch_status`](crate::Runtime::batch_status) reads it from
//! any process, and an operation cut off by a restart or a crash goes on
//! from its last stored page when a runtime opens the store again (on
//! PostgreSQL, any worker takes over one whose runner stopped renewing it).
//! Each action is safe to repeat on the part of a page done twice after a
//! crash: a batch's signal is written once per instance (a mark in the
//! same commit), a cancel or terminate of an ended instance and a reset of
//! a running one are skipped. [`Runtime::batch_preview`](crate::Runtime::batch_preview)
//! is the dry run: the ids the operation would visit, touching nothing.
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # use durable_runtime::{ListFilter, Runtime, Status, batch::BatchAction};
//! # async fn run(runtime: &Runtime) -> Result<(), durable_runtime::Error> {
//! let failed = ListFilter {
//!     workflow: Some("process_order".into()),
//!     status: Some(Status::Failed),
//!     ..ListFilter::default()
//! };
//! println!("would reset {} instances", runtime.batch_preview(&failed)?.len());
//! let op = runtime
//!     .batch(failed, BatchAction::reset_latest("charge bug fixed"), Some(50))
//!     .await?;
//! let done = runtime.batch_wait(&op.id).await?;
//! println!("{} reset, {} skipped, {} failed", done.done, done.skipped, done.failed);
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::reset::ResetTo;

/// What a batch operation does to each instance it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchAction {
    /// Send a signal, its payload as JSON read as the type the instance
    /// awaits ([`Runtime::signal_json`](crate::Runtime::signal_json)); at
    /// most once per instance. Skipped: an instance not waiting for it.
    Signal {
        /// The signal's name.
        name: String,
        /// Its payload.
        payload: serde_json::Value,
    },
    /// Cancel ([`Runtime::cancel`](crate::Runtime::cancel)). Skipped: an ended instance.
    Cancel,
    /// Terminate ([`Runtime::terminate`](crate::Runtime::terminate)).
    /// Skipped: an ended instance.
    Terminate {
        /// Recorded with each.
        reason: String,
    },
    /// Reset ([`Runtime::reset`](crate::Runtime::reset)). Skipped: a
    /// running instance, or one that keeps no state for that step.
    Reset {
        /// Where to (the same step for every instance, or its latest or
        /// earliest kept one).
        to: BatchReset,
        /// Recorded with each.
        reason: String,
    },
}

impl BatchAction {
    /// Reset each instance to the latest step it keeps a state for: for a
    /// failed one, the await whose command failed.
    pub fn reset_latest(reason: impl Into<String>) -> BatchAction {
        BatchAction::Reset {
            to: BatchReset::Latest,
            reason: reason.into(),
        }
    }

    /// What it does, in short.
    pub fn describe(&self) -> String {
        match self {
            BatchAction::Signal { name, .. } => format!("signal {name}"),
            BatchAction::Cancel => "cancel".into(),
            BatchAction::Terminate { .. } => "terminate".into(),
            BatchAction::Reset { to, .. } => match to {
                BatchReset::Latest => "reset to the latest kept step".into(),
                BatchReset::Earliest => "reset to the earliest kept step".into(),
                BatchReset::To(ResetTo::Step(n)) => format!("reset to step {n}"),
                BatchReset::To(ResetTo::Event(n)) => format!("reset to event {n}"),
            },
        }
    }
}

/// Where a batch reset takes each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchReset {
    /// The latest step it keeps a state for.
    Latest,
    /// The earliest step it keeps a state for.
    Earliest,
    /// The same step (or event number) for every instance.
    To(ResetTo),
}

/// Where a batch operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Still visiting instances.
    Running,
    /// Every matching instance was visited.
    Done,
    /// Stopped by [`Runtime::stop_batch`](crate::Runtime::stop_batch)
    /// before the end.
    Stopped,
}

/// A batch operation and its progress, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchOperation {
    /// Its id (drawn when it is started).
    pub id: String,
    /// What it does.
    pub action: BatchAction,
    /// Which instances.
    pub filter: crate::ListFilter,
    /// At most this many instances a second (`None`: as fast as it goes).
    pub per_second: Option<u32>,
    /// Where it stands.
    pub state: BatchState,
    /// Instances the filter matched when it was started (what a progress
    /// bar counts to; instances that start matching later are visited too).
    pub matched: u64,
    /// Instances visited so far.
    pub visited: u64,
    /// Instances the action was carried out on.
    pub done: u64,
    /// Instances it did not apply to (ended, not waiting, running).
    pub skipped: u64,
    /// Instances where it failed (see `errors`).
    pub failed: u64,
    /// The last errors (at most 20): instance id and message.
    pub errors: Vec<(String, String)>,
    /// The last id visited: it goes on after it.
    pub cursor: Option<String>,
    /// When it was started and last stored, ms since the epoch.
    pub created_ms: u64,
    /// When it was last stored.
    pub updated_ms: u64,
    /// The process running it and until when (ms) it counts as alive.
    pub runner: Option<(String, u64)>,
}

/// Why a batch operation call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// No batch operation has this id.
    #[error("[DURABLE-BATCH] no batch operation `{id}`")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// A stored batch operation does not decode.
    #[error(transparent)]
    Codec(#[from] crate::CodecError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}
