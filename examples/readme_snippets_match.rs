//! Every Rust block of the README appears, line for line and in order, in
//! `readme_snippets.rs` (indentation aside), which CI compiles and runs
//! (`cargo run --example readme_snippets`): the README cannot show code
//! that does not compile or no longer does what it says.

/// The README's Rust blocks: for each, its lines with their line numbers.
fn rust_blocks(readme: &str) -> Vec<Vec<(usize, &str)>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<(usize, &str)>> = None;
    for (n, line) in readme.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut current, fence) {
            (None, true) if line.trim() == "```rust" => current = Some(Vec::new()),
            (Some(_), true) => blocks.extend(current.take()),
            (Some(block), false) => block.push((n + 1, line)),
            (None, _) => {}
        }
    }
    blocks
}

/// Finds `block`'s non-empty lines in `program`, in order; the first that
/// is missing, with its README line number.
fn find_in_order<'a>(block: &[(usize, &'a str)], program: &str) -> Result<(), (usize, &'a str)> {
    let lines: Vec<&str> = program.lines().map(str::trim).collect();
    let mut at = 0;
    for &(n, line) in block {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match lines[at..].iter().position(|l| *l == line) {
            Some(i) => at += i + 1,
            None => return Err((n, line)),
        }
    }
    Ok(())
}

#[test]
fn every_rust_block_of_the_readme_is_in_the_snippets_example() {
    let readme = include_str!("../README.md");
    let program = include_str!("readme_snippets.rs");
    let blocks = rust_blocks(readme);
    assert!(
        blocks.len() >= 4,
        "the README has {} Rust blocks; this test expects the quick start, select, the HTTP API and schedules",
        blocks.len()
    );
    for block in &blocks {
        if let Err((n, line)) = find_in_order(block, program) {
            panic!(
                "README.md line {n}: `{line}` is not in examples/readme_snippets.rs \
                 (in this order): change both together"
            );
        }
    }
}

/// The negative control: a block whose line was edited, or whose lines
/// were swapped, is caught.
#[test]
fn an_edited_or_reordered_line_is_caught() {
    let program = "fn main() {\n    let a = 1;\n    let b = 2;\n}\n";
    assert_eq!(
        find_in_order(&[(1, "let a = 1;"), (2, "let b = 2;")], program),
        Ok(())
    );
    assert_eq!(
        find_in_order(&[(1, "let a = 1;"), (2, "let b = 3;")], program),
        Err((2, "let b = 3;"))
    );
    assert_eq!(
        find_in_order(&[(1, "let b = 2;"), (2, "let a = 1;")], program),
        Err((2, "let a = 1;"))
    );
    let readme = "text\n```rust\nlet a = 1;\n```\n```sh\nls\n```\n```rust\nlet b = 2;\n```\n";
    assert_eq!(
        rust_blocks(readme),
        vec![vec![(3, "let a = 1;")], vec![(9, "let b = 2;")]]
    );
}
