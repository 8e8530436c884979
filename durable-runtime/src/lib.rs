//! Durable execution embedded in your tokio service: workflows written as
//! plain `async fn`s that survive crashes, restarts and redeploys.
//!
//! Mark the business logic `#[workflow]` and its side-effecting steps
//! `#[activity]`. The workflow macro compiles the function into a
//! serializable state enum, one variant per `.await`, holding the locals
//! that live across it. The [`Runtime`] checkpoints every transition to
//! sled on local disk (fsync'd, group-committed) before the step it
//! schedules starts; after a crash it loads the enum and steps on. Nothing
//! is replayed, so there are no determinism rules to follow.
//!
//! ```
//! use durable_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Order { pub order_id: String, pub cents: u64 }
//!
//! #[activity(max_attempts = 3, initial_interval_ms = 10)]
//! async fn charge(order_id: String, cents: u64) -> Result<String, ActivityError> {
//!     Ok(format!("charged {cents} for {order_id}"))
//! }
//!
//! #[activity]
//! async fn ship(order: Order, receipt: String) -> Result<String, ActivityError> {
//!     Ok(format!("shipped {} ({receipt})", order.order_id))
//! }
//!
//! #[workflow]
//! async fn process_order(order: Order) -> Result<String, WorkflowError> {
//!     let receipt = charge(order.order_id.clone(), order.cents).await?;
//!     let confirmation = ship(order, receipt).await?;
//!     Ok(confirmation)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let runtime = Runtime::builder().workflow::<process_order>().open(dir.path()).await?;
//! let order = Order { order_id: "order-1".into(), cents: 4200 };
//! let handle = runtime.start("order-1", process_order(order), IdPolicy::Reject).await?;
//! assert_eq!(handle.result().await??, "shipped order-1 (charged 4200 for order-1)");
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//! - A transition (the new state and the command it awaits) is written in one
//!   atomic batch and fsync'd before it is acknowledged and before the command
//!   starts; concurrent instances share one fsync (group commit).
//! - Transitions happen exactly once. Activities run at least once; an
//!   activity whose result was checkpointed never runs again. Each call gets
//!   an idempotency key (`<instance id>/<step>`, see [`ActivityContext`]).
//! - On open every unfinished instance resumes from its last checkpoint. One
//!   whose stored shape differs from the code, or that does not decode, is
//!   parked (kept, reported by [`Runtime::parked`]), never dropped.
//!
//! # Errors
//! Each operation has its own error enum ([`StartError`], [`ResultError`],
//! [`StoreError`], [`ResumeError`], [`CodecError`]), all convertible into
//! [`Error`]. Messages carry a stable code such as `[DURABLE-SHAPE]`.
//!
//! # Feature flags
//! - `testing`: commit hooks for crash tests and [`store::mem::MemStore`],
//!   an in-memory store that models power loss.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod activity;
pub mod codec;
pub mod command;
mod engine;
mod error;
mod runtime;
pub mod store;
pub mod testing;
pub mod workflow;

#[doc(hidden)]
pub mod __private;

pub use activity::{ActivityContext, ActivityError, ActivityFailure, ActivityOptions, RetryPolicy};
pub use codec::CodecError;
pub use command::{now, random_u64};
pub use engine::Status;
pub use error::{Error, ResultError, ResumeError, StartError};
pub use runtime::{Builder, Description, IdPolicy, Runtime, WorkflowHandle};
pub use store::StoreError;
pub use workflow::{Workflow, WorkflowCall};

pub use durable_macros::{activity, workflow};

/// A general error type for workflow bodies: any activity error converts
/// into it with `?`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct WorkflowError(pub String);

impl From<ActivityError> for WorkflowError {
    fn from(e: ActivityError) -> Self {
        WorkflowError(e.to_string())
    }
}

/// Everything a workflow file needs: `use durable_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ActivityContext, ActivityError, IdPolicy, RetryPolicy, Runtime, WorkflowError,
        WorkflowHandle, activity, now, random_u64, workflow,
    };
}
