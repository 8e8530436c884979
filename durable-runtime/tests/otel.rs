//! OpenTelemetry (feature `otel`): the trace context is stored with each
//! instance, so one workflow's spans — before and after a restart — are
//! one trace, the trace of the request that started it. Exported through
//! `tracing-opentelemetry` into the SDK's in-memory exporter, as an
//! application would export them over OTLP.

mod common;

use common::{Within, until};

use durable_runtime::prelude::*;
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[activity]
async fn stamp(what: String) -> Result<String, ActivityError> {
    Ok(format!("stamped {what}"))
}

/// An activity, a signal (the process restarts while it waits), another
/// activity.
#[workflow]
async fn two_stamps(what: String) -> Result<String, WorkflowError> {
    let first = stamp(format!("{what} 1")).await?;
    let _go: () = signal("go").await?;
    let second = stamp(format!("{what} 2")).await?;
    Ok(format!("{first}, {second}"))
}

/// The activity spans exported for instance `id`.
fn activity_spans<'a>(spans: &'a [SpanData], id: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.name == "activity")
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "instance" && kv.value.as_str() == id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instances_spans_stay_in_its_trace_across_a_restart() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("durable-test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let builder = || Runtime::builder().workflow::<two_stamps>();
    let rt = builder().open(dir.path()).await.unwrap();

    // started from a request's span: the instance joins the request's trace
    let request = tracing::info_span!("POST /orders");
    let request_trace = request.context().span().span_context().trace_id();
    assert_ne!(request_trace, TraceId::INVALID);
    let started = rt.start("traced", two_stamps("a".into()), IdPolicy::Reject);
    tracing::Instrument::instrument(started, request)
        .await
        .unwrap();
    // started outside any span: a trace of its own
    rt.start("untraced", two_stamps("b".into()), IdPolicy::Reject)
        .await
        .unwrap();
    for id in ["traced", "untraced"] {
        let rt = &rt;
        until("waiting for the signal", move || {
            rt.describe(id)
                .unwrap()
                .waiting_for
                .is_some_and(|w| w.starts_with("signal"))
        })
        .await;
    }
    rt.shutdown().await;

    // another process (a restart): the signal, the second activity
    let rt = builder().open(dir.path()).await.unwrap();
    for id in ["traced", "untraced"] {
        rt.signal(id, "go", &()).await.unwrap();
        let out = rt.handle::<two_stamps>(id).result().within().await.unwrap();
        assert!(out.unwrap().ends_with(" 2"));
    }
    rt.shutdown().await;
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let traced = activity_spans(&spans, "traced");
    assert_eq!(traced.len(), 2, "one span per attempt: {traced:#?}");
    for s in &traced {
        assert_eq!(
            s.span_context.trace_id(),
            request_trace,
            "before and after the restart, in the request's trace"
        );
    }
    let untraced = activity_spans(&spans, "untraced");
    assert_eq!(untraced.len(), 2, "{untraced:#?}");
    let own = untraced[0].span_context.trace_id();
    assert_ne!(own, request_trace, "not in another instance's trace");
    assert_ne!(own, TraceId::INVALID);
    assert_eq!(
        untraced[1].span_context.trace_id(),
        own,
        "its own trace, across the restart"
    );
}
