use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

fn longer(a: &str, n: u32) -> usize {
    a.len() + n as usize
}

#[workflow]
async fn borrowed(names: Vec<String>, n: u32) -> Result<usize, WorkflowError> {
    // `&names.concat()` is evaluated before the await and would be held across it
    let total = longer(&names.concat(), step(n).await?);
    Ok(total)
}

fn main() {}
