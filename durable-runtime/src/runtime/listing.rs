//! [`Runtime::list`]: the instances a [`ListFilter`] matches, in id order
//! or newest first, each read from the narrowest index the store keeps.

use std::ops::ControlFlow;

use super::Runtime;
use super::inspect::Description;
use crate::engine::InstanceRecord;
use crate::filter::{ListFilter, ListOrder};
use crate::phase::Phase;
use crate::store::{Store, StoreError, keys};

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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let runtime = Runtime::builder().open_store(durable_runtime::store::mem::MemStore::new()).await?;
    /// // the 20 newest instances, then the 20 after them
    /// let mut filter = ListFilter { order: ListOrder::NewestFirst, limit: 20, ..ListFilter::default() };
    /// let page = runtime.list(&filter)?;
    /// if let Some(last) = page.last() {
    ///     filter.after = Some(last.id.clone());
    ///     filter.after_started_ms = Some(last.created_ms);
    ///     let _next = runtime.list(&filter)?;
    /// }
    /// # runtime.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Description>, StoreError> {
        crate::store::blocking(|| match filter.order {
            ListOrder::Id => self.list_by_id(filter),
            ListOrder::NewestFirst => self.list_newest(filter),
        })
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
            let from = match &filter.after {
                Some(after) => {
                    keys::after(&keys::index_entry(source.clone(), after)).max(start.clone())
                }
                None => start.clone(),
            };
            let mut found = 0;
            scan_each(&*self.engine.store, &start, from, |key, _| {
                let id = String::from_utf8_lossy(&key[source.len()..]).into_owned();
                let Some(Ok(r)) = self.engine.peek_now(&id)? else {
                    return Ok(ControlFlow::Continue(()));
                };
                // an entry is current when its record agrees (same batch)
                if !r.indexed.contains(&key) || !matches(filter, &phases, &r) {
                    return Ok(ControlFlow::Continue(()));
                }
                matched.push(Description::of(&id, r));
                found += 1;
                Ok(if found >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
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
        let from = match &filter.after {
            Some(after) => keys::after(&keys::instance(after)).max(prefix.clone()),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        scan_each(&*self.engine.store, &prefix, from, |key, bytes| {
            if let Ok(r) = InstanceRecord::decode(&bytes)
                && matches(filter, &[], &r)
            {
                out.push(Description::of(&keys::instance_id(&key), r));
            }
            Ok(if filter.limit > 0 && out.len() >= filter.limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(out)
    }

    /// [`ListOrder::NewestFirst`]: a selective search attribute, status or
    /// workflow (at most [`SORT_AT_MOST`] entries in its index) is read
    /// whole and sorted; anything else walks the start-time index from the
    /// newest, or from the end of the start-time range, checking each
    /// record, until the page is full. A
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
            (Some(id), None) => match self.engine.peek_now(id)? {
                Some(Ok(r)) => Some((r.created_ms, id.clone())),
                _ => None,
            },
        };
        let phases = phases_of(filter);
        if !self.start_times_indexed()? {
            let every = self.list_by_id(&ListFilter {
                order: ListOrder::Id,
                after: None,
                after_started_ms: None,
                limit: 0,
                ..filter.clone()
            })?;
            return Ok(newest_first_page(every, position.as_ref(), limit));
        }
        if let Some(ids) = self.few_candidates(filter, &phases, SORT_AT_MOST)? {
            let mut found = Vec::new();
            for id in ids {
                if let Some(Ok(r)) = self.engine.peek_now(&id)?
                    && matches(filter, &phases, &r)
                {
                    found.push(Description::of(&id, r));
                }
            }
            return Ok(newest_first_page(found, position.as_ref(), limit));
        }
        let mut out = Vec::new();
        self.walk_started(filter, &phases, position.as_ref(), usize::MAX, |id, r| {
            out.push(Description::of(&id, r));
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }

    /// Walks the start-time index from after `position`, or from the end of the filter's start-time
    /// range, reading each entry's record and handing `found` those that
    /// pass the filter, until `found` breaks, the index or the range ends,
    /// or `budget` records were read. Returns whether it got to the end (or
    /// `found` broke): `false` when the budget ran out first.
    fn walk_started(
        &self,
        filter: &ListFilter,
        phases: &[Phase],
        position: Option<&(u64, String)>,
        budget: usize,
        mut found: impl FnMut(String, InstanceRecord) -> ControlFlow<()>,
    ) -> Result<bool, StoreError> {
        let prefix = [keys::STARTED_INDEX];
        let (from_ms, to_ms) = filter.started.unwrap_or((0, u64::MAX));
        let id_prefix = filter.id_prefix.as_deref().unwrap_or("");
        let mut from = keys::started_entry(to_ms, "");
        if let Some((ms, id)) = position {
            from = from.max(keys::after(&keys::started_entry(*ms, id)));
        }
        let mut read = 0;
        let mut cut = false;
        scan_each(&*self.engine.store, &prefix, from, |key, _| {
            let Some((ms, id)) = keys::parse_started_entry(&key) else {
                return Ok(ControlFlow::Continue(()));
            };
            if ms < from_ms {
                return Ok(ControlFlow::Break(()));
            }
            if !id.starts_with(id_prefix) {
                return Ok(ControlFlow::Continue(()));
            }
            if read == budget {
                cut = true;
                return Ok(ControlFlow::Break(()));
            }
            read += 1;
            // an entry is current when its record agrees (not an id
            // removed and started again meanwhile)
            match self.engine.peek_now(&id)? {
                Some(Ok(r)) if r.created_ms == ms && matches(filter, phases, &r) => {
                    Ok(found(id, r))
                }
                _ => Ok(ControlFlow::Continue(())),
            }
        })?;
        Ok(!cut)
    }

    /// How many instances `filter` matches in each phase, whatever its
    /// status or phase (what status chips beside a filtered list show), and
    /// whether that is exact. Without any other filter the counts are the
    /// store's counters, exact and read at once. Otherwise a selective
    /// index is read whole as the newest-first list reads it; failing that
    /// the records of the id prefix, or the start-time index from the
    /// newest, are read, at most `at_most` records, and a count cut short
    /// there is not `exact`.
    pub fn count_matching(
        &self,
        filter: &ListFilter,
        at_most: usize,
    ) -> Result<MatchedCounts, StoreError> {
        crate::store::blocking(|| {
            let filter = ListFilter {
                status: None,
                phase: None,
                order: ListOrder::Id,
                after: None,
                after_started_ms: None,
                limit: 0,
                ..filter.clone()
            };
            if filter == ListFilter::default() {
                return Ok(MatchedCounts {
                    by_phase: self.counts_by_phase()?,
                    exact: true,
                });
            }
            let mut by_phase: Vec<(Phase, usize)> =
                Phase::ALL.into_iter().map(|p| (p, 0)).collect();
            let mut tally = |r: &InstanceRecord| {
                let phase = Phase::of(r.status, r.pending.as_ref());
                if let Some((_, n)) = by_phase.iter_mut().find(|(p, _)| *p == phase) {
                    *n += 1;
                }
            };
            let exact = if let Some(ids) = self.few_candidates(&filter, &[], at_most)? {
                for id in ids {
                    if let Some(Ok(r)) = self.engine.peek_now(&id)?
                        && matches(&filter, &[], &r)
                    {
                        tally(&r);
                    }
                }
                true
            } else if filter.id_prefix.is_some() || !self.start_times_indexed()? {
                // order does not matter to a count: the id range, records read as they lie
                self.walk_ids(&filter, at_most, tally)?
            } else {
                self.walk_started(&filter, &[], None, at_most, |_, r| {
                    tally(&r);
                    ControlFlow::Continue(())
                })?
            };
            Ok(MatchedCounts { by_phase, exact })
        })
    }

    /// Reads the records whose ids start with `filter`'s id prefix, in id
    /// order, handing `found` those that pass the filter, at most `budget`
    /// records. Returns whether it got to the end.
    fn walk_ids(
        &self,
        filter: &ListFilter,
        budget: usize,
        mut found: impl FnMut(&InstanceRecord),
    ) -> Result<bool, StoreError> {
        let prefix = keys::instance(filter.id_prefix.as_deref().unwrap_or(""));
        let mut read = 0;
        let mut cut = false;
        scan_each(&*self.engine.store, &prefix, prefix.clone(), |_, bytes| {
            if read == budget {
                cut = true;
                return Ok(ControlFlow::Break(()));
            }
            read += 1;
            if let Ok(r) = InstanceRecord::decode(&bytes)
                && matches(filter, &[], &r)
            {
                found(&r);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(!cut)
    }

    /// Whether every instance's start time is indexed (the counter `e`
    /// an open sets once it indexed a store an earlier build wrote).
    fn start_times_indexed(&self) -> Result<bool, StoreError> {
        Ok(self
            .engine
            .store
            .counters()?
            .iter()
            .any(|(name, n)| name[..] == [keys::STARTED_INDEX] && *n > 0))
    }

    /// The ids in the narrowest index `filter` has that holds at most
    /// `at_most`: its search attribute's, else its status's or
    /// phase's (its counters say whether, without reading it), else its
    /// workflow's, else the records of its id prefix. `None` when it has
    /// none of them or each holds more: the start-time index is walked
    /// instead.
    fn few_candidates(
        &self,
        filter: &ListFilter,
        phases: &[Phase],
        at_most: usize,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let store = &self.engine.store;
        let mut choices: Vec<Vec<Vec<u8>>> = Vec::new();
        if let Some((name, values)) = &filter.search_attribute {
            choices.push(
                values
                    .iter()
                    .filter_map(|v| keys::attribute_index_prefix(name, v))
                    .collect(),
            );
        }
        if !phases.is_empty() {
            let counted: usize = Phase::counts(&**store)?
                .into_iter()
                .filter(|(p, _)| phases.contains(p))
                .map(|(_, n)| n)
                .sum();
            if counted <= at_most {
                choices.push(
                    phases
                        .iter()
                        .map(|p| keys::phase_index_prefix(p.tag()))
                        .collect(),
                );
            }
        }
        if let Some(workflow) = &filter.workflow {
            choices.push(vec![keys::workflow_index_prefix(workflow)]);
        }
        if filter.id_prefix.is_some() {
            // the records themselves: `i` + id
            choices.push(vec![vec![keys::INSTANCE]]);
        }
        let id_prefix = filter.id_prefix.as_deref().unwrap_or("");
        'choices: for sources in choices {
            let mut ids = Vec::new();
            for source in sources {
                let start = keys::index_entry(source.clone(), id_prefix);
                scan_each(&**store, &start, start.clone(), |key, _| {
                    ids.push(String::from_utf8_lossy(&key[source.len()..]).into_owned());
                    Ok(if ids.len() > at_most {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                })?;
                if ids.len() > at_most {
                    continue 'choices;
                }
            }
            ids.sort_unstable();
            ids.dedup();
            return Ok(Some(ids));
        }
        Ok(None)
    }
}

/// Hands `visit` each entry under `prefix` from `from` on, in key order,
/// read a page at a time, until it breaks or the entries end.
fn scan_each(
    store: &dyn Store,
    prefix: &[u8],
    mut from: Vec<u8>,
    mut visit: impl FnMut(Vec<u8>, Vec<u8>) -> Result<ControlFlow<()>, StoreError>,
) -> Result<(), StoreError> {
    loop {
        let page = store.scan_from(prefix, &from, 1024)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        from = keys::after(last);
        for (key, value) in page {
            if visit(key, value)?.is_break() {
                return Ok(());
            }
        }
    }
}

/// What [`Runtime::count_matching`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct MatchedCounts {
    /// How many matched in each phase, every phase listed (zeros too) in
    /// the order of [`Phase::ALL`].
    pub by_phase: Vec<(Phase, usize)>,
    /// Whether these are all of them (`false`: counting stopped at its
    /// limit).
    pub exact: bool,
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
