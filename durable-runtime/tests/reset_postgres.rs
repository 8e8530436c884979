//! Reset: an ended or parked instance taken back to a kept step runs on
//! from there as a new run; refused, with nothing written, when it cannot.
//!
//! On the PostgreSQL store; the suite is `suites/reset.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Postgres;

include!("suites/reset.rs");
