//! Sequencing: an expression whose awaits are not all evaluated first is
//! rewritten as a block of statements with one await per statement, in
//! Rust's evaluation order.
//!
//! `let total = price(a).await? + price(b).await?;` becomes
//!
//! ```text
//! let total = {
//!     let __durable_await_0 = price(a).await;
//!     let __durable_operand_1 = __durable_await_0?;
//!     let __durable_await_1 = price(b).await;
//!     __durable_operand_1 + __durable_await_1?
//! };
//! ```
//!
//! Each operand evaluated before a later operand's await becomes a hidden
//! local (stored in the state when live across the await; a value that
//! cannot be stored is reported by rustc at the operand, whose span the
//! local carries). A local or a field of one that no later operand names
//! is left in place: reading it later reads the same value. `&&` and `||`
//! keep short-circuiting (`if a { b } else { false }`). Lowering then sees
//! only forms it splits already: an await first in its statement, or a
//! construct (block, `if`, `match`, loop) holding every await.

use proc_macro2::{Span, TokenTree};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Stmt};

use super::lower;
use super::markers::{self, AWAIT};

/// The prefix of an operand's hidden local (`__durable_operand_3`).
pub(crate) const OPERAND: &str = "__durable_operand";

/// Fresh names for hidden locals, unique within one workflow body.
#[derive(Default)]
pub(crate) struct Temps(usize);

impl Temps {
    pub(crate) fn fresh(&mut self, what: &str, span: Span) -> syn::Ident {
        self.0 += 1;
        syn::Ident::new(&format!("__durable_{what}_{}", self.0), span)
    }
}

/// How an operand is used by the expression around it.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Use {
    /// Moved or copied (arithmetic operands, call arguments).
    Value,
    /// Borrowed (comparison operands, method receivers, formatting
    /// arguments): a place is never moved into a hidden local.
    Borrow,
}

/// The statements an expression's awaits need before it, and what is left.
pub(crate) struct Sequence<'t> {
    temps: &'t mut Temps,
    pub(crate) prelude: Vec<Stmt>,
}

fn has_awaits(e: &Expr) -> bool {
    !markers::awaits_in_expr(e).is_empty()
}

fn let_stmt(name: &syn::Ident, value: Expr) -> Stmt {
    syn::parse_quote_spanned! {name.span()=> let #name = #value; }
}

fn path_expr(name: &syn::Ident) -> Expr {
    syn::parse_quote!(#name)
}

/// `{ prelude; tail }`.
pub(crate) fn block_expr(mut prelude: Vec<Stmt>, tail: Expr) -> Expr {
    prelude.push(Stmt::Expr(tail, None));
    Expr::Block(syn::ExprBlock {
        attrs: Vec::new(),
        label: None,
        block: Block {
            brace_token: Default::default(),
            stmts: prelude,
        },
    })
}

/// The local a place expression (`x`, `x.field.0`) starts from.
fn place_root(e: &Expr) -> Option<&syn::Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Field(f) => place_root(&f.base),
        Expr::Index(i) if matches!(&*i.index, Expr::Lit(_) | Expr::Path(_)) => place_root(&i.expr),
        Expr::Paren(p) => place_root(&p.expr),
        _ => None,
    }
}

/// Whether `ident` appears anywhere in `exprs` (as a name or inside a
/// macro's tokens).
fn mentions(exprs: &[Expr], ident: &syn::Ident) -> bool {
    fn in_tokens(tokens: proc_macro2::TokenStream, ident: &syn::Ident) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(i) => i == *ident,
            TokenTree::Group(g) => in_tokens(g.stream(), ident),
            // implicit format arguments: "{total}"
            TokenTree::Literal(l) => l.to_string().contains(&ident.to_string()),
            TokenTree::Punct(_) => false,
        })
    }
    exprs
        .iter()
        .any(|e| in_tokens(quote::ToTokens::to_token_stream(e), ident))
}

/// Whether `e`, evaluated now, may instead be evaluated after `later`
/// with the same result.
///
/// A borrowed place (a method's receiver, a comparison or formatting
/// operand, `&place`) stays: the borrow is taken from the same place when
/// the expression runs, and a later operand that changed the place would
/// not have compiled against the original's borrow (moving it into a
/// hidden local instead would move it out of the place, and a receiver's
/// `push` would go to the copy). A place used by value stays unless a
/// later operand names it (`c + { c += 1; f(c).await? }` reads `c` first).
fn stays(e: &Expr, how: Use, later: &[Expr]) -> bool {
    match e {
        Expr::Lit(_) | Expr::Closure(_) => true,
        Expr::Path(p) if p.path.get_ident().is_none() => true, // constants, unit variants, fns
        Expr::Reference(r) => place_root(&r.expr).is_some(),
        Expr::Paren(p) => stays(&p.expr, how, later),
        other => match place_root(other) {
            Some(_) if how == Use::Borrow => true,
            Some(root) => is_path(other) && !mentions(later, root),
            None => false,
        },
    }
}

fn is_path(e: &Expr) -> bool {
    matches!(e, Expr::Path(_))
}

/// Macros whose arguments are expressions evaluated in order; awaits in
/// them are sequenced like call arguments.
pub(crate) fn expression_macro(mac: &syn::Macro) -> Option<Use> {
    let name = mac.path.segments.last()?.ident.to_string();
    Some(match name.as_str() {
        "vec" => Use::Value,
        "format" | "print" | "println" | "eprint" | "eprintln" | "write" | "writeln" | "assert"
        | "assert_eq" | "assert_ne" | "debug_assert" | "debug_assert_eq" | "debug_assert_ne"
        | "panic" | "unreachable" | "todo" | "unimplemented" => Use::Borrow,
        _ => return None,
    })
}

impl<'t> Sequence<'t> {
    pub(crate) fn new(temps: &'t mut Temps) -> Self {
        Sequence {
            temps,
            prelude: Vec::new(),
        }
    }

    /// Binds `value` to a fresh hidden local and returns its name.
    fn bind(&mut self, what: &str, value: Expr, span: Span) -> Expr {
        let name = self.temps.fresh(what, span);
        self.prelude.push(let_stmt(&name, value));
        path_expr(&name)
    }

    /// Operands evaluated in order: each one before the last that awaits is
    /// evaluated into a hidden local unless it may stay in place.
    pub(crate) fn operands(&mut self, ops: Vec<(Expr, Use)>) -> Vec<Expr> {
        let Some(last) = ops.iter().rposition(|(e, _)| has_awaits(e)) else {
            return ops.into_iter().map(|(e, _)| e).collect();
        };
        let rest: Vec<Expr> = ops.iter().map(|(e, _)| e.clone()).collect();
        let mut out = Vec::with_capacity(ops.len());
        for (i, (e, how)) in ops.into_iter().enumerate() {
            if i > last {
                out.push(e);
                continue;
            }
            let span = e.span();
            let r = self.expr(e);
            if i == last || stays(&r, how, &rest[i + 1..=last]) {
                out.push(r);
            } else {
                out.push(self.bind("operand", r, span));
            }
        }
        out
    }

    /// Pushes what `e`'s awaits need and returns the rest of `e`, which
    /// awaits nothing. An expression this cannot take apart comes back as
    /// it was (the lowering then reports its await).
    pub(crate) fn expr(&mut self, e: Expr) -> Expr {
        if !has_awaits(&e) {
            return e;
        }
        if markers::of_expr(&e, AWAIT).is_some() {
            let span = e.span();
            return self.bind("await", e, span);
        }
        match e {
            Expr::If(_) | Expr::Match(_) | Expr::Loop(_) | Expr::While(_) => {
                let span = e.span();
                self.bind("value", e, span)
            }
            Expr::Block(ref b) if b.label.is_none() => {
                let span = e.span();
                self.bind("value", e, span)
            }
            Expr::Try(mut t) => {
                *t.expr = self.expr(*t.expr);
                Expr::Try(t)
            }
            Expr::Paren(mut p) => {
                *p.expr = self.expr(*p.expr);
                Expr::Paren(p)
            }
            Expr::Group(mut g) => {
                *g.expr = self.expr(*g.expr);
                Expr::Group(g)
            }
            Expr::Field(mut f) => {
                *f.base = self.expr(*f.base);
                Expr::Field(f)
            }
            Expr::Cast(mut c) => {
                *c.expr = self.expr(*c.expr);
                Expr::Cast(c)
            }
            Expr::Unary(mut u) => {
                *u.expr = self.expr(*u.expr);
                Expr::Unary(u)
            }
            Expr::Reference(mut r) => {
                *r.expr = self.expr(*r.expr);
                Expr::Reference(r)
            }
            Expr::Return(mut r) => {
                r.expr = r.expr.map(|x| Box::new(self.expr(*x)));
                Expr::Return(r)
            }
            Expr::Break(mut b) => {
                b.expr = b.expr.map(|x| Box::new(self.expr(*x)));
                Expr::Break(b)
            }
            Expr::Binary(b) => self.binary(b),
            Expr::Assign(mut a) if !has_awaits(&a.left) => {
                *a.right = self.expr(*a.right);
                Expr::Assign(a)
            }
            Expr::Call(mut c) if !has_awaits(&c.func) => {
                let args = std::mem::take(&mut c.args);
                let ops = args.into_iter().map(|a| (a, Use::Value)).collect();
                c.args = self.operands(ops).into_iter().collect();
                Expr::Call(c)
            }
            Expr::MethodCall(mut m) => {
                let args = std::mem::take(&mut m.args);
                let mut ops = vec![((*m.receiver).clone(), Use::Borrow)];
                ops.extend(args.into_iter().map(|a| (a, Use::Value)));
                let mut out = self.operands(ops).into_iter();
                *m.receiver = out.next().expect("the receiver");
                m.args = out.collect();
                Expr::MethodCall(m)
            }
            Expr::Tuple(mut t) => {
                let elems = std::mem::take(&mut t.elems);
                t.elems = self
                    .values(elems.into_iter().collect())
                    .into_iter()
                    .collect();
                Expr::Tuple(t)
            }
            Expr::Array(mut a) => {
                let elems = std::mem::take(&mut a.elems);
                a.elems = self
                    .values(elems.into_iter().collect())
                    .into_iter()
                    .collect();
                Expr::Array(a)
            }
            Expr::Index(mut i) => {
                let ops = vec![
                    ((*i.expr).clone(), Use::Borrow),
                    ((*i.index).clone(), Use::Value),
                ];
                let mut out = self.operands(ops).into_iter();
                *i.expr = out.next().expect("the indexed");
                *i.index = out.next().expect("the index");
                Expr::Index(i)
            }
            Expr::Range(mut r) => {
                let ops: Vec<(Expr, Use)> = [r.start.as_deref(), r.end.as_deref()]
                    .into_iter()
                    .flatten()
                    .map(|e| (e.clone(), Use::Value))
                    .collect();
                let mut out = self.operands(ops).into_iter();
                if r.start.is_some() {
                    r.start = out.next().map(Box::new);
                }
                if r.end.is_some() {
                    r.end = out.next().map(Box::new);
                }
                Expr::Range(r)
            }
            Expr::Struct(mut s) => {
                let mut ops: Vec<(Expr, Use)> = s
                    .fields
                    .iter()
                    .map(|f| (f.expr.clone(), Use::Value))
                    .collect();
                if let Some(rest) = &s.rest {
                    ops.push(((**rest).clone(), Use::Value));
                }
                let mut out = self.operands(ops).into_iter();
                for f in s.fields.iter_mut() {
                    f.expr = out.next().expect("a field");
                }
                if s.rest.is_some() {
                    s.rest = out.next().map(Box::new);
                }
                Expr::Struct(s)
            }
            Expr::Repeat(mut r) if !has_awaits(&r.len) => {
                *r.expr = self.expr(*r.expr);
                Expr::Repeat(r)
            }
            other => other,
        }
    }

    fn values(&mut self, elems: Vec<Expr>) -> Vec<Expr> {
        self.operands(elems.into_iter().map(|e| (e, Use::Value)).collect())
    }

    fn binary(&mut self, mut b: syn::ExprBinary) -> Expr {
        use syn::BinOp;
        let short = match b.op {
            BinOp::And(_) => Some(true),
            BinOp::Or(_) => Some(false),
            _ => None,
        };
        if let Some(and) = short {
            let span = b.span();
            let left = self.expr(*b.left);
            if !has_awaits(&b.right) {
                *b.left = left;
                return Expr::Binary(b);
            }
            // the right operand runs only when the left does not decide
            let decided = self.bind("operand", left, span);
            let mut inner = Sequence::new(self.temps);
            let right = inner.expr(*b.right);
            let right = block_expr(inner.prelude, right);
            let short: Expr = if and {
                syn::parse_quote_spanned! {span=> if #decided { #right } else { false } }
            } else {
                syn::parse_quote_spanned! {span=> if #decided { true } else { #right } }
            };
            return self.bind("value", short, span);
        }
        if lower::is_assign_op(&b.op) {
            if has_awaits(&b.left) {
                return Expr::Binary(b);
            }
            *b.right = self.expr(*b.right);
            return Expr::Binary(b);
        }
        let how = match b.op {
            BinOp::Eq(_)
            | BinOp::Ne(_)
            | BinOp::Lt(_)
            | BinOp::Le(_)
            | BinOp::Gt(_)
            | BinOp::Ge(_) => Use::Borrow,
            _ => Use::Value,
        };
        let mut out = self
            .operands(vec![((*b.left).clone(), how), ((*b.right).clone(), how)])
            .into_iter();
        *b.left = out.next().expect("the left operand");
        *b.right = out.next().expect("the right operand");
        Expr::Binary(b)
    }
}

/// Sequences every statement of a workflow body the lowering could not
/// split as written. Inner blocks first, so a construct hoisted whole
/// holds statements already in shape.
pub(crate) fn body(block: &mut Block, temps: &mut Temps) {
    struct Pass<'t>(&'t mut Temps);
    impl VisitMut for Pass<'_> {
        fn visit_block_mut(&mut self, block: &mut Block) {
            visit_mut::visit_block_mut(self, block);
            for stmt in &mut block.stmts {
                if lower::splits_as_written(stmt) {
                    continue;
                }
                let Some(root) = lower::root_mut(stmt) else {
                    continue;
                };
                let taken = std::mem::replace(root, syn::parse_quote!(()));
                let mut seq = Sequence::new(self.0);
                let rest = seq.expr(taken);
                *root = if seq.prelude.is_empty() {
                    rest
                } else {
                    block_expr(seq.prelude, rest)
                };
            }
        }
        // awaits in closures are refused by the first pass
        fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
        fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    }
    Pass(temps).visit_block_mut(block);
}
