//! An existing axum service that embeds durable: `POST /signup` starts an
//! onboarding workflow (create the account, send a welcome mail with a
//! verification code, wait for the `verified` signal or a day, remind, give
//! up after a few reminders). The service keeps its own routes and its own
//! `/metrics`; durable's API, web UI and metrics are nested under
//! `/durable`.
//!
//! ```text
//! cargo run --example axum_service                 # serves 127.0.0.1:3000 until Ctrl-C or SIGTERM
//! cargo run --example axum_service -- --demo       # drives itself through the routes, then stops
//! ```
//!
//! What it shows:
//! - **dependencies**: the account store and the mailer are given to the
//!   runtime (`Builder::dependency`) and read by the activities with
//!   `dependency::<T>()`; the same account store is the app's own axum
//!   state, as a database pool would be;
//! - **starting from a handler**: `Runtime` is `Clone`, the handler holds
//!   one; a signup retried by the browser or a load balancer is the same
//!   instance (`IdPolicy::UseExisting`);
//! - **results over HTTP**: `GET /durable/api/instances/{id}/result?wait=S`;
//! - **the UI under a prefix**: `http://127.0.0.1:3000/durable/`;
//! - **graceful shutdown**: on Ctrl-C or SIGTERM the server stops taking
//!   requests, answers those in flight, then the runtime lets running
//!   activity attempts finish and checkpoint (`shutdown_timeout`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use durable_runtime::command::Either;
use durable_runtime::http;
use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The service's accounts: in a real service a database pool (shared by
/// the app's handlers and the activities).
#[derive(Clone, Default)]
struct Accounts {
    by_email: Arc<Mutex<HashMap<String, Account>>>,
    next: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    id: u64,
    email: String,
    code: String,
    verified: bool,
}

/// Sends mail: in a real service an SMTP or API client. This one keeps
/// what it sent (the demo's people read their mail there), deduplicated by
/// the activity's idempotency key as a mail provider would.
#[derive(Clone, Default)]
struct Mailer {
    sent: Arc<Mutex<Vec<(String, Mail)>>>,
}

impl Mailer {
    /// The newest code mailed to `to`.
    fn code_for(&self, to: &str) -> Option<String> {
        let sent = self.sent.lock().unwrap();
        let (_, mail) = sent.iter().rev().find(|(_, m)| m.to == to)?;
        Some(mail.body.strip_prefix("Your code: ")?.to_owned())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Mail {
    to: String,
    subject: String,
    body: String,
}

/// What a signup asks for; `remind_after_ms` is a day in the service (the
/// demo waits a fraction of a second).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signup {
    email: String,
    remind_after_ms: u64,
}

/// How onboarding ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Onboarded {
    account: u64,
    verified: bool,
    reminders: u32,
}

const MAX_REMINDERS: u32 = 2;

#[activity(max_attempts = 5, initial_interval_ms = 50)]
async fn create_account(email: String) -> Result<Account, ActivityError> {
    let accounts = dependency::<Accounts>()?;
    let mut by_email = accounts.by_email.lock().unwrap();
    // a second attempt finds the account the first one created
    let account = by_email.entry(email.clone()).or_insert_with(|| {
        let id = accounts.next.fetch_add(1, Ordering::SeqCst) + 1;
        Account {
            id,
            email,
            code: format!("{:06}", (id * 7_919) % 1_000_000),
            verified: false,
        }
    });
    Ok(account.clone())
}

#[activity(max_attempts = 5, initial_interval_ms = 50)]
async fn send_mail(mail: Mail) -> Result<(), ActivityError> {
    let mailer = dependency::<Mailer>()?;
    let key = ActivityContext::current()
        .map(|c| c.idempotency_key)
        .unwrap_or_default();
    let mut sent = mailer.sent.lock().unwrap();
    if !sent.iter().any(|(k, _)| *k == key) {
        println!("  mail to {}: {}", mail.to, mail.subject);
        sent.push((key, mail));
    }
    Ok(())
}

#[activity(max_attempts = 5, initial_interval_ms = 50)]
async fn mark_verified(email: String) -> Result<(), ActivityError> {
    let accounts = dependency::<Accounts>()?;
    if let Some(account) = accounts.by_email.lock().unwrap().get_mut(&email) {
        account.verified = true;
    }
    Ok(())
}

#[workflow]
async fn onboarding(signup: Signup) -> Result<Onboarded, WorkflowError> {
    let account = create_account(signup.email.clone()).await?;
    send_mail(Mail {
        to: signup.email.clone(),
        subject: "Welcome! Please verify your address".into(),
        body: format!("Your code: {}", account.code),
    })
    .await?;
    let mut reminders = 0;
    loop {
        let wait = Duration::from_millis(signup.remind_after_ms);
        match select(signal::<String>("verified"), sleep(wait)).await {
            Either::Left(code) => {
                if code? == account.code {
                    mark_verified(signup.email.clone()).await?;
                    return Ok(Onboarded {
                        account: account.id,
                        verified: true,
                        reminders,
                    });
                }
            }
            Either::Right(_) if reminders == MAX_REMINDERS => {
                return Ok(Onboarded {
                    account: account.id,
                    verified: false,
                    reminders,
                });
            }
            Either::Right(_) => {
                reminders += 1;
                send_mail(Mail {
                    to: signup.email.clone(),
                    subject: format!("Reminder {reminders}: please verify your address"),
                    body: format!("Your code: {}", account.code),
                })
                .await?;
            }
        }
    }
}

/// The app's own state: what its handlers need, durable's runtime among it.
#[derive(Clone)]
struct AppState {
    runtime: Runtime,
    accounts: Accounts,
    signups: Arc<AtomicU64>,
    remind_after: Duration,
}

#[derive(Deserialize)]
struct SignupForm {
    email: String,
}

/// The instance id of a signup: one per address.
fn onboarding_id(email: &str) -> String {
    format!("onboarding-{email}")
}

async fn signup(
    State(app): State<AppState>,
    Json(form): Json<SignupForm>,
) -> Result<(StatusCode, Json<serde_json::Value>), (StatusCode, String)> {
    if !form.email.contains('@') {
        return Err((StatusCode::BAD_REQUEST, "not an email address".into()));
    }
    let id = onboarding_id(&form.email);
    let call = onboarding(Signup {
        email: form.email,
        remind_after_ms: app.remind_after.as_millis() as u64,
    });
    // a retried signup is the same instance, started once
    app.runtime
        .start(&id, call, IdPolicy::UseExisting)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    app.signups.fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))))
}

#[derive(Deserialize)]
struct VerifyLink {
    email: String,
    code: String,
}

/// The link in the mail: the code goes to the instance as a signal.
async fn verify(
    State(app): State<AppState>,
    Query(link): Query<VerifyLink>,
) -> (StatusCode, String) {
    let known = app
        .accounts
        .by_email
        .lock()
        .unwrap()
        .contains_key(&link.email);
    if !known {
        return (StatusCode::NOT_FOUND, "no such signup".into());
    }
    let id = onboarding_id(&link.email);
    match app.runtime.signal(&id, "verified", &link.code).await {
        Ok(()) => (StatusCode::OK, "thanks, checking your code".into()),
        Err(e) => (StatusCode::CONFLICT, e.to_string()),
    }
}

/// The app's own metrics, beside durable's at `/durable/metrics`.
async fn metrics(State(app): State<AppState>) -> String {
    format!(
        "# TYPE shop_signups_total counter\nshop_signups_total {}\n",
        app.signups.load(Ordering::Relaxed)
    )
}

/// The whole app: its own routes, durable's under `/durable`.
fn app(state: AppState, token: &str) -> Router {
    let durable = http::router(state.runtime.clone(), Some(token.to_owned()));
    Router::new()
        .route("/", get(|| async { "the shop" }))
        .route("/signup", post(signup))
        .route("/verify", get(verify))
        .route("/metrics", get(metrics))
        .with_state(state)
        .nest("/durable", durable)
}

/// Ctrl-C or SIGTERM (what an orchestrator sends before it kills): the
/// handlers are installed at the call, so a signal that comes before the
/// future is first polled is not lost (nor kills the process).
fn stop_requested() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        ctrl_c.await.ok();
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|a| a == "--demo");
    let scratch = tempfile::tempdir()?;
    let (dir, addr, remind_after) = if demo {
        (
            scratch.path().to_path_buf(),
            "127.0.0.1:0",
            Duration::from_secs(1),
        )
    } else {
        (
            "onboarding-db".into(),
            "127.0.0.1:3000",
            Duration::from_secs(86_400),
        )
    };
    let token = "shop-admin-token";
    let accounts = Accounts::default();
    let mailer = Mailer::default();
    let runtime = Runtime::builder()
        .workflow::<onboarding>()
        // the activities' dependencies: there before recovery resumes any
        .dependency(accounts.clone())
        .dependency(mailer.clone())
        .open(&dir)
        .await?;
    let state = AppState {
        runtime: runtime.clone(),
        accounts,
        signups: Arc::new(AtomicU64::new(0)),
        remind_after,
    };
    // a taken port is an error here, before anything runs
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("the shop on http://{addr}/, durable's UI on http://{addr}/durable#token={token}");

    // the demo stops by the same path: it sends this process SIGTERM (or
    // says it is done where there are no such signals, or when it failed)
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let stop = stop_requested()?;
    let shutdown = async move {
        tokio::select! {
            () = stop => println!("stop requested: finishing the requests in flight"),
            _ = done_rx => println!("demo over: shutting down"),
        }
    };
    let app = app(state, token);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    if demo {
        let outcome = drive(addr, token, &mailer).await;
        if cfg!(unix) && outcome.is_ok() {
            println!("demo done: sending this process SIGTERM, as an orchestrator would");
            let pid = std::process::id().to_string();
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()?;
        } else {
            done_tx.send(()).ok();
        }
        server.await??;
        runtime.shutdown_timeout(Duration::from_secs(10)).await;
        outcome?;
    } else {
        server.await??;
        runtime.shutdown_timeout(Duration::from_secs(20)).await;
    }
    println!("stopped; unfinished onboardings resume at the next start");
    Ok(())
}

/// The demo: two people sign up (one twice), one verifies with the code
/// from the mail, the other never does and is reminded; the results are
/// read over durable's HTTP API, and the nested UI and both metrics pages
/// are fetched.
async fn drive(
    addr: SocketAddr,
    token: &str,
    mailer: &Mailer,
) -> Result<(), Box<dyn std::error::Error>> {
    let expect = |what: &str, (code, body): (u16, String), want: u16| {
        if code == want {
            Ok(body)
        } else {
            Err(format!("{what}: {code} {body}"))
        }
    };
    for email in ["ada@example.com", "bob@example.com", "ada@example.com"] {
        let body = format!(r#"{{"email": "{email}"}}"#);
        let answer = request(addr, "POST", "/signup", None, &body).await?;
        expect("signup", answer, 202)?;
    }
    println!("signed up ada (twice: one instance) and bob");

    // ada reads her mail and follows the link with the code in it
    let code = loop {
        if let Some(code) = mailer.code_for("ada@example.com") {
            break code;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wrong = request(
        addr,
        "GET",
        "/verify?email=ada@example.com&code=000000",
        None,
        "",
    )
    .await?;
    expect("verify with a wrong code", wrong, 200)?;
    let link = format!("/verify?email=ada@example.com&code={code}");
    expect("verify", request(addr, "GET", &link, None, "").await?, 200)?;
    println!("ada verified with code {code} (after one wrong try)");

    // the results, over durable's API, waiting for each to end
    for (email, verified) in [("ada@example.com", true), ("bob@example.com", false)] {
        let path = format!("/durable/api/instances/onboarding-{email}/result?wait=30");
        let body = expect(
            "result",
            request(addr, "GET", &path, Some(token), "").await?,
            200,
        )?;
        let want = format!("\"verified\":{verified}");
        if !body.contains(&want) {
            return Err(format!("{email}: {want} expected in {body}").into());
        }
        let description: serde_json::Value = serde_json::from_str(&body)?;
        println!("{email}: {}", description["output"]);
    }

    // the UI under the prefix, the app's metrics and durable's
    let page = expect(
        "the UI",
        request(addr, "GET", "/durable", None, "").await?,
        200,
    )?;
    if !page.contains(r#"<base href="/durable/">"#) {
        return Err("the UI page does not know its prefix".into());
    }
    let own = expect(
        "the app's /metrics",
        request(addr, "GET", "/metrics", None, "").await?,
        200,
    )?;
    if !own.contains("shop_signups_total 3") {
        return Err(format!("the app's metrics: {own}").into());
    }
    let durable = request(addr, "GET", "/durable/metrics", Some(token), "").await?;
    let durable = expect("durable's /metrics", durable, 200)?;
    let completed = durable
        .lines()
        .find(|l| l.starts_with("durable_instances{status=\"completed\"}"))
        .unwrap_or("none");
    println!(
        "the UI answers under /durable; /metrics has the app's signups (3), /durable/metrics {completed}"
    );
    Ok(())
}

/// One plain HTTP/1.1 request: (status, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((status, body))
}
