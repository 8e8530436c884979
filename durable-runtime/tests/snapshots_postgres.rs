//! Moving to PostgreSQL: an instance exported from a sled store at each
//! await of the order workflow is imported into a PostgreSQL store and
//! finishes there; every bad file is refused. The suite is
//! `suites/snapshots.rs`, shared with `snapshots.rs`.

mod common;

use durable_runtime::testing::backends::Backend;

const FROM: Backend = Backend::Sled;
const TO: Backend = Backend::Postgres;

include!("suites/snapshots.rs");
