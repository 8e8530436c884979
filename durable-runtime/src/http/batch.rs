//! Batch operations over HTTP ([`crate::batch`]): `POST /api/batches`
//! starts one (or, with `"dry_run": true`, lists the ids it would visit),
//! `GET /api/batches` and `GET /api/batches/{id}` read their progress, and
//! `POST /api/batches/{id}/stop` stops one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, App, json_body};
use crate::ListFilter;
use crate::batch::{BatchAction, BatchError};

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let code = match e {
            BatchError::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    filter: ListFilter,
    action: BatchAction,
    per_second: Option<u32>,
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn start(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body: BatchBody = json_body(&body)?;
    if body.dry_run {
        let ids = app.runtime.batch_preview(&body.filter)?;
        return Ok(Json(serde_json::json!({
            "action": body.action.describe(),
            "count": ids.len(),
            "ids": ids,
        }))
        .into_response());
    }
    let op = app
        .runtime
        .batch(body.filter, body.action, body.per_second)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(op)).into_response())
}

pub(super) async fn list(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.batches()?).into_response())
}

pub(super) async fn describe(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.batch_status(&id)?).into_response())
}

pub(super) async fn stop(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.stop_batch(&id).await?).into_response())
}
