//! Helpers awaited from a workflow and from each other, in loops, in
//! expressions and conditions, from several places.
use durable_runtime::prelude::*;

#[activity]
async fn price(item: String) -> Result<u64, ActivityError> {
    Ok(item.len() as u64)
}

#[helper]
async fn price_twice(item: String) -> Result<u64, WorkflowError> {
    Ok(price(item.clone()).await? + price(item).await?)
}

#[helper]
async fn price_all(items: Vec<String>) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for item in items {
        total += price_twice(item).await?;
    }
    Ok(total)
}

#[helper]
async fn nothing() {}

#[workflow]
async fn quote(items: Vec<String>) -> Result<u64, WorkflowError> {
    nothing().await;
    let all = price_all(items.clone()).await?;
    if price_twice("x".into()).await? > 1 && price_all(items).await? < 100 {
        return Ok(all);
    }
    Ok(0)
}

fn main() {}
