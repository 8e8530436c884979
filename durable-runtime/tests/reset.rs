//! Reset: an ended or parked instance taken back to a kept step runs on
//! from there as a new run; refused, with nothing written, when it cannot.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/reset.rs`.

mod common;

common::suite!("suites/reset.rs");
