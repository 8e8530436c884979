//! Procedural macros of [durable](https://docs.rs/durable-runtime): use them
//! through `durable_runtime`, which re-exports them and documents them.
//!
//! Each entry point is parse → analyze → codegen. On error it emits the
//! errors plus a fallback expansion (the function and its type) so that
//! callers do not get a second wave of errors and IDEs keep working.

mod analyze;
mod codegen;
mod ctxt;
#[cfg(test)]
mod expand_tests;
mod parse;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;

use ctxt::{Ctxt, with_fallback};

/// Compiles an `async fn` into a durable workflow. Documented on
/// `durable_runtime::workflow`.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_workflow(args.into(), item.into()).into()
}

/// Compiles an `async fn` into a helper that workflows (and other helpers)
/// await, its state nested in theirs. Documented on `durable_runtime::helper`.
#[proc_macro_attribute]
pub fn helper(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_helper(args.into(), item.into()).into()
}

/// Marks an `async fn` as an activity. Documented on `durable_runtime::activity`.
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_activity(args.into(), item.into()).into()
}

fn debug_print(kind: &str, tokens: &TokenStream2) {
    if std::env::var_os("DURABLE_MACROS_DEBUG").is_some() {
        #[cfg(feature = "pretty-debug")]
        let text = syn::parse2::<syn::File>(tokens.clone())
            .map_or_else(|_| tokens.to_string(), |f| prettyplease::unparse(&f));
        #[cfg(not(feature = "pretty-debug"))]
        let text = tokens.to_string();
        eprintln!("// #[{kind}] expansion\n{text}");
    }
}

/// The `#[workflow]` expansion, as a function over token streams (so tests
/// can snapshot it without the compiler).
pub(crate) fn expand_workflow(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    expand_machine(args, item, false)
}

/// The `#[helper]` expansion: a workflow's, nested in its callers.
pub(crate) fn expand_helper(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    expand_machine(args, item, true)
}

fn expand_machine(args: TokenStream2, item: TokenStream2, helper: bool) -> TokenStream2 {
    let kind = if helper { "helper" } else { "workflow" };
    let item: syn::ItemFn = match syn::parse2(item) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let cx = Ctxt::new();
    let wf = if helper {
        parse::workflow::parse_helper(&cx, args, item.clone())
    } else {
        parse::workflow::parse(&cx, args, item.clone())
    };
    let analysis = if cx.has_errors() {
        None
    } else {
        analyze::analyze(&cx, &wf)
    };
    let out = analysis.as_ref().map(codegen::workflow);
    match (cx.check(), out) {
        (Ok(()), Some(out)) => {
            debug_print(kind, &out);
            out
        }
        (Err(e), _) => with_fallback(e, fallback(&item)),
        (Ok(()), None) => with_fallback(
            syn::Error::new_spanned(
                &item.sig.ident,
                format!(
                    "internal error in #[{kind}]: analysis produced nothing; please report this"
                ),
            ),
            fallback(&item),
        ),
    }
}

pub(crate) fn expand_activity(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let item: syn::ItemFn = match syn::parse2(item) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let cx = Ctxt::new();
    let act = parse::activity::parse(&cx, args, item.clone());
    match cx.check() {
        Ok(()) => {
            let out = codegen::activity::generate(&act);
            debug_print("activity", &out);
            out
        }
        Err(e) => with_fallback(e, fallback(&item)),
    }
}

/// What is emitted beside errors: a type with the function's name so that
/// `Builder::workflow::<name>()` and calls do not cascade into more errors.
fn fallback(item: &syn::ItemFn) -> TokenStream2 {
    let vis = &item.vis;
    let ident = &item.sig.ident;
    if item.sig.receiver().is_some() {
        // a method: a type cannot be declared inside an impl
        return TokenStream2::new();
    }
    quote! {
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}
    }
}
