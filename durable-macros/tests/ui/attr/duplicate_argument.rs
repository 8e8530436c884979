use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow(name = "a", name = "b")]
async fn duplicate(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

fn main() {}
