use durable_runtime::prelude::*;

#[helper(name = "other")]
async fn named(n: u32) -> u32 {
    n
}

#[helper]
async fn borrowed(s: &str) -> usize {
    s.len()
}

fn main() {}
