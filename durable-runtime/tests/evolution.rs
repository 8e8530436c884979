//! Evolution of in-flight state: the matrix of type edits between two
//! builds. Each case is two builds of one workflow (modules `a` and `b`,
//! the same workflow name and body, the types edited): build A starts an
//! instance that waits for a signal holding a value, closes; build B opens
//! the same store, says what it would do (`check_compatibility`), then gets
//! the signal. Every case either continues with the right values (rebuilt
//! by field and variant name) or parks naming what changed. None is ever
//! read by position. The expected outcomes are the table in
//! `docs/versioning.md`.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/evolution.rs`.

#![allow(unreachable_pub)]

mod common;

common::suite!("suites/evolution.rs");
