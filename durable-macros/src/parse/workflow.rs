//! `#[workflow(...)]`: the function and its name.

use syn::ItemFn;

use super::attr::{self, Arg};
use super::{Signature, signature};
use crate::ctxt::Ctxt;

pub(crate) struct WorkflowFn {
    pub(crate) item: ItemFn,
    pub(crate) sig: Signature,
    pub(crate) name: String,
    pub(crate) krate: syn::Path,
}

const ACCEPTED: &[&str] = &["name", "crate"];

pub(crate) fn parse(cx: &Ctxt, args: proc_macro2::TokenStream, item: ItemFn) -> WorkflowFn {
    let args: Vec<Arg> = attr::parse_args(cx, args);
    attr::reject_duplicates(cx, &args);
    let mut name = item.sig.ident.to_string();
    let mut krate: syn::Path = syn::parse_quote!(::durable_runtime);
    for arg in &args {
        match arg.key.to_string().as_str() {
            "name" => {
                if let Some((n, span)) = attr::string(cx, arg) {
                    if n.is_empty() {
                        cx.error_at(span, "`name` cannot be empty");
                    }
                    name = n;
                }
            }
            "crate" => {
                if let Some(p) = attr::crate_path(cx, arg) {
                    krate = p;
                }
            }
            _ => attr::unknown(cx, arg, ACCEPTED),
        }
    }
    let sig = signature(cx, &item, "workflow");
    WorkflowFn {
        item,
        sig,
        name,
        krate,
    }
}
