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

/// A page, its `<base>` set to the prefix its routes are nested under
/// (the request's path less `suffix`, the page's own route), so that its
/// links, its script and its API calls stay under that prefix.
fn page(html: &'static str, uri: &axum::http::Uri, suffix: &str) -> axum::response::Response {
    let path = uri.path();
    let prefix = if suffix == "/" {
        path
    } else {
        path.strip_suffix(suffix).unwrap_or("")
    }
    .trim_end_matches('/');
    // the prefix is the app's own mount path; escaped all the same
    let escaped: String = prefix
        .chars()
        .map(|c| match c {
            '"' => "%22".to_owned(),
            '<' => "%3C".to_owned(),
            '>' => "%3E".to_owned(),
            '&' => "%26".to_owned(),
            c => c.to_string(),
        })
        .collect();
    // the list page is the prefix itself (a nested router has no
    // `<prefix>/` route), `/` at the root
    let home = if escaped.is_empty() { "/" } else { &escaped };
    let html = html
        .replacen(
            r#"<base href="/">"#,
            &format!(r#"<base href="{escaped}/">"#),
            1,
        )
        .replace("{{home}}", home);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

/// The UI's routes (no state, no token: see [`super::router`]).
pub(super) fn routes() -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|uri: axum::extract::OriginalUri| async move { page(INDEX, &uri, "/") }),
        )
        .route(
            "/ui/instance",
            get(|uri: axum::extract::OriginalUri| async move {
                page(INSTANCE, &uri, "/ui/instance")
            }),
        )
        .route(
            "/ui/schedules",
            get(|uri: axum::extract::OriginalUri| async move {
                page(SCHEDULES, &uri, "/ui/schedules")
            }),
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
