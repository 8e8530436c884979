use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn in_macro(n: u32) -> Result<u32, WorkflowError> {
    println!("{}", step(n).await?);
    Ok(n)
}

fn main() {}
