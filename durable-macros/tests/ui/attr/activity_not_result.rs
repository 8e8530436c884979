use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[activity]
async fn not_result(n: u32) -> u32 {
    n
}

fn main() {}
