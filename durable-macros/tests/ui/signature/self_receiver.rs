use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

struct Service;

impl Service {
    #[workflow]
    async fn method(&self, n: u32) -> Result<u32, WorkflowError> {
        Ok(n)
    }
}

fn main() {}
