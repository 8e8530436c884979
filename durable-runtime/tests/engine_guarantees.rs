//! The runtime's guarantees and error paths.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/engine_guarantees.rs`.

mod common;

common::suite!("suites/engine_guarantees.rs", redb: "suites/engine_guarantees_redb.rs");
