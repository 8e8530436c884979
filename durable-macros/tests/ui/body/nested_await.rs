use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn nested(n: u32) -> Result<u32, WorkflowError> {
    let v = step(step(n).await?).await?;
    Ok(v)
}

fn main() {}
