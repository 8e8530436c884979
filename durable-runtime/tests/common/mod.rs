//! Helpers shared by the integration tests: waiting without timing
//! assertions (a condition, polled; a hang becomes a failure).

#![allow(dead_code)]

use std::time::Duration;

/// The backend matrix of the repository's suites, stated once.
///
/// A suite is a file of tests in `tests/suites/` that reads the constant
/// `BACKEND`. `suite!("suites/NAME.rs")` runs it in one test binary as one
/// module per backend, named for it: `NAME::redb::…` on the default store
/// and `NAME::postgres::…` on PostgreSQL (a throwaway server the tests
/// start). Tests particular to one backend follow that module's suite
/// from a file of their own (`redb: "suites/NAME_redb.rs"`,
/// `postgres: "…"`), so they see the suite's workflows and helpers. The
/// `Store` contract (`store: …`) runs on sled too, kept as an alternative
/// store.
///
/// One binary holds every backend: activities found by name (a saga's
/// compensation) are then linked once per module, and the suites name the
/// one their runtime runs with `Builder::activity`.
#[allow(unused_macros)]
macro_rules! suite {
    ($suite:literal $(, redb: $redb:literal)? $(, postgres: $pg:literal)? $(,)?) => {
        $crate::common::suite!(@on redb, Redb, $suite $(, $redb)?);
        $crate::common::suite!(@on postgres, Postgres, $suite $(, $pg)?);
    };
    (store: $suite:literal $(, postgres: $pg:literal)? $(,)?) => {
        $crate::common::suite!(@on redb, Redb, $suite);
        $crate::common::suite!(@on sled, Sled, $suite);
        $crate::common::suite!(@on postgres, Postgres, $suite $(, $pg)?);
    };
    (@on $module:ident, $backend:ident, $($file:literal),+) => {
        #[doc = concat!("The suite on `", stringify!($module), "`.")]
        #[allow(unreachable_pub)]
        mod $module {
            #[allow(unused_imports)]
            use $crate::common;
            #[allow(unused_imports)]
            use durable_runtime::testing::backends::Backend;
            #[allow(dead_code)]
            const BACKEND: durable_runtime::testing::backends::Backend =
                durable_runtime::testing::backends::Backend::$backend;
            $(include!($file);)+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use suite;

/// Fails a test that would otherwise hang.
pub(crate) trait Within: std::future::Future + Sized {
    async fn within(self) -> Self::Output {
        tokio::time::timeout(Duration::from_secs(30), self)
            .await
            .expect("timed out after 30 s")
    }
}

impl<F: std::future::Future> Within for F {}

/// Polls `f` until it holds; panics naming `what` after about 8 s.
pub(crate) async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..4000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What a [`SlowReads`] store is reading: one key, or keys from a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    Key,
    Scan,
}

/// What a [`SlowReads`] store calls before each read.
pub(crate) type BeforeRead = dyn Fn(Reading, &[u8]) + Send + Sync;

/// A store in memory whose every read first calls `before` with what it
/// reads (a test makes chosen reads slow, or hold them). Its async reads
/// run the blocking ones on tokio's blocking pool, as the embedded stores'
/// do.
#[derive(Clone)]
pub(crate) struct SlowReads {
    pub(crate) inner: durable_runtime::store::mem::MemStore,
    pub(crate) before: std::sync::Arc<BeforeRead>,
    /// The most keys one scan returned, by the first byte of its prefix.
    pub(crate) largest_scan: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u8, usize>>>,
}

impl SlowReads {
    pub(crate) fn new(before: impl Fn(Reading, &[u8]) + Send + Sync + 'static) -> SlowReads {
        SlowReads {
            inner: durable_runtime::store::mem::MemStore::default(),
            before: std::sync::Arc::new(before),
            largest_scan: std::sync::Arc::default(),
        }
    }

    fn scanned(&self, prefix: &[u8], found: &Answer<Vec<durable_runtime::store::KeyValue>>) {
        if let (Some(first), Ok(found)) = (prefix.first(), found) {
            let mut largest = self.largest_scan.lock().unwrap();
            let most = largest.entry(*first).or_default();
            *most = (*most).max(found.len());
        }
    }
}

type Answer<T> = Result<T, durable_runtime::store::StoreError>;

impl durable_runtime::store::Store for SlowReads {
    fn commit(
        &self,
        batch: durable_runtime::store::Batch,
    ) -> durable_runtime::activity::BoxFuture<Answer<()>> {
        self.inner.commit(batch)
    }
    fn get(&self, key: &[u8]) -> Answer<Option<Vec<u8>>> {
        (self.before)(Reading::Key, key);
        self.inner.get(key)
    }
    fn counters(&self) -> Answer<Vec<(Vec<u8>, i64)>> {
        self.inner.counters()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Answer<Vec<durable_runtime::store::KeyValue>> {
        (self.before)(Reading::Scan, prefix);
        let found = self.inner.scan_prefix(prefix);
        self.scanned(prefix, &found);
        found
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Answer<Vec<durable_runtime::store::KeyValue>> {
        (self.before)(Reading::Scan, prefix);
        let found = self.inner.scan_from(prefix, from, limit);
        self.scanned(prefix, &found);
        found
    }
    fn get_async(
        &self,
        key: &[u8],
    ) -> durable_runtime::activity::BoxFuture<Answer<Option<Vec<u8>>>> {
        let (store, key) = (self.clone(), key.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.get(&key))
                .await
                .expect("the read ran")
        })
    }
    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> durable_runtime::activity::BoxFuture<Answer<Vec<durable_runtime::store::KeyValue>>> {
        let (store, prefix, from) = (self.clone(), prefix.to_vec(), from.to_vec());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.scan_from(&prefix, &from, limit))
                .await
                .expect("the read ran")
        })
    }
}
