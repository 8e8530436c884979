//! Updates: validated, accepted once, answered, re-attached to after a
//! restart, read by name, raced with a timer, started with their instance.
//!
//! On the default store (redb); the suite is `suites/updates.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/updates.rs");
