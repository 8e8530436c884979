//! Compile-fail tests: every macro error, its wording and its span.
//! Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p durable-macros --test compiletest` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/**/*.rs");
    t.pass("tests/pass/*.rs");
}
