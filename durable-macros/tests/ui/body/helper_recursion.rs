use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[helper]
async fn countdown(n: u32) -> Result<u32, WorkflowError> {
    if n > 0 {
        step(n).await?;
        return countdown(n - 1).await;
    }
    Ok(n)
}

fn main() {}
