//! Batch operations: every instance a filter matches visited once, the
//! action done or skipped, progress stored and resumed, stopped, previewed.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/batch.rs`.

mod common;

common::suite!("suites/batch.rs");
