//! The workflow retry policy: a failed run runs again from its input after
//! the policy's backoff, until one ends otherwise or no attempt is left.
//!
//! On the default store (redb); the suite is `suites/workflow_retry.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/workflow_retry.rs");
