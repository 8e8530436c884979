//! Micro-benchmarks of the hot paths (`cargo bench -p durable-bench`):
//! the codec on a stored instance record and on the order workflow's state
//! enum, and whole order workflows (five transitions each) on the in-memory
//! store, which has no fsync, so what remains is the runtime's own CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use durable_bench::{Order, ProcessOrderState, process_order};
use durable_runtime::__private::{decode_record, reencode_record};
use durable_runtime::codec;
use durable_runtime::store::Store;
use durable_runtime::store::mem::MemStore;
use durable_runtime::{IdPolicy, Runtime};

fn main() {
    divan::main();
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn open(tokio: &tokio::runtime::Runtime, store: MemStore) -> Runtime {
    tokio.block_on(async {
        Runtime::builder()
            .workflow::<process_order>()
            .open_store(store)
            .await
            .expect("open")
    })
}

/// The stored record of an order workflow waiting at `charge`-like steps:
/// taken from a real run, then completed, so it holds the output too.
fn stored_record() -> Vec<u8> {
    let tokio = tokio_rt();
    let store = MemStore::new();
    let rt = open(&tokio, store.clone());
    tokio.block_on(async {
        rt.start(
            "order-1",
            process_order(Order::numbered(1)),
            IdPolicy::Reject,
        )
        .await
        .expect("start")
        .result()
        .await
        .expect("result")
        .expect("ok");
    });
    store
        .get(b"iorder-1")
        .expect("read")
        .expect("the record is stored under i + id")
}

#[divan::bench]
fn record_decode(bencher: divan::Bencher<'_, '_>) {
    let bytes = stored_record();
    bencher.bench(|| decode_record(divan::black_box(&bytes)).expect("decode"));
}

#[divan::bench]
fn record_decode_encode(bencher: divan::Bencher<'_, '_>) {
    let bytes = stored_record();
    bencher.bench(|| reencode_record(divan::black_box(&bytes)).expect("re-encode"));
}

/// What each variant awaits, for a state built by hand: a command marker
/// (stores nothing).
type Awaits = durable_runtime::__private::Marker<durable_runtime::command::Now>;
type State = ProcessOrderState<Awaits, Awaits, Awaits, Awaits>;

fn charge_state() -> State {
    ProcessOrderState::Charge {
        order: Order::numbered(123_456),
        __await: Default::default(),
    }
}

#[divan::bench]
fn state_encode(bencher: divan::Bencher<'_, '_>) {
    let state = charge_state();
    bencher.bench(|| codec::encode(divan::black_box(&state)).expect("encode"));
}

#[divan::bench]
fn state_decode(bencher: divan::Bencher<'_, '_>) {
    let bytes = codec::encode(&charge_state()).expect("encode");
    bencher.bench(|| codec::decode::<State>(divan::black_box(&bytes)).expect("decode"));
}

/// One whole order workflow (start + 4 activities = 5 transitions) on the
/// in-memory store, one at a time.
#[divan::bench(sample_count = 50, sample_size = 20)]
fn order_workflow_in_memory(bencher: divan::Bencher<'_, '_>) {
    let tokio = tokio_rt();
    let rt = Arc::new(open(&tokio, MemStore::new()));
    let next = AtomicUsize::new(0);
    bencher.bench_local(|| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        tokio.block_on(async {
            rt.start(
                format!("order-{i}"),
                process_order(Order::numbered(i)),
                IdPolicy::Reject,
            )
            .await
            .expect("start")
            .result()
            .await
            .expect("result")
            .expect("ok")
        })
    });
}
