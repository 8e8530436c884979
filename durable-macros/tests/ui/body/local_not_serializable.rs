use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn holds_a_file(n: u32) -> Result<u32, WorkflowError> {
    let file = std::fs::File::open("/dev/null").map_err(|e| WorkflowError(e.to_string()))?;
    step(n).await?;
    drop(file);
    Ok(n)
}

fn main() {}
