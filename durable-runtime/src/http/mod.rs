//! The HTTP JSON API, web UI, Prometheus metrics and health probes (cargo
//! feature `http`), for tools that need a live store (an embedded store's
//! directory is open in one process only). [`router`] serves them all;
//! [`api`], [`ui`], [`metrics`] and [`probes`] mount one by one, each an
//! axum 0.8 `Router` to nest or merge into your own app (see
//! `examples/axum_service.rs`).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = durable_runtime::Runtime::builder().open("orders-db").await?;
//! // in your service, beside its own work:
//! durable_runtime::http::serve(runtime, "127.0.0.1:7233", Some("secret-token".into())).await?;
//! # Ok(())
//! # }
//! ```
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the web UI: instance list, counts, filters |
//! | `GET /ui/instance?id=ID` | the web UI: one instance, its state, history timeline and buttons |
//! | `GET /ui/schedules` | the web UI: schedules, next runs, recent events, pause/unpause/run-now buttons |
//! | `GET /api/instances?status=&workflow=&prefix=&attr=name=value&started_from=&started_to=&closed_from=&closed_to=&order=newest\|id&after=&after_started=&limit=` | list ([`Description`](crate::Description)s, newest start first unless `order=id`; times in ms since the epoch; `limit` 100 by default, at most [`MAX_LIST_LIMIT`]) |
//! | `GET /api/counts?` (the list's filters) | how many the filters match in each phase, whatever the status, and whether that is `exact` (at most [`MAX_COUNTED`] read) |
//! | `POST /api/instances` `{"id", "workflow", "input": <JSON>, "id_policy": "reject"}` | start by name on the newest version ([`Runtime::start_by_name`]); `id_policy` is `reject` (409 when the id is taken; the default), `use_existing` or `new_run_if_ended` ([`IdPolicy`](crate::IdPolicy)); 201 with the [`Description`](crate::Description) |
//! | `GET /api/instances/{id}` | describe (a finished instance's `output` as JSON) |
//! | `GET /api/instances/{id}/result?wait=SECONDS` | the instance once it has ended, waiting up to `wait` (at most [`MAX_RESULT_WAIT_S`]; default 0) for it: 200 with its [`Description`](crate::Description) (`output`, `error`), or 202 with it still running ([`Runtime::result_json`]) |
//! | `GET /api/instances/{id}/history` | history ([`HistoryEvent`](crate::history::HistoryEvent)s) |
//! | `GET /api/instances/{id}/state` | `{"id": .., "state": <state enum as JSON>}` |
//! | `POST /api/instances/{id}/signal` `{"name": "..", "payload": <JSON>}` | signal ([`Runtime::signal_json`]) |
//! | `POST /api/instances/{id}/updates/{name}?wait=SECONDS` `{"update_id": "..", "request": <JSON>}` | send an [update](crate::update) and wait up to `wait` (default 10, at most [`MAX_RESULT_WAIT_S`]) for its reply ([`Runtime::update_json`]): 200 `{"update_id", "reply"}`; 202 `{"update_id"}` accepted, no reply yet; 422 its validator rejected it (nothing written); 409 the instance ended; 503 with `Retry-After` while an update not declared with a validator is not awaited yet. `update_id` is optional: a retry with the same one is not accepted twice |
//! | `GET /api/instances/{id}/updates/{update_id}?wait=SECONDS` | the reply to an update sent before, as above (404 no such update, 409 the instance ended without replying) ([`Runtime::update_reply_json`]) |
//! | `POST /api/promises/{token}` (the value as JSON) | complete a [promise](crate::promise) exactly once ([`Runtime::complete_json`]): 202; 409 completed already; 503 with `Retry-After` while it is not awaited yet |
//! | `POST /api/instances/{id}/cancel` | cancel |
//! | `POST /api/instances/{id}/terminate` `{"reason": ".."}` | terminate |
//! | `GET /api/instances/{id}/reset-points` | the steps it keeps a state for, oldest first ([`ResetPoint`](crate::reset::ResetPoint)s) |
//! | `POST /api/instances/{id}/reset` `{"step": N}` or `{"event": N}`, `"reason": ".."` | reset an ended or parked instance ([`Runtime::reset`]): 200 [`Reset`](crate::reset::Reset) `{"run", "step", "from_step"}`; 409 it still runs; 422 no state kept for that step, an event of no step, or a kept state this code cannot read; nothing written then |
//! | `POST /api/batches` `{"filter": {"workflow": "..", "phase": "failed", ..}, "action": "cancel" \| {"terminate": {"reason"}} \| {"signal": {"name", "payload"}} \| {"reset": {"to": "latest" \| "earliest" \| {"to": {"step": N}}, "reason"}}, "per_second": N, "dry_run": false}` | start a [batch operation](crate::batch) ([`Runtime::batch`]): 202 its [`BatchOperation`](crate::batch::BatchOperation) (id, `matched`); with `"dry_run": true`, 200 `{"count", "ids"}` it would visit, nothing changed ([`Runtime::batch_preview`]) |
//! | `GET /api/batches`, `GET /api/batches/{id}` | batch operations and their progress (`visited`, `done`, `skipped`, `failed`, `errors`, `state`) |
//! | `GET /api/openapi.json` | this API's OpenAPI 3.1 description (no token: it holds no data), for generating clients in other languages; checked in as `durable-runtime/src/http/openapi.json` and tested against the router's routes |
//! | `POST /api/batches/{id}/stop` | stop one before its next instance ([`Runtime::stop_batch`]) |
//! | `GET /api/instances/{id}/export` | snapshot file bytes ([`Runtime::export`]) |
//! | `POST /api/import?replace=false` (snapshot file as body) | import ([`Runtime::import`]) |
//! | `GET /api/schedules` | list ([`ScheduleDescription`](crate::schedule::ScheduleDescription)s) |
//! | `POST /api/schedules` `{"id", "workflow", "input": <JSON>, "schedule": {..}}` | create ([`Schedules::create_json`](crate::Schedules::create_json); `schedule` as [`Schedule`](crate::Schedule)'s JSON) |
//! | `GET /api/schedules/{id}` | describe |
//! | `POST /api/schedules/{id}/update` `{"schedule": {..}}` | new timing and policies |
//! | `POST /api/schedules/{id}/pause` / `unpause` `{"note": ".."}` | pause, unpause |
//! | `POST /api/schedules/{id}/trigger` | a run now |
//! | `POST /api/schedules/{id}/backfill` `{"from_ms", "to_ms", "overlap"}` | backfill |
//! | `DELETE /api/schedules/{id}` | delete |
//! | `GET /api/stats` | counts by [`Phase`](crate::Phase), every phase |
//! | `GET /api/workers` | the workers sharing a PostgreSQL store ([`WorkerInfo`](crate::WorkerInfo)) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /healthz` | liveness, no token: `{"status": "ok"}` |
//! | `GET /readyz` | readiness, no token: 200 while the runtime is open and its store answers a read, else 503 ([`Runtime::ready`]) |
//!
//! `status` takes a [`Phase`](crate::Phase) name: `running`, `sleeping`,
//! `waiting_for_signal`, `completed`, `failed`, `cancelled`, `terminated`,
//! `parked`. Errors are JSON `{"error": ".."}` with a fitting code (400 bad
//! input, 401 token, 403 a read-only token asking to change something, 404 unknown id, 409 the instance cannot take it, 415 a
//! POST without a JSON content type, refused so that other web sites cannot
//! steer instances through a browser on this machine).
//!
//! With a token, every `/api` route and `/metrics` want
//! `Authorization: Bearer <token>`. An [`Access`] can add a second,
//! read-only token for dashboards and metrics scrapers: it may call the
//! `GET` routes only (403 for anything that changes an instance or a
//! schedule). The UI's pages hold no data and load without a token; open
//! them once as `http://127.0.0.1:7233/#token=<token>` (the page keeps the
//! token in the tab's `sessionStorage` and removes it from the address bar)
//! or type it in when the page asks. Bind to 127.0.0.1 unless a proxy in
//! front of it authenticates users.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = durable_runtime::Runtime::builder().open("orders-db").await?;
//! use durable_runtime::http::Access;
//! let access = Access::token("admin-secret").with_read_token("dashboard-secret");
//! durable_runtime::http::serve(runtime, "0.0.0.0:7233", access).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::snapshot::{Snapshot, SnapshotError};
use crate::{ResultError, Runtime, SignalError, StoreError};

mod access;
mod batch;
mod lists;
mod openapi;
mod reset;
mod schedules;
mod ui;
mod updates;

pub use access::Access;
use access::{Guard, security_headers};
pub use lists::MAX_COUNTED;
use tower_http::validate_request::ValidateRequestHeaderLayer;

/// The largest snapshot `POST /api/import` accepts.
const MAX_SNAPSHOT_BYTES: usize = 256 * 1024 * 1024;

/// The most instances one `GET /api/instances` returns (`limit`; page on
/// with `after`).
pub const MAX_LIST_LIMIT: usize = 1_000;

/// Serves [`router`] on `addr` until the task is dropped.
///
/// `access` says which bearer tokens it wants ([`Access`]; `Some(token)`
/// is one admin token). Without a token it serves only on a loopback
/// address, and there it
/// answers only requests whose `Host` is a loopback name or address: a web
/// page elsewhere cannot reach it by pointing a DNS name at 127.0.0.1 (DNS
/// rebinding); [`Access::allow_hosts`] names the hosts a server behind a
/// DNS name answers, on any address. Every response forbids framing
/// (`X-Frame-Options: DENY`, a `Content-Security-Policy` with
/// `frame-ancestors 'none'`).
///
/// # Errors
/// The bind's error, or [`PermissionDenied`](std::io::ErrorKind::PermissionDenied)
/// for a non-loopback address without a token: anyone who could reach it
/// could start, terminate and import instances.
pub async fn serve(
    runtime: impl Into<Runtime>,
    addr: impl tokio::net::ToSocketAddrs,
    access: impl Into<Access>,
) -> std::io::Result<()> {
    bind(runtime, addr, access).await?.run().await
}

/// Binds `addr` for [`serve`] and returns the server ready to run: a bind
/// error (the port taken) or a refused exposure reaches the caller before
/// anything is spawned.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let runtime = durable_runtime::Runtime::builder().open("orders-db").await?;
/// let server = durable_runtime::http::bind(runtime.clone(), "127.0.0.1:7233", Some("t0ken".into())).await?;
/// println!("the UI is at http://{}/", server.local_addr());
/// tokio::spawn(server.run());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`serve`]'s, at once.
pub async fn bind(
    runtime: impl Into<Runtime>,
    addr: impl tokio::net::ToSocketAddrs,
    access: impl Into<Access>,
) -> std::io::Result<Server> {
    let access = access.into();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    if !access.guarded() && !local.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "[DURABLE-HTTP] refusing to serve on {local} without a token: anyone who can reach it could start, terminate and import instances; pass a token, or bind 127.0.0.1"
            ),
        ));
    }
    let hosts = access.host_rule(local);
    let app = router(runtime, access).layer(ValidateRequestHeaderLayer::custom(hosts));
    Ok(Server {
        listener,
        app,
        local,
    })
}

/// A bound server ([`bind`]): [`Server::run`] serves until the task is
/// dropped.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    app: axum::Router,
    local: std::net::SocketAddr,
}

impl Server {
    /// The address it is bound to (the port the system chose for port 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local
    }

    /// Serves requests until the task is dropped.
    ///
    /// # Errors
    /// An I/O error of the listener.
    pub async fn run(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.app).await
    }

    /// Serves requests until `shutdown` completes, then stops taking
    /// connections and returns once the requests in flight are answered
    /// (a graceful shutdown; call [`Runtime::shutdown_timeout`] after it).
    ///
    /// # Errors
    /// An I/O error of the listener.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

struct App {
    runtime: Runtime,
    access: Access,
}

impl App {
    /// Runs `read` — one of the runtime's synchronous reads: a list, a
    /// count, a description, a history, a state, an export — on tokio's
    /// blocking pool, so a read of many records (a page of a thousand, a
    /// count of ten thousand) never holds a worker thread the runtime's
    /// instances run on.
    async fn read<T, E>(
        &self,
        read: impl FnOnce(&Runtime) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Send + 'static,
        ApiError: From<E>,
    {
        let runtime = self.runtime.clone();
        match tokio::task::spawn_blocking(move || read(&runtime)).await {
            Ok(answer) => Ok(answer?),
            Err(e) => Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the read did not finish: {e}"),
            )),
        }
    }
}

/// Everything this module serves, over `runtime`: [`api`], [`ui`],
/// [`metrics`] and [`probes`] merged. `access` says which bearer tokens
/// every route that reads or changes data wants ([`Access`]; `Some(token)`
/// is one admin token, `None` none).
///
/// It claims `/`, `/ui/*`, `/api/*`, `/metrics`, `/healthz` and `/readyz`:
/// nest it under a prefix of your app (`app.nest("/durable", router(..))`;
/// the pages work under any prefix), or merge only the parts you want.
pub fn router(runtime: impl Into<Runtime>, access: impl Into<Access>) -> axum::Router {
    let app = app(runtime, access);
    api_routes(&app)
        .merge(metrics_routes(&app))
        .merge(probe_routes(&app))
        .merge(ui())
}

/// The JSON API alone: every `/api/*` route of the table above (the
/// OpenAPI description `/api/openapi.json` without a token).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let runtime = durable_runtime::Runtime::builder().open("orders-db").await?;
/// use durable_runtime::http;
/// // your app keeps its own `/` and `/metrics`; the API and the pages go under /durable
/// let durable = http::api(runtime.clone(), Some("t0ken".into())).merge(http::ui());
/// let app = axum::Router::new()
///     .route("/metrics", axum::routing::get(|| async { "my_app_up 1\n" }))
///     .nest("/durable", durable);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await?;
/// # Ok(())
/// # }
/// ```
pub fn api(runtime: impl Into<Runtime>, access: impl Into<Access>) -> axum::Router {
    api_routes(&app(runtime, access))
}

/// The web UI's pages alone (`/`, `/ui/*`): plain HTML, JS and CSS that
/// hold no data and load without a token. They call the [`api`] at the
/// same prefix they are served under (`<prefix>/api/...`).
pub fn ui() -> axum::Router {
    security_headers(ui::routes())
}

/// `GET /metrics` alone: Prometheus text, behind `access` like the API.
pub fn metrics(runtime: impl Into<Runtime>, access: impl Into<Access>) -> axum::Router {
    metrics_routes(&app(runtime, access))
}

/// `GET /healthz` (liveness) and `GET /readyz` (readiness: the runtime is
/// open and its store answers a read) alone, without a token, as
/// orchestrators call them.
pub fn probes(runtime: impl Into<Runtime>) -> axum::Router {
    probe_routes(&app(runtime, None))
}

fn app(runtime: impl Into<Runtime>, access: impl Into<Access>) -> Arc<App> {
    Arc::new(App {
        runtime: runtime.into(),
        access: access.into(),
    })
}

fn api_routes(app: &Arc<App>) -> axum::Router {
    let guarded = axum::Router::new()
        .route("/api/workers", get(workers))
        .route("/api/workflows", get(workflows))
        .route("/api/instances", get(lists::list).post(start))
        .route("/api/instances/{id}", get(describe))
        .route("/api/instances/{id}/history", get(history))
        .route("/api/instances/{id}/result", get(result))
        .route("/api/instances/{id}/state", get(state))
        .route("/api/instances/{id}/signal", post(signal))
        // POST: the update's name; GET: an update id
        .route(
            "/api/instances/{id}/updates/{key}",
            get(updates::reply).post(updates::send),
        )
        .route("/api/promises/{token}", post(complete))
        .route("/api/instances/{id}/cancel", post(cancel))
        .route("/api/instances/{id}/terminate", post(terminate))
        .route("/api/instances/{id}/reset", post(reset::reset))
        .route("/api/instances/{id}/reset-points", get(reset::points))
        .route("/api/instances/{id}/export", get(export))
        .route(
            "/api/import",
            post(import).layer(DefaultBodyLimit::max(MAX_SNAPSHOT_BYTES)),
        )
        .route(
            "/api/schedules",
            get(schedules::list).post(schedules::create),
        )
        .route(
            "/api/schedules/{id}",
            get(schedules::describe).delete(schedules::delete),
        )
        .route("/api/schedules/{id}/update", post(schedules::update))
        .route("/api/schedules/{id}/pause", post(schedules::pause))
        .route("/api/schedules/{id}/unpause", post(schedules::unpause))
        .route("/api/schedules/{id}/trigger", post(schedules::trigger))
        .route("/api/schedules/{id}/backfill", post(schedules::backfill))
        .route("/api/batches", get(batch::list).post(batch::start))
        .route("/api/batches/{id}", get(batch::describe))
        .route("/api/batches/{id}/stop", post(batch::stop))
        .route("/api/stats", get(stats))
        .route("/api/counts", get(lists::counts))
        .layer(ValidateRequestHeaderLayer::custom(Guard(
            app.access.clone(),
        )))
        .with_state(app.clone());
    // the description holds no data: no token, so a client generator can fetch it
    let open = axum::Router::new().route("/api/openapi.json", get(openapi::document));
    security_headers(guarded.merge(open))
}

fn metrics_routes(app: &Arc<App>) -> axum::Router {
    security_headers(
        axum::Router::new()
            .route("/metrics", get(metrics_text))
            .layer(ValidateRequestHeaderLayer::custom(Guard(
                app.access.clone(),
            )))
            .with_state(app.clone()),
    )
}

fn probe_routes(app: &Arc<App>) -> axum::Router {
    security_headers(
        axum::Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(app.clone()),
    )
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness: the runtime is open and its store answers a read.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.runtime.ready() {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
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
            ResultError::Finished { .. } | ResultError::NotRegistered { .. } => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<crate::StartError> for ApiError {
    fn from(e: crate::StartError) -> Self {
        use crate::StartError;
        let code = match e {
            StartError::AlreadyExists { .. } | StartError::WrongWorkflow { .. } => {
                StatusCode::CONFLICT
            }
            StartError::InvalidId { .. }
            | StartError::IdTooLong { .. }
            | StartError::BadInput { .. } => StatusCode::BAD_REQUEST,
            StartError::UnknownWorkflow { .. } | StartError::NotRegistered { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            StartError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        let code = match e {
            SignalError::NotFound { .. } => StatusCode::NOT_FOUND,
            SignalError::Finished { .. } | SignalError::NotWaiting { .. } => StatusCode::CONFLICT,
            SignalError::Payload { .. } | SignalError::BadToken { .. } => StatusCode::BAD_REQUEST,
            SignalError::AlreadyCompleted { .. } => StatusCode::CONFLICT,
            SignalError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SignalError::Start(e) => return e.into(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        let code = match e {
            SnapshotError::NotFound { .. } => StatusCode::NOT_FOUND,
            SnapshotError::AlreadyExists { .. } => StatusCode::CONFLICT,
            SnapshotError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SnapshotError::UnknownWorkflow { .. } | SnapshotError::ShapeMismatch { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            SnapshotError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.body_text())
    }
}

/// Parses a JSON request body, answering 400 with the parser's words.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    id: String,
    workflow: String,
    #[serde(default)]
    input: serde_json::Value,
    /// What to do when the id is taken ([`IdPolicy`](crate::IdPolicy));
    /// `reject` (409) by default.
    #[serde(default)]
    id_policy: Option<crate::IdPolicy>,
    /// `true`: `id_policy: "use_existing"` (the older spelling).
    #[serde(default)]
    use_existing: bool,
}

async fn start(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let body: StartBody = json_body(&body)?;
    let policy = match (body.id_policy, body.use_existing) {
        (Some(policy), false) => policy,
        (None, true) | (Some(crate::IdPolicy::UseExisting), true) => crate::IdPolicy::UseExisting,
        (None, false) => crate::IdPolicy::Reject,
        (Some(policy), true) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "`use_existing: true` contradicts `id_policy: {policy:?}`: give one of them"
                ),
            ));
        }
    };
    let started = app
        .runtime
        .start_by_name(body.id, &body.workflow, body.input, policy)
        .await?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

async fn describe(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.read(move |rt| rt.describe(&id)).await?).into_response())
}

/// The longest `GET /api/instances/{id}/result?wait=` waits (seconds).
pub const MAX_RESULT_WAIT_S: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultQuery {
    /// Seconds to wait for the instance to end.
    wait: Option<u64>,
}

async fn result(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<ResultQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = std::time::Duration::from_secs(query.wait.unwrap_or(0).min(MAX_RESULT_WAIT_S));
    Ok(match app.runtime.result_json(&id, wait).await? {
        Some(ended) => Json(ended).into_response(),
        None => (StatusCode::ACCEPTED, Json(app.runtime.describe(&id)?)).into_response(),
    })
}

async fn history(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(app.read(move |rt| rt.history(&id)).await?).into_response())
}

async fn state(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let state = app
        .read({
            let id = id.clone();
            move |rt| rt.state_json(&id)
        })
        .await?;
    Ok(Json(serde_json::json!({ "id": id, "state": state })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    name: String,
    #[serde(default)]
    payload: serde_json::Value,
}

async fn signal(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: SignalBody = json_body(&body)?;
    if body.name.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the signal needs a non-empty `name`".into(),
        ));
    }
    app.runtime
        .signal_json(&id, &body.name, &body.payload)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "signalled": id, "name": body.name })),
    )
        .into_response())
}

/// Completes a promise with the JSON body as its value (a webhook's
/// target): 202; 409 when it was completed already; 503 with `Retry-After`
/// when its instance does not await it yet (the JSON's type is known only
/// then; webhook senders retry on 5xx); 400 for a value of another shape.
async fn complete(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value: serde_json::Value = json_body(&body)?;
    match app.runtime.complete_json(&token, &value).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "completed": token })),
        )
            .into_response()),
        Err(e @ SignalError::NotWaiting { .. }) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(serde_json::json!({ "error": format!("the promise is not awaited yet, retry: {e}") })),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
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
#[serde(deny_unknown_fields)]
struct TerminateBody {
    reason: Option<String>,
}

async fn terminate(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        json_body::<TerminateBody>(&body)?.reason
    };
    let reason = reason.unwrap_or_else(|| "terminated through the HTTP API".into());
    app.runtime.terminate(&id, &reason).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "terminate_requested": id })),
    )
        .into_response())
}

async fn export(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let bytes = app.read(move |rt| rt.export(&id)).await?.to_bytes()?;
    Ok(([("content-type", "application/octet-stream")], bytes).into_response())
}

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    replace: bool,
}

async fn import(
    State(app): State<Arc<App>>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let snapshot = Snapshot::from_bytes(&body)?;
    app.runtime.import(&snapshot, q.replace).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "imported": snapshot.id, "workflow": snapshot.workflow })),
    )
        .into_response())
}

async fn stats(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let counts: serde_json::Map<String, serde_json::Value> = app
        .runtime
        .counts_by_phase()?
        .into_iter()
        .map(|(p, n)| (p.as_str().to_owned(), n.into()))
        .collect();
    Ok(Json(counts).into_response())
}

/// The registered workflows, by name and version: what the UI offers to start.
async fn workflows(State(app): State<Arc<App>>) -> Response {
    let mut registered = app.runtime.manifest().workflows;
    registered.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    let list: Vec<serde_json::Value> = registered
        .into_iter()
        .map(|w| serde_json::json!({ "name": w.name, "version": w.version }))
        .collect();
    Json(list).into_response()
}

async fn workers(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    Ok(Json(app.runtime.workers()?).into_response())
}

async fn metrics_text(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let text = app.runtime.metrics().render()?;
    Ok((
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
