//! Batch operations: every instance a filter matches visited once, the
//! action done or skipped, progress stored and resumed, stopped, previewed.
//!
//! On the default store (redb); the suite is `suites/batch.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/batch.rs");
