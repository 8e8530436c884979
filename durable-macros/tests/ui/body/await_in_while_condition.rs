use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn in_while(n: u32) -> Result<u32, WorkflowError> {
    while step(n).await? > 3 {}
    Ok(n)
}

fn main() {}
