//! Lists and counts are served from the phase and workflow indexes, kept in
//! the same batch as each record: they follow every transition, page
//! through many instances, and lose nothing and keep nothing stale.
//!
//! On the PostgreSQL store; the suite is `suites/visibility.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Postgres;

include!("suites/visibility.rs");
