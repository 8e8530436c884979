use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn with_async_block(n: u32) -> Result<u32, WorkflowError> {
    let fut = async { n + 1 };
    let _ = fut;
    Ok(n)
}

fn main() {}
