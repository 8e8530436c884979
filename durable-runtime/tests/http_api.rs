//! The HTTP API and metrics against a live runtime.

use std::sync::Arc;

use durable_runtime::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[activity]
async fn double(n: u32) -> Result<u32, ActivityError> {
    Ok(n * 2)
}

#[workflow]
async fn doubled(n: u32) -> Result<u32, WorkflowError> {
    let d = double(n).await?;
    Ok(d)
}

#[workflow]
async fn parked_on_signal(n: u32) -> Result<u32, WorkflowError> {
    let x: u32 = signal("x").await?;
    Ok(n + x)
}

/// A plain HTTP/1.1 request; (status, body).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn the_api_lists_describes_steers_and_reports_metrics_behind_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<doubled>()
            .workflow::<parked_on_signal>()
            .open(dir.path())
            .await
            .unwrap(),
    );
    rt.start("d", doubled(21), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    rt.start("w", parked_on_signal(1), IdPolicy::Reject)
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = durable_runtime::http::router(rt.clone(), Some("t0ken".into()));
    let server =
        tokio::spawn(async move { durable_runtime::http::axum::serve(listener, app).await });

    let (code, _) = call(addr, "GET", "/api/instances", None, "").await;
    assert_eq!(code, 401, "no token, no answer");
    let (code, body) = call(
        addr,
        "GET",
        "/api/instances?status=completed",
        Some("t0ken"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().map(|a| a.len()), Some(1), "{body}");
    assert_eq!(list[0]["id"], "d");

    let (code, body) = call(addr, "GET", "/api/instances/d/history", Some("t0ken"), "").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("Started") && body.contains("Finished"),
        "{body}"
    );
    let (code, _) = call(addr, "GET", "/api/instances/nobody", Some("t0ken"), "").await;
    assert_eq!(code, 404);
    let (code, _) = call(
        addr,
        "GET",
        "/api/instances?status=sleepy",
        Some("t0ken"),
        "",
    )
    .await;
    assert_eq!(code, 400);

    let (code, body) = call(
        addr,
        "POST",
        "/api/instances/w/terminate",
        Some("t0ken"),
        r#"{"reason":"from the api"}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    match rt.handle::<parked_on_signal>("w").result().await {
        Err(durable_runtime::ResultError::Terminated { reason, .. }) => {
            assert_eq!(reason, "from the api")
        }
        other => panic!("expected terminated, got {other:?}"),
    }
    let (code, _) = call(addr, "POST", "/api/instances/w/cancel", Some("t0ken"), "").await;
    assert_eq!(code, 409, "an ended instance cannot be cancelled");

    let (code, body) = call(addr, "GET", "/metrics", Some("t0ken"), "").await;
    assert_eq!(code, 200);
    for needle in [
        "durable_transitions_total",
        "durable_activity_attempts_total 1",
        "durable_store_fsyncs_total",
        "durable_instances{status=\"completed\"} 1",
        "durable_instances{status=\"terminated\"} 1",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
    server.abort();
}
