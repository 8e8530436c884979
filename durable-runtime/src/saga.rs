//! Sagas: record a compensation for each completed step; on failure or
//! cancellation run them in reverse order, durably.

use serde::{Deserialize, Serialize};

use crate::activity::{Activity, ActivityCall, ActivityContext};
use crate::codec::CodecError;
use crate::command::{Command, Executor, Request};

/// The compensations recorded so far. It is an ordinary local of the
/// workflow, so it lives in the state and survives crashes with it.
///
/// ```
/// use durable_runtime::prelude::*;
///
/// #[activity]
/// async fn book_flight(trip: String) -> Result<String, ActivityError> { Ok(format!("F-{trip}")) }
/// #[activity]
/// async fn cancel_flight(booking: String) -> Result<(), ActivityError> { let _ = booking; Ok(()) }
/// #[activity]
/// async fn book_car(trip: String) -> Result<String, ActivityError> {
///     Err(ActivityError::terminal(format!("no car for {trip}")))
/// }
///
/// #[workflow]
/// async fn trip(trip: String) -> Result<String, WorkflowError> {
///     let mut saga = Saga::new();
///     let flight = book_flight(trip.clone()).await?;
///     saga.add(cancel_flight(flight.clone()));
///     match book_car(trip).await {
///         Ok(car) => Ok(format!("{flight} {car}")),
///         Err(e) => {
///             saga.compensate().await;
///             Err(e.into())
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saga {
    steps: Vec<Request>,
    /// The first compensation that could not be recorded (its input did not
    /// encode), reported by [`Saga::compensate`].
    broken: Option<String>,
}

impl Saga {
    /// No compensations yet.
    pub fn new() -> Saga {
        Saga::default()
    }

    /// Records `compensation` to run if the saga is compensated.
    pub fn add<A: Activity>(&mut self, compensation: ActivityCall<A>) {
        match compensation.into_request() {
            Ok(request) => self.steps.push(request),
            Err(e) => {
                self.broken.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// How many compensations are recorded.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the compensations, last first, each to its end (with its own
    /// retry policy). Each finished one is checkpointed: after a crash the
    /// compensation resumes with the next, never re-running a finished one.
    /// The output has, per compensation in the order they were added, `None`
    /// if it succeeded or its error text.
    pub fn compensate(&self) -> Compensate {
        Compensate {
            steps: self.steps.clone(),
            broken: self.broken.clone(),
        }
    }
}

/// The command behind [`Saga::compensate`].
#[derive(Debug)]
pub struct Compensate {
    steps: Vec<Request>,
    broken: Option<String>,
}

impl Command for Compensate {
    type Output = Vec<Option<String>>;
    fn into_request(self) -> Result<Request, CodecError> {
        if let Some(reason) = self.broken {
            return Err(CodecError::Encode {
                type_name: "saga compensation",
                reason,
            });
        }
        Ok(Request::Compensate(self.steps))
    }
    fn executor() -> Executor {
        Executor::Builtin
    }
}

impl std::future::IntoFuture for Compensate {
    type Output = Vec<Option<String>>;
    type IntoFuture = crate::future::BoxFuture<Vec<Option<String>>>;
    /// Outside a workflow (in `run_inline`), runs them once each, inline.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let mut out = vec![None; self.steps.len()];
            for (i, step) in self.steps.iter().enumerate().rev() {
                out[i] = run_once(step).await.err();
            }
            out
        })
    }
}

async fn run_once(step: &Request) -> Result<(), String> {
    let Request::Activity { name, input, .. } = step else {
        return Err("a compensation must be an activity".into());
    };
    let vtable = crate::activity::registered(name)?;
    let ctx = ActivityContext {
        workflow_id: "inline".into(),
        activity: vtable.name,
        attempt: 1,
        idempotency_key: format!("inline/{name}"),
        worker: None,
    };
    let (_, failure) = (vtable.run)(
        input,
        ctx,
        std::sync::Arc::default(),
        crate::Limits::default().result_bytes,
    )
    .map_err(|e| e.to_string())?
    .await
    .map_err(|e| e.to_string())?;
    match failure {
        None => Ok(()),
        Some(f) => Err(f.text()),
    }
}
