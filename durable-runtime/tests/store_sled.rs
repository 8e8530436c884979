//! The `Store` contract on the sled store (the suite is `suites/store.rs`).

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Sled;

include!("suites/store.rs");
