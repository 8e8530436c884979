//! First pass over a workflow body: number every `.await`, replace it by a
//! marker, desugar `for` loops that await, and reject what cannot be made
//! durable (awaits in closures, `async` blocks, awaits hidden in macros).

use proc_macro2::{Span, TokenTree};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprBlock, Stmt};

use super::markers::{self, AWAIT};
use crate::ctxt::Ctxt;

/// One `.await` in the body.
pub(crate) struct AwaitPoint {
    /// The awaited expression (the command), with inner markers resolved.
    pub(crate) command: Expr,
    /// Span of the whole `expr.await`.
    pub(crate) span: Span,
}

pub(crate) struct Prepare<'a> {
    pub(crate) cx: &'a Ctxt,
    pub(crate) krate: &'a syn::Path,
    pub(crate) fn_name: &'a syn::Ident,
    pub(crate) awaits: Vec<AwaitPoint>,
    closure_depth: usize,
    for_loops: usize,
    temps: usize,
}

impl<'a> Prepare<'a> {
    pub(crate) fn new(cx: &'a Ctxt, krate: &'a syn::Path, fn_name: &'a syn::Ident) -> Self {
        Prepare {
            cx,
            krate,
            fn_name,
            awaits: Vec::new(),
            closure_depth: 0,
            for_loops: 0,
            temps: 0,
        }
    }
}

/// Whether a macro's tokens contain `. await`.
fn tokens_await(tokens: proc_macro2::TokenStream) -> Option<Span> {
    let mut prev_dot = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) if prev_dot && i == "await" => return Some(i.span()),
            TokenTree::Group(g) => {
                if let Some(s) = tokens_await(g.stream()) {
                    return Some(s);
                }
                prev_dot = false;
            }
            TokenTree::Punct(p) => prev_dot = p.as_char() == '.',
            _ => prev_dot = false,
        }
    }
    None
}

fn callee_is(expr: &Expr, name: &syn::Ident) -> bool {
    match expr {
        Expr::Call(call) => {
            matches!(&*call.func, Expr::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == *name) && p.path.segments.len() == 1)
        }
        Expr::MethodCall(m) => callee_is(&m.receiver, name),
        Expr::Paren(p) => callee_is(&p.expr, name),
        _ => false,
    }
}

impl VisitMut for Prepare<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Await(aw) => {
                visit_mut::visit_expr_mut(self, &mut aw.base);
                let span = aw.span();
                if self.closure_depth > 0 {
                    self.cx.error_at(
                        aw.await_token.span(),
                        "`.await` inside a closure cannot be checkpointed: a workflow can only await at the level of its own body; call the activity in the body and pass its result to the closure",
                    );
                    return;
                }
                if !markers::awaits_in_expr(&aw.base).is_empty() {
                    self.cx.error_at(
                        aw.await_token.span(),
                        "this awaited expression contains another `.await`: bind the inner result with `let` first, then await the outer command",
                    );
                    return;
                }
                if callee_is(&aw.base, self.fn_name) {
                    self.cx.error_spanned_by(
                        &aw.base,
                        format!("a workflow cannot await itself: `{}` would recurse without bound; loop inside the body, or start a new instance", self.fn_name),
                    );
                }
                let k = self.awaits.len();
                self.awaits.push(AwaitPoint {
                    command: (*aw.base).clone(),
                    span,
                });
                *expr = markers::expr(AWAIT, Some(k), span);
            }
            Expr::Async(a) => {
                self.cx.error_spanned_by(
                    a.async_token,
                    "`async` blocks are not allowed in a #[workflow]: their state cannot be checkpointed; await commands directly in the body, or move the async code into an #[activity]",
                );
            }
            Expr::Closure(c) => {
                if let Some(a) = &c.asyncness {
                    self.cx.error_spanned_by(a, "async closures are not allowed in a #[workflow]: their state cannot be checkpointed; move the async code into an #[activity]");
                    return;
                }
                self.closure_depth += 1;
                visit_mut::visit_expr_closure_mut(self, c);
                self.closure_depth -= 1;
            }
            Expr::Macro(m) => {
                if let Some(span) = tokens_await(m.mac.tokens.clone()) {
                    self.cx.error_at(span, "`.await` inside a macro call cannot be checkpointed: bind the awaited value with `let` before the macro");
                }
            }
            Expr::ForLoop(_) => {
                visit_mut::visit_expr_mut(self, expr);
                let Expr::ForLoop(f) = expr else { return };
                if markers::awaits_in_block(&f.body).is_empty() {
                    return;
                }
                if self.closure_depth > 0 {
                    return;
                }
                // keep the remaining items in the state: the loop resumes with the next one
                let n = self.for_loops;
                self.for_loops += 1;
                let items = syn::Ident::new(&format!("__durable_items_{n}"), f.for_token.span());
                let krate = self.krate;
                let label = &f.label;
                let pat = &f.pat;
                let iter = &f.expr;
                let body = &f.body;
                let block: ExprBlock = syn::parse_quote_spanned! {f.for_token.span()=>
                    {
                        let mut #items = #krate::__private::Remaining::new(#iter);
                        #label while let ::core::option::Option::Some(#pat) = #items.next_item() #body
                    }
                };
                *expr = Expr::Block(block);
            }
            Expr::Match(m) => {
                visit_mut::visit_expr_match_mut(self, m);
                if !markers::awaits_in_expr(&m.expr).is_empty() {
                    // `match cmd.await { .. }`: await into a local, then match on it
                    let tmp = self.temp("scrutinee", m.match_token.span);
                    let scrutinee = std::mem::replace(&mut *m.expr, syn::parse_quote!(#tmp));
                    let span = m.match_token.span;
                    let matched = Expr::Match(m.clone());
                    *expr = Expr::Block(
                        syn::parse_quote_spanned! {span=> { let #tmp = #scrutinee; #matched } },
                    );
                    self.normalize_arms(expr);
                    return;
                }
                self.normalize_arms(expr);
            }
            Expr::If(i) => {
                visit_mut::visit_expr_if_mut(self, i);
                let hoist = match &mut *i.cond {
                    Expr::Let(l) if !markers::awaits_in_expr(&l.expr).is_empty() => {
                        Some(&mut l.expr)
                    }
                    Expr::Let(_) => None,
                    c if !markers::awaits_in_expr(c).is_empty() && !has_let(c) => Some(&mut i.cond),
                    _ => None,
                };
                if let Some(slot) = hoist {
                    // `if cmd.await? { .. }` / `if let P = cmd.await { .. }`: await into a local first
                    let span = i.if_token.span;
                    let tmp = self.temp("condition", span);
                    let value = std::mem::replace(&mut **slot, syn::parse_quote!(#tmp));
                    let cond = Expr::If(i.clone());
                    *expr = Expr::Block(
                        syn::parse_quote_spanned! {span=> { let #tmp = #value; #cond } },
                    );
                }
            }
            Expr::Block(b) if b.label.is_some() => {
                visit_mut::visit_expr_block_mut(self, b);
                if !markers::awaits_in_block(&b.block).is_empty() {
                    self.cx.error_spanned_by(
                        &b.label,
                        "`.await` inside a labeled block is not supported: use a `loop` with `break 'label value`, or move the part into its own workflow step",
                    );
                }
            }
            Expr::Unsafe(u) => {
                visit_mut::visit_expr_unsafe_mut(self, u);
                if !markers::awaits_in_block(&u.block).is_empty() {
                    self.cx.error_spanned_by(u.unsafe_token, "`.await` inside an `unsafe` block is not supported: keep the unsafe code in a sync helper");
                }
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(m) = stmt {
            if let Some(span) = tokens_await(m.mac.tokens.clone()) {
                self.cx.error_at(span, "`.await` inside a macro call cannot be checkpointed: bind the awaited value with `let` before the macro");
            }
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
        if let Stmt::Local(local) = stmt
            && let Some(init) = &local.init
            && let Some((_, diverge)) = &init.diverge
            && !markers::awaits_in_expr(diverge).is_empty()
        {
            self.cx.error_spanned_by(
                diverge,
                "`.await` inside the `else` of a `let ... else` is not supported: use `match` with an arm that awaits",
            );
        }
    }

    // nested items are compiled on their own
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

fn has_let(e: &Expr) -> bool {
    struct Lets(bool);
    impl<'ast> syn::visit::Visit<'ast> for Lets {
        fn visit_expr_let(&mut self, _: &'ast syn::ExprLet) {
            self.0 = true;
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    }
    let mut v = Lets(false);
    syn::visit::Visit::visit_expr(&mut v, e);
    v.0
}

impl Prepare<'_> {
    fn temp(&mut self, what: &str, span: Span) -> syn::Ident {
        self.temps += 1;
        syn::Ident::new(&format!("__durable_{what}_{}", self.temps), span)
    }

    /// Arms whose body awaits get a block body, so lowering has a block to split.
    fn normalize_arms(&mut self, expr: &mut Expr) {
        let m = match expr {
            Expr::Match(m) => m,
            Expr::Block(b) => match b.block.stmts.last_mut() {
                Some(Stmt::Expr(Expr::Match(m), _)) => m,
                _ => return,
            },
            _ => return,
        };
        for arm in &mut m.arms {
            let body_awaits = !markers::awaits_in_expr(&arm.body).is_empty();
            if body_awaits && !matches!(&*arm.body, Expr::Block(b) if b.label.is_none()) {
                let body = &arm.body;
                let span = body.span();
                *arm.body = Expr::Block(syn::parse_quote_spanned! {span=> { #body } });
            }
        }
    }
}
