//! Typed queries: the locals an instance holds at its current await, read
//! into the caller's view type by name.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/queries.rs`.

mod common;

common::suite!("suites/queries.rs");
