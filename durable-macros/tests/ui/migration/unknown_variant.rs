use durable_runtime::migration::Migration;
use durable_runtime::prelude::*;

#[activity]
async fn charge(order: String) -> Result<u64, ActivityError> {
    Ok(order.len() as u64)
}

#[workflow(name = "order")]
async fn order_v1(order: String) -> Result<u64, WorkflowError> {
    let cents = charge(order.clone()).await?;
    Ok(cents + order.len() as u64)
}

#[workflow(name = "order", version = 2)]
async fn order_v2(order: String) -> Result<u64, WorkflowError> {
    let cents = charge(order.clone()).await?;
    Ok(cents + order.len() as u64)
}

fn main() {
    // v1 has no await on `ship`, so there is no `Ship` variant to migrate from
    let _ = Migration::<order_v1, order_v2>::new()
        .variant(order_v1::Ship, |(order,): (String,)| order_v2::Charge.state((order,)));
}
