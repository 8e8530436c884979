//! Several runtimes (workers) and a client that runs nothing, sharing one
//! PostgreSQL database in one test process: what a client sends reaches the
//! owner, results reach the client, timers and schedules fire once.
//! (Processes killed, paused and cut off: `tests/tests/cluster.rs`.)

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Within, until};
use durable_runtime::clock::{Clock, TestClock};
use durable_runtime::prelude::*;
use durable_runtime::testing::backends::Backend;
use durable_runtime::{Schedule, Status};

/// Executions per idempotency key.
static RAN: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn count() {
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    *RAN.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default() += 1;
}

fn ran_for(prefix: &str) -> Vec<u32> {
    RAN.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, n)| *n)
        .collect()
}

#[activity]
async fn note(item: String) -> Result<String, ActivityError> {
    count();
    Ok(item)
}

#[workflow]
async fn gather(n: u32) -> Result<Vec<String>, WorkflowError> {
    let mut got = Vec::new();
    while (got.len() as u32) < n {
        let item: String = signal("item").await?;
        let kept = note(item).await?;
        got.push(kept);
    }
    Ok(got)
}

#[workflow]
async fn nap(tag: String) -> Result<String, WorkflowError> {
    sleep(Duration::from_secs(3600)).await?;
    let done = note(tag).await?;
    Ok(done)
}

async fn worker(url: &str, name: &str, clock: &Arc<TestClock>) -> Runtime {
    Runtime::builder()
        .workflow::<gather>()
        .workflow::<nap>()
        .worker_name(name)
        .lease(Duration::from_millis(800))
        .clock(clock.clone())
        .open_url(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_runs_nothing_starts_signals_cancels_and_reads_results() {
    let db = Backend::Postgres.store();
    let clock = Arc::new(TestClock::new());
    let w = worker(db.url(), "w", &clock).await;
    let client = Runtime::builder()
        .workflow::<gather>()
        .resume_on_open(false)
        .open_url(db.url())
        .await
        .unwrap();
    assert!(client.workers().unwrap().iter().all(|x| !x.this_process));
    // started by the client: it waits for a worker, which claims it
    let h = client
        .start("g1", gather(2), IdPolicy::Reject)
        .await
        .unwrap();
    until("claimed by w", || {
        w.workers()
            .unwrap()
            .iter()
            .any(|x| x.name == "w" && x.instances == 1)
    })
    .await;
    assert_eq!(client.running_instances(), 0, "the client runs nothing");
    client.signal("g1", "item", &"a".to_string()).await.unwrap();
    client.signal("g1", "item", &"b".to_string()).await.unwrap();
    // the result reaches the client from the worker's commit
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );
    // a cancel from the client reaches the worker's instance
    let g2 = w.start("g2", gather(5), IdPolicy::Reject).await.unwrap();
    client.cancel("g2").await.unwrap();
    until("g2 cancelled", || {
        g2.describe().is_ok_and(|d| d.status == Status::Cancelled)
    })
    .await;
    client.shutdown().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_across_workers() {
    let db = Backend::Postgres.store();
    let clock = Arc::new(TestClock::new());
    let a = worker(db.url(), "a", &clock).await;
    let b = worker(db.url(), "b", &clock).await;
    let mut handles = Vec::new();
    for i in 0..20 {
        let rt = if i % 2 == 0 { &a } else { &b };
        handles.push(
            rt.start(format!("nap-{i}"), nap(format!("t{i}")), IdPolicy::Reject)
                .await
                .unwrap(),
        );
    }
    until("all asleep", || {
        a.running_instances() + b.running_instances() == 0
    })
    .await;
    clock.advance(Duration::from_secs(3601));
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.result().within().await.unwrap().unwrap(), format!("t{i}"));
    }
    let ran = ran_for("nap-");
    assert_eq!(ran.len(), 20);
    assert!(ran.iter().all(|n| *n == 1), "each woke once: {ran:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_across_workers() {
    let db = Backend::Postgres.store();
    let clock = Arc::new(TestClock::new());
    let a = worker(db.url(), "a", &clock).await;
    let b = worker(db.url(), "b", &clock).await;
    let minute = Duration::from_secs(60);
    let start = clock.now();
    a.schedules()
        .create(
            "every-minute",
            Schedule::interval(minute)
                .unwrap()
                .starting_at(start + minute)
                .max_runs(5),
            gather(0),
        )
        .await
        .unwrap();
    for k in 1..=5u32 {
        clock.advance(minute);
        // both workers' schedule services look; one starts the run
        until("the run started", || {
            a.schedules()
                .describe("every-minute")
                .is_ok_and(|d| d.runs >= u64::from(k))
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = b.schedules().describe("every-minute").unwrap();
    assert_eq!(d.runs, 5);
    let started: Vec<_> = d
        .recent
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                durable_runtime::schedule::ScheduleEventKind::Started { .. }
            )
        })
        .collect();
    assert_eq!(started.len(), 5, "{:?}", d.recent);
    let runs = a
        .list(&durable_runtime::ListFilter {
            id_prefix: Some("every-minute@".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 5);
    assert!(runs.iter().all(|r| r.status == Status::Completed));
    a.shutdown().await;
    b.shutdown().await;
}

const ADD: durable_runtime::update::UpdateDef<String, usize> =
    durable_runtime::update::UpdateDef::new("add");

/// Takes `n` items by update, replying with the count so far.
#[workflow]
async fn tally(n: usize) -> Result<Vec<String>, WorkflowError> {
    let mut got = Vec::new();
    while got.len() < n {
        let update = ADD.receive().await?;
        got.push(update.request().clone());
        update.reply(got.len()).await;
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_from_a_client_is_answered_by_the_worker_that_owns_the_instance() {
    let db = Backend::Postgres.store();
    let w = Runtime::builder()
        .workflow::<tally>()
        .worker_name("w")
        .lease(Duration::from_millis(800))
        .open_url(db.url())
        .await
        .unwrap();
    let client = Runtime::builder()
        .workflow::<tally>()
        .resume_on_open(false)
        .update_validator(ADD, |item: &String| {
            if item.is_empty() {
                Err("an empty item".into())
            } else {
                Ok(())
            }
        })
        .open_url(db.url())
        .await
        .unwrap();
    let h = w.start("t1", tally(2), IdPolicy::Reject).await.unwrap();
    // the client's validator runs in the client; the reply comes from w
    assert!(matches!(
        client.update("t1", ADD, &String::new()).await,
        Err(durable_runtime::UpdateError::Rejected { .. })
    ));
    assert_eq!(
        client
            .update("t1", ADD, &"a".to_owned())
            .within()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        client
            .update_as("t1", ADD, "second", &"b".to_owned())
            .within()
            .await
            .unwrap(),
        2
    );
    assert_eq!(client.running_instances(), 0, "the client runs nothing");
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        vec!["a".to_owned(), "b".to_owned()]
    );
    client.shutdown().await;
    w.shutdown().await;
}

/// The first build of `bill`: the note is text.
pub mod bill_v1 {
    use durable_runtime::prelude::*;

    /// Notes a charge, then waits for `done`.
    #[workflow(name = "bill")]
    pub async fn bill(item: String) -> Result<String, WorkflowError> {
        let charged = super::note(item).await?;
        let receipt = format!("receipt for {charged}");
        let _: () = signal("done").await?;
        Ok(receipt)
    }
}

/// The next build of `bill`: the receipt is a number.
pub mod bill_v2 {
    use durable_runtime::prelude::*;

    /// Notes a charge, then waits for `done`.
    #[workflow(name = "bill")]
    pub async fn bill(item: String) -> Result<String, WorkflowError> {
        let charged = super::note(item).await?;
        let receipt = charged.len() as u64;
        let _: () = signal("done").await?;
        Ok(format!("receipt {receipt}"))
    }
}

/// A reset of an instance another worker parked runs there, once: the
/// reset once took the instance from its owner, which still listed it as
/// its own, and both ran the step the reset went back to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_of_an_instance_another_worker_parked_runs_it_once() {
    let db = Backend::Postgres.store();
    let url = db.url().to_owned();
    let open = |name: &'static str, v2: bool| {
        let url = url.clone();
        async move {
            let builder = Runtime::builder()
                .worker_name(name)
                .lease(Duration::from_millis(800));
            let builder = if v2 {
                builder.workflow::<bill_v2::bill>()
            } else {
                builder.workflow::<bill_v1::bill>()
            };
            builder.open_url(&url).await.unwrap()
        }
    };
    let first = open("first", false).await;
    first
        .start(
            "bill-1",
            bill_v1::bill("bill-1 lamp".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    until("bill-1 waits for done", || {
        first.describe("bill-1").is_ok_and(|d| d.step == 2)
    })
    .await;
    first.shutdown().await;
    // the next build's worker takes it over and parks it (the receipt's type changed)
    let owner = open("owner", true).await;
    until("bill-1 is parked", || {
        owner
            .describe("bill-1")
            .is_ok_and(|d| d.status == Status::Parked)
    })
    .await;
    // another worker resets it to the await of the charge
    let other = open("other", true).await;
    other
        .reset(
            "bill-1",
            durable_runtime::reset::ResetTo::Step(1),
            "receipt type fixed",
        )
        .await
        .unwrap();
    until("bill-1 waits for done again", || {
        other
            .describe("bill-1")
            .is_ok_and(|d| d.status == Status::Running && d.step == 2 && d.run == 2)
    })
    .await;
    other.signal("bill-1", "done", &()).await.unwrap();
    let out = other
        .handle::<bill_v2::bill>("bill-1")
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(out.unwrap(), "receipt 11");
    // charged once by the first run and once by the reset's: never twice per run
    let mut charges = ran_for("bill-1/");
    charges.sort_unstable();
    assert_eq!(charges, [1, 1], "{charges:?}");
    other.shutdown().await;
    owner.shutdown().await;
}

/// A reset that commits while the owner of the parked instance is checking
/// it against new code is not overwritten by the owner's unparking: that
/// save is made only if the record is still the one the owner read (it
/// once was fenced by ownership alone, and the reset was lost: the old run
/// went on from its parked step).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_made_while_the_owner_unparks_the_instance_is_kept() {
    let db = Backend::Postgres.store();
    let url = db.url().to_owned();
    let v1 = || {
        Runtime::builder()
            .workflow::<bill_v1::bill>()
            .worker_name("owner")
            .lease(Duration::from_millis(800))
    };
    let first = v1().open_url(&url).await.unwrap();
    first
        .start(
            "bill-2",
            bill_v1::bill("bill-2 desk".into()),
            IdPolicy::Reject,
        )
        .await
        .unwrap();
    until("bill-2 waits for done", || {
        first.describe("bill-2").is_ok_and(|d| d.step == 2)
    })
    .await;
    first.shutdown().await;
    // the next build (same worker name: it takes over at once) parks it
    let parking = Runtime::builder()
        .workflow::<bill_v2::bill>()
        .worker_name("owner")
        .lease(Duration::from_millis(800))
        .open_url(&url)
        .await
        .unwrap();
    until("bill-2 is parked", || {
        parking
            .describe("bill-2")
            .is_ok_and(|d| d.status == Status::Parked)
    })
    .await;
    parking.shutdown().await;
    // the first build comes back; as it unparks the instance, a client resets it
    let client = Runtime::builder()
        .workflow::<bill_v1::bill>()
        .resume_on_open(false)
        .open_url(&url)
        .await
        .unwrap();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let resetter = client.clone();
    let owner = v1()
        .on_settling(move |id| {
            if id != "bill-2" || !armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            // from another thread: this one holds the owner's task
            let client = resetter.clone();
            let runtime = tokio::runtime::Handle::current();
            let reset = std::thread::spawn(move || {
                runtime
                    .block_on(client.reset(
                        "bill-2",
                        durable_runtime::reset::ResetTo::Step(1),
                        "charge again",
                    ))
                    .unwrap();
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !reset.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(reset.is_finished(), "the reset did not commit");
        })
        .open_url(&url)
        .await
        .unwrap();
    until("the reset's run waits for done", || {
        owner
            .describe("bill-2")
            .is_ok_and(|d| d.status == Status::Running && d.step == 2 && d.run == 2)
    })
    .await;
    owner.signal("bill-2", "done", &()).await.unwrap();
    let out = owner
        .handle::<bill_v1::bill>("bill-2")
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(out.unwrap(), "receipt for bill-2 desk");
    // charged by the first run and again by the reset's
    let mut charges = ran_for("bill-2/");
    charges.sort_unstable();
    assert_eq!(charges, [1, 1], "{charges:?}");
    owner.shutdown().await;
    client.shutdown().await;
}

/// A shared store seen from outside: its solo commits (lease renewals,
/// claims) can be held back, and it counts single-key reads of owner and
/// control keys (`o`, `c`, `x` + id) and of instance records (`i` + id).
/// Armed with a key and a count (`late_key`), it answers the async read of
/// that key that comes after that many others late: the read is made at
/// once, its answer delivered when let go.
struct Held {
    inner: Arc<dyn durable_runtime::store::Store>,
    hold: Arc<std::sync::atomic::AtomicBool>,
    owner_and_control_reads: std::sync::atomic::AtomicUsize,
    record_reads: std::sync::atomic::AtomicUsize,
    late_key: Mutex<Option<(Vec<u8>, usize)>>,
    /// Set once the read answered late is made.
    late_read: Arc<std::sync::atomic::AtomicBool>,
    let_go: Arc<std::sync::atomic::AtomicBool>,
    /// Scans of every signal, cancel or terminate key (`g`, `c`, `x`).
    request_scans: std::sync::atomic::AtomicUsize,
    /// Solo commits (lease renewals, claims): one or more per pass.
    solo_commits: std::sync::atomic::AtomicUsize,
    /// A key whose next async read fails.
    fail_next: Mutex<Option<Vec<u8>>>,
    /// A key every commit writing it is refused for, after that many
    /// such commits pass, as the server refuses a value over one of its
    /// limits (`StoreError::Refused`).
    refuse: Mutex<Option<(Vec<u8>, usize)>>,
    /// Set: the next commit storing a signal fails its "key absent"
    /// condition, as when another process stored a signal under the same
    /// sequence number first.
    signal_taken: std::sync::atomic::AtomicBool,
    /// Milliseconds each async read of an owner key (`o`) takes: a slow
    /// database, for a pass that reads many.
    slow_owner_reads_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds each async read of an instance record (`i`) takes.
    slow_record_reads_ms: std::sync::atomic::AtomicU64,
    /// Set: the next async scan of the owner keys (`o`) waits until it is
    /// cleared; `owner_scan_held` says it waits.
    hold_owner_scan: Arc<std::sync::atomic::AtomicBool>,
    owner_scan_held: Arc<std::sync::atomic::AtomicBool>,
}

impl Held {
    fn new(inner: Arc<dyn durable_runtime::store::Store>) -> Held {
        Held {
            inner,
            hold: Arc::default(),
            owner_and_control_reads: Default::default(),
            record_reads: Default::default(),
            late_key: Mutex::default(),
            late_read: Arc::default(),
            let_go: Arc::default(),
            request_scans: Default::default(),
            solo_commits: Default::default(),
            fail_next: Mutex::default(),
            refuse: Mutex::default(),
            signal_taken: Default::default(),
            slow_owner_reads_ms: Default::default(),
            slow_record_reads_ms: Default::default(),
            hold_owner_scan: Arc::default(),
            owner_scan_held: Arc::default(),
        }
    }

    /// Counts a scan of all the cluster's signal, cancel or terminate keys
    /// (their tag alone as the prefix); an instance's own (tag and id) is
    /// what a step or a wake-up reads.
    fn count_scan(&self, prefix: &[u8]) {
        if matches!(prefix, [b'g' | b'c' | b'x']) {
            self.request_scans
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl durable_runtime::store::Store for Held {
    fn commit(
        &self,
        batch: durable_runtime::store::Batch,
    ) -> durable_runtime::activity::BoxFuture<Result<(), durable_runtime::StoreError>> {
        use std::sync::atomic::Ordering::SeqCst;
        if batch.solo {
            self.solo_commits.fetch_add(1, SeqCst);
        }
        if let Some((key, _)) = batch
            .expect
            .iter()
            .find(|(k, v)| k.first() == Some(&b'g') && v.is_none())
            && self.signal_taken.swap(false, SeqCst)
        {
            let key = String::from_utf8_lossy(key).into_owned();
            return Box::pin(std::future::ready(Err(
                durable_runtime::StoreError::Conflict { key },
            )));
        }
        if let Some((key, pass)) = self.refuse.lock().unwrap().as_mut()
            && batch.writes.iter().any(|(k, _)| k == key)
            && std::mem::replace(pass, pass.saturating_sub(1)) == 0
        {
            return Box::pin(std::future::ready(Err(
                durable_runtime::StoreError::Refused {
                    reason: "a value the server refuses".into(),
                },
            )));
        }
        if batch.solo && self.hold.load(SeqCst) {
            let (hold, inner) = (self.hold.clone(), self.inner.clone());
            return Box::pin(async move {
                while hold.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                inner.commit(batch).await
            });
        }
        self.inner.commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, durable_runtime::StoreError> {
        match key.first() {
            Some(b'o' | b'c' | b'x') => &self.owner_and_control_reads,
            Some(b'i') => &self.record_reads,
            _ => return self.inner.get(key),
        }
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(key)
    }
    fn get_async(
        &self,
        key: &[u8],
    ) -> durable_runtime::activity::BoxFuture<Result<Option<Vec<u8>>, durable_runtime::StoreError>>
    {
        use std::sync::atomic::Ordering::SeqCst;
        {
            let mut fail = self.fail_next.lock().unwrap();
            if fail.as_deref() == Some(key) {
                *fail = None;
                return Box::pin(std::future::ready(Err(
                    durable_runtime::StoreError::Backend("a read made to fail".into()),
                )));
            }
        }
        let late = {
            let mut armed = self.late_key.lock().unwrap();
            match armed.as_mut() {
                Some((k, 0)) if k.as_slice() == key => armed.take().is_some(),
                Some((k, skip)) if k.as_slice() == key => {
                    *skip -= 1;
                    false
                }
                _ => false,
            }
        };
        let read = if key.first() == Some(&b'i') {
            self.record_reads.fetch_add(1, SeqCst);
            self.inner.get_async(key)
        } else {
            self.inner.get_async(key)
        };
        let (late_read, let_go) = (self.late_read.clone(), self.let_go.clone());
        let slow = match key.first() {
            Some(b'o') => self.slow_owner_reads_ms.load(SeqCst),
            Some(b'i') => self.slow_record_reads_ms.load(SeqCst),
            _ => 0,
        };
        Box::pin(async move {
            if slow > 0 {
                tokio::time::sleep(Duration::from_millis(slow)).await;
            }
            let answer = read.await;
            if late {
                late_read.store(true, SeqCst);
                while !let_go.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            answer
        })
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    fn subscribe(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<durable_runtime::store::Notice>> {
        self.inner.subscribe()
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, durable_runtime::StoreError> {
        self.inner.counters()
    }
    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::StoreError> {
        self.count_scan(prefix);
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::StoreError> {
        self.count_scan(prefix);
        self.inner.scan_from(prefix, from, limit)
    }
    fn scan_async(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> durable_runtime::activity::BoxFuture<
        Result<Vec<durable_runtime::store::KeyValue>, durable_runtime::StoreError>,
    > {
        use std::sync::atomic::Ordering::SeqCst;
        self.count_scan(prefix);
        let held = prefix == b"o" && self.hold_owner_scan.load(SeqCst);
        let scan = self.inner.scan_async(prefix, from, limit);
        let (hold, reached) = (self.hold_owner_scan.clone(), self.owner_scan_held.clone());
        Box::pin(async move {
            if held {
                reached.store(true, SeqCst);
                while hold.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            scan.await
        })
    }
}

/// A worker that opens on a backlog renews its lease while it claims it.
/// Before, its join claimed every instance waiting for an owner before its
/// first renewal, so a backlog that took longer than the lease to claim (a
/// slow database) let the new worker's lease lapse at once, and the others
/// could take its instances in turn. Here 400 instances wait for an owner
/// and each read of a record takes 10 ms (over 4 s to claim them all)
/// against a 2 s lease; a client watches the worker's lease all along
/// (failed before: it saw the lease lapse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_renews_its_lease_while_it_claims_a_backlog_at_open() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let client = Runtime::builder()
        .workflow::<gather>()
        .resume_on_open(false)
        .open_url(db.url())
        .await
        .unwrap();
    let n = 400;
    for i in 0..n {
        client
            .start(format!("waiting-{i:04}"), gather(1), IdPolicy::Reject)
            .await
            .unwrap();
    }
    let store = Arc::new(Held::new(db.open().await));
    store.slow_record_reads_ms.store(10, SeqCst);
    let opening = tokio::spawn({
        let store = store.clone();
        async move { gathering_worker_leased(&store, "backlogged", Duration::from_secs(2)).await }
    });
    let (mut joined, mut lapsed) = (false, false);
    while !opening.is_finished() {
        if let Some(w) = client
            .workers()
            .unwrap()
            .into_iter()
            .find(|w| w.name == "backlogged")
        {
            joined = true;
            lapsed |= w.lapsed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let w = opening.await.unwrap();
    assert!(joined, "the worker's lease was written before its claims");
    assert!(
        !lapsed,
        "the worker's lease lapsed while it claimed its backlog"
    );
    store.slow_record_reads_ms.store(0, SeqCst);
    until(&format!("the worker owns all {n}"), || {
        w.workers()
            .unwrap()
            .iter()
            .any(|x| x.name == "backlogged" && x.instances == n)
    })
    .await;
    client.shutdown().await;
    w.shutdown().await;
}

/// An instance a worker claims while it rebuilds what it owns (a renewal
/// after its lease lapsed) stays its own: the rebuild read the store
/// before the claim, and before it replaced the worker's set of owned
/// instances with what it read, dropping the claimed one. The worker then
/// ignored that instance's messages (it no longer ran it here) and the
/// instance waited for its signal until the next rebuild. Here the
/// rebuild's scan of the owner keys is held while a client starts an
/// instance the worker claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_claimed_while_its_worker_rebuilds_what_it_owns_stays_its_own() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let w = gathering_worker_leased(&store, "rebuilding", Duration::from_millis(600)).await;
    let client = Runtime::builder()
        .workflow::<gather>()
        .resume_on_open(false)
        .open_url(db.url())
        .await
        .unwrap();
    // an instance the worker owns, so its rebuild has owner keys to scan
    w.start("kept", gather(1), IdPolicy::Reject).await.unwrap();
    let owns = |n: usize| {
        w.workers()
            .unwrap()
            .iter()
            .any(|x| x.name == "rebuilding" && !x.lapsed && x.instances == n)
    };
    until("the worker owns `kept`", || owns(1)).await;

    // renewals held past the lease: the worker fences itself; when one
    // lands it rebuilds what it owns, and its scan of the owner keys waits
    store.hold_owner_scan.store(true, SeqCst);
    store.hold.store(true, SeqCst);
    until("the worker's lease lapses", || {
        w.workers()
            .unwrap()
            .iter()
            .any(|x| x.name == "rebuilding" && x.lapsed)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.hold.store(false, SeqCst);
    until("the rebuild's scan of the owner keys waits", || {
        store.owner_scan_held.load(SeqCst)
    })
    .await;
    // meanwhile a client starts an instance, which the worker claims
    client
        .start("late", gather(1), IdPolicy::Reject)
        .await
        .unwrap();
    until("the worker owns `late` too", || owns(2)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.hold_owner_scan.store(false, SeqCst);
    until("the worker's lease is current", || owns(2)).await;

    // the client's signal reaches the worker, which runs `late` to its end
    client
        .signal("late", "item", &"a".to_string())
        .await
        .unwrap();
    let late = client
        .handle::<gather>("late")
        .result()
        .within()
        .await
        .expect("the signal reached `late`");
    assert_eq!(late.unwrap(), ["a"]);
    client
        .signal("kept", "item", &"b".to_string())
        .await
        .unwrap();
    let kept = client.handle::<gather>("kept").result().within().await;
    assert_eq!(kept.unwrap().unwrap(), ["b"]);
    client.shutdown().await;
    w.shutdown().await;
}

/// A worker whose renewals were held until it fenced itself reads its owned
/// instances back by scans when a renewal lands, not with a read of each
/// one's owner and control keys (before: about three single-key reads per
/// owned instance, ~100,000 for the cluster bench's stalled worker, run
/// before any instance ran again), and still owns and runs every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_back_from_a_lapsed_lease_rereads_what_it_owns_by_scans_not_key_by_key() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let rt = Runtime::builder()
        .workflow::<gather>()
        .worker_name("lapsing")
        .lease(Duration::from_millis(600))
        .open_store(store.clone())
        .await
        .unwrap();
    let n = 300;
    for i in 0..n {
        rt.start(format!("owned-{i:04}"), gather(1), IdPolicy::Reject)
            .await
            .unwrap();
    }
    until_in_phase(&rt, durable_runtime::Phase::WaitingForSignal, n).await;

    // renewals held past the lease: the worker fences itself
    store.hold.store(true, SeqCst);
    until("the worker lists its lease as lapsed", || {
        rt.workers()
            .unwrap()
            .iter()
            .any(|w| w.name == "lapsing" && w.lapsed)
    })
    .await;
    // and has fenced itself by now: it checks its lease at least every
    // three quarters of it while a renewal is outstanding
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.owner_and_control_reads.store(0, SeqCst);
    store.record_reads.store(0, SeqCst);
    // a renewal lands: the worker is back, rebuilds what it owns and reads
    // each owned instance's record to resume it (after its owner and
    // control keys, before the fix)
    store.hold.store(false, SeqCst);
    until("the worker has read back every owned instance", || {
        store.record_reads.load(SeqCst) >= n
    })
    .await;
    until("the worker's lease is current again", || {
        rt.workers()
            .unwrap()
            .iter()
            .any(|w| w.name == "lapsing" && !w.lapsed)
    })
    .await;
    let reads = store.owner_and_control_reads.load(SeqCst);
    assert!(
        reads < 10,
        "{reads} single-key reads of owner and control keys to resync {n} owned instances"
    );
    // it still owns every one: a signal reaches each and each ends
    for i in 0..n {
        rt.signal(&format!("owned-{i:04}"), "item", &format!("item {i}"))
            .await
            .unwrap();
    }
    until_in_phase(&rt, durable_runtime::Phase::Completed, n).await;
    rt.shutdown().await;
}

/// Which workers ran each key's activity.
static WHO: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());

/// The name of the worker that runs an activity (a dependency).
struct WorkerName(&'static str);

#[activity]
async fn note_where(tag: String) -> Result<String, ActivityError> {
    count();
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    let name = durable_runtime::activity::dependency::<WorkerName>()
        .map_or("?", |w| w.0)
        .to_owned();
    let mut who = WHO.lock().unwrap();
    match who.iter_mut().find(|(k, _)| *k == key) {
        Some((_, names)) => names.push(name),
        None => who.push((key, vec![name])),
    }
    Ok(tag)
}

#[workflow]
async fn noted_once(tag: String) -> Result<String, WorkflowError> {
    Ok(note_where(tag).await?)
}

/// Instances waiting for an owner are claimed by exactly one of several
/// workers racing for them: 80 started by a client before any worker,
/// which three workers joining a cold cluster at once claim (each may
/// adopt what has no owner and claims what waits), then 80 more, each
/// claimed by all three at once on hearing of it. Every instance's
/// activity runs once. The lease is long: with a short one on a loaded
/// machine a worker's renewal can come late, and the instances it loses
/// then run their unfinished step again elsewhere (at least once across a
/// takeover, as documented), which is not what this test looks at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_waiting_for_an_owner_are_claimed_once_by_racing_workers() {
    let db = Backend::Postgres.store();
    let client = Runtime::builder()
        .workflow::<noted_once>()
        .resume_on_open(false)
        .open_url(db.url())
        .await
        .unwrap();
    let n = 80;
    let start = |from: usize| {
        let client = client.clone();
        async move {
            for i in from..from + n {
                let id = format!("waiting-{i:03}");
                client
                    .start(&id, noted_once(id.clone()), IdPolicy::Reject)
                    .await
                    .unwrap();
            }
        }
    };
    start(0).await;
    let worker = |name: &'static str| {
        let url = db.url().to_owned();
        async move {
            Runtime::builder()
                .workflow::<noted_once>()
                .worker_name(name)
                .dependency(WorkerName(name))
                // long: no lease lapses, so a second run could only come
                // from a second claim
                .lease(Duration::from_secs(60))
                .open_url(&url)
                .await
                .unwrap()
        }
    };
    let (a, b, c) = tokio::join!(worker("a"), worker("b"), worker("c"));
    start(n).await;
    until_in_phase(&client, durable_runtime::Phase::Completed, 2 * n).await;
    let ran = ran_for("waiting-");
    assert_eq!(ran.len(), 2 * n, "every instance's activity ran");
    let twice: Vec<String> = WHO
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, w)| k.starts_with("waiting-") && w.len() > 1)
        .map(|(k, w)| format!("{k} run by {w:?}"))
        .collect();
    assert!(twice.is_empty(), "activities run more than once: {twice:?}");
    for rt in [a, b, c, client] {
        rt.shutdown().await;
    }
}

/// A worker's renewals go on while a long pass runs: here worker `b`
/// takes over the 200 instances of a worker whose lease lapsed, on a
/// database that answers each read of an owner key in 20 ms (four seconds
/// of reads for the whole takeover, against `b`'s 2 s lease). Before, the
/// renewals waited for the pass in the same loop: `b`'s own lease lapsed
/// mid-takeover, and the others would then have taken its instances in
/// turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_renews_its_lease_while_a_long_takeover_runs() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let store_a = Arc::new(Held::new(db.open().await));
    let store_b = Arc::new(Held::new(db.open().await));
    let a = gathering_worker(&store_a, "a").await;
    let n = 200;
    for i in 0..n {
        a.start(format!("moved-{i:03}"), gather(1), IdPolicy::Reject)
            .await
            .unwrap();
    }
    until_in_phase(&a, durable_runtime::Phase::WaitingForSignal, n).await;
    let b = gathering_worker_leased(&store_b, "b", Duration::from_secs(2)).await;
    store_b.slow_owner_reads_ms.store(20, SeqCst);
    // `a` stops renewing: its lease lapses and `b` takes its instances
    store_a.hold.store(true, SeqCst);
    let mut b_lapsed = false;
    let mut moved = false;
    for _ in 0..3000 {
        let workers = b.workers().unwrap();
        b_lapsed |= workers.iter().any(|w| w.name == "b" && w.lapsed);
        if workers.iter().any(|w| w.name == "b" && w.instances == n) {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(moved, "b took over every instance");
    assert!(!b_lapsed, "b's own lease lapsed while it took over");
    store_b.slow_owner_reads_ms.store(0, SeqCst);
    for i in 0..n {
        b.signal(&format!("moved-{i:03}"), "item", &"x".to_owned())
            .await
            .unwrap();
    }
    until_in_phase(&b, durable_runtime::Phase::Completed, n).await;
    store_a.hold.store(false, SeqCst);
    b.shutdown().await;
    a.shutdown().await;
}

/// A worker named `name` running `gather` on `store`, with a short lease
/// (its passes come every 100 ms).
async fn gathering_worker(store: &Arc<Held>, name: &str) -> Runtime {
    gathering_worker_leased(store, name, Duration::from_millis(400)).await
}

/// [`gathering_worker`] with a lease of `lease`: a long one where a test
/// counts runs (a late renewal on a loaded machine would move instances,
/// and a moved instance runs its unfinished step again).
async fn gathering_worker_leased(store: &Arc<Held>, name: &str, lease: Duration) -> Runtime {
    Runtime::builder()
        .workflow::<gather>()
        .worker_name(name)
        .lease(lease)
        .open_store(store.clone())
        .await
        .unwrap()
}

/// Waits until `n` instances of `rt`'s store are in `phase`.
async fn until_in_phase(rt: &Runtime, phase: durable_runtime::Phase, n: usize) {
    until(&format!("{n} instances {phase:?}"), || {
        rt.counts_by_phase().unwrap().contains(&(phase, n))
    })
    .await;
}

/// A worker's passes read what changed, never the cluster's requests:
/// before, each pass (a quarter of the lease) scanned every signal, cancel
/// and terminate key of the whole cluster, to catch a message lost. Here
/// twenty instances hold a buffered signal each while the worker makes ten
/// passes; none scans those keys, and each instance still gets its item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_passes_scan_none_of_the_clusters_requests() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let rt = gathering_worker(&store, "w").await;
    let n = 20;
    for i in 0..n {
        let id = format!("req-{i}");
        rt.start(&id, gather(1), IdPolicy::Reject).await.unwrap();
        // a signal nothing waits for stays stored
        rt.signal(&id, "later", &"x".to_owned()).await.unwrap();
    }
    until_in_phase(&rt, durable_runtime::Phase::WaitingForSignal, n).await;
    store.request_scans.store(0, SeqCst);
    let renewed = store.solo_commits.load(SeqCst);
    until("ten passes", || {
        store.solo_commits.load(SeqCst) >= renewed + 10
    })
    .await;
    assert_eq!(
        store.request_scans.load(SeqCst),
        0,
        "scans of the cluster's signal, cancel and terminate keys in ten passes"
    );
    for i in 0..n {
        rt.signal(&format!("req-{i}"), "item", &format!("item {i}"))
            .await
            .unwrap();
    }
    until_in_phase(&rt, durable_runtime::Phase::Completed, n).await;
    rt.shutdown().await;
}

/// A signal whose sequence number another process used first (its "key
/// absent" condition fails) is stored under the next number: delivered
/// once, never lost and never written over the other process's signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_whose_number_another_process_took_is_stored_under_the_next() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let w = gathering_worker(&store, "w").await;
    let h = w.start("taken", gather(2), IdPolicy::Reject).await.unwrap();
    until_in_phase(&w, durable_runtime::Phase::WaitingForSignal, 1).await;
    store.signal_taken.store(true, SeqCst);
    w.signal("taken", "item", &"first".to_owned())
        .await
        .unwrap();
    assert!(
        !store.signal_taken.load(SeqCst),
        "the first try met the other process's key"
    );
    w.signal("taken", "item", &"second".to_owned())
        .await
        .unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        ["first", "second"]
    );
    w.shutdown().await;
}

/// What a worker fails to act on is acted on by its next pass: here the
/// worker's read of the instance, when another process's signal reaches
/// it, fails once (a store error). Without the pass the instance would
/// wait for its item until the worker resyncs (a reconnect, a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_a_worker_failed_to_act_on_is_acted_on_by_its_next_pass() {
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let w = gathering_worker(&store, "w").await;
    let client = Runtime::builder()
        .workflow::<gather>()
        .resume_on_open(false)
        .open_url(db.url())
        .await
        .unwrap();
    w.start("missed", gather(1), IdPolicy::Reject)
        .await
        .unwrap();
    until_in_phase(&w, durable_runtime::Phase::WaitingForSignal, 1).await;
    *store.fail_next.lock().unwrap() = Some(b"imissed".to_vec());
    client
        .signal("missed", "item", &"sent".to_owned())
        .await
        .unwrap();
    // read by the client: its store is not the one that fails a read
    let out = client.handle::<gather>("missed").result().within().await;
    assert_eq!(out.unwrap().unwrap(), ["sent"]);
    assert!(
        store.fail_next.lock().unwrap().is_none(),
        "the worker's read of the instance was made to fail"
    );
    client.shutdown().await;
    w.shutdown().await;
}

/// A checkpoint the database refuses (a value over one of the server's
/// limits: the same batch is refused again however often it is sent)
/// stops its instance with that error, as on the embedded store; the
/// activity before it ran once. Before, a worker took it for an outage and
/// looked again every second, forever: each look re-ran the activity from
/// the last checkpoint, and its result was refused again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_the_database_refuses_stops_its_instance_instead_of_rerunning_it() {
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let w = gathering_worker_leased(&store, "w", Duration::from_secs(60)).await;
    let h = w
        .start("refused", gather(1), IdPolicy::Reject)
        .await
        .unwrap();
    until_in_phase(&w, durable_runtime::Phase::WaitingForSignal, 1).await;
    // the checkpoint of the signal passes; every one after it (the
    // activity's result) is refused
    *store.refuse.lock().unwrap() = Some((b"irefused".to_vec(), 1));
    w.signal("refused", "item", &"one".to_owned())
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), h.result())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "still retrying after 10 s; the activity ran {:?} times",
                ran_for("refused/")
            )
        })
        .unwrap_err();
    assert!(err.to_string().contains("DURABLE-REFUSED"), "{err}");
    assert_eq!(ran_for("refused/"), [1], "the activity ran once");
    w.shutdown().await;
}

static GATE_OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static GATE_REACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Counted once the test opens its gate.
#[activity]
async fn gated_note() -> Result<(), ActivityError> {
    use std::sync::atomic::Ordering::SeqCst;
    GATE_REACHED.store(true, SeqCst);
    while !GATE_OPEN.load(SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    count();
    Ok(())
}

#[workflow]
async fn gated_then_go() -> Result<String, WorkflowError> {
    gated_note().await?;
    let _go: () = signal("go").await?;
    Ok("went".into())
}

/// An instance a worker takes over runs from its latest record, even when
/// it is woken between the takeover's read of its record and its start.
/// Here worker `a` hands the instance over during its activity's attempt;
/// `b`'s takeover reads the record (the attempt still to run) and its
/// answer comes late; meanwhile a signal wakes the instance on `b`, which
/// runs the attempt and waits for `go`. Before, the takeover then started
/// the instance from the record it had read, and the activity ran a
/// second time; now the takeover claims each instance before it reads it,
/// so the wake-up leaves the instance to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_taken_over_runs_from_its_latest_record_when_woken_during_the_takeover() {
    use std::sync::atomic::Ordering::SeqCst;
    let db = Backend::Postgres.store();
    let store = Arc::new(Held::new(db.open().await));
    let b = Runtime::builder()
        .workflow::<gated_then_go>()
        .worker_name("b")
        .lease(Duration::from_millis(800))
        .open_store(store.clone())
        .await
        .unwrap();
    let a = Runtime::builder()
        .workflow::<gated_then_go>()
        .worker_name("a")
        .lease(Duration::from_millis(800))
        .open_url(db.url())
        .await
        .unwrap();
    a.start("taken", gated_then_go(), IdPolicy::Reject)
        .await
        .unwrap();
    until("`a` runs the attempt", || GATE_REACHED.load(SeqCst)).await;
    // the claim's look at the record (before the instance is owned) is
    // answered at once; the takeover's read after it, late
    *store.late_key.lock().unwrap() = Some((b"itaken".to_vec(), 1));
    // stopped at once: the attempt is stopped, the instance handed over
    a.shutdown_timeout(Duration::ZERO).await;
    until("`b` has read the record it takes over", || {
        store.late_read.load(SeqCst)
    })
    .await;
    GATE_OPEN.store(true, SeqCst);
    b.signal("taken", "other", &()).await.unwrap();
    // before the fix the wake-up ran the instance meanwhile; with it, the
    // wake-up leaves the instance to the takeover, which waits for its read
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        until(
            "the woken instance ran its attempt and waits for `go`",
            || {
                b.describe("taken")
                    .is_ok_and(|d| d.phase == durable_runtime::Phase::WaitingForSignal)
            },
        ),
    )
    .await;
    store.let_go.store(true, SeqCst);
    b.signal("taken", "go", &()).await.unwrap();
    assert_eq!(
        b.handle::<gated_then_go>("taken")
            .result()
            .within()
            .await
            .unwrap(),
        Ok("went".to_owned())
    );
    assert_eq!(ran_for("taken"), vec![1], "the activity ran once");
    b.shutdown().await;
}
