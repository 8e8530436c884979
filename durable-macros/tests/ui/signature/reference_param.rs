use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn takes_ref(name: &str) -> Result<u32, WorkflowError> {
    Ok(name.len() as u32)
}

fn main() {}
