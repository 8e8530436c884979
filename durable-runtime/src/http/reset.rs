//! Resetting an instance ([`Runtime::reset`](crate::Runtime::reset)):
//! `GET /api/instances/{id}/reset-points` lists the steps it keeps, and
//! `POST /api/instances/{id}/reset` with `{"step": N}` or `{"event": N}`
//! (and an optional `"reason"`) starts the new run.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, App, json_body};
use crate::error::ResetError;
use crate::reset::ResetTo;

impl From<ResetError> for ApiError {
    fn from(e: ResetError) -> Self {
        let code = match e {
            ResetError::Unknown { .. } => StatusCode::NOT_FOUND,
            ResetError::Active { .. } | ResetError::Conflict { .. } => StatusCode::CONFLICT,
            ResetError::PointGone { .. }
            | ResetError::Event { .. }
            | ResetError::LayoutChanged { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    step: Option<u64>,
    event: Option<u64>,
    reason: Option<String>,
}

pub(super) async fn points(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.reset_points(&id)?).into_response())
}

pub(super) async fn reset(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ResetBody = json_body(&body)?;
    let to = match (body.step, body.event) {
        (Some(step), None) => ResetTo::Step(step),
        (None, Some(event)) => ResetTo::Event(event),
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give the step to reset to (`\"step\": N`) or an event of its history (`\"event\": N`), one of them".into(),
            ));
        }
    };
    let reason = body
        .reason
        .unwrap_or_else(|| "reset through the HTTP API".into());
    let reset = app.runtime.reset(&id, to, &reason).await?;
    Ok(Json(reset).into_response())
}
