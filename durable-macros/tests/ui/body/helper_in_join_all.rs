use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[helper]
async fn twice(n: u32) -> Result<u32, WorkflowError> {
    Ok(step(n).await? + step(n).await?)
}

#[workflow]
async fn fan_out(ns: Vec<u32>) -> Result<u32, WorkflowError> {
    let all = join_all(ns.into_iter().map(twice).collect()).await;
    Ok(all.into_iter().map(|r| r.unwrap_or(0)).sum())
}

fn main() {}
