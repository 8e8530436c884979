//! Moving to PostgreSQL: an instance exported from a redb store at each
//! await of the order workflow is imported into a PostgreSQL store and
//! finishes there; every bad file is refused. The suite is
//! `suites/snapshots.rs`, shared with `snapshots.rs`.

mod common;

use durable_runtime::testing::backends::Backend;

const FROM: Backend = Backend::Redb;
const TO: Backend = Backend::Postgres;

include!("suites/snapshots.rs");
