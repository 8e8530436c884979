use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
fn not_async(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

fn main() {}
