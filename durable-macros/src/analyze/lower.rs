//! Lowering: the body becomes one *segment* per entry point (the start, and
//! right after each await). A segment is plain structured Rust that runs
//! from its entry to the next await (where it suspends) or to the end.
//!
//! The segment after await `k` is built from the inside out: the rest of
//! the block holding the await, then the rest of each enclosing block. An
//! enclosing `loop`/`while` contributes the rest of the current iteration
//! followed by the whole loop again, with `break`/`continue` of that loop
//! turned into exits of the partial iteration. No goto, no program counter:
//! rustc sees ordinary code and infers every type.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, Stmt};

use super::markers::{self, AWAIT, INNER, PROLOGUE, RESUME, SUSPEND};
use super::prepare::AwaitPoint;
use super::rewrite::Rewrite;
use crate::ctxt::Ctxt;

/// A local the workflow declares: a parameter, a `let`, or a pattern of a
/// `match` arm / `if let` / `while let` on the way to an await.
#[derive(Clone)]
pub(crate) struct Binding {
    pub(crate) ident: syn::Ident,
    pub(crate) mutable: bool,
    /// Declared as `ref x` or initialised with `&...`: holds a borrow.
    pub(crate) borrows: bool,
    /// Where it is declared: identifies the binding across segments.
    pub(crate) site: String,
    /// The declared type, if any (parameters, `let x: T`).
    pub(crate) ty: Option<syn::Type>,
}

/// The bindings declared at one nesting depth before the path to an await.
#[derive(Clone, Default)]
pub(crate) struct Level {
    pub(crate) bindings: Vec<Binding>,
}

impl Level {
    /// The binding a name refers to at this level (the latest declaration).
    pub(crate) fn lookup(&self, name: &str) -> Option<&Binding> {
        self.bindings.iter().rev().find(|b| b.ident == name)
    }
}

/// How a nested continuation sits inside its enclosing level.
pub(crate) enum Wrap {
    /// As a block expression (the rest of an `if`/`match` branch or a block).
    Plain,
    /// The rest of a loop iteration, then the whole loop again.
    Loop {
        label: Option<syn::Label>,
        full: Box<Expr>,
    },
}

/// The code of one nesting depth of a segment, with `__durable_inner!()`
/// where the next depth goes.
pub(crate) struct Cont {
    pub(crate) depth: usize,
    pub(crate) code: Vec<Stmt>,
    pub(crate) inner: Option<(Box<Cont>, Wrap)>,
    /// Every way through this code suspends (or leaves by a jump).
    pub(crate) suspends: bool,
}

/// The code from one entry point to the end of the function.
pub(crate) struct Segment {
    /// Bindings in scope at the entry, by depth.
    pub(crate) levels: Vec<Level>,
    pub(crate) cont: Cont,
}

enum Class {
    Plain,
    Await(usize),
    Compound,
    Invalid(Span),
}

pub(crate) struct Lower<'a> {
    pub(crate) cx: &'a Ctxt,
    pub(crate) krate: &'a syn::Path,
    pub(crate) awaits: &'a [AwaitPoint],
}

fn is_construct(e: &Expr) -> bool {
    match e {
        Expr::If(_) | Expr::Match(_) | Expr::Loop(_) | Expr::While(_) => true,
        Expr::Block(b) => b.label.is_none(),
        _ => false,
    }
}

/// The operand evaluated first, for expressions where that is well defined
/// and all other operands are evaluated after it.
fn head_child_mut(e: &mut Expr) -> Option<&mut Expr> {
    Some(match e {
        Expr::Try(t) => &mut t.expr,
        Expr::MethodCall(m) => &mut m.receiver,
        Expr::Field(f) => &mut f.base,
        Expr::Paren(p) => &mut p.expr,
        Expr::Cast(c) => &mut c.expr,
        Expr::Unary(u) => &mut u.expr,
        Expr::Reference(r) => &mut r.expr,
        Expr::Index(i) => &mut i.expr,
        Expr::Assign(a) => &mut a.right,
        Expr::Binary(b) => {
            if is_assign_op(&b.op) {
                &mut b.right
            } else {
                &mut b.left
            }
        }
        Expr::Call(c) if matches!(&*c.func, Expr::Path(_)) => c.args.first_mut()?,
        Expr::Return(r) => r.expr.as_deref_mut()?,
        Expr::Break(b) => b.expr.as_deref_mut()?,
        Expr::Tuple(t) => t.elems.first_mut()?,
        Expr::Array(a) => a.elems.first_mut()?,
        Expr::Struct(s) if s.rest.is_none() => &mut s.fields.first_mut()?.expr,
        _ => return None,
    })
}

pub(crate) fn is_assign_op(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

/// The first expression on the head chain of `e` satisfying `pred`.
fn find_head_mut<'e>(e: &'e mut Expr, pred: &dyn Fn(&Expr) -> bool) -> Option<&'e mut Expr> {
    if pred(e) {
        return Some(e);
    }
    find_head_mut(head_child_mut(e)?, pred)
}

/// The expression a statement evaluates.
pub(crate) fn root_mut(stmt: &mut Stmt) -> Option<&mut Expr> {
    match stmt {
        Stmt::Local(l) => l.init.as_mut().map(|i| &mut *i.expr),
        Stmt::Expr(e, _) => Some(e),
        _ => None,
    }
}

fn let_bindings(cond: &Expr) -> Vec<markers::PatBinding> {
    struct Lets(Vec<markers::PatBinding>);
    impl<'ast> Visit<'ast> for Lets {
        fn visit_expr_let(&mut self, l: &'ast syn::ExprLet) {
            self.0.extend(markers::pat_bindings(&l.pat));
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    }
    let mut v = Lets(Vec::new());
    v.visit_expr(cond);
    v.0
}

fn has_type_hole(ty: &syn::Type) -> bool {
    struct Hole(bool);
    impl<'ast> Visit<'ast> for Hole {
        fn visit_type_infer(&mut self, _: &'ast syn::TypeInfer) {
            self.0 = true;
        }
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut h = Hole(false);
    h.visit_type(ty);
    h.0
}

/// Bindings declared by a `let` statement.
fn local_bindings(local: &syn::Local, site: &str) -> Vec<Binding> {
    let (pat, ty) = match &local.pat {
        syn::Pat::Type(pt) => (&*pt.pat, Some(&*pt.ty)),
        other => (other, None),
    };
    let init_borrows = local
        .init
        .as_ref()
        .is_some_and(|i| matches!(&*i.expr, Expr::Reference(_)));
    let bindings = markers::pat_bindings(pat);
    // a type annotation says a binding's type only when the pattern is that binding
    let single = bindings.len() == 1 && matches!(pat, syn::Pat::Ident(_));
    bindings
        .into_iter()
        .map(|b| Binding {
            borrows: b.by_ref || init_borrows,
            ident: b.ident,
            mutable: b.mutable,
            site: site.to_owned(),
            ty: ty.filter(|t| single && !has_type_hole(t)).cloned(),
        })
        .collect()
}

fn header_bindings(found: Vec<markers::PatBinding>, site: &str) -> Vec<Binding> {
    found
        .into_iter()
        .map(|b| Binding {
            borrows: b.by_ref,
            ident: b.ident,
            mutable: b.mutable,
            site: site.to_owned(),
            ty: None,
        })
        .collect()
}

/// How a statement holds its awaits, as far as syntax tells
/// ([`Class`] with the offending await's index instead of its span).
enum Shape {
    Plain,
    Await(usize),
    Compound,
    Invalid(usize),
}

fn shape(stmt: &Stmt) -> Shape {
    let marks = markers::awaits_in_stmt(stmt);
    let Some(&first) = marks.iter().next() else {
        return Shape::Plain;
    };
    let mut probe = stmt.clone();
    let Some(root) = root_mut(&mut probe) else {
        return Shape::Invalid(first);
    };
    let Some(head) = find_head_mut(root, &|e| {
        markers::of_expr(e, AWAIT).is_some() || is_construct(e)
    }) else {
        return Shape::Invalid(first);
    };
    if let Some(k) = markers::of_expr(head, AWAIT) {
        return if marks.len() == 1 {
            Shape::Await(k)
        } else {
            Shape::Invalid(marks.iter().copied().find(|m| *m != k).unwrap_or(first))
        };
    }
    let inside = markers::awaits_in_expr(head);
    if inside == marks {
        return Shape::Compound;
    }
    Shape::Invalid(
        marks
            .iter()
            .copied()
            .find(|m| !inside.contains(m))
            .unwrap_or(first),
    )
}

/// Whether the lowering splits `stmt` as written: it awaits nothing, or
/// one await evaluated before anything else, or a construct evaluated
/// first holds every await.
pub(crate) fn splits_as_written(stmt: &Stmt) -> bool {
    !matches!(shape(stmt), Shape::Invalid(_))
}

impl Lower<'_> {
    fn rw(&self) -> Rewrite<'_> {
        Rewrite { krate: self.krate }
    }

    fn classify(&self, stmt: &Stmt) -> Class {
        match shape(stmt) {
            Shape::Plain => Class::Plain,
            Shape::Await(k) => Class::Await(k),
            Shape::Compound => Class::Compound,
            Shape::Invalid(k) => Class::Invalid(self.awaits[k].span),
        }
    }

    /// Reports every await in a position the lowering cannot split at.
    pub(crate) fn check_positions(&self, stmts: &[Stmt]) {
        const HOW: &str = "this `.await` is in a position that cannot be checkpointed: the workflow must be able to stop here and resume with the awaited value; put it in its own statement (`let value = command.await?;`) and use `value` here";
        for stmt in stmts {
            match self.classify(stmt) {
                Class::Plain | Class::Await(_) => {}
                Class::Invalid(span) => self.cx.error_at(span, HOW),
                Class::Compound => {
                    let mut probe = stmt.clone();
                    if let Some(root) = root_mut(&mut probe)
                        && let Some(c) = find_head_mut(root, &is_construct)
                    {
                        self.check_construct(c);
                    }
                }
            }
        }
    }

    fn check_construct(&self, e: &Expr) {
        let cond_err = |cond: &Expr, what: &str| {
            if let Some(k) = markers::awaits_in_expr(cond).into_iter().next() {
                self.cx.error_at(
                    self.awaits[k].span,
                    format!("`.await` in {what} cannot be checkpointed: await it in a `let` statement before, and use the value here"),
                );
            }
        };
        match e {
            Expr::If(i) => {
                cond_err(&i.cond, "an `if` condition");
                self.check_positions(&i.then_branch.stmts);
                if let Some((_, els)) = &i.else_branch {
                    match &**els {
                        Expr::Block(b) => self.check_positions(&b.block.stmts),
                        other => self.check_construct(other),
                    }
                }
            }
            Expr::Match(m) => {
                cond_err(&m.expr, "a `match` scrutinee");
                for arm in &m.arms {
                    if let syn::Pat::Guard(g) = &arm.pat {
                        cond_err(&g.guard, "a match guard");
                    }
                    if let Expr::Block(b) = &*arm.body {
                        self.check_positions(&b.block.stmts);
                    }
                }
            }
            Expr::Loop(l) => self.check_positions(&l.body.stmts),
            Expr::While(w) => {
                cond_err(&w.cond, "a `while` condition");
                self.check_positions(&w.body.stmts);
            }
            Expr::Block(b) => self.check_positions(&b.block.stmts),
            _ => {}
        }
    }

    /// Straight-line emission: every await becomes a suspension, and the
    /// rest of its block is dropped (it lives in the next segment). Also
    /// says whether the code always suspends. Code
    /// after a construct that always suspends is not emitted: it would be
    /// dead, and rustc could not infer the types of what the construct
    /// yields (`let p = { ..; return suspend(..) }; p.x` has no type).
    fn emit(&self, stmts: &[Stmt]) -> (Vec<Stmt>, bool) {
        let mut out = Vec::new();
        for stmt in stmts {
            match self.classify(stmt) {
                Class::Plain | Class::Invalid(_) => {
                    let mut s = stmt.clone();
                    self.rw().visit_stmt_mut(&mut s);
                    out.push(s);
                }
                Class::Await(k) => {
                    out.push(markers::stmt(SUSPEND, Some(k), self.awaits[k].span));
                    return (out, true);
                }
                Class::Compound => {
                    let mut s = stmt.clone();
                    let mut construct = None;
                    if let Some(root) = root_mut(&mut s)
                        && let Some(c) = find_head_mut(root, &is_construct)
                    {
                        let span = c.span();
                        construct = Some(std::mem::replace(c, markers::expr(INNER, None, span)));
                    }
                    self.rw().visit_stmt_mut(&mut s);
                    if let Some(c) = construct {
                        let (emitted, always) = self.emit_construct(&c);
                        if always {
                            // what the statement does with the value is
                            // dead, and rustc would type it as `!`
                            out.push(Stmt::Expr(emitted, Some(Default::default())));
                            return (out, true);
                        }
                        replace_inner(&mut s, emitted);
                    }
                    out.push(s);
                }
            }
        }
        (out, false)
    }

    fn emit_block(&self, b: &Block) -> (Block, bool) {
        let (stmts, suspends) = self.emit(&b.stmts);
        let block = Block {
            brace_token: b.brace_token,
            stmts,
        };
        (block, suspends)
    }

    /// The construct with its awaits turned into suspensions, and whether
    /// every way through it suspends.
    fn emit_construct(&self, e: &Expr) -> (Expr, bool) {
        let mut e = e.clone();
        let mut suspends = false;
        match &mut e {
            Expr::If(i) => {
                self.rw().visit_expr_mut(&mut i.cond);
                let (then, then_suspends) = self.emit_block(&i.then_branch);
                i.then_branch = then;
                if let Some((_, els)) = &mut i.else_branch {
                    let (emitted, else_suspends) = match &**els {
                        Expr::Block(b) => {
                            let mut b = b.clone();
                            let (block, always) = self.emit_block(&b.block);
                            b.block = block;
                            (Expr::Block(b), always)
                        }
                        other => self.emit_construct(other),
                    };
                    **els = emitted;
                    suspends = then_suspends && else_suspends;
                }
            }
            Expr::Match(m) => {
                self.rw().visit_expr_mut(&mut m.expr);
                suspends = !m.arms.is_empty();
                for arm in &mut m.arms {
                    if let syn::Pat::Guard(g) = &mut arm.pat {
                        self.rw().visit_expr_mut(&mut g.guard);
                    }
                    match &mut *arm.body {
                        Expr::Block(b) if !markers::awaits_in_block(&b.block).is_empty() => {
                            let (block, always) = self.emit_block(&b.block);
                            b.block = block;
                            suspends &= always;
                        }
                        other => {
                            self.rw().visit_expr_mut(other);
                            suspends = false;
                        }
                    }
                }
            }
            // a `break` in the body leaves without suspending
            Expr::Loop(l) => l.body = self.emit_block(&l.body).0,
            Expr::While(w) => {
                self.rw().visit_expr_mut(&mut w.cond);
                w.body = self.emit_block(&w.body).0;
            }
            Expr::Block(b) => (b.block, suspends) = self.emit_block(&b.block),
            other => self.rw().visit_expr_mut(other),
        }
        (e, suspends)
    }

    /// The segment that starts the workflow.
    pub(crate) fn start_segment(&self, params: Level, body: &[Stmt]) -> Segment {
        let mut code = vec![markers::stmt(PROLOGUE, Some(0), Span::call_site())];
        let (rest, suspends) = self.emit(body);
        code.extend(rest);
        Segment {
            levels: vec![params],
            cont: Cont {
                depth: 0,
                code,
                inner: None,
                suspends,
            },
        }
    }

    /// The segment that resumes right after await `k`.
    pub(crate) fn resume_segment(&self, params: Level, body: &[Stmt], k: usize) -> Option<Segment> {
        let mut levels = vec![params];
        let cont = self.cont_stmts(body, k, 0, "r", &mut levels)?;
        Some(Segment { levels, cont })
    }

    fn cont_stmts(
        &self,
        stmts: &[Stmt],
        k: usize,
        depth: usize,
        path: &str,
        levels: &mut Vec<Level>,
    ) -> Option<Cont> {
        for (i, stmt) in stmts.iter().enumerate() {
            let site = format!("{path}.{i}");
            if !markers::awaits_in_stmt(stmt).contains(&k) {
                if let Stmt::Local(local) = stmt {
                    levels[depth].bindings.extend(local_bindings(local, &site));
                }
                continue;
            }
            let mut head = stmt.clone();
            let mut inner = None;
            match self.classify(stmt) {
                Class::Await(_) => {
                    let root = root_mut(&mut head)?;
                    let target = find_head_mut(root, &|e| markers::of_expr(e, AWAIT) == Some(k))?;
                    let span = self.awaits[k].span;
                    *target = Expr::Path(syn::ExprPath {
                        attrs: Vec::new(),
                        qself: None,
                        path: syn::Ident::new(RESUME, span).into(),
                    });
                    self.rw().visit_stmt_mut(&mut head);
                }
                Class::Compound => {
                    let root = root_mut(&mut head)?;
                    let c = find_head_mut(root, &is_construct)?;
                    let span = c.span();
                    let construct = std::mem::replace(c, markers::expr(INNER, None, span));
                    self.rw().visit_stmt_mut(&mut head);
                    let (cont, wrap) = self.cont_construct(&construct, k, depth, &site, levels)?;
                    inner = Some((Box::new(cont), wrap));
                }
                Class::Plain | Class::Invalid(_) => return None,
            }
            // after a block that always suspends, the rest of the statement
            // and the statements after are dead code (see `emit`); a loop's
            // partial iteration may `break` out
            let inner_suspends = inner
                .as_ref()
                .is_some_and(|(c, wrap)| c.suspends && matches!(wrap, Wrap::Plain));
            if inner_suspends {
                head = markers::stmt(INNER, None, head.span());
            }
            let mut code = vec![
                markers::stmt(PROLOGUE, Some(depth), Span::call_site()),
                head,
            ];
            let suspends = inner_suspends || {
                let (rest, suspends) = self.emit(&stmts[i + 1..]);
                code.extend(rest);
                suspends
            };
            return Some(Cont {
                depth,
                code,
                inner,
                suspends,
            });
        }
        None
    }

    fn cont_construct(
        &self,
        e: &Expr,
        k: usize,
        depth: usize,
        site: &str,
        levels: &mut Vec<Level>,
    ) -> Option<(Cont, Wrap)> {
        levels.truncate(depth + 1);
        levels.push(Level::default());
        let d = depth + 1;
        match e {
            Expr::If(i) => {
                if markers::awaits_in_block(&i.then_branch).contains(&k) {
                    levels[d]
                        .bindings
                        .extend(header_bindings(let_bindings(&i.cond), &format!("{site}.c")));
                    let cont =
                        self.cont_stmts(&i.then_branch.stmts, k, d, &format!("{site}.t"), levels)?;
                    return Some((cont, Wrap::Plain));
                }
                match &*i.else_branch.as_ref()?.1 {
                    Expr::Block(b) => Some((
                        self.cont_stmts(&b.block.stmts, k, d, &format!("{site}.e"), levels)?,
                        Wrap::Plain,
                    )),
                    nested => self.cont_construct(nested, k, depth, &format!("{site}.e"), levels),
                }
            }
            Expr::Match(m) => {
                let (j, arm) = m
                    .arms
                    .iter()
                    .enumerate()
                    .find(|(_, a)| markers::awaits_in_expr(&a.body).contains(&k))?;
                let arm_site = format!("{site}.a{j}");
                levels[d]
                    .bindings
                    .extend(header_bindings(markers::pat_bindings(&arm.pat), &arm_site));
                let Expr::Block(b) = &*arm.body else {
                    return None;
                };
                Some((
                    self.cont_stmts(&b.block.stmts, k, d, &arm_site, levels)?,
                    Wrap::Plain,
                ))
            }
            Expr::Block(b) => Some((
                self.cont_stmts(&b.block.stmts, k, d, &format!("{site}.b"), levels)?,
                Wrap::Plain,
            )),
            Expr::Loop(l) => {
                let cont = self.cont_stmts(&l.body.stmts, k, d, &format!("{site}.b"), levels)?;
                let full = self.emit_construct(e).0;
                Some((
                    cont,
                    Wrap::Loop {
                        label: l.label.clone(),
                        full: Box::new(full),
                    },
                ))
            }
            Expr::While(w) => {
                levels[d]
                    .bindings
                    .extend(header_bindings(let_bindings(&w.cond), &format!("{site}.c")));
                let cont = self.cont_stmts(&w.body.stmts, k, d, &format!("{site}.b"), levels)?;
                let full = self.emit_construct(e).0;
                Some((
                    cont,
                    Wrap::Loop {
                        label: w.label.clone(),
                        full: Box::new(full),
                    },
                ))
            }
            _ => None,
        }
    }
}

/// Puts `with` where the `__durable_inner!()` marker is in `stmt`.
pub(crate) fn replace_inner(stmt: &mut Stmt, with: Expr) {
    struct Put(Option<Expr>);
    impl VisitMut for Put {
        fn visit_expr_mut(&mut self, e: &mut Expr) {
            if markers::of_expr(e, INNER).is_some() {
                if let Some(w) = self.0.take() {
                    *e = w;
                }
                return;
            }
            syn::visit_mut::visit_expr_mut(self, e);
        }
    }
    Put(Some(with)).visit_stmt_mut(stmt);
}
