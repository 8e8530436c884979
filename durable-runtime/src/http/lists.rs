//! The instance list and its counts: `GET /api/instances` and `GET
//! /api/counts`, which read the same filter from the query.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, App, MAX_LIST_LIMIT};
use crate::{Description, ListFilter, Phase};

#[derive(Deserialize)]
pub(super) struct ListQuery {
    /// `name=value`: a search attribute (the value as text, number or flag).
    attr: Option<String>,
    /// Start and end times, ms since the epoch, both included.
    started_from: Option<u64>,
    started_to: Option<u64>,
    closed_from: Option<u64>,
    closed_to: Option<u64>,
    status: Option<String>,
    workflow: Option<String>,
    prefix: Option<String>,
    /// `newest` (the default): newest start first; `id`: by id.
    order: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
    /// With `order=newest`: the previous page's last start time (ms).
    after_started: Option<u64>,
    limit: Option<usize>,
}

/// An empty query value (`?status=`) means no filter, as an HTML form sends it.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A time range from optional ends.
fn range(from: Option<u64>, to: Option<u64>) -> Option<(u64, u64)> {
    (from.is_some() || to.is_some()).then(|| (from.unwrap_or(0), to.unwrap_or(u64::MAX)))
}

/// `name=value` as a search-attribute filter.
fn attribute_filter(text: &str) -> Result<(String, Vec<crate::SearchValue>), ApiError> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("`attr` takes name=value, not `{text}`"),
        )
    })?;
    Ok((name.to_owned(), crate::SearchValue::parse_all(value)))
}

pub(super) async fn list(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let filter = list_filter(q)?;
    let list: Vec<Description> = app.read(move |rt| rt.list(&filter)).await?;
    Ok(Json(list).into_response())
}

/// The most instances `GET /api/counts` reads for a filtered count: more
/// and the answer says it is not `exact` (about 20 ms on this project's
/// machine; the UI asks every two seconds).
pub const MAX_COUNTED: usize = 10_000;

/// `GET /api/counts`: how many instances the list's filter matches in
/// each phase, whatever its `status` (what the UI's status chips show).
pub(super) async fn counts(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let filter = list_filter(q)?;
    let counted = app
        .read(move |rt| rt.count_matching(&filter, MAX_COUNTED))
        .await?;
    let by_phase: serde_json::Map<String, serde_json::Value> = counted
        .by_phase
        .into_iter()
        .map(|(p, n)| (p.as_str().to_owned(), n.into()))
        .collect();
    Ok(Json(serde_json::json!({ "by_phase": by_phase, "exact": counted.exact })).into_response())
}

/// The filter a list's query describes (`GET /api/instances`, `GET /api/counts`).
fn list_filter(q: ListQuery) -> Result<ListFilter, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit > MAX_LIST_LIMIT {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "`limit` is at most {MAX_LIST_LIMIT}, not {limit}: page on with `after` and `after_started` (the last id of a page and its start time)"
            ),
        ));
    }
    let phase = given(q.status)
        .map(|s| s.parse::<Phase>())
        .transpose()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let order = match given(q.order).as_deref() {
        None | Some("newest") => crate::ListOrder::NewestFirst,
        Some("id") => crate::ListOrder::Id,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("`order` is `newest` or `id`, not `{other}`"),
            ));
        }
    };
    Ok(ListFilter {
        workflow: given(q.workflow),
        status: None,
        phase,
        id_prefix: given(q.prefix),
        order,
        after: given(q.after),
        after_started_ms: q.after_started,
        limit,
        search_attribute: given(q.attr).map(|a| attribute_filter(&a)).transpose()?,
        started: range(q.started_from, q.started_to),
        closed: range(q.closed_from, q.closed_to),
    })
}
