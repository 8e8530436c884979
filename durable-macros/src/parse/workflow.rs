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
    /// `version = N` (default 1): which version of the workflow name this is.
    pub(crate) version: u32,
    /// `#[helper]`: an async helper function, nested in its callers' states.
    pub(crate) helper: bool,
}

const ACCEPTED: &[&str] = &["name", "version", "crate"];
const ACCEPTED_BY_HELPER: &[&str] = &["crate"];

/// `#[helper(...)]`: only `crate` (a helper has no name or version of its
/// own: it is stored in its callers' states).
pub(crate) fn parse_helper(cx: &Ctxt, args: proc_macro2::TokenStream, item: ItemFn) -> WorkflowFn {
    parse_as(cx, args, item, true)
}

/// `#[workflow(...)]`.
pub(crate) fn parse(cx: &Ctxt, args: proc_macro2::TokenStream, item: ItemFn) -> WorkflowFn {
    parse_as(cx, args, item, false)
}

fn parse_as(cx: &Ctxt, args: proc_macro2::TokenStream, item: ItemFn, helper: bool) -> WorkflowFn {
    let accepted = if helper { ACCEPTED_BY_HELPER } else { ACCEPTED };
    let args: Vec<Arg> = attr::parse_args(cx, args);
    attr::reject_duplicates(cx, &args);
    let mut name = item.sig.ident.to_string();
    let mut krate: syn::Path = syn::parse_quote!(::durable_runtime);
    let mut version = 1;
    for arg in &args {
        match arg.key.to_string().as_str() {
            key if !accepted.contains(&key) => attr::unknown(cx, arg, accepted),
            "name" => {
                if let Some((n, span)) = attr::string(cx, arg) {
                    if n.is_empty() {
                        cx.error_at(span, "`name` cannot be empty");
                    }
                    name = n;
                }
            }
            "version" => {
                if let Some(v) = attr::integer(cx, arg) {
                    match u32::try_from(v) {
                        Ok(0) => cx.error_spanned_by(
                            arg.value.as_ref(),
                            "`version` starts at 1 (the default); a new version of a workflow counts up from 2",
                        ),
                        Ok(v) => version = v,
                        Err(_) => cx.error_spanned_by(
                            arg.value.as_ref(),
                            format!("`version` must fit in a u32, not {v}"),
                        ),
                    }
                }
            }
            "crate" => {
                if let Some(p) = attr::crate_path(cx, arg) {
                    krate = p;
                }
            }
            _ => attr::unknown(cx, arg, accepted),
        }
    }
    let sig = signature(cx, &item, if helper { "helper" } else { "workflow" });
    WorkflowFn {
        item,
        sig,
        name,
        krate,
        version,
        helper,
    }
}
