use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn uninferable(n: u32) -> Result<u32, WorkflowError> {
    let items = Vec::new();
    step(n).await?;
    Ok(items.len() as u32)
}

fn main() {}
