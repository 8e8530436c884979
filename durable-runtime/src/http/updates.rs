//! The updates' routes: send an update as JSON and wait for its reply
//! ([`Runtime::update_json`](crate::Runtime::update_json)), or re-attach
//! to one sent before ([`Runtime::update_reply_json`](crate::Runtime::update_reply_json)).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, App, MAX_RESULT_WAIT_S, json_body};
use crate::error::{SignalError, UpdateError};

/// Seconds an update call waits for the reply unless told otherwise.
const DEFAULT_WAIT_S: u64 = 10;

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        let code = match e {
            UpdateError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            UpdateError::Unanswered { .. } => StatusCode::CONFLICT,
            UpdateError::Unknown { .. } => StatusCode::NOT_FOUND,
            UpdateError::BadId { .. } => StatusCode::BAD_REQUEST,
            UpdateError::Send(e) => return e.into(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    /// The caller's update id (a retry with the same id is not accepted
    /// twice); drawn when absent.
    update_id: Option<String>,
    #[serde(default)]
    request: serde_json::Value,
}

#[derive(Deserialize)]
pub(super) struct WaitQuery {
    /// Seconds to wait for the reply.
    wait: Option<u64>,
}

impl WaitQuery {
    fn wait(&self) -> Duration {
        Duration::from_secs(self.wait.unwrap_or(DEFAULT_WAIT_S).min(MAX_RESULT_WAIT_S))
    }
}

/// 200 with the reply, or 202 while it has not come.
fn answer(update_id: &str, reply: Option<serde_json::Value>) -> Response {
    match reply {
        Some(reply) => {
            Json(serde_json::json!({ "update_id": update_id, "reply": reply })).into_response()
        }
        None => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "update_id": update_id })),
        )
            .into_response(),
    }
}

/// Sends update `name`: 200 with the reply within `wait`, 202 with the
/// update id when accepted and not replied to yet, 422 when its validator
/// rejects it, 503 with `Retry-After` when it is undeclared and not
/// awaited yet (its JSON's type is unknown until then).
pub(super) async fn send(
    State(app): State<Arc<App>>,
    Path((id, name)): Path<(String, String)>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let body: UpdateBody = json_body(&body)?;
    let sent = app
        .runtime
        .update_json(
            &id,
            &name,
            body.update_id.as_deref(),
            &body.request,
            query.wait(),
        )
        .await;
    match sent {
        Ok((update_id, reply)) => Ok(answer(&update_id, reply)),
        Err(UpdateError::Send(e @ SignalError::NotWaiting { .. })) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(serde_json::json!({ "error": format!("the update is not awaited yet, retry: {e}") })),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// The reply to an update sent before: 200 with it, 202 while it has not
/// come within `wait`.
pub(super) async fn reply(
    State(app): State<Arc<App>>,
    Path((id, update_id)): Path<(String, String)>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let reply = app
        .runtime
        .update_reply_json(&id, &update_id, query.wait())
        .await?;
    Ok(answer(&update_id, reply))
}
