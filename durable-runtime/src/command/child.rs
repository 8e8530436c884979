//! What a child workflow's commands say beside the request: its error and
//! what becomes of it when its parent ends. The commands themselves are
//! built from a `WorkflowCall` (`workflow::child`).

use serde::{Deserialize, Serialize};

/// Why a child workflow gave no output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("[DURABLE-CHILD] child workflow `{id}` ended without an output: {reason}")]
pub struct ChildError {
    /// The child's instance id.
    pub id: String,
    /// How it ended.
    pub reason: String,
}

/// What happens to a child workflow still running when its parent ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentClose {
    /// Cancel it (the default): it sees a cancellation at its current await.
    #[default]
    Cancel,
    /// Let it run on by itself.
    Abandon,
}
