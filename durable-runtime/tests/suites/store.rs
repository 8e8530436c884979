// The `Store` contract, for every backend: included by `store.rs` once per
// backend (`common::suite!`), which sets `BACKEND`.

use std::sync::{Arc, Mutex};

use durable_runtime::store::CommitPoint;
use durable_runtime::store::{Batch, KeyValue, Store, StoreError};

fn kv(k: &[u8], v: &[u8]) -> KeyValue {
    (k.to_vec(), v.to_vec())
}

async fn put(store: &dyn Store, pairs: &[(&[u8], &[u8])]) {
    let mut b = Batch::default();
    for (k, v) in pairs {
        b.put(k.to_vec(), v.to_vec());
    }
    store.commit(b).await.unwrap();
}

#[tokio::test]
async fn acknowledged_writes_are_read_back_and_survive_a_reopen() {
    let db = BACKEND.store();
    {
        let store = db.open().await;
        put(&*store, &[(b"ka", b"1"), (b"kb", b"2")]).await;
        assert_eq!(store.get(b"ka").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(b"missing").unwrap(), None);
    }
    let store = db.open().await;
    assert_eq!(store.get(b"kb").unwrap(), Some(b"2".to_vec()));
}

#[tokio::test]
async fn writes_of_a_batch_apply_in_order_and_all_together() {
    let db = BACKEND.store();
    let store = db.open().await;
    put(&*store, &[(b"a", b"old"), (b"gone", b"x")]).await;
    let mut b = Batch::default();
    b.put(b"a".to_vec(), b"new".to_vec())
        .delete(b"gone".to_vec())
        .put(b"twice".to_vec(), b"first".to_vec())
        .put(b"twice".to_vec(), b"second".to_vec())
        .put(b"put-then-deleted".to_vec(), b"x".to_vec())
        .delete(b"put-then-deleted".to_vec())
        .delete(b"never-there".to_vec());
    store.commit(b).await.unwrap();
    assert_eq!(
        store.scan_prefix(b"").unwrap(),
        [kv(b"a", b"new"), kv(b"twice", b"second")]
    );
}

#[tokio::test]
async fn a_failed_condition_writes_nothing_of_its_batch() {
    let db = BACKEND.store();
    let store = db.open().await;
    put(&*store, &[(b"k", b"1")]).await;
    let mut b = Batch::default();
    b.expect(b"k".to_vec(), Some(b"other".to_vec()))
        .put(b"k".to_vec(), b"2".to_vec())
        .put(b"side".to_vec(), b"effect".to_vec());
    match store.commit(b).await {
        Err(StoreError::Conflict { key }) => assert_eq!(key, "k"),
        other => panic!("expected a conflict on k, got {other:?}"),
    }
    let mut b = Batch::default();
    b.expect(b"absent".to_vec(), Some(b"x".to_vec()))
        .delete(b"k".to_vec());
    assert!(matches!(
        store.commit(b).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut b = Batch::default();
    b.expect(b"k".to_vec(), None)
        .put(b"side".to_vec(), b"e".to_vec());
    assert!(matches!(
        store.commit(b).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.scan_prefix(b"").unwrap(), [kv(b"k", b"1")]);
}

#[tokio::test]
async fn compare_and_set_and_create_if_absent_hold() {
    let db = BACKEND.store();
    let store = db.open().await;
    let mut cas = Batch::default();
    cas.expect(b"k".to_vec(), None)
        .put(b"k".to_vec(), b"1".to_vec());
    store.commit(cas).await.unwrap();
    let mut cas = Batch::default();
    cas.expect(b"k".to_vec(), Some(b"1".to_vec()))
        .put(b"k".to_vec(), b"2".to_vec());
    store.commit(cas).await.unwrap();
    // the same condition again is stale now
    let mut stale = Batch::default();
    stale
        .expect(b"k".to_vec(), Some(b"1".to_vec()))
        .put(b"k".to_vec(), b"3".to_vec());
    assert!(matches!(
        store.commit(stale).await,
        Err(StoreError::Conflict { .. })
    ));
    // a condition on a deleted key sees it absent
    let mut del = Batch::default();
    del.expect(b"k".to_vec(), Some(b"2".to_vec()))
        .delete(b"k".to_vec());
    store.commit(del).await.unwrap();
    let mut again = Batch::default();
    again
        .expect(b"k".to_vec(), None)
        .put(b"k".to_vec(), b"4".to_vec());
    store.commit(again).await.unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"4".to_vec()));
}

#[tokio::test]
async fn concurrent_creates_of_one_key_have_exactly_one_winner() {
    let db = BACKEND.store();
    let store = db.open().await;
    // committed together, so a group commit must check each against the ones before it
    let commits: Vec<_> = (0..20u8)
        .map(|i| {
            let mut b = Batch::default();
            b.expect(b"k".to_vec(), None).put(b"k".to_vec(), vec![i]);
            store.commit(b)
        })
        .collect();
    let results = futures::future::join_all(commits).await;
    let winners: Vec<u8> = (0..20u8).filter(|i| results[*i as usize].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict { .. })))
    );
    assert_eq!(store.get(b"k").unwrap(), Some(vec![winners[0]]));
}

#[tokio::test]
async fn scans_stay_inside_their_prefix_in_key_order() {
    let db = BACKEND.store();
    let store = db.open().await;
    let keys: [&[u8]; 8] = [
        b"a",
        b"ab",
        b"ab\x00\x01",
        b"ab\xff",
        b"ab\xff\xff",
        b"ac",
        b"b",
        b"\xff\xff",
    ];
    // written in reverse, read in order
    for k in keys.iter().rev() {
        put(&*store, &[(*k, *k)]).await;
    }
    let scanned = |p: &[u8]| -> Vec<Vec<u8>> {
        store
            .scan_prefix(p)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        scanned(b"ab"),
        [&b"ab"[..], b"ab\x00\x01", b"ab\xff", b"ab\xff\xff"]
    );
    assert_eq!(scanned(b"ab\xff"), [&b"ab\xff"[..], b"ab\xff\xff"]);
    assert_eq!(scanned(b"\xff"), [&b"\xff\xff"[..]]);
    assert_eq!(scanned(b"").len(), keys.len());
    assert!(scanned(b"z").is_empty());
    // scan_from: from inside the prefix, a limit, and a `from` before the prefix
    let from = |p: &[u8], f: &[u8], n| -> Vec<Vec<u8>> {
        store
            .scan_from(p, f, n)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(from(b"ab", b"ab\x00", 2), [&b"ab\x00\x01"[..], b"ab\xff"]);
    assert_eq!(from(b"ab", b"a", 1), [&b"ab"[..]]);
    assert_eq!(from(b"ab", b"ab\xff\xff\x00", 10), Vec::<Vec<u8>>::new());
    assert_eq!(
        from(b"a", b"ab\xff", 10),
        [&b"ab\xff"[..], b"ab\xff\xff", b"ac"]
    );
    assert_eq!(
        store.scan_prefix(b"ac").unwrap(),
        [kv(b"ac", b"ac")],
        "values come with their keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_commit_before_it_is_durable() {
    let db = BACKEND.store();
    {
        let store = db.open().await;
        put(&*store, &[(b"ka", &[1]), (b"kb", &[1])]).await;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader: Arc<Mutex<Option<Arc<dyn Store>>>> = Arc::default();
    let (log, reads) = (seen.clone(), reader.clone());
    let store = db
        .open_with_commit_hook(move |point| {
            if let CommitPoint::Applied(_) = point {
                let Some(store) = reads.lock().unwrap().clone() else {
                    return;
                };
                let view = (
                    store.get(b"ka").unwrap(),
                    store.scan_prefix(b"k").unwrap(),
                    store.scan_from(b"k", b"k", 2).unwrap(),
                );
                log.lock().unwrap().push(view);
            }
        })
        .await;
    *reader.lock().unwrap() = Some(store.clone());
    // changes one key, deletes one, adds one: none visible before it is durable
    let mut b = Batch::default();
    b.put(b"ka".to_vec(), vec![2])
        .delete(b"kb".to_vec())
        .put(b"k0".to_vec(), vec![2]);
    store.commit(b).await.unwrap();
    reader.lock().unwrap().take();
    let before = vec![kv(b"ka", &[1]), kv(b"kb", &[1])];
    assert_eq!(
        seen.lock().unwrap().clone(),
        [(Some(vec![1]), before.clone(), before)]
    );
    assert_eq!(
        store.scan_prefix(b"k").unwrap(),
        [kv(b"k0", &[2]), kv(b"ka", &[2])]
    );
}

/// Each commit sets two keys to its number and moves a third: a read
/// that saw part of a commit, or lost one it had seen, would show it.
/// (redb answers a commit from its log and applies groups to its tree
/// later, many at once: these reads race those applications.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_sees_whole_commits_and_never_an_older_state_than_before() {
    const COMMITS: u64 = 1500;
    let db = BACKEND.store();
    let store = db.open().await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let number = |v: &[u8]| u64::from_be_bytes(v.try_into().unwrap());
                let (mut last, mut reads) = (0, 0u64);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let view = store.scan_prefix(b"p/").unwrap();
                    reads += 1;
                    if view.is_empty() {
                        assert_eq!(last, 0, "a scan lost every commit after seeing {last}");
                        continue;
                    }
                    let [(a, va), (b, vb), (c, vc)] = &view[..] else {
                        panic!("a scan saw part of a commit: {view:?}");
                    };
                    let n = number(va);
                    assert_eq!((a.as_slice(), b.as_slice()), (&b"p/a"[..], &b"p/b"[..]));
                    assert_eq!(number(vb), n, "a scan saw part of commit {n}");
                    assert_eq!(
                        c,
                        &format!("p/c{n:08}").into_bytes(),
                        "commit {n}'s moved key"
                    );
                    assert_eq!(number(vc), n);
                    assert!(n >= last, "a scan saw commit {n} after commit {last}");
                    last = n;
                    let got = store.get(b"p/b").unwrap().map(|v| number(&v));
                    assert!(
                        got >= Some(last),
                        "a read saw {got:?} after a scan saw {last}"
                    );
                }
                reads
            })
        })
        .collect();
    for n in 1..=COMMITS {
        let mut b = Batch::default();
        b.put(b"p/a".to_vec(), n.to_be_bytes().to_vec())
            .put(b"p/b".to_vec(), n.to_be_bytes().to_vec())
            .put(format!("p/c{n:08}").into_bytes(), n.to_be_bytes().to_vec());
        if n > 1 {
            b.delete(format!("p/c{:08}", n - 1).into_bytes());
        }
        store.commit(b).await.unwrap();
        // what was acknowledged is read back at once
        assert_eq!(store.get(b"p/a").unwrap(), Some(n.to_be_bytes().to_vec()));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let reads = reader.join().expect("a reader failed");
        assert!(reads > 0);
    }
}

#[tokio::test]
async fn concurrent_commits_share_transactions() {
    let db = BACKEND.store();
    let store = db.open().await;
    let commits: Vec<_> = (0..500u32)
        .map(|i| {
            let mut b = Batch::default();
            b.put(i.to_be_bytes().to_vec(), vec![0; 64]);
            store.commit(b)
        })
        .collect();
    let started = std::time::Instant::now();
    for result in futures::future::join_all(commits).await {
        result.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = store.stats().expect("both stores count commits");
    assert_eq!(stats.commits, 500);
    assert!(
        stats.flushes < 500,
        "concurrent commits were not grouped: {stats:?}"
    );
    println!(
        "{BACKEND:?}: 500 concurrent commits in {} durable writes, {elapsed:?}",
        stats.flushes
    );
}

#[tokio::test]
async fn a_second_process_is_refused_by_an_embedded_store_and_joins_postgres() {
    let db = BACKEND.store();
    let _first = db.open().await;
    let second = match BACKEND {
        Backend::Redb => {
            let dir = db.url().trim_start_matches("redb:").to_owned();
            tokio::task::spawn_blocking(move || {
                durable_runtime::store::redb::RedbStore::open(dir).map(|_| ())
            })
            .await
            .unwrap()
        }
        Backend::Sled => {
            let dir = db.url().trim_start_matches("sled:").to_owned();
            tokio::task::spawn_blocking(move || {
                durable_runtime::store::sled::SledStore::open(dir).map(|_| ())
            })
            .await
            .unwrap()
        }
        Backend::Postgres => {
            // many workers share a database: a second one joins
            let second = durable_runtime::Runtime::builder()
                .worker_name("second")
                .open_url(db.url())
                .await
                .expect("a second worker joins");
            second.shutdown().await;
            return;
        }
    };
    match second {
        Err(e @ StoreError::Locked { .. }) => {
            assert!(e.to_string().contains("DURABLE-LOCKED"), "{e}");
            assert!(!e.to_string().contains("password"), "{e}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

/// Counters add up the deltas of the batches that were applied (several in
/// one batch, a group of concurrent commits, across a reopen), never those
/// of a batch whose condition failed; a counter whose deltas cancel out is
/// still listed, at 0.
#[tokio::test]
async fn counters_add_up_the_deltas_of_applied_batches_only() {
    let db = BACKEND.store();
    let expected = [(b"a".to_vec(), 55), (b"b".to_vec(), -1), (b"c".to_vec(), 0)];
    {
        let store = db.open().await;
        assert_eq!(store.counters().unwrap(), []);
        let mut b = Batch::default();
        b.count(b"a".to_vec(), 2)
            .count(b"a".to_vec(), 3)
            .count(b"b".to_vec(), -1);
        store.commit(b).await.unwrap();
        let mut refused = Batch::default();
        refused
            .expect(b"k".to_vec(), Some(b"x".to_vec()))
            .count(b"a".to_vec(), 100);
        assert!(matches!(
            store.commit(refused).await,
            Err(StoreError::Conflict { .. })
        ));
        let commits: Vec<_> = (0..50u32)
            .map(|i| {
                let mut b = Batch::default();
                b.put(i.to_be_bytes().to_vec(), Vec::new())
                    .count(b"a".to_vec(), 1)
                    .count(b"c".to_vec(), if i % 2 == 0 { 1 } else { -1 });
                store.commit(b)
            })
            .collect();
        for result in futures::future::join_all(commits).await {
            result.unwrap();
        }
        assert_eq!(store.counters().unwrap(), expected);
    }
    let store = db.open().await;
    assert_eq!(store.counters().unwrap(), expected);
}

/// A batch that fails (here its condition does not hold) fails alone: the
/// batches committed beside it, in the same group, are written and
/// acknowledged. (On PostgreSQL a value the server refuses fails alone too:
/// `store_postgres.rs::one_bad_member_fails_alone_and_the_rest_of_its_group_commits`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_fails_alone_and_the_rest_of_its_group_commits() {
    let db = BACKEND.store();
    let store = db.open().await;
    put(&*store, &[(b"guard", b"1")]).await;
    for round in 0..5 {
        let mut commits = Vec::new();
        for i in 0..20u32 {
            let mut b = Batch::default();
            if i == 7 {
                b.expect(b"guard".to_vec(), Some(b"other".to_vec()));
            }
            b.put(format!("member-{round}-{i}").into_bytes(), vec![2]);
            commits.push((i, store.commit(b)));
        }
        for (i, commit) in commits {
            let result = commit.await;
            let stored = store.get(format!("member-{round}-{i}").as_bytes()).unwrap();
            if i == 7 {
                assert!(
                    matches!(result, Err(StoreError::Conflict { .. })),
                    "{result:?}"
                );
                assert_eq!(stored, None, "the failing batch wrote");
            } else {
                result.unwrap_or_else(|e| {
                    panic!("member-{round}-{i} failed with its neighbour: {e}")
                });
                assert_eq!(stored, Some(vec![2]));
            }
        }
    }
}
