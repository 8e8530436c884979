//! Testing workflows: [`run_stepwise`] without a store, and with feature
//! `testing` the test kit — [`TestEnv`] (an in-memory runtime whose clock
//! skips ahead), activity mocks ([`Builder::mock_activity`](crate::Builder::mock_activity)),
//! [`crash_sweep`] (your workflow crashed at every checkpoint) — and fresh
//! stores on every backend for shared suites. See `docs/testing.md`.

#[cfg(feature = "testing")]
pub mod backends;
#[cfg(feature = "testing")]
mod env;
#[cfg(feature = "testing")]
mod sweep;

#[cfg(feature = "testing")]
pub use env::TestEnv;
#[cfg(feature = "testing")]
pub use sweep::{SweepError, SweepReport, crash_sweep, key_step};

use crate::activity::ActivityContext;
use crate::codec::{self, CodecError};
use crate::command::{Executor, Request};
use crate::workflow::{Op, Outcome, StepError, Workflow, WorkflowCall};

/// The CI check over snapshot files, here too for test suites looking for it.
pub use crate::check::check_snapshots;

/// What [`run_stepwise`] observed.
#[derive(Debug)]
pub struct StepwiseRun<O> {
    /// The workflow's output.
    pub output: O,
    /// Every command the workflow awaited, in order.
    pub requests: Vec<Request>,
    /// The state variant after each step.
    pub variants: Vec<&'static str>,
}

/// Why [`run_stepwise`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepwiseError {
    /// The generated code refused a step.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The workflow waits for a signal, which nobody sends in a stepwise run.
    #[error("the workflow waits for signal `{0}`; run it on a Runtime to send signals")]
    Signal(String),
    /// The command needs a runtime (select, join_all, child workflows, ...).
    #[error("a stepwise run cannot carry out {0}; run the workflow on a Runtime")]
    Unsupported(String),
    /// An input, state or result did not encode or decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Runs a workflow as the runtime does after a restart at every await, in
/// memory: every step's state is encoded to bytes, dropped, and decoded
/// again before the next step (a running [`Runtime`](crate::Runtime) keeps
/// it typed between steps instead), and each activity runs exactly once
/// (no retries). Compare it with the generated `run_inline` to check that
/// the state machine behaves as the original `async fn`, and that nothing
/// depends on what a state's serialization leaves out.
pub async fn run_stepwise<W: Workflow>(
    call: WorkflowCall<W>,
) -> Result<StepwiseRun<W::Output>, StepwiseError> {
    let input = codec::encode(&call.input)?;
    let mut outcome = W::drive(Op::Start(&input))?;
    let mut requests = Vec::new();
    let mut variants = Vec::new();
    let mut step = 0u64;
    loop {
        match outcome {
            Outcome::Done(bytes) => {
                return Ok(StepwiseRun {
                    output: codec::decode(&bytes)?,
                    requests,
                    variants,
                });
            }
            // the state is decoded from its bytes at every step (the held
            // one is not used): a stepwise run proves the round trip
            Outcome::Await {
                state,
                variant,
                request,
                ..
            } => {
                step += 1;
                variants.push(variant);
                let result = match &request {
                    Request::Now => codec::encode(&std::time::SystemTime::now())?,
                    Request::RandomU64 => codec::encode(&rand::random::<u64>())?,
                    Request::Uuid => codec::encode(&uuid::Uuid::new_v4())?,
                    Request::Promise => codec::encode(&crate::promise::new_token("stepwise"))?,
                    // nobody waits for a reply in a stepwise run
                    Request::SetAttributes(_) | Request::Reply { .. } => codec::encode(&())?,
                    // a stepwise run is not started by a schedule
                    Request::Scheduled => codec::encode(&None::<crate::schedule::ScheduledRun>)?,
                    // no time passes in a stepwise run: timers are due at once
                    Request::Timer { .. } => codec::encode(&Ok::<(), crate::Cancelled>(()))?,
                    Request::Signal { name } => return Err(StepwiseError::Signal(name.clone())),
                    Request::Select(_)
                    | Request::All { .. }
                    | Request::Compensate(_)
                    | Request::Child { .. }
                    | Request::StartChild { .. }
                    | Request::ContinueAsNew { .. } => {
                        return Err(StepwiseError::Unsupported(format!("{request:?}")));
                    }
                    Request::Activity { input, .. } => {
                        let Outcome::Executor(Executor::Activity(vtable)) =
                            W::drive(Op::Executor { state: &state })?
                        else {
                            return Err(StepError::WrongVariant {
                                workflow: W::NAME,
                                variant,
                                op: "execute a command",
                            }
                            .into());
                        };
                        let ctx = ActivityContext {
                            workflow_id: "stepwise".into(),
                            activity: vtable.name,
                            attempt: 1,
                            idempotency_key: format!("stepwise/{step}"),
                            worker: None,
                        };
                        (vtable.run)(
                            input,
                            ctx,
                            std::sync::Arc::default(),
                            crate::Limits::default().result_bytes,
                        )?
                        .await?
                        .0
                    }
                };
                requests.push(request);
                // the state lives only as bytes between steps, as in the store
                let state = state.clone();
                outcome = W::drive(Op::Resume {
                    state: &state,
                    result: &result,
                })?;
            }
            other => {
                return Err(StepError::Json(format!("unexpected outcome {other:?}")).into());
            }
        }
    }
}
