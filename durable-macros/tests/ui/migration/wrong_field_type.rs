use durable_runtime::migration::{Migrated, Migration};
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
async fn order_v2(order: String, note: String) -> Result<u64, WorkflowError> {
    let cents = charge(order.clone()).await?;
    Ok(cents + order.len() as u64 + note.len() as u64)
}

// `Charge` of v2 holds `(note: String, order: String)`: a number is not a note
fn charge_v1_to_v2((order,): (String,)) -> Migrated<order_v2> {
    order_v2::Charge.state((7u64, order))
}

fn main() {
    let _ = Migration::<order_v1, order_v2>::new().variant(order_v1::Charge, charge_v1_to_v2);
}
