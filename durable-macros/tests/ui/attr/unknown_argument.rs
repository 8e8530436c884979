use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow(name = "x", retries = 3)]
async fn unknown(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

fn main() {}
