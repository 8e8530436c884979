//! Heartbeats and the activity timeouts (start-to-close, heartbeat,
//! schedule-to-close) on the runtime's clock.
//!
//! On the PostgreSQL store; the suite is `suites/activity_timeouts.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Postgres;

include!("suites/activity_timeouts.rs");
