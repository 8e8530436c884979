//! Heartbeats and the activity timeouts (start-to-close, heartbeat,
//! schedule-to-close) on the runtime's clock.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/activity_timeouts.rs`.

mod common;

common::suite!("suites/activity_timeouts.rs");
