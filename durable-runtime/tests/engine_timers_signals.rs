//! Durable timers (with a test clock that skips time) and signals.
//!
//! On the default store (redb); the suite is `suites/engine_timers_signals.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/engine_timers_signals.rs");
