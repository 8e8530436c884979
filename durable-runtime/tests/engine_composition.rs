//! Parallel steps, sagas, child workflows and continue-as-new.
//!
//! On every backend of the matrix (`common::suite!`); the suite is
//! `suites/engine_composition.rs`.

mod common;

common::suite!(
    "suites/engine_composition.rs",
    redb: "suites/engine_composition_redb.rs"
);
