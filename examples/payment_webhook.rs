//! A checkout that waits for the payment provider's webhook: the workflow
//! creates a **promise**, hands its token to the provider with the payment
//! link, and waits for the provider to call back — at most a payment window
//! long (`select(paid.wait(), sleep(window))`).
//!
//! ```text
//! cargo run --example payment_webhook
//! ```
//!
//! The "provider" here is a task of this process that receives each link
//! and, a moment later, calls the service's webhook endpoint,
//! `POST /api/promises/{token}`, as a real provider would over the network;
//! it delivers one callback twice (providers retry), and the second is
//! refused (409: completed already) so the order is paid once. The third
//! order is never paid and ends when its window closes. The callback may
//! also come from Rust: `runtime.complete(&token, &paid)`.

use std::time::Duration;

use durable_runtime::prelude::*;
use durable_runtime::promise::{Promise, promise};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the provider reports in its callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Paid {
    cents: u64,
    reference: String,
}

/// A payment link request, as the provider receives it.
struct Link {
    order: String,
    cents: u64,
    token: String,
}

/// The provider's inbox (given to the activity as a dependency).
#[derive(Clone)]
struct Provider(mpsc::UnboundedSender<Link>);

#[activity(max_attempts = 5, initial_interval_ms = 50)]
async fn create_payment_link(
    order: String,
    cents: u64,
    token: String,
) -> Result<(), ActivityError> {
    let provider = dependency::<Provider>()?;
    println!(
        "  {order}: payment link created ({:.2} EUR)",
        cents as f64 / 100.0
    );
    provider
        .0
        .send(Link {
            order,
            cents,
            token,
        })
        .map_err(|_| ActivityError::retryable("the provider is not reachable"))
}

#[workflow]
async fn checkout(order: String, cents: u64, window_s: u64) -> Result<String, WorkflowError> {
    let paid: Promise<Paid> = promise().await;
    create_payment_link(order.clone(), cents, paid.token().to_owned()).await?;
    match select(paid.wait(), sleep(Duration::from_secs(window_s))).await {
        Either::Left(Ok(p)) => Ok(format!(
            "paid {:.2} EUR (provider reference {})",
            p.cents as f64 / 100.0,
            p.reference
        )),
        Either::Left(Err(Cancelled)) => Ok("cancelled".into()),
        Either::Right(_) => Ok(format!("not paid within {window_s} s: released the stock")),
    }
}

/// `POST path` with a JSON body and the API token; the response's status.
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer demo-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// The payment provider: pays every order but `unpaid`, calling the
/// webhook; the first callback it sends twice.
async fn provider(
    mut links: mpsc::UnboundedReceiver<Link>,
    addr: std::net::SocketAddr,
    unpaid: &str,
) {
    let mut first = true;
    while let Some(link) = links.recv().await {
        if link.order == unpaid {
            println!("  provider: {} is never paid", link.order);
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // the token holds `#`: percent-encoded in the path
        let path = format!("/api/promises/{}", link.token.replace('#', "%23"));
        let body = format!(
            r#"{{"cents": {}, "reference": "pay-{}"}}"#,
            link.cents, link.order
        );
        let deliveries = if first { 2 } else { 1 };
        first = false;
        for delivery in 1..=deliveries {
            // like any provider: retry while the answer is not final (503:
            // the workflow does not await the payment yet)
            let mut status = post(addr, &path, &body).await;
            for _ in 0..20 {
                if !matches!(status, Ok(503) | Err(_)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                status = post(addr, &path, &body).await;
            }
            match status {
                Ok(status) => println!(
                    "  provider: callback {delivery} for {} answered {status}{}",
                    link.order,
                    if status == 409 {
                        " (completed already: paid once)"
                    } else {
                        ""
                    }
                ),
                Err(e) => println!("  provider: callback for {} failed: {e}", link.order),
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (links, inbox) = mpsc::unbounded_channel();
    let runtime = Runtime::builder()
        .workflow::<checkout>()
        .dependency(Provider(links))
        .open(dir.path())
        .await?;
    let server = durable_runtime::http::bind(
        runtime.clone(),
        "127.0.0.1:0",
        Some("demo-token".to_owned()),
    )
    .await?;
    let addr = server.local_addr();
    tokio::spawn(server.run());
    tokio::spawn(provider(inbox, addr, "order-3"));
    println!("webhook endpoint: http://{addr}/api/promises/{{token}}");

    let orders = [("order-1", 4_250), ("order-2", 1_999), ("order-3", 12_000)];
    let mut handles = Vec::new();
    for (order, cents) in orders {
        handles.push(
            runtime
                .start(order, checkout(order.into(), cents, 2), IdPolicy::Reject)
                .await?,
        );
    }
    for h in handles {
        println!("{}: {}", h.id(), h.result().await??);
    }
    runtime.shutdown_timeout(Duration::from_secs(5)).await;
    Ok(())
}
