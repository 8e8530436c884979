//! First pass over a workflow body: number every `.await`, replace it by a
//! marker, desugar `for` loops that await, and reject what cannot be made
//! durable (awaits in closures, `async` blocks, awaits hidden in macros).

use proc_macro2::{Span, TokenTree};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Stmt};

use super::markers::{self, AWAIT};
use super::sequence::{self, Sequence, Temps};
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
    /// Names of hidden locals, shared with the sequencing pass.
    pub(crate) temps: Temps,
    /// Compiling a `#[helper]` (for the words of errors).
    pub(crate) helper: bool,
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
            temps: Temps::default(),
            helper: false,
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
        // forms rewritten before their awaits are numbered
        if self.closure_depth == 0
            && let Some(desugared) = desugar(expr, &mut self.temps)
        {
            *expr = desugared;
            return self.visit_expr_mut(expr);
        }
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
                // `step(step(n).await?).await`: the inner awaits run first,
                // into hidden locals the outer command reads
                let mut inner = Sequence::new(&mut self.temps);
                let base = inner.expr((*aw.base).clone());
                let prelude = inner.prelude;
                if !markers::awaits_in_expr(&base).is_empty() {
                    self.cx.error_at(
                        aw.await_token.span(),
                        "this awaited expression contains another `.await` in a position that cannot be checkpointed: bind the inner result with `let` first, then await the outer command",
                    );
                    return;
                }
                *aw.base = base;
                if callee_is(&aw.base, self.fn_name) && self.helper {
                    self.cx.error_spanned_by(
                        &aw.base,
                        format!("a helper cannot await itself: `{}` would nest its own state in itself without bound; loop inside the body instead", self.fn_name),
                    );
                } else if callee_is(&aw.base, self.fn_name) {
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
                let marker = markers::expr(AWAIT, Some(k), span);
                *expr = if prelude.is_empty() {
                    marker
                } else {
                    sequence::block_expr(prelude, marker)
                };
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
                    match self.macro_args(&mut m.mac) {
                        Some(prelude) => {
                            let mac = Expr::Macro(m.clone());
                            *expr = sequence::block_expr(prelude, mac);
                        }
                        None => self.cx.error_at(span, "`.await` inside this macro call cannot be checkpointed: only the arguments of `format!`, `print!`, `println!`, `eprint!`, `eprintln!`, `write!`, `writeln!`, `vec![a, b]`, `panic!` and the `assert!` family are taken apart; bind the awaited value with `let` before the macro"),
                    }
                }
            }
            Expr::ForLoop(_) => {
                visit_mut::visit_expr_mut(self, expr);
                let Expr::ForLoop(f) = expr else { return };
                if self.closure_depth > 0 {
                    return;
                }
                let span = f.for_token.span();
                // `for x in cmd.await? { .. }`: the iterable is evaluated once,
                // before the first item: it is awaited into a local first
                let iterable = if markers::awaits_in_expr(&f.expr).is_empty() {
                    None
                } else {
                    let tmp = self.temp("iterable", span);
                    let value = std::mem::replace(&mut *f.expr, syn::parse_quote!(#tmp));
                    Some((tmp, value))
                };
                let looped = if markers::awaits_in_block(&f.body).is_empty() {
                    Expr::ForLoop(f.clone())
                } else {
                    // keep the remaining items in the state: the loop resumes
                    // with the next one
                    let n = self.for_loops;
                    self.for_loops += 1;
                    let items = syn::Ident::new(&format!("__durable_items_{n}"), span);
                    let krate = self.krate;
                    let label = &f.label;
                    let pat = &f.pat;
                    let iter = &f.expr;
                    let body = &f.body;
                    Expr::Block(syn::parse_quote_spanned! {span=>
                        {
                            let mut #items = #krate::__private::Remaining::new(#iter);
                            #label while let ::core::option::Option::Some(#pat) = #items.next_item() #body
                        }
                    })
                };
                *expr = match iterable {
                    Some((tmp, value)) => Expr::Block(
                        syn::parse_quote_spanned! {span=> { let #tmp = #value; #looped } },
                    ),
                    None => looped,
                };
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
            if tokens_await(m.mac.tokens.clone()).is_none() {
                return;
            }
            // `println!("{}", step(n).await?);` is an expression statement
            let mut e = Expr::Macro(syn::ExprMacro {
                attrs: m.attrs.clone(),
                mac: m.mac.clone(),
            });
            self.visit_expr_mut(&mut e);
            *stmt = Stmt::Expr(e, Some(m.semi_token.unwrap_or_default()));
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

/// Whether the code as written awaits (outside closures and async blocks).
fn awaits_as_written(e: &Expr) -> bool {
    struct Awaits(bool);
    impl<'ast> syn::visit::Visit<'ast> for Awaits {
        fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
            self.0 = true;
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            self.0 |= tokens_await(mac.tokens.clone()).is_some();
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut v = Awaits(false);
    syn::visit::Visit::visit_expr(&mut v, e);
    v.0
}

/// `while`, let chains and labeled blocks whose awaits the lowering cannot
/// split, rewritten into forms it can (`None`: leave `e` as it is).
fn desugar(e: &Expr, temps: &mut Temps) -> Option<Expr> {
    match e {
        // `while c { .. }` is `loop { if c { .. } else { break } }`
        Expr::While(w) if awaits_as_written(&w.cond) => {
            let (label, cond, body) = (&w.label, &w.cond, &w.body);
            Some(syn::parse_quote_spanned! {w.while_token.span=>
                #label loop { if #cond #body else { break; } }
            })
        }
        Expr::If(i)
            if matches!(&*i.cond, Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)))
                && has_let(&i.cond)
                && awaits_as_written(&i.cond) =>
        {
            let_chain(i, temps.fresh("chain", i.if_token.span))
        }
        Expr::Match(m)
            if m.arms
                .iter()
                .any(|a| matches!(&a.pat, syn::Pat::Guard(g) if awaits_as_written(&g.guard))) =>
        {
            Some(guarded_match(m, temps))
        }
        // `'a: { .. }` is `'a: loop { break 'a ({ .. }); }`; an unlabeled
        // `break`/`continue` cannot appear in a labeled block, so no jump
        // changes its target
        Expr::Block(b)
            if b.label.is_some()
                && awaits_as_written(&Expr::Block(syn::ExprBlock {
                    attrs: Vec::new(),
                    label: None,
                    block: b.block.clone(),
                })) =>
        {
            let label = b.label.as_ref()?;
            let name = &label.name;
            let block = &b.block;
            Some(syn::parse_quote_spanned! {name.span()=>
                #label loop { break #name (#block); }
            })
        }
        _ => None,
    }
}

/// A `match` whose guards await: the arm is chosen first, testing each
/// arm in order on a clone of the scrutinee (pattern, then guard, with the
/// guard's awaits hoisted like an `if` condition's), into the arm's index;
/// then the scrutinee is matched for real, each arm guarded by its index.
/// The scrutinee's type must be `Clone` (a guard reads bindings that the
/// chosen arm then moves).
fn guarded_match(m: &syn::ExprMatch, temps: &mut Temps) -> Expr {
    let span = m.match_token.span;
    let mut prelude: Vec<Stmt> = Vec::new();
    // a local is matched in place: moving it into a temporary would move it
    // out of arms that bind by reference
    let scrutinee: Expr = if is_place(&m.expr) {
        (*m.expr).clone()
    } else {
        let tmp = temps.fresh("scrutinee", span);
        let value = &m.expr;
        prelude.push(syn::parse_quote_spanned! {span=> let #tmp = #value; });
        syn::parse_quote!(#tmp)
    };
    let chosen = temps.fresh("arm", span);
    let n = m.arms.len();
    let mut choice: Expr = syn::parse_quote_spanned! {span=> #n };
    for (i, arm) in m.arms.iter().enumerate().rev() {
        let test: Expr = match &arm.pat {
            syn::Pat::Guard(g) => {
                let (pat, guard) = (&g.pat, &g.guard);
                syn::parse_quote_spanned! {span=>
                    match ::core::clone::Clone::clone(&#scrutinee) {
                        #pat => { #guard }
                        #[allow(unreachable_patterns)]
                        _ => false,
                    }
                }
            }
            pat => syn::parse_quote_spanned! {span=>
                match ::core::clone::Clone::clone(&#scrutinee) {
                    #pat => true,
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            },
        };
        choice = syn::parse_quote_spanned! {span=> if #test { #i } else { #choice } };
    }
    prelude.push(syn::parse_quote_spanned! {span=> let #chosen: usize = #choice; });
    let arms = m.arms.iter().enumerate().map(|(i, arm)| {
        let pat = match &arm.pat {
            syn::Pat::Guard(g) => &*g.pat,
            pat => pat,
        };
        let body = &arm.body;
        quote::quote_spanned! {span=> #pat if #chosen == #i => #body, }
    });
    let dispatch: Expr = syn::parse_quote_spanned! {span=>
        match #scrutinee {
            #(#arms)*
            #[allow(unreachable_patterns)]
            _ => ::core::unreachable!("the arm was chosen by the same patterns"),
        }
    };
    sequence::block_expr(prelude, dispatch)
}

/// A local or a field of one.
fn is_place(e: &Expr) -> bool {
    match e {
        Expr::Path(p) => p.path.get_ident().is_some(),
        Expr::Field(f) => is_place(&f.base),
        Expr::Paren(p) => is_place(&p.expr),
        _ => false,
    }
}

/// The conditions of a chain `a && let P = b && c`, in order.
fn chain_links(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)) => {
            chain_links(&b.left, out);
            chain_links(&b.right, out);
        }
        other => out.push(other.clone()),
    }
}

/// `if let P = a.await && c && let Q = b.await { T } else { F }`: each link
/// becomes an `if` nested in the previous one's branch, so a link is
/// evaluated only when the ones before it hold, and its awaits are
/// hoisted as an `if`'s are; `T` runs innermost, with every binding in
/// scope, as `Some(T)`; `None` from any link runs `F`.
fn let_chain(i: &syn::ExprIf, tmp: syn::Ident) -> Option<Expr> {
    let mut links = Vec::new();
    chain_links(&i.cond, &mut links);
    if links
        .iter()
        .any(|l| !matches!(l, Expr::Let(_)) && has_let(l))
    {
        return None;
    }
    let span = i.if_token.span;
    let then = &i.then_branch;
    let mut inner: Expr = syn::parse_quote_spanned! {span=> ::core::option::Option::Some(#then) };
    for link in links.iter().rev() {
        inner = syn::parse_quote_spanned! {span=>
            if #link { #inner } else { ::core::option::Option::None }
        };
    }
    let els: Expr = match &i.else_branch {
        Some((_, e)) => (**e).clone(),
        None => syn::parse_quote!({}),
    };
    let value = syn::Ident::new("__durable_chain_value", span);
    Some(syn::parse_quote_spanned! {span=>
        {
            let #tmp = #inner;
            match #tmp {
                ::core::option::Option::Some(#value) => #value,
                ::core::option::Option::None => #els,
            }
        }
    })
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
        self.temps.fresh(what, span)
    }

    /// Takes apart the arguments of an expression macro whose arguments
    /// await: numbers their awaits and returns the statements to run
    /// before the macro, which is left reading hidden locals. `None` if the
    /// macro is not one whose arguments are expressions.
    fn macro_args(&mut self, mac: &mut syn::Macro) -> Option<Vec<Stmt>> {
        let how = sequence::expression_macro(mac)?;
        let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        let mut args = syn::parse::Parser::parse2(parser, mac.tokens.clone()).ok()?;
        for arg in args.iter_mut() {
            self.visit_expr_mut(arg);
        }
        // a named argument (`total = expr`) is evaluated as its value
        let mut ops = Vec::new();
        for arg in args.iter() {
            let value = match arg {
                Expr::Assign(a) if matches!(&*a.left, Expr::Path(_)) => (*a.right).clone(),
                other => other.clone(),
            };
            ops.push((value, how));
        }
        let mut seq = Sequence::new(&mut self.temps);
        let values = seq.operands(ops);
        let prelude = seq.prelude;
        for (arg, value) in args.iter_mut().zip(values) {
            match arg {
                Expr::Assign(a) if matches!(&*a.left, Expr::Path(_)) => *a.right = value,
                other => *other = value,
            }
        }
        if args.iter().any(|a| !markers::awaits_in_expr(a).is_empty()) {
            return None;
        }
        mac.tokens = quote::ToTokens::to_token_stream(&args);
        Some(prelude)
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
