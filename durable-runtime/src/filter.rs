//! [`ListFilter`]: which instances a list shows or a batch acts on, by
//! workflow, status or phase, id, search attribute and time.

use crate::phase::{Phase, Status};

/// Which instances [`Runtime::list`](crate::Runtime::list) returns, and a
/// batch operation acts on ([`crate::batch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ListFilter {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this stored status ([`Status::Running`] includes sleeping and
    /// signal-waiting instances).
    pub status: Option<Status>,
    /// Only this phase (finer than `status`: `Phase::Sleeping` only).
    pub phase: Option<Phase>,
    /// Only ids that start with this (a key-range scan, so cheap).
    pub id_prefix: Option<String>,
    /// The order of the list: by id (the default), or newest start first.
    pub order: ListOrder,
    /// Only instances after this one in the list's order (paging: pass the
    /// last id of the previous page).
    pub after: Option<String>,
    /// With [`ListOrder::NewestFirst`] and `after`: that instance's start
    /// time ([`Description::created_ms`](crate::Description::created_ms)),
    /// which places it in the order. Without it the list reads the start
    /// time from that instance's record (and starts from the newest when
    /// the instance no longer exists).
    pub after_started_ms: Option<u64>,
    /// At most this many (0: no limit).
    pub limit: usize,
    /// Only instances whose search attribute `.0` has one of the values
    /// `.1` (set by [`upsert_search_attributes`](crate::upsert_search_attributes)).
    pub search_attribute: Option<(String, Vec<crate::SearchValue>)>,
    /// Only instances started in this range (ms since the epoch, both ends
    /// included).
    pub started: Option<(u64, u64)>,
    /// Only instances that ended in this range (ms since the epoch, both
    /// ends included); a running instance has not ended.
    pub closed: Option<(u64, u64)>,
}

/// The order of [`Runtime::list`](crate::Runtime::list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// By id, ascending (what batch operations page by).
    #[default]
    Id,
    /// Newest start first, instances started in the same millisecond by
    /// id: what Temporal's list shows. Read from an index by start time,
    /// so a page costs about its length whatever the store holds (a
    /// selective status or search attribute is read from its own index
    /// and sorted).
    NewestFirst,
}

impl ListFilter {
    /// Whether an instance started at `started_ms` and ended at
    /// `ended_ms` (`None`: it has not ended) is within the time ranges (the
    /// other filters are the indexes' or checked by `list`).
    pub(crate) fn in_time(&self, started_ms: u64, ended_ms: Option<u64>) -> bool {
        let within =
            |range: Option<(u64, u64)>, t: u64| range.is_none_or(|(a, b)| a <= t && t <= b);
        within(self.started, started_ms)
            && (self.closed.is_none() || ended_ms.is_some_and(|t| within(self.closed, t)))
    }
}
