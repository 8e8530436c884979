//! The `durable` command on a real store: output and exit codes.

use std::process::Command;

use durable_runtime::prelude::*;

#[activity(max_attempts = 2, initial_interval_ms = 1)]
async fn work(n: u32) -> Result<u32, ActivityError> {
    if n == 0 {
        return Err(ActivityError::terminal("zero is not allowed"));
    }
    Ok(n * 2)
}

#[workflow]
async fn doubler(n: u32) -> Result<u32, WorkflowError> {
    let d = work(n).await?;
    Ok(d)
}

#[workflow]
async fn waiter(n: u32) -> Result<u32, WorkflowError> {
    let got: u32 = signal("go").await?;
    Ok(n + got)
}

/// `durable` with `DURABLE_DB` naming the store instead of `--db`.
fn durable_env(db: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .env("DURABLE_DB", db)
        .args(args)
        .output()
        .expect("run durable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn durable(db: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run durable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn lists_describes_and_steers_instances_with_exit_codes_scripts_can_trust() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::builder()
            .workflow::<doubler>()
            .workflow::<waiter>()
            .open(dir.path())
            .await
            .unwrap();
        rt.start("ok", doubler(21), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        rt.start("bad", doubler(0), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap_err();
        rt.start("waiting", waiter(1), IdPolicy::Reject)
            .await
            .unwrap();
        // a live store is locked: the command says so, with its own exit code
        let (code, _, err) = durable(dir.path(), &["list"]);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("[DURABLE-LOCKED]"), "{err}");
        rt.shutdown().await;
    }

    let (code, out, err) = durable(dir.path(), &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok") && out.contains("bad") && out.contains("waiting"),
        "{out}"
    );

    let (code, out, _) = durable(
        dir.path(),
        &["list", "--status", "waiting_for_signal", "--json"],
    );
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(|a| a.len()), Some(1), "{out}");
    assert_eq!(list[0]["id"], "waiting");
    assert_eq!(list[0]["waiting_for"], "signal go");
    assert_eq!(list[0]["phase"], "waiting_for_signal");
    let (_, out, _) = durable(dir.path(), &["list", "--status", "running", "--json"]);
    assert_eq!(out.trim(), "[]", "waiting for a signal is not running");
    let (code, _, err) = durable(dir.path(), &["list", "--attr", "customer"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NAME=VALUE"), "{err}");
    let (code, out, _) = durable(dir.path(), &["list", "--attr", "customer=acme", "--json"]);
    assert_eq!(
        (code, out.trim()),
        (0, "[]"),
        "no instance set the attribute"
    );
    // newest start first, or by id; nothing else
    let listed = |args: &[&str]| -> Vec<String> {
        let (code, out, err) = durable(dir.path(), args);
        assert_eq!(code, 0, "{err}");
        let list: Vec<durable_runtime::Description> = serde_json::from_str(&out).unwrap();
        list.into_iter().map(|d| d.id).collect()
    };
    let mut by_id = listed(&["list", "--json"]);
    by_id.sort();
    assert_eq!(listed(&["list", "--order", "id", "--json"]), by_id);
    let (code, _, err) = durable(dir.path(), &["list", "--order", "sideways"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("newest"), "{err}");
    let (_, out, _) = durable(dir.path(), &["list", "--prefix", "wa", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().map(|a| a.len()), Some(1), "{out}");

    let (code, out, _) = durable(dir.path(), &["describe", "ok", "--json"]);
    assert_eq!(code, 0);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (d["workflow"].as_str(), d["status"].as_str()),
        (Some("doubler"), Some("Completed"))
    );

    // the store named by the environment: no password in the process list
    let (code, out, err) = durable_env(dir.path(), &["describe", "ok"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
    let (code, out, _) = durable(dir.path(), &["history", "ok"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("started doubler")
            && out.contains("activity work")
            && out.contains(": work(21) -> {\"Ok\":42}")
            && out.contains("finished Completed"),
        "{out}"
    );
    // times in RFC 3339, UTC, to the millisecond
    let year = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y")
        .to_string();
    assert!(
        out.lines()
            .all(|l| l.contains(&format!("  {year}-")) && l.contains('Z')),
        "{out}"
    );

    let (code, out, _) = durable(dir.path(), &["stats", "--json"]);
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    // `bad` returned an `Err`: it failed
    assert_eq!(
        (
            stats["completed"].as_u64(),
            stats["failed"].as_u64(),
            stats["waiting_for_signal"].as_u64(),
            stats["running"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(0)),
        "{out}"
    );

    let (code, _, err) = durable(dir.path(), &["describe", "nobody"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = durable(dir.path(), &["list", "--status", "sleepy"]);
    assert_eq!(code, 2, "{err}");

    // the store's layouts render a state without the code
    let (code, out, err) = durable(dir.path(), &["state", "waiting"]);
    assert_eq!(code, 0, "{err}");
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state["Signal"]["n"], 1, "{out}");
    // results: the output, the error (its own exit code), still running
    let (code, out, err) = durable(dir.path(), &["result", "ok"]);
    assert_eq!((code, out.trim()), (0, "{\n  \"Ok\": 42\n}"), "{err}");
    let (code, _, err) = durable(dir.path(), &["result", "bad"]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("zero is not allowed"), "{err}");
    let (code, _, err) = durable(dir.path(), &["result", "waiting"]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("still waiting_for_signal"), "{err}");
    let (code, _, err) = durable(dir.path(), &["result", "nobody"]);
    assert_eq!(code, 3, "{err}");
    // but no code to type a signal or an input with
    let (code, _, err) = durable(dir.path(), &["start", "doubler", "new", "--input", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--url"), "{err}");
    let (code, _, err) = durable(dir.path(), &["signal", "waiting", "go", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--url"), "{err}");
    let (code, _, err) = durable(dir.path(), &["state", "nobody"]);
    assert_eq!(code, 3, "{err}");

    let (code, out, _) = durable(dir.path(), &["terminate", "waiting", "--reason", "cleanup"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = durable(dir.path(), &["cancel", "ok"]);
    assert_eq!(code, 1, "a finished instance cannot be cancelled");

    // export an instance, import it into another store
    let file = dir.path().join("ok.snapshot");
    let (code, _, err) = durable(dir.path(), &["export", "ok", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("new-store");
    let (code, _, err) = durable(&other, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = durable(&other, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 1, "a second import is refused: {err}");
    assert!(err.contains("[DURABLE-EXISTS]"), "{err}");
    let (_, out, _) = durable(&other, &["describe", "ok", "--json"]);
    assert!(out.contains("Completed"), "{out}");
    std::fs::write(&file, b"not a snapshot").unwrap();
    let (code, _, err) = durable(&other, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a snapshot file"), "{err}");

    // the service carries out the request when it opens the store
    let rt = Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .open(dir.path())
        .await
        .unwrap();
    match rt.handle::<waiter>("waiting").result().await {
        Err(durable_runtime::ResultError::Terminated { reason, .. }) => {
            assert_eq!(reason, "cleanup")
        }
        other => panic!("expected terminated, got {other:?}"),
    }
    rt.shutdown().await;
}

/// Runs `durable --url <addr> [--token T] args..`.
fn durable_url(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_durable"));
    command.arg("--url").arg(url).env_remove("DURABLE_TOKEN");
    if let Some(t) = token {
        command.arg("--token").arg(t);
    }
    let out = command.args(args).output().expect("run durable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Serves `rt`'s HTTP API (behind `token`, if any) on a free loopback
/// port: its URL, and the server's task.
async fn serve(
    rt: std::sync::Arc<Runtime>,
    token: Option<&str>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = durable_runtime::http::router(rt, token.map(str::to_owned));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

// multi-threaded: the service answers while the test waits for the command
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_url_the_commands_steer_a_live_service_and_print_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let rt = std::sync::Arc::new(
        Runtime::builder()
            .workflow::<doubler>()
            .workflow::<waiter>()
            .open(dir.path())
            .await
            .unwrap(),
    );
    rt.start("ok", doubler(21), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    // started after `ok`, in a millisecond of their own: newest first is not id order
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    for id in ["w/1", "w-2"] {
        rt.start(id, waiter(1), IdPolicy::Reject).await.unwrap();
    }
    let (url, server) = serve(rt.clone(), Some("s3cret")).await;
    let token = Some("s3cret");

    // the same JSON as the runtime's own answer
    let (code, out, err) = durable_url(&url, token, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<durable_runtime::Description> = serde_json::from_str(&out).unwrap();
    let newest = durable_runtime::ListFilter {
        order: durable_runtime::ListOrder::NewestFirst,
        ..durable_runtime::ListFilter::default()
    };
    assert_eq!(listed, rt.list(&newest).unwrap(), "newest first by default");
    let (code, out, err) = durable_url(&url, token, &["list", "--order", "id", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<durable_runtime::Description> = serde_json::from_str(&out).unwrap();
    let by_id = rt.list(&durable_runtime::ListFilter::default()).unwrap();
    assert_eq!(listed, by_id);
    assert_ne!(
        rt.list(&newest).unwrap(),
        by_id,
        "the instances started out of id order"
    );
    let (code, out, _) = durable_url(
        &url,
        token,
        &["list", "--status", "waiting", "--prefix", "w/"],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "a header and `w/1`: {out}");
    assert!(out.lines().nth(1).unwrap().starts_with("w/1 "), "{out}");
    let (_, out, _) = durable_url(&url, token, &["describe", "w/1"]);
    assert!(out.contains("status    waiting_for_signal"), "{out}");
    assert!(out.contains("waits for signal go"), "{out}");
    let (_, out, _) = durable_url(&url, token, &["history", "ok"]);
    assert!(
        out.contains("input 21") && out.contains("finished Completed"),
        "{out}"
    );
    // start by name and wait for the output
    let (code, out, err) = durable_url(
        &url,
        token,
        &[
            "start", "doubler", "cli-1", "--input", "5", "--wait", "30", "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let ended: durable_runtime::Description = serde_json::from_str(&out).unwrap();
    assert_eq!(ended.output, Some(serde_json::json!({ "Ok": 10 })));
    let (code, out, _) = durable_url(&url, token, &["result", "cli-1"]);
    assert_eq!((code, out.trim()), (0, "{\n  \"Ok\": 10\n}"));
    // the id is taken: refused, then run again as a new run of the ended one
    let (code, _, err) = durable_url(&url, token, &["start", "doubler", "cli-1", "--input", "6"]);
    assert_ne!(code, 0, "a taken id is refused by default: {err}");
    let (code, out, err) = durable_url(
        &url,
        token,
        &[
            "start",
            "doubler",
            "cli-1",
            "--input",
            "6",
            "--id-policy",
            "new_run_if_ended",
            "--wait",
            "30",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let ended: durable_runtime::Description = serde_json::from_str(&out).unwrap();
    assert_eq!(ended.output, Some(serde_json::json!({ "Ok": 12 })));
    let (code, _, err) = durable_url(&url, token, &["result", "w-2", "--wait", "1"]);
    assert_eq!(code, 10, "{err}");
    let (code, out, _) = durable_url(&url, token, &["state", "w/1"]);
    assert_eq!(code, 0);
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state["Signal"]["n"], 1, "{out}");
    let (_, out, _) = durable_url(&url, token, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["waiting_for_signal"], 2, "{out}");
    assert_eq!(stats["completed"], 2, "`ok` and `cli-1`: {out}");

    // signals take the awaited type; bad input and unknown ids have their codes
    let (code, _, err) = durable_url(&url, token, &["signal", "w/1", "go", "\"five\""]);
    assert_eq!(code, 2, "a string is not a u32: {err}");
    let (code, _, err) = durable_url(&url, token, &["signal", "w/1", "go", "{oops"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = durable_url(&url, token, &["signal", "nobody", "go", "5"]);
    assert_eq!(code, 3, "{err}");
    let (code, out, err) = durable_url(&url, token, &["signal", "w/1", "go", "5"]);
    assert_eq!(code, 0, "{out}{err}");
    let done = rt.handle::<waiter>("w/1").result().await.unwrap();
    assert_eq!(done.unwrap(), 6);

    let (code, _, err) = durable_url(&url, token, &["cancel", "w-2"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = durable_url(&url, token, &["terminate", "ok"]);
    assert_eq!(code, 1, "an ended instance cannot be terminated: {err}");
    let (code, _, _) = durable_url(&url, token, &["describe", "nobody"]);
    assert_eq!(code, 3);

    // export, then import: refused while it exists, taken with --replace
    let file = dir.path().join("ok.snapshot");
    let (code, out, err) = durable_url(&url, token, &["export", "ok", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported ok (doubler"), "{out}");
    let (code, _, err) = durable_url(&url, token, &["import", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[DURABLE-EXISTS]"), "{err}");
    let (code, _, err) = durable_url(
        &url,
        token,
        &["import", file.to_str().unwrap(), "--replace"],
    );
    assert_eq!(code, 0, "{err}");

    // the token, and a service that is not there
    let (code, _, err) = durable_url(&url, Some("wrong"), &["list"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("refused the token"), "{err}");
    let (code, _, err) = durable_url(&url, None, &["stats"]);
    assert_eq!(code, 6, "{err}");
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let (code, _, err) = durable_url(&gone_url, token, &["list"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("cannot reach the service"), "{err}");
    let (code, _, err) = durable_url("https://127.0.0.1:1", token, &["list"]);
    assert_eq!(code, 2, "{err}");
    server.abort();
}

#[test]
fn a_store_or_a_service_must_be_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .arg("list")
        .output()
        .expect("run durable");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_created_and_steered_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let rt = std::sync::Arc::new(
        Runtime::builder()
            .workflow::<doubler>()
            .open(dir.path())
            .await
            .unwrap(),
    );
    let (url, server) = serve(rt.clone(), None).await;
    let create = [
        "schedule",
        "create",
        "nightly",
        "--workflow",
        "doubler",
        "--input",
        "21",
        "--cron",
        "0 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--overlap",
        "buffer-one",
    ];
    let (code, out, err) = durable_url(&url, None, &create);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("when      cron \"0 2 * * *\" in Europe/Berlin"),
        "{out}"
    );
    assert!(out.contains("input     21"), "{out}");
    let (code, _, err) = durable_url(&url, None, &create);
    assert_eq!(code, 1, "a duplicate id");
    assert!(err.contains("exists already"), "{err}");
    for (bad, what) in [
        (vec!["--cron", "0 2 * *"], "invalid cron expression"),
        (
            vec!["--cron", "0 2 * * *", "--tz", "Mars/Base"],
            "unknown time zone",
        ),
        (vec!["--every", "soon"], "not a duration"),
        (
            vec!["--every", "1h", "--overlap", "sometimes"],
            "unknown overlap policy",
        ),
    ] {
        let mut args = vec!["schedule", "create", "x", "--workflow", "doubler"];
        args.extend(bad);
        let (code, _, err) = durable_url(&url, None, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(what), "{err}");
    }

    let (code, out, _) = durable_url(
        &url,
        None,
        &["schedule", "pause", "nightly", "--note", "freeze"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("paused    freeze"), "{out}");
    let (code, out, err) = durable_url(&url, None, &["schedule", "trigger", "nightly"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs      1"), "{out}");
    let (code, out, err) = durable_url(
        &url,
        None,
        &[
            "schedule",
            "backfill",
            "nightly",
            "2026-01-01T00:00:00Z",
            "2026-01-03T12:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs      4"), "{out}");
    assert!(
        out.contains("started nightly@2026-01-03T01:00:00Z (Backfill)"),
        "{out}"
    );
    // a run says which schedule started it, for which night
    let (code, out, err) = durable_url(&url, None, &["describe", "nightly@2026-01-03T01:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("scheduled by `nightly` for 2026-01-03T01:00:00"),
        "{out}"
    );
    let (code, out, _) = durable_url(&url, None, &["schedule", "list", "--json"]);
    assert_eq!(code, 0);
    let listed: Vec<durable_runtime::schedule::ScheduleDescription> =
        serde_json::from_str(&out).unwrap();
    // runs end meanwhile (the schedule then updates its running list): compare what stays
    let brief = |l: &[durable_runtime::schedule::ScheduleDescription]| {
        l.iter()
            .map(|d| (d.id.clone(), d.spec.clone(), d.runs, d.paused))
            .collect::<Vec<_>>()
    };
    assert_eq!(brief(&listed), brief(&rt.schedules().list().unwrap()));
    let (code, out, _) = durable_url(
        &url,
        None,
        &[
            "schedule", "update", "nightly", "--every", "6h", "--offset", "30m",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("when      every 6h offset 30m"), "{out}");
    let (code, _, err) = durable_url(&url, None, &["schedule", "describe", "nope"]);
    assert_eq!(code, 3, "{err}");
    server.abort();
    let _ = server.await;
    std::sync::Arc::unwrap_or_clone(rt).shutdown().await;
    // the store's file is released when the last clone of the runtime goes:
    // the router's, held by connection tasks a moment after the server stops
    let mut listed = durable(dir.path(), &["schedule", "list"]);
    for _ in 0..500 {
        if !listed.2.contains("[DURABLE-LOCKED]") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        listed = durable(dir.path(), &["schedule", "list"]);
    }

    // on the store itself: what needs no workflow code works, the rest says where to go
    let (code, out, err) = listed;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("nightly") && out.contains("every 6h offset 30m"),
        "{out}"
    );
    let (code, out, _) = durable(dir.path(), &["schedule", "unpause", "nightly"]);
    assert_eq!(code, 0);
    assert!(!out.contains("paused    "), "{out}");
    let (code, _, err) = durable(dir.path(), &["schedule", "trigger", "nightly"]);
    assert_eq!(code, 1);
    assert!(err.contains("--url"), "{err}");
    let (code, _, _) = durable(dir.path(), &["schedule", "delete", "nightly"]);
    assert_eq!(code, 0);
    let (code, _, _) = durable(dir.path(), &["schedule", "delete", "nightly"]);
    assert_eq!(code, 3);
}

// a new version whose `Signal` variant has another shape (`n` is a u64 now)
#[workflow(name = "waiter", version = 2)]
async fn waiter_v2(n: u64) -> Result<u64, WorkflowError> {
    let got: u64 = signal("go").await?;
    Ok(n + got)
}

fn durable_without_db(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_durable"))
        .args(args)
        .output()
        .expect("run durable");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn exports_a_set_imports_it_all_or_nothing_and_checks_a_deploy_against_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::builder()
            .workflow::<doubler>()
            .workflow::<waiter>()
            .open(dir.path())
            .await
            .unwrap();
        rt.start("done", doubler(2), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        rt.start("w1", waiter(1), IdPolicy::Reject).await.unwrap();
        rt.start("w2", waiter(2), IdPolicy::Reject).await.unwrap();
        rt.shutdown().await;
    }
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_owned();

    let (code, out, err) = durable(dir.path(), &["export", "--all", &path("all.snap")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 3 instances"), "{out}");
    // written beside it, then renamed over it: nothing else is left
    let left: Vec<_> = std::fs::read_dir(files.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["all.snap"], "{left:?}");
    let (code, out, err) = durable(
        dir.path(),
        &["export", "--workflow", "waiter", &path("waiters.snap")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported 2 instances"), "{out}");
    let (code, _, err) = durable(dir.path(), &["export", "--all", "w1", &path("x.snap")]);
    assert_eq!(code, 2, "a set export takes only the file: {err}");

    // bad files: each refused with its own message, nothing imported
    let good = std::fs::read(path("all.snap")).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    let mut future = good.clone();
    future[16] = 9;
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("new-store");
    for (name, bytes, says) in [
        (
            "truncated.snap",
            good[..good.len() - 9].to_vec(),
            "truncated",
        ),
        ("flipped.snap", flipped, "corrupt"),
        ("future.snap", future, "format 9 is not supported"),
        ("empty.snap", Vec::new(), "not a snapshot file"),
    ] {
        std::fs::write(path(name), bytes).unwrap();
        let (code, _, err) = durable(&other, &["import", &path(name)]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
    }
    let (_, out, _) = durable(&other, &["list", "--json"]);
    assert_eq!(out.trim(), "[]", "nothing was imported");

    // a set is all or nothing: one existing id refuses the whole set
    let (code, _, err) = durable(&other, &["import", &path("waiters.snap")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = durable(&other, &["import", &path("all.snap")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[DURABLE-EXISTS]"), "{err}");
    let (_, out, _) = durable(&other, &["list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "`done` was not written: {out}"
    );
    assert_eq!(list[0]["version"], 1);
    let (code, _, err) = durable(&other, &["import", "--replace", &path("all.snap")]);
    assert_eq!(code, 0, "{err}");

    // the check: the same code resumes everything; v2 alone would park the waiters
    let same = path("same.json");
    Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .manifest()
        .write(&same)
        .unwrap();
    let changed = path("changed.json");
    Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter_v2>()
        .manifest()
        .write(&changed)
        .unwrap();
    let (code, out, err) = durable_without_db(&[
        "check",
        "--manifest",
        &same,
        "--snapshots",
        &path("all.snap"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 instances, 0 would park"), "{out}");
    let (code, out, err) = durable_without_db(&[
        "check",
        "--manifest",
        &changed,
        "--snapshots",
        &path("all.snap"),
    ]);
    assert_eq!(code, 7, "{out}{err}");
    assert!(
        out.contains("WOULD PARK") && out.contains("2 would park"),
        "{out}"
    );
    let (code, out, err) = durable(dir.path(), &["check", "--manifest", &changed, "--json"]);
    assert_eq!(code, 7, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["entries"].as_array().map(Vec::len), Some(3), "{out}");
    let (code, _, err) = durable_without_db(&["check", "--manifest", &same]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--db"), "{err}");
}

#[test]
fn a_missing_or_foreign_directory_is_a_clear_error_and_stays_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let (code, _, err) = durable(&missing, &["list"]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("is not a durable store"), "{err}");
    assert!(!missing.exists(), "the tool must not create a store");
    // a directory with other files in it
    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("db"), b"not sled").unwrap();
    let (code, _, err) = durable(&foreign, &["stats"]);
    assert_eq!(code, 8, "{err}");
    assert_eq!(std::fs::read(foreign.join("db")).unwrap(), b"not sled");
}

#[tokio::test]
async fn a_postgres_store_is_named_by_its_url() {
    use durable_runtime::testing::backends::Backend;
    let db = Backend::Postgres.store();
    let url = std::path::Path::new(db.url());
    {
        let rt = Runtime::builder()
            .workflow::<doubler>()
            .open_url(db.url())
            .await
            .unwrap();
        rt.start("pg-ok", doubler(4), IdPolicy::Reject)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        // the database is shared: the tool reads it while the service runs
        let (code, out, err) = durable(url, &["list"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("pg-ok"), "{out}");
        let (code, out, err) = durable(url, &["workers"]);
        assert_eq!(code, 0, "{err}");
        let me = &rt.workers().unwrap()[0];
        assert!(me.this_process && out.contains(&me.name), "{out}");
        rt.shutdown().await;
        // a clean stop removes the worker's lease
        let (code, out, err) = durable(url, &["workers"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("no worker holds a lease"), "{out}");
    }
    let (code, out, err) = durable(url, &["describe", "pg-ok"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("completed"), "{out}");
    let bad = std::path::Path::new("postgres://durable:secret@127.0.0.1:notaport/db");
    let (code, _, err) = durable(bad, &["list"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[DURABLE-URL]") && !err.contains("secret"),
        "{err}"
    );
}

// multi-threaded: the service answers while the command runs
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_url_judges_a_live_services_unfinished_instances() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .open(dir.path())
        .await
        .unwrap();
    rt.start("done", doubler(2), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    for id in ["w1", "w/2"] {
        rt.start(id, waiter(1), IdPolicy::Reject).await.unwrap();
    }
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", Some("t0ken".to_owned()))
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let serving = tokio::spawn(server.run());
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_owned();
    let same = path("same.json");
    Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .manifest()
        .write(&same)
        .unwrap();
    let changed = path("changed.json");
    Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter_v2>()
        .manifest()
        .write(&changed)
        .unwrap();

    // the finished instance is not judged: no build can park it
    let check = |manifest: &str| {
        let url = url.clone();
        let manifest = manifest.to_owned();
        tokio::task::spawn_blocking(move || {
            durable_url(&url, Some("t0ken"), &["check", "--manifest", &manifest])
        })
    };
    let (code, out, err) = check(&same).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 instances, 0 would park"), "{out}");
    let (code, out, err) = check(&changed).await.unwrap();
    assert_eq!(code, 7, "{out}{err}");
    assert!(
        out.contains("WOULD PARK") && out.contains("w/2") && out.contains("2 would park"),
        "{out}"
    );
    serving.abort();
    rt.shutdown().await;
}

static OWED_TOKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

#[activity]
async fn send_bill(token: String) -> Result<(), ActivityError> {
    *OWED_TOKEN.lock().unwrap() = Some(token);
    Ok(())
}

#[workflow]
async fn owed(n: u32) -> Result<u32, WorkflowError> {
    let paid: durable_runtime::promise::Promise<u32> = durable_runtime::promise::promise().await;
    send_bill(paid.token().to_owned()).await?;
    let cents = paid.wait().await?;
    Ok(n + cents)
}

// multi-threaded: the service answers while the command runs
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_url_completes_a_promise_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<owed>()
        .open(dir.path())
        .await
        .unwrap();
    let h = rt.start("owed-1", owed(1), IdPolicy::Reject).await.unwrap();
    let token = loop {
        let token = OWED_TOKEN.lock().unwrap().clone();
        if let Some(token) = token
            && rt.running_instances() == 0
        {
            break token;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", Some("t0ken".to_owned()))
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let serving = tokio::spawn(server.run());
    let complete = |value: &str| {
        let (url, token, value) = (url.clone(), token.clone(), value.to_owned());
        tokio::task::spawn_blocking(move || {
            durable_url(&url, Some("t0ken"), &["complete", &token, &value])
        })
    };
    let (code, out, err) = complete("41").await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("completed"), "{out}");
    assert_eq!(h.result().await.unwrap().unwrap(), 42);
    let (code, _, err) = complete("7").await.unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("completed already"), "{err}");
    serving.abort();
    rt.shutdown().await;
}

#[tokio::test]
async fn commands_that_change_something_answer_json_with_json() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::builder()
            .workflow::<waiter>()
            .open(dir.path())
            .await
            .unwrap();
        for id in ["j1", "j2"] {
            rt.start(id, waiter(1), IdPolicy::Reject).await.unwrap();
        }
        rt.shutdown().await;
    }
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("j1.snap").to_str().unwrap().to_owned();
    let parsed = |args: &[&str]| {
        let (code, out, err) = durable(dir.path(), args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    };
    assert_eq!(
        parsed(&["--json", "cancel", "j1"])["cancel_requested"],
        "j1"
    );
    let t = parsed(&["--json", "terminate", "j2", "--reason", "test"]);
    assert_eq!(
        (&t["terminate_requested"], &t["reason"]),
        (&"j2".into(), &"test".into())
    );
    let e = parsed(&["--json", "export", "j1", &file]);
    assert_eq!(e["exported"], serde_json::json!(["j1"]));
    let all = files.path().join("all.snap").to_str().unwrap().to_owned();
    assert_eq!(
        parsed(&["--json", "export", "--all", &all])["exported"],
        serde_json::json!(["j1", "j2"])
    );
    let other = tempfile::tempdir().unwrap();
    let store = other.path().join("store");
    let (code, out, err) = durable(&store, &["--json", "import", &file]);
    assert_eq!(code, 0, "{err}");
    let i: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(i["imported"], serde_json::json!(["j1"]));
}

/// `completions SHELL` prints a script for each shell clap supports, from
/// the same definitions as the arguments (every subcommand is in it),
/// without a store or a service; an unknown shell is bad usage.
#[test]
fn completions_cover_every_subcommand_for_each_shell() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_durable"))
            .args(args)
            .env_remove("DURABLE_DB")
            .env_remove("DURABLE_URL")
            .output()
            .expect("run durable");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        for sub in [
            "list", "history", "signal", "complete", "schedule", "check", "export",
        ] {
            assert!(script.contains(sub), "{shell} completes `{sub}`");
        }
    }
    let (code, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is bad usage");
}

const RESERVE: durable_runtime::update::UpdateDef<u32, String> =
    durable_runtime::update::UpdateDef::new("reserve");

/// Takes one reservation by update, then waits for `done`.
#[workflow]
async fn seats(free: u32) -> Result<u32, WorkflowError> {
    let update = RESERVE.receive().await?;
    let n = *update.request();
    update.reply(format!("{n} of {free} seats reserved")).await;
    let _: () = signal("done").await?;
    Ok(free - n)
}

#[tokio::test]
async fn update_with_url_prints_the_reply_and_re_attaches_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<seats>()
        .open(dir.path())
        .await
        .unwrap();
    rt.start("seats-1", seats(10), IdPolicy::Reject)
        .await
        .unwrap();
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", Some("t0ken".to_owned()))
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let serving = tokio::spawn(server.run());
    let update = |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || durable_url(&url, Some("t0ken"), &args))
    };
    let (code, out, err) = update(vec![
        "update",
        "seats-1",
        "reserve",
        "3",
        "--update-id",
        "r-1",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "\"3 of 10 seats reserved\"");
    // again with its id: the same reply, nothing reserved twice
    let (code, out, err) = update(vec![
        "update",
        "seats-1",
        "reserve",
        "5",
        "--update-id",
        "r-1",
        "--json",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["reply"], "3 of 10 seats reserved");
    assert_eq!(answer["update_id"], "r-1");
    // not awaited any more (it waits for `done`): the service says so
    let (code, _, err) = update(vec!["update", "seats-1", "reserve", "1"])
        .await
        .unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("not awaited"), "{err}");
    rt.signal("seats-1", "done", &()).await.unwrap();
    serving.abort();
    rt.shutdown().await;
}

#[tokio::test]
async fn reset_with_url_takes_an_ended_instance_back_and_reset_points_list_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .open(dir.path())
        .await
        .unwrap();
    rt.start("d-1", doubler(4), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    rt.start("w-1", waiter(1), IdPolicy::Reject).await.unwrap();
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", Some("t0ken".to_owned()))
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let serving = tokio::spawn(server.run());
    let cli = |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || durable_url(&url, Some("t0ken"), &args))
    };
    let (code, out, err) = cli(vec!["reset-points", "d-1"]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("activity work"), "{out}");
    let (code, out, err) = cli(vec!["reset", "d-1"]).await.unwrap();
    assert_eq!(code, 2, "a step or an event is needed: {out}{err}");
    let (code, _, err) = cli(vec!["reset", "w-1", "--step", "1"]).await.unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("cancel or terminate it first"), "{err}");
    let (code, _, err) = cli(vec!["reset", "nobody", "--step", "1"]).await.unwrap();
    assert_eq!(code, 3, "{err}");
    let (code, out, err) = cli(vec![
        "reset",
        "d-1",
        "--step",
        "1",
        "--reason",
        "work again",
        "--json",
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let reset: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (reset["run"].as_u64(), reset["step"].as_u64()),
        (Some(2), Some(1))
    );
    let d = rt.handle::<doubler>("d-1").result().await.unwrap().unwrap();
    assert_eq!(d, 8);
    let (code, out, _) = cli(vec!["history", "d-1"]).await.unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("reset from step 2 to step 1: run 2 (work again)"),
        "{out}"
    );
    serving.abort();
    rt.shutdown().await;
    // with --db: the points are read from the store, a reset needs the service
    let (code, out, err) = durable(dir.path(), &["reset-points", "d-1", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"step\""), "{out}");
    let (code, _, err) = durable(dir.path(), &["reset", "d-1", "--step", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--url"), "{err}");
}

#[tokio::test]
async fn batch_with_url_previews_then_cancels_what_the_filter_matches() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .workflow::<doubler>()
        .workflow::<waiter>()
        .open(dir.path())
        .await
        .unwrap();
    for i in 0..5 {
        rt.start(&format!("w-{i}"), waiter(i), IdPolicy::Reject)
            .await
            .unwrap();
    }
    rt.start("d-1", doubler(4), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    let server = durable_runtime::http::bind(rt.clone(), "127.0.0.1:0", Some("t0ken".to_owned()))
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let serving = tokio::spawn(server.run());
    let cli = |args: Vec<&'static str>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || durable_url(&url, Some("t0ken"), &args))
    };
    let (code, out, err) = cli(vec!["batch", "cancel", "--workflow", "waiter", "--dry-run"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("would cancel 5 instances:"), "{out}");
    assert!(
        out.contains("w-0") && out.contains("w-4") && !out.contains("d-1"),
        "{out}"
    );
    assert_eq!(
        rt.describe("w-0").unwrap().status,
        durable_runtime::Status::Running
    );
    let (code, _, err) = cli(vec!["batch", "signal", "--workflow", "waiter"])
        .await
        .unwrap();
    assert_eq!(code, 2, "a batch signal needs a name: {err}");
    let (code, out, err) = cli(vec!["batch", "cancel", "--workflow", "waiter", "--json"])
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let op: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (op["state"].as_str(), op["done"].as_u64()),
        (Some("done"), Some(5)),
        "{out}"
    );
    let id = op["id"].as_str().unwrap().to_owned();
    for i in 0..5 {
        let status = rt.handle::<waiter>(format!("w-{i}")).result().await;
        assert!(
            status.is_err() || status.unwrap().is_err(),
            "w-{i} cancelled"
        );
    }
    let (code, out, _) = cli(vec!["batches"]).await.unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("cancel") && out.contains("5/5"),
        "{out}"
    );
    let status = {
        let url = url.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            durable_url(&url, Some("t0ken"), &["batch-status", &id])
        })
        .await
        .unwrap()
    };
    assert_eq!(status.0, 0, "{status:?}");
    assert!(
        status.1.contains("5 done, 0 skipped, 0 failed"),
        "{status:?}"
    );
    serving.abort();
    rt.shutdown().await;
    let (code, _, err) = durable(dir.path(), &["batch", "cancel"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--url"), "{err}");
}

#[workflow]
async fn noted(text: String) -> Result<String, WorkflowError> {
    let note: String = signal("note").await?;
    Ok(format!("{text}: {note}"))
}

/// `durable start` and `durable signal` with a value over the service's
/// limits fail (exit 1) with the service's error, which names the limit
/// and the size; nothing is started or stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_limits_are_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = durable_runtime::Limits::default();
    limits.input_bytes = 64;
    limits.signal_bytes = 64;
    let rt = std::sync::Arc::new(
        Runtime::builder()
            .workflow::<noted>()
            .limits(limits)
            .open(dir.path())
            .await
            .unwrap(),
    );
    let (url, server) = serve(rt.clone(), Some("s3cret")).await;
    let token = Some("s3cret");
    let long = format!("\"{}\"", "x".repeat(200));
    let (code, _, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        let long = long.clone();
        move || durable_url(&url, token, &["start", "noted", "big", "--input", &long])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[DURABLE-LIMIT]") && err.contains("Limits::input_bytes"),
        "{err}"
    );
    assert!(rt.describe("big").is_err(), "nothing started");
    rt.start("small", noted("order".into()), IdPolicy::Reject)
        .await
        .unwrap();
    let (code, _, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || durable_url(&url, token, &["signal", "small", "note", &long])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[DURABLE-LIMIT]") && err.contains("Limits::signal_bytes"),
        "{err}"
    );
    let (code, _, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || durable_url(&url, token, &["signal", "small", "note", "\"paid\""])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let out = rt.handle::<noted>("small").result().await.unwrap().unwrap();
    assert_eq!(out, "order: paid", "the refused signal was not stored");
    server.abort();
}
