use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn shadows(n: u32) -> Result<u32, WorkflowError> {
    let x = n;
    {
        let x = n + 1;
        step(x).await?;
    }
    Ok(x)
}

fn main() {}
