use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn two(n: u32) -> Result<u32, WorkflowError> {
    let v = step(n).await? + step(n).await?;
    Ok(v)
}

fn main() {}
