//! The runtime's guarantees and error paths.
//!
//! On the default store (redb); the suite is `suites/engine_guarantees.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/engine_guarantees.rs");
