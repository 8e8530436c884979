//! Placeholder macro calls the analysis puts into the body, and the small
//! visitors that ask questions about them.
//!
//! `__durable_await!(k)` stands for await point `k`, `__durable_suspend!(k)`
//! for "suspend at await point `k`", `__durable_prologue!(d)` for the
//! rebinding of live locals at nesting depth `d`, `__durable_inner!()` for
//! the continuation of the next nesting level. Codegen replaces them all.

use std::collections::BTreeSet;

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{Expr, Stmt};

pub(crate) const AWAIT: &str = "__durable_await";
pub(crate) const SUSPEND: &str = "__durable_suspend";
pub(crate) const PROLOGUE: &str = "__durable_prologue";
pub(crate) const INNER: &str = "__durable_inner";
pub(crate) const RESUME: &str = "__durable_resume";

/// A marker expression `name!(n)`.
pub(crate) fn expr(name: &str, n: Option<usize>, span: Span) -> Expr {
    let ident = syn::Ident::new(name, span);
    let tokens = match n {
        Some(n) => {
            let lit = proc_macro2::Literal::usize_unsuffixed(n);
            quote::quote!(#lit)
        }
        None => proc_macro2::TokenStream::new(),
    };
    Expr::Macro(syn::ExprMacro {
        attrs: Vec::new(),
        mac: syn::Macro {
            path: ident.into(),
            bang_token: syn::Token![!](span),
            delimiter: syn::MacroDelimiter::Paren(syn::token::Paren(span)),
            tokens,
        },
    })
}

/// A marker as a statement `name!(n);`.
pub(crate) fn stmt(name: &str, n: Option<usize>, span: Span) -> Stmt {
    Stmt::Expr(expr(name, n, span), Some(syn::Token![;](span)))
}

/// If `mac` is marker `name`, its number (0 for markers without one).
pub(crate) fn parse(mac: &syn::Macro, name: &str) -> Option<usize> {
    if !mac.path.is_ident(name) {
        return None;
    }
    if mac.tokens.is_empty() {
        return Some(0);
    }
    syn::parse2::<syn::LitInt>(mac.tokens.clone())
        .ok()?
        .base10_parse()
        .ok()
}

/// If `expr` is marker `name`, its number.
pub(crate) fn of_expr(expr: &Expr, name: &str) -> Option<usize> {
    match expr {
        Expr::Macro(m) => parse(&m.mac, name),
        _ => None,
    }
}

/// If `stmt` is marker `name` (as an expression statement), its number.
pub(crate) fn of_stmt(stmt: &Stmt, name: &str) -> Option<usize> {
    match stmt {
        Stmt::Expr(e, _) => of_expr(e, name),
        Stmt::Macro(m) => parse(&m.mac, name),
        _ => None,
    }
}

/// Re-parsed code holds `__durable_await!(k);` as a macro statement; turn
/// those back into expression statements so every pass sees one shape.
pub(crate) fn normalize(block: &mut syn::Block) {
    struct Norm;
    impl syn::visit_mut::VisitMut for Norm {
        fn visit_stmt_mut(&mut self, s: &mut Stmt) {
            if let Stmt::Macro(m) = s
                && parse(&m.mac, AWAIT).is_some()
            {
                let semi = m.semi_token;
                let expr = Expr::Macro(syn::ExprMacro {
                    attrs: m.attrs.clone(),
                    mac: m.mac.clone(),
                });
                *s = Stmt::Expr(expr, semi);
                return;
            }
            syn::visit_mut::visit_stmt_mut(self, s);
        }
        fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    }
    syn::visit_mut::VisitMut::visit_block_mut(&mut Norm, block);
}

/// The await points inside a piece of syntax.
#[derive(Default)]
pub(crate) struct AwaitsIn(pub(crate) BTreeSet<usize>);

impl<'ast> Visit<'ast> for AwaitsIn {
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if let Some(k) = parse(mac, AWAIT) {
            self.0.insert(k);
        }
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

pub(crate) fn awaits_in_stmt(stmt: &Stmt) -> BTreeSet<usize> {
    let mut v = AwaitsIn::default();
    v.visit_stmt(stmt);
    v.0
}

pub(crate) fn awaits_in_expr(expr: &Expr) -> BTreeSet<usize> {
    let mut v = AwaitsIn::default();
    v.visit_expr(expr);
    v.0
}

pub(crate) fn awaits_in_block(block: &syn::Block) -> BTreeSet<usize> {
    let mut v = AwaitsIn::default();
    v.visit_block(block);
    v.0
}

/// A name bound by a pattern.
pub(crate) struct PatBinding {
    pub(crate) ident: syn::Ident,
    pub(crate) mutable: bool,
    pub(crate) by_ref: bool,
}

/// The names a pattern binds. An identifier pattern starting with an
/// uppercase letter and without `mut`/`ref`/`@` is taken to be a constant
/// or unit variant (`None`), as rustc would resolve it.
pub(crate) fn pat_bindings(pat: &syn::Pat) -> Vec<PatBinding> {
    struct Collect(Vec<PatBinding>);
    impl<'ast> Visit<'ast> for Collect {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            let name = p.ident.to_string();
            let looks_const = name.starts_with(|c: char| c.is_uppercase())
                && p.mutability.is_none()
                && p.by_ref.is_none()
                && p.subpat.is_none();
            if !looks_const {
                self.0.push(PatBinding {
                    ident: p.ident.clone(),
                    mutable: p.mutability.is_some(),
                    by_ref: p.by_ref.is_some(),
                });
            }
            if let Some((_, sub)) = &p.subpat {
                self.visit_pat(sub);
            }
        }
        // paths inside patterns (`Foo::Bar`, `Some`) bind nothing
        fn visit_path(&mut self, _: &'ast syn::Path) {}
        fn visit_expr(&mut self, _: &'ast Expr) {}
    }
    let mut c = Collect(Vec::new());
    c.visit_pat(pat);
    c.0
}
