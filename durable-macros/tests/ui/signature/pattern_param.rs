use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn takes_tuple((a, b): (u32, u32)) -> Result<u32, WorkflowError> {
    Ok(a + b)
}

fn main() {}
