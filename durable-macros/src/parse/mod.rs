//! syn → our description of the annotated function. Signature rules live
//! here because they need only the signature.

pub(crate) mod activity;
pub(crate) mod attr;
pub(crate) mod workflow;

use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::ctxt::Ctxt;

/// A parameter of the annotated function.
pub(crate) struct Param {
    pub(crate) name: syn::Ident,
    pub(crate) mutable: bool,
    pub(crate) ty: Type,
}

/// The parts of a signature both macros need.
pub(crate) struct Signature {
    pub(crate) params: Vec<Param>,
    pub(crate) output: Type,
}

/// Checks the rules shared by workflows and activities: `async`, no
/// receiver, no generics, simple named parameters with concrete types.
pub(crate) fn signature(cx: &Ctxt, item: &ItemFn, what: &str) -> Signature {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, format!("#[{what}] must be on an `async fn`"));
    }
    if let Some(c) = &sig.constness {
        cx.error_spanned_by(c, format!("#[{what}] cannot be on a `const fn`"));
    }
    if let syn::Safety::Unsafe(u) = &sig.safety {
        cx.error_spanned_by(u, format!("#[{what}] cannot be on an `unsafe fn`"));
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, format!("#[{what}] cannot be variadic"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &sig.generics,
            format!("#[{what}] functions cannot be generic: their inputs are stored, so they need concrete types; write one function per type"),
        );
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => cx.error_spanned_by(
                r,
                format!("#[{what}] must be a free function, not a method: it cannot take `self`"),
            ),
            FnArg::Typed(pt) => {
                if contains_impl_trait(&pt.ty) {
                    cx.error_spanned_by(
                        &pt.ty,
                        format!("`impl Trait` parameters are not allowed in a #[{what}]: its input is stored, so it needs a concrete type"),
                    );
                    continue;
                }
                if let Type::Reference(r) = &*pt.ty {
                    cx.error_spanned_by(r, format!("#[{what}] parameters must be owned: a reference cannot be stored; take the value (e.g. `String` for `&str`)"));
                    continue;
                }
                match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => params.push(Param {
                        name: pi.ident.clone(),
                        mutable: pi.mutability.is_some(),
                        ty: (*pt.ty).clone(),
                    }),
                    other => cx.error_spanned_by(other, format!("#[{what}] parameters must be plain names (`order: Order`), not patterns")),
                }
            }
        }
    }
    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            if contains_impl_trait(ty) {
                cx.error_spanned_by(ty, format!("a #[{what}] cannot return `impl Trait`: its result is stored, so it needs a concrete type"));
            }
            (**ty).clone()
        }
    };
    Signature { params, output }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    syn::visit::Visit::visit_type(&mut f, ty);
    f.0
}

/// The stored input type: the parameter's type, a tuple for several, `()` for none.
pub(crate) fn input_type(params: &[Param]) -> Type {
    match params {
        [one] => one.ty.clone(),
        many => {
            let tys = many.iter().map(|p| &p.ty);
            syn::parse_quote!((#(#tys,)*))
        }
    }
}

/// An expression or pattern over the parameter names, shaped like [`input_type`].
pub(crate) fn input_names(params: &[Param]) -> proc_macro2::TokenStream {
    let names = params.iter().map(|p| &p.name);
    match params {
        [one] => {
            let n = &one.name;
            quote::quote!(#n)
        }
        _ => quote::quote!((#(#names,)*)),
    }
}
