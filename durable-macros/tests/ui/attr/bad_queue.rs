use durable_runtime::prelude::*;

#[activity(queue = "gpu workers")]
async fn render(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[activity(queue = 7)]
async fn transcode(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

fn main() {}
