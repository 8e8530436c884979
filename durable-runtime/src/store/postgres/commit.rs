//! How a group becomes durable on PostgreSQL: one transaction per group of
//! concurrent batches, its conditions checked under row and advisory
//! locks, and run again when the server aborts it (see the module docs of
//! [`super`]). The queue, gathering, hooks and counters are the commit
//! thread's, shared with the embedded stores (`store::commit`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::{db_err, pg_err};
use crate::store::commit::{CommitPoint, Counters, GroupWriter, Hooks};
use crate::store::{CommitRequest as Request, StoreError};

/// How often a transaction the server aborted (deadlock, serialization
/// failure) is run again before its requests fail with the server's error.
const ABORTED_RETRIES: u32 = 8;

/// The statements of the hot paths, prepared once per connection.
///
/// A key a condition requires to be *absent* is first locked by a
/// transaction-level advisory lock (on one of [`LOCK_SLOTS`] slots chosen by
/// a hash of the key, in sorted order): `FOR UPDATE` locks only rows that
/// exist, so without it two transactions could both find a key absent and
/// both write it. The rows are read after the lock is held, in a statement
/// of their own, so they include what the previous holder committed. A
/// condition on a present value needs no such lock: its row is locked.
const LOCK_KEYS: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k";
const LOCK_ROWS: &str =
    "SELECT key, value FROM durable_kv WHERE key = ANY($1) ORDER BY key FOR UPDATE";
const DELETE_KEYS: &str = "DELETE FROM durable_kv WHERE key = ANY($1)";
const UPSERT: &str = "INSERT INTO durable_kv (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const NOTIFY: &str = "SELECT pg_notify('durable', m) FROM unnest($1::text[]) AS m";
const ADD_COUNTS: &str = "INSERT INTO durable_counters (name, slot, n) \
     SELECT name, $2, n FROM unnest($1::bytea[], $3::bigint[]) AS t(name, n) \
     ON CONFLICT (name, slot) DO UPDATE SET n = durable_counters.n + excluded.n";

/// Advisory-lock slots keys are hashed into: a group takes at most this
/// many locks (the server's lock table is shared by every connection), and
/// two keys in one slot only serialize their creators.
const LOCK_SLOTS: u64 = 256;

/// The advisory lock of `key`: a stable hash (FNV-1a) into
/// [`LOCK_SLOTS`], offset so as not to meet the migration lock. Every build
/// and process must agree on it.
fn lock_id(key: &[u8]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    0x6475_7261_0000 + (hash % LOCK_SLOTS) as i64
}

/// PostgreSQL's [`GroupWriter`]: one transaction per group, on the
/// store's own runtime (the commit thread waits for it).
#[derive(Clone)]
pub(super) struct Transactions {
    pub(super) pool: Pool,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) counters: Arc<Counters>,
    /// This process's slot of every counter (see migration 3).
    pub(super) slot: i32,
}

impl GroupWriter for Transactions {
    /// Commits taken into one transaction at most.
    const MAX_GROUP: usize = 1024;

    fn write(
        &mut self,
        group: &mut [Request],
        index: u64,
        hooks: &Hooks,
    ) -> (Vec<Result<(), StoreError>>, bool) {
        self.rt.clone().block_on(self.answer(group, index, hooks))
    }
}

impl Transactions {
    /// Commits the group; per request, its answer, and whether the group's
    /// transaction committed.
    async fn answer(
        &self,
        group: &[Request],
        index: u64,
        hooks: &Hooks,
    ) -> (Vec<Result<(), StoreError>>, bool) {
        let (checks, result) = self.write(group, index, hooks).await;
        let durable = result.is_ok();
        let refused = matches!(result, Err(StoreError::Refused { .. }));
        if refused && group.len() > 1 {
            // one bad member (a key over the server's limits, say) must
            // not fail the others: each is tried once more, alone
            let mut answers = Vec::with_capacity(group.len());
            for request in group {
                let (mut check, alone) = self
                    .write(std::slice::from_ref(request), index, hooks)
                    .await;
                answers.push(check.pop().unwrap_or(Ok(())).and(alone));
            }
            return (answers, durable);
        }
        let answers = checks.into_iter().map(|c| c.and(result.clone())).collect();
        (answers, durable)
    }

    /// Commits one request in a transaction of its own (a solo batch,
    /// beside the groups; no hook).
    pub(super) async fn write_alone(self, request: Request) {
        let group = [request];
        let (mut checks, result) = self.write(&group, 0, &Hooks::default()).await;
        self.counters.committed(1);
        let [request] = group;
        let check = checks.pop().unwrap_or(Ok(()));
        let _ = request.done.send(check.and(result));
    }

    /// Runs the group in one transaction; per request, whether its
    /// conditions held, and for all, whether the transaction committed.
    ///
    /// A transaction the server aborted as a deadlock or a serialization
    /// failure applied nothing and is run again (PostgreSQL's advice for
    /// these two errors). The rows a group checks are locked in key order;
    /// those it only writes are not (locking them too up front avoided the
    /// deadlock, at 25–40% of the throughput: see `docs/deployment.md`), so
    /// two groups writing the same rows in crossing orders can still
    /// deadlock, and the server's detector (`deadlock_timeout`, 1 s by
    /// default) picks one to run again.
    async fn write(
        &self,
        group: &[Request],
        index: u64,
        hooks: &Hooks,
    ) -> (Vec<Result<(), StoreError>>, Result<(), StoreError>) {
        let mut aborted = 0u32;
        loop {
            match self.write_once(group, index, hooks).await {
                Attempt::Done(checks, result) => {
                    if result.is_ok() {
                        // each COMMIT waits for the server's WAL flush
                        self.counters.flushed();
                        self.counters.synced();
                    }
                    return (checks, result);
                }
                Attempt::Aborted(e) if aborted < ABORTED_RETRIES => {
                    aborted += 1;
                    tracing::debug!(error = %e, aborted, "postgres: transaction aborted by the server; running it again");
                    // apart from the transaction that won, by a little more each time
                    let jitter = rand::random::<u64>() % 8;
                    tokio::time::sleep(Duration::from_millis(u64::from(aborted) * 5 + jitter))
                        .await;
                }
                Attempt::Aborted(e) => {
                    let n = group.len();
                    return ((0..n).map(|_| Err(e.clone())).collect(), Err(e));
                }
            }
        }
    }

    /// One try of [`write`](Self::write).
    async fn write_once(&self, group: &[Request], index: u64, hooks: &Hooks) -> Attempt {
        let n = group.len();
        let fail_all =
            |e: StoreError| Attempt::Done((0..n).map(|_| Err(e.clone())).collect(), Err(e));
        // a statement's error: an abort the transaction may retry, or final
        let failed = |e: &tokio_postgres::Error| match e.code() {
            Some(code)
                if *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                Attempt::Aborted(pg_err(e))
            }
            _ => fail_all(pg_err(e)),
        };
        let mut client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => return fail_all(db_err(e)),
        };
        let tx = match client.transaction().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(pg_err(&e)),
        };
        // lock every row a condition names, in key order (two groups that
        // check the same rows wait for each other in one order)
        let mut watched: Vec<&[u8]> = group
            .iter()
            .flat_map(|r| r.batch.expect.iter().map(|(k, _)| k.as_slice()))
            .collect();
        watched.sort_unstable();
        watched.dedup();
        let mut current: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        if !watched.is_empty() {
            // keys required absent: their rows may not exist yet
            let mut locks: Vec<i64> = group
                .iter()
                .flat_map(|r| r.batch.expect.iter())
                .filter(|(_, expected)| expected.is_none())
                .map(|(k, _)| lock_id(k))
                .collect();
            locks.sort_unstable();
            locks.dedup();
            let rows = match async {
                if !locks.is_empty() {
                    let stmt = tx.prepare_cached(LOCK_KEYS).await?;
                    tx.execute(&stmt, &[&locks]).await?;
                }
                let stmt = tx.prepare_cached(LOCK_ROWS).await?;
                tx.query(&stmt, &[&watched]).await
            }
            .await
            {
                Ok(rows) => rows,
                Err(e) => return failed(&e),
            };
            for key in watched {
                current.insert(key.to_vec(), None);
            }
            for row in rows {
                current.insert(row.get(0), Some(row.get(1)));
            }
        }
        // the group's writes so far, in the order later conditions must see them
        let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut messages: Vec<String> = Vec::new();
        let mut counts: BTreeMap<&[u8], i64> = BTreeMap::new();
        let mut checks = Vec::with_capacity(n);
        for request in group {
            let failed = request.batch.expect.iter().find(|(key, expected)| {
                let now = writes
                    .get(key)
                    .or_else(|| current.get(key))
                    .and_then(|v| v.as_ref());
                now != expected.as_ref()
            });
            if let Some((key, _)) = failed {
                checks.push(Err(StoreError::Conflict {
                    key: crate::store::printable(key),
                }));
                continue;
            }
            for (key, value) in &request.batch.writes {
                writes.insert(key.clone(), value.clone());
            }
            messages.extend(request.batch.notify.iter().cloned());
            for (name, delta) in &request.batch.counts {
                *counts.entry(name).or_default() += delta;
            }
            checks.push(Ok(()));
        }
        let (deleted, put): (Vec<_>, Vec<_>) = writes.into_iter().partition(|(_, v)| v.is_none());
        if !deleted.is_empty() {
            let keys: Vec<&[u8]> = deleted.iter().map(|(k, _)| k.as_slice()).collect();
            let deleted = async {
                let stmt = tx.prepare_cached(DELETE_KEYS).await?;
                tx.execute(&stmt, &[&keys]).await
            };
            if let Err(e) = deleted.await {
                return failed(&e);
            }
        }
        if !put.is_empty() {
            let keys: Vec<&[u8]> = put.iter().map(|(k, _)| k.as_slice()).collect();
            let values: Vec<&[u8]> = put.iter().filter_map(|(_, v)| v.as_deref()).collect();
            let upserted = async {
                let stmt = tx.prepare_cached(UPSERT).await?;
                tx.execute(&stmt, &[&keys, &values]).await
            };
            if let Err(e) = upserted.await {
                return failed(&e);
            }
        }
        if !counts.is_empty() {
            // in name order, as every transaction takes these rows
            let (names, deltas): (Vec<&[u8]>, Vec<i64>) = counts.into_iter().unzip();
            let added = async {
                let stmt = tx.prepare_cached(ADD_COUNTS).await?;
                tx.execute(&stmt, &[&names, &self.slot, &deltas]).await
            };
            if let Err(e) = added.await {
                return failed(&e);
            }
        }
        if !messages.is_empty() {
            messages.sort_unstable();
            messages.dedup();
            let notified = async {
                let stmt = tx.prepare_cached(NOTIFY).await?;
                tx.execute(&stmt, &[&messages]).await
            };
            if let Err(e) = notified.await {
                return failed(&e);
            }
        }
        hooks.call(CommitPoint::Applied(index));
        match tx.commit().await {
            Ok(()) => {
                // counted once committed: an aborted try is run again
                for (request, check) in group.iter().zip(&checks) {
                    if check.is_ok() {
                        self.counters.accepted(&request.batch);
                    }
                }
                Attempt::Done(checks, Ok(()))
            }
            // the commit's outcome may be unknown: never run it again
            Err(e) => fail_all(pg_err(&e)),
        }
    }
}

/// How one try of a group's transaction ended.
enum Attempt {
    /// Per request, whether its conditions held; for all, the outcome.
    Done(Vec<Result<(), StoreError>>, Result<(), StoreError>),
    /// The server aborted the transaction before its commit (deadlock or
    /// serialization failure): nothing was applied.
    Aborted(StoreError),
}
