//! Finding instances without a live owner and taking them: orphans at
//! join, unassigned instances, a lapsed worker's instances.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{CLAIM_PAGE, LeaseRecord, solo, wall_ms};
use crate::codec;
use crate::engine::{Engine, InstanceRecord, RECOVER_PAGE};
use crate::store::{StoreError, keys};

/// Claimed instances read before those of them that can run are started.
const RESUME_PAGE: usize = 256;

impl Engine {
    /// The first worker of a cold cluster claims every unfinished instance
    /// that has no owner: written by a one-process build or straight into
    /// the store. Pages through records and owners side by side (both in
    /// id order).
    pub(super) async fn adopt_orphans(self: &Arc<Self>) -> Result<usize, StoreError> {
        if self.member.is_none() {
            return Ok(0);
        }
        let mut resumed = 0;
        let mut from = vec![keys::INSTANCE];
        loop {
            let page = self
                .scan_from(&[keys::INSTANCE], &from, RECOVER_PAGE)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(resumed);
            };
            from = keys::after(last);
            let first = keys::owner(&keys::instance_id(&page[0].0));
            let upto = keys::owner(&keys::instance_id(last));
            let owned: HashSet<String> = self
                .scan_from(&[keys::OWNER], &first, RECOVER_PAGE)
                .await?
                .into_iter()
                .take_while(|(k, _)| *k <= upto)
                .map(|(k, _)| keys::instance_id(&k))
                .collect();
            let orphans: Vec<String> = page
                .iter()
                .filter(|(k, bytes)| {
                    let unfinished =
                        InstanceRecord::decode(bytes).map_or(true, |r| !r.status.is_terminal());
                    unfinished && !owned.contains(&keys::instance_id(k))
                })
                .map(|(k, _)| keys::instance_id(k))
                .collect();
            for chunk in orphans.chunks(CLAIM_PAGE) {
                let mut batch = solo();
                for id in chunk {
                    self.stage_owner(id, &mut batch);
                }
                match self.store.commit(batch).await {
                    Ok(()) => resumed += self.resume_claimed(chunk.to_vec()).await?,
                    // another worker started at the same time: one by one
                    Err(StoreError::Conflict { .. }) => {
                        for id in chunk {
                            let mut batch = solo();
                            self.stage_owner(id, &mut batch);
                            match self.store.commit(batch).await {
                                Ok(()) => resumed += self.resume_claimed(vec![id.clone()]).await?,
                                Err(StoreError::Conflict { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Moves one page of worker `from`'s instances, starting at key `start`
    /// of its by-worker index, to this worker, conditional on `lease_key`
    /// holding `lease` and on each instance's owner key still holding what
    /// was read (an incarnation of `from`: one killed while it took over
    /// its own predecessor's instances leaves some under an older token);
    /// resumes them. How many it resumed and where the next page starts;
    /// `None` when nothing is left from `start` (or the lease or an owner
    /// changed: the other worker renewed, or another worker took the page).
    pub(super) async fn claim_page(
        self: &Arc<Self>,
        from: &str,
        lease_key: &[u8],
        lease: &[u8],
        start: &[u8],
    ) -> Result<Option<(usize, Vec<u8>)>, StoreError> {
        let Some(m) = &self.member else {
            return Ok(None);
        };
        let prefix = keys::owned_prefix(from);
        let page = self.scan_from(&prefix, start, CLAIM_PAGE).await?;
        let Some((last, _)) = page.last() else {
            return Ok(None);
        };
        let next = keys::after(last);
        let token = m.token();
        let theirs = format!("{from}#");
        let mut batch = solo();
        batch.expect(lease_key.to_vec(), Some(lease.to_vec()));
        let mut ids = Vec::with_capacity(page.len());
        for (key, _) in page {
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let owner = self.get(&keys::owner(&id)).await?;
            match owner {
                Some(o) if o == token.as_bytes() => {} // this incarnation's already
                Some(o) if o.starts_with(theirs.as_bytes()) => {
                    batch
                        .expect(keys::owner(&id), Some(o))
                        .put(keys::owner(&id), token.clone().into_bytes())
                        .delete(key)
                        .put(keys::owned(&m.name, &id), Vec::new());
                    ids.push(id);
                }
                // finished or owned elsewhere: the index entry is stale
                _ => {
                    batch.expect(keys::owner(&id), owner).delete(key);
                }
            }
        }
        match self.store.commit(batch).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        if ids.is_empty() {
            return Ok(Some((0, next)));
        }
        tracing::info!(from = %from, to = %token, instances = ids.len(), "took instances over");
        self.metrics.taken_over(ids.len());
        Ok(Some((self.resume_claimed(ids).await?, next)))
    }

    /// Loads instances just claimed and resumes the unfinished ones, a
    /// page at a time: each page's instances run before the next page is
    /// read, so a worker resuming many (a takeover, or its own after its
    /// lease lapsed under load) starts running them at once; before, 20,000
    /// were all read, several single-key reads each, before the first ran
    /// again, and a run of the cluster bench stood still for a minute.
    pub(super) async fn resume_claimed(
        self: &Arc<Self>,
        ids: Vec<String>,
    ) -> Result<usize, StoreError> {
        let Some(m) = &self.member else {
            return Ok(0);
        };
        for id in &ids {
            m.insert(id);
        }
        // the cancel and terminate requests waiting, read once (they are
        // few), not two reads per claimed instance
        let claimed: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for tag in [keys::CANCEL, keys::TERMINATE] {
            for (key, _) in self.scan_prefix(&[tag]).await? {
                let id = keys::instance_id(&key);
                if claimed.contains(id.as_str()) {
                    self.book.set_control(&id);
                }
            }
        }
        let sleeping = keys::phase_index_prefix(crate::phase::Phase::Sleeping.tag());
        let mut resumed = 0;
        for page in ids.chunks(RESUME_PAGE) {
            let mut runnable = Vec::new();
            for id in page {
                // as on open: a sleeper nobody asked to cancel or terminate
                // is left to its timer, which reads and checks it when it is
                // due (taking over a worker's many sleepers reads none)
                let controlled = self.has_control(id);
                let asleep = matches!(
                    self.get(&keys::index_entry(sleeping.clone(), id)).await,
                    Ok(Some(_))
                );
                if asleep && !controlled {
                    continue;
                }
                // claimed before it is read, as a wake-up does: a timer or a
                // notice that wakes it meanwhile leaves it to this claim, and
                // its task starts from the record read under it (read first,
                // a wake-up could run it in between, and the task would run
                // its steps again from the older record)
                if !self.claim(id) {
                    // a task of this process runs it, and looks again
                    continue;
                }
                let before = runnable.len();
                let recovered = self.recover_one(id, &mut runnable).await;
                if runnable.len() > before {
                    continue; // its task takes the claim
                }
                let rewoken = self.release(id);
                match recovered {
                    Err(e) => {
                        // owned here: look again once the store answers
                        tracing::warn!(instance = %id, error = %e, "cannot resume a claimed instance yet; retrying in 1 s");
                        self.wake_later(id, Duration::from_secs(1));
                    }
                    // woken during the read: look again
                    Ok(_) if rewoken => self.wake_later(id, Duration::ZERO),
                    Ok(_) => {}
                }
            }
            // as on open: sleepers are left to their timers and not counted
            resumed += runnable.len();
            for (id, record, entry) in runnable {
                self.spawn_claimed(id, record, entry);
            }
            tokio::task::yield_now().await;
        }
        self.timers.notify_one();
        Ok(resumed)
    }

    /// Claims every instance waiting for an owner (`u` keys); how many it
    /// resumed.
    pub(crate) async fn claim_unassigned(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut resumed = 0;
        let mut from = vec![keys::UNASSIGNED];
        loop {
            let page = self
                .scan_from(&[keys::UNASSIGNED], &from, RECOVER_PAGE)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(resumed);
            };
            from = keys::after(last);
            for (key, _) in page {
                resumed += self.claim_one(&keys::instance_id(&key)).await?;
            }
        }
    }

    /// Claims instance `id` if it waits for an owner: 1 if resumed here.
    pub(super) async fn claim_one(self: &Arc<Self>, id: &str) -> Result<usize, StoreError> {
        let Some(m) = &self.member else {
            return Ok(0);
        };
        if m.is_fenced() {
            return Ok(0);
        }
        let mark = keys::unassigned(id);
        let mut batch = solo();
        batch.expect(mark.clone(), Some(Vec::new())).delete(mark);
        let unfinished = match self.load(id).await? {
            Some(Ok(r)) => !r.status.is_terminal(),
            // undecodable: owned, so that it is reported as parked here
            Some(Err(_)) => true,
            None => false,
        };
        if unfinished {
            self.stage_owner(id, &mut batch);
        }
        match self.store.commit(batch).await {
            Ok(()) if unfinished => self.resume_claimed(vec![id.to_owned()]).await,
            Ok(()) | Err(StoreError::Conflict { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Takes over the instances of every other worker whose lease lapsed.
    pub(super) async fn take_over_lapsed(self: &Arc<Self>) -> Result<usize, StoreError> {
        let Some(m) = &self.member else {
            return Ok(0);
        };
        let mut resumed = 0;
        for (key, bytes) in self.scan_prefix(&[keys::LEASE]).await? {
            let name = keys::instance_id(&key);
            if name == m.name || m.is_fenced() {
                continue;
            }
            let Ok(lease) = codec::decode::<LeaseRecord>(&bytes) else {
                tracing::error!(worker = %name, "a worker lease does not decode; left alone");
                continue;
            };
            if lease.expires_ms > wall_ms() {
                continue;
            }
            // a few pages per pass, from a random place: the other
            // survivors start elsewhere and take the rest
            let prefix = keys::owned_prefix(&name);
            let mut from = prefix.clone();
            from.push(rand::random::<u8>());
            let mut wrapped = false;
            for _ in 0..4 {
                match self.claim_page(&name, &key, &bytes, &from).await? {
                    Some((n, next)) => {
                        resumed += n;
                        from = next;
                    }
                    None if !wrapped => {
                        // past the end (or taken by another): once more from the start
                        wrapped = true;
                        from = prefix.clone();
                    }
                    None => break,
                }
            }
            if self
                .scan_from(&keys::owned_prefix(&name), &keys::owned_prefix(&name), 1)
                .await?
                .is_empty()
            {
                // nothing left: the lapsed lease goes (unless renewed meanwhile)
                let mut batch = solo();
                batch.expect(key.clone(), Some(bytes.clone())).delete(key);
                match self.store.commit(batch).await {
                    Ok(()) => tracing::info!(worker = %name, "lapsed worker removed"),
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(resumed)
    }
}
