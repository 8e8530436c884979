//! The workflow retry policy: a failed run runs again from its input after
//! the policy's backoff, until one ends otherwise or no attempt is left.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/workflow_retry.rs`.

mod common;

common::suite!("suites/workflow_retry.rs");
