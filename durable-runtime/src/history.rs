//! Execution history: an append-only log of what happened to an instance,
//! written in the same atomic batch as the checkpoint it describes.

use serde::{Deserialize, Serialize};

use crate::command::Request;
use crate::phase::Status;

/// The events stored under one history key of an instance whose history
/// prefix is `prefix_len` bytes long: one event (`prefix` + seq), or the
/// events of one checkpoint (`prefix` + first seq + `*`).
pub(crate) fn decode_stored(
    prefix_len: usize,
    key: &[u8],
    bytes: &[u8],
) -> Result<Vec<HistoryEvent>, crate::CodecError> {
    decode_with_point(prefix_len, key, bytes).map(|(events, _)| events)
}

/// [`decode_stored`], and the reset point stored after the events when
/// there is one: the instance's record as that checkpoint wrote it
/// (`engine/reset.rs`).
pub(crate) fn decode_with_point<'a>(
    prefix_len: usize,
    key: &[u8],
    bytes: &'a [u8],
) -> Result<(Vec<HistoryEvent>, Option<&'a [u8]>), crate::CodecError> {
    let (events, rest) =
        if key.len() == prefix_len + 9 && key.last() == Some(&crate::store::keys::HISTORY_BATCH) {
            crate::codec::decode_head(bytes)?
        } else {
            crate::codec::decode_head(bytes).map(|(event, rest)| (vec![event], rest))?
        };
    match rest.first() {
        None => Ok((events, None)),
        Some(&crate::codec::FORMAT_V1) => Ok((events, Some(rest))),
        Some(_) => Err(crate::CodecError::Decode {
            type_name: "history events",
            reason: format!("{} trailing bytes", rest.len()),
        }),
    }
}

/// One entry of an instance's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Position in the instance's history, from 1.
    pub seq: u64,
    /// When it was recorded, ms since the Unix epoch (the runtime's clock).
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What a [`HistoryEvent`] records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// The instance was created (or a new run started by continue-as-new).
    Started {
        /// The workflow.
        workflow: String,
        /// The run number.
        run: u32,
        /// The version that runs it (`#[workflow(version = N)]`).
        version: u32,
    },
    /// A transition: the workflow now waits at this await.
    Awaiting {
        /// The step number (the idempotency key's step).
        step: u64,
        /// The state variant.
        variant: String,
        /// The command awaited, in short.
        command: String,
    },
    /// An activity attempt failed and will be retried.
    AttemptFailed {
        /// The step it belongs to.
        step: u64,
        /// The attempt number, from 1.
        attempt: u32,
        /// The error text.
        error: String,
        /// How long the attempt ran, in ms.
        duration_ms: u64,
    },
    /// An activity's last attempt ended: its result goes to the workflow.
    ActivityFinished {
        /// The step it belongs to.
        step: u64,
        /// The activity's name.
        activity: String,
        /// The attempt that ended it.
        attempt: u32,
        /// How long that attempt ran, in ms.
        duration_ms: u64,
        /// The error text if it failed for good.
        error: Option<String>,
    },
    /// The instance moved to another version of its workflow whose variant
    /// at the current await has the same shape.
    Upgraded {
        /// The old fingerprint.
        from: u64,
        /// The new fingerprint.
        to: u64,
        /// The variant it was at.
        variant: String,
    },
    /// A cancellation reached the workflow at its current await.
    CancelDelivered {
        /// The step it was delivered at.
        step: u64,
    },
    /// The instance ended.
    Finished {
        /// How.
        status: Status,
        /// The error or reason, when it did not complete.
        error: Option<String>,
    },
    /// The input the instance was started with, as JSON text, recorded
    /// right after [`EventKind::Started`] so tools can show it once the
    /// state has moved on. (Last, so older histories keep decoding.)
    Input {
        /// The input, as JSON.
        json: String,
    },
    /// A registered migration moved the instance to another version.
    Migrated {
        /// The version it was stored with.
        from: u32,
        /// The version it runs on now.
        to: u32,
        /// The old fingerprint.
        from_fingerprint: u64,
        /// The new fingerprint.
        to_fingerprint: u64,
        /// The variant it waited at.
        from_variant: String,
        /// The variant it waits at now.
        to_variant: String,
    },
    /// The registered code cannot run it (changed shape, pinned version,
    /// missing migration): it is kept until code that can is registered.
    Parked {
        /// Why, as `describe` shows it.
        reason: String,
    },
    /// The durable timer the instance waited for came due.
    TimerFired {
        /// The step that waited.
        step: u64,
    },
    /// A buffered signal was delivered to the await that waited for it.
    SignalReceived {
        /// The step that waited.
        step: u64,
        /// The signal's name.
        name: String,
    },
    /// The state was written by code whose types were laid out otherwise:
    /// it was read by the stored layout and rebuilt by name.
    Transcoded {
        /// The stored layout's hash.
        from: u64,
        /// The code's layout hash.
        to: u64,
        /// The edits crossed, in the user's terms.
        changes: Vec<String>,
    },
    /// A large input, kept once as the instance's stored field 0 rather
    /// than copied into the history; the history is read (and exported)
    /// with an [`EventKind::Input`] in its place. (Last, so older
    /// histories keep decoding.)
    #[doc(hidden)]
    InputKept {
        /// The input's encoded size.
        bytes: u64,
        /// The layout hash of the code that wrote it (0: unknown).
        layout: u64,
    },
    /// One part of a `join_all` or of a saga's compensation ended: its
    /// attempts in one event (parts run side by side, and their failed
    /// attempts are retried without a checkpoint each). Written with the
    /// checkpoint that records the part's result. (Last, so older
    /// histories keep decoding.)
    PartFinished {
        /// The step of the `join_all` or compensation.
        step: u64,
        /// The part's index in the call (a compensation's: the order it
        /// was added in).
        part: u32,
        /// The activity's name.
        activity: String,
        /// Attempts made (0: not known, a result another worker wrote
        /// before it counted them).
        attempts: u32,
        /// From the first attempt's start to the end of the last, in ms
        /// (backoffs between attempts included).
        duration_ms: u64,
        /// The error text if the part failed for good (the workflow sees
        /// it as the part's `Err`).
        error: Option<String>,
    },
    /// The workflow replied to an accepted update (its request arrived as
    /// [`EventKind::SignalReceived`] `update/<name>`); the reply is stored
    /// with this checkpoint. (Last, so older histories keep decoding.)
    UpdateReplied {
        /// The step that replied.
        step: u64,
        /// The update's id.
        update: String,
        /// The reply, as JSON.
        json: String,
    },
    /// The instance was reset (`Runtime::reset`): a new run goes on from
    /// the state its checkpoint of step `to_step` stored, the events
    /// before this one being the earlier run's. (Last, so older histories
    /// keep decoding.)
    Reset {
        /// The step the earlier run had reached.
        from_step: u64,
        /// The step the new run goes on from (its awaited command runs again).
        to_step: u64,
        /// The new run's number.
        run: u32,
        /// Why, as the operator gave it.
        reason: String,
    },
    /// A run failed and the workflow's retry policy
    /// (`Builder::workflow_with_retry`) runs it again from its input: the
    /// next run starts at `next_at_ms` (the runtime's clock) with the next
    /// run number. (Last, so older histories keep decoding.)
    RunFailed {
        /// The run that failed.
        run: u32,
        /// Its attempt (from 1).
        attempt: u32,
        /// Why it failed.
        error: String,
        /// When the next run starts (ms).
        next_at_ms: u64,
    },
    /// What an activity was called with and what it returned, as JSON
    /// text, each read by the layout of the build that wrote it. Recorded
    /// with the checkpoint that records the result, after its
    /// [`EventKind::ActivityFinished`] (a part's: its
    /// [`EventKind::PartFinished`]; a part that gave up without a result
    /// has none). A value over
    /// [`KEPT_VALUE_BYTES`] is not kept: its JSON is a string saying how
    /// large it was. (Last, so older histories keep decoding.)
    ActivityCalled {
        /// The step it belongs to.
        step: u64,
        /// The part of a `join_all` or of a saga's compensation it was
        /// (`None`: an activity awaited alone).
        part: Option<u32>,
        /// The activity's name.
        activity: String,
        /// The input, as JSON.
        input: String,
        /// The result (`{"Ok": ..}` or `{"Err": ..}`), as JSON.
        output: String,
    },
    /// A delivered signal's payload, as JSON text read by the layout of
    /// its sender, after its [`EventKind::SignalReceived`] (a value over
    /// [`KEPT_VALUE_BYTES`] as for [`EventKind::ActivityCalled`]). (Last,
    /// so older histories keep decoding.)
    SignalPayload {
        /// The step that waited.
        step: u64,
        /// The signal's name.
        name: String,
        /// The payload, as JSON.
        json: String,
    },
    /// [`EventKind::ActivityCalled`] as stored: the encoded values with
    /// their layout hashes, rendered when the history is read.
    #[doc(hidden)]
    ActivityKept {
        /// The step it belongs to.
        step: u64,
        /// The part it was, as in [`EventKind::ActivityCalled`].
        part: Option<u32>,
        /// The activity's name.
        activity: String,
        /// The input.
        input: KeptValue,
        /// The result.
        output: KeptValue,
    },
    /// [`EventKind::SignalPayload`] as stored.
    #[doc(hidden)]
    SignalKept {
        /// The step that waited.
        step: u64,
        /// The signal's name.
        name: String,
        /// The payload.
        value: KeptValue,
    },
}

/// The largest encoded value the history keeps a copy of (an activity's
/// input or result, a signal's payload): 4 KiB. Larger ones are noted with
/// their size, so a checkpoint's history stays small whatever the values.
pub const KEPT_VALUE_BYTES: usize = 4096;

/// An encoded value as the history stores it: its bytes (empty when over
/// [`KEPT_VALUE_BYTES`]), its length, and the hash of the layout that reads
/// it by name (0: its type could not be traced).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptValue {
    /// The envelope, or nothing when it was too large to keep.
    pub bytes: Vec<u8>,
    /// The envelope's length.
    pub len: u64,
    /// The layout's hash (a `v` key), 0 when unknown.
    pub layout: u64,
}

impl KeptValue {
    /// `bytes`, laid out as `layout` (its hash).
    pub(crate) fn of(bytes: &[u8], layout: u64) -> KeptValue {
        KeptValue {
            bytes: if bytes.len() <= KEPT_VALUE_BYTES {
                bytes.to_vec()
            } else {
                Vec::new()
            },
            len: bytes.len() as u64,
            layout,
        }
    }
}

impl EventKind {
    /// The step an event belongs to, for those of one step (a reset can
    /// go back to it): the await it records, or the await whose command
    /// it reports on.
    pub fn step(&self) -> Option<u64> {
        match self {
            EventKind::Awaiting { step, .. }
            | EventKind::AttemptFailed { step, .. }
            | EventKind::ActivityFinished { step, .. }
            | EventKind::CancelDelivered { step }
            | EventKind::TimerFired { step }
            | EventKind::SignalReceived { step, .. }
            | EventKind::PartFinished { step, .. }
            | EventKind::ActivityCalled { step, .. }
            | EventKind::SignalPayload { step, .. }
            | EventKind::ActivityKept { step, .. }
            | EventKind::SignalKept { step, .. }
            | EventKind::UpdateReplied { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// A short description of a command for the history.
pub(crate) fn describe(request: &Request) -> String {
    match request {
        Request::Activity { name, .. } => format!("activity {name}"),
        Request::Now => "now".into(),
        Request::RandomU64 => "random".into(),
        Request::Uuid => "uuid".into(),
        Request::Promise => "a new promise".into(),
        Request::Reply { update, .. } => format!("reply to update {update}"),
        Request::StartChild { workflow, id, .. } => format!(
            "start child {workflow}{}",
            id.as_ref().map(|i| format!(" `{i}`")).unwrap_or_default()
        ),
        Request::Scheduled => "the schedule that started it".into(),
        Request::SetAttributes(attrs) => format!(
            "search attributes {}",
            attrs
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Request::Timer { at_ms, after_ms } => match at_ms {
            Some(at) => format!("timer until {at} ms"),
            None => format!("timer for {after_ms} ms"),
        },
        Request::Signal { name } => format!("signal {name}"),
        Request::Select(branches) => format!(
            "select({})",
            branches.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
        Request::All { requests, limit } => {
            format!("join_all of {} (at most {limit} at once)", requests.len())
        }
        Request::Compensate(steps) => format!("compensate {} steps", steps.len()),
        Request::Child { workflow, id, .. } => format!(
            "child {workflow}{}",
            id.as_ref().map(|i| format!(" `{i}`")).unwrap_or_default()
        ),
        Request::ContinueAsNew { workflow, .. } => format!("continue as new {workflow}"),
    }
}
