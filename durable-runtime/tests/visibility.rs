//! Lists and counts are served from the phase and workflow indexes, kept in
//! the same batch as each record: they follow every transition, page
//! through many instances, and lose nothing and keep nothing stale.
//!
//!
//! Beside the suite, on redb: what is particular to an embedded store
//! written by an earlier build, and to the engine over any store.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/visibility.rs`.

mod common;

common::suite!("suites/visibility.rs", redb: "suites/visibility_redb.rs");
