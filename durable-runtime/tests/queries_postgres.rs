//! Typed queries: the locals an instance holds at its current await, read
//! into the caller's view type by name.
//!
//! On the PostgreSQL store; the suite is `suites/queries.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Postgres;

include!("suites/queries.rs");
