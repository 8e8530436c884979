//! [`WorkflowHandle`]: one instance, typed by its workflow.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use super::inspect::{Description, history_of};
use crate::codec::{self, CodecError};
use crate::engine::{Engine, InstanceRecord};
use crate::error::{ResultError, ResumeError};
use crate::phase::Status;
use crate::store::StoreError;
use crate::workflow::{Op, Outcome, Workflow};

/// A handle to one workflow instance.
pub struct WorkflowHandle<W: Workflow> {
    pub(super) id: String,
    // weak: a handle does not keep a shut-down runtime's store open
    pub(super) engine: Weak<Engine>,
    pub(super) _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> std::fmt::Debug for WorkflowHandle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkflowHandle({}, {})", W::NAME, self.id)
    }
}

impl<W: Workflow> Clone for WorkflowHandle<W> {
    fn clone(&self) -> Self {
        WorkflowHandle {
            id: self.id.clone(),
            engine: self.engine.clone(),
            _workflow: PhantomData,
        }
    }
}

impl<W: Workflow> WorkflowHandle<W> {
    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn engine(&self) -> Result<Arc<Engine>, ResultError> {
        self.engine
            .upgrade()
            .ok_or(ResultError::Store(StoreError::Closed))
    }

    /// The stored record, its state whole.
    fn record(&self) -> Result<InstanceRecord, ResultError> {
        self.checked(self.engine()?.load_now(&self.id))
    }

    /// The stored record without its state's stored fields: its status,
    /// position, output and error (see [`Engine::peek`]).
    fn head(&self) -> Result<InstanceRecord, ResultError> {
        self.checked(self.engine()?.peek_now(&self.id))
    }

    /// [`head`](Self::head) for the async calls: the thread is free while
    /// the store answers.
    async fn head_async(&self) -> Result<InstanceRecord, ResultError> {
        let engine = self.engine()?;
        self.checked(engine.peek(&self.id).await)
    }

    /// The record `loaded` read, if it is this handle's workflow's.
    fn checked(
        &self,
        loaded: Result<Option<Result<InstanceRecord, CodecError>>, StoreError>,
    ) -> Result<InstanceRecord, ResultError> {
        let record = loaded?
            .ok_or_else(|| ResultError::NotFound {
                id: self.id.clone(),
            })?
            .map_err(|e| ResultError::Parked {
                id: self.id.clone(),
                reason: ResumeError::Undecodable {
                    instance: self.id.clone(),
                    reason: e.to_string(),
                }
                .to_string(),
            })?;
        if record.workflow != W::NAME {
            return Err(ResultError::WrongWorkflow {
                id: self.id.clone(),
                expected: W::NAME,
                found: record.workflow,
            });
        }
        Ok(record)
    }

    /// The instance's stored status and position.
    pub fn describe(&self) -> Result<Description, ResultError> {
        crate::store::blocking(|| Ok(Description::of(&self.id, self.head()?)))
    }

    /// The instance's history, oldest first.
    pub fn history(&self) -> Result<Vec<crate::history::HistoryEvent>, ResultError> {
        crate::store::blocking(|| {
            self.head()?;
            history_of(&*self.engine()?, &self.id)
        })
    }

    /// Cancels the instance: the workflow sees a cancellation at the await it
    /// is at (an activity's `Err` of kind `cancelled`, or [`Cancelled`](crate::Cancelled)
    /// from a timer or signal), once, and can run cleanup steps before it
    /// returns. Returns once the request is durable.
    pub async fn cancel(&self) -> Result<(), ResultError> {
        let r = self.head_async().await?;
        if r.status.is_terminal() {
            return Err(ResultError::Finished {
                id: self.id.clone(),
                status: r.status,
            });
        }
        self.engine()?
            .request_control(&self.id, crate::store::keys::CANCEL, Vec::new())
            .await?;
        Ok(())
    }

    /// Terminates the instance now: no more steps, no cleanup; a running
    /// activity attempt is aborted. Recorded with `reason`.
    pub async fn terminate(&self, reason: &str) -> Result<(), ResultError> {
        let r = self.head_async().await?;
        if r.status.is_terminal() {
            return Err(ResultError::Finished {
                id: self.id.clone(),
                status: r.status,
            });
        }
        let value = codec::encode(&reason.to_owned())?;
        self.engine()?
            .request_control(&self.id, crate::store::keys::TERMINATE, value)
            .await?;
        Ok(())
    }

    /// Reads the instance's state as JSON and answers a question about it,
    /// without disturbing the instance.
    pub fn query<R>(
        &self,
        question: impl FnOnce(&serde_json::Value) -> R,
    ) -> Result<R, ResultError> {
        crate::store::blocking(|| Ok(question(&self.state_json()?)))
    }

    /// The current state enum as JSON (`null` once finished).
    pub fn state_json(&self) -> Result<serde_json::Value, ResultError> {
        crate::store::blocking(|| {
            let r = self.record()?;
            if r.state.is_empty() {
                return Ok(serde_json::Value::Null);
            }
            match W::drive(Op::Json { state: &r.state }) {
                Ok(Outcome::Json(json)) => Ok(json),
                Ok(_) => Err(ResultError::Failed {
                    id: self.id.clone(),
                    message: "generated code did not render JSON".into(),
                }),
                Err(e) => Err(ResultError::Failed {
                    id: self.id.clone(),
                    message: e.to_string(),
                }),
            }
        })
    }

    /// The output `record` holds, read by name if an older build wrote it
    /// with its output type laid out otherwise.
    fn output(&self, record: &InstanceRecord) -> Result<W::Output, ResultError> {
        let bytes = record.output.as_deref().unwrap_or_default();
        self.engine()?.read_output(
            &self.id,
            record.layout,
            crate::workflow::layout_of::<W>(),
            bytes,
        )
    }

    /// Waits for the instance to finish and returns its output.
    ///
    /// # Errors
    /// [`ResultError::Failed`] if the workflow panicked or could not be
    /// advanced, [`ResultError::Parked`] if it cannot run on this code,
    /// [`ResultError::NotFound`] for an unknown id.
    pub async fn result(&self) -> Result<W::Output, ResultError> {
        loop {
            let engine = self.engine()?;
            let listening = engine.waiters.listen(&self.id);
            let notified = listening.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = self.head_async().await?;
            // stopped here by a store failure: only while the stored record
            // does not show it ended (elsewhere, or before the failure)
            if !record.status.is_terminal()
                && let Some(e) = self.engine()?.book.halted(&self.id)
            {
                return Err(ResultError::Store(e));
            }
            match record.status {
                // a failure the workflow returned (`Err`) comes back typed
                Status::Completed | Status::Cancelled => return self.output(&record),
                Status::Failed if record.output.is_some() => return self.output(&record),
                Status::Terminated => {
                    return Err(ResultError::Terminated {
                        id: self.id.clone(),
                        reason: record.error.unwrap_or_default(),
                    });
                }
                Status::Failed => {
                    return Err(ResultError::Failed {
                        id: self.id.clone(),
                        message: record.error.unwrap_or_default(),
                    });
                }
                Status::Parked => {
                    return Err(ResultError::Parked {
                        id: self.id.clone(),
                        reason: record.error.unwrap_or_default(),
                    });
                }
                // on a shared store the finish is announced by a message;
                // a lost one delays this by at most a second
                Status::Running if self.engine()?.store.shared() => {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), notified).await;
                }
                Status::Running => notified.await,
            }
        }
    }
}
