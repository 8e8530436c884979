// Included by `http_api.rs` once per backend (`common::suite!`), which sets
// `BACKEND`.
//
// The HTTP API and metrics against a live runtime.

use std::sync::Arc;

use durable_runtime::Phase;
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
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<doubled>()
            .workflow::<parked_on_signal>()
            .open_url(dir.url())
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
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

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
    // what this process can start, by name (the UI's start form offers them)
    let (code, body) = call(addr, "GET", "/api/workflows", Some("t0ken"), "").await;
    assert_eq!(code, 200, "{body}");
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            assert!(w["version"].is_u64(), "{body}");
            w["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(names, ["doubled", "parked_on_signal"], "{body}");
    assert_eq!(call(addr, "GET", "/api/workflows", None, "").await.0, 401);
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

    // an end is counted once its final save is acknowledged, which may be
    // just after a waiting `result()` saw the ended record: scrape until
    // the termination is counted (bounded)
    let terminated =
        "durable_workflows_ended_total{workflow=\"parked_on_signal\",status=\"terminated\"} 1";
    let mut scraped = call(addr, "GET", "/metrics", Some("t0ken"), "").await;
    for _ in 0..200 {
        if scraped.1.lines().any(|l| l == terminated) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        scraped = call(addr, "GET", "/metrics", Some("t0ken"), "").await;
    }
    let (code, body) = scraped;
    assert_eq!(code, 200);
    // labelled by workflow, activity and status; OpenMetrics text
    for line in [
        "durable_workflows_started_total{workflow=\"doubled\"} 1",
        "durable_workflows_started_total{workflow=\"parked_on_signal\"} 1",
        "durable_workflows_ended_total{workflow=\"doubled\",status=\"completed\"} 1",
        "durable_workflows_ended_total{workflow=\"parked_on_signal\",status=\"terminated\"} 1",
        "durable_activity_attempts_total{activity=\"double\",outcome=\"ok\"} 1",
        "durable_instances{status=\"completed\"} 1",
        "durable_instances{status=\"terminated\"} 1",
        "durable_instances{status=\"running\"} 0",
        "durable_instances_by_phase{phase=\"waiting_for_signal\"} 0",
        "durable_instances_by_phase{phase=\"completed\"} 1",
        "durable_activity_attempt_duration_seconds_bucket{le=\"+Inf\",activity=\"double\"} 1",
        "durable_activity_attempt_duration_seconds_count{activity=\"double\"} 1",
        "# TYPE durable_checkpoint_seconds histogram",
        "# TYPE durable_timer_lag_seconds histogram",
        "# TYPE durable_store_group_size histogram",
        "# TYPE durable_store_flush_seconds histogram",
        "# EOF",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line} in\n{body}");
    }
    // a store over the network shows its reads and its connection pool
    let over_network = [
        "# TYPE durable_store_read_seconds histogram",
        "# TYPE durable_store_pool_max_connections gauge",
        "durable_store_pool_connections{state=\"in_use\"} ",
        "durable_store_pool_connections{state=\"idle\"} ",
        "durable_store_pool_waiting ",
    ];
    for needle in over_network {
        assert_eq!(
            body.contains(needle),
            BACKEND == Backend::Postgres,
            "{needle} on {BACKEND:?}:\n{body}"
        );
    }
    if BACKEND == Backend::Postgres {
        let reads: u64 = body
            .lines()
            .find_map(|l| l.strip_prefix("durable_store_read_seconds_count "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(reads > 0, "{body}");
    }
    for needle in [
        "durable_transitions_total{workflow=\"doubled\"} ",
        "durable_store_fsyncs_total ",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
    // the time in attempts is the histogram's `_sum` (a counter of whole
    // seconds beside it said less, twice), and a histogram is not named as
    // a counter of commits
    for gone in [
        "durable_activity_attempt_seconds_total",
        "durable_store_group_commits",
    ] {
        assert!(!body.contains(gone), "{gone} in\n{body}");
    }
    // every transition's checkpoint and every group flush was timed
    let count = |name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_count ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}_count in\n{body}"))
    };
    assert!(count("durable_checkpoint_seconds") >= 1, "{body}");
    assert!(count("durable_store_flush_seconds") >= 3, "{body}");
    assert_eq!(
        count("durable_store_group_size"),
        count("durable_store_flush_seconds")
    );
    server.abort();
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Approval {
    by: String,
    amount: i64,
}

#[workflow]
async fn approve(request: String) -> Result<String, WorkflowError> {
    let a: Approval = signal("approve").await?;
    Ok(format!("{request}: {} approved {}", a.by, a.amount))
}

#[workflow]
async fn nap(minutes: u64) -> Result<u64, WorkflowError> {
    sleep(std::time::Duration::from_secs(minutes * 60)).await?;
    Ok(minutes)
}

async fn serve_without_token(
    rt: Arc<Runtime>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = durable_runtime::http::router(rt, None);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn phases_filter_the_list_and_json_signals_take_the_awaited_type() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<approve>()
            .workflow::<nap>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    rt.start("ask-1", approve("laptop".into()), IdPolicy::Reject)
        .await
        .unwrap();
    rt.start("nap-1", nap(60), IdPolicy::Reject).await.unwrap();
    let (addr, server) = serve_without_token(rt.clone()).await;

    let (code, body) = call(addr, "GET", "/api/stats", None, "").await;
    assert_eq!(code, 200, "{body}");
    let stats = json(&body);
    assert_eq!(stats["waiting_for_signal"], 1, "{body}");
    assert_eq!(stats["sleeping"], 1, "{body}");
    assert_eq!(stats["running"], 0, "{body}");
    assert_eq!(stats["parked"], 0, "every phase is listed: {body}");

    let (code, body) = call(addr, "GET", "/api/instances?status=sleeping", None, "").await;
    assert_eq!(code, 200, "{body}");
    let list = json(&body);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(list[0]["id"], "nap-1");
    assert_eq!(list[0]["phase"], "sleeping");
    let (_, body) = call(addr, "GET", "/api/instances?prefix=ask-&status=", None, "").await;
    let list = json(&body);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(list[0]["phase"], "waiting_for_signal");
    let (_, body) = call(
        addr,
        "GET",
        "/api/instances?prefix=ask-&after=ask-1",
        None,
        "",
    )
    .await;
    assert_eq!(body, "[]", "paging goes on after the last id of the prefix");
    let (_, body) = call(addr, "GET", "/api/instances?prefix=a&after=0", None, "").await;
    assert_eq!(
        json(&body)[0]["id"],
        "ask-1",
        "an `after` below the prefix starts at it"
    );
    let (code, body) = call(addr, "GET", "/api/instances?limit=many", None, "").await;
    assert_eq!(code, 400, "{body}");
    // newest start first by default, by id on request, nothing else
    let (_, body) = call(addr, "GET", "/api/instances", None, "").await;
    let newest = json(&body);
    let starts: Vec<u64> = newest
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["created_ms"].as_u64().unwrap())
        .collect();
    assert!(
        starts.len() > 1 && starts.windows(2).all(|w| w[0] >= w[1]),
        "{body}"
    );
    let (_, body) = call(addr, "GET", "/api/instances?order=id", None, "").await;
    let by_id: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(by_id.windows(2).all(|w| w[0] < w[1]), "{body}");
    assert_eq!(by_id.len(), starts.len());
    let (code, body) = call(addr, "GET", "/api/instances?order=oldest", None, "").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("`order` is `newest` or `id`"), "{body}");
    // the counts a filter matches, whatever its status
    let (code, body) = call(
        addr,
        "GET",
        "/api/counts?prefix=ask-&status=failed",
        None,
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let counted = json(&body);
    assert_eq!(counted["by_phase"]["waiting_for_signal"], 1, "{body}");
    assert_eq!(counted["by_phase"]["sleeping"], 0, "{body}");
    assert_eq!(counted["exact"], true, "{body}");
    let (code, body) = call(addr, "GET", "/api/counts?order=sideways", None, "").await;
    assert_eq!(code, 400, "{body}");

    let (code, body) = call(addr, "GET", "/api/instances/ask-1/state", None, "").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body)["state"]["Signal"]["request"],
        "laptop",
        "{body}"
    );
    let (_, body) = call(addr, "GET", "/api/instances/ask-1/history", None, "").await;
    assert!(
        body.contains(r#"{"Input":{"json":"\"laptop\""}}"#),
        "{body}"
    );

    let signal = "/api/instances/ask-1/signal";
    let (code, body) = call(addr, "POST", signal, None, "{not json").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON body")
    );
    let (code, body) = call(
        addr,
        "POST",
        signal,
        None,
        r#"{"name":"approve","payload":{"by":"dana"}}"#,
    )
    .await;
    assert_eq!(code, 400, "a payload without `amount` does not fit: {body}");
    let (code, body) = call(
        addr,
        "POST",
        signal,
        None,
        r#"{"name":"other","payload":1}"#,
    )
    .await;
    assert_eq!(code, 409, "nobody waits for `other`: {body}");
    let (code, body) = call(
        addr,
        "POST",
        signal,
        None,
        r#"{"name":"approve","payload":{"by":"dana","amount":-3}}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let done = rt.handle::<approve>("ask-1").result().await.unwrap();
    assert_eq!(done.unwrap(), "laptop: dana approved -3");

    // a form on another site cannot post here
    let form = {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /api/instances/nap-1/cancel HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    assert!(form.starts_with("HTTP/1.1 415"), "{form}");
    assert_eq!(rt.describe("nap-1").unwrap().phase, Phase::Sleeping);

    let (code, body) = call(addr, "POST", "/api/instances/nap-1/terminate", None, "").await;
    assert_eq!(code, 202, "an empty body takes the default reason: {body}");
    let (code, body) = call(addr, "POST", "/api/instances/nap-1/terminate", None, "[1]").await;
    assert_eq!(code, 400, "{body}");
    server.abort();
}

#[tokio::test]
async fn the_ui_loads_without_the_token_and_the_data_does_not() {
    let dir = BACKEND.store();
    let rt = Arc::new(Runtime::builder().open_url(dir.url()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = durable_runtime::http::router(rt, Some("t0ken".into()));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for (path, needle) in [
        ("/", "<table id=\"instances\">"),
        ("/ui/instance?id=x", "id=\"timeline\""),
        ("/ui/durable.js", "sessionStorage"),
        ("/ui/durable.css", ".timeline"),
    ] {
        let (code, body) = call(addr, "GET", path, None, "").await;
        assert_eq!(code, 200, "{path}");
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    for path in ["/api/stats", "/api/instances/x/state", "/metrics"] {
        let (code, _) = call(addr, "GET", path, Some("wrong"), "").await;
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    // at the root, the pages' links start at `/`
    let (_, body) = call(addr, "GET", "/ui/instance?id=x", None, "").await;
    assert!(body.contains(r#"<base href="/">"#) && body.contains(r#"href="/">durable"#));
    server.abort();
}

/// Nested under a prefix of the user's app, the pages, their script and
/// their API calls stay under it, and the app keeps its own root.
#[tokio::test]
async fn the_ui_and_api_nest_under_a_prefix_of_the_users_app() {
    let dir = BACKEND.store();
    let rt = Runtime::builder().open_url(dir.url()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my app" }))
        .nest("/ops/durable", durable_runtime::http::router(rt, None));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (code, body) = call(addr, "GET", "/", None, "").await;
    assert_eq!((code, body.as_str()), (200, "my app"));
    for (path, needles) in [
        (
            "/ops/durable",
            &[r#"<base href="/ops/durable/">"#, r#"src="ui/durable.js""#][..],
        ),
        (
            "/ops/durable/ui/instance?id=x",
            &[
                r#"<base href="/ops/durable/">"#,
                r#"href="/ops/durable">durable"#,
            ][..],
        ),
        ("/ops/durable/ui/durable.js", &["document.baseURI"][..]),
        ("/ops/durable/api/stats", &["\"running\""][..]),
        ("/ops/durable/healthz", &["ok"][..]),
    ] {
        let (code, body) = call(addr, "GET", path, None, "").await;
        assert_eq!(code, 200, "{path}: {body}");
        for needle in needles {
            assert!(body.contains(needle), "{path} lacks {needle}: {body:.300}");
        }
    }
    server.abort();
}

/// The parts mount one by one: an app with its own `/` and `/metrics`
/// merges the API and the probes at its root (merging `router` there would
/// panic on the clash), nests the pages and its durable metrics elsewhere,
/// and keeps every route it did not give away.
#[tokio::test]
async fn the_api_ui_metrics_and_probes_mount_separately_beside_the_apps_own_routes() {
    use durable_runtime::http;
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<doubled>()
        .open_url(dir.url())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my app" }))
        .route("/metrics", axum::routing::get(|| async { "my_app_up 1\n" }))
        .merge(http::api(rt.clone(), Some("t0ken".into())))
        .merge(http::probes(rt.clone()))
        .nest(
            "/durable-metrics",
            http::metrics(rt.clone(), Some("t0ken".into())),
        )
        .nest("/console", http::ui());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let bearer = Some("t0ken");
    let (code, body) = call(
        addr,
        "POST",
        "/api/instances",
        bearer,
        r#"{"id": "p-1", "workflow": "doubled", "input": 4}"#,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = call(addr, "GET", "/api/instances/p-1/result?wait=30", bearer, "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""output":{"Ok":8}"#), "{body}");
    // the app's own routes are its own
    assert_eq!(
        call(addr, "GET", "/", None, "").await,
        (200, "my app".to_owned())
    );
    assert_eq!(
        call(addr, "GET", "/metrics", None, "").await,
        (200, "my_app_up 1\n".to_owned())
    );
    // the durable metrics where they were put, behind the token
    assert_eq!(
        call(addr, "GET", "/durable-metrics/metrics", None, "")
            .await
            .0,
        401
    );
    let (code, body) = call(addr, "GET", "/durable-metrics/metrics", bearer, "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("durable_instances"), "{body:.300}");
    // the probes without a token, the pages under their prefix
    assert_eq!(call(addr, "GET", "/healthz", None, "").await.0, 200);
    assert_eq!(call(addr, "GET", "/readyz", None, "").await.0, 200);
    let (code, body) = call(addr, "GET", "/console/ui/schedules", None, "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#"<base href="/console/">"#), "{body:.300}");
    // nothing was claimed that the app did not mount
    assert_eq!(call(addr, "GET", "/ui/schedules", None, "").await.0, 404);
    server.abort();
    rt.shutdown().await;
}

#[tokio::test]
async fn export_and_import_move_an_instance_between_services() {
    let from_dir = BACKEND.store();
    let to_dir = BACKEND.store();
    let from = Arc::new(
        Runtime::builder()
            .workflow::<approve>()
            .open_url(from_dir.url())
            .await
            .unwrap(),
    );
    let to = Arc::new(
        Runtime::builder()
            .workflow::<approve>()
            .open_url(to_dir.url())
            .await
            .unwrap(),
    );
    from.start("move-me", approve("desk".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let (from_addr, a) = serve_without_token(from.clone()).await;
    let (to_addr, b) = serve_without_token(to.clone()).await;

    let bytes = {
        let mut stream = tokio::net::TcpStream::connect(from_addr).await.unwrap();
        stream
            .write_all(b"GET /api/instances/move-me/export HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let at = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response with a body");
        response.split_off(at + 4)
    };
    let snapshot = durable_runtime::snapshot::Snapshot::from_bytes(&bytes).unwrap();
    assert_eq!(snapshot.id, "move-me");

    let import = |body: Vec<u8>| async move {
        let mut stream = tokio::net::TcpStream::connect(to_addr).await.unwrap();
        let head = format!(
            "POST /api/import HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let answer = import(b"not a snapshot".to_vec()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = import(bytes.clone()).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let answer = import(bytes).await;
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");

    to.signal(
        "move-me",
        "approve",
        &Approval {
            by: "eve".into(),
            amount: 2,
        },
    )
    .await
    .unwrap();
    let done = to.handle::<approve>("move-me").result().await.unwrap();
    assert_eq!(done.unwrap(), "desk: eve approved 2");
    a.abort();
    b.abort();
}

#[tokio::test]
async fn schedules_are_created_steered_and_deleted_over_http() {
    let dir = BACKEND.store();
    let clock = Arc::new(durable_runtime::clock::TestClock::new());
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<doubled>()
            .clock(clock.clone())
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    let (addr, _server) = serve_without_token(rt.clone()).await;
    let create = r#"{"id": "dbl", "workflow": "doubled", "input": 4,
        "schedule": {"every_ms": 3600000, "offset_ms": 60000, "overlap": "allow_all"}}"#;
    let (status, body) = call(addr, "POST", "/api/schedules", None, create).await;
    assert_eq!(status, 201, "{body}");
    let created = json(&body);
    assert_eq!(created["spec"], "every 1h offset 1m");
    assert_eq!(created["input"], 4);
    let (status, body) = call(addr, "POST", "/api/schedules", None, create).await;
    assert_eq!(status, 409, "{body}");

    // bad definitions and inputs are 400s, an unknown workflow a 409
    for (bad, code) in [
        (
            r#"{"id": "x", "workflow": "doubled", "schedule": {"cron": "99 * * * *"}}"#,
            400,
        ),
        (
            r#"{"id": "x", "workflow": "doubled", "input": "four", "schedule": {"every_ms": 1000}}"#,
            400,
        ),
        (
            r#"{"id": "x", "workflow": "nope", "schedule": {"every_ms": 1000}}"#,
            409,
        ),
        (r#"{"id": "x", "workflow": "doubled", "schedule": {}}"#, 400),
        (r#"not json"#, 400),
    ] {
        let (status, body) = call(addr, "POST", "/api/schedules", None, bad).await;
        assert_eq!(status, code, "{bad}: {body}");
        assert!(json(&body)["error"].is_string(), "{body}");
    }

    let (status, body) = call(
        addr,
        "POST",
        "/api/schedules/dbl/pause",
        None,
        r#"{"note": "hold"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["paused"], true);
    let (_, body) = call(addr, "POST", "/api/schedules/dbl/unpause", None, "").await;
    assert_eq!(json(&body)["paused"], false);
    let (status, body) = call(addr, "POST", "/api/schedules/dbl/trigger", None, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["runs"], 1);
    let run = "dbl@2030-01-01T00:00:00Z";
    rt.handle::<doubled>(run).result().await.unwrap().unwrap();

    // 2029-12-31 20:00 .. 23:59 holds four hourly times at :01
    let from = 1_893_456_000_000u64 - 4 * 3_600_000;
    let backfill = format!(
        r#"{{"from_ms": {from}, "to_ms": {}, "overlap": "allow_all"}}"#,
        from + 4 * 3_600_000 - 1
    );
    let (status, body) = call(addr, "POST", "/api/schedules/dbl/backfill", None, &backfill).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["runs"], 5);

    let update = r#"{"schedule": {"cron": "0 6 * * *", "time_zone": "Asia/Tokyo"}}"#;
    let (status, body) = call(addr, "POST", "/api/schedules/dbl/update", None, update).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["spec"], "cron \"0 6 * * *\" in Asia/Tokyo");
    assert_eq!(json(&body)["schedule"]["time_zone"], "Asia/Tokyo");

    let (status, body) = call(addr, "GET", "/api/schedules", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body).as_array().map(Vec::len), Some(1));
    let (status, _) = call(addr, "DELETE", "/api/schedules/dbl", None, "").await;
    assert_eq!(status, 200);
    for (method, path) in [
        ("GET", "/api/schedules/dbl"),
        ("POST", "/api/schedules/dbl/trigger"),
        ("DELETE", "/api/schedules/dbl"),
    ] {
        let (status, body) = call(addr, method, path, None, "").await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn instances_start_by_name_over_http() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<doubled>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    let (addr, _server) = serve_without_token(rt.clone()).await;
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances",
        None,
        r#"{"id": "by-name", "workflow": "doubled", "input": 21}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["id"], "by-name");
    assert_eq!(
        rt.handle::<doubled>("by-name")
            .result()
            .await
            .unwrap()
            .unwrap(),
        42
    );
    for (bad, code) in [
        (
            r#"{"id": "by-name", "workflow": "doubled", "input": 1}"#,
            409,
        ),
        (r#"{"id": "x", "workflow": "doubled", "input": "one"}"#, 400),
        (r#"{"id": "x", "workflow": "nope", "input": 1}"#, 422),
        (r#"{"id": "", "workflow": "doubled", "input": 1}"#, 400),
        (r#"{"workflow": "doubled"}"#, 400),
    ] {
        let (status, body) = call(addr, "POST", "/api/instances", None, bad).await;
        assert_eq!(status, code, "{bad}: {body}");
        assert!(json(&body)["error"].is_string(), "{body}");
    }
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances",
        None,
        r#"{"id": "by-name", "workflow": "doubled", "input": 1, "use_existing": true}"#,
    )
    .await;
    assert_eq!(status, 201, "the existing one: {body}");
    assert_eq!(json(&body)["status"], "Completed");
    // the id policy by name: a new run of the ended instance, with its own input
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances",
        None,
        r#"{"id": "by-name", "workflow": "doubled", "input": 5, "id_policy": "new_run_if_ended"}"#,
    )
    .await;
    assert_eq!(status, 201, "a new run: {body}");
    assert_eq!(
        rt.handle::<doubled>("by-name")
            .result()
            .await
            .unwrap()
            .unwrap(),
        10
    );
    for (bad, code) in [
        (
            r#"{"id": "by-name", "workflow": "doubled", "input": 1, "id_policy": "reject"}"#,
            409,
        ),
        (
            r#"{"id": "x", "workflow": "doubled", "input": 1, "id_policy": "sometimes"}"#,
            400,
        ),
        (
            r#"{"id": "x", "workflow": "doubled", "input": 1, "id_policy": "reject", "use_existing": true}"#,
            400,
        ),
    ] {
        let (status, body) = call(addr, "POST", "/api/instances", None, bad).await;
        assert_eq!(status, code, "{bad}: {body}");
        assert!(json(&body)["error"].is_string(), "{body}");
    }
}

/// `serve` without a token refuses a non-loopback address; on loopback it
/// answers only requests for a loopback host (a DNS name rebound to
/// 127.0.0.1 by a web page gets 421), and every response forbids framing.
#[tokio::test]
async fn serve_refuses_exposure_without_a_token_and_requests_for_other_hosts() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<doubled>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    match durable_runtime::http::serve(rt.clone(), "0.0.0.0:0", None).await {
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
            assert!(e.to_string().contains("without a token"), "{e}");
        }
        Ok(()) => panic!("served on every interface without a token"),
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = tokio::spawn(durable_runtime::http::serve(
        rt.clone(),
        ("127.0.0.1", port),
        None,
    ));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let raw = |host: &'static str| async move {
        for _ in 0..100 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
                let request =
                    format!("GET /api/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).await.unwrap();
                return response;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server did not come up");
    };
    let rebound = raw("evil.example:7233").await;
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    let local = raw("localhost:7233").await;
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    let lower = local.to_ascii_lowercase();
    assert!(lower.contains("x-frame-options: deny"), "{local}");
    assert!(lower.contains("frame-ancestors 'none'"), "{local}");
    server.abort();
}

/// A server given an allow-list of hosts answers only requests naming one
/// of them, on any address (DNS rebinding against a server reached by
/// name). Before, the `Host` header was checked on a loopback address only,
/// and only against loopback names.
#[tokio::test]
async fn a_server_given_its_hosts_answers_only_requests_naming_one_of_them() {
    use durable_runtime::http::Access;
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<doubled>()
        .open_url(dir.url())
        .await
        .unwrap();
    let access = Access::token("t0ken").allow_hosts(["durable.example"]);
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", access)
        .await
        .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());
    let raw = |host: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/stats HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t0ken\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let named = raw("DURABLE.example:7233").await;
    assert!(named.starts_with("HTTP/1.1 200"), "{named}");
    for other in ["evil.example", "localhost:7233", "127.0.0.1"] {
        let refused = raw(other).await;
        assert!(refused.starts_with("HTTP/1.1 421"), "{other}: {refused}");
        assert!(refused.contains("durable.example"), "{refused}");
    }
    serving.abort();
    rt.shutdown().await;
}

/// A dashboard's token reads everything and changes nothing: before, one
/// token granted both reading `/metrics` and terminating instances. A list
/// asking for more than the cap is refused instead of reading the store
/// without bound.
#[tokio::test]
async fn a_read_only_token_reads_but_cannot_act_and_lists_are_capped() {
    use durable_runtime::http::{Access, MAX_LIST_LIMIT};
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<parked_on_signal>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    rt.start("w", parked_on_signal(1), IdPolicy::Reject)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let access = Access::token("admin").with_read_token("viewer");
    assert!(!format!("{access:?}").contains("viewer"), "{access:?}");
    let app = durable_runtime::http::router(rt.clone(), access);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    for path in [
        "/api/instances",
        "/api/instances/w",
        "/api/instances/w/history",
        "/api/instances/w/state",
        "/api/stats",
        "/api/schedules",
        "/metrics",
    ] {
        let (code, body) = call(addr, "GET", path, Some("viewer"), "").await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    for (path, body) in [
        ("/api/instances/w/terminate", r#"{"reason":"viewer"}"#),
        ("/api/instances/w/cancel", ""),
        ("/api/instances/w/signal", r#"{"name":"x","payload":2}"#),
        (
            "/api/instances",
            r#"{"id":"new","workflow":"parked_on_signal","input":1}"#,
        ),
    ] {
        let (code, answer) = call(addr, "POST", path, Some("viewer"), body).await;
        assert_eq!(code, 403, "{path}: {answer}");
        assert!(answer.contains("read"), "{answer}");
    }
    assert_eq!(
        rt.describe("w").unwrap().status,
        durable_runtime::Status::Running,
        "nothing the read-only token asked for happened"
    );
    assert!(rt.describe("new").is_err());
    let (code, _) = call(addr, "GET", "/api/stats", Some("guess"), "").await;
    assert_eq!(code, 401);
    // the admin token still does everything
    let (code, body) = call(
        addr,
        "POST",
        "/api/instances/w/signal",
        Some("admin"),
        r#"{"name":"x","payload":2}"#,
    )
    .await;
    assert_eq!(code, 202, "{body}");

    let over = format!("/api/instances?limit={}", MAX_LIST_LIMIT + 1);
    let (code, body) = call(addr, "GET", &over, Some("viewer"), "").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("after"), "{body}");
    let (code, _) = call(
        addr,
        "GET",
        &format!("/api/instances?limit={MAX_LIST_LIMIT}"),
        Some("viewer"),
        "",
    )
    .await;
    assert_eq!(code, 200);
    server.abort();
}

/// A caller without the workflow's types reads a result over HTTP: at
/// once (202 while it runs), or by waiting for it to end.
#[tokio::test]
async fn a_result_is_read_over_http_waiting_for_the_end() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<approve>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    let (addr, _server) = serve_without_token(rt.clone()).await;
    rt.start("r-1", approve("laptop".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let (status, body) = call(addr, "GET", "/api/instances/r-1/result", None, "").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(json(&body)["output"], serde_json::Value::Null);
    // a caller waits; the signal ends the instance meanwhile
    let waiting = tokio::spawn(async move {
        call(addr, "GET", "/api/instances/r-1/result?wait=30", None, "").await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "it waits for the end");
    rt.signal(
        "r-1",
        "approve",
        &Approval {
            by: "dana".into(),
            amount: 3,
        },
    )
    .await
    .unwrap();
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let ended = json(&body);
    assert_eq!(ended["status"], "Completed");
    assert_eq!(ended["output"]["Ok"], "laptop: dana approved 3");
    // describe carries it too; unknown ids and bad queries are refused
    let (_, body) = call(addr, "GET", "/api/instances/r-1", None, "").await;
    assert_eq!(json(&body)["output"]["Ok"], "laptop: dana approved 3");
    let (status, _) = call(addr, "GET", "/api/instances/nope/result", None, "").await;
    assert_eq!(status, 404);
    let (status, _) = call(addr, "GET", "/api/instances/r-1/result?wait=soon", None, "").await;
    assert_eq!(status, 400);
}

/// A runtime's clones share it: each handler holds one, and a bind error
/// reaches the caller of `bind` instead of a spawned task.
#[tokio::test]
async fn clones_share_one_runtime_and_a_taken_port_is_an_error_at_bind() {
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<doubled>()
        .open_url(dir.url())
        .await
        .unwrap();
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    let addr = server.local_addr();
    let taken = durable_runtime::http::bind(rt.clone(), addr, None).await;
    assert_eq!(
        taken.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
    tokio::spawn(server.run());
    // started through one clone, read through another and over HTTP
    let other = rt.clone();
    other
        .start("c-1", doubled(4), IdPolicy::Reject)
        .await
        .unwrap();
    assert_eq!(
        rt.handle::<doubled>("c-1").result().await.unwrap().unwrap(),
        8
    );
    // (a server without a token answers loopback hosts only)
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /api/instances/c-1/result HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert_eq!(json(body)["output"]["Ok"], 8);
    // one clone's shutdown stops them all
    other.shutdown().await;
    assert!(matches!(
        rt.start("c-2", doubled(1), IdPolicy::Reject).await,
        Err(durable_runtime::StartError::Store(
            durable_runtime::StoreError::Closed
        ))
    ));
}

/// Probes answer without a token; readiness ends with the runtime.
#[tokio::test]
async fn health_and_readiness_probes_answer_without_a_token() {
    let dir = BACKEND.store();
    let rt = Runtime::builder()
        .workflow::<doubled>()
        .open_url(dir.url())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = durable_runtime::http::router(rt.clone(), Some("t0ken".into()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (status, body) = call(addr, "GET", "/healthz", None, "").await;
    assert_eq!((status, json(&body)["status"].clone()), (200, "ok".into()));
    let (status, body) = call(addr, "GET", "/readyz", None, "").await;
    assert_eq!(
        (status, json(&body)["status"].clone()),
        (200, "ready".into())
    );
    // the API's description holds no data either
    let (status, body) = call(addr, "GET", "/api/openapi.json", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["openapi"], "3.1.0");
    assert!(json(&body)["paths"]["/api/batches"]["post"].is_object());
    // the data still wants the token
    let (status, _) = call(addr, "GET", "/api/stats", None, "").await;
    assert_eq!(status, 401);
    rt.clone().shutdown().await;
    let (status, body) = call(addr, "GET", "/readyz", None, "").await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = call(addr, "GET", "/healthz", None, "").await;
    assert_eq!(status, 200);
}

static WEBHOOK_TOKENS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn webhook_token(order: &str) -> Option<String> {
    let tokens = WEBHOOK_TOKENS.lock().unwrap();
    tokens
        .iter()
        .find(|(o, _)| o == order)
        .map(|(_, t)| t.clone())
}

#[activity]
async fn register_webhook(order: String, token: String) -> Result<(), ActivityError> {
    WEBHOOK_TOKENS.lock().unwrap().push((order, token));
    Ok(())
}

/// Hands out a promise, naps `nap_s` seconds, then awaits it.
#[workflow]
async fn awaits_webhook(order: String, nap_s: u64) -> Result<String, WorkflowError> {
    let paid: durable_runtime::promise::Promise<Approval> =
        durable_runtime::promise::promise().await;
    register_webhook(order.clone(), paid.token().to_owned()).await?;
    if nap_s > 0 {
        sleep(std::time::Duration::from_secs(nap_s)).await?;
    }
    let a = paid.wait().await?;
    Ok(format!("{order}: {} paid {}", a.by, a.amount))
}

#[tokio::test]
async fn a_webhook_completes_a_promise_once_over_http() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<awaits_webhook>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    let (addr, _server) = serve_without_token(rt.clone()).await;
    let h = rt
        .start("hook-1", awaits_webhook("o-1".into(), 0), IdPolicy::Reject)
        .await
        .unwrap();
    rt.start(
        "hook-2",
        awaits_webhook("o-2".into(), 86_400),
        IdPolicy::Reject,
    )
    .await
    .unwrap();
    let token = loop {
        if let (Some(t), Some(_)) = (webhook_token("o-1"), webhook_token("o-2"))
            && rt.running_instances() == 0
        {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    // the token holds `#` (and an id may hold `/`): percent-encoded in the path
    let path = format!("/api/promises/{}", token.replace('#', "%23"));
    let body = r#"{"by": "acme-pay", "amount": 1999}"#;
    let (status, text) = call(addr, "POST", &path, None, body).await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = call(addr, "POST", &path, None, body).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("completed already"), "{text}");
    assert_eq!(
        h.result().await.unwrap().unwrap(),
        "o-1: acme-pay paid 1999"
    );
    let (status, _) = call(addr, "POST", "/api/promises/not-a-token", None, body).await;
    assert_eq!(status, 400);
    // not awaited yet (it naps first): the sender is told to retry
    let early = webhook_token("o-2").unwrap().replace('#', "%23");
    let (status, text) = call(addr, "POST", &format!("/api/promises/{early}"), None, body).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("retry"), "{text}");
}

const RENAME: durable_runtime::update::UpdateDef<String, String> =
    durable_runtime::update::UpdateDef::new("rename");
const LIMIT: durable_runtime::update::UpdateDef<u32, u32> =
    durable_runtime::update::UpdateDef::new("limit");

/// Takes a rename, then a limit, replying to each.
#[workflow]
async fn profile(name: String) -> Result<String, WorkflowError> {
    let rename = RENAME.receive().await?;
    let name = format!("{name} -> {}", rename.request());
    rename.reply(name.clone()).await;
    let limit = LIMIT.receive().await?;
    limit.reply(*limit.request() * 2).await;
    Ok(name)
}

#[tokio::test]
async fn updates_are_sent_and_answered_over_http() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<profile>()
            .update_validator(LIMIT, |n: &u32| {
                if *n > 0 {
                    Ok(())
                } else {
                    Err("a limit is at least 1".into())
                }
            })
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    let (addr, _server) = serve_without_token(rt.clone()).await;
    rt.start("p-1", profile("ada".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let post = |path: &'static str, body: &'static str| call(addr, "POST", path, None, body);
    // a JSON request of another shape than the awaited one
    let (status, body) = post("/api/instances/p-1/updates/rename", r#"{"request": 7}"#).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        "/api/instances/p-1/updates/rename",
        r#"{"update_id": "r1", "request": "lovelace"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["reply"], "ada -> lovelace");
    assert_eq!(json(&body)["update_id"], "r1");
    // the same update id again: the one reply, not a second rename
    let (status, body) = post(
        "/api/instances/p-1/updates/rename",
        r#"{"update_id": "r1", "request": "someone else"}"#,
    )
    .await;
    assert_eq!(
        (status, json(&body)["reply"].clone()),
        (200, "ada -> lovelace".into())
    );
    let (status, body) = call(addr, "GET", "/api/instances/p-1/updates/r1", None, "").await;
    assert_eq!(
        (status, json(&body)["reply"].clone()),
        (200, "ada -> lovelace".into())
    );
    let (status, _) = call(addr, "GET", "/api/instances/p-1/updates/nope", None, "").await;
    assert_eq!(status, 404);
    // an undeclared update the instance does not await (it awaits `limit`)
    let (status, body) = post("/api/instances/p-1/updates/rename", r#"{"request": "x"}"#).await;
    assert_eq!(status, 503, "{body}");
    // the declared one's validator
    let (status, body) = post("/api/instances/p-1/updates/limit", r#"{"request": 0}"#).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("a limit is at least 1"), "{body}");
    let (status, body) = post(
        "/api/instances/p-1/updates/limit?wait=30",
        r#"{"request": 21}"#,
    )
    .await;
    assert_eq!(
        (status, json(&body)["reply"].clone()),
        (200, 42.into()),
        "{body}"
    );
    // ended: nothing more is accepted
    let (status, body) = post("/api/instances/p-1/updates/limit", r#"{"request": 1}"#).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post("/api/instances/nope/updates/limit", r#"{"request": 1}"#).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_api_lists_reset_points_and_resets_an_ended_instance_or_says_why_not() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<doubled>()
            .workflow::<parked_on_signal>()
            .open_url(dir.url())
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
    let access = durable_runtime::http::Access::token("admin").with_read_token("viewer");
    let app = durable_runtime::http::router(rt.clone(), access);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (code, body) = call(
        addr,
        "GET",
        "/api/instances/d/reset-points",
        Some("viewer"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let points: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(points[0]["step"], 1, "{body}");
    assert_eq!(points[0]["awaiting"], "activity double", "{body}");
    // reading is for every token, resetting for an admin's
    let (code, body) = call(
        addr,
        "POST",
        "/api/instances/d/reset",
        Some("viewer"),
        r#"{"step":1}"#,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    for (body, want) in [
        (r#"{"step":1,"event":2}"#, 400),
        ("{}", 400),
        (r#"{"step":"one"}"#, 400),
        (r#"{"step":9}"#, 422),
        (r#"{"event":1}"#, 422),
    ] {
        let (code, answer) =
            call(addr, "POST", "/api/instances/d/reset", Some("admin"), body).await;
        assert_eq!(code, want, "{body}: {answer}");
        assert!(answer.contains("error"), "{answer}");
    }
    let (code, answer) = call(
        addr,
        "POST",
        "/api/instances/w/reset",
        Some("admin"),
        r#"{"step":1}"#,
    )
    .await;
    assert_eq!(code, 409, "{answer}");
    let (code, answer) = call(
        addr,
        "POST",
        "/api/instances/nobody/reset",
        Some("admin"),
        r#"{"step":1}"#,
    )
    .await;
    assert_eq!(code, 404, "{answer}");
    let (code, answer) = call(
        addr,
        "POST",
        "/api/instances/d/reset",
        Some("admin"),
        r#"{"step":1,"reason":"double again"}"#,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let reset: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (reset["run"].as_u64(), reset["step"].as_u64()),
        (Some(2), Some(1))
    );
    let (code, answer) = call(
        addr,
        "GET",
        "/api/instances/d/result?wait=10",
        Some("viewer"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("42"), "{answer}");
    let history = rt.history("d").unwrap();
    assert!(history.iter().any(|e| matches!(
        &e.kind,
        durable_runtime::history::EventKind::Reset { reason, run: 2, .. } if reason == "double again"
    )));
    server.abort();
}

#[tokio::test]
async fn batch_operations_are_previewed_started_followed_and_stopped_over_http() {
    let dir = BACKEND.store();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<parked_on_signal>()
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    for i in 0..3 {
        rt.start(&format!("w-{i}"), parked_on_signal(i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let access = durable_runtime::http::Access::token("admin").with_read_token("viewer");
    let app = durable_runtime::http::router(rt.clone(), access);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let body = r#"{"filter":{"workflow":"parked_on_signal"},"action":{"signal":{"name":"x","payload":5}},"dry_run":true}"#;
    let (code, answer) = call(addr, "POST", "/api/batches", Some("admin"), body).await;
    assert_eq!(code, 200, "{answer}");
    let preview: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(preview["count"], 3, "{answer}");
    assert_eq!(preview["ids"][0], "w-0", "{answer}");
    // a viewer reads batches but starts none; a malformed body is a 400
    let (code, _) = call(addr, "POST", "/api/batches", Some("viewer"), body).await;
    assert_eq!(code, 403);
    let (code, answer) = call(
        addr,
        "POST",
        "/api/batches",
        Some("admin"),
        r#"{"action":"explode"}"#,
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    let body = r#"{"filter":{"workflow":"parked_on_signal"},"action":{"signal":{"name":"x","payload":5}}}"#;
    let (code, answer) = call(addr, "POST", "/api/batches", Some("admin"), body).await;
    assert_eq!(code, 202, "{answer}");
    let op: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id = op["id"].as_str().unwrap().to_owned();
    assert_eq!(op["matched"], 3);
    let done = rt.batch_wait(&id).await.unwrap();
    assert_eq!((done.done, done.skipped), (3, 0));
    let (code, answer) = call(
        addr,
        "GET",
        &format!("/api/batches/{id}"),
        Some("viewer"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("\"state\":\"done\""), "{answer}");
    let (code, answer) = call(addr, "GET", "/api/batches", Some("viewer"), "").await;
    assert_eq!(code, 200);
    assert!(answer.contains(&id), "{answer}");
    let (code, answer) = call(
        addr,
        "POST",
        &format!("/api/batches/{id}/stop"),
        Some("admin"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert!(
        answer.contains("\"state\":\"done\""),
        "a finished operation stays done: {answer}"
    );
    let (code, _) = call(addr, "GET", "/api/batches/nope", Some("viewer"), "").await;
    assert_eq!(code, 404);
    for i in 0..3u32 {
        let out = rt
            .handle::<parked_on_signal>(format!("w-{i}"))
            .result()
            .await
            .unwrap();
        assert_eq!(out.unwrap(), i + 5);
    }
    server.abort();
}

#[workflow]
async fn noted(text: String) -> Result<String, WorkflowError> {
    let note: String = signal("note").await?;
    Ok(format!("{text}: {note}"))
}

/// An input or a signal payload over the runtime's limits is refused over
/// HTTP with 413 and an error naming the limit (`Limits::…`) and the size;
/// nothing is started or stored, and the same values within the limits go
/// through.
#[tokio::test]
async fn values_over_the_limits_are_refused_with_413_naming_the_limit() {
    let dir = BACKEND.store();
    let mut limits = durable_runtime::Limits::default();
    limits.input_bytes = 64;
    limits.signal_bytes = 64;
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<noted>()
            .limits(limits)
            .open_url(dir.url())
            .await
            .unwrap(),
    );
    let (addr, _server) = serve_without_token(rt.clone()).await;
    let long = "x".repeat(200);
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances",
        None,
        &format!(r#"{{"id": "big", "workflow": "noted", "input": "{long}"}}"#),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let error = json(&body)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("[DURABLE-LIMIT]") && error.contains("Limits::input_bytes"),
        "{error}"
    );
    assert!(rt.describe("big").is_err(), "nothing started");
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances",
        None,
        r#"{"id": "small", "workflow": "noted", "input": "order"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances/small/signal",
        None,
        &format!(r#"{{"name": "note", "payload": "{long}"}}"#),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let error = json(&body)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("[DURABLE-LIMIT]") && error.contains("Limits::signal_bytes"),
        "{error}"
    );
    let (status, body) = call(
        addr,
        "POST",
        "/api/instances/small/signal",
        None,
        r#"{"name": "note", "payload": "paid"}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let out = rt.handle::<noted>("small").result().await.unwrap().unwrap();
    assert_eq!(out, "order: paid", "the refused signal was not stored");
}
