//! Versions of one workflow name: side by side across restarts, starts by
//! name on the newest, typed migrations on open and on import, parking when
//! a migration is missing, the upgrade policy's record in history, and the
//! CI check over snapshot files.
//!
//! On the PostgreSQL store; the suite is `suites/engine_versions.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Postgres;

include!("suites/engine_versions.rs");
