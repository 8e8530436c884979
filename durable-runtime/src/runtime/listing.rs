//! [`Runtime::list`]: the instances a [`ListFilter`] matches, in id order
//! or newest first, each read from the narrowest index the store keeps.

use super::Runtime;
use super::inspect::Description;
use crate::engine::InstanceRecord;
use crate::filter::{ListFilter, ListOrder};
use crate::phase::Phase;
use crate::store::{StoreError, keys};

/// The most entries a selective filter's own index (a search attribute's,
/// or a status's) may hold for a newest-first list to read them all and
/// sort them; beyond it the list walks the start-time index instead.
const SORT_AT_MOST: usize = 4096;

impl Runtime {
    /// The instances `filter` matches, in its [`order`](ListFilter::order);
    /// page with [`ListFilter::after`] (the last id of the previous page,
    /// and for [`ListOrder::NewestFirst`] its start time in
    /// [`ListFilter::after_started_ms`]). Records that do not decode are
    /// skipped here and reported by [`Runtime::parked`].
    ///
    /// ```
    /// # use durable_runtime::{ListFilter, ListOrder, Runtime};
    /// # async fn f(runtime: &Runtime) -> Result<(), durable_runtime::StoreError> {
    /// // the 20 newest instances, then the 20 after them
    /// let mut filter = ListFilter { order: ListOrder::NewestFirst, limit: 20, ..ListFilter::default() };
    /// let page = runtime.list(&filter)?;
    /// if let Some(last) = page.last() {
    ///     filter.after = Some(last.id.clone());
    ///     filter.after_started_ms = Some(last.created_ms);
    ///     let _next = runtime.list(&filter)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
        match filter.order {
            ListOrder::Id => self.list_by_id(filter),
            ListOrder::NewestFirst => self.list_newest(filter),
        }
    }

    /// [`ListOrder::Id`]: the narrowest index the store keeps answers the
    /// filter: the search attribute's values, else the phase index (a
    /// status reads each of its phases), else the workflow index, else a
    /// scan of the records; an id prefix narrows each to that key range.
    /// The other filters and the time ranges are checked on each record
    /// read.
    fn list_by_id(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
        // the narrowest index that answers the filter; records are read by id
        let phases = phases_of(filter);
        let sources: Vec<Vec<u8>> = match (&filter.search_attribute, &phases[..], &filter.workflow)
        {
            (Some((name, values)), _, _) => values
                .iter()
                .filter_map(|v| keys::attribute_index_prefix(name, v))
                .collect(),
            (None, [], None) => return self.list_scan(filter),
            (None, [], Some(workflow)) => vec![keys::workflow_index_prefix(workflow)],
            (None, phases, _) => phases
                .iter()
                .map(|p| keys::phase_index_prefix(p.tag()))
                .collect(),
        };
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit
        };
        let id_prefix = filter.id_prefix.as_deref().unwrap_or("");
        let mut matched: Vec<Description> = Vec::new();
        for source in &sources {
            // from the id prefix, or after the last id of the previous page
            let start = keys::index_entry(source.clone(), id_prefix);
            let mut from = match &filter.after {
                Some(after) => {
                    keys::after(&keys::index_entry(source.clone(), after)).max(start.clone())
                }
                None => start.clone(),
            };
            let mut found = 0;
            'pages: loop {
                let page = self.engine.store.scan_from(&start, &from, 1024)?;
                let Some((last, _)) = page.last() else { break };
                from = keys::after(last);
                for (key, _) in page {
                    let id = String::from_utf8_lossy(&key[source.len()..]).into_owned();
                    let Some(Ok(r)) = self.engine.peek(&id)? else {
                        continue;
                    };
                    // an entry is current when its record agrees (same batch)
                    let phase = Phase::of(r.status, r.pending.as_ref());
                    if !r.indexed.contains(&key)
                        || !filter
                            .in_time(r.created_ms, r.status.is_terminal().then_some(r.updated_ms))
                        || filter.workflow.as_ref().is_some_and(|w| *w != r.workflow)
                        || !phases.is_empty() && !phases.contains(&phase)
                    {
                        continue;
                    }
                    matched.push(Description::of(&id, r));
                    found += 1;
                    if found >= limit {
                        break 'pages;
                    }
                }
            }
        }
        // several sources (the phases of one status) merge in id order
        matched.sort_by(|a, b| a.id.cmp(&b.id));
        matched.dedup_by(|a, b| a.id == b.id);
        matched.truncate(limit);
        Ok(matched)
    }

    /// `list` without a status or workflow filter: a scan of the records in id order.
    fn list_scan(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
        let prefix = keys::instance(filter.id_prefix.as_deref().unwrap_or(""));
        let mut from = match &filter.after {
            Some(after) => keys::after(&keys::instance(after)).max(prefix.clone()),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        loop {
            let page = self.engine.store.scan_from(&prefix, &from, 1024)?;
            let Some((last, _)) = page.last() else { break };
            from = keys::after(last);
            for (key, bytes) in page {
                let Ok(r) = InstanceRecord::decode(&bytes) else {
                    continue;
                };
                if !filter.in_time(r.created_ms, r.status.is_terminal().then_some(r.updated_ms)) {
                    continue;
                }
                out.push(Description::of(&keys::instance_id(&key), r));
                if filter.limit > 0 && out.len() >= filter.limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// [`ListOrder::NewestFirst`]: a selective search attribute or status
    /// (at most [`SORT_AT_MOST`] entries in its index) is read whole and
    /// sorted; anything else walks the start-time index (of the filter's
    /// workflow, if it names one) from the newest, or from the end of the
    /// start-time range, checking each record, until the page is full. A
    /// store whose start times are not indexed yet (written by an earlier
    /// build and opened without recovery, as the CLI opens it) is listed
    /// in id order and sorted.
    fn list_newest(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
        let limit = if filter.limit == 0 {
            usize::MAX
        } else {
            filter.limit
        };
        // where the previous page ended
        let position = match (&filter.after, filter.after_started_ms) {
            (None, _) => None,
            (Some(id), Some(ms)) => Some((ms, id.clone())),
            (Some(id), None) => match self.engine.peek(id)? {
                Some(Ok(r)) => Some((r.created_ms, id.clone())),
                _ => None,
            },
        };
        let phases = phases_of(filter);
        let indexed = self
            .engine
            .store
            .counters()?
            .iter()
            .any(|(name, n)| name[..] == [keys::STARTED_INDEX] && *n > 0);
        if !indexed {
            let every = self.list_by_id(&ListFilter {
                order: ListOrder::Id,
                after: None,
                after_started_ms: None,
                limit: 0,
                ..filter.clone()
            })?;
            return Ok(newest_first_page(every, position.as_ref(), limit));
        }
        if let Some(ids) = self.few_candidates(filter, &phases)? {
            let mut found = Vec::new();
            for id in ids {
                if let Some(Ok(r)) = self.engine.peek(&id)?
                    && matches(filter, &phases, &r)
                {
                    found.push(Description::of(&id, r));
                }
            }
            return Ok(newest_first_page(found, position.as_ref(), limit));
        }
        let prefix = keys::started_index_prefix(filter.workflow.as_deref());
        let (from_ms, to_ms) = filter.started.unwrap_or((0, u64::MAX));
        let id_prefix = filter.id_prefix.as_deref().unwrap_or("");
        let mut from = keys::started_entry(prefix.clone(), to_ms, "");
        if let Some((ms, id)) = &position {
            from = from.max(keys::after(&keys::started_entry(prefix.clone(), *ms, id)));
        }
        let mut out = Vec::new();
        'pages: loop {
            let page = self.engine.store.scan_from(&prefix, &from, 1024)?;
            let Some((last, _)) = page.last() else { break };
            from = keys::after(last);
            for (key, _) in page {
                let Some((ms, id)) = keys::parse_started_entry(prefix.len(), &key) else {
                    continue;
                };
                if ms < from_ms {
                    break 'pages;
                }
                if !id.starts_with(id_prefix) {
                    continue;
                }
                // an entry is current when its record agrees (not an id
                // removed and started again meanwhile)
                let Some(Ok(r)) = self.engine.peek(&id)? else {
                    continue;
                };
                if r.created_ms != ms || !matches(filter, &phases, &r) {
                    continue;
                }
                out.push(Description::of(&id, r));
                if out.len() >= limit {
                    break 'pages;
                }
            }
        }
        Ok(out)
    }

    /// The ids in the index of `filter`'s search attribute, or of its
    /// status or phase, when it holds at most [`SORT_AT_MOST`] (a status's
    /// counters say so without reading its index); `None` otherwise, or
    /// when the filter has neither.
    fn few_candidates(
        &self,
        filter: &ListFilter,
        phases: &[Phase],
    ) -> Result<Option<Vec<String>>, StoreError> {
        let store = &self.engine.store;
        let sources: Vec<Vec<u8>> = if let Some((name, values)) = &filter.search_attribute {
            values
                .iter()
                .filter_map(|v| keys::attribute_index_prefix(name, v))
                .collect()
        } else if !phases.is_empty() {
            let counted: usize = Phase::counts(&**store)?
                .into_iter()
                .filter(|(p, _)| phases.contains(p))
                .map(|(_, n)| n)
                .sum();
            if counted > SORT_AT_MOST {
                return Ok(None);
            }
            phases
                .iter()
                .map(|p| keys::phase_index_prefix(p.tag()))
                .collect()
        } else {
            return Ok(None);
        };
        let id_prefix = filter.id_prefix.as_deref().unwrap_or("");
        let mut ids = Vec::new();
        for source in sources {
            let start = keys::index_entry(source.clone(), id_prefix);
            let mut from = start.clone();
            loop {
                let page = store.scan_from(&start, &from, 1024)?;
                let Some((last, _)) = page.last() else { break };
                from = keys::after(last);
                ids.extend(
                    page.iter()
                        .map(|(key, _)| String::from_utf8_lossy(&key[source.len()..]).into_owned()),
                );
                if ids.len() > SORT_AT_MOST {
                    return Ok(None);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(Some(ids))
    }
}

/// The phases `filter` asks for (a status's every phase); empty for any.
fn phases_of(filter: &ListFilter) -> Vec<Phase> {
    match (filter.phase, filter.status) {
        (Some(p), _) => vec![p],
        (None, Some(status)) => Phase::ALL
            .into_iter()
            .filter(|p| p.status() == status)
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// Whether record `r` passes `filter`'s checks besides its id: the time
/// ranges, workflow, `phases` and search attribute.
fn matches(filter: &ListFilter, phases: &[Phase], r: &InstanceRecord) -> bool {
    filter.in_time(r.created_ms, r.status.is_terminal().then_some(r.updated_ms))
        && filter.workflow.as_ref().is_none_or(|w| *w == r.workflow)
        && (phases.is_empty() || phases.contains(&Phase::of(r.status, r.pending.as_ref())))
        && filter
            .search_attribute
            .as_ref()
            .is_none_or(|(name, values)| {
                // compared as the index compares them
                r.search_attributes.iter().any(|(n, v)| {
                    n == name
                        && v.index_bytes().is_some_and(|held| {
                            values
                                .iter()
                                .any(|want| want.index_bytes().as_ref() == Some(&held))
                        })
                })
            })
}

/// `found` newest first (ties by id), from after `position` (start time,
/// id), at most `limit`.
fn newest_first_page(
    mut found: Vec<Description>,
    position: Option<&(u64, String)>,
    limit: usize,
) -> Vec<Description> {
    let place = |ms: u64, id: &str| (std::cmp::Reverse(ms), id.to_owned());
    found.sort_by_key(|d| place(d.created_ms, &d.id));
    found.dedup_by(|a, b| a.id == b.id);
    if let Some((ms, id)) = position {
        let after = place(*ms, id);
        found.retain(|d| place(d.created_ms, &d.id) > after);
    }
    found.truncate(limit);
    found
}
