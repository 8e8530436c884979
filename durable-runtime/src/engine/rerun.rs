//! The workflow-level retry policy (`Builder::workflow_with_retry`): a run that
//! fails is followed, after the policy's backoff, by a new run of the same
//! id from the same input, until a run ends otherwise or the policy says
//! no more.
//!
//! A failed run becomes, in the same transition, an instance that waits
//! (status running) for `continue_as_new` of its own input at `retry_at_ms`
//! (a timer entry wakes it; a restart waits out the rest), with an
//! `EventKind::RunFailed` in its history instead of `Finished`. The new run
//! takes the next run number and goes on with the step count, so its calls
//! get idempotency keys no earlier run used.

use serde::{Deserialize, Serialize};

use super::{Engine, Halt, InstanceRecord, Registry, Status};
use crate::activity::{Failure, RetryPolicy};
use crate::clock::now_ms as clock_ms;
use crate::codec;
use crate::command::Request;
use crate::history::EventKind;
use crate::store::keys;

/// What a failed run needs to run again, kept in the record of an
/// instance created while its workflow had a retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rerun {
    /// The run now running is the how-manieth attempt (from 1).
    pub(crate) attempt: u32,
    /// The input's envelope; empty when the input is kept as the
    /// instance's stored field 0 (large inputs: `fields.rs`).
    pub(crate) input: Vec<u8>,
    /// The layout hash of the code that wrote the input: a run on code
    /// laid out otherwise reads it by name.
    pub(crate) layout: u64,
}

/// The variant a failed run waits at for the next.
pub(crate) const RETRYING: &str = "RetryingRun";

/// Whether `record` waits, with no state, for the run after a failed one.
pub(crate) fn waiting(record: &InstanceRecord) -> bool {
    record.variant == RETRYING && record.state.is_empty()
}

impl Registry {
    /// The rerun slot of a new instance of `workflow` started with `input`
    /// (kept apart as field 0 when `kept`), if the workflow has a policy.
    pub(crate) fn rerun_of(
        &self,
        workflow: &str,
        input: &[u8],
        kept: bool,
        layout: u64,
    ) -> Option<Rerun> {
        self.retry_policy(workflow)?;
        Some(Rerun {
            attempt: 1,
            input: if kept { Vec::new() } else { input.to_vec() },
            layout,
        })
    }
}

/// Turns `record`, whose run has just failed with `error` (`panicked`: by a
/// panic), into one that waits to run again, if its workflow's policy
/// allows another attempt: the event to record instead of `Finished`.
pub(crate) fn plan(
    record: &mut InstanceRecord,
    policy: Option<&RetryPolicy>,
    panicked: bool,
    now: u64,
) -> Option<EventKind> {
    let (Some(policy), Some(rerun)) = (policy, record.rerun.as_mut()) else {
        return None;
    };
    let error = record.error.clone().unwrap_or_default();
    let failure = Failure {
        kind: if panicked { "panic" } else { "error" }.to_owned(),
        message: error.clone(),
        retryable: true,
    };
    if !policy.allows_retry(rerun.attempt, &failure) {
        return None;
    }
    rerun.attempt += 1;
    let next_at_ms = now.saturating_add(policy.backoff(rerun.attempt).as_millis() as u64);
    let event = EventKind::RunFailed {
        run: record.run,
        attempt: rerun.attempt - 1,
        error: error.clone(),
        next_at_ms,
    };
    record.status = Status::Running;
    record.last_error = Some(error);
    record.error = None;
    record.output = None;
    record.state.clear();
    record.variant = RETRYING.to_owned();
    record.pending = Some(Request::ContinueAsNew {
        workflow: record.workflow.clone(),
        // filled in from field 0 when it runs, for a kept input
        input: rerun.input.clone(),
    });
    record.retry_at_ms = next_at_ms;
    Some(event)
}

impl Engine {
    /// Whether the run that follows a failed one may start (`Ok`), or must
    /// wait for its time (`Halt::Waiting`: its timer entry wakes it). A
    /// cancel or terminate asked for meanwhile ends the instance (the
    /// failed run has nothing left to clean up). A plain continue-as-new
    /// starts at once.
    pub(super) async fn await_rerun(
        &self,
        id: &str,
        record: &mut InstanceRecord,
    ) -> Result<(), Halt> {
        if record.retry_at_ms == 0 {
            return Ok(());
        }
        let timer = keys::timer(record.retry_at_ms, id);
        if self.has_control(id) {
            if let Some((key, reason)) = self
                .take_control(id, keys::TERMINATE)
                .await
                .map_err(Halt::Store)?
            {
                let reason: String = codec::decode(&reason).unwrap_or_else(|_| "terminated".into());
                let mut used = vec![key, timer];
                if let Some((cancel, _)) = self
                    .take_control(id, keys::CANCEL)
                    .await
                    .map_err(Halt::Store)?
                {
                    used.push(cancel);
                }
                return self.end(id, record, Status::Terminated, reason, used).await;
            }
            if let Some((key, _)) = self
                .take_control(id, keys::CANCEL)
                .await
                .map_err(Halt::Store)?
            {
                self.clear_control(id);
                let why = "cancelled while waiting to run again after a failed run".to_owned();
                return self
                    .end(id, record, Status::Cancelled, why, vec![key, timer])
                    .await;
            }
            self.clear_control(id);
        }
        if clock_ms(&*self.clock) < record.retry_at_ms {
            return Err(Halt::Waiting);
        }
        Ok(())
    }
}

impl Engine {
    /// A failed run's input (an envelope written by code of layout
    /// `written_by`) as `entry`'s code reads it: as it is when the layouts
    /// agree, else read by the stored layout and rebuilt by name; why not,
    /// naming what does not fit.
    pub(super) fn input_for(
        &self,
        input: &[u8],
        written_by: u64,
        entry: &super::WorkflowEntry,
    ) -> Result<Vec<u8>, String> {
        if written_by == entry.layout.hash {
            return Ok(input.to_vec());
        }
        let layout = self
            .stored_layout(written_by)
            .ok()
            .flatten()
            .ok_or_else(|| {
                format!(
                    "[DURABLE-LAYOUT] the input of the next run was written by code of layout {written_by:016x}, which the store does not hold: it is not read by position"
                )
            })?;
        let value = crate::layout::value::read(input, &layout.input, &layout.types)
            .map_err(|e| format!("[DURABLE-LAYOUT] the input of the next run does not read by its own layout: {e}"))?;
        (entry.input_from_json)(value.to_json()).map_err(|e| {
            format!(
                "[DURABLE-LAYOUT] the input of the next run does not fit version {}'s input by name: {e}",
                entry.version
            )
        })
    }
}
