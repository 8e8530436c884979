//! Versions of one workflow name: side by side across restarts, starts by
//! name on the newest, typed migrations on open and on import, parking when
//! a migration is missing, the upgrade policy's record in history, and the
//! CI check over snapshot files.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/engine_versions.rs`.

mod common;

common::suite!("suites/engine_versions.rs");
