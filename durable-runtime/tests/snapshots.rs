//! Export an instance at each await of the order workflow, import it into
//! another store, and finish it there; every bad file is refused.
//!
//! From a redb store to another redb store; the suite is
//! `suites/snapshots.rs`, shared with `snapshots_postgres.rs`.

mod common;

use durable_runtime::testing::backends::Backend;

const FROM: Backend = Backend::Redb;
const TO: Backend = Backend::Redb;

include!("suites/snapshots.rs");
