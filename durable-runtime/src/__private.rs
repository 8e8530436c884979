//! Items only generated code uses. Not a public API: may change in any release.

pub use serde;

pub use crate::activity::{Activity, ActivityCall, ActivityOptions, BoxFuture, RetryPolicy};
pub use crate::codec::{CodecError, decode};
pub use crate::command::Command;
pub use crate::workflow::{
    FromResidual, Marker, Op, Outcome, QuestionMark, Remaining, Step, StepError, VariantInfo,
    Workflow, WorkflowCall, decode_result, executor_of, finish, suspend, to_json,
};
pub use std::ops::ControlFlow;
pub use std::time::Duration;

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
