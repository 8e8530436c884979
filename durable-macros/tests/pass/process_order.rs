use durable_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub payment_info: String,
}

#[activity]
async fn check_fraud(order_id: String, payment_info: String) -> Result<(), ActivityError> {
    let _ = (order_id, payment_info);
    Ok(())
}

#[activity]
async fn prepare_shipment(order: Order) -> Result<(), ActivityError> {
    let _ = order;
    Ok(())
}

#[activity]
async fn charge(order_id: String, payment_info: String) -> Result<String, ActivityError> {
    Ok(format!("{order_id}{payment_info}"))
}

#[activity]
async fn ship(order: Order, charge: String) -> Result<String, ActivityError> {
    Ok(format!("{}{charge}", order.order_id))
}

#[workflow]
pub async fn process_order(order: Order) -> Result<String, WorkflowError> {
    check_fraud(order.order_id.clone(), order.payment_info.clone()).await?;
    prepare_shipment(order.clone()).await?;
    let charge_confirm = charge(order.order_id.clone(), order.payment_info.clone()).await?;
    let shipment_confirmation = ship(order, charge_confirm).await?;
    Ok(shipment_confirmation)
}

// the state enum is public and nameable
#[allow(dead_code)]
type State<A, B, C, D> = ProcessOrderState<A, B, C, D>;

fn main() {
    let _ = Runtime::builder().workflow::<process_order>();
}
