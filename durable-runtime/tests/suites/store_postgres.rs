// What only PostgreSQL has, beside the `Store` contract: URLs, connection
// errors and schema migrations. Included after the suite in its `postgres`
// module (`common::suite!`).

use durable_runtime::testing::backends::PgCluster;

use durable_runtime::store::postgres::{PgStore, SCHEMA_VERSION};

/// Runs `sql` on the database at `url` with a plain client.
async fn sql(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.simple_query(sql).await.unwrap();
    client.query("SELECT 1", &[]).await.unwrap()
}

#[tokio::test]
async fn open_creates_the_schema_once_and_records_its_version() {
    let db = BACKEND.store();
    for _ in 0..2 {
        let store = PgStore::connect(db.url()).await.unwrap();
        drop(store);
    }
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM durable_schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_build_is_refused() {
    let db = BACKEND.store();
    drop(PgStore::connect(db.url()).await.unwrap());
    sql(
        db.url(),
        "INSERT INTO durable_schema_version (version, description) VALUES (999, 'from the future')",
    )
    .await;
    match PgStore::connect(db.url()).await {
        Err(e @ durable_runtime::store::StoreError::SchemaVersion { found: 999, .. }) => {
            assert!(e.to_string().contains("DURABLE-SCHEMA"), "{e}")
        }
        other => panic!("expected SchemaVersion, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_urls_and_missing_servers_are_clear_errors() {
    use durable_runtime::store::StoreError;
    for url in [
        "postgres://durable:secret@127.0.0.1:notaport/db",
        "postgres://127.0.0.1/db?sslmode=allow",
        "mysql://127.0.0.1/db",
        "sled:",
    ] {
        match durable_runtime::Runtime::builder().open_url(url).await {
            Err(durable_runtime::OpenError::Store(e @ StoreError::BadUrl { .. })) => {
                assert!(!e.to_string().contains("secret"), "{e}");
                println!("{url}: {e}");
            }
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://durable:secret@127.0.0.1:{port}/db");
    match durable_runtime::Runtime::builder().open_url(&url).await {
        Err(durable_runtime::OpenError::Store(e @ StoreError::Unreachable { .. })) => {
            assert!(!e.to_string().contains("secret"), "{e}");
            println!("{e}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // a server that is there, but a database that is not
    let cluster = PgCluster::shared().unwrap();
    let url = format!("postgres://durable@127.0.0.1:{}/no_such_db", cluster.port());
    match durable_runtime::Runtime::builder().open_url(&url).await {
        Err(durable_runtime::OpenError::Store(e @ StoreError::Unreachable { .. })) => {
            assert!(e.to_string().contains("no_such_db"), "{e}");
            println!("{e}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_of_applied_batches_reach_the_other_processes() {
    use durable_runtime::store::{Batch, Notice, Store, StoreError};
    let db = BACKEND.store();
    let writer = PgStore::connect(db.url()).await.unwrap();
    let reader = PgStore::connect(db.url()).await.unwrap();
    let mut heard = reader.subscribe().expect("a shared store has messages");
    assert!(reader.subscribe().is_none(), "one subscriber per store");
    assert!(writer.shared());
    // the listener connects in the background and says when it listens:
    // every message published after that is heard
    let listening = tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("listening within 10 s");
    assert_eq!(listening, Some(Notice::Listening));
    let mut b = Batch::default();
    b.put(b"k".to_vec(), vec![1]).notify("hello");
    writer.commit(b).await.unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv())
        .await
        .expect("heard within 5 s");
    assert_eq!(first, Some(Notice::Message("hello".into())));
    // a batch whose condition fails publishes nothing; the next one does
    let mut refused = Batch::default();
    refused
        .expect(b"k".to_vec(), None)
        .put(b"k".to_vec(), vec![2])
        .notify("refused");
    assert!(matches!(
        writer.commit(refused).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut applied = Batch::default();
    applied.put(b"j".to_vec(), vec![3]).notify("applied");
    writer.commit(applied).await.unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv())
        .await
        .expect("heard within 5 s");
    assert_eq!(next, Some(Notice::Message("applied".into())));
}

/// Several processes (here: stores with their own connections) requiring
/// the same keys to be absent: PostgreSQL's `FOR UPDATE` locks no row that
/// does not exist, so before the per-key advisory lock two of them could
/// both find a key absent and both write it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_required_absent_is_created_by_exactly_one_of_several_processes() {
    const STORES: u8 = 4;
    const KEYS: u32 = 60;
    let db = BACKEND.store();
    let mut stores = Vec::new();
    for _ in 0..STORES {
        stores.push(PgStore::connect(db.url()).await.unwrap());
    }
    let mut attempts = Vec::new();
    for key in 0..KEYS {
        for (s, store) in stores.iter().enumerate() {
            let mut b = Batch::default();
            let k = format!("create-{key}").into_bytes();
            b.expect(k.clone(), None).put(k, vec![s as u8]);
            attempts.push((key, s as u8, store.commit(b)));
        }
    }
    let mut winners: std::collections::HashMap<u32, Vec<u8>> = Default::default();
    for (key, s, attempt) in attempts {
        match attempt.await {
            Ok(()) => winners.entry(key).or_default().push(s),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("create-{key} from store {s}: {e}"),
        }
    }
    for key in 0..KEYS {
        let won = winners.get(&key).cloned().unwrap_or_default();
        assert_eq!(won.len(), 1, "create-{key} acknowledged to stores {won:?}");
        let stored = stores[0].get(format!("create-{key}").as_bytes()).unwrap();
        assert_eq!(stored, Some(won.clone()), "create-{key}");
    }
}

/// A key over the server's index limit makes the whole transaction fail:
/// before, every batch grouped with it failed too (and an engine retrying
/// such a batch failed its neighbours again and again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_member_fails_alone_and_the_rest_of_its_group_commits() {
    let db = BACKEND.store();
    let store = PgStore::connect(db.url()).await.unwrap();
    // incompressible, past the btree entry limit (about 2.7 KB)
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let huge: Vec<u8> = (0..6_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for round in 0..5 {
        let mut commits = Vec::new();
        for i in 0..20u32 {
            let mut b = Batch::default();
            if i == 7 {
                b.put(huge.clone(), vec![1]);
            } else {
                b.put(format!("fine-{round}-{i}").into_bytes(), vec![2]);
            }
            commits.push((i, store.commit(b)));
        }
        for (i, commit) in commits {
            let result = commit.await;
            if i == 7 {
                assert!(result.is_err(), "the oversized key was accepted");
            } else {
                result
                    .unwrap_or_else(|e| panic!("fine-{round}-{i} failed with its neighbour: {e}"));
                assert_eq!(
                    store.get(format!("fine-{round}-{i}").as_bytes()).unwrap(),
                    Some(vec![2])
                );
            }
        }
    }
}

/// A row lock held by someone else (an operator's open session) fails a
/// commit that needs the row after `lock_timeout`, with the server's reason,
/// instead of stalling the worker for as long as the session lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_locked_elsewhere_fails_the_commit_instead_of_stalling_it() {
    let db = BACKEND.store();
    let store = PgStore::connect(db.url()).await.unwrap();
    let mut b = Batch::default();
    b.put(b"locked".to_vec(), vec![1]);
    store.commit(b).await.unwrap();
    let (mut outsider, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tx = outsider.transaction().await.unwrap();
    tx.query(
        "SELECT value FROM durable_kv WHERE key = $1 FOR UPDATE",
        &[&b"locked".as_slice()],
    )
    .await
    .unwrap();
    let mut cas = Batch::default();
    cas.expect(b"locked".to_vec(), Some(vec![1]))
        .put(b"locked".to_vec(), vec![2]);
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), store.commit(cas))
        .await
        .expect("the commit stalled behind the outside lock");
    let e = result.expect_err("the row was locked elsewhere");
    assert!(e.to_string().contains("lock timeout"), "{e}");
    tx.rollback().await.unwrap();
    // the store goes on once the lock is gone
    let mut after = Batch::default();
    after.put(b"other".to_vec(), vec![3]);
    store.commit(after).await.unwrap();
}

/// Two processes whose transactions touch the same rows in crossing orders
/// (one deletes a key and writes another, the second the reverse, as a
/// status index moves): PostgreSQL detects the deadlock and aborts one of
/// them. Before, that abort reached the caller as a failed commit (a
/// worker's `start` failed with `40P01: deadlock detected`); the store runs
/// a transaction the server aborted as a deadlock or serialization failure
/// again, so no commit fails (each deadlock costs the server's
/// `deadlock_timeout`, so the test takes a few seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_writers_never_see_a_deadlock() {
    const PAIRS: u32 = 40;
    const ROUNDS: u32 = 15;
    let db = BACKEND.store();
    let one = PgStore::connect(db.url()).await.unwrap();
    let two = PgStore::connect(db.url()).await.unwrap();
    let key = |side: &str, pair: u32| format!("cross-{pair}-{side}").into_bytes();
    let mut seed = Batch::default();
    for pair in 0..PAIRS {
        seed.put(key("a", pair), vec![0])
            .put(key("b", pair), vec![0]);
    }
    one.commit(seed).await.unwrap();
    for round in 0..ROUNDS {
        let mut commits = Vec::new();
        for pair in 0..PAIRS {
            // each store deletes one side and rewrites the other
            let mut forward = Batch::default();
            forward
                .delete(key("a", pair))
                .put(key("b", pair), vec![round as u8, 1]);
            let mut backward = Batch::default();
            backward
                .delete(key("b", pair))
                .put(key("a", pair), vec![round as u8, 2]);
            commits.push((pair, one.commit(forward)));
            commits.push((pair, two.commit(backward)));
        }
        for (pair, commit) in commits {
            commit
                .await
                .unwrap_or_else(|e| panic!("round {round}, pair {pair}: a commit failed: {e}"));
        }
    }
}

/// A deadlock the store cannot avoid by its own lock order (an outside
/// session locks a row the commit holds after taking one the commit waits
/// for): the server aborts the commit's transaction, which applied nothing,
/// and the store runs it again instead of failing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_aborted_as_a_deadlock_is_run_again() {
    let db = BACKEND.store();
    let store = PgStore::connect(db.url()).await.unwrap();
    let mut seed = Batch::default();
    seed.put(b"dl-1".to_vec(), vec![0])
        .put(b"dl-2".to_vec(), vec![0]);
    store.commit(seed).await.unwrap();
    let deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()";
    let (mut outsider, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let before: i64 = outsider.query_one(deadlocks, &[]).await.unwrap().get(0);
    // the store's backend, not this session, is the one the server aborts
    outsider
        .batch_execute("SET deadlock_timeout = '60s'")
        .await
        .unwrap();
    let tx = outsider.transaction().await.unwrap();
    let lock = "SELECT value FROM durable_kv WHERE key = $1 FOR UPDATE";
    tx.query(lock, &[&b"dl-2".as_slice()]).await.unwrap();
    let mut both = Batch::default();
    both.put(b"dl-1".to_vec(), vec![1])
        .put(b"dl-2".to_vec(), vec![1]);
    let commit = tokio::spawn(store.commit(both));
    // once the commit holds dl-1 and waits for dl-2, ask for dl-1
    loop {
        let waiting: i64 = tx
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tx.query(lock, &[&b"dl-1".as_slice()]).await.unwrap();
    tx.commit().await.unwrap();
    commit
        .await
        .unwrap()
        .expect("the aborted transaction was not run again");
    assert_eq!(store.get(b"dl-1").unwrap(), Some(vec![1]));
    assert_eq!(store.get(b"dl-2").unwrap(), Some(vec![1]));
    // the stats are the server's, sent after the transaction ended
    let mut after = before;
    for _ in 0..100 {
        after = outsider.query_one(deadlocks, &[]).await.unwrap().get(0);
        if after > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        after > before,
        "the server saw no deadlock: the test proved nothing"
    );
}

/// A read that waits for the server (here behind a table lock an operator's
/// session holds) does not hold the tokio worker it was called on: the
/// runtime's other tasks go on meanwhile. Before, `PgStore`'s reads blocked
/// the calling worker thread for the whole round trip, so on a small
/// machine every instance's task queued behind one slow read.
#[test]
fn a_read_waiting_for_the_server_leaves_the_runtime_free() {
    use std::time::Duration;
    // one worker: a read that holds it stops everything else
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // the outside session lives on a runtime of its own
    let outside = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let db = BACKEND.store();
    let store = rt.block_on(PgStore::connect(db.url())).unwrap();
    let mut b = Batch::default();
    b.put(b"k".to_vec(), vec![7]);
    rt.block_on(store.commit(b)).unwrap();
    let outsider = outside.block_on(async {
        let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("BEGIN; LOCK TABLE durable_kv IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        client
    });
    let reader = rt.spawn({
        let store = store.clone();
        async move { store.get(b"k") }
    });
    // wait until the read is queued behind the lock
    let waiting = outside.block_on(async {
        for _ in 0..600 {
            let row = outsider
                .query_one(
                    // any other session of this database waiting for a lock:
                    // the read (whatever its statement text shows under load)
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND datname = current_database() \
                     AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(
        waiting,
        "the read never waited for the lock (reader finished: {})",
        reader.is_finished()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("no other task ran");
    assert!(
        !reader.is_finished(),
        "another task ran only once the read had given up: the read held the runtime's only worker"
    );
    outside
        .block_on(outsider.batch_execute("ROLLBACK"))
        .unwrap();
    let value = rt.block_on(reader).unwrap().unwrap();
    assert_eq!(value, Some(vec![7]));
}

/// A database an earlier build migrated (schema 2, no counters) gets its
/// counters from migration 3, started from the phase index they count.
#[tokio::test]
async fn migration_3_counts_the_phase_index_of_an_earlier_database() {
    let db = BACKEND.store();
    let store = PgStore::connect(db.url()).await.unwrap();
    let mut b = Batch::default();
    for (tag, n) in [(b'r', 3), (b'C', 2)] {
        for i in 0..n {
            let key = [&[b'p', tag][..], format!("id-{i}").as_bytes()].concat();
            b.put(key, Vec::new());
        }
    }
    b.put(b"iother".to_vec(), vec![1]);
    store.commit(b).await.unwrap();
    drop(store);
    sql(
        db.url(),
        "DROP TABLE durable_counters; DELETE FROM durable_schema_version WHERE version = 3",
    )
    .await;
    let store = PgStore::connect(db.url()).await.unwrap();
    assert_eq!(
        store.counters().unwrap(),
        [(b"pC".to_vec(), 2), (b"pr".to_vec(), 3)]
    );
}

/// A server that accepts the connection and then never answers (a hung
/// proxy, a database host stuck in I/O) fails the store's open after the
/// connect timeout, with the address, instead of stalling it for good: the
/// bound covers the whole handshake, not only the TCP connect. Before,
/// `connect_timeout` bounded the TCP connect alone and the open waited on
/// the startup message forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_the_open_after_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let url = format!("postgres://app@127.0.0.1:{port}/orders?connect_timeout=1");
    let opened = tokio::time::timeout(std::time::Duration::from_secs(30), PgStore::connect(&url))
        .await
        .expect("the open gave up within 30 s");
    match opened {
        Err(e @ durable_runtime::StoreError::Unreachable { .. }) => {
            assert!(e.to_string().contains(&port.to_string()), "{e}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("a silent server opened"),
    }
    held.abort();
}

/// The pool holds the connections `PgOptions::pool_size` asks for: its
/// size is what `/metrics` reports as the pool's maximum (it was fixed at 8
/// before the option).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_holds_the_connections_asked_for() {
    let db = BACKEND.store();
    for size in [3, 12] {
        let store = durable_runtime::store::postgres::PgStore::connect_with(
            db.url(),
            durable_runtime::store::postgres::PgOptions::default().pool_size(size),
        )
        .await
        .unwrap();
        let rt = durable_runtime::Runtime::builder()
            .open_store(store)
            .await
            .unwrap();
        let text = rt.metrics().render().unwrap();
        assert!(
            text.lines()
                .any(|l| l == format!("durable_store_pool_max_connections {size}")),
            "pool of {size}: {text}"
        );
        rt.shutdown().await;
    }
}
