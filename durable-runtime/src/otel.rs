//! The trace context kept with each instance, so that one workflow's spans
//! make one trace across restarts, takeovers and deploys (feature `otel`).
//!
//! When an instance is created, the OpenTelemetry context of the caller's
//! current span (the request that started it, or the parent instance for a
//! child) is stored in its record; with no such context, a new trace is
//! begun for it. Every task that runs the instance then makes its
//! `instance` span a child of that stored context, so its transitions and
//! activity attempts, in whatever process and after however many
//! restarts, are exported under the same trace id. Exporting is the
//! application's choice: it installs `tracing-opentelemetry`'s layer with
//! its own tracer (OTLP, Jaeger, stdout). Without the feature nothing is
//! stored and spans are plain `tracing` spans.

use serde::{Deserialize, Serialize};

/// A W3C trace context (`traceparent`) as stored with an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceParent {
    /// The trace id (16 bytes, never all zero).
    trace_id: [u8; 16],
    /// The span the instance's spans descend from (8 bytes, never zero).
    span_id: [u8; 8],
    /// The W3C trace flags (bit 0: sampled).
    flags: u8,
}

#[cfg(feature = "otel")]
mod link {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceParent;

    impl TraceParent {
        /// The context of the current span; with none, of a root span
        /// (`workflow created`, exported as the trace's root, sampled as the
        /// application's sampler decides). `None` when no OpenTelemetry
        /// layer is installed: there is nothing to link.
        pub(crate) fn current() -> Option<TraceParent> {
            let of = |span: &tracing::Span| {
                let cx = span.context();
                let sc = cx.span().span_context().clone();
                sc.is_valid().then(|| TraceParent {
                    trace_id: sc.trace_id().to_bytes(),
                    span_id: sc.span_id().to_bytes(),
                    flags: sc.trace_flags().to_u8(),
                })
            };
            of(&tracing::Span::current())
                .or_else(|| of(&tracing::info_span!(parent: None, "workflow created")))
        }

        /// Makes `span` (not yet entered) a child of this context.
        pub(crate) fn adopt(parent: Option<TraceParent>, span: &tracing::Span) {
            let Some(p) = parent else { return };
            let sc = SpanContext::new(
                TraceId::from_bytes(p.trace_id),
                SpanId::from_bytes(p.span_id),
                TraceFlags::new(p.flags),
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
        }
    }
}

#[cfg(not(feature = "otel"))]
impl TraceParent {
    /// Nothing is stored without the `otel` feature.
    pub(crate) fn current() -> Option<TraceParent> {
        None
    }

    /// Nothing to link without the `otel` feature.
    pub(crate) fn adopt(_: Option<TraceParent>, _: &tracing::Span) {}
}
