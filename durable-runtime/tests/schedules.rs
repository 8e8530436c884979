//! Schedules on a test clock: cron and intervals, every overlap policy,
//! pause, trigger, backfill, catch-up after a restart, limits, and errors.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/schedules.rs`.

mod common;

common::suite!("suites/schedules.rs");
