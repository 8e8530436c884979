//! What `#[workflow]` implements: a state machine the runtime can step.
//!
//! The macro turns an `async fn` into a state enum (one variant per await
//! point) and a [`Workflow`] impl whose single entry point, [`Workflow::drive`],
//! works on encoded bytes. The runtime never sees the enum's Rust type: it
//! stores bytes, hands them back with the awaited command's result, and gets
//! the next state and the next command. Nothing is replayed.

use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use crate::codec::{self, CodecError};
use crate::command::{Executor, Request};

mod child;
mod helper;
pub use child::{ContinueAsNew, StartChild, continue_as_new};
#[doc(hidden)]
pub use helper::{Awaitable, Begun, Nested, Pending, Resumed, StateVisitor};
pub use helper::{Helper, HelperCall};

/// A workflow type, implemented by `#[workflow]` on a unit-like struct named
/// like the function (`process_order`), so the runtime can be told which
/// workflow to run without a string.
pub trait Workflow: Send + Sync + 'static {
    /// The function's parameter (a tuple when it has several, `()` for none).
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The function's return type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The workflow's name as stored with every instance.
    const NAME: &'static str;
    /// Hash of the state enum's shape (variant names, field names, type tokens
    /// and the workflow name): a stored state with another fingerprint is not
    /// resumed by this code.
    const FINGERPRINT: u64;
    /// `#[workflow(version = N)]` (default 1): several versions of one name
    /// run side by side, starts by name use the highest.
    const VERSION: u32 = 1;
    /// Each variant's name and its own fingerprint.
    const VARIANTS: &'static [VariantInfo];

    /// Performs one operation on an encoded state. Generated; not meant to be
    /// called by hand.
    #[doc(hidden)]
    fn drive(op: Op<'_>) -> Result<Outcome, StepError>;

    /// Runs the body as a plain async fn (the generated `run_inline`).
    #[doc(hidden)]
    fn inline(input: Self::Input) -> crate::future::BoxFuture<Self::Output>;

    /// The error text if an encoded output is an `Err`: the instance then
    /// counts as failed. Generated for `Result` outputs.
    #[doc(hidden)]
    fn output_error(_output: &[u8]) -> Option<String> {
        None
    }
}

/// The name and fingerprint of one variant of a state enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantInfo {
    /// Variant name, derived from the awaited command (`Charge`, `Charge2`, ...).
    pub name: &'static str,
    /// Hash of this variant's fields (names and type tokens).
    pub fingerprint: u64,
    /// The awaited command as written (`charge`); empty for `Start`.
    pub command: &'static str,
}

/// An operation the runtime asks the generated code to perform.
#[doc(hidden)]
#[derive(Debug)]
pub enum Op<'a> {
    /// Run from the start with the encoded input.
    Start(&'a [u8]),
    /// Resume a state with the encoded result of the command it awaits.
    Resume {
        /// The encoded state enum.
        state: &'a [u8],
        /// The encoded output of the awaited command.
        result: &'a [u8],
    },
    /// Resume a state this workflow's generated code handed back in
    /// [`Outcome::Await`]'s `held`, as it was, without decoding it: the
    /// runtime holds a running instance's state typed between steps.
    ResumeHeld {
        /// The state enum, as the last step left it.
        held: HeldState,
        /// The same state encoded: decoded instead if `held` is not this
        /// workflow's state type.
        state: &'a [u8],
        /// The encoded output of the awaited command.
        result: &'a [u8],
    },
    /// Tell how the command awaited by this state is executed.
    Executor {
        /// The encoded state enum.
        state: &'a [u8],
    },
    /// Decode the state and tell its variant (checks it can be resumed).
    Check {
        /// The encoded state enum.
        state: &'a [u8],
    },
    /// Render the state as JSON (for queries and tools).
    Json {
        /// The encoded state enum.
        state: &'a [u8],
    },
    /// Rebuild a state written by another version of the workflow whose
    /// variant `variant` has the same shape: `fields` are that variant's
    /// encoded fields (the state without its variant index).
    Adopt {
        /// The variant's name.
        variant: &'a str,
        /// Its fields, postcard-encoded in declaration order.
        fields: &'a [u8],
    },
    /// Trace the layouts of the state enum and of each awaited command's
    /// result (types only the generated code can name).
    Trace(&'a mut crate::layout::Tracer),
    /// Rebuild a state, read by another layout, by field and variant name.
    Transcode(&'a crate::layout::value::Value),
}

/// What an [`Op`] produced.
#[doc(hidden)]
#[derive(Debug)]
pub enum Outcome {
    /// The workflow reached an await: a new state and the command it waits for.
    Await {
        /// The encoded new state.
        state: Vec<u8>,
        /// The variant the new state is in.
        variant: &'static str,
        /// The command to carry out.
        request: Request,
        /// The new state itself, for [`Op::ResumeHeld`]: the next step
        /// need not decode what this one encoded.
        held: HeldState,
    },
    /// The workflow returned: the encoded output.
    Done(Vec<u8>),
    /// Answer to [`Op::Executor`].
    Executor(Executor),
    /// Answer to [`Op::Check`]: the state's variant, and the state decoded
    /// (for [`Op::ResumeHeld`]: the step that follows need not decode it
    /// again).
    Checked {
        /// The state's variant.
        variant: &'static str,
        /// The state.
        held: HeldState,
    },
    /// Answer to [`Op::Adopt`]: the state encoded by this version.
    Adopted(Vec<u8>),
    /// Answer to [`Op::Json`].
    Json(serde_json::Value),
    /// Answer to [`Op::Trace`]: the tracer holds the layouts.
    Traced,
}

/// Why the generated code could not perform an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// A stored state, input or command result did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The stored state is finished or in a variant that cannot take this operation.
    #[error("[DURABLE-STATE] state `{variant}` of `{workflow}` cannot {op}")]
    WrongVariant {
        /// The workflow.
        workflow: &'static str,
        /// The variant found.
        variant: &'static str,
        /// What was asked.
        op: &'static str,
    },
    /// The state could not be rendered as JSON.
    #[error("[DURABLE-STATE] cannot render state as JSON: {0}")]
    Json(String),
}

/// One segment's result: the workflow either waits on a command or is done.
#[doc(hidden)]
pub enum Step<S, O> {
    /// Suspended at an await point.
    Await(S, Request),
    /// Returned.
    Done(O),
    /// At an await whose helper returned without waiting: the driver
    /// resumes it at once, before anything is checkpointed.
    Ready(S),
}

/// Ties a state variant to the type of the command it waits for, so the
/// generated driver can decode that command's result. Stores nothing.
#[doc(hidden)]
pub struct Marker<C>(PhantomData<fn() -> C>);

impl<C> Default for Marker<C> {
    fn default() -> Self {
        Marker(PhantomData)
    }
}

impl<C> std::fmt::Debug for Marker<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Marker")
    }
}

/// Identity, requiring [`Awaitable`]: generated code passes each awaited
/// expression through it so that "cannot `.await` it" lands on the await.
#[doc(hidden)]
pub fn awaitable<A: Awaitable>(awaited: A) -> A {
    awaited
}

/// Suspends at an await point: turns the awaited command into a request (or
/// starts the awaited helper) and builds the state that waits for it.
#[doc(hidden)]
pub fn suspend<A: Awaitable, S, O>(
    awaited: A,
    state: impl FnOnce(A::Pending) -> S,
) -> Result<Step<S, O>, StepError> {
    Ok(match awaited.begin()? {
        Begun::Wait(pending, request) => Step::Await(state(pending), request),
        Begun::Ready(pending) => Step::Ready(state(pending)),
    })
}

/// The variant index of an encoded state enum, read without decoding the
/// state (its fields may be large).
#[doc(hidden)]
pub fn variant_index(state: &[u8]) -> Result<u32, CodecError> {
    let (&format, payload) = state.split_first().ok_or(CodecError::Empty)?;
    if format != codec::FORMAT_V1 {
        return Err(CodecError::UnknownFormat { found: format });
    }
    postcard::take_from_bytes::<u32>(payload)
        .map(|(index, _)| index)
        .map_err(|e| CodecError::Decode {
            type_name: "the variant index of a state",
            reason: e.to_string(),
        })
}

/// A state enum, typed, held by the runtime between two steps of a
/// running instance (see [`Op::ResumeHeld`]).
#[doc(hidden)]
pub type HeldState = Box<dyn std::any::Any + Send>;

/// Encodes a segment's result for the runtime.
#[doc(hidden)]
pub fn finish<S: Serialize + Send + 'static, O: Serialize>(
    step: Step<S, O>,
    variant_of: impl FnOnce(&S) -> &'static str,
) -> Result<Outcome, StepError> {
    match step {
        Step::Await(state, request) => Ok(Outcome::Await {
            variant: variant_of(&state),
            state: codec::encode(&state)?,
            request,
            held: Box::new(state),
        }),
        Step::Done(out) => Ok(Outcome::Done(codec::encode(&out)?)),
        Step::Ready(state) => Err(StepError::WrongVariant {
            workflow: "<driver>",
            variant: variant_of(&state),
            op: "checkpoint an await that is ready",
        }),
    }
}

/// Decodes the fields of a variant written by another version.
#[doc(hidden)]
pub fn decode_fields<T: DeserializeOwned>(fields: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(fields).map_err(|e| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// Rebuilds a state by name from a value read by a stored layout, and
/// encodes it under this code's layout.
#[doc(hidden)]
pub fn transcode<S: Serialize + DeserializeOwned>(
    value: &crate::layout::value::Value,
) -> Result<Outcome, StepError> {
    let state: S = crate::layout::value::rebuild(value)?;
    Ok(Outcome::Adopted(codec::encode(&state)?))
}

/// Renders a decoded state as JSON.
#[doc(hidden)]
pub fn to_json<S: Serialize>(state: &S) -> Result<Outcome, StepError> {
    serde_json::to_value(state)
        .map(Outcome::Json)
        .map_err(|e| StepError::Json(e.to_string()))
}

/// A call of a workflow function: the workflow and its input, ready to be
/// started by [`Runtime::start`](crate::Runtime::start).
///
/// `process_order(order)` outside a workflow body returns one of these.
pub struct WorkflowCall<W: Workflow> {
    pub(crate) input: W::Input,
    pub(crate) id: Option<String>,
    pub(crate) parent_close: crate::command::ParentClose,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) run_timeout: Option<std::time::Duration>,
}

impl<W: Workflow> WorkflowCall<W> {
    /// Wraps a workflow's input. Generated code calls this.
    #[doc(hidden)]
    pub fn new(input: W::Input) -> Self {
        WorkflowCall {
            input,
            id: None,
            parent_close: crate::command::ParentClose::Cancel,
            timeout: None,
            run_timeout: None,
        }
    }

    /// What happens to this child if its parent ends first (default: cancel).
    pub fn with_parent_close(mut self, policy: crate::command::ParentClose) -> Self {
        self.parent_close = policy;
        self
    }

    /// Ends the instance (terminated, reason `[DURABLE-TIMEOUT]`) if it has
    /// not finished `timeout` after it started, across continue-as-new runs.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Ends the instance (terminated, reason `[DURABLE-TIMEOUT]`) if one run
    /// takes longer than `timeout`; continue-as-new starts the count again.
    pub fn with_run_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.run_timeout = Some(timeout);
        self
    }

    /// The instance id to use when this call starts a child workflow
    /// (default: `<parent id>/<step>`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The input this call carries.
    pub fn input(&self) -> &W::Input {
        &self.input
    }
}

impl<W: Workflow> std::fmt::Debug for WorkflowCall<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkflowCall({})", W::NAME)
    }
}

/// `?` inside a workflow body: the generated segments return a [`Step`], not
/// the function's own type, so the macro rewrites `expr?` into a match on
/// [`QuestionMark::branch`] and an early return built by [`FromResidual`].
#[doc(hidden)]
pub trait QuestionMark {
    /// The value `?` yields.
    type Value;
    /// What `?` returns early with.
    type Residual;
    /// Splits into the value or the residual.
    fn branch(self) -> std::ops::ControlFlow<Self::Residual, Self::Value>;
}

/// Builds a function's return value from the residual of a `?`.
#[doc(hidden)]
pub trait FromResidual<R> {
    /// Converts the residual, as `?` does (`From` on the error).
    fn from_residual(residual: R) -> Self;
}

impl<T, E> QuestionMark for Result<T, E> {
    type Value = T;
    type Residual = Result<std::convert::Infallible, E>;
    fn branch(self) -> std::ops::ControlFlow<Self::Residual, T> {
        match self {
            Ok(v) => std::ops::ControlFlow::Continue(v),
            Err(e) => std::ops::ControlFlow::Break(Err(e)),
        }
    }
}

impl<T> QuestionMark for Option<T> {
    type Value = T;
    type Residual = Option<std::convert::Infallible>;
    fn branch(self) -> std::ops::ControlFlow<Self::Residual, T> {
        match self {
            Some(v) => std::ops::ControlFlow::Continue(v),
            None => std::ops::ControlFlow::Break(None),
        }
    }
}

impl<T, E, F: From<E>> FromResidual<Result<std::convert::Infallible, E>> for Result<T, F> {
    fn from_residual(residual: Result<std::convert::Infallible, E>) -> Self {
        match residual {
            Err(e) => Err(F::from(e)),
        }
    }
}

impl<T> FromResidual<Option<std::convert::Infallible>> for Option<T> {
    fn from_residual(_: Option<std::convert::Infallible>) -> Self {
        None
    }
}

/// The remaining items of a `for` loop whose body awaits: kept in the state
/// so a resumed loop goes on with the next item, not from the start.
#[doc(hidden)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Remaining<T>(std::collections::VecDeque<T>);

impl<T> Remaining<T> {
    /// Collects the loop's iterator.
    pub fn new<I: IntoIterator<Item = T>>(items: I) -> Self {
        Remaining(items.into_iter().collect())
    }

    /// The next item, if any.
    pub fn next_item(&mut self) -> Option<T> {
        self.0.pop_front()
    }
}

/// Picks the `Err` of an output that is a `Result` (generated code calls
/// `(&output).__durable_output_error()`; a `Result` matches here first).
#[doc(hidden)]
pub trait OutputIsResult {
    /// The error's text, if the output is an `Err`.
    fn __durable_output_error(&self) -> Option<String>;
}

impl<T, E: std::fmt::Display> OutputIsResult for Result<T, E> {
    fn __durable_output_error(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

/// Any other output never counts as a failure.
#[doc(hidden)]
pub trait OutputIsPlain {
    /// Always `None`.
    fn __durable_output_error(&self) -> Option<String>;
}

impl<T> OutputIsPlain for &T {
    fn __durable_output_error(&self) -> Option<String> {
        None
    }
}

/// The layout of `W`, traced once per process.
pub(crate) fn layout_of<W: Workflow>() -> &'static crate::layout::Traced {
    crate::layout::traced::<W::Input, W::Output>(
        std::any::TypeId::of::<W>(),
        (W::NAME, W::VERSION),
        |tracer| {
            W::drive(Op::Trace(tracer))
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
}
