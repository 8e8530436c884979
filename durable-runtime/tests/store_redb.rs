//! The `Store` contract on the default store (redb) (the suite is `suites/store.rs`).

use durable_runtime::testing::backends::Backend;

const BACKEND: Backend = Backend::Redb;

include!("suites/store.rs");
