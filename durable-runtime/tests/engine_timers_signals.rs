//! Durable timers (with a test clock that skips time) and signals.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/engine_timers_signals.rs`.

mod common;

common::suite!("suites/engine_timers_signals.rs");
