//! The schedules' routes: the same operations as [`Schedules`](crate::Schedules).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, App, json_body};
use crate::schedule::ScheduleError;
use crate::{Overlap, Schedule};

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        let code = match e {
            ScheduleError::NotFound { .. } => StatusCode::NOT_FOUND,
            ScheduleError::AlreadyExists { .. } | ScheduleError::NotRegistered { .. } => {
                StatusCode::CONFLICT
            }
            ScheduleError::Cron { .. }
            | ScheduleError::TimeZone(_)
            | ScheduleError::Invalid(_)
            | ScheduleError::Input { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

pub(super) async fn list(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.schedules().list()?).into_response())
}

pub(super) async fn describe(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.schedules().describe(&id)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    workflow: String,
    #[serde(default)]
    input: serde_json::Value,
    schedule: Schedule,
}

pub(super) async fn create(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body: CreateBody = json_body(&body)?;
    let created = app
        .runtime
        .schedules()
        .create_json(&body.id, body.schedule, &body.workflow, body.input)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    schedule: Schedule,
}

pub(super) async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: UpdateBody = json_body(&body)?;
    Ok(Json(app.runtime.schedules().update(&id, body.schedule).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

/// An empty body counts as `{}`.
fn note(body: &[u8]) -> Result<String, ApiError> {
    if body.is_empty() {
        return Ok(String::new());
    }
    Ok(json_body::<NoteBody>(body)?.note)
}

pub(super) async fn pause(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let note = note(&body)?;
    Ok(Json(app.runtime.schedules().pause(&id, &note).await?).into_response())
}

pub(super) async fn unpause(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let note = note(&body)?;
    Ok(Json(app.runtime.schedules().unpause(&id, &note).await?).into_response())
}

pub(super) async fn trigger(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.schedules().trigger(&id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    from_ms: u64,
    to_ms: u64,
    #[serde(default)]
    overlap: Overlap,
}

pub(super) async fn backfill(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: BackfillBody = json_body(&body)?;
    let at = |ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let done = app
        .runtime
        .schedules()
        .backfill(&id, at(body.from_ms), at(body.to_ms), body.overlap)
        .await?;
    Ok(Json(done).into_response())
}

pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.runtime.schedules().delete(&id).await?;
    Ok(Json(serde_json::json!({ "deleted": id })).into_response())
}
