//! Parallel steps, sagas, child workflows and continue-as-new.
//!
//! On the sled store; the suite is `suites/engine_composition.rs`, shared by every backend.

mod common;

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Sled;

include!("suites/engine_composition.rs");
