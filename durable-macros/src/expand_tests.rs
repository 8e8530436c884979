//! Expansion snapshots: what `#[workflow]` generates for a few workflows,
//! pretty-printed and compared with `tests/snapshots/*.expanded.rs`, so a
//! reader can see the generated enum and a review shows codegen changes.
//! Regenerate with `UPDATE_EXPANDED=1 cargo test -p durable-macros --lib`.

use quote::quote;

fn check(name: &str, args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) {
    expanded(name, crate::expand_workflow(args, item));
}

fn expanded(name: &str, out: proc_macro2::TokenStream) {
    let file: syn::File = syn::parse2(out.clone())
        .unwrap_or_else(|e| panic!("{name}: expansion does not parse: {e}\n{out}"));
    let text = prettyplease::unparse(&file);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/snapshots/{name}.expanded.rs"));
    if std::env::var_os("UPDATE_EXPANDED").is_some() {
        std::fs::write(&path, &text).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == text,
        "expansion of {name} changed; review and run UPDATE_EXPANDED=1 cargo test -p durable-macros --lib\n--- new ---\n{text}"
    );
}

#[test]
fn process_order_expansion() {
    check(
        "process_order",
        quote!(),
        quote! {
            pub async fn process_order(order: Order) -> Result<ShipmentConfirmation, WorkflowError> {
                check_fraud(order.order_id.clone(), order.payment_info.clone()).await?;
                prepare_shipment(order.clone()).await?;
                let charge_confirm = charge(order.order_id.clone(), order.payment_info.clone()).await?;
                let shipment_confirmation = ship(order, charge_confirm).await?;
                Ok(shipment_confirmation)
            }
        },
    );
}

/// A helper: a workflow's state machine behind `Helper` (and `with_state`
/// for its nested state's serde), its call a `HelperCall`.
#[test]
fn helper_expansion() {
    expanded(
        "price_all",
        crate::expand_helper(
            quote!(),
            quote! {
                pub async fn price_all(items: Vec<String>) -> Result<u64, WorkflowError> {
                    let mut total = 0;
                    for item in items {
                        total += price(item).await?;
                    }
                    Ok(total)
                }
            },
        ),
    );
}

#[test]
fn loop_expansion() {
    check(
        "batch_loop",
        quote!(name = "batch"),
        quote! {
            async fn batch_loop(items: Vec<String>) -> Result<u64, WorkflowError> {
                let mut done = 0;
                for item in items {
                    if item.is_empty() {
                        continue;
                    }
                    let n = import(item).await?;
                    done += n;
                }
                Ok(done)
            }
        },
    );
}

#[test]
fn match_expansion() {
    check(
        "approval",
        quote!(),
        quote! {
            async fn approval(request: Request) -> Result<String, WorkflowError> {
                let verdict = match review(request.clone()).await? {
                    Verdict::Approved => "approved".to_string(),
                    Verdict::Escalate(to) => {
                        let answer = ask(to).await?;
                        format!("escalated: {answer}")
                    }
                };
                Ok(verdict)
            }
        },
    );
}

#[test]
fn sequenced_expansion() {
    check(
        "sequenced",
        quote!(),
        quote! {
            async fn quote(a: u64, b: u64) -> Result<String, WorkflowError> {
                let total = price(a).await? + price(b).await?;
                if price(a).await? > 10 && price(b).await? < 100 {
                    record(format!("{}-{}", a, price(total).await?)).await?;
                }
                while let Some(next) = page(total).await? {
                    record(next).await?;
                }
                let p = Point { x: price(a).await?, y: price(b).await? };
                price(p.x).await?;
                Ok(format!("{total}/{}", p.y))
            }
        },
    );
}
