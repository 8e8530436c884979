//! The sled store's own tests: durability of its groups, and scans that
//! see each group whole or not at all without holding up commits.

use super::super::wal;
use super::*;
#[cfg(feature = "testing")]
use crate::store::CommitPoint;

#[tokio::test]
async fn every_acknowledged_commit_is_fsynced_and_concurrent_commits_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut b = Batch::default();
    b.put(b"a".to_vec(), vec![1]);
    store.commit(b).await.unwrap();
    let s = store.stats();
    assert_eq!((s.commits, s.flushes), (1, 1));
    assert!(
        s.fsyncs >= 1,
        "a commit was acknowledged without an fsync: {s:?}"
    );

    let waits: Vec<_> = (0..200u32)
        .map(|i| {
            let mut b = Batch::default();
            b.put(i.to_be_bytes().to_vec(), vec![0; 16]);
            store.commit(b)
        })
        .collect();
    for w in futures::future::join_all(waits).await {
        w.unwrap();
    }
    let s = store.stats();
    assert_eq!(s.commits, 201);
    assert!(s.flushes < 201, "group commit did not batch: {s:?}");
    assert!(s.fsyncs >= s.flushes, "a flush went without fsync: {s:?}");
    assert_eq!(store.get(b"a").unwrap(), Some(vec![1]));
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn readers_do_not_see_a_group_before_its_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut b = Batch::default();
    b.put(b"ka".to_vec(), vec![1]).put(b"kb".to_vec(), vec![1]);
    store.commit(b).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (reader, log) = (store.clone(), seen.clone());
    store.set_commit_hook(move |point| {
        if let CommitPoint::Applied(_) = point {
            let view = (
                reader.get(b"ka").unwrap(),
                reader.scan_prefix(b"k").unwrap(),
                reader.scan_from(b"k", b"k", 2).unwrap(),
            );
            log.lock().unwrap().push(view);
        }
    });
    // changes one key, deletes one, adds one: none visible before the fsync
    let mut b = Batch::default();
    b.put(b"ka".to_vec(), vec![2])
        .delete(b"kb".to_vec())
        .put(b"k0".to_vec(), vec![2]);
    store.commit(b).await.unwrap();
    let before = vec![(b"ka".to_vec(), vec![1]), (b"kb".to_vec(), vec![1])];
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, [(Some(vec![1]), before.clone(), before)]);
    // and all of it once acknowledged
    assert_eq!(
        store.scan_prefix(b"k").unwrap(),
        [(b"k0".to_vec(), vec![2]), (b"ka".to_vec(), vec![2])]
    );
}

#[tokio::test]
async fn conditions_are_checked_atomically_within_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // two creates of one key in the same group: exactly one wins
    let create = |v: u8| {
        let mut b = Batch::default();
        b.expect(b"k".to_vec(), None).put(b"k".to_vec(), vec![v]);
        store.commit(b)
    };
    let (a, b) = futures::join!(create(1), create(2));
    assert!(a.is_ok() != b.is_ok(), "one create must win: {a:?} {b:?}");
    let winner = if a.is_ok() { 1 } else { 2 };
    assert_eq!(store.get(b"k").unwrap(), Some(vec![winner]));
    assert!(matches!(
        a.err().or(b.err()),
        Some(StoreError::Conflict { .. })
    ));
    // compare-and-set on the current value
    let mut cas = Batch::default();
    cas.expect(b"k".to_vec(), Some(vec![winner]))
        .put(b"k".to_vec(), vec![9]);
    store.commit(cas).await.unwrap();
    let mut stale = Batch::default();
    stale
        .expect(b"k".to_vec(), Some(vec![winner]))
        .put(b"k".to_vec(), vec![10]);
    assert!(matches!(
        store.commit(stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.get(b"k").unwrap(), Some(vec![9]));
}

#[tokio::test]
async fn large_values_in_blob_files_are_fsynced_at_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // each value is durable through the log at once; the second fills
    // the log past its checkpoint size
    for i in 0..2u8 {
        let mut b = Batch::default();
        b.put(vec![b'b', i], vec![7; 4 << 20]);
        store.commit(b).await.unwrap();
    }
    let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
    // the checkpoint follows the answer; the next group waits for it
    let mut b = Batch::default();
    b.put(b"small".to_vec(), vec![1]);
    store.commit(b).await.unwrap();
    let s = store.stats();
    assert_eq!(s.checkpoints, 1, "{s:?}");
    assert!(blobs > 0, "a 4 MiB value should live in a blob file");
    // per group one log fdatasync; the checkpoint: sled's data file, every
    // blob, the blob directory and the emptied log
    assert!(
        s.fsyncs >= s.flushes + 3 + blobs as u64,
        "{s:?}, {blobs} blobs"
    );
    // emptied by the checkpoint, then the small group alone (and the zeros
    // the log is extended by ahead of it)
    let bytes = std::fs::read(dir.path().join(wal::FILE)).unwrap();
    let log = wal::parse(std::path::Path::new(wal::FILE), &bytes).unwrap();
    assert_eq!(log.records.len(), 1);
    assert!(
        log.valid_bytes < 100,
        "a checkpoint empties the log: {} bytes of records",
        log.valid_bytes
    );
    assert_eq!(
        store.get(&[b'b', 1]).unwrap().map(|v| v.len()),
        Some(4 << 20)
    );
}

#[tokio::test]
async fn what_sled_writes_between_checkpoints_is_synced_after_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // more than one of sled's 512 KiB log buffers: sled writes its file
    let mut b = Batch::default();
    for i in 0..2_000u32 {
        b.put(i.to_be_bytes().to_vec(), vec![3; 400]);
    }
    store.commit(b).await.unwrap();
    // the upkeep follows the answer; the next group waits for it
    let mut b = Batch::default();
    b.put(b"small".to_vec(), vec![1]);
    store.commit(b).await.unwrap();
    let s = store.stats();
    assert_eq!((s.flushes, s.checkpoints), (2, 0), "{s:?}");
    assert!(
        s.fsyncs > s.flushes,
        "sled wrote its file and it was not synced: {s:?}"
    );
}

#[tokio::test]
async fn what_only_the_log_holds_is_replayed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let mut b = Batch::default();
        b.put(b"kept".to_vec(), vec![1])
            .put(b"gone".to_vec(), vec![1]);
        store.commit(b).await.unwrap();
    }
    // as if sled had lost its unflushed tail: two groups only in the log
    {
        let (mut log, _) = wal::Wal::open(&RealFs, dir.path()).unwrap();
        for writes in [
            &[(&b"gone"[..], None), (&b"new"[..], Some(&b"1"[..]))][..],
            &[
                (&b"new"[..], Some(&b"2"[..])),
                (&b"kept"[..], Some(&b"3"[..])),
            ][..],
        ] {
            let mut r = wal::Record::default();
            r.clear();
            for (k, v) in writes {
                r.push(k, *v);
            }
            r.seal(log.epoch()).unwrap();
            log.append(r.bytes()).unwrap();
        }
        log.sync().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.scan_prefix(b"").unwrap(),
        [
            (b"kept".to_vec(), b"3".to_vec()),
            (b"new".to_vec(), b"2".to_vec())
        ]
    );
    // replayed into sled and checkpointed: the log is empty again
    assert_eq!(store.stats().checkpoints, 1);
    assert_eq!(
        std::fs::metadata(dir.path().join(wal::FILE)).unwrap().len(),
        wal::FILE_HEADER as u64
    );
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    // sled's lock is per process (fcntl-style via flock on Linux is per open file description)
    match SledStore::open(dir.path()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("the same directory opened twice"),
    }
}

type KeyValues = Vec<super::super::KeyValue>;

fn batch(writes: &[(&[u8], Option<&[u8]>)]) -> Batch {
    let mut b = Batch::default();
    for (k, v) in writes {
        match v {
            Some(v) => b.put(k.to_vec(), v.to_vec()),
            None => b.delete(k.to_vec()),
        };
    }
    b
}

fn kvs(items: &[(&[u8], &[u8])]) -> KeyValues {
    (items.iter())
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// What `scan` returns when `groups` are committed while it is paused
/// after reading `keys` keys (0: registered, nothing read). sled's
/// iterator goes on reading the leaf it was in as it was then; pausing
/// at 0 keys, or in a tree of many leaves, makes it read what the groups
/// wrote.
async fn scan_across(
    store: &SledStore,
    keys: usize,
    scan: impl FnOnce(&SledStore) -> Result<KeyValues, StoreError> + Send + 'static,
    groups: Vec<Batch>,
) -> KeyValues {
    // only turns a deadlock into a failure: nothing here is timed
    const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(30);
    let (paused_tx, paused) = std::sync::mpsc::channel();
    // a panic here drops `resume`, which lets the scan go on
    let (resume, resume_rx) = std::sync::mpsc::channel::<()>();
    let hook = move || {
        paused_tx.send(()).unwrap();
        let _ = resume_rx.recv();
    };
    *store.inner.scan_hook.lock().unwrap() = Some((keys, Box::new(hook)));
    let reader = store.clone();
    let scanning = std::thread::spawn(move || scan(&reader));
    paused
        .recv_timeout(WATCHDOG)
        .expect("the scan never paused");
    for group in groups {
        let committed = tokio::time::timeout(WATCHDOG, store.commit(group)).await;
        committed.expect("a commit waited for a scan").unwrap();
    }
    resume.send(()).unwrap();
    let read = scanning.join().unwrap().unwrap();
    // what was kept for the scan is let go with it
    let kept = store.inner.groups.lock().unwrap();
    assert!(kept.scans.is_empty() && kept.kept.is_empty());
    read
}

#[tokio::test]
async fn a_scan_in_progress_does_not_hold_up_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let v1: &[u8] = b"1";
    store
        .commit(batch(&[(b"ka", Some(v1)), (b"kb", Some(v1))]))
        .await
        .unwrap();
    // paused after `ka`, mid-iteration: the group must still go through
    let group = batch(&[(b"kc", Some(b"2"))]);
    scan_across(&store, 1, |s| s.scan_prefix(b"k"), vec![group]).await;
    assert_eq!(store.get(b"kc").unwrap(), Some(b"2".to_vec()));
}

#[tokio::test]
async fn a_scan_sees_a_group_committed_during_it_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let (v1, v2, v3): (&[u8], &[u8], &[u8]) = (b"1", b"2", b"3");
    let abc = [(&b"ka"[..], Some(v1)), (b"kb", Some(v1)), (b"kc", Some(v1))];
    store.commit(batch(&abc)).await.unwrap();
    // after `ka` is read: rewrites keys, deletes one, adds one before
    // and one after the scan's position
    let group = batch(&[
        (b"ka", Some(v2)),
        (b"kb", Some(v2)),
        (b"kc", None),
        (b"kd", Some(v2)),
        (b"k0", Some(v2)),
    ]);
    let before = kvs(&[(b"ka", v1), (b"kb", v1), (b"kc", v1)]);
    let read = scan_across(&store, 1, |s| s.scan_prefix(b"k"), vec![group]).await;
    assert_eq!(read, before);
    let after = kvs(&[(b"k0", v2), (b"ka", v2), (b"kb", v2), (b"kd", v2)]);
    assert_eq!(store.scan_prefix(b"k").unwrap(), after);

    // several groups during one scan: the state before the first
    store.commit(batch(&abc)).await.unwrap();
    store
        .commit(batch(&[(b"kd", None), (b"k0", None)]))
        .await
        .unwrap();
    let groups = vec![
        batch(&[(b"kb", Some(v2)), (b"kd", Some(v2))]),
        batch(&[(b"kb", Some(v3)), (b"kc", None), (b"kd", None)]),
    ];
    let read = scan_across(&store, 0, |s| s.scan_prefix(b"k"), groups).await;
    assert_eq!(read, before);

    // thousands of keys: past `k00000` the scan reads leaves as the
    // group left them (every 7th key rewritten, every 11th deleted, new
    // keys between)
    let key = |i: u32| format!("k{i:05}").into_bytes();
    let mut b = Batch::default();
    for i in (0..4_000).step_by(2) {
        b.put(key(i), vec![1; 64]);
    }
    store.commit(b).await.unwrap();
    let before = store.scan_prefix(b"k").unwrap();
    let mut group = Batch::default();
    for i in 1..4_000 {
        match i {
            _ if i % 11 == 0 => group.delete(key(i)),
            _ if i % 7 == 0 || i % 2 == 1 => group.put(key(i), vec![2; 64]),
            _ => continue,
        };
    }
    let scan = |s: &SledStore| s.scan_from(b"k", b"k", 1_500);
    let read = scan_across(&store, 1, scan, vec![group]).await;
    assert_eq!(read, before[..1_500]);
    assert_ne!(store.scan_prefix(b"k").unwrap(), before);
}

#[tokio::test]
async fn a_limited_scan_sees_a_group_committed_during_it_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let (v1, v2): (&[u8], &[u8]) = (b"1", b"2");
    let odd = [(&b"ka"[..], Some(v1)), (b"kc", Some(v1)), (b"ke", Some(v1))];
    store.commit(batch(&odd)).await.unwrap();
    // new keys at the scan's start fill its first fetch: it must read on
    // to find the two keys that existed
    let group = batch(&[(b"kb", Some(v2)), (b"kc", Some(v2)), (b"kd", Some(v2))]);
    let read = scan_across(&store, 0, |s| s.scan_from(b"k", b"k", 2), vec![group]).await;
    assert_eq!(read, kvs(&[(b"ka", v1), (b"kc", v1)]));

    // deleted keys come back from the group's previous values; from a
    // `from` inside the prefix
    let group = batch(&[(b"kc", None), (b"kd", None), (b"k0", Some(v2))]);
    let scan = |s: &SledStore| s.scan_from(b"k", b"kb", 3);
    let read = scan_across(&store, 0, scan, vec![group]).await;
    assert_eq!(read, kvs(&[(b"kb", v2), (b"kc", v2), (b"kd", v2)]));
    let after = kvs(&[(b"kb", v2), (b"ke", v1)]);
    assert_eq!(store.scan_from(b"k", b"kb", 3).unwrap(), after);
}
