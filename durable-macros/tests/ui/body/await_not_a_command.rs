use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn sleeps(n: u32) -> Result<u32, WorkflowError> {
    std::future::ready(1u32).await;
    Ok(n)
}

fn main() {}
