use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn generic<T: Clone>(n: T) -> Result<u32, WorkflowError> {
    let _ = n;
    Ok(1)
}

fn main() {}
