//! Items only generated code uses. Not a public API: may change in any release.

pub use inventory;
pub use serde;

pub use crate::activity::{
    Activity, ActivityCall, ActivityOptions, ActivityVTable, BoxFuture, Registration, RetryPolicy,
};
pub use crate::codec::{CodecError, decode, encode};
pub use crate::command::Command;
pub use crate::layout::Tracer;
pub use crate::migration::Variant;
pub use crate::workflow::{
    Awaitable, FromResidual, Helper, HelperCall, Marker, Op, Outcome, OutputIsPlain,
    OutputIsResult, Pending, QuestionMark, Remaining, Resumed, StateVisitor, Step, StepError,
    VariantInfo, Workflow, WorkflowCall, awaitable, decode_fields, finish, suspend, to_json,
    transcode, variant_index,
};
pub use std::ops::ControlFlow;
pub use std::time::Duration;

/// What a local that lives across an `.await` must be: storable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be kept in the workflow's state",
    label = "this local is used after an `.await`, so it is stored in the state",
    note = "locals that live across an `.await` must implement `Serialize` and `DeserializeOwned`; keep the value within one step, or store something serializable (an id, a path) and rebuild it after the await"
)]
pub trait Persist: serde::Serialize + serde::de::DeserializeOwned {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Persist for T {}

/// Identity, requiring [`Persist`]: generated code passes each stored local
/// through it so that an error lands on the local.
pub fn keep<T: Persist>(value: T) -> T {
    value
}

/// Formats a stored value for `Debug` through its serde form, so a state
/// enum is printable whether or not its locals implement `Debug`.
pub struct DebugJson<'a, T: ?Sized>(pub &'a T);

impl<T: serde::Serialize + ?Sized> std::fmt::Debug for DebugJson<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_string(self.0) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unprintable>"),
        }
    }
}

/// Decodes a stored instance record (the value under `i` + id): the
/// micro-benchmarks of `durable-bench` time the engine's record codec
/// through it.
///
/// # Errors
/// The record does not decode.
pub fn decode_record(bytes: &[u8]) -> Result<(), CodecError> {
    crate::engine::InstanceRecord::decode(bytes).map(drop)
}

/// Decodes a stored instance record and encodes it again, as a checkpoint
/// does (for the micro-benchmarks of `durable-bench`).
///
/// # Errors
/// The record does not decode.
pub fn reencode_record(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let record = crate::engine::InstanceRecord::decode(bytes)?;
    crate::codec::encode(&record)
}
