//! Durable execution embedded in your tokio service: workflows written as
//! plain `async fn`s that survive crashes, restarts and redeploys.
//!
//! Mark the business logic `#[workflow]` and its side-effecting steps
//! `#[activity]`. The workflow macro compiles the function into a
//! serializable state enum, one variant per `.await`, holding the locals
//! that live across it. The [`Runtime`] checkpoints every transition to
//! an embedded store on local disk (redb under a write-ahead log; fsync'd,
//! group-committed) or PostgreSQL before the step it
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
//!   an idempotency key (`<instance id>/<incarnation>/<step>`, see
//!   [`ActivityContext`]), unique to the call: an id started again after
//!   retention gets a new incarnation, so no key is ever reused.
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
//! None is on by default: the default build has the embedded redb store
//! ([`Builder::open`]) and nothing else.
//! - `http`: the HTTP JSON API, web UI, Prometheus `/metrics` and the
//!   `/healthz` and `/readyz` probes, as axum 0.8 routers (`http::router`,
//!   or one part at a time: `http::api`, `http::ui`, `http::metrics`,
//!   `http::probes`) to mount in your app, or served by `http::serve`.
//! - `postgres`: a PostgreSQL store, chosen with
//!   [`Builder::open_url`]`("postgres://...")`; any number of worker
//!   processes share one database (see `docs/deployment.md`). An embedded
//!   store's directory is open in one process at a time.
//! - `sled`: the sled store (`sled:DIR`, and directories it wrote), the
//!   embedded store before redb.
//! - `testing`: the test kit (`testing::TestEnv`, an in-memory runtime whose
//!   clock skips to the next timer; `Builder::mock_activity`;
//!   `testing::crash_sweep`, a workflow crashed at each of its checkpoints),
//!   a simulated disk that injects I/O faults and power cuts
//!   (`store::faults`), commit hooks for crash tests, and fresh stores on
//!   every backend for shared test suites (`testing::backends`).
//!   ([`store::mem::MemStore`], an in-memory store that models power loss,
//!   is always available: the CI check [`check::check_snapshots`] runs on it.)
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod activity;
pub mod batch;
pub mod check;
pub mod clock;
pub mod codec;
pub mod command;
mod compatibility;
mod engine;
mod error;
mod filter;
mod future;
pub mod heartbeat;
pub mod history;
#[cfg(feature = "http")]
pub mod http;
pub mod layout;
mod limits;
mod metrics;
pub mod migration;
mod otel;
mod phase;
pub mod promise;
pub mod query;
pub mod reset;
mod runtime;
pub mod saga;
pub mod schedule;
mod search;
pub mod snapshot;
pub mod store;
pub mod testing;
pub mod update;
pub mod workflow;

#[doc(hidden)]
pub mod __private;

/// The longest instance id accepted, in bytes (Temporal's default limit):
/// an id must fit the stores' keys, indexes and cross-process messages.
/// A longer one is refused by `start` with
/// [`StartError::IdTooLong`].
pub const MAX_ID_BYTES: usize = 1_000;

pub use activity::{ActivityContext, ActivityError, ActivityFailure, ActivityOptions, RetryPolicy};
pub use codec::CodecError;
pub use command::{
    Cancelled, ChildError, ParentClose, SearchValue, first_of, join_all, now, random_u64, select,
    signal, sleep, sleep_until, upsert_search_attributes, uuid,
};
pub use compatibility::Compatibility;
pub use error::{
    Error, OpenError, ResetError, ResultError, ResumeError, SignalError, StartError, UpdateError,
};
pub use filter::{ListFilter, ListOrder};
pub use limits::{Limits, MAX_ATTRIBUTE_BYTES};
pub use phase::Status;
pub use phase::{Phase, UnknownPhase};
pub use runtime::{
    Builder, Description, IdPolicy, MatchedCounts, Metrics, Runtime, Schedules, WorkerInfo,
    WorkflowHandle,
};
pub use saga::Saga;
pub use schedule::{Overlap, Schedule, ScheduleError};
pub use store::StoreError;
pub use workflow::{Workflow, WorkflowCall, continue_as_new};

/// Compiles an `async fn` into a durable workflow.
///
/// The function keeps its name and signature for callers, but calling it now
/// builds a [`WorkflowCall`] that [`Runtime::start`] runs durably; a unit
/// struct of the same name implements [`Workflow`] (register it with
/// [`Builder::workflow`]).
///
/// # What is generated
/// For `async fn process_order(order: Order)` awaiting `check_fraud`,
/// `prepare_shipment`, `charge` and `ship`:
/// - `pub enum ProcessOrderState<..>` with variants `Start { order }`,
///   `CheckFraud { order }`, `PrepareShipment { order }`, `Charge { order }`,
///   `Ship {}` and `Finished`: one per `.await`, named after the awaited
///   command (a second `charge` would be `Charge2`), each holding exactly the
///   locals used after that await. It is generic over the types of inferred
///   locals, so no annotations are needed: rustc infers them.
/// - `impl Workflow for process_order` with `NAME`, a shape `FINGERPRINT`,
///   per-variant fingerprints in `VARIANTS`, and the step function.
/// - `process_order::run_inline(order)`: the original body as a plain async
///   fn (activities run once, inline), for tests.
/// - `process_order::CheckFraud`, `process_order::Charge`, ...: one typed
///   [`migration::Variant`] constant per await point whose live locals have
///   declared types, for [typed migrations](crate::migration).
///
/// Arguments: `name = "..."` (the stored name; default: the function's),
/// `version = N` (default 1: several versions of one name run side by side,
/// see `docs/versioning.md`), `crate = "..."` (path to this crate if renamed).
///
/// # Compile errors, and the fix for each
/// - `.await` inside a closure, an `async` block, a macro other than the
///   formatting, `vec!`, `panic!` and `assert!` families, or an `unsafe`
///   block: move the await into its own `let value = command.await?;`
///   statement. Awaits anywhere else an `async fn` has them are accepted:
///   inside expressions (`price(a).await? + price(b).await?`), call and
///   macro arguments, `&&`/`||`, `while` conditions, match guards, let
///   chains and labeled blocks.
/// - an operand evaluated before a later await in the same expression that
///   is a borrow (`f(&v.concat(), cmd.await?)`): bind an owned value first.
/// - awaiting something that is not a durable command (a plain future): call
///   that async code inside an `#[activity]`.
/// - a local holding a borrow (`let r = &x;`) used after an await: keep an
///   owned value (`.clone()`), or borrow again after the await.
/// - a local that is still needed after an await but shadowed at it by an
///   inner local of the same name: rename one of them.
/// - the workflow awaiting itself; generic, `impl Trait`, reference or
///   pattern parameters; `self`; a non-`async fn`.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity]
/// async fn add(a: u64, b: u64) -> Result<u64, ActivityError> {
///     Ok(a + b)
/// }
///
/// #[workflow]
/// async fn sum_up(items: Vec<u64>) -> Result<u64, WorkflowError> {
///     let mut total = 0;
///     for item in items {
///         // the remaining items and `total` are in the state while this runs
///         total = add(total, item).await?;
///     }
///     Ok(total)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let names: Vec<&str> = <sum_up as durable_runtime::Workflow>::VARIANTS.iter().map(|v| v.name).collect();
/// assert_eq!(names, ["Start", "Add"]);
/// let run = durable_runtime::testing::run_stepwise(sum_up(vec![1, 2, 3])).await.unwrap();
/// assert_eq!(run.output, Ok(6));
/// # }
/// ```
pub use durable_macros::workflow;

/// Compiles an `async fn` into a helper a workflow (or another helper) can
/// `.await` like any async function: its body may await activities,
/// timers, signals and other helpers, anywhere a workflow may.
///
/// A helper is not an instance of its own (a child workflow is): awaiting
/// it nests its state — one variant per await, holding its live locals, as
/// for a workflow — in the state of the caller's variant that awaits it,
/// as rustc nests one future in another. Its activities are steps of the
/// caller's instance, in its history, checkpointed with its state; no
/// extra instance, id or commit. Calling it outside a workflow (as
/// `run_inline` does) runs it as a plain async fn.
///
/// The helper's state is stored typed, inside the caller's: the caller's
/// layout names the helper's variants and fields, so an instance that
/// waits inside a helper whose code changed is read by name, or parked with
/// the field named, like any stored state. A helper takes owned parameters
/// and returns any serializable value; it may be called from several
/// places and in loops. It cannot await itself (a compile error). Argument
/// (optional): `crate`.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity]
/// async fn price(item: String) -> Result<u64, ActivityError> {
///     Ok(item.len() as u64)
/// }
///
/// /// Prices every item: two activities per loop pass, in the caller's instance.
/// #[helper]
/// async fn price_all(items: Vec<String>) -> Result<u64, WorkflowError> {
///     let mut total = 0;
///     for item in items {
///         total += price(item.clone()).await? + price(item).await?;
///     }
///     Ok(total)
/// }
///
/// #[workflow]
/// async fn quote(items: Vec<String>) -> Result<u64, WorkflowError> {
///     let subtotal = price_all(items.clone()).await?;
///     let again = price_all(items).await?;
///     Ok(subtotal + again)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let run = durable_runtime::testing::run_stepwise(quote(vec!["ab".into(), "c".into()])).await.unwrap();
/// assert_eq!(run.output, Ok(12));
/// assert_eq!(quote::run_inline(vec!["ab".into(), "c".into()]).await, Ok(12));
/// # }
/// ```
pub use durable_macros::helper;

/// Marks an `async fn` as an activity: a side-effecting step of a workflow,
/// retried by policy.
///
/// It must return `Result<T, E>` where `E` implements [`ActivityFailure`]
/// ([`ActivityError`] does). Calling it builds an [`activity::ActivityCall`]:
/// awaited in a workflow it is a checkpointed step; awaited anywhere else it
/// runs the body once. Inside the body, [`ActivityContext::current`] gives
/// the attempt number and the idempotency key.
///
/// Arguments (all optional; defaults in [`RetryPolicy`]): `max_attempts`,
/// `initial_interval_ms`, `max_interval_ms`, `backoff` (1.0 to 100.0),
/// `non_retryable = ["kind", ..]`; the timeouts (none by default; see
/// [`ActivityOptions`]) `timeout_ms` (start-to-close: one attempt),
/// `heartbeat_timeout_ms` (between two [`heartbeat`](heartbeat::heartbeat)s),
/// `schedule_to_close_ms` (the whole call, retries included) and
/// `schedule_to_start_ms` (a task-queue call's wait for a worker); `queue`,
/// `name`, `crate`. A call can override them:
/// `charge(id).with_retry(policy).with_timeout(d)`, `.with_heartbeat_timeout(d)`,
/// `.with_schedule_to_close_timeout(d)`, `.with_schedule_to_start_timeout(d)`.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity(max_attempts = 5, initial_interval_ms = 200, non_retryable = ["declined"])]
/// async fn charge(order_id: String, cents: u64) -> Result<String, ActivityError> {
///     let key = ActivityContext::current().map(|c| c.idempotency_key).unwrap_or_default();
///     if cents == 0 {
///         return Err(ActivityError::terminal("nothing to charge").with_kind("declined"));
///     }
///     Ok(format!("charged {cents} for {order_id} (key {key})"))
/// }
/// ```
pub use durable_macros::activity;

/// A general error type for workflow bodies: any activity error converts
/// into it with `?`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct WorkflowError(pub String);

impl From<ChildError> for WorkflowError {
    fn from(e: ChildError) -> Self {
        WorkflowError(e.to_string())
    }
}

impl From<Cancelled> for WorkflowError {
    fn from(e: Cancelled) -> Self {
        WorkflowError(e.to_string())
    }
}

impl From<ActivityError> for WorkflowError {
    fn from(e: ActivityError) -> Self {
        WorkflowError(e.to_string())
    }
}

/// Everything a workflow file needs: `use durable_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::activity::dependency;
    pub use crate::command::Either;
    pub use crate::heartbeat::{heartbeat, heartbeat_details};
    pub use crate::{
        ActivityContext, ActivityError, Cancelled, IdPolicy, RetryPolicy, Runtime, Saga,
        WorkflowError, WorkflowHandle, activity, continue_as_new, first_of, helper, join_all, now,
        random_u64, select, signal, sleep, sleep_until, uuid, workflow,
    };
}
