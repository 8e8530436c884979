//! A state with large fields is stored field by field.
//!
//! On the PostgreSQL store; the suite is `suites/large_states.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Postgres;

include!("suites/large_states.rs");
