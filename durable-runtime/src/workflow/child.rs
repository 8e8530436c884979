//! Commands about other workflow runs, built from a [`WorkflowCall`]: a
//! child awaited or started and left running, and continue-as-new.

use super::{Workflow, WorkflowCall};
use crate::codec::CodecError;
use crate::command::{ChildError, Command, Executor, Request};

impl<W: Workflow> Command for WorkflowCall<W> {
    type Output = Result<W::Output, ChildError>;
    fn into_request(self) -> Result<Request, CodecError> {
        self.child_request(false)
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl<W: Workflow> std::future::IntoFuture for WorkflowCall<W> {
    type Output = Result<W::Output, ChildError>;
    type IntoFuture = crate::future::BoxFuture<Self::Output>;
    /// Outside a workflow (in `run_inline`), runs the child's body inline.
    fn into_future(self) -> Self::IntoFuture {
        let inline = W::inline(self.input);
        Box::pin(async move { Ok(inline.await) })
    }
}

impl<W: Workflow> WorkflowCall<W> {
    /// Starts this workflow as a child and goes on without waiting for
    /// it: awaited in a workflow, the child is created (with the id,
    /// timeouts and parent-close policy set on the call; the default
    /// policy cancels it when the parent ends, [`ParentClose::Abandon`](crate::command::ParentClose::Abandon)
    /// lets it run on) and the await evaluates to its id. A restart never
    /// creates it twice: the child's id names it.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use durable_runtime::command::ParentClose;
    ///
    /// #[workflow]
    /// async fn send_receipt(order: String) -> Result<(), WorkflowError> {
    ///     let _ = order;
    ///     Ok(())
    /// }
    ///
    /// #[workflow]
    /// async fn checkout(order: String) -> Result<String, WorkflowError> {
    ///     let receipt = send_receipt(order.clone())
    ///         .with_id(format!("receipt-{order}"))
    ///         .with_parent_close(ParentClose::Abandon)
    ///         .start()
    ///         .await?;
    ///     Ok(format!("{order} done; receipt in {receipt}"))
    /// }
    /// ```
    pub fn start(self) -> StartChild<W> {
        StartChild { call: self }
    }

    /// This call as a child's request: awaited, or only `started`.
    fn child_request(self, started: bool) -> Result<Request, CodecError> {
        let workflow = W::NAME.to_owned();
        let input = crate::codec::encode(&self.input)?;
        let (id, parent_close) = (self.id, self.parent_close);
        let timeout_ms = self.timeout.map(|t| t.as_millis() as u64);
        let run_timeout_ms = self.run_timeout.map(|t| t.as_millis() as u64);
        Ok(if started {
            Request::StartChild {
                workflow,
                input,
                id,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            }
        } else {
            Request::Child {
                workflow,
                input,
                id,
                parent_close,
                timeout_ms,
                run_timeout_ms,
            }
        })
    }
}

/// The command behind [`WorkflowCall::start`](WorkflowCall::start).
pub struct StartChild<W: Workflow> {
    call: WorkflowCall<W>,
}

impl<W: Workflow> std::fmt::Debug for StartChild<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StartChild({})", W::NAME)
    }
}

impl<W: Workflow> Command for StartChild<W> {
    type Output = Result<String, ChildError>;
    fn into_request(self) -> Result<Request, CodecError> {
        self.call.child_request(true)
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl<W: Workflow> std::future::IntoFuture for StartChild<W> {
    type Output = Result<String, ChildError>;
    type IntoFuture = crate::future::BoxFuture<Self::Output>;
    /// Outside a workflow (in `run_inline`), runs the child's body inline
    /// to its end, then gives its id (`inline` when it has none).
    fn into_future(self) -> Self::IntoFuture {
        let id = self.call.id.unwrap_or_else(|| "inline".into());
        let inline = W::inline(self.call.input);
        Box::pin(async move {
            inline.await;
            Ok(id)
        })
    }
}

/// The command behind [`continue_as_new`].
pub struct ContinueAsNew<W: Workflow> {
    call: WorkflowCall<W>,
}

impl<W: Workflow> std::fmt::Debug for ContinueAsNew<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContinueAsNew({})", W::NAME)
    }
}

impl<W: Workflow> Command for ContinueAsNew<W> {
    type Output = W::Output;
    fn into_request(self) -> Result<Request, CodecError> {
        Ok(Request::ContinueAsNew {
            workflow: W::NAME.to_owned(),
            input: crate::codec::encode(&self.call.input)?,
        })
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl<W: Workflow> std::future::IntoFuture for ContinueAsNew<W> {
    type Output = W::Output;
    type IntoFuture = crate::future::BoxFuture<W::Output>;
    /// Outside a workflow (in `run_inline`), runs the next run inline.
    fn into_future(self) -> Self::IntoFuture {
        W::inline(self.call.input)
    }
}

/// Ends this run and starts a fresh one of the same workflow under the same
/// id with a new input, so endless workflows (a subscription, a polling
/// loop) keep a constant-size state: `return continue_as_new(poll(next)).await;`.
pub fn continue_as_new<W: Workflow>(call: WorkflowCall<W>) -> ContinueAsNew<W> {
    ContinueAsNew { call }
}
