//! Rewrites of plain code for life inside a segment: a segment returns a
//! `Step`, not the function's own type, so `expr?` and `return` are spelled
//! out. Closures, `async` blocks and nested items keep their own meaning and
//! are left alone.

use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Token, punctuated::Punctuated};

pub(crate) struct Rewrite<'a> {
    pub(crate) krate: &'a syn::Path,
}

impl Rewrite<'_> {
    pub(crate) fn done(&self, value: &Expr) -> Expr {
        let krate = self.krate;
        syn::parse_quote!(::core::result::Result::Ok(#krate::__private::Step::Done(#value)))
    }
}

impl VisitMut for Rewrite<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                let inner = &t.expr;
                let krate = self.krate;
                let residual: Expr = syn::parse_quote!(#krate::__private::FromResidual::from_residual(__durable_residual));
                let ret = self.done(&residual);
                *expr = syn::parse_quote_spanned! {t.question_token.span=>
                    match #krate::__private::QuestionMark::branch(#inner) {
                        #krate::__private::ControlFlow::Continue(__durable_value) => __durable_value,
                        #krate::__private::ControlFlow::Break(__durable_residual) => return #ret,
                    }
                };
            }
            Expr::Return(r) => {
                if let Some(e) = &mut r.expr {
                    self.visit_expr_mut(e);
                }
                let value: Expr = match &r.expr {
                    Some(e) => (**e).clone(),
                    None => syn::parse_quote!(()),
                };
                let ret = self.done(&value);
                *expr = syn::parse_quote_spanned! {r.return_token.span=> return #ret };
            }
            Expr::Macro(m) => self.visit_macro_mut(&mut m.mac),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    /// Macro arguments that parse as expressions (`format!`, `vec!`,
    /// `assert!`, ...) are rewritten too; anything else is left as written.
    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
        if let Ok(mut args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            let before = quote::ToTokens::to_token_stream(&args).to_string();
            for arg in args.iter_mut() {
                self.visit_expr_mut(arg);
            }
            if quote::ToTokens::to_token_stream(&args).to_string() != before {
                mac.tokens = quote::ToTokens::to_token_stream(&args);
            }
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
