//! The opt-in HTTP JSON API and Prometheus metrics, for tools that need a
//! live store (an embedded sled store is open in one process only).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = std::sync::Arc::new(durable_runtime::Runtime::builder().open("orders-db").await?);
//! // in your service, beside its own work:
//! durable_runtime::http::serve(runtime, "127.0.0.1:7233", Some("secret-token".into())).await?;
//! # Ok(())
//! # }
//! ```
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/instances?status=&workflow=&after=&limit=` | list |
//! | `GET /api/instances/{id}` | describe |
//! | `GET /api/instances/{id}/history` | history |
//! | `GET /api/stats` | counts by status |
//! | `POST /api/instances/{id}/cancel` | cancel |
//! | `POST /api/instances/{id}/terminate` `{"reason": ".."}` | terminate |
//! | `GET /metrics` | Prometheus text |
//!
//! With a token, every route wants `Authorization: Bearer <token>`. Bind it
//! to 127.0.0.1 unless a proxy in front of it authenticates users.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::{ListFilter, ResultError, Runtime, Status, StoreError};

pub use axum;

/// Serves [`router`] on `addr` until the task is dropped.
pub async fn serve(
    runtime: Arc<Runtime>,
    addr: impl tokio::net::ToSocketAddrs,
    token: Option<String>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(runtime, token)).await
}

struct App {
    runtime: Arc<Runtime>,
    token: Option<String>,
}

/// The API's routes over `runtime`; `token`, if any, is required as a bearer token.
pub fn router(runtime: Arc<Runtime>, token: Option<String>) -> axum::Router {
    let app = Arc::new(App { runtime, token });
    axum::Router::new()
        .route("/api/instances", get(list))
        .route("/api/instances/{id}", get(describe))
        .route("/api/instances/{id}/history", get(history))
        .route("/api/instances/{id}/cancel", post(cancel))
        .route("/api/instances/{id}/terminate", post(terminate))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

async fn auth(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": "a bearer token is required"})),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// An error as a JSON body with a fitting status code.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<ResultError> for ApiError {
    fn from(e: ResultError) -> Self {
        let code = match e {
            ResultError::NotFound { .. } => StatusCode::NOT_FOUND,
            ResultError::Finished { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn parse_status(s: &str) -> Result<Status, ApiError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "running" => Status::Running,
        "completed" => Status::Completed,
        "failed" => Status::Failed,
        "parked" => Status::Parked,
        "cancelled" => Status::Cancelled,
        "terminated" => Status::Terminated,
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown status `{other}`"),
            ));
        }
    })
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = ListFilter {
        workflow: q.workflow,
        status: q.status.as_deref().map(parse_status).transpose()?,
        after: q.after,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(app.runtime.list(&filter)?).into_response())
}

async fn describe(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.describe(&id)?).into_response())
}

async fn history(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.history(&id)?).into_response())
}

async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    app.runtime.cancel(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "cancel_requested": id })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct TerminateBody {
    reason: Option<String>,
}

async fn terminate(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Option<Json<TerminateBody>>,
) -> Result<Response, ApiError> {
    let reason = body
        .and_then(|b| b.0.reason)
        .unwrap_or_else(|| "terminated through the HTTP API".into());
    app.runtime.terminate(&id, &reason).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "terminate_requested": id })),
    )
        .into_response())
}

fn status_name(s: Status) -> String {
    format!("{s:?}").to_ascii_lowercase()
}

async fn stats(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let counts: serde_json::Map<String, serde_json::Value> = app
        .runtime
        .counts()?
        .into_iter()
        .map(|(s, n)| (status_name(s), n.into()))
        .collect();
    Ok(Json(counts).into_response())
}

async fn metrics(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let engine = &app.runtime.engine;
    let m = &engine.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "durable_transitions_total",
        "Checkpointed transitions.",
        m.transitions.load(Ordering::Relaxed),
    );
    counter(
        "durable_activity_attempts_total",
        "Activity attempts run.",
        m.attempts.load(Ordering::Relaxed),
    );
    counter(
        "durable_activity_failures_total",
        "Activity attempts that failed.",
        m.attempt_failures.load(Ordering::Relaxed),
    );
    counter(
        "durable_activity_attempt_seconds_total",
        "Time spent in activity attempts.",
        m.attempt_micros.load(Ordering::Relaxed) / 1_000_000,
    );
    if let Some(s) = engine.store.stats() {
        counter(
            "durable_store_commits_total",
            "Batches committed.",
            s.commits,
        );
        counter("durable_store_flushes_total", "Group flushes.", s.flushes);
        counter(
            "durable_store_fsyncs_total",
            "fsync/fdatasync calls.",
            s.fsyncs,
        );
    }
    let _ = writeln!(
        out,
        "# HELP durable_instances Instances by status.\n# TYPE durable_instances gauge"
    );
    for (status, n) in app.runtime.counts()? {
        let _ = writeln!(
            out,
            "durable_instances{{status=\"{}\"}} {n}",
            status_name(status)
        );
    }
    let _ = writeln!(
        out,
        "# HELP durable_running_tasks Instances with a task now.\n# TYPE durable_running_tasks gauge\ndurable_running_tasks {}",
        app.runtime.running_instances()
    );
    Ok(([("content-type", "text/plain; version=0.0.4")], out).into_response())
}
