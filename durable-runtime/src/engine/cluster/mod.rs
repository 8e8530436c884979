//! Many runtime processes (workers) on one shared store (PostgreSQL).
//!
//! Each unfinished instance has one owner, a worker incarnation, in its
//! `o` key; only the owner runs it, and every checkpoint of it carries the
//! condition "`o` + id still names me" (fencing): once another worker took
//! the instance over, the old owner's writes fail with a conflict, whatever
//! it believes. A worker holds a lease (`L` + name) that it renews; when a
//! lease lapses, the others move the worker's instances (found through the
//! `W` index) to themselves, conditional on the lease being the lapsed one,
//! and resume them from their last checkpoint. A worker that cannot renew
//! in time stops committing on its own (self-fencing) before anyone may
//! take over. Other processes learn of signals, cancel requests, finished
//! instances and instances waiting for an owner through the store's
//! messages ([`Batch::notify`]).
//!
//! Message kinds: `w` + id (look again at the instance), `c` + id (a cancel
//! or terminate request), `u` + id (an instance waits for an owner).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Engine;
use super::transition::Committer;
use crate::codec;
use crate::store::{Batch, Notice, StoreError, keys};

/// Instances moved in one takeover or release batch.
const CLAIM_PAGE: usize = 128;

/// A worker's lease, the value of `L` + name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    /// Bumped by every process that starts under this name.
    pub(crate) incarnation: u64,
    /// The owner value of this incarnation's instances:
    /// `name#incarnation.nonce`, never used twice (a name whose lease was
    /// removed starts its count again; the random nonce still differs).
    pub(crate) token: String,
    /// Wall-clock time (ms) after which the others may take over.
    pub(crate) expires_ms: u64,
    /// The lease time, for tools.
    pub(crate) lease_ms: u64,
    /// When this incarnation started (ms).
    pub(crate) started_ms: u64,
    /// The named task queues it runs.
    pub(crate) queues: Vec<String>,
}

/// This process's membership of the workers sharing the store.
pub(crate) struct Member {
    /// The worker's name (unique among live processes).
    pub(crate) name: String,
    /// `name#incarnation`: the owner value of this process's instances.
    token: RwLock<String>,
    /// The stored lease as last written, for conditional renewal.
    lease_bytes: Mutex<Vec<u8>>,
    pub(crate) lease: Duration,
    /// Instances this process owns.
    owned: Mutex<Owned>,
    /// Held by a rebuild of `owned` from the store, one at a time.
    rebuilding: tokio::sync::Mutex<()>,
    /// Held by a renewal, and by a claim made on this process's own lease
    /// as last written (the claims of a join).
    lease_writes: tokio::sync::Mutex<()>,
    /// Set when the lease may have lapsed: nothing is committed until it is
    /// renewed again.
    fenced: AtomicBool,
    /// When the last successful renewal was sent (monotonic).
    renewed: Mutex<Instant>,
    /// The named task queues this worker runs.
    pub(crate) queues: Vec<String>,
    /// What this worker failed to act on, for its next pass.
    missed: Mutex<Missed>,
    /// Held by a pass, and by a resync or a join after a renewal: each
    /// rebuilds what the worker owns, which a pass claiming meanwhile
    /// would lose.
    passing: tokio::sync::Mutex<()>,
}

/// The instances a worker owns, and what changed while a rebuild reads
/// the store.
#[derive(Default)]
struct Owned {
    ids: HashSet<String>,
    /// While a rebuild reads the store: the instances claimed (`true`) or
    /// let go (`false`) meanwhile, which its read may predate.
    meanwhile: Option<std::collections::HashMap<String, bool>>,
}

impl Owned {
    fn set(&mut self, id: &str, owned: bool) {
        if owned {
            self.ids.insert(id.to_owned());
        } else {
            self.ids.remove(id);
        }
        if let Some(meanwhile) = &mut self.meanwhile {
            meanwhile.insert(id.to_owned(), owned);
        }
    }
}

/// The notices a worker failed to act on (a store error): its messages,
/// each once, or a resync, which covers them all.
#[derive(Default)]
struct Missed {
    messages: std::collections::BTreeSet<String>,
    resync: bool,
}

pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Member {
    pub(crate) fn new(name: String, lease: Duration, queues: Vec<String>) -> Member {
        Member {
            queues,
            name,
            token: RwLock::new(String::new()),
            lease_bytes: Mutex::new(Vec::new()),
            lease,
            owned: Mutex::default(),
            rebuilding: tokio::sync::Mutex::new(()),
            lease_writes: tokio::sync::Mutex::new(()),
            fenced: AtomicBool::new(true),
            renewed: Mutex::new(Instant::now()),
            missed: Mutex::default(),
            passing: tokio::sync::Mutex::new(()),
        }
    }

    /// Keeps `notice`, which acting on failed, for the next pass.
    pub(crate) fn missed(&self, notice: Notice) {
        let mut missed = self.missed.lock().expect("missed lock poisoned");
        match notice {
            Notice::Message(message) if !missed.resync => {
                missed.messages.insert(message);
            }
            Notice::Message(_) => {}
            Notice::Resync | Notice::Listening => {
                missed.resync = true;
                missed.messages.clear();
            }
        }
    }

    /// The notices kept by [`missed`](Member::missed), taken.
    fn take_missed(&self) -> Vec<Notice> {
        let missed = std::mem::take(&mut *self.missed.lock().expect("missed lock poisoned"));
        if missed.resync {
            return vec![Notice::Resync];
        }
        missed.messages.into_iter().map(Notice::Message).collect()
    }

    /// How often the lease is renewed: a quarter of it (at least 50 ms).
    fn tick(&self) -> Duration {
        (self.lease / 4).max(Duration::from_millis(50))
    }

    /// The owner value of this incarnation's instances.
    pub(crate) fn token(&self) -> String {
        self.token.read().expect("token lock poisoned").clone()
    }

    pub(crate) fn owns(&self, id: &str) -> bool {
        self.owned
            .lock()
            .expect("owned lock poisoned")
            .ids
            .contains(id)
    }

    pub(crate) fn owned_count(&self) -> usize {
        self.owned.lock().expect("owned lock poisoned").ids.len()
    }

    fn insert(&self, id: &str) {
        self.owned
            .lock()
            .expect("owned lock poisoned")
            .set(id, true);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.owned
            .lock()
            .expect("owned lock poisoned")
            .set(id, false);
    }

    /// Starts noting what is claimed and let go while a rebuild reads the
    /// store.
    fn rebuild_begins(&self) {
        self.owned.lock().expect("owned lock poisoned").meanwhile = Some(Default::default());
    }

    /// Ends a rebuild: what this worker owns is what the rebuild read
    /// (`read`), with what was claimed or let go meanwhile applied over it.
    fn rebuild_ends(&self, read: HashSet<String>) {
        let mut owned = self.owned.lock().expect("owned lock poisoned");
        let meanwhile = owned.meanwhile.take().unwrap_or_default();
        owned.ids = read;
        for (id, claimed) in meanwhile {
            owned.set(&id, claimed);
        }
    }

    /// Forgets every owned instance (the lease was taken over).
    fn forget_owned(&self) {
        self.owned.lock().expect("owned lock poisoned").ids.clear();
    }

    pub(crate) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// Fences this process when its last renewal is too old, whether or
    /// not the renewal task has run since (a process paused, then woken):
    /// a margin below the lease, since the others wait for all of it.
    pub(crate) fn check_lease(&self) -> bool {
        let since = self
            .renewed
            .lock()
            .expect("renewed lock poisoned")
            .elapsed();
        if since >= self.lease * 4 / 5 && !self.fenced.swap(true, Ordering::SeqCst) {
            tracing::error!(worker = %self.name, "lease not renewed in time: this worker stops committing until it is");
        }
        self.is_fenced()
    }

    fn lease_record(&self, incarnation: u64, token: String, started_ms: u64) -> LeaseRecord {
        LeaseRecord {
            incarnation,
            token,
            expires_ms: wall_ms().saturating_add(self.lease.as_millis() as u64),
            lease_ms: self.lease.as_millis() as u64,
            started_ms,
            queues: self.queues.clone(),
        }
    }
}

/// A batch of the coordination between workers (leases, claims,
/// hand-overs): committed in its own transaction, so that a row lock a
/// paused process holds delays only it, never the checkpoints of others.
fn solo() -> Batch {
    Batch {
        solo: true,
        ..Batch::default()
    }
}

/// What a lease renewal found.
enum Renewal {
    Renewed,
    /// Renewed after this worker had fenced itself: resume what it owns.
    Back,
    /// The lease is gone (the others took everything over): join again.
    Lost,
}

/// Whether `e` says that instance `id` has another owner now.
pub(crate) fn lost_ownership(e: &StoreError, id: &str) -> bool {
    matches!(e, StoreError::Conflict { key } if *key == crate::store::printable(&keys::owner(id)))
}

impl Engine {
    /// Whether this process runs instance `id`: always on a store of its
    /// own; on a shared store only when it owns it (a tool that opened the
    /// store without resuming runs nothing).
    pub(crate) fn runs_here(&self, id: &str) -> bool {
        if !self.store.shared() {
            return true;
        }
        self.member.as_ref().is_some_and(|m| m.owns(id))
    }

    /// Adds to the creation batch of instance `id` who runs it: this worker,
    /// or (a tool on a shared store) whichever worker claims it first.
    pub(crate) fn stage_owner(&self, id: &str, batch: &mut Batch) {
        if !self.store.shared() {
            return;
        }
        match &self.member {
            Some(m) => {
                let token = m.token();
                batch
                    .expect(keys::owner(id), None)
                    .put(keys::owner(id), token.into_bytes())
                    .put(keys::owned(&m.name, id), Vec::new());
            }
            None => {
                batch
                    .put(keys::unassigned(id), Vec::new())
                    .notify(format!("u{id}"));
            }
        }
    }

    /// Adds to an import's batch of instance `id` who runs it from now on
    /// (as [`stage_owner`](Self::stage_owner)); a replaced instance's owner
    /// loses it (its next checkpoint fails the fencing condition).
    pub(crate) async fn stage_import_owner(
        &self,
        id: &str,
        unfinished: bool,
        batch: &mut Batch,
    ) -> Result<(), StoreError> {
        if !self.store.shared() {
            return Ok(());
        }
        let key = keys::owner(id);
        let current = self.get(&key).await?;
        if let Some(token) = &current {
            let token = String::from_utf8_lossy(token);
            if let Some((name, _)) = token.rsplit_once('#') {
                batch.delete(keys::owned(name, id));
            }
            batch.delete(key.clone());
        }
        batch.expect(key.clone(), current);
        batch.notify(format!("w{id}"));
        if !unfinished {
            return Ok(());
        }
        match &self.member {
            Some(m) => {
                batch
                    .put(key, m.token().into_bytes())
                    .put(keys::owned(&m.name, id), Vec::new());
            }
            None => {
                batch
                    .put(keys::unassigned(id), Vec::new())
                    .notify(format!("u{id}"));
            }
        }
        Ok(())
    }

    /// Adds to a batch that replaces instance `id`'s record (a reset of a
    /// parked instance) who runs it: the worker that owns it, if another
    /// holds it (its record changes under its fencing token; it is told to
    /// look again, and a lapsed owner's instances are taken over as ever),
    /// else this worker, or the first to claim it for a tool. Whether this
    /// process runs it.
    pub(crate) async fn stage_replacing_owner(
        &self,
        id: &str,
        batch: &mut Batch,
    ) -> Result<bool, StoreError> {
        if !self.store.shared() {
            return Ok(true);
        }
        let key = keys::owner(id);
        let current = self.get(&key).await?;
        let mine = self.member.as_ref().map(|m| m.token().into_bytes());
        match (&current, &mine) {
            (Some(owner), Some(me)) if owner == me => Ok(true),
            (Some(_), _) => {
                batch.expect(key, current).notify(format!("w{id}"));
                Ok(false)
            }
            (None, _) => {
                self.stage_import_owner(id, true, batch).await?;
                Ok(mine.is_some())
            }
        }
    }

    /// After the batch of [`stage_owner`](Self::stage_owner) committed.
    pub(crate) fn owned_now(&self, id: &str) {
        if let Some(m) = &self.member {
            m.insert(id);
        }
    }

    /// Who commits a checkpoint of instance `id` (the fencing that
    /// `transition::surrounding_writes` writes): on a shared store, this
    /// worker under its lease token; a conflict if the lease may have
    /// lapsed (as if taken over already).
    pub(crate) fn committer(&self, id: &str) -> Result<Committer, StoreError> {
        if !self.store.shared() {
            return Ok(Committer::Alone);
        }
        let owner = match &self.member {
            Some(m) if m.check_lease() => {
                return Err(StoreError::Conflict {
                    key: crate::store::printable(&keys::owner(id)),
                });
            }
            Some(m) => Some((m.name.clone(), m.token())),
            None => None,
        };
        Ok(Committer::Shared { owner })
    }

    /// Registers this worker (a new incarnation of its name), takes over
    /// what an earlier incarnation of the name left, and claims instances
    /// waiting for an owner. How many instances it resumed.
    pub(crate) async fn join(self: &Arc<Self>) -> Result<usize, StoreError> {
        let Some(m) = &self.member else {
            return Ok(0);
        };
        let key = keys::lease(&m.name);
        let previous = self.get(&key).await?;
        let incarnation = match &previous {
            Some(bytes) => {
                let old: LeaseRecord = codec::decode(bytes).map_err(|e| StoreError::Corrupt {
                    key: crate::store::printable(&key),
                    reason: e.to_string(),
                })?;
                if old.expires_ms > wall_ms() {
                    tracing::info!(worker = %m.name, "taking over the instances of this name's previous process before its lease lapsed (if that process still runs, two processes share a name: give each its own)");
                }
                old.incarnation + 1
            }
            None => 1,
        };
        let token = format!("{}#{incarnation}.{:016x}", m.name, rand::random::<u64>());
        let record = m.lease_record(incarnation, token.clone(), wall_ms());
        let bytes = codec::encode(&record).map_err(|e| StoreError::Codec(e.to_string()))?;
        let mut batch = solo();
        batch.expect(key.clone(), previous).put(key, bytes.clone());
        let sent = Instant::now();
        self.store.commit(batch).await?;
        *m.token.write().expect("token lock poisoned") = token;
        *m.lease_bytes.lock().expect("lease lock poisoned") = bytes.clone();
        *m.renewed.lock().expect("renewed lock poisoned") = sent;
        m.fenced.store(false, Ordering::SeqCst);
        tracing::info!(worker = %m.name, incarnation, "worker joined");
        // the claims below may take longer than the lease (a backlog, a
        // slow database): the lease is renewed meanwhile, as the member
        // service does once the runtime is open
        let claiming = std::pin::pin!(self.claim_at_join(m));
        let renewing = std::pin::pin!(async {
            loop {
                tokio::time::sleep(m.tick()).await;
                // taken over meanwhile: the claims fail, fenced, and the
                // member service joins again once the runtime is open
                Box::pin(self.renew_once(false)).await;
            }
        });
        match futures::future::select(claiming, renewing).await {
            futures::future::Either::Left((claimed, _)) => claimed,
            futures::future::Either::Right(((), _)) => unreachable!("the renewals never end"),
        }
    }

    /// What [`join`](Engine::join) takes once its lease is written: this
    /// name's earlier processes' instances, the orphans of a cluster it is
    /// alone in, the instances waiting for an owner and those of lapsed
    /// workers. How many it resumed.
    async fn claim_at_join(self: &Arc<Self>, m: &Member) -> Result<usize, StoreError> {
        let mut resumed = 0;
        // this name's earlier processes are gone: their instances are ours
        // now, each page claimed on the lease as this process last wrote it
        // (a renewal waits for the page)
        let lease_key = keys::lease(&m.name);
        let mut from = keys::owned_prefix(&m.name);
        loop {
            let _writing = m.lease_writes.lock().await;
            let bytes = m.lease_bytes.lock().expect("lease lock poisoned").clone();
            let Some((n, next)) = self.claim_page(&m.name, &lease_key, &bytes, &from).await? else {
                break;
            };
            resumed += n;
            from = next;
        }
        let alone = self
            .scan_prefix(&[keys::LEASE])
            .await?
            .iter()
            .all(|(k, _)| keys::instance_id(k) == m.name);
        if alone {
            resumed += self.adopt_orphans().await?;
        }
        resumed += self.claim_unassigned().await?;
        resumed += self.take_over_lapsed().await?;
        Ok(resumed)
    }

    /// Renews the lease, fences this process when it could not in time,
    /// and (in a task of its own, [`Engine::pass_service`]) takes over
    /// lapsed workers; runs until the runtime stops.
    pub(crate) async fn member_service(self: Arc<Self>) {
        let Some(m) = &self.member else {
            return;
        };
        let tick = m.tick();
        // a pass may take long (a dead worker's instances to take over, a
        // burst of instances to claim): were it in this loop, the renewals
        // would wait for it, the lease would lapse and the others would
        // take this worker's instances in turn
        let passes = self.clone();
        self.add_task(async move { passes.pass_service(tick).await });
        loop {
            tokio::time::sleep(tick).await;
            self.renew_once(true).await;
        }
    }

    /// Renews the lease once (bounded to half of it), acts on the answer
    /// (back after a lapse: what this worker still owns is resumed; taken
    /// over: it joins again if `rejoin`) and fences this process if the
    /// lease may have lapsed.
    async fn renew_once(self: &Arc<Self>, rejoin: bool) {
        let Some(m) = &self.member else {
            return;
        };
        let renewed = {
            let _writing = m.lease_writes.lock().await;
            tokio::time::timeout(m.lease / 2, self.renew()).await
        };
        match renewed {
            Ok(Ok(Renewal::Renewed)) => {}
            Ok(Ok(Renewal::Back)) => {
                tracing::warn!(worker = %m.name, "lease renewed again: resuming what this worker still owns");
                let _passing = m.passing.lock().await;
                if let Err(e) = self.resync_owned().await {
                    tracing::warn!(error = %e, "resuming owned instances failed");
                }
            }
            Ok(Ok(Renewal::Lost)) if !rejoin => {
                tracing::error!(worker = %m.name, "this worker's lease was taken over while it joined");
            }
            Ok(Ok(Renewal::Lost)) => {
                tracing::error!(worker = %m.name, "this worker's lease was taken over: joining again");
                let _passing = m.passing.lock().await;
                m.forget_owned();
                if let Err(e) = Box::pin(self.join()).await {
                    tracing::warn!(error = %e, "joining again failed; retrying");
                }
            }
            Ok(Err(e)) => tracing::warn!(worker = %m.name, error = %e, "lease renewal failed"),
            Err(_) => tracing::warn!(worker = %m.name, "lease renewal timed out"),
        }
        m.check_lease();
    }

    /// Every `tick` while the lease holds: takes over the instances of
    /// lapsed workers, claims those waiting for an owner and acts again on
    /// the messages it failed to act on.
    async fn pass_service(self: Arc<Self>, tick: Duration) {
        let Some(m) = &self.member else {
            return;
        };
        loop {
            tokio::time::sleep(tick).await;
            let _passing = m.passing.lock().await;
            if m.check_lease() {
                continue;
            }
            if let Err(e) = self.take_over_lapsed().await {
                tracing::warn!(error = %e, "takeover pass failed");
            }
            if let Err(e) = self.claim_unassigned().await {
                tracing::warn!(error = %e, "claiming unassigned instances failed");
            }
            if let Err(e) = self.act_on_missed().await {
                tracing::warn!(error = %e, "acting again on missed messages failed");
            }
        }
    }

    /// Acts again on what this worker failed to act on. Nothing else is
    /// looked for: every request is announced by a message, and a gap in
    /// the messages by a resync (the store's subscription announces it), so
    /// a pass reads only what changed, never the cluster's requests.
    async fn act_on_missed(self: &Arc<Self>) -> Result<(), StoreError> {
        let Some(m) = &self.member else {
            return Ok(());
        };
        let mut missed = m.take_missed().into_iter();
        while let Some(notice) = missed.next() {
            if let Err(e) = self.on_notice(&notice).await {
                m.missed(notice);
                missed.for_each(|n| m.missed(n));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes the lease anew, conditional on the last written one.
    async fn renew(&self) -> Result<Renewal, StoreError> {
        let Some(m) = &self.member else {
            return Ok(Renewal::Renewed);
        };
        let key = keys::lease(&m.name);
        let old = m.lease_bytes.lock().expect("lease lock poisoned").clone();
        let current: LeaseRecord =
            codec::decode(&old).map_err(|e| StoreError::Codec(e.to_string()))?;
        let record = m.lease_record(
            current.incarnation,
            current.token.clone(),
            current.started_ms,
        );
        let bytes = codec::encode(&record).map_err(|e| StoreError::Codec(e.to_string()))?;
        let mut batch = solo();
        batch
            .expect(key.clone(), Some(old))
            .put(key.clone(), bytes.clone());
        let sent = Instant::now();
        match self.store.commit(batch).await {
            Ok(()) => {
                *m.lease_bytes.lock().expect("lease lock poisoned") = bytes;
                *m.renewed.lock().expect("renewed lock poisoned") = sent;
                if m.fenced.swap(false, Ordering::SeqCst) {
                    return Ok(Renewal::Back);
                }
                Ok(Renewal::Renewed)
            }
            Err(StoreError::Conflict { .. }) => {
                // a renewal that timed out here may have been applied late:
                // the stored lease is still this incarnation's
                if let Some(stored) = self.get(&key).await?
                    && codec::decode::<LeaseRecord>(&stored).is_ok_and(|l| l.token == current.token)
                {
                    *m.lease_bytes.lock().expect("lease lock poisoned") = stored;
                    return Ok(Renewal::Renewed);
                }
                m.fenced.store(true, Ordering::SeqCst);
                Ok(Renewal::Lost)
            }
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the owned set from the store (what was not taken over while
    /// fenced) and wakes each instance.
    async fn resync_owned(self: &Arc<Self>) -> Result<(), StoreError> {
        let Some(m) = &self.member else {
            return Ok(());
        };
        // one rebuild at a time; an instance claimed or let go while it
        // reads stays so (its read may predate the claim)
        let _rebuilding = m.rebuilding.lock().await;
        m.rebuild_begins();
        let read = self.read_owned(m).await;
        let mine = match read {
            Ok(mine) => mine,
            Err(e) => {
                m.owned.lock().expect("owned lock poisoned").meanwhile = None;
                return Err(e);
            }
        };
        let mut ids: Vec<String> = mine.iter().cloned().collect();
        ids.sort();
        m.rebuild_ends(mine);
        self.resume_claimed(ids).await.map(|_| ())
    }

    /// The instances the store says this worker owns: listed under its
    /// name, with its token as their owner.
    async fn read_owned(&self, m: &Member) -> Result<HashSet<String>, StoreError> {
        let prefix = keys::owned_prefix(&m.name);
        let token = m.token();
        let listed: Vec<String> = self
            .scan_prefix(&prefix)
            .await?
            .into_iter()
            .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            .collect();
        // the owner keys beside the index, both in id order: a scan per
        // page, not a read per instance
        let mut mine = HashSet::new();
        for page in listed.chunks(CLAIM_PAGE) {
            let wanted: HashSet<&str> = page.iter().map(String::as_str).collect();
            let last = keys::owner(&page[page.len() - 1]);
            let mut from = keys::owner(&page[0]);
            'page: loop {
                let owners = self.scan_from(&[keys::OWNER], &from, CLAIM_PAGE).await?;
                let Some((end, _)) = owners.last() else {
                    break;
                };
                from = keys::after(end);
                for (key, owner) in owners {
                    if key > last {
                        break 'page;
                    }
                    let id = keys::instance_id(&key);
                    if owner == token.as_bytes() && wanted.contains(id.as_str()) {
                        mine.insert(id);
                    }
                }
            }
        }
        Ok(mine)
    }

    /// On a clean stop: hands every instance this worker owns back to the
    /// pool (the others, or the next process, claim them at once) and
    /// removes the lease.
    pub(crate) async fn leave(&self) -> Result<(), StoreError> {
        let Some(m) = &self.member else {
            return Ok(());
        };
        if m.is_fenced() {
            return Ok(());
        }
        let token = m.token();
        let prefix = keys::owned_prefix(&m.name);
        loop {
            let page = self.scan_from(&prefix, &prefix, CLAIM_PAGE).await?;
            if page.is_empty() {
                break;
            }
            let mut batch = solo();
            for (key, _) in page {
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                batch
                    .expect(keys::owner(&id), Some(token.clone().into_bytes()))
                    .delete(keys::owner(&id))
                    .delete(key)
                    .put(keys::unassigned(&id), Vec::new())
                    .notify(format!("u{id}"));
            }
            self.store.commit(batch).await?;
        }
        let lease = m.lease_bytes.lock().expect("lease lock poisoned").clone();
        let key = keys::lease(&m.name);
        let mut batch = solo();
        batch.expect(key.clone(), Some(lease)).delete(key);
        self.store.commit(batch).await?;
        m.fenced.store(true, Ordering::SeqCst);
        tracing::info!(worker = %m.name, "worker left");
        Ok(())
    }
}

mod claims;
mod notices;
pub(crate) use notices::until_listening;
