//! A state with large fields is stored field by field.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/large_states.rs`.

mod common;

common::suite!("suites/large_states.rs");
