//! The web UI end to end, in Debian's headless Chromium.
//!
//! The test starts a runtime with instances in five states (completed, one
//! of them after failed activity attempts; failed; two waiting for a signal;
//! one sleeping), serves the
//! API and UI behind a bearer token on an ephemeral port, and runs the
//! Playwright driver in `tests/ui/e2e.mjs`. The driver checks what the pages
//! show, filters the list (status, id prefix, workflow, search attribute,
//! start-time range) and pages through it both ways, sends a signal and a cancel through the buttons,
//! terminates the sleeper (each asked about first), resets the failed
//! payment to the await of its charge, resets the failed invoice by a batch
//! from the list (previewed, asked about), measures the contrast of
//! every text in the light and dark colour schemes, runs axe-core's WCAG 2.1
//! A and AA rules on each page in both schemes, renders the pages at a
//! phone's width (390 px), pauses a schedule and runs it now from the
//! schedules page, creates, backfills, edits and deletes another, starts a
//! workflow from the list page, and saves
//! screenshots (their paths are printed; with `DURABLE_DOCS_SHOTS=1` the
//! ones `docs/visibility.md` shows are copied to `docs/screenshots/`). Afterwards the test
//! checks through the runtime that the signal and the cancel took effect.
//!
//! Needs `/usr/bin/chromium` (or `DURABLE_CHROMIUM`), `node`, and
//! `npm ci` in `tests/ui`; `bash .ci/run` installs them. Without them the
//! test fails and says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use durable_runtime::prelude::*;
use durable_runtime::{Phase, ResultError};
use serde::{Deserialize, Serialize};

#[activity]
async fn reserve(order: String) -> Result<String, ActivityError> {
    Ok(format!("reserved {order}"))
}

#[activity(max_attempts = 2, initial_interval_ms = 5)]
async fn charge_card(amount: u32) -> Result<u32, ActivityError> {
    Err(ActivityError::retryable(format!(
        "card declined: insufficient funds for {amount}"
    )))
}

#[workflow]
async fn checkout(order: String) -> Result<String, WorkflowError> {
    let r = reserve(order).await?;
    Ok(r)
}

/// Returns the card's error: the instance fails, its `Err` output kept.
#[workflow]
async fn payment(amount: u32) -> Result<u32, WorkflowError> {
    let paid = charge_card(amount).await?;
    Ok(paid)
}

/// A bug in workflow code: the panic fails the instance.
#[workflow]
async fn invoice(order: String) -> Result<u32, WorkflowError> {
    let reserved = reserve(order).await?;
    let total: u32 = reserved.parse().expect("a reservation is a number");
    Ok(total)
}

/// The payload of the `approve` signal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Approval {
    by: String,
    amount: u32,
}

#[workflow]
async fn approval(request: String) -> Result<String, WorkflowError> {
    let a: Approval = signal("approve").await?;
    Ok(format!("{request} approved by {} for {}", a.by, a.amount))
}

/// Tagged with the customer it reminds (a search attribute), then sleeps.
#[workflow]
async fn reminder(minutes: u64) -> Result<u64, WorkflowError> {
    durable_runtime::upsert_search_attributes([(
        "customer",
        durable_runtime::SearchValue::from("acme"),
    )])
    .await;
    sleep(std::time::Duration::from_secs(minutes * 60)).await?;
    Ok(minutes)
}

/// What the browser run needs, or a message saying how to get it.
fn prerequisites(driver_dir: &Path) -> Result<PathBuf, String> {
    let how = "install them with `bash .ci/run`, or by hand: `apt-get install -y chromium` \
               and `npm ci` in tests/ui";
    let chromium = std::env::var_os("DURABLE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "the UI test needs Chromium at {} (set DURABLE_CHROMIUM for another path); {how}",
            chromium.display()
        ));
    }
    if !driver_dir.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "the UI test needs playwright-core in {}/node_modules; {how}",
            driver_dir.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(chromium),
        _ => Err(format!("the UI test needs `node` on PATH; {how}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_lists_filters_shows_and_steers_instances_in_chromium() {
    let driver_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let chromium = match prerequisites(&driver_dir) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    };

    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(
        Runtime::builder()
            .workflow::<checkout>()
            .workflow::<payment>()
            .workflow::<invoice>()
            .workflow::<approval>()
            .workflow::<reminder>()
            .open(dir.path())
            .await
            .unwrap(),
    );
    let done = rt
        .start("checkout-1", checkout("book".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(done.unwrap(), "reserved book");
    let declined = rt
        .start("payment-1", payment(420), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await;
    assert!(
        matches!(declined, Ok(Err(_))),
        "the payment returns the card's error: {declined:?}"
    );
    let failed = rt
        .start("invoice-1", invoice("desk".into()), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .await;
    assert!(
        matches!(failed, Err(ResultError::Failed { .. })),
        "the invoice fails: {failed:?}"
    );
    // each started in a millisecond of its own: the list shows them newest first
    for id in ["approval-1", "approval-2"] {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        rt.start(id, approval(format!("{id} laptop")), IdPolicy::Reject)
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    rt.start("reminder-1", reminder(90), IdPolicy::Reject)
        .await
        .unwrap();
    // tagged, then asleep
    for _ in 0..500 {
        if rt.describe("reminder-1").unwrap().phase == Phase::Sleeping {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(rt.describe("reminder-1").unwrap().phase, Phase::Sleeping);
    assert_eq!(
        rt.describe("approval-1").unwrap().phase,
        Phase::WaitingForSignal
    );

    rt.schedules()
        .create(
            "nightly-checkout",
            durable_runtime::Schedule::cron("0 2 * * *")
                .and_then(|s| s.time_zone("Europe/Berlin"))
                .unwrap(),
            checkout("nightly".into()),
        )
        .await
        .unwrap();

    let token = "e2e-token";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // mounted under a prefix of the user's own app, which keeps its root
    let durable = durable_runtime::http::router(rt.clone(), Some(token.into()));
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the user's own page" }))
        .nest("/durable", durable);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let script = driver_dir.join("e2e.mjs");
    let output = tokio::task::spawn_blocking({
        let shots = shots.clone();
        move || {
            std::process::Command::new("node")
                .arg(&script)
                .arg(format!("http://{addr}/durable"))
                .arg(token)
                .arg(&shots)
                .env("DURABLE_CHROMIUM", &chromium)
                .current_dir(script.parent().unwrap_or(Path::new(".")))
                .output()
        }
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser driver failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let screenshots: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("SCREENSHOT "))
        .collect();
    assert_eq!(screenshots.len(), 6, "{stdout}");
    for shot in &screenshots {
        let size = std::fs::metadata(shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "screenshot {shot} is missing or empty");
        println!("screenshot: {shot}");
    }
    // `DURABLE_DOCS_SHOTS=1`: the ones docs/visibility.md shows are copied there
    if std::env::var_os("DURABLE_DOCS_SHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for name in [
            "list.png",
            "attempts-instance.png",
            "schedules.png",
            "list-390-dark.png",
        ] {
            std::fs::copy(shots.join(name), docs.join(name)).unwrap();
        }
    }

    // what the buttons did, seen from the runtime
    let approved = rt.handle::<approval>("approval-1").result().await.unwrap();
    assert_eq!(
        approved.unwrap(),
        "approval-1 laptop approved by dana for 3"
    );
    let cancelled = rt.describe("approval-2").unwrap();
    assert_eq!(cancelled.phase, Phase::Cancelled, "{cancelled:?}");
    let terminated = rt.describe("reminder-1").unwrap();
    assert_eq!(terminated.phase, Phase::Terminated, "{terminated:?}");
    assert_eq!(terminated.error.as_deref(), Some("customer left"));
    let reset = rt.describe("payment-1").unwrap();
    assert_eq!(
        (reset.phase, reset.run),
        (Phase::Failed, 2),
        "reset from the page: {reset:?}"
    );
    let batched = rt.describe("invoice-1").unwrap();
    assert_eq!(
        batched.run, 2,
        "reset by a batch from the list: {batched:?}"
    );
    let completed = rt.describe("checkout-1").unwrap();
    assert_eq!(
        completed.phase,
        Phase::Completed,
        "the filters and pages changed nothing else"
    );
    let schedule = rt.schedules().describe("nightly-checkout").unwrap();
    assert!(schedule.paused, "paused from the page: {schedule:?}");
    assert_eq!(schedule.note, "holiday freeze");
    assert_eq!(schedule.runs, 1, "run once from the page: {schedule:?}");
    // created, backfilled and deleted from the schedules page
    assert!(
        rt.schedules().describe("hourly-report").is_err(),
        "deleted from the page"
    );
    let backfilled = rt
        .list(&durable_runtime::ListFilter {
            id_prefix: Some("hourly-report@".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(
        backfilled.len() >= 3,
        "backfilled from the page: {backfilled:?}"
    );
    // started from the list page
    let started = rt.describe("checkout-ui").unwrap();
    assert_eq!(started.phase, Phase::Completed, "{started:?}");
    server.abort();
}
