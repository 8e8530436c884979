use durable_runtime::command::SignalDef;
use durable_runtime::prelude::*;

/// Declared with a `String` payload.
const APPROVED: SignalDef<String> = SignalDef::new("approved");

async fn approve(runtime: &Runtime) -> Result<(), durable_runtime::SignalError> {
    runtime.signal("expense-7", APPROVED, &42_u32).await
}

fn main() {
    let _ = approve;
}
