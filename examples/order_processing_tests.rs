//! Runs the tests of `order_processing.rs` (its `tests` module: the seed's
//! order workflow tested only with the test kit, `docs/testing.md`).

#[allow(dead_code)]
#[path = "order_processing.rs"]
mod order_processing;
