use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn holds_borrow(name: String) -> Result<usize, WorkflowError> {
    let r = &name;
    step(1).await?;
    Ok(r.len())
}

fn main() {}
