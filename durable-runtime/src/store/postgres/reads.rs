//! The store's reads: the statements, the queries, and the two ways a
//! caller waits for them (`PgStore::ask` as a task, `PgStore::read` on its
//! thread). Every query runs on the store's own runtime.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::Pool;

use super::{PgStore, db_err, pg_err};
use crate::future::BoxFuture;
use crate::store::{KeyValue, StoreError};

/// The statements of reads.
const GET: &str = "SELECT value FROM durable_kv WHERE key = $1";
const SCAN: &str = "SELECT key, value FROM durable_kv \
     WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) ORDER BY key";
const SCAN_LIMIT: &str = "SELECT key, value FROM durable_kv \
     WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) ORDER BY key LIMIT $3";
/// How long a read waits on its caller's thread before it hands the
/// caller's tokio worker off (see `PgStore::read`).
const READ_HANDOFF: Duration = Duration::from_millis(10);

/// The counters, summed over their slots.
const COUNTERS: &str =
    "SELECT name, sum(n)::bigint FROM durable_counters GROUP BY name ORDER BY name";

impl PgStore {
    /// Runs `query` on the store's runtime; the future resolves with its
    /// answer, holding no thread meanwhile.
    pub(super) fn ask<T, F>(
        &self,
        query: impl FnOnce(Pool) -> F,
    ) -> BoxFuture<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let Some(rt) = self.inner.rt.as_ref() else {
            return Box::pin(std::future::ready(Err(StoreError::Closed)));
        };
        let query = query(self.inner.pool.clone());
        let metrics = self.inner.commits.metrics();
        let answer = rt.spawn(async move {
            let asked = std::time::Instant::now();
            let answer = query.await;
            metrics.read_done(asked.elapsed());
            answer
        });
        Box::pin(async move { answer.await.unwrap_or(Err(StoreError::Closed)) })
    }

    /// Runs `query` on the store's runtime and waits until it answers.
    ///
    /// Most reads answer within a round trip, and the caller simply waits.
    /// One that has not answered within [`READ_HANDOFF`] (a lock held
    /// elsewhere, a busy server) is waited for under `block_in_place` when
    /// called on a worker of a multi-threaded tokio runtime (the engine's
    /// tasks): the worker's other tasks move to another thread meanwhile,
    /// so a slow read never stalls the instances queued behind it. Handing
    /// off every read cost ~20% more CPU per workflow (`docs/deployment.md`).
    /// Elsewhere (a plain thread, a current-thread runtime, which cannot
    /// hand its tasks off) the thread waits.
    pub(super) fn read<T, F>(&self, query: impl FnOnce(Pool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        use std::sync::mpsc::RecvTimeoutError;
        let rt = self.inner.rt.as_ref().ok_or(StoreError::Closed)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let query = query(self.inner.pool.clone());
        let metrics = self.inner.commits.metrics();
        rt.spawn(async move {
            let asked = std::time::Instant::now();
            let answer = query.await;
            metrics.read_done(asked.elapsed());
            let _ = tx.send(answer);
        });
        match rx.recv_timeout(READ_HANDOFF) {
            Ok(answer) => return answer,
            Err(RecvTimeoutError::Disconnected) => return Err(StoreError::Closed),
            Err(RecvTimeoutError::Timeout) => {}
        }
        let wait = || rx.recv().unwrap_or(Err(StoreError::Closed));
        let on_a_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_a_worker {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        }
    }
}

/// The value of `key`.
pub(super) async fn get(pool: Pool, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
    let client = pool.get().await.map_err(db_err)?;
    let stmt = client.prepare_cached(GET).await.map_err(|e| pg_err(&e))?;
    let row = client
        .query_opt(&stmt, &[&key])
        .await
        .map_err(|e| pg_err(&e))?;
    Ok(row.map(|r| r.get(0)))
}

/// The keys from `from` up to `end` (exclusive; `None`: no end), at most
/// `limit` of them (`None`: all).
pub(super) async fn scan(
    pool: Pool,
    from: Vec<u8>,
    end: Option<Vec<u8>>,
    limit: Option<usize>,
) -> Result<Vec<KeyValue>, StoreError> {
    let client = pool.get().await.map_err(db_err)?;
    let rows = match limit {
        Some(limit) => {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let stmt = client
                .prepare_cached(SCAN_LIMIT)
                .await
                .map_err(|e| pg_err(&e))?;
            client.query(&stmt, &[&from, &end, &limit]).await
        }
        None => {
            let stmt = client.prepare_cached(SCAN).await.map_err(|e| pg_err(&e))?;
            client.query(&stmt, &[&from, &end]).await
        }
    }
    .map_err(|e| pg_err(&e))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Every counter, summed over its slots.
pub(super) async fn counters(pool: Pool) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
    let client = pool.get().await.map_err(db_err)?;
    let stmt = client
        .prepare_cached(COUNTERS)
        .await
        .map_err(|e| pg_err(&e))?;
    let rows = client.query(&stmt, &[]).await.map_err(|e| pg_err(&e))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
