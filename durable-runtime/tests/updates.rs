//! Updates: validated, accepted once, answered, re-attached to after a
//! restart, read by name, raced with a timer, started with their instance.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/updates.rs`.

mod common;

common::suite!("suites/updates.rs");
