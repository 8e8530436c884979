use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn in_closure(items: Vec<u32>) -> Result<u32, WorkflowError> {
    let f = |n: u32| async move { step(n).await };
    let _ = f;
    let total: u32 = items.iter().map(|n| step(*n).await.unwrap_or(0)).sum();
    Ok(total)
}

fn main() {}
