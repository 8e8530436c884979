use durable_runtime::prelude::*;

#[workflow(name = "a", version = 0)]
async fn version_zero(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

#[workflow(name = "b", version = "2")]
async fn version_string(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

#[workflow(name = "c", version = 2, version = 3)]
async fn version_twice(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

#[workflow(name = "d", version = 4294967296)]
async fn version_too_big(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

#[workflow(name = "e", version)]
async fn version_without_value(n: u32) -> Result<u32, WorkflowError> {
    Ok(n)
}

fn main() {}
