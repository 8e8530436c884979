//! The workload and measuring helpers shared by the `durable-bench` binary
//! and its micro-benchmarks (`cargo bench -p durable-bench`).
//!
//! The workload is the order workflow of issue #8: four sequential no-op
//! activities (`check_fraud`, `prepare_shipment`, `charge`, `ship`), so a
//! workflow makes five checkpoints (its start and one per activity).

use std::sync::atomic::{AtomicBool, Ordering};

use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Checkpoints one order workflow makes: its start and one per activity.
pub const TRANSITIONS_PER_ORDER: u64 = 5;

/// While set, `charge` never finishes: the recovery scenario's child process
/// holds its workflows in flight this way until it is killed.
pub static HOLD_CHARGE: AtomicBool = AtomicBool::new(false);

/// An order to process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub order_id: String,
    /// Amount in cents.
    pub cents: u64,
}

impl Order {
    /// Order number `i`.
    pub fn numbered(i: usize) -> Order {
        Order {
            order_id: format!("order-{i}"),
            cents: i as u64,
        }
    }
}

#[activity]
async fn check_fraud(order_id: String, cents: u64) -> Result<(), ActivityError> {
    let _ = (order_id, cents);
    Ok(())
}

#[activity]
async fn prepare_shipment(order: Order) -> Result<(), ActivityError> {
    let _ = order;
    Ok(())
}

#[activity]
async fn charge(order_id: String, cents: u64) -> Result<u64, ActivityError> {
    let _ = order_id;
    if HOLD_CHARGE.load(Ordering::Relaxed) {
        CHARGING.fetch_add(1, Ordering::Relaxed);
        std::future::pending::<()>().await;
    }
    Ok(cents)
}

#[activity]
async fn ship(order: Order, charged: u64) -> Result<u64, ActivityError> {
    let _ = order;
    Ok(charged)
}

/// The order workflow: four sequential activities.
#[workflow]
pub async fn process_order(order: Order) -> Result<u64, WorkflowError> {
    check_fraud(order.order_id.clone(), order.cents).await?;
    prepare_shipment(order.clone()).await?;
    let charged = charge(order.order_id.clone(), order.cents).await?;
    let shipped = ship(order, charged).await?;
    Ok(shipped)
}

/// An order that carries a document (`blob`: line items, a PDF...) the
/// workflow holds across every await: the state-size scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldOrder {
    /// Its id.
    pub order_id: String,
    /// Amount in cents.
    pub cents: u64,
    /// What it carries.
    pub blob: String,
}

/// What a [`HeldOrder`]'s blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blob {
    /// `x` over and over, as the peers' bench sends it (`BLOB_KB` in
    /// `../shared/peers/restate`): compresses to almost nothing.
    Repeated,
    /// Letters drawn at random: does not compress (LZ4 finds no repeats).
    Random,
}

impl Blob {
    /// Its name in flags and tables: `x` or `random`.
    pub fn name(self) -> &'static str {
        match self {
            Blob::Repeated => "x",
            Blob::Random => "random",
        }
    }
}

impl HeldOrder {
    /// Order number `i` carrying `kib` KiB of `blob`.
    pub fn numbered(i: usize, kib: usize, blob: Blob) -> HeldOrder {
        let blob = match blob {
            Blob::Repeated => "x".repeat(kib * 1024),
            Blob::Random => {
                let mut x = (i as u64)
                    .wrapping_add(1)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15);
                (0..kib * 1024)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (b'a' + ((x >> 33) % 26) as u8) as char
                    })
                    .collect()
            }
        };
        HeldOrder {
            order_id: format!("order-{i}"),
            cents: i as u64,
            blob,
        }
    }
}

/// Instances that entered `charge` (the state-size scenario counts the
/// instances it holds in flight by it).
pub static CHARGING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The order workflow on a [`HeldOrder`]: the same four activities, which
/// take only the order's id and amount, while the order (and its blob)
/// stays live across every await. Returns the amount shipped and the
/// length of the blob it still holds at the end.
#[workflow]
pub async fn hold_order(order: HeldOrder) -> Result<(u64, u64), WorkflowError> {
    check_fraud(order.order_id.clone(), order.cents).await?;
    let small = Order {
        order_id: order.order_id.clone(),
        cents: order.cents,
    };
    prepare_shipment(small.clone()).await?;
    let charged = charge(order.order_id.clone(), order.cents).await?;
    let shipped = ship(small, charged).await?;
    Ok((shipped, order.blob.len() as u64))
}

/// Sleeps `days` on a durable timer, then returns `n`.
#[workflow]
pub async fn sleeper(n: u64, days: u64) -> Result<u64, WorkflowError> {
    sleep(std::time::Duration::from_secs(days * 86_400)).await?;
    Ok(n)
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // fields after the command: state is 0, utime is 11, stime is 12 (USER_HZ = 100)
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/self/status` field in MiB (`VmRSS`, `VmHWM`).
pub fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Bytes under `dir`: apparent (file lengths) and allocated (blocks on disk).
pub fn dir_bytes(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .fold((0, 0), |(a, b), e| match e.metadata() {
            Ok(m) if m.is_dir() => {
                let (x, y) = dir_bytes(&e.path());
                (a + x, b + y)
            }
            Ok(m) => (a + m.len(), b + m.blocks() * 512),
            Err(_) => (a, b),
        })
}

/// The value at quantile `p` (0..=1) of ascending `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// The median of `values` (any order).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}
