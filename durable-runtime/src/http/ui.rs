//! The web UI: three static pages, a script and a style sheet, compiled into
//! the binary with `include_str!` (no build step, nothing fetched from
//! elsewhere). The pages hold no data; their script reads the JSON API with
//! the bearer token the user gave (see the module docs of [`super`]).

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("ui/index.html");
const INSTANCE: &str = include_str!("ui/instance.html");
const SCHEDULES: &str = include_str!("ui/schedules.html");
const SCRIPT: &str = include_str!("ui/durable.js");
const STYLE: &str = include_str!("ui/durable.css");

/// One embedded file with its content type; never cached, so a new build's
/// UI shows at the next load.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// The UI's routes (no state, no token: see [`super::router`]).
pub(super) fn routes() -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/instance",
            get(|| async { asset("text/html; charset=utf-8", INSTANCE) }),
        )
        .route(
            "/ui/schedules",
            get(|| async { asset("text/html; charset=utf-8", SCHEDULES) }),
        )
        .route(
            "/ui/durable.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/durable.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}
