use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn recurse(n: u32) -> Result<u32, WorkflowError> {
    if n > 0 {
        let _ = recurse(n - 1).await;
    }
    Ok(n)
}

fn main() {}
