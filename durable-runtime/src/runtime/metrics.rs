//! [`Metrics`]: a runtime's series for Prometheus, read at each scrape.

use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::Runtime;
use crate::engine::Engine;
use crate::metrics::{PhaseLabel, StatusLabel, counter, gauge, gauges_by};
use crate::phase::Phase;
use crate::store::StoreError;

/// A runtime's metrics: labelled counters and histograms of what it did
/// (instances started and ended by workflow and status, transitions by
/// workflow, activity attempts by activity and outcome, attempt, checkpoint
/// and timer-lag latencies, the commit path's group sizes) and gauges read
/// when scraped (instances by status and phase, from counters the store
/// keeps, never a scan).
///
/// `GET /metrics` (cargo feature `http`) serves [`Metrics::render`]. An
/// application with its own [prometheus-client] registry registers the
/// runtime's series in it instead, as a collector:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// let runtime = durable_runtime::Runtime::builder().open(dir.path()).await.unwrap();
/// let mut registry = prometheus_client::registry::Registry::default();
/// registry.register_collector(Box::new(runtime.metrics()));
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains("durable_instances{status=\"running\"} 0"));
/// runtime.shutdown().await;
/// # }
/// ```
///
/// It holds the runtime weakly: once the runtime is shut down and dropped
/// it encodes nothing (and does not keep the store open).
///
/// [prometheus-client]: https://docs.rs/prometheus-client/0.26
#[derive(Clone, Debug)]
pub struct Metrics {
    engine: Weak<Engine>,
}

impl Runtime {
    /// This runtime's [`Metrics`].
    pub fn metrics(&self) -> Metrics {
        Metrics {
            engine: Arc::downgrade(&self.engine),
        }
    }
}

impl Metrics {
    /// Every series in the OpenMetrics text format (ending in `# EOF`),
    /// what `GET /metrics` serves with the content type
    /// `application/openmetrics-text; version=1.0.0; charset=utf-8`.
    ///
    /// # Errors
    ///
    /// The store could not be read (the counts by status), or the runtime
    /// is gone ([`StoreError::Closed`]).
    pub fn render(&self) -> Result<String, StoreError> {
        crate::store::blocking(|| {
            let engine = self.engine.upgrade().ok_or(StoreError::Closed)?;
            let phases = Phase::counts(&*engine.store)?;
            let mut registry = Registry::default();
            registry.register_collector(Box::new(Scrape { engine, phases }));
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &registry)
                .map_err(|e| StoreError::Codec(format!("encoding the metrics: {e}")))?;
            Ok(out)
        })
    }
}

impl Collector for Metrics {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(engine) = self.engine.upgrade() else {
            return Ok(());
        };
        let phases = Phase::counts(&*engine.store).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: the counts by status could not be read");
            Vec::new()
        });
        Scrape { engine, phases }.encode(encoder)
    }
}

/// One scrape: the engine and the counts read for it.
struct Scrape {
    engine: Arc<Engine>,
    /// Empty when they could not be read (the gauges are then left out).
    phases: Vec<(Phase, usize)>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape")
            .field("phases", &self.phases)
            .finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let engine = &self.engine;
        engine.metrics.encode(&mut encoder)?;
        if let Some(s) = engine.store.stats() {
            for (name, help, value) in [
                ("durable_store_commits", "Batches committed.", s.commits),
                ("durable_store_flushes", "Group writes.", s.flushes),
                ("durable_store_fsyncs", "fsync/fdatasync calls.", s.fsyncs),
                (
                    "durable_store_checkpoints",
                    "Checkpoints (the tree made durable, the log emptied).",
                    s.checkpoints,
                ),
                (
                    "durable_store_writes",
                    "Key writes (puts and deletes) committed.",
                    s.writes,
                ),
                (
                    "durable_store_written_bytes",
                    "Bytes of keys and values committed.",
                    s.bytes,
                ),
            ] {
                counter(&mut encoder, name, help, value)?;
            }
        }
        if let Some(commits) = engine.store.store_metrics() {
            commits.encode(&mut encoder)?;
        }
        if !self.phases.is_empty() {
            let mut by_status: Vec<(StatusLabel, u64)> = Vec::new();
            for (phase, n) in &self.phases {
                let status = phase.status().as_str();
                match by_status.iter_mut().find(|(s, _)| s.status == status) {
                    Some((_, total)) => *total += *n as u64,
                    None => by_status.push((StatusLabel { status }, *n as u64)),
                }
            }
            gauges_by(
                &mut encoder,
                ("durable_instances", "Instances by status."),
                by_status,
            )?;
            gauges_by(
                &mut encoder,
                (
                    "durable_instances_by_phase",
                    "Instances by phase (running split into running, sleeping, waiting_for_signal).",
                ),
                self.phases
                    .iter()
                    .map(|(p, n)| (PhaseLabel { phase: p.as_str() }, *n as u64)),
            )?;
        }
        let running = engine.book.tasks();
        gauge(
            &mut encoder,
            "durable_running_tasks",
            "Instances with a task now.",
            running as i64,
        )?;
        if let Some(member) = &engine.member {
            gauge(
                &mut encoder,
                "durable_owned_instances",
                "Unfinished instances this worker owns (PostgreSQL).",
                member.owned_count() as i64,
            )?;
        }
        Ok(())
    }
}
