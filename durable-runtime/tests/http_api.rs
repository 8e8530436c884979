//! The HTTP API and metrics against a live runtime.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/http_api.rs`.

mod common;

common::suite!("suites/http_api.rs", redb: "suites/http_api_redb.rs");
