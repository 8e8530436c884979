use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn takes_impl(n: impl Into<u32>) -> Result<u32, WorkflowError> {
    Ok(n.into())
}

fn main() {}
