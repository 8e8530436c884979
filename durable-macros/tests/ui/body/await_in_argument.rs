use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn in_argument(n: u32) -> Result<u32, WorkflowError> {
    let total = u32::max(n, step(n).await?);
    Ok(total)
}

fn main() {}
