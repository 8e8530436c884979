//! Code generation from the analysed IR. One file per generated artefact.

pub(crate) mod activity;
pub(crate) mod driver;
pub(crate) mod state_enum;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::analyze::{Analysis, FieldTy};

/// `ProcessOrderState` for `process_order`.
pub(crate) fn state_ident(fn_ident: &syn::Ident) -> syn::Ident {
    let camel: String = fn_ident
        .to_string()
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    format_ident!("{}State", camel, span = fn_ident.span())
}

/// The marker type parameter of await `k`.
pub(crate) fn command_param(k: usize) -> syn::Ident {
    format_ident!("__C{}", k)
}

/// `ProcessOrderState<__L0, .., __C0, ..>`.
pub(crate) fn state_type(a: &Analysis<'_>) -> TokenStream {
    let ident = state_ident(&a.wf.item.sig.ident);
    let params = generic_params(a);
    quote!(#ident<#(#params),*>)
}

pub(crate) fn generic_params(a: &Analysis<'_>) -> Vec<syn::Ident> {
    a.inferred
        .iter()
        .cloned()
        .chain((0..a.awaits.len()).map(command_param))
        .collect()
}

pub(crate) fn field_type(ty: &FieldTy) -> TokenStream {
    match ty {
        FieldTy::Declared(t) => quote!(#t),
        FieldTy::Inferred(p) => quote!(#p),
    }
}

/// The whole expansion of `#[workflow]`.
pub(crate) fn workflow(a: &Analysis<'_>) -> TokenStream {
    let mut out = driver::entry_fn(a);
    out.extend(state_enum::generate(a));
    out.extend(driver::generate(a));
    out
}
