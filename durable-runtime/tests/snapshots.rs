//! Export an instance at each await of the order workflow, import it into
//! another store, and finish it there; every bad file is refused. From a
//! redb store to a store of each backend of the matrix (`common::suite!`):
//! redb again, and PostgreSQL (moving to PostgreSQL). The suite is
//! `suites/snapshots.rs`.

mod common;

common::suite!("suites/snapshots.rs");
