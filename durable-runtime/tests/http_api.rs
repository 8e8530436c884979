//! The HTTP API and metrics against a live runtime.
//!
//! On the default store (redb); the suite is `suites/http_api.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/http_api.rs");
