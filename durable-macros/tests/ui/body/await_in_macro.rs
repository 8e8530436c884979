use durable_runtime::prelude::*;

#[activity]
async fn step(n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

macro_rules! twice {
    ($e:expr) => {
        ($e, $e)
    };
}

#[workflow]
async fn in_macro(n: u32) -> Result<u32, WorkflowError> {
    // a macro whose arguments might be evaluated any number of times
    let pair = twice!(step(n).await?);
    // the repeat form of `vec!` is not a list of expressions
    let list = vec![step(n).await?; 2];
    Ok(pair.0 + list[0])
}

fn main() {}
