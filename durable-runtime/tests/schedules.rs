//! Schedules on a test clock: cron and intervals, every overlap policy,
//! pause, trigger, backfill, catch-up after a restart, limits, and errors.
//!
//! On the default store (redb); the suite is `suites/schedules.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/schedules.rs");
