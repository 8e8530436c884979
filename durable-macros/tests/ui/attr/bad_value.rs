use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[activity(max_attempts = "three", backoff = 500.0)]
async fn bad(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

fn main() {}
