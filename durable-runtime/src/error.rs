//! Typed errors, one enum per operation, all convertible into [`Error`].

use crate::codec::CodecError;
use crate::store::StoreError;
use crate::workflow::StepError;

/// Any error of this crate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A workflow could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A signal could not be sent.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// An update was not answered.
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// An instance could not be reset.
    #[error(transparent)]
    Reset(#[from] ResetError),
    /// A batch operation call failed.
    #[error(transparent)]
    Batch(#[from] crate::batch::BatchError),
    /// A workflow's result could not be had.
    #[error(transparent)]
    Result(#[from] ResultError),
    /// Bytes did not encode or decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A runtime could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Why [`Runtime::start`](crate::Runtime::start) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The id is taken and the policy was [`IdPolicy::Reject`](crate::IdPolicy::Reject).
    #[error("[DURABLE-EXISTS] workflow instance `{id}` already exists (workflow `{workflow}`)")]
    AlreadyExists {
        /// The instance id.
        id: String,
        /// The workflow of the existing instance.
        workflow: String,
    },
    /// The id is taken by an instance of another workflow.
    #[error("[DURABLE-EXISTS] instance `{id}` exists but runs `{found}`, not `{expected}`")]
    WrongWorkflow {
        /// The instance id.
        id: String,
        /// The workflow asked for.
        expected: &'static str,
        /// The workflow stored.
        found: String,
    },
    /// The id is empty or contains a NUL character.
    #[error(
        "[DURABLE-ID] invalid instance id {id:?}: it must be non-empty and contain no NUL character"
    )]
    InvalidId {
        /// The id given.
        id: String,
    },
    /// The id is longer than [`MAX_ID_BYTES`](crate::MAX_ID_BYTES): it must
    /// fit the stores' keys, indexes and messages (PostgreSQL refuses an
    /// index entry over about 2.7 KB and a `NOTIFY` payload over 8,000
    /// bytes).
    #[error(
        "[DURABLE-ID] instance id {prefix:?}... is {len} bytes, over the limit of {limit} bytes; use a shorter id (a hash of a long natural key, say)"
    )]
    IdTooLong {
        /// The id's first 64 characters.
        prefix: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is larger than [`Limits::input_bytes`](crate::Limits).
    #[error("{}", crate::limits::over("input", *size, *limit, "input_bytes"))]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The workflow was not registered on the runtime's builder.
    #[error(
        "[DURABLE-UNREGISTERED] workflow `{workflow}` is not registered; add `.workflow::<{workflow}>()` to the runtime builder"
    )]
    NotRegistered {
        /// The workflow.
        workflow: &'static str,
    },
    /// No version of the workflow named in a start by name is registered.
    #[error("[DURABLE-UNREGISTERED] no workflow named `{workflow}` is registered on this runtime")]
    UnknownWorkflow {
        /// The name given.
        workflow: String,
    },
    /// The JSON input of a start by name is not the workflow's input type.
    #[error("[DURABLE-INPUT] the input is not one of workflow `{workflow}`: {reason}")]
    BadInput {
        /// The workflow.
        workflow: String,
        /// What the decoder said.
        reason: String,
    },
    /// The input could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Storage failed; the instance was not created.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`Runtime::signal`](crate::Runtime::signal) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// No instance has this id.
    #[error("[DURABLE-UNKNOWN] cannot signal `{id}`: no such workflow instance")]
    NotFound {
        /// The instance id.
        id: String,
    },
    /// The instance has ended; nothing would receive the signal.
    #[error("[DURABLE-FINISHED] cannot signal `{id}`: the instance has ended ({status:?})")]
    Finished {
        /// The instance id.
        id: String,
        /// How it ended.
        status: crate::Status,
    },
    /// Starting the instance (signal with start) failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The payload is larger than [`Limits::signal_bytes`](crate::Limits).
    #[error("{}", crate::limits::over("signal's payload", *size, *limit, "signal_bytes"))]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A JSON signal ([`Runtime::signal_json`](crate::Runtime::signal_json))
    /// was sent to an instance that does not wait for a signal of that name
    /// now, so there is no type to convert the JSON to.
    #[error(
        "[DURABLE-SIGNAL-TYPE] cannot send JSON signal `{name}` to `{id}`: it does not wait for that signal now (or this process lacks its workflow's code), so the payload's type is unknown; send it when it waits, or from Rust with Runtime::signal"
    )]
    NotWaiting {
        /// The instance id.
        id: String,
        /// The signal's name.
        name: String,
    },
    /// A JSON payload does not fit the type the workflow expects.
    #[error(
        "[DURABLE-SIGNAL-TYPE] the payload of signal `{name}` for `{id}` does not fit: {reason}"
    )]
    Payload {
        /// The instance id.
        id: String,
        /// The signal's name.
        name: String,
        /// What did not fit.
        reason: String,
    },
    /// A promise's token ([`Runtime::complete`](crate::Runtime::complete))
    /// that no promise was ever given: not `<instance id>#<uuid>`.
    #[error("[DURABLE-PROMISE] `{token}` is not a promise's token")]
    BadToken {
        /// The token given.
        token: String,
    },
    /// The promise was completed before; this completion changed nothing.
    #[error("[DURABLE-PROMISE] the promise `{token}` was completed already")]
    AlreadyCompleted {
        /// The promise's token.
        token: String,
    },
    /// The payload could not be encoded, or the record decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Storage failed; the signal was not recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`Runtime::update`](crate::Runtime::update) has no reply.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The update's validator refused it: nothing was written.
    #[error("[DURABLE-UPDATE] update `{name}` of `{id}` was rejected: {reason}")]
    Rejected {
        /// The instance id.
        id: String,
        /// The update's name.
        name: String,
        /// What the validator said.
        reason: String,
    },
    /// The instance ended without replying to the update.
    #[error("[DURABLE-UPDATE] `{id}` ended ({status:?}) without replying to update `{update}`")]
    Unanswered {
        /// The instance id.
        id: String,
        /// The update's id.
        update: String,
        /// How the instance ended.
        status: crate::Status,
    },
    /// No update of this id was accepted for the instance (re-attaching
    /// with [`Runtime::update_reply`](crate::Runtime::update_reply)).
    #[error("[DURABLE-UPDATE] `{id}` has no update `{update}`")]
    Unknown {
        /// The instance id.
        id: String,
        /// The update's id.
        update: String,
    },
    /// An update id that cannot be stored.
    #[error("[DURABLE-UPDATE] bad update id `{update}`: {reason}")]
    BadId {
        /// The id given.
        update: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The reply does not read as the caller's type.
    #[error(
        "[DURABLE-UPDATE] the reply to update `{update}` of `{id}` does not read as the caller's type: {reason}"
    )]
    Reply {
        /// The instance id.
        id: String,
        /// The update's id.
        update: String,
        /// Why.
        reason: String,
    },
    /// The update could not be sent: an unknown or ended instance, a
    /// payload too large or of the wrong type, a store failure.
    #[error(transparent)]
    Send(#[from] SignalError),
}

impl From<StoreError> for UpdateError {
    fn from(e: StoreError) -> Self {
        UpdateError::Send(SignalError::Store(e))
    }
}

impl From<CodecError> for UpdateError {
    fn from(e: CodecError) -> Self {
        UpdateError::Send(SignalError::Codec(e))
    }
}

/// Why [`Runtime::reset`](crate::Runtime::reset) started no new run.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResetError {
    /// No instance has this id.
    #[error("[DURABLE-RESET] no workflow instance `{id}`")]
    Unknown {
        /// The id asked for.
        id: String,
    },
    /// The instance is running or waiting: only an ended or parked one can
    /// be reset (cancel or terminate it first).
    #[error("[DURABLE-RESET] `{id}` is still running: cancel or terminate it first, then reset it")]
    Active {
        /// The instance id.
        id: String,
    },
    /// No state is kept for that step: it was never reached, it is older
    /// than the reset points kept (`Builder::reset_points`), or the
    /// instance was imported or written before reset points.
    #[error(
        "[DURABLE-RESET] `{id}` keeps no state for step {step}; steps it can be reset to: {}",
        list_steps(kept)
    )]
    PointGone {
        /// The instance id.
        id: String,
        /// The step asked for.
        step: u64,
        /// The steps it keeps a state for.
        kept: Vec<u64>,
    },
    /// The history has no such event, or the event belongs to no step.
    #[error("[DURABLE-RESET] event {event} of `{id}` {reason}")]
    Event {
        /// The instance id.
        id: String,
        /// The event number asked for.
        event: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The state kept for that step cannot run on the registered code (its
    /// layout changed and no migration or transcoding reads it).
    #[error("[DURABLE-RESET] the state of `{id}` at step {step} cannot run on this code: {reason}")]
    LayoutChanged {
        /// The instance id.
        id: String,
        /// The step asked for.
        step: u64,
        /// Why, as a parked instance would say.
        reason: String,
    },
    /// The instance changed while it was being reset (another process
    /// reset or started it); nothing was written.
    #[error("[DURABLE-RESET] `{id}` changed meanwhile; nothing was written, try again")]
    Conflict {
        /// The instance id.
        id: String,
    },
    /// A stored value did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Storage failed; nothing was reset.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list_steps(steps: &[u64]) -> String {
    if steps.is_empty() {
        return "none".into();
    }
    steps
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why [`WorkflowHandle::result`](crate::WorkflowHandle::result) gave no output.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// No instance has this id.
    #[error("[DURABLE-UNKNOWN] no workflow instance `{id}`")]
    NotFound {
        /// The instance id.
        id: String,
    },
    /// The instance runs another workflow than the handle's.
    #[error("[DURABLE-EXISTS] instance `{id}` runs `{found}`, not `{expected}`")]
    WrongWorkflow {
        /// The instance id.
        id: String,
        /// The handle's workflow.
        expected: &'static str,
        /// The stored workflow.
        found: String,
    },
    /// The workflow panicked or its state could not be advanced.
    #[error("[DURABLE-FAILED] workflow instance `{id}` failed: {message}")]
    Failed {
        /// The instance id.
        id: String,
        /// What happened.
        message: String,
    },
    /// The instance was terminated.
    #[error("[DURABLE-TERMINATED] workflow instance `{id}` was terminated: {reason}")]
    Terminated {
        /// The instance id.
        id: String,
        /// The reason given.
        reason: String,
    },
    /// The instance has already ended.
    #[error("[DURABLE-FINISHED] workflow instance `{id}` has already ended ({status:?})")]
    Finished {
        /// The instance id.
        id: String,
        /// How it ended.
        status: crate::Status,
    },
    /// The output was written by code whose output type was laid out
    /// otherwise, and cannot be read by name as this code's type.
    #[error(
        "[DURABLE-LAYOUT] the output of `{id}` was written by code whose output type differs from this build's: {}; it is not read by position",
        changes.join("; ")
    )]
    OutputLayout {
        /// The instance id.
        id: String,
        /// The edits that cannot be crossed, in the user's terms.
        changes: Vec<String>,
    },
    /// The instance is parked: its stored state cannot run on this code.
    #[error("{reason}")]
    Parked {
        /// The instance id.
        id: String,
        /// Why, with the workflow and fingerprints.
        reason: String,
    },
    /// This runtime has no code for the instance's workflow version, so it
    /// cannot render its state.
    #[error(
        "[DURABLE-UNREGISTERED] cannot read the state of `{id}`: workflow `{workflow}` (fingerprint {fingerprint:016x}) is not registered here; ask the service that runs it (durable --url)"
    )]
    NotRegistered {
        /// The instance id.
        id: String,
        /// The workflow's name.
        workflow: String,
        /// The shape fingerprint of the stored state.
        fingerprint: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored output did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Why a stored instance cannot be resumed by this code; it is parked, kept
/// intact, and reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The layout of the stored state differs from the code's in a way a
    /// value cannot cross by name (a narrowed or re-signed integer, a type
    /// of another kind, a field added without a default...).
    #[error(
        "[DURABLE-LAYOUT] instance `{instance}` of `{workflow}` waits at `{variant}`, stored by code whose types differ from this build's: {}; the state is not read by position. Keep the old types (register the old code as its own `#[workflow(version = N)]`), make the change compatible (add a `#[serde(default)]`, an `#[serde(alias)]`, widen instead of narrowing), or register a migration; instance parked",
        changes.join("; ")
    )]
    LayoutChanged {
        /// The workflow.
        workflow: String,
        /// The instance id.
        instance: String,
        /// The variant it waits at.
        variant: String,
        /// What changed, in the user's terms.
        changes: Vec<String>,
    },
    /// The record names a layout the store does not hold.
    #[error(
        "[DURABLE-LAYOUT] instance `{instance}` of `{workflow}` was written with layout {layout:016x}, which the store does not hold; its state cannot be read by name, and is not read by position; instance parked"
    )]
    LayoutMissing {
        /// The workflow.
        workflow: String,
        /// The instance id.
        instance: String,
        /// The missing layout's hash.
        layout: u64,
    },
    /// The stored state's shape differs from the code's state enum.
    #[error(
        "[DURABLE-SHAPE] instance `{instance}` of `{workflow}` was stored by code whose awaits differ from the registered code's (fingerprint {stored:016x}, now {current:016x}){}: keep the old code registered as its own version (give the changed function `#[workflow(version = N)]` with a higher N and register both), or register a migration; instance parked",
        detail(changes)
    )]
    ShapeMismatch {
        /// The workflow.
        workflow: String,
        /// The stored fingerprint.
        stored: u64,
        /// The code's fingerprint.
        current: u64,
        /// The instance id.
        instance: String,
        /// What changed between the stored code and the newest registered
        /// version (when the store holds the old layout).
        changes: Vec<String>,
    },
    /// No workflow of that name is registered.
    #[error(
        "[DURABLE-UNREGISTERED] instance `{instance}` runs workflow `{workflow}`, which is not registered; instance parked"
    )]
    NotRegistered {
        /// The workflow.
        workflow: String,
        /// The instance id.
        instance: String,
    },
    /// The record or the state inside it does not decode.
    #[error(
        "[DURABLE-UNDECODABLE] instance `{instance}` cannot be decoded: {reason}; instance parked"
    )]
    Undecodable {
        /// The instance id.
        instance: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// The generated code refused the stored state.
    #[error("[DURABLE-STATE] instance `{instance}`: {source}; instance parked")]
    Step {
        /// The instance id.
        instance: String,
        /// What the generated code said.
        source: StepError,
    },
    /// Its version is not registered, and a registered version has the
    /// variant it waits at with the same shape, but the workflow is pinned:
    /// upgrades are opt-in ([`Builder::workflow_upgrading`](crate::Builder::workflow_upgrading)).
    #[error(
        "[DURABLE-SHAPE] instance `{instance}` of `{workflow}` was stored by version {version} as its code was then (fingerprint {stored:016x}), and no registered code has that shape{}; it is pinned to that code, though the await it waits at, `{variant}`, has the same shape in version {compatible}: register that version with `workflow_upgrading` to continue there, or keep the old code registered as version {version} (and give the changed code a higher version); instance parked",
        detail(changes)
    )]
    Pinned {
        /// The workflow.
        workflow: String,
        /// The instance id.
        instance: String,
        /// The stored fingerprint.
        stored: u64,
        /// The stored version.
        version: u32,
        /// The variant it waits at.
        variant: String,
        /// The version it could continue on.
        compatible: u32,
        /// What changed between the stored code and the newest registered
        /// version (when the store holds the old layout).
        changes: Vec<String>,
    },
    /// A migration from its version is registered, but has no function for
    /// the variant it waits at, whose shape changed.
    #[error(
        "[DURABLE-MIGRATION] instance `{instance}` of `{workflow}` waits at `{variant}`, and the migration from version {from} to {to} has no function for it (its shape changed): add `.variant({workflow}_v{from}::{variant}, ..)` or the like to the migration; instance parked"
    )]
    MigrationMissing {
        /// The workflow.
        workflow: String,
        /// The instance id.
        instance: String,
        /// The version it is stored with.
        from: u32,
        /// The version the migration goes to.
        to: u32,
        /// The variant it waits at.
        variant: String,
    },
    /// A migration function failed, or built a state the new version
    /// cannot take.
    #[error(
        "[DURABLE-MIGRATION] migrating instance `{instance}` of `{workflow}` at `{variant}` from version {from} to {to} failed: {reason}; instance parked"
    )]
    Migration {
        /// The workflow.
        workflow: String,
        /// The instance id.
        instance: String,
        /// The version it is stored with.
        from: u32,
        /// The version the migration goes to.
        to: u32,
        /// The variant it waits at.
        variant: String,
        /// What went wrong.
        reason: String,
    },
}

impl ResumeError {
    /// The instance it is about.
    pub fn instance(&self) -> &str {
        match self {
            ResumeError::LayoutChanged { instance, .. }
            | ResumeError::LayoutMissing { instance, .. }
            | ResumeError::ShapeMismatch { instance, .. }
            | ResumeError::NotRegistered { instance, .. }
            | ResumeError::Undecodable { instance, .. }
            | ResumeError::Step { instance, .. }
            | ResumeError::Pinned { instance, .. }
            | ResumeError::MigrationMissing { instance, .. }
            | ResumeError::Migration { instance, .. } => instance,
        }
    }
}

/// Why [`Builder::open`](crate::Builder::open) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Storage failed (or another process has the store open).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Two different shapes were registered as the same version.
    #[error(
        "[DURABLE-VERSION] workflow `{workflow}` version {version} is registered twice with different shapes (fingerprints {first:016x} and {second:016x}); give the new function `#[workflow(version = N)]` with a higher N"
    )]
    DuplicateVersion {
        /// The workflow.
        workflow: String,
        /// The version registered twice.
        version: u32,
        /// The first registration's fingerprint.
        first: u64,
        /// The second one's.
        second: u64,
    },
    /// A migration whose two ends are not versions of one workflow.
    #[error(
        "[DURABLE-MIGRATION] a migration goes from `{from}` to `{to}`: a migration moves instances between versions of one workflow name"
    )]
    MigrationAcrossWorkflows {
        /// The old version's name.
        from: String,
        /// The new version's name.
        to: String,
    },
    /// The layout of what a registered version stores cannot be traced, so
    /// its stored states could not be read by name after a change.
    #[error(
        "[DURABLE-UNTRACED] workflow `{workflow}` version {version}: {reason}; a state written by one build would be read by position by the next. Give the type a derived `Deserialize`, or open with `Builder::allow_untraced_layouts()` to accept fingerprint-only checks for it"
    )]
    Untraced {
        /// The workflow.
        workflow: String,
        /// Its version.
        version: u32,
        /// Which type, and why it cannot be traced.
        reason: String,
    },
}

/// The changes of a shape error, as a clause.
fn detail(changes: &[String]) -> String {
    if changes.is_empty() {
        String::new()
    } else {
        format!(" ({})", changes.join("; "))
    }
}
