//! Helpers shared by the integration tests: waiting without timing
//! assertions (a condition, polled; a hang becomes a failure).

#![allow(dead_code)]

use std::time::Duration;

/// Fails a test that would otherwise hang.
pub(crate) trait Within: std::future::Future + Sized {
    async fn within(self) -> Self::Output {
        tokio::time::timeout(Duration::from_secs(30), self)
            .await
            .expect("timed out after 30 s")
    }
}

impl<F: std::future::Future> Within for F {}

/// Polls `f` until it holds; panics naming `what` after about 8 s.
pub(crate) async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..4000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("timed out waiting for {what}");
}
