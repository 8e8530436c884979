// Included by `large_states.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// A state with large fields is stored field by field: a checkpoint writes
// the large fields that changed and refers to the others, deletes the
// values it supersedes in the same batch, and everything above the store
// (results, describe, the state's JSON, snapshots, a restart) sees the
// state whole.

use std::sync::{Arc, Mutex};

use common::{Within, until};
use durable_runtime::activity::BoxFuture;
use durable_runtime::prelude::*;
use durable_runtime::store::{Batch, KeyValue, Notice, Store, StoreError, StoreStats};
use durable_runtime::{Runtime, Status};
use serde::{Deserialize, Serialize};

/// A store that keeps the size of every batch committed through it, and
/// counts the reads of stored field values (`f` keys).
#[derive(Clone)]
struct Counting {
    inner: Arc<dyn Store>,
    batches: Arc<Mutex<Vec<usize>>>,
    field_reads: Arc<std::sync::atomic::AtomicUsize>,
}

impl Counting {
    fn new(inner: Arc<dyn Store>) -> Counting {
        Counting {
            inner,
            batches: Arc::default(),
            field_reads: Arc::default(),
        }
    }

    /// The reads of stored field values since the last call.
    fn field_reads(&self) -> usize {
        self.field_reads
            .swap(0, std::sync::atomic::Ordering::SeqCst)
    }

    /// The bytes (keys and values) of the batches committed since the last call.
    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.batches.lock().unwrap())
    }

    /// How many stored field values instance `id` has (a value cut into
    /// pieces has keys of its number and a piece index: counted once).
    fn fields(&self, id: &str) -> usize {
        let mut numbers: Vec<Vec<u8>> = self
            .keys(id)
            .into_iter()
            .map(|k| k[..k.len().min(id.len() + 10)].to_vec())
            .collect();
        numbers.dedup();
        numbers.len()
    }

    /// The keys of instance `id`'s stored field values, pieces each.
    fn keys(&self, id: &str) -> Vec<Vec<u8>> {
        let mut prefix = vec![b'f'];
        prefix.extend_from_slice(id.as_bytes());
        prefix.push(0);
        self.inner
            .scan_prefix(&prefix)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

impl Store for Counting {
    fn commit(&self, batch: Batch) -> BoxFuture<Result<(), StoreError>> {
        let bytes = batch
            .writes
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        self.batches.lock().unwrap().push(bytes);
        self.inner.commit(batch)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if key.first() == Some(&b'f') {
            self.field_reads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get(key)
    }
    fn stats(&self) -> Option<StoreStats> {
        self.inner.stats()
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        self.inner.subscribe()
    }
    fn counters(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.inner.counters()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan_prefix(prefix)
    }
    fn scan_from(
        &self,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan_from(prefix, from, limit)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Document {
    id: String,
    text: String,
}

/// A document of `kib` KiB of letters that do not compress (drawn by a
/// generator seeded with `id`): stored as it is.
fn document(id: &str, kib: usize) -> Document {
    let mut x = id.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |x, b| {
        (x ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    });
    let text = (0..kib * 1024)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (b'a' + ((x >> 33) % 26) as u8) as char
        })
        .collect();
    Document {
        id: id.to_owned(),
        text,
    }
}

/// A document of `kib` KiB that compresses well (the alphabet over and
/// over, as text, JSON or line items do in part).
fn compressible(id: &str, kib: usize) -> Document {
    Document {
        id: id.to_owned(),
        text: (0..kib * 1024)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect(),
    }
}

#[activity]
async fn stamp(id: String, n: u32) -> Result<u32, ActivityError> {
    let _ = id;
    Ok(n + 1)
}

/// Holds a 64 KiB document across four activities; a small counter changes
/// at each step.
#[workflow]
async fn carry(doc: Document) -> Result<String, WorkflowError> {
    let mut n = 0;
    for _ in 0..4 {
        n = stamp(doc.id.clone(), n).await?;
    }
    Ok(format!("{} {} {}", doc.id, doc.text.len(), n))
}

/// Grows a large log at each signal: each checkpoint stores the log anew
/// (and refers to the unchanged document).
#[workflow]
async fn grow(doc: Document) -> Result<usize, WorkflowError> {
    let mut log = doc.text.clone();
    for round in 0..3 {
        let _next: () = signal("next").await?;
        log.push_str(&"#".repeat(600 + round));
    }
    Ok(log.len() + doc.text.len())
}

/// Waits for a signal while holding the document.
#[workflow]
async fn hold(doc: Document) -> Result<String, WorkflowError> {
    let suffix: String = signal("go").await?;
    Ok(format!("{}{suffix}", &doc.text[..3]))
}

/// Holds the document inside a helper, across a signal and an activity.
#[helper]
async fn keep_in_helper(doc: Document) -> Result<String, WorkflowError> {
    let suffix: String = signal("go").await?;
    let n = stamp(doc.id.clone(), 1).await?;
    Ok(format!("{}{suffix}{n}", &doc.text[..3]))
}

#[workflow]
async fn hold_in_helper(doc: Document) -> Result<String, WorkflowError> {
    let id = doc.id.clone();
    let inner = keep_in_helper(doc).await?;
    Ok(format!("{id}:{inner}"))
}

/// The input JSON in `id`'s history.
fn input_json(rt: &Runtime, id: &str) -> String {
    rt.history(id)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            durable_runtime::history::EventKind::Input { json } => Some(json),
            _ => None,
        })
        .expect("an input event")
}

async fn open(store: Counting) -> Runtime {
    Runtime::builder()
        .workflow::<carry>()
        .workflow::<grow>()
        .workflow::<hold>()
        .workflow::<hold_in_helper>()
        .open_store(store)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_unchanged_large_field_is_written_once_and_deleted_with_the_last_checkpoint() {
    let test_store = BACKEND.store();
    let store = Counting::new(test_store.open().await);
    let rt = open(store.clone()).await;
    store.take();
    let out = rt
        .start("c", carry(document("c", 64)), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(out.unwrap(), "c 65536 4");
    let batches = store.take();
    // the first checkpoint stores the document once (the input, which the
    // state's field and the history both refer to); each later one a
    // small record, under 1 KiB with its history (the activity's input
    // and result included): what changed
    let (first, later) = batches.split_first().unwrap();
    assert!(*first > 64 * 1024 && *first < 68 * 1024, "{batches:?}");
    assert!(later.len() >= 4, "{batches:?}");
    assert!(later.iter().all(|b| *b < 1024), "{batches:?}");
    // the history shows the input, read from where it is kept
    let input = input_json(&rt, "c");
    assert!(input.contains(&document("c", 64).text), "{input:.80}");
    // the finished instance keeps its input (for the history), nothing more:
    // 64 KiB that do not compress, in pieces of at most 8,000 bytes (so redb
    // gives it what it needs, not a 128 KiB region)
    assert_eq!(store.fields("c"), 1);
    let pieces = store.keys("c");
    assert_eq!(
        pieces.len(),
        (64 * 1024 + 10usize).div_ceil(8000),
        "{pieces:?}"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_changed_large_field_is_stored_anew_and_the_value_it_replaces_deleted() {
    let test_store = BACKEND.store();
    let store = Counting::new(test_store.open().await);
    // no reset points: nothing else may refer to a replaced value (reset
    // points keep theirs until they go: `suites/reset.rs`)
    let rt = Runtime::builder()
        .workflow::<grow>()
        .reset_points(0)
        .open_store(store.clone())
        .await
        .unwrap();
    let h = rt
        .start("g", grow(document("g", 4)), IdPolicy::Reject)
        .await
        .unwrap();
    let mut step = 0;
    for _ in 0..3 {
        until("waiting for the next signal", || {
            h.describe()
                .is_ok_and(|d| d.variant == "Signal" && d.step > step)
        })
        .await;
        step = h.describe().unwrap().step;
        // the document (the input) and the log, each once: the log's earlier
        // values are gone
        assert_eq!(store.fields("g"), 2);
        rt.signal("g", "next", &()).await.unwrap();
    }
    let out = h.result().within().await.unwrap();
    assert_eq!(out.unwrap(), 2 * 4 * 1024 + 600 + 601 + 602);
    assert_eq!(store.fields("g"), 1, "the input, for the history");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_state_stored_by_fields_reads_whole_after_a_restart_in_describe_and_in_a_snapshot() {
    let test_store = BACKEND.store();
    let store = Counting::new(test_store.open().await);
    let rt = open(store.clone()).await;
    let doc = document("h", 16);
    rt.start("h", hold(doc.clone()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for the signal", || {
        rt.describe("h").is_ok_and(|d| d.variant == "Signal")
    })
    .await;
    assert_eq!(
        store.fields("h"),
        1,
        "the document is stored once, apart: the input the state refers to"
    );
    rt.shutdown().await;

    // a new process reads it whole
    let rt = open(store.clone()).await;
    let state = rt.state_json("h").unwrap();
    assert!(
        state.to_string().contains(&doc.text),
        "the state shows the whole document"
    );
    let snapshot = rt.export("h").unwrap();
    assert_eq!(snapshot.description().unwrap().status, Status::Running);

    // the snapshot carries the whole state to a store that never had it
    let other_store = BACKEND.store();
    let other = open(Counting::new(other_store.open().await)).await;
    other.import(&snapshot, false).await.unwrap();
    assert!(input_json(&other, "h").contains(&doc.text));
    other.signal("h", "go", &"!".to_owned()).await.unwrap();
    let moved = other.handle::<hold>("h").result().within().await.unwrap();
    assert_eq!(moved.unwrap(), format!("{}!", &doc.text[..3]));
    other.shutdown().await;

    rt.signal("h", "go", &"?".to_owned()).await.unwrap();
    let here = rt.handle::<hold>("h").result().within().await.unwrap();
    assert_eq!(here.unwrap(), format!("{}?", &doc.text[..3]));
    assert_eq!(store.fields("h"), 1, "the input, for the history");
    rt.shutdown().await;
}

/// A large local held by a helper lives in the caller's state (nested):
/// it reads whole after a restart, moves in a snapshot, and the instance
/// ends with it on either store.
#[tokio::test]
async fn a_large_local_held_inside_a_helper_reads_whole_after_a_restart_and_in_a_snapshot() {
    let test_store = BACKEND.store();
    let store = Counting::new(test_store.open().await);
    let rt = open(store.clone()).await;
    let doc = document("k", 64);
    rt.start("k", hold_in_helper(doc.clone()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for the signal in the helper", || {
        rt.describe("k")
            .is_ok_and(|d| d.waiting_for.is_some_and(|w| w.starts_with("signal")))
    })
    .await;
    rt.shutdown().await;

    let rt = open(store.clone()).await;
    let state = rt.state_json("k").unwrap();
    assert!(
        state.to_string().contains(&doc.text),
        "the helper's document, in the caller's state"
    );
    let snapshot = rt.export("k").unwrap();
    let other_store = BACKEND.store();
    let other = open(Counting::new(other_store.open().await)).await;
    other.import(&snapshot, false).await.unwrap();
    other.signal("k", "go", &"!".to_owned()).await.unwrap();
    let moved = other
        .handle::<hold_in_helper>("k")
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(moved.unwrap(), format!("k:{}!2", &doc.text[..3]));
    other.shutdown().await;

    rt.signal("k", "go", &"?".to_owned()).await.unwrap();
    let here = rt
        .handle::<hold_in_helper>("k")
        .result()
        .within()
        .await
        .unwrap();
    assert_eq!(here.unwrap(), format!("k:{}?2", &doc.text[..3]));
    rt.shutdown().await;
}

/// A large value that compresses is stored compressed: the first
/// checkpoint writes a fraction of the document, and the instance reads it
/// whole after a restart (state, history, snapshot) and finishes with it.
#[tokio::test]
async fn a_large_value_that_compresses_is_stored_compressed_and_reads_whole() {
    let test_store = BACKEND.store();
    let store = Counting::new(test_store.open().await);
    let rt = open(store.clone()).await;
    store.take();
    let doc = compressible("z", 64);
    rt.start("z", hold(doc.clone()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for the signal", || {
        rt.describe("z").is_ok_and(|d| d.variant == "Signal")
    })
    .await;
    let batches = store.take();
    let written: usize = batches.iter().sum();
    assert!(
        written < 8 * 1024,
        "64 KiB that compress are written in a fraction of that: {batches:?}"
    );
    assert_eq!(store.fields("z"), 1, "stored once, apart");
    rt.shutdown().await;

    let rt = open(store.clone()).await;
    assert!(rt.state_json("z").unwrap().to_string().contains(&doc.text));
    assert!(input_json(&rt, "z").contains(&doc.text));
    let snapshot = rt.export("z").unwrap();
    let other_store = BACKEND.store();
    let other = open(Counting::new(other_store.open().await)).await;
    other.import(&snapshot, false).await.unwrap();
    assert!(input_json(&other, "z").contains(&doc.text));
    other.shutdown().await;
    rt.signal("z", "go", &"!".to_owned()).await.unwrap();
    let out = rt.handle::<hold>("z").result().within().await.unwrap();
    assert_eq!(out.unwrap(), "abc!");
    rt.shutdown().await;
}

/// What reads an instance's status, position or output (describe, a list,
/// a handle's describe, its result once ended) reads none of its stored
/// field values: only the state's JSON (and a step) needs them.
#[tokio::test]
async fn describing_or_listing_an_instance_reads_none_of_its_stored_fields() {
    let test_store = BACKEND.store();
    let store = Counting::new(test_store.open().await);
    let rt = open(store.clone()).await;
    let doc = document("r", 64);
    let h = rt
        .start("r", hold(doc.clone()), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for the signal", || {
        rt.describe("r").is_ok_and(|d| d.variant == "Signal")
    })
    .await;
    store.field_reads();
    assert_eq!(rt.describe("r").unwrap().status, Status::Running);
    assert_eq!(h.describe().unwrap().variant, "Signal");
    let filter = durable_runtime::ListFilter {
        workflow: Some("hold".into()),
        ..Default::default()
    };
    assert_eq!(rt.list(&filter).unwrap().len(), 1);
    assert_eq!(
        store.field_reads(),
        0,
        "describe and list read no field value"
    );
    // the control: the state's JSON puts the state back together
    assert!(rt.state_json("r").unwrap().to_string().contains(&doc.text));
    assert!(store.field_reads() > 0);
    rt.signal("r", "go", &"!".to_owned()).await.unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        format!("{}!", &doc.text[..3])
    );
    rt.shutdown().await;
}

/// How many times each [`Counted`] value, by its key, was decoded.
static DECODED: Mutex<std::collections::BTreeMap<String, usize>> =
    Mutex::new(std::collections::BTreeMap::new());

/// A value that counts its decodes (under its key: the backends' tests
/// may share a process).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "CountedFields")]
struct Counted {
    key: String,
    text: String,
}

#[derive(Deserialize)]
struct CountedFields {
    key: String,
    text: String,
}

impl From<CountedFields> for Counted {
    fn from(f: CountedFields) -> Counted {
        *DECODED.lock().unwrap().entry(f.key.clone()).or_default() += 1;
        Counted {
            key: f.key,
            text: f.text,
        }
    }
}

fn decoded(key: &str) -> usize {
    DECODED.lock().unwrap().get(key).copied().unwrap_or(0)
}

/// Three activities in a row, a wait, one more.
#[workflow]
async fn tally(c: Counted) -> Result<String, WorkflowError> {
    let mut n = 0;
    for _ in 0..3 {
        n = stamp(c.key.clone(), n).await?;
    }
    let _go: () = signal("go").await?;
    n = stamp(c.key.clone(), n).await?;
    Ok(format!("{} {} {n}", c.key, c.text.len()))
}

/// A running instance steps on from the state its last step left, held
/// typed: the state is decoded when it is read back from the store (here
/// after a wait), not at every step.
#[tokio::test]
async fn a_running_instance_steps_on_from_its_state_held_typed_and_decodes_it_only_after_a_wait() {
    let test_store = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<tally>()
        .open_store(test_store.open().await)
        .await
        .unwrap();
    let key = format!("tally-{BACKEND:?}");
    let input = Counted {
        key: key.clone(),
        text: "x".repeat(4096),
    };
    let h = rt
        .start(key.clone(), tally(input), IdPolicy::Reject)
        .await
        .unwrap();
    until("waiting for the signal", || {
        h.describe().is_ok_and(|d| d.variant == "Signal")
    })
    .await;
    assert_eq!(
        decoded(&key),
        1,
        "the input, decoded to start; the three activities' steps resumed the state held"
    );
    rt.signal(&key, "go", &()).await.unwrap();
    assert_eq!(
        h.result().within().await.unwrap().unwrap(),
        format!("{key} 4096 4")
    );
    assert_eq!(
        decoded(&key),
        2,
        "read back once after the wait; the last activity's step resumed it held"
    );
    rt.shutdown().await;
}
