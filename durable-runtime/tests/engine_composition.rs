//! Parallel steps, sagas, child workflows and continue-as-new.
//!
//! On the default store (redb); the suite is `suites/engine_composition.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/engine_composition.rs");
