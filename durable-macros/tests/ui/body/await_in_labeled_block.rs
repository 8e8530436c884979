use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

#[workflow]
async fn labeled(n: u32) -> Result<u32, WorkflowError> {
    let v = 'b: {
        let a = step(n).await?;
        if a > 3 {
            break 'b 1;
        }
        a
    };
    Ok(v)
}

fn main() {}
