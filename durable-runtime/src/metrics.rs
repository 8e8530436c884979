//! What the engine and the commit path count, kept in prometheus-client's
//! metrics (lock-free counters and histograms, labelled by workflow,
//! activity and status) and encoded at each scrape by
//! [`Metrics`](crate::Metrics).
//!
//! Labels are the names of registered workflows and activities and fixed
//! words (statuses, outcomes): `&'static str`s taken from the registry, so a
//! count on the hot path allocates nothing and the number of series is
//! bounded by the code, never by the data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

/// Bucket bounds for latencies, in seconds: 50 µs to 60 s.
const SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds for counts (commits per group flush).
const COUNTS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// A histogram of latencies in seconds.
fn seconds() -> Histogram {
    Histogram::new(SECONDS.iter().copied())
}

/// The label of the series of one workflow.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowLabel {
    workflow: &'static str,
}

/// The label of the instances of one workflow that ended one way.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabel {
    workflow: &'static str,
    status: &'static str,
}

/// The label of the series of one activity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabel {
    activity: &'static str,
}

/// The label of one activity's attempts that ended one way.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabel {
    activity: &'static str,
    outcome: &'static str,
}

/// A gauge's or a count's label taken from a fixed list (`status`, `phase`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub(crate) status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabel {
    pub(crate) phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// What one runtime's engine counts.
#[derive(Debug)]
pub(crate) struct EngineMetrics {
    started: Family<WorkflowLabel, Counter>,
    ended: Family<EndLabel, Counter>,
    transitions: Family<WorkflowLabel, Counter>,
    attempts: Family<AttemptLabel, Counter>,
    attempt_seconds: Family<ActivityLabel, Histogram>,
    checkpoint_seconds: Histogram,
    timer_lag_seconds: Histogram,
    taken_over: Counter,
    /// Transitions and attempts together: what the test environment
    /// watches to tell a quiet runtime (not encoded).
    progress: AtomicU64,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            started: Family::default(),
            ended: Family::default(),
            transitions: Family::default(),
            attempts: Family::default(),
            attempt_seconds: Family::new_with_constructor(seconds),
            checkpoint_seconds: seconds(),
            timer_lag_seconds: seconds(),
            taken_over: Counter::default(),
            progress: AtomicU64::new(0),
        }
    }
}

impl EngineMetrics {
    /// An instance of `workflow` was created (a start, a child, a
    /// schedule's run).
    pub(crate) fn started(&self, workflow: &'static str) {
        self.started
            .get_or_create(&WorkflowLabel { workflow })
            .inc();
    }

    /// An instance of `workflow` ended with `status` (its final save
    /// committed).
    pub(crate) fn ended(&self, workflow: &'static str, status: &'static str) {
        self.ended
            .get_or_create(&EndLabel { workflow, status })
            .inc();
    }

    /// A transition of `workflow` was checkpointed, `checkpoint` after its
    /// save began.
    pub(crate) fn transition(&self, workflow: &'static str, checkpoint: Duration) {
        self.transitions
            .get_or_create(&WorkflowLabel { workflow })
            .inc();
        self.checkpoint_seconds.observe(checkpoint.as_secs_f64());
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// An attempt of `activity` ended, failed or not, after `took`.
    pub(crate) fn attempt(&self, activity: &'static str, failed: bool, took: Duration) {
        let outcome = if failed { "failed" } else { "ok" };
        self.attempts
            .get_or_create(&AttemptLabel { activity, outcome })
            .inc();
        self.attempt_seconds
            .get_or_create(&ActivityLabel { activity })
            .observe(took.as_secs_f64());
        self.progress.fetch_add(1, Ordering::Relaxed);
    }

    /// A timer fired `lag_ms` after it was due.
    pub(crate) fn timer_fired(&self, lag_ms: u64) {
        self.timer_lag_seconds.observe(lag_ms as f64 / 1000.0);
    }

    /// `n` instances were taken over from workers whose lease lapsed.
    pub(crate) fn taken_over(&self, n: usize) {
        self.taken_over.inc_by(n as u64);
    }

    /// Transitions and attempts so far (the test environment's sign of
    /// progress).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Encodes every series above.
    pub(crate) fn encode(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let families: [(&str, &str, MetricType, &dyn EncodeMetric); 8] = [
            (
                "durable_workflows_started",
                "Instances created (starts, children, schedule runs), by workflow.",
                MetricType::Counter,
                &self.started,
            ),
            (
                "durable_workflows_ended",
                "Instances that ended, by workflow and status (completed, failed, cancelled, terminated).",
                MetricType::Counter,
                &self.ended,
            ),
            (
                "durable_transitions",
                "Checkpointed transitions, by workflow.",
                MetricType::Counter,
                &self.transitions,
            ),
            (
                "durable_activity_attempts",
                "Activity attempts run, by activity and outcome (ok, failed).",
                MetricType::Counter,
                &self.attempts,
            ),
            (
                "durable_activity_attempt_duration_seconds",
                "Activity attempt durations, by activity.",
                MetricType::Histogram,
                &self.attempt_seconds,
            ),
            (
                "durable_checkpoint_seconds",
                "From a transition's save to its durable acknowledgement (group commit and fsync included).",
                MetricType::Histogram,
                &self.checkpoint_seconds,
            ),
            (
                "durable_timer_lag_seconds",
                "How late timers fired after they were due (a timer due while no process ran counts its whole wait).",
                MetricType::Histogram,
                &self.timer_lag_seconds,
            ),
            (
                "durable_taken_over",
                "Instances this worker took over from workers whose lease lapsed (PostgreSQL).",
                MetricType::Counter,
                &self.taken_over,
            ),
        ];
        for (name, help, kind, metric) in families {
            metric.encode(encoder.encode_descriptor(name, help, None, kind)?)?;
        }
        Ok(())
    }
}

/// A store's own series: how many commits each group write carried and how
/// long writing it took, and for a store over the network (PostgreSQL) how
/// long its reads took and its connection pool. Kept by the built-in stores
/// and shown at `/metrics` ([`Store::store_metrics`](crate::store::Store::store_metrics));
/// cheap to clone (the clones count into the same series).
#[derive(Clone)]
pub struct StoreMetrics {
    group_size: Histogram,
    flush_seconds: Histogram,
    read_seconds: Histogram,
    /// Whether reads are round trips worth timing (shown only then).
    timed_reads: bool,
    pool: Option<std::sync::Arc<dyn Fn() -> PoolGauges + Send + Sync>>,
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("group_size", &self.group_size)
            .field("flush_seconds", &self.flush_seconds)
            .field("timed_reads", &self.timed_reads)
            .field("pool", &self.pool.as_ref().map(|p| p()))
            .finish()
    }
}

/// A connection pool's state at a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections no one is using.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            group_size: Histogram::new(COUNTS.iter().copied()),
            flush_seconds: seconds(),
            read_seconds: seconds(),
            timed_reads: false,
            pool: None,
        }
    }
}

impl StoreMetrics {
    /// One group of `commits` commits was written in `took`.
    pub fn group_written(&self, commits: usize, took: Duration) {
        self.group_size.observe(commits as f64);
        self.flush_seconds.observe(took.as_secs_f64());
    }

    /// One read (a round trip) took `took`.
    pub fn read_done(&self, took: Duration) {
        self.read_seconds.observe(took.as_secs_f64());
    }

    /// The same series, with reads shown (`durable_store_read_seconds`) and
    /// the pool `gauges` reports read at each scrape.
    pub fn with_pool(mut self, gauges: impl Fn() -> PoolGauges + Send + Sync + 'static) -> Self {
        self.timed_reads = true;
        self.pool = Some(std::sync::Arc::new(gauges));
        self
    }

    pub(crate) fn encode(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        self.group_size.encode(encoder.encode_descriptor(
            "durable_store_group_size",
            "Commits per group write.",
            None,
            MetricType::Histogram,
        )?)?;
        self.flush_seconds.encode(encoder.encode_descriptor(
            "durable_store_flush_seconds",
            "Writing one group: the log append and its sync, or the transaction's commit.",
            None,
            MetricType::Histogram,
        )?)?;
        if self.timed_reads {
            self.read_seconds.encode(encoder.encode_descriptor(
                "durable_store_read_seconds",
                "One read of the store, a round trip to the server.",
                None,
                MetricType::Histogram,
            )?)?;
        }
        if let Some(pool) = &self.pool {
            let p = pool();
            let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            gauge(
                encoder,
                "durable_store_pool_max_connections",
                "The most connections the pool opens.",
                n(p.max_size),
            )?;
            gauges_by(
                encoder,
                (
                    "durable_store_pool_connections",
                    "Open connections, in use or idle.",
                ),
                [
                    (
                        StateLabel { state: "in_use" },
                        p.size.saturating_sub(p.available) as u64,
                    ),
                    (StateLabel { state: "idle" }, p.available as u64),
                ],
            )?;
            gauge(
                encoder,
                "durable_store_pool_waiting",
                "Callers waiting for a connection.",
                n(p.waiting),
            )?;
        }
        Ok(())
    }
}

/// Encodes one counter read at the scrape (`name` without `_total`).
pub(crate) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

/// Encodes one gauge read at the scrape.
pub(crate) fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Encodes one gauge per label set, read at the scrape.
pub(crate) fn gauges_by<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help): (&str, &str),
    values: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, n) in values {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        ConstGauge::new(n).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    /// A collector over a closure, to encode the engine's metrics alone.
    #[derive(Debug)]
    struct Only(EngineMetrics);

    impl prometheus_client::collector::Collector for Only {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            self.0.encode(&mut encoder)
        }
    }

    #[test]
    fn series_are_labelled_by_workflow_activity_and_status() {
        let m = EngineMetrics::default();
        m.started("order");
        m.transition("order", Duration::from_millis(2));
        m.transition("order", Duration::from_millis(3));
        m.attempt("charge", true, Duration::from_millis(20));
        m.attempt("charge", false, Duration::from_millis(30));
        m.ended("order", "completed");
        m.timer_fired(1500);
        assert_eq!(m.progress(), 4);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Only(m)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for line in [
            "durable_workflows_started_total{workflow=\"order\"} 1",
            "durable_workflows_ended_total{workflow=\"order\",status=\"completed\"} 1",
            "durable_transitions_total{workflow=\"order\"} 2",
            "durable_activity_attempts_total{activity=\"charge\",outcome=\"failed\"} 1",
            "durable_activity_attempts_total{activity=\"charge\",outcome=\"ok\"} 1",
            "durable_activity_attempt_duration_seconds_count{activity=\"charge\"} 2",
            "durable_activity_attempt_duration_seconds_bucket{le=\"0.025\",activity=\"charge\"} 1",
            "durable_checkpoint_seconds_count 2",
            "durable_timer_lag_seconds_bucket{le=\"2.5\"} 1",
            "durable_taken_over_total 0",
            "# EOF",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line} in\n{out}");
        }
    }
}
